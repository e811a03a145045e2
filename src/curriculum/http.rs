//! The curriculum endpoints: regulations, delmål and programme templates.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::catalogue::{Delmal, DelmalInput, Regulation, RegulationInput, Stored};
use super::templates::{ProgrammeTemplate, TemplateContent};
use super::{catalogue, templates};
use crate::auth::principal::{Principal, Role};
use crate::context::Ctx;
use crate::error::AppError;
use crate::http::{check_if_match, if_match, media_type, read_body, with_etag, Page, PageParams};
use crate::ids::{OrganisationId, RegulationId, TemplateId};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RegulationFilter {
    /// e.g. `bt-2021`, `st-2021`, `st-2015`, `at`.
    pub code: Option<String>,
    pub version: Option<i32>,
    /// Only the newest version of each regulation.
    #[serde(default)]
    pub latest: bool,
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List regulation versions
#[utoipa::path(
    tag = "curriculum",
    params(RegulationFilter),
    responses((status = 200, description = "Regulation versions", body = Page<Regulation>)),
    security(("bearer" = []))
)]
#[get("/regulations")]
pub async fn list_regulations(
    ctx: Ctx,
    query: web::Query<RegulationFilter>,
) -> Result<HttpResponse, AppError> {
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let items = ctx
        .read(move |c, _| catalogue::list_regulations(c, q.code.as_deref(), q.version, q.latest))
        .await?;
    Ok(HttpResponse::Ok().json(Page::of_list(items, &page, |r| r.id.clone())?))
}

