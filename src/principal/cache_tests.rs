use std::sync::Arc;

use chrono::NaiveDateTime;

use super::*;
use crate::ids::{SessionId, UserId};

fn person(sid: &str) -> Principal {
    Principal {
        user_id: UserId::from("u1"),
        session_id: SessionId::from(sid),
        second_factor: "totp".into(),
        email: "a@example.se".into(),
        roles: Vec::new(),
        client: None,
    }
}

fn at(hour: u32) -> NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2026, 9, 1)
        .and_then(|d| d.and_hms_opt(hour, 0, 0))
        .expect("a time")
}

#[test]
fn a_remembered_session_is_found_for_its_user_until_it_expires() {
    let cache = SessionCache::new();
    cache.remember(&person("s1"), at(12), cache.epoch());
    assert!(cache.get("s1", "u1", at(11)).is_some());
    assert!(cache.get("s1", "u2", at(11)).is_none(), "another user's");
    assert!(cache.get("s1", "u1", at(12)).is_none(), "expired");
    assert!(cache.get("s2", "u1", at(11)).is_none());
}

#[test]
fn a_read_that_raced_a_change_is_not_remembered() {
    let cache = SessionCache::new();
    let epoch = cache.epoch();
    cache.forget_all();
    cache.remember(&person("s1"), at(12), epoch);
    assert!(cache.get("s1", "u1", at(11)).is_none());
}

#[test]
fn a_recorded_change_empties_the_cache_now_and_when_settled() {
    let cache = Arc::new(SessionCache::new());
    let changes = AuthChanges::new(cache.clone());
    cache.remember(&person("s1"), at(12), cache.epoch());
    changes.record(AuthChange::SessionsEnded);
    assert!(cache.get("s1", "u1", at(11)).is_none(), "emptied at once");
    // A request reading between the change and its commit caches the old state...
    cache.remember(&person("s1"), at(12), cache.epoch());
    assert_eq!(changes.settle(), vec![AuthChange::SessionsEnded]);
    // ... which the end of the transaction forgets.
    assert!(cache.get("s1", "u1", at(11)).is_none());
    assert!(changes.settle().is_empty(), "settled once");
}

#[test]
fn two_caches_are_apart() {
    let (a, b) = (Arc::new(SessionCache::new()), SessionCache::new());
    b.remember(&person("s1"), at(12), b.epoch());
    AuthChanges::new(a).record(AuthChange::RolesChanged);
    assert!(b.get("s1", "u1", at(11)).is_some());
}
