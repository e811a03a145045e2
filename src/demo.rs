//! `eportfolio demo`: a living demo region on the configured (by default the embedded)
//! database, so a frontend developer or a region evaluating the service sees real
//! portfolios in a minute. People are created directly (with a password and a TOTP
//! secret to sign in with); everything else goes through the real HTTP API of an
//! in-process server, so every record passes the same rules as in production.

use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::auth::service::{create_session, ClientInfo};
use crate::clock::{to_db, SystemClock};
use crate::config::Config;
use crate::db;
use crate::error::AppError;
use crate::schema::{organisations, totp_credentials, users};
use crate::AppState;

const REGION: &str = "Demoregion Stockholm";
pub const PASSWORD: &str = "demo-portfolio-2026";

/// A demo login, printed for the user.
pub struct Login {
    pub role: &'static str,
    pub name: String,
    pub email: String,
    pub totp_secret: String,
    pub note: String,
}

struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<Value, AppError> {
        let req = self
            .agent
            .request(method, &format!("{}/api/v1{path}", self.base))
            .set("Authorization", &format!("Bearer {token}"));
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match res {
            Ok(r) => Ok(r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(code, r)) => Err(AppError::Internal(format!(
                "demo: {method} {path} gave {code}: {}",
                r.into_string().unwrap_or_default()
            ))),
            Err(e) => Err(AppError::Internal(format!("demo: {method} {path}: {e}"))),
        }
    }
    fn post(&self, path: &str, token: &str, body: Value) -> Result<Value, AppError> {
        self.call("POST", path, token, Some(body))
    }
}

struct Person {
    id: String,
    token: String,
}

