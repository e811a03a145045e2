//! Sign-in challenges (`mfa_token`): issued after the password, answered with a second
//! factor (login) or by setting one up (enrolment), each answer counted.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::auth::credentials::{credentials_by_id, Credentials};
use crate::auth::crypto::{random_token, sha256_hex};
use crate::auth::ratelimit::{self, mfa_key};
use crate::auth::totp::has_totp;
use crate::clock::{dur, to_db};
use crate::context::Context;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{ChallengeId, UserId};
use crate::schema::mfa_challenges;

/// Answers one challenge takes before it must start over (counted before each answer is
/// checked; a right one uses the challenge up).
pub const CHALLENGE_MAX_ATTEMPTS: i32 = 5;

/// What a sign-in challenge is for. Each place that opens a challenge names the purpose
/// it serves: a login challenge only verifies a second factor the account already has,
/// an enrolment challenge only sets up the first one. (A login challenge accepted by the
/// enrolment calls let whoever knew the password replace the authenticator.)
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
pub enum ChallengePurpose {
    /// After the password, for an account with a second factor: verify it.
    Login,
    /// For an account without a second factor (new, or never enrolled): set one up.
    Enrol,
}

impl ChallengePurpose {
    /// The stored value (`mfa_challenges.purpose`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengePurpose::Login => "login",
            ChallengePurpose::Enrol => "enrol",
        }
    }

    /// A stored code; `None` for one this build does not know.
    pub fn from_code(value: &str) -> Option<ChallengePurpose> {
        Self::from_stored(value).ok()
    }

    /// Reads a stored value; anything else is a corrupt row, not a purpose to guess at.
    pub fn from_stored(value: &str) -> Result<ChallengePurpose, AppError> {
        match value {
            "login" => Ok(ChallengePurpose::Login),
            "enrol" => Ok(ChallengePurpose::Enrol),
            other => Err(AppError::internal(format!(
                "mfa challenge with unknown purpose {other:?}"
            ))),
        }
    }
}

pub fn create_challenge<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    user_id: &UserId,
    purpose: ChallengePurpose,
) -> Result<(String, DateTime<Utc>), AppError> {
    let (cfg, now) = (&*ctx.config, ctx.now);
    let token = random_token();
    let expires_at = now + dur(cfg.mfa_challenge_ttl);
    diesel::insert_into(mfa_challenges::table)
        .values((
            mfa_challenges::id.eq(Uuid::new_v4().to_string()),
            mfa_challenges::token_hash.eq(sha256_hex(&token)),
            mfa_challenges::user_id.eq(user_id),
            mfa_challenges::purpose.eq(purpose),
            mfa_challenges::attempts.eq(0),
            mfa_challenges::email_code_attempts.eq(0),
            mfa_challenges::created_at.eq(to_db(now)),
            mfa_challenges::expires_at.eq(to_db(expires_at)),
        ))
        .execute(conn)?;
    Ok((token, expires_at))
}

crate::text_enum_sql!(ChallengePurpose);

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = mfa_challenges, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Challenge {
    pub id: ChallengeId,
    pub user_id: UserId,
    pub purpose: ChallengePurpose,
}

pub(crate) fn challenge_gone() -> AppError {
    AppError::Unauthenticated("the sign-in step has expired or was used up; log in again".into())
}

/// Does the account have a confirmed second factor (an active authenticator or
/// e-mailed codes)?
pub(crate) fn has_second_factor(conn: &mut DbConn, user: &Credentials) -> Result<bool, AppError> {
    Ok(user.email_mfa_enabled != 0 || has_totp(conn, &user.id)?)
}

/// Refuses a challenge used for what it was not issued for (403). An enrolment
/// challenge also stops working once the account has a second factor: from then on only
/// a login challenge, answered with that factor, signs in.
pub(crate) fn require_purpose(
    conn: &mut DbConn,
    challenge: &Challenge,
    user: &Credentials,
    purpose: ChallengePurpose,
) -> Result<(), AppError> {
    if challenge.purpose != purpose {
        return Err(AppError::Forbidden(match challenge.purpose {
            ChallengePurpose::Login => {
                "this sign-in step verifies the second factor the account already has; \
                 it cannot set up a new one"
                    .into()
            }
            ChallengePurpose::Enrol => {
                "this sign-in step sets up a second factor; answer it with the enrolment calls"
                    .into()
            }
        }));
    }
    if purpose == ChallengePurpose::Enrol && has_second_factor(conn, user)? {
        return Err(AppError::Forbidden(
            "the account already has a second factor; log in and verify it".into(),
        ));
    }
    Ok(())
}

