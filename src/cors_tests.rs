use super::origin;

#[test]
fn origins_are_written_as_browsers_send_them() {
    assert_eq!(
        origin("https://Portfolio.Region.se").as_deref(),
        Ok("https://portfolio.region.se")
    );
    assert_eq!(
        origin("https://portfolio.region.se:443").as_deref(),
        Ok("https://portfolio.region.se")
    );
    assert_eq!(
        origin("http://127.0.0.1:5173").as_deref(),
        Ok("http://127.0.0.1:5173")
    );
}

#[test]
fn anything_but_an_exact_origin_is_refused() {
    for bad in [
        "*",
        "portfolio.region.se",
        "https://portfolio.region.se/",
        "https://portfolio.region.se/app",
        "https://portfolio.region.se?x=1",
        "https://user@portfolio.region.se",
        "ftp://portfolio.region.se",
        "file:///etc/passwd",
    ] {
        assert!(origin(bad).is_err(), "{bad}");
    }
}
