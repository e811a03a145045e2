//! The supervision steps of the BT year that the pilot asked to see flagged when missing
//! (issue 14, item 11). The source is Region Stockholm's pilot report (seed 002, figur 3
//! "Handledningen under BT-året"):
//!
//! - placements 2-4: "Handledningssamtal med HHL i mitten av tjänstgöringen" (the main
//!   supervisor is the placement supervisor of placement 1, so that one has none);
//! - at each placement change: "överlämningsamtal till [nästa] tjänstgöringsställe
//!   (BT-läkare, HHL, tjg-HL …)";
//! - each placement: "Tjg-HL … skriver sammantagen bedömning för … tjänstgöringsavsnitt".
//!
//! Days are Swedish calendar days: placements are stored as days, and `today` is the
//! Europe/Stockholm day of the request (`crate::clock`). The loading is grouped per chunk
//! of enrolments like the rest of `inputs.rs`; the judging is pure.

use std::collections::{HashMap, HashSet};

use chrono::{Duration, NaiveDate};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::inputs::{Inputs, CHUNK};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::Day;
use crate::portfolio::talks::TalkKind;
use crate::schema::{assignments, talk_participants, talks};

/// The codes a [`SupervisionFlag`] carries (a closed set: see `spec_closed_sets.rs`).
pub const CODES: &[&str] = &[
    MID_PLACEMENT_TALK_MISSING,
    HANDOVER_MISSING,
    SUMMARY_ASSESSMENT_MISSING,
];
pub const MID_PLACEMENT_TALK_MISSING: &str = "mid_placement_talk_missing";
pub const HANDOVER_MISSING: &str = "handover_missing";
pub const SUMMARY_ASSESSMENT_MISSING: &str = "summary_assessment_missing";

/// What the supervision flags need about one enrolment.
#[derive(Debug, Clone, Default)]
pub(crate) struct SupervisionSteps {
    /// Main supervisor assignments: user, first day, first day no longer valid.
    pub(crate) main_supervisors: Vec<(String, NaiveDate, Option<NaiveDate>)>,
    /// Supervision sessions: placement, day held, participants.
    pub(crate) sessions: Vec<(Option<String>, NaiveDate, Vec<String>)>,
    /// Handover talks: placement ending, placement that follows, day (to be) held.
    pub(crate) handovers: Vec<(Option<String>, Option<String>, NaiveDate)>,
    /// Placements with a signed, current summary assessment.
    pub(crate) summarised: HashSet<String>,
}

impl SupervisionSteps {
    /// Was `user` the main supervisor on `day`?
    fn main_on(&self, user: &str, day: NaiveDate) -> bool {
        self.main_supervisors
            .iter()
            .any(|(u, from, to)| u == user && *from <= day && to.is_none_or(|t| day < t))
    }
}

/// A supervision step the plan asks for that has not happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SupervisionFlag {
    /// `mid_placement_talk_missing` (BT placements 2 on: no supervision session with the
    /// main supervisor by the placement's midpoint), `handover_missing` (the next
    /// placement has begun without a handover talk), `summary_assessment_missing` (the
    /// placement has ended without a signed summary assessment).
    #[schema(example = "mid_placement_talk_missing")]
    pub code: String,
    /// The placement concerned (for a handover, the one that follows).
    pub placement_id: String,
    /// The first Swedish day on which the step counts as missing.
    #[schema(example = "2026-07-02")]
    pub since: NaiveDate,
    #[schema(
        example = "No supervision session with the main supervisor by the middle of the placement (2026-07-01)"
    )]
    pub message: String,
}

/// Tracks with the BT year's supervision plan: standalone BT. (Integrated BT is left out:
/// its placements do not say which belong to the BT part.)
fn has_mid_placement_talks(track: &str) -> bool {
    track == "bt_standalone"
}

/// The middle day of a placement, rounded down.
pub(crate) fn midpoint(start: NaiveDate, end: NaiveDate) -> NaiveDate {
    start + Duration::days((end - start).num_days().max(0) / 2)
}

fn next_day(d: NaiveDate) -> NaiveDate {
    d.succ_opt().unwrap_or(d)
}

/// The supervision steps missing by `today`, placement by placement.
pub(crate) fn flags(i: &Inputs, today: NaiveDate) -> Vec<SupervisionFlag> {
    let mut out = Vec::new();
    if i.e.status != "active" {
        return out;
    }
    let s = &i.supervision_steps;
    for (k, p) in i.placements.iter().enumerate() {
        if p.end < p.start {
            continue;
        }
        if k > 0 && has_mid_placement_talks(&i.e.track) {
            let middle = midpoint(p.start, p.end);
            let held = s.sessions.iter().any(|(placement, day, people)| {
                *day >= p.start
                    && *day <= p.end
                    && *day <= today
                    && placement.as_ref().is_none_or(|x| x == &p.id)
                    && people.iter().any(|u| s.main_on(u, *day))
            });
            if today > middle && !held {
                out.push(SupervisionFlag {
                    code: MID_PLACEMENT_TALK_MISSING.into(),
                    placement_id: p.id.clone(),
                    since: next_day(middle),
                    message: format!(
                        "No supervision session with the main supervisor by the middle of the placement ({middle})"
                    ),
                });
            }
        }
        if k > 0 {
            let before = &i.placements[k - 1];
            let held = s.handovers.iter().any(|(from, to, day)| {
                *day <= today
                    && (to.as_deref() == Some(p.id.as_str())
                        || from.as_deref() == Some(before.id.as_str()))
            });
            if today >= p.start && !held {
                out.push(SupervisionFlag {
                    code: HANDOVER_MISSING.into(),
                    placement_id: p.id.clone(),
                    since: p.start,
                    message: format!("The placement began on {} without a handover talk", p.start),
                });
            }
        }
        if today > p.end && !s.summarised.contains(&p.id) {
            out.push(SupervisionFlag {
                code: SUMMARY_ASSESSMENT_MISSING.into(),
                placement_id: p.id.clone(),
                since: next_day(p.end),
                message: format!(
                    "The placement ended on {} without a signed summary assessment",
                    p.end
                ),
            });
        }
    }
    out
}