/// Get a regulation version
#[utoipa::path(
    tag = "curriculum",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The regulation version", body = Regulation),
        (status = 404, description = "Unknown", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/regulations/{id}")]
pub async fn get_regulation(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let reg = ctx
        .read(move |c, _| catalogue::get_regulation(c, &id))
        .await?;
    Ok(HttpResponse::Ok().json(reg))
}

fn require_admin(me: &Principal) -> Result<(), AppError> {
    Principal::require(me.has_role(Role::Administrator))
}

/// Add a regulation, or a new version of one
///
/// Administrators only. The new version gets the next number; content identical to an
/// existing version is refused with 409. Existing versions never change.
#[utoipa::path(
    tag = "curriculum",
    request_body(content = RegulationInput, example = json!({
        "code": "bt-2021", "name_sv": "Bastjänstgöring", "name_en": "Basic medical training",
        "statute": "HSLF-FS 2021:8", "in_force": "2021-07-01",
        "rules": {"minimum_months": 6},
        "delmal": [{"code": "BT1", "title_sv": "Akuta och icke akuta sjukdomstillstånd", "title_en": "Acute and non-acute conditions"}]
    })),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    responses(
        (status = 201, description = "The new version", body = Regulation),
        (status = 409, description = "Identical to an existing version", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/regulations")]
pub async fn create_regulation(
    ctx: Ctx,
    body: web::Json<RegulationInput>,
) -> Result<HttpResponse, AppError> {
    require_admin(&ctx.caller)?;
    let input = body.into_inner();
    let stored = ctx
        .write(move |c, ctx| catalogue::store_regulation(c, ctx.now, &input, "api"))
        .await?;
    match stored {
        Stored::Created(reg) => Ok(HttpResponse::Created().json(reg)),
        Stored::Unchanged(reg) => Err(AppError::Conflict(format!(
            "identical to {} version {}",
            reg.code, reg.version
        ))),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DelmalFilter {
    /// Include this specialty's delmål besides the common ones.
    pub specialty: Option<String>,
    /// e.g. `STa`, `b`.
    pub group: Option<String>,
    /// Search in code and the Swedish and English titles.
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List the delmål of a regulation version
#[utoipa::path(
    tag = "curriculum",
    params(("id" = String, Path), DelmalFilter),
    responses(
        (status = 200, description = "Delmål in order", body = Page<Delmal>),
        (status = 404, description = "Unknown regulation version", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/regulations/{id}/delmal")]
pub async fn list_delmal(
    ctx: Ctx,
    path: web::Path<RegulationId>,
    query: web::Query<DelmalFilter>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let q = query.into_inner();
    let page = crate::http::PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let items = ctx
        .read(move |c, _| {
            catalogue::list_delmal(
                c,
                &id,
                q.specialty.as_deref(),
                q.group.as_deref(),
                q.q.as_deref(),
            )
        })
        .await?;
    // A regulation has tens of delmål: read whole, paged like every list.
    Ok(HttpResponse::Ok().json(Page::of_list(items, &page, |d| d.id.clone())?))
}

/// Add a specialty delmål
///
/// Administrators only. Only specialty delmål (STc, c) are added to an existing version;
/// changed common delmål are a new version of the regulation.
#[utoipa::path(
    tag = "curriculum",
    params(("id" = String, Path)),
    request_body(content = DelmalInput, example = json!({
        "code": "STc1", "specialty": "allmänmedicin", "group": "STc",
        "title_sv": "Allmänmedicinsk konsultation", "title_en": "The general practice consultation"
    })),
    responses(
        (status = 201, description = "Added", body = Delmal),
        (status = 422, description = "Invalid, or the code exists", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/regulations/{id}/delmal")]
pub async fn add_delmal(
    ctx: Ctx,
    path: web::Path<RegulationId>,
    body: web::Json<DelmalInput>,
) -> Result<HttpResponse, AppError> {
    require_admin(&ctx.caller)?;
    let id = path.into_inner();
    let row = body.into_inner();
    let mut added = ctx
        .write(move |c, ctx| catalogue::add_delmal(c, ctx.now, &id, &[row], "delmal", 1))
        .await?;
    let d = added
        .pop()
        .ok_or_else(|| AppError::internal("nothing added"))?;
    Ok(HttpResponse::Created().json(d))
}

/// Bulk-import specialty delmål (JSON or CSV)
///
/// Administrators only. `application/json`: an array of delmål. `text/csv`: a header
/// row `code,specialty,title_sv,title_en,description,group` (code, specialty and title_sv
/// required). Every row is checked first; any error imports nothing and all errors are
/// reported with their row numbers.
#[utoipa::path(
    tag = "curriculum",
    params(("id" = String, Path)),
    request_body(content(
        (Vec<DelmalInput> = "application/json"),
        (String = "text/csv", example = "code,specialty,title_sv\nc1,kirurgi,Kirurgisk bedömning\n")
    )),
    responses(
        (status = 201, description = "All rows imported", body = Page<Delmal>),
        (status = 422, description = "Nothing imported; every offending row listed", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/regulations/{id}/delmal/import")]
pub async fn import_delmal(
    req: HttpRequest,
    ctx: Ctx,
    path: web::Path<RegulationId>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    require_admin(&ctx.caller)?;
    let body = read_body(payload, ctx.config.max_json_body).await?;
    // CSV row numbers count the header as row 1; JSON rows count from 1.
    let (rows, prefix, first_row) = match media_type(&req).as_str() {
        "application/json" => {
            let rows: Vec<DelmalInput> = serde_json::from_slice(&body).map_err(|e| {
                AppError::Malformed(format!("the JSON does not fit the schema: {e}"))
            })?;
            (rows, "rows", 1)
        }
        "text/csv" => (catalogue::parse_csv(&body)?, "rows", 2),
        other => {
            return Err(AppError::UnsupportedMediaType(format!(
                "send application/json or text/csv, not {other:?}"
            )))
        }
    };
    if rows.is_empty() {
        return Err(AppError::validation("rows", "nothing to import"));
    }
    let id = path.into_inner();
    let items = ctx
        .write(move |c, ctx| catalogue::add_delmal(c, ctx.now, &id, &rows, prefix, first_row))
        .await?;
    Ok(HttpResponse::Created().json(Page {
        items,
        next_cursor: None,
    }))
}

// ---- Programme templates -------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTemplate {
    pub id: Option<uuid::Uuid>,
    pub organisation_id: String,
    /// The regulation version the template follows.
    pub regulation_id: String,
    #[serde(flatten)]
    pub content: TemplateContent,
}

/// Create a programme template
///
/// Administrators and directors of studies of the organisation. This is version 1.
#[utoipa::path(
    tag = "curriculum",
    request_body(content = NewTemplate, example = json!({
        "organisation_id": "…", "regulation_id": "…", "name": "BT Region Stockholm",
        "duration_months": 12, "supervision_every_days": 14,
        "placement_types": [
            {"key": "allmanmedicin", "name": "Allmänmedicin", "months": 4, "supervision_every_days": 7,
             "counts_as": ["primärvård"],
             "checklist": [{"kind": "assessment", "title": "Mini-CEX", "assessment_type": "mini_cex", "count": 2, "delmal": ["BT1"]}]}
        ],
        "programme_items": [{"kind": "course", "title": "Försäkringsmedicinsk dag", "delmal": ["BT16"]}]
    })),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    responses(
        (status = 201, description = "Version 1", body = ProgrammeTemplate),
        (status = 422, description = "Invalid content (unknown delmål, bad durations)", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/programme-templates")]
pub async fn create_template(
    ctx: Ctx,
    body: web::Json<NewTemplate>,
) -> Result<HttpResponse, AppError> {
    let b = body.into_inner();
    let t = ctx
        .write(move |c, ctx| {
            templates::create_template(
                c,
                ctx.now,
                &ctx.caller,
                b.id.map(|u| u.to_string()),
                &OrganisationId::new(b.organisation_id),
                &RegulationId::new(b.regulation_id),
                b.content,
            )
        })
        .await?;
    Ok(with_etag(StatusCode::CREATED, t.etag(), &t))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TemplateFilter {
    pub organisation_id: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List programme templates (latest versions)
#[utoipa::path(
    tag = "curriculum",
    params(TemplateFilter),
    responses((status = 200, description = "Templates", body = Page<ProgrammeTemplate>)),
    security(("bearer" = []))
)]
#[get("/programme-templates")]
pub async fn list_templates(
    ctx: Ctx,
    query: web::Query<TemplateFilter>,
) -> Result<HttpResponse, AppError> {
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let (limit, after) = (page.limit()?, page.after()?);
    let rows = ctx
        .read(move |c, _| {
            templates::list_templates(c, q.organisation_id.as_deref(), after.as_deref(), limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |t| t.id.clone())))
}

/// Get a programme template (latest version)
#[utoipa::path(
    tag = "curriculum",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Latest version", body = ProgrammeTemplate, headers(("ETag" = String))),
        (status = 404, description = "Unknown", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/programme-templates/{id}")]
pub async fn get_template(ctx: Ctx, path: web::Path<TemplateId>) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let t = ctx
        .read(move |c, _| templates::get_template(c, &id, None))
        .await?;
    Ok(with_etag(StatusCode::OK, t.etag(), &t))
}

/// List every version of a programme template
#[utoipa::path(
    tag = "curriculum",
    params(("id" = String, Path), PageParams),
    responses(
        (status = 200, description = "All versions, oldest first", body = Page<ProgrammeTemplate>),
        (status = 404, description = "Unknown", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/programme-templates/{id}/versions")]
pub async fn list_template_versions(
    ctx: Ctx,
    path: web::Path<TemplateId>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let items = ctx
        .read(move |c, _| templates::list_versions(c, &id))
        .await?;
    // Every version shares the template's id: the version number is the key.
    Ok(HttpResponse::Ok().json(Page::of_list(items, &query, |t| t.version.to_string())?))
}

/// Get one version of a programme template
#[utoipa::path(
    tag = "curriculum",
    params(("id" = String, Path), ("version" = i32, Path)),
    responses(
        (status = 200, description = "That version", body = ProgrammeTemplate),
        (status = 404, description = "Unknown", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/programme-templates/{id}/versions/{version}")]
pub async fn get_template_version(
    ctx: Ctx,
    path: web::Path<(TemplateId, i32)>,
) -> Result<HttpResponse, AppError> {
    let (id, version) = path.into_inner();
    let t = ctx
        .read(move |c, _| templates::get_template(c, &id, Some(version)))
        .await?;
    Ok(with_etag(StatusCode::OK, t.etag(), &t))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateVersionInput {
    /// Move to another regulation version; default: keep the current one.
    pub regulation_id: Option<String>,
    #[serde(flatten)]
    pub content: TemplateContent,
}

/// Edit a programme template (creates a new version)
///
/// The full new content. Trainees stay on the version they were enrolled on until an
/// administrator migrates them. Send `If-Match` with the latest version's ETag.
#[utoipa::path(
    tag = "curriculum",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of the latest version")),
    request_body = TemplateVersionInput,
    responses(
        (status = 201, description = "The new version", body = ProgrammeTemplate),
        (status = 412, description = "Someone published a newer version", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/programme-templates/{id}/versions")]
pub async fn create_template_version(
    req: HttpRequest,
    ctx: Ctx,
    path: web::Path<TemplateId>,
    body: web::Json<TemplateVersionInput>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let b = body.into_inner();
    let expected = if_match(&req);
    let t = ctx
        .write(move |c, ctx| {
            templates::new_version(
                c,
                ctx.now,
                &ctx.caller,
                &id,
                |tag| check_if_match(expected.as_deref(), tag),
                b.regulation_id.as_deref(),
                b.content,
            )
        })
        .await?;
    Ok(with_etag(StatusCode::CREATED, t.etag(), &t))
}

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_regulations)
        .service(create_regulation)
        .service(get_regulation)
        .service(list_delmal)
        .service(add_delmal)
        .service(import_delmal)
        .service(create_template)
        .service(list_templates)
        .service(get_template)
        .service(list_template_versions)
        .service(get_template_version)
        .service(create_template_version);
}
