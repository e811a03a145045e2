//! Builds the application: state, routes and the OpenAPI document, in one place for
//! `main` and the tests.
//!
//! Longer than the ~600-line target: routes and the OpenAPI document are registered
//! together here (one place to see every operation), with the housekeeping loop the
//! server starts.

use std::sync::Arc;

use actix_web::middleware::{from_fn, Compress, Condition};
use actix_web::{dev::Server, get, web, App, HttpResponse, HttpServer};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{self, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::{service_config::ServiceConfig, AppExt};
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::crypto::{self, JwtKeys};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::db::{self, DbPool};
use crate::error::{AppError, Problem};
use crate::mail::Mailer;
use crate::{accounts, auth, http, idempotency};

/// Who hears domain events, in this order: the enrolment first (a positive final
/// decision completes it), then webhooks (whose deliveries then go out with the change),
/// then xAPI (a new enrolment turns its learner's kept statements into activities, whose
/// own events follow the enrolment's).
const EVENT_SUBSCRIBERS: &[crate::events::Subscriber] = &[
    crate::events::Subscriber {
        listens: crate::enrolment::completion::listens,
        on_event: crate::enrolment::completion::on_event,
    },
    crate::integrations::WEBHOOK_SUBSCRIBER,
    crate::integrations::XAPI_SUBSCRIBER,
];

/// What every audit entry (and so every audited change) must pass; see
/// `audit::install_guards`.
const AUDIT_GUARDS: &[crate::audit::Guard] = &[crate::privacy::restriction::audit_guard];

/// What every handler can reach.
pub struct AppState {
    pub pool: DbPool,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    /// Used by the outbox worker; handlers never send mail, they queue it in their
    /// transaction (`outbox::enqueue`) and wake `outbox` after the commit.
    pub mailer: Mailer,
    pub outbox: crate::outbox::Outbox,
    pub jwt: JwtKeys,
    /// Verified against when a login names no account, to keep timing uniform.
    pub dummy_hash: String,
    pub blobs: Arc<dyn crate::storage::BlobStore>,
    /// This application's cache of live sessions (see `principal::SessionCache`).
    pub sessions: Arc<crate::principal::SessionCache>,
}

impl AppState {
    /// Opens and migrates the database and prepares keys and mail.
    pub fn new(config: Config, clock: SharedClock) -> Result<AppState, AppError> {
        // Before anything is created: the data directory and every file in it are private.
        crate::storage::restrict_new_files();
        crate::storage::create_private_dir(&config.data_dir)?;
        let mut pool = db::connect_waiting(
            &config.database_url,
            config.db_pool_size,
            config.db_connect_timeout,
        )?;
        let keyring = Arc::new(crate::secrets::Keyring::load(&config.data_dir)?);
        pool.set_keyring(keyring.clone());
        let mut conn = pool.get()?;
        let applied = db::migrate(&mut conn)?;
        if !applied.is_empty() {
            tracing::info!(?applied, "database migrated");
        }
        if let Err(problem) = crate::auth::passkeys::relying_party::check(&config) {
            tracing::warn!(%problem, "passkeys are off: set WEBAUTHN_RP_ID / WEBAUTHN_ORIGINS");
        }
        // Domain events reach webhooks, and the enrolment (completion), through this
        // subscriber list (see `events`).
        crate::events::install(EVENT_SUBSCRIBERS);
        // Every audited change passes the restriction of processing (GDPR Art. 18).
        crate::audit::install_guards(AUDIT_GUARDS);
        let now = clock.now();
        let seeded = db::write_tx(&mut conn, |c| crate::curriculum::catalogue::seed(c, now))?;
        if !seeded.is_empty() {
            tracing::info!(?seeded, "regulation catalogue loaded");
        }
        // A wrong master key stops here; plaintext from before sealing (and anything
        // sealed under a retired key) is sealed under the current key.
        let (key_id, _) = db::write_tx(&mut conn, |c| {
            crate::secrets::check_keys(c, &keyring, now)?;
            let sealed = crate::secrets::seal_everything(c, &keyring)?;
            if sealed > 0 {
                tracing::info!(sealed, "secrets sealed under the current master key");
            }
            crate::dossier::signing::ensure_key(c, &keyring, now)
        })?;
        tracing::debug!(key_id = %key_id, "dossier signing key");
        drop(conn);
        let secret = crypto::load_or_create_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
        let mailer = Mailer::new(&config.mail, &config.mail_from)?;
        let blobs = crate::storage::open_store(&config)?;
        crypto::argon2(config.argon2)?;
        Ok(AppState {
            dummy_hash: crypto::dummy_hash(config.argon2),
            pool,
            config: Arc::new(config),
            clock,
            mailer,
            outbox: crate::outbox::Outbox::default(),
            jwt: JwtKeys::from_secret(&secret),
            blobs,
            sessions: Arc::new(crate::principal::SessionCache::new()),
        })
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "eportfolio",
        description = "Competence portfolio for Swedish doctors in BT and ST training: delmål, \
            learning activities, assessments, supervision and the final assessment.\n\n\
            Errors are `application/problem+json` (RFC 9457); the `type` URI is stable. \
            Creating POSTs accept `Idempotency-Key`: a retry with the same key and body \
            gets the first answer again, except an answer that carried a secret (409 \
            `idempotency-secret-not-replayed`) or one lost with a server that stopped after \
            carrying the request out (409 `idempotency-answer-lost`); a request is never \
            carried out twice. Updates accept `If-Match`.",
        license(name = "MIT", identifier = "MIT")
    ),
    servers((url = "/", description = "This server (the paths carry the `/api/v1` prefix)")),
    modifiers(&Conventions),
    components(schemas(Problem, crate::error::FieldError)),
    tags(
        (name = "auth", description = "Signing in: password, second factor, tokens, links"),
        (name = "me", description = "The signed-in user's own profile and security settings"),
        (name = "organisations", description = "Region -> care provider -> unit"),
        (name = "invitations", description = "How people join"),
        (name = "users", description = "People of my organisations"),
        (name = "curriculum", description = "Regulations, delmål and programme templates"),
        (name = "enrolment", description = "Trainees' training plans: placements, leave, supervisors, time served"),
        (name = "portfolio", description = "Learning activities and attachments"),
        (name = "assessments", description = "Formative assessments: request, sign, decline, correct"),
        (name = "supervision", description = "Supervision sessions and handover talks, confirmed by their participants"),
        (name = "progress", description = "Progress per delmål, pace, the cohort overview and charts"),
        (name = "feedback", description = "The trainee's voice: placement evaluations (aggregated for directors) and group reviews (kollegium)"),
        (name = "final-assessment", description = "Final check-in, final assessment (slutbedömning) and certificates"),
        (name = "dossier", description = "The signed dossier, its verification and the service's public keys"),
        (name = "transfer", description = "A portfolio that moves with the doctor: signed transfer bundles, trusted services, import"),
        (name = "privacy", description = "Retention (gallring), restriction of processing and erasure, handled by administrators"),
        (name = "integrations", description = "Learning platforms: API clients (OAuth 2.0 client credentials), xAPI statements, webhooks, bulk import"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

/// Adds what every operation shares: the bearer scheme and the standard problem
/// responses, so each handler only documents what is particular to it.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, api: &mut openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        // xAPI LRS clients: an API client's id and secret (the xAPI resources only).
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::builder().scheme(HttpAuthScheme::Basic).build()),
        );
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    crate::error::PROBLEM_JSON,
                    openapi::ContentBuilder::new()
                        .schema(Some(openapi::Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for (path, item) in api.paths.paths.iter_mut() {
            // Liveness alone answers without the database.
            let uses_database = path != "/health";
            // Any POST may reuse an Idempotency-Key or a client-chosen id.
            if let Some(op) = item.post.as_mut() {
                op.responses
                    .responses
                    .entry("409".to_string())
                    .or_insert_with(|| problem("Conflict: the id exists, the state does not allow it, or the Idempotency-Key was used with another body").into());
            }
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let secured = op
                    .security
                    .as_ref()
                    .is_some_and(|s| !s.is_empty() && s.iter().any(|r| r != &Default::default()));
                let has_body = op.request_body.is_some();
                let has_path_param = op
                    .parameters
                    .as_ref()
                    .is_some_and(|ps| {
                        ps.iter().any(|p| {
                            matches!(p, openapi::RefOr::T(p) if p.parameter_in == openapi::path::ParameterIn::Path)
                        })
                    });
                let mut add = |code: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(code.to_string())
                        .or_insert_with(|| problem(description).into());
                };
                add(
                    "400",
                    "Malformed request (bad JSON, unknown field, bad query parameter)",
                );
                if secured {
                    add("401", "Missing, invalid or expired access token");
                    add("403", "Your roles do not allow this");
                }
                if has_path_param {
                    add("404", "No such resource, or not yours to see");
                }
                if has_body {
                    add("413", "Request body too large");
                    add("415", "Request body is not application/json");
                    // body_deadline: a body sent too slowly is cut off.
                    add("408", "`request-timeout`: the body did not arrive within `CLIENT_BODY_TIMEOUT_SECONDS`; the connection is closed");
                }
                // Every operation reads or writes the database; while it is away the
                // answer is 503 with Retry-After (declared by spec::declare_headers).
                if uses_database {
                    add(
                        "503",
                        "`unavailable`: the database is away; retry after `Retry-After` seconds",
                    );
                }
                // Bodies and query parameters (limit, cursor, filters) are validated.
                add("422", "Semantically invalid (see `errors`)");
                add("429", "Too many requests; see Retry-After");
                add("500", "A bug: reported with the request id");
            }
        }
    }
}

