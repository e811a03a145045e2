//! Step-up for changes to an account's security: e-mail, password, second factor,
//! recovery codes and remembered devices. A stolen access token alone must not become
//! the account, so each such change needs the current password and a second factor,
//! unless this session gave one in the last five minutes. The account's address (the
//! old one, for an e-mail change) is told of every change, with a link that undoes it
//! and ends every session.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::credentials::{self, Credentials};
use crate::auth::crypto::{self, random_token, sha256_hex};
use crate::auth::mfa::{self, SecondFactor};
use crate::auth::principal::Principal;
use crate::auth::ratelimit;
use crate::auth::sessions::revoke_all_sessions;
use crate::auth::{email_codes, link_tokens};
use crate::clock::{dur, from_db, to_db};
use crate::context::{Context, Ctx};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{SessionId, UserId};
use crate::mail::Mail;
use crate::schema::{
    account_tokens, mail_tokens, recovery_codes, sessions, totp_credentials, users,
};
use crate::telemetry::security::{Event, SecurityEvent};

/// A second factor given this long ago in this session still counts for a step-up.
pub const FRESH_FACTOR_SECONDS: i64 = 300;
/// How long the link that undoes a change works.
pub const UNDO_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

const UNDO_EMAIL: &str = "undo_email_change";
const UNDO_PASSWORD: &str = "undo_password_change";
const UNDO_SECOND_FACTOR: &str = "undo_second_factor_change";
const UNDO_PURPOSES: [&str; 3] = [UNDO_EMAIL, UNDO_PASSWORD, UNDO_SECOND_FACTOR];
const STEP_UP_CODE: &str = "step_up_code";

/// The step-up fields of a request: the current password and, unless this session gave
/// a second factor in the last five minutes, one of `totp_code`, `recovery_code` or
/// `email_code` (after `POST /me/step-up/email-code`, for accounts that use e-mailed
/// codes).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUp {
    /// The current password.
    pub password: Option<String>,
    /// A code from the authenticator app.
    pub totp_code: Option<String>,
    /// One of the recovery codes (used up by this).
    pub recovery_code: Option<String>,
    /// A code sent by `POST /me/step-up/email-code`.
    pub email_code: Option<String>,
}

impl StepUp {
    /// The one second factor given, if any.
    pub fn factor(&self) -> Result<Option<SecondFactor>, AppError> {
        let given: Vec<SecondFactor> = [
            self.totp_code.clone().map(SecondFactor::Totp),
            self.recovery_code.clone().map(SecondFactor::RecoveryCode),
            self.email_code.clone().map(SecondFactor::EmailCode),
        ]
        .into_iter()
        .flatten()
        .collect();
        match given.len() {
            0 => Ok(None),
            1 => Ok(given.into_iter().next()),
            _ => Err(AppError::validation(
                "totp_code",
                "send one of totp_code, recovery_code and email_code",
            )),
        }
    }
}

fn method_names(methods: &[mfa::MfaMethod]) -> Vec<String> {
    methods
        .iter()
        .filter_map(|m| {
            match m {
                mfa::MfaMethod::Totp => Some("totp"),
                mfa::MfaMethod::EmailCode => Some("email_code"),
                mfa::MfaMethod::RecoveryCode => Some("recovery_code"),
                // Not a step-up field: a passkey sign-in (`/auth/passkeys/*`) gives a
                // session whose second factor is fresh instead.
                mfa::MfaMethod::Passkey => None,
            }
            .map(String::from)
        })
        .collect()
}

/// Did this session prove a second factor in the last five minutes?
fn factor_is_fresh(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    session_id: &SessionId,
) -> Result<bool, AppError> {
    let at: Option<Option<chrono::NaiveDateTime>> = sessions::table
        .find(session_id)
        .select(sessions::second_factor_at)
        .first(conn)
        .optional()?;
    Ok(at
        .flatten()
        .is_some_and(|t| now - from_db(t) <= chrono::Duration::seconds(FRESH_FACTOR_SECONDS)))
}

/// What the account has and whether this session needs a second factor now.
struct Standing {
    user: Credentials,
    methods: Vec<String>,
    needs_factor: bool,
}

