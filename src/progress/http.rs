//! The progress endpoints: a trainee's progress, its charts and the cohort overview.

use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};

use super::cohort::{CohortFilter, CohortRow};
use super::service::Progress;
use super::{chart, cohort, service};
use crate::context::Ctx;
use crate::enrolment::access::{self, Access};
use crate::error::AppError;
use crate::http::negotiate;
use crate::ids::EnrolmentId;

const PROBLEM: &str = "application/problem+json";

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProgressQuery {
    /// Include the records behind each delmål (default false: counts only).
    pub items: Option<bool>,
}

/// Progress of a trainee
///
/// Per delmål: the evidence behind it (activities, signed assessments by instrument,
/// supervision and handover talks, summary assessments, credited service) and a state
/// (`not_started`, `in_progress`, `ready_for_final_assessment`, `achieved`). Per placement
/// the checklist of the trainee's template version, each item done or outstanding with
/// what is expected by today. And the pace: `on_pace`, `behind` or `at_risk`, with the
/// reasons. A delmål is `ready_for_final_assessment` when a signed summary assessment
/// judges it achieved and at least one other record backs it. `items=true` adds the
/// records behind each delmål (dates, kinds, titles), oldest first.
#[utoipa::path(
    tag = "progress",
    params(("id" = String, Path, description = "Enrolment"), ProgressQuery),
    responses(
        (status = 200, description = "Progress as of today", body = Progress),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/progress")]
pub async fn get_progress(
    ctx: Ctx,
    path: web::Path<EnrolmentId>,
    query: web::Query<ProgressQuery>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let today = ctx.today();
    let items = query.items.unwrap_or(false);
    let p = ctx
        .read(move |c, ctx| {
            access::require(c, &ctx.caller, &id, today, Access::Read)?;
            service::progress(c, &id, today, items)
        })
        .await?;
    Ok(HttpResponse::Ok().json(p))
}

/// Progress chart of a trainee
///
/// Evidence per delmål as stacked bars coloured by kind of record, each delmål's state,
/// and time served against the checklist done. `Accept: image/svg+xml` (default) or
/// `image/png`.
#[utoipa::path(
    tag = "progress",
    params(("id" = String, Path, description = "Enrolment")),
    responses(
        (status = 200, description = "The chart", content(
            (String = "image/svg+xml"),
            (crate::http::FileBody = "image/png"),
        )),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 406, description = "Neither SVG nor PNG is acceptable", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/progress/chart")]
pub async fn get_chart(
    req: HttpRequest,
    ctx: Ctx,
    path: web::Path<EnrolmentId>,
) -> Result<HttpResponse, AppError> {
    let kind = negotiate(&req, &["image/svg+xml", "image/png"])?;
    let id = path.into_inner();
    let today = ctx.today();
    let (p, name) = ctx
        .read(move |c, ctx| {
            access::require(c, &ctx.caller, &id, today, Access::Read)?;
            let p = service::progress(c, &id, today, false)?;
            let name = crate::accounts::service::display_name(c, &p.trainee_id)?;
            Ok((p, name))
        })
        .await?;
    let chart = chart::progress_chart(&p, &name);
    let body = if kind == "image/png" {
        web::block(move || chart.to_png(2.0))
            .await?
            .map_err(AppError::Internal)?
    } else {
        chart.to_svg().into_bytes()
    };
    Ok(HttpResponse::Ok()
        .content_type(kind)
        .insert_header((header::VARY, "Accept"))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .body(body))
}

/// Cohort overview
///
/// For directors of studies and administrators: every trainee they follow in one call,
/// with time served, pace and its reasons, overdue supervision, assessments waiting for a
/// signature and delmål without evidence. Filter and sort with the query parameters.
/// `Accept: text/csv` gives the same rows as a spreadsheet.
#[utoipa::path(
    tag = "progress",
    params(CohortFilter),
    responses(
        (status = 200, description = "One row per trainee (JSON: a page; CSV: every row)", content(
            (crate::http::Page<CohortRow> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 403, description = "Not a director of studies or administrator", body = crate::error::Problem, content_type = PROBLEM),
        (status = 406, description = "Neither JSON nor CSV is acceptable", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/cohort-overview")]
pub async fn get_cohort(
    req: HttpRequest,
    ctx: Ctx,
    query: web::Query<CohortFilter>,
) -> Result<HttpResponse, AppError> {
    let kind = negotiate(&req, &["application/json", "text/csv"])?;
    let today = ctx.today();
    let f = query.into_inner();
    let csv = kind == "text/csv";
    let page = crate::http::PageParams {
        limit: f.limit,
        cursor: f.cursor.clone(),
    };
    if !csv {
        page.limit()?;
    }
    let rows = ctx
        .read(move |c, ctx| {
            let mut rows = cohort::overview(c, &ctx.caller, today, &f)?;
            if csv {
                // Issue 15: a person with protected identity (skyddad personuppgift) never
                // leaves the service in a spreadsheet.
                let ids: Vec<String> = rows.iter().map(|r| r.trainee_id.clone()).collect();
                let hidden = crate::accounts::personal_identity::protected_among(c, &ids)?;
                rows.retain(|r| !hidden.contains(&r.trainee_id));
            }
            Ok(rows)
        })
        .await?;
    if csv {
        let body = cohort::to_csv(&rows)?;
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((header::VARY, "Accept"))
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"cohort-{today}.csv\""),
            ))
            .body(body));
    }
    // Computed per request for every followed trainee, then paged like any list.
    let page = crate::http::Page::of_list(rows, &page, |r| r.enrolment_id.clone())?;
    Ok(HttpResponse::Ok()
        .insert_header((header::VARY, "Accept"))
        .json(page))
}

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_progress)
        .service(get_chart)
        .service(get_cohort);
}
