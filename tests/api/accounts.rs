//! Organisations, invitations, users and `/me`: how administrators and directors of
//! studies build their part of the tree and bring people in, and what each role may see.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use eportfolio::integrations::clients::{
    SCOPE_ACTIVITIES_WRITE, SCOPE_CATALOG_READ, SCOPE_PROGRESS_READ,
};

use crate::integrations::{client, token};
use crate::support::{Resp, TestApp, TestUser, PASSWORD};

/// The `id`s of a page's items, in order.
fn item_ids(page: &Resp) -> Vec<String> {
    page.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {}", page.text))
        .iter()
        .map(|i| i["id"].as_str().expect("item id").to_string())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `email -> [(role, organisation_id)]` of a page of users.
fn roles_by_email(page: &Resp) -> BTreeMap<String, Vec<(String, String)>> {
    page.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {}", page.text))
        .iter()
        .map(|u| {
            let roles = u["roles"]
                .as_array()
                .expect("roles")
                .iter()
                .map(|g| {
                    (
                        g["role"].as_str().expect("role").to_string(),
                        g["organisation_id"].as_str().expect("org").to_string(),
                    )
                })
                .collect();
            (u["email"].as_str().expect("email").to_string(), roles)
        })
        .collect()
}

fn first_error_field(r: &Resp) -> &str {
    r.body["errors"][0]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("no field errors: {}", r.text))
}

fn org(app: &TestApp, user: &TestUser, kind: &str, name: &str, parent: &str) -> Resp {
    app.post(
        "/organisations",
        Some(&user.access),
        json!({"kind": kind, "name": name, "parent_id": parent}),
    )
}

fn invite_req(app: &TestApp, inviter: &TestUser, email: &str, role: &str, org: &str) -> Resp {
    app.post(
        "/invitations",
        Some(&inviter.access),
        json!({"email": email, "role": role, "organisation_id": org}),
    )
}

/// Follows `next_cursor` from `first_path` (which must already carry a query) to the end.
fn all_pages(app: &TestApp, token: &str, first_path: &str) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut path = first_path.to_string();
    loop {
        let page = app.get(&path, Some(token)).expect(200);
        pages += 1;
        assert!(pages <= 50, "pagination does not end");
        seen.extend(item_ids(&page));
        match page.body["next_cursor"].as_str() {
            None => {
                assert!(page.body["next_cursor"].is_null(), "{}", page.text);
                break;
            }
            Some(cursor) => path = format!("{first_path}&cursor={cursor}"),
        }
    }
    (seen, pages)
}

// ---- Organisations --------------------------------------------------------------------

