//! Login, second factors, sessions and link tokens. Functions take a connection and the
//! current time; handlers run them inside `db::write` and send the mail they return.
//!
//! Functions whose failure must still be recorded (a wrong code counts against the
//! attempt limit) return `Result<Result<T, AppError>, AppError>`: the outer error rolls
//! the transaction back, the inner one is committed and then reported.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use totp_rs::{Algorithm, Builder, Secret, Totp};
use uuid::Uuid;

use crate::auth::crypto::{self, normalize_code, random_token, sha256_hex};
use crate::auth::ratelimit;
use crate::clock::{dur, to_db};
use crate::config::Config;
use crate::db::DbConn;
use crate::error::AppError;
use crate::mail::Mail;
use crate::schema::{
    mail_tokens, mfa_challenges, recovery_codes, refresh_tokens, remembered_devices, sessions,
    totp_credentials, users,
};

pub const RECOVERY_CODE_COUNT: usize = 10;
/// Answers one challenge takes before it must start over (counted before each answer is
/// checked; a right one uses the challenge up).
pub const CHALLENGE_MAX_ATTEMPTS: i32 = 5;
const TOTP_ISSUER: &str = "eportfolio";

pub use crate::http::ClientInfo;

pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plausible e-mail address of any domain (external supervisors use their own).
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.parse::<lettre::Address>().is_ok()
}

/// ASVS 2.1.1: at least 12 characters.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Length over composition rules (NIST SP 800-63B, ASVS 2.1.1): at least
/// [`MIN_PASSWORD_CHARS`] characters, at most 256.
pub fn check_password(field: &str, password: &str) -> Result<(), AppError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(AppError::validation(
            field,
            &format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if n > 256 {
        return Err(AppError::validation(
            field,
            "must be at most 256 characters",
        ));
    }
    Ok(())
}

/// A user's sign-in data.
#[derive(Queryable, Debug, Clone)]
pub struct Credentials {
    pub id: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub status: String,
    pub email_mfa_enabled: i32,
}

pub fn credentials_by_email(
    conn: &mut DbConn,
    email: &str,
) -> Result<Option<Credentials>, AppError> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select((
            users::id,
            users::email,
            users::password_hash,
            users::status,
            users::email_mfa_enabled,
        ))
        .first(conn)
        .optional()?)
}

pub fn credentials_by_id(conn: &mut DbConn, id: &str) -> Result<Credentials, AppError> {
    Ok(users::table
        .find(id)
        .select((
            users::id,
            users::email,
            users::password_hash,
            users::status,
            users::email_mfa_enabled,
        ))
        .first(conn)?)
}

pub fn login_address_key(address: &Option<String>) -> String {
    format!("login:addr:{}", address.as_deref().unwrap_or("unknown"))
}

pub fn login_account_key(email: &str) -> String {
    format!("login:acct:{email}")
}

/// The counter of mails (codes, links) sent to one account, whatever asked for them.
pub fn mail_account_key(user_id: &str) -> String {
    format!("mail:acct:{user_id}")
}

/// Step 1 of a login, before the password is checked: count the attempt against the
/// address and the account (429 once either is used up), and fetch what the password is
/// checked against. Unknown addresses are counted too, so limits never reveal which
/// accounts exist. A wrong password needs no second step: it was counted here already.
pub fn login_start(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    email: &str,
    client: &ClientInfo,
) -> Result<LoginAttempt, AppError> {
    ratelimit::hit(
        conn,
        &login_address_key(&client.address),
        cfg.rate_limits.login_per_address,
        now,
    )?;
    let counted = ratelimit::hit(
        conn,
        &login_account_key(email),
        cfg.rate_limits.login_per_account,
        now,
    )?;
    Ok(LoginAttempt {
        user: credentials_by_email(conn, email)?,
        counted,
    })
}

/// A counted login attempt: the account, if any, and the count to take back if the
/// password turns out right.
pub struct LoginAttempt {
    pub user: Option<Credentials>,
    pub counted: ratelimit::Counted,
}

/// Which second factors a user can answer a login challenge with.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MfaMethod {
    /// A code from an authenticator app (RFC 6238).
    Totp,
    /// A 6-digit code sent by e-mail on request.
    EmailCode,
    /// One of the ten single-use recovery codes.
    RecoveryCode,
}

pub struct IssuedSession {
    pub user_id: String,
    pub session_id: String,
    pub refresh_token: String,
}

pub enum LoginOutcome {
    Authenticated(IssuedSession),
    MfaRequired {
        mfa_token: String,
        methods: Vec<MfaMethod>,
        expires_at: DateTime<Utc>,
    },
    EnrolmentRequired {
        mfa_token: String,
        expires_at: DateTime<Utc>,
    },
}

fn has_totp(conn: &mut DbConn, user_id: &str) -> Result<bool, AppError> {
    let secret: Option<Option<String>> = totp_credentials::table
        .find(user_id)
        .select(totp_credentials::secret)
        .first(conn)
        .optional()?;
    Ok(matches!(secret, Some(Some(_))))
}

