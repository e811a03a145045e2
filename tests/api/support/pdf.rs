//! Text of a PDF as a reader would copy it: poppler's `pdftotext` when installed (CI
//! installs it), else a small independent decoder of this service's PDFs (flate streams,
//! `Tj` hex strings, each font's ToUnicode CMap), so `cargo test` on a fresh machine
//! checks the same thing.

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

fn reference(dict: &str, key: &str) -> Option<u32> {
    let i = dict.find(key)? + key.len();
    dict[i..].split_whitespace().next()?.parse().ok()
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

fn decode(pdf: &[u8]) -> String {
    let objs = objects(pdf);
    // Font resource name -> glyph map, from the pages' resources.
    let mut fonts: HashMap<String, HashMap<u16, String>> = HashMap::new();
    let mut pages: Vec<(u32, u32)> = Vec::new();
    for (num, (dict, _)) in &objs {
        if dict.contains("/Type /Page ") || dict.contains("/Type /Page/") {
            if let Some(content) = reference(dict, "/Contents") {
                pages.push((*num, content));
            }
            if let Some(res) = dict.split("/Font").nth(1) {
                for part in res.split('/').skip(1) {
                    let mut it = part.split_whitespace();
                    if let (Some(name), Some(obj)) = (it.next(), it.next()) {
                        if let Some(font) = obj.parse::<u32>().ok().and_then(|o| objs.get(&o)) {
                            if let Some(tu) = reference(&font.0, "/ToUnicode") {
                                if let Some((_, data)) = objs.get(&tu) {
                                    fonts.insert(name.to_string(), cmap(data));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    pages.sort();
    let mut out = String::new();
    for (_, content) in pages {
        let Some((_, data)) = objs.get(&content) else {
            continue;
        };
        let text = String::from_utf8_lossy(data);
        let mut font = String::new();
        for op in text.split('\n') {
            if let Some(i) = op.find(" Tf") {
                if let Some(name) = op[..i].split('/').nth(1) {
                    font = name.split_whitespace().next().unwrap_or("").to_string();
                }
            }
            if let (Some(s), Some(e)) = (op.find('<'), op.find("> Tj")) {
                let hex = &op[s + 1..e];
                let map = fonts.get(&font);
                for i in 0..hex.len() / 4 {
                    let gid = u16::from_str_radix(&hex[i * 4..i * 4 + 4], 16).unwrap_or(0);
                    out.push_str(
                        map.and_then(|m| m.get(&gid))
                            .map(String::as_str)
                            .unwrap_or("?"),
                    );
                }
                out.push('\n');
            }
        }
    }
    out
}