#[test]
fn administrator_builds_the_organisation_tree_and_pages_through_it() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let token = Some(admin.access.as_str());

    let ks = org(
        &app,
        &admin,
        "care_provider",
        "Karolinska Universitetssjukhuset",
        &region,
    )
    .expect(201);
    assert_eq!(ks.body["kind"], "care_provider");
    assert_eq!(ks.body["name"], "Karolinska Universitetssjukhuset");
    assert_eq!(ks.body["parent_id"], region.as_str());
    assert_eq!(ks.body["version"], 1);
    let ks = ks.body["id"].as_str().expect("id").to_string();

    let akut = org(&app, &admin, "unit", "Akutkliniken", &ks).expect(201);
    assert_eq!(akut.body["kind"], "unit");
    assert_eq!(akut.body["parent_id"], ks.as_str());
    let akut = akut.body["id"].as_str().expect("id").to_string();
    // Units may nest under units (a section of a clinic).
    let akut_solna = org(&app, &admin, "unit", "Akutkliniken Solna", &akut).expect(201);
    assert_eq!(akut_solna.body["parent_id"], akut.as_str());
    let akut_solna = akut_solna.body["id"].as_str().expect("id").to_string();

    // Invalid nesting is a validation problem on parent_id.
    let unit_under_region =
        org(&app, &admin, "unit", "Vårdcentral", &region).expect_problem(422, "validation");
    assert_eq!(first_error_field(&unit_under_region), "parent_id");
    let orphan_provider = app
        .post(
            "/organisations",
            token,
            json!({"kind": "care_provider", "name": "Capio S:t Göran"}),
        )
        .expect_problem(422, "validation");
    assert_eq!(first_error_field(&orphan_provider), "parent_id");
    let provider_under_unit =
        org(&app, &admin, "care_provider", "Fel nivå", &akut).expect_problem(422, "validation");
    assert_eq!(first_error_field(&provider_under_unit), "parent_id");
    let unknown_parent =
        org(&app, &admin, "unit", "Ingenstans", "no-such-org").expect_problem(422, "validation");
    assert_eq!(first_error_field(&unknown_parent), "parent_id");

    let sos = app.create_org(&admin, "care_provider", "Södersjukhuset", Some(&region));
    let sos_kir = app.create_org(&admin, "unit", "Kirurgkliniken", Some(&sos));

    // Filters.
    let units = app.get("/organisations?kind=unit", token).expect(200);
    assert_eq!(
        sorted(item_ids(&units)),
        sorted(vec![akut.clone(), akut_solna.clone(), sos_kir.clone()])
    );
    assert!(units.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["kind"] == "unit"));
    assert!(units.body["next_cursor"].is_null());
    let under_ks = app
        .get(&format!("/organisations?parent_id={ks}"), token)
        .expect(200);
    assert_eq!(item_ids(&under_ks), vec![akut.clone()]);
    assert_eq!(under_ks.body["items"][0]["name"], "Akutkliniken");
    let providers = app
        .get(
            &format!("/organisations?kind=care_provider&parent_id={region}"),
            token,
        )
        .expect(200);
    assert_eq!(
        sorted(item_ids(&providers)),
        sorted(vec![ks.clone(), sos.clone()])
    );

    // One at a time: every organisation exactly once, then next_cursor is null.
    let everything = sorted(vec![region.clone(), ks, akut, akut_solna, sos, sos_kir]);
    let (seen, pages) = all_pages(&app, &admin.access, "/organisations?limit=1");
    assert_eq!(pages, everything.len(), "one organisation per page");
    assert_eq!(
        sorted(seen.clone()),
        everything,
        "each organisation exactly once"
    );
    assert_eq!(seen, everything, "pages come in id order");

    for bad in ["0", "500", "-1"] {
        let r = app
            .get(&format!("/organisations?limit={bad}"), token)
            .expect_problem(422, "validation");
        assert_eq!(first_error_field(&r), "limit");
    }
    let r = app
        .get("/organisations?limit=1&cursor=***", token)
        .expect_problem(422, "validation");
    assert_eq!(first_error_field(&r), "cursor");
}

#[test]
fn renaming_an_organisation_needs_the_current_etag() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let token = Some(admin.access.as_str());
    let ks = app.create_org(&admin, "care_provider", "Karolinska", Some(&region));
    let path = format!("/organisations/{ks}");

    let read = app.get(&path, token).expect(200);
    assert_eq!(read.body["version"], 1);
    let etag = read
        .header("etag")
        .expect("GET returns an ETag")
        .to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag: {etag}"
    );

    let renamed = app
        .patch(
            &path,
            token,
            json!({"name": "Karolinska Universitetssjukhuset"}),
            &[("If-Match", &etag)],
        )
        .expect(200);
    assert_eq!(renamed.body["name"], "Karolinska Universitetssjukhuset");
    assert_eq!(renamed.body["version"], 2);
    let new_etag = renamed
        .header("etag")
        .expect("PATCH returns the new ETag")
        .to_string();
    assert_ne!(new_etag, etag);

    // Someone still holding the old ETag cannot overwrite the rename.
    app.patch(
        &path,
        token,
        json!({"name": "Karolinska (gammal)"}),
        &[("If-Match", &etag)],
    )
    .expect_problem(412, "precondition-failed");
    let after = app.get(&path, token).expect(200);
    assert_eq!(after.body["name"], "Karolinska Universitetssjukhuset");
    assert_eq!(after.body["version"], 2);
    assert_eq!(after.header("etag"), Some(new_etag.as_str()));

    let empty = app
        .patch(
            &path,
            token,
            json!({"name": ""}),
            &[("If-Match", &new_etag)],
        )
        .expect_problem(422, "validation");
    assert_eq!(first_error_field(&empty), "name");
    let blank = app
        .patch(&path, token, json!({"name": "   "}), &[])
        .expect_problem(422, "validation");
    assert_eq!(first_error_field(&blank), "name");
    assert_eq!(app.get(&path, token).expect(200).body["version"], 2);

    app.get("/organisations/does-not-exist", token)
        .expect_problem(404, "not-found");
}

// ---- Roles ----------------------------------------------------------------------------

