//! Numbers are test-style: Skatteverket's published test number 19121212-1212 and
//! numbers whose check digit is computed here (no real person's).

use super::*;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 30).expect("date")
}

fn positions(text: &str) -> Vec<usize> {
    find_personal_numbers(text, today())
        .iter()
        .map(|f| f.position)
        .collect()
}

#[test]
fn every_written_form_is_found_where_it_starts() {
    for (text, at) in [
        ("191212121212", 0),
        ("19121212-1212", 0),
        ("121212-1212", 0),
        ("1212121212", 0),
        ("121212 1212", 0),
        ("Patient 19900101-2385 sökte", 8),
        ("pnr:900101-2385.", 4),
        ("(199001012385)", 1),
    ] {
        assert_eq!(positions(text), vec![at], "{text}");
    }
}

#[test]
fn positions_count_characters_not_bytes() {
    assert_eq!(positions("Åsa Öberg, 900101-2385"), vec![11]);
}

#[test]
fn a_plus_reads_a_hundred_years_earlier_and_still_matches() {
    let f = find_personal_numbers("121212+1212", today());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].length, 11);
}

#[test]
fn samordningsnummer_is_found_and_named() {
    // Day 61 = the 1st + 60.
    assert_eq!(
        personal_number::check_digit(&[9, 0, 0, 1, 6, 1, 2, 3, 8]),
        2
    );
    let f = find_personal_numbers("samordningsnr 900161-2382", today());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, NumberKind::Coordination);
    assert_eq!(f[0].position, 14);
}

#[test]
fn a_wrong_check_digit_does_not_match() {
    assert!(positions("19900101-2384").is_empty());
    assert!(positions("9001012386").is_empty());
    assert!(positions("121212-1213").is_empty());
}

#[test]
fn digits_inside_longer_runs_do_not_match() {
    assert!(positions("01212121212").is_empty());
    assert!(positions("1212121212 9").len() == 1);
    assert!(positions("order 11212121212").is_empty());
    assert!(positions("3121212121212").is_empty());
    assert!(positions("19121212-12120").is_empty());
    assert!(positions("121212-12123").is_empty());
    assert!(positions("9121212-1212").is_empty());
}

#[test]
fn dates_and_impossible_dates_do_not_match() {
    // Plain dates, with and without separators.
    assert!(positions("2026-10-06").is_empty());
    assert!(positions("20261006").is_empty());
    assert!(positions("2026-10-06 - 2026-12-01").is_empty());
    // Luhn alone is not enough: month 13, day 32 (and 92), in both forms.
    for nine in ["901301238", "900132238", "900192238"] {
        let d: Vec<u8> = nine.bytes().map(|b| b - b'0').collect();
        let c = personal_number::check_digit(&d);
        let text = format!("{}-{}{c}", &nine[..6], &nine[6..]);
        assert!(positions(&text).is_empty(), "{text}");
        let long = format!("19{nine}{c}");
        assert!(positions(&long).is_empty(), "{long}");
    }
    // A date of birth after today (2026-12-01), in the form with the century.
    let c = personal_number::check_digit(&[2, 6, 1, 2, 0, 1, 0, 1, 2]);
    assert!(positions(&format!("20261201012{c}")).is_empty());
}

#[test]
fn several_numbers_in_one_text_are_all_found() {
    assert_eq!(positions("121212-1212 och 900101-2385"), vec![0, 16]);
}

#[test]
fn only_free_text_fields_of_a_body_are_screened() {
    let body = json!({
        "id": "121212-1212",
        "title": "Kurs",
        "reflection": "Mötte 121212-1212",
        "content": {"context": {"setting": "akuten 900101-2385"}, "ratings": {"a": 1}},
        "delmal_statuses": [{"code": "1212121212", "comment": "ok"}, {"comment": "191212121212"}]
    });
    let fields: Vec<(String, usize)> = screen_body(&body, today())
        .into_iter()
        .map(|f| (f.field, f.position))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("content.context.setting".to_string(), 7),
            ("delmal_statuses[1].comment".to_string(), 0),
            ("reflection".to_string(), 6),
        ]
    );
}

#[test]
fn refused_unless_acknowledged_and_the_problem_names_field_and_position() {
    let findings = screen_text("title", "x 121212-1212", today());
    match refuse_unless(findings.clone(), false) {
        Err(AppError::PatientDataSuspected(e)) => {
            assert_eq!(e[0].field, "title");
            assert_eq!(e[0].position, Some(2));
            assert!(!e[0].message.contains("1212"), "{}", e[0].message);
        }
        other => panic!("{other:?}"),
    }
    let ack = refuse_unless(findings, true).expect("acknowledged");
    assert!(!ack.is_empty());
    assert!(refuse_unless(Vec::new(), false).expect("clean").is_empty());
}

#[test]
fn the_acknowledgement_is_taken_out_of_the_body() {
    let mut body = json!({"title": "x", "acknowledge_patient_data_warning": true});
    assert!(take_acknowledgement(&mut body).expect("bool"));
    assert_eq!(body, json!({"title": "x"}));
    let mut bad = json!({"acknowledge_patient_data_warning": "yes"});
    assert!(take_acknowledgement(&mut bad).is_err());
}

#[test]
fn import_rows_are_screened_in_every_field() {
    let rows = vec![
        json!({"email": "a@b.se", "display_name": "A"}),
        json!({"email": "c@d.se", "display_name": "C 121212-1212"}),
    ];
    match screen_import_rows(&rows, today()) {
        Err(AppError::PatientDataSuspected(e)) => assert_eq!(e[0].field, "rows[1].display_name"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn statements_are_screened_but_not_the_actor_or_uuids() {
    let clean = json!({
        "id": "12121212-1212-4212-8212-121212121212",
        "actor": {"account": {"homePage": "https://lms", "name": "121212-1212"}},
        "object": {"id": "https://lms/course/1", "definition": {"name": {"sv-SE": "Kurs"}}}
    });
    assert_eq!(statement_finding(&clean, today()), None);
    let dirty = json!({
        "id": "12121212-1212-4212-8212-121212121212",
        "actor": {"mbox": "mailto:a@b.se"},
        "object": {"id": "https://lms/course/1", "definition": {"description": {"sv-SE": "Fall 121212-1212"}}}
    });
    let reason = statement_finding(&dirty, today()).expect("found");
    assert!(
        reason.starts_with("object.definition.description.sv-SE"),
        "{reason}"
    );
    assert!(!reason.contains("1212-1212"), "{reason}");
}
