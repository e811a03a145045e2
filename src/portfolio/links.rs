//! Which delmål a record serves: checked against the trainee's template version and
//! stored one row per link, so every list can filter by delmål on an index.

use diesel::prelude::*;

use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::schema::record_delmal;

/// Delmål codes the records of an enrolment may link to.
pub fn allowed(conn: &mut DbConn, enrolment_id: &str) -> Result<Vec<String>, AppError> {
    crate::enrolment::service::delmal_codes_of(conn, &enrolment_id.into())
}

/// Adds an error to `field` for each code not in `allowed`.
pub fn check(allowed: &[String], given: &[String], field: &str, errors: &mut Vec<FieldError>) {
    for code in given {
        if !allowed.contains(code) {
            errors.push(FieldError::new(field, format!("unknown delmål {code}")));
        }
    }
}

/// Sorted and without repeats, as records show them.
pub fn normalised(codes: &[String]) -> Vec<String> {
    let mut v = codes.to_vec();
    v.sort();
    v.dedup();
    v
}

/// What kind of record a link belongs to, so evidence is counted from the links alone.
pub const ACTIVITY: &str = "activity";
pub const ASSESSMENT: &str = "assessment";
pub const TALK: &str = "talk";

/// Replaces a record's links. Only the record's own: ids are chosen by clients too (an
/// offline phone names its activity), so an id may also be another kind of record's,
/// and a trainee who sent a signed assessment's id with a new activity would otherwise
/// have replaced what the signed assessment is evidence of. Such an id is refused.
pub fn set(
    conn: &mut DbConn,
    record_type: &str,
    enrolment_id: &str,
    record_id: &str,
    codes: &[String],
) -> Result<(), AppError> {
    let others: i64 = record_delmal::table
        .filter(record_delmal::record_id.eq(record_id))
        .filter(record_delmal::record_type.ne(record_type))
        .count()
        .get_result(conn)?;
    if others > 0 {
        return Err(AppError::Conflict(crate::error::UNIQUE_CONFLICT.into()));
    }
    diesel::delete(
        record_delmal::table
            .filter(record_delmal::record_id.eq(record_id))
            .filter(record_delmal::record_type.eq(record_type)),
    )
    .execute(conn)?;
    add(conn, record_type, enrolment_id, record_id, codes)
}

/// Links a record that has none yet (one the server has just created under a fresh
/// random id): [`set`] without its delete, a statement less on the write path.
pub fn add(
    conn: &mut DbConn,
    record_type: &str,
    enrolment_id: &str,
    record_id: &str,
    codes: &[String],
) -> Result<(), AppError> {
    let rows: Vec<_> = normalised(codes)
        .into_iter()
        .map(|code| {
            (
                record_delmal::record_id.eq(record_id),
                record_delmal::code.eq(code),
                record_delmal::enrolment_id.eq(enrolment_id),
                record_delmal::record_type.eq(record_type),
            )
        })
        .collect();
    if !rows.is_empty() {
        // One statement for all of them (the multi-backend connection has no batch
        // insert, each backend's own connection has).
        let insert = diesel::insert_into(record_delmal::table).values(rows);
        match conn {
            DbConn::Sqlite(c) => insert.execute(c)?,
            DbConn::Pg(c) => insert.execute(c)?,
        };
    }
    Ok(())
}

/// Removes a deleted record's links (its own only, see [`set`]): they prove nothing any
/// more.
pub fn remove(conn: &mut DbConn, record_type: &str, record_id: &str) -> Result<(), AppError> {
    diesel::delete(
        record_delmal::table
            .filter(record_delmal::record_id.eq(record_id))
            .filter(record_delmal::record_type.eq(record_type)),
    )
    .execute(conn)?;
    Ok(())
}

/// The links of several records, as (record id, code), in order.
pub fn of(conn: &mut DbConn, record_ids: &[String]) -> Result<Vec<(String, String)>, AppError> {
    let query = record_delmal::table
        .filter(record_delmal::record_id.eq_any(record_ids))
        .order((record_delmal::record_id, record_delmal::code))
        .select((record_delmal::record_id, record_delmal::code));
    Ok(crate::on_backend!(conn, |c| query.load(c))?)
}

/// Codes of one record, from links in the order of [`of`] (by record id).
pub fn codes(links: &[(String, String)], record_id: &str) -> Vec<String> {
    let start = links.partition_point(|(id, _)| id.as_str() < record_id);
    links[start..]
        .iter()
        .take_while(|(id, _)| id == record_id)
        .map(|(_, c)| c.clone())
        .collect()
}

/// Whether `id` already names a record of the portfolio (activity, assessment, talk or
/// summary assessment). A client-chosen id for a new record must not: links, audit
/// entries and `/changes` name records by id alone.
pub fn id_in_use(conn: &mut DbConn, id: &str) -> Result<bool, AppError> {
    use crate::schema::{activities, assessments, summary_assessments, talks};
    use diesel::dsl::exists;
    let taken = diesel::select(
        exists(activities::table.find(id))
            .or(exists(assessments::table.find(id)))
            .or(exists(talks::table.find(id)))
            .or(exists(summary_assessments::table.find(id))),
    );
    Ok(taken.get_result(conn)?)
}
