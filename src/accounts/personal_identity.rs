//! A person's identity as Swedish health care records it: personnummer or
//! samordningsnummer, skyddad personuppgift (protected identity) and HSA-id.
//!
//! - The number is sealed at rest (`secrets`), with a keyed hash beside it for the
//!   uniqueness check per region (a database copy alone can neither read the number nor
//!   test guesses against the hash).
//! - Who sees it: the person, and administrators and directors of studies over an
//!   organisation where the person holds a role (the same people who see the account,
//!   `users::visible_user`). Everyone else gets 404 for the whole record.
//! - Protected identity may be set only by those administrators and directors. It keeps
//!   the person's contact details from everyone else (certificates print only what the
//!   form needs) and keeps them out of cohort CSV exports.
//! - The audit log records which fields changed, never the number.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::personal_number::{self, NumberError};
use crate::audit::{self, Event};
use crate::auth::principal::{load_roles, org_chain, Principal, Role};
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::ids::UserId;
use crate::schema::{personal_identities, users};

/// The field names, as in requests and in 422 problems.
pub const NUMBER_FIELD: &str = "personal_identity_number";
pub const HSA_FIELD: &str = "hsa_id";
pub const PROTECTED_FIELD: &str = "protected_identity";

use crate::secrets::{personal_number_aad as number_aad, Keyring, PERSONAL_NUMBER_MAC};

/// The unique index that makes a number unique per region.
const UNIQUE_INDEX: &str = "personal_identities_number_per_region";

/// A person's identity record (personnummer, skyddad personuppgift, HSA-id).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonalIdentity {
    pub user_id: String,
    /// Personnummer or samordningsnummer, `YYYYMMDD-NNNN`; absent when none is recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "19121212-1212")]
    pub personal_identity_number: Option<String>,
    /// `personnummer` or `samordningsnummer` (day of birth + 60); absent with the number.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "personnummer")]
    pub number_kind: Option<String>,
    /// Skyddad personuppgift: contact details are shown only to administrators and
    /// directors of studies, and the person is left out of cohort CSV exports.
    pub protected_identity: bool,
    /// HSA-id of health-care staff (`SE` + organisation number + `-` + code).
    #[schema(example = "SE2321000016-15R7")]
    pub hsa_id: Option<String>,
    /// 0 until something is recorded.
    pub version: i32,
    #[serde(default, with = "crate::clock::millis_opt")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl PersonalIdentity {
    pub fn etag(&self) -> String {
        etag(
            self.version,
            self.updated_at.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        )
    }
}

/// A `personal_identities` row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = personal_identities, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Row {
    user_id: UserId,
    region_id: String,
    number_sealed: Option<String>,
    number_mac: Option<String>,
    protected_identity: i32,
    hsa_id: Option<String>,
    version: i32,
    updated_at: chrono::NaiveDateTime,
}

fn row(conn: &mut DbConn, user_id: &UserId) -> Result<Option<Row>, AppError> {
    Ok(personal_identities::table
        .find(user_id)
        .select(Row::as_select())
        .first(conn)
        .optional()?)
}

fn protected_flag(r: &Row) -> Result<bool, AppError> {
    match r.protected_identity {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(AppError::unreadable(
            "personal identity",
            &r.user_id,
            "protected_identity",
            other,
        )),
    }
}

/// The number of a row, opened and read back.
fn open_number(
    keys: &Keyring,
    r: &Row,
) -> Result<Option<personal_number::PersonalNumber>, AppError> {
    let Some(sealed) = &r.number_sealed else {
        return Ok(None);
    };
    let digits = keys.open(&number_aad(&r.user_id), sealed)?;
    personal_number::from_stored(&digits)
        .map(Some)
        .ok_or_else(|| {
            // The digits themselves never go into the error (it is logged).
            AppError::unreadable(
                "personal identity",
                &r.user_id,
                "number",
                "not a valid number",
            )
        })
}

fn view(keys: &Keyring, user_id: &UserId, r: Option<Row>) -> Result<PersonalIdentity, AppError> {
    let Some(r) = r else {
        return Ok(PersonalIdentity {
            user_id: user_id.to_string(),
            personal_identity_number: None,
            number_kind: None,
            protected_identity: false,
            hsa_id: None,
            version: 0,
            updated_at: None,
        });
    };
    let number = open_number(keys, &r)?;
    Ok(PersonalIdentity {
        user_id: r.user_id.to_string(),
        personal_identity_number: number.as_ref().map(|n| n.display()),
        number_kind: number.as_ref().map(|n| n.kind().as_str().to_string()),
        protected_identity: protected_flag(&r)?,
        hsa_id: r.hsa_id.clone(),
        version: r.version,
        updated_at: Some(from_db(r.updated_at)),
    })
}