pub fn methods_of(conn: &mut DbConn, user: &Credentials) -> Result<Vec<MfaMethod>, AppError> {
    let mut methods = Vec::new();
    if has_totp(conn, &user.id)? {
        methods.push(MfaMethod::Totp);
    }
    if user.email_mfa_enabled != 0 {
        methods.push(MfaMethod::EmailCode);
    }
    if !methods.is_empty() {
        methods.push(MfaMethod::RecoveryCode);
    }
    Ok(methods)
}

/// Step 2 of a login, after the password matched.
pub fn login_succeeded(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    user: &Credentials,
    counted: &ratelimit::Counted,
    device_token: Option<&str>,
    client: &ClientInfo,
) -> Result<LoginOutcome, AppError> {
    ratelimit::undo(conn, counted)?;
    let methods = methods_of(conn, user)?;
    if methods.is_empty() {
        let (mfa_token, expires_at) =
            create_challenge(conn, cfg, now, &user.id, ChallengePurpose::Enrol)?;
        return Ok(LoginOutcome::EnrolmentRequired {
            mfa_token,
            expires_at,
        });
    }
    if let Some(token) = device_token {
        if remembered_device_valid(conn, now, &user.id, token)? {
            let session = create_session(conn, cfg, now, &user.id, "remembered_device", client)?;
            return Ok(LoginOutcome::Authenticated(session));
        }
    }
    let (mfa_token, expires_at) =
        create_challenge(conn, cfg, now, &user.id, ChallengePurpose::Login)?;
    Ok(LoginOutcome::MfaRequired {
        mfa_token,
        methods,
        expires_at,
    })
}

fn remembered_device_valid(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    token: &str,
) -> Result<bool, AppError> {
    let n = diesel::update(
        remembered_devices::table
            .filter(remembered_devices::token_hash.eq(sha256_hex(token)))
            .filter(remembered_devices::user_id.eq(user_id))
            .filter(remembered_devices::revoked_at.is_null())
            .filter(remembered_devices::expires_at.gt(to_db(now))),
    )
    .set(remembered_devices::last_used_at.eq(to_db(now)))
    .execute(conn)?;
    Ok(n == 1)
}

/// What a sign-in challenge is for. Each place that opens a challenge names the purpose
/// it serves: a login challenge only verifies a second factor the account already has,
/// an enrolment challenge only sets up the first one. (A login challenge accepted by the
/// enrolment calls let whoever knew the password replace the authenticator.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

pub fn create_challenge(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    user_id: &str,
    purpose: ChallengePurpose,
) -> Result<(String, DateTime<Utc>), AppError> {
    let token = random_token();
    let expires_at = now + dur(cfg.mfa_challenge_ttl);
    diesel::insert_into(mfa_challenges::table)
        .values((
            mfa_challenges::id.eq(Uuid::new_v4().to_string()),
            mfa_challenges::token_hash.eq(sha256_hex(&token)),
            mfa_challenges::user_id.eq(user_id),
            mfa_challenges::purpose.eq(purpose.as_str()),
            mfa_challenges::attempts.eq(0),
            mfa_challenges::email_code_attempts.eq(0),
            mfa_challenges::created_at.eq(to_db(now)),
            mfa_challenges::expires_at.eq(to_db(expires_at)),
        ))
        .execute(conn)?;
    Ok((token, expires_at))
}

#[derive(Debug)]
pub struct Challenge {
    pub id: String,
    pub user_id: String,
    pub purpose: ChallengePurpose,
}

type ChallengeRow = (String, String, String);

fn challenge_of(row: ChallengeRow) -> Result<Challenge, AppError> {
    let (id, user_id, purpose) = row;
    Ok(Challenge {
        id,
        user_id,
        purpose: ChallengePurpose::from_stored(&purpose)?,
    })
}

fn challenge_gone() -> AppError {
    AppError::Unauthenticated("the sign-in step has expired or was used up; log in again".into())
}

/// Does the account have a confirmed second factor (an active authenticator or
/// e-mailed codes)?
fn has_second_factor(conn: &mut DbConn, user: &Credentials) -> Result<bool, AppError> {
    Ok(user.email_mfa_enabled != 0 || has_totp(conn, &user.id)?)
}