/// Flattened request and response types become `allOf` schemas; a part that forbids
/// additional properties would forbid the other parts' fields, so no document could
/// match. The server still rejects unknown fields (serde); the spec just stays
/// satisfiable.
fn open_up_all_of(api: &mut openapi::OpenApi) {
    use openapi::{RefOr, Schema};
    let Some(components) = api.components.as_mut() else {
        return;
    };
    let mut referenced = Vec::new();
    for schema in components.schemas.values_mut() {
        if let RefOr::T(Schema::AllOf(all)) = schema {
            for item in all.items.iter_mut() {
                match item {
                    RefOr::Ref(r) => {
                        if let Some(name) = r.ref_location.rsplit('/').next() {
                            referenced.push(name.to_string());
                        }
                    }
                    RefOr::T(Schema::Object(o)) => o.additional_properties = None,
                    _ => {}
                }
            }
        }
    }
    for name in referenced {
        if let Some(RefOr::T(Schema::Object(o))) = components.schemas.get_mut(&name) {
            o.additional_properties = None;
        }
    }
}

/// Every API route, under `/api/v1`.
fn api_v1(cfg: &mut ServiceConfig) {
    use accounts::http as a;
    use auth::http as h;
    cfg.service(h::login)
        .service(h::mfa_verify)
        .service(h::mfa_email_code)
        .service(h::mfa_totp_setup)
        .service(h::mfa_totp_confirm)
        .service(h::passkey_options)
        .service(h::passkey_verify)
        .service(h::refresh)
        .service(h::logout)
        .service(h::password_reset)
        .service(h::password_reset_confirm)
        .service(h::email_verification)
        .service(a::preview_invitation)
        .service(a::accept_invitation)
        .service(a::get_me)
        .service(a::patch_me)
        .service(h::me_totp_setup)
        .service(h::me_totp_confirm)
        .service(h::me_recovery_codes)
        .service(h::me_devices)
        .service(h::me_device_revoke)
        .service(h::me_passkey_options)
        .service(h::me_passkey_register)
        .service(h::me_passkeys)
        .service(h::me_passkey_rename)
        .service(h::me_passkey_revoke)
        .service(h::me_password)
        .service(h::me_email)
        .service(h::me_step_up_email_code)
        .service(h::me_step_up)
        .service(crate::data_export::http::me_export)
        .service(h::undo_change)
        .configure(crate::auth::oidc::http::routes)
        .service(crate::accounts::mail_outbox::list_mail_outbox)
        .service(a::create_organisation)
        .service(a::list_organisations)
        .service(a::get_organisation)
        .service(a::patch_organisation)
        .service(a::create_invitation)
        .service(a::list_invitations)
        .service(a::revoke_invitation)
        .service(a::list_users)
        .service(a::get_user)
        .service(crate::accounts::http_identity::get_personal_identity)
        .service(crate::accounts::http_identity::patch_personal_identity)
        .service(crate::accounts::http_signer::get_signer_profile)
        .service(crate::accounts::http_signer::put_signer_profile)
        .configure(crate::curriculum::routes)
        .configure(crate::enrolment::routes)
        .configure(crate::portfolio::http::routes)
        .configure(crate::progress::routes)
        .configure(crate::final_assessment::routes)
        .configure(crate::feedback::routes)
        .configure(crate::dossier::http::routes)
        .configure(crate::integrations::routes)
        .configure(crate::privacy::http::routes)
        .configure(crate::privacy::http_attachment_types::routes)
        .configure(crate::transfer::routes);
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct HealthStatus {
    status: String,
}

/// Liveness
#[utoipa::path(tag = "health", responses((status = 200, description = "The process is alive", body = HealthStatus)), security(()))]
#[get("/health")]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(HealthStatus {
        status: "ok".into(),
    })
}

