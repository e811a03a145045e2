//! Webhooks: an organisation subscribes a URL to events; every event is written to a
//! durable outbox (`webhook_deliveries`) in the same transaction as the change it
//! announces, and a background worker delivers it, signed, with retries.
//!
//! **Signature.** Each delivery carries
//! `Eportfolio-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>`,
//! plus `Eportfolio-Event`, `Eportfolio-Delivery` and `Eportfolio-Event-Id` headers.
//! Receivers recompute the HMAC over the raw body, compare in constant time, and
//! refuse old timestamps (say, older than five minutes) against replays.
//!
//! **Retries.** Any answer but 2xx (or no answer within `WEBHOOK_TIMEOUT_SECONDS`) is
//! retried with exponential backoff (30 s, 1 min, 2 min, ... capped at 1 h) for a day
//! after the event; then the delivery is `failed`. Administrators can replay any
//! delivery. Every attempt is logged.
//!
//! **Several nodes.** A worker claims a due delivery by setting a lease
//! (`locked_until`, `lease`) with a conditional update; only one node wins it. A node that
//! dies mid-delivery leaves the lease to expire, and another node retries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::crypto::random_token;
use crate::auth::principal::{org_chain, Principal};
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::integrations::{audit_write, require_admin_over, visible_orgs};
use crate::schema::{enrolments, webhook_attempts, webhook_deliveries, webhook_subscriptions};

pub const SIGNATURE_HEADER: &str = "Eportfolio-Signature";

/// Events a subscription may name (or `*` for all, including events added later).
pub const EVENTS: [&str; 6] = [
    "activity.created",
    "assessment.signed",
    "final_assessment.decided",
    "xapi.statement_unmatched",
    "enrolment.created",
    "webhook.test",
];

/// How long a claimed delivery is reserved for the node that claimed it.
const LEASE_SECONDS: i64 = 120;
/// Deliveries are retried for this long after the event.
const RETRY_WINDOW_HOURS: i64 = 24;

// ---- Enqueueing (the outbox) ----------------------------------------------------------

/// Whether any webhook subscription is active at all: one cached statement on a small
/// table, so the events of a service without subscribers (most writes) cost nothing
/// more. The organisation chain and the subscriptions are only read when it is true.
fn has_subscribers(conn: &mut DbConn) -> Result<bool, AppError> {
    let query = webhook_subscriptions::table
        .filter(webhook_subscriptions::active.eq(1))
        .filter(webhook_subscriptions::deleted_at.is_null())
        .select(webhook_subscriptions::id);
    let any: Option<String> = crate::on_backend!(conn, |c| query.first(c).optional())?;
    Ok(any.is_some())
}

/// Enqueues `event` for every active subscription of `organisation_id` and of its
/// ancestors (a region's subscription hears about all its units) that names the event
/// (or `*`). Call it inside the write transaction of the change it announces, so the
/// event exists exactly when the change does; delivery happens later, off the request.
///
/// The body delivered is
/// `{"id": <event id>, "type": event, "created_at": now, "organisation_id": ..., "data": payload}`.
/// Events: `activity.created`, `assessment.signed`, `final_assessment.decided` (issue 5:
/// call it when a final assessment is decided, with the decision as `payload`), ...
pub fn enqueue(
    conn: &mut DbConn,
    organisation_id: &str,
    event: &str,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    if !has_subscribers(conn)? {
        return Ok(());
    }
    enqueue_to_chain(conn, organisation_id, event, payload, now)
}

/// [`enqueue`], once it is known that somebody subscribes.
fn enqueue_to_chain(
    conn: &mut DbConn,
    organisation_id: &str,
    event: &str,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let chain = org_chain(conn, organisation_id)?;
    if chain.is_empty() {
        return Ok(());
    }
    let subs: Vec<(String, String, String)> = webhook_subscriptions::table
        .filter(webhook_subscriptions::organisation_id.eq_any(&chain))
        .filter(webhook_subscriptions::active.eq(1))
        .filter(webhook_subscriptions::deleted_at.is_null())
        .select((
            webhook_subscriptions::id,
            webhook_subscriptions::organisation_id,
            webhook_subscriptions::events,
        ))
        .load(conn)?;
    let subs: Vec<_> = subs
        .into_iter()
        .filter(|(_, _, events)| {
            let events: Vec<String> = serde_json::from_str(events).unwrap_or_default();
            events.iter().any(|e| e == event || e == "*")
        })
        .collect();
    if subs.is_empty() {
        return Ok(());
    }
    let event_id = Uuid::new_v4().to_string();
    let body = json!({
        "id": event_id,
        "type": event,
        "created_at": now,
        "organisation_id": organisation_id,
        "data": payload,
    })
    .to_string();
    for (sub, org, _) in subs {
        insert_delivery(conn, now, &sub, &org, &event_id, event, &body, None)?;
    }
    Ok(())
}

