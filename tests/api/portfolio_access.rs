//! Who may do what with a trainee's portfolio: every endpoint of learning activities,
//! attachments, assessments, the signature queue, supervision sessions and handover talks,
//! sent by every kind of caller (the trainee and another trainee; the current, the former
//! and an unrelated supervisor; the trainee's director of studies and the director of
//! another care provider; the administrator; the external assessor; a supervisor who
//! only took part in a talk; nobody signed in), each checked against the status and
//! problem type they must get.
//!
//! The rules: whoever may read the enrolment today (the trainee, the supervisors assigned
//! today, directors and administrators of the organisation, the assigned external
//! assessor) reads its records; anyone else gets 404, so they do not learn that the
//! records exist; nobody signed in gets 401. Of those who see a record, only the one whose
//! part it is changes it (the trainee their activities, the named assessor signs); the
//! others get 403. A named assessor keeps an assessment they were asked for, and a
//! participant keeps a talk they took part in, after their assignment ends.
//!
//! Each test collects every wrong answer and fails at the end with all of them, so one
//! run shows the whole matrix.

use std::cell::RefCell;
use std::fmt;

use serde_json::{json, Value};

use crate::support::{Resp, TestApp, TestUser};

use Who::*;

const PROBLEMS: &str = "https://eportfolio.example/problems/";

/// The callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// T, whose portfolio it is.
    Trainee,
    /// U, another trainee at the same care provider, with an enrolment of their own.
    OtherTrainee,
    /// T's main supervisor from today (2026-11-24).
    Current,
    /// T's main supervisor from 2026-09-01 until today.
    Former,
    /// A supervisor at the same care provider who supervises U, not T.
    Unrelated,
    /// Director of studies of T's care provider (A).
    DirectorA,
    /// Director of studies of another care provider (B).
    DirectorB,
    /// Administrator of the region both care providers belong to.
    Admin,
    /// The external assessor assigned to T's enrolment.
    Assessor,
    /// A supervisor named as incoming supervisor in T's handover talk, assigned to nothing.
    Incoming,
    /// No token.
    Anonymous,
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trainee => "trainee T",
            OtherTrainee => "other trainee U",
            Current => "current main supervisor",
            Former => "former main supervisor",
            Unrelated => "unrelated supervisor",
            DirectorA => "director of studies A",
            DirectorB => "director of another care provider (B)",
            Admin => "administrator",
            Assessor => "external assessor",
            Incoming => "incoming supervisor (talk participant only)",
            Anonymous => "anonymous",
        })
    }
}

const EVERYONE: [Who; 11] = [
    Trainee,
    OtherTrainee,
    Current,
    Former,
    Unrelated,
    DirectorA,
    DirectorB,
    Admin,
    Assessor,
    Incoming,
    Anonymous,
];

/// A read of T's records: those who may read the enrolment get 200, everyone else 404.
const READ: &[(Who, u16)] = &[
    (Anonymous, 401),
    (OtherTrainee, 404),
    (Former, 404),
    (Unrelated, 404),
    (DirectorB, 404),
    (Incoming, 404),
    (Trainee, 200),
    (Current, 200),
    (DirectorA, 200),
    (Admin, 200),
    (Assessor, 200),
];

/// Refusals of what only the trainee does: 403 for those who see T's enrolment, 404 for
/// those who may not know it exists. The trainee's own request follows separately.
const NOT_THE_TRAINEE: &[(Who, u16)] = &[
    (Anonymous, 401),
    (OtherTrainee, 404),
    (Former, 404),
    (Unrelated, 404),
    (DirectorB, 404),
    (Incoming, 404),
    (Current, 403),
    (DirectorA, 403),
    (Admin, 403),
    (Assessor, 403),
];

/// Refusals of what only the named assessor (or the signer) does: the trainee too.
const NOT_THE_ASSESSOR: &[(Who, u16)] = &[
    (Anonymous, 401),
    (OtherTrainee, 404),
    (Former, 404),
    (Unrelated, 404),
    (DirectorB, 404),
    (Incoming, 404),
    (Trainee, 403),
    (DirectorA, 403),
    (Admin, 403),
    (Assessor, 403),
];

/// Refusals of what only the trainee and the named assessor do (editing an assessment).
const NEITHER_TRAINEE_NOR_ASSESSOR: &[(Who, u16)] = &[
    (Anonymous, 401),
    (OtherTrainee, 404),
    (Former, 404),
    (Unrelated, 404),
    (DirectorB, 404),
    (Incoming, 404),
    (DirectorA, 403),
    (Admin, 403),
    (Assessor, 403),
];

