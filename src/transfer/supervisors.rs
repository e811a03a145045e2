//! Who supervised on the sending service (issue 17): the main supervisor and each
//! placement's supervisors, with their periods, as read-only provenance facts. They are
//! people of the other service, not accounts here, so no assignment is made: progress
//! and the dossier (`transferred`, record type `supervisor_assignment`) say who
//! supervised the earlier part, and the receiving director assigns supervisors for
//! what follows.
//!
//! As with the plan, only what held up to the day of the export (`cut`) is taken: an
//! assignment from a later day stays in the bundle.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde_json::{json, Value};

use super::import::{day, malformed, text};
use super::records::{Importer, Item, Signer};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::TransferredRecordType;
use crate::portfolio::transferred::KEPT_AS_EVIDENCE;

/// The roles that supervise (the others, director, external assessor, head of
/// department, decide or certify; they are not who supervised).
const SUPERVISING: [&str; 2] = ["main_supervisor", "placement_supervisor"];

impl Importer {
    /// One provenance fact per supervising assignment of the sending enrolment `e` that
    /// began by `cut`; `placements`: the placements' ids there and (type, id) here.
    pub(super) fn supervisors(
        &mut self,
        conn: &mut DbConn,
        e: &Value,
        cut: NaiveDate,
        placements: &HashMap<String, (String, String)>,
    ) -> Result<(), AppError> {
        for a in e["assignments"].as_array().into_iter().flatten() {
            let role = text(a, "role").ok_or_else(|| malformed("enrolment.assignments"))?;
            if !SUPERVISING.contains(&role) {
                continue;
            }
            let from = day(a, "valid_from").ok_or_else(|| malformed("enrolment.assignments"))?;
            if from > cut {
                continue;
            }
            // `valid_to` is exclusive; the last day served there is the export's at most.
            let until = day(a, "valid_to")
                .and_then(|d| d.pred_opt())
                .map_or(cut, |d| d.min(cut));
            let placement = text(a, "placement_id").and_then(|p| placements.get(p));
            let title = match placement {
                Some((kind, _)) => format!("{role} {kind}"),
                None => role.to_string(),
            };
            let name = self.name_of(text(a, "user_id"));
            let mut content = a.clone();
            content["supervisor_name"] = json!(name);
            content["placement_id_here"] = json!(placement.map(|(_, id)| id));
            content["served_until"] = json!(until);
            let item = Item {
                record_type: TransferredRecordType::SupervisorAssignment,
                original: a,
                title: &title,
                date: Some(from),
                // Nobody signed an assignment: the fact names who and in which role.
                signer: Signer {
                    name,
                    role: Some(role.to_string()),
                    at: None,
                },
            };
            let id = uuid::Uuid::new_v4().to_string();
            self.provenance(conn, &id, &item, KEPT_AS_EVIDENCE, &content, (&[], &[]))?;
            self.counts.supervisor_assignments += 1;
        }
        Ok(())
    }
}
