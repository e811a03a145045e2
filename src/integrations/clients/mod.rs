//! API clients: learning platforms that call the API on their own behalf. An
//! administrator registers a client for an organisation and gets its credentials once;
//! the client exchanges them for short-lived access tokens with the OAuth 2.0
//! client-credentials grant (RFC 6749 section 4.4). Secrets and tokens are stored as
//! SHA-256 hashes (both are 256 random bits, so a slow hash adds nothing).
//!
//! A client token yields a [`Principal`] whose `client` is set: it sees only its
//! organisation's subtree, only through the scopes of its token, and only on the
//! endpoints [`route_policy`] lets clients use.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

pub use crate::auth::client_tokens::{
    authenticate, required_scope, route_policy, split_scopes, CLIENT_ROUTES, SCOPES,
    SCOPE_ACTIVITIES_WRITE, SCOPE_CATALOG_READ, SCOPE_PROGRESS_READ, TOKEN_PREFIX,
};
use crate::auth::crypto::{random_token, sha256_hex};
use crate::auth::principal::{Principal, Role};
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::ids::{ClientId, OrganisationId};
use crate::integrations::{audit_write, require_admin_over, visible_orgs};
use crate::schema::{api_client_tokens, api_clients};

mod basic;
pub mod http;
mod oauth;

pub use basic::{basic_principal, count_attempt};
pub use oauth::*;
/// Secrets start with this, so leaked ones are easy to recognise (secret scanners).
pub const SECRET_PREFIX: &str = "eps_";

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiClient {
    /// Also the OAuth `client_id`.
    pub id: String,
    pub organisation_id: String,
    #[schema(example = "Lärplattformen (Region Stockholm)")]
    pub name: String,
    #[schema(example = json!(["activities:write", "progress:read"]))]
    pub scopes: Vec<String>,
    /// `active` or `revoked`.
    pub status: String,
    #[serde(with = "crate::clock::millis")]
    pub secret_rotated_at: DateTime<Utc>,
    #[serde(default, with = "crate::clock::millis_opt")]
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_by: Option<String>,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl ApiClient {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiClient {
    pub id: Option<Uuid>,
    /// The client sees this organisation and the units below it.
    pub organisation_id: String,
    #[schema(example = "Lärplattformen (Region Stockholm)")]
    pub name: String,
    /// Of `activities:write`, `progress:read`, `catalog:read`.
    #[schema(example = json!(["activities:write", "progress:read", "catalog:read"]))]
    pub scopes: Vec<String>,
}

/// The credentials, shown once: only a hash of the secret is kept.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiClientCredentials {
    pub client: ApiClient,
    pub client_id: String,
    #[schema(example = "eps_3q2+7w...")]
    pub client_secret: String,
    /// Where to get access tokens (`grant_type=client_credentials`).
    #[schema(example = "/api/v1/oauth/token")]
    pub token_endpoint: String,
}

/// A client as stored (without its secret's hash).
#[derive(Queryable, Selectable)]
#[diesel(table_name = api_clients, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ClientRecord {
    id: ClientId,
    organisation_id: String,
    name: String,
    scopes: String,
    secret_rotated_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
    created_by: Option<String>,
    version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl From<ClientRecord> for ApiClient {
    fn from(r: ClientRecord) -> ApiClient {
        ApiClient {
            id: r.id.into_inner(),
            organisation_id: r.organisation_id,
            name: r.name,
            scopes: split_scopes(&r.scopes),
            secret_rotated_at: from_db(r.secret_rotated_at),
            status: if r.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            }
            .into(),
            revoked_at: r.revoked_at.map(from_db),
            created_by: r.created_by,
            version: r.version,
            created_at: from_db(r.created_at),
            updated_at: from_db(r.updated_at),
        }
    }
}

fn new_secret() -> String {
    format!("{SECRET_PREFIX}{}", random_token())
}

pub fn get_client(conn: &mut DbConn, id: &ClientId) -> Result<ApiClient, AppError> {
    let row: ClientRecord = api_clients::table
        .find(id)
        .select(ClientRecord::as_select())
        .first(conn)?;
    Ok(row.into())
}

/// A client the caller administers (404 otherwise, so others' clients stay unknown).
pub fn visible_client(
    conn: &mut DbConn,
    me: &Principal,
    id: &ClientId,
) -> Result<ApiClient, AppError> {
    let c = get_client(conn, id)?;
    if me.is_client()
        || !me.has_role_over(
            conn,
            Role::Administrator,
            &OrganisationId::from(&c.organisation_id),
        )?
    {
        return Err(AppError::NotFound);
    }
    Ok(c)
}