/// Refuses a challenge used for what it was not issued for (403). An enrolment
/// challenge also stops working once the account has a second factor: from then on only
/// a login challenge, answered with that factor, signs in.
fn require_purpose(
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
fn find_open_challenge(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    mfa_token: &str,
) -> Result<Challenge, AppError> {
    let found: Option<ChallengeRow> = mfa_challenges::table
        .filter(mfa_challenges::token_hash.eq(sha256_hex(mfa_token)))
        .filter(mfa_challenges::consumed_at.is_null())
        .filter(mfa_challenges::expires_at.gt(to_db(now)))
        .filter(mfa_challenges::attempts.lt(CHALLENGE_MAX_ATTEMPTS))
        .select((
            mfa_challenges::id,
            mfa_challenges::user_id,
            mfa_challenges::purpose,
        ))
        .first(conn)
        .optional()?;
    challenge_of(found.ok_or_else(challenge_gone)?)
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
fn take_attempt(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    mfa_token: &str,
) -> Result<Challenge, AppError> {
    let update = diesel::update(
        mfa_challenges::table
            .filter(mfa_challenges::token_hash.eq(sha256_hex(mfa_token)))
            .filter(mfa_challenges::consumed_at.is_null())
            .filter(mfa_challenges::expires_at.gt(to_db(now)))
            .filter(mfa_challenges::attempts.lt(CHALLENGE_MAX_ATTEMPTS)),
    )
    .set(mfa_challenges::attempts.eq(mfa_challenges::attempts + 1))
    .returning((
        mfa_challenges::id,
        mfa_challenges::user_id,
        mfa_challenges::purpose,
    ));
    let row: Option<ChallengeRow> = crate::on_backend!(conn, |c| update.get_result(c).optional())?;
    challenge_of(row.ok_or_else(challenge_gone)?)
}

/// Marks the challenge used, if nobody else did first: a challenge signs in once.
fn consume_challenge(conn: &mut DbConn, now: DateTime<Utc>, id: &str) -> Result<(), AppError> {
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

pub fn mfa_key(user_id: &str) -> String {
    format!("mfa:acct:{user_id}")
}

/// A challenge being answered: one of its attempts taken, the purpose checked, and the
/// attempt counted against the account's second-factor limit (429 once used up).
fn challenge_to_answer(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    mfa_token: &str,
    purpose: impl FnOnce(&Challenge, &Credentials) -> ChallengePurpose,
) -> Result<(Challenge, Credentials, ratelimit::Counted), AppError> {
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

fn email_code_hash(challenge_id: &str, code: &str) -> String {
    sha256_hex(format!("{challenge_id}:{code}"))
}

/// Masks an address for display: `a***@example.org`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// Checks a second factor presented in person (co-signing on someone else's device):
/// a TOTP code or a recovery code. The attempt counts against the account's limit before
/// the code is checked (taken back when right); no session is created. Returns the
/// method used.
pub fn check_in_person(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    user_id: &str,
    factor: &SecondFactor,
) -> Result<Result<&'static str, AppError>, AppError> {
    let counted = ratelimit::hit(
        conn,
        &mfa_key(user_id),
        cfg.rate_limits.mfa_per_account,
        now,
    )?;
    let ok = match factor {
        SecondFactor::Totp(code) => totp_accept(conn, now, user_id, code, false)?.is_some(),
        SecondFactor::RecoveryCode(code) => use_recovery_code(conn, now, user_id, code)?,
        SecondFactor::EmailCode(_) => false,
    };
    if !ok {
        return Ok(Err(AppError::InvalidSecondFactor));
    }
    ratelimit::undo(conn, &counted)?;
    Ok(Ok(match factor {
        SecondFactor::Totp(_) => "in_person_totp",
        _ => "in_person_recovery_code",
    }))
}

/// Sends a 6-digit code for the challenge to the user's address: on a login challenge
/// for users who chose e-mailed codes, on an enrolment challenge to choose them.
pub fn send_email_code(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    mfa_token: &str,
    client: &ClientInfo,
) -> Result<(Mail, DateTime<Utc>), AppError> {
    let challenge = find_open_challenge(conn, now, mfa_token)?;
    let user = credentials_by_id(conn, &challenge.user_id)?;
    // Either kind may ask for a code; an enrolment challenge only while the account has
    // no second factor.
    require_purpose(conn, &challenge, &user, challenge.purpose)?;
    if challenge.purpose == ChallengePurpose::Login && user.email_mfa_enabled == 0 {
        return Err(AppError::Forbidden(
            "e-mailed codes are not enabled for this account; use your authenticator app or a recovery code"
                .into(),
        ));
    }
    ratelimit::hit(
        conn,
        &mail_account_key(&user.id),
        cfg.rate_limits.mail_per_account,
        now,
    )?;
    ratelimit::hit(
        conn,
        &format!(
            "mail:addr:{}",
            client.address.as_deref().unwrap_or("unknown")
        ),
        cfg.rate_limits.mail_per_address,
        now,
    )?;
    let code = crypto::six_digit_code();
    let expires_at = now + dur(cfg.email_code_ttl);
    diesel::update(mfa_challenges::table.find(&challenge.id))
        .set((
            mfa_challenges::email_code_hash.eq(email_code_hash(&challenge.id, &code)),
            mfa_challenges::email_code_expires_at.eq(to_db(expires_at)),
            mfa_challenges::email_code_attempts.eq(0),
        ))
        .execute(conn)?;
    let minutes = cfg.email_code_ttl.as_secs() / 60;
    let mail = Mail {
        to: user.email.clone(),
        subject: "Din inloggningskod / Your sign-in code".into(),
        body: format!(
            "Din kod: {code}\n\nKoden gäller i {minutes} minuter och kan bara användas en gång.\n\
             Your code is valid for {minutes} minutes and can be used once.\n\n\
             Har du inte försökt logga in? Byt lösenord. / Not you? Change your password.\n"
        ),
    };
    Ok((mail, expires_at))
}

/// Takes the challenge's e-mailed code if `code` is it. Each try is counted against the
/// code before the comparison, and the code is taken by the statement that compares it,
/// so of N parallel tries at most `email_code_max_attempts` are compared and one wins.
fn take_email_code(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    challenge: &Challenge,
    code: &str,
) -> Result<bool, AppError> {
    let live = || {
        mfa_challenges::table
            .find(&challenge.id)
            .filter(mfa_challenges::email_code_hash.is_not_null())
            .filter(mfa_challenges::email_code_expires_at.gt(to_db(now)))
    };
    let counted = diesel::update(
        live().filter(mfa_challenges::email_code_attempts.lt(cfg.email_code_max_attempts)),
    )
    .set(mfa_challenges::email_code_attempts.eq(mfa_challenges::email_code_attempts + 1))
    .execute(conn)?;
    if counted != 1 {
        return Ok(false);
    }
    let taken = diesel::update(
        live().filter(mfa_challenges::email_code_hash.eq(email_code_hash(&challenge.id, code))),
    )
    .set(mfa_challenges::email_code_hash.eq(None::<String>))
    .execute(conn)?;
    Ok(taken == 1)
}

/// The second factor a client presents.
#[derive(Debug, Clone)]
pub enum SecondFactor {
    Totp(String),
    EmailCode(String),
    RecoveryCode(String),
}

pub struct Verified {
    pub session: IssuedSession,
    pub device_token: Option<String>,
    /// Present when this step completed the user's first enrolment.
    pub recovery_codes: Option<Vec<String>>,
    pub recovery_codes_remaining: Option<i64>,
}

/// Remember-device request: the device's display name.
pub type RememberAs = Option<String>;

pub fn verify_second_factor(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    mfa_token: &str,
    factor: &SecondFactor,
    remember: RememberAs,
    client: &ClientInfo,
) -> Result<Result<Verified, AppError>, AppError> {
    // An authenticator or recovery code verifies an existing second factor: a login
    // challenge. An e-mailed code answers either kind (on an enrolment challenge it
    // turns e-mailed codes on).
    let (challenge, user, counted) =
        challenge_to_answer(conn, cfg, now, mfa_token, |challenge, _| match factor {
            SecondFactor::EmailCode(_) => challenge.purpose,
            SecondFactor::Totp(_) | SecondFactor::RecoveryCode(_) => ChallengePurpose::Login,
        })?;
    let enrolling = challenge.purpose == ChallengePurpose::Enrol;
    let mut remaining = None;
    let mut new_codes = None;
    let ok = match factor {
        SecondFactor::Totp(code) => totp_accept(conn, now, &user.id, code, false)?.is_some(),
        SecondFactor::EmailCode(code) => {
            let valid = (enrolling || user.email_mfa_enabled != 0)
                && take_email_code(conn, cfg, now, &challenge, code.trim())?;
            if valid && enrolling {
                diesel::update(users::table.find(&user.id))
                    .set(users::email_mfa_enabled.eq(1))
                    .execute(conn)?;
                new_codes = Some(replace_recovery_codes(conn, now, &user.id)?);
            }
            valid
        }
        SecondFactor::RecoveryCode(code) => {
            let used = use_recovery_code(conn, now, &user.id, code)?;
            if used {
                remaining = Some(recovery_codes_left(conn, &user.id)?);
            }
            used
        }
    };
    if !ok {
        // The attempt stays counted (challenge and account): committed, then reported.
        return Ok(Err(AppError::InvalidSecondFactor));
    }
    let method = match factor {
        SecondFactor::Totp(_) => "totp",
        SecondFactor::EmailCode(_) => "email_code",
        SecondFactor::RecoveryCode(_) => "recovery_code",
    };
    finish_second_factor(
        conn, cfg, now, &challenge, &counted, method, remember, client,
    )
    .map(|(session, device_token)| {
        Ok(Verified {
            session,
            device_token,
            recovery_codes: new_codes,
            recovery_codes_remaining: remaining,
        })
    })
}

/// A right answer: the challenge is used up (by this request only: if a parallel one
/// consumed it first, this one fails and rolls back), the attempt is taken back from the
/// account's limit, and a session starts.
#[allow(clippy::too_many_arguments)]
fn finish_second_factor(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    challenge: &Challenge,
    counted: &ratelimit::Counted,
    method: &str,
    remember: RememberAs,
    client: &ClientInfo,
) -> Result<(IssuedSession, Option<String>), AppError> {
    consume_challenge(conn, now, &challenge.id)?;
    ratelimit::undo(conn, counted)?;
    let session = create_session(conn, cfg, now, &challenge.user_id, method, client)?;
    let device_token = match remember {
        Some(name) => Some(remember_device(
            conn,
            cfg,
            now,
            &challenge.user_id,
            &name,
            client,
        )?),
        None => None,
    };
    Ok((session, device_token))
}

fn remember_device(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    user_id: &str,
    name: &str,
    client: &ClientInfo,
) -> Result<String, AppError> {
    let token = random_token();
    let name = if name.trim().is_empty() {
        client
            .user_agent
            .clone()
            .unwrap_or_else(|| "Unnamed device".into())
    } else {
        name.trim().to_string()
    };
    diesel::insert_into(remembered_devices::table)
        .values((
            remembered_devices::id.eq(Uuid::new_v4().to_string()),
            remembered_devices::user_id.eq(user_id),
            remembered_devices::token_hash.eq(sha256_hex(&token)),
            remembered_devices::name.eq(name.chars().take(120).collect::<String>()),
            remembered_devices::created_at.eq(to_db(now)),
            remembered_devices::last_used_at.eq(to_db(now)),
            remembered_devices::expires_at.eq(to_db(now + dur(cfg.device_token_ttl))),
        ))
        .execute(conn)?;
    Ok(token)
}

pub fn create_session(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    user_id: &str,
    second_factor: &str,
    client: &ClientInfo,
) -> Result<IssuedSession, AppError> {
    let session_id = Uuid::new_v4().to_string();
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(&session_id),
            sessions::user_id.eq(user_id),
            sessions::second_factor.eq(second_factor),
            sessions::client_address.eq(&client.address),
            sessions::user_agent.eq(client
                .user_agent
                .as_ref()
                .map(|u| u.chars().take(300).collect::<String>())),
            sessions::created_at.eq(to_db(now)),
            sessions::last_used_at.eq(to_db(now)),
            sessions::expires_at.eq(to_db(now + dur(cfg.refresh_token_ttl))),
            // A remembered device proves no second factor now: a step-up asks for one.
            sessions::second_factor_at
                .eq((second_factor != "remembered_device").then(|| to_db(now))),
        ))
        .execute(conn)?;
    let refresh_token = new_refresh_token(conn, now, &session_id)?;
    Ok(IssuedSession {
        user_id: user_id.into(),
        session_id,
        refresh_token,
    })
}

fn new_refresh_token(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    session_id: &str,
) -> Result<String, AppError> {
    let token = random_token();
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(sha256_hex(&token)),
            refresh_tokens::session_id.eq(session_id),
            refresh_tokens::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(token)
}

/// Rotates a refresh token. Presenting a token that was already rotated means it leaked
/// (or a client raced itself): the whole session is revoked.
///
/// The token is taken by one conditional statement (`used_at IS NULL`), so of N
/// parallel requests with the same token exactly one rotates it.
pub fn refresh(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    refresh_token: &str,
) -> Result<Result<IssuedSession, AppError>, AppError> {
    let denied =
        || AppError::Unauthenticated("the refresh token is not valid; log in again".into());
    let hash = sha256_hex(refresh_token);
    let take = diesel::update(
        refresh_tokens::table
            .find(&hash)
            .filter(refresh_tokens::used_at.is_null()),
    )
    .set(refresh_tokens::used_at.eq(to_db(now)))
    .returning(refresh_tokens::session_id);
    let taken: Option<String> = crate::on_backend!(conn, |c| take.get_result(c).optional())?;
    let Some(session_id) = taken else {
        let known: Option<String> = refresh_tokens::table
            .find(&hash)
            .select(refresh_tokens::session_id)
            .first(conn)
            .optional()?;
        if let Some(session_id) = known {
            revoke_session(conn, now, &session_id, "refresh_token_reuse")?;
            tracing::warn!(session = %session_id, "refresh token reuse: session revoked");
        }
        return Ok(Err(denied()));
    };
    let session: Option<String> = sessions::table
        .find(&session_id)
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(to_db(now)))
        .select(sessions::user_id)
        .first(conn)
        .optional()?;
    let Some(user_id) = session else {
        return Ok(Err(denied()));
    };
    let active: Option<String> = users::table
        .find(&user_id)
        .filter(users::status.eq("active"))
        .select(users::id)
        .first(conn)
        .optional()?;
    if active.is_none() {
        return Ok(Err(denied()));
    }
    diesel::update(sessions::table.find(&session_id))
        .set((
            sessions::last_used_at.eq(to_db(now)),
            sessions::expires_at.eq(to_db(now + dur(cfg.refresh_token_ttl))),
        ))
        .execute(conn)?;
    let refresh_token = new_refresh_token(conn, now, &session_id)?;
    Ok(Ok(IssuedSession {
        user_id,
        session_id,
        refresh_token,
    }))
}

