use super::*;

fn input(
    specialist: bool,
    specialty: Option<&str>,
    trained: bool,
    detail: Option<&str>,
) -> QualificationsInput {
    QualificationsInput {
        specialist,
        specialty: specialty.map(String::from),
        assessment_training: trained,
        assessment_training_detail: detail.map(String::from),
    }
}

#[test]
fn nothing_stated_warns_of_both() {
    let q = AssessorQualifications::default();
    assert_eq!(q.warnings(), [SPECIALIST_NOT_STATED, TRAINING_NOT_STATED]);
    assert!(approvable(false, &q).is_ok());
    assert!(approvable(true, &q).is_err());
}

#[test]
fn a_trained_specialist_has_no_warning() {
    let q = checked(
        &input(true, Some("Akutsjukvård"), true, Some("2023-05-10")),
        "",
    )
    .unwrap();
    assert!(q.warnings().is_empty());
    assert!(approvable(true, &q).is_ok());
    assert_eq!(
        q.line_sv(),
        "specialist i Akutsjukvård; utbildad i bedömningsmetoder (2023-05-10)"
    );
}

#[test]
fn ej_specialist_and_untrained_are_warnings_and_drop_the_details() {
    let q = checked(&input(false, Some("Kirurgi"), false, Some("x")), "").unwrap();
    assert_eq!(q.warnings(), [NOT_SPECIALIST, NO_TRAINING]);
    assert_eq!(q.specialty, None);
    assert_eq!(q.assessment_training_detail, None);
    assert_eq!(
        q.line_sv(),
        "ej specialist; ej utbildad i bedömningsmetoder"
    );
}

#[test]
fn a_true_flag_needs_its_text_and_text_is_printable() {
    assert!(checked(&input(true, None, false, None), "").is_err());
    assert!(checked(&input(false, None, true, Some("  ")), "").is_err());
    assert!(checked(&input(true, Some("Akut\u{202e}kirurgi"), false, None), "").is_err());
}

#[test]
fn an_unknown_stored_flag_is_unreadable() {
    assert!(AssessorQualifications::from_stored("x", Some(2), None, None, None, None).is_err());
}
