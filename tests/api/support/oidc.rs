//! A small OpenID Connect provider on loopback, as a region's e-ID broker would be: a
//! discovery document, its key set, an authorization endpoint that "signs in" whoever
//! the test says and redirects with a code, and a token endpoint that checks the client
//! secret, the redirect URI and the PKCE verifier and answers with an ID token signed
//! by a test RSA key (`oidc_test_key.der`, PKCS#1; `oidc_test_key.n` is its modulus, base64url:
//! `openssl rsa -inform DER -in oidc_test_key.der -noout -modulus`). Tests bend the next ID token
//! (`Bend`) to try the service's refusals.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use base64::Engine;
use eportfolio::clock::{Clock, ManualClock};
use eportfolio::config::OidcProvider;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::hooks::{read_request, Received};

pub const CLIENT_ID: &str = "eportfolio-test";
pub const CLIENT_SECRET: &str = "test-client-secret";
const KEY_ID: &str = "test-key-1";

/// How to bend the next ID token (each field: once).
#[derive(Default, Clone, Debug)]
pub struct Bend {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Seconds to shift `exp` and `iat` by (negative: an expired token).
    pub shift: i64,
    /// A nonce other than the one of the authorization request.
    pub nonce: Option<String>,
}

struct Grant {
    subject: String,
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

#[derive(Default)]
struct State {
    clock: Option<Arc<ManualClock>>,
    grants: HashMap<String, Grant>,
    bend: Bend,
    /// Every nonce the provider was asked to put in a token, in order.
    nonces: Vec<String>,
    token_requests: usize,
}

pub struct Provider {
    pub issuer: String,
    state: Arc<Mutex<State>>,
    agent: ureq::Agent,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Provider {
    pub fn start() -> Provider {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind provider");
        let issuer = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        let state = Arc::new(Mutex::new(State::default()));
        let (iss, st) = (issuer.clone(), state.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let Some(req) = read_request(&mut stream) else {
                    continue;
                };
                let (status, headers, body) = answer(&iss, &st, &req);
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                let _ = write!(stream, "{head}\r\n{body}");
                let _ = stream.flush();
            }
        });
        Provider {
            issuer,
            state,
            agent: ureq::AgentBuilder::new().redirects(0).build(),
        }
    }

    /// The service's configuration for this provider (http on loopback: opted in).
    pub fn config(&self) -> OidcProvider {
        OidcProvider {
            issuer: self.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            scopes: vec!["profile".into()],
            display_name: "Test e-ID".into(),
            redirect_url: "https://app.example/oidc/callback".into(),
            counts_as_second_factor: false,
            allow_http: true,
            flow_ttl: std::time::Duration::from_secs(600),
            metadata_ttl: std::time::Duration::from_secs(3600),
            timeout: std::time::Duration::from_secs(5),
        }
    }

    /// ID tokens are issued at the app's time.
    pub fn use_clock(&self, clock: Arc<ManualClock>) {
        self.state.lock().expect("lock").clock = Some(clock);
    }

    pub fn bend_next(&self, bend: Bend) {
        self.state.lock().expect("lock").bend = bend;
    }

    pub fn nonces(&self) -> Vec<String> {
        self.state.lock().expect("lock").nonces.clone()
    }

    pub fn token_requests(&self) -> usize {
        self.state.lock().expect("lock").token_requests
    }

    /// The browser leg: opens `authorization_url` as the person `subject` and follows
    /// the provider's redirect no further than reading `code` and `state` from it.
    pub fn authorize(&self, authorization_url: &str, subject: &str) -> (String, String) {
        let url = format!("{authorization_url}&login_hint_test={subject}");
        let resp = self.agent.get(&url).call().expect("authorize");
        assert_eq!(resp.status(), 302, "authorize answered {}", resp.status());
        let location = url::Url::parse(resp.header("location").expect("location")).expect("url");
        assert!(
            location
                .as_str()
                .starts_with("https://app.example/oidc/callback?"),
            "{location}"
        );
        let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
        (q["code"].clone(), q["state"].clone())
    }
}