fn standing(conn: &mut DbConn, now: DateTime<Utc>, me: &Principal) -> Result<Standing, AppError> {
    let user = credentials::credentials_by_id(conn, &me.user_id)?;
    let methods = method_names(&mfa::methods_of(conn, &user)?);
    let needs_factor = !methods.is_empty() && !factor_is_fresh(conn, now, &me.session_id)?;
    Ok(Standing {
        user,
        methods,
        needs_factor,
    })
}

fn required(password: bool, factor: bool, methods: &[String]) -> AppError {
    let mut requires = Vec::new();
    if password {
        requires.push("password".to_string());
    }
    if factor {
        requires.push("second_factor".to_string());
    }
    AppError::StepUpRequired {
        requires,
        methods: if factor { methods.to_vec() } else { Vec::new() },
    }
}

/// For a read that hands out everything about the caller (the personal data export,
/// `GET /me/export`): this session must have given a second factor in the last five
/// minutes, at sign-in or by `POST /me/step-up`; otherwise 401 `step-up-required`.
pub fn require_recent(conn: &mut DbConn, ctx: &Ctx) -> Result<(), AppError> {
    ctx.caller.require_person()?;
    let st = standing(conn, ctx.now, &ctx.caller)?;
    if st.needs_factor {
        return Err(required(true, true, &st.methods));
    }
    Ok(())
}

/// First half of a step-up, before the change's transaction: the answer is complete,
/// and the password is right (argon2 runs outside any transaction). The attempt counts
/// against the account's login limit before the password is checked, as at login (one
/// atomic statement, so parallel guesses cannot outrun it), and is taken back when the
/// password is right.
pub async fn check_password(ctx: &Ctx, answer: &StepUp) -> Result<(), AppError> {
    let me = &ctx.caller;
    me.require_person()?;
    let factor = answer.factor()?;
    let st = ctx.read(|c, ctx| standing(c, ctx.now, &ctx.caller)).await?;
    let Some(password) = answer.password.clone() else {
        return Err(required(true, st.needs_factor, &st.methods));
    };
    if st.needs_factor && factor.is_none() {
        return Err(required(true, true, &st.methods));
    }
    let key = ratelimit::login_account_key(&st.user.email);
    let counted = ctx
        .write_aside(move |c, ctx| {
            ratelimit::hit(c, &key, ctx.config.rate_limits.login_per_account, ctx.now)
        })
        .await?;
    let stored = st.user.password_hash.clone();
    let ok = actix_web::web::block(move || {
        stored.is_some_and(|h| crypto::verify_password(&password, &h))
    })
    .await?;
    if !ok {
        SecurityEvent::new(Event::StepUpFailed)
            .user(&me.user_id)
            .kind("password")
            .client(&ctx.client)
            .emit();
        return Err(AppError::InvalidCredentials);
    }
    ctx.write_aside(move |c, _| ratelimit::undo(c, &counted))
        .await?;
    Ok(())
}

/// Second half, inside the change's transaction: the second factor (a TOTP code obeys
/// the same used-once, later-step rule as at login), or a fresh one of this session.
/// A wrong factor counts against the account's second-factor limit and is committed
/// (the inner error); the change must then not be made.
pub fn check_factor(
    conn: &mut DbConn,
    ctx: &Ctx,
    answer: &StepUp,
) -> Result<Result<(), AppError>, AppError> {
    let checked = check_factor_inner(conn, ctx, answer)?;
    let kind = match answer.factor()? {
        Some(SecondFactor::EmailCode(_)) => "email_code",
        Some(SecondFactor::Totp(_)) => "totp",
        Some(SecondFactor::RecoveryCode(_)) => "recovery_code",
        None => "password",
    };
    let event = match &checked {
        Ok(()) => Event::StepUpSucceeded,
        Err(_) => Event::StepUpFailed,
    };
    SecurityEvent::new(event)
        .user(&ctx.caller.user_id)
        .kind(kind)
        .client(&ctx.client)
        .emit();
    Ok(checked)
}

