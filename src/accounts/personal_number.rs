//! Personnummer and samordningsnummer (Swedish personal identity and co-ordination
//! numbers), and HSA-id: pure parsing and validation, no database.
//!
//! The rules (Skatteverket, SKV 704 "Personnummer" and the samordningsnummer rules):
//! - a personnummer is the date of birth `YYMMDD`, a three-digit birth number and a check
//!   digit, written `YYMMDD-NNNN`; from the year a person turns 100 the `-` becomes `+`.
//!   The 12-digit form `YYYYMMDDNNNN` (or `YYYYMMDD-NNNN`) adds the century.
//! - a samordningsnummer (co-ordination number) is built the same way with 60 added to
//!   the day of birth (day 61-91).
//! - the check digit is Luhn's (weights 2,1,2,1,... over the ten-digit form's first nine
//!   digits, the digits of each product summed).
//!
//! Stored, a number is always the 12 digits without separator.

use chrono::{Datelike, NaiveDate};

/// Which kind of number it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberKind {
    /// Personnummer.
    PersonalIdentity,
    /// Samordningsnummer: day of birth + 60.
    Coordination,
}

impl NumberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NumberKind::PersonalIdentity => "personnummer",
            NumberKind::Coordination => "samordningsnummer",
        }
    }
}

/// A valid personnummer or samordningsnummer.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonalNumber {
    /// The 12 digits, `YYYYMMDDNNNN`.
    digits: String,
    kind: NumberKind,
}

// Never printed by accident (logs, panics): Debug hides the digits.
impl std::fmt::Debug for PersonalNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonalNumber")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl PersonalNumber {
    /// The 12 digits as stored.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    pub fn kind(&self) -> NumberKind {
        self.kind
    }

    /// `YYYYMMDD-NNNN`, as shown and printed.
    pub fn display(&self) -> String {
        format!("{}-{}", &self.digits[..8], &self.digits[8..])
    }
}

/// Why a number is not valid; each has its own message for the 422 problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberError {
    Format,
    Date,
    CheckDigit,
}

impl NumberError {
    pub fn message(self) -> &'static str {
        match self {
            NumberError::Format => {
                "must be YYYYMMDD-NNNN, YYYYMMDDNNNN, YYMMDD-NNNN or YYMMDD+NNNN (+ from the \
                 year the person turns 100)"
            }
            NumberError::Date => {
                "the first digits are not a date of birth (for a samordningsnummer: the day \
                 plus 60) on or before today"
            }
            NumberError::CheckDigit => "the check digit (the last digit) does not match",
        }
    }
}

/// Luhn's check digit for the nine digits before it.
pub fn check_digit(nine: &[u8]) -> u8 {
    let sum: u32 = nine
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let p = u32::from(d) * if i % 2 == 0 { 2 } else { 1 };
            p / 10 + p % 10
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Parses and validates a number as typed. `today` (from the injected clock) decides the
/// century of a ten-digit number: with `-`, the latest year ending in `YY` whose date of
/// birth is not after today (the person is under 100); with `+`, a hundred years
/// before that. A ten-digit number without a separator reads as with `-`.
pub fn parse(input: &str, today: NaiveDate) -> Result<PersonalNumber, NumberError> {
    let s = input.trim();
    if !s.is_ascii() {
        return Err(NumberError::Format);
    }
    let (digits, separator) = match s.len() {
        12 => (s.to_string(), None),
        13 if &s[8..9] == "-" => (format!("{}{}", &s[..8], &s[9..]), None),
        10 => (s.to_string(), Some('-')),
        11 => match &s[6..7] {
            "-" => (format!("{}{}", &s[..6], &s[7..]), Some('-')),
            "+" => (format!("{}{}", &s[..6], &s[7..]), Some('+')),
            _ => return Err(NumberError::Format),
        },
        _ => return Err(NumberError::Format),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::Format);
    }
    let d: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    let num = |ds: &[u8]| ds.iter().fold(0u32, |n, &x| n * 10 + u32::from(x));
    // The ten-digit part: YYMMDDNNNC.
    let ten = &d[d.len() - 10..];
    let month = num(&ten[2..4]);
    let day_written = num(&ten[4..6]);
    let (day, kind) = if day_written > 60 {
        (day_written - 60, NumberKind::Coordination)
    } else {
        (day_written, NumberKind::PersonalIdentity)
    };
    let year = match separator {
        None => num(&d[..4]) as i32,
        Some(sep) => {
            let yy = num(&ten[..2]) as i32;
            let mut year = today.year() - today.year().rem_euclid(100) + yy;
            // A date that does not exist in the candidate year is a date error below,
            // not a reason to move the century.
            if NaiveDate::from_ymd_opt(year, month, day).is_some_and(|born| born > today)
                || year > today.year()
            {
                year -= 100;
            }
            if sep == '+' {
                year -= 100;
            }
            year
        }
    };
    let born = NaiveDate::from_ymd_opt(year, month, day).ok_or(NumberError::Date)?;
    if born > today {
        return Err(NumberError::Date);
    }
    if check_digit(&ten[..9]) != ten[9] {
        return Err(NumberError::CheckDigit);
    }
    Ok(PersonalNumber {
        digits: format!("{year:04}{}", &digits[digits.len() - 8..]),
        kind,
    })
}

/// Reads a stored number back (the 12 digits); `None` for anything else.
pub fn from_stored(digits: &str) -> Option<PersonalNumber> {
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // A stored number was valid when written, whatever today is: parse it against a
    // day far enough ahead that no date of birth is "in the future".
    let far = NaiveDate::from_ymd_opt(9999, 12, 31)?;
    parse(digits, far).ok()
}

/// Most characters an HSA-id may have.
const HSA_ID_MAX: usize = 31;

/// Validates an HSA-id (the identity of a person or unit in Inera's HSA directory).
///
/// The published format, as quoted from Inera in the openEHR Sweden implementation guide
/// "HSA-identitet och Organisationsnummer": "SE<Katalogägarens organisationsnummer med
/// 10 tecken utan bindestreck>-<valfria bokstäver (A-Z och a-z) och/eller siffror
/// (0-9)>, minst ett tecken måste registreras efter bindestrecket. Observera att tecknen
/// å, ä, ö samt @-tecken inte är tillåtna. HSA-id ska inte överskrida 31 tecken totalt."
///
/// So: `SE`, ten digits, `-`, one or more of `[A-Za-z0-9]`, at most 31 characters in
/// all. The organisation number's own check digit is not checked (the guide does not
/// ask for it, and a directory owner's number is not ours to second-guess). The prefix
/// is accepted in any case and stored as `SE`; the rest is kept as typed.
pub fn parse_hsa_id(input: &str) -> Result<String, &'static str> {
    const MESSAGE: &str = "must be SE, the directory owner's 10-digit organisation number, \
                           '-' and at least one letter A-Z/a-z or digit; at most 31 characters";
    let s = input.trim();
    if !s.is_ascii() || s.len() > HSA_ID_MAX || s.len() < 14 {
        return Err(MESSAGE);
    }
    let (prefix, rest) = s.split_at(2);
    let (org, rest) = rest.split_at(10);
    let ok = prefix.eq_ignore_ascii_case("SE")
        && org.bytes().all(|b| b.is_ascii_digit())
        && rest.starts_with('-')
        && rest.len() > 1
        && rest[1..].bytes().all(|b| b.is_ascii_alphanumeric());
    if !ok {
        return Err(MESSAGE);
    }
    Ok(format!("SE{org}{rest}"))
}

#[cfg(test)]
#[path = "personal_number_tests.rs"]
mod tests;
