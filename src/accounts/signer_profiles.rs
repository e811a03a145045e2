//! What the forms print about a person with an account who signs (issue 14 item 8): their
//! specialty (specialitet), tjänsteställe (workplace) and the date of their
//! handledarutbildning (supervisor training). The certificates of HSLF-FS 2021:8 and
//! SOSFS 2015:8 have lines for the signer's specialty and tjänsteställe; the dossier
//! prints all three beside each signer's name.
//!
//! Kept beside the account, not on an assignment: it is the same person on every
//! trainee's forms. Edited by the person, or by an administrator or director of studies
//! over an organisation where the person holds a role (who may see the account may edit
//! what it prints); everyone else gets 404, as for the account itself.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts::users::visible_user;
use crate::audit::{self, Event};
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::ids::{Day, UserId};
use crate::schema::signer_profiles;

/// What an audit entry keeps of a signer profile as values; the specialty and workplace
/// only as keyed digests (`audit::text`, issue 17).
pub const AUDIT_FACTS: &[&str] = &[
    "user_id",
    "supervisor_training_on",
    "version",
    "updated_by",
    "updated_at",
];

/// A person's signer profile. Every field is null until stated.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignerProfile {
    pub user_id: String,
    /// The person's specialty as a specialist (specialitet), as they name it; null: not
    /// stated (or not a specialist).
    #[schema(example = "Allmänmedicin")]
    pub specialty: Option<String>,
    /// Tjänsteställe: where the person works, as the forms print it.
    #[schema(example = "Vårdcentral Solna, Region Stockholm")]
    pub workplace: Option<String>,
    /// Date of the person's handledarutbildning (supervisor training), `YYYY-MM-DD`.
    #[schema(value_type = Option<String>, format = Date, example = "2024-03-15")]
    pub supervisor_training_on: Option<String>,
    /// 0 while nothing was ever stated.
    pub version: i32,
    pub updated_by: Option<String>,
    #[serde(default, with = "crate::clock::millis_opt")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl SignerProfile {
    pub fn etag(&self) -> String {
        etag(
            self.version,
            self.updated_at.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        )
    }
}

/// A `signer_profiles` row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = signer_profiles, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Row {
    pub user_id: UserId,
    pub specialty: Option<String>,
    pub workplace: Option<String>,
    pub supervisor_training_on: Option<Day>,
    pub version: i32,
    pub updated_by: UserId,
    pub updated_at: NaiveDateTime,
}

fn from_row(r: Row) -> SignerProfile {
    SignerProfile {
        user_id: r.user_id.into_inner(),
        specialty: r.specialty,
        workplace: r.workplace,
        supervisor_training_on: r.supervisor_training_on.map(Day::to_text),
        version: r.version,
        updated_by: Some(r.updated_by.into_inner()),
        updated_at: Some(from_db(r.updated_at)),
    }
}

/// The profiles of these users (those who stated anything), for the dossier.
pub fn of_users(conn: &mut DbConn, ids: &[String]) -> Result<Vec<SignerProfile>, AppError> {
    let rows: Vec<Row> = signer_profiles::table
        .filter(signer_profiles::user_id.eq_any(ids))
        .select(Row::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(from_row).collect())
}

fn stored(conn: &mut DbConn, user_id: &UserId) -> Result<SignerProfile, AppError> {
    let row: Option<Row> = signer_profiles::table
        .find(user_id)
        .select(Row::as_select())
        .first(conn)
        .optional()?;
    Ok(row.map(from_row).unwrap_or_else(|| SignerProfile {
        user_id: user_id.to_string(),
        specialty: None,
        workplace: None,
        supervisor_training_on: None,
        version: 0,
        updated_by: None,
        updated_at: None,
    }))
}

/// The profile of a user I may see (404 otherwise).
pub fn get(conn: &mut DbConn, ctx: &Ctx, user_id: &UserId) -> Result<SignerProfile, AppError> {
    visible_user(conn, &ctx.caller, user_id)?;
    stored(conn, user_id)
}