/// [`enqueue`] for the organisation of an enrolment.
pub fn enqueue_for_enrolment(
    conn: &mut DbConn,
    enrolment_id: &str,
    event: &str,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    if !has_subscribers(conn)? {
        return Ok(());
    }
    let org: Option<String> = enrolments::table
        .find(enrolment_id)
        .select(enrolments::organisation_id)
        .first(conn)
        .optional()?;
    match org {
        Some(org) => enqueue_to_chain(conn, &org, event, payload, now),
        None => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
fn insert_delivery(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    subscription: &str,
    org: &str,
    event_id: &str,
    event: &str,
    body: &str,
    replay_of: Option<&str>,
) -> Result<String, AppError> {
    let id = Uuid::new_v4().to_string();
    diesel::insert_into(webhook_deliveries::table)
        .values((
            webhook_deliveries::id.eq(&id),
            webhook_deliveries::subscription_id.eq(subscription),
            webhook_deliveries::organisation_id.eq(org),
            webhook_deliveries::event_id.eq(event_id),
            webhook_deliveries::event.eq(event),
            webhook_deliveries::body.eq(body),
            webhook_deliveries::status.eq("pending"),
            webhook_deliveries::attempts.eq(0),
            webhook_deliveries::next_attempt_at.eq(Some(to_db(now))),
            webhook_deliveries::give_up_at.eq(to_db(now + Duration::hours(RETRY_WINDOW_HOURS))),
            webhook_deliveries::replay_of.eq(replay_of),
            webhook_deliveries::created_at.eq(to_db(now)),
            webhook_deliveries::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(id)
}

// ---- Signing ----------------------------------------------------------------------------

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC accepts keys of any length; this cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

// ---- Destinations (no requests to the service's own networks) ------------------------------
//
// A subscription URL is a request the service makes on an administrator's behalf, from
// inside its network. Without a check it reaches the service itself, the database, the
// cloud metadata endpoint, and tells the port-scan result back through the delivery log.
// So the host is resolved once, every address it resolves to is checked, and the
// connection goes to exactly the checked addresses (ureq's resolver is replaced): a DNS
// answer that changes between check and connect (rebinding) is never asked for.

/// What kind of address an IP address is, as far as webhooks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Globally reachable unicast: allowed.
    Public,
    /// `0.0.0.0/8`, `::` (connects to the local host).
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`), unique local `fc00::/7`, site-local
    /// `fec0::/10`, local-use NAT64 `64:ff9b:1::/48`.
    Private,
    /// `169.254.0.0/16` (cloud metadata lives here), `fe80::/10`.
    LinkLocal,
    /// Shared address space `100.64.0.0/10` (carrier-grade NAT).
    SharedCgnat,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`.
    Benchmarking,
    /// Everything else that is not globally routable unicast: `192.0.0/24`, `240/4`
    /// (with the broadcast address), the 6to4 relay, IPv4-compatible IPv6 of public
    /// addresses, 6to4 and Teredo, discard-only, and IPv6 outside `2000::/3`.
    Reserved,
}

impl AddressClass {
    pub fn is_public(self) -> bool {
        self == AddressClass::Public
    }

    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::SharedCgnat => "shared (carrier-grade NAT)",
            AddressClass::Multicast => "multicast",
            AddressClass::Documentation => "documentation",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::Reserved => "reserved",
        }
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    let table: [([u8; 4], u32, AddressClass); 16] = [
        ([0, 0, 0, 0], 8, Unspecified),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedCgnat),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Reserved),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Benchmarking),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([240, 0, 0, 0], 4, Reserved),
        ([255, 255, 255, 255], 32, Reserved),
    ];
    table
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map_or(Public, |(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    if ip.is_unspecified() {
        return Unspecified;
    }
    if ip.is_loopback() {
        return Loopback;
    }
    // IPv4-mapped (::ffff:a.b.c.d) reaches the IPv4 address itself.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap_or(Ipv6Addr::UNSPECIFIED);
    let embedded_v4 = Ipv4Addr::from((u128::from(ip) & 0xffff_ffff) as u32);
    // IPv4-compatible (::a.b.c.d, deprecated): the class of the embedded address when
    // that is not public, else reserved (nobody legitimately uses these).
    if in_v6(ip, Ipv6Addr::UNSPECIFIED, 96) {
        let class = classify_v4(embedded_v4);
        return if class.is_public() { Reserved } else { class };
    }
    // Well-known NAT64 prefix: a translator forwards to the embedded IPv4 address.
    if in_v6(ip, v6("64:ff9b::"), 96) {
        return classify_v4(embedded_v4);
    }
    let table: [(&str, u32, AddressClass); 10] = [
        ("64:ff9b:1::", 48, Private),
        ("100::", 64, Reserved),
        ("2001:db8::", 32, Documentation),
        ("2001::", 23, Reserved),
        ("2002::", 16, Reserved),
        ("3fff::", 20, Documentation),
        ("fc00::", 7, Private),
        ("fe80::", 10, LinkLocal),
        ("fec0::", 10, Private),
        ("ff00::", 8, Multicast),
    ];
    if let Some((_, _, class)) = table
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, v6(net), *prefix))
    {
        return *class;
    }
    // Only 2000::/3 is allocated as global unicast.
    if in_v6(ip, v6("2000::"), 3) {
        Public
    } else {
        Reserved
    }
}

