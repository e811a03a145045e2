//! The request context: what a request's domain logic may know about its request.
//!
//! A handler takes one `Context` (`Ctx` for a signed-in caller, `Context<()>` for an
//! anonymous one, `Context<Option<Principal>>` where both are welcome) instead of
//! reading the clock, the client address and the configuration itself, and passes it
//! to the domain functions it calls with a connection:
//!
//! ```ignore
//! #[post("/enrolments/{id}/activities")]
//! pub async fn create_activity(ctx: Ctx, path: web::Path<EnrolmentId>, body: web::Json<NewActivity>)
//!     -> Result<HttpResponse, AppError> {
//!     let id = path.into_inner();
//!     let a = ctx.write(move |c, ctx| activities::create(c, ctx, &id, body.into_inner())).await?;
//!     Ok(with_etag(StatusCode::CREATED, a.etag(), &a))
//! }
//! ```
//!
//! The time is read once per request, so every row a request writes carries the same
//! instant. [`Context::write`] reserves the request's `Idempotency-Key` in the same
//! transaction as its effect (see `idempotency`): nothing rides on task- or
//! thread-locals. What a write changed in sessions, users or roles is recorded on the
//! context ([`Context::auth_changes`], by the only functions that write them); once the
//! transaction has ended, the write empties this application's session cache for it.
//!
//! Cloning a context is a reference-count increment: the closures given to `read` and
//! `write` run on other threads and get their own handle.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use chrono::{DateTime, NaiveDate, Utc};

use crate::app::AppState;
use crate::config::Config;
use crate::db::{self, DbConn, DbPool};
use crate::error::AppError;
use crate::http::{client_info, ClientInfo};
use crate::idempotency::RequestKey;
use crate::principal::{AuthChanges, SessionCache};

/// The request's context; `C` is the caller (see the module comment).
pub struct Context<C = crate::principal::Principal>(Arc<Parts<C>>);

/// A context for a signed-in person or API client.
pub type Ctx = Context<crate::principal::Principal>;

/// What a context holds; reached through `Deref` (`ctx.now`, `ctx.caller`).
pub struct Parts<C> {
    /// The request's time, read once from the injected clock.
    pub now: DateTime<Utc>,
    /// Who is calling, as the handler asked for it.
    pub caller: C,
    /// Where the request came from (behind trusted proxies, the forwarded address).
    pub client: ClientInfo,
    pub config: Arc<Config>,
    pool: DbPool,
    /// The request's `Idempotency-Key`, until a write takes it.
    key: Option<RequestKey>,
    /// What this context's writes changed in sessions, users and roles.
    auth_changes: AuthChanges,
}

impl<C> Clone for Context<C> {
    fn clone(&self) -> Self {
        Context(self.0.clone())
    }
}

impl<C> Deref for Context<C> {
    type Target = Parts<C>;
    fn deref(&self) -> &Parts<C> {
        &self.0
    }
}

impl<C> Context<C> {
    /// The master keys of secrets at rest (the pool's): what seals and opens TOTP
    /// secrets, webhook secrets, queued mail and personal numbers.
    pub fn keyring(&self) -> Result<&crate::secrets::Keyring, AppError> {
        crate::secrets::required(self.pool.keyring())
    }

    /// The master keys if the pool has them: for work that needs them only sometimes
    /// (an erasure redacting version-1 audit entries) and fails itself when it does.
    pub fn keyring_if_loaded(&self) -> Option<&crate::secrets::Keyring> {
        self.pool.keyring().map(|k| &**k)
    }

    /// Where the writers of sessions, role grants and users' e-mail and status record
    /// what they changed (see the module comment).
    pub fn auth_changes(&self) -> &AuthChanges {
        &self.auth_changes
    }
}

