use super::*;

#[test]
fn event_names_are_stable_snake_case_and_distinct() {
    let names: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
    for name in &names {
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{name}"
        );
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
}

#[test]
fn a_limit_key_gives_a_fixed_kind_never_the_key() {
    assert_eq!(
        limit_kind("login:acct:someone@example.org"),
        (Event::AccountLockedOut, "login_account")
    );
    assert_eq!(
        limit_kind("mfa:acct:0b6d"),
        (Event::AccountLockedOut, "second_factor_account")
    );
    assert_eq!(
        limit_kind("login:addr:10.0.0.1"),
        (Event::RateLimited, "login_address")
    );
    assert_eq!(
        limit_kind("mail:addr:10.0.0.1"),
        (Event::RateLimited, "mail_address")
    );
    assert_eq!(limit_kind("whatever"), (Event::RateLimited, "other"));
    assert_eq!(limit_user("mfa:acct:0b6d"), Some("0b6d"));
    assert_eq!(limit_user("login:acct:someone@example.org"), None);
}

/// Captures what the JSON formatter writes for one event.
#[derive(Clone, Default)]
struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_event_is_one_json_object_on_the_security_target() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let client = ClientInfo {
        address: Some("192.0.2.7".into()),
        user_agent: Some("secret agent".into()),
    };
    tracing::subscriber::with_default(subscriber, || {
        SecurityEvent::new(Event::SecondFactorFailed)
            .user("user-1")
            .kind("totp")
            .client(&client)
            .emit();
    });
    let text =
        String::from_utf8(buffer.0.lock().map(|b| b.clone()).unwrap_or_default()).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("one JSON object");
    assert_eq!(v["target"], "security");
    assert_eq!(v["fields"]["event"], "second_factor_failed");
    assert_eq!(v["fields"]["user_id"], "user-1");
    assert_eq!(v["fields"]["kind"], "totp");
    assert_eq!(v["fields"]["address"], "192.0.2.7");
    // The user agent is free text a client chooses: not in the stream.
    assert!(!text.contains("secret agent"));
}