/// The class of an address; IPv4-mapped and -compatible IPv6 count as the IPv4 address.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Where webhooks may go: https to public addresses, and what the operator opened.
#[derive(Debug, Clone, Default)]
pub struct DestinationPolicy {
    /// `WEBHOOK_ALLOW_HTTP`.
    pub allow_http: bool,
    /// `WEBHOOK_ALLOWED_NETWORKS`.
    pub allowed_networks: Vec<ipnet::IpNet>,
}

impl DestinationPolicy {
    pub fn from_config(config: &crate::Config) -> DestinationPolicy {
        DestinationPolicy {
            allow_http: config.webhook_allow_http,
            allowed_networks: config.webhook_allowed_networks.clone(),
        }
    }

    /// Whether a connection to `ip` is allowed: public, or inside a network the operator
    /// allowed. The unspecified address and multicast are never destinations.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let class = classify(ip);
        if class.is_public() {
            return true;
        }
        if matches!(class, AddressClass::Unspecified | AddressClass::Multicast) {
            return false;
        }
        let ip = ip.to_canonical();
        self.allowed_networks.iter().any(|n| n.contains(&ip))
    }
}

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a URL this service posts to (scheme, host).
    Url(&'static str),
    /// The host is (or resolves to) an address the policy does not allow.
    Address(IpAddr, AddressClass),
    /// The host name did not resolve.
    Unresolved,
}

impl Refusal {
    /// The failure class in the delivery log: no addresses, no OS error texts, so that the
    /// log tells an administrator what to fix and nothing about the network behind.
    fn log_text(&self) -> &'static str {
        match self {
            Refusal::Url(_) | Refusal::Address(..) => "destination not allowed",
            Refusal::Unresolved => "connection failed",
        }
    }
}

/// A parsed subscription URL: what ureq will ask its resolver for, and how to resolve it.
struct Target {
    /// `host:port` exactly as ureq 2 formats it (`url::Url::host_str`, explicit or
    /// default port).
    netloc: String,
    host: url::Host<String>,
    port: u16,
}

