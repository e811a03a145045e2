//! Free text stays out of the audit log (docs/privacy.md, "Audit entries without record
//! text", step 2). An entry about a record keeps the record's facts (ids, status, dates,
//! who signed) as values, and of every other field only its name and a keyed digest:
//! HMAC-SHA-256 under a random key of that record, stored beside it in
//! `audit_text_keys`.
//!
//! Why keyed, and why per record: a plain hash of a short text ("Akutdag") is reversed
//! by hashing guesses. While the key exists, the digest shows that a field changed and
//! which stored value an entry matches; once the record is erased or its retention
//! period ends, [`forget`] deletes the key (in the same transaction as
//! [`super::empty`]), and what digests are left anywhere (an entry not emptied, a
//! backup) can no longer be tested against guesses.
//!
//! Deny by default: a field is a fact only when the feature names it in its list of
//! facts; every other field, including one added later, is digested. Each feature's
//! unit test checks that the facts it names are not free text
//! ([`tests_support::assert_facts_are_not_free_text`]).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::clock::to_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::EnrolmentId;
use crate::schema::audit_text_keys;

/// The field of an entry's data that holds the digests, by field name.
pub const DIGESTS_FIELD: &str = "text_digests";

/// Splits a record's JSON into its facts (kept as values) and, for every other field,
/// the keyed digest of its JSON text (`null` stays `null`: an empty field holds no
/// text). A value that is not an object is digested whole under the name `value`.
pub fn split(record: &Value, facts: &[&str], key: &[u8]) -> Value {
    let mut out = Map::new();
    let mut digests = Map::new();
    match record {
        Value::Object(fields) => {
            for (name, value) in fields {
                if facts.contains(&name.as_str()) {
                    out.insert(name.clone(), value.clone());
                } else if value.is_null() {
                    digests.insert(name.clone(), Value::Null);
                } else {
                    digests.insert(name.clone(), Value::String(digest(key, name, value)));
                }
            }
        }
        other => {
            digests.insert("value".into(), Value::String(digest(key, "value", other)));
        }
    }
    if !digests.is_empty() {
        out.insert(DIGESTS_FIELD.into(), Value::Object(digests));
    }
    Value::Object(out)
}

/// HMAC-SHA-256 (lower-case hex) of the field's name and its JSON text, length-prefixed
/// so that no two (name, value) pairs read alike. The name is in it so that equal texts
/// in two fields do not show as equal.
fn digest(key: &[u8], name: &str, value: &Value) -> String {
    let text = value.to_string();
    let message = format!("{}:{name}|{}:{text}|", name.len(), text.len());
    // An HMAC takes a key of any length: `new_from_slice` cannot fail here.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The data of an entry about a record: its facts, and its other fields as digests
/// under the record's key (made on first use).
///
/// `record_id` stays a `&str` on purpose: the keys table holds one key per record of
/// any kind (assessments, talks, summaries, vetting, qualifications, signer profiles,
/// ...), each with its own id type, and the id is only a lookup key here.
pub fn record_data(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    record_id: &str,
    enrolment_id: Option<&EnrolmentId>,
    record: &impl Serialize,
    facts: &[&str],
) -> Result<Value, AppError> {
    let value = serde_json::to_value(record).map_err(AppError::internal)?;
    let key = key_of(conn, now, record_id, enrolment_id)?;
    Ok(split(&value, facts, &key))
}

/// The record's key; made and stored on first use. Two transactions making the first
/// entry of the same record at once: the second insert does nothing (on PostgreSQL it
/// waits for the first to commit), and reads the one key stored.
///
/// `record_id` is any record kind's id (see [`record_data`]).
fn key_of(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    record_id: &str,
    enrolment_id: Option<&EnrolmentId>,
) -> Result<Vec<u8>, AppError> {
    let fresh: [u8; 32] = rand::random();
    let insert = diesel::insert_into(audit_text_keys::table)
        .values((
            audit_text_keys::record_id.eq(record_id),
            audit_text_keys::enrolment_id.eq(enrolment_id),
            audit_text_keys::key_hex.eq(hex::encode(fresh)),
            audit_text_keys::created_at.eq(to_db(now)),
        ))
        .on_conflict_do_nothing();
    // Inserted: the key is the one just made (a record's first entry, as every create
    // is), and reading it back would be a statement for nothing.
    if crate::on_backend!(conn, |c| insert.execute(c))? == 1 {
        return Ok(fresh.to_vec());
    }
    let stored: String = audit_text_keys::table
        .find(record_id)
        .select(audit_text_keys::key_hex)
        .first(conn)?;
    hex::decode(&stored)
        .map_err(|e| AppError::unreadable("audit_text_keys", record_id, "key_hex", e))
}

/// Deletes the keys of the records an erasure or retention run removes (the same
/// naming as [`super::empty`]); returns how many.
pub fn forget(conn: &mut DbConn, naming: &super::Naming) -> Result<i64, AppError> {
    let mut n = 0;
    match naming {
        super::Naming::Records(ids) => {
            for chunk in ids.chunks(500) {
                n += diesel::delete(
                    audit_text_keys::table.filter(audit_text_keys::record_id.eq_any(chunk)),
                )
                .execute(conn)?;
            }
        }
        super::Naming::Enrolment(id) => {
            n += diesel::delete(
                audit_text_keys::table.filter(
                    audit_text_keys::enrolment_id
                        .eq(*id)
                        .or(audit_text_keys::record_id.eq(*id)),
                ),
            )
            .execute(conn)?;
        }
    }
    Ok(n as i64)
}

/// For the features' unit tests.
#[cfg(test)]
pub mod tests_support {
    use utoipa::openapi::schema::{ArrayItems, Schema, SchemaType, Type};
    use utoipa::openapi::RefOr;

    /// Is this schema a plain string (no format, no enumeration), or an array of them:
    /// what free text looks like in the OpenAPI document?
    fn plain_string(s: &RefOr<Schema>) -> bool {
        match s {
            RefOr::T(Schema::Object(o)) => {
                let string = match &o.schema_type {
                    SchemaType::Type(t) => *t == Type::String,
                    SchemaType::Array(ts) => ts.contains(&Type::String),
                    SchemaType::AnyValue => true,
                };
                string && o.format.is_none() && o.enum_values.is_none()
            }
            RefOr::T(Schema::Array(a)) => match &a.items {
                ArrayItems::RefOrSchema(item) => plain_string(item),
                ArrayItems::False => false,
            },
            _ => false,
        }
    }

    /// Every fact a feature keeps as a value is a field of the record's schema, and any
    /// fact that is a plain string is named in `not_text` (ids, codes, hashes: the
    /// test's author says so in one visible place). Free text thus never becomes a fact
    /// by a slip.
    pub fn assert_facts_are_not_free_text<T: utoipa::ToSchema>(facts: &[&str], not_text: &[&str]) {
        let RefOr::T(Schema::Object(o)) = T::schema() else {
            panic!("{} is not an object schema", T::name());
        };
        for fact in facts {
            let Some(field) = o.properties.get(*fact) else {
                panic!("{fact} is not a field of {}", T::name());
            };
            assert!(
                !plain_string(field) || not_text.contains(fact),
                "{fact} of {} is a plain string: free text stays out of the audit log",
                T::name()
            );
        }
    }

    /// The entry's data holds none of these texts.
    pub fn assert_holds_none(data: &serde_json::Value, texts: &[&str]) {
        let written = data.to_string();
        for text in texts {
            assert!(!written.contains(text), "{text} in {written}");
        }
    }
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
