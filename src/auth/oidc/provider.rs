//! The region's OpenID Connect provider, through the `openidconnect` crate: discovery
//! and signing keys (cached), the authorization URL with PKCE, state and nonce, and the
//! code exchange with the ID token's verification (issuer, audience, expiry, nonce,
//! signature). Blocking (ureq): handlers call it through `web::block`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError,
};

use crate::config::OidcProvider;
use crate::error::AppError;

/// An unknown signing key refetches the keys, but not more often than this: a forged
/// token with a made-up key id must not turn every request into a fetch.
const MIN_REFETCH: Duration = Duration::from_secs(60);

/// What a started attempt hands the browser (the URL) and keeps (the rest).
pub struct Started {
    pub authorization_url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Who the provider vouched for: the link key.
#[derive(Debug, Clone)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
}

/// Discovery documents with their keys, per issuer, with when they were fetched. The age
/// is measured on the monotonic clock, not the service's clock: it is about the
/// provider's key rotation in real time, not about the domain's time.
struct Cached {
    metadata: CoreProviderMetadata,
    fetched: Instant,
}

fn cache() -> &'static Mutex<HashMap<String, Cached>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Cached>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn agent(p: &OidcProvider) -> openidconnect::ureq::Agent {
    // No redirects: a redirect from the token endpoint must not carry the code elsewhere.
    openidconnect::ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(p.timeout)
        .build()
}

/// `https://` only, unless the operator opted in (`OIDC_ALLOW_HTTP`).
fn check_scheme(p: &OidcProvider, what: &str, url: &str) -> Result<(), AppError> {
    if p.allow_http || url.starts_with("https://") {
        return Ok(());
    }
    // Not talked to: an operator's mistake or a tampered discovery document, either way
    // not the person's (503, logged).
    tracing::error!(
        what,
        url,
        "OIDC provider URL is not https (OIDC_ALLOW_HTTP=true allows it)"
    );
    Err(AppError::Unavailable(
        "the e-ID provider cannot be used; the operator has been told".into(),
    ))
}

fn unavailable(e: impl std::fmt::Display) -> AppError {
    tracing::warn!(error = %e, "OIDC provider unreachable");
    AppError::Unavailable("the e-ID provider cannot be reached; try again later".into())
}

/// The provider's metadata and keys: cached for `metadata_ttl`, or fetched again when
/// `refetch` and the cached copy is older than [`MIN_REFETCH`].
fn metadata(
    p: &OidcProvider,
    agent: &openidconnect::ureq::Agent,
    refetch: bool,
) -> Result<CoreProviderMetadata, AppError> {
    if let Ok(cache) = cache().lock() {
        if let Some(c) = cache.get(&p.issuer) {
            let age = c.fetched.elapsed();
            if age < p.metadata_ttl && !(refetch && age >= MIN_REFETCH) {
                return Ok(c.metadata.clone());
            }
        }
    }
    check_scheme(p, "issuer", &p.issuer)?;
    let issuer = IssuerUrl::new(p.issuer.clone())
        .map_err(|e| AppError::Config(format!("OIDC_ISSUER: {e}")))?;
    let md = CoreProviderMetadata::discover(&issuer, agent).map_err(unavailable)?;
    check_scheme(
        p,
        "authorization endpoint",
        md.authorization_endpoint().as_str(),
    )?;
    if let Some(token) = md.token_endpoint() {
        check_scheme(p, "token endpoint", token.as_str())?;
    }
    check_scheme(p, "key set", md.jwks_uri().as_str())?;
    if let Ok(mut cache) = cache().lock() {
        cache.insert(
            p.issuer.clone(),
            Cached {
                metadata: md.clone(),
                fetched: Instant::now(),
            },
        );
    }
    Ok(md)
}

fn client(
    p: &OidcProvider,
    md: CoreProviderMetadata,
) -> Result<
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    AppError,
> {
    let redirect = RedirectUrl::new(p.redirect_url.clone())
        .map_err(|e| AppError::Config(format!("OIDC_REDIRECT_URL: {e}")))?;
    Ok(CoreClient::from_provider_metadata(
        md,
        ClientId::new(p.client_id.clone()),
        Some(ClientSecret::new(p.client_secret.clone())),
    )
    .set_redirect_uri(redirect))
}

/// Starts an attempt: the URL to send the browser to, with a fresh state, nonce and
/// PKCE (S256) challenge.
pub fn start(p: &OidcProvider) -> Result<Started, AppError> {
    let agent = agent(p);
    let client = client(p, metadata(p, &agent, false)?)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in &p.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state, nonce) = request.url();
    Ok(Started {
        authorization_url: url.to_string(),
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    })
}

fn refused(why: impl std::fmt::Display) -> AppError {
    // The cause is logged for the operator; the person gets one answer for all causes.
    tracing::warn!(reason = %why, "OIDC answer refused");
    AppError::OidcRefused(why.to_string())
}

/// Exchanges the code (with the PKCE verifier) and verifies the ID token against the
/// attempt's nonce, the service's time `now`, the configured issuer and client id.
pub fn finish(
    p: &OidcProvider,
    now: DateTime<Utc>,
    code: &str,
    pkce_verifier: &str,
    nonce: &str,
) -> Result<Identity, AppError> {
    let agent = agent(p);
    let client = client(p, metadata(p, &agent, false)?)?;
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|e| AppError::Config(format!("OIDC: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
        .request(&agent)
        .map_err(|e| match e {
            // The provider said no (a wrong code or verifier): refused.
            RequestTokenError::ServerResponse(r) => refused(format!("token endpoint: {r}")),
            RequestTokenError::Request(openidconnect::HttpClientError::Reqwest(inner))
                if matches!(*inner, openidconnect::ureq::Error::Status(..)) =>
            {
                refused(format!("token endpoint: {inner}"))
            }
            RequestTokenError::Parse(e, _) => refused(format!("token response: {e}")),
            other => unavailable(other),
        })?;
    use openidconnect::TokenResponse as _;
    let id_token = response
        .id_token()
        .ok_or_else(|| refused("the token response holds no ID token"))?;
    let expected = Nonce::new(nonce.to_string());
    let verified = {
        let verifier = client.id_token_verifier().set_time_fn(move || now);
        id_token
            .claims(&verifier, &expected)
            .map(|c| c.subject().to_string())
    };
    let subject = match verified {
        Ok(subject) => subject,
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => {
            // The provider may have rotated its keys: fetch them again (bounded), once.
            let client = self::client(p, metadata(p, &agent, true)?)?;
            let verifier = client.id_token_verifier().set_time_fn(move || now);
            id_token
                .claims(&verifier, &expected)
                .map(|c| c.subject().to_string())
                .map_err(refused)?
        }
        Err(e) => return Err(refused(e)),
    };
    Ok(Identity {
        issuer: p.issuer.clone(),
        subject,
    })
}
