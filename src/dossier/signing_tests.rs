//! Unit tests of the canonical JSON form dossiers are signed over, and of signing and
//! verifying JSON and PDF dossiers with a fixed key (no database).

use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

use crate::ids::SigningKeyId;

use super::{
    canonical, key_id, parse_public_key, pem, seal_pdf, sign_dossier, verify, ALGORITHM, PDF_MARKER,
};

/// Computed here with `sha2` rather than the service's own helper.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("test JSON {text}: {e}"))
}

// ---- The canonical form ---------------------------------------------------------------

#[test]
fn object_keys_are_sorted_at_every_depth_and_arrays_keep_their_order() {
    let v = parse(r#"{"b": 1, "a": {"z": [3, 1, 2], "y": {"k": 0, "j": 0}}, "c": []}"#);
    assert_eq!(
        canonical(&v),
        r#"{"a":{"y":{"j":0,"k":0},"z":[3,1,2]},"b":1,"c":[]}"#
    );
}

#[test]
fn whitespace_and_key_order_of_the_input_do_not_change_the_bytes() {
    let a = parse("{\n  \"trainee\": {\"name\": \"Åsa\", \"id\": \"t1\"},\n  \"n\": 3\n}");
    let b = parse(r#"{"n":3,"trainee":{"id":"t1","name":"Åsa"}}"#);
    assert_eq!(canonical(&a), canonical(&b));
    assert_eq!(
        canonical(&a),
        r#"{"n":3,"trainee":{"id":"t1","name":"Åsa"}}"#
    );
}

#[test]
fn keys_sort_by_unicode_code_point_not_by_the_swedish_alphabet() {
    // Swedish order is å, ä, ö; code points are ä (U+00E4) < å (U+00E5) < ö (U+00F6),
    // and every ASCII letter, upper case first, comes before them.
    let v = json!({"ö": 1, "å": 2, "ä": 3, "z": 4, "Z": 5, "a": 6});
    assert_eq!(canonical(&v), r#"{"Z":5,"a":6,"z":4,"ä":3,"å":2,"ö":1}"#);
}

#[test]
fn swedish_letters_are_written_as_utf8_not_escaped() {
    let v = json!({"namn": "Åsa Öberg", "enhet": "Vårdcentralen Bäcken"});
    let c = canonical(&v);
    assert_eq!(c, r#"{"enhet":"Vårdcentralen Bäcken","namn":"Åsa Öberg"}"#);
    assert_eq!(
        c.as_bytes()[10..13],
        [b'V', 0xc3, 0xa5],
        "å is the two UTF-8 bytes C3 A5"
    );
    // An escaped å in the input is the same character, hence the same bytes.
    assert_eq!(canonical(&parse(r#"{"n":"\u00e5"}"#)), r#"{"n":"å"}"#);
}

#[test]
fn unicode_is_not_normalised_so_a_decomposed_a_ring_is_other_content() {
    let composed = json!({"n": "\u{e5}"});
    let decomposed = json!({"n": "a\u{30a}"});
    assert_ne!(canonical(&composed), canonical(&decomposed));
}

#[test]
fn quotes_backslashes_and_control_characters_are_escaped_and_nothing_else() {
    let v = json!({"s": "a\"b\\c/d\n\t\r\u{8}\u{c}\u{1}\u{1f}\u{7f}€😀"});
    assert_eq!(
        canonical(&v),
        "{\"s\":\"a\\\"b\\\\c/d\\n\\t\\r\\b\\f\\u0001\\u001f\u{7f}€😀\"}"
    );
    // A key is escaped like any string.
    assert_eq!(canonical(&json!({"a\"b": 1})), r#"{"a\"b":1}"#);
}

#[test]
fn numbers_integers_and_fractions_are_written_as_serde_json_writes_them() {
    let v = json!({"i": 42, "neg": -7, "big": 9_007_199_254_740_993_i64, "u": u64::MAX,
                   "f": 3.6, "half": 0.5, "whole": 1.0, "tiny": 0.000_1, "zero": 0});
    assert_eq!(
        canonical(&v),
        r#"{"big":9007199254740993,"f":3.6,"half":0.5,"i":42,"neg":-7,"tiny":0.0001,"u":18446744073709551615,"whole":1.0,"zero":0}"#
    );
}

#[test]
fn a_number_parsed_from_another_spelling_gets_one_spelling() {
    // Verification re-reads the file: 1.50 and 1.5 are the same number.
    assert_eq!(canonical(&parse(r#"{"x":1.50}"#)), r#"{"x":1.5}"#);
    assert_eq!(canonical(&parse(r#"{"x":1e2}"#)), r#"{"x":100.0}"#);
    // Integers stay integers, fractions stay fractions: 1 and 1.0 are different bytes.
    assert_eq!(canonical(&parse(r#"{"x":1}"#)), r#"{"x":1}"#);
    assert_eq!(canonical(&parse(r#"{"x":1.0}"#)), r#"{"x":1.0}"#);
    // Large floats in exponent form with a sign, as serde_json (and Python) write them.
    assert_eq!(canonical(&json!({"x": 1e20})), r#"{"x":1e+20}"#);
    // Below 0.0001 serde_json and Python part: 0.00001 (Python 1e-05), 1.5e-7 (Python
    // 1.5e-07). The Python recipe for offline checks agrees for the numbers dossiers
    // hold (integers and fractions rounded to two decimals).
    assert_eq!(canonical(&json!({"x": 0.00001})), r#"{"x":0.00001}"#);
    assert_eq!(canonical(&json!({"x": 1.5e-7})), r#"{"x":1.5e-7}"#);
    assert_eq!(canonical(&json!({"x": 0.01})), r#"{"x":0.01}"#);
}

#[test]
fn literals_and_empty_containers() {
    let v = json!({"t": true, "f": false, "n": null, "o": {}, "a": [null, {}, []]});
    assert_eq!(
        canonical(&v),
        r#"{"a":[null,{},[]],"f":false,"n":null,"o":{},"t":true}"#
    );
    assert_eq!(canonical(&json!("only a string")), r#""only a string""#);
}

#[test]
fn the_form_equals_pythons_sorted_compact_json_as_the_readme_tells_verifiers() {
    // Expected bytes from python3: json.dumps(v, sort_keys=True, separators=(",", ":"),
    // ensure_ascii=False), the recipe for checking a dossier with openssl alone.
    let v = json!({"b": 1, "a": [1, 2.5, {"d": null, "c": true}], "ö": "Åsa", "å": "x",
                   "ä": "\n\t\"\\/\u{1}", "Z": -0.5});
    assert_eq!(
        canonical(&v),
        "{\"Z\":-0.5,\"a\":[1,2.5,{\"c\":true,\"d\":null}],\"b\":1,\
         \"ä\":\"\\n\\t\\\"\\\\/\\u0001\",\"å\":\"x\",\"ö\":\"Åsa\"}"
    );
}

// ---- Keys -----------------------------------------------------------------------------

fn test_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

#[test]
fn a_key_id_is_the_first_16_hex_digits_of_the_sha256_of_the_raw_key() {
    let public = test_key().verifying_key().to_bytes();
    let id = key_id(&public);
    assert_eq!(id.len(), 16);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(id, sha256_hex(&public)[..16]);
}

#[test]
fn a_public_key_survives_pem_and_raw_base64() {
    use base64::Engine;
    let public = test_key().verifying_key();
    let text = pem(&public.to_bytes());
    assert!(text.starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"));
    assert!(text.ends_with("-----END PUBLIC KEY-----\n"));
    let from_pem = parse_public_key(&text).map(|k| k.to_bytes());
    assert_eq!(from_pem.ok(), Some(public.to_bytes()));
    let raw = base64::engine::general_purpose::STANDARD.encode(public.to_bytes());
    let from_raw = parse_public_key(&raw).map(|k| k.to_bytes());
    assert_eq!(from_raw.ok(), Some(public.to_bytes()));
    assert!(parse_public_key("bm90IGEga2V5").is_err());
    assert!(parse_public_key("%%%").is_err());
}

// ---- Signing and verifying ------------------------------------------------------------

fn dossier() -> Value {
    json!({
        "dossier_id": "d-1",
        "enrolment": {"id": "e-1"},
        "generated_at": "2026-11-30T08:00:00Z",
        "trainee": {"id": "t-1", "name": "Åsa Öberg"},
        "time_served": {"served_months": 3.6, "fraction_done": 0.3},
        "records": [{"type": "assessment", "id": "a-1", "version": 3}],
    })
}

fn keys() -> Vec<(String, ed25519_dalek::VerifyingKey)> {
    let public = test_key().verifying_key();
    vec![(key_id(&public.to_bytes()), public)]
}

fn signed_json(d: &Value) -> Value {
    let key = test_key();
    let id = SigningKeyId::new(key_id(&key.verifying_key().to_bytes()));
    json!({"dossier": d, "signature": sign_dossier(&id, &key, d)})
}

#[test]
fn a_signed_json_dossier_verifies_and_describes_itself() {
    let doc = signed_json(&dossier());
    let hash = format!("sha256:{}", sha256_hex(canonical(&dossier()).as_bytes()));
    assert_eq!(doc["signature"]["content_hash"], json!(hash));
    assert_eq!(doc["signature"]["algorithm"], json!(ALGORITHM));
    let v = verify(doc.to_string().as_bytes(), &keys());
    assert!(v.authentic, "{:?}", v.reason);
    assert_eq!(v.format, "json");
    assert_eq!(v.reason, None);
    assert_eq!(v.content_hash.as_deref(), Some(hash.as_str()));
    assert_eq!(v.dossier_id.as_deref(), Some("d-1"));
    assert_eq!(v.enrolment_id.as_deref(), Some("e-1"));
    assert_eq!(v.records.len(), 1);
}

#[test]
fn signing_is_deterministic_for_the_same_content() {
    let a = signed_json(&dossier());
    let b = signed_json(&parse(&dossier().to_string()));
    assert_eq!(a["signature"], b["signature"]);
}

#[test]
fn a_pretty_printed_dossier_with_keys_reordered_still_verifies() {
    let doc = signed_json(&dossier());
    let pretty = serde_json::to_string_pretty(&doc).unwrap_or_default();
    assert!(pretty.contains('\n'));
    assert!(verify(pretty.as_bytes(), &keys()).authentic);
}

#[test]
fn changing_one_value_of_a_signed_json_dossier_fails() {
    let mut doc = signed_json(&dossier());
    doc["dossier"]["trainee"]["name"] = json!("Asa Oberg");
    let v = verify(doc.to_string().as_bytes(), &keys());
    assert!(!v.authentic);
    assert_eq!(
        v.reason.as_deref(),
        Some("the content was changed after signing")
    );
}

#[test]
fn changing_content_and_its_hash_together_still_fails_on_the_signature() {
    let mut doc = signed_json(&dossier());
    doc["dossier"]["time_served"]["served_months"] = json!(9.6);
    let hash = format!(
        "sha256:{}",
        sha256_hex(canonical(&doc["dossier"]).as_bytes())
    );
    doc["signature"]["content_hash"] = json!(hash);
    let v = verify(doc.to_string().as_bytes(), &keys());
    assert!(!v.authentic);
    assert_eq!(v.reason.as_deref(), Some("the signature does not match"));
}

#[test]
fn a_dossier_signed_by_an_unknown_key_or_algorithm_fails() {
    let other = SigningKey::from_bytes(&[8u8; 32]);
    let doc = json!({"dossier": dossier(),
                     "signature": sign_dossier(&SigningKeyId::from("0000000000000000"), &other, &dossier())});
    let v = verify(doc.to_string().as_bytes(), &keys());
    assert!(!v.authentic);
    assert_eq!(
        v.reason.as_deref(),
        Some("signed with a key this service does not know")
    );

    let mut doc = signed_json(&dossier());
    doc["signature"]["algorithm"] = json!("RS256");
    let v = verify(doc.to_string().as_bytes(), &keys());
    assert!(!v.authentic);
    assert_eq!(v.reason.as_deref(), Some("unknown algorithm RS256"));
}

#[test]
fn files_that_are_not_signed_dossiers_are_not_authentic() {
    let v = verify(b"hello", &keys());
    assert!(!v.authentic);
    assert_eq!(v.reason.as_deref(), Some("not JSON or PDF"));
    let v = verify(br#"{"dossier": {}}"#, &keys());
    assert_eq!(
        v.reason.as_deref(),
        Some("no dossier and signature in this document")
    );
    let v = verify(br#"{"dossier": {}, "signature": {"value": 1}}"#, &keys());
    assert_eq!(
        v.reason.as_deref(),
        Some("the signature block is malformed")
    );
}

fn sealed_pdf() -> Vec<u8> {
    let key = test_key();
    let id = SigningKeyId::new(key_id(&key.verifying_key().to_bytes()));
    let d = dossier();
    let hash = sign_dossier(&id, &key, &d).content_hash;
    let body = b"%PDF-1.7\n1 0 obj << /Title (Dossier) >> endobj\n%%EOF".to_vec();
    seal_pdf(&id, &key, body, &d, &hash)
}

#[test]
fn a_sealed_pdf_verifies_and_names_the_records_it_covers() {
    let pdf = sealed_pdf();
    assert!(pdf.ends_with(b"\n"));
    assert!(pdf.windows(PDF_MARKER.len()).any(|w| w == PDF_MARKER));
    let v = verify(&pdf, &keys());
    assert!(v.authentic, "{:?}", v.reason);
    assert_eq!(v.format, "pdf");
    assert_eq!(v.dossier_id.as_deref(), Some("d-1"));
    assert_eq!(v.enrolment_id.as_deref(), Some("e-1"));
    assert_eq!(
        v.records,
        vec![json!({"type": "assessment", "id": "a-1", "version": 3})]
    );
}

#[test]
fn one_changed_byte_before_the_manifest_fails_the_pdf() {
    let mut pdf = sealed_pdf();
    // "Dossier" -> "Dossiex": the manifest is intact, the page content is not.
    let at = pdf
        .windows(7)
        .position(|w| w == b"Dossier")
        .unwrap_or_else(|| panic!("test PDF has its title"));
    pdf[at + 6] = b'x';
    let v = verify(&pdf, &keys());
    assert!(!v.authentic);
    assert_eq!(
        v.reason.as_deref(),
        Some("the PDF was changed after signing")
    );
}

#[test]
fn a_changed_or_damaged_manifest_fails_the_pdf() {
    let pdf = sealed_pdf();
    let at = pdf
        .windows(PDF_MARKER.len())
        .rposition(|w| w == PDF_MARKER)
        .unwrap_or_else(|| panic!("sealed PDF has a manifest"));
    let (body, rest) = pdf.split_at(at);
    let line = &rest[PDF_MARKER.len()..rest.len() - 1];
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut manifest: Value =
        serde_json::from_slice(&b64.decode(line).unwrap_or_default()).unwrap_or(Value::Null);
    assert_eq!(manifest["format"], json!("eportfolio-dossier-pdf/1"));
    manifest["dossier_id"] = json!("d-2");
    let mut forged = body.to_vec();
    forged.extend_from_slice(PDF_MARKER);
    forged.extend_from_slice(b64.encode(manifest.to_string()).as_bytes());
    forged.push(b'\n');
    let v = verify(&forged, &keys());
    assert!(!v.authentic);
    assert_eq!(v.reason.as_deref(), Some("the signature does not match"));

    let mut damaged = body.to_vec();
    damaged.extend_from_slice(PDF_MARKER);
    damaged.extend_from_slice(b"!!!\n");
    let v = verify(&damaged, &keys());
    assert_eq!(v.reason.as_deref(), Some("the signature line is damaged"));

    let v = verify(body, &keys());
    assert_eq!(
        v.reason.as_deref(),
        Some("this PDF carries no signature of this service")
    );
}
