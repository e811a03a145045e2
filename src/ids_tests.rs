//! The text-coded enums declared here read back every code they store, and refuse a
//! code this build does not know, both as codes and as a stored column (diesel's
//! `FromSql`, on an in-memory SQLite database).

use diesel::dsl::sql;
use diesel::sql_types::Text;
use diesel::{Connection, RunQueryDsl, SqliteConnection};

use super::{DeliveryStatus, MailStatus, TransferredRecordType};

/// Reads the SQL text literal `code` as a `T`, as a query reads a stored column.
fn read_stored<T>(code: &str) -> Result<T, diesel::result::Error>
where
    T: diesel::deserialize::FromSqlRow<Text, diesel::sqlite::Sqlite> + 'static,
{
    let mut conn = SqliteConnection::establish(":memory:").expect("an in-memory database");
    let literal = format!("'{}'", code.replace('\'', "''"));
    diesel::select(sql::<Text>(&literal)).get_result::<T>(&mut conn)
}

/// Every stored code names its own value, and back; the set is exactly `codes`.
fn round_trips<T>(
    all: &[T],
    codes: &[&str],
    as_str: fn(T) -> &'static str,
    from: fn(&str) -> Option<T>,
) where
    T: Copy
        + PartialEq
        + std::fmt::Debug
        + diesel::deserialize::FromSqlRow<Text, diesel::sqlite::Sqlite>
        + 'static,
{
    assert_eq!(
        all.len(),
        codes.len(),
        "a value without its code in this test"
    );
    for code in codes {
        let value = from(code).unwrap_or_else(|| panic!("{code:?} is not read"));
        assert_eq!(as_str(value), *code);
        assert_eq!(
            read_stored::<T>(code).expect("a stored code is read"),
            value
        );
    }
    for value in all {
        assert!(
            codes.contains(&as_str(*value)),
            "{value:?} stores a code not listed here"
        );
    }
    // Unknown, a near miss and a wrong case: errors, never a fallback value.
    for unknown in ["", "unknown", "Activity", "activity ", "pending_x"] {
        assert_eq!(from(unknown), None, "{unknown:?}");
        let err = read_stored::<T>(unknown).expect_err("an unknown stored code is an error");
        assert!(format!("{err:?}").contains("unknown stored"), "{err:?}");
    }
}

#[test]
fn transferred_record_types_round_trip_and_unknown_ones_are_errors() {
    round_trips(
        TransferredRecordType::ALL,
        &[
            "activity",
            "assessment",
            "summary_assessment",
            "final_assessment",
            "supervision_session",
            "handover_talk",
            "final_check_in",
            "course_confirmation",
            "supervisor_assignment",
            "placement",
            "leave_period",
            "extent_period",
            "credited_service",
        ],
        TransferredRecordType::as_str,
        TransferredRecordType::from_code,
    );
}

#[test]
fn mail_statuses_round_trip_and_unknown_ones_are_errors() {
    round_trips(
        MailStatus::ALL,
        &["pending", "sent", "failed"],
        MailStatus::as_str,
        MailStatus::from_code,
    );
}

#[test]
fn delivery_statuses_round_trip_and_unknown_ones_are_errors() {
    round_trips(
        DeliveryStatus::ALL,
        &["pending", "delivered", "failed"],
        DeliveryStatus::as_str,
        DeliveryStatus::from_code,
    );
}

#[test]
fn a_transferred_record_type_is_its_code_in_json() {
    let json = serde_json::to_string(&TransferredRecordType::SupervisorAssignment).expect("json");
    assert_eq!(json, "\"supervisor_assignment\"");
}
