//! A person who must not do it is refused, on every restricted operation no access table
//! covered yet (issue 21, "Every caller"): administrators' integration settings (webhooks,
//! xAPI mappings, account links and statements, imports) tried by a trainee and by the
//! administrator of another region; a trainee's final check-ins, final assessments and
//! certificates tried by another trainee, the director of another care provider, or
//! someone who sees the training but has no part in that step; the vetting of an assessor
//! tried by the trainee who named them and by a supervisor who is not theirs.
//!
//! The service's rule decides between the two refusals: whoever may not know that the
//! thing exists gets 404, exactly as for an id that does not exist; whoever sees it but
//! may not do this gets 403. Each refusal is checked as the whole problem document, field
//! for field, and each test then shows that the refused request changed nothing.

use std::fmt;

use serde_json::{json, Value};

use eportfolio::integrations::clients::{SCOPE_ACTIVITIES_WRITE, SCOPE_PROGRESS_READ};

use crate::integrations::{client, token};
use crate::support::hooks::Receiver;
use crate::support::{Resp, TestApp, TestUser};

const PROBLEMS: &str = "https://eportfolio.example/problems/";
const COURSE: &str = "https://lms.regionstockholm.se/courses/forsakringsmedicin";
const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";

/// A refusal: its status and the detail of its problem document.
type Refusal = (u16, &'static str);

/// The caller may not know that the thing exists: the answer to an unknown id.
const NOT_FOUND: Refusal = (404, "No such resource, or you may not see it.");
/// Administrators' (or directors') work, asked of someone who holds neither role.
const NOT_YOUR_ROLE: Refusal = (403, "your roles do not allow this action");

/// One request, sent by different people.
struct Call {
    method: &'static str,
    path: String,
    body: Option<Value>,
    headers: &'static [(&'static str, &'static str)],
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

fn call(method: &'static str, path: impl Into<String>, body: Option<Value>) -> Call {
    Call {
        method,
        path: path.into(),
        body,
        headers: &[],
    }
}

impl Call {
    fn with_headers(self, headers: &'static [(&'static str, &'static str)]) -> Call {
        Call { headers, ..self }
    }

    fn by(&self, app: &TestApp, user: &TestUser) -> Resp {
        app.send(
            self.method,
            &self.path,
            Some(&user.access),
            self.body.as_ref(),
            self.headers,
        )
    }
}

/// Sends `c` as `user` (`who` names them in a failure) and asserts that the answer is
/// exactly the problem document of the refusal: content type, type, title, status,
/// detail, and the request id of the `X-Request-Id` header; no other field.
#[track_caller]
fn refused(app: &TestApp, who: &str, user: &TestUser, c: &Call, (status, detail): Refusal) {
    let r = c.by(app, user);
    assert_eq!(r.status, status, "{who}: {c} answered {}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{who}: {c} answered {}",
        r.text
    );
    let (kind, title) = match status {
        403 => ("forbidden", "Forbidden"),
        404 => ("not-found", "Not found"),
        other => panic!("{other} is not a refusal"),
    };
    let request_id = r
        .header("x-request-id")
        .unwrap_or_else(|| panic!("{who}: {c} answered without X-Request-Id"));
    assert_eq!(
        r.body,
        json!({"type": format!("{PROBLEMS}{kind}"), "title": title, "status": status,
               "detail": detail, "request_id": request_id}),
        "{who}: {c}"
    );
}

fn id_of(r: &Resp) -> String {
    r.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {}", r.text))
        .to_string()
}

/// The administrator of a second region (Region Skåne).
fn other_region_admin(app: &TestApp) -> TestUser {
    let email = "admin@regionskane.se";
    let invitation = app.bootstrap_admin(email, "Region Skåne");
    app.accept_with_totp(&invitation, email)
}

// ---- Integrations: a region's settings ----------------------------------------------------

/// Region Stockholm with its administrator, a care provider and an enrolled trainee, and
/// the administrator of Region Skåne.
struct Region {
    app: TestApp,
    admin: TestUser,
    region: String,
    template: String,
    trainee: TestUser,
    enrolment: String,
    other_admin: TestUser,
}

impl Region {
    fn start() -> Region {
        let app = TestApp::start();
        let (admin, region) = app.admin();
        let provider = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
        let template = app.stockholm_bt_template(&admin, &provider);
        let trainee = app.join(&admin, "bt@sll.se", "trainee", &provider);
        let enrolled = app
            .post(
                "/enrolments",
                Some(&admin.access),
                json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                       "start_date": "2026-09-01", "planned_end": "2027-08-31"}),
            )
            .expect(201);
        let enrolment = id_of(&enrolled);
        let other_admin = other_region_admin(&app);
        Region {
            app,
            admin,
            region,
            template,
            trainee,
            enrolment,
            other_admin,
        }
    }

    /// The administrator's subscription of the region to every event, delivered to a
    /// receiver on loopback; returns its id.
    fn subscription(&self, receiver: &Receiver) -> String {
        let r = self
            .app
            .post(
                "/webhook-subscriptions",
                Some(&self.admin.access),
                json!({"organisation_id": self.region, "url": receiver.url, "events": ["*"],
                       "description": "Lärplattformen"}),
            )
            .expect(201);
        id_of(&r)
    }

    /// The subscription as its administrator reads it.
    fn read_subscription(&self, id: &str) -> Value {
        self.app
            .get(
                &format!("/webhook-subscriptions/{id}"),
                Some(&self.admin.access),
            )
            .expect(200)
            .body
    }

    /// The deliveries of the subscription, as its administrator lists them.
    fn deliveries(&self, subscription: &str) -> Vec<Value> {
        let r = self
            .app
            .get(
                &format!("/webhook-subscriptions/{subscription}/deliveries"),
                Some(&self.admin.access),
            )
            .expect(200);
        r.body["items"].as_array().expect("items").clone()
    }

    /// A statement about the course by a learner nobody here knows, sent by the region's
    /// LMS: kept as `unmatched` for the administrator. Returns its id.
    fn unmatched_statement(&self) -> String {
        let (id, secret) = client(
            &self.app,
            &self.admin,
            &self.region,
            &[SCOPE_ACTIVITIES_WRITE, SCOPE_PROGRESS_READ],
        );
        let lms = token(&self.app, &id, &secret);
        let statement_id = "0b0f8f6e-2d47-4a39-9e39-0f5d7f2f1f11";
        let r = self
            .app
            .send(
                "POST",
                "/xapi/statements",
                Some(&lms),
                Some(&statement(statement_id, "okand.lakare@example.org")),
                &[("X-Experience-API-Version", "1.0.3")],
            )
            .expect(200);
        assert_eq!(r.body, json!([statement_id]), "{}", r.text);
        assert_eq!(self.statement_status(statement_id), "unmatched");
        statement_id.to_string()
    }

    /// The statement's status as the administrator reads it.
    fn statement_status(&self, id: &str) -> Value {
        self.app
            .get(&format!("/xapi/statements/{id}"), Some(&self.admin.access))
            .expect(200)
            .body["status"]
            .clone()
    }

    /// The trainee's learning activities.
    fn activities(&self) -> Vec<Value> {
        let r = self
            .app
            .get(
                &format!("/enrolments/{}/activities", self.enrolment),
                Some(&self.trainee.access),
            )
            .expect(200);
        r.body["items"].as_array().expect("items").clone()
    }

    /// An administrator's list (`/xapi/activity-mappings`, `/xapi/account-links`).
    fn listed(&self, path: &str) -> Vec<Value> {
        let r = self.app.get(path, Some(&self.admin.access)).expect(200);
        r.body["items"].as_array().expect("items").clone()
    }

    /// The region's mapping of the course to a learning activity; returns its id.
    fn mapping(&self) -> String {
        let r = self
            .app
            .post(
                "/xapi/activity-mappings",
                Some(&self.admin.access),
                json!({"organisation_id": self.region, "xapi_activity_id": COURSE, "kind": "course",
                       "title": "Försäkringsmedicinsk dag", "delmal": ["BT16"]}),
            )
            .expect(201);
        id_of(&r)
    }

    /// The trainee's LMS account, linked by the administrator; returns the link's id.
    fn link(&self) -> String {
        let r = self
            .app
            .post(
                "/xapi/account-links",
                Some(&self.admin.access),
                json!({"organisation_id": self.region, "home_page": "https://lms.regionstockholm.se",
                       "name": "u12345", "email": self.trainee.email}),
            )
            .expect(201);
        id_of(&r)
    }
}