fn check_factor_inner(
    conn: &mut DbConn,
    ctx: &Ctx,
    answer: &StepUp,
) -> Result<Result<(), AppError>, AppError> {
    let me = &ctx.caller;
    let (cfg, now) = (&*ctx.config, ctx.now);
    match answer.factor()? {
        Some(SecondFactor::EmailCode(code)) => {
            // Counted before the code is checked, as at login; taken back if it is right.
            let counted = ratelimit::hit(
                conn,
                &ratelimit::mfa_key(&me.user_id),
                cfg.rate_limits.mfa_per_account,
                now,
            )?;
            if !take_step_up_code(conn, now, &me.user_id, &code)? {
                return Ok(Err(AppError::InvalidSecondFactor));
            }
            ratelimit::undo(conn, &counted)?;
        }
        Some(factor) => {
            if let Err(e) = mfa::check_in_person(conn, ctx, &me.user_id, &factor)? {
                return Ok(Err(e));
            }
        }
        None => {
            // Checked again here: the five minutes may have run out since the password.
            let st = standing(conn, now, me)?;
            if st.needs_factor {
                return Ok(Err(required(true, true, &st.methods)));
            }
            return Ok(Ok(()));
        }
    }
    crate::auth::sessions::mark_second_factor(conn, now, &me.session_id)?;
    Ok(Ok(()))
}

fn step_up_code_hash(user_id: &UserId, code: &str) -> String {
    sha256_hex(format!("step_up:{user_id}:{}", code.trim()))
}

/// Uses an e-mailed step-up code: one conditional UPDATE, so it works once even when
/// sent twice at the same moment.
fn take_step_up_code(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
    code: &str,
) -> Result<bool, AppError> {
    let n = diesel::update(
        account_tokens::table
            .filter(account_tokens::token_hash.eq(step_up_code_hash(user_id, code)))
            .filter(account_tokens::purpose.eq(STEP_UP_CODE))
            .filter(account_tokens::user_id.eq(user_id))
            .filter(account_tokens::used_at.is_null())
            .filter(account_tokens::expires_at.gt(to_db(now))),
    )
    .set(account_tokens::used_at.eq(to_db(now)))
    .execute(conn)?;
    Ok(n == 1)
}

/// Mails a 6-digit step-up code to an account that uses e-mailed codes (through the
/// outbox, in this transaction). Returns the masked address and the expiry.
pub fn send_step_up_code(
    conn: &mut DbConn,
    ctx: &Ctx,
) -> Result<(String, DateTime<Utc>), AppError> {
    let me = &ctx.caller;
    let (cfg, now) = (&*ctx.config, ctx.now);
    me.require_person()?;
    let user = credentials::credentials_by_id(conn, &me.user_id)?;
    if user.email_mfa_enabled == 0 {
        return Err(AppError::Forbidden(
            "e-mailed codes are not enabled for this account; use your authenticator app or a recovery code"
                .into(),
        ));
    }
    ratelimit::hit(
        conn,
        &ratelimit::mail_account_key(&user.id),
        cfg.rate_limits.mail_per_account,
        now,
    )?;
    // A new code replaces the account's earlier ones: several open codes at once would
    // multiply the odds of a guess.
    diesel::update(
        account_tokens::table
            .filter(account_tokens::user_id.eq(&user.id))
            .filter(account_tokens::purpose.eq(STEP_UP_CODE))
            .filter(account_tokens::used_at.is_null()),
    )
    .set(account_tokens::used_at.eq(to_db(now)))
    .execute(conn)?;
    let mut code = crypto::six_digit_code();
    // A code must differ from the account's earlier ones (the hash is the key).
    for _ in 0..5 {
        let taken: i64 = account_tokens::table
            .find(step_up_code_hash(&user.id, &code))
            .count()
            .get_result(conn)?;
        if taken == 0 {
            break;
        }
        code = crypto::six_digit_code();
    }
    let expires_at = now + dur(cfg.email_code_ttl);
    diesel::insert_into(account_tokens::table)
        .values((
            account_tokens::token_hash.eq(step_up_code_hash(&user.id, &code)),
            account_tokens::purpose.eq(STEP_UP_CODE),
            account_tokens::user_id.eq(&user.id),
            account_tokens::created_at.eq(to_db(now)),
            account_tokens::expires_at.eq(to_db(expires_at)),
        ))
        .execute(conn)?;
    let minutes = cfg.email_code_ttl.as_secs() / 60;
    crate::outbox::enqueue(
        conn,
        ctx.keyring()?,
        now,
        &[Mail {
            to: user.email.clone(),
            subject: "Din bekräftelsekod / Your confirmation code".into(),
            body: format!(
                "Din kod för att ändra kontots säkerhetsinställningar: {code}\n\n\
                 Koden gäller i {minutes} minuter och kan bara användas en gång.\n\
                 Your code to change your account's security settings is valid for \
                 {minutes} minutes and can be used once.\n\n\
                 Var det inte du? Byt lösenord. / Not you? Change your password.\n"
            ),
        }],
    )?;
    Ok((email_codes::mask_email(&user.email), expires_at))
}

