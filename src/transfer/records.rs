//! What an import writes per record of the bundle: activities and signed assessments
//! as records of their own, everything else as evidence with its provenance.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde_json::{json, Value};

use super::import::{codes_of, day, malformed, text, time, ImportCounts, UnmappedDelmal};
use crate::clock::to_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::TransferredRecordType;
use crate::portfolio::course_confirmation as courses;
use crate::portfolio::links;
use crate::portfolio::transferred::{KEPT_AS_EVIDENCE, KEPT_AS_RECORD};
use crate::schema::{
    activities, assessments, course_confirmations, record_delmal, transferred_records,
};

#[derive(Insertable)]
#[diesel(table_name = activities)]
struct ActivityRow<'a> {
    id: &'a str,
    enrolment_id: &'a str,
    kind: &'a str,
    title: &'a str,
    start_date: String,
    end_date: Option<String>,
    placement_id: Option<&'a str>,
    checklist_item_id: Option<&'a str>,
    template_version: i32,
    reflection: &'a str,
    version: i32,
    created_by: &'a str,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = assessments)]
struct AssessmentRow<'a> {
    id: &'a str,
    enrolment_id: &'a str,
    instrument: &'a str,
    status: &'a str,
    performed_on: String,
    context: String,
    ratings: String,
    entrustment: Option<i32>,
    feedback_strengths: &'a str,
    feedback_next_steps: &'a str,
    trainee_reflection: &'a str,
    created_by: &'a str,
    assessor_email: Option<&'a str>,
    signed_by_email: Option<&'a str>,
    requested_at: Option<NaiveDateTime>,
    signed_at: Option<NaiveDateTime>,
    signature_method: Option<&'a str>,
    content_hash: Option<&'a str>,
    version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// A kursledare's confirmation given on the sending service, as a confirmed course here.
#[derive(Insertable)]
#[diesel(table_name = course_confirmations)]
struct CourseConfirmationRow<'a> {
    activity_id: &'a str,
    enrolment_id: &'a str,
    kursledare_email: &'a str,
    kursledare_name: &'a str,
    kursledare_workplace: &'a str,
    status: &'a str,
    requested_by: &'a str,
    requested_at: NaiveDateTime,
    vetted_by: Option<&'a str>,
    confirmed_at: Option<NaiveDateTime>,
    content_hash: Option<&'a str>,
    version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = transferred_records)]
struct ProvenanceRow<'a> {
    id: &'a str,
    import_id: &'a str,
    enrolment_id: &'a str,
    record_type: TransferredRecordType,
    original_id: &'a str,
    kept_as: &'a str,
    title: &'a str,
    record_date: Option<String>,
    signed_by_name: Option<&'a str>,
    signed_by_role: Option<&'a str>,
    signed_at: Option<NaiveDateTime>,
    delmal: String,
    unmapped_delmal: String,
    content: String,
    created_at: NaiveDateTime,
}

/// Everything an import writes, in the caller's transaction.
pub(super) struct Importer {
    pub(super) import_id: String,
    pub(super) enrolment_id: String,
    pub(super) trainee_id: String,
    pub(super) known: HashSet<String>,
    pub(super) people: HashMap<String, (String, Option<String>)>,
    pub(super) now: NaiveDateTime,
    pub(super) unmapped: Vec<UnmappedDelmal>,
    pub(super) counts: ImportCounts,
}

/// One record of the bundle as its provenance names it.
pub(super) struct Item<'a> {
    /// As progress names it: `activity`, `assessment`, `placement`, `handover_talk`, ...
    pub(super) record_type: TransferredRecordType,
    /// The record as the sending service wrote it.
    pub(super) original: &'a Value,
    pub(super) title: &'a str,
    pub(super) date: Option<NaiveDate>,
    pub(super) signer: Signer,
}

/// Who signed a record: a name, a role, when.
pub(super) struct Signer {
    pub(super) name: Option<String>,
    pub(super) role: Option<String>,
    pub(super) at: Option<DateTime<Utc>>,
}

