//! Invitations (inbjudningar): how people join, with a role at an organisation.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::accounts::organisations::{create_org, get_org, OrgKind};
use crate::accounts::users::UserStatus;
use crate::auth::crypto::{random_token, sha256_hex};
use crate::auth::principal::{org_subtrees, Principal, Role};
use crate::auth::service::{self as auth, normalize_email, valid_email};
use crate::auth::validate::validate_name;
use crate::clock::{dur, from_db, to_db};
use crate::config::Config;
use crate::context::{Context, Ctx};
use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::ids::{OrganisationId, UserId};
use crate::mail::Mail;
use crate::schema::{invitations, organisations, user_roles, users};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invitation {
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub organisation_id: String,
    /// `pending`, `accepted`, `revoked` or `expired`.
    #[schema(value_type = String)]
    pub status: InvitationStatus,
    pub invited_by: Option<String>,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub expires_at: DateTime<Utc>,
    #[serde(default, with = "crate::clock::millis_opt")]
    pub accepted_at: Option<DateTime<Utc>>,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
}

/// Where an invitation stands. Not stored: derived from its row (`accepted_at`,
/// `revoked_at`, `expires_at`) at the time of the request, so the API, the list's filter
/// and revoking all name the same four values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    /// Neither accepted nor revoked, and not expired: the link works.
    Pending,
    Accepted,
    Revoked,
    /// Neither accepted nor revoked before it expired.
    Expired,
}

impl InvitationStatus {
    /// Every status, in the order the API's description lists them.
    pub const ALL: [InvitationStatus; 4] = [
        InvitationStatus::Pending,
        InvitationStatus::Accepted,
        InvitationStatus::Revoked,
        InvitationStatus::Expired,
    ];

    /// The API's name of the status (`const`, so the spec's closed sets can name it).
    pub const fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Revoked => "revoked",
            InvitationStatus::Expired => "expired",
        }
    }

    /// The status `code` names (a list filter); `None` for anything else.
    pub fn from_code(code: &str) -> Option<InvitationStatus> {
        InvitationStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == code)
    }
}

// The API shows the status by its name: a plain string in the spec, as before.
impl Serialize for InvitationStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What an invitation's views read of its row (never the token hash).
#[derive(Queryable, Selectable)]
#[diesel(table_name = invitations, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct InvitationRow {
    id: String,
    email: String,
    display_name: Option<String>,
    role: Role,
    organisation_id: OrganisationId,
    invited_by: Option<UserId>,
    created_at: chrono::NaiveDateTime,
    expires_at: chrono::NaiveDateTime,
    accepted_at: Option<chrono::NaiveDateTime>,
    revoked_at: Option<chrono::NaiveDateTime>,
}

fn invitation_from(r: InvitationRow, now: DateTime<Utc>) -> Invitation {
    let expires_at = from_db(r.expires_at);
    let status = if r.accepted_at.is_some() {
        InvitationStatus::Accepted
    } else if r.revoked_at.is_some() {
        InvitationStatus::Revoked
    } else if expires_at <= now {
        InvitationStatus::Expired
    } else {
        InvitationStatus::Pending
    };
    // An invitation changes at most once (accepted or revoked after creation).
    let changed = r.accepted_at.or(r.revoked_at);
    Invitation {
        id: r.id,
        email: r.email,
        display_name: r.display_name,
        role: r.role,
        organisation_id: r.organisation_id.into_inner(),
        status,
        invited_by: r.invited_by.map(UserId::into_inner),
        created_at: from_db(r.created_at),
        expires_at,
        accepted_at: r.accepted_at.map(from_db),
        version: if changed.is_some() { 2 } else { 1 },
        updated_at: from_db(changed.unwrap_or(r.created_at)),
    }
}

pub fn get_invitation(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    id: &str,
) -> Result<Invitation, AppError> {
    let row: InvitationRow = invitations::table
        .find(id)
        .select(InvitationRow::as_select())
        .first(conn)?;
    Ok(invitation_from(row, now))
}

pub struct NewInvitation {
    pub id: Option<String>,
    pub email: String,
    pub role: Role,
    pub organisation_id: String,
    pub display_name: Option<String>,
}

