//! A WebAuthn ceremony's state, kept in the database (every API node shares it): the
//! challenge and what may answer it, as webauthn-rs serialises it. A ceremony is answered
//! once: the answer takes the row with one conditional DELETE, so of two parallel
//! answers (or a replayed one) only the first finds it. It lives `CEREMONY_TTL`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::clock::{dur, to_db};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{CeremonyId, UserId};
use crate::schema::passkey_ceremonies;

/// How long a ceremony may be answered: the time to touch the phone's sensor.
pub const CEREMONY_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// What a ceremony is for; an answer is accepted only by the call of that purpose.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Purpose {
    /// Registering a new passkey (after step-up).
    Register,
    /// The second-factor step of a login (after the password).
    SecondFactor,
    /// A passwordless sign-in.
    SignIn,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::SecondFactor => "second_factor",
            Purpose::SignIn => "sign_in",
        }
    }

    pub fn from_code(value: &str) -> Option<Purpose> {
        match value {
            "register" => Some(Purpose::Register),
            "second_factor" => Some(Purpose::SecondFactor),
            "sign_in" => Some(Purpose::SignIn),
            _ => None,
        }
    }
}

crate::text_enum_sql!(Purpose);

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = passkey_ceremonies, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Ceremony {
    pub id: CeremonyId,
    pub purpose: Purpose,
    pub user_id: UserId,
    pub challenge_id: Option<String>,
    pub state: String,
}

impl Ceremony {
    /// The webauthn-rs state; a row that does not read back is corrupt, never guessed at.
    pub fn state<T: DeserializeOwned>(&self) -> Result<T, AppError> {
        serde_json::from_str(&self.state)
            .map_err(|e| AppError::unreadable("passkey ceremony", &self.id, "state", e))
    }
}

/// Stores a new ceremony; returns its id (what the client sends back with the answer)
/// and when it expires. Expired ceremonies are swept here, so the table stays small.
pub fn open<S: Serialize>(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    purpose: Purpose,
    user_id: &UserId,
    challenge_id: Option<&str>,
    state: &S,
) -> Result<(String, DateTime<Utc>), AppError> {
    diesel::delete(passkey_ceremonies::table.filter(passkey_ceremonies::expires_at.le(to_db(now))))
        .execute(conn)?;
    let id = Uuid::new_v4().to_string();
    let expires_at = now + dur(CEREMONY_TTL);
    let state = serde_json::to_string(state)
        .map_err(|e| AppError::internal(format!("passkey ceremony state: {e}")))?;
    diesel::insert_into(passkey_ceremonies::table)
        .values((
            passkey_ceremonies::id.eq(&id),
            passkey_ceremonies::purpose.eq(purpose),
            passkey_ceremonies::user_id.eq(user_id),
            passkey_ceremonies::challenge_id.eq(challenge_id),
            passkey_ceremonies::state.eq(state),
            passkey_ceremonies::created_at.eq(to_db(now)),
            passkey_ceremonies::expires_at.eq(to_db(expires_at)),
        ))
        .execute(conn)?;
    Ok((id, expires_at))
}

/// Takes the open ceremony `id` of `purpose`: deleted in one conditional statement, so it
/// is answered at most once. Unknown, expired, used, or of another purpose: 401 (start
/// again).
pub fn take(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    id: &str,
    purpose: Purpose,
) -> Result<Ceremony, AppError> {
    let target = passkey_ceremonies::table
        .filter(passkey_ceremonies::id.eq(id))
        .filter(passkey_ceremonies::purpose.eq(purpose))
        .filter(passkey_ceremonies::expires_at.gt(to_db(now)));
    let row: Option<Ceremony> = crate::on_backend!(conn, |c| diesel::delete(target)
        .returning(Ceremony::as_returning())
        .get_result(c)
        .optional())?;
    row.ok_or_else(|| {
        AppError::Unauthenticated(
            "the passkey ceremony has expired or was used up; start again".into(),
        )
    })
}
