//! Erasure of an account (radering, GDPR Art. 17) on the person's request, by an
//! administrator over an organisation where the person holds a role or trains.
//!
//! - **Erased:** everything no signed record depends on: sessions and their refresh
//!   tokens, remembered devices, passkeys, the authenticator app, recovery codes,
//!   pending second-factor challenges, e-mailed links and codes, e-ID links, invitations
//!   to the person, the personal identity (personnummer, HSA-id), queued notifications,
//!   learning-platform account links, the password and the roles; and in each
//!   enrolment where the person is the trainee, what the enrolment erasure takes
//!   (`erasure`: activities, unsigned drafts, their files).
//! - **Pseudonymised, not deleted:** the account row, because signed records, the plans
//!   and the audit log name its id. Its e-mail address becomes
//!   `erased-<id>@erased.invalid` (so the address can be used for a new account, which
//!   is a new person to the service: nothing links the two), its status `disabled`.
//! - **The name** stays when the person signed or confirmed anything, or has kept
//!   records of their own: the certificate forms print the trainee's name and each
//!   signer's name on the signature line (`final_assessment::certificates`), and a
//!   signature whose signer cannot be named proves nothing. Otherwise it becomes
//!   "Raderad användare".
//! - **Once.** The account row is locked (PostgreSQL; SQLite's writes are exclusive) and
//!   an `account_erasures` row (primary key: the user) records it: a second request, at
//!   once or later, gets 409 from an administrator of that organisation, 404 from
//!   anyone else.

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::erasure;
use super::restriction;
use crate::audit::{self, Event};
use crate::auth::principal::Role;
use crate::clock::to_db;
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{OrganisationId, UserId};
use crate::schema::{
    account_erasures, account_tokens, assessments, enrolments, final_assessment_signers,
    invitations, mail_tokens, mfa_challenges, notification_queue, oidc_flows, oidc_links,
    passkey_ceremonies, passkeys, personal_identities, recovery_codes, remembered_devices,
    summary_assessments, talk_participants, totp_credentials, users, xapi_account_links,
    xapi_statements,
};

/// The display name of an account whose name went.
pub const ERASED_NAME: &str = "Raderad användare";

/// What an account erasure keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeptAccountKind {
    /// The account's id (the row, pseudonymised).
    AccountId,
    /// The person's name.
    Name,
    /// Records the person signed or confirmed in anyone's portfolio.
    Signatures,
    /// Enrolments where the person is the trainee, with what the enrolment erasure keeps.
    OwnEnrolments,
    /// Audit entries by or about the person.
    AuditLog,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeptAccount {
    pub kind: KeptAccountKind,
    pub count: i64,
    pub reason: String,
}

/// The answer to an account erasure.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountErasure {
    pub user_id: String,
    /// Rows erased per kind (`sessions`, `passkeys`, `roles`, `activities`,
    /// `unmatched_xapi_statements` (statements a learning platform sent about the person
    /// that made no activity), ...).
    #[schema(value_type = Object)]
    pub erased: BTreeMap<String, i64>,
    /// Whether the name stays (see `kept`, kind `name`, for why).
    pub name_kept: bool,
    /// The account's e-mail address is free again: an account made with it later is a
    /// new person, not linked to this one.
    pub email_reusable: bool,
    pub kept: Vec<KeptAccount>,
}

#[derive(Insertable)]
#[diesel(table_name = account_erasures)]
struct ErasureRow {
    user_id: String,
    organisation_id: String,
    erased_by: String,
    erased_at: chrono::NaiveDateTime,
    name_kept: i32,
    counts: String,
}

/// Deletes the xAPI statements that name the person as their learner (by e-mail, or by
/// a platform account linked to them) or were matched to them; returns how many. Runs
/// before the account links go. The learner is written as `xapi::Learner::describe`
/// writes it (the integrations sit above this feature, which cannot call them).
fn erase_statements(conn: &mut DbConn, user_id: &UserId, email: &str) -> Result<usize, AppError> {
    let mut learners = vec![format!("mailto:{}", email.trim().to_lowercase())];
    let accounts: Vec<(String, String)> = xapi_account_links::table
        .filter(xapi_account_links::user_id.eq(user_id))
        .select((xapi_account_links::home_page, xapi_account_links::name))
        .load(conn)?;
    learners.extend(
        accounts
            .into_iter()
            .map(|(home_page, name)| format!("account {name} at {home_page}")),
    );
    Ok(diesel::delete(
        xapi_statements::table.filter(
            xapi_statements::learner
                .eq_any(&learners)
                .or(xapi_statements::user_id.eq(user_id)),
        ),
    )
    .execute(conn)?)
}

