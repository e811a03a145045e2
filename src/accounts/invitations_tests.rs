//! An invitation's status: its four names both ways, nothing else read as one, and the
//! status each state of a row derives.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{invitation_from, InvitationRow, InvitationStatus};
use crate::auth::principal::Role;
use crate::clock::to_db;
use crate::ids::OrganisationId;

#[test]
fn invitation_statuses_round_trip_and_unknown_ones_are_refused() {
    let names = ["pending", "accepted", "revoked", "expired"];
    assert_eq!(InvitationStatus::ALL.len(), names.len());
    for name in names {
        let status = InvitationStatus::from_code(name).expect("a status");
        assert_eq!(status.as_str(), name);
        assert_eq!(
            serde_json::to_value(status).expect("json"),
            serde_json::json!(name)
        );
    }
    for unknown in ["", "Pending", "pending ", "open", "sent"] {
        assert_eq!(InvitationStatus::from_code(unknown), None, "{unknown:?}");
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
        .single()
        .expect("a valid test instant")
}

fn row(expires_in: Duration, accepted: bool, revoked: bool) -> InvitationRow {
    let at = Some(to_db(now() - Duration::hours(1)));
    InvitationRow {
        id: "i".into(),
        email: "a@example.se".into(),
        display_name: None,
        role: Role::Trainee,
        organisation_id: OrganisationId::new("o"),
        invited_by: None,
        created_at: to_db(now() - Duration::days(1)),
        expires_at: to_db(now() + expires_in),
        accepted_at: at.filter(|_| accepted),
        revoked_at: at.filter(|_| revoked),
    }
}

#[test]
fn the_status_is_derived_from_the_row_at_the_time_asked() {
    let status = |r| invitation_from(r, now()).status;
    let (later, past) = (Duration::days(1), -Duration::minutes(1));
    assert_eq!(status(row(later, false, false)), InvitationStatus::Pending);
    assert_eq!(
        status(row(Duration::zero(), false, false)),
        InvitationStatus::Expired
    );
    assert_eq!(status(row(past, false, false)), InvitationStatus::Expired);
    assert_eq!(status(row(past, true, false)), InvitationStatus::Accepted);
    assert_eq!(status(row(later, false, true)), InvitationStatus::Revoked);
}