/// An xAPI "completed" of the course by `mbox`.
fn statement(id: &str, mbox: &str) -> Value {
    json!({
        "id": id,
        "actor": {"objectType": "Agent", "name": "BT-läkare", "mbox": format!("mailto:{mbox}")},
        "verb": {"id": COMPLETED, "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": COURSE,
                   "definition": {"name": {"sv-SE": "Försäkringsmedicinsk dag"}}},
        "timestamp": "2026-11-20T13:00:00Z"
    })
}

#[test]
fn neither_a_trainee_nor_another_regions_administrator_deletes_a_webhook_subscription() {
    let w = Region::start();
    let receiver = Receiver::start(vec![200]);
    let sub = w.subscription(&receiver);
    let delete = call("DELETE", format!("/webhook-subscriptions/{sub}"), None);
    refused(&w.app, "trainee", &w.trainee, &delete, NOT_FOUND);
    refused(
        &w.app,
        "administrator of another region",
        &w.other_admin,
        &delete,
        NOT_FOUND,
    );
    assert_eq!(w.read_subscription(&sub)["active"], true);
}

#[test]
fn neither_a_trainee_nor_another_regions_administrator_redirects_or_pauses_a_webhook() {
    let w = Region::start();
    let receiver = Receiver::start(vec![200]);
    let sub = w.subscription(&receiver);
    let before = w.read_subscription(&sub);
    let elsewhere = Receiver::start(vec![200]);
    let path = format!("/webhook-subscriptions/{sub}");
    // Sending the events to an address of one's own needs an administrator at all...
    let redirect = call("PATCH", &path, Some(json!({"url": elsewhere.url})));
    refused(&w.app, "trainee", &w.trainee, &redirect, NOT_YOUR_ROLE);
    // ...and one of the subscription's organisation, to whom others do not know it.
    refused(
        &w.app,
        "administrator of another region",
        &w.other_admin,
        &redirect,
        NOT_FOUND,
    );
    let pause = call("PATCH", &path, Some(json!({"active": false})));
    refused(&w.app, "trainee", &w.trainee, &pause, NOT_FOUND);
    refused(
        &w.app,
        "administrator of another region",
        &w.other_admin,
        &pause,
        NOT_FOUND,
    );
    assert_eq!(w.read_subscription(&sub), before);
}

