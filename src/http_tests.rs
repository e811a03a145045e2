//! Unit tests of the pure parts of `http.rs`: the trusted-proxy network match and the
//! client address taken from `X-Forwarded-For`, and `If-Match`.

use std::net::SocketAddr;

use actix_web::http::header;
use actix_web::test::TestRequest;

use super::{check_if_match, client_info, etag, if_match, in_network};
use crate::config::Config;
use crate::error::AppError;

// ---- in_network -----------------------------------------------------------------------

#[test]
fn an_ipv4_network_contains_its_first_and_last_address_and_nothing_beyond() {
    assert!(in_network("10.0.0.0/8", "10.0.0.0"));
    assert!(in_network("10.0.0.0/8", "10.255.255.255"));
    assert!(!in_network("10.0.0.0/8", "11.0.0.0"));
    assert!(!in_network("10.0.0.0/8", "9.255.255.255"));
    assert!(in_network("192.168.1.0/24", "192.168.1.77"));
    assert!(!in_network("192.168.1.0/24", "192.168.2.1"));
}

#[test]
fn odd_ipv4_prefix_lengths_split_where_the_prefix_says() {
    // /23 spans 172.16.4.0 to 172.16.5.255.
    assert!(in_network("172.16.4.0/23", "172.16.5.255"));
    assert!(!in_network("172.16.4.0/23", "172.16.6.0"));
    assert!(!in_network("172.16.4.0/23", "172.16.3.255"));
    // /31: two addresses.
    assert!(in_network("10.0.0.0/31", "10.0.0.1"));
    assert!(!in_network("10.0.0.0/31", "10.0.0.2"));
}

#[test]
fn a_network_written_with_host_bits_set_still_means_the_network() {
    assert!(in_network("10.1.2.3/16", "10.1.200.1"));
    assert!(!in_network("10.1.2.3/16", "10.2.0.1"));
}

#[test]
fn a_bare_address_matches_only_itself() {
    assert!(in_network("127.0.0.1", "127.0.0.1"));
    assert!(!in_network("127.0.0.1", "127.0.0.2"));
    assert!(in_network("::1", "::1"));
    assert!(!in_network("::1", "::2"));
}

#[test]
fn slash_32_and_slash_128_are_single_hosts_and_slash_0_is_everything_of_its_family() {
    assert!(in_network("10.0.0.5/32", "10.0.0.5"));
    assert!(!in_network("10.0.0.5/32", "10.0.0.4"));
    assert!(in_network("2001:db8::5/128", "2001:db8::5"));
    assert!(!in_network("2001:db8::5/128", "2001:db8::6"));
    assert!(in_network("0.0.0.0/0", "203.0.113.9"));
    assert!(in_network("::/0", "2001:db8::1"));
    assert!(!in_network("0.0.0.0/0", "2001:db8::1"));
}

#[test]
fn ipv6_networks_match_by_prefix() {
    assert!(in_network("fd00::/8", "fd12:3456::1"));
    assert!(!in_network("fd00::/8", "fe80::1"));
    assert!(in_network("2001:db8:abcd::/48", "2001:db8:abcd:ffff::1"));
    assert!(!in_network("2001:db8:abcd::/48", "2001:db8:abce::1"));
    // /65 splits inside the interface identifier.
    assert!(in_network("2001:db8::/65", "2001:db8::7fff:ffff:ffff:ffff"));
    assert!(!in_network("2001:db8::/65", "2001:db8::8000:0:0:0"));
}

#[test]
fn an_ipv4_mapped_ipv6_peer_matches_the_ipv4_range_it_belongs_to() {
    // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
    assert!(in_network("10.0.0.0/8", "::ffff:10.0.0.1"));
    assert!(in_network("10.0.0.1", "::ffff:10.0.0.1"));
    assert!(!in_network("10.0.0.0/8", "::ffff:11.0.0.1"));
}

#[test]
fn other_ipv6_forms_of_ipv4_addresses_are_not_taken_for_ipv4() {
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 addresses are IPv6 hosts.
    assert!(!in_network("10.0.0.0/8", "::10.0.0.1"));
    assert!(!in_network("10.0.0.0/8", "64:ff9b::10.0.0.1"));
}

#[test]
fn an_ipv4_network_never_matches_an_ipv6_address_and_the_reverse() {
    assert!(!in_network("10.0.0.0/8", "fd00::1"));
    assert!(!in_network("fd00::/8", "10.0.0.1"));
}

