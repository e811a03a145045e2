//! The worker: claims due deliveries, sends them and records each attempt.

use std::net::SocketAddr;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::app::AppState;
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::DeliveryId;
use crate::schema::{webhook_attempts, webhook_deliveries, webhook_subscriptions};
use actix_web::web;

use super::*;

/// A delivery claimed by this node.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: DeliveryId,
    pub lease: String,
    pub url: String,
    pub secret: String,
    pub body: String,
    pub event: String,
    pub event_id: String,
    pub attempt: i32,
    /// The trace the event was produced in (when traces were on then).
    pub trace: Option<crate::telemetry::traces::TraceHeaders>,
}

/// What a claimed delivery needs to be sent: the subscription's URL and (sealed) secret.
#[derive(Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ToSend {
    #[diesel(select_expression = webhook_subscriptions::url)]
    url: String,
    #[diesel(select_expression = webhook_subscriptions::secret)]
    secret: String,
    body: String,
    event: String,
    event_id: String,
    attempts: i32,
    traceparent: Option<String>,
    tracestate: Option<String>,
}

/// Claims up to `limit` due deliveries for this node. Each claim is a conditional update
/// (`locked_until` empty or past), so two nodes never hold the same delivery.
pub fn claim_due(
    conn: &mut DbConn,
    keys: &crate::secrets::Keyring,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Claimed>, AppError> {
    let due: Vec<DeliveryId> = webhook_deliveries::table
        .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending))
        .filter(webhook_deliveries::next_attempt_at.le(to_db(now)))
        .filter(
            webhook_deliveries::locked_until
                .is_null()
                .or(webhook_deliveries::locked_until.le(to_db(now))),
        )
        .order(webhook_deliveries::next_attempt_at)
        .select(webhook_deliveries::id)
        .limit(limit)
        .load(conn)?;
    let mut claimed = Vec::new();
    for id in due {
        let lease = Uuid::new_v4().to_string();
        let won = diesel::update(
            webhook_deliveries::table
                .find(&id)
                .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending))
                .filter(
                    webhook_deliveries::locked_until
                        .is_null()
                        .or(webhook_deliveries::locked_until.le(to_db(now))),
                ),
        )
        .set((
            webhook_deliveries::locked_until
                .eq(Some(to_db(now + Duration::seconds(LEASE_SECONDS)))),
            webhook_deliveries::lease.eq(Some(&lease)),
        ))
        .execute(conn)?;
        if won != 1 {
            continue;
        }
        let d: ToSend = webhook_deliveries::table
            .inner_join(webhook_subscriptions::table)
            .filter(webhook_deliveries::id.eq(&id))
            .select(ToSend::as_select())
            .first(conn)?;
        let secret = keys.open(crate::secrets::WEBHOOK_AAD, &d.secret)?;
        claimed.push(Claimed {
            id,
            lease,
            url: d.url,
            secret,
            body: d.body,
            event: d.event,
            event_id: d.event_id,
            attempt: d.attempts + 1,
            trace: d
                .traceparent
                .map(|traceparent| crate::telemetry::traces::TraceHeaders {
                    traceparent,
                    tracestate: d.tracestate,
                }),
        });
    }
    Ok(claimed)
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Delay before attempt `attempt + 1`: 30 s doubled per failed attempt, at most an hour.
pub fn backoff(attempt: i32) -> Duration {
    let exp = attempt.clamp(1, 12) - 1;
    Duration::seconds((30i64 << exp).min(3600))
}

/// POSTs one claimed delivery, signed, with a short timeout, to the addresses its host
/// resolves to now if `policy` allows every one of them. Redirects are not followed (one
/// to `127.0.0.1` would be the same request forgery): a 3xx is a failed attempt. Blocking:
/// run it off the async executor.
pub fn send(
    c: &Claimed,
    now: DateTime<Utc>,
    timeout: std::time::Duration,
    policy: &DestinationPolicy,
) -> Outcome {
    if !crate::telemetry::traces::enabled() {
        return send_untraced(c, now, timeout, policy);
    }
    let span = crate::telemetry::traces::delivery_span(c.trace.as_ref(), &c.event, c.attempt);
    let outcome = span.in_scope(|| send_untraced(c, now, timeout, policy));
    if let Some(code) = outcome.status_code {
        span.record("http.response.status_code", code);
    }
    outcome
}