#[test]
fn neither_a_trainee_nor_another_regions_administrator_gets_a_new_webhook_secret() {
    let w = Region::start();
    let receiver = Receiver::start(vec![200]);
    let sub = w.subscription(&receiver);
    let before = w.read_subscription(&sub);
    let rotate = call(
        "POST",
        format!("/webhook-subscriptions/{sub}/rotate-secret"),
        Some(json!({})),
    );
    refused(&w.app, "trainee", &w.trainee, &rotate, NOT_FOUND);
    refused(
        &w.app,
        "administrator of another region",
        &w.other_admin,
        &rotate,
        NOT_FOUND,
    );
    // A rotation would have raised the version (and the ETag with it).
    assert_eq!(w.read_subscription(&sub), before);
}

#[test]
fn neither_a_trainee_nor_another_regions_administrator_pings_a_webhook() {
    let w = Region::start();
    let receiver = Receiver::start(vec![200]);
    let sub = w.subscription(&receiver);
    let ping = call(
        "POST",
        format!("/webhook-subscriptions/{sub}/ping"),
        Some(json!({})),
    );
    refused(&w.app, "trainee", &w.trainee, &ping, NOT_FOUND);
    refused(
        &w.app,
        "administrator of another region",
        &w.other_admin,
        &ping,
        NOT_FOUND,
    );
    // Deliveries are queued in the request's transaction: none was.
    assert_eq!(w.deliveries(&sub), Vec::<Value>::new());
}