/// 409 to an administrator of the organisation through which the account was erased,
/// 404 to anyone else; Ok when it was not erased.
fn refuse_if_erased(conn: &mut DbConn, ctx: &Ctx, user_id: &UserId) -> Result<(), AppError> {
    let through: Option<String> = account_erasures::table
        .find(user_id)
        .select(account_erasures::organisation_id)
        .first(conn)
        .optional()?;
    match through {
        None => Ok(()),
        Some(org)
            if ctx.caller.has_role_over(
                conn,
                Role::Administrator,
                &OrganisationId::from(&org),
            )? =>
        {
            Err(AppError::Conflict("this account was already erased".into()))
        }
        Some(_) => Err(AppError::NotFound),
    }
}

/// Records the person signed or confirmed (in anyone's portfolio).
fn signatures(conn: &mut DbConn, user_id: &UserId) -> Result<i64, AppError> {
    let a: i64 = assessments::table
        .filter(assessments::signed_by.eq(user_id))
        .filter(assessments::signed_at.is_not_null())
        .count()
        .get_result(conn)?;
    let s: i64 = summary_assessments::table
        .filter(summary_assessments::author_id.eq(user_id))
        .filter(summary_assessments::signed_at.is_not_null())
        .count()
        .get_result(conn)?;
    let f: i64 = final_assessment_signers::table
        .filter(final_assessment_signers::user_id.eq(user_id))
        .filter(final_assessment_signers::signed_at.is_not_null())
        .count()
        .get_result(conn)?;
    let t: i64 = talk_participants::table
        .filter(talk_participants::user_id.eq(user_id))
        .filter(talk_participants::confirmed_at.is_not_null())
        .count()
        .get_result(conn)?;
    Ok(a + s + f + t)
}

/// Erases the account (see the module comment); audited with counts. Also returns the
/// storage keys of erased attachments, to remove once the transaction has committed.
pub fn erase_account(
    conn: &mut DbConn,
    ctx: &Ctx,
    user_id: &UserId,
) -> Result<(AccountErasure, Vec<String>), AppError> {
    ctx.caller.require_person()?;
    refuse_if_erased(conn, ctx, user_id)?;
    let org = restriction::administered_through(
        conn,
        &ctx.caller,
        &restriction::Subject::Account(user_id.clone()),
    )?;
    if ctx.caller.user_id == *user_id {
        return Err(AppError::Conflict(
            "an administrator cannot erase their own account: another administrator does".into(),
        ));
    }
    if let DbConn::Pg(pg) = conn {
        diesel::sql_query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
            .bind::<diesel::sql_types::Text, _>(user_id)
            .execute(pg)?;
    }
    // The other request held the lock and erased: it is seen now.
    refuse_if_erased(conn, ctx, user_id)?;
    let email: String = users::table
        .find(user_id)
        .select(users::email)
        .first(conn)?;
    let client = ctx.client.user_agent.as_deref();

    let mut erased: BTreeMap<String, i64> = BTreeMap::new();
    let mut blobs = Vec::new();
    let own: Vec<String> = enrolments::table
        .filter(enrolments::trainee_id.eq(user_id))
        .select(enrolments::id)
        .load(conn)?;
    let mut own_kept = 0i64;
    for e in &own {
        let (done, files) = erasure::erase_records(conn, ctx, e)?;
        for (k, n) in done.erased {
            *erased.entry(k).or_default() += n;
        }
        own_kept += done
            .kept
            .iter()
            .filter(|k| {
                matches!(
                    k.kind,
                    erasure::KeptKind::SignedAssessments
                        | erasure::KeptKind::ConfirmedTalks
                        | erasure::KeptKind::SignedSummaryAssessments
                        | erasure::KeptKind::ConfirmedCourses
                        | erasure::KeptKind::FinalAssessments
                )
            })
            .map(|k| k.count)
            .sum::<i64>();
        blobs.extend(files);
    }
    let signed = signatures(conn, user_id)?;
    let name_kept = signed > 0 || own_kept > 0;

    let mut add = |k: &str, n: usize| {
        *erased.entry(k.to_string()).or_default() += n as i64;
    };
    add(
        "sessions",
        crate::auth::sessions::erase_all_of(conn, ctx, user_id)?,
    );
    add(
        "remembered_devices",
        diesel::delete(remembered_devices::table.filter(remembered_devices::user_id.eq(user_id)))
            .execute(conn)?,
    );
    diesel::delete(passkey_ceremonies::table.filter(passkey_ceremonies::user_id.eq(user_id)))
        .execute(conn)?;
    add(
        "passkeys",
        diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user_id))).execute(conn)?,
    );
    add(
        "authenticator_apps",
        diesel::delete(totp_credentials::table.filter(totp_credentials::user_id.eq(user_id)))
            .execute(conn)?,
    );
    add(
        "recovery_codes",
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
            .execute(conn)?,
    );
    diesel::delete(mfa_challenges::table.filter(mfa_challenges::user_id.eq(user_id)))
        .execute(conn)?;
    diesel::delete(mail_tokens::table.filter(mail_tokens::user_id.eq(user_id))).execute(conn)?;
    diesel::delete(account_tokens::table.filter(account_tokens::user_id.eq(user_id)))
        .execute(conn)?;
    diesel::delete(oidc_flows::table.filter(oidc_flows::user_id.eq(user_id))).execute(conn)?;
    add(
        "identity_links",
        diesel::delete(oidc_links::table.filter(oidc_links::user_id.eq(user_id))).execute(conn)?,
    );
    add(
        "invitations",
        diesel::delete(
            invitations::table.filter(
                invitations::user_id
                    .eq(user_id)
                    .or(invitations::email.eq(&email)),
            ),
        )
        .execute(conn)?,
    );
    add(
        "personal_identity",
        diesel::delete(personal_identities::table.filter(personal_identities::user_id.eq(user_id)))
            .execute(conn)?,
    );
    add(
        "notifications",
        diesel::delete(notification_queue::table.filter(notification_queue::user_id.eq(user_id)))
            .execute(conn)?,
    );
    // Statements a learning platform sent about the person that made no activity
    // (unmatched, voided, ...): they carry the person's address or platform account.
    // Those that made an activity went with it above.
    add(
        "unmatched_xapi_statements",
        erase_statements(conn, user_id, &email)?,
    );
    add(
        "learning_platform_links",
        diesel::delete(xapi_account_links::table.filter(xapi_account_links::user_id.eq(user_id)))
            .execute(conn)?,
    );
    add(
        "roles",
        crate::auth::roles::remove_all_of(conn, ctx.auth_changes(), user_id)?,
    );
    // The row stays (its id is named by what stays), with nothing to sign in with.
    let pseudonym = format!("erased-{user_id}@erased.invalid");
    crate::auth::credentials::close_account(
        conn,
        ctx.auth_changes(),
        ctx.now,
        user_id,
        &pseudonym,
    )?;
    if !name_kept {
        diesel::update(users::table.find(user_id))
            .set(users::display_name.eq(ERASED_NAME))
            .execute(conn)?;
    }
    add("email_address", 1);
    add("password", 1);
    // Two requests that both passed the checks above: the primary key lets one in.
    diesel::insert_into(account_erasures::table)
        .values(&ErasureRow {
            user_id: user_id.to_string(),
            organisation_id: org,
            erased_by: ctx.caller.user_id.to_string(),
            erased_at: to_db(ctx.now),
            name_kept: i32::from(name_kept),
            counts: json!(erased).to_string(),
        })
        .execute(conn)?;
    // The entries about the account (invitations, profile changes, roles granted) lose
    // their copies of its data; the chain still verifies (see `audit`).
    let emptied = audit::empty(
        conn,
        ctx.now,
        ctx.keyring_if_loaded(),
        audit::Naming::Records(std::slice::from_ref(&user_id.to_string())),
    )?;
    audit::append(
        conn,
        ctx.now,
        Event {
            actor_id: Some(&ctx.caller.user_id),
            client,
            action: "erased",
            entity: "user",
            entity_id: user_id,
            enrolment_id: None,
            data: &json!({"erased": erased, "name_kept": name_kept,
                          audit::EMPTIED_FIELD: emptied}),
        },
    )?;
    let audit_entries: i64 = crate::schema::audit_log::table
        .filter(
            crate::schema::audit_log::actor_id
                .eq(user_id)
                .or(crate::schema::audit_log::entity_id.eq(user_id)),
        )
        .count()
        .get_result(conn)?;
    let kept = kept(signed, own.len() as i64, name_kept, audit_entries);
    Ok((
        AccountErasure {
            user_id: user_id.to_string(),
            erased,
            name_kept,
            email_reusable: true,
            kept,
        },
        blobs,
    ))
}