pub fn revoke_session(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    session_id: &str,
    reason: &str,
) -> Result<(), AppError> {
    diesel::update(
        sessions::table
            .find(session_id)
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(to_db(now)),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)?;
    crate::auth::principal::auth_changed();
    Ok(())
}

/// Ends every session of a user (password change or reset). Remembered devices are
/// forgotten too: whoever changed the password may be evicting an intruder.
pub fn revoke_all_sessions(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    reason: &str,
) -> Result<(), AppError> {
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(to_db(now)),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)?;
    diesel::update(
        remembered_devices::table
            .filter(remembered_devices::user_id.eq(user_id))
            .filter(remembered_devices::revoked_at.is_null()),
    )
    .set(remembered_devices::revoked_at.eq(to_db(now)))
    .execute(conn)?;
    crate::auth::principal::auth_changed();
    Ok(())
}

// ---- TOTP -------------------------------------------------------------------------

fn build_totp(secret_b32: &str, account: &str) -> Result<Totp, AppError> {
    let secret = Secret::try_from_base32(secret_b32)
        .map_err(|e| AppError::internal(format!("totp secret: {e:?}")))?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret.to_vec())
        .with_issuer(Some(TOTP_ISSUER))
        .with_account_name(account.replace(':', ""))
        .build()
        .map_err(|e| AppError::internal(format!("totp: {e:?}")))
}

