//! The closed sets of values that travel as plain strings in the code (a status column,
//! a code the service writes), declared as `enum`s in the OpenAPI document so that
//! generated clients get enumerations instead of `str`.
//!
//! Each entry names a property or query parameter and its values, as the field's own
//! description lists them; `spec_tests.rs` checks that every entry still meets a string
//! field of the document whose description names each value, and that no field whose
//! description lists values (without "e.g.") is missing here.
//!
//! Not here: open sets ("e.g."; the changes feed's `action` and `entity` grow with the
//! audit log), the webhook event names (declared with their own code), and values that are composed (`delmal-<id>`, comma-separated
//! roles) or second-factor method names that grow with the methods.

use crate::accounts::invitations::InvitationStatus;
use crate::portfolio::{assessments, course_confirmation, vetting};

/// `(component schema, property, values)`.
pub(super) const PROPERTIES: &[(&str, &str, &[&str])] = &[
    (
        "AcceptedResponse",
        "status",
        &["mfa_enrolment_required", "role_granted"],
    ),
    ("ApiClient", "status", &["active", "revoked"]),
    ("Assessment", "status", ASSESSMENT_STATUS),
    ("CohortRow", "final_decision", DECISIONS),
    ("CohortRow", "status", ENROLMENT_STATUS),
    ("DelmalProgress", "summary_judgement", JUDGEMENTS),
    ("DelmalProgress", "final_judgement", JUDGEMENTS),
    (
        "DelmalStatus",
        "status",
        &["not_started", "in_progress", "achieved"],
    ),
    ("Enrolment", "status", ENROLMENT_STATUS),
    ("EnrolmentPatch", "status", ENROLMENT_STATUS),
    (
        "EvidenceItem",
        "record_type",
        &[
            "activity",
            "assessment",
            "supervision_session",
            "handover_talk",
            "final_check_in",
            "summary_assessment",
            "credited_service",
        ],
    ),
    (
        "CourseConfirmation",
        "status",
        &[
            course_confirmation::AWAITING_VETTING.as_str(),
            course_confirmation::AWAITING.as_str(),
            course_confirmation::CONFIRMED.as_str(),
            course_confirmation::RETURNED.as_str(),
        ],
    ),
    ("CourseConfirmation", "role", &[course_confirmation::ROLE]),
    ("ExternalAssessor", "status", EXTERNAL_ASSESSOR_STATUS),
    (
        "FinalAssessment",
        "status",
        &["draft", "awaiting_signatures", "decided"],
    ),
    (
        "FinalSigner",
        "role",
        &[
            "external_assessor",
            "main_supervisor",
            "committee_chair",
            "committee_member",
        ],
    ),
    ("ImportedUser", "status", &["invited", "unchanged"]),
    ("Invitation", "status", INVITATION_STATUS),
    ("Judgement", "judgement", JUDGEMENTS),
    ("MePatch", "notification_mode", NOTIFICATION_MODES),
    ("OutboxEntry", "status", OUTBOX_STATUS),
    (
        "PaceReason",
        "code",
        &[
            "checklist_behind",
            "assessments_behind",
            "supervision_overdue",
            "supervision_sessions_behind",
            "delmal_without_evidence",
        ],
    ),
    (
        "PersonalIdentity",
        "number_kind",
        &["personnummer", "samordningsnummer"],
    ),
    ("Progress", "final_decision", DECISIONS),
    ("Regulation", "source", &["seed", "api"]),
    ("StudyPlanGoal", "status", GOAL_STATUS),
    ("StudyPlanGoalInput", "status", GOAL_STATUS),
    ("StudyPlanGoalPatch", "status", GOAL_STATUS),
    ("SummaryAssessment", "status", &["draft", "signed"]),
    (
        "SupervisionFlag",
        "code",
        crate::progress::supervision_flags::CODES,
    ),
    ("Talk", "status", &["awaiting_confirmation", "confirmed"]),
    ("TokenRequest", "grant_type", &["client_credentials"]),
    ("TokenResponse", "token_type", &["Bearer"]),
    ("User", "notification_mode", NOTIFICATION_MODES),
    ("User", "status", &["active", "disabled"]),
    ("Verification", "format", &["json", "pdf"]),
    ("WebhookDelivery", "status", DELIVERY_STATUS),
    ("XapiStatement", "status", XAPI_STATUS),
    ("XapiStatement", "reason", XAPI_REASONS),
];

/// `(path, method, query parameter, values)`.
pub(super) const PARAMETERS: &[(&str, &str, &str, &[&str])] = &[
    (
        "/api/v1/cohort-overview",
        "get",
        "status",
        &["active", "completed", "withdrawn", "all"],
    ),
    (
        "/api/v1/cohort-overview",
        "get",
        "pace",
        &["on_pace", "behind", "at_risk"],
    ),
    ("/api/v1/cohort-overview", "get", "order", &["asc", "desc"]),
    (
        "/api/v1/enrolments/{id}/assessments",
        "get",
        "status",
        ASSESSMENT_STATUS,
    ),
    (
        "/api/v1/external-assessors",
        "get",
        "status",
        EXTERNAL_ASSESSOR_STATUS,
    ),
    ("/api/v1/invitations", "get", "status", INVITATION_STATUS),
    ("/api/v1/mail-outbox", "get", "status", OUTBOX_STATUS),
    (
        "/api/v1/webhook-subscriptions/{id}/deliveries",
        "get",
        "status",
        DELIVERY_STATUS,
    ),
    ("/api/v1/xapi/statements", "get", "status", XAPI_STATUS),
    (
        "/api/v1/xapi/statements",
        "get",
        "format",
        &["ids", "exact", "canonical"],
    ),
];

const ASSESSMENT_STATUS: &[&str] = &[
    assessments::DRAFT.as_str(),
    assessments::AWAITING_VETTING.as_str(),
    assessments::AWAITING.as_str(),
    assessments::SIGNED.as_str(),
    assessments::DECLINED.as_str(),
];
const DECISIONS: &[&str] = &["achieved", "not_yet"];
const DELIVERY_STATUS: &[&str] = &["pending", "delivered", "failed"];
const ENROLMENT_STATUS: &[&str] = &["active", "completed", "withdrawn"];
const EXTERNAL_ASSESSOR_STATUS: &[&str] = &[
    vetting::PENDING.as_str(),
    vetting::APPROVED.as_str(),
    vetting::DECLINED.as_str(),
];
const GOAL_STATUS: &[&str] = &["planned", "in_progress", "done"];
const INVITATION_STATUS: &[&str] = &[
    InvitationStatus::Pending.as_str(),
    InvitationStatus::Accepted.as_str(),
    InvitationStatus::Revoked.as_str(),
    InvitationStatus::Expired.as_str(),
];
const JUDGEMENTS: &[&str] = &["achieved", "progressing", "not_yet"];
const NOTIFICATION_MODES: &[&str] = &["immediate", "daily_digest"];
const OUTBOX_STATUS: &[&str] = &["pending", "failed"];
/// What became of a received xAPI statement (`integrations::xapi::ingest`).
const XAPI_STATUS: &[&str] = &["unmatched", "created", "ignored", "dismissed"];
const XAPI_REASONS: &[&str] = &[
    "unknown_learner",
    "unmapped_activity",
    "not_recorded",
    "voiding",
    "voided",
];
