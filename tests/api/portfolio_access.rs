//! Who may do what with a trainee's portfolio: every endpoint of learning activities,
//! attachments, assessments (with co-signing on the trainee's phone and signing links),
//! the signature queue, supervision sessions, handover talks and summary assessments,
//! sent by every kind of caller (the trainee and another trainee; the current, the former
//! and an unrelated supervisor; a placement supervisor; the trainee's director of studies
//! and the director of another care provider; the administrator; the external assessor; a
//! supervisor who only took part in a talk; nobody signed in; the administrator of another
//! region; API clients of the trainee's care provider with and without the scope, and one
//! of the other care provider with every scope), each checked against the status and
//! problem type they must get. `EVERYONE` is declared with `Who` itself, so a caller
//! added there is sent every request sent to everyone.
//!
//! The rules: whoever may read the enrolment today (the trainee, the supervisors assigned
//! today, directors and administrators of the organisation, the assigned external
//! assessor) reads its records; anyone else gets 404, so they do not learn that the
//! records exist; nobody signed in gets 401. Of those who see a record, only the one whose
//! part it is changes it (the trainee their activities, the named assessor signs); the
//! others get 403. A named assessor keeps an assessment they were asked for, and a
//! participant keeps a talk they took part in, after their assignment ends. A summary
//! assessment of a placement is written by that placement's supervisor (or the main
//! supervisor assigned today) and changed by its author alone, who always reads it.
//! Co-signing needs the trainee's session and the named assessor's own credentials; a
//! signing link is its holder's only credential, and a session adds nothing to it.
//! API clients write nothing here, nor read a single attachment, session, talk or summary
//! assessment, nor a signature queue (403 `forbidden`: those operations are for people);
//! the reads open to them (`CLIENT_ROUTES`) answer one of the trainee's care provider with
//! the scope like a director (200, the records themselves), one without the scope 403
//! `insufficient-scope` and one of another organisation 404, like any stranger to the
//! enrolment. A signing link ignores a client's token as it ignores a session.
//!
//! Each test collects every wrong answer and fails at the end with all of them, so one
//! run shows the whole matrix.

use std::cell::RefCell;
use std::fmt;

use serde_json::{json, Value};

use eportfolio::integrations::clients::{
    SCOPE_ACTIVITIES_WRITE, SCOPE_CATALOG_READ, SCOPE_PROGRESS_READ,
};

use crate::integrations::{client, token};
use crate::support::{Resp, TestApp, TestUser};

use Who::*;

const PROBLEMS: &str = "https://eportfolio.example/problems/";

/// Declares `Who` and `EVERYONE`, the list of all its variants in declaration order, from
/// one list of callers, so that a caller added to the enum is in `EVERYONE` too and no
/// table built from it can forget them.
macro_rules! callers {
    ($($(#[$doc:meta])* $who:ident,)*) => {
        /// The callers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Who {
            $($(#[$doc])* $who,)*
        }

        /// Every caller, each once.
        const EVERYONE: &[Who] = &[$(Who::$who),*];
    };
}

callers! {
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
    /// A supervisor at the same care provider, assigned to nothing until a test makes them
    /// supervisor of a placement of T's (geriatrik).
    PlacementSupervisor,
    /// No token.
    Anonymous,
    /// The administrator of another region (Region Skåne).
    OtherRegionAdmin,
    /// An API client of T's care provider (A) whose token lacks `progress:read`: it holds
    /// every other scope.
    ClientWithoutScope,
    /// An API client of the other care provider (B) holding every scope.
    ClientOtherOrg,
    /// An API client of T's care provider (A) holding `progress:read` alone: what API
    /// clients are for, reading T's progress; it writes nothing.
    ClientWithScope,
}

impl Who {
    /// Whether the caller is an API client rather than a person (or nobody). A match with
    /// no catch-all, so that a new caller must be placed.
    fn is_client(self) -> bool {
        match self {
            ClientWithoutScope | ClientOtherOrg | ClientWithScope => true,
            Trainee | OtherTrainee | Current | Former | Unrelated | DirectorA | DirectorB
            | Admin | Assessor | Incoming | PlacementSupervisor | Anonymous | OtherRegionAdmin => {
                false
            }
        }
    }
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
            PlacementSupervisor => "placement supervisor (geriatrik)",
            Anonymous => "anonymous",
            OtherRegionAdmin => "administrator of another region",
            ClientWithoutScope => "API client of A without progress:read",
            ClientOtherOrg => "API client of B with every scope",
            ClientWithScope => "API client of A with progress:read",
        })
    }
}

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
    (OtherRegionAdmin, 404),
    (ClientWithoutScope, NO_SCOPE),
    (ClientOtherOrg, 404),
    (ClientWithScope, 200),
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
    (OtherRegionAdmin, 404),
    (ClientWithoutScope, 403),
    (ClientOtherOrg, 403),
    (ClientWithScope, 403),
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
    (OtherRegionAdmin, 404),
    (ClientWithoutScope, 403),
    (ClientOtherOrg, 403),
    (ClientWithScope, 403),
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
    (OtherRegionAdmin, 404),
    (ClientWithoutScope, 403),
    (ClientOtherOrg, 403),
    (ClientWithScope, 403),
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
    (OtherRegionAdmin, 404),
    (ClientWithoutScope, 403),
    (ClientOtherOrg, 403),
    (ClientWithScope, 403),
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
    (OtherRegionAdmin, 404),
    (ClientWithoutScope, 403),
    (ClientOtherOrg, 403),
    (ClientWithScope, 403),
];

