//! The steps a template gates on checklist items: Region Jönköping's four sit-ins before
//! the AT exam, one in each main placement.

use serde_json::json;

use super::*;
use crate::curriculum::templates::ChecklistKind;
use crate::progress::model::ChecklistItemProgress;

fn jonkoping() -> TemplateContent {
    let kind = |key: &str, name: &str| {
        json!({"key": key, "name": name, "months": 6, "supervision_every_days": 14,
               "checklist": [
                   {"kind": "learning_activity", "title": "Introduktion"},
                   {"kind": "assessment", "title": "Medsittning", "assessment_type": "sit_in",
                    "prerequisite_for": "AT-tentamen"}]})
    };
    serde_json::from_value(json!({
        "name": "AT Region Jönköpings län", "duration_months": 21, "supervision_every_days": 14,
        "placement_types": [kind("internmedicin", "Internmedicin"), kind("kirurgi", "Kirurgi och ortopedi"),
                            kind("psykiatri", "Psykiatri"), kind("allmanmedicin", "Allmänmedicin")],
        "programme_items": [{"kind": "course", "title": "Regiongemensam AT-utbildning"}]
    }))
    .expect("a valid template")
}

/// A placement of `kind` whose sit-in item has `sit_ins` done.
fn placement(kind: &str, sit_ins: i64) -> ChecklistProgress {
    let item = |title: &str, done: i64| ChecklistItemProgress {
        item_id: None,
        kind: ChecklistKind::Assessment,
        title: title.into(),
        delmal: vec![],
        required: 1,
        done,
        complete: done >= 1,
        expected_by_now: 1.0,
    };
    ChecklistProgress {
        placement_id: Some(format!("p-{kind}")),
        placement_type: Some(kind.into()),
        name: kind.into(),
        start_date: None,
        end_date: None,
        elapsed: 1.0,
        items: vec![item("Introduktion", 1), item("Medsittning", sit_ins)],
        complete_items: 0,
        total_items: 2,
    }
}

#[test]
fn the_exam_waits_for_a_sit_in_in_each_main_placement() {
    let t = jonkoping();
    let three = [
        placement("internmedicin", 1),
        placement("kirurgi", 2),
        placement("allmanmedicin", 1),
    ];
    let steps = prerequisites(&t, &three);
    assert_eq!(steps.len(), 1);
    let exam = &steps[0];
    assert_eq!(exam.step, "AT-tentamen");
    assert!(!exam.met);
    // Four items, one per placement type, in template order; the introduction is not one.
    let missing: Vec<_> = exam.items.iter().filter(|i| !i.complete).collect();
    assert_eq!(exam.items.len(), 4);
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].placement_type.as_deref(), Some("psykiatri"));
    assert_eq!(missing[0].placement_name.as_deref(), Some("Psykiatri"));
    assert_eq!((missing[0].required, missing[0].done), (1, 0));
    // Two sit-ins in surgery do not stand in for the missing one in psychiatry.
    assert_eq!(exam.items[1].done, 2);

    let mut all = three.to_vec();
    all.push(placement("psykiatri", 1));
    assert!(prerequisites(&t, &all)[0].met);
}

#[test]
fn two_placements_of_one_type_add_up_and_a_template_without_steps_has_none() {
    let t = jonkoping();
    let split = [placement("psykiatri", 0), placement("psykiatri", 1)];
    let psyk = prerequisites(&t, &split)[0]
        .items
        .iter()
        .find(|i| i.placement_type.as_deref() == Some("psykiatri"))
        .cloned()
        .expect("psykiatri");
    assert!(psyk.complete);

    let mut plain = jonkoping();
    for k in &mut plain.placement_types {
        for i in &mut k.checklist {
            i.prerequisite_for = Some("  ".into());
        }
    }
    assert!(prerequisites(&plain, &split).is_empty());
}

#[test]
fn a_programme_item_can_gate_a_step_too() {
    let mut t = jonkoping();
    t.placement_types.clear();
    t.programme_items[0].prerequisite_for = Some("AT-tentamen".into());
    let none = prerequisites(&t, &[]);
    assert_eq!(none.len(), 1);
    assert!(!none[0].met);
    assert_eq!(none[0].items[0].placement_type, None);
    assert_eq!(none[0].items[0].done, 0);
}