pub fn create_client(
    conn: &mut DbConn,
    ctx: &Ctx,
    n: NewApiClient,
) -> Result<ApiClientCredentials, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let mut errors = Vec::new();
    let name = n.name.trim().to_string();
    if let Some(problem) = crate::accounts::service::name_problem(&name) {
        errors.push(FieldError::new("name", problem));
    }
    let mut scopes: Vec<String> = Vec::new();
    for (i, s) in n.scopes.iter().enumerate() {
        if !SCOPES.contains(&s.as_str()) {
            errors.push(FieldError::new(
                format!("scopes[{i}]"),
                format!("unknown scope; known: {}", SCOPES.join(", ")),
            ));
        } else if !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    if n.scopes.is_empty() {
        errors.push(FieldError::new("scopes", "at least one scope"));
    }
    if crate::accounts::service::get_org(conn, &n.organisation_id).is_err() {
        errors.push(FieldError::new("organisation_id", "no such organisation"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    require_admin_over(conn, me, &OrganisationId::from(&n.organisation_id))?;
    let id =
        n.id.map_or_else(ClientId::random, |u| ClientId::new(u.to_string()));
    let secret = new_secret();
    diesel::insert_into(api_clients::table)
        .values((
            api_clients::id.eq(&id),
            api_clients::organisation_id.eq(&n.organisation_id),
            api_clients::name.eq(&name),
            api_clients::scopes.eq(scopes.join(" ")),
            api_clients::secret_hash.eq(sha256_hex(&secret)),
            api_clients::secret_rotated_at.eq(to_db(now)),
            api_clients::created_by.eq(&me.user_id),
            api_clients::version.eq(1),
            api_clients::created_at.eq(to_db(now)),
            api_clients::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let client = get_client(conn, &id)?;
    audit_write(conn, now, me, "created", "api_client", &id, &json!(client))?;
    Ok(ApiClientCredentials {
        client_id: id.into_inner(),
        client,
        client_secret: secret,
        token_endpoint: "/api/v1/oauth/token".into(),
    })
}

pub fn list_clients(
    conn: &mut DbConn,
    me: &Principal,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ApiClient>, AppError> {
    let orgs = visible_orgs(conn, me)?;
    let mut q = api_clients::table
        .filter(api_clients::organisation_id.eq_any(orgs))
        .select(ClientRecord::as_select())
        .order(api_clients::id)
        .limit(limit + 1)
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(api_clients::id.gt(a.to_string()));
    }
    Ok(q.load::<ClientRecord>(conn)?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// A new secret; the old one, and every token issued with it, stop working at once.
pub fn rotate_secret(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &ClientId,
) -> Result<ApiClientCredentials, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let c = visible_client(conn, me, id)?;
    if c.revoked_at.is_some() {
        return Err(AppError::Conflict("the client is revoked".into()));
    }
    let secret = new_secret();
    diesel::update(api_clients::table.find(id))
        .set((
            api_clients::secret_hash.eq(sha256_hex(&secret)),
            api_clients::secret_rotated_at.eq(to_db(now)),
            api_clients::version.eq(c.version + 1),
            api_clients::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    revoke_tokens(conn, now, id)?;
    let client = get_client(conn, id)?;
    audit_write(
        conn,
        now,
        me,
        "secret_rotated",
        "api_client",
        id,
        &json!(client),
    )?;
    Ok(ApiClientCredentials {
        client_id: id.to_string(),
        client,
        client_secret: secret,
        token_endpoint: "/api/v1/oauth/token".into(),
    })
}

fn revoke_tokens(conn: &mut DbConn, now: DateTime<Utc>, id: &ClientId) -> Result<(), AppError> {
    diesel::update(
        api_client_tokens::table
            .filter(api_client_tokens::client_id.eq(id))
            .filter(api_client_tokens::revoked_at.is_null()),
    )
    .set(api_client_tokens::revoked_at.eq(to_db(now)))
    .execute(conn)?;
    Ok(())
}

/// Revokes the client and its tokens for good.
pub fn revoke_client(conn: &mut DbConn, ctx: &Ctx, id: &ClientId) -> Result<ApiClient, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let c = visible_client(conn, me, id)?;
    if c.revoked_at.is_some() {
        return Ok(c);
    }
    diesel::update(api_clients::table.find(id))
        .set((
            api_clients::revoked_at.eq(to_db(now)),
            api_clients::version.eq(c.version + 1),
            api_clients::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    revoke_tokens(conn, now, id)?;
    let client = get_client(conn, id)?;
    audit_write(conn, now, me, "revoked", "api_client", id, &json!(client))?;
    Ok(client)
}
