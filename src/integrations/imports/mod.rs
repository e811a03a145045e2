//! Bulk import of a new cohort: users (invited by e-mail) and their enrolments, from JSON
//! or CSV. As everywhere else: every row is checked first, any error imports nothing, and
//! all errors are reported with their row numbers.
//!
//! An imported person who has no account yet gets an account placeholder (no password,
//! so no sign-in) with the role, so that enrolments can name them at once, and the usual
//! invitation mail; accepting it sets the password and second factor.
//!
//! An address that already has an account gets only the invitation: a role is that
//! person's to accept, exactly as on the invitation path, and until they do the importer
//! learns nothing of the account. The report therefore says `invited` for both, without
//! a user id, so it does not tell whether the address had an account.

pub mod http;

use chrono::NaiveDate;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::accounts::service::{self as accounts, NewInvitation};
use crate::auth::principal::{Principal, Role};
use crate::auth::service::{normalize_email, valid_email};
use crate::clock::to_db;
use crate::context::Ctx;
use crate::db::DbConn;
use crate::enrolment::service::{
    self as enrolment, Enrolment, NewEnrolment, PlacementInput, Track,
};
use crate::error::{AppError, FieldError};
use crate::ids::OrganisationId;
use crate::mail::Mail;
use crate::schema::{user_roles, users};

/// One person to invite.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserImportRow {
    #[schema(example = "ny.bt-lakare@regionstockholm.se")]
    pub email: String,
    #[schema(example = "Ny BT-läkare")]
    pub display_name: Option<String>,
    /// Default `trainee`.
    pub role: Option<Role>,
    pub organisation_id: String,
}

