//! Trusted services: per region, the services whose transfer bundles it accepts, with
//! the public keys they publish at `GET /dossier-keys` (PEM). Kept by administrators; a
//! region's list also applies to the organisations below it.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{self, Event};
use crate::auth::principal::{org_chain, org_subtrees, Principal, Role};
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::dossier::signing;
use crate::error::{AppError, FieldError};
use crate::ids::OrganisationId;
use crate::schema::trusted_services;

/// Keys a single service may list (current and retired ones).
const MAX_KEYS: usize = 20;

/// One key of a trusted service.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrustedKey {
    /// The key's id as the service publishes it (first 16 hex digits of its SHA-256).
    #[schema(example = "3f2a9c0d5e6b7a81")]
    pub key_id: String,
    pub public_key_pem: String,
}

/// A service whose bundles the region accepts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrustedService {
    pub id: String,
    /// The region (or organisation) that trusts it.
    pub organisation_id: String,
    #[schema(example = "eportfolio Region Uppsala")]
    pub name: String,
    #[schema(example = "https://eportfolio.regionuppsala.se")]
    pub base_url: String,
    pub keys: Vec<TrustedKey>,
    pub created_by: String,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
}

/// A service to trust.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTrustedService {
    pub organisation_id: String,
    #[schema(example = "eportfolio Region Uppsala")]
    pub name: String,
    #[schema(example = "https://eportfolio.regionuppsala.se")]
    pub base_url: String,
    /// The service's keys as `GET /dossier-keys` there publishes them
    /// (`public_key_pem`), 1 to 20.
    pub public_keys: Vec<String>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = trusted_services, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Row {
    id: String,
    organisation_id: String,
    name: String,
    base_url: String,
    public_keys: String,
    created_by: String,
    created_at: NaiveDateTime,
}

fn from_row(r: Row) -> Result<TrustedService, AppError> {
    let keys: Vec<TrustedKey> = serde_json::from_str(&r.public_keys)
        .map_err(|e| AppError::unreadable("trusted_services", &r.id, "public_keys", e))?;
    Ok(TrustedService {
        id: r.id,
        organisation_id: r.organisation_id,
        name: r.name,
        base_url: r.base_url,
        keys,
        created_by: r.created_by,
        created_at: from_db(r.created_at),
    })
}