pub struct TotpSetup {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_png_base64: String,
}

/// Starts (or restarts) TOTP enrolment; an active secret keeps working until the new
/// one is confirmed.
pub fn totp_setup(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
) -> Result<TotpSetup, AppError> {
    let user = credentials_by_id(conn, user_id)?;
    let secret = Secret::generate().to_base32();
    let totp = build_totp(&secret, &user.email)?;
    let otpauth_uri = totp
        .to_url()
        .map_err(|e| AppError::internal(format!("totp url: {e:?}")))?;
    let qr_png_base64 = totp
        .to_qr_base64()
        .map_err(|e| AppError::internal(format!("totp qr: {e:?}")))?;
    let sealed = crate::secrets::seal(&crate::secrets::totp_aad(user_id), &secret)?;
    // One statement: two set-ups at once (two tabs, two nodes) must not both find no
    // row and both insert; the later simply replaces the pending secret.
    let upsert = diesel::insert_into(totp_credentials::table)
        .values((
            totp_credentials::user_id.eq(user_id),
            totp_credentials::pending_secret.eq(&sealed),
            totp_credentials::created_at.eq(to_db(now)),
        ))
        .on_conflict(totp_credentials::user_id)
        .do_update()
        .set(totp_credentials::pending_secret.eq(&sealed));
    crate::on_backend!(conn, |c| upsert.execute(c))?;
    Ok(TotpSetup {
        secret,
        otpauth_uri,
        qr_png_base64,
    })
}

