//! Assessment instruments and organisations' versions of their forms.

use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::PROBLEM;
use crate::app::AppState;
use crate::auth::principal::Principal;
use crate::db;
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
    state: web::Data<AppState>,
    _me: Principal,
    query: web::Query<FormsFor>,
) -> Result<HttpResponse, AppError> {
    let org = query.into_inner().organisation_id;
    let items = db::run(&state.pool, move |c| {
        instruments::forms_for(c, org.as_deref())
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: None,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FormsFor {
    /// The forms as they apply in this organisation (its own or the nearest above).
    pub organisation_id: Option<String>,
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
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<crate::curriculum::templates::AssessmentType>,
    body: web::Json<instruments::FormInput>,
) -> Result<HttpResponse, AppError> {
    let instrument = path.into_inner();
    let now = state.clock.now();
    let f = db::write(&state.pool, move |c| {
        instruments::store(c, now, &me, instrument, body.into_inner())
    })
    .await?;
    Ok(HttpResponse::Created().json(f))
}
