//! A region with one BT trainee enrolled under a main supervisor: the starting point of
//! the audit and privacy tests (erasure, redaction, restriction).

use serde_json::json;

use crate::support::{TestApp, TestUser};

/// The region's administrator, the trainee, their main supervisor and the enrolment.
pub struct Ward {
    pub app: TestApp,
    pub admin: TestUser,
    pub trainee: TestUser,
    pub supervisor: TestUser,
    pub enrolment: String,
}

pub fn ward() -> Ward {
    ward_with(|_| {})
}

/// [`ward`], with the app's configuration adjusted.
pub fn ward_with(adjust: impl FnOnce(&mut eportfolio::Config)) -> Ward {
    let app = TestApp::start_with(adjust);
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let template = app.stockholm_bt_template(&admin, &slso);
    let trainee = app.join(&admin, "bt@sll.se", "trainee", &slso);
    let supervisor = app.join(&admin, "hhl@sll.se", "supervisor", &slso);
    let e = app
        .post(
            "/enrolments",
            Some(&admin.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31",
                   "main_supervisor_id": supervisor.id}),
        )
        .expect(201);
    Ward {
        enrolment: e.body["id"].as_str().expect("id").to_string(),
        app,
        admin,
        trainee,
        supervisor,
    }
}

/// A connection of its own to the test app's database (for reading the audit log).
pub fn db(app: &TestApp) -> eportfolio::db::PooledConn {
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    pool.get().expect("conn")
}
