//! The service certificates: "Intyg om fullgjord bastjänstgöring" (HSLF-FS 2021:8,
//! bilaga 3) and "... specialiseringstjänstgöring" (bilaga 6): per period the tjänsteställe
//! (the placement's unit), the vårdgivare (the care provider above it) and the extent,
//! signed by the verksamhetschef. The training-activity forms are `cert_activities.rs`.

use chrono::NaiveDate;

use super::certificates::{field, Basis, CertificateDraft, CertificateTable};
use crate::accounts::service::{get_org, OrgKind};
use crate::db::DbConn;
use crate::enrolment::service::Placement;
use crate::error::AppError;
use crate::ids::EnrolmentId;

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
    enrolment_id: &EnrolmentId,
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
    let e = &b.e;
    let mut listed: Vec<String> = e.placements.iter().map(|p| p.id.clone()).collect();
    // Served on another service (issue 17): its units are not organisations here.
    let imported = crate::portfolio::transferred::of_records(conn, &listed)?;
    listed.extend(e.leave_periods.iter().map(|l| l.id.clone()));
    listed.extend(e.credited_service.iter().map(|c| c.id.clone()));
    let mut rows = Vec::new();
    for p in &e.placements {
        let kind = b.template.placement_type(&p.placement_type);
        let (unit, provider) = match imported.get(&p.id) {
            Some(from) => (
                NOT_RECORDED.to_string(),
                format!("överförd från {}", from.service_name),
            ),
            None => where_served(conn, p, &e.organisation_id)?,
        };
        let extent = extent_between(
            conn,
            &EnrolmentId::from(e.id.as_str()),
            p.start_date,
            p.end_date,
        )?;
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
    let mut draft = b.draft(
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
    );
    draft.listed = listed;
    Ok(Some(draft))
}