#[test]
fn each_role_may_do_only_its_part_with_organisations_and_invitations() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let ks = app.create_org(&admin, "care_provider", "Karolinska", Some(&region));
    let akut = app.create_org(&admin, "unit", "Akutkliniken", Some(&ks));
    let director = app.join(
        &admin,
        "studierektor@karolinska.se",
        "director_of_studies",
        &ks,
    );
    // The director brings in the people of the training programme (app.join expects 201).
    let supervisor = app.join(&director, "handledare@karolinska.se", "supervisor", &akut);
    let trainee = app.join(&director, "st.lakare@karolinska.se", "trainee", &akut);
    let assessor = app.join(&director, "bedomare@skane.se", "external_assessor", &akut);

    // Only administrators create organisations.
    for (who, user) in [
        ("trainee", &trainee),
        ("supervisor", &supervisor),
        ("external assessor", &assessor),
        ("director of studies", &director),
    ] {
        let r = org(&app, user, "unit", "Egen enhet", &akut);
        assert_eq!(r.status, 403, "{who} created an organisation: {}", r.text);
        r.expect_problem(403, "forbidden");
    }
    let under_akut = app
        .get(
            &format!("/organisations?parent_id={akut}"),
            Some(&admin.access),
        )
        .expect(200);
    assert_eq!(
        item_ids(&under_akut),
        Vec::<String>::new(),
        "refused creates left nothing"
    );
    let ortopedi = org(&app, &admin, "unit", "Ortopedkliniken", &ks).expect(201);
    assert_eq!(ortopedi.body["parent_id"], ks.as_str());

    // Directors invite the programme's people in their subtree...
    let mut invited = Vec::new();
    for (email, role, at) in [
        ("ny.st@karolinska.se", "trainee", &akut),
        ("ny.handledare@karolinska.se", "supervisor", &ks),
        ("extern@uu.se", "external_assessor", &akut),
    ] {
        let r = invite_req(&app, &director, email, role, at).expect(201);
        assert_eq!(r.body["email"], email);
        assert_eq!(r.body["role"], role);
        assert_eq!(r.body["organisation_id"], at.as_str());
        assert_eq!(r.body["status"], "pending");
        assert_eq!(r.body["invited_by"], director.id.as_str());
        invited.push(r.body["id"].as_str().expect("id").to_string());
    }
    let directors_list = app
        .get("/invitations?status=pending", Some(&director.access))
        .expect(200);
    for id in &invited {
        assert!(
            item_ids(&directors_list).contains(id),
            "{}",
            directors_list.text
        );
    }
    // ...but not administrators or other directors...
    for role in ["administrator", "director_of_studies"] {
        invite_req(&app, &director, "chef@karolinska.se", role, &akut)
            .expect_problem(403, "forbidden");
    }
    // ...and not outside their care provider.
    let sos = app.create_org(&admin, "care_provider", "Södersjukhuset", Some(&region));
    invite_req(&app, &director, "st@sodersjukhuset.se", "trainee", &sos)
        .expect_problem(403, "forbidden");
    invite_req(&app, &director, "st@sodersjukhuset.se", "trainee", &region)
        .expect_problem(403, "forbidden");
    assert_eq!(app.smtp.count_to("chef@karolinska.se"), 0);
    assert_eq!(app.smtp.count_to("st@sodersjukhuset.se"), 0);

    // Trainees and supervisors manage no people.
    for (who, user) in [("trainee", &trainee), ("supervisor", &supervisor)] {
        let r = invite_req(&app, user, "kollega@karolinska.se", "trainee", &akut);
        assert_eq!(r.status, 403, "{who} invited someone: {}", r.text);
        r.expect_problem(403, "forbidden");
        app.get("/invitations", Some(&user.access))
            .expect_problem(403, "forbidden");
        app.get("/users", Some(&user.access))
            .expect_problem(403, "forbidden");
    }
    assert_eq!(app.smtp.count_to("kollega@karolinska.se"), 0);
    // Nor can they revoke the director's invitations: for them those do not exist.
    app.delete(
        &format!("/invitations/{}", invited[0]),
        Some(&trainee.access),
    )
    .expect_problem(404, "not-found");
    let still = app
        .get("/invitations?status=pending", Some(&director.access))
        .expect(200);
    assert!(item_ids(&still).contains(&invited[0]), "{}", still.text);
    // Renaming is for administrators too.
    app.patch(
        &format!("/organisations/{akut}"),
        Some(&director.access),
        json!({"name": "Studierektorns klinik"}),
        &[],
    )
    .expect_problem(403, "forbidden");
    let akut_now = app
        .get(&format!("/organisations/{akut}"), Some(&director.access))
        .expect(200);
    assert_eq!(akut_now.body["name"], "Akutkliniken");

    // Everyone signed in may browse the tree.
    for user in [&admin, &director, &supervisor, &trainee, &assessor] {
        let page = app
            .get("/organisations?limit=200", Some(&user.access))
            .expect(200);
        let ids = item_ids(&page);
        for id in [&region, &ks, &akut, &sos] {
            assert!(
                ids.contains(id),
                "{} does not see {id}: {}",
                user.email,
                page.text
            );
        }
    }

    // Nobody without a token.
    for (method, path, body) in [
        ("GET", "/me", None),
        ("GET", "/organisations", None),
        ("GET", "/users", None),
        ("GET", "/invitations", None),
        (
            "POST",
            "/invitations",
            Some(json!({"email": "x@karolinska.se", "role": "trainee", "organisation_id": akut})),
        ),
        (
            "POST",
            "/organisations",
            Some(json!({"kind": "unit", "name": "X", "parent_id": akut})),
        ),
    ] {
        let r = app.send(method, path, None, body.as_ref(), &[]);
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer"),
            "{method} {path}"
        );
        r.expect_problem(401, "unauthenticated");
    }
    // A forged token is no better than none.
    app.get("/me", Some("not.a.jwt"))
        .expect_problem(401, "unauthenticated");
    assert_eq!(app.smtp.count_to("x@karolinska.se"), 0);

    // Nor is a manager of somewhere else, or an API client, whatever its scopes: managing
    // organisations and people is for the people who run them.
    let sos_director = app.join(
        &admin,
        "studierektor@sodersjukhuset.se",
        "director_of_studies",
        &sos,
    );
    let skane_email = "admin@regionskane.se";
    let invitation = app.bootstrap_admin(skane_email, "Region Skåne");
    let skane = app.accept_with_totp(&invitation, skane_email);
    let (id, secret) = client(
        &app,
        &admin,
        &ks,
        &[SCOPE_CATALOG_READ, SCOPE_ACTIVITIES_WRITE],
    );
    let ks_client = token(&app, &id, &secret);
    let every_scope = [
        SCOPE_PROGRESS_READ,
        SCOPE_CATALOG_READ,
        SCOPE_ACTIVITIES_WRITE,
    ];
    let (id, secret) = client(&app, &admin, &sos, &every_scope);
    let sos_client = token(&app, &id, &secret);
    let requests = [
        (
            "POST",
            "/organisations".to_string(),
            Some(json!({"kind": "unit", "name": "Utomståendes enhet", "parent_id": akut})),
        ),
        (
            "PATCH",
            format!("/organisations/{akut}"),
            Some(json!({"name": "Utomståendes klinik"})),
        ),
        (
            "POST",
            "/invitations".to_string(),
            Some(
                json!({"email": "utomstaende@karolinska.se", "role": "trainee",
                        "organisation_id": akut}),
            ),
        ),
        ("DELETE", format!("/invitations/{}", invited[1]), None),
    ];
    // The answer to each request in turn.
    type Answers = [(u16, &'static str); 4];
    let outsiders: [(&str, &str, Answers); 4] = [
        (
            "director of another care provider",
            &sos_director.access,
            [
                (403, "forbidden"),
                (403, "forbidden"),
                (403, "forbidden"),
                (404, "not-found"),
            ],
        ),
        (
            "administrator of another region",
            &skane.access,
            [
                (403, "forbidden"),
                (403, "forbidden"),
                (403, "forbidden"),
                (404, "not-found"),
            ],
        ),
        (
            "API client of Karolinska without progress:read",
            &ks_client,
            [(403, "forbidden"); 4],
        ),
        (
            "API client of Södersjukhuset with every scope",
            &sos_client,
            [(403, "forbidden"); 4],
        ),
    ];
    for (who, token, answers) in outsiders {
        for ((method, path, body), (status, kind)) in requests.iter().zip(answers) {
            let r = app.send(method, path, Some(token), body.as_ref(), &[]);
            assert_eq!(
                (r.status, r.body["type"].as_str().unwrap_or("")),
                (
                    status,
                    format!("https://eportfolio.example/problems/{kind}").as_str()
                ),
                "{who}: {method} {path} answered {}",
                r.text
            );
            r.expect_problem(status, kind);
        }
    }
    // None of it left a trace: no unit, the old name, the invitation pending, no e-mail.
    let under_akut = app
        .get(
            &format!("/organisations?parent_id={akut}"),
            Some(&admin.access),
        )
        .expect(200);
    assert_eq!(item_ids(&under_akut), Vec::<String>::new());
    let akut_now = app
        .get(&format!("/organisations/{akut}"), Some(&admin.access))
        .expect(200);
    assert_eq!(akut_now.body["name"], "Akutkliniken");
    let pending = app
        .get("/invitations?status=pending", Some(&director.access))
        .expect(200);
    assert!(item_ids(&pending).contains(&invited[1]), "{}", pending.text);
    assert_eq!(app.smtp.count_to("utomstaende@karolinska.se"), 0);
}

// ---- Users ----------------------------------------------------------------------------

#[test]
fn administrators_see_everyone_directors_their_subtree_and_others_only_themselves() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let ks = app.create_org(&admin, "care_provider", "Karolinska", Some(&region));
    let akut = app.create_org(&admin, "unit", "Akutkliniken", Some(&ks));
    let sos = app.create_org(&admin, "care_provider", "Södersjukhuset", Some(&region));
    let director = app.join(
        &admin,
        "studierektor@karolinska.se",
        "director_of_studies",
        &ks,
    );
    let supervisor = app.join(&director, "handledare@karolinska.se", "supervisor", &akut);
    let trainee = app.join(&director, "st.lakare@karolinska.se", "trainee", &akut);
    let elsewhere = app.join(&admin, "st@sodersjukhuset.se", "trainee", &sos);

    let all = app.get("/users", Some(&admin.access)).expect(200);
    let roles = roles_by_email(&all);
    let pair = |r: &str, o: &str| vec![(r.to_string(), o.to_string())];
    assert_eq!(roles.len(), 5, "{}", all.text);
    assert_eq!(
        roles["admin@regionstockholm.se"],
        pair("administrator", &region)
    );
    assert_eq!(
        roles["studierektor@karolinska.se"],
        pair("director_of_studies", &ks)
    );
    assert_eq!(roles["handledare@karolinska.se"], pair("supervisor", &akut));
    assert_eq!(roles["st.lakare@karolinska.se"], pair("trainee", &akut));
    assert_eq!(roles["st@sodersjukhuset.se"], pair("trainee", &sos));
    assert!(all.body["next_cursor"].is_null());

    let trainees = app
        .get("/users?role=trainee", Some(&admin.access))
        .expect(200);
    assert_eq!(
        roles_by_email(&trainees)
            .into_keys()
            .collect::<BTreeSet<_>>(),
        set(["st.lakare@karolinska.se", "st@sodersjukhuset.se"])
    );
    let at_akut = app
        .get(
            &format!("/users?organisation_id={akut}"),
            Some(&admin.access),
        )
        .expect(200);
    assert_eq!(
        roles_by_email(&at_akut)
            .into_keys()
            .collect::<BTreeSet<_>>(),
        set(["handledare@karolinska.se", "st.lakare@karolinska.se"])
    );
    app.get("/users?role=chief", Some(&admin.access))
        .expect_problem(400, "malformed-request");

    // The director sees Karolinska's people, not the region's administrator, not Södersjukhuset.
    let theirs = app.get("/users", Some(&director.access)).expect(200);
    assert_eq!(
        roles_by_email(&theirs).into_keys().collect::<BTreeSet<_>>(),
        set([
            "studierektor@karolinska.se",
            "handledare@karolinska.se",
            "st.lakare@karolinska.se"
        ])
    );
    app.get(&format!("/users/{}", admin.id), Some(&director.access))
        .expect_problem(404, "not-found");
    app.get(&format!("/users/{}", elsewhere.id), Some(&director.access))
        .expect_problem(404, "not-found");
    let seen = app
        .get(&format!("/users/{}", trainee.id), Some(&director.access))
        .expect(200);
    assert_eq!(seen.body["email"], "st.lakare@karolinska.se");

    // A trainee sees only themselves; others do not exist for them (404, not 403).
    app.get(&format!("/users/{}", supervisor.id), Some(&trainee.access))
        .expect_problem(404, "not-found");
    app.get(&format!("/users/{}", admin.id), Some(&trainee.access))
        .expect_problem(404, "not-found");
    let own = app
        .get(&format!("/users/{}", trainee.id), Some(&trainee.access))
        .expect(200);
    assert_eq!(own.body["id"], trainee.id.as_str());
    assert_eq!(own.body["email"], "st.lakare@karolinska.se");
    assert!(own.header("etag").is_some());

    let by_admin = app
        .get(&format!("/users/{}", trainee.id), Some(&admin.access))
        .expect(200);
    assert_eq!(by_admin.body["email"], "st.lakare@karolinska.se");
    assert_eq!(
        by_admin.body["roles"],
        json!([{"role": "trainee", "organisation_id": akut}])
    );
    assert_eq!(by_admin.body["mfa"]["totp"], true);
    app.get("/users/no-such-user", Some(&admin.access))
        .expect_problem(404, "not-found");
}