fn new_secret() -> String {
    totp_rs::Secret::generate().to_base32()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

/// Seeds the demo region and returns the logins, or an error if it exists already.
pub fn run(mut config: Config) -> Result<Vec<Login>, AppError> {
    // The demo's own server needs no network mail; it still writes what it would send.
    config.workers = 2;
    let state = AppState::new(config.clone(), Arc::new(SystemClock))?;
    let now = state.clock.now();
    let today = crate::clock::day_of(now);
    let mut conn = state.pool.get()?;
    let exists: i64 = organisations::table
        .filter(organisations::name.eq(REGION))
        .count()
        .get_result(&mut *conn)?;
    if exists > 0 {
        return Err(AppError::Conflict(format!(
            "the demo region \"{REGION}\" exists already in this database; use a fresh DATABASE_URL"
        )));
    }
    let hash = crate::auth::crypto::hash_password(config.argon2, PASSWORD)?;
    let at = to_db(now);
    let (region, slso) = db::write_tx(&mut conn, |c| {
        let region = uuid::Uuid::new_v4().to_string();
        let slso = uuid::Uuid::new_v4().to_string();
        for (id, parent, kind, name) in [
            (&region, None, "region", REGION),
            (&slso, Some(&region), "care_provider", "SLSO (demo)"),
        ] {
            diesel::insert_into(organisations::table)
                .values((
                    organisations::id.eq(id),
                    organisations::parent_id.eq(parent),
                    organisations::kind.eq(kind),
                    organisations::name.eq(name),
                    organisations::version.eq(1),
                    organisations::created_at.eq(at),
                    organisations::updated_at.eq(at),
                ))
                .execute(c)?;
        }
        Ok((region, slso))
    })?;

    let mut logins = Vec::new();
    // No server runs yet: nothing is cached, the record is for form's sake.
    let changes = crate::principal::AuthChanges::new(state.sessions.clone());
    let mut person = |role: &'static str,
                      role_key: &str,
                      org: &str,
                      name: &str,
                      email: &str,
                      note: &str|
     -> Result<Person, AppError> {
        let id = crate::ids::UserId::random();
        let secret = new_secret();
        // Stored sealed under the pool's master key, as enrolment stores it.
        let sealed = crate::secrets::required(state.pool.keyring())?
            .seal(&crate::secrets::totp_aad(&id), &secret)?;
        let token = db::write_tx(&mut conn, |c| {
            diesel::insert_into(users::table)
                .values((
                    users::id.eq(&id),
                    users::email.eq(email),
                    users::display_name.eq(name),
                    users::password_hash.eq(Some(&hash)),
                    users::email_verified_at.eq(Some(at)),
                    users::email_mfa_enabled.eq(0),
                    users::status.eq(crate::auth::credentials::UserStatus::Active),
                    users::version.eq(1),
                    users::created_at.eq(at),
                    users::updated_at.eq(at),
                    users::notification_mode.eq("immediate"),
                ))
                .execute(c)?;
            let role = crate::principal::Role::parse(role_key)
                .ok_or_else(|| AppError::internal("demo: an unknown role"))?;
            crate::auth::roles::grant(
                c,
                &changes,
                now,
                crate::auth::roles::Grant {
                    user_id: &id,
                    role,
                    organisation_id: org,
                    granted_by: None,
                },
            )?;
            diesel::insert_into(totp_credentials::table)
                .values((
                    totp_credentials::user_id.eq(&id),
                    totp_credentials::secret.eq(Some(&sealed)),
                    totp_credentials::confirmed_at.eq(Some(at)),
                    totp_credentials::created_at.eq(at),
                ))
                .execute(c)?;
            let s = create_session(c, &state.config, now, &id, "totp", &ClientInfo::default())?;
            state.jwt.issue(
                &id,
                &s.session_id,
                now,
                std::time::Duration::from_secs(3600),
            )
        })?;
        logins.push(Login {
            role,
            name: name.into(),
            email: email.into(),
            totp_secret: secret,
            note: note.into(),
        });
        Ok(Person {
            id: id.into_inner(),
            token,
        })
    };
    // The administrator is seeded for the logins; the demo itself needs no admin action.
    person(
        "administrator",
        "administrator",
        &region,
        "BT-enheten",
        "bt-enheten@demo.example",
        "",
    )?;
    let director = person(
        "director of studies",
        "director_of_studies",
        &slso,
        "Anders Studierektor",
        "studierektor@demo.example",
        "follows the cohort: GET /cohort-overview",
    )?;
    let hhl_a = person(
        "main supervisor",
        "supervisor",
        &slso,
        "Maria Åberg",
        "maria.aberg@demo.example",
        "main supervisor of Alva and Bruno",
    )?;
    let hhl_b = person(
        "main supervisor",
        "supervisor",
        &slso,
        "Johan Nyström",
        "johan.nystrom@demo.example",
        "main supervisor of Cornelia, David and Elin; signs Cornelia's final assessment",
    )?;
    let akut = person(
        "placement supervisor",
        "supervisor",
        &slso,
        "Sara Ek",
        "sara.ek@demo.example",
        "akut sjukvård",
    )?;
    let geri = person(
        "placement supervisor",
        "supervisor",
        &slso,
        "Omar Haddad",
        "omar.haddad@demo.example",
        "geriatrik",
    )?;
    let psyk = person(
        "placement supervisor",
        "supervisor",
        &slso,
        "Lina Persson",
        "lina.persson@demo.example",
        "psykiatri",
    )?;
    let assessor = person(
        "external assessor",
        "external_assessor",
        &slso,
        "Karin Öhrn",
        "karin.ohrn@demo.example",
        "assesses Cornelia: her final assessment awaits both signatures",
    )?;
    let t = [
        person(
            "trainee",
            "trainee",
            &slso,
            "Alva Ström",
            "alva.strom@demo.example",
            "five months in, on pace",
        )?,
        person(
            "trainee",
            "trainee",
            &slso,
            "Bruno Lind",
            "bruno.lind@demo.example",
            "seven months in, behind: supervision overdue",
        )?,
        person(
            "trainee",
            "trainee",
            &slso,
            "Cornelia Berg",
            "cornelia.berg@demo.example",
            "a year done, ready for the final assessment",
        )?,
        person(
            "trainee",
            "trainee",
            &slso,
            "David Ek",
            "david.ek@demo.example",
            "three weeks in",
        )?,
        person(
            "trainee",
            "trainee",
            &slso,
            "Elin Holm",
            "elin.holm@demo.example",
            "75 % and parental leave, mid-year",
        )?,
    ];
    drop(conn);

    // The in-process server the rest goes through.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| AppError::Internal(format!("demo: bind: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| AppError::Internal(format!("demo: {e}")))?
        .port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            match crate::server(state, listener) {
                Ok(server) => {
                    let _ = tx.send(Some(server.handle()));
                    let _ = server.await;
                }
                Err(_) => {
                    let _ = tx.send(None);
                }
            }
        })
    });
    let handle = rx
        .recv()
        .ok()
        .flatten()
        .ok_or_else(|| AppError::Internal("demo: the server did not start".into()))?;
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        agent: ureq::AgentBuilder::new()
            .timeout(std::time::Duration::from_secs(60))
            .build(),
    };
    let result = populate(
        &api,
        today,
        &director,
        [&hhl_a, &hhl_b, &akut, &geri, &psyk, &assessor],
        &t,
        &slso,
    );
    actix_web::rt::System::new().block_on(handle.stop(true));
    result.map(|()| logins)
}

