//! What the dossier's PDF prints about the people who sign (issue 14 item 8): each
//! signer's specialty, tjänsteställe and handledarutbildning, and a link signer's
//! stated qualifications. Beside `pdf`, which is full.

use serde_json::Value;

use crate::portfolio::qualifications::AssessorQualifications;
use crate::render::pdf::Document;

fn text<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn or_dash(v: &str) -> String {
    if v.is_empty() {
        "–".into()
    } else {
        v.into()
    }
}

/// A table of everyone but the trainee, with what they stated (a dash where nothing).
pub fn profiles_table(doc: &mut Document, d: &Value, name: &dyn Fn(&Value) -> String) {
    let rows: Vec<Vec<String>> = d["people"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["id"] != d["trainee"]["id"])
        .map(|p| {
            vec![
                name(&p["id"]),
                or_dash(text(p, "/specialty")),
                or_dash(text(p, "/workplace")),
                or_dash(text(p, "/supervisor_training_on")),
            ]
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    doc.heading("Specialitet, tjänsteställe och handledarutbildning", 3);
    doc.table(
        &[
            "Namn",
            "Specialitet",
            "Tjänsteställe",
            "Handledarutbildning",
        ],
        &[0.28, 0.22, 0.32, 0.18],
        &rows,
    );
}

/// "; specialist i …; utbildad i bedömningsmetoder (…)" for an assessment signed by
/// link whose signer's vetting record holds qualifications; empty otherwise.
pub fn link_signer_qualifications(a: &Value) -> String {
    serde_json::from_value::<AssessorQualifications>(a["assessor_qualifications"].clone())
        .map(|q| format!("; {}", q.line_sv()))
        .unwrap_or_default()
}