fn json_answer(status: u16, v: Value) -> (u16, Vec<(String, String)>, String) {
    (
        status,
        vec![("Content-Type".into(), "application/json".into())],
        v.to_string(),
    )
}

fn form(body: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn answer(
    issuer: &str,
    state: &Arc<Mutex<State>>,
    req: &Received,
) -> (u16, Vec<(String, String)>, String) {
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    match (req.method.as_str(), path) {
        ("GET", "/.well-known/openid-configuration") => json_answer(
            200,
            json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "jwks_uri": format!("{issuer}/jwks"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }),
        ),
        ("GET", "/jwks") => json_answer(
            200,
            json!({"keys": [{
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": KEY_ID,
                "n": include_str!("oidc_test_key.n").trim(), "e": "AQAB",
            }]}),
        ),
        ("GET", "/authorize") => {
            let q = form(query);
            let ok = q.get("response_type").map(String::as_str) == Some("code")
                && q.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && q.get("code_challenge_method").map(String::as_str) == Some("S256")
                && q.get("scope")
                    .is_some_and(|s| s.split(' ').any(|s| s == "openid"));
            if !ok {
                return json_answer(400, json!({"error": "invalid_request"}));
            }
            let code = uuid::Uuid::new_v4().simple().to_string();
            let redirect_uri = q["redirect_uri"].clone();
            state.lock().expect("lock").grants.insert(
                code.clone(),
                Grant {
                    subject: q["login_hint_test"].clone(),
                    nonce: q["nonce"].clone(),
                    challenge: q["code_challenge"].clone(),
                    redirect_uri: redirect_uri.clone(),
                },
            );
            let location = format!(
                "{redirect_uri}?code={code}&state={}",
                url::form_urlencoded::byte_serialize(q["state"].as_bytes()).collect::<String>()
            );
            (302, vec![("Location".into(), location)], String::new())
        }
        ("POST", "/token") => token(issuer, state, req),
        _ => (404, Vec::new(), String::new()),
    }
}

fn token(
    issuer: &str,
    state: &Arc<Mutex<State>>,
    req: &Received,
) -> (u16, Vec<(String, String)>, String) {
    let f = form(&req.body);
    let mut st = state.lock().expect("lock");
    st.token_requests += 1;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if req.headers.get("authorization") != Some(&basic) {
        return json_answer(401, json!({"error": "invalid_client"}));
    }
    // A code works once, whatever happens next.
    let Some(grant) = f.get("code").and_then(|c| st.grants.remove(c)) else {
        return json_answer(400, json!({"error": "invalid_grant"}));
    };
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    if f.get("grant_type").map(String::as_str) != Some("authorization_code")
        || f.get("redirect_uri") != Some(&grant.redirect_uri)
        || b64(&Sha256::digest(verifier.as_bytes())) != grant.challenge
    {
        return json_answer(400, json!({"error": "invalid_grant"}));
    }
    let bend = std::mem::take(&mut st.bend);
    let now = st
        .clock
        .as_ref()
        .expect("use_clock first")
        .now()
        .timestamp()
        + bend.shift;
    let nonce = bend.nonce.unwrap_or(grant.nonce);
    st.nonces.push(nonce.clone());
    let claims = json!({
        "iss": bend.issuer.unwrap_or_else(|| issuer.to_string()),
        "sub": grant.subject,
        "aud": bend.audience.unwrap_or_else(|| CLIENT_ID.to_string()),
        "iat": now,
        "exp": now + 300,
        "nonce": nonce,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(KEY_ID.into());
    let key = jsonwebtoken::EncodingKey::from_rsa_der(include_bytes!("oidc_test_key.der"));
    let id_token = jsonwebtoken::encode(&header, &claims, &key).expect("sign");
    json_answer(
        200,
        json!({
            "access_token": "test-access-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }),
    )
}
