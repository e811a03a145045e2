//! Organisations, users, invitations and the caller's profile (`/me`).
//!
//! Where things are: `http` (handlers), `organisations`, `users`, `invitations`,
//! `personal_identity` (personnummer, protected identity, HSA-id; its pure rules in
//! `personal_number`) (domain logic and queries, one concern each), `mail_outbox` (what
//! administrators see of undelivered mail), `signer_profiles` (what the forms print about
//! a signer; its handlers in `http_signer`).

pub mod http;
pub mod http_identity;
pub mod http_signer;
pub mod invitations;
pub mod mail_outbox;
pub mod organisations;
pub mod personal_identity;
pub mod personal_number;
pub mod signer_profiles;
pub mod users;

/// What other features use of accounts, under the path they have always used.
pub mod service {
    pub use super::invitations::{
        bootstrap_admin, get_invitation, invite, Accepted, Invitation, InvitationPreview,
        NewInvitation, PendingInvitation,
    };
    pub use super::organisations::{get_org, OrgKind, Organisation};
    pub use super::users::{display_name, get_user, user_count, visible_user, User};
    pub use crate::auth::validate::{name_problem, validate_name};
}
