//! What the dossier's PDF prints about the courses a kursledare confirmed (issue 14
//! item 8, issue 17): the course, the kursledare with address and workplace, who vetted
//! them, when they confirmed, the digest of what they confirmed, and the service where
//! the confirmation was given when it came with a transfer. Beside `pdf`, which is full.

use serde_json::Value;

use crate::render::pdf::Document;

fn text<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// The table of confirmed courses; nothing when there are none.
pub fn courses_table(doc: &mut Document, d: &Value, name: &dyn Fn(&Value) -> String) {
    let titles: std::collections::HashMap<&str, &str> = d["activities"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| (text(a, "/id"), text(a, "/title")))
        .collect();
    let rows: Vec<Vec<String>> = d["course_confirmations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let vetted = if c["vetted_by"].is_null() {
                "–".to_string()
            } else {
                name(&c["vetted_by"])
            };
            let at = text(c, "/confirmed_at").get(..10).unwrap_or("").to_string();
            let given = match c["transferred"].as_object() {
                Some(_) => format!("{at}, i tjänsten {}", text(c, "/transferred/service_name")),
                None => at,
            };
            vec![
                titles
                    .get(text(c, "/activity_id"))
                    .copied()
                    .unwrap_or("–")
                    .to_string(),
                format!(
                    "{} ({}), {}",
                    text(c, "/kursledare_name"),
                    text(c, "/kursledare_email"),
                    text(c, "/kursledare_workplace")
                ),
                vetted,
                given,
                text(c, "/content_hash").get(..12).unwrap_or("").to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    doc.heading("Kurser intygade av kursledare", 2);
    doc.table(
        &["Kurs", "Kursledare", "Godkänd av", "Intygad", "Hash"],
        &[0.18, 0.3, 0.14, 0.26, 0.12],
        &rows,
    );
}