/// One enrolment; the trainee (and main supervisor) by e-mail.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentImportRow {
    #[schema(example = "ny.bt-lakare@regionstockholm.se")]
    pub email: String,
    pub template_id: String,
    /// Default: the template's latest version.
    pub template_version: Option<i32>,
    pub track: Track,
    #[schema(example = "2027-09-01")]
    pub start_date: NaiveDate,
    #[schema(example = "2028-08-31")]
    pub planned_end: NaiveDate,
    pub extent_percent: Option<i32>,
    pub main_supervisor_email: Option<String>,
    /// JSON only.
    #[serde(default)]
    pub placements: Vec<PlacementInput>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportedUser {
    /// Row number: JSON from 1, CSV from 2 (the header is row 1).
    pub row: usize,
    pub email: String,
    /// Only for `unchanged` (someone already holding the role there, whom the importer
    /// sees anyway). Null for `invited`: the account is linked when the invitation is
    /// accepted, and the report does not tell whether the address had one.
    pub user_id: Option<String>,
    pub role: Role,
    pub organisation_id: String,
    /// `invited` (an invitation was mailed; the role is theirs once they accept) or
    /// `unchanged` (they already had that role there).
    pub status: String,
    pub invitation_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserImportResult {
    pub items: Vec<ImportedUser>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnrolmentImportResult {
    pub items: Vec<Enrolment>,
}

/// Rows of a body, each still to be read into a row type: a JSON array of objects, or
/// CSV with a header (empty cells left out; `numeric` columns read as numbers).
pub fn rows_of(
    media_type: &str,
    body: &[u8],
    numeric: &[&str],
) -> Result<(Vec<Value>, usize), AppError> {
    match media_type {
        "application/json" => {
            let rows: Vec<Value> = serde_json::from_slice(body)
                .map_err(|e| AppError::Malformed(format!("expected a JSON array of rows: {e}")))?;
            Ok((rows, 1))
        }
        "text/csv" => {
            let mut reader = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(body);
            let headers: Vec<String> = reader
                .headers()
                .map_err(|e| AppError::Malformed(format!("CSV header: {e}")))?
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect();
            let mut rows = Vec::new();
            for (i, record) in reader.records().enumerate() {
                let record =
                    record.map_err(|e| AppError::Malformed(format!("CSV row {}: {e}", i + 2)))?;
                let mut obj = Map::new();
                for (h, cell) in headers.iter().zip(record.iter()) {
                    if cell.is_empty() {
                        continue;
                    }
                    let v = if numeric.contains(&h.as_str()) {
                        cell.parse::<i64>()
                            .map(Value::from)
                            .unwrap_or_else(|_| Value::String(cell.into()))
                    } else {
                        Value::String(cell.into())
                    };
                    obj.insert(h.clone(), v);
                }
                rows.push(Value::Object(obj));
            }
            Ok((rows, 2))
        }
        other => Err(AppError::UnsupportedMediaType(format!(
            "send application/json or text/csv, not {other:?}"
        ))),
    }
}

/// Reads every row, collecting the errors of those that do not fit.
fn read_rows<T: serde::de::DeserializeOwned>(
    rows: Vec<Value>,
    first_row: usize,
    errors: &mut Vec<FieldError>,
) -> Vec<(usize, usize, Option<T>)> {
    rows.into_iter()
        .enumerate()
        .map(|(i, v)| match serde_json::from_value::<T>(v) {
            Ok(r) => (i, i + first_row, Some(r)),
            Err(e) => {
                errors.push(FieldError::new(
                    format!("rows[{i}]"),
                    format!("row {}: {e}", i + first_row),
                ));
                (i, i + first_row, None)
            }
        })
        .collect()
}

fn row_error(errors: &mut Vec<FieldError>, i: usize, row: usize, field: &str, msg: &str) {
    errors.push(FieldError::new(
        format!("rows[{i}].{field}"),
        format!("row {row}: {msg}"),
    ));
}

/// Imports people: all rows or none. Returns what was done and the invitation mails.
pub fn import_users(
    conn: &mut DbConn,
    ctx: &Ctx,
    rows: Vec<Value>,
    first_row: usize,
) -> Result<(Vec<ImportedUser>, Vec<Mail>), AppError> {
    let (cfg, now, me) = (&ctx.config, ctx.now, &ctx.caller);
    me.require_person()?;
    Principal::require(me.has_role(Role::Administrator) || me.has_role(Role::DirectorOfStudies))?;
    if rows.is_empty() {
        return Err(AppError::validation("rows", "nothing to import"));
    }
    let mut errors = Vec::new();
    let read = read_rows::<UserImportRow>(rows, first_row, &mut errors);
    let mut seen: Vec<(String, Role, String)> = Vec::new();
    for (i, row, r) in &read {
        let Some(r) = r else { continue };
        let email = normalize_email(&r.email);
        let role = r.role.unwrap_or(Role::Trainee);
        if !valid_email(&email) {
            row_error(&mut errors, *i, *row, "email", "is not an e-mail address");
        }
        if let Some(name) = &r.display_name {
            if let Some(problem) = accounts::name_problem(name) {
                row_error(&mut errors, *i, *row, "display_name", problem);
            }
        }
        let key = (email.clone(), role, r.organisation_id.clone());
        if seen.contains(&key) {
            row_error(
                &mut errors,
                *i,
                *row,
                "email",
                "appears twice with that role and organisation",
            );
        }
        seen.push(key);
        if accounts::get_org(conn, &r.organisation_id).is_err() {
            row_error(
                &mut errors,
                *i,
                *row,
                "organisation_id",
                "no such organisation",
            );
        } else if !me.can_invite(conn, role, &OrganisationId::from(&r.organisation_id))? {
            row_error(
                &mut errors,
                *i,
                *row,
                "organisation_id",
                "you may not invite people with that role there",
            );
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let mut done = Vec::new();
    let mut mails = Vec::new();
    for (_, row, r) in read {
        let Some(r) = r else { continue };
        let email = normalize_email(&r.email);
        let role = r.role.unwrap_or(Role::Trainee);
        let existing: Option<String> = users::table
            .filter(users::email.eq(&email))
            .select(users::id)
            .first(conn)
            .optional()?;
        let has_role = match &existing {
            Some(uid) => {
                user_roles::table
                    .filter(user_roles::user_id.eq(uid))
                    .filter(user_roles::role.eq(role.as_str()))
                    .filter(user_roles::organisation_id.eq(&r.organisation_id))
                    .count()
                    .get_result::<i64>(conn)?
                    > 0
            }
            None => false,
        };
        if let (Some(uid), true) = (&existing, has_role) {
            done.push(ImportedUser {
                row,
                email,
                user_id: Some(uid.clone()),
                role,
                organisation_id: r.organisation_id,
                status: "unchanged".into(),
                invitation_id: None,
            });
            continue;
        }
        let (invitation, mail, _) = accounts::invite(
            conn,
            cfg,
            now,
            Some(me),
            NewInvitation {
                id: None,
                email: email.clone(),
                role,
                organisation_id: r.organisation_id.clone(),
                display_name: r.display_name.clone(),
            },
        )
        .map_err(|e| match e {
            AppError::Validation(fs) => AppError::Validation(
                fs.into_iter()
                    .map(|f| {
                        FieldError::new(
                            format!("rows[{}].{}", row - first_row, f.field),
                            format!("row {row}: {}", f.message),
                        )
                    })
                    .collect(),
            ),
            other => other,
        })?;
        mails.push(mail);
        if existing.is_none() {
            // A new address: the placeholder holds the role so enrolments can name them
            // at once; nobody else's account is touched.
            let uid = Uuid::new_v4().to_string();
            let name = r
                .display_name
                .clone()
                .unwrap_or_else(|| email.split('@').next().unwrap_or("").to_string());
            diesel::insert_into(users::table)
                .values((
                    users::id.eq(&uid),
                    users::email.eq(&email),
                    users::display_name.eq(accounts::validate_name("display_name", &name)?),
                    users::password_hash.eq(None::<String>),
                    users::email_mfa_enabled.eq(0),
                    users::status.eq(crate::auth::credentials::UserStatus::Active),
                    users::version.eq(1),
                    users::created_at.eq(to_db(now)),
                    users::updated_at.eq(to_db(now)),
                ))
                .execute(conn)?;
            crate::auth::roles::grant(
                conn,
                ctx.auth_changes(),
                now,
                crate::auth::roles::Grant {
                    user_id: &crate::ids::UserId::from(&uid),
                    role,
                    organisation_id: &r.organisation_id,
                    granted_by: Some(&me.user_id),
                },
            )?;
        }
        // The same entry either way (the invitation, not the account), so the audit
        // trail the importer reads does not tell either.
        crate::integrations::audit_write(
            conn,
            now,
            me,
            "imported",
            "invitation",
            &invitation.id,
            &serde_json::json!({"email": email, "role": role, "organisation_id": r.organisation_id}),
        )?;
        done.push(ImportedUser {
            row,
            email,
            user_id: None,
            role,
            organisation_id: r.organisation_id,
            status: "invited".into(),
            invitation_id: Some(invitation.id),
        });
    }
    Ok((done, mails))
}

/// The account of `email`, if the importer may see it (it holds a role in their part of
/// the organisation tree). An account elsewhere, or one invited but not yet accepted,
/// reads as no account at all: the import neither reaches nor reveals it.
fn user_by_email(
    conn: &mut DbConn,
    me: &Principal,
    email: &str,
) -> Result<Option<String>, AppError> {
    let found: Option<String> = users::table
        .filter(users::email.eq(normalize_email(email)))
        .select(users::id)
        .first(conn)
        .optional()?;
    match found {
        Some(id) => match accounts::visible_user(conn, me, &id) {
            Ok(_) => Ok(Some(id)),
            Err(AppError::NotFound) => Ok(None),
            Err(e) => Err(e),
        },
        None => Ok(None),
    }
}

/// Imports enrolments: all rows or none. Each row goes through the same checks as
/// `POST /enrolments`.
pub fn import_enrolments(
    conn: &mut DbConn,
    ctx: &Ctx,
    rows: Vec<Value>,
    first_row: usize,
) -> Result<Vec<Enrolment>, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    me.require_person()?;
    Principal::require(me.has_role(Role::Administrator) || me.has_role(Role::DirectorOfStudies))?;
    if rows.is_empty() {
        return Err(AppError::validation("rows", "nothing to import"));
    }
    let mut errors = Vec::new();
    let read = read_rows::<EnrolmentImportRow>(rows, first_row, &mut errors);
    let mut created = Vec::new();
    for (i, row, r) in read {
        let Some(r) = r else { continue };
        let trainee = user_by_email(conn, me, &r.email)?;
        if trainee.is_none() {
            row_error(
                &mut errors,
                i,
                row,
                "email",
                "no such user here; import the people first (and they accept)",
            );
        }
        let main = match &r.main_supervisor_email {
            Some(e) => {
                let found = user_by_email(conn, me, e)?;
                if found.is_none() {
                    row_error(&mut errors, i, row, "main_supervisor_email", "no such user");
                }
                found
            }
            None => None,
        };
        let Some(trainee) = trainee else { continue };
        let input = NewEnrolment {
            id: None,
            trainee_id: trainee,
            template_id: r.template_id,
            template_version: r.template_version,
            track: r.track,
            start_date: r.start_date,
            planned_end: r.planned_end,
            extent_percent: r.extent_percent,
            main_supervisor_id: main,
            placements: r.placements,
            leave_periods: Vec::new(),
            // Linking an ST to its BT is done on the enrolment itself, not by import.
            bt_enrolment_id: None,
        };
        // A savepoint per row: a failed row leaves the transaction usable (PostgreSQL),
        // so every row is checked; the whole import is rolled back if any failed.
        let result = conn.transaction(|c| enrolment::create_enrolment(c, now, me, input));
        match result {
            Ok(e) => created.push(e),
            Err(AppError::Validation(fs)) => {
                for f in fs {
                    row_error(&mut errors, i, row, &f.field, &f.message);
                }
            }
            Err(AppError::Forbidden(_)) => row_error(
                &mut errors,
                i,
                row,
                "template_id",
                "you may not enrol trainees on this template",
            ),
            Err(AppError::Conflict(m)) | Err(AppError::Unprocessable(m)) => {
                row_error(&mut errors, i, row, "email", &m)
            }
            Err(other) => return Err(other),
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    Ok(created)
}
