//! Issue 14 item 8: the kursledare (course leader) as signer. The trainee names the
//! kursledare of a course; the person is vetted as an assessor without an account is (the
//! main supervisor or a director of studies approves, declining hands the request
//! back); the link arrives in the SMTP sink and the kursledare confirms "took part and met
//! the kompetenskrav" with role kursledare, who and when; the confirmation is then
//! immutable, and the course certificate (JSON and PDF, å ä ö intact) names the
//! kursledare with their workplace. And the refusals: other trainee, other region's
//! director, unvetted, replayed, stale, forged and other-purpose links, two at once.
//! The test clock says 2026-11-24.

use std::sync::Barrier;

use serde_json::{json, Value};

use crate::certificates::{by_key, judged, lines, region, Region};
use crate::support::{TestApp, TestUser};

pub(crate) const KURSLEDARE: &str = "kare.ornberg@kursgivare.se";

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// An ST 2021 trainee with a course in their one placement (also used by
/// `privacy_erasure_courses`).
pub(crate) struct Course {
    pub(crate) r: Region,
    pub(crate) trainee: TestUser,
    pub(crate) main: TestUser,
    placement_sup: TestUser,
    pub(crate) enrolment: String,
    pub(crate) course: String,
}

pub(crate) fn course(regulation: &str, track: &str, delmal: &str) -> Course {
    let r = region();
    let unit = r.unit("Vårdcentral Årsta", &r.slso);
    let trainee = r.person("asa@sll.se", "trainee", "Åsa Ström");
    let main = r.person("goran@sll.se", "supervisor", "Göran Källström");
    let placement_sup = r.person("marta@sll.se", "supervisor", "Märta Åkesson");
    let template = r.st_template(regulation, "ST allmänmedicin");
    let e = r
        .app
        .post("/enrolments", Some(&r.director.access),
              json!({"trainee_id": trainee.id, "template_id": template, "track": track,
                     "start_date": "2021-06-01", "planned_end": "2026-11-30", "main_supervisor_id": main.id,
                     "placements": [{"placement_type": "allmanmedicin", "start_date": "2021-06-01",
                                     "end_date": "2026-11-30", "unit_id": unit, "supervisor_id": placement_sup.id}]}))
        .expect(201)
        .body;
    let enrolment = id(&e);
    let placement = id(&e["placements"][0]);
    let course = id(&r
        .app
        .post(
            &format!("/enrolments/{enrolment}/activities"),
            Some(&trainee.access),
            json!({"kind": "course", "title": "Kurs i palliativ vård för ST-läkare", "start_date": "2026-03-02",
                   "end_date": "2026-03-04", "placement_id": placement, "delmal": [delmal]}),
        )
        .expect(201)
        .body);
    Course {
        r,
        trainee,
        main,
        placement_sup,
        enrolment,
        course,
    }
}

impl Course {
    pub(crate) fn app(&self) -> &TestApp {
        &self.r.app
    }

    fn ask(&self, email: &str, name: &str, workplace: &str) -> Value {
        self.app()
            .post(
                &format!("/activities/{}/course-confirmation", self.course),
                Some(&self.trainee.access),
                json!({"kursledare_email": email, "kursledare_name": name, "kursledare_workplace": workplace}),
            )
            .expect(201)
            .body
    }