// ---- Invitations ----------------------------------------------------------------------

#[test]
fn external_supervisor_with_a_private_address_joins_by_invitation() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let ks = app.create_org(&admin, "care_provider", "Karolinska", Some(&region));
    let akut = app.create_org(&admin, "unit", "Akutkliniken", Some(&ks));
    let email = "handledare@gmail.com";

    let before = app.smtp.count_to(email);
    let sent = app
        .post(
            "/invitations",
            Some(&admin.access),
            json!({
                "email": "Handledare@Gmail.com ",
                "role": "supervisor",
                "organisation_id": akut,
                "display_name": "Eva Extern"
            }),
        )
        .expect(201);
    assert_eq!(sent.body["email"], email, "addresses are stored normalised");
    assert_eq!(sent.body["role"], "supervisor");
    assert_eq!(sent.body["status"], "pending");

    let mail = app.smtp.wait_for(email, before);
    assert!(
        mail.subject().contains("Inbjudan"),
        "subject: {}",
        mail.subject()
    );
    assert!(
        mail.subject().contains("Akutkliniken"),
        "subject: {}",
        mail.subject()
    );
    let text = mail.body_text();
    assert!(
        text.contains("https://app.example/invitations/accept?token="),
        "no link in: {text}"
    );
    assert!(text.contains("supervisor"), "{text}");
    let token = mail.find_token_after("token=").expect("token");

    let preview = app
        .get(&format!("/auth/invitations/{token}"), None)
        .expect(200);
    assert_eq!(preview.body["email"], email);
    assert_eq!(preview.body["role"], "supervisor");
    assert_eq!(preview.body["organisation_id"], akut.as_str());
    assert_eq!(preview.body["organisation_name"], "Akutkliniken");
    assert_eq!(preview.body["account_exists"], false);
    assert_eq!(preview.body["display_name"], "Eva Extern");

    let weak = app
        .post(
            &format!("/auth/invitations/{token}/accept"),
            None,
            json!({"password": "kort"}),
        )
        .expect_problem(422, "validation");
    assert_eq!(first_error_field(&weak), "password");
    // A refused attempt does not use up the link.
    app.get(&format!("/auth/invitations/{token}"), None)
        .expect(200);

    let supervisor = app.accept_with_totp(&token, email);
    let me = app.get("/me", Some(&supervisor.access)).expect(200);
    assert_eq!(me.body["email"], email);
    assert_eq!(me.body["display_name"], "Eva Extern");
    assert_eq!(me.body["email_verified"], true);
    assert_eq!(me.body["status"], "active");
    assert_eq!(
        me.body["roles"],
        json!([{"role": "supervisor", "organisation_id": akut}])
    );
    assert_eq!(me.body["mfa"]["totp"], true);
    assert_eq!(me.body["mfa"]["recovery_codes_remaining"], 10);

    // The link works once.
    app.post(
        &format!("/auth/invitations/{token}/accept"),
        None,
        json!({"password": PASSWORD}),
    )
    .expect_problem(422, "invalid-token");
    app.get(&format!("/auth/invitations/{token}"), None)
        .expect_problem(422, "invalid-token");
    app.get("/auth/invitations/not-a-real-token", None)
        .expect_problem(422, "invalid-token");

    let listed = app
        .get("/invitations?status=accepted", Some(&admin.access))
        .expect(200);
    let accepted = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["email"] == email)
        .unwrap_or_else(|| panic!("accepted invitation not listed: {}", listed.text))
        .clone();
    assert_eq!(accepted["id"], sent.body["id"]);
    assert!(accepted["accepted_at"].is_string());
}

