//! What people type into account fields: e-mail addresses, passwords, display names.

use crate::error::AppError;

pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plausible e-mail address of any domain (external supervisors use their own).
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.parse::<lettre::Address>().is_ok()
}

/// ASVS 2.1.1: at least 12 characters.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Length over composition rules (NIST SP 800-63B, ASVS 2.1.1): at least
/// [`MIN_PASSWORD_CHARS`] characters, at most 256.
pub fn check_password(field: &str, password: &str) -> Result<(), AppError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(AppError::validation(
            field,
            &format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if n > 256 {
        return Err(AppError::validation(
            field,
            "must be at most 256 characters",
        ));
    }
    Ok(())
}

/// What is wrong with a name (of a person, organisation or API client), if anything.
/// Names go into mails, documents, audit entries and the log: control characters (C0,
/// DEL, C1: line breaks forged log lines and mail text) and the characters that change
/// text direction (a name that reads differently from what it is) are refused.
pub fn name_problem(name: &str) -> Option<&'static str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Some("must be 1 to 200 characters");
    }
    if name.chars().any(|c| c.is_control() || is_format_control(c)) {
        return Some("must not contain control characters or text-direction controls");
    }
    None
}

/// Bidirectional formatting characters (marks, embeddings, overrides, isolates) and the
/// Unicode line and paragraph separators.
fn is_format_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

pub fn validate_name(field: &str, name: &str) -> Result<String, AppError> {
    match name_problem(name) {
        Some(problem) => Err(AppError::validation(field, problem)),
        None => Ok(name.trim().to_string()),
    }
}
