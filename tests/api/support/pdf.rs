//! Text of a PDF as a reader would copy it: poppler's `pdftotext` when installed (CI
//! installs it), else a small independent decoder of this service's PDFs (flate streams,
//! `Tj`/`TJ` hex and literal strings, each font's ToUnicode CMap), so `cargo test` on a
//! fresh machine checks the same thing.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

pub fn text(pdf: &[u8]) -> String {
    // PDFTOTEXT=none exercises the built-in decoder on a machine that has poppler.
    let tool = std::env::var("PDFTOTEXT").unwrap_or_else(|_| "pdftotext".into());
    if let Ok(mut child) = Command::new(tool)
        .args(["-enc", "UTF-8", "-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        let mut stdin = child.stdin.take().expect("stdin");
        let bytes = pdf.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&bytes));
        let out = child.wait_with_output().expect("pdftotext runs");
        writer.join().expect("writer").expect("write");
        assert!(
            out.status.success(),
            "pdftotext failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "pdftotext warned: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return String::from_utf8(out.stdout).expect("UTF-8");
    }
    // In CI the independent reader is required: a missing poppler must not quietly
    // downgrade the check to our own decoder.
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but pdftotext is not installed (poppler-utils)"
    );
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| eprintln!("pdftotext not found: PDFs are read with the built-in decoder"));
    decode(pdf)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Objects as (number, dictionary text, decompressed stream).
fn objects(pdf: &[u8]) -> HashMap<u32, (String, Vec<u8>)> {
    let mut out = HashMap::new();
    let mut at = 0;
    while let Some(start) = find(pdf, b" 0 obj", at) {
        let line_start = pdf[..start]
            .iter()
            .rposition(|b| *b == b'\n')
            .map(|p| p + 1)
            .unwrap_or(0);
        let num: u32 = std::str::from_utf8(&pdf[line_start..start])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let end = find(pdf, b"endobj", start).unwrap_or(pdf.len());
        let body = &pdf[start + 6..end];
        let (dict, data) = match find(body, b"stream", 0) {
            Some(s) if !body[..s].ends_with(b"end") => {
                let mut d = s + 6;
                while body[d] == b'\r' || body[d] == b'\n' {
                    d += 1;
                }
                let e = find(body, b"endstream", d).unwrap_or(body.len());
                let raw = &body[d..e];
                let dict = String::from_utf8_lossy(&body[..s]).to_string();
                let data = if dict.contains("/FlateDecode") {
                    let mut v = Vec::new();
                    // A stream that does not inflate fails the test: read as empty, every
                    // "the PDF does not show X" check would pass on it.
                    flate2::read::ZlibDecoder::new(raw)
                        .read_to_end(&mut v)
                        .unwrap_or_else(|e| panic!("object {num}: flate stream: {e}"));
                    v
                } else {
                    raw.to_vec()
                };
                (dict, data)
            }
            _ => (String::from_utf8_lossy(body).to_string(), Vec::new()),
        };
        out.insert(num, (dict, data));
        at = end;
    }
    out
}

/// The object number after `key` (`/Key 12 0 R`, with or without the space).
fn reference(dict: &str, key: &str) -> Option<u32> {
    let i = dict.find(key)? + key.len();
    dict[i..].split_whitespace().next()?.parse().ok()
}

/// `<< ... >>` after `key`, inline or through a reference.
fn dictionary(objs: &HashMap<u32, (String, Vec<u8>)>, dict: &str, key: &str) -> String {
    let Some(i) = dict.find(key) else {
        return String::new();
    };
    let rest = dict[i + key.len()..].trim_start();
    if rest.starts_with("<<") {
        let mut depth = 0;
        let bytes = rest.as_bytes();
        for at in 0..bytes.len().saturating_sub(1) {
            match &bytes[at..at + 2] {
                b"<<" => depth += 1,
                b">>" => {
                    depth -= 1;
                    if depth == 0 {
                        return rest[..at + 2].to_string();
                    }
                }
                _ => {}
            }
        }
        return rest.to_string();
    }
    reference(dict, key)
        .and_then(|n| objs.get(&n))
        .map(|(d, _)| d.clone())
        .unwrap_or_default()
}

/// `/Name 12 0 R` pairs of a dictionary.
fn named_refs(dict: &str) -> Vec<(String, u32)> {
    dict.split('/')
        .skip(1)
        .filter_map(|part| {
            let mut it = part
                .split(|c: char| c.is_whitespace() || c == '<' || c == '>')
                .filter(|t| !t.is_empty());
            let name = it.next()?.to_string();
            let obj = it.next()?.parse().ok()?;
            Some((name, obj))
        })
        .collect()
}