fn target(url: &str, policy: &DestinationPolicy) -> Result<Target, Refusal> {
    let parsed = url::Url::parse(url).map_err(|_| Refusal::Url("not a URL"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return Err(Refusal::Url("only https:// URLs are allowed")),
        _ => return Err(Refusal::Url("an https:// URL")),
    }
    let host = parsed
        .host()
        .map(|h| h.to_owned())
        .ok_or(Refusal::Url("a URL with a host"))?;
    let host_str = parsed.host_str().ok_or(Refusal::Url("a URL with a host"))?;
    let port = parsed
        .port_or_known_default()
        .ok_or(Refusal::Url("a URL with a port"))?;
    Ok(Target {
        netloc: format!("{host_str}:{port}"),
        host,
        port,
    })
}

/// Resolves the target once and checks every address: all must be allowed (a name that
/// resolves to a public and a private address is refused, not filtered, so that which
/// one is used never depends on the resolver's order).
fn resolve_checked(t: &Target, policy: &DestinationPolicy) -> Result<Vec<SocketAddr>, Refusal> {
    let addrs: Vec<SocketAddr> = match &t.host {
        url::Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), t.port)],
        url::Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), t.port)],
        url::Host::Domain(name) => (name.as_str(), t.port)
            .to_socket_addrs()
            .map_err(|_| Refusal::Unresolved)?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Refusal::Unresolved);
    }
    if let Some(bad) = addrs.iter().find(|a| !policy.allows(a.ip())) {
        return Err(Refusal::Address(bad.ip(), classify(bad.ip())));
    }
    Ok(addrs)
}

/// Checks a subscription URL when it is set: scheme, and every address its host resolves
/// to now. Blocking (DNS): call it off the executor and outside a transaction. A name
/// that does not resolve (yet) is accepted; every delivery checks again.
pub fn check_destination(url: &str, policy: &DestinationPolicy) -> Result<(), AppError> {
    let t = target(url.trim(), policy).map_err(|r| match r {
        Refusal::Url(why) => AppError::validation("url", why),
        _ => AppError::validation("url", "an https:// URL"),
    })?;
    match resolve_checked(&t, policy) {
        Ok(_) | Err(Refusal::Unresolved) => Ok(()),
        Err(Refusal::Address(_, class)) => Err(AppError::Validation(vec![FieldError::new(
            "url",
            format!(
                "the host is or resolves to a {} address; webhooks go to public addresses only \
                 (an operator can allow a network with WEBHOOK_ALLOWED_NETWORKS)",
                class.describe()
            ),
        )])),
        Err(Refusal::Url(why)) => Err(AppError::validation("url", why)),
    }
}

/// The failure class of a transport error for the delivery log: `timeout` or
/// `connection failed` (refused, reset, TLS, ...), never the OS error text, which would
/// make the log a port scanner's oracle.
fn failure_class(e: &ureq::Transport) -> &'static str {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) {
                return "timeout";
            }
        }
        source = s.source();
    }
    "connection failed"
}

// ---- Subscriptions ----------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookSubscription {
    pub id: String,
    pub organisation_id: String,
    #[schema(example = "https://lms.example.org/hooks/eportfolio")]
    pub url: String,
    #[schema(example = json!(["activity.created", "assessment.signed"]))]
    pub events: Vec<String>,
    pub description: String,
    pub active: bool,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl WebhookSubscription {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
}

/// A subscription with its signing secret: shown at creation and rotation only.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookSubscriptionWithSecret {
    #[serde(flatten)]
    pub subscription: WebhookSubscription,
    /// The HMAC-SHA256 key for `Eportfolio-Signature`; shown once.
    #[schema(example = "whsec_k9...")]
    pub secret: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookSubscription {
    pub id: Option<Uuid>,
    pub organisation_id: String,
    /// `https://` URL that receives POSTs (`http://` only where the operator allows it).
    /// Its host must resolve to public addresses only (or to a network the operator
    /// allows); checked now and before every delivery.
    #[schema(example = "https://lms.example.org/hooks/eportfolio")]
    pub url: String,
    /// Event names, or `["*"]` for every event.
    #[schema(example = json!(["activity.created", "assessment.signed", "final_assessment.decided"]))]
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSubscriptionPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// Pause (`false`) or resume deliveries; events while paused are not kept.
    pub active: Option<bool>,
}

type SubRow = (
    String,
    String,
    String,
    String,
    String,
    i32,
    Option<String>,
    chrono::NaiveDateTime,
    chrono::NaiveDateTime,
    i32,
);

