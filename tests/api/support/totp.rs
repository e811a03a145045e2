#![allow(dead_code)]
//! Independent RFC 6238 TOTP implementation (HMAC-SHA1, 6 digits, 30 s step)
//! for computing codes in tests without going through the server's code path.
//! Uses only std plus the `hmac` 0.12 and `sha1` 0.10 dev-dependencies.

use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

const STEP_SECONDS: i64 = 30;
const DIGITS: u32 = 6;

/// RFC 4648 base32 decoding: standard alphabet, case-insensitive, padding
/// optional; '=' and whitespace are ignored. Panics on any other character.
pub fn base32_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for c in s.chars() {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            '=' => continue,
            c if c.is_whitespace() => continue,
            other => panic!("base32_decode: invalid character {other:?} in {s:?}"),
        };
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
        acc &= (1u64 << bits) - 1;
    }
    out
}

/// RFC 4648 base32 encoding without padding (used by `self_check`).
fn base32_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &b in data {
        acc = (acc << 8) | b as u64;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
        acc &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// RFC 4226 HOTP value (before the modulo) for `key` and `counter`.
fn hotp_raw(key: &[u8], counter: u64) -> u32 {
    let mut mac = <HmacSha1 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[digest.len() - 1] & 0x0f) as usize;
    u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ])
}

fn code_for_key(key: &[u8], unix_seconds: i64) -> String {
    let counter = unix_seconds.div_euclid(STEP_SECONDS) as u64;
    let value = hotp_raw(key, counter) % 10u32.pow(DIGITS);
    format!("{:0width$}", value, width = DIGITS as usize)
}

/// The 6-digit TOTP code (zero-padded) for a base32 secret at `unix_seconds`.
pub fn code_at(secret_base32: &str, unix_seconds: i64) -> String {
    code_for_key(&base32_decode(secret_base32), unix_seconds)
}

/// Current unix time in seconds (convenience for tests).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("system clock before 1970")
        .as_secs() as i64
}

/// Extracts (and percent-decodes) the `secret` query parameter from an
/// `otpauth://totp/...?secret=...&issuer=...` URI. Panics if absent.
pub fn secret_from_otpauth_uri(uri: &str) -> String {
    let query = uri
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_else(|| panic!("otpauth URI has no query string: {uri:?}"));
    let query = query.split('#').next().unwrap_or("");
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k).eq_ignore_ascii_case("secret") {
            return percent_decode(v);
        }
    }
    panic!("otpauth URI has no `secret` parameter: {uri:?}");
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        if b[i] == b'+' {
            out.push(b' ');
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Asserts the RFC 6238 Appendix B SHA1 test vectors (truncated to 6 digits)
/// plus a few base32 / URI sanity checks. Call from a test.
pub fn self_check() {
    let key = b"12345678901234567890";
    let secret = base32_encode(key);
    assert_eq!(secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_eq!(base32_decode(&secret), key.to_vec());
    assert_eq!(
        base32_decode("gezd gnbv gy3t qojq gezd gnbv gy3t qojq===="),
        key.to_vec()
    );
    // RFC 4648 §10 vectors.
    assert_eq!(base32_decode("MZXW6YTBOI======"), b"foobar".to_vec());
    assert_eq!(base32_decode("MZXW6YQ"), b"foob".to_vec());
    assert_eq!(base32_encode(b"fooba"), "MZXW6YTB");

    // RFC 4226 Appendix D: HOTP raw truncated values for counter 0 and 1.
    assert_eq!(hotp_raw(key, 0) % 1_000_000, 755224);
    assert_eq!(hotp_raw(key, 1) % 1_000_000, 287082);

    // RFC 6238 Appendix B (SHA1), 8-digit values truncated to the last 6.
    let vectors: [(i64, &str, &str); 6] = [
        (59, "94287082", "287082"),
        (1111111109, "07081804", "081804"),
        (1111111111, "14050471", "050471"),
        (1234567890, "89005924", "005924"),
        (2000000000, "69279037", "279037"),
        (20000000000, "65353130", "353130"),
    ];
    for (t, eight, six) in vectors {
        let counter = (t / STEP_SECONDS) as u64;
        assert_eq!(
            format!("{:08}", hotp_raw(key, counter) % 100_000_000),
            eight,
            "RFC 6238 8-digit vector at t={t}"
        );
        assert_eq!(code_at(&secret, t), six, "RFC 6238 6-digit vector at t={t}");
    }

    assert_eq!(
        secret_from_otpauth_uri(
            "otpauth://totp/eportfolio:alice%40example.com?secret=GEZDGNBVGY3TQOJQ&issuer=eportfolio&algorithm=SHA1&digits=6&period=30"
        ),
        "GEZDGNBVGY3TQOJQ"
    );
    assert_eq!(
        secret_from_otpauth_uri("otpauth://totp/x?issuer=a%20b&SECRET=ABC%3D"),
        "ABC="
    );
}