/// The open challenge for `mfa_token`, or 401: the client must log in again.
pub(crate) fn find_open_challenge(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    mfa_token: &str,
) -> Result<Challenge, AppError> {
    let found: Option<Challenge> = mfa_challenges::table
        .filter(mfa_challenges::token_hash.eq(sha256_hex(mfa_token)))
        .filter(mfa_challenges::consumed_at.is_null())
        .filter(mfa_challenges::expires_at.gt(to_db(now)))
        .filter(mfa_challenges::attempts.lt(CHALLENGE_MAX_ATTEMPTS))
        .select(Challenge::as_select())
        .first(conn)
        .optional()?;
    found.ok_or_else(challenge_gone)
}

/// An open challenge for `mfa_token` issued for `purpose`: 401 when there is none (the
/// client must log in again), 403 when it was issued for something else. Not an answer:
/// nothing is counted.
pub fn open_challenge(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    mfa_token: &str,
    purpose: ChallengePurpose,
) -> Result<Challenge, AppError> {
    let challenge = find_open_challenge(conn, now, mfa_token)?;
    let user = credentials_by_id(conn, &challenge.user_id)?;
    require_purpose(conn, &challenge, &user, purpose)?;
    Ok(challenge)
}

/// Takes one of the challenge's answer attempts before the answer is checked, in one
/// conditional statement: of N parallel answers at most the attempts left get through;
/// the rest find it used up (401). On PostgreSQL the row stays locked until this
/// transaction ends, so parallel answers to one challenge run one after the other.
pub(crate) fn take_attempt(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    mfa_token: &str,
) -> Result<Challenge, AppError> {
    let target = mfa_challenges::table
        .filter(mfa_challenges::token_hash.eq(sha256_hex(mfa_token)))
        .filter(mfa_challenges::consumed_at.is_null())
        .filter(mfa_challenges::expires_at.gt(to_db(now)))
        .filter(mfa_challenges::attempts.lt(CHALLENGE_MAX_ATTEMPTS));
    let row: Option<Challenge> = crate::on_backend!(conn, |c| diesel::update(target)
        .set(mfa_challenges::attempts.eq(mfa_challenges::attempts + 1))
        .returning(Challenge::as_returning())
        .get_result(c)
        .optional())?;
    row.ok_or_else(challenge_gone)
}

/// Marks the challenge used, if nobody else did first: a challenge signs in once.
pub(crate) fn consume_challenge(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    id: &str,
) -> Result<(), AppError> {
    let taken = diesel::update(
        mfa_challenges::table
            .find(id)
            .filter(mfa_challenges::consumed_at.is_null()),
    )
    .set(mfa_challenges::consumed_at.eq(to_db(now)))
    .execute(conn)?;
    if taken != 1 {
        return Err(challenge_gone());
    }
    Ok(())
}

/// A challenge being answered: one of its attempts taken, the purpose checked, and the
/// attempt counted against the account's second-factor limit (429 once used up).
pub(crate) fn challenge_to_answer<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    mfa_token: &str,
    purpose: impl FnOnce(&Challenge, &Credentials) -> ChallengePurpose,
) -> Result<(Challenge, Credentials, ratelimit::Counted), AppError> {
    let (cfg, now) = (&*ctx.config, ctx.now);
    let challenge = take_attempt(conn, now, mfa_token)?;
    let user = credentials_by_id(conn, &challenge.user_id)?;
    let wanted = purpose(&challenge, &user);
    require_purpose(conn, &challenge, &user, wanted)?;
    let counted = ratelimit::hit(
        conn,
        &mfa_key(&challenge.user_id),
        cfg.rate_limits.mfa_per_account,
        now,
    )?;
    Ok((challenge, user, counted))
}