/// Readiness: the database answers
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "The database answers", body = HealthStatus),
        (status = 503, description = "Database unreachable", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[get("/ready")]
async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    db::run(&state.pool, db::ping)
        .await
        .map_err(|e| AppError::Unavailable(format!("database: {e}")))?;
    Ok(HttpResponse::Ok().json(HealthStatus {
        status: "ready".into(),
    }))
}

/// The OpenAPI document, as served and as committed in `openapi/openapi.json`: what
/// utoipa generates, finished by `crate::spec` on its JSON form (utoipa's types do not
/// read every schema they write back, so the document stays JSON from there on).
pub fn openapi() -> serde_json::Value {
    serde_json::from_slice(&openapi_bytes()).unwrap_or_default()
}

/// [`openapi`] as served at `/api/v1/openapi.json`: compact JSON, built once per process
/// (the document never changes, and finishing it walks every schema; each test server
/// and each node start would otherwise pay for it again). Kept as shared bytes, not as a
/// `serde_json::Value`: a `Value` of the 1.3 MB document takes several MB, and the
/// server held four of them (the cache, the served copy, and one per worker's Swagger
/// UI), about 35 MB of its resident memory (issue 19).
pub fn openapi_bytes() -> web::Bytes {
    static DOC: std::sync::OnceLock<web::Bytes> = std::sync::OnceLock::new();
    DOC.get_or_init(|| web::Bytes::from(serde_json::to_vec(&build_openapi()).unwrap_or_default()))
        .clone()
}