impl Importer {
    pub(super) fn name_of(&self, user: Option<&str>) -> Option<String> {
        user.and_then(|u| self.people.get(u))
            .map(|(n, _)| n.clone())
    }

    pub(super) fn email_of(&self, user: Option<&str>) -> Option<String> {
        user.and_then(|u| self.people.get(u))
            .and_then(|(_, e)| e.clone())
    }

    /// Splits codes into those the receiving template knows and those it does not.
    pub(super) fn map(
        &mut self,
        record_type: TransferredRecordType,
        record_id: uuid::Uuid,
        codes: Vec<String>,
    ) -> (Vec<String>, Vec<String>) {
        let (mut known, mut unknown) = (Vec::new(), Vec::new());
        for c in codes {
            if self.known.contains(&c) {
                known.push(c);
            } else {
                self.unmapped.push(UnmappedDelmal {
                    code: c.clone(),
                    record_type,
                    record_id: record_id.to_string(),
                });
                unknown.push(c);
            }
        }
        known.sort();
        known.dedup();
        (known, unknown)
    }

    /// Writes the provenance row of the record `id` here: `content` is what the sending
    /// service wrote (null when the record's own table holds it all).
    pub(super) fn provenance(
        &self,
        conn: &mut DbConn,
        id: &str,
        item: &Item<'_>,
        kept_as: &str,
        content: &Value,
        delmal: (&[String], &[String]),
    ) -> Result<(), AppError> {
        diesel::insert_into(transferred_records::table)
            .values(ProvenanceRow {
                id,
                import_id: &self.import_id,
                enrolment_id: &self.enrolment_id,
                record_type: item.record_type,
                // A course confirmation is known by its course.
                original_id: text(item.original, "id")
                    .or_else(|| text(item.original, "activity_id"))
                    .unwrap_or(""),
                kept_as,
                title: item.title,
                record_date: item.date.map(|d| d.to_string()),
                signed_by_name: item.signer.name.as_deref(),
                signed_by_role: item.signer.role.as_deref(),
                signed_at: item.signer.at.map(to_db),
                delmal: json!(delmal.0).to_string(),
                unmapped_delmal: json!(delmal.1).to_string(),
                content: content.to_string(),
                created_at: self.now,
            })
            .execute(conn)?;
        Ok(())
    }

    pub(super) fn link(
        &self,
        conn: &mut DbConn,
        id: &str,
        record_type: &str,
        codes: &[String],
    ) -> Result<(), AppError> {
        for code in codes {
            diesel::insert_into(record_delmal::table)
                .values((
                    record_delmal::record_id.eq(id),
                    record_delmal::code.eq(code),
                    record_delmal::enrolment_id.eq(&self.enrolment_id),
                    record_delmal::record_type.eq(record_type),
                ))
                .execute(conn)?;
        }
        Ok(())
    }

    pub(super) fn activity(
        &mut self,
        conn: &mut DbConn,
        a: &Value,
        template_version: i32,
    ) -> Result<String, AppError> {
        let uid = uuid::Uuid::new_v4();
        let id = uid.to_string();
        let kind = text(a, "kind").ok_or_else(|| malformed("activities.kind"))?;
        if crate::portfolio::activities::ActivityKind::from_code(kind).is_none() {
            return Err(malformed("activities.kind"));
        }
        let title = text(a, "title").ok_or_else(|| malformed("activities.title"))?;
        let start = day(a, "start_date").ok_or_else(|| malformed("activities.start_date"))?;
        let created = time(&a["created_at"]).map(to_db).unwrap_or(self.now);
        diesel::insert_into(activities::table)
            .values(ActivityRow {
                id: &id,
                enrolment_id: &self.enrolment_id,
                kind,
                title,
                start_date: start.to_string(),
                end_date: day(a, "end_date").map(|d| d.to_string()),
                placement_id: None,
                checklist_item_id: None,
                template_version,
                reflection: text(a, "reflection").unwrap_or(""),
                version: 1,
                created_by: &self.trainee_id,
                created_at: created,
                updated_at: self.now,
            })
            .execute(conn)?;
        let (known, unknown) =
            self.map(TransferredRecordType::Activity, uid, codes_of(&a["delmal"]));
        self.link(conn, &id, links::ACTIVITY.as_str(), &known)?;
        let item = Item {
            record_type: TransferredRecordType::Activity,
            original: a,
            title,
            date: Some(start),
            signer: Signer {
                name: self.name_of(text(a, "created_by")),
                role: Some(crate::portfolio::transferred::LOGGED_BY_TRAINEE.into()),
                at: time(&a["created_at"]),
            },
        };
        // The activity's own row holds its content.
        self.provenance(
            conn,
            &id,
            &item,
            KEPT_AS_RECORD,
            &Value::Null,
            (&known, &unknown),
        )?;
        self.counts.activities += 1;
        Ok(id)
    }

