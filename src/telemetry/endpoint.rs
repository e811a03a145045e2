//! `GET /metrics` on `METRICS_BIND`, a listener of its own: the API's address never
//! answers it, so a scrape endpoint cannot become public with the API by accident.
//! The gauges of state (pool, write queue, delivery queues) are read here, per scrape.

use std::net::TcpListener;

use actix_web::{web, App, HttpResponse, HttpServer};
use chrono::NaiveDateTime;
use diesel::dsl::{count_star, min};
use diesel::prelude::*;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::app::AppState;
use crate::error::AppError;
use crate::ids::{DeliveryStatus, MailStatus};
use crate::schema::{mail_outbox, webhook_deliveries};
use crate::telemetry::metrics::{self, Queue};

/// The content type of the Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Drains histogram samples this often when nobody scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts the metrics listener beside the API (one worker: a scrape every few seconds
/// needs no more). Its signals are the API server's: it stops with the process.
pub fn spawn(
    state: web::Data<AppState>,
    handle: PrometheusHandle,
    listener: TcpListener,
) -> Result<(), AppError> {
    let handle = web::Data::new(handle);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(handle.clone())
            .route("/metrics", web::get().to(scrape))
            .default_service(web::to(HttpResponse::NotFound))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .map_err(|e| AppError::Config(format!("METRICS_BIND: cannot listen: {e}")))?
    .run();
    actix_web::rt::spawn(server);
    actix_web::rt::spawn(async {
        let mut tick = actix_web::rt::time::interval(UPKEEP_EVERY);
        loop {
            tick.tick().await;
            metrics::upkeep();
        }
    });
    Ok(())
}

async fn scrape(state: web::Data<AppState>, handle: web::Data<PrometheusHandle>) -> HttpResponse {
    let pool = &state.pool;
    let pooled = pool.state();
    metrics::pool_state(
        pool.max_size(),
        pooled.connections,
        pooled.idle_connections,
        pool.write_queue_depth(),
    );
    let now = state.clock.now();
    match crate::db::run(pool, queue_states).await {
        Ok(queues) => {
            for (queue, depth, oldest) in queues {
                let age = oldest.map(|at| {
                    (now - crate::clock::from_db(at))
                        .to_std()
                        .unwrap_or_default()
                });
                metrics::queue_state(queue, depth, age);
            }
        }
        // The scrape still answers: the pool gauges say why the queues are missing.
        Err(e) => tracing::warn!(error = %e, "metrics: queue state not read"),
    }
    HttpResponse::Ok()
        .content_type(TEXT_FORMAT)
        .body(handle.render())
}

type QueueState = (Queue, i64, Option<NaiveDateTime>);

/// Items waiting in each delivery queue, and when the oldest was queued.
fn queue_states(conn: &mut crate::db::DbConn) -> Result<Vec<QueueState>, AppError> {
    let (webhooks, webhook_oldest): (i64, Option<NaiveDateTime>) = webhook_deliveries::table
        .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending))
        .select((count_star(), min(webhook_deliveries::created_at)))
        .first(conn)?;
    let (mails, mail_oldest): (i64, Option<NaiveDateTime>) = mail_outbox::table
        .filter(mail_outbox::status.eq(MailStatus::Pending))
        .select((count_star(), min(mail_outbox::created_at)))
        .first(conn)?;
    Ok(vec![
        (Queue::Webhook, webhooks, webhook_oldest),
        (Queue::Mail, mails, mail_oldest),
    ])
}
