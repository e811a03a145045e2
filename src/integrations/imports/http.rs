//! HTTP handlers of bulk imports.

use actix_web::{post, web, HttpRequest, HttpResponse};

use crate::app::AppState;
use crate::context::Ctx;
use crate::error::{AppError, Problem};
use crate::http::{media_type, read_body};
use crate::integrations::imports;
use crate::integrations::imports::{
    EnrolmentImportResult, EnrolmentImportRow, UserImportResult, UserImportRow,
};
use crate::integrations::shared::PROBLEM;

/// Import people (a new cohort)
///
/// Administrators (and directors of studies for trainees, supervisors and external
/// assessors). `application/json`: an array of rows. `text/csv`: header
/// `email,display_name,role,organisation_id` (role defaults to `trainee`). Every row is
/// checked first; any error imports nothing and all errors are listed by row number.
/// Each new person gets an invitation mail; enrolments can name them at once.
#[utoipa::path(
    tag = "integrations",
    request_body(content(
        (Vec<UserImportRow> = "application/json"),
        (String = "text/csv", example = "email,display_name,role,organisation_id\nny.bt@regionstockholm.se,Ny BT-läkare,trainee,…\n")
    )),
    responses(
        (status = 201, description = "All rows imported", body = UserImportResult),
        (status = 422, description = "Nothing imported; every offending row listed", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/imports/users")]
pub async fn import_users(
    state: web::Data<AppState>,
    ctx: Ctx,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body = read_body(payload, ctx.config.max_json_body).await?;
    let (rows, first) = imports::rows_of(&media_type(&req), &body, &[])?;
    crate::privacy::guard::screen_import_rows(&rows, ctx.today())?;
    let items = ctx
        .write(move |c, ctx| {
            let (items, mails) = imports::import_users(c, ctx, rows, first)?;
            crate::outbox::enqueue(c, ctx.keyring()?, ctx.now, &mails)?;
            Ok(items)
        })
        .await?;
    // The invitations are queued in the import's transaction; the outbox sends them now.
    state.outbox.wake();
    Ok(HttpResponse::Created().json(UserImportResult { items }))
}

/// Import enrolments (a new cohort)
///
/// Administrators and directors of studies of the templates' organisations. Trainees and
/// main supervisors by e-mail (import the people first). `application/json`: an array of
/// rows (placements allowed). `text/csv`: header
/// `email,template_id,template_version,track,start_date,planned_end,extent_percent,main_supervisor_email`.
/// Each row gets the checks of `POST /enrolments`; any error imports nothing.
#[utoipa::path(
    tag = "integrations",
    request_body(content(
        (Vec<EnrolmentImportRow> = "application/json"),
        (String = "text/csv", example = "email,template_id,track,start_date,planned_end\nny.bt@regionstockholm.se,…,bt_standalone,2027-09-01,2028-08-31\n")
    )),
    responses(
        (status = 201, description = "All rows imported", body = EnrolmentImportResult),
        (status = 422, description = "Nothing imported; every offending row listed", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/imports/enrolments")]
pub async fn import_enrolments(
    ctx: Ctx,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body = read_body(payload, ctx.config.max_json_body).await?;
    let (rows, first) = imports::rows_of(
        &media_type(&req),
        &body,
        &["template_version", "extent_percent"],
    )?;
    crate::privacy::guard::screen_import_rows(&rows, ctx.today())?;
    let items = ctx
        .write(move |c, ctx| imports::import_enrolments(c, ctx, rows, first))
        .await?;
    Ok(HttpResponse::Created().json(EnrolmentImportResult { items }))
}
