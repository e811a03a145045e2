//! Steps a programme lets a trainee take only after some checklist items are done: a
//! regional rule written into the template (`prerequisite_for` on an item), such as
//! Region Jönköping's "four approved sit-ins, one in each main placement, before the AT
//! exam" (seed 001). The regulation does not set these; the template does.

use serde::Serialize;
use utoipa::ToSchema;

use super::model::ChecklistProgress;
use crate::curriculum::templates::{ChecklistItem, TemplateContent};

/// One step and whether its items are done.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Prerequisite {
    /// The step, as the template names it.
    #[schema(example = "AT-tentamen")]
    pub step: String,
    /// Every item below is done.
    pub met: bool,
    pub items: Vec<PrerequisiteItem>,
}

/// An item a step waits for. A placement type's item counts what was done in every
/// placement of that type; a type with no placement in the plan has done nothing.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PrerequisiteItem {
    #[schema(example = "Medsittning")]
    pub title: String,
    /// The placement type whose checklist holds the item; null for a programme item.
    #[schema(example = "psykiatri")]
    pub placement_type: Option<String>,
    /// The placement type's display name, e.g. `Psykiatri`.
    pub placement_name: Option<String>,
    #[schema(example = 1)]
    pub required: i64,
    #[schema(example = 0)]
    pub done: i64,
    pub complete: bool,
}

/// The steps of `content` in the order the template first names them, judged against the
/// checklist progress built from the same template (items in template order).
pub fn prerequisites(
    content: &TemplateContent,
    checklist: &[ChecklistProgress],
) -> Vec<Prerequisite> {
    let mut steps: Vec<Prerequisite> = Vec::new();
    let mut add =
        |step: &str, item: PrerequisiteItem| match steps.iter_mut().find(|s| s.step == step) {
            Some(s) => s.items.push(item),
            None => steps.push(Prerequisite {
                step: step.to_string(),
                met: false,
                items: vec![item],
            }),
        };
    for kind in &content.placement_types {
        for (index, item) in kind.checklist.iter().enumerate() {
            let Some(step) = marked(item) else { continue };
            let done = checklist
                .iter()
                .filter(|c| c.placement_type.as_deref() == Some(kind.key.as_str()))
                .filter_map(|c| c.items.get(index))
                .map(|p| p.done)
                .sum();
            add(step, judged(item, Some((&kind.key, &kind.name)), done));
        }
    }
    let programme = checklist.iter().find(|c| c.placement_id.is_none());
    for (index, item) in content.programme_items.iter().enumerate() {
        let Some(step) = marked(item) else { continue };
        let done = programme
            .and_then(|c| c.items.get(index))
            .map_or(0, |p| p.done);
        add(step, judged(item, None, done));
    }
    for s in &mut steps {
        s.met = s.items.iter().all(|i| i.complete);
    }
    steps
}

fn marked(item: &ChecklistItem) -> Option<&str> {
    item.prerequisite_for
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn judged(item: &ChecklistItem, kind: Option<(&str, &str)>, done: i64) -> PrerequisiteItem {
    let required = i64::from(item.count.unwrap_or(1).max(1));
    PrerequisiteItem {
        title: item.title.clone(),
        placement_type: kind.map(|(k, _)| k.to_string()),
        placement_name: kind.map(|(_, n)| n.to_string()),
        required,
        done,
        complete: done >= required,
    }
}

#[cfg(test)]
#[path = "prerequisites_tests.rs"]
mod tests;