/// Refusals of what only the participants of a talk (T and the current supervisor) do.
const NOT_A_PARTICIPANT: &[(Who, u16)] = &[
    (Anonymous, 401),
    (OtherTrainee, 404),
    (Former, 404),
    (Unrelated, 404),
    (DirectorB, 404),
    (Incoming, 404),
    (DirectorA, 403),
    (Admin, 403),
    (Assessor, 403),
];

/// Refusals of starting an assessment or a supervision session: "the trainee or their
/// supervisors". Directors and administrators see the enrolment but supervise nobody.
const NOT_TRAINEE_OR_SUPERVISOR: &[(Who, u16)] = &[
    (Anonymous, 401),
    (OtherTrainee, 404),
    (Former, 404),
    (Unrelated, 404),
    (DirectorB, 404),
    (Incoming, 404),
    (Assessor, 403),
    (DirectorA, 403),
    (Admin, 403),
];

/// `table` with the statuses of some callers changed.
fn but(table: &[(Who, u16)], changes: &[(Who, u16)]) -> Vec<(Who, u16)> {
    table
        .iter()
        .map(|&(who, status)| {
            changes
                .iter()
                .find(|(w, _)| *w == who)
                .map_or((who, status), |&c| c)
        })
        .collect()
}

fn problem_kind(status: u16) -> &'static str {
    match status {
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not-found",
        409 => "conflict",
        422 => "validation",
        _ => "?",
    }
}

enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

/// One request, sent by different callers.
struct Req {
    what: &'static str,
    method: &'static str,
    path: String,
    body: Body,
}

impl fmt::Display for Req {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.method, self.path, self.what)
    }
}

fn get(what: &'static str, path: impl Into<String>) -> Req {
    Req {
        what,
        method: "GET",
        path: path.into(),
        body: Body::None,
    }
}

fn post(what: &'static str, path: impl Into<String>, body: Value) -> Req {
    Req {
        what,
        method: "POST",
        path: path.into(),
        body: Body::Json(body),
    }
}

fn patch(what: &'static str, path: impl Into<String>, body: Value) -> Req {
    Req {
        what,
        method: "PATCH",
        path: path.into(),
        body: Body::Json(body),
    }
}

fn delete(what: &'static str, path: impl Into<String>) -> Req {
    Req {
        what,
        method: "DELETE",
        path: path.into(),
        body: Body::None,
    }
}

const PDF: &[u8] = b"%PDF-1.4\n% Kursintyg, Forsakringsmedicinsk dag\n%%EOF\n";

fn id_of(r: &Resp) -> String {
    r.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {}", r.text))
        .to_string()
}

fn short(text: &str) -> String {
    if text.chars().count() > 400 {
        format!("{}...", text.chars().take(400).collect::<String>())
    } else {
        text.to_string()
    }
}

/// Everyone, T's enrolment with its history, and U's.
struct Cast {
    app: TestApp,
    admin: TestUser,
    director_a: TestUser,
    director_b: TestUser,
    trainee: TestUser,
    other_trainee: TestUser,
    current: TestUser,
    former: TestUser,
    unrelated: TestUser,
    assessor: TestUser,
    incoming: TestUser,
    /// T's enrolment.
    enrolment: String,
    /// U's enrolment (main supervisor: the unrelated supervisor).
    other_enrolment: String,
    /// T's first placement (allmänmedicin) and the next one (akut).
    placement: String,
    next_placement: String,
    /// A Mini-CEX T asked the former supervisor for, signed while they were assigned.
    former_assessment: String,
    /// A supervision session T held with the former supervisor while they were assigned;
    /// T has confirmed it, the former supervisor not yet.
    former_session: String,
    failures: RefCell<Vec<String>>,
}