    /// The vetting record of `email` as `vetter` sees it pending.
    fn pending(&self, vetter: &TestUser, email: &str) -> String {
        let list = self
            .app()
            .get("/external-assessors", Some(&vetter.access))
            .expect(200);
        list.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|x| x["email"] == email)
            .map(id)
            .unwrap_or_else(|| panic!("{email} not pending: {}", list.text))
    }

    /// Names the kursledare, has the main supervisor approve them, and returns the link's
    /// token from the mail.
    pub(crate) fn vetted_link(&self) -> String {
        let asked = self.ask(KURSLEDARE, "Kåre Örnberg", "Läkarutbildning Väst, Göteborg");
        assert_eq!(asked["status"], "awaiting_vetting", "{asked}");
        let vetting = self.pending(&self.main, KURSLEDARE);
        let before = self.app().smtp.count_to(KURSLEDARE);
        self.app()
            .post(
                &format!("/external-assessors/{vetting}/approve"),
                Some(&self.main.access),
                json!({}),
            )
            .expect(200);
        self.app()
            .smtp
            .wait_for(KURSLEDARE, before)
            .find_token_after("token=")
            .expect("link")
    }

    pub(crate) fn confirmation(&self, user: &TestUser) -> Value {
        self.app()
            .get(
                &format!("/activities/{}/course-confirmation", self.course),
                Some(&user.access),
            )
            .expect(200)
            .body
    }

    /// An ST final assessment decided "achieved" on every delmål of the course's
    /// enrolment (a head of department and an external assessor assigned first); returns
    /// its id, whose certificates include the course's.
    pub(crate) fn decide_st(&self) -> String {
        let head = self.r.person("vc@sll.se", "supervisor", "Björn Älvdal");
        let assessor = self
            .r
            .person("spec@uu.se", "external_assessor", "Åke Ängård");
        self.r.assign(&self.enrolment, &head, "head_of_department");
        self.r
            .assign(&self.enrolment, &assessor, "external_assessor");
        let codes: Vec<String> = [
            "a1", "a2", "a3", "a4", "a5", "a6", "a7", "b1", "b2", "b3", "b4",
        ]
        .iter()
        .map(|x| format!("ST{x}"))
        .collect();
        self.r.decide(
            &self.enrolment,
            &self.trainee,
            &self.main,
            &assessor,
            json!({"mode": "external_assessor", "decision": "achieved", "judgements": judged(&codes)}),
            &[&assessor, &self.main],
        )
    }

    pub(crate) fn summary_entry(&self) -> Value {
        let s = self
            .app()
            .get(
                &format!("/enrolments/{}/application-summary", self.enrolment),
                Some(&self.trainee.access),
            )
            .expect(200)
            .body;
        let key = format!("utbildningsaktivitet-{}", self.course);
        s["certificates"]
            .as_array()
            .expect("certificates")
            .iter()
            .find(|c| c["key"] == key)
            .unwrap_or_else(|| panic!("no {key}: {s}"))
            .clone()
    }
}

