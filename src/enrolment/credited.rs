//! Credited service (tillgodoräknande): clinical service before licence counted towards
//! the programme, at most six months.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::history::{record_change, touch, Changed};
use super::loaders::{delmal_codes_of, get_enrolment};
use crate::auth::principal::Principal;
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::error::{AppError, FieldError};
use crate::ids::{Day, EnrolmentId};
use crate::schema::credited_service;

/// Clinical service before licence credited towards the programme.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreditedService {
    pub id: String,
    #[schema(example = "AT, medicinkliniken, Danderyds sjukhus")]
    pub description: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    #[schema(example = 90)]
    pub credited_days: i32,
    /// What proves it, e.g. the certificate from the AT placement.
    #[schema(example = "Tjänstgöringsintyg 2024-12-02")]
    pub evidence: String,
    /// Delmål this service supports.
    #[schema(example = json!(["BT1", "BT15"]))]
    pub delmal: Vec<String>,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
}

/// A `credited_service` row as stored; `delmal` is a JSON array of codes.
#[derive(Queryable, Selectable)]
#[diesel(table_name = credited_service, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct CreditedRow {
    id: String,
    description: String,
    start_date: Day,
    end_date: Day,
    credited_days: i32,
    evidence: String,
    delmal: String,
    created_at: chrono::NaiveDateTime,
}

pub(crate) fn load_credited(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
) -> Result<Vec<CreditedService>, AppError> {
    let rows: Vec<CreditedRow> = credited_service::table
        .filter(credited_service::enrolment_id.eq(enrolment_id))
        .order(credited_service::start_date)
        .select(CreditedRow::as_select())
        .load(conn)?;
    rows.into_iter()
        .map(|r| {
            Ok(CreditedService {
                id: r.id,
                description: r.description,
                start_date: r.start_date.date(),
                end_date: r.end_date.date(),
                credited_days: r.credited_days,
                evidence: r.evidence,
                delmal: serde_json::from_str(&r.delmal).map_err(AppError::internal)?,
                created_at: from_db(r.created_at),
            })
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditedServiceInput {
    pub id: Option<uuid::Uuid>,
    /// e.g. `AT, medicinkliniken, Danderyds sjukhus`.
    #[schema(example = "AT, kirurgkliniken, Södersjukhuset")]
    pub description: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    /// Days credited (full-time equivalent); at most six months in all.
    #[schema(example = 60)]
    pub credited_days: i32,
    /// What proves the service (certificate reference).
    #[schema(example = "Tjänstgöringsintyg 2025-02-01")]
    pub evidence: String,
    /// Delmål the service supports.
    #[serde(default)]
    pub delmal: Vec<String>,
}

/// Six months, the most clinical service before licence that may be credited.
pub const MAX_CREDITED_DAYS: i32 = 183;

pub fn add_credited_service(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    enrolment_id: &EnrolmentId,
    c: CreditedServiceInput,
) -> Result<CreditedService, AppError> {
    let today = crate::clock::day_of(now);
    access::require(conn, me, enrolment_id, today, Access::Manage)?;
    let e = get_enrolment(conn, enrolment_id, today)?;
    let codes = delmal_codes_of(conn, enrolment_id)?;
    let mut errors = Vec::new();
    if c.description.trim().is_empty() {
        errors.push(FieldError::new("description", "is required"));
    }
    if c.evidence.trim().is_empty() {
        errors.push(FieldError::new(
            "evidence",
            "credited service needs evidence, e.g. the certificate",
        ));
    }
    if c.end_date < c.start_date {
        errors.push(FieldError::new("end_date", "must not be before start_date"));
    }
    let span = (c.end_date - c.start_date).num_days() + 1;
    let already: i32 = e.credited_service.iter().map(|x| x.credited_days).sum();
    if c.credited_days < 1 || c.credited_days as i64 > span.max(1) {
        errors.push(FieldError::new(
            "credited_days",
            "between 1 and the length of the period",
        ));
    } else if already + c.credited_days > MAX_CREDITED_DAYS {
        errors.push(FieldError::new(
            "credited_days",
            format!("at most six months ({MAX_CREDITED_DAYS} days) may be credited; {already} already are"),
        ));
    }
    for code in &c.delmal {
        if !codes.contains(code) {
            errors.push(FieldError::new("delmal", format!("unknown delmål {code}")));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let id =
        c.id.map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
    diesel::insert_into(credited_service::table)
        .values((
            credited_service::id.eq(&id),
            credited_service::enrolment_id.eq(enrolment_id),
            credited_service::description.eq(c.description.trim()),
            credited_service::start_date.eq(c.start_date.to_string()),
            credited_service::end_date.eq(c.end_date.to_string()),
            credited_service::credited_days.eq(c.credited_days),
            credited_service::evidence.eq(c.evidence.trim()),
            credited_service::delmal.eq(json!(c.delmal).to_string()),
            credited_service::created_by.eq(&me.user_id),
            credited_service::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    touch(conn, now, enrolment_id)?;
    // The description only as a keyed digest (`audit::text`, issue 17).
    let data = crate::audit::text::record_data(
        conn,
        now,
        &id,
        Some(enrolment_id),
        &json!({
            "description": c.description, "credited_days": c.credited_days, "delmal": c.delmal,
        }),
        &["credited_days", "delmal"],
    )?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        enrolment_id,
        Changed("created", "credited_service", &id),
        data,
    )?;
    load_credited(conn, enrolment_id)?
        .into_iter()
        .find(|x| x.id == id)
        .ok_or(AppError::NotFound)
}
