//! Issue 17 with issue 14 item 8: an ST trainee whose kursledare confirmed a course on
//! service A moves to service B. The course's certificate on B (HSLF-FS 2021:8 bilagor
//! 8-11, "kursledare eller handledare") is signed on that line by the kursledare who
//! confirmed it on A, and lists the confirmation as given on A (JSON and PDF). Both
//! services are in-process test servers on the pass's backend.

use serde_json::{json, Value};

use crate::certificates::{by_key, judged, lines, region, Region};
use crate::support::TestUser;
use crate::transfer::confirm_course;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// A: an ST 2021 trainee with one placement and a course the kursledare confirmed;
/// returns the region, the trainee and the enrolment.
fn sending() -> (Region, TestUser, String) {
    let a = region();
    let trainee = a.person("asa@sll.se", "trainee", "Åsa Ström");
    let main = a.person("goran@sll.se", "supervisor", "Göran Källström");
    let template = a.st_template("st-2021", "ST allmänmedicin");
    let e = a
        .app
        .post("/enrolments", Some(&a.director.access),
              json!({"trainee_id": trainee.id, "template_id": template, "track": "st_2021",
                     "start_date": "2021-06-01", "planned_end": "2026-11-30", "main_supervisor_id": main.id,
                     "placements": [{"placement_type": "allmanmedicin", "start_date": "2021-06-01",
                                     "end_date": "2026-11-30"}]}))
        .expect(201)
        .body;
    let enrolment = id(&e);
    let course = id(&a
        .app
        .post(
            &format!("/enrolments/{enrolment}/activities"),
            Some(&trainee.access),
            json!({"kind": "course", "title": "Kurs i palliativ vård för ST-läkare",
                   "start_date": "2026-03-02", "end_date": "2026-03-04", "delmal": ["STb1"]}),
        )
        .expect(201)
        .body);
    confirm_course(&a.app, &trainee, &main, &course);
    (a, trainee, enrolment)
}

/// B, a region that trusts A's keys for its care provider, imports the trainee's A
/// enrolment onto its own ST template; returns B, the trainee there, the new enrolment
/// and the import's answer.
fn moved_to_b(
    a: &Region,
    a_trainee: &TestUser,
    a_enrolment: &str,
) -> (Region, TestUser, String, Value) {
    let bundle = a
        .app
        .send(
            "POST",
            &format!("/enrolments/{a_enrolment}/transfer-export"),
            Some(&a_trainee.access),
            None,
            &[],
        )
        .expect(200)
        .body;
    assert_eq!(
        bundle["bundle"]["course_confirmations"][0]["status"],
        "confirmed"
    );

    // B trusts A's keys for its care provider, and imports onto its own ST template.
    let b = region();
    let trainee = b.person("asa.strom@gmail.com", "trainee", "Åsa Ström");
    let keys = a.app.get("/dossier-keys", None).expect(200).body;
    let pems: Vec<Value> = keys["items"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["public_key_pem"].clone())
        .collect();
    b.app
        .post(
            "/trusted-services",
            Some(&b.admin.access),
            json!({"organisation_id": b.slso, "name": "Region Uppsala", "base_url": a.app.base,
                   "public_keys": pems}),
        )
        .expect(201);
    let template = b.st_template("st-2021", "ST allmänmedicin");
    let done = b
        .app
        .post(
            "/transfers",
            Some(&b.director.access),
            json!({"bundle": bundle, "trainee_email": trainee.email, "template_id": template}),
        )
        .expect(201)
        .body;
    let enrolment = done["enrolment_id"].as_str().expect("id").to_string();
    (b, trainee, enrolment, done)
}

