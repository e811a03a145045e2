//! One error type for the whole service, converted once into `application/problem+json`
//! (RFC 9457). The `type` URI of each variant is stable: clients switch on it.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_BASE: &str = "https://eportfolio.example/problems/";
pub const PROBLEM_JSON: &str = "application/problem+json";
/// The detail of every conflict caused by a unique constraint.
pub const UNIQUE_CONFLICT: &str = "a record with this identity already exists";

/// One offending field of a request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `email` or `leave_periods[1].end`.
    pub field: String,
    pub message: String,
    /// For `patient-data-suspected`: where in the field's text the number starts, in
    /// characters (Unicode scalar values) from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
            position: None,
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem, e.g. `https://eportfolio.example/problems/validation`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Present for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For `step-up-required`: what the request must carry, `password` and/or
    /// `second_factor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires: Option<Vec<String>>,
    /// For `step-up-required`: the second factors this account can answer with
    /// (`totp` as `totp_code`, `email_code` as `email_code` after asking for one,
    /// `recovery_code` as `recovery_code`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// The request id, as in the `X-Request-Id` header, for support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// Free text holding what looks like a personnummer or samordningsnummer (422); the
    /// client may resend with `"acknowledge_patient_data_warning": true` (privacy::guard).
    #[error("patient data suspected")]
    PatientDataSuspected(Vec<FieldError>),
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    /// The client sent its body too slowly (`CLIENT_BODY_TIMEOUT_SECONDS`); the
    /// connection is closed after this answer.
    #[error("request timeout: {0}")]
    RequestTimeout(String),
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    /// Wrong e-mail or password; deliberately says nothing about which.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("invalid second factor")]
    InvalidSecondFactor,
    /// A link token (invitation, reset, verification) that is unknown, used or expired.
    #[error("invalid or expired token")]
    InvalidToken,
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// An API client's token lacks the OAuth scope this needs.
    #[error("insufficient scope: {0}")]
    InsufficientScope(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("idempotency key reused with another request")]
    IdempotencyKeyReused,
    #[error("a request with this idempotency key is still in progress")]
    IdempotencyInProgress,
    /// The request was carried out, but its answer held a secret, which is never stored
    /// to be replayed.
    #[error("done; the secret in its answer is not replayed")]
    IdempotencySecretNotReplayed,
    /// The request was carried out (its write committed), but the server stopped before
    /// its answer was stored; it is not run again.
    #[error("done; its answer was lost")]
    IdempotencyAnswerLost,
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("precondition required: {0}")]
    PreconditionRequired(String),
    /// A change to the account's security (e-mail, password, second factor, recovery
    /// codes, remembered devices) needs the current password and, unless this session
    /// gave one in the last five minutes, a second factor (401, RFC 9470 style).
    #[error("step-up required")]
    StepUpRequired {
        requires: Vec<String>,
        methods: Vec<String>,
    },
    /// An e-ID sign-in or link (OpenID Connect) whose attempt is unknown, used or expired,
    /// or whose provider answer did not verify (issuer, audience, expiry, nonce, PKCE).
    /// The detail is the same for every cause; the cause goes to the log (401).
    #[error("e-ID sign-in refused: {0}")]
    OidcRefused(String),
    /// An e-ID that is linked to no (active) account: the same answer whether or not the
    /// person has an account (401).
    #[error("e-ID not linked")]
    OidcNotLinked,
    /// A one-time link that was already used or has expired (410).
    #[error("gone: {0}")]
    Gone(String),
    /// Processing of the record is restricted (GDPR Art. 18): it may be read, not
    /// changed, until an administrator lifts the restriction (409).
    #[error("processing restricted: {0}")]
    ProcessingRestricted(String),
    /// A signature needs a second factor this session cannot vouch for (403).
    #[error("second factor required")]
    SecondFactorRequired,
    /// None of the representations the client accepts can be produced (406).
    #[error("not acceptable: {0}")]
    NotAcceptable(String),
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The attachment store (an object store) failed: unreachable, an error of its own,
    /// a timeout (503 with Retry-After). Nothing of the request was kept.
    #[error("attachment store unavailable: {0}")]
    StoreUnavailable(String),
    /// The attachment store is full (507): nothing of the upload was kept.
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    /// A stored attachment no longer matches its SHA-256: it is never served (500).
    #[error("attachment damaged: {0}")]
    AttachmentDamaged(String),
    /// A refusal with a machine code of its own (transfer bundles: `transfer-tampered`,
    /// `transfer-untrusted`, `transfer-already-imported`, ...; see docs/transfer.md).
    #[error("refused ({code}): {detail}")]
    Refused {
        status: u16,
        code: &'static str,
        title: &'static str,
        detail: String,
    },
    #[error("configuration: {0}")]
    Config(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl AppError {
    /// The stable machine code; the last segment of the problem `type` URI.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Malformed(_) => "malformed-request",
            AppError::Validation(_) => "validation",
            AppError::PatientDataSuspected(_) => "patient-data-suspected",
            AppError::Unprocessable(_) => "unprocessable",
            AppError::UnsupportedMediaType(_) => "unsupported-media-type",
            AppError::PayloadTooLarge(_) => "payload-too-large",
            AppError::RequestTimeout(_) => "request-timeout",
            AppError::Unauthenticated(_) => "unauthenticated",
            AppError::InvalidCredentials => "invalid-credentials",
            AppError::InvalidSecondFactor => "invalid-second-factor",
            AppError::InvalidToken => "invalid-token",
            AppError::Forbidden(_) => "forbidden",
            AppError::InsufficientScope(_) => "insufficient-scope",
            AppError::NotFound => "not-found",
            AppError::MethodNotAllowed => "method-not-allowed",
            AppError::Conflict(_) => "conflict",
            AppError::IdempotencyKeyReused => "idempotency-key-reused",
            AppError::IdempotencyInProgress => "idempotency-in-progress",
            AppError::IdempotencySecretNotReplayed => "idempotency-secret-not-replayed",
            AppError::IdempotencyAnswerLost => "idempotency-answer-lost",
            AppError::PreconditionFailed => "precondition-failed",
            AppError::PreconditionRequired(_) => "precondition-required",
            AppError::NotAcceptable(_) => "not-acceptable",
            AppError::SecondFactorRequired => "second-factor-required",
            AppError::StepUpRequired { .. } => "step-up-required",
            AppError::Gone(_) => "gone",
            AppError::ProcessingRestricted(_) => "processing-restricted",
            AppError::OidcRefused(_) => "oidc-refused",
            AppError::OidcNotLinked => "oidc-not-linked",
            AppError::RateLimited { .. } => "rate-limited",
            AppError::Unavailable(_) => "unavailable",
            AppError::StoreUnavailable(_) => "attachment-store-unavailable",
            AppError::InsufficientStorage(_) => "insufficient-storage",
            AppError::AttachmentDamaged(_) => "attachment-damaged",
            AppError::Refused { code, .. } => code,
            AppError::Config(_) | AppError::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            AppError::Malformed(_) => "Malformed request",
            AppError::Validation(_) => "Validation failed",
            AppError::PatientDataSuspected(_) => "Possible patient data",
            AppError::Unprocessable(_) => "Request cannot be processed",
            AppError::UnsupportedMediaType(_) => "Unsupported media type",
            AppError::PayloadTooLarge(_) => "Payload too large",
            AppError::RequestTimeout(_) => "Request timeout",
            AppError::Unauthenticated(_) => "Authentication required",
            AppError::InvalidCredentials => "Invalid credentials",
            AppError::InvalidSecondFactor => "Invalid second factor",
            AppError::InvalidToken => "Invalid or expired link",
            AppError::Forbidden(_) => "Forbidden",
            AppError::InsufficientScope(_) => "Insufficient scope",
            AppError::NotFound => "Not found",
            AppError::MethodNotAllowed => "Method not allowed",
            AppError::Conflict(_) => "Conflict",
            AppError::IdempotencyKeyReused => "Idempotency key reused",
            AppError::IdempotencyInProgress => "Request in progress",
            AppError::IdempotencySecretNotReplayed => "Done; the secret is not shown again",
            AppError::IdempotencyAnswerLost => "Done; the answer was lost",
            AppError::PreconditionFailed => "Precondition failed",
            AppError::PreconditionRequired(_) => "Precondition required",
            AppError::NotAcceptable(_) => "Not acceptable",
            AppError::SecondFactorRequired => "Second factor required",
            AppError::StepUpRequired { .. } => "Confirm it is you",
            AppError::Gone(_) => "Gone",
            AppError::ProcessingRestricted(_) => "Processing restricted",
            AppError::OidcRefused(_) => "E-ID sign-in refused",
            AppError::OidcNotLinked => "E-ID not linked to an account",
            AppError::RateLimited { .. } => "Too many requests",
            AppError::Unavailable(_) => "Service unavailable",
            AppError::StoreUnavailable(_) => "Attachment store unavailable",
            AppError::InsufficientStorage(_) => "Insufficient storage",
            AppError::AttachmentDamaged(_) => "Attachment damaged",
            AppError::Refused { title, .. } => title,
            AppError::Config(_) | AppError::Internal(_) => "Internal error",
        }
    }

    fn detail(&self) -> String {
        match self {
            AppError::Malformed(d)
            | AppError::Unprocessable(d)
            | AppError::UnsupportedMediaType(d)
            | AppError::PayloadTooLarge(d)
            | AppError::RequestTimeout(d)
            | AppError::Unauthenticated(d)
            | AppError::Forbidden(d)
            | AppError::InsufficientScope(d)
            | AppError::Conflict(d)
            | AppError::PreconditionRequired(d)
            | AppError::NotAcceptable(d)
            | AppError::Gone(d)
            | AppError::ProcessingRestricted(d)
            | AppError::Unavailable(d)
            | AppError::InsufficientStorage(d)
            | AppError::Refused { detail: d, .. } => d.clone(),
            // The store's own words (its address, its XML) go to the log only.
            AppError::StoreUnavailable(_) => "The attachment store cannot be reached just now; \
                nothing of this request was kept. Try again later."
                .into(),
            AppError::AttachmentDamaged(_) => "The stored file no longer matches its SHA-256; \
                it is not served. An administrator can restore it from a backup."
                .into(),
            AppError::StepUpRequired { requires, .. } => {
                if requires.iter().any(|r| r == "second_factor") {
                    "This change needs your current password (password) and a second factor \
                     (totp_code, recovery_code, or email_code after POST /me/step-up/email-code)."
                        .into()
                } else {
                    "This change needs your current password (password).".into()
                }
            }
            AppError::Validation(errors) => format!(
                "{} field(s) are invalid: {}",
                errors.len(),
                errors
                    .iter()
                    .map(|e| e.field.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            AppError::PatientDataSuspected(errors) => format!(
                "{} looks like it holds a personnummer or samordningsnummer. Patient data \
                 does not belong in a portfolio: remove it, or, if it is not patient data, \
                 send the request again with \"acknowledge_patient_data_warning\": true.",
                errors
                    .iter()
                    .map(|e| e.field.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            AppError::InvalidCredentials => "The e-mail address or password is wrong.".into(),
            AppError::InvalidSecondFactor => "The code is wrong, expired or already used.".into(),
            AppError::InvalidToken => {
                "The link is unknown, already used or expired; ask for a new one.".into()
            }
            AppError::NotFound => "No such resource, or you may not see it.".into(),
            AppError::SecondFactorRequired => {
                "This session was opened on a remembered device; send a TOTP or recovery code \
                 (totp_code or recovery_code) with the signature."
                    .into()
            }
            AppError::MethodNotAllowed => "This resource does not support that method.".into(),
            AppError::OidcRefused(_) => {
                "The e-ID sign-in could not be completed (unknown, used or expired attempt, or \
                 an answer from the provider that did not verify); start again."
                    .into()
            }
            AppError::OidcNotLinked => {
                "This e-ID is not linked to an account here. Sign in with your e-mail address \
                 and link it under /me/oidc-links."
                    .into()
            }
            AppError::IdempotencyKeyReused => {
                "This Idempotency-Key was already used with a different request body.".into()
            }
            AppError::IdempotencyInProgress => {
                "A request with this Idempotency-Key is still being processed; retry shortly."
                    .into()
            }
            AppError::IdempotencySecretNotReplayed => {
                "The request with this Idempotency-Key was carried out. Its answer held a \
                 secret, which is shown only once and never stored. To get a new one, ask \
                 again with a new Idempotency-Key: POST /api/v1/me/recovery-codes for \
                 recovery codes, POST /api/v1/me/totp for an authenticator, or POST \
                 .../rotate-secret for an API client or webhook subscription."
                    .into()
            }
            AppError::IdempotencyAnswerLost => {
                "The request with this Idempotency-Key was carried out, but the server \
                 stopped before its answer was stored. It is not repeated: read the resource \
                 to see the result."
                    .into()
            }
            AppError::PreconditionFailed => {
                "The resource changed since you read it (If-Match does not match its ETag).".into()
            }
            AppError::RateLimited { retry_after } => format!(
                "Too many attempts; try again in {} seconds.",
                retry_after.as_secs().max(1)
            ),
            // Internal details go to the log, never to the client.
            AppError::Config(_) | AppError::Internal(_) => {
                "An unexpected error occurred; it has been logged.".into()
            }
        }
    }

    pub fn validation(field: &str, message: &str) -> AppError {
        AppError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(e: impl std::fmt::Display) -> AppError {
        AppError::Internal(e.to_string())
    }

    /// A stored value that does not read back (`what` of the `entity` row `id`): an
    /// error, never a default.
    pub fn unreadable(entity: &str, id: &str, what: &str, e: impl std::fmt::Display) -> AppError {
        AppError::Internal(format!("{entity} {id}: stored {what} unreadable: {e}"))
    }

    pub fn problem(&self, request_id: Option<String>) -> Problem {
        Problem {
            type_: format!("{PROBLEM_BASE}{}", self.code()),
            title: self.title().into(),
            status: self.status_code().as_u16(),
            detail: self.detail(),
            errors: match self {
                AppError::Validation(e) | AppError::PatientDataSuspected(e) => e.clone(),
                _ => Vec::new(),
            },
            requires: match self {
                AppError::StepUpRequired { requires, .. } => Some(requires.clone()),
                _ => None,
            },
            methods: match self {
                AppError::StepUpRequired { methods, .. } => Some(methods.clone()),
                _ => None,
            },
            request_id,
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Malformed(_) => StatusCode::BAD_REQUEST,
            AppError::Validation(_)
            | AppError::PatientDataSuspected(_)
            | AppError::Unprocessable(_)
            | AppError::InvalidToken => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            AppError::Unauthenticated(_)
            | AppError::StepUpRequired { .. }
            | AppError::InvalidCredentials
            | AppError::InvalidSecondFactor
            | AppError::OidcRefused(_)
            | AppError::OidcNotLinked => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Conflict(_)
            | AppError::ProcessingRestricted(_)
            | AppError::IdempotencyKeyReused
            | AppError::IdempotencyInProgress
            | AppError::IdempotencySecretNotReplayed
            | AppError::IdempotencyAnswerLost => StatusCode::CONFLICT,
            AppError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            AppError::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            AppError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            AppError::SecondFactorRequired => StatusCode::FORBIDDEN,
            AppError::Gone(_) => StatusCode::GONE,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) | AppError::StoreUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            AppError::AttachmentDamaged(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Refused { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
            }
            AppError::Config(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        // The request id is filled in by the request-id middleware, which sees the response.
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        match self {
            AppError::RateLimited { retry_after } => {
                res.insert_header((
                    header::RETRY_AFTER,
                    retry_after.as_secs().max(1).to_string(),
                ));
            }
            // The database (or another service this one needs) is away: clients and
            // proxies retry after a pause instead of at once.
            AppError::Unavailable(_) | AppError::StoreUnavailable(_) => {
                res.insert_header((header::RETRY_AFTER, UNAVAILABLE_RETRY_AFTER_SECONDS));
            }
            // The rest of a slow body is not waited for: the connection ends here.
            AppError::RequestTimeout(_) => {
                res.insert_header((header::CONNECTION, "close"));
            }
            AppError::Unauthenticated(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            AppError::StepUpRequired { .. } => {
                // RFC 9470: the token is fine, the authentication behind it is not enough.
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    "Bearer error=\"insufficient_user_authentication\"",
                ));
            }
            AppError::InsufficientScope(_) => {
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    "Bearer error=\"insufficient_scope\"",
                ));
            }
            _ => {}
        }
        res.body(serde_json::to_string(&self.problem(None)).unwrap_or_default())
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> AppError {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => AppError::NotFound,
            // The database's own message names tables, columns and sometimes the
            // conflicting value: it goes to the log, the client gets a stable sentence.
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                tracing::info!(detail = info.message(), "unique violation");
                AppError::Conflict(UNIQUE_CONFLICT.into())
            }
            Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                AppError::Unprocessable("refers to a record that does not exist".into())
            }
            // The connection went away under the statement (the server stopped or
            // restarted): the database is unavailable, not the request at fault. The
            // pool checks every connection it hands out, so the next one is new.
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => AppError::Unavailable(format!("database connection lost: {}", info.message())),
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if connection_gone(info.message()) =>
            {
                AppError::Unavailable(format!("database going away: {}", info.message()))
            }
            other => AppError::Internal(format!("database: {other}")),
        }
    }
}

/// Seconds in the `Retry-After` of a 503.
const UNAVAILABLE_RETRY_AFTER_SECONDS: &str = "5";

/// PostgreSQL's messages for a server that ends sessions or refuses new ones while it
/// stops or starts (SQLSTATE 57P01..57P03; diesel passes no SQLSTATE for them).
fn connection_gone(message: &str) -> bool {
    [
        "terminating connection due to administrator command",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "server closed the connection unexpectedly",
        "no connection to the server",
    ]
    .iter()
    .any(|m| message.contains(m))
}

impl From<r2d2_error::PoolError> for AppError {
    fn from(e: r2d2_error::PoolError) -> AppError {
        AppError::Unavailable(format!("database connection not available: {e}"))
    }
}

mod r2d2_error {
    pub type PoolError = diesel::r2d2::PoolError;
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(_: actix_web::error::BlockingError) -> AppError {
        AppError::Unavailable("the service is shutting down".into())
    }
}
