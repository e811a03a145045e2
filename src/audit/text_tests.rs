use serde_json::json;

use super::*;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

#[test]
fn facts_stay_values_and_every_other_field_becomes_a_digest() {
    let record = json!({"id": "a1", "status": "signed", "title": "Akutdag",
                        "reflection": null, "attachments": [{"filename": "kurs.pdf"}]});
    let data = split(&record, &["id", "status"], KEY);
    assert_eq!(data["id"], "a1");
    assert_eq!(data["status"], "signed");
    let digests = data[DIGESTS_FIELD].as_object().expect("digests");
    assert_eq!(digests.len(), 3);
    assert_eq!(digests["title"].as_str().expect("hex").len(), 64);
    // An empty field holds no text: it stays null.
    assert!(digests["reflection"].is_null());
    tests_support::assert_holds_none(&data, &["Akutdag", "kurs.pdf"]);
}

#[test]
fn a_digest_shows_a_change_under_one_key_and_nothing_across_keys_or_fields() {
    let one = split(&json!({"title": "Akutdag"}), &[], KEY);
    let again = split(&json!({"title": "Akutdag"}), &[], KEY);
    let changed = split(&json!({"title": "Akutdagen"}), &[], KEY);
    let other_key = split(&json!({"title": "Akutdag"}), &[], b"another key");
    let other_field = split(&json!({"notes": "Akutdag"}), &[], KEY);
    let d = |v: &Value, f: &str| v[DIGESTS_FIELD][f].as_str().expect("digest").to_string();
    assert_eq!(d(&one, "title"), d(&again, "title"));
    assert_ne!(d(&one, "title"), d(&changed, "title"));
    assert_ne!(d(&one, "title"), d(&other_key, "title"));
    assert_ne!(d(&one, "title"), d(&other_field, "notes"));
}

#[test]
fn a_value_that_is_not_an_object_is_digested_whole() {
    let data = split(&json!("Akutdag"), &["value"], KEY);
    tests_support::assert_holds_none(&data, &["Akutdag"]);
    assert!(data[DIGESTS_FIELD]["value"].is_string());
}