fn cmap(data: &[u8]) -> HashMap<u16, String> {
    let text = String::from_utf8_lossy(data);
    let mut map = HashMap::new();
    for block in text.split("beginbfchar").skip(1) {
        let block = block.split("endbfchar").next().unwrap_or("");
        let hexes: Vec<&str> = block
            .split(['<', '>'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        for pair in hexes.chunks(2) {
            if let [g, u] = pair {
                let gid = u16::from_str_radix(g, 16).unwrap_or(0);
                let units: Vec<u16> = (0..u.len() / 4)
                    .filter_map(|i| u16::from_str_radix(&u[i * 4..i * 4 + 4], 16).ok())
                    .collect();
                map.insert(gid, String::from_utf16_lossy(&units));
            }
        }
    }
    map
}

/// A PDF string's bytes: `<hex>` or `(literal)` with backslash escapes; `at` is past the
/// opening delimiter, the returned index past the closing one.
fn string(data: &[u8], mut at: usize, hex: bool) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    if hex {
        let mut digits = Vec::new();
        while at < data.len() && data[at] != b'>' {
            if data[at].is_ascii_hexdigit() {
                digits.push(data[at]);
            }
            at += 1;
        }
        for pair in digits.chunks(2) {
            let text = std::str::from_utf8(pair).unwrap_or("0");
            out.push(u8::from_str_radix(&format!("{text:0<2}"), 16).unwrap_or(0));
        }
        return (out, at + 1);
    }
    let mut depth = 0;
    while at < data.len() {
        let b = data[at];
        at += 1;
        match b {
            b'\\' => {
                let Some(&e) = data.get(at) else { break };
                at += 1;
                match e {
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'0'..=b'7' => {
                        let mut v = u32::from(e - b'0');
                        for _ in 0..2 {
                            match data.get(at) {
                                Some(d @ b'0'..=b'7') => {
                                    v = v * 8 + u32::from(d - b'0');
                                    at += 1;
                                }
                                _ => break,
                            }
                        }
                        out.push(v as u8);
                    }
                    b'\r' | b'\n' => {}
                    other => out.push(other),
                }
            }
            b'(' => {
                depth += 1;
                out.push(b);
            }
            b')' if depth == 0 => break,
            b')' => {
                depth -= 1;
                out.push(b);
            }
            _ => out.push(b),
        }
    }
    (out, at)
}

/// The text of one content stream: strings shown with `Tj`/`TJ`, two-byte codes mapped
/// through the current font's ToUnicode map, one line per operator.
fn show(data: &[u8], fonts: &HashMap<String, HashMap<u16, String>>, out: &mut String) {
    let mut font = String::new();
    let mut name = String::new();
    let mut strings: Vec<Vec<u8>> = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let b = data[at];
        if data[at..].starts_with(b"<<") || data[at..].starts_with(b">>") {
            at += 2;
            continue;
        }
        if b == b'(' || b == b'<' {
            let (s, next) = string(data, at + 1, b == b'<');
            strings.push(s);
            at = next;
            continue;
        }
        let start = at;
        if b == b'/' {
            at += 1;
        }
        while at < data.len() && !b" \n\r\t/[]()<>".contains(&data[at]) {
            at += 1;
        }
        let token = String::from_utf8_lossy(&data[start..at]).to_string();
        if token.is_empty() {
            at += 1;
            continue;
        }
        match token.as_str() {
            "Tf" => font = name.clone(),
            "Tj" | "TJ" | "'" | "\"" => {
                let map = fonts.get(&font);
                for s in strings.drain(..) {
                    for pair in s.chunks(2) {
                        let gid = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
                        out.push_str(
                            map.and_then(|m| m.get(&gid))
                                .map(String::as_str)
                                .unwrap_or("?"),
                        );
                    }
                }
                out.push('\n');
            }
            t if t.starts_with('/') => name = t[1..].to_string(),
            t if t
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '-') => {}
            // Any other operator ends what a string could belong to.
            _ => strings.clear(),
        }
    }
}

fn decode(pdf: &[u8]) -> String {
    let objs = objects(pdf);
    // The page order is the page tree's (one level, as this service writes it).
    let pages: Vec<u32> = objs
        .values()
        .find(|(d, _)| d.contains("/Kids"))
        .map(|(d, _)| {
            let kids = &d[d.find("/Kids").unwrap_or(0)..];
            let kids = &kids[..kids.find(']').unwrap_or(kids.len())];
            kids.trim_start_matches("/Kids")
                .trim_start()
                .trim_start_matches('[')
                .split(" R")
                .filter_map(|r| r.split_whitespace().next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut out = String::new();
    for page in pages {
        let Some((dict, _)) = objs.get(&page) else {
            continue;
        };
        let resources = dictionary(&objs, dict, "/Resources");
        let font_dict = dictionary(&objs, &resources, "/Font");
        let mut fonts: HashMap<String, HashMap<u16, String>> = HashMap::new();
        for (name, obj) in named_refs(&font_dict) {
            let tu = objs.get(&obj).and_then(|f| reference(&f.0, "/ToUnicode"));
            if let Some((_, data)) = tu.and_then(|t| objs.get(&t)) {
                fonts.insert(name, cmap(data));
            }
        }
        if let Some((_, data)) = reference(dict, "/Contents").and_then(|c| objs.get(&c)) {
            show(data, &fonts, &mut out);
        }
    }
    out
}