#[test]
fn neither_a_trainee_nor_another_regions_administrator_reads_a_webhook_delivery() {
    let w = Region::start();
    let receiver = Receiver::start(vec![200]);
    let sub = w.subscription(&receiver);
    let delivery = w
        .app
        .post(
            &format!("/webhook-subscriptions/{sub}/ping"),
            Some(&w.admin.access),
            json!({}),
        )
        .expect(201);
    let id = id_of(&delivery);
    let read = call("GET", format!("/webhook-deliveries/{id}"), None);
    refused(&w.app, "trainee", &w.trainee, &read, NOT_FOUND);
    refused(
        &w.app,
        "administrator of another region",
        &w.other_admin,
        &read,
        NOT_FOUND,
    );
    let mine = read.by(&w.app, &w.admin).expect(200);
    assert_eq!(mine.body["id"], id.as_str(), "{}", mine.text);
}

#[test]
fn neither_a_trainee_nor_another_regions_administrator_replays_a_webhook_delivery() {
    let w = Region::start();
    let receiver = Receiver::start(vec![200]);
    let sub = w.subscription(&receiver);
    let delivery = w
        .app
        .post(
            &format!("/webhook-subscriptions/{sub}/ping"),
            Some(&w.admin.access),
            json!({}),
        )
        .expect(201);
    let id = id_of(&delivery);
    let replay = call(
        "POST",
        format!("/webhook-deliveries/{id}/replay"),
        Some(json!({})),
    );
    refused(&w.app, "trainee", &w.trainee, &replay, NOT_FOUND);
    refused(
        &w.app,
        "administrator of another region",
        &w.other_admin,
        &replay,
        NOT_FOUND,
    );
    let deliveries = w.deliveries(&sub);
    assert_eq!(deliveries.len(), 1, "only the ping: {deliveries:?}");
    assert_eq!(deliveries[0]["id"], id.as_str());
}

#[test]
fn a_trainee_does_not_import_enrolments() {
    let w = Region::start();
    let before = w
        .app
        .get("/enrolments", Some(&w.trainee.access))
        .expect(200)
        .body["items"]
        .clone();
    assert_eq!(before.as_array().map(Vec::len), Some(1), "{before}");
    // A second, part-time enrolment of their own, on the region's template.
    let import = call(
        "POST",
        "/imports/enrolments",
        Some(
            json!([{"email": w.trainee.email, "template_id": w.template, "track": "bt_standalone",
                     "start_date": "2027-09-01", "planned_end": "2028-08-31"}]),
        ),
    );
    refused(&w.app, "trainee", &w.trainee, &import, NOT_YOUR_ROLE);
    let after = w
        .app
        .get("/enrolments", Some(&w.trainee.access))
        .expect(200)
        .body["items"]
        .clone();
    assert_eq!(after, before);
}

#[test]
fn a_trainee_cannot_send_xapi_statements_crediting_themselves_a_course() {
    let w = Region::start();
    w.mapping();
    let send = call(
        "POST",
        "/xapi/statements",
        Some(statement(
            "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
            &w.trainee.email,
        )),
    )
    .with_headers(&[("X-Experience-API-Version", "1.0.3")]);
    refused(
        &w.app,
        "trainee",
        &w.trainee,
        &send,
        (
            403,
            "statements are sent by API clients (client-credentials tokens)",
        ),
    );
    assert_eq!(w.activities(), Vec::<Value>::new());
}

#[test]
fn neither_a_trainee_nor_another_regions_administrator_dismisses_a_statement() {
    let w = Region::start();
    let id = w.unmatched_statement();
    let dismiss = call(
        "POST",
        format!("/xapi/statements/{id}/dismiss"),
        Some(json!({})),
    );
    refused(&w.app, "trainee", &w.trainee, &dismiss, NOT_FOUND);
    refused(
        &w.app,
        "administrator of another region",
        &w.other_admin,
        &dismiss,
        NOT_FOUND,
    );
    assert_eq!(w.statement_status(&id), "unmatched");
}

#[test]
fn neither_a_trainee_nor_another_regions_administrator_resolves_a_statement() {
    let w = Region::start();
    let id = w.unmatched_statement();
    let resolve = call(
        "POST",
        format!("/xapi/statements/{id}/resolve"),
        Some(json!({})),
    );
    refused(&w.app, "trainee", &w.trainee, &resolve, NOT_FOUND);
    refused(
        &w.app,
        "administrator of another region",
        &w.other_admin,
        &resolve,
        NOT_FOUND,
    );
    assert_eq!(w.statement_status(&id), "unmatched");
}

