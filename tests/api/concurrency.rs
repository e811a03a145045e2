//! Many phones writing at once: no "database is locked", no lost or doubled write.

use serde_json::json;

use crate::support::TestApp;

#[test]
fn concurrent_writers_all_succeed_and_every_write_is_there() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let template = app.stockholm_bt_template(&admin, &slso);
    let trainee = app.join(&admin, "bt@sll.se", "trainee", &slso);
    let e = app
        .post(
            "/enrolments",
            Some(&admin.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31"}),
        )
        .expect(201);
    let url = format!(
        "{}/api/v1/enrolments/{}/activities",
        app.base,
        e.body["id"].as_str().expect("id")
    );
    let token = trainee.access.clone();
    const WRITERS: usize = 8;
    const EACH: usize = 15;
    let statuses: Vec<Vec<u16>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (url, token) = (url.clone(), token.clone());
                scope.spawn(move || {
                    let agent = ureq::AgentBuilder::new().build();
                    (0..EACH)
                        .map(|i| {
                            let body = json!({"kind": "clinical_work", "title": format!("skrivare {w} nr {i}"),
                                              "start_date": "2026-10-01", "delmal": ["BT1", "BT10"]});
                            match agent
                                .post(&url)
                                .set("Authorization", &format!("Bearer {token}"))
                                .set("Idempotency-Key", &format!("w{w}-{i}"))
                                .send_json(body)
                            {
                                Ok(r) => r.status(),
                                Err(ureq::Error::Status(code, r)) => {
                                    panic!("writer {w} got {code}: {}", r.into_string().unwrap_or_default())
                                }
                                Err(e) => panic!("transport: {e}"),
                            }
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    assert!(statuses.iter().flatten().all(|s| *s == 201), "{statuses:?}");

    let list = app
        .get(
            &format!(
                "/enrolments/{}/activities?limit=200",
                e.body["id"].as_str().expect("id")
            ),
            Some(&trainee.access),
        )
        .expect(200);
    let items = list.body["items"].as_array().expect("items");
    assert_eq!(items.len(), WRITERS * EACH);
    let mut titles: Vec<&str> = items
        .iter()
        .map(|a| a["title"].as_str().expect("title"))
        .collect();
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len(), WRITERS * EACH, "no write doubled");
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    let v = eportfolio::audit::verify(&mut conn).expect("verify");
    assert!(
        v.intact,
        "the audit chain stays one chain under concurrent appends: {v:?}"
    );
}