    pub(super) fn assessment(&mut self, conn: &mut DbConn, a: &Value) -> Result<String, AppError> {
        let uid = uuid::Uuid::new_v4();
        let id = uid.to_string();
        let instrument =
            text(a, "instrument").ok_or_else(|| malformed("assessments.instrument"))?;
        let performed =
            day(a, "performed_on").ok_or_else(|| malformed("assessments.performed_on"))?;
        let sig = &a["signature"];
        let signed_at =
            time(&sig["signed_at"]).ok_or_else(|| malformed("assessments.signature"))?;
        let signer_id = text(sig, "signed_by").or_else(|| text(a, "assessor_id"));
        let signer_email = self
            .email_of(signer_id)
            .or_else(|| text(sig, "signed_by_email").map(str::to_string))
            .or_else(|| text(a, "assessor_email").map(str::to_string));
        let context = a.get("context").cloned().unwrap_or_else(|| json!({}));
        let ratings = a.get("ratings").cloned().unwrap_or_else(|| json!({}));
        if !context.is_object() || !ratings.is_object() {
            return Err(malformed("assessments.ratings"));
        }
        let created = time(&a["created_at"]).map(to_db).unwrap_or(self.now);
        diesel::insert_into(assessments::table)
            .values(AssessmentRow {
                id: &id,
                enrolment_id: &self.enrolment_id,
                instrument,
                status: crate::portfolio::assessments::SIGNED.as_str(),
                performed_on: performed.to_string(),
                context: context.to_string(),
                ratings: ratings.to_string(),
                entrustment: a["entrustment"]
                    .as_i64()
                    .and_then(|e| i32::try_from(e).ok()),
                feedback_strengths: text(a, "feedback_strengths").unwrap_or(""),
                feedback_next_steps: text(a, "feedback_next_steps").unwrap_or(""),
                trainee_reflection: text(a, "trainee_reflection").unwrap_or(""),
                created_by: &self.trainee_id,
                assessor_email: signer_email.as_deref(),
                signed_by_email: signer_email.as_deref(),
                requested_at: None,
                signed_at: Some(to_db(signed_at)),
                // Not a second factor given here: the signature was made on the sending
                // service, whose bundle signature vouches for it.
                signature_method: Some("transfer"),
                content_hash: text(sig, "content_hash"),
                version: 1,
                created_at: created,
                updated_at: self.now,
            })
            .execute(conn)?;
        let (known, unknown) = self.map(
            TransferredRecordType::Assessment,
            uid,
            codes_of(&a["delmal"]),
        );
        self.link(conn, &id, links::ASSESSMENT.as_str(), &known)?;
        let item = Item {
            record_type: TransferredRecordType::Assessment,
            original: a,
            title: instrument,
            date: Some(performed),
            signer: Signer {
                name: self.name_of(signer_id).or(signer_email),
                role: Some("assessor".into()),
                at: Some(signed_at),
            },
        };
        self.provenance(
            conn,
            &id,
            &item,
            KEPT_AS_RECORD,
            &Value::Null,
            (&known, &unknown),
        )?;
        self.counts.assessments += 1;
        Ok(id)
    }

