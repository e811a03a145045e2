//! The portfolio's HTTP handlers, one file per sub-resource: parse, authorise, call the
//! domain functions of `crate::portfolio`, map the answer. Shared here: the `If-None-Match`
//! check and the route table.

mod activities;
mod assessments;
mod attachments;
mod course_confirmation;
mod instruments;
mod signing_links;
mod summaries;
mod talks;
mod vetting;

use actix_web::http::header;
use actix_web::HttpRequest;

pub(crate) const PROBLEM: &str = "application/problem+json";

/// `If-None-Match` naming the current ETag: the client's copy is current.
pub(crate) fn not_modified(req: &HttpRequest, tag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
}

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(activities::create_activity)
        .service(activities::list_activities)
        .service(activities::get_activity)
        .service(activities::patch_activity)
        .service(activities::delete_activity)
        .service(attachments::upload_attachment)
        .service(attachments::download_attachment)
        .service(attachments::delete_attachment)
        .service(instruments::list_instruments)
        .service(instruments::store_form)
        .service(assessments::create_assessment)
        .service(assessments::list_assessments)
        .service(assessments::get_assessment)
        .service(assessments::patch_assessment)
        .service(assessments::request_signature)
        .service(assessments::sign_assessment)
        .service(assessments::decline_assessment)
        .service(assessments::correct_assessment)
        .service(assessments::delete_assessment)
        .service(assessments::signature_queue)
        .service(talks::create_supervision_session)
        .service(talks::list_supervision_sessions)
        .service(talks::get_supervision_session)
        .service(talks::patch_supervision_session)
        .service(talks::confirm_supervision_session)
        .service(talks::create_handover_talk)
        .service(talks::list_handover_talks)
        .service(talks::get_handover_talk)
        .service(talks::patch_handover_talk)
        .service(talks::confirm_handover_talk)
        .service(summaries::create_summary)
        .service(summaries::list_summaries)
        .service(summaries::get_summary)
        .service(summaries::patch_summary)
        .service(summaries::sign_summary)
        .service(talks::create_final_check_in)
        .service(talks::list_final_check_ins)
        .service(talks::get_final_check_in)
        .service(talks::patch_final_check_in)
        .service(talks::confirm_final_check_in)
        .service(talks::create_supervisor_check_in)
        .service(talks::list_supervisor_check_ins)
        .service(talks::get_supervisor_check_in)
        .service(talks::confirm_supervisor_check_in)
        .service(summaries::correct_summary)
        .service(signing_links::open_signing_link)
        .service(signing_links::sign_by_link)
        .service(signing_links::decline_by_link)
        .service(assessments::co_sign)
        .service(vetting::list_external_assessors)
        .service(vetting::approve_external_assessor)
        .service(vetting::put_external_assessor_qualifications)
        .service(vetting::decline_external_assessor)
        .service(course_confirmation::request_course_confirmation)
        .service(course_confirmation::get_course_confirmation)
        .service(course_confirmation::open_course_confirmation_link)
        .service(course_confirmation::confirm_course);
}