#[test]
fn the_kursledare_is_vetted_confirms_by_link_and_signs_the_course_certificate() {
    let c = course("st-2021", "st_2021", "STb1");
    let app = c.app();
    // Before: the handledare fallback on "kursledare eller handledare".
    let before = c.summary_entry();
    assert_eq!(
        before["signatures"][0]["role"],
        "kursledare eller handledare"
    );
    assert_eq!(before["signatures"][0]["name"], "Märta Åkesson");

    // The trainee names the kursledare: the person is unvetted, so no link goes out yet;
    // the main supervisor is told.
    let to_main = app.smtp.count_to(&c.main.email);
    let asked = c.ask(KURSLEDARE, "Kåre Örnberg", "Läkarutbildning Väst, Göteborg");
    assert_eq!(asked["status"], "awaiting_vetting");
    assert_eq!(asked["role"], "kursledare");
    assert_eq!(asked["kursledare_name"], "Kåre Örnberg");
    let mail = app.smtp.wait_for(&c.main.email, to_main);
    assert!(
        mail.subject().contains("Kursledare att godkänna"),
        "{}",
        mail.subject()
    );
    assert_eq!(app.smtp.count_to(KURSLEDARE), 0);

    // The main supervisor approves: the link arrives.
    let vetting = c.pending(&c.main, KURSLEDARE);
    let before = app.smtp.count_to(KURSLEDARE);
    app.post(
        &format!("/external-assessors/{vetting}/approve"),
        Some(&c.main.access),
        json!({}),
    )
    .expect(200);
    let mail = app.smtp.wait_for(KURSLEDARE, before);
    assert!(
        mail.subject().contains("Kurs i palliativ vård"),
        "{}",
        mail.subject()
    );
    assert!(
        mail.body_text().contains("Åsa Ström"),
        "{}",
        mail.body_text()
    );
    let token = mail.find_token_after("token=").expect("link");
    let waiting = c.confirmation(&c.placement_sup);
    assert_eq!(waiting["status"], "awaiting_confirmation");
    assert_eq!(waiting["vetted_by"], c.main.id.as_str());

    // The kursledare opens the link and confirms.
    let view = app
        .get(&format!("/auth/course-confirmation-links/{token}"), None)
        .expect(200)
        .body;
    assert_eq!(view["course_title"], "Kurs i palliativ vård för ST-läkare");
    assert_eq!(view["trainee_name"], "Åsa Ström");
    assert_eq!(view["email"], KURSLEDARE);
    assert_eq!(view["delmal"], json!(["STb1"]));
    let statement = view["statement_sv"].as_str().expect("statement");
    assert!(
        statement.contains("Åsa Ström") && statement.contains("kompetenskrav"),
        "{statement}"
    );
    let to_trainee = app.smtp.count_to(&c.trainee.email);
    let confirmed = app
        .post(
            &format!("/auth/course-confirmation-links/{token}/confirm"),
            None,
            json!({}),
        )
        .expect(200)
        .body;
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["role"], "kursledare");
    assert_eq!(confirmed["kursledare_email"], KURSLEDARE);
    assert!(confirmed["confirmed_at"].is_string(), "{confirmed}");
    assert_eq!(
        confirmed["content_hash"].as_str().map(str::len),
        Some(64),
        "{confirmed}"
    );
    app.smtp.wait_for(&c.trainee.email, to_trainee);
    assert_eq!(c.confirmation(&c.trainee), confirmed);

    // Immutable: the link is used, the course cannot change, the request cannot be redone.
    app.post(
        &format!("/auth/course-confirmation-links/{token}/confirm"),
        None,
        json!({}),
    )
    .expect(409);
    app.get(&format!("/auth/course-confirmation-links/{token}"), None)
        .expect(409);
    app.patch(
        &format!("/activities/{}", c.course),
        Some(&c.trainee.access),
        json!({"title": "Något annat"}),
        &[],
    )
    .expect(409);
    app.delete(
        &format!("/activities/{}", c.course),
        Some(&c.trainee.access),
    )
    .expect(409);
    app.post(
        &format!("/activities/{}/course-confirmation", c.course),
        Some(&c.trainee.access),
        json!({"kursledare_email": "annan@kursgivare.se", "kursledare_name": "Annan", "kursledare_workplace": "X"}),
    )
    .expect(409);
    assert_eq!(c.confirmation(&c.main), confirmed);
    // The enrolment's history records it, by the link's address.
    let changes = app
        .get(
            &format!("/enrolments/{}/changes?limit=200", c.enrolment),
            Some(&c.r.director.access),
        )
        .expect(200);
    assert!(
        changes.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|x| x["entity_id"] == c.course.as_str() && x["action"] == "confirmed"),
        "{}",
        changes.text
    );

    // The course certificate names the kursledare, with their workplace.
    let entry = c.summary_entry();
    assert_eq!(
        entry["signatures"][0]["role"],
        "kursledare eller handledare"
    );
    assert_eq!(entry["signatures"][0]["name"], "Kåre Örnberg");
    assert_eq!(
        entry["signatures"][0]["workplace"],
        "Läkarutbildning Väst, Göteborg"
    );
    assert!(entry["signatures"][0]["user_id"].is_null());

    // After the decision: the certificate's JSON and PDF.
    let fa = c.decide_st();
    let drafts = c.r.certificates(&fa, &c.trainee);
    let key = format!("utbildningsaktivitet-{}", c.course);
    let cert = by_key(&drafts, &key);
    assert_eq!(
        lines(cert),
        [(
            "kursledare eller handledare".to_string(),
            Some("Kåre Örnberg".to_string())
        )]
    );
    assert_eq!(
        cert["signatures"][0]["workplace"],
        "Läkarutbildning Väst, Göteborg"
    );
    let text = c.r.pdf_text(&fa, &key, &c.trainee);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "Intyg om genomförd utbildningsaktivitet och uppfyllda kompetenskrav",
        "Åsa Ström",
        "Kurs i palliativ vård för ST-läkare",
        "kursledare eller handledare: Kåre Örnberg",
        "Tjänsteställe: Läkarutbildning Väst, Göteborg",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

#[test]
fn a_2015_course_gets_the_kursledare_a_director_approved_on_its_kursledare_line() {
    let c = course("st-2015", "st_2015", "a1");
    let app = c.app();
    // Before: a kursledare-only line is left to sign by hand.
    assert_eq!(c.summary_entry()["signatures"][0]["name"], Value::Null);
    c.ask(KURSLEDARE, "Kåre Örnberg", "Kursgivare Ängelholm");
    // A director of studies over the organisation approves.
    let vetting = c.pending(&c.r.director, KURSLEDARE);
    let before = app.smtp.count_to(KURSLEDARE);
    app.post(
        &format!("/external-assessors/{vetting}/approve"),
        Some(&c.r.director.access),
        json!({}),
    )
    .expect(200);
    let token = app
        .smtp
        .wait_for(KURSLEDARE, before)
        .find_token_after("token=")
        .expect("link");
    app.post(
        &format!("/auth/course-confirmation-links/{token}/confirm"),
        None,
        json!({}),
    )
    .expect(200);
    let entry = c.summary_entry();
    assert_eq!(entry["signatures"][0]["role"], "kursledare");
    assert_eq!(entry["signatures"][0]["name"], "Kåre Örnberg");
    assert_eq!(entry["signatures"][0]["workplace"], "Kursgivare Ängelholm");

    // A second course to an already vetted kursledare: the link goes out at once, and
    // the vetted name is the one used.
    let second = id(&app
        .post(
            &format!("/enrolments/{}/activities", c.enrolment),
            Some(&c.trainee.access),
            json!({"kind": "course", "title": "Kurs i ledarskap", "start_date": "2026-05-04", "delmal": ["a2"]}),
        )
        .expect(201)
        .body);
    let before = app.smtp.count_to(KURSLEDARE);
    let asked = app
        .post(
            &format!("/activities/{second}/course-confirmation"),
            Some(&c.trainee.access),
            json!({"kursledare_email": "Kare.Ornberg@Kursgivare.se"}),
        )
        .expect(201)
        .body;
    assert_eq!(asked["status"], "awaiting_confirmation");
    assert_eq!(asked["kursledare_name"], "Kåre Örnberg");
    app.smtp.wait_for(KURSLEDARE, before);
}

