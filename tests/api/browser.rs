//! A browser app on another origin (issue 16, "Browsers"): Debian's headless Chromium
//! loads a page from a second origin on loopback, the page logs in (password + TOTP),
//! lists and reads activities, changes one with `If-Match` and retries a create with the
//! same `Idempotency-Key`, all through `fetch`, and the test reads what the page saw
//! from its DOM. The browser enforces CORS, not our code: a page of an origin the
//! operator did not list gets nothing.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{TestApp, TestUser};

struct Setup {
    app: TestApp,
    trainee: TestUser,
    enrolment: String,
    /// The page server's origin, listed in `CORS_ALLOWED_ORIGINS`.
    page: PageServer,
}

fn setup() -> Setup {
    let page = PageServer::start();
    let origin = page.origin();
    let app = TestApp::start_with(|c| c.cors_allowed_origins = vec![origin]);
    let (admin, region) = app.admin();
    let org = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &org);
    let template = app.stockholm_bt_template(&director, &org);
    let trainee = app.join(&director, "bt@sll.se", "trainee", &org);
    let supervisor = app.join(&director, "hhl@sll.se", "supervisor", &org);
    let e = app
        .post(
            "/enrolments",
            Some(&director.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31", "main_supervisor_id": supervisor.id,
                   "placements": [{"placement_type": "allmanmedicin", "start_date": "2026-09-01", "end_date": "2026-12-31"}]}),
        )
        .expect(201);
    let enrolment = e.body["id"].as_str().expect("id").to_string();
    app.post(
        &format!("/enrolments/{enrolment}/activities"),
        Some(&trainee.access),
        json!({"kind": "course", "title": "Försäkringsmedicinsk dag", "start_date": "2026-10-06",
               "reflection": "Sjukskrivningsprocessen", "delmal": ["BT16"]}),
    )
    .expect(201);
    Setup {
        app,
        trainee,
        enrolment,
        page,
    }
}

/// Serves one HTML page, the same for every path but `/favicon.ico`, on a loopback
/// port of its own: another origin than the API's.
struct PageServer {
    port: u16,
    html: std::sync::Arc<std::sync::Mutex<String>>,
}

impl PageServer {
    fn start() -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind page server");
        let port = listener.local_addr().expect("addr").port();
        let html = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let served = html.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 8192];
                let n = stream.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if request.starts_with("GET /favicon.ico") {
                    ("404 Not Found", String::new())
                } else {
                    ("200 OK", served.lock().expect("page").clone())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        PageServer { port, html }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn serve(&self, html: String) {
        *self.html.lock().expect("page") = html;
    }
}

/// The app: plain `fetch`, as a single-page app on its own origin would call the API.
const SCRIPT: &str = r#"
const out = document.getElementById('out');
async function run() {
  const api = cfg.api + '/api/v1';
  const json = {'Content-Type': 'application/json'};
  let r = await fetch(api + '/auth/login', {method: 'POST', headers: json,
    body: JSON.stringify({email: cfg.email, password: cfg.password})});
  const step = await r.json();
  r = await fetch(api + '/auth/mfa/verify', {method: 'POST', headers: json,
    body: JSON.stringify({mfa_token: step.mfa_token, method: 'totp', code: cfg.code})});
  const tokens = await r.json();
  const auth = {'Authorization': 'Bearer ' + tokens.access_token};
  const activities = api + '/enrolments/' + cfg.enrolment + '/activities';
  r = await fetch(activities, {headers: auth});
  const list = await r.json();
  const id = list.items[0].id;
  r = await fetch(api + '/activities/' + id, {headers: auth});
  const etag = r.headers.get('ETag');
  r = await fetch(api + '/activities/' + id, {method: 'PATCH',
    headers: {...auth, ...json, 'If-Match': etag},
    body: JSON.stringify({reflection: 'Ändrad i webbläsaren'})});
  const patched = r.status;
  const create = () => fetch(activities, {method: 'POST',
    headers: {...auth, ...json, 'Idempotency-Key': 'browser-create-1'},
    body: JSON.stringify({kind: 'course', title: 'Från webbläsaren', start_date: '2026-10-07',
      delmal: ['BT16']})});
  const first = await create();
  const again = await create();
  out.textContent = JSON.stringify({
    login: step.status, verified: r.ok && !!tokens.access_token, listed: list.items.map(a => a.title),
    etag: etag, patched: patched, created: first.status, location: first.headers.get('Location'),
    retried: again.status, replayed: again.headers.get('Idempotent-Replayed')});
}
run().catch(e => { out.textContent = 'ERROR ' + e; });
"#;

fn page(api: &str, s: &Setup) -> String {
    let secret = s.trainee.totp_secret.as_deref().expect("totp");
    let cfg = json!({
        "api": api,
        "email": s.trainee.email,
        "password": s.trainee.password,
        "code": s.app.totp(secret),
        "enrolment": s.enrolment,
    });
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>app</title></head><body>\
         <pre id=\"out\">pending</pre><script>const cfg = {cfg};{SCRIPT}</script></body></html>"
    )
}