/// Placements that begin within `days` days after `today`, following another one, with
/// no handover talk recorded for the change (held or planned): the digest's reminder.
pub(crate) fn unplanned_handovers(i: &Inputs, today: NaiveDate, days: i64) -> Vec<NaiveDate> {
    if i.e.status != "active" {
        return Vec::new();
    }
    let s = &i.supervision_steps;
    let horizon = today + Duration::days(days);
    i.placements
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, p)| p.start > today && p.start <= horizon)
        .filter(|(k, p)| {
            let before = &i.placements[k - 1];
            !s.handovers.iter().any(|(from, to, _)| {
                to.as_deref() == Some(p.id.as_str()) || from.as_deref() == Some(before.id.as_str())
            })
        })
        .map(|(_, p)| p.start)
        .collect()
}

/// The main supervisor on `today`, if any (the latest assignment if several overlap).
pub(crate) fn main_supervisor(i: &Inputs, today: NaiveDate) -> Option<String> {
    i.supervision_steps
        .main_supervisors
        .iter()
        .filter(|(_, from, to)| *from <= today && to.is_none_or(|t| today < t))
        .max_by_key(|(_, from, _)| *from)
        .map(|(u, _, _)| u.clone())
}

/// The columns of a `talks` row the flags need.
#[derive(Queryable, Selectable)]
#[diesel(table_name = talks, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct TalkRow {
    enrolment_id: String,
    id: String,
    kind: TalkKind,
    placement_id: Option<String>,
    next_placement_id: Option<String>,
    held_on: Day,
    /// A JSON list; read here for the supervision sessions of `Inputs::supervision` too.
    topics: String,
}

/// Loads the supervision steps of many enrolments with grouped queries; with the talks,
/// the supervision sessions of [`Inputs::supervision`] (one read of the talks for
/// both). The placements with a summary assessment are read with the summaries, in
/// `inputs`.
pub(crate) fn load(
    conn: &mut DbConn,
    ids: &[String],
    by_id: &mut HashMap<String, Inputs>,
) -> Result<(), AppError> {
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(String, String, Day, Option<Day>)> = assignments::table
            .filter(assignments::enrolment_id.eq_any(chunk))
            .filter(assignments::role.eq(crate::enrolment::access::MAIN_SUPERVISOR))
            .select((
                assignments::enrolment_id,
                assignments::user_id,
                assignments::valid_from,
                assignments::valid_to,
            ))
            .load(conn)?;
        for (e, user, from, to) in rows {
            if let Some(i) = by_id.get_mut(&e) {
                i.supervision_steps.main_supervisors.push((
                    user,
                    from.date(),
                    to.map(|t| t.date()),
                ));
            }
        }
        let rows: Vec<TalkRow> = talks::table
            .filter(talks::enrolment_id.eq_any(chunk))
            .filter(talks::deleted_at.is_null())
            .filter(talks::kind.eq_any([TalkKind::Supervision, TalkKind::Handover]))
            .select(TalkRow::as_select())
            .load(conn)?;
        let session_ids: Vec<&String> = rows
            .iter()
            .filter(|r| r.kind == TalkKind::Supervision)
            .map(|r| &r.id)
            .collect();
        let mut people: HashMap<String, Vec<String>> = HashMap::new();
        for ids in session_ids.chunks(CHUNK) {
            let parts: Vec<(String, String)> = talk_participants::table
                .filter(talk_participants::talk_id.eq_any(ids))
                .select((talk_participants::talk_id, talk_participants::user_id))
                .load(conn)?;
            for (talk, user) in parts {
                people.entry(talk).or_default().push(user);
            }
        }
        for r in rows {
            let Some(i) = by_id.get_mut(&r.enrolment_id) else {
                continue;
            };
            if r.kind == TalkKind::Handover {
                i.supervision_steps.handovers.push((
                    r.placement_id,
                    r.next_placement_id,
                    r.held_on.date(),
                ));
            } else {
                let topics: Vec<String> =
                    serde_json::from_str(&r.topics).map_err(AppError::internal)?;
                i.supervision
                    .push((r.placement_id.clone(), r.held_on.date(), topics));
                let who = people.remove(&r.id).unwrap_or_default();
                i.supervision_steps
                    .sessions
                    .push((r.placement_id, r.held_on.date(), who));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "supervision_flags_tests.rs"]
mod tests;
