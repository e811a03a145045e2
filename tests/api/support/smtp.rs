#![allow(dead_code)]
//! Minimal in-process SMTP server for integration tests.
//!
//! Plain SMTP on 127.0.0.1 (no TLS, no AUTH), good enough for lettre's
//! `SmtpTransport::builder_dangerous("127.0.0.1").port(p)`. Every accepted
//! connection is served on its own detached std thread; the server never keeps
//! the test process alive and never panics on client I/O errors.
//!
//! Only std is used.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// How long `wait_for` polls before panicking.
const WAIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle timeout per connection, so abandoned connections don't linger forever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

pub struct SmtpServer {
    port: u16,
    messages: Arc<Mutex<Vec<ReceivedMail>>>,
    /// While set, every connection is greeted with `421` and closed (a mail outage).
    refusing: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Clone, Debug)]
pub struct ReceivedMail {
    /// Envelope sender (MAIL FROM), without angle brackets; empty for `<>`.
    pub from: String,
    /// Envelope recipients (RCPT TO), without angle brackets.
    pub to: Vec<String>,
    /// Raw message after DATA, dot-unstuffed, every line terminated by CRLF.
    pub data: String,
}

fn lock(m: &Mutex<Vec<ReceivedMail>>) -> MutexGuard<'_, Vec<ReceivedMail>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SmtpServer {
    /// Binds 127.0.0.1:0 and starts accepting connections in a background thread.
    pub fn start() -> SmtpServer {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("smtp test server: bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("smtp test server: local_addr")
            .port();
        let messages: Arc<Mutex<Vec<ReceivedMail>>> = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&messages);
        let refusing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refuse = Arc::clone(&refusing);
        thread::Builder::new()
            .name(format!("smtp-accept-{port}"))
            .spawn(move || loop {
                match listener.accept() {
                    Ok((mut stream, _)) if refuse.load(std::sync::atomic::Ordering::SeqCst) => {
                        let _ = stream.write_all(b"421 4.3.2 service not available\r\n");
                    }
                    Ok((stream, _)) => {
                        let store = Arc::clone(&store);
                        let _ = thread::Builder::new()
                            .name(format!("smtp-conn-{port}"))
                            .spawn(move || {
                                // Any I/O error simply ends this session.
                                let _ = serve_connection(stream, &store);
                            });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            })
            .expect("smtp test server: spawn accept thread");
        SmtpServer {
            port,
            messages,
            refusing,
        }
    }

    /// Simulates a mail outage (`true`: refuse every connection) and its end.
    pub fn set_refusing(&self, refusing: bool) {
        self.refusing
            .store(refusing, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Snapshot of all messages received so far, in arrival order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.messages).clone()
    }

    fn messages_to(&self, to: &str) -> Vec<ReceivedMail> {
        lock(&self.messages)
            .iter()
            .filter(|m| m.has_recipient(to))
            .cloned()
            .collect()
    }

    /// Number of messages received so far whose envelope recipients include `to`.
    pub fn count_to(&self, to: &str) -> usize {
        lock(&self.messages)
            .iter()
            .filter(|m| m.has_recipient(to))
            .count()
    }

    /// Waits (polling, up to 10 s) for message number `after_count` (0-based)
    /// addressed to `to`, i.e. the first one that arrived after `after_count`
    /// messages to that recipient. Panics with a description on timeout.
    pub fn wait_for(&self, to: &str, after_count: usize) -> ReceivedMail {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            let list = self.messages_to(to);
            if list.len() > after_count {
                return list[after_count].clone();
            }
            if Instant::now() >= deadline {
                let all = self.messages();
                let summary: Vec<String> = all
                    .iter()
                    .map(|m| format!("to={:?} subject={:?}", m.to, m.subject()))
                    .collect();
                panic!(
                    "SmtpServer::wait_for: no new mail to {to:?} within {:?} \
                     (expected more than {after_count}, have {} to that recipient; \
                     all {} received messages: {:#?})",
                    WAIT_TIMEOUT,
                    list.len(),
                    all.len(),
                    summary
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }
}

// ---------------------------------------------------------------------------
// Protocol
// ---------------------------------------------------------------------------

fn reply(w: &mut TcpStream, text: &str) -> std::io::Result<()> {
    w.write_all(text.as_bytes())?;
    w.write_all(b"\r\n")?;
    w.flush()
}

/// Reads one line (up to and including LF). Returns `None` on EOF.
/// The returned bytes have the trailing CRLF / LF removed.
fn read_line(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let n = r.read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else {
        // Client disconnected in the middle of a line.
        return Ok(None);
    }
    Ok(Some(buf))
}

/// Extracts the address from a path argument like `<a@b> SIZE=12 BODY=8BITMIME`.
fn parse_path(arg: &str) -> Option<String> {
    let arg = arg.trim();
    if let Some(rest) = arg.strip_prefix('<') {
        let end = rest.find('>')?;
        Some(rest[..end].trim().to_string())
    } else {
        // Be lenient: bare address without brackets.
        let addr = arg.split_whitespace().next()?;
        Some(addr.to_string())
    }
}

/// Case-insensitively strips a prefix like "MAIL FROM:" (tolerating a space
/// before the colon's argument).
fn strip_prefix_ci<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    if line.len() >= prefix.len()
        && line.is_char_boundary(prefix.len())
        && line[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&line[prefix.len()..])
    } else {
        None
    }
}

fn serve_connection(stream: TcpStream, store: &Mutex<Vec<ReceivedMail>>) -> std::io::Result<()> {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);

    reply(&mut w, "220 localhost ESMTP eportfolio-test-smtp ready")?;

    let mut greeted = false;
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();

    loop {
        let line = match read_line(&mut r)? {
            Some(l) => l,
            None => return Ok(()),
        };
        let line = String::from_utf8_lossy(&line).into_owned();
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();

        match verb.as_str() {
            "EHLO" => {
                greeted = true;
                from = None;
                rcpts.clear();
                w.write_all(
                    b"250-localhost greets you\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n",
                )?;
                w.flush()?;
            }
            "HELO" => {
                greeted = true;
                from = None;
                rcpts.clear();
                reply(&mut w, "250 localhost")?;
            }
            "MAIL" => {
                let arg = match strip_prefix_ci(&line, "MAIL FROM:") {
                    Some(a) => a,
                    None => {
                        reply(&mut w, "501 Syntax: MAIL FROM:<address>")?;
                        continue;
                    }
                };
                if !greeted {
                    reply(&mut w, "503 Send EHLO/HELO first")?;
                } else if from.is_some() {
                    reply(&mut w, "503 Nested MAIL command")?;
                } else {
                    match parse_path(arg) {
                        Some(addr) => {
                            from = Some(addr);
                            rcpts.clear();
                            reply(&mut w, "250 OK")?;
                        }
                        None => reply(&mut w, "501 Syntax: MAIL FROM:<address>")?,
                    }
                }
            }
            "RCPT" => {
                let arg = match strip_prefix_ci(&line, "RCPT TO:") {
                    Some(a) => a,
                    None => {
                        reply(&mut w, "501 Syntax: RCPT TO:<address>")?;
                        continue;
                    }
                };
                if from.is_none() {
                    reply(&mut w, "503 Need MAIL before RCPT")?;
                } else {
                    match parse_path(arg) {
                        Some(addr) if !addr.is_empty() => {
                            rcpts.push(addr);
                            reply(&mut w, "250 OK")?;
                        }
                        _ => reply(&mut w, "501 Syntax: RCPT TO:<address>")?,
                    }
                }
            }
            "DATA" => {
                if from.is_none() || rcpts.is_empty() {
                    reply(&mut w, "503 Need MAIL and RCPT before DATA")?;
                    continue;
                }
                reply(&mut w, "354 End data with <CR><LF>.<CR><LF>")?;
                let mut data: Vec<u8> = Vec::new();
                loop {
                    let l = match read_line(&mut r)? {
                        Some(l) => l,
                        // Disconnect mid-DATA: discard the partial message.
                        None => return Ok(()),
                    };
                    if l == b"." {
                        break;
                    }
                    let content: &[u8] = if l.first() == Some(&b'.') {
                        &l[1..]
                    } else {
                        &l
                    };
                    data.extend_from_slice(content);
                    data.extend_from_slice(b"\r\n");
                }
                let mail = ReceivedMail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut rcpts),
                    data: String::from_utf8_lossy(&data).into_owned(),
                };
                lock(store).push(mail);
                reply(&mut w, "250 OK: queued")?;
            }
            "RSET" => {
                from = None;
                rcpts.clear();
                reply(&mut w, "250 OK")?;
            }
            "NOOP" => reply(&mut w, "250 OK")?,
            "QUIT" => {
                let _ = reply(&mut w, "221 Bye");
                return Ok(());
            }
            _ => reply(&mut w, "502 Command not implemented")?,
        }
    }
}