/// Debian's Chromium, or `None` off CI when it is not installed (CI installs it and
/// requires it: a missing browser must not quietly skip the check there).
fn chromium() -> Option<String> {
    for candidate in ["chromium", "chromium-browser", "/usr/bin/chromium"] {
        let found = Command::new(candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if found {
            return Some(candidate.to_string());
        }
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but Chromium is not installed (Debian package chromium)"
    );
    eprintln!("chromium not found: the browser test checks nothing on this machine");
    None
}

/// Loads `url` in headless Chromium and returns the text the page wrote into `#out`.
fn run_page(browser: &str, url: &str) -> String {
    let profile = std::env::temp_dir().join(format!(
        "eportfolio-chromium-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            // Virtual time stands still while fetches are pending: the DOM is dumped
            // once the script is done, however slow the server is.
            "--virtual-time-budget=30000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("chromium").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish loading {url}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut dom = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut dom)
        .expect("dom");
    let _ = std::fs::remove_dir_all(&profile);
    let start = dom.find("<pre id=\"out\">").expect("the page's output") + 14;
    let end = dom[start..].find("</pre>").expect("end of output") + start;
    dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[test]
fn a_page_on_a_listed_origin_logs_in_and_works_with_the_api() {
    let Some(browser) = chromium() else { return };
    let s = setup();
    s.page.serve(page(&s.app.base, &s));
    let text = run_page(&browser, &format!("{}/", s.page.origin()));
    let seen: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("page said: {text}"));
    assert_eq!(seen["login"], "mfa_required", "{text}");
    assert_eq!(
        seen["listed"],
        json!(["Försäkringsmedicinsk dag"]),
        "{text}"
    );
    // Response headers the app needs are exposed to it.
    assert!(
        seen["etag"].as_str().is_some_and(|e| !e.is_empty()),
        "{text}"
    );
    assert_eq!(seen["patched"], 200, "{text}");
    assert_eq!(seen["created"], 201, "{text}");
    assert_eq!(seen["retried"], 201, "{text}");
    assert_eq!(seen["replayed"], "true", "{text}");
    // What the page did happened: one new activity, the reflection changed.
    let list = s
        .app
        .get(
            &format!("/enrolments/{}/activities", s.enrolment),
            Some(&s.trainee.access),
        )
        .expect(200);
    let items = list.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{}", list.text);
    assert!(
        items
            .iter()
            .any(|a| a["reflection"] == "Ändrad i webbläsaren"),
        "{}",
        list.text
    );
}

#[test]
fn a_page_on_an_origin_not_listed_gets_nothing() {
    let Some(browser) = chromium() else { return };
    let s = setup();
    let stranger = PageServer::start();
    stranger.serve(page(&s.app.base, &s));
    let text = run_page(&browser, &format!("{}/", stranger.origin()));
    assert!(text.starts_with("ERROR TypeError"), "page said: {text}");
    // The page could not read the login answer, so it went no further.
    let list = s
        .app
        .get(
            &format!("/enrolments/{}/activities", s.enrolment),
            Some(&s.trainee.access),
        )
        .expect(200);
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
}

/// The preflight and answers as the CORS protocol has them, read over plain HTTP.
#[test]
fn preflight_allows_the_listed_origin_the_methods_and_headers_the_api_needs() {
    let s = setup();
    let origin = s.page.origin();
    let pre = s.app.send(
        "OPTIONS",
        &format!("/enrolments/{}/activities", s.enrolment),
        None,
        None,
        &[
            ("Origin", &origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type,idempotency-key,if-match",
            ),
        ],
    );
    assert_eq!(pre.status, 200, "{}", pre.text);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some(origin.as_str())
    );
    let methods = pre
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_uppercase();
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = pre
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_lowercase();
    for h in [
        "authorization",
        "content-type",
        "idempotency-key",
        "if-match",
    ] {
        assert!(headers.contains(h), "{headers}");
    }

    let get = s.app.send(
        "GET",
        &format!("/enrolments/{}/activities", s.enrolment),
        Some(&s.trainee.access),
        None,
        &[("Origin", &origin)],
    );
    assert_eq!(get.status, 200);
    assert_eq!(
        get.header("access-control-allow-origin"),
        Some(origin.as_str())
    );
    let exposed = get
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_lowercase();
    for h in ["etag", "location", "retry-after", "idempotent-replayed"] {
        assert!(exposed.contains(h), "{exposed}");
    }

    // Another origin: answered (API clients are not browsers), but without a CORS
    // header, so a browser would not let its page read it.
    let other = s.app.send(
        "GET",
        &format!("/enrolments/{}/activities", s.enrolment),
        Some(&s.trainee.access),
        None,
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[test]
fn without_listed_origins_no_cors_header_is_sent() {
    let app = TestApp::start();
    let pre = app.send(
        "OPTIONS",
        "/me",
        None,
        None,
        &[
            ("Origin", "http://127.0.0.1:5173"),
            ("Access-Control-Request-Method", "GET"),
        ],
    );
    assert_eq!(
        pre.header("access-control-allow-origin"),
        None,
        "{}",
        pre.text
    );
    let health = app.send(
        "GET",
        "/health",
        None,
        None,
        &[("Origin", "http://127.0.0.1:5173")],
    );
    assert_eq!(health.status, 200);
    assert_eq!(health.header("access-control-allow-origin"), None);
}