/// What a PUT sends: the whole profile (an absent or null field clears it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignerProfileInput {
    #[schema(example = "Allmänmedicin")]
    pub specialty: Option<String>,
    #[schema(example = "Vårdcentral Solna, Region Stockholm")]
    pub workplace: Option<String>,
    /// `YYYY-MM-DD`, not in the future.
    #[schema(value_type = Option<String>, format = Date, example = "2024-03-15")]
    pub supervisor_training_on: Option<String>,
}

/// A free text the forms print: trimmed, empty is "not stated", and like a display name
/// no control or text-direction characters that could forge lines on a certificate.
fn text(field: &str, v: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    let v = v.map(str::trim).filter(|v| !v.is_empty())?;
    if crate::accounts::service::name_problem(v).is_some() {
        errors.push(FieldError::new(
            field,
            "1 to 200 characters of printable text",
        ));
    }
    Some(v.to_string())
}

/// A checked input.
pub struct Checked {
    pub specialty: Option<String>,
    pub workplace: Option<String>,
    pub trained: Option<Day>,
}

/// Checks an input against `today` (Europe/Stockholm day of the request).
pub fn checked(input: &SignerProfileInput, today: NaiveDate) -> Result<Checked, AppError> {
    let mut errors = Vec::new();
    let specialty = text("specialty", input.specialty.as_deref(), &mut errors);
    let workplace = text("workplace", input.workplace.as_deref(), &mut errors);
    let trained = match input.supervisor_training_on.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => match Day::parse(s) {
            Some(d) if d.date() <= today => Some(d),
            Some(_) => {
                errors.push(FieldError::new(
                    "supervisor_training_on",
                    "a date of training already taken, not in the future",
                ));
                None
            }
            None => {
                errors.push(FieldError::new("supervisor_training_on", "YYYY-MM-DD"));
                None
            }
        },
    };
    if errors.is_empty() {
        Ok(Checked {
            specialty,
            workplace,
            trained,
        })
    } else {
        Err(AppError::Validation(errors))
    }
}

/// Replaces the profile of a user I may see (the person, or an administrator or director
/// of studies over them). `if_match` sees the current ETag (version 0 before the first PUT).
pub fn put(
    conn: &mut DbConn,
    ctx: &Ctx,
    user_id: &UserId,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    input: &SignerProfileInput,
) -> Result<SignerProfile, AppError> {
    ctx.caller.require_person()?;
    let current = get(conn, ctx, user_id)?;
    if_match(&current.etag())?;
    let Checked {
        specialty,
        workplace,
        trained,
    } = checked(input, ctx.today())?;
    let now = to_db(ctx.now);
    let values = (
        signer_profiles::specialty.eq(&specialty),
        signer_profiles::workplace.eq(&workplace),
        signer_profiles::supervisor_training_on.eq(trained.map(Day::to_text)),
        signer_profiles::version.eq(current.version + 1),
        signer_profiles::updated_by.eq(&ctx.caller.user_id),
        signer_profiles::updated_at.eq(now),
    );
    if current.version == 0 {
        // Two first PUTs at once: the second meets the primary key (409), never a
        // silent overwrite.
        diesel::insert_into(signer_profiles::table)
            .values((signer_profiles::user_id.eq(user_id), values))
            .execute(conn)?;
    } else {
        // Conditional on the version read: of two edits at once only one applies.
        let changed = diesel::update(
            signer_profiles::table
                .find(user_id)
                .filter(signer_profiles::version.eq(current.version)),
        )
        .set(values)
        .execute(conn)?;
        if changed != 1 {
            return Err(AppError::PreconditionFailed);
        }
    }
    let profile = stored(conn, user_id)?;
    // The specialty and workplace only as keyed digests under the account's key, which
    // an account erasure deletes (issue 17).
    let data = audit::text::record_data(conn, ctx.now, user_id, None, &profile, AUDIT_FACTS)?;
    audit::append(
        conn,
        ctx.now,
        Event {
            actor_id: Some(&ctx.caller.user_id),
            client: None,
            action: "signer_profile_updated",
            entity: "user",
            entity_id: user_id,
            enrolment_id: None,
            data: &data,
        },
    )?;
    Ok(profile)
}