impl<C: Send + Sync + 'static> Context<C> {
    /// A context outside any HTTP request (a worker, a command, a test of domain code).
    pub fn new(
        now: DateTime<Utc>,
        caller: C,
        client: ClientInfo,
        config: Arc<Config>,
        pool: DbPool,
        sessions: Arc<SessionCache>,
    ) -> Self {
        Context(Arc::new(Parts {
            now,
            caller,
            client,
            config,
            pool,
            key: None,
            auth_changes: AuthChanges::new(sessions),
        }))
    }

    /// The request's day: the Swedish calendar day (Europe/Stockholm) of `now`, so a
    /// request at 00:30 Swedish time belongs to that day, not to the UTC day before.
    pub fn today(&self) -> NaiveDate {
        crate::clock::day_of(self.now)
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Reads on a pooled connection, off the async runtime.
    pub async fn read<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn, &Self) -> Result<T, AppError> + Send + 'static,
    {
        let ctx = self.clone();
        match database_span("read") {
            Some(span) => {
                let inner = span.clone();
                let work = db::run(&self.pool, move |c| inner.in_scope(|| f(c, &ctx)));
                tracing::Instrument::instrument(work, span).await
            }
            None => db::run(&self.pool, move |c| f(c, &ctx)).await,
        }
    }

    /// The request's effect, in one write transaction that also reserves the request's
    /// `Idempotency-Key` (the first write of a request takes it).
    pub async fn write<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn, &Self) -> Result<T, AppError> + Send + 'static,
    {
        let reservation = self.key.as_ref().and_then(|k| k.take(true));
        let ctx = self.clone();
        let result = match database_span("write") {
            // Entered where the transaction runs (the SQLite writer thread, say), so that
            // what it queues (a webhook delivery) knows the request's trace.
            Some(span) => {
                let inner = span.clone();
                let work = db::write_reserving(&self.pool, reservation, move |c| {
                    inner.in_scope(|| f(c, &ctx))
                });
                tracing::Instrument::instrument(work, span).await
            }
            None => db::write_reserving(&self.pool, reservation, move |c| f(c, &ctx)).await,
        };
        self.transaction_ended();
        result
    }

    /// A write that is not the request's effect (counting an attempt before a password
    /// is checked): the `Idempotency-Key` stays for the write that makes the change.
    pub async fn write_aside<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn, &Self) -> Result<T, AppError> + Send + 'static,
    {
        let ctx = self.clone();
        let result = match database_span("write") {
            Some(span) => {
                let inner = span.clone();
                let work = db::write(&self.pool, move |c| inner.in_scope(|| f(c, &ctx)));
                tracing::Instrument::instrument(work, span).await
            }
            None => db::write(&self.pool, move |c| f(c, &ctx)).await,
        };
        self.transaction_ended();
        result
    }

    /// For handlers with effects before their first write (a stored upload): reserve the
    /// `Idempotency-Key` first, as a write of its own. An error means: do nothing.
    pub async fn settle_idempotency_key(&self) -> Result<(), AppError> {
        crate::idempotency::settle(&self.pool, self.key.as_ref()).await
    }

    /// The write transaction has ended, committed or rolled back: act on what it changed.
    fn transaction_ended(&self) {
        let changes = self.auth_changes.settle();
        if !changes.is_empty() {
            tracing::debug!(?changes, "session cache emptied");
        }
    }
}

impl<C> FromRequest for Context<C>
where
    C: FromRequest + Send + Sync + 'static,
    C::Error: Into<actix_web::Error>,
{
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let key = req.extensions().get::<RequestKey>().cloned();
        let caller = C::from_request(req, payload);
        let client = state.as_ref().map(|s| client_info(req, &s.config));
        Box::pin(async move {
            let caller = caller.await.map_err(Into::into)?;
            let (Some(state), Some(client)) = (state, client) else {
                return Err(AppError::internal("the application state is not registered").into());
            };
            Ok(Context(Arc::new(Parts {
                now: state.clock.now(),
                caller,
                client,
                config: state.config.clone(),
                pool: state.pool.clone(),
                key,
                auth_changes: AuthChanges::new(state.sessions.clone()),
            })))
        })
    }
}

/// With traces on, the span of one transaction of a request (see `telemetry::traces`).
fn database_span(kind: &'static str) -> Option<tracing::Span> {
    crate::telemetry::traces::enabled().then(|| crate::telemetry::traces::database_span(kind))
}