impl Cast {
    fn start() -> Cast {
        let app = TestApp::start();
        let (admin, region) = app.admin();
        let provider_a =
            app.create_org(&admin, "care_provider", "Danderyds sjukhus", Some(&region));
        let provider_b = app.create_org(
            &admin,
            "care_provider",
            "Karolinska Universitetssjukhuset",
            Some(&region),
        );
        let director_a = app.join(
            &admin,
            "studierektor@danderyd.example",
            "director_of_studies",
            &provider_a,
        );
        let director_b = app.join(
            &admin,
            "studierektor@karolinska.example",
            "director_of_studies",
            &provider_b,
        );
        let template = app.stockholm_bt_template(&director_a, &provider_a);
        let a = &provider_a;
        let trainee = app.join(&director_a, "bt.lakare@danderyd.example", "trainee", a);
        let other_trainee = app.join(&director_a, "annan.bt@danderyd.example", "trainee", a);
        let former = app.join(
            &director_a,
            "tidigare.hhl@danderyd.example",
            "supervisor",
            a,
        );
        let current = app.join(&director_a, "hhl@danderyd.example", "supervisor", a);
        let unrelated = app.join(&director_a, "annan.hhl@danderyd.example", "supervisor", a);
        let incoming = app.join(&director_a, "tjg.akut@gmail.com", "supervisor", a);
        let assessor = app.join(
            &director_a,
            "extern.bedomare@danderyd.example",
            "external_assessor",
            a,
        );

        // T starts on 2026-09-01 with the former supervisor as main supervisor.
        let enrolled = app
            .post(
                "/enrolments",
                Some(&director_a.access),
                json!({
                    "trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                    "start_date": "2026-09-01", "planned_end": "2027-08-31",
                    "main_supervisor_id": former.id,
                    "placements": [
                        {"placement_type": "allmanmedicin", "start_date": "2026-09-01", "end_date": "2026-12-31"},
                        {"placement_type": "akut", "start_date": "2027-01-01", "end_date": "2027-04-30"}
                    ]
                }),
            )
            .expect(201);
        let enrolment = id_of(&enrolled);
        let placement = enrolled.body["placements"][0]["id"]
            .as_str()
            .expect("placement")
            .to_string();
        let next_placement = enrolled.body["placements"][1]["id"]
            .as_str()
            .expect("placement")
            .to_string();

        // While the former supervisor is assigned: a Mini-CEX they sign, and a session.
        let asked = app
            .post(
                &format!("/enrolments/{enrolment}/assessments"),
                Some(&trainee.access),
                json!({"instrument": "mini_cex", "performed_on": "2026-10-14", "assessor_id": former.id,
                       "delmal": ["BT1"], "trainee_reflection": "Jag glömde fråga om allergier."}),
            )
            .expect(201);
        let former_assessment = id_of(&asked);
        let signed = app
            .post(
                &format!("/assessments/{former_assessment}/sign"),
                Some(&former.access),
                json!({"ratings": {"communication": 7, "history taking (anamnes)": 6},
                       "feedback_strengths": "Strukturerad anamnes.",
                       "feedback_next_steps": "Öva riktat status vid buksmärta."}),
            )
            .expect(200);
        assert_eq!(signed.body["status"], "signed");
        let session = app
            .post(
                &format!("/enrolments/{enrolment}/supervision-sessions"),
                Some(&trainee.access),
                json!({"held_on": "2026-10-20", "participant_ids": [former.id],
                       "topics": ["Bemötande i svåra samtal"], "notes": "Ett svårt besked."}),
            )
            .expect(201);
        let former_session = id_of(&session);

        // From today the current supervisor takes over: the former one's assignment ends.
        let assigned = app
            .post(
                &format!("/enrolments/{enrolment}/assignments"),
                Some(&director_a.access),
                json!({"user_id": current.id, "role": "main_supervisor", "valid_from": "2026-11-24"}),
            )
            .expect(201);
        assert_eq!(assigned.body["active"], true, "{}", assigned.text);
        let plan = app
            .get(
                &format!("/enrolments/{enrolment}"),
                Some(&director_a.access),
            )
            .expect(200);
        let formers: Vec<&Value> = plan.body["assignments"]
            .as_array()
            .expect("assignments")
            .iter()
            .filter(|x| x["user_id"] == former.id.as_str())
            .collect();
        assert_eq!(formers.len(), 1, "{}", plan.text);
        assert_eq!(formers[0]["active"], false, "{}", plan.text);
        assert_eq!(formers[0]["valid_to"], "2026-11-24", "{}", plan.text);

        // The external assessor, never involved, is assigned.
        app.post(
            &format!("/enrolments/{enrolment}/assignments"),
            Some(&director_a.access),
            json!({"user_id": assessor.id, "role": "external_assessor"}),
        )
        .expect(201);

        // U has an enrolment of their own, supervised by the unrelated supervisor.
        let other = app
            .post(
                "/enrolments",
                Some(&director_a.access),
                json!({"trainee_id": other_trainee.id, "template_id": template, "track": "bt_standalone",
                       "start_date": "2026-09-01", "planned_end": "2027-08-31",
                       "main_supervisor_id": unrelated.id}),
            )
            .expect(201);
        let other_enrolment = id_of(&other);

        Cast {
            app,
            admin,
            director_a,
            director_b,
            trainee,
            other_trainee,
            current,
            former,
            unrelated,
            assessor,
            incoming,
            enrolment,
            other_enrolment,
            placement,
            next_placement,
            former_assessment,
            former_session,
            failures: RefCell::new(Vec::new()),
        }
    }