/// Accepts a TOTP code (the pending secret when `pending`), at most once per time step:
/// a code that was already used, or one from an earlier step, is refused (no replay).
///
/// The step is recorded by one conditional statement (only if it is later than the last
/// one, and only if the secret checked is still the one stored), so one code accepted
/// by N parallel requests succeeds once.
fn totp_accept(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    code: &str,
    pending: bool,
) -> Result<Option<u64>, AppError> {
    type Row = (Option<String>, Option<String>);
    let row: Option<Row> = totp_credentials::table
        .find(user_id)
        .select((totp_credentials::secret, totp_credentials::pending_secret))
        .first(conn)
        .optional()?;
    let Some((secret, pending_secret)) = row else {
        return Ok(None);
    };
    let Some(secret) = (if pending { pending_secret } else { secret }) else {
        return Ok(None);
    };
    // A sealed secret that does not open here (copied from another account's row, or
    // damaged) is no second factor of this account: refused like a wrong code.
    let stored = secret;
    let secret = match crate::secrets::open(&crate::secrets::totp_aad(user_id), &stored) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(user_id, error = %e, "a TOTP secret does not open");
            return Ok(None);
        }
    };
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let totp = build_totp(&secret, "user")?;
    let Some(step) = totp.check(&code, now.timestamp().max(0) as u64) else {
        return Ok(None);
    };
    let step_db = i64::try_from(step).map_err(AppError::internal)?;
    let later = totp_credentials::last_used_step
        .is_null()
        .or(totp_credentials::last_used_step
            .assume_not_null()
            .lt(step_db));
    // Compared as stored (sealed): the step counts only if the secret checked is still
    // the account's, not one replaced by a concurrent re-enrolment.
    let target = totp_credentials::table.find(user_id).filter(later);
    let recorded = if pending {
        diesel::update(target.filter(totp_credentials::pending_secret.eq(&stored)))
            .set(totp_credentials::last_used_step.eq(step_db))
            .execute(conn)?
    } else {
        diesel::update(target.filter(totp_credentials::secret.eq(&stored)))
            .set(totp_credentials::last_used_step.eq(step_db))
            .execute(conn)?
    };
    Ok((recorded == 1).then_some(step))
}

