//! Final assessment (slutbedömning). Either the external assessor together with the main
//! supervisor, or a clinical competence committee, judge every delmål and decide. Every
//! signer signs the same content hash with a second factor; an edit before the last
//! signature asks everyone again; once all have signed the decision is final and never
//! changes. After "not yet", a later final assessment can follow.
//!
//! Longer than the ~600-line target: create, update and sign share the checks of one
//! decision document and its signers; reading is in `read.rs`, certificates in
//! `cert_*.rs`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Event};
use crate::auth::principal::Principal;
use crate::auth::service::{ClientInfo, SecondFactor};
use crate::clock::to_db;
use crate::config::Config;
use crate::context::Ctx;
use crate::db::DbConn;
use crate::enrolment::access::{self, Access, EXTERNAL_ASSESSOR, MAIN_SUPERVISOR};
use crate::enrolment::independence;
use crate::error::{AppError, FieldError};
use crate::ids::{EnrolmentId, UserId};
use crate::mail::Mail;
use crate::portfolio::summaries::Judgement;
use crate::schema::{enrolments, final_assessment_signers, final_assessments, users};

// The types and reads live beside this file; other features reach them through here.
pub use super::model::{
    Decision, FinalAssessment, FinalAssessmentPatch, FinalSigner, FinalStatus, Mode,
    NewFinalAssessment, SignFinalAssessment, SignerRole,
};
pub use super::read::{get, is_signer_of_enrolment, list, readable};

/// Adds the external assessor's independence check (external-assessor mode only).
pub fn with_independence(
    conn: &mut DbConn,
    cfg: &Config,
    mut f: FinalAssessment,
) -> Result<FinalAssessment, AppError> {
    if f.mode != Mode::ExternalAssessor {
        return Ok(f);
    }
    if let Some(assessor) = f
        .signers
        .iter()
        .find(|s| s.role == SignerRole::ExternalAssessor)
    {
        f.independence = Some(independence::check(
            conn,
            cfg,
            &f.enrolment_id,
            &assessor.user_id,
        )?);
    }
    Ok(f)
}

fn trainee_of(conn: &mut DbConn, enrolment_id: &EnrolmentId) -> Result<UserId, AppError> {
    Ok(enrolments::table
        .find(enrolment_id)
        .select(enrolments::trainee_id)
        .first(conn)?)
}

/// Delmål codes the final assessment judges: the regulation's for the template version.
fn required_codes(conn: &mut DbConn, enrolment_id: &EnrolmentId) -> Result<Vec<String>, AppError> {
    crate::enrolment::service::delmal_codes_of(conn, enrolment_id)
}

fn check_judgements(codes: &[String], judgements: &[Judgement], errors: &mut Vec<FieldError>) {
    let mut seen = std::collections::HashSet::new();
    for (n, j) in judgements.iter().enumerate() {
        if !codes.contains(&j.code) {
            errors.push(FieldError::new(
                format!("judgements[{n}].code"),
                format!("{} is not a delmål of this trainee's regulation", j.code),
            ));
        }
        if !seen.insert(j.code.clone()) {
            errors.push(FieldError::new(
                format!("judgements[{n}].code"),
                format!("{} is judged twice", j.code),
            ));
        }
        if j.judgement != "achieved" && j.judgement != "not_yet" {
            errors.push(FieldError::new(
                format!("judgements[{n}].judgement"),
                "achieved or not_yet",
            ));
        }
        if j.comment.chars().count() > 4000 {
            errors.push(FieldError::new(
                format!("judgements[{n}].comment"),
                "at most 4000 characters",
            ));
        }
    }
}

fn check_texts(missing: &str, rationale: &str, errors: &mut Vec<FieldError>) {
    for (field, text) in [("missing", missing), ("rationale", rationale)] {
        if text.chars().count() > 10_000 {
            errors.push(FieldError::new(field, "at most 10000 characters"));
        }
    }
}

/// What an audit entry keeps of a final assessment as values; its other fields
/// (judgements with their comments, what is missing, the rationale, the signers'
/// details) only as keyed digests (`audit::text`, issue 17).
pub const AUDIT_FACTS: &[&str] = &[
    "id",
    "enrolment_id",
    "mode",
    "decision",
    "status",
    "content_hash",
    "decided_at",
    "created_by",
    "version",
    "created_at",
    "updated_at",
];