#[test]
fn existing_account_invited_to_a_second_unit_confirms_with_its_password() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let ks = app.create_org(&admin, "care_provider", "Karolinska", Some(&region));
    let unit_a = app.create_org(&admin, "unit", "Akutkliniken", Some(&ks));
    let unit_b = app.create_org(&admin, "unit", "Infektionskliniken", Some(&ks));
    let email = "handledare@karolinska.se";
    let supervisor = app.join(&admin, email, "supervisor", &unit_a);

    let token = app.invite(&admin, email, "supervisor", &unit_b);
    let preview = app
        .get(&format!("/auth/invitations/{token}"), None)
        .expect(200);
    assert_eq!(preview.body["account_exists"], true);
    assert_eq!(preview.body["organisation_name"], "Infektionskliniken");

    let accept = format!("/auth/invitations/{token}/accept");
    app.post(&accept, None, json!({"password": "not the right password"}))
        .expect_problem(401, "invalid-credentials");
    let granted = app
        .post(&accept, None, json!({"password": PASSWORD}))
        .expect(200);
    assert_eq!(granted.body["status"], "role_granted");
    assert!(granted.body.get("mfa_token").is_none(), "{}", granted.text);

    let me = app.get("/me", Some(&supervisor.access)).expect(200);
    let orgs: BTreeSet<(String, String)> = me.body["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|g| {
            (
                g["role"].as_str().unwrap().into(),
                g["organisation_id"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        orgs,
        BTreeSet::from([
            ("supervisor".to_string(), unit_a.clone()),
            ("supervisor".to_string(), unit_b.clone())
        ])
    );
    app.post(&accept, None, json!({"password": PASSWORD}))
        .expect_problem(422, "invalid-token");

    // Inviting someone to a role they already hold is a conflict, and sends nothing.
    let before = app.smtp.count_to(email);
    for unit in [&unit_a, &unit_b] {
        let r = invite_req(&app, &admin, email, "supervisor", unit).expect_problem(409, "conflict");
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .contains("already has that role"),
            "{}",
            r.text
        );
    }
    assert_eq!(app.smtp.count_to(email), before);
    // Another role at the same unit is fine.
    invite_req(&app, &admin, email, "trainee", &unit_a).expect(201);
}

