//! The service certificates: "Intyg om fullgjord bastjänstgöring" (HSLF-FS 2021:8,
//! bilaga 3) and "... specialiseringstjänstgöring" (bilaga 6): per period the tjänsteställe
//! (the placement's unit), the vårdgivare (the care provider above it) and the extent,
//! signed by the verksamhetschef. And the training-activity forms ("Intyg om genomförd
//! utbildningsaktivitet och uppfyllda/uppfyllt kompetenskrav": HSLF-FS 2021:8 bilagor
//! 8-11, SOSFS 2015:8 bilagor 3-7), one per placement, course and observership.

use chrono::NaiveDate;
use diesel::prelude::*;

use super::certificates::{field, Basis, CertificateDraft, CertificateTable, SignatureLine};
use crate::accounts::service::{get_org, OrgKind};
use crate::db::DbConn;
use crate::enrolment::service::{AssignmentRole, Placement};
use crate::error::AppError;
use crate::ids::Day;
use crate::schema::{activities, record_delmal};

/// Employment extent over part of the training.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentSpan {
    pub from: NaiveDate,
    /// Inclusive.
    pub to: NaiveDate,
    /// Per cent of full time.
    pub percent: i32,
}

/// The employment extent between `from` and `to` (inclusive), as spans: one per period
/// of the enrolment's extent history (`enrolment::extent`), cut to the dates, so a move
/// from 100 % to 75 % in March shows on the period it falls in.
pub fn extent_between(
    conn: &mut DbConn,
    enrolment_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<ExtentSpan>, AppError> {
    Ok(
        crate::enrolment::extent::periods_between(conn, enrolment_id, from, to)?
            .into_iter()
            .map(|p| ExtentSpan {
                from: p.valid_from,
                to: p.valid_to.unwrap_or(to),
                percent: p.extent_percent,
            })
            .collect(),
    )
}

fn extent_text(spans: &[ExtentSpan]) -> String {
    match spans {
        [one] => format!("{} %", one.percent),
        _ => spans
            .iter()
            .map(|s| format!("{} % ({} – {})", s.percent, s.from, s.to))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

const NOT_RECORDED: &str = "ej angivet i planen";

/// The care provider at or above `org`, if any.
fn care_provider_of(conn: &mut DbConn, org: &str) -> Result<Option<String>, AppError> {
    let mut at = Some(org.to_string());
    // Organisations nest region > care provider > unit; a few steps always reach the top.
    for _ in 0..8 {
        let Some(id) = at else { break };
        let o = get_org(conn, &id)?;
        if o.kind == OrgKind::CareProvider {
            return Ok(Some(o.name));
        }
        at = o.parent_id;
    }
    Ok(None)
}

/// Tjänsteställe and vårdgivare of a placement: its unit and the care provider above it;
/// without a unit, the care provider of the placement's organisation or the programme's.
fn where_served(
    conn: &mut DbConn,
    p: &Placement,
    programme_org: &str,
) -> Result<(String, String), AppError> {
    let (unit, provider_from) = match &p.unit_id {
        Some(id) => {
            let o = get_org(conn, id)?;
            let unit = (o.kind == OrgKind::Unit).then(|| o.name.clone());
            (unit, id.clone())
        }
        None => (None, programme_org.to_string()),
    };
    Ok((
        unit.unwrap_or_else(|| NOT_RECORDED.into()),
        care_provider_of(conn, &provider_from)?.unwrap_or_else(|| NOT_RECORDED.into()),
    ))
}

pub(super) fn service_completed(
    conn: &mut DbConn,
    b: &Basis,
    appendix: &str,
    key: &str,
) -> Result<Option<CertificateDraft>, AppError> {
    let Some(form) = b.set.form(appendix) else {
        return Ok(None);
    };
    let e = b.e;
    let mut rows = Vec::new();
    for p in &e.placements {
        let kind = b.template.placement_type(&p.placement_type);
        let (unit, provider) = where_served(conn, p, &e.organisation_id)?;
        let extent = extent_between(conn, &e.id, p.start_date, p.end_date)?;
        rows.push(vec![
            format!(
                "{unit} ({})",
                kind.map(|k| k.name.clone())
                    .unwrap_or_else(|| p.placement_type.clone())
            ),
            provider,
            format!("{} – {}", p.start_date, p.end_date),
            extent_text(&extent),
            kind.map(|k| k.counts_as.join(", ")).unwrap_or_default(),
        ]);
    }
    let mut fields = b.person.clone();
    fields.push(field(
        "Tjänstgjord tid",
        format!(
            "{} månader (varav tillgodoräknat {} dagar)",
            e.time_served.total_months, e.time_served.credited_days
        ),
    ));
    let leave: Vec<String> = e
        .leave_periods
        .iter()
        .map(|l| {
            format!(
                "{} {} – {} ({} %)",
                l.kind, l.start_date, l.end_date, l.percent
            )
        })
        .collect();
    fields.push(field(
        "Ledighet",
        if leave.is_empty() {
            "ingen".into()
        } else {
            leave.join("; ")
        },
    ));
    Ok(Some(b.draft(
        key.into(),
        form,
        fields,
        vec![CertificateTable {
            title: "Tjänstgöring".into(),
            headers: vec![
                "Tjänsteställe".into(),
                "Vårdgivare".into(),
                "Period".into(),
                "Omfattning".into(),
                "Räknas som".into(),
            ],
            rows,
        }],
        form.signed_by.iter().map(|r| b.signers.line(r)).collect(),
    )))
}

/// The placement supervisor of a placement: the latest assignment to it.
fn placement_supervisor(b: &Basis, placement: &str) -> Option<String> {
    b.e.assignments
        .iter()
        .filter(|a| {
            a.role == AssignmentRole::PlacementSupervisor
                && a.placement_id.as_deref() == Some(placement)
        })
        .max_by_key(|a| a.valid_from)
        .map(|a| a.user_id.clone())
}

/// One training activity a form certifies.
struct Item {
    /// The placement's or the activity's id.
    key: String,
    /// The form's variant: `klinisk tjänstgöring`, `kurs`, `auskultation`.
    variant: &'static str,
    title: String,
    period: String,
    placement: Option<String>,
    /// The records whose delmål the form states.
    records: Vec<String>,
}

/// A course or observership as the forms read it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = activities, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ActivityRow {
    id: String,
    kind: String,
    title: String,
    start_date: Day,
    end_date: Option<Day>,
    placement_id: Option<String>,
}

/// The training-activity forms: one per placement (klinisk tjänstgöring), course (kurs)
/// and observership (auskultation). The other variants (quality and development work,
/// the written work) have no kind of record here yet, so no form is drafted for them.
pub(super) fn activities(
    conn: &mut DbConn,
    b: &Basis,
    appendix: &str,
) -> Result<Vec<CertificateDraft>, AppError> {
    let Some(form) = b.set.form(appendix) else {
        return Ok(Vec::new());
    };
    let e = b.e;
    let mut items: Vec<Item> = Vec::new();
    for p in &e.placements {
        let in_placement: Vec<String> = activities::table
            .filter(activities::enrolment_id.eq(&e.id))
            .filter(activities::placement_id.eq(&p.id))
            .filter(activities::deleted_at.is_null())
            .select(activities::id)
            .load(conn)?;
        let name = b
            .template
            .placement_type(&p.placement_type)
            .map(|k| k.name.clone())
            .unwrap_or_else(|| p.placement_type.clone());
        items.push(Item {
            key: p.id.clone(),
            variant: "klinisk tjänstgöring",
            title: name,
            period: format!("{} – {}", p.start_date, p.end_date),
            placement: Some(p.id.clone()),
            records: in_placement,
        });
    }
    let acts: Vec<ActivityRow> = activities::table
        .filter(activities::enrolment_id.eq(&e.id))
        .filter(activities::deleted_at.is_null())
        .filter(activities::kind.eq_any(["course", "observership"]))
        .order((activities::start_date, activities::id))
        .select(ActivityRow::as_select())
        .load(conn)?;
    for a in acts {
        let start = a.start_date.date();
        items.push(Item {
            key: a.id.clone(),
            variant: if a.kind == "course" {
                "kurs"
            } else {
                "auskultation"
            },
            title: a.title,
            period: match a.end_date {
                Some(end) => format!("{start} – {}", end.date()),
                None => start.to_string(),
            },
            placement: a.placement_id,
            records: vec![a.id],
        });
    }
    let mut out = Vec::new();
    for Item {
        key,
        variant,
        title,
        period,
        placement,
        records,
    } in items
    {
        if !form.variants.iter().any(|v| v == variant) {
            continue;
        }
        let mut codes: Vec<String> = if records.is_empty() {
            Vec::new()
        } else {
            record_delmal::table
                .filter(record_delmal::enrolment_id.eq(&e.id))
                .filter(record_delmal::record_id.eq_any(&records))
                .select(record_delmal::code)
                .load(conn)?
        };
        codes.sort();
        codes.dedup();
        let rows = codes
            .iter()
            .map(|c| vec![c.clone(), b.titles.get(c).cloned().unwrap_or_default()])
            .collect();
        // A handledare signs for the placement the activity belongs to, or the main
        // supervisor; a kursledare is not recorded here and signs by hand.
        let supervisor = placement
            .as_deref()
            .and_then(|p| placement_supervisor(b, p))
            .or_else(|| b.signers.main_supervisor().map(|p| p.user_id.clone()));
        let mut signatures = Vec::new();
        for role in form.signers_of(variant) {
            let who = if role == "handledare" {
                supervisor.clone()
            } else {
                None
            };
            let name = who
                .as_deref()
                .map(|u| super::certificates::name_of(conn, u))
                .transpose()?;
            signatures.push(SignatureLine {
                role,
                name,
                user_id: who,
            });
        }
        let mut fields = b.person.clone();
        fields.push(field("Utbildningsaktivitet", variant));
        fields.push(field("Beskrivning", title));
        fields.push(field("Period", period));
        out.push(b.draft(
            format!("utbildningsaktivitet-{key}"),
            form,
            fields,
            vec![CertificateTable {
                title: "Delmål som aktiviteten avser".into(),
                headers: vec!["Delmål".into(), "Benämning".into()],
                rows,
            }],
            signatures,
        ));
    }
    Ok(out)
}