#[test]
fn only_the_trainee_asks_and_only_readers_of_the_enrolment_see_it() {
    let c = course("st-2021", "st_2021", "STb1");
    let app = c.app();
    let other = c.r.person("olle@sll.se", "trainee", "Olle Ödman");
    let path = format!("/activities/{}/course-confirmation", c.course);
    let body = json!({"kursledare_email": KURSLEDARE, "kursledare_name": "Kåre Örnberg",
                      "kursledare_workplace": "Läkarutbildning Väst"});
    // Nothing asked yet: 404 even for the trainee.
    app.get(&path, Some(&c.trainee.access)).expect(404);
    // Another trainee: the course does not exist for them.
    app.post(&path, Some(&other.access), body.clone())
        .expect(404);
    // The placement supervisor reads the enrolment but does not ask for the trainee.
    app.post(&path, Some(&c.placement_sup.access), body.clone())
        .expect(403);
    c.ask(KURSLEDARE, "Kåre Örnberg", "Läkarutbildning Väst");
    app.get(&path, Some(&other.access)).expect(404);
    app.get(&path, Some(&c.placement_sup.access)).expect(200);

    // Another region's director neither sees nor vets the person, nor the request.
    let skane_email = "admin@regionskane.se";
    let invitation = app.bootstrap_admin(skane_email, "Region Skåne");
    let skane = app.accept_with_totp(&invitation, skane_email);
    let me = app.get("/me", Some(&skane.access)).expect(200);
    let skane_region = me.body["roles"][0]["organisation_id"]
        .as_str()
        .expect("region")
        .to_string();
    let provider = app.create_org(
        &skane,
        "care_provider",
        "Region Skåne vård",
        Some(&skane_region),
    );
    let director = app.join(
        &skane,
        "studierektor@skane.se",
        "director_of_studies",
        &provider,
    );
    let list = app
        .get("/external-assessors", Some(&director.access))
        .expect(200);
    assert_eq!(list.body["items"], json!([]), "{}", list.text);
    let vetting = c.pending(&c.main, KURSLEDARE);
    app.post(
        &format!("/external-assessors/{vetting}/approve"),
        Some(&director.access),
        json!({}),
    )
    .expect(404);
    app.get(&path, Some(&director.access)).expect(404);
    // Still unvetted: no link went out.
    assert_eq!(app.smtp.count_to(KURSLEDARE), 0);
    assert_eq!(c.confirmation(&c.trainee)["status"], "awaiting_vetting");

    // Only a course has a kursledare; the trainee's own address is no kursledare.
    let ausk = id(&app
        .post(
            &format!("/enrolments/{}/activities", c.enrolment),
            Some(&c.trainee.access),
            json!({"kind": "observership", "title": "Auskultation", "start_date": "2026-04-06"}),
        )
        .expect(201)
        .body);
    app.post(
        &format!("/activities/{ausk}/course-confirmation"),
        Some(&c.trainee.access),
        body.clone(),
    )
    .expect_problem(422, "validation");
    let own = app
        .post(
            &path,
            Some(&c.trainee.access),
            json!({"kursledare_email": c.trainee.email, "kursledare_name": "Jag", "kursledare_workplace": "Här"}),
        )
        .expect_problem(422, "validation");
    assert_eq!(
        own.body["errors"][0]["field"], "kursledare_email",
        "{}",
        own.text
    );
}

