//! The signature queue's literal predicate and the index it lets both backends use
//! (migration 000041) must say the same thing in the same words, or the planners fall
//! back to reading and sorting every assessment of the assessor.

use super::{AWAITING, DRAFT, QUEUE_INDEX_PREDICATE};

fn migration(backend: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend)
        .join("2026-12-02-000041_signature_queue_index/up.sql");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_queue_predicate_names_the_statuses_the_queue_shows() {
    let list = format!("IN ('{}', '{}')", AWAITING.as_str(), DRAFT.as_str());
    assert!(
        QUEUE_INDEX_PREDICATE.ends_with(&list),
        "{QUEUE_INDEX_PREDICATE}"
    );
}

#[test]
fn both_backends_index_the_queue_with_that_predicate() {
    let (_, list) = QUEUE_INDEX_PREDICATE
        .split_once(" IN ")
        .expect("an IN list");
    for backend in ["sqlite", "postgresql"] {
        let sql = migration(backend);
        assert!(
            sql.contains(&format!("WHERE deleted_at IS NULL AND status IN {list};")),
            "{backend}: {sql}"
        );
    }
}
