//! A picture of a trainee's progress: time served against the checklist, and evidence
//! per delmål as stacked bars. Built once as a scene, rendered as SVG or PNG.

use super::service::{DelmalState, Progress};
use crate::render::chart::{Anchor, Chart, Color, Element};

const WIDTH: f32 = 900.0;
const LEFT: f32 = 330.0;
const BAR_MAX: f32 = 480.0;
const ROW: f32 = 22.0;

const TEXT: Color = Color(33, 37, 41);
const MUTED: Color = Color(108, 117, 125);
const GRID: Color = Color(222, 226, 230);

/// Kinds of evidence, in stacking order, with their colours.
const KINDS: [(&str, Color); 5] = [
    ("Aktiviteter", Color(13, 110, 253)),
    ("Bedömningar", Color(25, 135, 84)),
    ("Samtal", Color(253, 126, 20)),
    ("Sammantagna bedömningar", Color(111, 66, 193)),
    ("Tillgodoräknad tjänstgöring", Color(173, 181, 189)),
];

fn state_colour(s: DelmalState) -> (Color, &'static str) {
    match s {
        DelmalState::NotStarted => (Color(220, 53, 69), "ej påbörjat"),
        DelmalState::InProgress => (Color(255, 193, 7), "pågår"),
        DelmalState::ReadyForFinalAssessment => (Color(13, 202, 240), "redo för slutbedömning"),
        DelmalState::Achieved => (Color(25, 135, 84), "uppnått"),
    }
}

fn text(
    x: f32,
    y: f32,
    size: f32,
    s: impl Into<String>,
    anchor: Anchor,
    bold: bool,
    fill: Color,
) -> Element {
    Element::Text {
        x,
        y,
        size,
        text: s.into(),
        anchor,
        bold,
        fill,
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

pub fn progress_chart(p: &Progress, trainee: &str) -> Chart {
    let mut e = Vec::new();
    let title = format!("{trainee}: progress {}", p.as_of);
    e.push(text(
        20.0,
        30.0,
        18.0,
        title.clone(),
        Anchor::Start,
        true,
        TEXT,
    ));
    e.push(text(
        20.0,
        52.0,
        12.0,
        format!(
            "Tid {:.1} av {} månader · takt: {}",
            p.time_served.total_months,
            p.time_served.nominal_months,
            match p.pace.flag {
                super::service::PaceFlag::OnPace => "i fas",
                super::service::PaceFlag::Behind => "efter",
                super::service::PaceFlag::AtRisk => "risk",
            }
        ),
        Anchor::Start,
        false,
        MUTED,
    ));

    // Time served against checklist done, both as a share.
    let total_items: f64 = p
        .checklist
        .iter()
        .flat_map(|c| c.items.iter())
        .map(|i| i.required as f64)
        .sum();
    let done_items: f64 = p
        .checklist
        .iter()
        .flat_map(|c| c.items.iter())
        .map(|i| i.done.min(i.required) as f64)
        .sum();
    let checklist_share = if total_items > 0.0 {
        done_items / total_items
    } else {
        0.0
    };
    let mut y = 80.0;
    for (label, share, colour) in [
        (
            "Tjänstgjord tid",
            p.time_served.fraction_done,
            Color(73, 80, 87),
        ),
        ("Checklista klar", checklist_share, Color(13, 110, 253)),
    ] {
        e.push(text(
            LEFT - 10.0,
            y + 13.0,
            12.0,
            label,
            Anchor::End,
            false,
            TEXT,
        ));
        e.push(Element::Rect {
            x: LEFT,
            y,
            w: BAR_MAX,
            h: 16.0,
            fill: GRID,
        });
        e.push(Element::Rect {
            x: LEFT,
            y,
            w: (BAR_MAX * share.clamp(0.0, 1.0) as f32).max(0.0),
            h: 16.0,
            fill: colour,
        });
        e.push(text(
            LEFT + BAR_MAX + 8.0,
            y + 13.0,
            12.0,
            format!("{:.0} %", share * 100.0),
            Anchor::Start,
            false,
            TEXT,
        ));
        y += 24.0;
    }

    // Evidence per delmål.
    y += 16.0;
    e.push(text(
        20.0,
        y,
        14.0,
        "Underlag per delmål",
        Anchor::Start,
        true,
        TEXT,
    ));
    y += 12.0;
    let counts: Vec<[i64; 5]> = p
        .delmal
        .iter()
        .map(|d| {
            let ev = &d.evidence;
            [
                ev.activities,
                ev.assessments.values().sum(),
                ev.supervision_sessions + ev.handover_talks + ev.final_check_ins,
                ev.summary_assessments,
                ev.credited_service,
            ]
        })
        .collect();
    let max = counts
        .iter()
        .map(|c| c.iter().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1) as f32;
    let scale = BAR_MAX / max;
    let top = y;
    for (d, c) in p.delmal.iter().zip(&counts) {
        let (colour, _) = state_colour(d.state);
        e.push(Element::Rect {
            x: 20.0,
            y: y + 5.0,
            w: 10.0,
            h: 10.0,
            fill: colour,
        });
        e.push(text(
            36.0,
            y + 14.0,
            11.0,
            d.code.clone(),
            Anchor::Start,
            true,
            TEXT,
        ));
        e.push(text(
            84.0,
            y + 14.0,
            11.0,
            shorten(&d.title_sv, 36),
            Anchor::Start,
            false,
            TEXT,
        ));
        let mut x = LEFT;
        for (n, (_, colour)) in c.iter().zip(KINDS.iter()) {
            let w = *n as f32 * scale;
            if w > 0.0 {
                e.push(Element::Rect {
                    x,
                    y: y + 3.0,
                    w,
                    h: ROW - 6.0,
                    fill: *colour,
                });
                x += w;
            }
        }
        e.push(text(
            x + 6.0,
            y + 14.0,
            10.0,
            c.iter().sum::<i64>().to_string(),
            Anchor::Start,
            false,
            MUTED,
        ));
        y += ROW;
    }
    e.push(Element::Line {
        x1: LEFT,
        y1: top,
        x2: LEFT,
        y2: y,
        stroke: MUTED,
        width: 1.0,
    });

    // Legend: kinds of evidence, then states.
    y += 20.0;
    let mut x = 20.0;
    for (label, colour) in KINDS {
        e.push(Element::Rect {
            x,
            y: y - 9.0,
            w: 10.0,
            h: 10.0,
            fill: colour,
        });
        e.push(text(x + 14.0, y, 10.0, label, Anchor::Start, false, TEXT));
        x += 28.0 + label.chars().count() as f32 * 6.0;
    }
    y += 18.0;
    x = 20.0;
    for s in [
        DelmalState::NotStarted,
        DelmalState::InProgress,
        DelmalState::ReadyForFinalAssessment,
        DelmalState::Achieved,
    ] {
        let (colour, label) = state_colour(s);
        e.push(Element::Rect {
            x,
            y: y - 9.0,
            w: 10.0,
            h: 10.0,
            fill: colour,
        });
        e.push(text(x + 14.0, y, 10.0, label, Anchor::Start, false, TEXT));
        x += 28.0 + label.chars().count() as f32 * 6.0;
    }
    Chart {
        width: WIDTH,
        height: y + 16.0,
        title,
        elements: e,
    }
}