/// Invites an address with a role at an organisation and returns the mail to send. An
/// earlier pending invitation of the same address, role and organisation is replaced,
/// so "send it again" is simply inviting again.
pub fn invite(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    me: Option<&Principal>,
    new: NewInvitation,
) -> Result<(Invitation, Mail, String), AppError> {
    let email = normalize_email(&new.email);
    let mut errors = Vec::new();
    if !valid_email(&email) {
        errors.push(FieldError::new("email", "is not an e-mail address"));
    }
    let display_name = match new
        .display_name
        .as_deref()
        .map(|n| validate_name("display_name", n))
    {
        Some(Err(AppError::Validation(mut e))) => {
            errors.append(&mut e);
            None
        }
        Some(Ok(n)) => Some(n),
        _ => None,
    };
    let org = match get_org(conn, &new.organisation_id) {
        Ok(o) => Some(o),
        Err(_) => {
            errors.push(FieldError::new("organisation_id", "no such organisation"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let org = org.ok_or(AppError::NotFound)?;
    if let Some(me) = me {
        Principal::require(me.can_invite(conn, new.role, &OrganisationId::from(&org.id))?)?;
    }
    let existing_user: Option<String> = users::table
        .filter(users::email.eq(&email))
        .select(users::id)
        .first(conn)
        .optional()?;
    if let Some(uid) = &existing_user {
        let has: i64 = user_roles::table
            .filter(user_roles::user_id.eq(uid))
            .filter(user_roles::role.eq(new.role.as_str()))
            .filter(user_roles::organisation_id.eq(&org.id))
            .count()
            .get_result(conn)?;
        if has > 0 {
            return Err(AppError::Conflict(
                "this person already has that role at that organisation".into(),
            ));
        }
    }
    diesel::update(
        invitations::table
            .filter(invitations::email.eq(&email))
            .filter(invitations::role.eq(new.role.as_str()))
            .filter(invitations::organisation_id.eq(&org.id))
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_null()),
    )
    .set(invitations::revoked_at.eq(to_db(now)))
    .execute(conn)?;
    let token = random_token();
    let id = new.id.unwrap_or_else(|| Uuid::new_v4().to_string());
    let expires_at = now + dur(cfg.invitation_ttl);
    diesel::insert_into(invitations::table)
        .values((
            invitations::id.eq(&id),
            invitations::email.eq(&email),
            invitations::display_name.eq(&display_name),
            invitations::role.eq(new.role.as_str()),
            invitations::organisation_id.eq(&org.id),
            invitations::token_hash.eq(sha256_hex(&token)),
            invitations::invited_by.eq(me.map(|m| m.user_id.clone())),
            invitations::created_at.eq(to_db(now)),
            invitations::expires_at.eq(to_db(expires_at)),
        ))
        .execute(conn)?;
    let link = format!(
        "{}/invitations/accept?token={token}",
        cfg.public_url.trim_end_matches('/')
    );
    let days = cfg.invitation_ttl.as_secs() / 86_400;
    let mail = Mail {
        to: email.clone(),
        subject: format!(
            "Inbjudan till eportfolio / Invitation to eportfolio ({})",
            org.name
        ),
        body: format!(
            "Du har bjudits in till eportfolio som {role} vid {org}.\n\
             You have been invited to eportfolio as {role} at {org}.\n\n\
             {link}\n\n\
             Länken gäller i {days} dagar och kan användas en gång. Du väljer lösenord och \
             en andra faktor (app eller kod via e-post).\n\
             The link is valid for {days} days and can be used once. You will choose a \
             password and a second factor (app or e-mailed code).\n",
            role = new.role.as_str(),
            org = org.name,
        ),
    };
    Ok((get_invitation(conn, now, &id)?, mail, link))
}

pub fn list_invitations(
    conn: &mut DbConn,
    ctx: &Ctx,
    status: Option<InvitationStatus>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Invitation>, AppError> {
    let me = &ctx.caller;
    let now = ctx.now;
    let roots = me.orgs_with(&[Role::Administrator, Role::DirectorOfStudies]);
    if roots.is_empty() {
        return Err(AppError::Forbidden(
            "invitations are managed by administrators and directors of studies".into(),
        ));
    }
    let orgs = org_subtrees(conn, &roots)?;
    let mut q = invitations::table
        .filter(invitations::organisation_id.eq_any(orgs))
        .select(InvitationRow::as_select())
        .into_boxed();
    let at = to_db(now);
    // The same derivation as `invitation_from`, as filters.
    q = match status {
        None => q,
        Some(InvitationStatus::Accepted) => q.filter(invitations::accepted_at.is_not_null()),
        Some(InvitationStatus::Revoked) => q
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_not_null()),
        Some(InvitationStatus::Expired) => q
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_null())
            .filter(invitations::expires_at.le(at)),
        Some(InvitationStatus::Pending) => q
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_null())
            .filter(invitations::expires_at.gt(at)),
    };
    if let Some(a) = after {
        q = q.filter(invitations::id.gt(a.to_string()));
    }
    let rows: Vec<InvitationRow> = q.order(invitations::id).limit(limit + 1).load(conn)?;
    Ok(rows.into_iter().map(|r| invitation_from(r, now)).collect())
}

pub fn revoke_invitation(conn: &mut DbConn, ctx: &Ctx, id: &str) -> Result<(), AppError> {
    let me = &ctx.caller;
    let now = ctx.now;
    let inv = get_invitation(conn, now, id)?;
    if !me.can_invite(conn, inv.role, &OrganisationId::from(&inv.organisation_id))? {
        return Err(AppError::NotFound);
    }
    if inv.status != InvitationStatus::Pending {
        return Err(AppError::Conflict(format!(
            "the invitation is already {}",
            inv.status.as_str()
        )));
    }
    diesel::update(invitations::table.find(id))
        .set(invitations::revoked_at.eq(to_db(now)))
        .execute(conn)?;
    Ok(())
}

/// What the invitee sees before accepting.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvitationPreview {
    pub email: String,
    pub role: Role,
    pub organisation_id: String,
    pub organisation_name: String,
    #[serde(with = "crate::clock::millis")]
    pub expires_at: DateTime<Utc>,
    /// True when the address already has an account: accept with its password.
    pub account_exists: bool,
    pub display_name: Option<String>,
}

