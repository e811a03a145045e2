//! The dossier as a PDF that reads well on paper: the same content as the JSON, laid
//! out with `render::pdf::Document`. Moved here unchanged from `build.rs` (the render
//! work owns how documents are drawn); `build` re-exports `pdf` and `stamp`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::AppError;
use crate::ids::SigningKeyId;
use crate::render::pdf::Document;

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn people_index(d: &Value) -> HashMap<String, String> {
    d["people"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let name = if s(p, "/name").trim().is_empty() {
                        s(p, "/email")
                    } else {
                        s(p, "/name")
                    };
                    (s(p, "/id").to_string(), name.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn placement_names(d: &Value) -> HashMap<String, String> {
    let types: HashMap<String, String> = d["programme"]["placement_types"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| (s(p, "/key").to_string(), s(p, "/name").to_string()))
                .collect()
        })
        .unwrap_or_default();
    d["enrolment"]["placements"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let key = s(p, "/placement_type");
                    (
                        s(p, "/id").to_string(),
                        types.get(key).cloned().unwrap_or_else(|| key.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn instrument_sv(i: &str) -> &str {
    match i {
        "mini_cex" => "Mini-CEX",
        "dops" => "DOPS",
        "cbd" => "CbD",
        "sit_in" => "Medsittning",
        "multi_source" => "Multi-source feedback",
        other => other,
    }
}

fn record_type_sv(t: &str) -> &str {
    match t {
        "activity" => "Aktivitet",
        "assessment" => "Bedömning",
        "supervision_session" => "Handledarsamtal",
        "handover_talk" => "Överlämningssamtal",
        "final_check_in" => "Slutavstämning",
        "summary_assessment" => "Sammantagen bedömning",
        "credited_service" => "Tillgodoräknad tjänstgöring",
        other => other,
    }
}

fn state_sv(t: &str) -> &str {
    match t {
        "not_started" => "ej påbörjat",
        "in_progress" => "pågår",
        "ready_for_final_assessment" => "redo för slutbedömning",
        "achieved" => "uppnått",
        other => other,
    }
}

fn judgement_sv(t: &str) -> &str {
    match t {
        "achieved" => "uppnått",
        "progressing" => "på väg",
        "not_yet" => "ännu inte",
        other => other,
    }
}

fn date_of(v: &Value) -> String {
    v.as_str()
        .map(|t| t.get(..10).unwrap_or(t).to_string())
        .unwrap_or_default()
}

fn time_of(v: &Value) -> String {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_default()
}

/// Renders the dossier as a PDF: cover, delmål with their evidence, then the records.
pub fn pdf(d: &Value, content_hash: &str, key_id: &SigningKeyId) -> Result<Vec<u8>, AppError> {
    let who = people_index(d);
    let placements = placement_names(d);
    let name = |id: &Value| -> String {
        id.as_str()
            .and_then(|i| who.get(i).cloned())
            .unwrap_or_else(|| "–".into())
    };
    let trainee = s(d, "/trainee/name").to_string();
    let created = d["generated_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    let mut doc = Document::new(&format!("Portfölj: {trainee}"), "eportfolio", created);

    // Cover.
    doc.heading(&format!("Portfölj för {trainee}"), 1);
    doc.paragraph("Underlag för slutbedömning / Dossier for the final assessment");
    doc.spacer(8.0);
    let e = &d["enrolment"];
    let ts = &e["time_served"];
    let rows = [
        ("Läkare", format!("{trainee} ({})", s(d, "/trainee/email"))),
        (
            "Program",
            format!(
                "{} (version {})",
                s(d, "/programme/name"),
                d["programme"]["template_version"]
            ),
        ),
        (
            "Föreskrift",
            format!(
                "{} {}",
                s(d, "/regulation/statute"),
                s(d, "/regulation/name")
            ),
        ),
        ("Spår", s(e, "/track").to_string()),
        (
            "Period",
            format!("{} – {}", s(e, "/start_date"), s(e, "/planned_end")),
        ),
        ("Omfattning", format!("{} %", e["extent_percent"])),
        (
            "Tjänstgjord tid",
            format!("{} av {} månader", ts["total_months"], ts["nominal_months"]),
        ),
        ("Dossier", s(d, "/dossier_id").to_string()),
        ("Skapad", time_of(&d["generated_at"])),
    ];
    let kv: Vec<(&str, &str)> = rows.iter().map(|(k, v)| (*k, v.as_str())).collect();
    doc.key_values(&kv);
    doc.heading("Placeringar", 2);
    let prow: Vec<Vec<String>> = e["placements"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    vec![
                        placements.get(s(p, "/id")).cloned().unwrap_or_default(),
                        s(p, "/start_date").to_string(),
                        s(p, "/end_date").to_string(),
                        // Whoever supervised the placement, also after it ended.
                        e["assignments"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|a| {
                                a["placement_id"] == p["id"] && a["role"] == "placement_supervisor"
                            })
                            .map(|a| name(&a["user_id"]))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    doc.table(
        &["Placering", "Från", "Till", "Handledare"],
        &[0.34, 0.18, 0.18, 0.30],
        &prow,
    );
    doc.heading("Handledare och bedömare", 2);
    let arow: Vec<Vec<String>> = e["assignments"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    vec![
                        name(&x["user_id"]),
                        s(x, "/role").replace('_', " "),
                        format!("{} – {}", s(x, "/valid_from"), s(x, "/valid_to")),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    doc.table(&["Namn", "Roll", "Period"], &[0.4, 0.3, 0.3], &arow);
    super::pdf_signers::profiles_table(&mut doc, d, &name);
    doc.small(&format!(
        "Signerad av tjänsten med {ALGORITHM} (nyckel {key_id}); innehållets hash {content_hash}. \
         Kontrollera äktheten med POST /api/v1/dossier-verifications eller `eportfolio dossier verify`.",
        ALGORITHM = crate::dossier::signing::ALGORITHM
    ));

    // Delmål with their evidence.
    doc.page_break();
    doc.heading("Delmål och underlag", 1);
    if let Some(delmal) = d["progress"]["delmal"].as_array() {
        for dm in delmal {
            doc.heading(&format!("{} {}", s(dm, "/code"), s(dm, "/title_sv")), 2);
            doc.paragraph(&format!(
                "Status: {}{}{}",
                state_sv(s(dm, "/state")),
                dm["summary_judgement"]
                    .as_str()
                    .map(|j| format!(" · sammantagen bedömning: {}", judgement_sv(j)))
                    .unwrap_or_default(),
                dm["final_judgement"]
                    .as_str()
                    .map(|j| format!(" · slutbedömning: {}", judgement_sv(j)))
                    .unwrap_or_default(),
            ));
            let items: Vec<Vec<String>> = dm["items"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|i| {
                            let t = s(i, "/record_type");
                            let title = match t {
                                "assessment" => instrument_sv(s(i, "/title")).to_string(),
                                "summary_assessment" => judgement_sv(s(i, "/title")).to_string(),
                                _ => s(i, "/title").to_string(),
                            };
                            vec![
                                s(i, "/date").to_string(),
                                record_type_sv(t).to_string(),
                                title,
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            if items.is_empty() {
                doc.small("Inget underlag.");
            } else {
                doc.table(&["Datum", "Typ", "Titel"], &[0.16, 0.26, 0.58], &items);
            }
        }
    }

    // Signed assessments.
    doc.page_break();
    doc.heading("Signerade bedömningar", 1);
    for a in d["assessments"].as_array().into_iter().flatten() {
        doc.heading(
            &format!(
                "{} {}",
                instrument_sv(s(a, "/instrument")),
                s(a, "/performed_on")
            ),
            3,
        );
        let ratings: Vec<String> = a["ratings"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect()
            })
            .unwrap_or_default();
        let context: Vec<String> = a["context"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        let qualified = super::pdf_signers::link_signer_qualifications(a);
        let signer = match a["signature"]["signed_by"].as_str() {
            Some(_) => name(&a["signature"]["signed_by"]),
            None => match a.get("assessor_vetted_by") {
                Some(Value::String(_)) => format!(
                    "{} (utan konto; bedömaren godkänd av {}{qualified})",
                    s(a, "/signature/signed_by_email"),
                    name(&a["assessor_vetted_by"])
                ),
                _ => format!(
                    "{} (utan konto; bedömaren ej granskad{qualified})",
                    s(a, "/signature/signed_by_email")
                ),
            },
        };
        let rows = [
            (
                "Delmål",
                a["delmal"]
                    .as_array()
                    .map(|c| {
                        c.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
            ),
            (
                "Placering",
                a["placement_id"]
                    .as_str()
                    .and_then(|p| placements.get(p).cloned())
                    .unwrap_or_default(),
            ),
            ("Sammanhang", context.join("; ")),
            ("Skattning", ratings.join("; ")),
            ("Bra", s(a, "/feedback_strengths").to_string()),
            ("Nästa steg", s(a, "/feedback_next_steps").to_string()),
            ("Reflektion", s(a, "/trainee_reflection").to_string()),
            (
                "Signerad",
                format!(
                    "{signer}, {} ({})",
                    time_of(&a["signature"]["signed_at"]),
                    s(a, "/signature/method")
                ),
            ),
        ];
        let kv: Vec<(&str, &str)> = rows.iter().map(|(k, v)| (*k, v.as_str())).collect();
        doc.key_values(&kv);
        doc.small(&format!(
            "Innehållets hash: {}",
            s(a, "/signature/content_hash")
        ));
    }

    // Summary assessments.
    doc.heading("Sammantagna bedömningar", 1);
    for x in d["summary_assessments"].as_array().into_iter().flatten() {
        doc.heading(
            &format!(
                "{} – {}",
                placements
                    .get(s(x, "/placement_id"))
                    .cloned()
                    .unwrap_or_default(),
                name(&x["author_id"])
            ),
            3,
        );
        let rows: Vec<Vec<String>> = x["judgements"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|j| {
                        vec![
                            s(j, "/code").to_string(),
                            judgement_sv(s(j, "/judgement")).to_string(),
                            s(j, "/comment").to_string(),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        doc.table(
            &["Delmål", "Bedömning", "Kommentar"],
            &[0.14, 0.18, 0.68],
            &rows,
        );
        doc.paragraph(s(x, "/overall"));
        doc.small(&format!(
            "Signerad {} ({}); hash {}",
            time_of(&x["signature"]["signed_at"]),
            s(x, "/signature/method"),
            s(x, "/signature/content_hash")
        ));
    }

    // Talks.
    for (key, title) in [
        ("supervision_sessions", "Handledarsamtal"),
        ("handover_talks", "Överlämningssamtal"),
        ("final_check_ins", "Slutavstämning"),
    ] {
        doc.heading(title, 1);
        for t in d[key].as_array().into_iter().flatten() {
            doc.heading(&format!("{} {}", title, s(t, "/held_on")), 3);
            let who_confirmed: Vec<String> = t["participants"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            format!(
                                "{} ({}): {}",
                                name(&p["user_id"]),
                                s(p, "/role").replace('_', " "),
                                if p["confirmed_at"].is_null() {
                                    "ej bekräftat".to_string()
                                } else {
                                    format!("bekräftat {}", time_of(&p["confirmed_at"]))
                                }
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let topics: Vec<&str> = t["topics"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut rows = vec![
                ("Deltagare", who_confirmed.join("; ")),
                ("Ämnen", topics.join("; ")),
                ("Anteckningar", s(t, "/notes").to_string()),
                ("Överenskommet", s(t, "/agreed_actions").to_string()),
            ];
            if let Some(h) = t.get("handover").filter(|h| !h.is_null()) {
                let status: Vec<String> = h["delmal_status"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| format!("{}: {}", s(x, "/code"), state_sv(s(x, "/status"))))
                            .collect()
                    })
                    .unwrap_or_default();
                rows.push(("Delmål", status.join("; ")));
                rows.push(("Styrkor", s(h, "/strengths").to_string()));
                rows.push(("Att utveckla", s(h, "/areas_to_develop").to_string()));
                rows.push(("Plan", s(h, "/plan_next_placement").to_string()));
            }
            let kv: Vec<(&str, &str)> = rows
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (*k, v.as_str()))
                .collect();
            doc.key_values(&kv);
        }
    }

    // Final assessments.
    doc.heading("Slutbedömning", 1);
    for f in d["final_assessments"].as_array().into_iter().flatten() {
        let decision = match s(f, "/decision") {
            "achieved" => "kompetensen uppnådd",
            "not_yet" => "ännu inte uppnådd",
            _ => "inget beslut",
        };
        doc.heading(
            &format!("{} ({})", decision, s(f, "/status").replace('_', " ")),
            3,
        );
        let rows: Vec<Vec<String>> = f["judgements"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|j| {
                        vec![
                            s(j, "/code").to_string(),
                            judgement_sv(s(j, "/judgement")).to_string(),
                            s(j, "/comment").to_string(),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        doc.table(
            &["Delmål", "Bedömning", "Kommentar"],
            &[0.14, 0.18, 0.68],
            &rows,
        );
        if !s(f, "/missing").is_empty() {
            doc.paragraph(&format!("Det som saknas: {}", s(f, "/missing")));
        }
        for x in f["signers"].as_array().into_iter().flatten() {
            doc.paragraph(&format!(
                "{} ({}): {}",
                s(x, "/name"),
                s(x, "/role").replace('_', " "),
                if x["signed_at"].is_null() {
                    "ej signerat".to_string()
                } else {
                    format!(
                        "signerat {} ({})",
                        time_of(&x["signed_at"]),
                        s(x, "/signature_method")
                    )
                }
            ));
        }
    }

    // Activities, briefly.
    doc.heading("Lärandeaktiviteter", 1);
    let rows: Vec<Vec<String>> = d["activities"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    vec![
                        s(x, "/start_date").to_string(),
                        s(x, "/kind").replace('_', " "),
                        with_source(s(x, "/title"), &x["source"]),
                        x["delmal"]
                            .as_array()
                            .map(|c| {
                                c.iter()
                                    .filter_map(Value::as_str)
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            })
                            .unwrap_or_default(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    doc.table(
        &["Datum", "Typ", "Titel", "Delmål"],
        &[0.14, 0.18, 0.46, 0.22],
        &rows,
    );
    super::pdf_courses::courses_table(&mut doc, d, &name);

    // Audit facts.
    doc.heading("Spårbarhet: vem signerade och bekräftade vad", 1);
    let rows: Vec<Vec<String>> = d["audit"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| s(x, "/action") != "created")
                .map(|x| {
                    vec![
                        time_of(&x["at"]),
                        if x["actor_id"].is_null() {
                            s(x, "/client").to_string()
                        } else {
                            name(&x["actor_id"])
                        },
                        format!("{} {}", s(x, "/action"), s(x, "/entity").replace('_', " ")),
                        format!("#{} {}", x["seq"], &s(x, "/hash").get(..12).unwrap_or("")),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    doc.table(
        &["Tid", "Vem", "Vad", "Logg"],
        &[0.24, 0.26, 0.28, 0.22],
        &rows,
    );
    doc.finish()
}

/// A date for file names and headers.
pub fn stamp(d: &Value) -> String {
    date_of(&d["generated_at"])
}

/// An activity's title, and where a system made it from: the learning platform, when
/// its statement came and the statement's id (`ActivitySource`), so that a reader of the
/// paper dossier can trace it.
fn with_source(title: &str, source: &Value) -> String {
    if !source.is_object() {
        return title.to_string();
    }
    if source["kind"] == "transfer" {
        // Imported from another service (issue 17): where it was logged, and when.
        return format!(
            "{title} (överförd från {}, {} {}, importerad {})",
            s(source, "/transfer/service_name"),
            s(source, "/transfer/signed_by"),
            time_of(&source["transfer"]["signed_at"]),
            time_of(&source["received_at"]),
        );
    }
    format!(
        "{title} (xAPI från {}, {}, utsaga {})",
        s(source, "/client_name"),
        time_of(&source["received_at"]),
        s(source, "/statement_id")
    )
}