#[test]
fn a_course_confirmed_on_the_sending_service_is_signed_by_its_kursledare_here() {
    let (a, a_trainee, a_enrolment) = sending();
    let (b, trainee, enrolment, done) = moved_to_b(&a, &a_trainee, &a_enrolment);
    assert_eq!(done["counts"]["course_confirmations"], 1, "{done}");
    let course = id(&b
        .app
        .get(
            &format!("/enrolments/{enrolment}/activities"),
            Some(&trainee.access),
        )
        .expect(200)
        .body["items"][0]);
    assert_eq!(rows(&b, &enrolment), (1, 0, 1));

    // A decision on B: the course's certificate.
    let main = b.person("hhl@sll.se", "supervisor", "Hanna Handledare");
    let assessor = b.person("spec@uu.se", "external_assessor", "Åke Ängård");
    let head = b.person("vc@sll.se", "supervisor", "Björn Älvdal");
    b.assign(&enrolment, &main, "main_supervisor");
    b.assign(&enrolment, &assessor, "external_assessor");
    b.assign(&enrolment, &head, "head_of_department");
    let codes: Vec<String> = [
        "a1", "a2", "a3", "a4", "a5", "a6", "a7", "b1", "b2", "b3", "b4",
    ]
    .iter()
    .map(|x| format!("ST{x}"))
    .collect();
    let fa = b.decide(
        &enrolment,
        &trainee,
        &main,
        &assessor,
        json!({"mode": "external_assessor", "decision": "achieved", "judgements": judged(&codes)}),
        &[&assessor, &main],
    );
    let drafts = b.certificates(&fa, &trainee);
    let key = format!("utbildningsaktivitet-{course}");
    let cert = by_key(&drafts, &key);
    // The kursledare signs the course's line, with their workplace, as on A.
    assert_eq!(
        lines(cert),
        [(
            "kursledare eller handledare".to_string(),
            Some("Kåre Örnberg".to_string())
        )]
    );
    assert_eq!(
        cert["signatures"][0]["workplace"],
        "Traumakurser Uppsala AB"
    );
    // And the certificate says the confirmation was given on A.
    let given = cert["transferred"]
        .as_array()
        .expect("transferred")
        .iter()
        .find(|l| l["record_type"] == "course_confirmation")
        .cloned()
        .unwrap_or_else(|| panic!("no confirmation line: {cert}"));
    assert_eq!(given["provenance"]["service_name"], "Region Uppsala");
    let text = given["text"].as_str().expect("text");
    assert!(
        text.contains("i tjänsten Region Uppsala av Kåre Örnberg (kursledare)"),
        "{text}"
    );
    let pdf = b.pdf_text(&fa, &key, &trainee);
    let pdf = pdf.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "kursledare eller handledare: Kåre Örnberg",
        "Tjänsteställe: Traumakurser Uppsala AB",
        "Överförda poster",
        "i tjänsten Region Uppsala av Kåre Örnberg (kursledare)",
    ] {
        assert!(pdf.contains(needle), "{needle} missing:\n{pdf}");
    }

    // An erasure on B keeps the course, its confirmation and the confirmation's
    // provenance: the kursledare signed it (on A), and the certificate rests on it. The
    // answer names it. On A the same, but the course's used link goes.
    let erased = b
        .app
        .post(
            &format!("/enrolments/{enrolment}/erasure"),
            Some(&b.admin.access),
            json!({}),
        )
        .expect(200)
        .body;
    assert_eq!(erased["erased"]["activities"], 0, "{erased}");
    assert_eq!(kept_courses(&erased), 1, "{erased}");
    let confirmation = b
        .app
        .get(
            &format!("/activities/{course}/course-confirmation"),
            Some(&trainee.access),
        )
        .expect(200)
        .body;
    assert_eq!(confirmation["status"], "confirmed", "{confirmation}");
    assert_eq!(rows(&b, &enrolment), (1, 0, 1));
    let cert = b.certificates(&fa, &trainee);
    assert_eq!(
        lines(by_key(&cert, &key)),
        [(
            "kursledare eller handledare".to_string(),
            Some("Kåre Örnberg".to_string())
        )]
    );
    assert_eq!(rows(&a, &a_enrolment), (1, 1, 0));
    let erased = a
        .app
        .post(
            &format!("/enrolments/{a_enrolment}/erasure"),
            Some(&a.admin.access),
            json!({}),
        )
        .expect(200)
        .body;
    assert_eq!(kept_courses(&erased), 1, "{erased}");
    assert_eq!(rows(&a, &a_enrolment), (1, 0, 0));
}

