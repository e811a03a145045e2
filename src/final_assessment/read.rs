//! Reading final assessments, and who may read them.

use diesel::prelude::*;

use super::model::{Decision, FinalAssessment, FinalSigner, FinalStatus, Mode, SignerRole};
use crate::auth::principal::Principal;
use crate::clock::from_db;
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::error::AppError;
use crate::ids::{EnrolmentId, UserId};
use crate::schema::{final_assessment_signers, final_assessments, users};

/// A `final_assessments` row as stored; `judgements` is a JSON array.
#[derive(Queryable, Selectable)]
#[diesel(table_name = final_assessments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct FinalRow {
    id: String,
    enrolment_id: EnrolmentId,
    mode: Mode,
    decision: Option<Decision>,
    judgements: String,
    missing: String,
    rationale: String,
    status: FinalStatus,
    content_hash: Option<String>,
    created_by: UserId,
    decided_at: Option<chrono::NaiveDateTime>,
    version: i32,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

/// A signer with the name to show: their display name, or their email without one.
#[derive(Queryable, Selectable)]
#[diesel(table_name = final_assessment_signers, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct SignerRow {
    final_assessment_id: String,
    user_id: UserId,
    #[diesel(select_expression = users::display_name, select_expression_type = users::display_name)]
    display_name: String,
    #[diesel(select_expression = users::email, select_expression_type = users::email)]
    email: String,
    role: SignerRole,
    signed_at: Option<chrono::NaiveDateTime>,
    signature_method: Option<String>,
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<FinalAssessment, AppError> {
    let a: FinalRow = final_assessments::table
        .find(id)
        .select(FinalRow::as_select())
        .first(conn)?;
    let signers = signers_of(conn, std::slice::from_ref(&a.id))?;
    assemble(a, signers)
}

/// The signers of the given final assessments, by role and user, each with its own.
fn signers_of(conn: &mut DbConn, ids: &[String]) -> Result<Vec<SignerRow>, AppError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(final_assessment_signers::table
        .inner_join(users::table.on(users::id.eq(final_assessment_signers::user_id)))
        .filter(final_assessment_signers::final_assessment_id.eq_any(ids))
        .order((
            final_assessment_signers::role,
            final_assessment_signers::user_id,
        ))
        .select(SignerRow::as_select())
        .load(conn)?)
}

/// A final assessment from its row and its signers (the signers of others are skipped).
fn assemble(a: FinalRow, signers: Vec<SignerRow>) -> Result<FinalAssessment, AppError> {
    Ok(FinalAssessment {
        enrolment_id: a.enrolment_id,
        mode: a.mode,
        decision: a.decision,
        judgements: serde_json::from_str(&a.judgements).map_err(AppError::internal)?,
        missing: a.missing,
        rationale: a.rationale,
        status: a.status,
        signers: signers
            .into_iter()
            .filter(|s| s.final_assessment_id == a.id)
            .map(|s| FinalSigner {
                user_id: s.user_id,
                name: if s.display_name.trim().is_empty() {
                    s.email
                } else {
                    s.display_name
                },
                role: s.role,
                signed_at: s.signed_at.map(from_db),
                signature_method: s.signature_method,
            })
            .collect(),
        id: a.id,
        content_hash: a.content_hash,
        created_by: a.created_by.into_inner(),
        decided_at: a.decided_at.map(from_db),
        version: a.version,
        created_at: from_db(a.created_at),
        updated_at: from_db(a.updated_at),
        independence: None,
    })
}

pub(crate) fn is_signer(f: &FinalAssessment, user: &str) -> bool {
    f.signers.iter().any(|s| s.user_id == user)
}

/// Signers always read what they are to sign (a committee member may have no other
/// part in the training); otherwise the enrolment's rules apply.
pub fn readable(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    today: chrono::NaiveDate,
) -> Result<FinalAssessment, AppError> {
    let f = get(conn, id)?;
    if !is_signer(&f, &me.user_id) {
        access::require(
            conn,
            me,
            &EnrolmentId::from(&f.enrolment_id),
            today,
            Access::Read,
        )?;
    }
    Ok(f)
}

/// Is the user a signer of one of this enrolment's final assessments? Such a committee
/// member reads the dossier they decide on.
pub fn is_signer_of_enrolment(
    conn: &mut DbConn,
    user_id: &UserId,
    enrolment_id: &EnrolmentId,
) -> Result<bool, AppError> {
    let n: i64 = final_assessment_signers::table
        .inner_join(
            final_assessments::table
                .on(final_assessments::id.eq(final_assessment_signers::final_assessment_id)),
        )
        .filter(final_assessments::enrolment_id.eq(enrolment_id))
        .filter(final_assessment_signers::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn list(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
) -> Result<Vec<FinalAssessment>, AppError> {
    // Two queries for the whole list (a query per assessment and two per row before).
    let rows: Vec<FinalRow> = final_assessments::table
        .filter(final_assessments::enrolment_id.eq(enrolment_id))
        .order((final_assessments::created_at, final_assessments::id))
        .select(FinalRow::as_select())
        .load(conn)?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut signers: std::collections::HashMap<String, Vec<SignerRow>> = Default::default();
    for s in signers_of(conn, &ids)? {
        signers
            .entry(s.final_assessment_id.clone())
            .or_default()
            .push(s);
    }
    rows.into_iter()
        .map(|r| {
            let mine = signers.remove(&r.id).unwrap_or_default();
            assemble(r, mine)
        })
        .collect()
}