pub fn create(
    conn: &mut DbConn,
    ctx: &Ctx,
    n: NewTrustedService,
) -> Result<TrustedService, AppError> {
    let me = &ctx.caller;
    me.require_person()?;
    if crate::accounts::service::get_org(conn, &n.organisation_id).is_err() {
        return Err(AppError::validation(
            "organisation_id",
            "no such organisation",
        ));
    }
    Principal::require(me.has_role_over(
        conn,
        Role::Administrator,
        &OrganisationId::from(&n.organisation_id),
    )?)?;
    let mut errors = Vec::new();
    if n.name.trim().is_empty() || n.name.chars().count() > 200 {
        errors.push(FieldError::new("name", "1 to 200 characters"));
    }
    let url_ok = url::Url::parse(&n.base_url)
        .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
    if !url_ok || n.base_url.len() > 500 {
        errors.push(FieldError::new("base_url", "an http(s) URL"));
    }
    if n.public_keys.is_empty() || n.public_keys.len() > MAX_KEYS {
        errors.push(FieldError::new("public_keys", "1 to 20 keys"));
    }
    let mut keys = Vec::new();
    for (i, text) in n.public_keys.iter().enumerate() {
        match signing::parse_public_key(text) {
            Ok(k) => {
                let raw = k.to_bytes();
                keys.push(TrustedKey {
                    key_id: signing::key_id(&raw),
                    public_key_pem: signing::pem(&raw),
                });
            }
            Err(_) => errors.push(FieldError::new(
                format!("public_keys[{i}]"),
                "not an Ed25519 public key (PEM as /dossier-keys publishes it)",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    keys.dedup_by(|a, b| a.key_id == b.key_id);
    let id = uuid::Uuid::new_v4().to_string();
    diesel::insert_into(trusted_services::table)
        .values((
            trusted_services::id.eq(&id),
            trusted_services::organisation_id.eq(&n.organisation_id),
            trusted_services::name.eq(n.name.trim()),
            trusted_services::base_url.eq(&n.base_url),
            trusted_services::public_keys
                .eq(serde_json::to_string(&keys).map_err(AppError::internal)?),
            trusted_services::created_by.eq(me.user_id.as_str()),
            trusted_services::created_at.eq(to_db(ctx.now)),
        ))
        .execute(conn)?;
    let created = get(conn, &id)?;
    audit::append(
        conn,
        ctx.now,
        Event {
            actor_id: Some(&me.user_id),
            client: ctx.client.user_agent.as_deref(),
            action: "created",
            entity: "trusted_service",
            entity_id: &id,
            enrolment_id: None,
            data: &json!({"organisation_id": created.organisation_id, "name": created.name,
                          "base_url": created.base_url,
                          "key_ids": created.keys.iter().map(|k| &k.key_id).collect::<Vec<_>>()}),
        },
    )?;
    Ok(created)
}

fn get(conn: &mut DbConn, id: &str) -> Result<TrustedService, AppError> {
    let row: Row = trusted_services::table
        .find(id)
        .select(Row::as_select())
        .first(conn)?;
    from_row(row)
}

/// The services trusted in the organisations the caller administers.
pub fn list(conn: &mut DbConn, me: &Principal) -> Result<Vec<TrustedService>, AppError> {
    me.require_person()?;
    let roots = me.orgs_with(&[Role::Administrator]);
    if roots.is_empty() {
        return Err(AppError::Forbidden(
            "only administrators keep the list of trusted services".into(),
        ));
    }
    let orgs = org_subtrees(conn, &roots)?;
    let rows: Vec<Row> = trusted_services::table
        .filter(trusted_services::organisation_id.eq_any(&orgs))
        .order((trusted_services::created_at, trusted_services::id))
        .select(Row::as_select())
        .load(conn)?;
    rows.into_iter().map(from_row).collect()
}

/// Stops trusting a service; what was imported from it stays, with its provenance.
pub fn delete(conn: &mut DbConn, ctx: &Ctx, id: &str) -> Result<(), AppError> {
    let me = &ctx.caller;
    me.require_person()?;
    let found = get(conn, id)?;
    if !me.has_role_over(
        conn,
        Role::Administrator,
        &OrganisationId::from(&found.organisation_id),
    )? {
        return Err(AppError::NotFound);
    }
    diesel::delete(trusted_services::table.find(id)).execute(conn)?;
    audit::append(
        conn,
        ctx.now,
        Event {
            actor_id: Some(&me.user_id),
            client: ctx.client.user_agent.as_deref(),
            action: "deleted",
            entity: "trusted_service",
            entity_id: id,
            enrolment_id: None,
            data: &json!({"organisation_id": found.organisation_id, "name": found.name}),
        },
    )
}

/// A key trusted for a region, with the service that holds it.
pub struct Trusted {
    pub key_id: String,
    pub key: VerifyingKey,
    pub service_id: String,
    pub service_name: String,
}

/// The keys trusted for `org_id` (its own list and those of the organisations above it).
pub fn keys_for(conn: &mut DbConn, org_id: &OrganisationId) -> Result<Vec<Trusted>, AppError> {
    let chain = org_chain(conn, org_id)?;
    let rows: Vec<Row> = trusted_services::table
        .filter(trusted_services::organisation_id.eq_any(&chain))
        .order((trusted_services::created_at, trusted_services::id))
        .select(Row::as_select())
        .load(conn)?;
    let mut out = Vec::new();
    for r in rows {
        let s = from_row(r)?;
        for k in &s.keys {
            let key = signing::parse_public_key(&k.public_key_pem)
                .map_err(|e| AppError::unreadable("trusted_services", &s.id, "public_keys", e))?;
            out.push(Trusted {
                key_id: k.key_id.clone(),
                key,
                service_id: s.id.clone(),
                service_name: s.name.clone(),
            });
        }
    }
    Ok(out)
}