#[test]
fn a_trainee_does_not_list_xapi_activity_mappings() {
    let w = Region::start();
    let mapping = w.mapping();
    let list = call("GET", "/xapi/activity-mappings", None);
    refused(&w.app, "trainee", &w.trainee, &list, NOT_YOUR_ROLE);
    // Another region's administrator lists their own: none.
    let theirs = list.by(&w.app, &w.other_admin).expect(200);
    assert_eq!(theirs.body["items"], json!([]), "{}", theirs.text);
    let mine = w.listed("/xapi/activity-mappings");
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["id"], mapping.as_str());
}

#[test]
fn neither_a_trainee_nor_another_regions_administrator_deletes_an_activity_mapping() {
    let w = Region::start();
    let mapping = w.mapping();
    let delete = call("DELETE", format!("/xapi/activity-mappings/{mapping}"), None);
    refused(&w.app, "trainee", &w.trainee, &delete, NOT_FOUND);
    refused(
        &w.app,
        "administrator of another region",
        &w.other_admin,
        &delete,
        NOT_FOUND,
    );
    let listed = w.listed("/xapi/activity-mappings");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], mapping.as_str());
}

#[test]
fn a_trainee_does_not_list_xapi_account_links() {
    let w = Region::start();
    let link = w.link();
    let list = call("GET", "/xapi/account-links", None);
    refused(&w.app, "trainee", &w.trainee, &list, NOT_YOUR_ROLE);
    let theirs = list.by(&w.app, &w.other_admin).expect(200);
    assert_eq!(theirs.body["items"], json!([]), "{}", theirs.text);
    let mine = w.listed("/xapi/account-links");
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["id"], link.as_str());
}

#[test]
fn a_trainee_does_not_link_an_lms_account_to_themselves() {
    let w = Region::start();
    // Statements of another person's LMS account would become the trainee's activities.
    let link = call(
        "POST",
        "/xapi/account-links",
        Some(
            json!({"organisation_id": w.region, "home_page": "https://lms.regionstockholm.se",
                    "name": "u99999", "user_id": w.trainee.id}),
        ),
    );
    refused(&w.app, "trainee", &w.trainee, &link, NOT_YOUR_ROLE);
    assert_eq!(w.listed("/xapi/account-links"), Vec::<Value>::new());
}

#[test]
fn neither_a_trainee_nor_another_regions_administrator_deletes_an_account_link() {
    let w = Region::start();
    let link = w.link();
    let delete = call("DELETE", format!("/xapi/account-links/{link}"), None);
    refused(&w.app, "trainee", &w.trainee, &delete, NOT_FOUND);
    refused(
        &w.app,
        "administrator of another region",
        &w.other_admin,
        &delete,
        NOT_FOUND,
    );
    let listed = w.listed("/xapi/account-links");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], link.as_str());
}

// ---- A trainee's final year ----------------------------------------------------------------

/// T's training at care provider A with everyone around it: T's main supervisor and
/// assigned external assessor, A's director of studies, another trainee U of A with a
/// training of their own (supervised by another supervisor of A), and the director of
/// studies of another care provider B in the same region.
struct Training {
    app: TestApp,
    director_a: TestUser,
    director_b: TestUser,
    trainee: TestUser,
    other_trainee: TestUser,
    main: TestUser,
    unrelated: TestUser,
    assessor: TestUser,
    enrolment: String,
}

