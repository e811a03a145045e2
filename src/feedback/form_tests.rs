use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::*;

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn full(form: &EvaluationForm, value: i32) -> BTreeMap<String, i32> {
    form.questions
        .iter()
        .map(|q| (q.key.clone(), value))
        .collect()
}

#[test]
fn the_embedded_form_has_unique_keys_a_scale_and_a_group_size_of_three() {
    let f = form().expect("catalogue parses");
    let keys: std::collections::HashSet<_> = f.questions.iter().map(|q| &q.key).collect();
    assert_eq!(keys.len(), f.questions.len());
    assert!(f.scale.min < f.scale.max);
    assert_eq!(f.minimum_group_size, 3);
}

#[test]
fn answers_must_cover_every_question_on_the_scale_and_nothing_else() {
    let f = form().expect("form");
    assert!(check_answers(&f, &full(&f, f.scale.max)).is_ok());
    let mut missing = full(&f, 3);
    missing.remove(&f.questions[0].key);
    assert!(check_answers(&f, &missing).is_err());
    assert!(check_answers(&f, &full(&f, f.scale.max + 1)).is_err());
    assert!(check_answers(&f, &full(&f, f.scale.min - 1)).is_err());
    let mut extra = full(&f, 3);
    extra.insert("salary".into(), 3);
    assert!(check_answers(&f, &extra).is_err());
}

#[test]
fn half_years_split_at_july_and_end_on_their_last_day() {
    assert_eq!(half_year_of(day("2026-06-30")), "2026-H1");
    assert_eq!(half_year_of(day("2026-07-01")), "2026-H2");
    assert_eq!(last_day_of("2026-H1"), Some(day("2026-06-30")));
    assert_eq!(last_day_of("2026-H2"), Some(day("2026-12-31")));
    for bad in ["2026-H3", "2026", "26-H1", "2026-h1", "x026-H1", ""] {
        assert_eq!(last_day_of(bad), None, "{bad}");
    }
}