/// How the caller stands to the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// An administrator or director of studies over an organisation where the person
    /// holds a role (possibly the person themselves).
    Steward,
    /// The person, without such a role over themselves.
    Own,
}

/// The caller's standing to the person; 404 for everyone else (whether the person
/// exists is not theirs to learn), 403 for API clients.
pub fn standing(conn: &mut DbConn, me: &Principal, user_id: &UserId) -> Result<Standing, AppError> {
    me.require_person()?;
    let exists: i64 = users::table
        .filter(users::id.eq(user_id))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        return Err(AppError::NotFound);
    }
    for grant in load_roles(conn, user_id)? {
        if me.has_role_over(conn, Role::Administrator, &grant.organisation_id)?
            || me.has_role_over(conn, Role::DirectorOfStudies, &grant.organisation_id)?
        {
            return Ok(Standing::Steward);
        }
    }
    if me.user_id == *user_id {
        return Ok(Standing::Own);
    }
    Err(AppError::NotFound)
}

/// The person's identity record, for those who may see it.
pub fn get(conn: &mut DbConn, ctx: &Ctx, user_id: &UserId) -> Result<PersonalIdentity, AppError> {
    standing(conn, &ctx.caller, user_id)?;
    let r = row(conn, user_id)?;
    view(ctx.keyring()?, user_id, r)
}

/// What a caller asks to change; `Some(None)` clears a field.
#[derive(Debug, Default)]
pub struct Change {
    pub personal_identity_number: Option<Option<String>>,
    pub hsa_id: Option<Option<String>>,
    pub protected_identity: Option<bool>,
}

/// The region a person's number must be unique in: the region at the top of the
/// organisation of their first role.
fn region_of(conn: &mut DbConn, user_id: &UserId) -> Result<String, AppError> {
    let first = load_roles(conn, user_id)?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Unprocessable("the person holds no role in a region".into()))?;
    org_chain(conn, &first.organisation_id)?
        .pop()
        .ok_or_else(|| AppError::Unprocessable("the person holds no role in a region".into()))
}

fn number_problem(e: NumberError) -> FieldError {
    FieldError::new(NUMBER_FIELD, e.message())
}

fn duplicate() -> AppError {
    AppError::validation(
        NUMBER_FIELD,
        "this number is already recorded for another person in this region",
    )
}