#[test]
fn invitations_can_be_listed_revoked_replaced_and_expire() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let ks = app.create_org(&admin, "care_provider", "Karolinska", Some(&region));
    let akut = app.create_org(&admin, "unit", "Akutkliniken", Some(&ks));

    let to_revoke = invite_req(&app, &admin, "st1@karolinska.se", "trainee", &akut).expect(201);
    let to_revoke_id = to_revoke.body["id"].as_str().unwrap().to_string();
    let revoked_token = app
        .smtp
        .wait_for("st1@karolinska.se", 0)
        .find_token_after("token=")
        .unwrap();
    let to_expire = invite_req(&app, &admin, "st2@karolinska.se", "trainee", &akut).expect(201);
    let to_expire_id = to_expire.body["id"].as_str().unwrap().to_string();
    let expiring_token = app
        .smtp
        .wait_for("st2@karolinska.se", 0)
        .find_token_after("token=")
        .unwrap();

    let pending = app
        .get("/invitations?status=pending", Some(&admin.access))
        .expect(200);
    assert_eq!(
        sorted(item_ids(&pending)),
        sorted(vec![to_revoke_id.clone(), to_expire_id.clone()])
    );
    assert!(pending.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "pending"));
    // The administrator's own (accepted) invitation is there without the filter.
    let everything = app.get("/invitations", Some(&admin.access)).expect(200);
    assert_eq!(
        everything.body["items"].as_array().unwrap().len(),
        3,
        "{}",
        everything.text
    );
    app.get("/invitations?status=lost", Some(&admin.access))
        .expect_problem(422, "validation");

    // Revoking kills the link; revoking again is a conflict.
    let revoked = app.delete(&format!("/invitations/{to_revoke_id}"), Some(&admin.access));
    assert_eq!(revoked.status, 204, "{}", revoked.text);
    assert!(revoked.text.is_empty());
    app.get(&format!("/auth/invitations/{revoked_token}"), None)
        .expect_problem(422, "invalid-token");
    app.post(
        &format!("/auth/invitations/{revoked_token}/accept"),
        None,
        json!({"password": PASSWORD}),
    )
    .expect_problem(422, "invalid-token");
    let again = app
        .delete(&format!("/invitations/{to_revoke_id}"), Some(&admin.access))
        .expect_problem(409, "conflict");
    assert!(
        again.body["detail"].as_str().unwrap().contains("revoked"),
        "{}",
        again.text
    );
    let revoked_list = app
        .get("/invitations?status=revoked", Some(&admin.access))
        .expect(200);
    assert_eq!(item_ids(&revoked_list), vec![to_revoke_id.clone()]);
    app.delete("/invitations/no-such-invitation", Some(&admin.access))
        .expect_problem(404, "not-found");

    // "Send it again": inviting the same address, role and unit replaces the link.
    let first_token = app.invite(&admin, "st3@karolinska.se", "trainee", &akut);
    let second_token = app.invite(&admin, "st3@karolinska.se", "trainee", &akut);
    assert_ne!(first_token, second_token);
    app.get(&format!("/auth/invitations/{first_token}"), None)
        .expect_problem(422, "invalid-token");
    let preview = app
        .get(&format!("/auth/invitations/{second_token}"), None)
        .expect(200);
    assert_eq!(preview.body["email"], "st3@karolinska.se");
    let st3: Vec<Value> = app
        .get("/invitations", Some(&admin.access))
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["email"] == "st3@karolinska.se")
        .cloned()
        .collect();
    let statuses: Vec<&str> = st3.iter().map(|i| i["status"].as_str().unwrap()).collect();
    assert_eq!(
        sorted(statuses.iter().map(|s| s.to_string()).collect()),
        vec!["pending", "revoked"]
    );

    // Links are valid for seven days.
    app.advance(8 * 86_400);
    app.get(&format!("/auth/invitations/{expiring_token}"), None)
        .expect_problem(422, "invalid-token");
    app.post(
        &format!("/auth/invitations/{expiring_token}/accept"),
        None,
        json!({"password": PASSWORD}),
    )
    .expect_problem(422, "invalid-token");
    app.get(&format!("/auth/invitations/{second_token}"), None)
        .expect_problem(422, "invalid-token");
    let admin = app.login_totp(&admin);
    let expired = app
        .get("/invitations?status=expired", Some(&admin.access))
        .expect(200);
    let expired_ids = item_ids(&expired);
    assert!(expired_ids.contains(&to_expire_id), "{}", expired.text);
    assert_eq!(
        expired_ids.len(),
        2,
        "st2 and st3's second link: {}",
        expired.text
    );
    assert!(expired.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "expired"));
    let none_pending = app
        .get("/invitations?status=pending", Some(&admin.access))
        .expect(200);
    assert_eq!(item_ids(&none_pending), Vec::<String>::new());
    app.delete(&format!("/invitations/{to_expire_id}"), Some(&admin.access))
        .expect_problem(409, "conflict");
}

