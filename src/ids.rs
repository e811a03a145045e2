//! Typed values that cross the database boundary: newtype ids, calendar days stored as
//! text, and text-coded enums.
//!
//! Every table keys its rows by a text id (a UUID, or a caller-chosen id for offline
//! creates). A bare `&str` lets an enrolment id go where a user id belongs and still
//! compile; the newtypes below make that a type error. They are `Text` to diesel, a
//! plain string to serde and to the OpenAPI document, so the API does not change.
//!
//! Reading a stored value that does not parse (a date that is not `YYYY-MM-DD`, an
//! enum code this build does not know) is a deserialisation error, which the error
//! layer reports as an internal error: never a silent default such as 1970-01-01.

use std::fmt;

use chrono::NaiveDate;
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::sql_types::Text;

/// Declares newtype ids: `Text` in the database, a string in JSON and in the spec.
#[macro_export]
macro_rules! id_types {
    ($($(#[$meta:meta])* $name:ident;)*) => {$(
        $(#[$meta])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }
            /// A fresh random (v4 UUID) id.
            pub fn random() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// So a typed id goes where code not yet typed takes a `&str`.
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        /// So a call site converts alike whether it holds a `&str` or already a typed id.
        impl From<&$name> for $name {
            fn from(id: &$name) -> Self {
                id.clone()
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                Self(s.clone())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == &other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                <String as utoipa::PartialSchema>::schema()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                self.0.as_str().to_sql(out)
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                String::from_sql(bytes).map(Self)
            }
        }
    )*};
}

id_types! {
    /// A person's account (användare).
    UserId;
    /// An organisation: region, care provider, unit (organisation).
    OrganisationId;
    /// One trainee's BT or ST (utbildning / tjänstgöring).
    EnrolmentId;
    /// A placement (placering / randning).
    PlacementId;
    /// A period of leave (ledighet).
    LeaveId;
    /// An assignment of a supervisor, director of studies or assessor to a trainee
    /// (tilldelning).
    AssignmentId;
    /// A learning activity (utbildningsaktivitet).
    ActivityId;
    /// A formative assessment (bedömning).
    AssessmentId;
    /// A supervision session, handover talk or final check-in (samtal).
    TalkId;
    /// A summary assessment (sammanfattande bedömning).
    SummaryId;
    /// A stored file attached to a record (bilaga).
    AttachmentId;
    /// A session of a signed-in user.
    SessionId;
    /// An API client of a learning platform.
    ClientId;
    /// A webhook subscription.
    WebhookId;
    /// One webhook delivery (an event for one subscription): the `webhook-id` the
    /// receiver deduplicates on.
    DeliveryId;
    /// A group review of a trainee (kollegium).
    GroupReviewId;
    /// A pending second-factor or step-up challenge.
    ChallengeId;
    /// A passkey (WebAuthn) registration or sign-in ceremony.
    CeremonyId;
    /// A registered passkey.
    PasskeyId;
    /// A regulation in the catalogue (föreskrift: HSLF-FS 2021:8, SOSFS 2015:8).
    RegulationId;
    /// A curriculum template (utbildningsmall) of an organisation.
    TemplateId;
    /// A dossier signing key: the first 16 hex digits of the SHA-256 of its public half.
    SigningKeyId;
    /// An xAPI statement (its `id`, a UUID unique within one organisation).
    StatementId;
    /// A service whose transfer bundles a region accepts (betrodd tjänst).
    TrustedServiceId;
}

/// A calendar day, stored as `YYYY-MM-DD` text (the one date form both backends share).
/// Reading anything else is an error.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = Text)]
pub struct Day(pub NaiveDate);

impl Day {
    pub const FORMAT: &'static str = "%Y-%m-%d";

    pub fn parse(s: &str) -> Option<Day> {
        NaiveDate::parse_from_str(s, Self::FORMAT).ok().map(Day)
    }

    pub fn date(self) -> NaiveDate {
        self.0
    }

    pub fn to_text(self) -> String {
        self.0.format(Self::FORMAT).to_string()
    }
}

impl From<NaiveDate> for Day {
    fn from(d: NaiveDate) -> Self {
        Day(d)
    }
}

impl From<Day> for NaiveDate {
    fn from(d: Day) -> Self {
        d.0
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format(Self::FORMAT))
    }
}

/// For `#[diesel(serialize_as = String)]` on insertable and changeset fields: a `Day`
/// binds as its text. (diesel's `ToSql` borrows the bound value for the statement's
/// lifetime, and the text of a `NaiveDate` is made on the fly, so there is no `ToSql`.)
impl From<Day> for String {
    fn from(d: Day) -> Self {
        d.to_text()
    }
}

impl<DB> FromSql<Text, DB> for Day
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let text = String::from_sql(bytes)?;
        Day::parse(&text).ok_or_else(|| format!("stored date {text:?} is not YYYY-MM-DD").into())
    }
}