/// Refusals of what only one supervisor does (writing a summary assessment, changing
/// one's own): 403 for the others who see T's enrolment, the trainee too; 404 for those
/// who may not know it exists. A placement supervisor, once assigned, is added by the test.
const NOT_THE_AUTHOR: &[(Who, u16)] = &[
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
    (OtherRegionAdmin, 404),
    (ClientWithoutScope, 403),
    (ClientOtherOrg, 403),
    (ClientWithScope, 403),
];

/// Not a status: the expected answer of an API client whose token lacks the scope an
/// operation for API clients needs, 403 with the problem `insufficient-scope` (a refusal
/// of an operation for people only is a plain 403 `forbidden`).
const NO_SCOPE: u16 = 1403;

/// How the API-client callers are refused a read that is for people only (a single
/// attachment, session, talk or summary assessment): with or without the scope.
const PEOPLE_ONLY: &[(Who, u16)] = &[
    (ClientWithoutScope, 403),
    (ClientOtherOrg, 403),
    (ClientWithScope, 403),
];

/// Every caller, with the same status.
fn everyone(status: u16) -> Vec<(Who, u16)> {
    EVERYONE.iter().map(|&who| (who, status)).collect()
}

/// `table` with more callers.
fn plus(table: &[(Who, u16)], more: &[(Who, u16)]) -> Vec<(Who, u16)> {
    table.iter().chain(more).copied().collect()
}

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
    placement_supervisor: TestUser,
    other_region_admin: TestUser,
    /// Access tokens of the two API clients.
    client_without_scope: String,
    client_other_org: String,
    client_with_scope: String,
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
        let placement_supervisor = app.join(
            &director_a,
            "th.geriatrik@danderyd.example",
            "supervisor",
            a,
        );
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

        let email = "admin@regionskane.example";
        let invitation = app.bootstrap_admin(email, "Region Skåne");
        let other_region_admin = app.accept_with_totp(&invitation, email);
        let all_but_progress = [SCOPE_CATALOG_READ, SCOPE_ACTIVITIES_WRITE];
        let (id, secret) = client(&app, &admin, &provider_a, &all_but_progress);
        let client_without_scope = token(&app, &id, &secret);
        let every_scope = [
            SCOPE_PROGRESS_READ,
            SCOPE_CATALOG_READ,
            SCOPE_ACTIVITIES_WRITE,
        ];
        let (id, secret) = client(&app, &admin, &provider_b, &every_scope);
        let client_other_org = token(&app, &id, &secret);
        let (id, secret) = client(&app, &admin, &provider_a, &[SCOPE_PROGRESS_READ]);
        let client_with_scope = token(&app, &id, &secret);

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
            placement_supervisor,
            other_region_admin,
            client_without_scope,
            client_other_org,
            client_with_scope,
            enrolment,
            other_enrolment,
            placement,
            next_placement,
            former_assessment,
            former_session,
            failures: RefCell::new(Vec::new()),
        }
    }

    /// The main supervisor approves the pending assessor without an account `email`.
    fn vet(&self, email: &str) {
        let pending = self
            .app
            .get("/external-assessors", Some(&self.current.access))
            .expect(200);
        let id = pending.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|x| x["email"] == email)
            .unwrap_or_else(|| panic!("{email} waits for vetting: {}", pending.text))["id"]
            .as_str()
            .expect("id")
            .to_string();
        self.app
            .post(
                &format!("/external-assessors/{id}/approve"),
                Some(&self.current.access),
                json!({}),
            )
            .expect(200);
    }

    /// The bearer token `who` sends, if any.
    fn token(&self, who: Who) -> Option<&str> {
        match who {
            ClientWithoutScope => Some(&self.client_without_scope),
            ClientOtherOrg => Some(&self.client_other_org),
            ClientWithScope => Some(&self.client_with_scope),
            _ => self.user(who).map(|u| u.access.as_str()),
        }
    }

    /// The person `who` is; `None` for nobody signed in and for API clients.
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
            PlacementSupervisor => Some(&self.placement_supervisor),
            OtherRegionAdmin => Some(&self.other_region_admin),
            Anonymous | ClientWithoutScope | ClientOtherOrg | ClientWithScope => None,
        }
    }

    fn send(&self, who: Who, req: &Req) -> Resp {
        let token = self.token(who);
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
        if status == NO_SCOPE {
            return self.judge_as(who, req, 403, "insufficient-scope", r);
        }
        self.judge_as(who, req, status, problem_kind(status), r)
    }

    /// Like `judge`, with the problem type a refusal must have.
    fn judge_as(&self, who: Who, req: &Req, status: u16, kind: &str, r: &Resp) -> bool {
        let mut wrong = Vec::new();
        if r.status != status {
            wrong.push(format!("status {}", r.status));
        } else if status >= 400 {
            if r.header("content-type") != Some("application/problem+json") {
                wrong.push(format!("content type {:?}", r.header("content-type")));
            }
            if r.body["type"] != format!("{PROBLEMS}{kind}") {
                wrong.push(format!("problem type {}", r.body["type"]));
            }
            if !r.body["request_id"].is_string() {
                wrong.push("no request_id".into());
            }
            if kind == "unauthenticated" && r.header("www-authenticate") != Some("Bearer") {
                wrong.push("no WWW-Authenticate: Bearer".into());
            }
            if kind == "insufficient-scope"
                && !r
                    .header("www-authenticate")
                    .is_some_and(|h| h.contains("error=\"insufficient_scope\""))
            {
                wrong.push("no WWW-Authenticate: Bearer error=\"insufficient_scope\"".into());
            }
        }
        if wrong.is_empty() {
            return true;
        }
        let expected = if status >= 400 {
            format!("{status} {kind}")
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

    /// Like `check`, when every refusal in `table` must be the problem `kind` (such as
    /// `invalid-token`) rather than the one its status usually stands for.
    fn check_as(&self, req: &Req, table: &[(Who, u16)], kind: &str) -> Vec<(Who, Resp)> {
        table
            .iter()
            .map(|&(who, status)| {
                let r = self.send(who, req);
                self.judge_as(who, req, status, kind, &r);
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
    for (who, r) in c.check(&download, &but(READ, PEOPLE_ONLY)) {
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
    let rs = c.check(
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
            (OtherRegionAdmin, 404),
            (ClientWithoutScope, NO_SCOPE),
            (ClientOtherOrg, 404),
            (ClientWithScope, 200),
        ],
    );
    c.each_is(&read_theirs, &rs, &theirs);
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
        &EVERYONE
            .iter()
            .map(|&who| {
                // The queue is a person's: API clients are refused it, with any scope.
                let status = match who {
                    Anonymous => 401,
                    _ if who.is_client() => 403,
                    _ => 200,
                };
                (who, status)
            })
            .collect::<Vec<_>>(),
    );
    for (who, r) in rs.iter().filter(|(_, r)| r.status == 200) {
        // A missing list is a failure, not an empty queue: the callers expected to hold
        // nothing would otherwise pass on any answer without `items`.
        let Some(items) = r.body["items"].as_array() else {
            c.fail(format!(
                "{who}: {queue} has no items list: {}",
                short(&r.text)
            ));
            continue;
        };
        let got: Vec<&str> = items.iter().filter_map(|i| i["id"].as_str()).collect();
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
            (OtherRegionAdmin, 404),
            (ClientWithoutScope, 403),
            (ClientOtherOrg, 403),
            (ClientWithScope, 403),
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
    let rs = c.check(&session, &but(&but(READ, PEOPLE_ONLY), &[(Former, 200)]));
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
    let rs = c.check(&one, &but(READ, PEOPLE_ONLY));
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
    let rs = c.check(&one, &but(&but(READ, PEOPLE_ONLY), &[(Incoming, 200)]));
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

#[test]
fn summary_assessments_are_written_by_the_placements_supervisor_and_changed_by_their_author() {
    let c = Cast::start();
    let e = &c.enrolment;
    let write = |placement: &str| {
        post(
            "write a summary assessment",
            format!("/enrolments/{e}/summary-assessments"),
            json!({"placement_id": placement,
                   "judgements": [{"code": "BT1", "judgement": "progressing",
                                   "comment": "Säker i vanliga tillstånd; behöver fler sepsisfall."}],
                   "overall": "En trygg och engagerad BT-läkare."}),
        )
    };
    let of_first = write(&c.placement);

    // Not yet assigned, the geriatrik supervisor is a stranger to T's enrolment.
    c.check(&of_first, &[(PlacementSupervisor, 404)]);

    // Director A adds the geriatrik placement with its supervisor.
    let added = c.must(
        DirectorA,
        &post(
            "add a placement with its supervisor",
            format!("/enrolments/{e}/placements"),
            json!({"placement_type": "geriatrik", "start_date": "2027-05-01",
                   "end_date": "2027-06-30", "supervisor_id": c.placement_supervisor.id}),
        ),
        201,
    );
    let geriatrik = id_of(&added);
    let of_geriatrik = write(&geriatrik);

    // Placement 1 is the main supervisor's to sum up; the geriatrik supervisor now sees the
    // enrolment, but it is not their placement.
    c.check(
        &of_first,
        &plus(NOT_THE_AUTHOR, &[(PlacementSupervisor, 403)]),
    );
    let mine = c.must(Current, &of_first, 201);
    assert_eq!(mine.body["status"], "draft", "{}", mine.text);
    assert_eq!(mine.body["author_id"], c.current.id.as_str());
    let mine = id_of(&mine);

    // The geriatrik placement is its supervisor's, and the main supervisor's assigned today.
    c.check(&of_geriatrik, NOT_THE_AUTHOR);
    let theirs = c.must(PlacementSupervisor, &of_geriatrik, 201);
    assert_eq!(theirs.body["author_id"], c.placement_supervisor.id.as_str());
    let theirs = id_of(&theirs);
    c.must(Current, &of_geriatrik, 201);

    // Read like T's other records.
    let readers = plus(READ, &[(PlacementSupervisor, 200)]);
    let list = get(
        "list summary assessments",
        format!("/enrolments/{e}/summary-assessments"),
    );
    let rs = c.check(&list, &readers);
    c.each_lists(&list, &rs, &mine);
    c.each_lists(&list, &rs, &theirs);
    let one = get(
        "read a summary assessment",
        format!("/summary-assessments/{mine}"),
    );
    let rs = c.check(&one, &but(&readers, PEOPLE_ONLY));
    c.each_is(&one, &rs, &mine);
    let their_one = get(
        "read a summary assessment",
        format!("/summary-assessments/{theirs}"),
    );
    let rs = c.check(&their_one, &but(&readers, PEOPLE_ONLY));
    c.each_is(&their_one, &rs, &theirs);

    // Only the author edits, signs and corrects, not even another who may write one.
    let not_mine = plus(NOT_THE_AUTHOR, &[(PlacementSupervisor, 403)]);
    let edit = patch(
        "edit a summary assessment",
        format!("/summary-assessments/{mine}"),
        json!({"overall": "En trygg och engagerad BT-läkare med god självkännedom."}),
    );
    c.check(&edit, &not_mine);
    let edited = c.must(Current, &edit, 200);
    assert_eq!(
        edited.body["overall"],
        "En trygg och engagerad BT-läkare med god självkännedom."
    );
    assert_eq!(
        edited.body["version"], 2,
        "only the author's edit was saved"
    );
    let edit_theirs = patch(
        "edit a summary assessment",
        format!("/summary-assessments/{theirs}"),
        json!({"overall": "Trygg med multisjuka äldre."}),
    );
    c.check(&edit_theirs, &plus(NOT_THE_AUTHOR, &[(Current, 403)]));

    let sign = post(
        "sign a summary assessment",
        format!("/summary-assessments/{mine}/sign"),
        json!({}),
    );
    c.check(&sign, &not_mine);
    let signed = c.must(Current, &sign, 200);
    assert_eq!(signed.body["status"], "signed", "{}", signed.text);
    assert_eq!(signed.body["signature"]["signed_by"], c.current.id.as_str());
    // Signed means final, for the author too.
    c.check(&sign, &[(Current, 409)]);
    c.check(&edit, &[(Current, 409)]);

    let correct = post(
        "correct a signed summary assessment",
        format!("/summary-assessments/{mine}/corrections"),
        json!({"overall": "En trygg och engagerad BT-läkare; prioriterar väl."}),
    );
    c.check(&correct, &not_mine);
    let correction = c.must(Current, &correct, 201);
    assert_eq!(correction.body["supersedes_id"], mine.as_str());
    assert_eq!(correction.body["status"], "draft");
    let correction = id_of(&correction);
    c.check(
        &post(
            "sign a correction",
            format!("/summary-assessments/{correction}/sign"),
            json!({}),
        ),
        &not_mine,
    );

    // The geriatrik supervisor's assignment ends today.
    let plan = c.must(
        DirectorA,
        &get("read the enrolment", format!("/enrolments/{e}")),
        200,
    );
    let assignment = plan.body["assignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .find(|a| {
            a["user_id"] == c.placement_supervisor.id.as_str()
                && a["role"] == "placement_supervisor"
        })
        .and_then(|a| a["id"].as_str())
        .unwrap_or_else(|| panic!("no placement supervisor assignment in {}", plan.text))
        .to_string();
    let ended = c.must(
        DirectorA,
        &post(
            "end an assignment",
            format!("/assignments/{assignment}/end"),
            json!({}),
        ),
        200,
    );
    assert_eq!(ended.body["active"], false, "{}", ended.text);

    // The author keeps their own summary, to read, finish and sign ...
    let rs = c.check(&their_one, &[(PlacementSupervisor, 200)]);
    c.each_is(&their_one, &rs, &theirs);
    c.must(PlacementSupervisor, &edit_theirs, 200);
    let signed = c.must(
        PlacementSupervisor,
        &post(
            "sign a summary assessment",
            format!("/summary-assessments/{theirs}/sign"),
            json!({}),
        ),
        200,
    );
    assert_eq!(signed.body["status"], "signed", "{}", signed.text);
    // ... and, having been the placement's supervisor, still writes its summary.
    c.check(&of_geriatrik, &[(PlacementSupervisor, 201)]);
    // Everything else of T's is gone for them, as if it did not exist.
    for req in [
        get("read the enrolment", format!("/enrolments/{e}")),
        get(
            "list summary assessments",
            format!("/enrolments/{e}/summary-assessments"),
        ),
        get(
            "read another's summary assessment",
            format!("/summary-assessments/{mine}"),
        ),
        patch(
            "edit another's summary assessment",
            format!("/summary-assessments/{correction}"),
            json!({"overall": "Ändrat."}),
        ),
        post(
            "correct another's summary assessment",
            format!("/summary-assessments/{mine}/corrections"),
            json!({}),
        ),
        write(&c.placement),
    ] {
        c.check(&req, &[(PlacementSupervisor, 404)]);
    }
    c.finish();
}

/// A co-signing request: the assessor's credentials as given on the trainee's phone, with
/// the ratings and feedback.
fn co_sign(assessment: &str, email: &str, password: &str, code: &str) -> Req {
    post(
        "co-sign on the trainee's phone",
        format!("/assessments/{assessment}/co-sign"),
        json!({"email": email, "password": password, "method": "totp", "code": code,
               "ratings": {"communication": 6},
               "feedback_next_steps": "Öva riktat status vid buksmärta."}),
    )
}

#[test]
fn co_signing_needs_the_trainees_session_and_the_named_assessors_own_credentials() {
    let c = Cast::start();
    let e = &c.enrolment;
    let ask = post(
        "start an assessment",
        format!("/enrolments/{e}/assessments"),
        json!({"instrument": "mini_cex", "performed_on": "2026-11-24", "assessor_id": c.current.id,
               "delmal": ["BT1"], "trainee_reflection": "Buksmärta på vårdcentralen."}),
    );
    let asked = id_of(&c.must(Trainee, &ask, 201));
    let secret = c.current.totp_secret.as_deref().expect("totp");
    let code = c.app.totp(secret);
    let right = co_sign(&asked, &c.current.email, &c.current.password, &code);

    // Only from the trainee's own session, even with the right credentials: nobody else's
    // session (the named assessor's included) co-signs.
    c.check(&right, NOT_THE_TRAINEE);
    c.check(&right, &[(PlacementSupervisor, 404)]);

    // Another supervisor's credentials, however valid, are not the named assessor's.
    let unrelated_secret = c.unrelated.totp_secret.as_deref().expect("totp");
    c.check_as(
        &co_sign(
            &asked,
            &c.unrelated.email,
            &c.unrelated.password,
            &c.app.totp(unrelated_secret),
        ),
        &[(Trainee, 401)],
        "invalid-credentials",
    );
    c.check_as(
        &co_sign(&asked, &c.current.email, "not the password", &code),
        &[(Trainee, 401)],
        "invalid-credentials",
    );
    let stale = crate::support::totp::code_at(secret, c.app.now_unix() - 3600);
    c.check_as(
        &co_sign(&asked, &c.current.email, &c.current.password, &stale),
        &[(Trainee, 401)],
        "invalid-second-factor",
    );
    let still = c.must(
        Trainee,
        &get("read an assessment", format!("/assessments/{asked}")),
        200,
    );
    assert_eq!(still.body["status"], "awaiting_signature", "{}", still.text);

    // The named assessor's e-mail, password and fresh code sign, as them.
    let signed = c.must(Trainee, &right, 200);
    assert_eq!(signed.body["status"], "signed", "{}", signed.text);
    assert_eq!(signed.body["signature"]["signed_by"], c.current.id.as_str());
    assert_eq!(signed.body["signature"]["method"], "in_person_totp");
    assert_eq!(
        signed.body["feedback_next_steps"],
        "Öva riktat status vid buksmärta."
    );
    // Signed is final.
    c.check(&right, &[(Trainee, 409)]);

    // A code signs once: the same step's code again is refused; the next step's signs.
    let again = id_of(&c.must(Trainee, &ask, 201));
    c.check_as(
        &co_sign(&again, &c.current.email, &c.current.password, &code),
        &[(Trainee, 401)],
        "invalid-second-factor",
    );
    c.app.advance(30);
    let fresh = co_sign(
        &again,
        &c.current.email,
        &c.current.password,
        &c.app.totp(secret),
    );
    c.check(&fresh, NOT_THE_TRAINEE);
    let signed = c.must(Trainee, &fresh, 200);
    assert_eq!(signed.body["signature"]["signed_by"], c.current.id.as_str());
    c.finish();
}

#[test]
fn a_signing_link_is_its_holders_only_credential() {
    let c = Cast::start();
    let e = &c.enrolment;
    let outside = "distriktslakare@capio.example";
    let before = c.app.smtp.count_to(outside);
    let ask = post(
        "ask an assessor without an account",
        format!("/enrolments/{e}/assessments"),
        json!({"instrument": "dops", "performed_on": "2026-11-23", "assessor_email": outside,
               "assessor_name": "Distriktsläkaren", "assessor_workplace": "Capio vårdcentral",
               "delmal": ["BT1"], "trainee_reflection": "Lumbalpunktion."}),
    );
    let asked = c.must(Trainee, &ask, 201);
    assert_eq!(asked.body["status"], "awaiting_vetting", "{}", asked.text);
    assert_eq!(asked.body["assessor_id"], Value::Null, "{}", asked.text);
    assert_eq!(asked.body["assessor_email"], outside, "{}", asked.text);
    let asked = id_of(&asked);
    // The main supervisor vets the person; only then does the link go out.
    c.vet(outside);
    let token = c
        .app
        .smtp
        .wait_for(outside, before)
        .find_token_after("token=")
        .expect("token in the signing link mail");

    // The link opens without an account; a session neither helps nor hinders.
    let open = get(
        "open a signing link",
        format!("/auth/signing-links/{token}"),
    );
    let rs = c.check(&open, &everyone(200));
    for (who, r) in rs.iter().filter(|(_, r)| r.status == 200) {
        if r.body["assessment"]["id"] != asked.as_str() || r.body["email"] != outside {
            c.fail(format!(
                "{who}: {open} must show {asked} for {outside}: {}",
                short(&r.text)
            ));
        }
    }
    // No other token opens anything: a made-up one, nor a caller's own access token.
    let made_up = "c2lnbmluZy1saW5rLXRoYXQtd2FzLW5ldmVyLXNlbnQ";
    c.check_as(
        &get(
            "open a made-up signing link",
            format!("/auth/signing-links/{made_up}"),
        ),
        &everyone(422),
        "invalid-token",
    );
    for &who in EVERYONE {
        if let Some(access) = c.token(who) {
            let own = get(
                "open a signing link with one's access token",
                format!("/auth/signing-links/{access}"),
            );
            let r = c.send(who, &own);
            c.judge_as(who, &own, 422, "invalid-token", &r);
        }
    }
    let content = json!({"ratings": {"technical ability": 3},
                         "feedback_next_steps": "Fler punktioner under handledning."});
    c.check_as(
        &post(
            "sign through a made-up signing link",
            format!("/auth/signing-links/{made_up}/sign"),
            content.clone(),
        ),
        &everyone(422),
        "invalid-token",
    );
    c.check_as(
        &post(
            "decline through a made-up signing link",
            format!("/auth/signing-links/{made_up}/decline"),
            json!({"reason": "Inte jag."}),
        ),
        &everyone(422),
        "invalid-token",
    );
    // Nobody's session signs what waits for the link's holder.
    c.check(
        &post(
            "sign an assessment",
            format!("/assessments/{asked}/sign"),
            content.clone(),
        ),
        &plus(NOT_THE_ASSESSOR, &[(Current, 403)]),
    );
    let secret = c.current.totp_secret.as_deref().expect("totp");
    c.check_as(
        &co_sign(
            &asked,
            &c.current.email,
            &c.current.password,
            &c.app.totp(secret),
        ),
        &[(Trainee, 401)],
        "invalid-credentials",
    );

    // The holder signs with the link alone; the signature is the link's address.
    let sign = post(
        "sign through a signing link",
        format!("/auth/signing-links/{token}/sign"),
        content.clone(),
    );
    let signed = c.must(Anonymous, &sign, 200);
    assert_eq!(signed.body["status"], "signed", "{}", signed.text);
    assert_eq!(
        signed.body["signature"]["signed_by"],
        Value::Null,
        "{}",
        signed.text
    );
    assert_eq!(signed.body["signature"]["signed_by_email"], outside);
    assert_eq!(signed.body["signature"]["method"], "signing_link");
    // Used, the link is dead for everyone.
    c.check_as(&open, &everyone(422), "invalid-token");
    c.check_as(&sign, &[(Anonymous, 422), (Trainee, 422)], "invalid-token");
    c.check_as(
        &post(
            "decline through a used signing link",
            format!("/auth/signing-links/{token}/decline"),
            json!({"reason": "Ångrar mig."}),
        ),
        &[(Anonymous, 422)],
        "invalid-token",
    );
    // What was signed is read like T's other records.
    let one = get("read an assessment", format!("/assessments/{asked}"));
    let rs = c.check(&one, &plus(READ, &[(PlacementSupervisor, 404)]));
    c.each_is(&one, &rs, &asked);

    // Declining through a link also uses it up.
    let other = "ssk.mottagning@capio.example";
    let before = c.app.smtp.count_to(other);
    let to_decline = id_of(&c.must(
        Trainee,
        &post(
            "ask an assessor without an account",
            format!("/enrolments/{e}/assessments"),
            json!({"instrument": "dops", "performed_on": "2026-11-23", "assessor_email": other,
                   "assessor_name": "Sjuksköterskan", "assessor_workplace": "Capio mottagning"}),
        ),
        201,
    ));
    c.vet(other);
    let token = c
        .app
        .smtp
        .wait_for(other, before)
        .find_token_after("token=")
        .expect("token in the signing link mail");
    let declined = c.must(
        Anonymous,
        &post(
            "decline through a signing link",
            format!("/auth/signing-links/{token}/decline"),
            json!({"reason": "Jag observerade inte ingreppet."}),
        ),
        200,
    );
    assert_eq!(declined.body["id"], to_decline.as_str());
    assert_eq!(declined.body["status"], "declined", "{}", declined.text);
    c.check_as(
        &get(
            "open a used signing link",
            format!("/auth/signing-links/{token}"),
        ),
        &[(Anonymous, 422), (Trainee, 422)],
        "invalid-token",
    );
    c.finish();
}
