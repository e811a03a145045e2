//! The administrators' endpoints of retention, restriction and erasure. Only people
//! (never API clients) who administer the region or organisation concerned; anyone else
//! gets 404, so the existence of a restriction or a policy is not revealed.

use actix_web::http::StatusCode;
use actix_web::{get, post, put, web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::account_erasure::{self, AccountErasure};
use super::erasure::{self, Erasure};
use super::restriction::{self, NewRestriction, Restriction};
use super::retention::{self, RetentionPolicy, RetentionPolicyPut, RetentionRun};
use crate::app::AppState;
use crate::context::Ctx;
use crate::error::AppError;
use crate::http::{Page, PageParams};
use crate::ids::{EnrolmentId, OrganisationId, UserId};

const PROBLEM: &str = "application/problem+json";

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_retention_policy)
        .service(put_retention_policy)
        .service(list_retention_runs)
        .service(create_restriction)
        .service(list_restrictions)
        .service(get_restriction)
        .service(lift_restriction)
        .service(erase_enrolment)
        .service(erase_account);
}

/// A region's retention period
///
/// How long the region keeps a completed or withdrawn enrolment's records after it
/// closed; `keep_months` null means retention is off (the default). Administrators of
/// the region.
#[utoipa::path(
    tag = "privacy",
    params(("id" = String, Path, description = "Region")),
    responses(
        (status = 200, description = "The policy", body = RetentionPolicy),
        (status = 404, description = "Unknown, or not administered by the caller", body = crate::error::Problem, content_type = PROBLEM),
        (status = 422, description = "Not a region", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/organisations/{id}/retention-policy")]
pub async fn get_retention_policy(
    ctx: Ctx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = OrganisationId::from(path.into_inner());
    let p = ctx
        .read(move |c, ctx| {
            retention::require_region_admin(c, &ctx.caller, &id)?;
            retention::get_policy(c, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(p))
}

/// Set a region's retention period
///
/// `keep_months` 1 to 1200, or null to turn retention off. From the next daily run,
/// completed and withdrawn enrolments closed longer ago than that are deleted (see
/// docs/privacy.md). Audited.
#[utoipa::path(
    tag = "privacy",
    params(("id" = String, Path, description = "Region")),
    request_body = RetentionPolicyPut,
    responses(
        (status = 200, description = "The policy now", body = RetentionPolicy),
        (status = 404, description = "Unknown, or not administered by the caller", body = crate::error::Problem, content_type = PROBLEM),
        (status = 422, description = "Not a region, or a period out of range", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[put("/organisations/{id}/retention-policy")]
pub async fn put_retention_policy(
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Json<RetentionPolicyPut>,
) -> Result<HttpResponse, AppError> {
    let id = OrganisationId::from(path.into_inner());
    let body = body.into_inner();
    let p = ctx
        .write(move |c, ctx| {
            retention::require_region_admin(c, &ctx.caller, &id)?;
            retention::put_policy(
                c,
                ctx.now,
                &ctx.caller,
                ctx.client.user_agent.as_deref(),
                &id,
                body,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(p))
}

/// The retention job's report for a region
///
/// One entry per day the job ran for the region, newest first: how many enrolments it
/// deleted and how many records of each kind (counts only).
#[utoipa::path(
    tag = "privacy",
    params(("id" = String, Path, description = "Region"), PageParams),
    responses(
        (status = 200, description = "A page of runs", body = Page<RetentionRun>),
        (status = 404, description = "Unknown, or not administered by the caller", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/organisations/{id}/retention-runs")]
pub async fn list_retention_runs(
    ctx: Ctx,
    path: web::Path<String>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, AppError> {
    let id = OrganisationId::from(path.into_inner());
    let (limit, after) = (page.limit()?, page.after()?);
    let runs = ctx
        .read(move |c, ctx| {
            retention::require_region_admin(c, &ctx.caller, &id)?;
            retention::list_runs(c, &id, after.as_deref(), limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(runs, limit, |r| r.run_on.to_string())))
}

/// Restrict processing of an account or an enrolment
///
/// GDPR Art. 18, on the person's request: the enrolment (or every enrolment where the
/// account is the trainee) becomes read-only (changes answer 409
/// `processing-restricted`) and leaves the enrolment list and the cohort overview for
/// everyone but the trainee. An administrator over the subject's organisation. Audited
/// (the reason is not).
#[utoipa::path(
    tag = "privacy",
    request_body = NewRestriction,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request safe")),
    responses(
        (status = 201, description = "Restricted", body = Restriction),
        (status = 404, description = "Unknown subject, or not administered by the caller", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Already restricted", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/restrictions")]
pub async fn create_restriction(
    ctx: Ctx,
    body: web::Json<NewRestriction>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let r = ctx
        .write(move |c, ctx| {
            restriction::restrict(
                c,
                ctx.now,
                &ctx.caller,
                ctx.client.user_agent.as_deref(),
                body,
            )
        })
        .await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(r))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RestrictionFilter {
    /// true: only those in force; false: only lifted ones.
    pub in_force: Option<bool>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List restrictions
///
/// Those in the organisations the caller administers (restricted enrolments are hidden
/// from the other lists: this is where administrators find them).
#[utoipa::path(
    tag = "privacy",
    params(RestrictionFilter),
    responses((status = 200, description = "A page of restrictions", body = Page<Restriction>)),
    security(("bearer" = []))
)]
#[get("/restrictions")]
pub async fn list_restrictions(
    ctx: Ctx,
    query: web::Query<RestrictionFilter>,
) -> Result<HttpResponse, AppError> {
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let (limit, after) = (page.limit()?, page.after()?);
    let rows = ctx
        .read(move |c, ctx| restriction::list(c, &ctx.caller, q.in_force, after.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |r| r.id.clone())))
}

/// Get a restriction
#[utoipa::path(
    tag = "privacy",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The restriction", body = Restriction),
        (status = 404, description = "Unknown, or not administered by the caller", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/restrictions/{id}")]
pub async fn get_restriction(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let r = ctx
        .read(move |c, ctx| restriction::get(c, &ctx.caller, &id))
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

/// Lift a restriction
///
/// The subject can be changed again and is listed again. Audited.
#[utoipa::path(
    tag = "privacy",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Lifted", body = Restriction),
        (status = 404, description = "Unknown, or not administered by the caller", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Already lifted", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/restrictions/{id}/lift")]
pub async fn lift_restriction(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let r = ctx
        .write(move |c, ctx| {
            restriction::lift(
                c,
                ctx.now,
                &ctx.caller,
                ctx.client.user_agent.as_deref(),
                &id,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

/// Erase an enrolment's records that no signature depends on
///
/// GDPR Art. 17, on the person's request, by an administrator over the enrolment's
/// organisation: learning activities, unsigned assessments, unconfirmed talks, unsigned
/// summary assessments and their attachments go; the answer names what stays and why
/// (signed records, the final assessment and certificates, the plan, the audit log).
/// Audited with counts. Sent again, it finds nothing left to erase.
#[utoipa::path(
    tag = "privacy",
    params(("id" = String, Path, description = "Enrolment"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request safe")),
    responses(
        (status = 200, description = "What was erased and what stays", body = Erasure),
        (status = 404, description = "Unknown, or not administered by the caller", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/erasure")]
pub async fn erase_enrolment(
    ctx: Ctx,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::from(path.into_inner());
    let (erasure, blobs) = ctx.write(move |c, ctx| erasure::erase(c, ctx, &id)).await?;
    remove_blobs(&state, blobs).await;
    Ok(HttpResponse::Ok().json(erasure))
}

/// Erase an account
///
/// GDPR Art. 17, on the person's request, by an administrator over an organisation where
/// the person holds a role or trains; the session must have given a second factor in
/// the last five minutes (`POST /me/step-up`). Everything no signed record depends on
/// goes (sessions, devices, passkeys, authenticator app, recovery codes, e-ID links,
/// invitations, personal identity, roles, and in the person's own enrolments what the
/// enrolment erasure takes); the account's id stays, pseudonymised, without e-mail
/// address or any way to sign in; the name stays only where signed records need it.
/// The answer names what stays and why. The e-mail address can be used for a new
/// account. Audited with counts. Sent again: 409.
#[utoipa::path(
    tag = "privacy",
    params(("id" = String, Path, description = "User"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request safe")),
    responses(
        (status = 200, description = "What was erased and what stays", body = AccountErasure),
        (status = 401, description = "Step-up needed (`step-up-required`)", body = crate::error::Problem, content_type = PROBLEM),
        (status = 404, description = "Unknown, or not administered by the caller", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Already erased, or the caller's own account", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/users/{id}/erasure")]
pub async fn erase_account(
    ctx: Ctx,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = UserId::from(path.into_inner());
    let (erasure, blobs) = ctx
        .write(move |c, ctx| {
            crate::auth::step_up::require_recent(c, ctx)?;
            account_erasure::erase_account(c, ctx, &id)
        })
        .await?;
    remove_blobs(&state, blobs).await;
    Ok(HttpResponse::Ok().json(erasure))
}

/// Removes attachment files whose rows a committed transaction deleted, unless another
/// row names the same content (files are stored once per content hash). A file that
/// cannot be removed now is left to the store's sweep (no row names it any more).
pub async fn remove_blobs(state: &AppState, keys: Vec<String>) {
    if keys.is_empty() {
        return;
    }
    let store = state.blobs.clone();
    let result = crate::db::run(&state.pool, move |conn| {
        crate::storage::remove_released(conn, &*store, &keys);
        Ok(())
    })
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "removing attachment files failed");
    }
}
