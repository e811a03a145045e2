//! The relying party: which domain passkeys belong to (the RP id) and which origins may
//! use them. A region sets `WEBAUTHN_RP_ID` and `WEBAUTHN_ORIGINS`; without them both are
//! derived from `EPORTFOLIO_PUBLIC_URL` (its host, and its `scheme://host[:port]`).
//! Passkeys are bound to the RP id for good: changing it makes every registered passkey
//! useless (docs/passkeys.md).

use url::Url;
use webauthn_rs::prelude::{Webauthn, WebauthnBuilder};

use crate::config::Config;
use crate::error::AppError;

/// The name authenticators show next to the account.
const RP_NAME: &str = "eportfolio";

/// The RP id and the allowed origins, configured or derived from the public URL.
pub fn rp_settings(cfg: &Config) -> Result<(String, Vec<Url>), String> {
    let public = Url::parse(&cfg.public_url)
        .map_err(|e| format!("EPORTFOLIO_PUBLIC_URL {:?}: {e}", cfg.public_url))?;
    let rp_id = match &cfg.webauthn_rp_id {
        Some(id) => id.trim().to_ascii_lowercase(),
        None => public
            .host_str()
            .ok_or("EPORTFOLIO_PUBLIC_URL has no host")?
            .to_ascii_lowercase(),
    };
    let origins = if cfg.webauthn_origins.is_empty() {
        vec![public.origin().ascii_serialization()]
    } else {
        cfg.webauthn_origins.clone()
    };
    let origins = origins
        .iter()
        .map(|o| {
            let url = Url::parse(o).map_err(|e| format!("WEBAUTHN_ORIGINS: {o:?}: {e}"))?;
            // Browsers offer passkeys only on secure origins; localhost is the exception.
            if url.scheme() != "https" && url.host_str() != Some("localhost") {
                return Err(format!("WEBAUTHN_ORIGINS: {o:?} is not https"));
            }
            Ok(url)
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((rp_id, origins))
}

/// The configured relying party; 503 when the configuration names none that works (an
/// IP address as public URL, an origin outside the RP id), so the rest of the service
/// runs on and the operator reads why in the problem and the log.
pub fn relying_party(cfg: &Config) -> Result<Webauthn, AppError> {
    build(cfg).map_err(|e| {
        tracing::error!(problem = %e, "passkeys are not configured");
        AppError::Unavailable(format!("passkeys are not configured on this server: {e}"))
    })
}

fn build(cfg: &Config) -> Result<Webauthn, String> {
    let (rp_id, origins) = rp_settings(cfg)?;
    let Some((first, rest)) = origins.split_first() else {
        return Err("WEBAUTHN_ORIGINS is empty".into());
    };
    let mut builder = WebauthnBuilder::new(&rp_id, first)
        .map_err(|e| format!("RP id {rp_id:?} does not fit origin {first}: {e}"))?
        .rp_name(RP_NAME)
        // What the options tell the client is the ceremony's own lifetime.
        .timeout(super::ceremonies::CEREMONY_TTL);
    for origin in rest {
        // The builder checks only the first origin against the RP id; the others are
        // checked here, so that no origin outside the RP id's domain is allowed.
        let fits = origin
            .domain()
            .is_some_and(|d| d == rp_id || d.ends_with(&format!(".{rp_id}")));
        if !fits {
            return Err(format!("origin {origin} is outside the RP id {rp_id:?}"));
        }
        builder = builder.append_allowed_origin(origin);
    }
    builder.build().map_err(|e| format!("{e}"))
}

/// Whether passkeys work with this configuration (checked at start-up, for the log).
pub fn check(cfg: &Config) -> Result<(), String> {
    build(cfg).map(|_| ())
}

#[cfg(test)]
#[path = "relying_party_tests.rs"]
mod tests;