    fn user(&self, who: Who) -> Option<&TestUser> {
        match who {
            Trainee => Some(&self.trainee),
            OtherTrainee => Some(&self.other_trainee),
            Current => Some(&self.current),
            Former => Some(&self.former),
            Unrelated => Some(&self.unrelated),
            DirectorA => Some(&self.director_a),
            DirectorB => Some(&self.director_b),
            Admin => Some(&self.admin),
            Assessor => Some(&self.assessor),
            Incoming => Some(&self.incoming),
            Anonymous => None,
        }
    }

    fn send(&self, who: Who, req: &Req) -> Resp {
        let token = self.user(who).map(|u| u.access.as_str());
        match &req.body {
            Body::None => self.app.send(req.method, &req.path, token, None, &[]),
            Body::Json(v) => self.app.send(req.method, &req.path, token, Some(v), &[]),
            Body::Raw(content_type, bytes) => {
                self.app
                    .send_raw(req.method, &req.path, token, content_type, bytes)
            }
        }
    }

    fn fail(&self, message: String) {
        eprintln!("FAILED: {message}");
        self.failures.borrow_mut().push(message);
    }

    /// Whether `r` is the answer `who` must get to `req`; records it when not.
    fn judge(&self, who: Who, req: &Req, status: u16, r: &Resp) -> bool {
        let mut wrong = Vec::new();
        if r.status != status {
            wrong.push(format!("status {}", r.status));
        } else if status >= 400 {
            let kind = problem_kind(status);
            if r.header("content-type") != Some("application/problem+json") {
                wrong.push(format!("content type {:?}", r.header("content-type")));
            }
            if r.body["type"] != format!("{PROBLEMS}{kind}") {
                wrong.push(format!("problem type {}", r.body["type"]));
            }
            if !r.body["request_id"].is_string() {
                wrong.push("no request_id".into());
            }
            if status == 401 && r.header("www-authenticate") != Some("Bearer") {
                wrong.push("no WWW-Authenticate: Bearer".into());
            }
        }
        if wrong.is_empty() {
            return true;
        }
        let expected = if status >= 400 {
            format!("{status} {}", problem_kind(status))
        } else {
            status.to_string()
        };
        self.fail(format!(
            "{who}: {req} must get {expected}, got {}; body: {}",
            wrong.join(", "),
            short(&r.text)
        ));
        false
    }

    /// Sends `req` as each caller of `table` in turn, in that order, and records every
    /// answer that is not the one the table says.
    fn check(&self, req: &Req, table: &[(Who, u16)]) -> Vec<(Who, Resp)> {
        table
            .iter()
            .map(|&(who, status)| {
                let r = self.send(who, req);
                self.judge(who, req, status, &r);
                (who, r)
            })
            .collect()
    }

    /// Like `check` for one caller whose answer the test builds on: a wrong one ends the
    /// test at once (with every failure so far).
    #[track_caller]
    fn must(&self, who: Who, req: &Req, status: u16) -> Resp {
        let r = self.send(who, req);
        if !self.judge(who, req, status, &r) {
            panic!(
                "cannot go on; failures so far:\n{}",
                self.failures.borrow().join("\n")
            );
        }
        r
    }

    /// Every successful answer in `rs` is the record `id`.
    fn each_is(&self, req: &Req, rs: &[(Who, Resp)], id: &str) {
        for (who, r) in rs.iter().filter(|(_, r)| r.status < 300) {
            if r.body["id"] != id {
                self.fail(format!(
                    "{who}: {req} answered another record than {id}: {}",
                    short(&r.text)
                ));
            }
        }
    }