fn sub_from(r: SubRow) -> WebhookSubscription {
    WebhookSubscription {
        id: r.0,
        organisation_id: r.1,
        url: r.2,
        events: serde_json::from_str(&r.3).unwrap_or_default(),
        description: r.4,
        active: r.5 != 0,
        created_by: r.6,
        created_at: from_db(r.7),
        updated_at: from_db(r.8),
        version: r.9,
    }
}

#[allow(clippy::type_complexity)]
const SUB_COLUMNS: (
    webhook_subscriptions::id,
    webhook_subscriptions::organisation_id,
    webhook_subscriptions::url,
    webhook_subscriptions::events,
    webhook_subscriptions::description,
    webhook_subscriptions::active,
    webhook_subscriptions::created_by,
    webhook_subscriptions::created_at,
    webhook_subscriptions::updated_at,
    webhook_subscriptions::version,
) = (
    webhook_subscriptions::id,
    webhook_subscriptions::organisation_id,
    webhook_subscriptions::url,
    webhook_subscriptions::events,
    webhook_subscriptions::description,
    webhook_subscriptions::active,
    webhook_subscriptions::created_by,
    webhook_subscriptions::created_at,
    webhook_subscriptions::updated_at,
    webhook_subscriptions::version,
);

fn check_url(url: &str, errors: &mut Vec<FieldError>) {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2000
        && !url.chars().any(char::is_whitespace)
        && url.split("://").nth(1).is_some_and(|rest| !rest.is_empty());
    if !ok {
        errors.push(FieldError::new(
            "url",
            "an https:// URL of at most 2000 characters, without spaces",
        ));
    }
}

fn check_events(events: &[String], errors: &mut Vec<FieldError>) {
    if events.is_empty() {
        errors.push(FieldError::new("events", "at least one event, or \"*\""));
    }
    for (i, e) in events.iter().enumerate() {
        if e != "*" && !EVENTS.contains(&e.as_str()) {
            errors.push(FieldError::new(
                format!("events[{i}]"),
                format!("unknown event; known: {}", EVENTS.join(", ")),
            ));
        }
    }
}

fn new_secret() -> String {
    format!("whsec_{}", random_token())
}

pub fn get_subscription(conn: &mut DbConn, id: &str) -> Result<WebhookSubscription, AppError> {
    let r: SubRow = webhook_subscriptions::table
        .find(id)
        .filter(webhook_subscriptions::deleted_at.is_null())
        .select(SUB_COLUMNS)
        .first(conn)?;
    Ok(sub_from(r))
}

/// A subscription the caller administers (404 otherwise).
pub fn visible_subscription(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
) -> Result<WebhookSubscription, AppError> {
    let s = get_subscription(conn, id)?;
    if me.is_client()
        || !me.has_role_over(
            conn,
            crate::auth::principal::Role::Administrator,
            &s.organisation_id,
        )?
    {
        return Err(AppError::NotFound);
    }
    Ok(s)
}