/// `GET /api/v1/openapi.json`: the document's bytes, shared, not serialised per request.
async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(openapi_bytes())
}

fn build_openapi() -> serde_json::Value {
    let (_, api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .service(health)
        .service(ready)
        .service(utoipa_actix_web::scope("/api/v1").configure(api_v1))
        .split_for_parts();
    let mut api = api;
    Conventions.modify(&mut api);
    open_up_all_of(&mut api);
    let mut doc = serde_json::to_value(&api).unwrap_or_default();
    crate::privacy::guard::document(&mut doc);
    crate::integrations::webhooks::document(&mut doc);
    crate::spec::finish(&mut doc);
    doc
}

pub fn openapi_json() -> String {
    serde_json::to_string_pretty(&openapi()).unwrap_or_default() + "\n"
}

/// Every `HOUSEKEEPING_INTERVAL_MILLIS` (ten minutes by default; not at all when zero),
/// off the request path: sends due daily digests, deletes idempotency keys past their
/// 24 hours and domain events past their retention, runs the regions' daily retention
/// job (`privacy::retention`), sweeps what failed uploads left in
/// the attachment store, and logs a signed checkpoint of the
/// audit chain when it grew (`audit::checkpoint`: the log store keeps it outside the
/// database, where a cut-off chain can be checked against it).
fn spawn_housekeeping(state: web::Data<AppState>) {
    let every = state.config.housekeeping_interval;
    if every.is_zero() {
        return;
    }
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The head last logged by this node, so an idle chain is not logged again.
        let mut logged_head: Option<i64> = None;
        loop {
            tick.tick().await;
            // One instant for the whole round: whatever the round finds done (a key
            // deleted) says the digests were also looked at as of that instant.
            let now = state.clock.now();
            // The day's reminders first, so they go out in this round's digests; in a
            // transaction of their own, so a failure there never holds the digests up.
            match db::write(&state.pool, move |conn| {
                crate::progress::reminders::queue_due(conn, now)
            })
            .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(reminders = n, "digest reminders queued"),
                Err(e) => tracing::error!(error = %e, "digest reminders failed"),
            }
            let keys = state.pool.keyring().cloned();
            let result = db::write(&state.pool, move |conn| {
                let keys = crate::secrets::required(keys.as_ref())?;
                crate::notifications::send_due_digests(conn, keys, now)
            })
            .await;
            match result {
                Ok(0) => {}
                Ok(n) => {
                    state.outbox.wake();
                    tracing::info!(digests = n, "daily digests queued");
                }
                Err(e) => tracing::error!(error = %e, "daily digests failed"),
            }
            match db::write(&state.pool, move |conn| {
                crate::idempotency::prune(conn, now)
            })
            .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(keys = n, "expired idempotency keys deleted"),
                Err(e) => tracing::error!(error = %e, "deleting expired idempotency keys failed"),
            }
            match db::write(&state.pool, move |conn| crate::events::prune(conn, now)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "domain events past their retention deleted"),
                Err(e) => tracing::error!(error = %e, "deleting old domain events failed"),
            }
            // Retention (gallring): once a day per region with a policy, the closed
            // enrolments past their period go; their files after the commit.
            let keys = state.pool.keyring().cloned();
            match db::write(&state.pool, move |conn| {
                crate::privacy::retention::run_due(conn, now, keys.as_deref())
            })
            .await
            {
                Ok(round) => {
                    for run in &round.runs {
                        tracing::info!(
                            region = %run.organisation_id,
                            enrolments = run.enrolments,
                            counts = ?run.counts,
                            "retention run"
                        );
                    }
                    crate::privacy::http::remove_blobs(&state, round.blobs).await;
                }
                Err(e) => tracing::error!(error = %e, "retention run failed"),
            }
            // What failed uploads left in the attachment store (file times: wall clock).
            let blobs = state.blobs.clone();
            match db::run(&state.pool, move |conn| {
                crate::storage::sweep(conn, &*blobs, std::time::SystemTime::now())
            })
            .await
            {
                Ok(s) if s == crate::storage::Swept::default() => {}
                Ok(s) => tracing::info!(
                    parts = s.parts,
                    orphans = s.orphans,
                    "attachment store swept"
                ),
                Err(e) => tracing::error!(error = %e, "sweeping the attachment store failed"),
            }
            let keys = state.pool.keyring().cloned();
            match db::run(&state.pool, move |conn| {
                let keys = crate::secrets::required(keys.as_ref())?;
                let (key_id, key) = crate::dossier::signing::current_key(conn, keys)?;
                crate::audit::checkpoint::make(conn, now, &key_id, &key)
            })
            .await
            {
                Ok(Some(cp)) if logged_head != Some(cp.seq) => {
                    logged_head = Some(cp.seq);
                    match serde_json::to_string(&cp) {
                        Ok(text) => tracing::info!(
                            target: "audit_checkpoint",
                            checkpoint = %text,
                            "audit checkpoint"
                        ),
                        Err(e) => tracing::error!(error = %e, "audit checkpoint not written"),
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "audit checkpoint failed"),
            }
        }
    });
}