/// Activates the pending secret when `code` matches it. Returns fresh recovery codes
/// when this is the user's first second factor.
pub fn totp_confirm(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    code: &str,
) -> Result<Result<Option<Vec<String>>, AppError>, AppError> {
    if totp_accept(conn, now, user_id, code, true)?.is_none() {
        return Ok(Err(AppError::InvalidSecondFactor));
    }
    let activated = diesel::update(
        totp_credentials::table
            .find(user_id)
            .filter(totp_credentials::pending_secret.is_not_null()),
    )
    .set((
        totp_credentials::secret.eq(totp_credentials::pending_secret),
        totp_credentials::pending_secret.eq(None::<String>),
        totp_credentials::confirmed_at.eq(to_db(now)),
    ))
    .execute(conn)?;
    if activated != 1 {
        return Ok(Err(AppError::InvalidSecondFactor));
    }
    let codes = if recovery_codes_left(conn, user_id)? == 0 {
        Some(replace_recovery_codes(conn, now, user_id)?)
    } else {
        None
    };
    Ok(Ok(codes))
}

/// Completes enrolment from a sign-in challenge: confirm the authenticator, then sign in.
pub fn enrol_totp_and_sign_in(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    mfa_token: &str,
    code: &str,
    remember: RememberAs,
    client: &ClientInfo,
) -> Result<Result<Verified, AppError>, AppError> {
    let (challenge, _, counted) =
        challenge_to_answer(conn, cfg, now, mfa_token, |_, _| ChallengePurpose::Enrol)?;
    match totp_confirm(conn, now, &challenge.user_id, code)? {
        // The attempt stays counted: committed, then reported.
        Err(e) => Ok(Err(e)),
        Ok(codes) => {
            let (session, device_token) = finish_second_factor(
                conn, cfg, now, &challenge, &counted, "totp", remember, client,
            )?;
            Ok(Ok(Verified {
                session,
                device_token,
                recovery_codes: codes,
                recovery_codes_remaining: None,
            }))
        }
    }
}

// ---- Recovery codes -----------------------------------------------------------------

pub fn replace_recovery_codes(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
) -> Result<Vec<String>, AppError> {
    // Replacements take turns per account: on PostgreSQL two at once would each delete
    // only the codes they saw and both insert ten, leaving twenty valid codes. (SQLite's
    // write transactions are exclusive already.)
    if let DbConn::Pg(pg) = conn {
        users::table
            .find(user_id)
            .select(users::id)
            .for_update()
            .first::<String>(pg)
            .optional()?;
    }
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    let codes: Vec<String> = (0..RECOVERY_CODE_COUNT)
        .map(|_| crypto::recovery_code())
        .collect();
    for code in &codes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::id.eq(Uuid::new_v4().to_string()),
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(sha256_hex(normalize_code(code))),
                recovery_codes::created_at.eq(to_db(now)),
            ))
            .execute(conn)?;
    }
    Ok(codes)
}

fn use_recovery_code(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    code: &str,
) -> Result<bool, AppError> {
    let n = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq(sha256_hex(normalize_code(code))))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(to_db(now)))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn recovery_codes_left(conn: &mut DbConn, user_id: &str) -> Result<i64, AppError> {
    Ok(recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)?)
}

// ---- Link tokens: password reset, e-mail verification -----------------------------

/// Always succeeds from the caller's point of view; a mail goes out only when the
/// address has an account, so the response never tells whether it does.
pub fn request_password_reset(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    email: &str,
    client: &ClientInfo,
) -> Result<Option<Mail>, AppError> {
    ratelimit::hit(
        conn,
        &format!(
            "mail:addr:{}",
            client.address.as_deref().unwrap_or("unknown")
        ),
        cfg.rate_limits.mail_per_address,
        now,
    )?;
    ratelimit::hit(
        conn,
        &format!("reset:acct:{email}"),
        cfg.rate_limits.mail_per_account,
        now,
    )?;
    let Some(user) = credentials_by_email(conn, email)? else {
        return Ok(None);
    };
    if user.status != "active" {
        return Ok(None);
    }
    let token = create_mail_token(
        conn,
        now,
        &user.id,
        "password_reset",
        None,
        cfg.reset_token_ttl,
    )?;
    let minutes = cfg.reset_token_ttl.as_secs() / 60;
    Ok(Some(Mail {
        to: user.email,
        subject: "Återställ ditt lösenord / Reset your password".into(),
        body: format!(
            "Någon (förhoppningsvis du) bad om att återställa lösenordet.\n\
             Someone (hopefully you) asked to reset your password.\n\n\
             {}/reset-password?token={token}\n\n\
             Länken gäller i {minutes} minuter och kan användas en gång.\n\
             The link is valid for {minutes} minutes and can be used once.\n",
            cfg.public_url.trim_end_matches('/')
        ),
    }))
}

pub fn create_mail_token(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    purpose: &str,
    new_email: Option<&str>,
    ttl: std::time::Duration,
) -> Result<String, AppError> {
    let token = random_token();
    diesel::insert_into(mail_tokens::table)
        .values((
            mail_tokens::token_hash.eq(sha256_hex(&token)),
            mail_tokens::purpose.eq(purpose),
            mail_tokens::user_id.eq(user_id),
            mail_tokens::new_email.eq(new_email),
            mail_tokens::created_at.eq(to_db(now)),
            mail_tokens::expires_at.eq(to_db(now + dur(ttl))),
        ))
        .execute(conn)?;
    Ok(token)
}