impl Training {
    fn start() -> Training {
        let app = TestApp::start();
        let (admin, region) = app.admin();
        let a = app.create_org(&admin, "care_provider", "Danderyds sjukhus", Some(&region));
        let b = app.create_org(
            &admin,
            "care_provider",
            "Karolinska Universitetssjukhuset",
            Some(&region),
        );
        let director_a = app.join(
            &admin,
            "studierektor@danderyd.example",
            "director_of_studies",
            &a,
        );
        let director_b = app.join(
            &admin,
            "studierektor@karolinska.example",
            "director_of_studies",
            &b,
        );
        let template = app.stockholm_bt_template(&director_a, &a);
        let trainee = app.join(&director_a, "bt.lakare@danderyd.example", "trainee", &a);
        let other_trainee = app.join(&director_a, "annan.bt@danderyd.example", "trainee", &a);
        let main = app.join(&director_a, "hhl@danderyd.example", "supervisor", &a);
        let unrelated = app.join(&director_a, "annan.hhl@danderyd.example", "supervisor", &a);
        let assessor = app.join(
            &director_a,
            "extern.bedomare@danderyd.example",
            "external_assessor",
            &a,
        );
        let enrol = |who: &TestUser, supervisor: &TestUser| {
            let r = app
                .post(
                    "/enrolments",
                    Some(&director_a.access),
                    json!({"trainee_id": who.id, "template_id": template, "track": "bt_standalone",
                           "start_date": "2025-12-01", "planned_end": "2026-11-30",
                           "main_supervisor_id": supervisor.id}),
                )
                .expect(201);
            id_of(&r)
        };
        let enrolment = enrol(&trainee, &main);
        enrol(&other_trainee, &unrelated);
        app.post(
            &format!("/enrolments/{enrolment}/assignments"),
            Some(&director_a.access),
            json!({"user_id": assessor.id, "role": "external_assessor"}),
        )
        .expect(201);
        Training {
            app,
            director_a,
            director_b,
            trainee,
            other_trainee,
            main,
            unrelated,
            assessor,
            enrolment,
        }
    }

    /// The final check-in T records (confirmed by T, not yet by the main supervisor).
    fn final_check_in(&self) -> String {
        let r = self
            .app
            .post(
                &format!("/enrolments/{}/final-check-ins", self.enrolment),
                Some(&self.trainee.access),
                json!({"held_on": "2026-11-20", "notes": "Alla delmål genomgångna inför slutbedömningen.",
                       "agreed_actions": "Portföljen till extern bedömare."}),
            )
            .expect(201);
        id_of(&r)
    }

    /// The final check-in as T reads it.
    fn read_check_in(&self, id: &str) -> Value {
        self.app
            .get(
                &format!("/final-check-ins/{id}"),
                Some(&self.trainee.access),
            )
            .expect(200)
            .body
    }

    /// The final assessment the external assessor opens, every delmål judged achieved and
    /// the decision taken, but nobody has signed.
    fn final_assessment(&self) -> String {
        let achieved: Vec<Value> = (1..=18)
            .map(|n| json!({"code": format!("BT{n}"), "judgement": "achieved"}))
            .collect();
        let r = self
            .app
            .post(
                &format!("/enrolments/{}/final-assessments", self.enrolment),
                Some(&self.assessor.access),
                json!({"mode": "external_assessor", "judgements": achieved, "decision": "achieved"}),
            )
            .expect(201);
        id_of(&r)
    }

    /// The final assessment as T reads it.
    fn read_final_assessment(&self, id: &str) -> Value {
        self.app
            .get(
                &format!("/final-assessments/{id}"),
                Some(&self.trainee.access),
            )
            .expect(200)
            .body
    }

    /// A final assessment decided as achieved: the final check-in confirmed by T and the
    /// main supervisor, then signed by the assessor and the main supervisor.
    fn decided_final_assessment(&self) -> String {
        let fa = self.final_assessment();
        let check_in = self.final_check_in();
        self.app
            .post(
                &format!("/final-check-ins/{check_in}/confirm"),
                Some(&self.main.access),
                json!({}),
            )
            .expect(200);
        let sign = format!("/final-assessments/{fa}/sign");
        self.app
            .post(&sign, Some(&self.assessor.access), json!({}))
            .expect(200);
        let decided = self
            .app
            .post(&sign, Some(&self.main.access), json!({}))
            .expect(200);
        assert_eq!(decided.body["status"], "decided", "{}", decided.text);
        fa
    }
}

#[test]
fn another_trainee_and_another_providers_director_do_not_list_final_assessments() {
    let t = Training::start();
    let fa = t.final_assessment();
    let list = call(
        "GET",
        format!("/enrolments/{}/final-assessments", t.enrolment),
        None,
    );
    refused(&t.app, "other trainee", &t.other_trainee, &list, NOT_FOUND);
    refused(
        &t.app,
        "director of another care provider",
        &t.director_b,
        &list,
        NOT_FOUND,
    );
    let own = list.by(&t.app, &t.trainee).expect(200);
    let items = own.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", own.text);
    assert_eq!(items[0]["id"], fa.as_str());
}

