//! The OAuth 2.0 client-credentials grant (RFC 6749 section 4.4).

use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::crypto::{random_token, sha256_hex};
use crate::clock::{dur, to_db};
use crate::context::Context;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::ClientId;
use crate::schema::{api_client_tokens, api_clients};

use super::*;

/// An OAuth error (RFC 6749 section 5.2).
#[derive(Debug)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: &str) -> OAuthError {
        OAuthError {
            error,
            description: description.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    #[schema(example = "epc_Zm9vYmFy...")]
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the token expires.
    #[schema(example = 3600)]
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    #[schema(example = "activities:write progress:read")]
    pub scope: String,
}

/// What the grant checks of a client.
#[derive(Queryable, Selectable)]
#[diesel(table_name = api_clients, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Credentials {
    secret_hash: String,
    scopes: String,
    revoked_at: Option<chrono::NaiveDateTime>,
}

/// The client-credentials grant: checks the client's id and secret and issues a token
/// for the requested scopes (all of the client's scopes when none are requested).
pub fn issue_token(
    conn: &mut DbConn,
    ctx: &Context<()>,
    client_id: &ClientId,
    secret: &str,
    scope: Option<&str>,
) -> Result<Result<TokenResponse, OAuthError>, AppError> {
    let (cfg, now) = (&ctx.config, ctx.now);
    let found: Option<Credentials> = api_clients::table
        .find(client_id)
        .select(Credentials::as_select())
        .first(conn)
        .optional()?;
    let Some(Credentials {
        secret_hash: hash,
        scopes: allowed,
        revoked_at: revoked,
    }) = found
    else {
        return Ok(Err(OAuthError::new(
            "invalid_client",
            "unknown client or wrong secret",
        )));
    };
    // Counted as HTTP Basic attempts are: failures use up the client's limit (429).
    let matches = count_attempt(conn, cfg, now, client_id, |_| {
        Ok(super::basic::same(
            hash.as_bytes(),
            sha256_hex(secret).as_bytes(),
        ))
    })?;
    if !matches || revoked.is_some() {
        return Ok(Err(OAuthError::new(
            "invalid_client",
            "unknown client, wrong secret or revoked client",
        )));
    }
    let allowed = split_scopes(&allowed);
    let granted = match scope.map(split_scopes) {
        None => allowed.clone(),
        Some(asked) if asked.is_empty() => allowed.clone(),
        Some(asked) => {
            if let Some(bad) = asked.iter().find(|s| !allowed.contains(s)) {
                return Ok(Err(OAuthError::new(
                    "invalid_scope",
                    &format!("the client may not ask for the scope {bad}"),
                )));
            }
            asked
        }
    };
    let token = format!("{TOKEN_PREFIX}{}", random_token());
    let expires = now + dur(cfg.api_client_token_ttl);
    // Expired tokens of this client go when it gets a new one.
    diesel::delete(
        api_client_tokens::table
            .filter(api_client_tokens::client_id.eq(client_id))
            .filter(api_client_tokens::expires_at.le(to_db(now))),
    )
    .execute(conn)?;
    let token_id = Uuid::new_v4().to_string();
    diesel::insert_into(api_client_tokens::table)
        .values((
            api_client_tokens::id.eq(&token_id),
            api_client_tokens::client_id.eq(client_id),
            api_client_tokens::token_hash.eq(sha256_hex(&token)),
            api_client_tokens::scopes.eq(granted.join(" ")),
            api_client_tokens::created_at.eq(to_db(now)),
            api_client_tokens::expires_at.eq(to_db(expires)),
        ))
        .execute(conn)?;
    crate::audit::append(
        conn,
        now,
        crate::audit::Event {
            actor_id: Some(&format!("client:{client_id}")),
            client: Some(client_id),
            action: "token_issued",
            entity: "api_client",
            entity_id: client_id,
            enrolment_id: None,
            data: &json!({"token_id": token_id, "scope": granted.join(" "), "expires_at": expires}),
        },
    )?;
    Ok(Ok(TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: cfg.api_client_token_ttl.as_secs(),
        scope: granted.join(" "),
    }))
}
