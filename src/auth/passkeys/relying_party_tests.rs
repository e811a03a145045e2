use super::*;

fn cfg(public_url: &str, rp_id: Option<&str>, origins: &[&str]) -> Config {
    let mut c = Config::defaults();
    c.public_url = public_url.into();
    c.webauthn_rp_id = rp_id.map(String::from);
    c.webauthn_origins = origins.iter().map(|s| s.to_string()).collect();
    c
}

#[test]
fn derived_from_the_public_url() {
    let (id, origins) = rp_settings(&cfg("https://Portfolio.Region.SE/app", None, &[])).unwrap();
    assert_eq!(id, "portfolio.region.se");
    assert_eq!(origins[0].as_str(), "https://portfolio.region.se/");
    assert!(check(&cfg("https://portfolio.region.se:8443/", None, &[])).is_ok());
}

#[test]
fn a_region_sets_a_parent_domain_and_several_origins() {
    let c = cfg(
        "https://portfolio.region.se",
        Some("region.se"),
        &["https://portfolio.region.se", "https://app.region.se"],
    );
    assert!(check(&c).is_ok());
}

#[test]
fn refused_configurations() {
    // An IP address cannot be an RP id (the quick-start default): passkeys stay off.
    assert!(check(&cfg("http://127.0.0.1:8080", None, &[])).is_err());
    // An origin outside the RP id.
    let c = cfg(
        "https://portfolio.region.se",
        Some("region.se"),
        &["https://portfolio.region.se", "https://evil.example"],
    );
    assert!(check(&c).is_err());
    // Not https.
    assert!(check(&cfg("http://portfolio.region.se", None, &[])).is_err());
    assert!(check(&cfg("http://localhost:3000", None, &[])).is_ok());
}