#[test]
fn the_pending_filter_pages_through_every_pending_invitation() {
    // Ids are client-chosen so that a revoked invitation sorts before the pending ones.
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let ks = app.create_org(&admin, "care_provider", "Karolinska", Some(&region));
    let ids = [
        "00000000-0000-4000-8000-000000000001",
        "00000000-0000-4000-8000-000000000002",
        "00000000-0000-4000-8000-000000000003",
    ];
    for (n, id) in ids.iter().enumerate() {
        let r = app
            .post(
                "/invitations",
                Some(&admin.access),
                json!({"id": id, "email": format!("st{n}@karolinska.se"), "role": "trainee", "organisation_id": ks}),
            )
            .expect(201);
        assert_eq!(r.body["id"], *id);
    }
    app.delete(&format!("/invitations/{}", ids[0]), Some(&admin.access))
        .expect(204);

    let (seen, _) = all_pages(&app, &admin.access, "/invitations?status=pending&limit=1");
    assert_eq!(
        seen,
        vec![ids[1].to_string(), ids[2].to_string()],
        "every pending invitation, each once"
    );
}

// ---- /me ------------------------------------------------------------------------------

#[test]
fn changing_my_display_name_needs_the_current_etag() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let trainee = app.join(&admin, "st.lakare@karolinska.se", "trainee", &region);
    let token = Some(trainee.access.as_str());

    let me = app.get("/me", token).expect(200);
    assert_eq!(
        me.body["display_name"], "st.lakare",
        "defaults to the address' local part"
    );
    let version = me.body["version"].as_i64().expect("version");
    let etag = me.header("etag").expect("ETag").to_string();

    let changed = app
        .patch(
            "/me",
            token,
            json!({"display_name": "Sara Lind"}),
            &[("If-Match", &etag)],
        )
        .expect(200);
    assert_eq!(changed.body["display_name"], "Sara Lind");
    assert_eq!(changed.body["version"], version + 1);
    let new_etag = changed.header("etag").expect("new ETag").to_string();
    assert_ne!(new_etag, etag);

    // A second tab with the old ETag is refused.
    app.patch(
        "/me",
        token,
        json!({"display_name": "S. Lind"}),
        &[("If-Match", &etag)],
    )
    .expect_problem(412, "precondition-failed");
    let now = app.get("/me", token).expect(200);
    assert_eq!(now.body["display_name"], "Sara Lind");
    assert_eq!(now.header("etag"), Some(new_etag.as_str()));

    let empty = app
        .patch(
            "/me",
            token,
            json!({"display_name": ""}),
            &[("If-Match", &new_etag)],
        )
        .expect_problem(422, "validation");
    assert_eq!(first_error_field(&empty), "display_name");
    app.patch("/me", token, json!({"email": "x@y.se"}), &[])
        .expect_problem(400, "malformed-request");
    // Others see the new name.
    let seen = app
        .get(&format!("/users/{}", trainee.id), Some(&admin.access))
        .expect(200);
    assert_eq!(seen.body["display_name"], "Sara Lind");
}
