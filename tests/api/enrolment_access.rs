//! Who may do what with the curriculum and with a trainee's training plan: every
//! endpoint is refused to the roles that must not use it, the way a BT programme at a
//! care provider is run (director of studies, main supervisor, trainee, assessor).

use serde_json::{json, Value};

use eportfolio::integrations::clients::{
    SCOPE_ACTIVITIES_WRITE, SCOPE_CATALOG_READ, SCOPE_PROGRESS_READ,
};

use crate::integrations::{client, token};
use crate::support::{stockholm_bt, Resp, TestApp, TestUser, PASSWORD};

const PROBLEMS: &str = "https://eportfolio.example/problems/";

/// One request, repeated with different callers.
struct Call {
    method: &'static str,
    path: String,
    body: Option<Value>,
}

fn call(method: &'static str, path: impl Into<String>, body: Option<Value>) -> Call {
    Call {
        method,
        path: path.into(),
        body,
    }
}

impl Call {
    fn by(&self, app: &TestApp, user: Option<&TestUser>) -> Resp {
        self.with(app, user.map(|u| u.access.as_str()))
    }

    /// Sends the request with `token` as the bearer token (a person's or an API client's).
    fn with(&self, app: &TestApp, token: Option<&str>) -> Resp {
        app.send(self.method, &self.path, token, self.body.as_ref(), &[])
    }
}

/// A caller from outside the trainee's care provider, or an API client, with the
/// refusal each must get.
struct Outsider {
    who: &'static str,
    token: String,
    /// The answer to a change of the plan or the study plan: a person with no part in it
    /// is not told it exists; an API client is refused every write, which is for people.
    write: (u16, &'static str),
    /// The answer to a read of the enrolment that API clients with `progress:read` may
    /// make: the client without the scope is refused for that, the others get 404.
    read: (u16, &'static str),
}

/// Like [`refused`], for an [`Outsider`]'s token.
#[track_caller]
fn refused_outsider(app: &TestApp, o: &Outsider, c: &Call, (status, kind): (u16, &str)) -> Resp {
    let r = c.with(app, Some(&o.token));
    assert_eq!(
        (r.status, r.body["type"].as_str().unwrap_or("").to_string()),
        (status, format!("{PROBLEMS}{kind}")),
        "{}: {} {} answered {}",
        o.who,
        c.method,
        c.path,
        r.text
    );
    if kind == "insufficient-scope" {
        let challenge = r.header("www-authenticate").unwrap_or("");
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{}: {} {} challenged with {challenge:?}",
            o.who,
            c.method,
            c.path
        );
    }
    r.expect_problem(status, kind)
}

/// Sends `c` as `user` and asserts the refusal, naming the caller and the request when it
/// is something else.
#[track_caller]
fn refused(
    app: &TestApp,
    who: &str,
    user: Option<&TestUser>,
    c: &Call,
    status: u16,
    kind: &str,
) -> Resp {
    let r = c.by(app, user);
    assert_eq!(
        (r.status, r.body["type"].as_str().unwrap_or("").to_string()),
        (status, format!("{PROBLEMS}{kind}")),
        "{who}: {} {} answered {}",
        c.method,
        c.path,
        r.text
    );
    r.expect_problem(status, kind)
}

/// Sends `c` as `user` and asserts it succeeds with `status`.
#[track_caller]
fn allowed(app: &TestApp, who: &str, user: &TestUser, c: &Call, status: u16) -> Resp {
    let r = c.by(app, Some(user));
    assert_eq!(
        r.status, status,
        "{who}: {} {} answered {}",
        c.method, c.path, r.text
    );
    r
}

/// `GET /enrolments/{id}`.
fn open(enrolment: &str) -> Call {
    call("GET", format!("/enrolments/{enrolment}"), None)
}

fn ids(page: &Resp) -> Vec<String> {
    page.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {}", page.text))
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect()
}

/// A BT programme at Danderyds sjukhus: the region's administrator, the care provider's
/// director of studies, two supervisors at a health centre, two trainees and an external
/// assessor; one trainee enrolled on the Stockholm BT template with supervisor A as main
/// supervisor and a first placement in general practice.
struct Programme {
    app: TestApp,
    admin: TestUser,
    region: String,
    provider: String,
    unit: String,
    director: TestUser,
    supervisor_a: TestUser,
    supervisor_b: TestUser,
    trainee: TestUser,
    other_trainee: TestUser,
    assessor: TestUser,
    regulation: String,
    template: String,
    enrolment: String,
    placement: String,
    main_assignment: String,
}

impl Programme {
    fn start() -> Programme {
        let app = TestApp::start();
        let (admin, region) = app.admin();
        let provider = app.create_org(&admin, "care_provider", "Danderyds sjukhus", Some(&region));
        let unit = app.create_org(&admin, "unit", "Vårdcentralen Mörby", Some(&provider));
        let director = app.join(
            &admin,
            "studierektor@danderyd.example",
            "director_of_studies",
            &provider,
        );
        let supervisor_a = app.join(
            &director,
            "handledare.a@danderyd.example",
            "supervisor",
            &unit,
        );
        let supervisor_b = app.join(
            &director,
            "handledare.b@danderyd.example",
            "supervisor",
            &unit,
        );
        let trainee = app.join(&director, "bt.lakare@danderyd.example", "trainee", &unit);
        let other_trainee = app.join(&director, "annan.bt@danderyd.example", "trainee", &unit);
        let assessor = app.join(
            &director,
            "extern.bedomare@danderyd.example",
            "external_assessor",
            &provider,
        );
        let regulation = app.regulation_id(&director, "bt-2021");
        let template = app
            .post(
                "/programme-templates",
                Some(&director.access),
                stockholm_bt(&provider, &regulation),
            )
            .expect(201)
            .body["id"]
            .as_str()
            .expect("template id")
            .to_string();
        let enrolled = app
            .post(
                "/enrolments",
                Some(&director.access),
                json!({
                    "trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                    "start_date": "2026-09-01", "planned_end": "2027-08-31",
                    "main_supervisor_id": supervisor_a.id,
                    "placements": [{"placement_type": "allmanmedicin", "start_date": "2026-09-01",
                                    "end_date": "2026-12-31", "unit_id": unit}]
                }),
            )
            .expect(201);
        let e = &enrolled.body;
        assert_eq!(e["trainee_id"], trainee.id.as_str());
        assert_eq!(e["organisation_id"], provider.as_str());
        let main = &e["assignments"][0];
        assert_eq!(main["role"], "main_supervisor");
        assert_eq!(main["user_id"], supervisor_a.id.as_str());
        assert_eq!(main["active"], true);
        let placement = &e["placements"][0];
        assert_eq!(placement["placement_type"], "allmanmedicin");
        Programme {
            enrolment: e["id"].as_str().expect("enrolment id").to_string(),
            placement: placement["id"].as_str().expect("placement id").to_string(),
            main_assignment: main["id"].as_str().expect("assignment id").to_string(),
            app,
            admin,
            region,
            provider,
            unit,
            director,
            supervisor_a,
            supervisor_b,
            trainee,
            other_trainee,
            assessor,
            regulation,
            template,
        }
    }

