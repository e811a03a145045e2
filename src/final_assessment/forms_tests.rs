use super::*;

fn titles(s: &FormSet) -> Vec<(&str, &str)> {
    s.forms
        .iter()
        .map(|f| (f.appendix.as_str(), f.title_sv.as_str()))
        .collect()
}

#[test]
fn bt_2021_gets_the_three_bt_forms_of_hslf_fs_2021_8() {
    let s = form_set("bt-2021", "HSLF-FS 2021:8", Track::BtStandalone).expect("set");
    assert_eq!(s.kind, Kind::Bt2021);
    assert_eq!(
        titles(&s),
        [
            ("2", "Intyg om delmål i bastjänstgöringen"),
            ("3", "Intyg om fullgjord bastjänstgöring"),
            ("4", "Intyg om uppnådd baskompetens"),
        ]
    );
    assert_eq!(
        s.form("4").expect("4").signed_by,
        ["huvudansvarig handledare", "extern bedömare"]
    );
}

#[test]
fn st_2015_gets_the_2015_forms_and_signers() {
    let s = form_set("st-2015", "SOSFS 2015:8", Track::St2015).expect("set");
    assert_eq!(s.kind, Kind::St2015);
    assert_eq!(s.statute, "SOSFS 2015:8");
    let two = s.form("2").expect("bilaga 2");
    assert_eq!(two.title_sv, "Intyg om uppnådd specialistkompetens");
    assert_eq!(
        two.signed_by,
        [
            "verksamhetschef or appointed specialist",
            "huvudansvarig handledare"
        ]
    );
    let variants = s.form("3-7").expect("3-7");
    assert_eq!(variants.signers_of("kurs"), ["kursledare"]);
    assert_eq!(variants.signers_of("auskultation"), ["handledare"]);
    // No 2021 form leaks into the 2015 set.
    assert!(s.form("4").is_none() && s.form("7").is_none());
}

#[test]
fn st_2021_gets_the_2021_st_forms() {
    let s = form_set("st-2021", "HSLF-FS 2021:8", Track::St2021).expect("set");
    assert_eq!(s.kind, Kind::St2021);
    let apps: Vec<&str> = s.forms.iter().map(|f| f.appendix.as_str()).collect();
    assert_eq!(apps, ["6", "7", "8-11", "12"]);
    assert_eq!(
        s.form("8-11").expect("8-11").signers_of("kurs"),
        ["kursledare eller handledare"]
    );
    assert_eq!(
        s.form("12").expect("12").title_sv,
        "Intyg delmål STa3 Medicinsk vetenskap"
    );
    assert_eq!(
        s.application.as_ref().map(|f| f.title_sv.as_str()),
        Some("Ansökan om bevis om specialistkompetens")
    );
    assert_eq!(
        s.variant_of("quality_improvement"),
        Some("deltagande i utvecklingsarbete")
    );
    // Scientific work is certified through STa3 in 2021, not on bilagor 8-11.
    assert_eq!(s.variant_of("scientific_work"), None);
    assert_eq!(s.sta3.as_ref().map(|t| t.delmal.as_str()), Some("STa3"));
}

#[test]
fn every_catalogued_variant_is_one_the_form_lists() {
    for (code, statute, track, form) in [
        ("st-2021", "HSLF-FS 2021:8", Track::St2021, "8-11"),
        ("st-2015", "SOSFS 2015:8", Track::St2015, "3-7"),
    ] {
        let s = form_set(code, statute, track).expect("set");
        let f = s.form(form).expect("form");
        for v in s.variants.values().flatten() {
            assert!(
                f.variants.contains(v),
                "{code}: {v} not a variant of {form}"
            );
        }
    }
    let s = form_set("st-2015", "SOSFS 2015:8", Track::St2015).expect("set");
    assert_eq!(
        s.variant_of("scientific_work"),
        Some("självständigt skriftligt arbete")
    );
    assert!(s.sta3.is_none() && s.application.is_none());
    let bt = form_set("bt-2021", "HSLF-FS 2021:8", Track::BtStandalone).expect("set");
    assert_eq!(
        bt.application.as_ref().map(|f| f.appendix.as_str()),
        Some("1")
    );
}

#[test]
fn an_unknown_regulation_a_wrong_statute_or_a_wrong_track_is_an_error() {
    for (code, statute, track) in [
        ("at", "SOSFS 1999:5", Track::At),
        ("bt-2021", "SOSFS 2015:8", Track::BtStandalone),
        ("st-2015", "SOSFS 2015:8", Track::St2021),
        ("bt-2021", "HSLF-FS 2021:8", Track::St2015),
    ] {
        let e = form_set(code, statute, track).expect_err(code);
        assert!(matches!(e, AppError::Conflict(_)), "{code}: {e:?}");
    }
}
