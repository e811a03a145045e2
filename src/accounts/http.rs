//! The HTTP handlers of accounts: organisations, invitations, users and `/me`.

use actix_web::http::StatusCode;
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::accounts::invitations::{self, Accepted, Invitation, InvitationPreview, NewInvitation};
use crate::accounts::organisations::{self, OrgKind, Organisation};
use crate::accounts::users::{self, User};
use crate::app::AppState;
use crate::auth::crypto;
use crate::auth::principal::Role;
use crate::auth::service as auth;
use crate::context::{Context, Ctx};
use crate::error::AppError;
use crate::http::{check_if_match, if_match, with_etag, Page, PageParams};
use crate::telemetry::security::{Event, SecurityEvent};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganisation {
    /// Optional client-chosen id (UUID).
    pub id: Option<uuid::Uuid>,
    pub kind: OrgKind,
    pub name: String,
    /// Required for care providers (a region) and units (a care provider or unit).
    pub parent_id: Option<String>,
}

/// Create an organisation
///
/// Administrators add care providers and units below their organisation; a new region
/// needs an administrator of an existing region.
#[utoipa::path(
    tag = "organisations",
    request_body = NewOrganisation,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    responses(
        (status = 201, description = "Created", body = Organisation),
        (status = 409, description = "The id is taken", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/organisations")]
pub async fn create_organisation(
    ctx: Ctx,
    body: web::Json<NewOrganisation>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let org = ctx
        .write(move |c, ctx| {
            organisations::create_org(
                c,
                ctx.now,
                Some(&ctx.caller),
                body.id.map(|u| u.to_string()),
                body.kind,
                &body.name,
                body.parent_id.as_deref(),
            )
        })
        .await?;
    Ok(with_etag(StatusCode::CREATED, org.etag(), &org))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrganisationFilter {
    pub kind: Option<OrgKind>,
    pub parent_id: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List organisations
///
/// Any signed-in user may browse the tree (to pick a unit, say).
#[utoipa::path(
    tag = "organisations",
    params(OrganisationFilter),
    responses((status = 200, description = "A page of organisations", body = Page<Organisation>)),
    security(("bearer" = []))
)]
#[get("/organisations")]
pub async fn list_organisations(
    ctx: Ctx,
    query: web::Query<OrganisationFilter>,
) -> Result<HttpResponse, AppError> {
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let (limit, after) = (page.limit()?, page.after()?);
    let rows = ctx
        .read(move |c, _ctx| {
            organisations::list_orgs(c, q.kind, q.parent_id.as_deref(), after.as_deref(), limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |o| o.id.clone())))
}

/// Get an organisation
#[utoipa::path(
    tag = "organisations",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The organisation", body = Organisation, headers(("ETag" = String))),
        (status = 404, description = "Unknown", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/organisations/{id}")]
pub async fn get_organisation(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let org = ctx
        .read(move |c, _ctx| organisations::get_org(c, &id))
        .await?;
    Ok(with_etag(StatusCode::OK, org.etag(), &org))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganisationPatch {
    pub name: String,
}

/// Rename an organisation
///
/// Send `If-Match` with the ETag you read to avoid overwriting someone else's change.
#[utoipa::path(
    tag = "organisations",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of the version you edited")),
    request_body = OrganisationPatch,
    responses(
        (status = 200, description = "Updated", body = Organisation),
        (status = 404, description = "Unknown", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/organisations/{id}")]
pub async fn patch_organisation(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<OrganisationPatch>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let expected = if_match(&req);
    let org = ctx
        .write(move |c, ctx| {
            organisations::rename_org(
                c,
                ctx,
                &id,
                |tag| check_if_match(expected.as_deref(), tag),
                &body.name,
            )
        })
        .await?;
    Ok(with_etag(StatusCode::OK, org.etag(), &org))
}

// ---- Invitations ----------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitationRequest {
    pub id: Option<uuid::Uuid>,
    /// Any domain: external supervisors use their own address.
    pub email: String,
    pub role: Role,
    pub organisation_id: String,
    pub display_name: Option<String>,
}

/// Invite someone
///
/// Mails a single-use link, valid 7 days by default. Administrators invite any role in
/// their organisation; directors of studies invite trainees, supervisors and external
/// assessors. Inviting the same address, role and organisation again replaces the
/// earlier link.
#[utoipa::path(
    tag = "invitations",
    request_body = NewInvitationRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    responses(
        (status = 201, description = "Invitation sent", body = Invitation),
        (status = 409, description = "The person already has that role there", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/invitations")]
pub async fn create_invitation(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: web::Json<NewInvitationRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let invitation = crate::notifications::send(&ctx, &state.outbox, move |c, ctx| {
        let (invitation, mail, _) = invitations::invite(
            c,
            &ctx.config,
            ctx.now,
            Some(&ctx.caller),
            NewInvitation {
                id: body.id.map(|u| u.to_string()),
                email: body.email,
                role: body.role,
                organisation_id: body.organisation_id,
                display_name: body.display_name,
            },
        )?;
        Ok((invitation, vec![mail]))
    })
    .await?;
    Ok(HttpResponse::Created().json(invitation))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InvitationFilter {
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List invitations of my organisations
#[utoipa::path(
    tag = "invitations",
    params(InvitationFilter),
    responses((status = 200, description = "A page of invitations", body = Page<Invitation>)),
    security(("bearer" = []))
)]
#[get("/invitations")]
pub async fn list_invitations(
    ctx: Ctx,
    query: web::Query<InvitationFilter>,
) -> Result<HttpResponse, AppError> {
    let q = query.into_inner();
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(invitations::InvitationStatus::from_code(s).ok_or_else(|| {
            AppError::validation("status", "must be pending, accepted, revoked or expired")
        })?),
    };
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let (limit, after) = (page.limit()?, page.after()?);
    let rows = ctx
        .read(move |c, ctx| invitations::list_invitations(c, ctx, status, after.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |i| i.id.clone())))
}

/// Revoke a pending invitation
#[utoipa::path(
    tag = "invitations",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Revoked: the link no longer works"),
        (status = 404, description = "Unknown", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already accepted, revoked or expired", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[delete("/invitations/{id}")]
pub async fn revoke_invitation(
    ctx: Ctx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    ctx.write(move |c, ctx| invitations::revoke_invitation(c, ctx, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Look at an invitation before accepting it
#[utoipa::path(
    tag = "auth",
    params(("token" = String, Path, description = "The token from the invitation link")),
    responses(
        (status = 200, description = "What the invitation is for", body = InvitationPreview),
        (status = 422, description = "Link unknown, used or expired", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[get("/auth/invitations/{token}")]
pub async fn preview_invitation(
    ctx: Context<()>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    let p = ctx
        .read(move |c, ctx| invitations::pending_invitation(c, ctx.now, &token))
        .await?;
    Ok(HttpResponse::Ok().json(p.preview))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    /// For a new account: the password to set (at least 12 characters). For an existing
    /// account: its current password.
    pub password: String,
    pub display_name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AcceptedResponse {
    /// `mfa_enrolment_required` (new account: enrol a second factor with `mfa_token`)
    /// or `role_granted` (existing account).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default, with = "crate::clock::millis_opt")]
    pub mfa_token_expires_at: Option<DateTime<Utc>>,
}

/// Accept an invitation
///
/// A new account sets its password here and continues with second-factor enrolment
/// (`/auth/mfa/totp/setup` or `/auth/mfa/email-code`). An existing account confirms
/// with its password and gets the role.
#[utoipa::path(
    tag = "auth",
    params(("token" = String, Path, description = "The token from the invitation link")),
    request_body = AcceptInvitation,
    responses(
        (status = 200, description = "Accepted", body = AcceptedResponse),
        (status = 401, description = "Wrong password of the existing account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Link unknown, used or expired, or password too weak", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts for this account or from this address (as for login)", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/invitations/{token}/accept")]
pub async fn accept_invitation(
    ctx: Context<()>,
    path: web::Path<String>,
    body: web::Json<AcceptInvitation>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    let body = body.into_inner();
    let pending = {
        let token = token.clone();
        // Accepting for an existing account checks its password: the attempt is counted
        // per address and per account before the check, exactly like a login.
        ctx.write(move |c, ctx| {
            let pending = invitations::pending_invitation(c, ctx.now, &token)?;
            invitations::count_accept_attempt(c, ctx, &pending)?;
            Ok(pending)
        })
        .await?
    };
    let params = ctx.config.argon2;
    let password = body.password;
    let (role, existing_user) = (pending.preview.role, pending.existing_user.clone());
    let new_hash = match pending.existing_hash {
        Some(stored) => {
            let ok = web::block(move || crypto::verify_password(&password, &stored)).await?;
            if !ok {
                return Err(AppError::InvalidCredentials);
            }
            None
        }
        None => {
            auth::check_password("password", &password)?;
            Some(web::block(move || crypto::hash_password(params, &password)).await??)
        }
    };
    let accepted = ctx
        .write(move |c, ctx| {
            invitations::accept_invitation(
                c,
                ctx,
                &token,
                body.display_name.as_deref(),
                new_hash.as_deref(),
            )
        })
        .await?;
    // The role is held from now on (a new account's once it has enrolled a second factor).
    let mut event = SecurityEvent::new(Event::RoleGranted)
        .kind(role.as_str())
        .client(&ctx.client);
    if let Some(user) = &existing_user {
        event = event.subject(user);
    }
    event.emit();
    let body = match accepted {
        Accepted::NewAccount {
            mfa_token,
            expires_at,
        } => AcceptedResponse {
            status: "mfa_enrolment_required".into(),
            mfa_token: Some(mfa_token),
            mfa_token_expires_at: Some(expires_at),
        },
        Accepted::RoleGranted => AcceptedResponse {
            status: "role_granted".into(),
            mfa_token: None,
            mfa_token_expires_at: None,
        },
    };
    // An enrolment challenge: never stored for an idempotent replay.
    Ok(crate::idempotency::secret(HttpResponse::Ok().json(body)))
}

// ---- Users and /me --------------------------------------------------------------------

/// My profile, roles and second factors
#[utoipa::path(
    tag = "me",
    responses((status = 200, description = "The signed-in user", body = User, headers(("ETag" = String)))),
    security(("bearer" = []))
)]
#[get("/me")]
pub async fn get_me(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let user = ctx
        .read(move |c, ctx| users::get_user(c, &ctx.caller.user_id))
        .await?;
    Ok(with_etag(StatusCode::OK, user.etag(), &user))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MePatch {
    pub display_name: Option<String>,
    /// `immediate` (default) or `daily_digest`: one mail a day with every notification.
    pub notification_mode: Option<String>,
}

/// Update my profile
#[utoipa::path(
    tag = "me",
    params(("If-Match" = Option<String>, Header, description = "ETag of the version you edited")),
    request_body = MePatch,
    responses(
        (status = 200, description = "Updated", body = User),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/me")]
pub async fn patch_me(
    ctx: Ctx,
    req: HttpRequest,
    body: web::Json<MePatch>,
) -> Result<HttpResponse, AppError> {
    let expected = if_match(&req);
    let user = ctx
        .write(move |c, ctx| {
            users::update_me(
                c,
                ctx,
                |tag| check_if_match(expected.as_deref(), tag),
                body.display_name.as_deref(),
                body.notification_mode.as_deref(),
            )
        })
        .await?;
    Ok(with_etag(StatusCode::OK, user.etag(), &user))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub organisation_id: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List users of my organisations
///
/// For administrators and directors of studies: everyone holding a role in their part of
/// the organisation tree.
#[utoipa::path(
    tag = "users",
    params(UserFilter),
    responses((status = 200, description = "A page of users", body = Page<User>)),
    security(("bearer" = []))
)]
#[get("/users")]
pub async fn list_users(ctx: Ctx, query: web::Query<UserFilter>) -> Result<HttpResponse, AppError> {
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let (limit, after) = (page.limit()?, page.after()?);
    let rows = ctx
        .read(move |c, ctx| {
            users::list_users(
                c,
                &ctx.caller,
                q.role,
                q.organisation_id.as_deref(),
                after.as_deref(),
                limit,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |u| u.id.clone())))
}

/// Get a user
#[utoipa::path(
    tag = "users",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/users/{id}")]
pub async fn get_user(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let user = ctx
        .read(move |c, ctx| users::visible_user(c, &ctx.caller, &id))
        .await?;
    Ok(with_etag(StatusCode::OK, user.etag(), &user))
}
