//! A small BT programme for the pace tests: region, care provider, director and the
//! Stockholm BT template, and people joining it.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use crate::support::{TestApp, TestUser};

pub struct World {
    pub app: TestApp,
    pub director: TestUser,
    pub org: String,
    pub template_id: String,
}

pub fn world() -> World {
    world_with(|_| {})
}

/// A world whose sign-ins outlast the clock's moves (tests that move it by months).
pub fn long_world() -> World {
    world_with(|c| c.access_token_ttl = std::time::Duration::from_secs(400 * 24 * 3600))
}

pub fn world_with(adjust: impl FnOnce(&mut eportfolio::config::Config)) -> World {
    let app = TestApp::start_with(adjust);
    let (admin, region) = app.admin();
    let org = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &org);
    let template_id = app.stockholm_bt_template(&director, &org);
    World {
        app,
        director,
        org,
        template_id,
    }
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// A UTC instant for the test clock.
pub fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("a valid test instant")
}

impl World {
    pub fn person(&self, email: &str, role: &str) -> TestUser {
        self.app.join(&self.director, email, role, &self.org)
    }

    /// Enrols `trainee` with `main` as main supervisor; `extra` is merged into the body.
    pub fn enrol(
        &self,
        trainee: &TestUser,
        main: &TestUser,
        start: &str,
        end: &str,
        extra: Value,
    ) -> Value {
        let mut body = json!({"trainee_id": trainee.id, "template_id": self.template_id, "track": "bt_standalone",
                              "start_date": start, "planned_end": end, "main_supervisor_id": main.id});
        if let (Some(b), Some(x)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in x {
                b.insert(k.clone(), v.clone());
            }
        }
        self.app
            .post("/enrolments", Some(&self.director.access), body)
            .expect(201)
            .body
    }

    pub fn progress(&self, enrolment: &str, who: &TestUser) -> Value {
        self.app
            .get(
                &format!("/enrolments/{enrolment}/progress"),
                Some(&who.access),
            )
            .expect(200)
            .body
    }

    /// The enrolment ids on the director's cohort overview for `query`.
    pub fn cohort(&self, query: &str) -> Vec<String> {
        let rows = self
            .app
            .get(
                &format!("/cohort-overview{query}"),
                Some(&self.director.access),
            )
            .expect(200)
            .body;
        rows["items"]
            .as_array()
            .unwrap_or_else(|| panic!("rows: {rows}"))
            .iter()
            .map(|r| {
                r["enrolment_id"]
                    .as_str()
                    .expect("enrolment_id")
                    .to_string()
            })
            .collect()
    }
}
