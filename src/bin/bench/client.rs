//! The load generator: HTTP/1.1 keep-alive connections driven from one thread by a
//! current-thread tokio runtime, as `wrk` does. One thread per client (ureq, as before)
//! spent about 0.35 ms of CPU per request on context switches on a two-core machine,
//! CPU taken from the server being measured; this spends a few microseconds.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One request, written out once as the bytes sent on the wire.
pub struct Req {
    head: String,
    body: Vec<u8>,
    /// Reported back in `Measured::acknowledged` when the answer is a success.
    tag: Option<String>,
}

impl Req {
    /// As phone apps and browsers do, every request accepts a gzip-compressed answer.
    fn new(method: &str, path: &str) -> Req {
        Req {
            head: format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n"
            ),
            body: Vec::new(),
            tag: None,
        }
    }
    pub fn get(path: &str) -> Req {
        Req::new("GET", path)
    }
    pub fn post(path: &str) -> Req {
        Req::new("POST", path)
    }
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.head.push_str(name);
        self.head.push_str(": ");
        self.head.push_str(value);
        self.head.push_str("\r\n");
        self
    }
    /// Names the request, so that the run reports whether it was acknowledged.
    pub fn tagged(mut self, tag: String) -> Req {
        self.tag = Some(tag);
        self
    }
    /// Asks for the body as it is (a client that does not accept gzip).
    pub fn uncompressed(mut self) -> Req {
        self.head = self
            .head
            .replace("Accept-Encoding: gzip", "Accept-Encoding: identity");
        self
    }
    pub fn auth(self, token: &str) -> Req {
        self.header("Authorization", &format!("Bearer {token}"))
    }
    pub fn json(mut self, body: serde_json::Value) -> Req {
        self.body = serde_json::to_vec(&body).unwrap_or_default();
        self.header("Content-Type", "application/json")
    }
    fn bytes(&self) -> Vec<u8> {
        let mut out = self.head.clone().into_bytes();
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// A keep-alive connection to the server, reopened after an error or a `Connection:
/// close`.
pub struct Conn {
    addr: String,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    pub fn new(addr: &str) -> Conn {
        Conn {
            addr: addr.to_string(),
            stream: None,
        }
    }

    /// Sends the request and reads the whole response; the status and body size, or None
    /// when the connection failed.
    pub async fn send(&mut self, req: &Req) -> Option<(u16, usize)> {
        let wire = req.bytes();
        // A kept-alive connection the server closed in the meantime fails on first use:
        // one retry on a fresh connection.
        for _ in 0..2 {
            if self.stream.is_none() {
                let s = TcpStream::connect(&self.addr).await.ok()?;
                let _ = s.set_nodelay(true);
                self.stream = Some(BufReader::with_capacity(64 * 1024, s));
            }
            let s = self.stream.as_mut()?;
            match exchange(s, &wire).await {
                Some((status, size, keep_alive)) => {
                    if !keep_alive {
                        self.stream = None;
                    }
                    return Some((status, size));
                }
                None => self.stream = None,
            }
        }
        None
    }
}

async fn exchange(s: &mut BufReader<TcpStream>, wire: &[u8]) -> Option<(u16, usize, bool)> {
    s.get_mut().write_all(wire).await.ok()?;
    let mut line = String::new();
    if s.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
    let (mut length, mut chunked, mut keep_alive) = (0usize, false, true);
    loop {
        line.clear();
        if s.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        }
    }
    let mut size = 0;
    if chunked {
        loop {
            line.clear();
            s.read_line(&mut line).await.ok()?;
            let n = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
            skip(s, n + 2).await?;
            size += n;
            if n == 0 {
                break;
            }
        }
    } else {
        skip(s, length).await?;
        size = length;
    }
    Some((status, size, keep_alive))
}

async fn skip(s: &mut BufReader<TcpStream>, mut n: usize) -> Option<()> {
    let mut buf = [0u8; 16 * 1024];
    while n > 0 {
        let want = n.min(buf.len());
        let k = s.read(&mut buf[..want]).await.ok()?;
        if k == 0 {
            return None;
        }
        n -= k;
    }
    Some(())
}