// ---------------------------------------------------------------------------
// Message parsing helpers
// ---------------------------------------------------------------------------

impl ReceivedMail {
    fn has_recipient(&self, to: &str) -> bool {
        self.to.iter().any(|r| r.eq_ignore_ascii_case(to.trim()))
    }

    /// Unfolded value of the first header named `name` (case-insensitive), raw (not decoded).
    pub fn header(&self, name: &str) -> Option<String> {
        let (headers, _) = split_entity(&self.data);
        header_value(&headers, name)
    }

    /// Decoded Subject header (RFC 2047 encoded words are decoded).
    pub fn subject(&self) -> String {
        self.header("Subject")
            .map(|v| decode_rfc2047(&v))
            .unwrap_or_default()
    }

    /// The text body: for multipart messages the (first) text/plain part
    /// (falling back to the first text/* part), transfer-decoded
    /// (quoted-printable / base64), with soft line breaks removed and line
    /// endings normalized to "\n".
    pub fn body_text(&self) -> String {
        entity_text(&self.data, "text/plain", 0)
            .or_else(|| entity_text(&self.data, "text/", 0))
            .unwrap_or_default()
    }

    /// In `body_text()`: the run of `[A-Za-z0-9_-]` characters right after the
    /// first occurrence of `marker`. `None` if the marker is absent or the run is empty.
    pub fn find_token_after(&self, marker: &str) -> Option<String> {
        let body = self.body_text();
        let idx = body.find(marker)?;
        let token: String = body[idx + marker.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if token.is_empty() {
            None
        } else {
            Some(token)
        }
    }

    /// First standalone 6-digit number in `body_text()` (not part of a longer
    /// number or of a `[A-Za-z0-9_-]` token).
    pub fn find_six_digit_code(&self) -> Option<String> {
        let body = self.body_text();
        let chars: Vec<char> = body.chars().collect();
        let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        let mut i = 0;
        while i < chars.len() {
            if chars[i].is_ascii_digit() {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let before_ok = start == 0 || !is_word(chars[start - 1]);
                let after_ok = i == chars.len() || !is_word(chars[i]);
                if i - start == 6 && before_ok && after_ok {
                    return Some(chars[start..i].iter().collect());
                }
            } else {
                i += 1;
            }
        }
        None
    }
}

/// Splits a MIME entity into (unfolded header lines, body). The body keeps
/// its original line endings.
fn split_entity(text: &str) -> (Vec<(String, String)>, String) {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut pos = 0;
    let bytes = text.as_bytes();
    while pos < text.len() {
        let end = text[pos..]
            .find('\n')
            .map(|i| pos + i)
            .unwrap_or(text.len());
        let mut line = &text[pos..end];
        if line.ends_with('\r') {
            line = &line[..line.len() - 1];
        }
        let next = if end < text.len() { end + 1 } else { end };
        if line.is_empty() {
            return (headers, text[next..].to_string());
        }
        if (bytes[pos] == b' ' || bytes[pos] == b'\t') && !headers.is_empty() {
            // Folded continuation line: unfold by removing the line break.
            headers.last_mut().unwrap().1.push_str(line);
        } else if let Some(colon) = line.find(':') {
            let name = line[..colon].trim().to_string();
            let value = line[colon + 1..].to_string();
            headers.push((name, value));
        } else {
            // Not a header line: treat everything from here on as the body.
            return (headers, text[pos..].to_string());
        }
        pos = next;
    }
    (headers, String::new())
}

fn header_value(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
}

/// Parses a Content-Type value into (lowercased media type, parameters with lowercased names).
fn parse_content_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if in_quotes && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quotes = !in_quotes;
        } else if c == ';' && !in_quotes {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    let media = parts[0].trim().to_ascii_lowercase();
    let params = parts[1..]
        .iter()
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    (media, params)
}