/// [`send`], inside the delivery's span when traces are on.
fn send_untraced(
    c: &Claimed,
    now: DateTime<Utc>,
    timeout: std::time::Duration,
    policy: &DestinationPolicy,
) -> Outcome {
    let started = std::time::Instant::now();
    let elapsed = || started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    let checked = target(&c.url, policy).and_then(|t| {
        let addrs = resolve_checked(&t, policy)?;
        Ok((t.netloc, addrs))
    });
    let (netloc, addrs) = match checked {
        Ok(checked) => checked,
        Err(refusal) => {
            return Outcome {
                status_code: None,
                error: Some(refusal.log_text().into()),
                duration_ms: elapsed(),
            }
        }
    };
    // ureq asks its resolver for `host:port` when it connects; it gets the addresses just
    // checked, and nothing for any other host.
    let pinned = move |asked: &str| -> std::io::Result<Vec<SocketAddr>> {
        if asked == netloc {
            Ok(addrs.clone())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "not the checked destination",
            ))
        }
    };
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(timeout.min(std::time::Duration::from_secs(5)))
        .timeout(timeout)
        .redirects(0)
        .try_proxy_from_env(false)
        .resolver(pinned)
        .build();
    let mut request = agent.post(&c.url);
    // The receiver's work joins the trace of the change that produced the event: through
    // this attempt's span when traces are on here, else straight to the stored parent
    // (the node that queued the delivery may trace when this one does not).
    let trace = crate::telemetry::traces::current_context().or_else(|| c.trace.clone());
    if let Some(trace) = trace {
        request = request.set("traceparent", &trace.traceparent);
        if let Some(state) = &trace.tracestate {
            request = request.set("tracestate", state);
        }
    }
    let result = request
        .set("Content-Type", "application/json")
        .set("User-Agent", "eportfolio-webhooks/1")
        // Standard Webhooks; the delivery id stays the same across retries.
        .set("webhook-id", &c.id)
        .set("webhook-timestamp", &now.timestamp().to_string())
        .set(
            "webhook-signature",
            &standard_signature(&c.secret, &c.id, now.timestamp(), &c.body),
        )
        .set(
            SIGNATURE_HEADER,
            &signature(&c.secret, now.timestamp(), &c.body),
        )
        .set("Eportfolio-Event", &c.event)
        .set("Eportfolio-Event-Id", &c.event_id)
        .set("Eportfolio-Delivery", &c.id)
        .send_string(&c.body);
    let duration_ms = elapsed();
    match result {
        Ok(r) if (200..300).contains(&r.status()) => Outcome {
            status_code: Some(r.status()),
            error: None,
            duration_ms,
        },
        // A redirect (not followed) or another non-2xx answer below 400.
        Ok(r) => Outcome {
            status_code: Some(r.status()),
            error: Some(format!("HTTP {}", r.status())),
            duration_ms,
        },
        Err(ureq::Error::Status(code, _)) => Outcome {
            status_code: Some(code),
            error: Some(format!("HTTP {code}")),
            duration_ms,
        },
        Err(ureq::Error::Transport(t)) => Outcome {
            status_code: None,
            error: Some(failure_class(&t).into()),
            duration_ms,
        },
    }
}