/// Records a change. The person may set their number and HSA-id; administrators and
/// directors of studies over them may also set protected identity.
pub fn update(
    conn: &mut DbConn,
    ctx: &Ctx,
    user_id: &UserId,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    change: Change,
) -> Result<PersonalIdentity, AppError> {
    let standing = standing(conn, &ctx.caller, user_id)?;
    if change.protected_identity.is_some() && standing != Standing::Steward {
        return Err(AppError::Forbidden(
            "only administrators and directors of studies set protected identity".into(),
        ));
    }
    let current = row(conn, user_id)?;
    let current_tag = match &current {
        Some(r) => etag(r.version, from_db(r.updated_at)),
        None => view(ctx.keyring()?, user_id, None)?.etag(),
    };
    if_match(&current_tag)?;

    // Every field's problem at once.
    let mut problems = Vec::new();
    let number = match &change.personal_identity_number {
        Some(Some(text)) => match personal_number::parse(text, ctx.today()) {
            Ok(n) => Some(Some(n)),
            Err(e) => {
                problems.push(number_problem(e));
                None
            }
        },
        Some(None) => Some(None),
        None => None,
    };
    let hsa_id = match &change.hsa_id {
        Some(Some(text)) => match personal_number::parse_hsa_id(text) {
            Ok(h) => Some(Some(h)),
            Err(message) => {
                problems.push(FieldError::new(HSA_FIELD, message));
                None
            }
        },
        Some(None) => Some(None),
        None => None,
    };
    if !problems.is_empty() {
        return Err(AppError::Validation(problems));
    }

    let old_number = match &current {
        Some(r) => open_number(ctx.keyring()?, r)?,
        None => None,
    };
    let old_protected = match &current {
        Some(r) => protected_flag(r)?,
        None => false,
    };
    let old_hsa = current.as_ref().and_then(|r| r.hsa_id.clone());

    let mut changed = Vec::new();
    let (mut sealed, mut mac) = match &current {
        Some(r) => (r.number_sealed.clone(), r.number_mac.clone()),
        None => (None, None),
    };
    let region = match &current {
        Some(r) => r.region_id.clone(),
        None => region_of(conn, user_id)?,
    };
    if let Some(new) = number {
        if new != old_number {
            changed.push(NUMBER_FIELD);
            match new {
                None => (sealed, mac) = (None, None),
                Some(n) => {
                    let digest = ctx.keyring()?.mac_current(
                        conn,
                        PERSONAL_NUMBER_MAC,
                        n.digits().as_bytes(),
                    )?;
                    let taken: i64 = personal_identities::table
                        .filter(personal_identities::region_id.eq(&region))
                        .filter(personal_identities::number_mac.eq(&digest))
                        .filter(personal_identities::user_id.ne(user_id))
                        .count()
                        .get_result(conn)?;
                    if taken > 0 {
                        return Err(duplicate());
                    }
                    sealed = Some(ctx.keyring()?.seal(&number_aad(user_id), n.digits())?);
                    mac = Some(digest);
                }
            }
        }
    }
    let hsa = match hsa_id {
        Some(h) => {
            if h != old_hsa {
                changed.push(HSA_FIELD);
            }
            h
        }
        None => old_hsa,
    };
    let protected = match change.protected_identity {
        Some(p) => {
            if p != old_protected {
                changed.push(PROTECTED_FIELD);
            }
            p
        }
        None => old_protected,
    };
    if changed.is_empty() {
        return view(ctx.keyring()?, user_id, current);
    }

    let now = to_db(ctx.now);
    let write = match &current {
        None => diesel::insert_into(personal_identities::table)
            .values((
                personal_identities::user_id.eq(user_id),
                personal_identities::region_id.eq(&region),
                personal_identities::number_sealed.eq(&sealed),
                personal_identities::number_mac.eq(&mac),
                personal_identities::protected_identity.eq(i32::from(protected)),
                personal_identities::hsa_id.eq(&hsa),
                personal_identities::version.eq(1),
                personal_identities::updated_at.eq(now),
            ))
            .execute(conn),
        Some(r) => diesel::update(personal_identities::table.find(user_id))
            .set((
                personal_identities::number_sealed.eq(&sealed),
                personal_identities::number_mac.eq(&mac),
                personal_identities::protected_identity.eq(i32::from(protected)),
                personal_identities::hsa_id.eq(&hsa),
                personal_identities::version.eq(r.version + 1),
                personal_identities::updated_at.eq(now),
            ))
            .execute(conn),
    };
    if let Err(e) = write {
        // Two people given the same number at the same moment: the unique index decides,
        // and the loser gets the same problem as if it had been there first.
        if is_number_collision(&e) {
            return Err(duplicate());
        }
        return Err(e.into());
    }
    audit::append(
        conn,
        ctx.now,
        Event {
            actor_id: Some(&ctx.caller.user_id),
            client: ctx.client.user_agent.as_deref(),
            action: "updated",
            entity: "personal_identity",
            entity_id: user_id,
            enrolment_id: None,
            // Which fields changed, never their values.
            data: &json!({ "changed": changed }),
        },
    )?;
    let r = row(conn, user_id)?;
    view(ctx.keyring()?, user_id, r)
}

fn is_number_collision(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            info.constraint_name() == Some(UNIQUE_INDEX) || info.message().contains("number_mac")
        }
        _ => false,
    }
}

/// The number to print on a certificate that asks for it (`YYYYMMDD-NNNN`), or `None`
/// when none is recorded. For the certificate code only: it does no access check of its
/// own (the certificate's readers are decided there).
pub fn for_certificate(
    conn: &mut DbConn,
    keys: &Keyring,
    user_id: &UserId,
) -> Result<Option<String>, AppError> {
    match row(conn, user_id)? {
        Some(r) => Ok(open_number(keys, &r)?.map(|n| n.display())),
        None => Ok(None),
    }
}

/// Does the person have protected identity (skyddad personuppgift)?
pub fn is_protected(conn: &mut DbConn, user_id: &UserId) -> Result<bool, AppError> {
    Ok(protected_among(conn, &[user_id.to_string()])?.contains(user_id.as_str()))
}

/// Which of `user_ids` have protected identity.
pub fn protected_among(
    conn: &mut DbConn,
    user_ids: &[String],
) -> Result<HashSet<String>, AppError> {
    let mut out = HashSet::new();
    for chunk in user_ids.chunks(500) {
        let rows: Vec<(String, i32)> = personal_identities::table
            .filter(personal_identities::user_id.eq_any(chunk))
            .filter(personal_identities::protected_identity.ne(0))
            .select((
                personal_identities::user_id,
                personal_identities::protected_identity,
            ))
            .load(conn)?;
        for (id, flag) in rows {
            if flag != 1 {
                return Err(AppError::unreadable(
                    "personal identity",
                    &id,
                    "protected_identity",
                    flag,
                ));
            }
            out.insert(id);
        }
    }
    Ok(out)
}