/// Finds the first (depth-first) non-multipart entity whose media type starts
/// with `want` and returns its decoded text.
fn entity_text(text: &str, want: &str, depth: usize) -> Option<String> {
    if depth > 16 {
        return None;
    }
    let (headers, body) = split_entity(text);
    let (media, params) = match header_value(&headers, "Content-Type") {
        Some(ct) => parse_content_type(&ct),
        None => ("text/plain".to_string(), Vec::new()),
    };
    if media.starts_with("multipart/") {
        let boundary = params
            .iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v.clone())?;
        for part in split_multipart(&body, &boundary) {
            if let Some(t) = entity_text(&part, want, depth + 1) {
                return Some(t);
            }
        }
        return None;
    }
    if !media.starts_with(want) {
        return None;
    }
    let charset = params
        .iter()
        .find(|(k, _)| k == "charset")
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_else(|| "utf-8".to_string());
    let cte = header_value(&headers, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = match cte.as_str() {
        "quoted-printable" => decode_quoted_printable(&body),
        "base64" => decode_base64(&body),
        _ => body.into_bytes(),
    };
    let s = bytes_to_string(&bytes, &charset);
    Some(s.replace("\r\n", "\n"))
}

/// Splits a multipart body into its parts (each part text uses CRLF line endings).
fn split_multipart(body: &str, boundary: &str) -> Vec<String> {
    let delim = format!("--{boundary}");
    let close = format!("--{boundary}--");
    let mut parts = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for raw in body.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let t = line.trim_end();
        if t == close {
            if let Some(lines) = current.take() {
                parts.push(lines.join("\r\n"));
            }
            break;
        } else if t == delim {
            if let Some(lines) = current.take() {
                parts.push(lines.join("\r\n"));
            }
            current = Some(Vec::new());
        } else if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    if let Some(lines) = current.take() {
        parts.push(lines.join("\r\n"));
    }
    parts
}

