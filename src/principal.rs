//! Who is calling: a person with their roles at organisations, or an API client, and
//! the role checks. Every authorisation decision goes through `Principal`, so later
//! capabilities (per-trainee assignments, API clients) extend it here rather than in
//! handlers.
//!
//! Below the features: the request context (`context`) and the idempotency layer name
//! the caller's type, and every feature checks roles with it. Establishing who is
//! calling (sessions, tokens) is `auth`'s: it fills a `Principal`
//! (`auth::principal::authenticate`). The session cache, held by the application state
//! and reached from the request context, and the record of changes to what a principal
//! is built from are here (`cache`), so that the context's write can act on them.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{OrganisationId, SessionId, UserId};
use crate::schema::{organisations, user_roles};

mod cache;
pub use cache::{AuthChange, AuthChanges, SessionCache, SESSION_CACHE_TTL};

/// A role held at an organisation (and, through the tree, below it).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// BT/ST doctor in training (BT-/ST-läkare).
    Trainee,
    /// Main or placement supervisor (huvudhandledare / tjänstgöringshandledare).
    Supervisor,
    /// Director of studies (studierektor).
    DirectorOfStudies,
    /// Administrator (e.g. the BT unit).
    Administrator,
    /// External assessor for the final assessment (extern bedömare).
    ExternalAssessor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Trainee => "trainee",
            Role::Supervisor => "supervisor",
            Role::DirectorOfStudies => "director_of_studies",
            Role::Administrator => "administrator",
            Role::ExternalAssessor => "external_assessor",
        }
    }

    /// A stored or typed code; `None` for one this build does not know.
    pub fn from_code(s: &str) -> Option<Role> {
        Self::parse(s)
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "trainee" => Role::Trainee,
            "supervisor" => Role::Supervisor,
            "director_of_studies" => Role::DirectorOfStudies,
            "administrator" => Role::Administrator,
            "external_assessor" => Role::ExternalAssessor,
            _ => return None,
        })
    }
}

crate::text_enum_sql!(Role);

#[derive(Debug, Clone, Serialize, ToSchema, Queryable, Selectable)]
#[diesel(table_name = user_roles, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct RoleGrant {
    pub role: Role,
    #[schema(value_type = String)]
    pub organisation_id: OrganisationId,
}

/// An API client (a learning platform) calling with a client-credentials access token.
#[derive(Debug, Clone)]
pub struct ClientPrincipal {
    pub client_id: String,
    /// The client sees this organisation's subtree, nothing else.
    pub organisation_id: String,
    pub name: String,
    /// The scopes of the access token presented.
    pub scopes: Vec<String>,
}

/// An authenticated user with a completed second factor, or an API client. For a client,
/// `user_id` is `client:<id>` (what the audit log records as the actor), `roles` is
/// empty and `client` is set.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: UserId,
    pub session_id: SessionId,
    /// How this session passed its second factor (`totp`, `email_code`,
    /// `recovery_code`, `remembered_device`); recorded with signatures.
    pub second_factor: String,
    pub email: String,
    pub roles: Vec<RoleGrant>,
    /// Set when the caller is an API client rather than a person.
    pub client: Option<ClientPrincipal>,
}

impl Principal {
    /// Is the caller an API client (not a person)?
    pub fn is_client(&self) -> bool {
        self.client.is_some()
    }

    /// For an API client: does its token carry `scope`? People are not limited by scopes.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.client
            .as_ref()
            .is_none_or(|c| c.scopes.iter().any(|s| s == scope))
    }

    /// An API client's token must carry `scope` (403 `insufficient-scope` otherwise).
    pub fn require_scope(&self, scope: &str) -> Result<(), AppError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(AppError::InsufficientScope(format!(
                "this needs an access token with the scope {scope}"
            )))
        }
    }

    /// Only people may do this (sign, manage their profile, ...): API clients get 403.
    pub fn require_person(&self) -> Result<(), AppError> {
        if self.is_client() {
            Err(AppError::Forbidden(
                "API clients may not use this endpoint; it is for people".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Does the caller hold `role` at `org_id` or at one of its ancestors?
    pub fn has_role_over(
        &self,
        conn: &mut DbConn,
        role: Role,
        org_id: &OrganisationId,
    ) -> Result<bool, AppError> {
        if !self.roles.iter().any(|g| g.role == role) {
            return Ok(false);
        }
        let chain = org_chain(conn, org_id)?;
        Ok(self
            .roles
            .iter()
            .any(|g| g.role == role && chain.iter().any(|o| o == &g.organisation_id)))
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.iter().any(|g| g.role == role)
    }

    /// Organisations where the caller holds one of `roles` (roots of the subtrees they see).
    pub fn orgs_with(&self, roles: &[Role]) -> Vec<String> {
        self.roles
            .iter()
            .filter(|g| roles.contains(&g.role))
            .map(|g| g.organisation_id.to_string())
            .collect()
    }

    /// May the caller invite someone as `role` to `org_id`? Administrators invite any
    /// role in their subtree; directors of studies invite the people of a training
    /// programme (trainees, supervisors, external assessors).
    pub fn can_invite(
        &self,
        conn: &mut DbConn,
        role: Role,
        org_id: &OrganisationId,
    ) -> Result<bool, AppError> {
        if self.has_role_over(conn, Role::Administrator, org_id)? {
            return Ok(true);
        }
        let director_may = matches!(
            role,
            Role::Trainee | Role::Supervisor | Role::ExternalAssessor
        );
        Ok(director_may && self.has_role_over(conn, Role::DirectorOfStudies, org_id)?)
    }

    pub fn require(allowed: bool) -> Result<(), AppError> {
        if allowed {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "your roles do not allow this action".into(),
            ))
        }
    }
}

/// `org_id` followed by its ancestors up to the region. Trees are shallow (region,
/// care provider, unit), so a walk is cheaper than a recursive query on both backends.
pub fn org_chain(conn: &mut DbConn, org_id: &OrganisationId) -> Result<Vec<String>, AppError> {
    let mut chain = Vec::new();
    let mut next = Some(org_id.to_string());
    while let Some(id) = next {
        if chain.contains(&id) || chain.len() > 16 {
            break;
        }
        let parent: Option<Option<String>> = organisations::table
            .find(&id)
            .select(organisations::parent_id)
            .first(conn)
            .optional()?;
        match parent {
            None => break,
            Some(p) => {
                chain.push(id);
                next = p;
            }
        }
    }
    Ok(chain)
}

/// All organisations in the subtrees rooted at `roots` (the roots included).
pub fn org_subtrees(conn: &mut DbConn, roots: &[String]) -> Result<Vec<String>, AppError> {
    let mut all: Vec<String> = roots.to_vec();
    let mut frontier = roots.to_vec();
    while !frontier.is_empty() && all.len() < 100_000 {
        let children: Vec<String> = organisations::table
            .filter(organisations::parent_id.eq_any(&frontier))
            .select(organisations::id)
            .load(conn)?;
        frontier = children.into_iter().filter(|c| !all.contains(c)).collect();
        all.extend(frontier.iter().cloned());
    }
    Ok(all)
}

pub fn load_roles(conn: &mut DbConn, user_id: &UserId) -> Result<Vec<RoleGrant>, AppError> {
    // A role this build does not know is an error, not a role quietly dropped.
    Ok(crate::on_backend!(conn, |c| user_roles::table
        .filter(user_roles::user_id.eq(user_id))
        .select(RoleGrant::as_select())
        .order(user_roles::created_at)
        .load(c))?)
}
