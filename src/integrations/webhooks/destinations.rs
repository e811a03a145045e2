//! Destinations: no requests to the service's own networks.
//!
//!
//! A subscription URL is a request the service makes on an administrator's behalf, from
//! inside its network. Without a check it reaches the service itself, the database, the
//! cloud metadata endpoint, and tells the port-scan result back through the delivery log.
//! So the host is resolved once, every address it resolves to is checked, and the
//! connection goes to exactly the checked addresses (ureq's resolver is replaced): a DNS
//! answer that changes between check and connect (rebinding) is never asked for.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use crate::error::{AppError, FieldError};

/// What kind of address an IP address is, as far as webhooks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Globally reachable unicast: allowed.
    Public,
    /// `0.0.0.0/8`, `::` (connects to the local host).
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`), unique local `fc00::/7`, site-local
    /// `fec0::/10`, local-use NAT64 `64:ff9b:1::/48`.
    Private,
    /// `169.254.0.0/16` (cloud metadata lives here), `fe80::/10`.
    LinkLocal,
    /// Shared address space `100.64.0.0/10` (carrier-grade NAT).
    SharedCgnat,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`.
    Benchmarking,
    /// Everything else that is not globally routable unicast: `192.0.0/24`, `240/4`
    /// (with the broadcast address), the 6to4 relay, IPv4-compatible IPv6 of public
    /// addresses, 6to4 and Teredo, discard-only, and IPv6 outside `2000::/3`.
    Reserved,
}

impl AddressClass {
    pub fn is_public(self) -> bool {
        self == AddressClass::Public
    }

    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::SharedCgnat => "shared (carrier-grade NAT)",
            AddressClass::Multicast => "multicast",
            AddressClass::Documentation => "documentation",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::Reserved => "reserved",
        }
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    let table: [([u8; 4], u32, AddressClass); 16] = [
        ([0, 0, 0, 0], 8, Unspecified),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedCgnat),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Reserved),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Benchmarking),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([240, 0, 0, 0], 4, Reserved),
        ([255, 255, 255, 255], 32, Reserved),
    ];
    table
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map_or(Public, |(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    if ip.is_unspecified() {
        return Unspecified;
    }
    if ip.is_loopback() {
        return Loopback;
    }
    // IPv4-mapped (::ffff:a.b.c.d) reaches the IPv4 address itself.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap_or(Ipv6Addr::UNSPECIFIED);
    let embedded_v4 = Ipv4Addr::from((u128::from(ip) & 0xffff_ffff) as u32);
    // IPv4-compatible (::a.b.c.d, deprecated): the class of the embedded address when
    // that is not public, else reserved (nobody legitimately uses these).
    if in_v6(ip, Ipv6Addr::UNSPECIFIED, 96) {
        let class = classify_v4(embedded_v4);
        return if class.is_public() { Reserved } else { class };
    }
    // Well-known NAT64 prefix: a translator forwards to the embedded IPv4 address.
    if in_v6(ip, v6("64:ff9b::"), 96) {
        return classify_v4(embedded_v4);
    }
    let table: [(&str, u32, AddressClass); 10] = [
        ("64:ff9b:1::", 48, Private),
        ("100::", 64, Reserved),
        ("2001:db8::", 32, Documentation),
        ("2001::", 23, Reserved),
        ("2002::", 16, Reserved),
        ("3fff::", 20, Documentation),
        ("fc00::", 7, Private),
        ("fe80::", 10, LinkLocal),
        ("fec0::", 10, Private),
        ("ff00::", 8, Multicast),
    ];
    if let Some((_, _, class)) = table
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, v6(net), *prefix))
    {
        return *class;
    }
    // Only 2000::/3 is allocated as global unicast.
    if in_v6(ip, v6("2000::"), 3) {
        Public
    } else {
        Reserved
    }
}

/// The class of an address; IPv4-mapped and -compatible IPv6 count as the IPv4 address.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Where webhooks may go: https to public addresses, and what the operator opened.
#[derive(Debug, Clone, Default)]
pub struct DestinationPolicy {
    /// `WEBHOOK_ALLOW_HTTP`.
    pub allow_http: bool,
    /// `WEBHOOK_ALLOWED_NETWORKS`.
    pub allowed_networks: Vec<ipnet::IpNet>,
}

impl DestinationPolicy {
    pub fn from_config(config: &crate::Config) -> DestinationPolicy {
        DestinationPolicy {
            allow_http: config.webhook_allow_http,
            allowed_networks: config.webhook_allowed_networks.clone(),
        }
    }

