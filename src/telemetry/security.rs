//! Security events: one structured event each, with a stable `event` name, on the
//! tracing target `security`, so an operator can route them apart from the request log
//! (with `LOG_JSON=true` each is one JSON object per line; `SECURITY_LOG_FILE` also
//! writes them, and only them, to a file of their own: see main.rs and
//! docs/operations.md). Each is also counted (`telemetry::metrics`), without the user.
//!
//! What they carry: the event name, the acting user's id where known, the client's
//! address, and a fixed kind or method name. Never a token, a code, a password, an
//! e-mail address or a personal identity number (personnummer): the fields are typed
//! so that no free text reaches the stream.

use crate::http::ClientInfo;

/// The tracing target of every security event.
pub const TARGET: &str = "security";

/// The events, with the names an operator's SIEM rules match on. The names are stable:
/// renaming one breaks their rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The password matched (the next step may still be a second factor).
    LoginSucceeded,
    /// A wrong e-mail or password, or an account that may not sign in.
    LoginFailed,
    /// A second factor answered correctly: a session starts.
    SecondFactorSucceeded,
    /// A wrong second factor.
    SecondFactorFailed,
    /// A second factor was added (authenticator app, passkey) or recovery codes made.
    SecondFactorAdded,
    /// A second factor or remembered device was removed.
    SecondFactorRemoved,
    /// Too many failures against one account (login or second factor): it is refused
    /// for the rest of the window.
    AccountLockedOut,
    /// Another rate limit refused a request (per address, mails).
    RateLimited,
    /// A sensitive change was confirmed again (step-up) ...
    StepUpSucceeded,
    /// ... or the confirmation was wrong.
    StepUpFailed,
    /// Roles were granted to a person (an accepted invitation, an import).
    RoleGranted,
    /// An external assessor used a signing link.
    SigningLinkUsed,
    /// An API client got an access token (client credentials).
    ApiClientTokenIssued,
    /// An API client's credentials were refused.
    ApiClientTokenRefused,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::LoginSucceeded => "login_succeeded",
            Event::LoginFailed => "login_failed",
            Event::SecondFactorSucceeded => "second_factor_succeeded",
            Event::SecondFactorFailed => "second_factor_failed",
            Event::SecondFactorAdded => "second_factor_added",
            Event::SecondFactorRemoved => "second_factor_removed",
            Event::AccountLockedOut => "account_locked_out",
            Event::RateLimited => "rate_limited",
            Event::StepUpSucceeded => "step_up_succeeded",
            Event::StepUpFailed => "step_up_failed",
            Event::RoleGranted => "role_granted",
            Event::SigningLinkUsed => "signing_link_used",
            Event::ApiClientTokenIssued => "api_client_token_issued",
            Event::ApiClientTokenRefused => "api_client_token_refused",
        }
    }

    /// Every event, for the documentation test.
    pub const ALL: &'static [Event] = &[
        Event::LoginSucceeded,
        Event::LoginFailed,
        Event::SecondFactorSucceeded,
        Event::SecondFactorFailed,
        Event::SecondFactorAdded,
        Event::SecondFactorRemoved,
        Event::AccountLockedOut,
        Event::RateLimited,
        Event::StepUpSucceeded,
        Event::StepUpFailed,
        Event::RoleGranted,
        Event::SigningLinkUsed,
        Event::ApiClientTokenIssued,
        Event::ApiClientTokenRefused,
    ];
}

/// One security event, built with the fields it has and then `emit`ted.
#[derive(Debug, Clone, Copy)]
pub struct SecurityEvent<'a> {
    pub event: Event,
    /// The user (or API client) acting, when known: an opaque id, never an e-mail.
    pub user_id: Option<&'a str>,
    /// The person affected when it is not the actor (the holder of a granted role).
    pub subject_id: Option<&'a str>,
    /// A fixed name: the second-factor method, the limit, the role.
    pub kind: Option<&'static str>,
    pub client: Option<&'a ClientInfo>,
}

impl<'a> SecurityEvent<'a> {
    pub fn new(event: Event) -> SecurityEvent<'a> {
        SecurityEvent {
            event,
            user_id: None,
            subject_id: None,
            kind: None,
            client: None,
        }
    }

    pub fn user(mut self, id: &'a str) -> Self {
        self.user_id = Some(id);
        self
    }

    pub fn subject(mut self, id: &'a str) -> Self {
        self.subject_id = Some(id);
        self
    }

    pub fn kind(mut self, kind: &'static str) -> Self {
        self.kind = Some(kind);
        self
    }

    pub fn client(mut self, client: &'a ClientInfo) -> Self {
        self.client = Some(client);
        self
    }

    /// Writes the event (target `security`) and counts it.
    pub fn emit(self) {
        let name = self.event.name();
        let address = self.client.and_then(|c| c.address.as_deref());
        tracing::info!(
            target: TARGET,
            event = name,
            user_id = self.user_id,
            subject_id = self.subject_id,
            kind = self.kind,
            address,
            "security event"
        );
        crate::telemetry::metrics::security_event(name, self.kind, self.kind);
    }
}

/// The user a rate-limit key counts for, when the key names one by id (`mfa:acct:<id>`,
/// `mail:acct:<id>`; a login key holds the e-mail typed, which is not told).
pub fn limit_user(key: &str) -> Option<&str> {
    key.strip_prefix("mfa:acct:")
        .or_else(|| key.strip_prefix("mail:acct:"))
}

/// The kind of limit a rate-limit key belongs to (its first two parts, `login:acct`),
/// as a fixed name: the key itself holds an e-mail, a user id or an address.
pub fn limit_kind(key: &str) -> (Event, &'static str) {
    let mut parts = key.splitn(3, ':');
    match (parts.next(), parts.next()) {
        (Some("login"), Some("acct")) => (Event::AccountLockedOut, "login_account"),
        (Some("mfa"), Some("acct")) => (Event::AccountLockedOut, "second_factor_account"),
        (Some("login"), Some("addr")) => (Event::RateLimited, "login_address"),
        (Some("mail"), Some("acct")) => (Event::RateLimited, "mail_account"),
        (Some("mail"), Some("addr")) => (Event::RateLimited, "mail_address"),
        _ => (Event::RateLimited, "other"),
    }
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod tests;