#[test]
fn declining_the_kursledare_hands_the_request_back() {
    let c = course("st-2021", "st_2021", "STb1");
    let app = c.app();
    let doubtful = "kursledare.kanske@gmail.com";
    c.ask(doubtful, "Kim Kanske", "Okänd kursgivare");
    let vetting = c.pending(&c.main, doubtful);
    let to_trainee = app.smtp.count_to(&c.trainee.email);
    app.post(
        &format!("/external-assessors/{vetting}/decline"),
        Some(&c.main.access),
        json!({}),
    )
    .expect(200);
    let mail = app.smtp.wait_for(&c.trainee.email, to_trainee);
    assert!(
        mail.subject().contains("Kursledare inte godkänd"),
        "{}",
        mail.subject()
    );
    assert_eq!(c.confirmation(&c.trainee)["status"], "returned");
    assert_eq!(app.smtp.count_to(doubtful), 0);
    // The declined person cannot be asked again.
    let again = app
        .post(
            &format!("/activities/{}/course-confirmation", c.course),
            Some(&c.trainee.access),
            json!({"kursledare_email": "kursledare.kanske@gmail.com"}),
        )
        .expect_problem(422, "validation");
    assert_eq!(again.body["errors"][0]["field"], "kursledare_email");
    // Someone else: a new request.
    let token = c.vetted_link();
    app.get(&format!("/auth/course-confirmation-links/{token}"), None)
        .expect(200);
}

#[test]
fn stale_forged_and_other_purpose_links_are_refused() {
    let c = course("st-2021", "st_2021", "STb1");
    let app = c.app();
    let token = c.vetted_link();
    // Forged.
    app.post(
        "/auth/course-confirmation-links/bm90LWEtcmVhbC10b2tlbg/confirm",
        None,
        json!({}),
    )
    .expect_problem(422, "invalid-token");
    // Another purpose's link: an assessment's signing link confirms no course, and a
    // course's link signs no assessment.
    let a = app
        .post(&format!("/enrolments/{}/assessments", c.enrolment), Some(&c.trainee.access),
              json!({"instrument": "mini_cex", "performed_on": "2026-11-01", "assessor_email": KURSLEDARE}))
        .expect(201);
    assert_eq!(a.body["status"], "awaiting_signature", "{}", a.text);
    let signing = app
        .smtp
        .wait_for(KURSLEDARE, 1)
        .find_token_after("token=")
        .expect("signing link");
    app.post(
        &format!("/auth/course-confirmation-links/{signing}/confirm"),
        None,
        json!({}),
    )
    .expect_problem(422, "invalid-token");
    app.post(
        &format!("/auth/signing-links/{token}/sign"),
        None,
        json!({"ratings": {"communication": 6}, "feedback_next_steps": "Fortsätt."}),
    )
    .expect_problem(422, "invalid-token");
    // Asking again replaces the request: the first link stops working.
    let before = app.smtp.count_to(KURSLEDARE);
    c.ask(KURSLEDARE, "Kåre Örnberg", "Läkarutbildning Väst");
    let fresh = app
        .smtp
        .wait_for(KURSLEDARE, before)
        .find_token_after("token=")
        .expect("link");
    app.get(&format!("/auth/course-confirmation-links/{token}"), None)
        .expect_problem(422, "invalid-token");
    // Stale: past its 14 days.
    app.advance(15 * 86_400);
    app.get(&format!("/auth/course-confirmation-links/{fresh}"), None)
        .expect_problem(422, "invalid-token");
    app.post(
        &format!("/auth/course-confirmation-links/{fresh}/confirm"),
        None,
        json!({}),
    )
    .expect_problem(422, "invalid-token");
    // (The test clock moved past the access token's life: sign in again.)
    let trainee = app.login_totp(&c.trainee);
    assert_eq!(c.confirmation(&trainee)["status"], "awaiting_confirmation");
}

#[test]
fn two_confirmations_at_once_give_one_success_and_one_conflict() {
    let c = course("st-2021", "st_2021", "STb1");
    let token = c.vetted_link();
    let url = format!(
        "{}/api/v1/auth/course-confirmation-links/{token}/confirm",
        c.app().base
    );
    let barrier = Barrier::new(2);
    let mut answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (url, barrier) = (url.clone(), &barrier);
                scope.spawn(move || {
                    let req = ureq::AgentBuilder::new().build().post(&url);
                    barrier.wait();
                    let r = TestApp::read(req.send_json(json!({})));
                    (r.status, r.body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    answers.sort_by_key(|(s, _)| *s);
    assert_eq!(
        answers.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [200, 409],
        "{answers:?}"
    );
    assert_eq!(answers[0].1["status"], "confirmed");
    let changes = c
        .app()
        .get(
            &format!("/enrolments/{}/changes?limit=200", c.enrolment),
            Some(&c.r.director.access),
        )
        .expect(200);
    let confirmed = changes.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|x| x["entity_id"] == c.course.as_str() && x["action"] == "confirmed")
        .count();
    assert_eq!(confirmed, 1, "{}", changes.text);
}