fn bytes_to_string(bytes: &[u8], charset: &str) -> String {
    let cs = charset.trim().trim_matches('"');
    if cs.eq_ignore_ascii_case("iso-8859-1")
        || cs.eq_ignore_ascii_case("latin1")
        || cs.eq_ignore_ascii_case("iso8859-1")
    {
        bytes.iter().map(|&b| b as char).collect()
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Quoted-printable decoding (RFC 2045 §6.7): soft line breaks ("=" at end of
/// line) are removed, `=XX` escapes decoded, hard line breaks become CRLF.
fn decode_quoted_printable(body: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let lines: Vec<&str> = body.split('\n').collect();
    let n = lines.len();
    for (idx, raw) in lines.iter().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        // Trailing whitespace is transport padding and must be removed.
        let line = line.trim_end_matches([' ', '\t']);
        let (content, soft) = match line.strip_suffix('=') {
            Some(c) => (c, true),
            None => (line, false),
        };
        let b = content.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' && i + 2 < b.len() {
                if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        let is_last = idx + 1 == n;
        if !soft && !is_last {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// Lenient standard-alphabet base64 decoding (ignores whitespace and padding).
fn decode_base64(s: &str) -> Vec<u8> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some((c - b'A') as u32),
            b'a'..=b'z' => Some((c - b'a' + 26) as u32),
            b'0'..=b'9' => Some((c - b'0' + 52) as u32),
            b'+' | b'-' => Some(62),
            b'/' | b'_' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in s.as_bytes() {
        if c == b'=' {
            break;
        }
        let v = match val(c) {
            Some(v) => v,
            None => continue,
        };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

/// Tries to parse an RFC 2047 encoded word at the start of `s`.
/// Returns (charset, decoded bytes, length consumed).
fn parse_encoded_word(s: &str) -> Option<(String, Vec<u8>, usize)> {
    let rest = s.strip_prefix("=?")?;
    let q1 = rest.find('?')?;
    let charset = &rest[..q1];
    if charset.is_empty() || charset.contains(|c: char| c.is_whitespace()) {
        return None;
    }
    let after_cs = &rest[q1 + 1..];
    let mut it = after_cs.chars();
    let enc = it.next()?.to_ascii_lowercase();
    if it.next()? != '?' {
        return None;
    }
    let text_start = &after_cs[2..];
    let end = text_start.find("?=")?;
    let text = &text_start[..end];
    if text.contains(|c: char| c.is_whitespace()) {
        return None;
    }
    let bytes = match enc {
        'b' => decode_base64(text),
        'q' => {
            let b = text.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'_' => {
                        out.push(b' ');
                        i += 1;
                    }
                    b'=' if i + 2 < b.len()
                        && hex_val(b[i + 1]).is_some()
                        && hex_val(b[i + 2]).is_some() =>
                    {
                        out.push(hex_val(b[i + 1]).unwrap() * 16 + hex_val(b[i + 2]).unwrap());
                        i += 3;
                    }
                    c => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            out
        }
        _ => return None,
    };
    // RFC 2231 language suffix: "utf-8*en".
    let charset = charset.split('*').next().unwrap_or("").to_ascii_lowercase();
    let consumed = 2 + q1 + 1 + 2 + end + 2;
    Some((charset, bytes, consumed))
}

/// Decodes RFC 2047 encoded words in an (unfolded) header value. Whitespace
/// between adjacent encoded words is dropped, and the bytes of adjacent words
/// are joined before charset decoding (so split multi-byte chars survive).
fn decode_rfc2047(value: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_charset = String::new();
    let mut pending_ws = String::new();
    let mut last_was_word = false;

    let mut i = 0;
    while i < value.len() {
        let rest = &value[i..];
        if rest.starts_with("=?") {
            if let Some((cs, bytes, used)) = parse_encoded_word(rest) {
                if last_was_word && cs != pending_charset {
                    out.push_str(&bytes_to_string(&pending, &pending_charset));
                    pending.clear();
                }
                // Whitespace between encoded words is dropped.
                pending_ws.clear();
                pending_charset = cs;
                pending.extend_from_slice(&bytes);
                last_was_word = true;
                i += used;
                continue;
            }
        }
        let c = rest.chars().next().unwrap();
        if last_was_word && c.is_whitespace() {
            pending_ws.push(c);
        } else {
            if !pending.is_empty() {
                out.push_str(&bytes_to_string(&pending, &pending_charset));
                pending.clear();
            }
            out.push_str(&pending_ws);
            pending_ws.clear();
            last_was_word = false;
            out.push(c);
        }
        i += c.len_utf8();
    }
    if !pending.is_empty() {
        out.push_str(&bytes_to_string(&pending, &pending_charset));
    }
    out.push_str(&pending_ws);
    out.trim().to_string()
}
