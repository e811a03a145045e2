//! Mailed link tokens: password reset and e-mail verification (and e-mail change).

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::auth::credentials::{credentials_by_email, set_password};
use crate::auth::crypto::{random_token, sha256_hex};
use crate::auth::ratelimit::{self, mail_account_key};
use crate::auth::sessions::revoke_all_sessions;
use crate::clock::{dur, to_db};
use crate::context::Context;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::UserId;
use crate::mail::Mail;
use crate::schema::{mail_tokens, users};

/// Always succeeds from the caller's point of view; a mail goes out only when the
/// address has an account, so the response never tells whether it does.
pub fn request_password_reset<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    email: &str,
) -> Result<Option<Mail>, AppError> {
    let (cfg, now, client) = (&*ctx.config, ctx.now, &ctx.client);
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
    user_id: &UserId,
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

/// A link token that was taken: whose, and the address an e-mail change goes to.
#[derive(Queryable, Selectable)]
#[diesel(table_name = mail_tokens, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct TakenToken {
    pub user_id: UserId,
    pub new_email: Option<String>,
}

/// Marks a link token used and returns whose it is. One conditional statement: of N
/// parallel requests with the same token exactly one takes it.
pub(crate) fn take_mail_token(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    token: &str,
    purpose: &str,
) -> Result<TakenToken, AppError> {
    let target = mail_tokens::table
        .find(sha256_hex(token))
        .filter(mail_tokens::purpose.eq(purpose))
        .filter(mail_tokens::used_at.is_null())
        .filter(mail_tokens::expires_at.gt(to_db(now)));
    let taken: Option<TakenToken> = crate::on_backend!(conn, |c| diesel::update(target)
        .set(mail_tokens::used_at.eq(to_db(now)))
        .returning(TakenToken::as_returning())
        .get_result(c)
        .optional())?;
    taken.ok_or(AppError::InvalidToken)
}

/// Sets a new password from a reset link (hash computed by the caller, outside the
/// transaction) and ends every session.
/// Returns the account's id.
pub fn reset_password<C: Send + Sync + 'static>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    token: &str,
    new_hash: &str,
) -> Result<UserId, AppError> {
    let now = ctx.now;
    let user_id = take_mail_token(conn, now, token, "password_reset")?.user_id;
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
    revoke_all_sessions(conn, ctx, &user_id, "password_reset")?;
    Ok(user_id)
}

/// Pending e-mail changes of the account stop working: a new password evicts whoever
/// else knew the old one, and an address change they asked for must not be confirmable
/// afterwards (it would route every later reset link to them).
pub fn cancel_email_changes(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
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

/// Starts an e-mail change: the new address must prove it receives mail.
pub fn request_email_change<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    user_id: &UserId,
    new_email: &str,
) -> Result<Mail, AppError> {
    let (cfg, now) = (&*ctx.config, ctx.now);
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

pub fn confirm_email<C: Send + Sync + 'static>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    token: &str,
) -> Result<UserId, AppError> {
    let now = ctx.now;
    let TakenToken { user_id, new_email } =
        take_mail_token(conn, now, token, "email_verification")?;
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
            crate::auth::credentials::confirm_new_email(
                conn,
                ctx.auth_changes(),
                now,
                &user_id,
                &email,
            )?;
        }
        None => {
            diesel::update(users::table.find(&user_id))
                .set(users::email_verified_at.eq(to_db(now)))
                .execute(conn)?;
        }
    }
    Ok(user_id)
}