    /// The enrolment as the director reads it.
    fn enrolment(&self) -> Resp {
        self.app
            .get(
                &format!("/enrolments/{}", self.enrolment),
                Some(&self.director.access),
            )
            .expect(200)
    }

    fn changes(&self) -> usize {
        self.app
            .get(
                &format!("/enrolments/{}/changes?limit=100", self.enrolment),
                Some(&self.director.access),
            )
            .expect(200)
            .body["items"]
            .as_array()
            .expect("items")
            .len()
    }

    /// The signed-in administrator of Region Skåne, a region of its own.
    fn other_region_admin(&self) -> TestUser {
        let email = "admin@regionskane.example";
        let token = self.app.bootstrap_admin(email, "Region Skåne");
        self.app.accept_with_totp(&token, email)
    }

    /// Two API clients: one of the trainee's care provider holding every scope but
    /// `progress:read`, and one of another care provider (created here) holding them all.
    fn clients(&self) -> Vec<Outsider> {
        let app = &self.app;
        let all_but_progress = [SCOPE_CATALOG_READ, SCOPE_ACTIVITIES_WRITE];
        let (id, secret) = client(app, &self.admin, &self.provider, &all_but_progress);
        let without_scope = token(app, &id, &secret);
        let elsewhere = app.create_org(
            &self.admin,
            "care_provider",
            "Södersjukhuset",
            Some(&self.region),
        );
        let every_scope = [
            SCOPE_PROGRESS_READ,
            SCOPE_CATALOG_READ,
            SCOPE_ACTIVITIES_WRITE,
        ];
        let (id, secret) = client(app, &self.admin, &elsewhere, &every_scope);
        let other_org = token(app, &id, &secret);
        vec![
            Outsider {
                who: "API client of the care provider without progress:read",
                token: without_scope,
                write: (403, "forbidden"),
                read: (403, "insufficient-scope"),
            },
            Outsider {
                who: "API client of another care provider with every scope",
                token: other_org,
                write: (403, "forbidden"),
                read: (404, "not-found"),
            },
        ]
    }

    /// The director of another care provider of the region, the administrator of another
    /// region, and the two API clients of [`Programme::clients`].
    fn outsiders(&self) -> Vec<Outsider> {
        let app = &self.app;
        let karolinska = app.create_org(
            &self.admin,
            "care_provider",
            "Karolinska Universitetssjukhuset",
            Some(&self.region),
        );
        let director = app.join(
            &self.admin,
            "studierektor@karolinska.example",
            "director_of_studies",
            &karolinska,
        );
        let skane = self.other_region_admin();
        let mut outsiders = vec![
            Outsider {
                who: "director of another care provider",
                token: director.access,
                write: (404, "not-found"),
                read: (404, "not-found"),
            },
            Outsider {
                who: "administrator of another region",
                token: skane.access,
                write: (404, "not-found"),
                read: (404, "not-found"),
            },
        ];
        outsiders.extend(self.clients());
        outsiders
    }

