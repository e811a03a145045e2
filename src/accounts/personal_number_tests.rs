//! Examples are test-style numbers: Skatteverket's published test number 19121212-1212
//! and numbers whose check digit was computed here (no real person's).

use super::*;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 30).expect("date")
}

fn ok(input: &str) -> PersonalNumber {
    parse(input, today()).unwrap_or_else(|e| panic!("{input}: {e:?}"))
}

fn err(input: &str) -> NumberError {
    match parse(input, today()) {
        Ok(n) => panic!("{input} accepted as {}", n.display()),
        Err(e) => e,
    }
}

#[test]
fn luhn_check_digit_of_the_published_test_number() {
    assert_eq!(check_digit(&[1, 2, 1, 2, 1, 2, 1, 2, 1]), 2);
    assert_eq!(check_digit(&[9, 0, 0, 1, 0, 1, 2, 3, 8]), 5);
}

#[test]
fn every_accepted_form_normalises_to_twelve_digits() {
    for input in [
        "19900101-2385",
        "199001012385",
        "900101-2385",
        "9001012385",
        " 19900101-2385 ",
    ] {
        let n = ok(input);
        assert_eq!(n.digits(), "199001012385", "{input}");
        assert_eq!(n.display(), "19900101-2385");
        assert_eq!(n.kind(), NumberKind::PersonalIdentity);
    }
    assert_eq!(ok("19121212-1212").digits(), "191212121212");
}

#[test]
fn the_century_of_a_ten_digit_number_follows_the_clock() {
    // Born today: this century.
    assert_eq!(ok("261130-1231").digits(), "202611301231");
    // Tomorrow's date in this century has not happened yet: last century.
    assert_eq!(ok("261201-1235").digits(), "192612011235");
    assert_eq!(ok("121212-1212").digits(), "201212121212");
    // `+`: a hundred years more.
    assert_eq!(ok("121212+1212").digits(), "191212121212");
    assert_eq!(ok("261130+1231").digits(), "192611301231");
    // The same digits read on another day give another century.
    let earlier = NaiveDate::from_ymd_opt(2026, 11, 29).expect("date");
    let n = parse("261130-1231", earlier).expect("valid");
    assert_eq!(n.digits(), "192611301231");
    // A leap day only exists in some years: 2000-02-29 did.
    assert_eq!(ok("000229-1235").digits(), "200002291235");
    assert_eq!(ok("200229-1231").digits(), "202002291231");
}

#[test]
fn samordningsnummer_is_day_plus_sixty() {
    let n = ok("19900161-2382");
    assert_eq!(n.kind(), NumberKind::Coordination);
    assert_eq!(n.digits(), "199001612382");
    assert_eq!(ok("900161-2382").digits(), "199001612382");
    // 31 January + 60.
    assert_eq!(ok("19900191-2386").kind(), NumberKind::Coordination);
    // No day 32 (+60) and no day 0 (+60).
    assert_eq!(err("19900192-2385"), NumberError::Date);
    assert_eq!(err("19900160-2387"), NumberError::Date);
}

#[test]
fn wrong_format_is_a_format_error() {
    for input in [
        "",
        "1990-01-01-2385",
        "19900101+2385",
        "19900101 2385",
        "900101/2385",
        "9001012385x",
        "1990010123856",
        "199001012x85",
        "900101–2385",
        "١٩٩٠٠١٠١٢٣٨٥",
        "90010123",
    ] {
        assert_eq!(err(input), NumberError::Format, "{input:?}");
    }
}

#[test]
fn a_date_that_does_not_exist_or_is_ahead_is_a_date_error() {
    for input in [
        "19900230-2385", // 30 February
        "19901301-2385", // month 13
        "19900001-2385", // month 0
        "19900100-2385", // day 0
        "19010229-2385", // not a leap year
        "20261201-1235", // tomorrow
        "21000101-2385", // next century
    ] {
        assert_eq!(err(input), NumberError::Date, "{input}");
    }
}

#[test]
fn a_wrong_check_digit_is_a_check_digit_error() {
    assert_eq!(err("19121212-1213"), NumberError::CheckDigit);
    assert_eq!(err("900101-2384"), NumberError::CheckDigit);
    assert_eq!(err("19900161-2385"), NumberError::CheckDigit);
}

#[test]
fn a_stored_number_reads_back_whatever_the_day() {
    let n = from_stored("202611301231").expect("stored");
    assert_eq!(n.display(), "20261130-1231");
    assert!(from_stored("2026113012").is_none());
    assert!(from_stored("20261130123x").is_none());
}

#[test]
fn debug_output_never_shows_the_digits() {
    let text = format!("{:?}", ok("19121212-1212"));
    assert!(!text.contains("1212"), "{text}");
}

#[test]
fn hsa_ids_follow_the_published_form() {
    assert_eq!(
        parse_hsa_id("SE2321000016-15R7").as_deref(),
        Ok("SE2321000016-15R7")
    );
    assert_eq!(
        parse_hsa_id("se2321000016-abc").as_deref(),
        Ok("SE2321000016-abc")
    );
    // 31 characters in all is the most.
    let longest = format!("SE2321000016-{}", "A".repeat(18));
    assert_eq!(longest.len(), 31);
    assert!(parse_hsa_id(&longest).is_ok());
    for bad in [
        "",
        "SE2321000016-",
        "SE2321000016",
        "SE232100001-6ABC",
        "DK2321000016-ABC",
        "SE2321000016-ÅÄÖ",
        "SE2321000016-a@b",
        "SE2321000016-a-b",
        "SE2321000016-a b",
        "SE23210000X6-ABC",
    ] {
        assert!(parse_hsa_id(bad).is_err(), "{bad:?}");
    }
    assert!(parse_hsa_id(&format!("{longest}A")).is_err());
}