#[test]
fn another_providers_director_and_an_unrelated_supervisor_do_not_list_final_check_ins() {
    let t = Training::start();
    let check_in = t.final_check_in();
    let list = call(
        "GET",
        format!("/enrolments/{}/final-check-ins", t.enrolment),
        None,
    );
    refused(
        &t.app,
        "director of another care provider",
        &t.director_b,
        &list,
        NOT_FOUND,
    );
    refused(
        &t.app,
        "supervisor of another trainee",
        &t.unrelated,
        &list,
        NOT_FOUND,
    );
    let theirs = list.by(&t.app, &t.main).expect(200);
    let items = theirs.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", theirs.text);
    assert_eq!(items[0]["id"], check_in.as_str());
}

#[test]
fn an_unrelated_supervisor_and_another_providers_director_do_not_read_a_final_check_in() {
    let t = Training::start();
    let check_in = t.final_check_in();
    let read = call("GET", format!("/final-check-ins/{check_in}"), None);
    refused(
        &t.app,
        "supervisor of another trainee",
        &t.unrelated,
        &read,
        NOT_FOUND,
    );
    refused(
        &t.app,
        "director of another care provider",
        &t.director_b,
        &read,
        NOT_FOUND,
    );
    let theirs = read.by(&t.app, &t.main).expect(200);
    assert_eq!(theirs.body["id"], check_in.as_str(), "{}", theirs.text);
}

#[test]
fn only_the_trainee_and_the_main_supervisor_record_the_final_check_in() {
    let t = Training::start();
    let record = call(
        "POST",
        format!("/enrolments/{}/final-check-ins", t.enrolment),
        Some(json!({"held_on": "2026-11-20", "notes": "Genomgång av alla delmål."})),
    );
    let only_them = (
        403,
        "the trainee or their main supervisor records the final check-in",
    );
    // They see the training, but the check-in is the trainee's and the main supervisor's.
    refused(&t.app, "external assessor", &t.assessor, &record, only_them);
    refused(
        &t.app,
        "director of studies",
        &t.director_a,
        &record,
        only_them,
    );
    refused(
        &t.app,
        "director of another care provider",
        &t.director_b,
        &record,
        NOT_FOUND,
    );
    let list = t
        .app
        .get(
            &format!("/enrolments/{}/final-check-ins", t.enrolment),
            Some(&t.trainee.access),
        )
        .expect(200);
    assert_eq!(list.body["items"], json!([]), "{}", list.text);
}

#[test]
fn the_director_and_another_trainee_do_not_edit_a_final_check_in() {
    let t = Training::start();
    let check_in = t.final_check_in();
    let before = t.read_check_in(&check_in);
    let edit = call(
        "PATCH",
        format!("/final-check-ins/{check_in}"),
        Some(json!({"held_on": "2026-11-20", "notes": "Allt klart, inga synpunkter."})),
    );
    refused(
        &t.app,
        "director of studies",
        &t.director_a,
        &edit,
        (403, "only participants edit a talk"),
    );
    refused(&t.app, "other trainee", &t.other_trainee, &edit, NOT_FOUND);
    assert_eq!(t.read_check_in(&check_in), before);
}

#[test]
fn the_director_and_the_assessor_do_not_confirm_a_final_check_in_for_the_main_supervisor() {
    let t = Training::start();
    let check_in = t.final_check_in();
    let before = t.read_check_in(&check_in);
    // The final assessment waits for this confirmation: nobody gives it for them.
    let confirm = call(
        "POST",
        format!("/final-check-ins/{check_in}/confirm"),
        Some(json!({})),
    );
    let participants_only = (403, "only participants confirm a talk");
    refused(
        &t.app,
        "director of studies",
        &t.director_a,
        &confirm,
        participants_only,
    );
    refused(
        &t.app,
        "external assessor",
        &t.assessor,
        &confirm,
        participants_only,
    );
    refused(
        &t.app,
        "director of another care provider",
        &t.director_b,
        &confirm,
        NOT_FOUND,
    );
    assert_eq!(t.read_check_in(&check_in), before);
}