pub struct PendingInvitation {
    pub id: String,
    pub preview: InvitationPreview,
    /// Password hash of the existing account, to check before granting a new role.
    pub existing_hash: Option<String>,
    pub existing_user: Option<UserId>,
}

pub fn pending_invitation(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    token: &str,
) -> Result<PendingInvitation, AppError> {
    let row: Option<InvitationRow> = invitations::table
        .filter(invitations::token_hash.eq(sha256_hex(token)))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(to_db(now)))
        .select(InvitationRow::as_select())
        .first(conn)
        .optional()?;
    let inv = invitation_from(row.ok_or(AppError::InvalidToken)?, now);
    let org = get_org(conn, &inv.organisation_id)?;
    let existing = crate::auth::credentials::credentials_by_email(conn, &inv.email)?;
    let (existing_user, existing_hash) = match existing {
        Some(user) => (Some(user.id), user.password_hash),
        None => (None, None),
    };
    Ok(PendingInvitation {
        id: inv.id,
        preview: InvitationPreview {
            email: inv.email,
            role: inv.role,
            organisation_id: org.id,
            organisation_name: org.name,
            expires_at: inv.expires_at,
            // An imported placeholder (no password yet) is set up like a new account.
            account_exists: existing_hash.is_some(),
            display_name: inv.display_name,
        },
        existing_hash,
        existing_user,
    })
}

/// Counts an acceptance for an existing account (whose password the request must give)
/// against the login limits, per client address and per account, before the password
/// is checked. A new account sets its password and checks none: nothing to count.
pub fn count_accept_attempt<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    pending: &PendingInvitation,
) -> Result<(), AppError> {
    let (cfg, now, client) = (&*ctx.config, ctx.now, &ctx.client);
    if pending.existing_hash.is_none() {
        return Ok(());
    }
    crate::auth::ratelimit::hit(
        conn,
        &auth::login_address_key(&client.address),
        cfg.rate_limits.login_per_address,
        now,
    )?;
    crate::auth::ratelimit::hit(
        conn,
        &auth::login_account_key(&pending.preview.email),
        cfg.rate_limits.login_per_account,
        now,
    )
    .map(|_| ())
}

pub enum Accepted {
    /// A new account: it must enrol a second factor before it can do anything.
    NewAccount {
        mfa_token: String,
        expires_at: DateTime<Utc>,
    },
    /// An existing account got the role.
    RoleGranted,
}