/// A text-coded enum: its code in the database (`as_str`) and back (`from_code`). An
/// unknown stored code is a deserialisation error, never a fallback variant.
///
/// `text_enum_sql!(AssignmentRole);` for an enum with `fn as_str(&self) -> &'static str`
/// and `fn from_code(&str) -> Option<Self>`, deriving `AsExpression` and `FromSqlRow`
/// with `#[diesel(sql_type = diesel::sql_types::Text)]`.
#[macro_export]
macro_rules! text_enum_sql {
    ($name:ident) => {
        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                let code: &'static str = self.as_str();
                code.to_sql(out)
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let code = String::from_sql(bytes)?;
                $name::from_code(&code).ok_or_else(|| {
                    format!(concat!("unknown stored ", stringify!($name), " {:?}"), code).into()
                })
            }
        }
    };
}

/// Declares a text-coded enum that only this crate reads (a status, kind or role column
/// whose API field stays a plain string): the enum, its codes both ways, `Display`, and
/// `text_enum_sql!`, so an unknown stored code is an error, never a fallback.
///
/// ```ignore
/// text_enum! {
///     /// A user's account status.
///     pub enum UserStatus { Active = "active", Disabled = "disabled" }
/// }
/// ```
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $code:literal),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),*
        }

        impl $name {
            /// The stored code (`const`, so closed sets of codes can name it).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $code),*
                }
            }
            /// Every value, in declaration order (tests walk the whole set).
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// The value stored as `s`; `None` for a code this build does not know.
            pub fn from_code(s: &str) -> Option<$name> {
                match s {
                    $($code => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        $crate::text_enum_sql!($name);
    };
}

text_enum! {
    /// The kind of record an imported record's provenance row names
    /// (`transferred_records.record_type`), as progress names its evidence.
    ///
    /// Here rather than in a feature: `transfer` writes the rows, and `portfolio`,
    /// `enrolment` and `privacy` read or delete them by kind; `privacy` sits below
    /// `portfolio` and `enrolment`, so no feature is low enough for all of them.
    pub enum TransferredRecordType {
        Activity = "activity",
        Assessment = "assessment",
        SummaryAssessment = "summary_assessment",
        FinalAssessment = "final_assessment",
        /// Handledarsamtal.
        SupervisionSession = "supervision_session",
        /// Överlämningssamtal.
        HandoverTalk = "handover_talk",
        /// Slutavstämning.
        FinalCheckIn = "final_check_in",
        /// A kursledare's confirmation of an imported course.
        CourseConfirmation = "course_confirmation",
        /// Who supervised on the sending service (a fact, not an account here).
        SupervisorAssignment = "supervisor_assignment",
        Placement = "placement",
        LeavePeriod = "leave_period",
        ExtentPeriod = "extent_period",
        CreditedService = "credited_service",
    }
}

// The API shows the kind as its stored code: a plain string in the spec, as before.
impl serde::Serialize for TransferredRecordType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

text_enum! {
    /// Where a mail of the outbox (`mail_outbox.status`) stands: `pending` until a send
    /// succeeds (`sent`) or the outbox gives up (`failed`).
    ///
    /// Here rather than in `accounts` (whose `GET /mail-outbox` lists it): the outbox
    /// itself, the metrics and the re-sealing of secrets are plumbing below the features,
    /// and `outbox` imports `secrets` and `telemetry`, so neither could import it from
    /// there without a cycle.
    pub enum MailStatus { Pending = "pending", Sent = "sent", Failed = "failed" }
}

text_enum! {
    /// Where a webhook delivery (`webhook_deliveries.status`) stands.
    ///
    /// Here rather than in `integrations::webhooks` (which re-exports it): the metrics'
    /// queue gauge (`telemetry`, below the features) counts the pending ones.
    pub enum DeliveryStatus {
        Pending = "pending",
        Delivered = "delivered",
        /// Gave up after the retry window, or the subscription was deleted.
        Failed = "failed",
    }
}

#[cfg(test)]
#[path = "ids_tests.rs"]
mod tests;
