//! Assessment instruments and organisations' versions of their forms.

use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::PROBLEM;
use crate::context::Ctx;
use crate::error::AppError;
use crate::http::Page;
use crate::portfolio::instruments::{self, InstrumentForm};

/// Assessment instruments and their forms
///
/// Domains, scales and context fields of Mini-CEX, DOPS, CbD, sit-in and multi-source
/// feedback, as data.
#[utoipa::path(
    tag = "assessments",
    params(FormsFor),
    responses((status = 200, description = "The forms", body = Page<InstrumentForm>)),
    security(("bearer" = []))
)]
#[get("/assessment-instruments")]
pub async fn list_instruments(
    // Signed-in callers only; the forms are the same for everyone.
    ctx: Ctx,
    query: web::Query<FormsFor>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let org = query.organisation_id.clone();
    let items = ctx
        .read(move |c, _ctx| instruments::forms_for(c, org.as_deref()))
        .await?;
    let page = crate::http::PageParams {
        limit: query.limit,
        cursor: query.cursor,
    };
    // One form per instrument: its name is the key (the cursor is opaque to clients).
    Ok(HttpResponse::Ok().json(Page::of_list(items, &page, |f| {
        format!("{:?}", f.instrument)
    })?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FormsFor {
    /// The forms as they apply in this organisation (its own or the nearest above).
    pub organisation_id: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Store an organisation's version of an assessment form
///
/// Administrators adjust a form for their region (domains, scale, labels); it applies to
/// trainees of the organisation and below. Each change is a new version.
#[utoipa::path(
    tag = "assessments",
    params(("instrument" = crate::curriculum::templates::AssessmentType, Path)),
    request_body = instruments::FormInput,
    responses(
        (status = 201, description = "The new version", body = InstrumentForm),
        (status = 403, description = "Not an administrator of the organisation", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/assessment-instruments/{instrument}/forms")]
pub async fn store_form(
    ctx: Ctx,
    path: web::Path<crate::curriculum::templates::AssessmentType>,
    body: web::Json<instruments::FormInput>,
) -> Result<HttpResponse, AppError> {
    let instrument = path.into_inner();
    let f = ctx
        .write(move |c, ctx| instruments::store(c, ctx, instrument, body.into_inner()))
        .await?;
    Ok(HttpResponse::Created().json(f))
}
