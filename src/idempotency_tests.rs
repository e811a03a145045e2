//! The stored answer of an `Idempotency-Key` on a real SQLite file: it goes to the
//! request's own reservation, or makes the row when the reservation was rolled back, and
//! never overwrites or forgets another request's row.

use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel::prelude::*;

use super::{reserve, store_response, Slot, Stored, COMMITTED};
use crate::db;
use crate::schema::idempotency_keys;

struct Scratch {
    dir: std::path::PathBuf,
    conn: db::PooledConn,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("eportfolio-idem-{}", uuid::Uuid::new_v4()));
        let url = dir.join("db.sqlite3");
        let pool = db::connect(url.to_str().expect("utf-8 path"), 1).expect("pool");
        let mut conn = pool.get().expect("connection");
        db::migrate(&mut conn).expect("migrations");
        Scratch { dir, conn }
    }
}

impl Scratch {
    /// The request at `at` reserves key `k` of `user:1` with its write (hash `h1`).
    fn reserve(&mut self, at: DateTime<Utc>) {
        let slot = reserve(&mut self.conn, at, "user:1", "k", "h1", true).expect("reserve");
        assert!(matches!(slot, Slot::Fresh));
    }

    /// The request at `at` stores its answer (`keep`: one to remember).
    fn store(&mut self, at: DateTime<Utc>, keep: bool, answer: Stored) {
        store_response(&mut self.conn, at, "user:1", "k", "h1", keep, answer).expect("store");
    }

    /// (status, body, outcome) of the stored key.
    fn stored(&mut self) -> Option<(Option<i32>, Option<String>, Option<String>)> {
        idempotency_keys::table
            .find(("user:1", "k"))
            .select((
                idempotency_keys::status_code,
                idempotency_keys::response_body,
                idempotency_keys::outcome,
            ))
            .first(&mut *self.conn)
            .optional()
            .expect("read")
    }
}

/// The instant of the request in each test.
fn eight() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0)
        .single()
        .expect("time")
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn answer(status: i32, body: &str) -> Stored {
    Stored {
        carries_secret: false,
        status,
        content_type: Some("application/json".into()),
        etag: None,
        body: body.into(),
    }
}

#[test]
fn the_answer_goes_to_the_requests_own_reservation_and_keeps_its_outcome() {
    let mut s = Scratch::new();
    s.reserve(eight());
    s.store(eight(), true, answer(201, "{\"a\":1}"));
    assert_eq!(
        s.stored(),
        Some((Some(201), Some("{\"a\":1}".into()), Some(COMMITTED.into())))
    );
}

#[test]
fn a_rolled_back_reservation_is_made_with_the_answer() {
    let mut s = Scratch::new();
    s.store(eight(), true, answer(422, "{}"));
    assert_eq!(s.stored(), Some((Some(422), Some("{}".into()), None)));
}

#[test]
fn another_requests_row_is_neither_overwritten_nor_forgotten() {
    let mut s = Scratch::new();
    // The first request's reservation was rolled back; a second one took the key, wrote
    // and was answered.
    let (first, second) = (eight(), eight() + Duration::milliseconds(5));
    s.reserve(second);
    s.store(second, true, answer(201, "{\"b\":2}"));
    // Now the first one's answer arrives: it must not replace the second's.
    s.store(first, true, answer(409, "{}"));
    // Nor may its "forget me" (an answer not to remember) delete the second's row.
    s.store(first, false, answer(503, "{}"));
    assert_eq!(
        s.stored(),
        Some((Some(201), Some("{\"b\":2}".into()), Some(COMMITTED.into())))
    );
}

#[test]
fn an_answer_with_a_secret_keeps_only_that_it_was_done() {
    let mut s = Scratch::new();
    s.reserve(eight());
    let mut secret = answer(201, "{\"recovery_codes\":[\"x\"]}");
    secret.carries_secret = true;
    s.store(eight(), true, secret);
    assert_eq!(s.stored(), Some((None, None, Some(super::SECRET.into()))));
}