    /// A kursledare's confirmation of a course imported just before (`local`: the
    /// courses' ids there and here): a confirmed course here, so the course certificate
    /// names the kursledare and the course stays as confirmed, with a provenance row of
    /// its own (the kursledare, role kursledare, when) that the certificate and the
    /// dossier show as given on the sending service. Who vetted the kursledare there is a
    /// person of that service, not an account here: their name is in the provenance's
    /// content (`vetted_by_name`) beside the confirmation as sent.
    pub(super) fn course_confirmation(
        &mut self,
        conn: &mut DbConn,
        c: &Value,
        local: &HashMap<String, String>,
    ) -> Result<(), AppError> {
        let original =
            text(c, "activity_id").ok_or_else(|| malformed("course_confirmations.activity_id"))?;
        let activity = local.get(original).ok_or_else(|| {
            AppError::validation(
                "bundle.course_confirmations",
                "a course confirmation names no activity of the bundle",
            )
        })?;
        let (kind, title): (String, String) = activities::table
            .find(activity)
            .select((activities::kind, activities::title))
            .first(conn)?;
        if kind != crate::portfolio::activities::ActivityKind::Course.as_str()
            || text(c, "status") != Some(courses::CONFIRMED.as_str())
        {
            return Err(malformed("course_confirmations"));
        }
        let name = text(c, "kursledare_name")
            .ok_or_else(|| malformed("course_confirmations.kursledare_name"))?;
        let email = text(c, "kursledare_email")
            .ok_or_else(|| malformed("course_confirmations.kursledare_email"))?;
        let confirmed = time(&c["confirmed_at"])
            .ok_or_else(|| malformed("course_confirmations.confirmed_at"))?;
        diesel::insert_into(course_confirmations::table)
            .values(CourseConfirmationRow {
                activity_id: activity,
                enrolment_id: &self.enrolment_id,
                kursledare_email: email,
                kursledare_name: name,
                kursledare_workplace: text(c, "kursledare_workplace").unwrap_or(""),
                status: courses::CONFIRMED.as_str(),
                requested_by: &self.trainee_id,
                requested_at: time(&c["requested_at"]).map(to_db).unwrap_or(self.now),
                vetted_by: None,
                confirmed_at: Some(to_db(confirmed)),
                content_hash: text(c, "content_hash"),
                version: 1,
                created_at: self.now,
                updated_at: self.now,
            })
            .execute(conn)?;
        let mut content = c.clone();
        content["vetted_by_name"] = json!(self.name_of(text(c, "vetted_by")));
        let item = Item {
            record_type: TransferredRecordType::CourseConfirmation,
            original: c,
            title: &title,
            date: Some(confirmed.date_naive()),
            signer: Signer {
                name: Some(name.to_string()),
                role: Some(courses::ROLE.into()),
                at: Some(confirmed),
            },
        };
        self.provenance(
            conn,
            &uuid::Uuid::new_v4().to_string(),
            &item,
            KEPT_AS_RECORD,
            &content,
            (&[], &[]),
        )?;
        self.counts.course_confirmations += 1;
        Ok(())
    }

    /// A record kept as the sending service's content only (a talk, a summary
    /// assessment, a final assessment), with its delmål mapped.
    pub(super) fn evidence(
        &mut self,
        conn: &mut DbConn,
        item: Item<'_>,
        codes: Vec<String>,
    ) -> Result<(), AppError> {
        let uid = uuid::Uuid::new_v4();
        let id = uid.to_string();
        let (known, unknown) = self.map(item.record_type, uid, codes);
        self.provenance(
            conn,
            &id,
            &item,
            KEPT_AS_EVIDENCE,
            item.original,
            (&known, &unknown),
        )?;
        self.counts.evidence += 1;
        Ok(())
    }
}

pub(super) fn no_signer() -> Signer {
    Signer {
        name: None,
        role: None,
        at: None,
    }
}