/// What one run of a scenario measured.
pub struct Measured {
    pub latencies_ms: Vec<f64>,
    pub errors: usize,
    pub seconds: f64,
    /// Response bodies received, in bytes.
    pub bytes: usize,
    /// The tags of the tagged requests answered with a success.
    pub acknowledged: Vec<String>,
    /// The statuses of the errors (0: no answer), and how many of each.
    pub error_statuses: std::collections::BTreeMap<u16, usize>,
}

/// How requests are sent: every client again as soon as it has its answer (closed loop,
/// the most the server can do), or on a schedule of `rate` requests per second shared
/// by the clients (open loop, as users arrive), with latency counted from when each
/// request was due, so a server that falls behind is charged for the queue it builds.
#[derive(Clone, Copy)]
pub enum Pace {
    Saturate,
    Rate(f64),
}

/// Runs `make(client, n)` from `clients` connections for `seconds` (or until it returns
/// None). Request numbers `n` start at `first`.
pub fn drive(
    addr: &str,
    clients: usize,
    seconds: f64,
    pace: Pace,
    first: usize,
    make: &(dyn Fn(usize, usize) -> Option<Req> + Sync),
) -> Measured {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: no runtime: {e}");
            return Measured {
                latencies_ms: Vec::new(),
                errors: 0,
                seconds: 0.0,
                bytes: 0,
                acknowledged: Vec::new(),
                error_statuses: Default::default(),
            };
        }
    };
    let next = std::cell::Cell::new(0usize);
    let errors = std::cell::Cell::new(0usize);
    let bytes = std::cell::Cell::new(0usize);
    let acknowledged = std::cell::RefCell::new(Vec::new());
    let error_statuses = std::cell::RefCell::new(std::collections::BTreeMap::new());
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let total = match pace {
        Pace::Rate(r) => (r * seconds) as usize,
        Pace::Saturate => usize::MAX,
    };
    let client = |c: usize| {
        let (next, errors, bytes) = (&next, &errors, &bytes);
        let (acknowledged, error_statuses) = (&acknowledged, &error_statuses);
        async move {
            let mut conn = Conn::new(addr);
            let mut mine = Vec::new();
            let mut own = 0;
            loop {
                let (n, due) = match pace {
                    Pace::Saturate => {
                        if Instant::now() >= end {
                            break;
                        }
                        own += 1;
                        (first + own - 1, None)
                    }
                    Pace::Rate(rate) => {
                        let i = next.get();
                        if i >= total {
                            break;
                        }
                        next.set(i + 1);
                        let due = start + Duration::from_secs_f64(i as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                        (first + i, Some(due))
                    }
                };
                let Some(req) = make(c, n) else { break };
                let sent = Instant::now();
                let answer = conn.send(&req).await;
                mine.push(due.unwrap_or(sent).elapsed().as_secs_f64() * 1000.0);
                match answer {
                    Some((status, size)) if status < 400 => {
                        bytes.set(bytes.get() + size);
                        if let Some(tag) = req.tag {
                            acknowledged.borrow_mut().push(tag);
                        }
                    }
                    answer => {
                        errors.set(errors.get() + 1);
                        let status = answer.map_or(0, |(status, _)| status);
                        *error_statuses.borrow_mut().entry(status).or_insert(0) += 1;
                    }
                }
            }
            mine
        }
    };
    let all = runtime.block_on(futures_util::future::join_all((0..clients).map(client)));
    let seconds = start.elapsed().as_secs_f64();
    let mut latencies_ms: Vec<f64> = all.into_iter().flatten().collect();
    latencies_ms.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Measured {
        latencies_ms,
        errors: errors.get(),
        seconds,
        bytes: bytes.get(),
        acknowledged: acknowledged.into_inner(),
        error_statuses: error_statuses.into_inner(),
    }
}
