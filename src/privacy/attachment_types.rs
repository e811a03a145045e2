//! Accepted attachment types per region (issue 17). A photo is the easiest way to carry
//! a patient record into a portfolio, so a region accepts PDF only until its
//! administrators opt in to more (photos, plain text). The choice is among the media
//! types the service handles at all (`ATTACHMENT_TYPES`), and an upload is checked
//! against the region of the enrolment it belongs to: the declared type here, the
//! content against the declared type in `portfolio::attachments::content_matches`.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::accounts::organisations::{self, OrgKind};
use crate::audit::{self, Event};
use crate::auth::principal::{org_chain, Principal, Role};
use crate::clock::{from_db, to_db};
use crate::config::Config;
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::ids::{EnrolmentId, OrganisationId};
use crate::schema::{enrolments, region_attachment_types};

/// What a region accepts until its administrators choose: PDF only.
pub const DEFAULT_TYPES: [&str; 1] = ["application/pdf"];

/// The attachment types a region accepts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AcceptedAttachmentTypes {
    pub region_id: String,
    /// The media types an attachment in this region may have (its content is checked,
    /// not only the declared type).
    #[schema(example = json!(["application/pdf", "image/jpeg"]))]
    pub media_types: Vec<String>,
    /// `true` while the region has not chosen: PDF only.
    pub is_default: bool,
    /// What the service can accept at all (`ATTACHMENT_TYPES`): the choices.
    pub available: Vec<String>,
    /// 0 while the region has not chosen.
    pub version: i32,
    /// When the region last chose; absent while it has not.
    #[serde(
        with = "crate::clock::millis_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_at: Option<DateTime<Utc>>,
}

impl AcceptedAttachmentTypes {
    pub fn etag(&self) -> String {
        etag(
            self.version,
            self.updated_at.unwrap_or(DateTime::UNIX_EPOCH),
        )
    }
}

/// The body of `PUT /organisations/{id}/attachment-types`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentTypesChange {
    /// Each one of the service's `available` types; an empty list accepts no
    /// attachments at all.
    #[schema(example = json!(["application/pdf", "image/jpeg", "image/png", "image/heic"]))]
    pub media_types: Vec<String>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = region_attachment_types, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Row {
    region_id: String,
    media_types: String,
    version: i32,
    updated_at: NaiveDateTime,
}

fn stored(conn: &mut DbConn, region_id: &OrganisationId) -> Result<Option<Row>, AppError> {
    Ok(region_attachment_types::table
        .find(region_id)
        .select(Row::as_select())
        .first(conn)
        .optional()?)
}

/// What the region accepts now: its choice (or the default), less anything the service
/// no longer handles (an operator may shorten `ATTACHMENT_TYPES` after a region chose).
fn effective(
    conn: &mut DbConn,
    cfg: &Config,
    region_id: &OrganisationId,
) -> Result<AcceptedAttachmentTypes, AppError> {
    let row = stored(conn, region_id)?;
    let (chosen, version, updated_at) = match &row {
        None => (
            DEFAULT_TYPES.iter().map(|s| s.to_string()).collect(),
            0,
            None,
        ),
        Some(r) => {
            let types: Vec<String> = serde_json::from_str(&r.media_types).map_err(|e| {
                AppError::unreadable("region_attachment_types", &r.region_id, "media_types", e)
            })?;
            (types, r.version, Some(from_db(r.updated_at)))
        }
    };
    Ok(AcceptedAttachmentTypes {
        region_id: region_id.to_string(),
        media_types: chosen
            .into_iter()
            .filter(|t| cfg.attachment_types.contains(t))
            .collect(),
        is_default: row.is_none(),
        available: cfg.attachment_types.clone(),
        version,
        updated_at,
    })
}

/// The region `id` names, for its administrators: 404 unknown, 403 not an administrator
/// of it, 422 an organisation below a region.
fn require_region_admin(
    conn: &mut DbConn,
    me: &Principal,
    id: &OrganisationId,
) -> Result<(), AppError> {
    let org = organisations::get_org(conn, id)?;
    Principal::require(me.has_role_over(conn, Role::Administrator, id)?)?;
    if org.kind != OrgKind::Region {
        return Err(AppError::Unprocessable(format!(
            "accepted attachment types are set per region; this organisation is a {} \
             (set them on the region at the top of its tree)",
            org.kind.as_str()
        )));
    }
    Ok(())
}