// ---- Notices and the undo link ------------------------------------------------------

/// What a notice announces (and what its undo link undoes).
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// An e-mail change was asked for: the notice goes to the old address.
    Email {
        old: &'a str,
        new: &'a str,
    },
    Password,
    /// A new authenticator, or new recovery codes.
    SecondFactor,
}

/// Queues a notice of `change` with a 7-day undo link, to the account's current address
/// (the old one, for an e-mail change), in the change's transaction.
pub fn notify_change<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    user_id: &UserId,
    change: Change<'_>,
) -> Result<(), AppError> {
    let (cfg, now) = (&*ctx.config, ctx.now);
    let to: String = users::table
        .find(user_id)
        .select(users::email)
        .first(conn)?;
    let (purpose, old_email, what_sv, what_en) = match change {
        Change::Email { old, new } => (
            UNDO_EMAIL,
            Some(old.to_string()),
            format!("Någon bad om att byta kontots e-postadress till {new}."),
            format!("Someone asked to change your account's e-mail address to {new}."),
        ),
        Change::Password => (
            UNDO_PASSWORD,
            None,
            "Kontots lösenord har bytts.".to_string(),
            "Your account's password was changed.".to_string(),
        ),
        Change::SecondFactor => (
            UNDO_SECOND_FACTOR,
            None,
            "Kontots andra faktor (autentiseringsapp, passkey eller reservkoder) har bytts."
                .to_string(),
            "Your account's second factor (authenticator app, passkey or recovery codes) was \
             changed."
                .to_string(),
        ),
    };
    let token = random_token();
    diesel::insert_into(account_tokens::table)
        .values((
            account_tokens::token_hash.eq(sha256_hex(&token)),
            account_tokens::purpose.eq(purpose),
            account_tokens::user_id.eq(user_id),
            account_tokens::old_email.eq(&old_email),
            account_tokens::created_at.eq(to_db(now)),
            account_tokens::expires_at.eq(to_db(now + dur(UNDO_TTL))),
        ))
        .execute(conn)?;
    let link = format!(
        "{}/undo-change?token={token}",
        cfg.public_url.trim_end_matches('/')
    );
    crate::outbox::enqueue(
        conn,
        ctx.keyring()?,
        now,
        &[Mail {
            to,
            subject: "Ändring av ditt konto / A change to your account".into(),
            body: format!(
                "{what_sv}\nVar det inte du? Öppna länken nedan inom 7 dagar: ändringen görs \
                 ogjord, alla inloggningar avslutas och du väljer ett nytt lösenord.\n\n\
                 {what_en}\nNot you? Open the link below within 7 days: the change is undone, \
                 every session ends and you choose a new password.\n\n{link}\n"
            ),
        }],
    )
}

/// What an undo link's token says: whose account, which change, the old address.
#[derive(Queryable, Selectable)]
#[diesel(table_name = account_tokens, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct UndoToken {
    user_id: UserId,
    purpose: String,
    old_email: Option<String>,
    created_at: chrono::NaiveDateTime,
}