/// Marks a link token used and returns (user id, new e-mail). One conditional
/// statement: of N parallel requests with the same token exactly one takes it.
fn take_mail_token(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    token: &str,
    purpose: &str,
) -> Result<(String, Option<String>), AppError> {
    let take = diesel::update(
        mail_tokens::table
            .find(sha256_hex(token))
            .filter(mail_tokens::purpose.eq(purpose))
            .filter(mail_tokens::used_at.is_null())
            .filter(mail_tokens::expires_at.gt(to_db(now))),
    )
    .set(mail_tokens::used_at.eq(to_db(now)))
    .returning((mail_tokens::user_id, mail_tokens::new_email));
    let taken: Option<(String, Option<String>)> =
        crate::on_backend!(conn, |c| take.get_result(c).optional())?;
    taken.ok_or(AppError::InvalidToken)
}

/// Sets a new password from a reset link (hash computed by the caller, outside the
/// transaction) and ends every session.
/// Returns the account's id.
pub fn reset_password(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    token: &str,
    new_hash: &str,
) -> Result<String, AppError> {
    let (user_id, _) = take_mail_token(conn, now, token, "password_reset")?;
    set_password(conn, now, &user_id, new_hash)?;
    // Other reset links sent earlier stop working too.
    diesel::update(
        mail_tokens::table
            .filter(mail_tokens::user_id.eq(&user_id))
            .filter(mail_tokens::purpose.eq("password_reset"))
            .filter(mail_tokens::used_at.is_null()),
    )
    .set(mail_tokens::used_at.eq(to_db(now)))
    .execute(conn)?;
    cancel_email_changes(conn, now, &user_id)?;
    revoke_all_sessions(conn, now, &user_id, "password_reset")?;
    Ok(user_id)
}

/// Pending e-mail changes of the account stop working: a new password evicts whoever
/// else knew the old one, and an address change they asked for must not be confirmable
/// afterwards (it would route every later reset link to them).
pub fn cancel_email_changes(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
) -> Result<(), AppError> {
    diesel::update(
        mail_tokens::table
            .filter(mail_tokens::user_id.eq(user_id))
            .filter(mail_tokens::purpose.eq("email_verification"))
            .filter(mail_tokens::new_email.is_not_null())
            .filter(mail_tokens::used_at.is_null()),
    )
    .set(mail_tokens::used_at.eq(to_db(now)))
    .execute(conn)?;
    Ok(())
}

pub fn set_password(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    new_hash: &str,
) -> Result<(), AppError> {
    diesel::update(users::table.find(user_id))
        .set((
            users::password_hash.eq(new_hash),
            users::updated_at.eq(to_db(now)),
            users::version.eq(users::version + 1),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn password_hash_of(conn: &mut DbConn, user_id: &str) -> Result<Option<String>, AppError> {
    Ok(credentials_by_id(conn, user_id)?.password_hash)
}

/// Starts an e-mail change: the new address must prove it receives mail.
pub fn request_email_change(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    user_id: &str,
    new_email: &str,
) -> Result<Mail, AppError> {
    let taken: i64 = users::table
        .filter(users::email.eq(new_email))
        .count()
        .get_result(conn)?;
    if taken > 0 {
        return Err(AppError::Conflict(
            "that e-mail address belongs to another account".into(),
        ));
    }
    ratelimit::hit(
        conn,
        &mail_account_key(user_id),
        cfg.rate_limits.mail_per_account,
        now,
    )?;
    let token = create_mail_token(
        conn,
        now,
        user_id,
        "email_verification",
        Some(new_email),
        cfg.reset_token_ttl,
    )?;
    Ok(Mail {
        to: new_email.into(),
        subject: "Bekräfta din e-postadress / Confirm your e-mail address".into(),
        body: format!(
            "Bekräfta att du vill använda den här adressen för eportfolio:\n\
             Confirm that you want to use this address for eportfolio:\n\n\
             {}/verify-email?token={token}\n",
            cfg.public_url.trim_end_matches('/')
        ),
    })
}

pub fn confirm_email(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    token: &str,
) -> Result<String, AppError> {
    let (user_id, new_email) = take_mail_token(conn, now, token, "email_verification")?;
    match new_email {
        Some(email) => {
            let taken: i64 = users::table
                .filter(users::email.eq(&email))
                .filter(users::id.ne(&user_id))
                .count()
                .get_result(conn)?;
            if taken > 0 {
                return Err(AppError::Conflict(
                    "that e-mail address belongs to another account".into(),
                ));
            }
            diesel::update(users::table.find(&user_id))
                .set((
                    users::email.eq(&email),
                    users::email_verified_at.eq(to_db(now)),
                    users::updated_at.eq(to_db(now)),
                    users::version.eq(users::version + 1),
                ))
                .execute(conn)?;
            crate::auth::principal::auth_changed();
        }
        None => {
            diesel::update(users::table.find(&user_id))
                .set(users::email_verified_at.eq(to_db(now)))
                .execute(conn)?;
        }
    }
    Ok(user_id)
}