pub fn create_subscription(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    n: NewWebhookSubscription,
) -> Result<WebhookSubscriptionWithSecret, AppError> {
    let mut errors = Vec::new();
    let url = n.url.trim().to_string();
    check_url(&url, &mut errors);
    check_events(&n.events, &mut errors);
    if n.description.chars().count() > 500 {
        errors.push(FieldError::new("description", "at most 500 characters"));
    }
    if crate::accounts::service::get_org(conn, &n.organisation_id).is_err() {
        errors.push(FieldError::new("organisation_id", "no such organisation"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    require_admin_over(conn, me, &n.organisation_id)?;
    let id =
        n.id.map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
    let secret = new_secret();
    diesel::insert_into(webhook_subscriptions::table)
        .values((
            webhook_subscriptions::id.eq(&id),
            webhook_subscriptions::organisation_id.eq(&n.organisation_id),
            webhook_subscriptions::url.eq(&url),
            webhook_subscriptions::events.eq(json!(n.events).to_string()),
            webhook_subscriptions::description.eq(n.description.trim()),
            webhook_subscriptions::secret.eq(&secret),
            webhook_subscriptions::active.eq(1),
            webhook_subscriptions::created_by.eq(&me.user_id),
            webhook_subscriptions::version.eq(1),
            webhook_subscriptions::created_at.eq(to_db(now)),
            webhook_subscriptions::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let s = get_subscription(conn, &id)?;
    audit_write(
        conn,
        now,
        me,
        "created",
        "webhook_subscription",
        &id,
        &json!(s),
    )?;
    Ok(WebhookSubscriptionWithSecret {
        subscription: s,
        secret,
    })
}

pub fn list_subscriptions(
    conn: &mut DbConn,
    me: &Principal,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<WebhookSubscription>, AppError> {
    let orgs = visible_orgs(conn, me)?;
    let mut q = webhook_subscriptions::table
        .filter(webhook_subscriptions::organisation_id.eq_any(orgs))
        .filter(webhook_subscriptions::deleted_at.is_null())
        .select(SUB_COLUMNS)
        .order(webhook_subscriptions::id)
        .limit(limit + 1)
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(webhook_subscriptions::id.gt(a.to_string()));
    }
    Ok(q.load::<SubRow>(conn)?.into_iter().map(sub_from).collect())
}

pub fn update_subscription(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    p: WebhookSubscriptionPatch,
) -> Result<WebhookSubscription, AppError> {
    let s = visible_subscription(conn, me, id)?;
    if_match(&s.etag())?;
    let mut errors = Vec::new();
    let url = p.url.map(|u| u.trim().to_string()).unwrap_or(s.url);
    check_url(&url, &mut errors);
    let events = p.events.unwrap_or(s.events);
    check_events(&events, &mut errors);
    let description = p.description.unwrap_or(s.description);
    if description.chars().count() > 500 {
        errors.push(FieldError::new("description", "at most 500 characters"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    diesel::update(webhook_subscriptions::table.find(id))
        .set((
            webhook_subscriptions::url.eq(&url),
            webhook_subscriptions::events.eq(json!(events).to_string()),
            webhook_subscriptions::description.eq(description.trim()),
            webhook_subscriptions::active.eq(i32::from(p.active.unwrap_or(s.active))),
            webhook_subscriptions::version.eq(s.version + 1),
            webhook_subscriptions::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let s = get_subscription(conn, id)?;
    audit_write(
        conn,
        now,
        me,
        "updated",
        "webhook_subscription",
        id,
        &json!(s),
    )?;
    Ok(s)
}

pub fn rotate_subscription_secret(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
) -> Result<WebhookSubscriptionWithSecret, AppError> {
    let s = visible_subscription(conn, me, id)?;
    let secret = new_secret();
    diesel::update(webhook_subscriptions::table.find(id))
        .set((
            webhook_subscriptions::secret.eq(&secret),
            webhook_subscriptions::version.eq(s.version + 1),
            webhook_subscriptions::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let s = get_subscription(conn, id)?;
    audit_write(
        conn,
        now,
        me,
        "secret_rotated",
        "webhook_subscription",
        id,
        &json!(s),
    )?;
    Ok(WebhookSubscriptionWithSecret {
        subscription: s,
        secret,
    })
}

/// Deletes a subscription; its pending deliveries are dropped (marked failed).
pub fn delete_subscription(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
) -> Result<(), AppError> {
    let s = visible_subscription(conn, me, id)?;
    diesel::update(webhook_subscriptions::table.find(id))
        .set((
            webhook_subscriptions::deleted_at.eq(to_db(now)),
            webhook_subscriptions::active.eq(0),
            webhook_subscriptions::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::subscription_id.eq(id))
            .filter(webhook_deliveries::status.eq("pending")),
    )
    .set((
        webhook_deliveries::status.eq("failed"),
        webhook_deliveries::last_error.eq("subscription deleted"),
        webhook_deliveries::next_attempt_at.eq(None::<chrono::NaiveDateTime>),
        webhook_deliveries::updated_at.eq(to_db(now)),
    ))
    .execute(conn)?;
    audit_write(
        conn,
        now,
        me,
        "deleted",
        "webhook_subscription",
        id,
        &json!(s),
    )
}

/// Sends a `webhook.test` event to this subscription only (to check the receiver).
pub fn ping(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
) -> Result<WebhookDelivery, AppError> {
    let s = visible_subscription(conn, me, id)?;
    let event_id = Uuid::new_v4().to_string();
    let body = json!({
        "id": event_id, "type": "webhook.test", "created_at": now,
        "organisation_id": s.organisation_id, "data": {"subscription_id": s.id},
    })
    .to_string();
    let d = insert_delivery(
        conn,
        now,
        &s.id,
        &s.organisation_id,
        &event_id,
        "webhook.test",
        &body,
        None,
    )?;
    get_delivery(conn, &d)
}

// ---- Deliveries -------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryAttempt {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i32>,
    /// Why the attempt failed, if it did: `timeout`, `connection failed`, `destination
    /// not allowed` (the host is or resolves to a non-public address), `HTTP 500`, ...
    /// (a class, never the operating system's error text).
    pub error: Option<String>,
    pub duration_ms: i32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookDelivery {
    pub id: String,
    pub subscription_id: String,
    pub event_id: String,
    #[schema(example = "activity.created")]
    pub event: String,
    /// `pending`, `delivered` or `failed` (gave up after a day, or subscription deleted).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub give_up_at: DateTime<Utc>,
    pub replay_of: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The exact body delivered (what the signature covers).
    pub body: serde_json::Value,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<DeliveryAttempt>,
}

type DeliveryRow = (
    String,
    String,
    String,
    String,
    String,
    i32,
    Option<chrono::NaiveDateTime>,
    Option<i32>,
    Option<String>,
    chrono::NaiveDateTime,
    Option<String>,
    chrono::NaiveDateTime,
    chrono::NaiveDateTime,
    Option<chrono::NaiveDateTime>,
    String,
);

#[allow(clippy::type_complexity)]
const DELIVERY_COLUMNS: (
    webhook_deliveries::id,
    webhook_deliveries::subscription_id,
    webhook_deliveries::event_id,
    webhook_deliveries::event,
    webhook_deliveries::status,
    webhook_deliveries::attempts,
    webhook_deliveries::next_attempt_at,
    webhook_deliveries::last_status_code,
    webhook_deliveries::last_error,
    webhook_deliveries::give_up_at,
    webhook_deliveries::replay_of,
    webhook_deliveries::created_at,
    webhook_deliveries::updated_at,
    webhook_deliveries::delivered_at,
    webhook_deliveries::body,
) = (
    webhook_deliveries::id,
    webhook_deliveries::subscription_id,
    webhook_deliveries::event_id,
    webhook_deliveries::event,
    webhook_deliveries::status,
    webhook_deliveries::attempts,
    webhook_deliveries::next_attempt_at,
    webhook_deliveries::last_status_code,
    webhook_deliveries::last_error,
    webhook_deliveries::give_up_at,
    webhook_deliveries::replay_of,
    webhook_deliveries::created_at,
    webhook_deliveries::updated_at,
    webhook_deliveries::delivered_at,
    webhook_deliveries::body,
);

fn deliveries_from(
    conn: &mut DbConn,
    rows: Vec<DeliveryRow>,
) -> Result<Vec<WebhookDelivery>, AppError> {
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    type AttemptRow = (
        String,
        i32,
        chrono::NaiveDateTime,
        Option<i32>,
        Option<String>,
        i32,
    );
    let attempts: Vec<AttemptRow> = webhook_attempts::table
        .filter(webhook_attempts::delivery_id.eq_any(&ids))
        .order((webhook_attempts::delivery_id, webhook_attempts::attempt))
        .select((
            webhook_attempts::delivery_id,
            webhook_attempts::attempt,
            webhook_attempts::at,
            webhook_attempts::status_code,
            webhook_attempts::error,
            webhook_attempts::duration_ms,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| WebhookDelivery {
            attempt_log: attempts
                .iter()
                .filter(|a| a.0 == r.0)
                .map(|a| DeliveryAttempt {
                    attempt: a.1,
                    at: from_db(a.2),
                    status_code: a.3,
                    error: a.4.clone(),
                    duration_ms: a.5,
                })
                .collect(),
            id: r.0,
            subscription_id: r.1,
            event_id: r.2,
            event: r.3,
            status: r.4,
            attempts: r.5,
            next_attempt_at: r.6.map(from_db),
            last_status_code: r.7,
            last_error: r.8,
            give_up_at: from_db(r.9),
            replay_of: r.10,
            created_at: from_db(r.11),
            updated_at: from_db(r.12),
            delivered_at: r.13.map(from_db),
            body: serde_json::from_str(&r.14).unwrap_or(serde_json::Value::Null),
        })
        .collect())
}

pub fn get_delivery(conn: &mut DbConn, id: &str) -> Result<WebhookDelivery, AppError> {
    let row: DeliveryRow = webhook_deliveries::table
        .find(id)
        .select(DELIVERY_COLUMNS)
        .first(conn)?;
    deliveries_from(conn, vec![row])?
        .pop()
        .ok_or(AppError::NotFound)
}

/// The delivery log of a subscription, newest first (cursor: `created_at|id`).
pub fn list_deliveries(
    conn: &mut DbConn,
    me: &Principal,
    subscription_id: &str,
    status: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<WebhookDelivery>, AppError> {
    visible_subscription(conn, me, subscription_id)?;
    let mut q = webhook_deliveries::table
        .filter(webhook_deliveries::subscription_id.eq(subscription_id.to_string()))
        .select(DELIVERY_COLUMNS)
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(webhook_deliveries::status.eq(s.to_string()));
    }
    if let Some(a) = after {
        let (t, id) = crate::integrations::parse_time_cursor(a)?;
        q = q.filter(
            webhook_deliveries::created_at
                .lt(to_db(t))
                .or(webhook_deliveries::created_at
                    .eq(to_db(t))
                    .and(webhook_deliveries::id.lt(id))),
        );
    }
    let rows: Vec<DeliveryRow> = q
        .order((
            webhook_deliveries::created_at.desc(),
            webhook_deliveries::id.desc(),
        ))
        .limit(limit + 1)
        .load(conn)?;
    deliveries_from(conn, rows)
}

/// A delivery the caller administers (404 otherwise).
pub fn visible_delivery(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
) -> Result<WebhookDelivery, AppError> {
    let d = get_delivery(conn, id)?;
    visible_subscription(conn, me, &d.subscription_id)?;
    Ok(d)
}

/// Delivers the same event again, as a new delivery (same event id and body, a fresh
/// day of retries), whatever became of the original.
pub fn replay(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
) -> Result<WebhookDelivery, AppError> {
    let d = visible_delivery(conn, me, id)?;
    let org: String = webhook_deliveries::table
        .find(id)
        .select(webhook_deliveries::organisation_id)
        .first(conn)?;
    let new = insert_delivery(
        conn,
        now,
        &d.subscription_id,
        &org,
        &d.event_id,
        &d.event,
        &d.body.to_string(),
        Some(&d.id),
    )?;
    audit_write(
        conn,
        now,
        me,
        "replayed",
        "webhook_delivery",
        id,
        &json!({"replay": new}),
    )?;
    get_delivery(conn, &new)
}

// ---- The worker -------------------------------------------------------------------------

/// A delivery claimed by this node.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub lease: String,
    pub url: String,
    pub secret: String,
    pub body: String,
    pub event: String,
    pub event_id: String,
    pub attempt: i32,
}

/// Claims up to `limit` due deliveries for this node. Each claim is a conditional update
/// (`locked_until` empty or past), so two nodes never hold the same delivery.
pub fn claim_due(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Claimed>, AppError> {
    let due: Vec<String> = webhook_deliveries::table
        .filter(webhook_deliveries::status.eq("pending"))
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
                .filter(webhook_deliveries::status.eq("pending"))
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
        let (url, secret, body, event, event_id, attempts): (
            String,
            String,
            String,
            String,
            String,
            i32,
        ) = webhook_deliveries::table
            .inner_join(webhook_subscriptions::table)
            .filter(webhook_deliveries::id.eq(&id))
            .select((
                webhook_subscriptions::url,
                webhook_subscriptions::secret,
                webhook_deliveries::body,
                webhook_deliveries::event,
                webhook_deliveries::event_id,
                webhook_deliveries::attempts,
            ))
            .first(conn)?;
        claimed.push(Claimed {
            id,
            lease,
            url,
            secret,
            body,
            event,
            event_id,
            attempt: attempts + 1,
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
    let result = agent
        .post(&c.url)
        .set("Content-Type", "application/json")
        .set("User-Agent", "eportfolio-webhooks/1")
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
    let (status, next_at, delivered) = if o.ok() {
        ("delivered", None, Some(to_db(now)))
    } else if next > from_db(give_up_at) {
        ("failed", None, None)
    } else {
        ("pending", Some(to_db(next)), None)
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