#[test]
fn an_erased_imported_activity_takes_its_provenance_with_it() {
    let (a, a_trainee, a_enrolment) = sending();
    // A second course on A that no kursledare confirmed: erasable here after the move.
    let title = "Auskultation på hudkliniken, Akademiska";
    a.app
        .post(
            &format!("/enrolments/{a_enrolment}/activities"),
            Some(&a_trainee.access),
            json!({"kind": "course", "title": title, "start_date": "2026-04-06",
                   "delmal": ["STb1"]}),
        )
        .expect(201);
    let (b, trainee, enrolment, _) = moved_to_b(&a, &a_trainee, &a_enrolment);
    let titled = |title: &str| {
        use diesel::prelude::*;
        use eportfolio::schema::transferred_records;
        let pool = eportfolio::db::connect(&b.app.config.database_url, 1).expect("pool");
        let mut conn = pool.get().expect("conn");
        transferred_records::table
            .filter(transferred_records::enrolment_id.eq(&enrolment))
            .filter(transferred_records::title.eq(title))
            .count()
            .get_result::<i64>(&mut *conn)
            .expect("provenance")
    };
    assert_eq!(titled(title), 1, "the import keeps the course's provenance");
    let listed = |title: &str| {
        let progress = b
            .app
            .get(
                &format!("/enrolments/{enrolment}/progress"),
                Some(&trainee.access),
            )
            .expect(200)
            .body;
        progress.to_string().contains(title)
    };
    assert!(listed(title), "progress lists the imported course");

    let erased = b
        .app
        .post(
            &format!("/enrolments/{enrolment}/erasure"),
            Some(&b.admin.access),
            json!({}),
        )
        .expect(200)
        .body;
    assert_eq!(erased["erased"]["activities"], 1, "{erased}");
    assert_eq!(kept_courses(&erased), 1, "{erased}");
    // Its title and content were in its provenance row: gone with it. The confirmed
    // course keeps its own row, and its confirmation's (which carries the same title).
    assert_eq!(titled(title), 0, "the erased course's provenance is gone");
    assert_eq!(titled("Kurs i palliativ vård för ST-läkare"), 2);
    assert!(!listed(title), "progress no longer lists the erased course");
    assert_eq!(rows(&b, &enrolment), (1, 0, 1));
}

/// The count an erasure's answer names for confirmed courses.
fn kept_courses(answer: &Value) -> i64 {
    answer["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .find(|k| k["kind"] == "confirmed_courses")
        .and_then(|k| k["count"].as_i64())
        .unwrap_or_else(|| panic!("confirmed courses not named: {answer}"))
}

/// (course confirmations, their links, confirmations' provenance rows) of an enrolment.
fn rows(r: &Region, enrolment: &str) -> (i64, i64, i64) {
    use diesel::prelude::*;
    use eportfolio::schema::{
        course_confirmation_links, course_confirmations, transferred_records,
    };
    let pool = eportfolio::db::connect(&r.app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    let courses: Vec<String> = course_confirmations::table
        .filter(course_confirmations::enrolment_id.eq(enrolment))
        .select(course_confirmations::activity_id)
        .load(&mut *conn)
        .expect("courses");
    let links: i64 = course_confirmation_links::table
        .filter(course_confirmation_links::activity_id.eq_any(&courses))
        .count()
        .get_result(&mut *conn)
        .expect("links");
    let provenance: i64 = transferred_records::table
        .filter(transferred_records::enrolment_id.eq(enrolment))
        .filter(transferred_records::record_type.eq("course_confirmation"))
        .count()
        .get_result(&mut *conn)
        .expect("provenance");
    (courses.len() as i64, links, provenance)
}