pub fn get(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &OrganisationId,
) -> Result<AcceptedAttachmentTypes, AppError> {
    require_region_admin(conn, &ctx.caller, id)?;
    effective(conn, &ctx.config, id)
}

/// Sets what a region accepts. Concurrent changes: the row's version guards the update,
/// and the first choice is an insert whose key is the region, so of two at once one
/// wins and the other is told (409, or 412 with `If-Match`).
pub fn set(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &OrganisationId,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    change: AttachmentTypesChange,
) -> Result<AcceptedAttachmentTypes, AppError> {
    require_region_admin(conn, &ctx.caller, id)?;
    let current = effective(conn, &ctx.config, id)?;
    if_match(&current.etag())?;
    let types = validate(&ctx.config, change.media_types)?;
    let text = serde_json::to_string(&types).map_err(AppError::internal)?;
    let now = to_db(ctx.now);
    if current.is_default {
        diesel::insert_into(region_attachment_types::table)
            .values((
                region_attachment_types::region_id.eq(id),
                region_attachment_types::media_types.eq(&text),
                region_attachment_types::version.eq(1),
                region_attachment_types::updated_by.eq(&ctx.caller.user_id),
                region_attachment_types::updated_at.eq(now),
            ))
            .execute(conn)?;
    } else {
        let n = diesel::update(
            region_attachment_types::table
                .find(id)
                .filter(region_attachment_types::version.eq(current.version)),
        )
        .set((
            region_attachment_types::media_types.eq(&text),
            region_attachment_types::version.eq(current.version + 1),
            region_attachment_types::updated_by.eq(&ctx.caller.user_id),
            region_attachment_types::updated_at.eq(now),
        ))
        .execute(conn)?;
        if n == 0 {
            return Err(AppError::PreconditionFailed);
        }
    }
    audit::append(
        conn,
        ctx.now,
        Event {
            actor_id: Some(&ctx.caller.user_id),
            client: ctx.client.user_agent.as_deref(),
            action: "updated",
            entity: "region_attachment_types",
            entity_id: id,
            enrolment_id: None,
            data: &json!({"before": current.media_types, "after": types}),
        },
    )?;
    effective(conn, &ctx.config, id)
}

/// Each type one the service handles, once; in the order given.
fn validate(cfg: &Config, given: Vec<String>) -> Result<Vec<String>, AppError> {
    let mut errors = Vec::new();
    let mut types: Vec<String> = Vec::new();
    for (i, t) in given.into_iter().enumerate() {
        let t = t.trim().to_ascii_lowercase();
        if !cfg.attachment_types.contains(&t) {
            errors.push(FieldError::new(
                format!("media_types[{i}]"),
                format!(
                    "not a type this service accepts; choose among {}",
                    cfg.attachment_types.join(", ")
                ),
            ));
        } else if !types.contains(&t) {
            types.push(t);
        }
    }
    if errors.is_empty() {
        Ok(types)
    } else {
        Err(AppError::Validation(errors))
    }
}

/// What an attachment of this enrolment may be: what its region accepts.
pub fn accepted_for_enrolment(
    conn: &mut DbConn,
    cfg: &Config,
    enrolment_id: &EnrolmentId,
) -> Result<Vec<String>, AppError> {
    let org: OrganisationId = enrolments::table
        .find(enrolment_id)
        .select(enrolments::organisation_id)
        .first(conn)?;
    let region = org_chain(conn, &org)?
        .pop()
        .ok_or_else(|| AppError::internal(format!("enrolment {enrolment_id}: no region")))?;
    Ok(effective(conn, cfg, &OrganisationId::from(region))?.media_types)
}

/// 415 unless `declared` is among `accepted`, naming what is.
pub fn require_accepted(accepted: &[String], declared: &str) -> Result<(), AppError> {
    if accepted.iter().any(|t| t == declared) {
        return Ok(());
    }
    Err(AppError::UnsupportedMediaType(format!(
        "this region does not accept attachments of type {declared}; it accepts {}",
        accepted_list(accepted)
    )))
}

/// The accepted types, for a problem's detail.
pub fn accepted_list(accepted: &[String]) -> String {
    if accepted.is_empty() {
        "no attachments at all".into()
    } else {
        accepted.join(", ")
    }
}