/// Binds and starts the server; the returned `Server` finishes in-flight requests on
/// shutdown (SIGINT/SIGTERM or `ServerHandle::stop(true)`). The metrics listener, when
/// `METRICS_BIND` is set, is bound here.
pub fn server(state: AppState, listener: std::net::TcpListener) -> Result<Server, AppError> {
    let metrics = match state.config.metrics_bind {
        Some(bind) if bind == state.config.bind => return Err(same_address()),
        Some(bind) => Some(
            std::net::TcpListener::bind(bind)
                .map_err(|e| AppError::Config(format!("METRICS_BIND: cannot bind {bind}: {e}")))?,
        ),
        None => None,
    };
    server_with_metrics(state, listener, metrics)
}

fn same_address() -> AppError {
    AppError::Config("METRICS_BIND must not be the API's address (EPORTFOLIO_BIND)".into())
}

/// [`server`] with the metrics listener bound by the caller (a test binds port 0 and
/// keeps it, where a port found free and bound again later could be taken between).
pub fn server_with_metrics(
    state: AppState,
    listener: std::net::TcpListener,
    metrics: Option<std::net::TcpListener>,
) -> Result<Server, AppError> {
    let state = web::Data::new(state);
    // Built before the workers start, so that no request waits for it.
    let _ = openapi_bytes();
    let config = state.config.clone();
    let workers = if config.workers == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        config.workers
    };
    // Database work runs on each worker's blocking pool. More threads than pooled
    // connections only wait in the pool (futex storms under load), so each worker gets
    // its share of the connections plus one (for password hashing and file reads).
    let blocking = (config.db_pool_size as usize).div_ceil(workers).max(1) + 1;
    if let Some(metrics) = metrics {
        let bind = metrics
            .local_addr()
            .map_err(|e| AppError::Config(format!("METRICS_BIND: no address: {e}")))?;
        let backend = if config.is_postgres() {
            "postgresql"
        } else {
            "sqlite"
        };
        let handle = crate::telemetry::metrics::install(backend)?;
        crate::telemetry::endpoint::spawn(state.clone(), handle, metrics)?;
        tracing::info!(%bind, "metrics at http://{bind}/metrics");
    }
    spawn_housekeeping(state.clone());
    crate::integrations::spawn_worker(state.clone());
    crate::outbox::spawn_worker(state.clone());
    let header_timeout = config.client_header_timeout;
    let server = HttpServer::new(move || {
        // The spec route comes before the `/api/v1` scope, which would otherwise answer 404.
        let (app, _) = App::new()
            .service(web::resource("/api/v1/openapi.json").route(web::get().to(openapi_document)))
            .service(
                // The UI reads the document from the route above (given as its only
                // URL, Swagger UI registers no copy of its own).
                SwaggerUi::new("/docs/{_:.*}").config(
                    utoipa_swagger_ui::Config::new(["/api/v1/openapi.json"])
                        // Swagger UI would otherwise send the spec's address to a
                        // validator at swagger.io from every browser that opens the docs.
                        .validator_url("none"),
                ),
            )
            .into_utoipa_app()
            .app_data(state.clone())
            .app_data(http::json_config(config.max_json_body))
            .app_data(http::query_config())
            .app_data(http::path_config())
            .service(health)
            .service(ready)
            .service(
                utoipa_actix_web::scope("/api/v1")
                    .wrap(from_fn(
                        idempotency::middleware::<auth::principal::Principal>,
                    ))
                    // Outside the idempotency middleware, which reuses what it finds.
                    .wrap(from_fn(auth::principal::authenticate_clients))
                    // xAPI clients' HTTP Basic credentials, and the xAPI version header.
                    .wrap(from_fn(crate::integrations::xapi::http::lrs_middleware))
                    .configure(api_v1),
            )
            .split_for_parts();
        app.service(web::redirect("/docs", "/docs/"))
            .default_service(web::to(http::not_found))
            // Inside the request log, so preflights are logged like any request.
            .wrap(Condition::new(
                !config.cors_allowed_origins.is_empty(),
                crate::cors::middleware(&config.cors_allowed_origins),
            ))
            // Inside the request log, which then logs the 408 of a body sent too slowly.
            .wrap(from_fn(crate::body_deadline::middleware))
            .wrap(from_fn(http::request_id_and_log))
            // Small answers are not worth a gzip encoder (see `compression`).
            .wrap(from_fn(crate::compression::mark_small))
            // Outside the request-id middleware, which sees bodies before compression.
            .wrap(Compress::default())
            .wrap(from_fn(crate::compression::unmark))
    })
    // Without TCP_NODELAY a response sent in pieces (a compressed body is sent chunk by
    // chunk) waits for the client's delayed ACK: 40 ms added to every gzip answer.
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    // Headers sent too slowly (a byte a second) are cut off with 408.
    .client_request_timeout(header_timeout)
    .workers(workers)
    .worker_max_blocking_threads(blocking)
    .shutdown_timeout(30)
    .listen(listener)
    .map_err(|e| AppError::Config(format!("cannot listen: {e}")))?
    .run();
    Ok(server)
}
