//! `Location` of a created resource: which creating routes have one, and how it is made
//! from the created representation. The server sends it (`http::request_id_and_log`) and
//! the OpenAPI document declares it (`spec`), both from this table.

use serde_json::Value;

/// Creating operations whose new resource can be read at a URL of its own: the route
/// pattern of the POST and the pattern of the resource's URL, whose `{name}`s are the
/// created representation's fields of that name. The server sends `Location` for these
/// (a path: a reference relative to the server) and the document declares it.
pub const CREATED_AT: &[(&str, &str)] = &[
    (
        "/api/v1/activities/{id}/attachments",
        "/api/v1/attachments/{id}",
    ),
    (
        "/api/v1/activities/{id}/course-confirmation",
        "/api/v1/activities/{activity_id}/course-confirmation",
    ),
    ("/api/v1/api-clients", "/api/v1/api-clients/{client_id}"),
    (
        "/api/v1/assessments/{id}/corrections",
        "/api/v1/assessments/{id}",
    ),
    ("/api/v1/enrolments", "/api/v1/enrolments/{id}"),
    (
        "/api/v1/enrolments/{id}/activities",
        "/api/v1/activities/{id}",
    ),
    (
        "/api/v1/enrolments/{id}/assessments",
        "/api/v1/assessments/{id}",
    ),
    (
        "/api/v1/enrolments/{id}/final-assessments",
        "/api/v1/final-assessments/{id}",
    ),
    (
        "/api/v1/enrolments/{id}/final-check-ins",
        "/api/v1/final-check-ins/{id}",
    ),
    (
        "/api/v1/enrolments/{id}/group-reviews",
        "/api/v1/group-reviews/{id}",
    ),
    (
        "/api/v1/enrolments/{id}/handover-talks",
        "/api/v1/handover-talks/{id}",
    ),
    (
        "/api/v1/enrolments/{id}/summary-assessments",
        "/api/v1/summary-assessments/{id}",
    ),
    (
        "/api/v1/enrolments/{id}/supervision-sessions",
        "/api/v1/supervision-sessions/{id}",
    ),
    (
        "/api/v1/enrolments/{id}/supervisor-check-ins",
        "/api/v1/supervisor-check-ins/{id}",
    ),
    ("/api/v1/organisations", "/api/v1/organisations/{id}"),
    (
        "/api/v1/placements/{id}/evaluation",
        "/api/v1/placements/{placement_id}/evaluation",
    ),
    (
        "/api/v1/programme-templates",
        "/api/v1/programme-templates/{id}",
    ),
    (
        "/api/v1/programme-templates/{id}/versions",
        "/api/v1/programme-templates/{id}/versions/{version}",
    ),
    ("/api/v1/regulations", "/api/v1/regulations/{id}"),
    ("/api/v1/restrictions", "/api/v1/restrictions/{id}"),
    (
        "/api/v1/summary-assessments/{id}/corrections",
        "/api/v1/summary-assessments/{id}",
    ),
    ("/api/v1/transfers", "/api/v1/enrolments/{enrolment_id}"),
    (
        "/api/v1/webhook-deliveries/{id}/replay",
        "/api/v1/webhook-deliveries/{id}",
    ),
    (
        "/api/v1/webhook-subscriptions",
        "/api/v1/webhook-subscriptions/{id}",
    ),
    (
        "/api/v1/webhook-subscriptions/{id}/ping",
        "/api/v1/webhook-deliveries/{id}",
    ),
];

/// Creating operations that answer 201 without `Location`, and why: what they make has
/// no URL of its own to read it back at (yet), or is not one resource. Clients keep the
/// representation the 201 carries, or read the list named.
pub const UNLOCATED: &[(&str, &str)] = &[
    (
        "/api/v1/assessment-instruments/{instrument}/forms",
        "a new version of an organisation's form: read with `GET /assessment-instruments?organisation_id=`",
    ),
    (
        "/api/v1/enrolments/{id}/assignments",
        "part of the enrolment: no URL of its own; `GET /enrolments/{id}` lists it",
    ),
    (
        "/api/v1/enrolments/{id}/credited-service",
        "part of the enrolment: no URL of its own; `GET /enrolments/{id}` lists it",
    ),
    (
        "/api/v1/enrolments/{id}/extent-changes",
        "part of the enrolment: no URL of its own; `GET /enrolments/{id}` lists it",
    ),
    (
        "/api/v1/enrolments/{id}/leave-periods",
        "part of the enrolment: no URL of its own; `GET /enrolments/{id}` lists it",
    ),
    (
        "/api/v1/enrolments/{id}/placements",
        "part of the enrolment: no URL of its own; `GET /enrolments/{id}` lists it",
    ),
    (
        "/api/v1/enrolments/{id}/study-plan-goals",
        "no URL of its own; `GET /enrolments/{id}/study-plan-goals` lists it",
    ),
    (
        "/api/v1/imports/enrolments",
        "a batch: the answer reports each row; nothing one URL could name",
    ),
    (
        "/api/v1/imports/users",
        "a batch: the answer reports each row; nothing one URL could name",
    ),
    (
        "/api/v1/invitations",
        "read only by its secret token (`GET /auth/invitations/{token}`), which must not go in a header that proxies log",
    ),
    (
        "/api/v1/me/oidc-links",
        "no URL of its own; `GET /me/oidc-links` lists it",
    ),
    (
        "/api/v1/me/passkeys",
        "no URL of its own; `GET /me/passkeys` lists it",
    ),
    (
        "/api/v1/me/recovery-codes",
        "secrets shown once: never readable again",
    ),
    (
        "/api/v1/regulations/{id}/delmal",
        "no URL of its own; `GET /regulations/{id}/delmal` lists it",
    ),
    (
        "/api/v1/regulations/{id}/delmal/import",
        "a batch of delmål: `GET /regulations/{id}/delmal` lists them",
    ),
    (
        "/api/v1/trusted-services",
        "no URL of its own; `GET /trusted-services` lists it",
    ),
    (
        "/api/v1/xapi/account-links",
        "no URL of its own; `GET /xapi/account-links` lists it",
    ),
    (
        "/api/v1/xapi/activity-mappings",
        "no URL of its own; `GET /xapi/activity-mappings` lists it",
    ),
];

/// The URL pattern of what a POST to the route `pattern` creates, if it has one.
pub fn created_at(pattern: &str) -> Option<&'static str> {
    CREATED_AT
        .iter()
        .find(|(post, _)| *post == pattern)
        .map(|(_, at)| *at)
}

/// `template` with each `{name}` replaced by the field `name` of `created` (a string
/// or an integer made of URL-safe characters); `None` when one is missing.
pub fn location(template: &str, created: &Value) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 36);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = start + rest[start..].find('}')?;
        out.push_str(&rest[..start]);
        let name = &rest[start + 1..end];
        let value = match created.get(name)? {
            Value::String(s) => s.clone(),
            Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
            _ => return None,
        };
        let safe = !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'));
        if !safe {
            return None;
        }
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}