/// Records an attempt and schedules the next one (or gives up). Ignored when the lease
/// is no longer this node's (it took too long and another node took over).
pub fn record(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    c: &Claimed,
    o: &Outcome,
) -> Result<(), AppError> {
    let current: Option<(Option<String>, chrono::NaiveDateTime)> = webhook_deliveries::table
        .find(&c.id)
        .select((webhook_deliveries::lease, webhook_deliveries::give_up_at))
        .first(conn)
        .optional()?;
    let Some((lease, give_up_at)) = current else {
        return Ok(());
    };
    if lease.as_deref() != Some(c.lease.as_str()) {
        return Ok(());
    }
    diesel::insert_into(webhook_attempts::table)
        .values((
            webhook_attempts::id.eq(Uuid::new_v4().to_string()),
            webhook_attempts::delivery_id.eq(&c.id),
            webhook_attempts::attempt.eq(c.attempt),
            webhook_attempts::at.eq(to_db(now)),
            webhook_attempts::status_code.eq(o.status_code.map(i32::from)),
            webhook_attempts::error.eq(&o.error),
            webhook_attempts::duration_ms.eq(o.duration_ms),
        ))
        .execute(conn)?;
    let next = now + backoff(c.attempt);
    use crate::telemetry::metrics::{delivery, Delivery, Queue};
    let (status, next_at, delivered) = if o.ok() {
        delivery(Queue::Webhook, Delivery::Delivered);
        (DeliveryStatus::Delivered, None, Some(to_db(now)))
    } else if next > from_db(give_up_at) {
        delivery(Queue::Webhook, Delivery::GaveUp);
        (DeliveryStatus::Failed, None, None)
    } else {
        delivery(Queue::Webhook, Delivery::Retry);
        (DeliveryStatus::Pending, Some(to_db(next)), None)
    };
    diesel::update(webhook_deliveries::table.find(&c.id))
        .set((
            webhook_deliveries::status.eq(status),
            webhook_deliveries::attempts.eq(c.attempt),
            webhook_deliveries::next_attempt_at.eq(next_at),
            webhook_deliveries::locked_until.eq(None::<chrono::NaiveDateTime>),
            webhook_deliveries::lease.eq(None::<String>),
            webhook_deliveries::last_status_code.eq(o.status_code.map(i32::from)),
            webhook_deliveries::last_error.eq(&o.error),
            webhook_deliveries::updated_at.eq(to_db(now)),
            webhook_deliveries::delivered_at.eq(delivered),
        ))
        .execute(conn)?;
    Ok(())
}

/// Delivers due webhooks: claims, sends (off the executor, concurrently within a batch)
/// and records, until nothing is due. Returns the number of attempts made.
pub async fn deliver_due(state: &web::Data<AppState>) -> Result<usize, AppError> {
    let mut total = 0;
    loop {
        let now = state.clock.now();
        let keys = state.pool.keyring().cloned();
        let claimed = crate::db::write(&state.pool, move |c| {
            claim_due(c, crate::secrets::required(keys.as_ref())?, now, 20)
        })
        .await?;
        if claimed.is_empty() {
            return Ok(total);
        }
        total += claimed.len();
        let timeout = state.config.webhook_timeout;
        let policy = DestinationPolicy::from_config(&state.config);
        let attempts = claimed.into_iter().map(|c| {
            let st = state.clone();
            let policy = policy.clone();
            async move {
                let sent_at = st.clock.now();
                let d = c.clone();
                let outcome = web::block(move || send(&d, sent_at, timeout, &policy)).await?;
                let now = st.clock.now();
                crate::db::write(&st.pool, move |conn| record(conn, now, &c, &outcome)).await
            }
        });
        for result in futures_util::future::join_all(attempts).await {
            result?;
        }
        // Let the next tick continue a very long queue.
        if total >= 500 {
            return Ok(total);
        }
    }
}

/// The webhook worker: every `WEBHOOK_POLL_MILLIS` (not at all when zero), off the
/// request path, so a slow or dead receiver never slows the API.
pub fn spawn_worker(state: web::Data<AppState>) {
    let every = state.config.webhook_poll;
    if every.is_zero() {
        return;
    }
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match deliver_due(&state).await {
                Ok(_) => {}
                Err(AppError::Unavailable(e)) => {
                    tracing::warn!(error = %e, "webhook delivery postponed");
                }
                Err(e) => tracing::error!(error = %e, "webhook delivery failed"),
            }
        }
    });
}
