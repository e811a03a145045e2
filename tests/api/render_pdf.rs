//! The exported documents as readers and archives see them, checked with independent
//! tools (poppler's pdfinfo, pdffonts, pdftotext): PDFs are tagged, declare PDF/A-2a and
//! PDF/UA-1, embed font subsets only, and keep Swedish letters; the PNG chart is a PNG
//! of the SVG's size at the requested scale.
//!
//! Without poppler the PDF checks are skipped with a note, except under `CI=true`, where
//! a missing tool fails the test (CI installs poppler-utils).

use std::process::Command;

use serde_json::json;

use crate::support::{pdf, TestApp, TestUser};

struct Setup {
    app: TestApp,
    trainee: TestUser,
    enrolment: String,
}

fn setup() -> Setup {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let org = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &org);
    let template = app.stockholm_bt_template(&director, &org);
    let trainee = app.join(&director, "bt@sll.se", "trainee", &org);
    let supervisor = app.join(&director, "hhl@sll.se", "supervisor", &org);
    let e = app
        .post(
            "/enrolments",
            Some(&director.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31", "main_supervisor_id": supervisor.id,
                   "placements": [{"placement_type": "allmanmedicin", "start_date": "2026-09-01", "end_date": "2026-12-31"}]}),
        )
        .expect(201);
    let enrolment = e.body["id"].as_str().expect("id").to_string();
    app.post(
        &format!("/enrolments/{enrolment}/activities"),
        Some(&trainee.access),
        json!({"kind": "course", "title": "Försäkringsmedicinsk dag på Öster, Åre och Älvsjö",
               "start_date": "2026-10-06", "reflection": "Sjukskrivningsprocessen", "delmal": ["BT16"]}),
    )
    .expect(201);
    Setup {
        app,
        trainee,
        enrolment,
    }
}

/// Output of a poppler tool run on `pdf`, or `None` (with a note) when the tool is not
/// installed outside CI.
fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> Option<String> {
    let dir = std::env::temp_dir().join(format!("eportfolio-render-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("doc.pdf");
    std::fs::write(&file, pdf).expect("write pdf");
    let out = Command::new(tool).args(args).arg(&file).output();
    let _ = std::fs::remove_dir_all(&dir);
    match out {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{tool} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8(out.stdout).expect("UTF-8"))
        }
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {tool} is not runnable (poppler-utils): {e}"
            );
            eprintln!("{tool} not found: skipping its checks");
            None
        }
    }
}

/// Tagged, PDF/A-2a and PDF/UA-1 declared, fonts embedded as subsets with Unicode maps,
/// document language Swedish, and `needles` (with å ä ö) in the extracted text.
pub fn assert_accessible_pdf(bytes: &[u8], needles: &[&str]) {
    assert!(bytes.starts_with(b"%PDF-1.7"), "not PDF 1.7");
    assert!(
        bytes.windows(9).any(|w| w == b"/Lang(sv)"),
        "no document language sv"
    );
    if let Some(info) = poppler("pdfinfo", &[], bytes) {
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .map(str::trim)
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(field("Tagged"), "yes", "{info}");
        assert_eq!(field("PDF version"), "1.7", "{info}");
        assert!(!field("Title").is_empty(), "no title: {info}");
    }
    if let Some(meta) = poppler("pdfinfo", &["-meta"], bytes) {
        for declared in [
            "<pdfaid:part>2</pdfaid:part>",
            "<pdfaid:conformance>A</pdfaid:conformance>",
            "<pdfuaid:part>1</pdfuaid:part>",
        ] {
            assert!(meta.contains(declared), "{declared} missing: {meta}");
        }
    }
    if let Some(fonts) = poppler("pdffonts", &[], bytes) {
        // name, type (two words), encoding, emb, sub, uni, object id, generation.
        let rows: Vec<Vec<&str>> = fonts
            .lines()
            .skip(2)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert!(!rows.is_empty(), "no fonts: {fonts}");
        for row in &rows {
            let name = row[0];
            let (tag, base) = name.split_once('+').unwrap_or(("", name));
            assert!(
                tag.len() == 6 && tag.bytes().all(|b| b.is_ascii_uppercase()),
                "{name} has no subset tag: {fonts}"
            );
            assert!(base.starts_with("DejaVuSans"), "{fonts}");
            let flags = &row[row.len() - 5..row.len() - 2];
            assert_eq!(flags, ["yes", "yes", "yes"], "emb sub uni: {fonts}");
        }
    }
    let text = pdf::text(bytes);
    for needle in needles {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }
}

#[test]
fn a_dossier_pdf_is_tagged_pdf_a_with_subset_fonts_and_swedish_text() {
    let s = setup();
    let pdf = s
        .app
        .send(
            "GET",
            &format!("/enrolments/{}/dossier", s.enrolment),
            Some(&s.trainee.access),
            None,
            &[("Accept", "application/pdf")],
        )
        .expect(200);
    assert_eq!(pdf.header("content-type"), Some("application/pdf"));
    assert_accessible_pdf(
        &pdf.bytes,
        &[
            "Försäkringsmedicinsk dag på Öster, Åre och Älvsjö",
            "Delmål och underlag",
            "Spårbarhet",
        ],
    );
}

/// Width and height of an SVG's root element.
fn svg_size(svg: &str) -> (f64, f64) {
    let root = &svg[svg.find("<svg").expect("<svg")..];
    let root = &root[..root.find('>').expect("end of <svg")];
    let attr = |name: &str| -> f64 {
        let at = root.find(&format!(" {name}=\"")).expect(name) + name.len() + 3;
        root[at..]
            .split('"')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("number")
    };
    (attr("width"), attr("height"))
}

#[test]
fn the_png_chart_is_the_svg_chart_at_twice_its_size() {
    let s = setup();
    let chart = format!("/enrolments/{}/progress/chart", s.enrolment);
    let t = Some(s.trainee.access.as_str());
    let svg = s.app.get(&chart, t).expect(200);
    let (w, h) = svg_size(&svg.text);
    let png = s
        .app
        .send("GET", &chart, t, None, &[("Accept", "image/png")])
        .expect(200);
    let b = &png.bytes;
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert!(b.starts_with(b"\x89PNG\r\n\x1a\n"), "PNG signature");
    // The first chunk is IHDR: length 13, then width and height (big-endian), bit depth
    // and colour type; the last chunk is an empty IEND.
    assert_eq!(&b[8..16], b"\0\0\0\x0dIHDR");
    let be = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    assert_eq!(
        f64::from(be(16)),
        (w * 2.0).round(),
        "width of {w} at scale 2"
    );
    assert_eq!(
        f64::from(be(20)),
        (h * 2.0).round(),
        "height of {h} at scale 2"
    );
    assert_eq!(b[24], 8, "bit depth");
    assert!(
        matches!(b[25], 2 | 6),
        "RGB or RGBA, got colour type {}",
        b[25]
    );
    assert!(b.ends_with(b"\0\0\0\0IEND\xae\x42\x60\x82"), "IEND");
}