    /// Whether a connection to `ip` is allowed: public, or inside a network the operator
    /// allowed. The unspecified address and multicast are never destinations.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let class = classify(ip);
        if class.is_public() {
            return true;
        }
        if matches!(class, AddressClass::Unspecified | AddressClass::Multicast) {
            return false;
        }
        let ip = ip.to_canonical();
        self.allowed_networks.iter().any(|n| n.contains(&ip))
    }
}

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a URL this service posts to (scheme, host).
    Url(&'static str),
    /// The host is (or resolves to) an address the policy does not allow.
    Address(IpAddr, AddressClass),
    /// The host name did not resolve.
    Unresolved,
}

impl Refusal {
    /// The failure class in the delivery log: no addresses, no OS error texts, so that the
    /// log tells an administrator what to fix and nothing about the network behind.
    pub(super) fn log_text(&self) -> &'static str {
        match self {
            Refusal::Url(_) | Refusal::Address(..) => "destination not allowed",
            Refusal::Unresolved => "connection failed",
        }
    }
}

/// A parsed subscription URL: what ureq will ask its resolver for, and how to resolve it.
pub(super) struct Target {
    /// `host:port` exactly as ureq 2 formats it (`url::Url::host_str`, explicit or
    /// default port).
    pub(super) netloc: String,
    host: url::Host<String>,
    port: u16,
}

pub(super) fn target(url: &str, policy: &DestinationPolicy) -> Result<Target, Refusal> {
    let parsed = url::Url::parse(url).map_err(|_| Refusal::Url("not a URL"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return Err(Refusal::Url("only https:// URLs are allowed")),
        _ => return Err(Refusal::Url("an https:// URL")),
    }
    let host = parsed
        .host()
        .map(|h| h.to_owned())
        .ok_or(Refusal::Url("a URL with a host"))?;
    let host_str = parsed.host_str().ok_or(Refusal::Url("a URL with a host"))?;
    let port = parsed
        .port_or_known_default()
        .ok_or(Refusal::Url("a URL with a port"))?;
    Ok(Target {
        netloc: format!("{host_str}:{port}"),
        host,
        port,
    })
}

/// Resolves the target once and checks every address: all must be allowed (a name that
/// resolves to a public and a private address is refused, not filtered, so that which
/// one is used never depends on the resolver's order).
pub(super) fn resolve_checked(
    t: &Target,
    policy: &DestinationPolicy,
) -> Result<Vec<SocketAddr>, Refusal> {
    let addrs: Vec<SocketAddr> = match &t.host {
        url::Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), t.port)],
        url::Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), t.port)],
        url::Host::Domain(name) => (name.as_str(), t.port)
            .to_socket_addrs()
            .map_err(|_| Refusal::Unresolved)?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Refusal::Unresolved);
    }
    if let Some(bad) = addrs.iter().find(|a| !policy.allows(a.ip())) {
        return Err(Refusal::Address(bad.ip(), classify(bad.ip())));
    }
    Ok(addrs)
}

/// Checks a subscription URL when it is set: scheme, and every address its host resolves
/// to now. Blocking (DNS): call it off the executor and outside a transaction. A name
/// that does not resolve (yet) is accepted; every delivery checks again.
pub fn check_destination(url: &str, policy: &DestinationPolicy) -> Result<(), AppError> {
    let t = target(url.trim(), policy).map_err(|r| match r {
        Refusal::Url(why) => AppError::validation("url", why),
        _ => AppError::validation("url", "an https:// URL"),
    })?;
    match resolve_checked(&t, policy) {
        Ok(_) | Err(Refusal::Unresolved) => Ok(()),
        Err(Refusal::Address(_, class)) => Err(AppError::Validation(vec![FieldError::new(
            "url",
            format!(
                "the host is or resolves to a {} address; webhooks go to public addresses only \
                 (an operator can allow a network with WEBHOOK_ALLOWED_NETWORKS)",
                class.describe()
            ),
        )])),
        Err(Refusal::Url(why)) => Err(AppError::validation("url", why)),
    }
}

/// The failure class of a transport error for the delivery log: `timeout` or
/// `connection failed` (refused, reset, TLS, ...), never the OS error text, which would
/// make the log a port scanner's oracle.
pub(super) fn failure_class(e: &ureq::Transport) -> &'static str {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) {
                return "timeout";
            }
        }
        source = s.source();
    }
    "connection failed"
}