#[test]
fn malformed_networks_and_addresses_match_nothing() {
    assert!(!in_network("10.0.0.0/33", "10.0.0.1"));
    assert!(!in_network("10.0.0.0/abc", "10.0.0.0"));
    assert!(!in_network("10.0.0.0/", "10.0.0.0"));
    assert!(!in_network("fd00::/129", "fd00::1"));
    assert!(!in_network("not-a-network", "10.0.0.1"));
    assert!(!in_network("", "10.0.0.1"));
    assert!(!in_network("10.0.0.0/8", "10.0.0.1:443"));
    assert!(!in_network("10.0.0.0/8", "10.0.0"));
    assert!(!in_network("10.0.0.0/8", " 10.0.0.1"));
    assert!(!in_network("10.0.0.0/8", ""));
    assert!(!in_network("10.0.0.0/8", "unknown"));
}

// ---- client_info ----------------------------------------------------------------------

fn config_trusting(proxies: &[&str]) -> Config {
    let mut config = Config::defaults();
    config.trusted_proxies = proxies.iter().map(|p| p.to_string()).collect();
    config
}

fn peer(addr: &str) -> TestRequest {
    let socket: SocketAddr = match addr.parse() {
        Ok(s) => s,
        Err(e) => panic!("test peer {addr}: {e}"),
    };
    TestRequest::default().peer_addr(socket)
}

#[test]
fn without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards() {
    let req = peer("203.0.113.7:5000")
        .insert_header(("X-Forwarded-For", "198.51.100.1"))
        .insert_header((header::USER_AGENT, "phone/1.0"))
        .to_http_request();
    let info = client_info(&req, &config_trusting(&[]));
    assert_eq!(info.address.as_deref(), Some("203.0.113.7"));
    assert_eq!(info.user_agent.as_deref(), Some("phone/1.0"));
}

#[test]
fn a_trusted_proxy_gives_the_rightmost_hop_that_is_not_itself_a_trusted_proxy() {
    // The client wrote "1.1.1.1" itself; 198.51.100.9 is what our proxies saw.
    let req = peer("10.0.0.2:40000")
        .insert_header(("X-Forwarded-For", "1.1.1.1, 198.51.100.9, 10.0.0.3"))
        .to_http_request();
    let info = client_info(&req, &config_trusting(&["10.0.0.0/8"]));
    assert_eq!(info.address.as_deref(), Some("198.51.100.9"));
    assert_eq!(info.user_agent, None);
}

#[test]
fn forwarded_hops_in_several_headers_are_read_as_one_list() {
    let req = peer("10.0.0.2:40000")
        .append_header(("X-Forwarded-For", "198.51.100.1"))
        .append_header(("X-Forwarded-For", "198.51.100.2, 10.9.9.9"))
        .to_http_request();
    let info = client_info(&req, &config_trusting(&["10.0.0.0/8"]));
    assert_eq!(info.address.as_deref(), Some("198.51.100.2"));
}

#[test]
fn when_every_hop_is_a_trusted_proxy_the_farthest_one_is_the_client() {
    let req = peer("10.0.0.2:40000")
        .insert_header(("X-Forwarded-For", "10.0.0.8, 10.0.0.9"))
        .to_http_request();
    let info = client_info(&req, &config_trusting(&["10.0.0.0/8"]));
    assert_eq!(info.address.as_deref(), Some("10.0.0.8"));
}

#[test]
fn a_trusted_proxy_without_x_forwarded_for_is_itself_the_client() {
    let req = peer("10.0.0.2:40000")
        .insert_header(("X-Forwarded-For", " , "))
        .to_http_request();
    let info = client_info(&req, &config_trusting(&["10.0.0.0/8"]));
    assert_eq!(info.address.as_deref(), Some("10.0.0.2"));
}

#[test]
fn an_untrusted_peer_cannot_choose_its_address_through_x_forwarded_for() {
    let req = peer("198.51.100.50:1234")
        .insert_header(("X-Forwarded-For", "10.0.0.1"))
        .to_http_request();
    let info = client_info(&req, &config_trusting(&["10.0.0.0/8"]));
    assert_eq!(info.address.as_deref(), Some("198.51.100.50"));
}

#[test]
fn an_ipv4_mapped_proxy_peer_is_trusted_by_its_ipv4_range() {
    let req = peer("[::ffff:10.0.0.1]:40000")
        .insert_header(("X-Forwarded-For", "198.51.100.9"))
        .to_http_request();
    let info = client_info(&req, &config_trusting(&["10.0.0.0/8"]));
    assert_eq!(info.address.as_deref(), Some("198.51.100.9"));
}

