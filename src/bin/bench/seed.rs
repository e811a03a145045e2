//! The data set: a fixed-seed generator of trainees, supervisors, directors and their
//! records, written straight into the database.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use eportfolio::auth::service::{create_session, ClientInfo};
use eportfolio::clock::to_db;
use eportfolio::curriculum::templates::{
    ChecklistItem, ChecklistKind, PlacementType, TemplateContent,
};
use eportfolio::db::{self, DbConn};
use eportfolio::schema::*;
use eportfolio::AppState;
use serde_json::json;

use crate::runner::*;
use crate::Args;

/// xorshift64*: a fixed seed gives the same data set every run.
pub(crate) struct Rng(u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub(crate) fn id(rng: &mut Rng) -> String {
    uuid::Builder::from_random_bytes(
        ((rng.next() as u128) << 64 | rng.next() as u128).to_le_bytes(),
    )
    .into_uuid()
    .to_string()
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Trainee {
    pub(crate) enrolment: String,
    pub(crate) token: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Supervisor {
    pub(crate) token: String,
    pub(crate) awaiting: Vec<String>,
}

/// Who the scenarios act as, kept beside a data set so `--reuse` can skip seeding.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct People {
    pub(crate) trainees: Vec<Trainee>,
    pub(crate) supervisors: Vec<Supervisor>,
    pub(crate) director: String,
    pub(crate) insert_rate: f64,
}

pub(crate) fn item(kind: ChecklistKind, title: &str, delmal: &[&str]) -> ChecklistItem {
    ChecklistItem {
        id: None,
        kind,
        title: title.into(),
        description: None,
        assessment_type: None,
        count: None,
        delmal: delmal.iter().map(|d| d.to_string()).collect(),
        prerequisite_for: None,
    }
}

/// Inserts the data set directly (the API is what is measured, not the seeding), and
/// returns tokens for the people the scenarios act as. Counts rows for the raw speed.
pub(crate) fn seed(
    state: &AppState,
    args: &Args,
    rows: &AtomicUsize,
) -> Result<(Vec<Trainee>, Vec<Supervisor>, String), eportfolio::error::AppError> {
    let mut rng = Rng(0x5EED_2026_1124);
    let now = Utc::now();
    let at = to_db(now);
    let mut conn = state.pool.get()?;
    let conn: &mut DbConn = &mut conn;
    let regulation: String = regulations::table
        .filter(regulations::code.eq("bt-2021"))
        .select(regulations::id)
        .first(conn)?;
    let org = id(&mut rng);
    diesel::insert_into(organisations::table)
        .values((
            organisations::id.eq(&org),
            organisations::kind.eq("region"),
            organisations::name.eq("Bench Region"),
            organisations::version.eq(1),
            organisations::created_at.eq(at),
            organisations::updated_at.eq(at),
        ))
        .execute(conn)?;
    // Care providers of `--cohort` trainees each (500 by default): a director follows one
    // (the cohort overview).
    let mut providers = Vec::new();
    for p in 0..args.trainees.div_ceil(args.cohort.max(1)).max(1) {
        let pid = id(&mut rng);
        diesel::insert_into(organisations::table)
            .values((
                organisations::id.eq(&pid),
                organisations::parent_id.eq(Some(&org)),
                organisations::kind.eq("care_provider"),
                organisations::name.eq(format!("Vårdgivare {p}")),
                organisations::version.eq(1),
                organisations::created_at.eq(at),
                organisations::updated_at.eq(at),
            ))
            .execute(conn)?;
        providers.push(pid);
    }
    let content = TemplateContent {
        name: "BT".into(),
        specialty: None,
        duration_months: 12,
        supervision_every_days: 14,
        placement_types: ["allmanmedicin", "akut", "geriatrik", "psykiatri"]
            .iter()
            .map(|k| PlacementType {
                key: k.to_string(),
                name: k.to_string(),
                months: 3,
                supervision_every_days: 14,
                counts_as: vec![],
                checklist: vec![item(ChecklistKind::LearningActivity, "Aktivitet", &["BT1"])],
            })
            .collect(),
        programme_items: vec![],
    };
    let template = id(&mut rng);
    diesel::insert_into(programme_templates::table)
        .values((
            programme_templates::id.eq(id(&mut rng)),
            programme_templates::template_id.eq(&template),
            programme_templates::version.eq(1),
            programme_templates::organisation_id.eq(&org),
            programme_templates::regulation_id.eq(&regulation),
            programme_templates::name.eq("BT"),
            programme_templates::content.eq(serde_json::to_string(&content).unwrap_or_default()),
            programme_templates::created_at.eq(at),
        ))
        .execute(conn)?;
    let user = |conn: &mut DbConn,
                rng: &mut Rng,
                email: String,
                role: &str|
     -> Result<String, eportfolio::error::AppError> {
        let uid = id(rng);
        diesel::insert_into(users::table)
            .values((
                users::id.eq(&uid),
                users::email.eq(email),
                users::display_name.eq("Bench"),
                users::email_mfa_enabled.eq(0),
                users::status.eq("active"),
                users::version.eq(1),
                users::created_at.eq(at),
                users::updated_at.eq(at),
                users::notification_mode.eq("immediate"),
            ))
            .execute(conn)?;
        diesel::insert_into(user_roles::table)
            .values((
                user_roles::id.eq(id(rng)),
                user_roles::user_id.eq(&uid),
                user_roles::role.eq(role),
                user_roles::organisation_id.eq(&org),
                user_roles::created_at.eq(at),
            ))
            .execute(conn)?;
        Ok(uid)
    };
    let token = |conn: &mut DbConn, uid: &str| -> Result<String, eportfolio::error::AppError> {
        let uid = &eportfolio::ids::UserId::from(uid);
        let s = create_session(
            conn,
            &state.config,
            now,
            uid,
            "totp",
            &ClientInfo::default(),
        )?;
        state
            .jwt
            .issue(uid, &s.session_id, now, Duration::from_secs(3600))
    };
    let supervisors_n = (args.trainees / 8).max(1);
    let mut supervisors = Vec::new();
    let mut sup_ids = Vec::new();
    db::write_tx(conn, |conn| {
        for s in 0..supervisors_n {
            let uid = user(
                conn,
                &mut rng,
                format!("handledare{s}@bench.example"),
                "supervisor",
            )?;
            supervisors.push(Supervisor {
                token: token(conn, &uid)?,
                awaiting: Vec::new(),
            });
            sup_ids.push(uid);
        }
        Ok(())
    })?;
    let director = db::write_tx(conn, |conn| {
        let uid = user(
            conn,
            &mut rng,
            "studierektor@bench.example".into(),
            "supervisor",
        )?;
        diesel::insert_into(user_roles::table)
            .values((
                user_roles::id.eq(id(&mut rng)),
                user_roles::user_id.eq(&uid),
                user_roles::role.eq("director_of_studies"),
                user_roles::organisation_id.eq(&providers[0]),
                user_roles::created_at.eq(at),
            ))
            .execute(conn)?;
        token(conn, &uid)
    })?;
    let codes: Vec<String> = (1..=18).map(|i| format!("BT{i}")).collect();
    let judgements = serde_json::to_string(
        &codes
            .iter()
            .map(|c| json!({"code": c, "judgement": "progressing", "comment": ""}))
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    let mut trainees = Vec::new();
    for t in 0..args.trainees {
        db::write_tx(conn, |conn| {
            let uid = user(conn, &mut rng, format!("bt{t}@bench.example"), "trainee")?;
            let enrolment = id(&mut rng);
            diesel::insert_into(enrolments::table)
                .values((
                    enrolments::id.eq(&enrolment),
                    enrolments::trainee_id.eq(&uid),
                    enrolments::organisation_id.eq(&providers[t / args.cohort.max(1)]),
                    enrolments::template_id.eq(&template),
                    enrolments::template_version.eq(1),
                    enrolments::track.eq("bt_standalone"),
                    enrolments::start_date.eq("2026-01-05"),
                    enrolments::planned_end.eq("2026-12-31"),
                    enrolments::extent_percent.eq(100),
                    enrolments::status.eq("active"),
                    enrolments::version.eq(1),
                    enrolments::created_at.eq(at),
                    enrolments::updated_at.eq(at),
                ))
                .execute(conn)?;
            let sup = t % supervisors_n;
            diesel::insert_into(assignments::table)
                .values((
                    assignments::id.eq(id(&mut rng)),
                    assignments::enrolment_id.eq(&enrolment),
                    assignments::user_id.eq(&sup_ids[sup]),
                    assignments::role.eq("main_supervisor"),
                    assignments::valid_from.eq("2026-01-05"),
                    assignments::created_at.eq(at),
                    assignments::updated_at.eq(at),
                ))
                .execute(conn)?;
            rows.fetch_add(3, Ordering::Relaxed);
            // Four placements of three months, each ended one with a signed summary.
            let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap_or_default();
            for (k, kind) in ["allmanmedicin", "akut", "geriatrik", "psykiatri"]
                .iter()
                .enumerate()
            {
                let pid = id(&mut rng);
                let from = start + chrono::Months::new(3 * k as u32);
                let to =
                    start + chrono::Months::new(3 * (k as u32 + 1)) - chrono::Duration::days(1);
                diesel::insert_into(placements::table)
                    .values((
                        placements::id.eq(&pid),
                        placements::enrolment_id.eq(&enrolment),
                        placements::placement_type.eq(kind),
                        placements::start_date.eq(from.to_string()),
                        placements::end_date.eq(to.to_string()),
                        placements::version.eq(1),
                        placements::created_at.eq(at),
                        placements::updated_at.eq(at),
                    ))
                    .execute(conn)?;
                if k < 3 {
                    diesel::insert_into(summary_assessments::table)
                        .values((
                            summary_assessments::id.eq(id(&mut rng)),
                            summary_assessments::enrolment_id.eq(&enrolment),
                            summary_assessments::placement_id.eq(&pid),
                            summary_assessments::author_id.eq(&sup_ids[sup]),
                            summary_assessments::judgements.eq(&judgements),
                            summary_assessments::overall.eq("Utvecklas väl."),
                            summary_assessments::status.eq("signed"),
                            summary_assessments::signed_at.eq(Some(at)),
                            summary_assessments::signature_method.eq(Some("totp")),
                            summary_assessments::content_hash.eq(Some("bench")),
                            summary_assessments::version.eq(1),
                            summary_assessments::created_at.eq(at),
                            summary_assessments::updated_at.eq(at),
                        ))
                        .execute(conn)?;
                    rows.fetch_add(1, Ordering::Relaxed);
                }
                rows.fetch_add(1, Ordering::Relaxed);
            }
            // The first trainee has a dossier of 1,000 records.
            let activities_n = if t == 0 {
                DOSSIER_RECORDS - 40 - 29 - 3
            } else {
                args.activities
            };
            for a in 0..activities_n {
                let aid = id(&mut rng);
                let day = 1 + rng.below(360);
                let date = (chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap_or_default()
                    + chrono::Duration::days(day as i64))
                .to_string();
                diesel::insert_into(activities::table)
                    .values((
                        activities::id.eq(&aid),
                        activities::enrolment_id.eq(&enrolment),
                        activities::kind.eq("clinical_work"),
                        activities::title
                            .eq(format!("Aktivitet {a}: patientarbete på vårdavdelningen")),
                        activities::start_date.eq(date),
                        activities::template_version.eq(1),
                        activities::reflection
                            .eq("Reflektion över dagens patienter och vad jag lärde mig."),
                        activities::version.eq(1),
                        activities::created_by.eq(&uid),
                        activities::created_at.eq(at),
                        activities::updated_at.eq(at),
                    ))
                    .execute(conn)?;
                // One or two distinct delmål (a repeated link would abort the whole
                // transaction on PostgreSQL).
                let first = rng.below(codes.len() as u64) as usize;
                let mut picked = vec![first];
                if rng.below(2) == 1 {
                    picked.push(
                        (first + 1 + rng.below(codes.len() as u64 - 1) as usize) % codes.len(),
                    );
                }
                for c in picked {
                    diesel::insert_into(record_delmal::table)
                        .values((
                            record_delmal::record_id.eq(&aid),
                            record_delmal::code.eq(&codes[c]),
                            record_delmal::enrolment_id.eq(&enrolment),
                            record_delmal::record_type.eq("activity"),
                        ))
                        .execute(conn)?;
                    rows.fetch_add(1, Ordering::Relaxed);
                }
                rows.fetch_add(1, Ordering::Relaxed);
            }
            for a in 0..40 {
                let aid = id(&mut rng);
                let status = if a < 30 {
                    "signed"
                } else {
                    "awaiting_signature"
                };
                diesel::insert_into(assessments::table)
                    .values((
                        assessments::id.eq(&aid),
                        assessments::enrolment_id.eq(&enrolment),
                        assessments::instrument.eq(if a % 2 == 0 { "mini_cex" } else { "dops" }),
                        assessments::status.eq(status),
                        assessments::assessor_id.eq(&sup_ids[sup]),
                        assessments::performed_on.eq("2026-06-01"),
                        assessments::context.eq("{}"),
                        assessments::ratings.eq(r#"{"communication": 6}"#),
                        assessments::feedback_strengths.eq(""),
                        assessments::feedback_next_steps.eq("Fortsätt."),
                        assessments::trainee_reflection.eq(""),
                        assessments::created_by.eq(&uid),
                        assessments::requested_at.eq(at),
                        assessments::version.eq(1),
                        assessments::created_at.eq(at),
                        assessments::updated_at.eq(at),
                    ))
                    .execute(conn)?;
                rows.fetch_add(1, Ordering::Relaxed);
                if status == "awaiting_signature" {
                    supervisors[sup].awaiting.push(aid);
                }
            }
            for s in 0..29 {
                let tid = id(&mut rng);
                diesel::insert_into(talks::table)
                    .values((
                        talks::id.eq(&tid),
                        talks::enrolment_id.eq(&enrolment),
                        talks::kind.eq(if s < 26 { "supervision" } else { "handover" }),
                        talks::held_on.eq("2026-05-01"),
                        talks::topics.eq(r#"["Handledning"]"#),
                        talks::notes.eq("Anteckningar."),
                        talks::agreed_actions.eq(""),
                        talks::content.eq("null"),
                        talks::status.eq("confirmed"),
                        talks::created_by.eq(&uid),
                        talks::version.eq(1),
                        talks::created_at.eq(at),
                        talks::updated_at.eq(at),
                    ))
                    .execute(conn)?;
                for (u, role) in [(&uid, "trainee"), (&sup_ids[sup], "supervisor")] {
                    diesel::insert_into(talk_participants::table)
                        .values((
                            talk_participants::talk_id.eq(&tid),
                            talk_participants::user_id.eq(u),
                            talk_participants::role.eq(role),
                            talk_participants::confirmed_at.eq(at),
                        ))
                        .execute(conn)?;
                }
                rows.fetch_add(3, Ordering::Relaxed);
            }
            trainees.push(Trainee {
                enrolment,
                token: token(conn, &uid)?,
            });
            Ok(())
        })?;
    }
    Ok((trainees, supervisors, director))
}