#[test]
fn the_trainee_and_another_providers_director_do_not_edit_the_final_assessment() {
    let t = Training::start();
    let fa = t.final_assessment();
    let before = t.read_final_assessment(&fa);
    let edit = call(
        "PATCH",
        format!("/final-assessments/{fa}"),
        Some(json!({"rationale": "Samstämmiga underlag från alla placeringar."})),
    );
    // The trainee reads their final assessment but never decides it.
    refused(
        &t.app,
        "trainee",
        &t.trainee,
        &edit,
        (403, "only those who decide edit the final assessment"),
    );
    refused(
        &t.app,
        "director of another care provider",
        &t.director_b,
        &edit,
        NOT_FOUND,
    );
    assert_eq!(t.read_final_assessment(&fa), before);
}

#[test]
fn another_providers_director_and_another_trainee_do_not_list_certificates() {
    let t = Training::start();
    let fa = t.decided_final_assessment();
    let list = call("GET", format!("/final-assessments/{fa}/certificates"), None);
    refused(
        &t.app,
        "director of another care provider",
        &t.director_b,
        &list,
        NOT_FOUND,
    );
    refused(&t.app, "other trainee", &t.other_trainee, &list, NOT_FOUND);
    let own = list.by(&t.app, &t.trainee).expect(200);
    let keys: Vec<&str> = own.body["items"]
        .as_array()
        .expect("drafts")
        .iter()
        .filter_map(|d| d["key"].as_str())
        .collect();
    assert!(keys.contains(&"baskompetens"), "{}", own.text);
}

#[test]
fn another_trainee_and_another_providers_director_do_not_get_a_certificate() {
    let t = Training::start();
    let fa = t.decided_final_assessment();
    let path = format!("/final-assessments/{fa}/certificates/baskompetens");
    let as_json = call("GET", &path, None);
    let as_pdf = call("GET", &path, None).with_headers(&[("Accept", "application/pdf")]);
    for c in [&as_json, &as_pdf] {
        refused(&t.app, "other trainee", &t.other_trainee, c, NOT_FOUND);
        refused(
            &t.app,
            "director of another care provider",
            &t.director_b,
            c,
            NOT_FOUND,
        );
    }
    let own = as_pdf.by(&t.app, &t.trainee).expect(200);
    assert_eq!(own.header("content-type"), Some("application/pdf"));
}

#[test]
fn the_trainee_who_named_an_assessor_and_an_unrelated_supervisor_do_not_decline_them() {
    let t = Training::start();
    let email = "narakut.lakare@hotmail.com";
    let asked = t
        .app
        .post(
            &format!("/enrolments/{}/assessments", t.enrolment),
            Some(&t.trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-11-20", "assessor_email": email,
                   "assessor_name": "Nora Akut", "assessor_workplace": "Akutkliniken"}),
        )
        .expect(201);
    assert_eq!(asked.body["status"], "awaiting_vetting", "{}", asked.text);
    let pending = |who: &TestUser| -> Vec<Value> {
        let r = t
            .app
            .get("/external-assessors", Some(&who.access))
            .expect(200);
        r.body["items"].as_array().expect("items").clone()
    };
    let vetting = pending(&t.main);
    assert_eq!(vetting.len(), 1, "{vetting:?}");
    assert_eq!(vetting[0]["email"], email);
    let id = vetting[0]["id"].as_str().expect("id").to_string();
    // The list is the caller's to vet: empty for those who may not (no refusal: a
    // filtered list, like every list here).
    assert_eq!(pending(&t.trainee), Vec::<Value>::new());
    assert_eq!(pending(&t.unrelated), Vec::<Value>::new());
    assert_eq!(pending(&t.director_b), Vec::<Value>::new());

    let decline = call(
        "POST",
        format!("/external-assessors/{id}/decline"),
        Some(json!({})),
    );
    refused(&t.app, "trainee", &t.trainee, &decline, NOT_FOUND);
    refused(
        &t.app,
        "supervisor of another trainee",
        &t.unrelated,
        &decline,
        NOT_FOUND,
    );
    refused(
        &t.app,
        "director of another care provider",
        &t.director_b,
        &decline,
        NOT_FOUND,
    );
    assert_eq!(pending(&t.main), vetting);
}