fn audit_final(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    action: &str,
    f: &FinalAssessment,
) -> Result<(), AppError> {
    let data = audit::text::record_data(conn, now, &f.id, Some(&f.enrolment_id), f, AUDIT_FACTS)?;
    audit::append(
        conn,
        now,
        Event {
            actor_id: Some(&me.user_id),
            client: client.user_agent.as_deref(),
            action,
            entity: "final_assessment",
            entity_id: &f.id,
            enrolment_id: Some(&f.enrolment_id),
            data: &data,
        },
    )
}

fn mail_to(
    conn: &mut DbConn,
    cfg: &Config,
    user: &UserId,
    f: &FinalAssessment,
    sv: &str,
    en: &str,
) -> Result<Mail, AppError> {
    let to: String = users::table.find(user).select(users::email).first(conn)?;
    Ok(Mail {
        to,
        subject: format!("{sv} / {en}"),
        body: format!(
            "{sv}.\n{en}.\n\n{}/final-assessments/{}\n",
            cfg.public_url.trim_end_matches('/'),
            f.id
        ),
    })
}

pub fn create(
    conn: &mut DbConn,
    ctx: &Ctx,
    enrolment_id: &EnrolmentId,
    n: NewFinalAssessment,
) -> Result<(FinalAssessment, Vec<Mail>), AppError> {
    let (cfg, now, me, client) = (&*ctx.config, ctx.now, &ctx.caller, &ctx.client);
    let today = crate::clock::day_of(now);
    let level = access::require(
        conn,
        me,
        &EnrolmentId::from(enrolment_id),
        today,
        Access::Read,
    )?;
    let trainee = trainee_of(conn, enrolment_id)?;
    let existing = list(conn, enrolment_id)?;
    if existing.iter().any(|f| f.status != FinalStatus::Decided) {
        return Err(AppError::Conflict(
            "a final assessment of this trainee is already open; edit that one".into(),
        ));
    }
    if existing
        .iter()
        .any(|f| f.decision == Some(Decision::Achieved))
    {
        return Err(AppError::Conflict(
            "the final assessment already decided that the competence is achieved".into(),
        ));
    }
    let mut signers: Vec<(UserId, SignerRole)> = Vec::new();
    let mut errors = Vec::new();
    match n.mode {
        Mode::ExternalAssessor => {
            let assessor = access::holder(
                conn,
                &EnrolmentId::from(enrolment_id),
                EXTERNAL_ASSESSOR,
                today,
            )?
            .map(UserId::into_inner);
            let main = access::holder(
                conn,
                &EnrolmentId::from(enrolment_id),
                MAIN_SUPERVISOR,
                today,
            )?
            .map(UserId::into_inner);
            let (Some(assessor), Some(main)) = (assessor, main) else {
                return Err(AppError::Unprocessable(
                    "the trainee needs an assigned external assessor and a main supervisor \
                     today; a director of studies assigns them"
                        .into(),
                ));
            };
            if me.user_id != assessor && me.user_id != main {
                return Err(AppError::Forbidden(
                    "the external assessor or the main supervisor drafts the final assessment"
                        .into(),
                ));
            }
            // Assigning an involved person is refused; involvement may have come since
            // (a Mini-CEX asked of them, a talk listing them): shown, or refused where
            // the region requires independence.
            independence::check(conn, cfg, &enrolment_id.into(), &assessor.as_str().into())?
                .enforce()?;
            signers.push((UserId::from(assessor), SignerRole::ExternalAssessor));
            signers.push((UserId::from(main), SignerRole::MainSupervisor));
            if !n.committee_member_ids.is_empty() {
                errors.push(FieldError::new(
                    "committee_member_ids",
                    "only for mode committee",
                ));
            }
            if n.committee_chair_id.is_some() {
                errors.push(FieldError::new(
                    "committee_chair_id",
                    "only for mode committee",
                ));
            }
        }
        Mode::Committee => {
            if level < Access::Manage {
                return Err(AppError::Forbidden(
                    "a director of studies convenes the clinical competence committee".into(),
                ));
            }
            let mut members = n.committee_member_ids.clone();
            members.sort();
            members.dedup();
            if members.len() < 2 || members.len() > 12 {
                errors.push(FieldError::new(
                    "committee_member_ids",
                    "a committee has 2 to 12 members",
                ));
            }
            for m in &members {
                let active: Option<String> = users::table
                    .find(m)
                    .select(users::status)
                    .first(conn)
                    .optional()?;
                if active.as_deref() != Some("active") {
                    errors.push(FieldError::new(
                        "committee_member_ids",
                        format!("{m} is not an active user"),
                    ));
                }
                if m == &trainee {
                    errors.push(FieldError::new(
                        "committee_member_ids",
                        "the trainee cannot sit on their own committee",
                    ));
                }
            }
            if let Some(chair) = &n.committee_chair_id {
                if !members.contains(chair) {
                    errors.push(FieldError::new(
                        "committee_chair_id",
                        "the chair is one of committee_member_ids",
                    ));
                }
            }
            // The chair signs as a member does; the role names them on the certificates.
            signers.extend(members.into_iter().map(|m| {
                let role = if n.committee_chair_id.as_deref() == Some(m.as_str()) {
                    SignerRole::CommitteeChair
                } else {
                    SignerRole::CommitteeMember
                };
                (UserId::from(m), role)
            }));
        }
    }
    let codes = required_codes(conn, enrolment_id)?;
    check_judgements(&codes, &n.judgements, &mut errors);
    check_texts(&n.missing, &n.rationale, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let id =
        n.id.map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
    if final_assessments::table
        .find(&id)
        .count()
        .get_result::<i64>(conn)?
        > 0
    {
        return Err(AppError::Conflict("a record with this id exists".into()));
    }
    diesel::insert_into(final_assessments::table)
        .values((
            final_assessments::id.eq(&id),
            final_assessments::enrolment_id.eq(enrolment_id),
            final_assessments::mode.eq(n.mode),
            final_assessments::decision.eq(n.decision),
            final_assessments::judgements
                .eq(serde_json::to_string(&n.judgements).map_err(AppError::internal)?),
            final_assessments::missing.eq(n.missing.trim()),
            final_assessments::rationale.eq(n.rationale.trim()),
            final_assessments::status.eq(FinalStatus::Draft),
            final_assessments::created_by.eq(&me.user_id),
            final_assessments::version.eq(1),
            final_assessments::created_at.eq(to_db(now)),
            final_assessments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    for (user, role) in &signers {
        diesel::insert_into(final_assessment_signers::table)
            .values((
                final_assessment_signers::final_assessment_id.eq(&id),
                final_assessment_signers::user_id.eq(user),
                final_assessment_signers::role.eq(role),
            ))
            .execute(conn)?;
    }
    let f = get(conn, &id)?;
    let f = with_independence(conn, cfg, f)?;
    audit_final(conn, now, me, client, "created", &f)?;
    let mut mails = Vec::new();
    for (user, _) in signers.iter().filter(|(u, _)| u != &me.user_id) {
        mails.push(mail_to(
            conn,
            cfg,
            user,
            &f,
            "Slutbedömning att granska och signera",
            "Final assessment to review and sign",
        )?);
    }
    Ok((f, mails))
}

/// An assessor or main supervisor whose assignment has ended no longer decides: they
/// neither edit nor sign.
fn still_assigned(
    conn: &mut DbConn,
    f: &FinalAssessment,
    signer: &FinalSigner,
    today: chrono::NaiveDate,
) -> Result<(), AppError> {
    if f.mode != Mode::ExternalAssessor {
        return Ok(());
    }
    let role = if signer.role == SignerRole::ExternalAssessor {
        EXTERNAL_ASSESSOR
    } else {
        MAIN_SUPERVISOR
    };
    if access::holder(conn, &EnrolmentId::from(&f.enrolment_id), role, today)?.as_deref()
        != Some(&signer.user_id)
    {
        return Err(AppError::Forbidden(
            "your assignment to this trainee is not active today".into(),
        ));
    }
    Ok(())
}

/// Edits an undecided final assessment. Every signature given so far is withdrawn: the
/// signers signed other content.
pub fn update(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    p: FinalAssessmentPatch,
) -> Result<FinalAssessment, AppError> {
    let (now, me, client) = (ctx.now, &ctx.caller, &ctx.client);
    let f = readable(conn, me, id, crate::clock::day_of(now))?;
    if_match(&f.etag())?;
    if f.status == FinalStatus::Decided {
        return Err(AppError::Conflict(
            "the final assessment is decided and final".into(),
        ));
    }
    let Some(me_signer) = f.signers.iter().find(|s| s.user_id == me.user_id) else {
        return Err(AppError::Forbidden(
            "only those who decide edit the final assessment".into(),
        ));
    };
    still_assigned(conn, &f, me_signer, crate::clock::day_of(now))?;
    let codes = required_codes(conn, &f.enrolment_id)?;
    let mut errors = Vec::new();
    let judgements = p.judgements.unwrap_or(f.judgements.clone());
    let missing = p.missing.unwrap_or(f.missing.clone());
    let rationale = p.rationale.unwrap_or(f.rationale.clone());
    let decision = p.decision.or(f.decision);
    check_judgements(&codes, &judgements, &mut errors);
    check_texts(&missing, &rationale, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    diesel::update(final_assessments::table.find(id))
        .set((
            final_assessments::judgements
                .eq(serde_json::to_string(&judgements).map_err(AppError::internal)?),
            final_assessments::missing.eq(missing.trim()),
            final_assessments::rationale.eq(rationale.trim()),
            final_assessments::decision.eq(decision),
            final_assessments::status.eq(FinalStatus::Draft),
            final_assessments::version.eq(final_assessments::version + 1),
            final_assessments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    diesel::update(
        final_assessment_signers::table
            .filter(final_assessment_signers::final_assessment_id.eq(id)),
    )
    .set((
        final_assessment_signers::signed_at.eq(None::<chrono::NaiveDateTime>),
        final_assessment_signers::signed_hash.eq(None::<String>),
        final_assessment_signers::signature_method.eq(None::<String>),
    ))
    .execute(conn)?;
    let f = get(conn, id)?;
    let f = with_independence(conn, &ctx.config, f)?;
    audit_final(conn, now, me, client, "updated", &f)?;
    Ok(f)
}

/// What must hold before anyone signs: a decision, a judgement of every delmål that
/// agrees with it, what is missing when not achieved, and a confirmed final check-in.
fn ready_to_sign(conn: &mut DbConn, f: &FinalAssessment) -> Result<(), AppError> {
    let codes = required_codes(conn, &f.enrolment_id)?;
    let mut errors = Vec::new();
    let Some(decision) = f.decision else {
        return Err(AppError::validation(
            "decision",
            "decide (achieved or not_yet) before signing",
        ));
    };
    for code in &codes {
        if !f.judgements.iter().any(|j| &j.code == code) {
            errors.push(FieldError::new(
                "judgements",
                format!("{code} has no judgement"),
            ));
        }
    }
    let not_yet = f.judgements.iter().any(|j| j.judgement == "not_yet");
    match decision {
        Decision::Achieved if not_yet => errors.push(FieldError::new(
            "decision",
            "achieved needs every delmål judged achieved",
        )),
        Decision::NotYet if f.missing.trim().is_empty() => errors.push(FieldError::new(
            "missing",
            "say what is missing and what the trainee should do next",
        )),
        _ => {}
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    if !crate::portfolio::talks::has_confirmed_final_check_in(conn, &f.enrolment_id)? {
        return Err(AppError::Unprocessable(
            "the final check-in (slutavstämning) between the trainee and the main supervisor \
             must be recorded and confirmed by both first"
                .into(),
        ));
    }
    Ok(())
}

/// The second factor behind this signature: a fresh code if one is sent, else the
/// session's own, unless the session rests on a remembered device.
fn signature_method(
    conn: &mut DbConn,
    ctx: &Ctx,
    body: &SignFinalAssessment,
) -> Result<Result<String, AppError>, AppError> {
    let me = &ctx.caller;
    let factor = match (&body.totp_code, &body.recovery_code) {
        (Some(c), None) => Some(SecondFactor::Totp(c.clone())),
        (None, Some(c)) => Some(SecondFactor::RecoveryCode(c.clone())),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(AppError::validation(
                "totp_code",
                "send either totp_code or recovery_code",
            ))
        }
    };
    match factor {
        Some(f) => Ok(
            crate::auth::service::check_in_person(conn, ctx, &ctx.caller.user_id, &f)?
                .map(|m| m.replace("in_person", "step_up")),
        ),
        None if me.second_factor == "remembered_device" || me.second_factor.is_empty() => {
            Ok(Err(AppError::SecondFactorRequired))
        }
        None => Ok(Ok(me.second_factor.clone())),
    }
}

/// A signer signs. When the last one has signed the same content, the decision is made.
pub fn sign(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    body: SignFinalAssessment,
) -> Result<Result<(FinalAssessment, Vec<Mail>), AppError>, AppError> {
    let (cfg, now, me, client) = (&*ctx.config, ctx.now, &ctx.caller, &ctx.client);
    let today = crate::clock::day_of(now);
    let f = readable(conn, me, id, today)?;
    if_match(&f.etag())?;
    if f.status == FinalStatus::Decided {
        return Err(AppError::Conflict(
            "the final assessment is decided and final".into(),
        ));
    }
    let Some(me_signer) = f.signers.iter().find(|s| s.user_id == me.user_id) else {
        return Err(AppError::Forbidden(
            "only those who decide sign the final assessment".into(),
        ));
    };
    if me_signer.signed_at.is_some() {
        return Err(AppError::Conflict(
            "you have already signed this version".into(),
        ));
    }
    still_assigned(conn, &f, me_signer, today)?;
    ready_to_sign(conn, &f)?;
    if let Some(check) = &with_independence(conn, cfg, f.clone())?.independence {
        check.enforce()?;
    }
    let method = match signature_method(conn, ctx, &body)? {
        Ok(m) => m,
        Err(e) => return Ok(Err(e)),
    };
    let hash = f.content_hash_now();
    diesel::update(final_assessment_signers::table.find((id, &me.user_id)))
        .set((
            final_assessment_signers::signed_at.eq(Some(to_db(now))),
            final_assessment_signers::signed_hash.eq(Some(&hash)),
            final_assessment_signers::signature_method.eq(Some(&method)),
        ))
        .execute(conn)?;
    let hashes: Vec<Option<String>> = final_assessment_signers::table
        .filter(final_assessment_signers::final_assessment_id.eq(id))
        .select(final_assessment_signers::signed_hash)
        .load(conn)?;
    let all = hashes.iter().all(|h| h.as_deref() == Some(hash.as_str()));
    diesel::update(final_assessments::table.find(id))
        .set((
            final_assessments::status.eq(if all {
                FinalStatus::Decided
            } else {
                FinalStatus::AwaitingSignatures
            }),
            final_assessments::content_hash.eq(all.then_some(&hash)),
            final_assessments::decided_at.eq(all.then_some(to_db(now))),
            final_assessments::version.eq(final_assessments::version + 1),
            final_assessments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let f = get(conn, id)?;
    let f = with_independence(conn, cfg, f)?;
    audit_final(conn, now, me, client, "signed", &f)?;
    let mut mails = Vec::new();
    if all {
        audit_final(conn, now, me, client, "decided", &f)?;
        let trainee = trainee_of(conn, &f.enrolment_id)?;
        let (sv, en) = match f.decision {
            Some(Decision::Achieved) => (
                "Slutbedömningen är klar: kompetensen är uppnådd",
                "The final assessment is decided: competence achieved",
            ),
            _ => (
                "Slutbedömningen är klar: ännu inte uppnådd",
                "The final assessment is decided: not yet achieved",
            ),
        };
        mails.push(mail_to(conn, cfg, &trainee, &f, sv, en)?);
        crate::events::publish(
            conn,
            now,
            crate::events::DomainEvent::FinalAssessmentDecided {
                enrolment_id: f.enrolment_id.to_string(),
                data: json!({"final_assessment_id": f.id, "enrolment_id": f.enrolment_id, "trainee_id": trainee,
                    "decision": f.decision, "decided_at": f.decided_at, "content_hash": f.content_hash}),
            },
        )?;
        for s in f.signers.iter().filter(|s| s.user_id != me.user_id) {
            mails.push(mail_to(conn, cfg, &s.user_id, &f, sv, en)?);
        }
    } else {
        for s in f.signers.iter().filter(|s| s.signed_at.is_none()) {
            mails.push(mail_to(
                conn,
                cfg,
                &s.user_id,
                &f,
                "Slutbedömning väntar på din signatur",
                "Final assessment awaits your signature",
            )?);
        }
    }
    Ok(Ok((f, mails)))
}
