//! The registered passkeys: registration (options, then the authenticator's answer),
//! the list under `/me/passkeys`, renaming and revoking. Registration runs behind
//! step-up (the handler's `guarded`), asks for no attestation (`none`: any authenticator
//! the person owns will do) and for user verification.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use webauthn_rs::prelude::{Passkey, PasskeyRegistration, RegisterPublicKeyCredential};

use super::ceremonies::{self, Purpose};
use super::relying_party::relying_party;
use crate::audit;
use crate::auth::credentials::credentials_by_id;
use crate::auth::step_up;
use crate::clock::{from_db, to_db};
use crate::context::{Context, Ctx};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{CeremonyId, PasskeyId, UserId};
use crate::schema::passkeys;

/// Active passkeys one account may have: enough for a phone, a laptop and spares; a
/// bound, so a stolen session cannot fill the table.
pub const MAX_PASSKEYS: i64 = 10;

/// A `passkeys` row.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = passkeys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct PasskeyRow {
    pub id: PasskeyId,
    pub user_id: UserId,
    pub name: String,
    pub credential_id: String,
    pub credential: String,
    pub sign_count: i64,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

impl PasskeyRow {
    /// The webauthn-rs credential (public key and counter).
    pub fn passkey(&self) -> Result<Passkey, AppError> {
        serde_json::from_str(&self.credential)
            .map_err(|e| AppError::unreadable("passkey", &self.id, "credential", e))
    }
}

/// A passkey as its owner sees it (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    pub id: String,
    /// The name its owner gave it ("iPhone", "YubiKey på jobbet").
    pub name: String,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    /// The last sign-in with it; null before the first.
    #[serde(default, with = "crate::clock::millis_opt")]
    pub last_used_at: Option<DateTime<Utc>>,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
}

impl PasskeyView {
    pub fn etag(&self) -> String {
        crate::http::etag(self.version, self.updated_at)
    }
}

impl From<PasskeyRow> for PasskeyView {
    fn from(r: PasskeyRow) -> Self {
        PasskeyView {
            id: r.id.into_inner(),
            name: r.name,
            created_at: from_db(r.created_at),
            last_used_at: r.last_used_at.map(from_db),
            version: r.version,
            updated_at: from_db(r.updated_at),
        }
    }
}

/// What the client hands to `navigator.credentials.create()` / `.get()`, and the id of
/// the ceremony to send back with the answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CeremonyOptions {
    pub ceremony_id: String,
    #[serde(with = "crate::clock::millis")]
    pub expires_at: DateTime<Utc>,
    /// WebAuthn options as JSON (`{"publicKey": {...}}`, binary values base64url).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

