use chrono::TimeZone;

use super::*;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn keys() -> Vec<(String, VerifyingKey)> {
    vec![("k1".to_string(), key().verifying_key())]
}

fn checkpoint() -> Checkpoint {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 30, 23, 59, 59)
        .single()
        .expect("time");
    sign(42, "ab".repeat(32), now, &SigningKeyId::new("k1"), &key())
}

#[test]
fn the_signed_message_is_the_documented_text() {
    assert_eq!(
        message(42, "ff", "2026-11-30T23:59:59Z"),
        "eportfolio-audit-checkpoint/v1\nseq=42\nhash=ff\nat=2026-11-30T23:59:59Z\n"
    );
    assert_eq!(checkpoint().at, "2026-11-30T23:59:59Z");
}

#[test]
fn a_checkpoint_verifies_with_its_key_and_not_once_changed() {
    let cp = checkpoint();
    assert_eq!(signature_problem(&cp, &keys()), None);
    let mut later = cp.clone();
    later.seq = 41;
    assert!(signature_problem(&later, &keys()).is_some());
    let mut other_hash = cp.clone();
    other_hash.hash = "cd".repeat(32);
    assert!(signature_problem(&other_hash, &keys()).is_some());
    let mut other_time = cp.clone();
    other_time.at = "2026-12-01T00:00:00Z".into();
    assert!(signature_problem(&other_time, &keys()).is_some());
    let mut garbage = cp.clone();
    garbage.signature = "not base64!".into();
    assert!(signature_problem(&garbage, &keys()).is_some());
}

#[test]
fn a_checkpoint_signed_with_an_unknown_key_does_not_count() {
    let mut cp = checkpoint();
    cp.key_id = "k2".into();
    let problem = signature_problem(&cp, &keys()).expect("refused");
    assert!(problem.contains("k2"), "{problem}");
    let stranger = SigningKey::from_bytes(&[9u8; 32]);
    let forged = sign(
        42,
        "ab".repeat(32),
        Utc::now(),
        &SigningKeyId::new("k1"),
        &stranger,
    );
    assert!(signature_problem(&forged, &keys()).is_some());
}

#[test]
fn checkpoints_are_read_from_plain_lines_and_from_the_servers_json_log() {
    let cp = checkpoint();
    let plain = serde_json::to_string(&cp).expect("json");
    let logged = serde_json::json!({
        "timestamp": "2026-11-30T23:59:59Z",
        "level": "INFO",
        "fields": {"message": "audit checkpoint", "checkpoint": plain},
        "target": "audit_checkpoint",
    })
    .to_string();
    let text_log =
        format!("2026-11-30T23:59:59Z  INFO audit_checkpoint: audit checkpoint checkpoint={plain}");
    let text = format!("some other line\n{plain}\n\n{logged}\n{text_log}\n");
    assert_eq!(
        parse_lines(&text).expect("read"),
        vec![cp.clone(), cp.clone(), cp]
    );
}

#[test]
fn a_file_without_checkpoints_or_with_a_broken_one_is_refused() {
    assert!(parse_lines("").is_err());
    assert!(parse_lines("{\"seq\": 1}\n").is_err());
    assert!(parse_lines("{\"type\": \"eportfolio-audit-checkpoint\", \"seq\": \"x\"}").is_err());
    let mut cp = serde_json::to_value(checkpoint()).expect("json");
    cp["type"] = "eportfolio-audit-checkpoint-v9".into();
    assert!(parse_lines(&cp.to_string()).is_err());
}