/// Accepts an invitation. For a new account `new_password_hash` is its password (hashed
/// by the caller); for an existing one the caller has already checked its password.
pub fn accept_invitation<C: Send + Sync + 'static>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    token: &str,
    display_name: Option<&str>,
    new_password_hash: Option<&str>,
) -> Result<Accepted, AppError> {
    let (_cfg, now) = (&*ctx.config, ctx.now);
    let pending = pending_invitation(conn, now, token)?;
    let p = &pending.preview;
    // Take the invitation in one conditional statement before anything else: of the same
    // invitation accepted twice at once, the second waits on the row (PostgreSQL) and
    // then finds it accepted, so there is one account and one role.
    let taken = diesel::update(
        invitations::table
            .find(&pending.id)
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_null())
            .filter(invitations::expires_at.gt(to_db(now))),
    )
    .set(invitations::accepted_at.eq(to_db(now)))
    .execute(conn)?;
    if taken != 1 {
        return Err(AppError::InvalidToken);
    }
    let (user_id, new_account) = match &pending.existing_user {
        // An account placeholder from a bulk import (no password yet): this sets it up.
        Some(id) if pending.existing_hash.is_none() => {
            let hash = new_password_hash
                .ok_or_else(|| AppError::validation("password", "is required for a new account"))?;
            diesel::update(users::table.find(id))
                .set((
                    users::password_hash.eq(hash),
                    users::email_verified_at.eq(to_db(now)),
                    users::updated_at.eq(to_db(now)),
                ))
                .execute(conn)?;
            if let Some(name) = display_name {
                let name = validate_name("display_name", name)?;
                diesel::update(users::table.find(id))
                    .set(users::display_name.eq(name))
                    .execute(conn)?;
            }
            (id.clone(), true)
        }
        Some(id) => (id.clone(), false),
        None => {
            let hash = new_password_hash
                .ok_or_else(|| AppError::validation("password", "is required for a new account"))?;
            let name = display_name
                .map(str::to_string)
                .or_else(|| p.display_name.clone())
                .unwrap_or_else(|| p.email.split('@').next().unwrap_or("").to_string());
            let name = validate_name("display_name", &name)?;
            let id = UserId::random();
            diesel::insert_into(users::table)
                .values((
                    users::id.eq(&id),
                    users::email.eq(&p.email),
                    users::display_name.eq(name),
                    users::password_hash.eq(hash),
                    // The link arrived at this address: it is verified.
                    users::email_verified_at.eq(to_db(now)),
                    users::email_mfa_enabled.eq(0),
                    users::status.eq(UserStatus::Active),
                    users::version.eq(1),
                    users::created_at.eq(to_db(now)),
                    users::updated_at.eq(to_db(now)),
                ))
                .execute(conn)?;
            (id, true)
        }
    };
    // A bulk import grants the role before the invitation is accepted.
    let has_role: i64 = user_roles::table
        .filter(user_roles::user_id.eq(&user_id))
        .filter(user_roles::role.eq(p.role.as_str()))
        .filter(user_roles::organisation_id.eq(&p.organisation_id))
        .count()
        .get_result(conn)?;
    if has_role == 0 {
        crate::auth::roles::grant(
            conn,
            ctx.auth_changes(),
            now,
            crate::auth::roles::Grant {
                user_id: &user_id,
                role: p.role,
                organisation_id: &p.organisation_id,
                granted_by: None,
            },
        )?;
    }
    diesel::update(invitations::table.find(&pending.id))
        .set(invitations::user_id.eq(&user_id))
        .execute(conn)?;
    // The counted attempt stays counted, as after a right password at login: clearing
    // the account's counter would let guesses sent alongside this one through.
    if new_account {
        let (mfa_token, expires_at) = crate::auth::challenges::create_challenge(
            conn,
            ctx,
            &user_id,
            auth::ChallengePurpose::Enrol,
        )?;
        Ok(Accepted::NewAccount {
            mfa_token,
            expires_at,
        })
    } else {
        Ok(Accepted::RoleGranted)
    }
}

/// First administrator: finds or creates the region and invites the address as its
/// administrator. Used by `eportfolio admin create`.
pub fn bootstrap_admin(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    email: &str,
    region: &str,
) -> Result<(Invitation, Mail, String), AppError> {
    let existing: Option<String> = organisations::table
        .filter(organisations::kind.eq("region"))
        .filter(organisations::name.eq(region.trim()))
        .select(organisations::id)
        .first(conn)
        .optional()?;
    let org_id = match existing {
        Some(id) => id,
        None => create_org(conn, now, None, None, OrgKind::Region, region, None)?.id,
    };
    invite(
        conn,
        cfg,
        now,
        None,
        NewInvitation {
            id: None,
            email: email.into(),
            role: Role::Administrator,
            organisation_id: org_id,
            display_name: None,
        },
    )
}

#[cfg(test)]
#[path = "invitations_tests.rs"]
mod tests;
