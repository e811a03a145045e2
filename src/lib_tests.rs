//! Unit tests of the composition root that span features: every feature's audit
//! entries keep no free text (`audit::text`, issue 17). They sit here, not in `audit`,
//! because the audit log is below the features and must not name them.

// One test per feature that records a record's data: the facts it keeps as values are
// fields of the record and none is free text. `not_text` names the plain strings that
// are ids, codes or hashes.

use crate::audit::text::tests_support::assert_facts_are_not_free_text as facts_hold_no_text;

#[test]
fn activities_record_no_free_text() {
    facts_hold_no_text::<crate::portfolio::activities::Activity>(
        crate::portfolio::activities::AUDIT_FACTS,
        &[
            "id",
            "enrolment_id",
            "placement_id",
            "checklist_item_id",
            "delmal",
            "created_by",
        ],
    );
}

#[test]
fn attachments_record_no_free_text() {
    facts_hold_no_text::<crate::portfolio::attachments::Attachment>(
        crate::portfolio::attachments::AUDIT_FACTS,
        &["id", "record_id", "content_type", "sha256", "uploaded_by"],
    );
}

#[test]
fn assessments_record_no_free_text() {
    facts_hold_no_text::<crate::portfolio::assessments::Assessment>(
        crate::portfolio::assessments::AUDIT_FACTS,
        &[
            "id",
            "enrolment_id",
            "status",
            "assessor_id",
            "placement_id",
            "delmal",
            "supersedes_id",
            "superseded_by",
            "created_by",
        ],
    );
}

#[test]
fn talks_record_no_free_text() {
    facts_hold_no_text::<crate::portfolio::talks::Talk>(
        crate::portfolio::talks::AUDIT_FACTS,
        &[
            "id",
            "enrolment_id",
            "placement_id",
            "next_placement_id",
            "delmal",
            "status",
            "created_by",
        ],
    );
}

#[test]
fn summary_assessments_record_no_free_text() {
    facts_hold_no_text::<crate::portfolio::summaries::SummaryAssessment>(
        crate::portfolio::summaries::AUDIT_FACTS,
        &[
            "id",
            "enrolment_id",
            "placement_id",
            "author_id",
            "status",
            "supersedes_id",
            "superseded_by",
        ],
    );
}

#[test]
fn course_confirmations_record_no_free_text() {
    facts_hold_no_text::<crate::portfolio::course_confirmation::CourseConfirmation>(
        crate::portfolio::course_confirmation::AUDIT_FACTS,
        &[
            "activity_id",
            "enrolment_id",
            "role",
            "status",
            "requested_by",
            "vetted_by",
            "content_hash",
        ],
    );
}

#[test]
fn final_assessments_record_no_free_text() {
    facts_hold_no_text::<crate::final_assessment::model::FinalAssessment>(
        crate::final_assessment::service::AUDIT_FACTS,
        &["id", "enrolment_id", "status", "content_hash", "created_by"],
    );
}

#[test]
fn external_assessors_record_no_free_text() {
    facts_hold_no_text::<crate::portfolio::vetting::ExternalAssessor>(
        crate::portfolio::vetting::AUDIT_FACTS,
        &[
            "id",
            "organisation_id",
            "status",
            "requested_by",
            "enrolment_id",
            "decided_by",
            // Codes: `not_specialist`, `no_assessment_training`, ...
            "qualification_warnings",
        ],
    );
    facts_hold_no_text::<crate::portfolio::qualifications::AssessorQualifications>(
        crate::portfolio::qualifications::AUDIT_FACTS,
        &["confirmed_by"],
    );
}

#[test]
fn signer_profiles_record_no_free_text() {
    facts_hold_no_text::<crate::accounts::signer_profiles::SignerProfile>(
        crate::accounts::signer_profiles::AUDIT_FACTS,
        &["user_id", "updated_by"],
    );
}

#[test]
fn study_plan_goals_record_no_free_text() {
    facts_hold_no_text::<crate::enrolment::goals::StudyPlanGoal>(
        crate::enrolment::goals::AUDIT_FACTS,
        &[
            "id",
            "enrolment_id",
            "placement_id",
            "delmal",
            "status",
            "updated_by",
        ],
    );
}

#[test]
#[should_panic(expected = "free text stays out")]
fn the_check_catches_free_text_kept_as_a_fact() {
    facts_hold_no_text::<crate::portfolio::activities::Activity>(&["id", "reflection"], &["id"]);
}

#[test]
#[should_panic(expected = "free text stays out")]
fn the_check_catches_a_nullable_free_text_kept_as_a_fact() {
    facts_hold_no_text::<crate::portfolio::assessments::Assessment>(&["decline_reason"], &[]);
}

#[test]
fn erasure_names_imported_course_confirmations_as_portfolio_stores_them() {
    assert_eq!(
        crate::privacy::erasure::COURSE_CONFIRMATION_RECORD,
        crate::portfolio::course_confirmation::TRANSFERRED_RECORD_TYPE
    );
}

#[test]
fn erasure_keeps_course_confirmations_by_the_status_portfolio_stores() {
    assert_eq!(
        crate::privacy::erasure::CONFIRMED_COURSE,
        crate::portfolio::course_confirmation::CONFIRMED.as_str()
    );
}