    /// The enrolment ids `user` finds in `GET /enrolments`.
    fn listed_for(&self, user: &TestUser) -> Vec<String> {
        ids(&self.app.get("/enrolments", Some(&user.access)).expect(200))
    }
}

/// The body of a template version: the Stockholm template without its organisation.
fn template_version(provider: &str, regulation: &str, name: &str) -> Value {
    let mut body = stockholm_bt(provider, regulation);
    body.as_object_mut()
        .expect("object")
        .remove("organisation_id");
    body["name"] = json!(name);
    body
}

#[test]
fn everyone_signed_in_reads_the_catalogue_but_only_administrators_change_it() {
    let p = Programme::start();
    let app = &p.app;
    let bt = &p.regulation;
    let st = app.regulation_id(&p.admin, "st-2021");
    let readers = [
        ("trainee", &p.trainee),
        ("supervisor", &p.supervisor_a),
        ("director of studies", &p.director),
        ("external assessor", &p.assessor),
        ("administrator", &p.admin),
    ];
    for (who, user) in readers {
        let regs = allowed(app, who, user, &call("GET", "/regulations", None), 200);
        assert!(
            ids(&regs).contains(bt),
            "{who} does not see bt-2021: {}",
            regs.text
        );
        let reg = allowed(
            app,
            who,
            user,
            &call("GET", format!("/regulations/{bt}"), None),
            200,
        );
        assert_eq!(reg.body["code"], "bt-2021");
        let delmal = allowed(
            app,
            who,
            user,
            &call("GET", format!("/regulations/{bt}/delmal"), None),
            200,
        );
        assert_eq!(delmal.body["items"].as_array().expect("items").len(), 18);
    }

    let new_regulation = call(
        "POST",
        "/regulations",
        Some(json!({
            "code": "at-2026", "name_sv": "Allmäntjänstgöring", "statute": "SOSFS 2026:1",
            "delmal": [{"code": "AT1", "title_sv": "Akut omhändertagande"}]
        })),
    );
    let new_delmal = call(
        "POST",
        format!("/regulations/{st}/delmal"),
        Some(json!({
            "code": "STc1", "specialty": "rättsmedicin", "group": "STc",
            "title_sv": "Rättsmedicinsk obduktion"
        })),
    );
    let import = call(
        "POST",
        format!("/regulations/{st}/delmal/import"),
        Some(json!([
            {"code": "STc2", "specialty": "rättsmedicin", "group": "STc", "title_sv": "Rättsmedicinsk kroppsundersökning"},
            {"code": "STc3", "specialty": "rättsmedicin", "group": "STc", "title_sv": "Rättsintyg"}
        ])),
    );
    let csv = "code,specialty,group,title_sv\nSTc4,rättsmedicin,STc,Sakkunnigutlåtanden\n";
    let writes = [&new_regulation, &new_delmal, &import];
    let non_admins = [
        ("trainee", &p.trainee),
        ("supervisor", &p.supervisor_a),
        ("director of studies", &p.director),
        ("external assessor", &p.assessor),
    ];
    for (who, user) in non_admins {
        for c in writes {
            let r = refused(app, who, Some(user), c, 403, "forbidden");
            assert_eq!(r.body["detail"], "your roles do not allow this action");
        }
        let r = app.send_raw(
            "POST",
            &format!("/regulations/{st}/delmal/import"),
            Some(&user.access),
            "text/csv",
            csv.as_bytes(),
        );
        assert_eq!(r.status, 403, "{who}: CSV import answered {}", r.text);
        r.expect_problem(403, "forbidden");
    }
    // Nobody signed in: refused before anything else, reads included.
    let reads = [
        call("GET", "/regulations", None),
        call("GET", format!("/regulations/{bt}"), None),
        call("GET", format!("/regulations/{bt}/delmal"), None),
    ];
    for c in reads.iter().chain(writes) {
        let r = refused(app, "anonymous", None, c, 401, "unauthenticated");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    let r = app.send_raw(
        "POST",
        &format!("/regulations/{st}/delmal/import"),
        None,
        "text/csv",
        csv.as_bytes(),
    );
    r.expect_problem(401, "unauthenticated");
    // A token that is not one is no better than none.
    let forged = TestUser {
        access: "not.a.token".into(),
        ..p.trainee.clone()
    };
    refused(
        app,
        "forged token",
        Some(&forged),
        &reads[0],
        401,
        "unauthenticated",
    );

    // Nothing of it was stored.
    let none = app
        .get("/regulations?code=at-2026", Some(&p.admin.access))
        .expect(200);
    assert_eq!(ids(&none), Vec::<String>::new());
    let st_delmal = app
        .get(
            &format!("/regulations/{st}/delmal?specialty=r%C3%A4ttsmedicin"),
            Some(&p.admin.access),
        )
        .expect(200);
    assert_eq!(st_delmal.body["items"].as_array().expect("items").len(), 11);

    // The very same requests from the administrator are accepted.
    let created = allowed(app, "administrator", &p.admin, &new_regulation, 201);
    assert_eq!(created.body["code"], "at-2026");
    assert_eq!(created.body["source"], "api");
    let added = allowed(app, "administrator", &p.admin, &new_delmal, 201);
    assert_eq!(added.body["specialty"], "rättsmedicin");
    let imported = allowed(app, "administrator", &p.admin, &import, 201);
    assert_eq!(imported.body["items"].as_array().expect("items").len(), 2);
    app.send_raw(
        "POST",
        &format!("/regulations/{st}/delmal/import"),
        Some(&p.admin.access),
        "text/csv",
        csv.as_bytes(),
    )
    .expect(201);
    let st_delmal = app
        .get(
            &format!("/regulations/{st}/delmal?specialty=r%C3%A4ttsmedicin"),
            Some(&p.trainee.access),
        )
        .expect(200);
    assert_eq!(st_delmal.body["items"].as_array().expect("items").len(), 15);
}

#[test]
fn programme_templates_are_written_only_by_managers_of_their_care_provider() {
    let p = Programme::start();
    let app = &p.app;
    // Karolinska has its own director of studies, who runs nothing at Danderyd.
    let karolinska = app.create_org(
        &p.admin,
        "care_provider",
        "Karolinska Universitetssjukhuset",
        Some(&p.region),
    );
    let other_director = app.join(
        &p.admin,
        "studierektor@karolinska.example",
        "director_of_studies",
        &karolinska,
    );

    let create = call(
        "POST",
        "/programme-templates",
        Some(stockholm_bt(&p.provider, &p.regulation)),
    );
    let edit = call(
        "POST",
        format!("/programme-templates/{}/versions", p.template),
        Some(template_version(
            &p.provider,
            &p.regulation,
            "BT Danderyd 2027",
        )),
    );
    let skane = p.other_region_admin();
    let outsiders = [
        ("trainee", &p.trainee),
        ("supervisor", &p.supervisor_a),
        ("external assessor", &p.assessor),
        ("director of another care provider", &other_director),
        ("administrator of another region", &skane),
    ];
    for (who, user) in outsiders {
        for c in [&create, &edit] {
            let r = refused(app, who, Some(user), c, 403, "forbidden");
            assert_eq!(r.body["detail"], "your roles do not allow this action");
        }
    }
    // A director of studies runs programmes of their care provider, not of the region.
    let region_wide = call(
        "POST",
        "/programme-templates",
        Some(stockholm_bt(&p.region, &p.regulation)),
    );
    refused(
        app,
        "director at the region",
        Some(&p.director),
        &region_wide,
        403,
        "forbidden",
    );
    for c in [&create, &edit, &region_wide] {
        refused(app, "anonymous", None, c, 401, "unauthenticated");
    }

    // Every signed-in user reads the templates, and sees that nothing changed.
    let reads = [
        call("GET", "/programme-templates", None),
        call("GET", format!("/programme-templates/{}", p.template), None),
        call(
            "GET",
            format!("/programme-templates/{}/versions", p.template),
            None,
        ),
        call(
            "GET",
            format!("/programme-templates/{}/versions/1", p.template),
            None,
        ),
    ];
    let everyone = [
        ("trainee", &p.trainee),
        ("supervisor", &p.supervisor_b),
        ("external assessor", &p.assessor),
        ("director of another care provider", &other_director),
    ];
    for (who, user) in everyone {
        let list = allowed(app, who, user, &reads[0], 200);
        assert_eq!(ids(&list), vec![p.template.clone()], "{who}");
        let latest = allowed(app, who, user, &reads[1], 200);
        assert_eq!(latest.body["version"], 1, "{who}");
        assert_eq!(latest.body["name"], "BT Region Stockholm");
        assert_eq!(latest.body["created_by"], p.director.id.as_str());
        let versions = allowed(app, who, user, &reads[2], 200);
        assert_eq!(versions.body["items"].as_array().expect("items").len(), 1);
        allowed(app, who, user, &reads[3], 200);
    }
    for c in &reads {
        refused(app, "anonymous", None, c, 401, "unauthenticated");
    }

    // The other director manages their own care provider's programmes ...
    let own = allowed(
        app,
        "director of another care provider",
        &other_director,
        &call(
            "POST",
            "/programme-templates",
            Some(stockholm_bt(&karolinska, &p.regulation)),
        ),
        201,
    );
    assert_eq!(own.body["organisation_id"], karolinska.as_str());
    // ... and Danderyd's director edits Danderyd's template.
    let v2 = allowed(app, "director of studies", &p.director, &edit, 201);
    assert_eq!(v2.body["version"], 2);
    assert_eq!(v2.body["name"], "BT Danderyd 2027");
    // Including a version on top of the one the outsiders could not make.
    let v3 = allowed(app, "administrator", &p.admin, &edit, 201);
    assert_eq!(v3.body["version"], 3);
}

#[test]
fn an_enrolment_is_seen_only_by_those_with_a_part_in_it() {
    let p = Programme::start();
    let app = &p.app;
    let karolinska = app.create_org(
        &p.admin,
        "care_provider",
        "Karolinska Universitetssjukhuset",
        Some(&p.region),
    );
    let other_director = app.join(
        &p.admin,
        "studierektor@karolinska.example",
        "director_of_studies",
        &karolinska,
    );
    // Region Skåne's administrator runs another region altogether.
    let skane = p.other_region_admin();
    let e = &p.enrolment;
    let reads = [
        call("GET", format!("/enrolments/{e}"), None),
        call("GET", format!("/enrolments/{e}/time-served"), None),
        call("GET", format!("/enrolments/{e}/changes"), None),
        call("GET", format!("/enrolments/{e}/study-plan-goals"), None),
    ];
    let involved = [
        ("trainee", &p.trainee),
        ("main supervisor", &p.supervisor_a),
        ("director of studies", &p.director),
        ("administrator", &p.admin),
    ];
    for (who, user) in involved {
        let got = allowed(app, who, user, &reads[0], 200);
        assert_eq!(got.body["id"], e.as_str());
        assert_eq!(got.body["trainee_id"], p.trainee.id.as_str());
        assert!(got.header("etag").is_some());
        for c in &reads[1..] {
            allowed(app, who, user, c, 200);
        }
    }
    let unknown = refused(
        app,
        "administrator",
        Some(&p.admin),
        &call(
            "GET",
            "/enrolments/7a1c1e0e-0000-4000-8000-000000000000",
            None,
        ),
        404,
        "not-found",
    );
    let strangers = [
        ("unassigned supervisor", &p.supervisor_b),
        ("another trainee", &p.other_trainee),
        ("unassigned external assessor", &p.assessor),
        ("director of another care provider", &other_director),
        ("administrator of another region", &skane),
    ];
    for (who, user) in strangers {
        for c in &reads {
            let hidden = refused(app, who, Some(user), c, 404, "not-found");
            // Exactly what an enrolment that does not exist looks like.
            assert_eq!(hidden.body["title"], unknown.body["title"]);
            assert_eq!(hidden.body["detail"], unknown.body["detail"]);
        }
    }
    for c in &reads {
        refused(app, "anonymous", None, c, 401, "unauthenticated");
    }
    for o in p.clients() {
        for c in &reads {
            refused_outsider(app, &o, c, o.read);
        }
    }

    // The list shows each exactly what they may open.
    let mine = vec![e.clone()];
    assert_eq!(p.listed_for(&p.trainee), mine, "trainee");
    assert_eq!(p.listed_for(&p.supervisor_a), mine, "main supervisor");
    assert_eq!(p.listed_for(&p.director), mine, "director of studies");
    assert_eq!(p.listed_for(&p.admin), mine, "administrator");
    let nothing: Vec<String> = Vec::new();
    assert_eq!(
        p.listed_for(&p.supervisor_b),
        nothing,
        "unassigned supervisor"
    );
    assert_eq!(p.listed_for(&p.other_trainee), nothing, "another trainee");
    assert_eq!(p.listed_for(&p.assessor), nothing, "external assessor");
    assert_eq!(p.listed_for(&other_director), nothing, "other director");
    assert_eq!(
        p.listed_for(&skane),
        nothing,
        "other region's administrator"
    );
    // Asking for the trainee by id reveals nothing either.
    let filtered = app
        .get(
            &format!("/enrolments?trainee_id={}", p.trainee.id),
            Some(&p.supervisor_b.access),
        )
        .expect(200);
    assert_eq!(ids(&filtered), nothing);
    refused(
        app,
        "anonymous",
        None,
        &call("GET", "/enrolments", None),
        401,
        "unauthenticated",
    );
}

#[test]
fn only_the_director_and_administrators_change_the_plan() {
    let p = Programme::start();
    let app = &p.app;
    let e = &p.enrolment;
    let pl = &p.placement;
    // A week of sick leave in October is already in the plan.
    let sick = app
        .post(
            &format!("/enrolments/{e}/leave-periods"),
            Some(&p.director.access),
            json!({"kind": "sick", "start_date": "2026-10-05", "end_date": "2026-10-09"}),
        )
        .expect(201);
    let sick = sick.body["id"].as_str().expect("leave id").to_string();
    let changes = [
        call(
            "PATCH",
            format!("/enrolments/{e}"),
            Some(json!({"planned_end": "2027-09-30", "extent_percent": 75})),
        ),
        call(
            "POST",
            format!("/enrolments/{e}/placements"),
            Some(json!({"placement_type": "akut", "start_date": "2027-01-01",
                        "end_date": "2027-04-30", "unit_id": p.unit})),
        ),
        call(
            "POST",
            format!("/enrolments/{e}/leave-periods"),
            Some(json!({"kind": "parental", "start_date": "2027-05-01",
                        "end_date": "2027-05-31", "percent": 50})),
        ),
        call(
            "POST",
            format!("/enrolments/{e}/assignments"),
            Some(
                json!({"user_id": p.supervisor_b.id, "role": "placement_supervisor",
                        "placement_id": pl}),
            ),
        ),
        call(
            "POST",
            format!("/enrolments/{e}/credited-service"),
            Some(
                json!({"description": "AT, medicinkliniken, Danderyds sjukhus",
                        "start_date": "2025-01-01", "end_date": "2025-03-31",
                        "credited_days": 60, "evidence": "Tjänstgöringsintyg AT 2025-04-02",
                        "delmal": ["BT1"]}),
            ),
        ),
        call(
            "PATCH",
            format!("/placements/{pl}"),
            Some(json!({"end_date": "2026-12-20"})),
        ),
        call("DELETE", format!("/placements/{pl}"), None),
        call(
            "POST",
            format!("/assignments/{}/end", p.main_assignment),
            Some(json!({})),
        ),
        call("DELETE", format!("/leave-periods/{sick}"), None),
    ];
    let migrate = call(
        "POST",
        format!("/enrolments/{e}/template-migration"),
        Some(json!({"template_version": 1})),
    );
    let before = p.enrolment();
    let history = p.changes();

    // The trainee and the main supervisor see the plan but may not change it.
    for (who, user) in [
        ("trainee", &p.trainee),
        ("main supervisor", &p.supervisor_a),
    ] {
        for c in changes.iter().chain([&migrate]) {
            let r = refused(app, who, Some(user), c, 403, "forbidden");
            if c.path != migrate.path {
                assert_eq!(
                    r.body["detail"],
                    "your part in this training plan does not allow this"
                );
            }
        }
    }
    // Those with no part in it are not told it exists.
    for (who, user) in [
        ("unassigned supervisor", &p.supervisor_b),
        ("another trainee", &p.other_trainee),
        ("unassigned external assessor", &p.assessor),
    ] {
        for c in changes.iter().chain([&migrate]) {
            refused(app, who, Some(user), c, 404, "not-found");
        }
    }
    for c in changes.iter().chain([&migrate]) {
        refused(app, "anonymous", None, c, 401, "unauthenticated");
    }
    // Nor are those of another care provider or region; API clients change nothing.
    let outsiders = p.outsiders();
    for o in &outsiders {
        for c in changes.iter().chain([&migrate]) {
            refused_outsider(app, o, c, o.write);
        }
    }
    // Moving a trainee to another template version is for administrators only.
    let r = refused(
        app,
        "director of studies",
        Some(&p.director),
        &migrate,
        403,
        "forbidden",
    );
    assert_eq!(r.body["detail"], "your roles do not allow this action");

    // None of the refused requests left a trace.
    let after = p.enrolment();
    assert_eq!(after.body, before.body);
    assert_eq!(after.header("etag"), before.header("etag"));
    assert_eq!(p.changes(), history);

    // Enrolling is for managers too.
    let enrol = call(
        "POST",
        "/enrolments",
        Some(json!({
            "trainee_id": p.other_trainee.id, "template_id": p.template, "track": "bt_standalone",
            "start_date": "2027-01-01", "planned_end": "2027-12-31",
            "main_supervisor_id": p.supervisor_b.id
        })),
    );
    for (who, user) in [
        ("trainee", &p.trainee),
        ("the trainee to be", &p.other_trainee),
        ("main supervisor", &p.supervisor_a),
        ("unassigned supervisor", &p.supervisor_b),
        ("external assessor", &p.assessor),
    ] {
        refused(app, who, Some(user), &enrol, 403, "forbidden");
    }
    refused(app, "anonymous", None, &enrol, 401, "unauthenticated");
    for o in &outsiders {
        refused_outsider(app, o, &enrol, (403, "forbidden"));
    }
    assert_eq!(p.listed_for(&p.admin), vec![e.clone()]);
    assert_eq!(p.listed_for(&p.other_trainee), Vec::<String>::new());

    // The director of studies does all of it.
    let d = &p.director;
    let patched = allowed(app, "director", d, &changes[0], 200);
    assert_eq!(patched.body["planned_end"], "2027-09-30");
    assert_eq!(patched.body["extent_percent"], 75);
    let akut = allowed(app, "director", d, &changes[1], 201);
    assert_eq!(akut.body["placement_type"], "akut");
    let leave = allowed(app, "director", d, &changes[2], 201);
    assert_eq!(leave.body["percent"], 50);
    let assigned = allowed(app, "director", d, &changes[3], 201);
    assert_eq!(assigned.body["user_id"], p.supervisor_b.id.as_str());
    assert_eq!(assigned.body["active"], true);
    // Access follows the assignment: supervisor B now sees the plan (and may still not
    // change it) ...
    let b = &p.supervisor_b;
    allowed(app, "placement supervisor", b, &open(e), 200);
    assert_eq!(p.listed_for(b), vec![e.clone()]);
    refused(
        app,
        "placement supervisor",
        Some(b),
        &changes[5],
        403,
        "forbidden",
    );
    // ... until the director ends the assignment.
    let ended = allowed(
        app,
        "director",
        d,
        &call(
            "POST",
            format!(
                "/assignments/{}/end",
                assigned.body["id"].as_str().expect("id")
            ),
            Some(json!({})),
        ),
        200,
    );
    assert_eq!(ended.body["active"], false);
    refused(
        app,
        "former placement supervisor",
        Some(b),
        &open(e),
        404,
        "not-found",
    );
    assert_eq!(p.listed_for(b), Vec::<String>::new());

    let credited = allowed(app, "director", d, &changes[4], 201);
    assert_eq!(credited.body["credited_days"], 60);
    let moved = allowed(app, "director", d, &changes[5], 200);
    assert_eq!(moved.body["end_date"], "2026-12-20");
    allowed(app, "director", d, &changes[6], 204);
    let main_ended = allowed(app, "director", d, &changes[7], 200);
    assert_eq!(main_ended.body["active"], false);
    allowed(app, "director", d, &changes[8], 204);
    // With the main supervisor's assignment over, supervisor A's access is gone too.
    refused(
        app,
        "former main supervisor",
        Some(&p.supervisor_a),
        &open(e),
        404,
        "not-found",
    );
    let now = p.enrolment();
    assert_eq!(
        now.body["placements"].as_array().expect("placements").len(),
        1
    );
    assert_eq!(now.body["placements"][0]["placement_type"], "akut");
    let leave = now.body["leave_periods"].as_array().expect("leave");
    assert_eq!(leave.len(), 1, "the sick leave is removed: {leave:?}");
    assert_eq!(leave[0]["kind"], "parental");

    // A new template version, and the administrator moves the trainee onto it.
    allowed(
        app,
        "director",
        d,
        &call(
            "POST",
            format!("/programme-templates/{}/versions", p.template),
            Some(template_version(
                &p.provider,
                &p.regulation,
                "BT Danderyd 2027",
            )),
        ),
        201,
    );
    let to_v2 = call(
        "POST",
        format!("/enrolments/{e}/template-migration"),
        Some(json!({"template_version": 2})),
    );
    refused(app, "director", Some(d), &to_v2, 403, "forbidden");
    let migrated = allowed(app, "administrator", &p.admin, &to_v2, 200);
    assert_eq!(migrated.body["template_version"], 2);

    // And enrols the second trainee.
    let enrolled = allowed(app, "director", d, &enrol, 201);
    assert_eq!(
        p.listed_for(&p.other_trainee),
        vec![enrolled.body["id"].as_str().expect("id").to_string()]
    );
}

#[test]
fn the_study_plan_is_written_by_trainee_and_supervisors_and_only_read_by_the_assessor() {
    let p = Programme::start();
    let app = &p.app;
    let e = &p.enrolment;
    let add = |goal: &str| {
        call(
            "POST",
            format!("/enrolments/{e}/study-plan-goals"),
            Some(json!({"goal": goal, "delmal": ["BT10"]})),
        )
    };
    let by_trainee = allowed(
        app,
        "trainee",
        &p.trainee,
        &add("Leda ett överlämningsmöte på vårdavdelningen"),
        201,
    );
    assert_eq!(by_trainee.body["updated_by"], p.trainee.id.as_str());
    assert_eq!(by_trainee.body["status"], "planned");
    let by_supervisor = allowed(
        app,
        "main supervisor",
        &p.supervisor_a,
        &add("Hembesök tillsammans med distriktssköterska"),
        201,
    );
    assert_eq!(by_supervisor.body["updated_by"], p.supervisor_a.id.as_str());
    let goal = by_trainee.body["id"].as_str().expect("goal id").to_string();
    let patch = |status: &str| {
        call(
            "PATCH",
            format!("/study-plan-goals/{goal}"),
            Some(json!({"status": status})),
        )
    };
    let progressed = allowed(
        app,
        "main supervisor",
        &p.supervisor_a,
        &patch("in_progress"),
        200,
    );
    assert_eq!(progressed.body["version"], 2);
    assert_eq!(progressed.body["updated_by"], p.supervisor_a.id.as_str());
    let done = allowed(app, "trainee", &p.trainee, &patch("done"), 200);
    assert_eq!(done.body["version"], 3);
    assert_eq!(done.body["status"], "done");

    // Not involved: the plan does not exist for them.
    for (who, user) in [
        ("unassigned supervisor", &p.supervisor_b),
        ("another trainee", &p.other_trainee),
        ("unassigned external assessor", &p.assessor),
    ] {
        refused(app, who, Some(user), &add("Sepsis"), 404, "not-found");
        refused(app, who, Some(user), &patch("planned"), 404, "not-found");
    }
    for o in p.outsiders() {
        refused_outsider(app, &o, &add("Sepsis"), o.write);
        refused_outsider(app, &o, &patch("planned"), o.write);
        let goals = call("GET", format!("/enrolments/{e}/study-plan-goals"), None);
        refused_outsider(app, &o, &goals, o.read);
    }
    refused(
        app,
        "anonymous",
        None,
        &add("Sepsis"),
        401,
        "unauthenticated",
    );
    refused(
        app,
        "anonymous",
        None,
        &patch("planned"),
        401,
        "unauthenticated",
    );

    // The external assessor, once assigned, reads the plan but does not write it.
    let assigned = allowed(
        app,
        "director",
        &p.director,
        &call(
            "POST",
            format!("/enrolments/{e}/assignments"),
            Some(json!({"user_id": p.assessor.id, "role": "external_assessor"})),
        ),
        201,
    );
    assert_eq!(assigned.body["role"], "external_assessor");
    let a = &p.assessor;
    let seen = allowed(app, "external assessor", a, &open(e), 200);
    assert_eq!(seen.body["id"], e.as_str());
    assert_eq!(p.listed_for(a), vec![e.clone()]);
    let goals = allowed(
        app,
        "external assessor",
        a,
        &call("GET", format!("/enrolments/{e}/study-plan-goals"), None),
        200,
    );
    assert_eq!(goals.body["items"].as_array().expect("items").len(), 2);
    let r = refused(
        app,
        "external assessor",
        Some(a),
        &add("Sepsis"),
        403,
        "forbidden",
    );
    assert_eq!(
        r.body["detail"],
        "your part in this training plan does not allow this"
    );
    refused(
        app,
        "external assessor",
        Some(a),
        &patch("planned"),
        403,
        "forbidden",
    );
    // Nor the plan itself.
    refused(
        app,
        "external assessor",
        Some(a),
        &call(
            "PATCH",
            format!("/enrolments/{e}"),
            Some(json!({"planned_end": "2027-09-30"})),
        ),
        403,
        "forbidden",
    );

    // The goals are as the trainee and supervisor left them.
    let goals = app
        .get(
            &format!("/enrolments/{e}/study-plan-goals"),
            Some(&p.trainee.access),
        )
        .expect(200);
    let items = goals.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], goal.as_str());
    assert_eq!(items[0]["status"], "done");
    assert_eq!(items[0]["version"], 3);
    assert_eq!(items[1]["status"], "planned");
    assert_eq!(items[1]["version"], 1);
}