#[test]
fn an_ipv6_proxy_forwards_an_ipv6_client() {
    let req = peer("[fd00::2]:40000")
        .insert_header(("X-Forwarded-For", "2001:db8::42, fd00::3"))
        .to_http_request();
    let info = client_info(&req, &config_trusting(&["fd00::/8"]));
    assert_eq!(info.address.as_deref(), Some("2001:db8::42"));
}

#[test]
fn a_malformed_forwarded_hop_is_not_a_trusted_proxy_so_it_is_reported_as_is() {
    // Whatever a trusted proxy passes on is recorded, never trusted.
    let req = peer("10.0.0.2:40000")
        .insert_header(("X-Forwarded-For", "198.51.100.1, garbage"))
        .to_http_request();
    let info = client_info(&req, &config_trusting(&["10.0.0.0/8"]));
    assert_eq!(info.address.as_deref(), Some("garbage"));
}

#[test]
fn a_request_without_a_peer_has_no_address() {
    let req = TestRequest::default()
        .insert_header(("X-Forwarded-For", "198.51.100.1"))
        .to_http_request();
    let info = client_info(&req, &config_trusting(&["10.0.0.0/8"]));
    assert_eq!(info.address, None);
}

// ---- If-Match -------------------------------------------------------------------------

const CURRENT: &str = "\"3-1700000000000000\"";

fn precondition_failed(r: Result<(), AppError>) -> bool {
    matches!(r, Err(AppError::PreconditionFailed))
}

#[test]
fn the_etag_is_version_and_update_time_in_microseconds_quoted() {
    let at = match chrono::DateTime::from_timestamp(1_700_000_000, 123_456_000) {
        Some(t) => t,
        None => panic!("test timestamp"),
    };
    assert_eq!(etag(3, at), "\"3-1700000000123456\"");
}

#[test]
fn no_if_match_header_means_no_precondition() {
    assert!(check_if_match(None, CURRENT).is_ok());
}

#[test]
fn the_current_strong_tag_matches_and_any_other_fails_with_412() {
    assert!(check_if_match(Some(CURRENT), CURRENT).is_ok());
    assert!(precondition_failed(check_if_match(
        Some("\"2-1700000000000000\""),
        CURRENT
    )));
    // The tag without its quotes is a different string.
    assert!(precondition_failed(check_if_match(
        Some("3-1700000000000000"),
        CURRENT
    )));
}

#[test]
fn a_weak_tag_with_the_current_value_matches() {
    assert!(check_if_match(Some("W/\"3-1700000000000000\""), CURRENT).is_ok());
    assert!(precondition_failed(check_if_match(
        Some("W/\"4-1700000000000000\""),
        CURRENT
    )));
}

#[test]
fn a_star_matches_any_current_tag() {
    assert!(check_if_match(Some("*"), CURRENT).is_ok());
    assert!(check_if_match(Some(" * "), CURRENT).is_ok());
}

#[test]
fn a_list_matches_when_any_member_matches_whatever_the_spacing() {
    assert!(check_if_match(Some("\"1-1\", \"3-1700000000000000\""), CURRENT).is_ok());
    assert!(check_if_match(Some("\"1-1\",W/\"3-1700000000000000\""), CURRENT).is_ok());
    assert!(check_if_match(Some("\"1-1\" ,  *"), CURRENT).is_ok());
    assert!(precondition_failed(check_if_match(
        Some("\"1-1\", \"2-2\""),
        CURRENT
    )));
}

#[test]
fn an_empty_if_match_header_matches_nothing() {
    assert!(precondition_failed(check_if_match(Some(""), CURRENT)));
    assert!(precondition_failed(check_if_match(Some(" , "), CURRENT)));
}

#[test]
fn if_match_reads_the_header_and_an_unreadable_value_never_matches() {
    let absent = TestRequest::default().to_http_request();
    assert_eq!(if_match(&absent), None);

    let sent = TestRequest::default()
        .insert_header((header::IF_MATCH, CURRENT))
        .to_http_request();
    assert_eq!(if_match(&sent).as_deref(), Some(CURRENT));

    // Not visible ASCII: to_str() fails, and the stand-in value matches no tag.
    let bytes = match header::HeaderValue::from_bytes(b"\"3-17\xe5\"") {
        Ok(v) => v,
        Err(e) => panic!("test header: {e}"),
    };
    let unreadable = TestRequest::default()
        .insert_header((header::IF_MATCH, bytes))
        .to_http_request();
    let value = if_match(&unreadable);
    assert!(value.is_some());
    assert!(precondition_failed(check_if_match(
        value.as_deref(),
        CURRENT
    )));
}