fn kept(signed: i64, own: i64, name_kept: bool, audit: i64) -> Vec<KeptAccount> {
    vec![
        KeptAccount {
            kind: KeptAccountKind::AccountId,
            count: 1,
            reason: "the account's id stays, with no e-mail address, password or sign-in \
                     factor: signed records, plans and the audit log name it"
                .into(),
        },
        KeptAccount {
            kind: KeptAccountKind::Name,
            count: i64::from(name_kept),
            reason: if name_kept {
                "the person signed or confirmed records, or has signed records of their \
                 own, that stay: the certificate forms print the trainee's name and each \
                 signer's name on the signature line, and a signature whose signer cannot \
                 be named proves nothing"
                    .into()
            } else {
                "nothing signed depends on the name: it was replaced".into()
            },
        },
        KeptAccount {
            kind: KeptAccountKind::Signatures,
            count: signed,
            reason: "records the person signed or confirmed in others' portfolios are the \
                     trainees' records and certificates rest on them"
                .into(),
        },
        KeptAccount {
            kind: KeptAccountKind::OwnEnrolments,
            count: own,
            reason: "the person's enrolments keep what the enrolment erasure keeps (signed \
                     records, final assessments, the plan); retention deletes them in time"
                .into(),
        },
        KeptAccount {
            kind: KeptAccountKind::AuditLog,
            count: audit,
            reason: "the audit chain cannot lose entries without breaking; it records this \
                     erasure with counts only"
                .into(),
        },
    ]
}