fn day(d: NaiveDate, plus: i64) -> String {
    (d + Duration::days(plus)).to_string()
}

fn populate(
    api: &Api,
    today: NaiveDate,
    director: &Person,
    staff: [&Person; 6],
    t: &[Person; 5],
    slso: &str,
) -> Result<(), AppError> {
    let [hhl_a, hhl_b, akut, geri, psyk, assessor] = staff;
    let regs = api.call(
        "GET",
        "/regulations?code=bt-2021&latest=true",
        &director.token,
        None,
    )?;
    let regulation = regs["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut body: Value = serde_json::from_str(include_str!("demo_template.json"))
        .map_err(|e| AppError::Internal(format!("demo template: {e}")))?;
    body["organisation_id"] = json!(slso);
    body["regulation_id"] = json!(regulation);
    let template = api.post("/programme-templates", &director.token, body)?;
    let items: Vec<(String, String)> = template["placement_types"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["checklist"].as_array().cloned().unwrap_or_default())
        .chain(
            template["programme_items"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        )
        .map(|i| (i["title"].as_str().unwrap_or("").to_string(), id_of(&i)))
        .collect();
    let item = |title: &str| {
        items
            .iter()
            .find(|(t, _)| t == title)
            .map(|(_, id)| id.clone())
            .unwrap_or_default()
    };

    // (trainee, main supervisor, days since start, extent, completeness 0..1)
    let plans: [(&Person, &Person, i64, i32, f64); 5] = [
        (&t[0], hhl_a, 150, 100, 1.0),
        (&t[1], hhl_a, 210, 100, 0.35),
        (&t[2], hhl_b, 375, 100, 1.0),
        (&t[3], hhl_b, 20, 100, 1.0),
        (&t[4], hhl_b, 260, 75, 0.8),
    ];
    let kinds = [
        ("allmanmedicin", 122, 7),
        ("akut", 122, 14),
        ("geriatrik", 61, 14),
        ("psykiatri", 61, 14),
    ];
    let placement_sup = |k: usize, main: &Person| -> String {
        match k {
            0 => main.id.clone(),
            1 => akut.id.clone(),
            2 => geri.id.clone(),
            _ => psyk.id.clone(),
        }
    };
    let sups = |k: usize, main: &Person| -> (String, String) {
        let id = placement_sup(k, main);
        let token = [hhl_a, hhl_b, akut, geri, psyk]
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.token.clone())
            .unwrap_or_default();
        (id, token)
    };
    for (n, (trainee, main, since, extent, complete)) in plans.iter().enumerate() {
        let start = today - Duration::days(*since);
        let stretch = if *extent < 100 {
            100.0 / *extent as f64
        } else {
            1.0
        };
        let mut placements = Vec::new();
        let mut from = start;
        for (k, (kind, days, _)) in kinds.iter().enumerate() {
            let len = (*days as f64 * stretch).round() as i64;
            let to = from + Duration::days(len - 1);
            placements.push(json!({"placement_type": kind, "start_date": from.to_string(), "end_date": to.to_string(),
                                   "supervisor_id": placement_sup(k, main)}));
            from = to + Duration::days(1);
        }
        let mut e = json!({"trainee_id": trainee.id, "template_id": template["id"], "track": "bt_standalone",
                           "start_date": start.to_string(), "planned_end": (from - Duration::days(1)).to_string(),
                           "extent_percent": extent, "main_supervisor_id": main.id, "placements": placements});
        if n == 4 {
            e["leave_periods"] = json!([{"kind": "parental", "start_date": day(start, 150), "end_date": day(start, 179), "percent": 100}]);
        }
        let e = api.post("/enrolments", &director.token, e)?;
        let enrolment = id_of(&e);
        let pids: Vec<(String, NaiveDate, NaiveDate)> = e["placements"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let d = |k: &str| {
                    NaiveDate::parse_from_str(p[k].as_str().unwrap_or(""), "%Y-%m-%d")
                        .unwrap_or(today)
                };
                (id_of(p), d("start_date"), d("end_date"))
            })
            .collect();
        let tt = &trainee.token;
        let keep = |i: i64| ((i as f64 + 1.0) * complete).floor() > (i as f64 * complete).floor();
        let mut code = 0usize;
        for (k, (pid, from, to)) in pids.iter().enumerate() {
            if *from > today {
                break;
            }
            let (sup_id, sup_token) = sups(k, main);
            let last = (*to).min(today - Duration::days(1));
            let every = kinds[k].2;
            // Supervision at the cadence (the lagging trainee skips most, and none lately).
            let mut s = 0i64;
            let mut d = *from + Duration::days(3);
            while d <= last {
                if keep(s) && !(n == 1 && d > today - Duration::days(45)) {
                    let topics = if s == 0 {
                        json!(["Bemötande i svåra samtal"])
                    } else {
                        json!(["Veckans patienter", "Mål till nästa gång"])
                    };
                    api.post(&format!("/enrolments/{enrolment}/supervision-sessions"), tt,
                             json!({"held_on": d.to_string(), "placement_id": pid, "topics": topics, "participant_ids": [sup_id],
                                    "notes": "Gick igenom veckans fall och reflektionen.", "delmal": [format!("BT{}", 1 + (s as usize % 18))]}))?;
                }
                s += 1;
                d += Duration::days(every);
            }
            // Activities for the delmål, a few per placement month.
            let days_in = (last - *from).num_days().max(0);
            let count = ((days_in / 20) as f64 * complete).round() as i64;
            for a in 0..count {
                code += 1;
                api.post(&format!("/enrolments/{enrolment}/activities"), tt,
                         json!({"kind": "clinical_work", "title": format!("Patientfall: {}", ["bröstsmärta", "förvirring hos äldre", "suicidriskbedömning", "buksmärta", "sepsis", "KOL-exacerbation"][a as usize % 6]),
                                "start_date": day(*from, 5 + a * 18), "placement_id": pid,
                                "reflection": "Vad jag lärde mig och vad jag gör annorlunda nästa gång.",
                                "delmal": [format!("BT{}", 1 + (code % 18))]}))?;
            }
            let ended = *to < today;
            let elapsed = days_in as f64 / (*to - *from).num_days().max(1) as f64;
            // The placement's checklist, done pro rata.
            let (instrument, required, extra) = match k {
                0 => (
                    "mini_cex",
                    2,
                    Some(("Hembesök med distriktssköterska", "clinical_work", "BT10")),
                ),
                1 => ("dops", 2, Some(("Sepsis", "self_study", "BT15"))),
                2 => ("cbd", 1, None),
                _ => ("sit_in", 1, None),
            };
            let due = ((required as f64 * elapsed * complete).round() as i64).min(required);
            for a in 0..due {
                let made = api.post(&format!("/enrolments/{enrolment}/assessments"), tt,
                    json!({"instrument": instrument, "performed_on": day(*from, 20 + a * 25), "assessor_id": sup_id,
                           "placement_id": pid, "delmal": [format!("BT{}", 1 + (a as usize + k) % 18)]}))?;
                api.post(&format!("/assessments/{}/sign", id_of(&made)), &sup_token,
                    json!({"entrustment": 4, "feedback_strengths": "Strukturerad och lyhörd.", "feedback_next_steps": "Öva på att sammanfatta för patienten."}))?;
            }
            if n == 1 && k == 1 {
                api.post(&format!("/enrolments/{enrolment}/assessments"), tt,
                    json!({"instrument": "dops", "performed_on": day(today, -10), "assessor_id": sup_id, "placement_id": pid, "delmal": ["BT1"]}))?;
            }
            if let Some((title, kind, delmal)) = extra {
                if *complete >= 0.5 && elapsed > 0.3 {
                    api.post(&format!("/enrolments/{enrolment}/activities"), tt,
                             json!({"kind": kind, "title": title, "start_date": day(*from, 30), "placement_id": pid,
                                    "checklist_item_id": item(title), "delmal": [delmal]}))?;
                }
            }
            if ended {
                let judgement = if k == 3 { "achieved" } else { "progressing" };
                let js: Vec<Value> = (1..=18)
                    .map(|c| json!({"code": format!("BT{c}"), "judgement": judgement}))
                    .collect();
                let sum = api.post(&format!("/enrolments/{enrolment}/summary-assessments"), &sup_token,
                                   json!({"placement_id": pid, "judgements": js, "overall": "En engagerad BT-läkare som tar ansvar och utvecklas väl."}))?;
                api.post(
                    &format!("/summary-assessments/{}/sign", id_of(&sum)),
                    &sup_token,
                    json!({}),
                )?;
                if let Some((next, nfrom, _)) = pids.get(k + 1) {
                    if *nfrom <= today {
                        let (next_sup, _) = sups(k + 1, main);
                        api.post(&format!("/enrolments/{enrolment}/handover-talks"), tt,
                                 json!({"held_on": day(*to, -2), "placement_id": pid, "next_placement_id": next,
                                        "outgoing_supervisor_id": sup_id, "incoming_supervisor_id": next_sup,
                                        "handover": {"strengths": "Trygg i bedömningar.", "areas_to_develop": "Prioritering vid hög belastning.",
                                                     "plan_next_placement": "Fler observerade bedömningar tidigt."}}))?;
                    }
                }
            }
        }
        // Regional teaching days, monthly.
        let months = (*since / 30).min(10);
        for m in 0..((months as f64 * complete).round() as i64) {
            api.post(&format!("/enrolments/{enrolment}/activities"), tt,
                     json!({"kind": "regional_teaching", "title": "Regional utbildningsdag", "start_date": day(start, 7 + 30 * m),
                            "checklist_item_id": item("Regional utbildningsdag (första tisdagen)"), "delmal": ["BT3", "BT4"]}))?;
        }
        if n == 2 {
            api.post(&format!("/enrolments/{enrolment}/activities"), tt,
                     json!({"kind": "course", "title": "Försäkringsmedicinsk dag", "start_date": day(start, 200),
                            "checklist_item_id": item("Försäkringsmedicinsk dag"), "delmal": ["BT16"]}))?;
            // Ready for the final assessment: assessor assigned, check-in held, draft waiting.
            api.post(&format!("/enrolments/{enrolment}/assignments"), &director.token,
                     json!({"user_id": assessor.id, "role": "external_assessor", "valid_from": today.to_string(), "valid_to": day(today, 90)}))?;
            let check_in = api.post(&format!("/enrolments/{enrolment}/final-check-ins"), tt,
                     json!({"held_on": day(today, -3), "notes": "Alla delmål genomgångna; underlagen är kompletta.", "agreed_actions": "Portföljen till extern bedömare."}))?;
            api.post(
                &format!("/final-check-ins/{}/confirm", id_of(&check_in)),
                &main.token,
                json!({}),
            )?;
            let js: Vec<Value> = (1..=18).map(|c| json!({"code": format!("BT{c}"), "judgement": "achieved", "comment": "Väl belagt i portföljen."})).collect();
            api.post(
                &format!("/enrolments/{enrolment}/final-assessments"),
                &assessor.token,
                json!({"mode": "external_assessor", "judgements": js, "decision": "achieved",
                            "rationale": "Samstämmiga underlag från alla fyra placeringarna."}),
            )?;
        }
    }
    Ok(())
}

/// The logins as the command prints them.
pub fn report(logins: &[Login], public_url: &str) -> String {
    let mut out = format!(
        "Demo region \"{REGION}\" is ready. Every account's password is {PASSWORD};\n\
         the second factor is TOTP: add the secret to an authenticator app (or `oathtool --totp -b SECRET`).\n\n"
    );
    for l in logins {
        out.push_str(&format!(
            "  {:<21} {:<22} {:<32} TOTP {}  {}\n",
            l.role, l.name, l.email, l.totp_secret, l.note
        ));
    }
    out.push_str(&format!(
        "\nSign in: POST /api/v1/auth/login {{\"email\", \"password\"}}, then POST /api/v1/auth/mfa/verify \
         {{\"mfa_token\", \"method\": \"totp\", \"code\"}}.\nAPI docs: /docs/ · frontend links point to {public_url}\n"
    ));
    out
}