#[test]
fn someone_involved_in_the_training_cannot_be_its_external_assessor() {
    let p = Programme::start();
    let app = &p.app;
    let e = &p.enrolment;
    let assign = |user: &TestUser| {
        call(
            "POST",
            format!("/enrolments/{e}/assignments"),
            Some(json!({"user_id": user.id, "role": "external_assessor"})),
        )
    };
    // Supervisor A is not (yet) an external assessor at all.
    let r = refused(
        app,
        "director",
        Some(&p.director),
        &assign(&p.supervisor_a),
        422,
        "validation",
    );
    assert_eq!(r.body["errors"][0]["field"], "user_id");
    assert_eq!(
        r.body["errors"][0]["message"],
        "not a user with the external_assessor role"
    );

    // They take on the role too, accepting the invitation with their own password.
    let token = app.invite(
        &p.director,
        &p.supervisor_a.email,
        "external_assessor",
        &p.provider,
    );
    let accepted = app
        .post(
            &format!("/auth/invitations/{token}/accept"),
            None,
            json!({"password": PASSWORD}),
        )
        .expect(200);
    assert_eq!(accepted.body["status"], "role_granted");
    let me = app.get("/me", Some(&p.supervisor_a.access)).expect(200);
    assert!(
        me.body["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .any(|g| g["role"] == "external_assessor"),
        "{}",
        me.text
    );

    // Still refused: they are the trainee's main supervisor.
    let involved = "an external assessor must never have been involved in this trainee's training";
    let before = p.changes();
    let r = refused(
        app,
        "director",
        Some(&p.director),
        &assign(&p.supervisor_a),
        422,
        "validation",
    );
    assert_eq!(
        r.body["errors"],
        json!([{"field": "user_id", "message": involved}])
    );
    // Also when an administrator asks, and also once they no longer supervise.
    refused(
        app,
        "administrator",
        Some(&p.admin),
        &assign(&p.supervisor_a),
        422,
        "validation",
    );
    let bt = &p.supervisor_b;
    allowed(
        app,
        "director",
        &p.director,
        &call(
            "POST",
            format!("/enrolments/{e}/assignments"),
            Some(json!({"user_id": bt.id, "role": "main_supervisor"})),
        ),
        201,
    );
    let plan = p.enrolment();
    let a_assignment = plan.body["assignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .find(|x| x["user_id"] == p.supervisor_a.id.as_str())
        .expect("supervisor A's assignment stays in the history")
        .clone();
    assert_eq!(a_assignment["active"], false);
    let r = refused(
        app,
        "director",
        Some(&p.director),
        &assign(&p.supervisor_a),
        422,
        "validation",
    );
    assert_eq!(r.body["errors"][0]["field"], "user_id");
    assert_eq!(r.body["errors"][0]["message"], involved);
    // The refusals assigned nobody.
    assert_eq!(
        p.changes(),
        before + 2,
        "only the change of main supervisor"
    );
    refused(
        app,
        "supervisor A",
        Some(&p.supervisor_a),
        &open(e),
        404,
        "not-found",
    );

    // Someone who never took part is accepted.
    let ok = allowed(app, "director", &p.director, &assign(&p.assessor), 201);
    assert_eq!(ok.body["user_id"], p.assessor.id.as_str());
    assert_eq!(ok.body["role"], "external_assessor");
}

#[test]
fn the_external_assessor_does_not_become_involved_later() {
    let p = Programme::start();
    let app = &p.app;
    let e = &p.enrolment;
    let a = &p.assessor;
    allowed(
        app,
        "director",
        &p.director,
        &call(
            "POST",
            format!("/enrolments/{e}/assignments"),
            Some(json!({"user_id": a.id, "role": "external_assessor"})),
        ),
        201,
    );
    // The assessor is also a supervisor at the health centre ...
    let token = app.invite(&p.director, &a.email, "supervisor", &p.unit);
    let accepted = app
        .post(
            &format!("/auth/invitations/{token}/accept"),
            None,
            json!({"password": PASSWORD}),
        )
        .expect(200);
    assert_eq!(accepted.body["status"], "role_granted");
    // ... but supervising this trainee would make them involved in the training they
    // are to assess independently.
    let r = app.post(
        &format!("/enrolments/{e}/assignments"),
        Some(&p.director.access),
        json!({"user_id": a.id, "role": "main_supervisor"}),
    );
    let plan = p.enrolment();
    let assignments = plan.body["assignments"].as_array().expect("assignments");
    let of_assessor: Vec<&str> = assignments
        .iter()
        .filter(|x| x["user_id"] == a.id.as_str() && x["active"] == true)
        .map(|x| x["role"].as_str().expect("role"))
        .collect();
    assert!(
        !(of_assessor.contains(&"external_assessor") && of_assessor.len() > 1),
        "the external assessor now also holds {of_assessor:?} on the same training \
         (the assignment answered {} {})",
        r.status,
        r.text
    );
    let r = r.expect_problem(422, "validation");
    assert_eq!(r.body["errors"][0]["field"], "user_id");
    // Supervisor A is still the main supervisor.
    let main: Vec<&Value> = assignments
        .iter()
        .filter(|x| x["role"] == "main_supervisor" && x["active"] == true)
        .collect();
    assert_eq!(main.len(), 1);
    assert_eq!(main[0]["user_id"], p.supervisor_a.id.as_str());
}
