//! Who is on the other end: the client address a request is accounted to, and whether its
//! connection comes from a proxy we trust.
//!
//! Without `security.trust_proxy` the client is the socket peer, always. With it, and only when
//! the peer is inside `security.trusted_proxies`, `X-Forwarded-For` is read **from the right**:
//! each trusted proxy appends the address it saw, so the rightmost entry that is not a trusted
//! proxy is the first address no proxy of ours vouches for — the client. Everything left of it
//! was written by the client and is ignored (a forged leftmost hop changes nothing). IPv6
//! clients are accounted by /64 ([`account_key`]), since one host commonly owns a whole /64.
//! Pure functions and a small value type: no I/O, no state.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The networks whose forwarding headers are believed (empty: none).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    enabled: bool,
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// `enabled` is `security.trust_proxy`; with it off nothing is trusted.
    pub fn new(enabled: bool, networks: Vec<IpNet>) -> Self {
        Self { enabled, networks }
    }

    /// Is `ip` a proxy whose `X-Forwarded-*` headers we believe?
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.enabled && self.networks.iter().any(|net| net.contains(&ip))
    }
}

/// The client behind a request, as resolved once by the admission middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The address requests are accounted to (rate limit, logs).
    pub ip: IpAddr,
    /// The socket peer is a trusted proxy: its `X-Forwarded-Proto/Host` are believed too.
    pub via_trusted_proxy: bool,
}

impl Client {
    /// Resolve the client of a request that arrived from `peer` with `headers`.
    pub fn resolve(trusted: &TrustedProxies, peer: IpAddr, headers: &HeaderMap) -> Self {
        let peer = canonical(peer);
        if !trusted.trusts(peer) {
            return Self {
                ip: peer,
                via_trusted_proxy: false,
            };
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','));
        Self {
            ip: rightmost_untrusted(trusted, peer, hops),
            via_trusted_proxy: true,
        }
    }
}

/// Walk the hops right to left from the (trusted) peer: the first untrusted address is the
/// client. An entry that is not an address stops the walk at the last good one: what lies left
/// of garbage cannot be vouched for. All trusted: the leftmost (the request began inside).
pub fn rightmost_untrusted<'a>(
    trusted: &TrustedProxies,
    peer: IpAddr,
    hops: impl Iterator<Item = &'a str>,
) -> IpAddr {
    let hops: Vec<&str> = hops.collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let hop = hop.trim();
        if hop.is_empty() {
            continue;
        }
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !trusted.trusts(ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `2001:db8::1`, `1.2.3.4:5678` or `[2001:db8::1]:443`.
pub fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })
        .map(canonical)
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, as dual-stack sockets report IPv4 peers) as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key a client is counted under by the per-IP limits: IPv4 as is, IPv6 by its /64.
pub fn account_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn defaults() -> TrustedProxies {
        let nets = crate::config::Config::default()
            .security
            .trusted_proxy_networks()
            .unwrap();
        TrustedProxies::new(true, nets)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn resolve(trusted: &TrustedProxies, peer: &str, xff: &[&str]) -> Client {
        let mut headers = HeaderMap::new();
        for v in xff {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        Client::resolve(trusted, ip(peer), &headers)
    }

    #[test]
    fn rightmost_untrusted_hop_is_the_client() {
        let t = defaults();
        // client → proxy 10.0.0.5 → proxy 127.0.0.1 (the peer)
        let c = resolve(&t, "127.0.0.1", &["203.0.113.7, 10.0.0.5"]);
        assert_eq!(c.ip, ip("203.0.113.7"));
        assert!(c.via_trusted_proxy);
        // A forged leftmost hop changes nothing.
        let forged = resolve(&t, "127.0.0.1", &["6.6.6.6, 203.0.113.7, 10.0.0.5"]);
        assert_eq!(forged.ip, ip("203.0.113.7"));
        // Several header lines read as one list, in order.
        let lines = resolve(&t, "127.0.0.1", &["1.1.1.1, 203.0.113.7", "10.0.0.5"]);
        assert_eq!(lines.ip, ip("203.0.113.7"));
        // Forged "trusted-looking" hops left of the real client are not walked past it.
        let spoof = resolve(&t, "127.0.0.1", &["10.9.9.9, 198.51.100.1"]);
        assert_eq!(spoof.ip, ip("198.51.100.1"));
    }

    #[test]
    fn untrusted_peer_is_taken_at_its_word() {
        let t = defaults();
        let c = resolve(&t, "198.51.100.20", &["203.0.113.7"]);
        assert_eq!(c.ip, ip("198.51.100.20"));
        assert!(!c.via_trusted_proxy);
        // trust_proxy off: even loopback's headers are ignored.
        let off = TrustedProxies::new(false, vec!["127.0.0.0/8".parse().unwrap()]);
        let c = resolve(&off, "127.0.0.1", &["203.0.113.7"]);
        assert_eq!(c.ip, ip("127.0.0.1"));
        assert!(!c.via_trusted_proxy);
    }

    #[test]
    fn odd_entries() {
        let t = defaults();
        // No header: the proxy itself.
        assert_eq!(resolve(&t, "127.0.0.1", &[]).ip, ip("127.0.0.1"));
        // Every hop trusted: the leftmost.
        assert_eq!(
            resolve(&t, "127.0.0.1", &["192.168.1.9, 10.0.0.5"]).ip,
            ip("192.168.1.9")
        );
        // Garbage stops the walk at the last address vouched for.
        assert_eq!(
            resolve(&t, "127.0.0.1", &["203.0.113.7, unknown, 10.0.0.5"]).ip,
            ip("10.0.0.5")
        );
        // Ports, brackets, IPv6, empty entries, v4-mapped peers.
        assert_eq!(
            resolve(&t, "::ffff:127.0.0.1", &["203.0.113.7:4711, ,"]).ip,
            ip("203.0.113.7")
        );
        assert_eq!(
            resolve(&t, "::1", &["[2001:db8::1]:443"]).ip,
            ip("2001:db8::1")
        );
        assert_eq!(parse_hop("2001:db8::2"), Some(ip("2001:db8::2")));
        assert_eq!(parse_hop("[2001:db8::3]"), Some(ip("2001:db8::3")));
        assert_eq!(parse_hop("nonsense"), None);
        assert_eq!(parse_hop(""), None);
    }

    #[test]
    fn accounting_keys() {
        assert_eq!(account_key(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(account_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(
            account_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            account_key(ip("2001:db8:1:2::1")),
            account_key(ip("2001:db8:1:2::2"))
        );
        assert_ne!(
            account_key(ip("2001:db8:1:2::1")),
            account_key(ip("2001:db8:1:3::1"))
        );
    }
}