pub fn credential_id_text(raw: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

/// The account's passkeys that still sign in, oldest first.
pub fn active_passkeys(conn: &mut DbConn, user_id: &UserId) -> Result<Vec<PasskeyRow>, AppError> {
    Ok(passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .filter(passkeys::revoked_at.is_null())
        .order((passkeys::created_at.asc(), passkeys::id.asc()))
        .select(PasskeyRow::as_select())
        .load(conn)?)
}

pub fn has_passkey(conn: &mut DbConn, user_id: &UserId) -> Result<bool, AppError> {
    let n: i64 = passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .filter(passkeys::revoked_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn list(conn: &mut DbConn, user_id: &UserId) -> Result<Vec<PasskeyView>, AppError> {
    Ok(active_passkeys(conn, user_id)?
        .into_iter()
        .map(PasskeyView::from)
        .collect())
}

fn user_uuid(user_id: &UserId) -> Result<Uuid, AppError> {
    Uuid::parse_str(user_id).map_err(|e| AppError::unreadable("user", user_id, "id", e))
}

/// Registration options for the caller (after step-up). The passkeys the account has
/// are excluded, so one authenticator is not registered twice.
pub fn start_registration(conn: &mut DbConn, ctx: &Ctx) -> Result<CeremonyOptions, AppError> {
    let me = &ctx.caller;
    me.require_person()?;
    let rp = relying_party(&ctx.config)?;
    let existing = active_passkeys(conn, &me.user_id)?;
    if existing.len() as i64 >= MAX_PASSKEYS {
        return Err(AppError::Conflict(format!(
            "an account has at most {MAX_PASSKEYS} passkeys; revoke one first"
        )));
    }
    let exclude = existing
        .iter()
        .map(|r| r.passkey().map(|p| p.cred_id().clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let user = credentials_by_id(conn, &me.user_id)?;
    let (options, state) = rp
        .start_passkey_registration(
            user_uuid(&user.id)?,
            &user.email,
            &user.email,
            Some(exclude),
        )
        .map_err(|e| AppError::internal(format!("passkey registration options: {e}")))?;
    let (ceremony_id, expires_at) =
        ceremonies::open(conn, ctx.now, Purpose::Register, &user.id, None, &state)?;
    Ok(CeremonyOptions {
        ceremony_id,
        expires_at,
        options: serde_json::to_value(options)
            .map_err(|e| AppError::internal(format!("passkey options: {e}")))?,
    })
}

/// The authenticator's answer to a registration: checked against the ceremony (origin,
/// challenge, RP id, user verification), then stored under `name`. The ceremony is used
/// up either way (the outer `Ok` commits it); a refused answer is the inner error.
pub fn finish_registration(
    conn: &mut DbConn,
    ctx: &Ctx,
    ceremony_id: &CeremonyId,
    name: &str,
    answer: &RegisterPublicKeyCredential,
) -> Result<Result<PasskeyView, AppError>, AppError> {
    let (me, now) = (&ctx.caller, ctx.now);
    me.require_person()?;
    let rp = relying_party(&ctx.config)?;
    let ceremony = match ceremonies::take(conn, now, ceremony_id, Purpose::Register) {
        Ok(c) if c.user_id == me.user_id.as_str() => c,
        Ok(_) | Err(_) => {
            return Err(AppError::Unauthenticated(
                "the passkey ceremony has expired or was used up; start again".into(),
            ))
        }
    };
    let state: PasskeyRegistration = ceremony.state()?;
    let passkey = match rp.finish_passkey_registration(answer, &state) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(user = %me.user_id, error = %e, "passkey registration refused");
            return Ok(Err(AppError::validation(
                "credential",
                "the authenticator's answer does not fit this registration (origin, challenge or user verification)",
            )));
        }
    };
    if active_passkeys(conn, &me.user_id)?.len() as i64 >= MAX_PASSKEYS {
        return Ok(Err(AppError::Conflict(format!(
            "an account has at most {MAX_PASSKEYS} passkeys; revoke one first"
        ))));
    }
    let credential_id = credential_id_text(passkey.cred_id().as_ref());
    let taken: i64 = passkeys::table
        .filter(passkeys::credential_id.eq(&credential_id))
        .count()
        .get_result(conn)?;
    if taken > 0 {
        return Ok(Err(AppError::Conflict(
            "this passkey is registered already".into(),
        )));
    }
    let id = PasskeyId::random();
    let credential = serde_json::to_string(&passkey)
        .map_err(|e| AppError::internal(format!("passkey credential: {e}")))?;
    diesel::insert_into(passkeys::table)
        .values((
            passkeys::id.eq(&id),
            passkeys::user_id.eq(me.user_id.as_str()),
            passkeys::name.eq(name.trim()),
            passkeys::credential_id.eq(&credential_id),
            passkeys::credential.eq(credential),
            passkeys::sign_count.eq(0i64),
            passkeys::version.eq(1),
            passkeys::created_at.eq(to_db(now)),
            passkeys::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    audit_passkey(
        conn,
        ctx,
        "created",
        &id,
        serde_json::json!({ "name": name.trim() }),
    )?;
    step_up::notify_change(conn, ctx, &me.user_id, step_up::Change::SecondFactor)?;
    Ok(Ok(PasskeyView::from(get_own(conn, &me.user_id, &id)?)))
}

/// One of the caller's active passkeys, or 404 (someone else's looks the same as none).
fn get_own(conn: &mut DbConn, user_id: &UserId, id: &PasskeyId) -> Result<PasskeyRow, AppError> {
    passkeys::table
        .find(id)
        .filter(passkeys::user_id.eq(user_id))
        .filter(passkeys::revoked_at.is_null())
        .select(PasskeyRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn rename(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &PasskeyId,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    name: &str,
) -> Result<PasskeyView, AppError> {
    let me = &ctx.caller;
    me.require_person()?;
    let row = get_own(conn, &me.user_id, id)?;
    if_match(&PasskeyView::from(row).etag())?;
    diesel::update(passkeys::table.find(id))
        .set((
            passkeys::name.eq(name.trim()),
            passkeys::version.eq(passkeys::version + 1),
            passkeys::updated_at.eq(to_db(ctx.now)),
        ))
        .execute(conn)?;
    Ok(PasskeyView::from(get_own(conn, &me.user_id, id)?))
}

/// Revokes one of the caller's passkeys (after step-up): it never signs in again. The
/// row stays for the audit trail.
pub fn revoke(conn: &mut DbConn, ctx: &Ctx, id: &PasskeyId) -> Result<(), AppError> {
    let me = &ctx.caller;
    let n = diesel::update(
        passkeys::table
            .find(id)
            .filter(passkeys::user_id.eq(me.user_id.as_str()))
            .filter(passkeys::revoked_at.is_null()),
    )
    .set((
        passkeys::revoked_at.eq(to_db(ctx.now)),
        passkeys::version.eq(passkeys::version + 1),
        passkeys::updated_at.eq(to_db(ctx.now)),
    ))
    .execute(conn)?;
    if n == 0 {
        return Err(AppError::NotFound);
    }
    audit_passkey(conn, ctx, "revoked", id, serde_json::json!({}))
}

/// Revokes every passkey of an account (an undone change: the account starts over, and
/// a passkey registered by whoever held it must not sign in).
pub fn revoke_all(conn: &mut DbConn, now: DateTime<Utc>, user_id: &UserId) -> Result<(), AppError> {
    diesel::update(
        passkeys::table
            .filter(passkeys::user_id.eq(user_id))
            .filter(passkeys::revoked_at.is_null()),
    )
    .set((
        passkeys::revoked_at.eq(to_db(now)),
        passkeys::version.eq(passkeys::version + 1),
        passkeys::updated_at.eq(to_db(now)),
    ))
    .execute(conn)?;
    Ok(())
}

/// An audit entry about a passkey, by the context's caller or the passkey's owner.
pub(super) fn audit_passkey<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    action: &str,
    passkey_id: &PasskeyId,
    data: serde_json::Value,
) -> Result<(), AppError> {
    let owner: String = passkeys::table
        .find(passkey_id)
        .select(passkeys::user_id)
        .first(conn)?;
    audit::append(
        conn,
        ctx.now,
        audit::Event {
            actor_id: Some(&owner),
            client: ctx.client.user_agent.as_deref(),
            action,
            entity: "passkey",
            entity_id: passkey_id,
            enrolment_id: None,
            data: &data,
        },
    )
}
