//! What a final assessment is: who decides, the decision, the signers, and the bodies
//! of the requests that create, change and sign one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::etag;
use crate::ids::{EnrolmentId, UserId};
use crate::portfolio::summaries::Judgement;

/// Who decides.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The external assessor (extern bedömare) with the main supervisor.
    ExternalAssessor,
    /// A clinical competence committee: several members, one decision.
    Committee,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::ExternalAssessor => "external_assessor",
            Mode::Committee => "committee",
        }
    }
    /// The mode stored as `s`; `None` for a code this build does not know.
    fn from_code(s: &str) -> Option<Mode> {
        match s {
            "external_assessor" => Some(Mode::ExternalAssessor),
            "committee" => Some(Mode::Committee),
            _ => None,
        }
    }
}

crate::text_enum_sql!(Mode);

/// The overall decision.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Baskompetens (or specialistkompetens) achieved.
    Achieved,
    /// Not yet: `missing` says what is missing.
    NotYet,
}

impl Decision {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Decision::Achieved => "achieved",
            Decision::NotYet => "not_yet",
        }
    }
    /// The decision stored as `s`; `None` for a code this build does not know.
    fn from_code(s: &str) -> Option<Decision> {
        match s {
            "achieved" => Some(Decision::Achieved),
            "not_yet" => Some(Decision::NotYet),
            _ => None,
        }
    }
}

crate::text_enum_sql!(Decision);

crate::text_enum! {
    /// Where a final assessment stands: `decided` is final.
    pub enum FinalStatus {
        Draft = "draft",
        AwaitingSignatures = "awaiting_signatures",
        Decided = "decided",
    }
}

crate::text_enum! {
    /// The part a signer has in the decision.
    pub enum SignerRole {
        /// Extern bedömare.
        ExternalAssessor = "external_assessor",
        /// Huvudhandledare.
        MainSupervisor = "main_supervisor",
        /// The committee's chair (ordförande).
        CommitteeChair = "committee_chair",
        CommitteeMember = "committee_member",
    }
}

// The API shows both as their stored codes: plain strings in the spec, as before.
impl Serialize for FinalStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Serialize for SignerRole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FinalSigner {
    #[schema(value_type = String)]
    pub user_id: UserId,
    #[schema(example = "Karin Lind")]
    pub name: String,
    /// `external_assessor`, `main_supervisor`, `committee_chair` or `committee_member`.
    #[schema(value_type = String)]
    pub role: SignerRole,
    #[serde(default, with = "crate::clock::millis_opt")]
    pub signed_at: Option<DateTime<Utc>>,
    /// How the signer's second factor was given (`totp`, `step_up_totp`, ...).
    pub signature_method: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FinalAssessment {
    pub id: String,
    #[schema(value_type = String)]
    pub enrolment_id: EnrolmentId,
    pub mode: Mode,
    pub decision: Option<Decision>,
    /// One per delmål: `achieved` or `not_yet`, with a comment.
    pub judgements: Vec<Judgement>,
    /// When not yet achieved: what is missing and what to do.
    pub missing: String,
    pub rationale: String,
    /// `draft`, `awaiting_signatures` or `decided` (final).
    #[schema(value_type = String)]
    pub status: FinalStatus,
    pub signers: Vec<FinalSigner>,
    /// SHA-256 of the decided content every signer signed.
    pub content_hash: Option<String>,
    #[serde(default, with = "crate::clock::millis_opt")]
    pub decided_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
    /// In external-assessor mode: the external assessor's independence check as of the
    /// request (whether they took part in the training, with the facts, and their
    /// recorded qualifications). Computed on each read, not part of what is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub independence: Option<crate::enrolment::independence::Independence>,
}

impl FinalAssessment {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }

    /// What the signers sign: the decision and who decides.
    pub(crate) fn content(&self) -> serde_json::Value {
        let signers: Vec<_> = self
            .signers
            .iter()
            .map(|s| json!({"user_id": s.user_id, "role": s.role}))
            .collect();
        json!({"id": self.id, "enrolment_id": self.enrolment_id, "mode": self.mode,
               "decision": self.decision, "judgements": self.judgements,
               "missing": self.missing, "rationale": self.rationale, "signers": signers})
    }

    pub fn content_hash_now(&self) -> String {
        crate::auth::crypto::sha256_hex(self.content().to_string())
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFinalAssessment {
    pub id: Option<Uuid>,
    pub mode: Mode,
    /// For a committee: its members (at least two), who all sign the one decision.
    #[serde(default)]
    pub committee_member_ids: Vec<String>,
    /// For a committee: its chair (ordförande), one of the members. The chair's name goes
    /// on the signature line the committee fills on the certificates (see
    /// `catalog/certificates.json`); without a chair, every member's name does.
    pub committee_chair_id: Option<String>,
    #[serde(default)]
    pub judgements: Vec<Judgement>,
    pub decision: Option<Decision>,
    #[serde(default)]
    pub missing: String,
    #[serde(default)]
    pub rationale: String,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinalAssessmentPatch {
    pub judgements: Option<Vec<Judgement>>,
    pub decision: Option<Decision>,
    pub missing: Option<String>,
    pub rationale: Option<String>,
}

/// A signature: with a fresh code when the session itself cannot vouch for a second
/// factor (a remembered device), or to step up anyway.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignFinalAssessment {
    #[schema(example = "492039")]
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
}
