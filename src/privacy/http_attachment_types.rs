//! The HTTP handlers of a region's accepted attachment types (the export,
//! `GET /me/export`, is the feature `data_export`).

use actix_web::http::StatusCode;
use actix_web::{get, put, web, HttpRequest, HttpResponse};

use super::attachment_types::{self, AcceptedAttachmentTypes, AttachmentTypesChange};
use crate::context::Ctx;
use crate::error::AppError;
use crate::http::{check_if_match, if_match, with_etag};
use crate::ids::OrganisationId;

const PROBLEM: &str = "application/problem+json";

/// A region's accepted attachment types
///
/// For the region's administrators. Until they choose, a region accepts PDF only.
#[utoipa::path(
    tag = "organisations",
    params(("id" = String, Path, description = "The region")),
    responses(
        (status = 200, description = "What the region accepts", body = AcceptedAttachmentTypes, headers(("ETag" = String))),
        (status = 403, description = "Not an administrator of the region", body = crate::error::Problem, content_type = PROBLEM),
        (status = 404, description = "Unknown organisation", body = crate::error::Problem, content_type = PROBLEM),
        (status = 422, description = "Not a region (a care provider or unit)", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/organisations/{id}/attachment-types")]
pub async fn get_attachment_types(
    ctx: Ctx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = OrganisationId::from(path.into_inner());
    let t = ctx
        .read(move |c, ctx| {
            ctx.caller.require_person()?;
            attachment_types::get(c, ctx, &id)
        })
        .await?;
    Ok(with_etag(StatusCode::OK, t.etag(), &t))
}

/// Set a region's accepted attachment types
///
/// For the region's administrators. Each type must be one the service accepts at all
/// (`available`, from `ATTACHMENT_TYPES`). Photos (`image/jpeg`, `image/png`,
/// `image/heic`) are opt-in: a photo is the easiest way to carry a patient record in.
/// Uploads of other types are refused with 415 naming the accepted ones; the content
/// of an upload is checked, not only its declared type. Audited.
#[utoipa::path(
    tag = "organisations",
    params(("id" = String, Path, description = "The region"), ("If-Match" = Option<String>, Header, description = "ETag of the version you edited")),
    request_body = AttachmentTypesChange,
    responses(
        (status = 200, description = "What the region accepts now", body = AcceptedAttachmentTypes, headers(("ETag" = String))),
        (status = 403, description = "Not an administrator of the region", body = crate::error::Problem, content_type = PROBLEM),
        (status = 404, description = "Unknown organisation", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Changed at the same moment by someone else", body = crate::error::Problem, content_type = PROBLEM),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = PROBLEM),
        (status = 422, description = "A type the service does not accept, or not a region", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[put("/organisations/{id}/attachment-types")]
pub async fn put_attachment_types(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<AttachmentTypesChange>,
) -> Result<HttpResponse, AppError> {
    let id = OrganisationId::from(path.into_inner());
    let expected = if_match(&req);
    let body = body.into_inner();
    let t = ctx
        .write(move |c, ctx| {
            ctx.caller.require_person()?;
            attachment_types::set(
                c,
                ctx,
                &id,
                |tag| check_if_match(expected.as_deref(), tag),
                body,
            )
        })
        .await?;
    Ok(with_etag(StatusCode::OK, t.etag(), &t))
}

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_attachment_types)
        .service(put_attachment_types);
}