    /// Every successful answer in `rs` is a page listing `id`.
    fn each_lists(&self, req: &Req, rs: &[(Who, Resp)], id: &str) {
        for (who, r) in rs.iter().filter(|(_, r)| r.status < 300) {
            let listed = r.body["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|i| i["id"] == id));
            if !listed {
                self.fail(format!(
                    "{who}: {req} does not list {id}: {}",
                    short(&r.text)
                ));
            }
        }
    }

    /// Fails the test with every wrong answer collected.
    fn finish(self) {
        let failures = self.failures.borrow();
        assert!(
            failures.is_empty(),
            "{} check(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

#[test]
fn learning_activities_and_attachments_are_written_by_the_trainee_alone() {
    let c = Cast::start();
    let e = &c.enrolment;

    let create = post(
        "log a learning activity",
        format!("/enrolments/{e}/activities"),
        json!({"kind": "course", "title": "Försäkringsmedicinsk dag", "start_date": "2026-10-06",
               "reflection": "Sjukskrivningsprocessen och intygen.", "delmal": ["BT16"]}),
    );
    c.check(&create, NOT_THE_TRAINEE);
    let activity = id_of(&c.must(Trainee, &create, 201));

    let list = get("list activities", format!("/enrolments/{e}/activities"));
    let rs = c.check(&list, READ);
    c.each_lists(&list, &rs, &activity);
    let one = get("read an activity", format!("/activities/{activity}"));
    let rs = c.check(&one, READ);
    c.each_is(&one, &rs, &activity);

    let edit = patch(
        "edit an activity",
        format!("/activities/{activity}"),
        json!({"title": "Försäkringsmedicinsk dag, Danderyd"}),
    );
    c.check(&edit, NOT_THE_TRAINEE);
    let edited = c.must(Trainee, &edit, 200);
    assert_eq!(edited.body["title"], "Försäkringsmedicinsk dag, Danderyd");
    assert_eq!(
        edited.body["version"], 2,
        "only the trainee's edit was saved"
    );

    let upload = Req {
        what: "attach a PDF to an activity",
        method: "POST",
        path: format!("/activities/{activity}/attachments?filename=kursintyg.pdf"),
        body: Body::Raw("application/pdf", PDF.to_vec()),
    };
    c.check(&upload, NOT_THE_TRAINEE);
    let attachment = id_of(&c.must(Trainee, &upload, 201));
    let with_file = c.must(Trainee, &one, 200);
    let files: Vec<&Value> = with_file.body["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .collect();
    assert_eq!(files.len(), 1, "only the trainee's upload was stored");
    assert_eq!(files[0]["id"], attachment.as_str());

    let download = get(
        "download an attachment",
        format!("/attachments/{attachment}"),
    );
    for (who, r) in c.check(&download, READ) {
        if r.status == 200 && r.text.as_bytes() != PDF {
            c.fail(format!("{who}: {download} is not the uploaded file"));
        }
    }
    let remove = delete("remove an attachment", format!("/attachments/{attachment}"));
    c.check(&remove, NOT_THE_TRAINEE);
    c.must(Trainee, &remove, 204);
    c.check(&download, &[(Trainee, 404), (Current, 404)]);

    let gone = delete("delete an activity", format!("/activities/{activity}"));
    c.check(&gone, NOT_THE_TRAINEE);
    c.must(Trainee, &gone, 204);
    c.check(&one, &[(Trainee, 404), (DirectorA, 404)]);

    // The other way round: U's activity is U's and their supervisor's, not T's people's.
    let theirs = post(
        "log a learning activity",
        format!("/enrolments/{}/activities", c.other_enrolment),
        json!({"kind": "self_study", "title": "Sepsis", "start_date": "2026-10-01"}),
    );
    let theirs = id_of(&c.must(OtherTrainee, &theirs, 201));
    let read_theirs = get("read U's activity", format!("/activities/{theirs}"));
    c.check(
        &read_theirs,
        &[
            (Trainee, 404),
            (Current, 404),
            (Former, 404),
            (Assessor, 404),
            (DirectorB, 404),
            (OtherTrainee, 200),
            (Unrelated, 200),
            (DirectorA, 200),
            (Admin, 200),
        ],
    );
    c.check(
        &post(
            "log a learning activity for U",
            format!("/enrolments/{}/activities", c.other_enrolment),
            json!({"kind": "self_study", "title": "Sepsis", "start_date": "2026-10-01"}),
        ),
        &[(Trainee, 404), (Current, 404), (Unrelated, 403)],
    );
    c.finish();
}

#[test]
fn assessments_are_signed_only_by_the_named_assessor_and_each_queue_is_ones_own() {
    let c = Cast::start();
    let e = &c.enrolment;
    let create = post(
        "start an assessment",
        format!("/enrolments/{e}/assessments"),
        json!({"instrument": "mini_cex", "performed_on": "2026-11-20", "assessor_id": c.current.id,
               "context": {"setting (outpatient, inpatient, emergency)": "emergency"},
               "delmal": ["BT1"], "trainee_reflection": "Buksmärta på akuten."}),
    );
    // T asks the current supervisor; U asks theirs.
    let requested = c.must(Trainee, &create, 201);
    let asked = id_of(&requested);
    assert_eq!(requested.body["status"], "awaiting_signature");
    assert_eq!(requested.body["assessor_id"], c.current.id.as_str());
    let theirs = id_of(&c.must(
        OtherTrainee,
        &post(
            "start an assessment",
            format!("/enrolments/{}/assessments", c.other_enrolment),
            json!({"instrument": "dops", "performed_on": "2026-11-20", "assessor_id": c.unrelated.id}),
        ),
        201,
    ));

    // Each queue holds only what waits for that user's signature.
    let queue = get("my signature queue", "/me/signature-queue");
    let rs = c.check(
        &queue,
        &EVERYONE.map(|who| (who, if who == Anonymous { 401 } else { 200 })),
    );
    for (who, r) in rs.iter().filter(|(_, r)| r.status == 200) {
        let got: Vec<&str> = r.body["items"]
            .as_array()
            .map(|items| items.iter().filter_map(|i| i["id"].as_str()).collect())
            .unwrap_or_default();
        let expected: Vec<&str> = match who {
            Current => vec![asked.as_str()],
            Unrelated => vec![theirs.as_str()],
            _ => vec![],
        };
        if got != expected {
            c.fail(format!(
                "{who}: {queue} must hold {expected:?}, holds {got:?}"
            ));
        }
    }

    // Only the trainee or their supervisors start assessments; a supervisor recording
    // directly gets a draft of their own to sign.
    c.check(&create, NOT_TRAINEE_OR_SUPERVISOR);
    let direct = c.must(Current, &create, 201);
    assert_eq!(direct.body["status"], "draft");
    assert_eq!(direct.body["assessor_id"], c.current.id.as_str());

    let list = get("list assessments", format!("/enrolments/{e}/assessments"));
    let rs = c.check(&list, READ);
    c.each_lists(&list, &rs, &asked);
    let one = get("read an assessment", format!("/assessments/{asked}"));
    let rs = c.check(&one, READ);
    c.each_is(&one, &rs, &asked);

    // The trainee edits context and reflection, the assessor rates; nobody else edits.
    let edit = patch(
        "save an assessment in progress",
        format!("/assessments/{asked}"),
        json!({"trainee_reflection": "Jag missade att fråga om tidigare operationer."}),
    );
    c.check(&edit, NEITHER_TRAINEE_NOR_ASSESSOR);
    c.must(Trainee, &edit, 200);
    c.must(
        Current,
        &patch(
            "save an assessment in progress",
            format!("/assessments/{asked}"),
            json!({"ratings": {"communication": 6}}),
        ),
        200,
    );

    // Only the named assessor signs, never the trainee.
    let sign = post(
        "sign an assessment",
        format!("/assessments/{asked}/sign"),
        json!({"ratings": {"communication": 7, "history taking (anamnes)": 6},
               "feedback_strengths": "Strukturerad anamnes.",
               "feedback_next_steps": "Öva riktat status vid buksmärta."}),
    );
    c.check(&sign, NOT_THE_ASSESSOR);
    let signed = c.must(Current, &sign, 200);
    assert_eq!(signed.body["status"], "signed");
    assert_eq!(signed.body["signature"]["signed_by"], c.current.id.as_str());

    // Only the named assessor declines.
    let to_decline = id_of(&c.must(Trainee, &create, 201));
    let decline = post(
        "decline an assessment",
        format!("/assessments/{to_decline}/decline"),
        json!({"reason": "Jag observerade inte detta besök."}),
    );
    c.check(&decline, NOT_THE_ASSESSOR);
    let declined = c.must(Current, &decline, 200);
    assert_eq!(declined.body["status"], "declined");

    // Only the trainee sends a draft for signature.
    let draft_body = json!({"instrument": "cbd", "performed_on": "2026-11-21",
                            "trainee_reflection": "Palliativ vård."});
    let draft = post(
        "start an assessment",
        format!("/enrolments/{e}/assessments"),
        draft_body,
    );
    let to_request = c.must(Trainee, &draft, 201);
    assert_eq!(to_request.body["status"], "draft");
    let to_request = id_of(&to_request);
    let request = post(
        "ask for a signature",
        format!("/assessments/{to_request}/request"),
        json!({"assessor_id": c.current.id}),
    );
    c.check(&request, NOT_THE_TRAINEE);
    let pending = c.must(Trainee, &request, 200);
    assert_eq!(pending.body["status"], "awaiting_signature");

    // Only the signer corrects a signed assessment.
    let correct = post(
        "correct a signed assessment",
        format!("/assessments/{asked}/corrections"),
        json!({"feedback_strengths": "Strukturerad anamnes och tydlig sammanfattning."}),
    );
    c.check(&correct, NOT_THE_ASSESSOR);
    let correction = c.must(Current, &correct, 201);
    assert_eq!(correction.body["supersedes_id"], asked.as_str());

    // Only its author deletes a draft.
    let to_delete = id_of(&c.must(Trainee, &draft, 201));
    let remove = delete("delete a draft", format!("/assessments/{to_delete}"));
    c.check(&remove, NOT_THE_TRAINEE);
    c.must(Trainee, &remove, 204);
    c.check(
        &get("read a deleted draft", format!("/assessments/{to_delete}")),
        &[(Trainee, 404), (Current, 404)],
    );
    c.finish();
}

#[test]
fn a_former_supervisor_keeps_what_they_assessed_but_nothing_else_of_the_trainee() {
    let c = Cast::start();
    let e = &c.enrolment;
    let kept = &c.former_assessment;

    // What they signed while assigned stays readable to them, and to the trainee's people.
    let one = get(
        "read an assessment they signed",
        format!("/assessments/{kept}"),
    );
    let rs = c.check(&one, &but(READ, &[(Former, 200)]));
    c.each_is(&one, &rs, kept);
    let mine = c.must(Former, &one, 200);
    assert_eq!(mine.body["signature"]["signed_by"], c.former.id.as_str());
    // It is signed: final, for them as for everyone.
    c.check(
        &patch(
            "edit a signed assessment",
            format!("/assessments/{kept}"),
            json!({"feedback_strengths": "Ändrat i efterhand."}),
        ),
        &[(Former, 409)],
    );
    c.check(
        &post(
            "sign a signed assessment",
            format!("/assessments/{kept}/sign"),
            json!({}),
        ),
        &[(Former, 409)],
    );
    // As its signer they still correct it; nobody else does.
    let correct = post(
        "correct a signed assessment",
        format!("/assessments/{kept}/corrections"),
        json!({"feedback_next_steps": "Öva riktat status vid buksmärta och bröstsmärta."}),
    );
    c.check(
        &correct,
        &[
            (Anonymous, 401),
            (OtherTrainee, 404),
            (Unrelated, 404),
            (DirectorB, 404),
            (Incoming, 404),
            (Trainee, 403),
            (Current, 403),
            (DirectorA, 403),
            (Admin, 403),
            (Assessor, 403),
        ],
    );
    let correction = c.must(Former, &correct, 201);
    assert_eq!(correction.body["supersedes_id"], kept.as_str());
    let correction = id_of(&correction);

    // The session they took part in stays theirs to read and confirm.
    let session = get(
        "read a session they took part in",
        format!("/supervision-sessions/{}", c.former_session),
    );
    let rs = c.check(&session, &but(READ, &[(Former, 200)]));
    c.each_is(&session, &rs, &c.former_session);
    let confirmed = c.must(
        Former,
        &post(
            "confirm a session they took part in",
            format!("/supervision-sessions/{}/confirm", c.former_session),
            json!({}),
        ),
        200,
    );
    assert_eq!(confirmed.body["status"], "confirmed");

    // Everything else of the trainee is gone for them, as if it did not exist.
    let activity = id_of(&c.must(
        Trainee,
        &post(
            "log a learning activity",
            format!("/enrolments/{e}/activities"),
            json!({"kind": "seminar", "title": "Akut buk", "start_date": "2026-11-23"}),
        ),
        201,
    ));
    let asked = id_of(&c.must(
        Trainee,
        &post(
            "start an assessment",
            format!("/enrolments/{e}/assessments"),
            json!({"instrument": "dops", "performed_on": "2026-11-23", "assessor_id": c.current.id}),
        ),
        201,
    ));
    for req in [
        get("read the enrolment", format!("/enrolments/{e}")),
        get("list activities", format!("/enrolments/{e}/activities")),
        get("read an activity", format!("/activities/{activity}")),
        get("list assessments", format!("/enrolments/{e}/assessments")),
        get("read another assessment", format!("/assessments/{asked}")),
        get(
            "list supervision sessions",
            format!("/enrolments/{e}/supervision-sessions"),
        ),
        get(
            "list handover talks",
            format!("/enrolments/{e}/handover-talks"),
        ),
        post(
            "start an assessment",
            format!("/enrolments/{e}/assessments"),
            json!({"instrument": "mini_cex", "performed_on": "2026-11-24"}),
        ),
        post(
            "record a supervision session",
            format!("/enrolments/{e}/supervision-sessions"),
            json!({"held_on": "2026-11-24"}),
        ),
    ] {
        c.check(&req, &[(Former, 404)]);
    }
    // The current supervisor has what the former one lost.
    c.check(
        &get("read another assessment", format!("/assessments/{asked}")),
        &[(Current, 200)],
    );
    // Their queue holds their own correction, to sign, and nothing of the trainee's new
    // requests.
    let queue = c.must(
        Former,
        &get("my signature queue", "/me/signature-queue"),
        200,
    );
    let queued: Vec<&str> = queue.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(queued, vec![correction.as_str()], "{}", queue.text);
    c.finish();
}

#[test]
fn supervision_sessions_and_handover_talks_are_confirmed_only_by_those_who_took_part() {
    let c = Cast::start();
    let e = &c.enrolment;

    // Supervision session: T with the current supervisor.
    let create = post(
        "record a supervision session",
        format!("/enrolments/{e}/supervision-sessions"),
        json!({"held_on": "2026-11-20", "participant_ids": [c.current.id],
               "topics": ["Mål för placeringen"], "notes": "Genomgång av checklistan.",
               "delmal": ["BT9"]}),
    );
    c.check(&create, NOT_TRAINEE_OR_SUPERVISOR);
    let by_supervisor = c.must(Current, &create, 201);
    assert_eq!(by_supervisor.body["created_by"], c.current.id.as_str());
    let session = id_of(&c.must(Trainee, &create, 201));

    let list = get(
        "list supervision sessions",
        format!("/enrolments/{e}/supervision-sessions"),
    );
    let rs = c.check(&list, READ);
    c.each_lists(&list, &rs, &session);
    let one = get(
        "read a supervision session",
        format!("/supervision-sessions/{session}"),
    );
    let rs = c.check(&one, READ);
    c.each_is(&one, &rs, &session);

    let edit = patch(
        "edit a supervision session",
        format!("/supervision-sessions/{session}"),
        json!({"agreed_actions": "Medsittning nästa vecka."}),
    );
    c.check(&edit, NOT_A_PARTICIPANT);
    c.must(Trainee, &edit, 200);
    // The supervisor's edit stands as their confirmation and asks the trainee again.
    c.must(Current, &edit, 200);
    let confirm = post(
        "confirm a supervision session",
        format!("/supervision-sessions/{session}/confirm"),
        json!({}),
    );
    c.check(&confirm, NOT_A_PARTICIPANT);
    let done = c.must(Trainee, &confirm, 200);
    assert_eq!(done.body["status"], "confirmed");
    c.check(&confirm, &[(Current, 409)]);

    // Handover talk: T leads it with the current supervisor (main and outgoing) and an
    // incoming supervisor who is assigned to nothing yet.
    let create = post(
        "record a handover talk",
        format!("/enrolments/{e}/handover-talks"),
        json!({"held_on": "2026-12-28", "placement_id": c.placement,
               "next_placement_id": c.next_placement,
               "outgoing_supervisor_id": c.current.id, "incoming_supervisor_id": c.incoming.id,
               "handover": {"delmal_status": [{"code": "BT1", "status": "in_progress"}],
                            "strengths": "Trygg i bemötandet.", "areas_to_develop": "Prioritering.",
                            "plan_next_placement": "DOPS första månaden."}}),
    );
    c.check(&create, NOT_THE_TRAINEE);
    let talk = c.must(Trainee, &create, 201);
    assert_eq!(
        talk.body["participants"].as_array().map(Vec::len),
        Some(3),
        "{}",
        talk.text
    );
    let talk = id_of(&talk);

    let list = get(
        "list handover talks",
        format!("/enrolments/{e}/handover-talks"),
    );
    let rs = c.check(&list, READ);
    c.each_lists(&list, &rs, &talk);
    let one = get("read a handover talk", format!("/handover-talks/{talk}"));
    let rs = c.check(&one, &but(READ, &[(Incoming, 200)]));
    c.each_is(&one, &rs, &talk);

    let edit = patch(
        "edit a handover talk",
        format!("/handover-talks/{talk}"),
        json!({"agreed_actions": "Tjg-HL på akuten tar emot den 2 januari."}),
    );
    c.check(&edit, &but(NOT_A_PARTICIPANT, &[(Incoming, 200)]));
    c.must(Trainee, &edit, 200);
    let confirm = post(
        "confirm a handover talk",
        format!("/handover-talks/{talk}/confirm"),
        json!({}),
    );
    c.check(&confirm, &but(NOT_A_PARTICIPANT, &[(Incoming, 200)]));
    let done = c.must(Current, &confirm, 200);
    assert_eq!(done.body["status"], "confirmed");
    c.check(&confirm, &[(Trainee, 409), (Incoming, 409)]);
    c.finish();
}