/// Uses an undo link: restores the old address (for an e-mail change), removes a second
/// factor that was changed, ends every session and remembered device, and forces a
/// password reset (a reset link goes to the restored address). The token works once:
/// it is taken by one conditional UPDATE. Unknown: 404; used or expired: 410.
pub fn undo_change<C: Send + Sync + 'static>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    token: &str,
) -> Result<(), AppError> {
    let (cfg, now) = (&*ctx.config, ctx.now);
    let hash = sha256_hex(token.trim());
    let taken = diesel::update(
        account_tokens::table
            .find(&hash)
            .filter(account_tokens::purpose.eq_any(UNDO_PURPOSES))
            .filter(account_tokens::used_at.is_null())
            .filter(account_tokens::expires_at.gt(to_db(now))),
    )
    .set(account_tokens::used_at.eq(to_db(now)))
    .execute(conn)?;
    let found: Option<UndoToken> = account_tokens::table
        .find(&hash)
        .filter(account_tokens::purpose.eq_any(UNDO_PURPOSES))
        .select(UndoToken::as_select())
        .first(conn)
        .optional()?;
    let Some(UndoToken {
        user_id,
        purpose,
        old_email,
        created_at: sent_at,
    }) = found
    else {
        return Err(AppError::NotFound);
    };
    if taken != 1 {
        return Err(AppError::Gone(
            "this link was already used or has expired".into(),
        ));
    }
    if let Some(old) = &old_email {
        let taken_by_other: i64 = users::table
            .filter(users::email.eq(old))
            .filter(users::id.ne(&user_id))
            .count()
            .get_result(conn)?;
        if taken_by_other > 0 {
            return Err(AppError::Conflict(
                "the old e-mail address now belongs to another account".into(),
            ));
        }
        crate::auth::credentials::restore_email(conn, ctx.auth_changes(), &user_id, old)?;
    }
    if purpose == UNDO_SECOND_FACTOR {
        // Whoever changed it holds the new authenticator or codes: remove them. The
        // owner enrols again at the next login, after the password reset.
        diesel::delete(totp_credentials::table.find(&user_id)).execute(conn)?;
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(&user_id)))
            .execute(conn)?;
    }
    // Passkeys too: one registered by whoever held the account must not sign in.
    crate::auth::passkeys::store::revoke_all(conn, now, &user_id)?;
    // No password works until the owner sets one from the link mailed below.
    diesel::update(users::table.find(&user_id))
        .set((
            users::password_hash.eq(None::<String>),
            users::updated_at.eq(to_db(now)),
            users::version.eq(users::version + 1),
        ))
        .execute(conn)?;
    // Pending e-mail changes, reset links, step-up codes and the undo links of later
    // changes stop working: the account starts over from the reset link. Undo links sent
    // before this one stay: they went to whoever held the account before the change
    // undone here. (An intruder who moved the account to their own address and then
    // undid a later change of theirs, whose link came to them, would otherwise cancel
    // the owner's link to undo the move.)
    diesel::update(
        mail_tokens::table
            .filter(mail_tokens::user_id.eq(&user_id))
            .filter(mail_tokens::used_at.is_null()),
    )
    .set(mail_tokens::used_at.eq(to_db(now)))
    .execute(conn)?;
    diesel::update(
        account_tokens::table
            .filter(account_tokens::user_id.eq(&user_id))
            .filter(account_tokens::used_at.is_null())
            .filter(
                account_tokens::purpose
                    .ne_all(UNDO_PURPOSES)
                    .or(account_tokens::created_at.ge(sent_at)),
            ),
    )
    .set(account_tokens::used_at.eq(to_db(now)))
    .execute(conn)?;
    revoke_all_sessions(conn, ctx, &user_id, "change_undone")?;
    let to: String = users::table
        .find(&user_id)
        .select(users::email)
        .first(conn)?;
    let reset = link_tokens::create_mail_token(
        conn,
        now,
        &user_id,
        "password_reset",
        None,
        cfg.reset_token_ttl,
    )?;
    let minutes = cfg.reset_token_ttl.as_secs() / 60;
    crate::outbox::enqueue(
        conn,
        ctx.keyring()?,
        now,
        &[Mail {
            to,
            subject: "Välj ett nytt lösenord / Choose a new password".into(),
            body: format!(
                "Ändringen är ogjord och alla inloggningar är avslutade. Välj ett nytt lösenord:\n\
                 The change was undone and every session ended. Choose a new password:\n\n\
                 {}/reset-password?token={reset}\n\n\
                 Länken gäller i {minutes} minuter. / The link is valid for {minutes} minutes.\n",
                cfg.public_url.trim_end_matches('/')
            ),
        }],
    )?;
    tracing::warn!(user = %user_id, purpose = %purpose, "account change undone from the mailed link");
    Ok(())
}
