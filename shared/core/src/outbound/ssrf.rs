//! The SSRF rule for outbound webhook URLs: the core decides, the adapters resolve.
//!
//! A URL must be `https`, and every address its host resolves to must be a public unicast
//! address: not private, loopback, link-local, unique-local, shared (CGNAT), multicast,
//! broadcast, unspecified, documentation or reserved, nor the IPv4-mapped / IPv4-compatible /
//! NAT64 forms of those. The check runs when an endpoint is created (and its URL changed) and
//! again at every delivery against the addresses the connection will use, so a name that
//! resolves elsewhere later (DNS rebinding) is refused then.
//!
//! The local program has a test setting ([`UrlPolicy::allow_insecure_loopback`], off by
//! default) that allows `http` and loopback addresses, and nothing else, so tests can use a
//! receiver on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the rule allows besides public https.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Allow `http://` and loopback addresses (127.0.0.0/8, ::1). Local test setting only.
    pub allow_insecure_loopback: bool,
}

/// Why a URL or an address is refused (said to the person who entered the URL).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("the URL is not a valid absolute URL")]
    Invalid,
    #[error("the URL must use https")]
    NotHttps,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("the URL has no host")]
    NoHost,
    #[error("the host resolves to {0}, which is not a public address")]
    NotPublic(IpAddr),
    #[error("the host does not resolve to any address")]
    NoAddress,
}

/// The parts of an accepted URL the adapter needs to resolve it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The host as written (a name, or an address without brackets).
    pub host: String,
    pub port: u16,
    /// The host is an address literal: nothing to resolve.
    pub literal: Option<IpAddr>,
}

/// Check the form of `url` (scheme, credentials, host). The addresses are checked with
/// [`check_addresses`] once resolved.
pub fn check_url(url: &str, policy: UrlPolicy) -> Result<Target, UrlRefused> {
    let (scheme, rest) = url.split_once("://").ok_or(UrlRefused::Invalid)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" if policy.allow_insecure_loopback => 80,
        "http" => return Err(UrlRefused::NotHttps),
        _ => return Err(UrlRefused::NotHttps),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(UrlRefused::Credentials);
    }
    if authority.is_empty() {
        return Err(UrlRefused::NoHost);
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(UrlRefused::Invalid)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| UrlRefused::Invalid)?,
            None if after.is_empty() => default_port,
            None => return Err(UrlRefused::Invalid),
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| UrlRefused::Invalid)?),
            None => (authority.to_owned(), default_port),
        }
    };
    if host.is_empty() {
        return Err(UrlRefused::NoHost);
    }
    let host = host.to_ascii_lowercase();
    let literal = parse_literal(&host);
    let target = Target {
        host,
        port,
        literal,
    };
    if let Some(ip) = literal {
        check_addresses(&[ip], policy)?;
    }
    if scheme == "http" && literal.is_none_or(|ip| !is_loopback(ip)) {
        // The test setting allows plain http only to a loopback address literal.
        return Err(UrlRefused::NotHttps);
    }
    Ok(target)
}

/// Address literals, including the shorthand forms a resolver would accept for IPv4
/// (`2130706433`, `0x7f.1`, `127.1`): they are read as addresses, never as names.
fn parse_literal(host: &str) -> Option<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let nums: Option<Vec<u64>> = parts
        .iter()
        .map(|p| {
            if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
                u64::from_str_radix(h, 16).ok()
            } else if p.len() > 1 && p.starts_with('0') {
                u64::from_str_radix(&p[1..], 8).ok()
            } else {
                p.parse().ok()
            }
        })
        .collect();
    let nums = nums?;
    let (last, head) = nums.split_last()?;
    if head.iter().any(|n| *n > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - head.len() as u32);
    if *last >= 1u64 << rest_bits {
        return None;
    }
    let mut v: u64 = 0;
    for (i, n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i as u32);
    }
    v |= last;
    Some(IpAddr::V4(Ipv4Addr::from(v as u32)))
}

/// Every address must be allowed; the first refused one is named.
pub fn check_addresses(addrs: &[IpAddr], policy: UrlPolicy) -> Result<(), UrlRefused> {
    if addrs.is_empty() {
        return Err(UrlRefused::NoAddress);
    }
    for ip in addrs {
        let allowed = is_public(*ip) || (policy.allow_insecure_loopback && is_loopback(*ip));
        if !allowed {
            return Err(UrlRefused::NotPublic(*ip));
        }
    }
    Ok(())
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v| v.is_loopback()),
    }
}

/// A public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || a == 0
        // Shared address space (CGNAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let seg = ip.segments();
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96) embed an IPv4 address.
    if seg[..6] == [0, 0, 0, 0, 0, 0] && !(ip.is_loopback() || ip.is_unspecified()) {
        return is_public_v4(Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        ));
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        ));
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        // Site-local (deprecated), fec0::/10.
        || (seg[0] & 0xffc0) == 0xfec0
        // Documentation, 2001:db8::/32.
        || (seg[0] == 0x2001 && seg[1] == 0x0db8))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlPolicy = UrlPolicy {
        allow_insecure_loopback: false,
    };
    const TESTING: UrlPolicy = UrlPolicy {
        allow_insecure_loopback: true,
    };

    #[test]
    fn private_loopback_and_link_local_literals_are_refused() {
        for url in [
            "https://127.0.0.1/hook",
            "https://10.1.2.3/hook",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[ff02::1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://127.1:8443/",
            "https://224.0.0.1/",
        ] {
            assert!(
                matches!(check_url(url, STRICT), Err(UrlRefused::NotPublic(_))),
                "{url}: {:?}",
                check_url(url, STRICT)
            );
        }
    }

    #[test]
    fn only_https_is_accepted_and_names_are_left_to_the_resolver() {
        assert_eq!(
            check_url("http://example.com/hook", STRICT),
            Err(UrlRefused::NotHttps)
        );
        assert_eq!(
            check_url("ftp://example.com/", STRICT),
            Err(UrlRefused::NotHttps)
        );
        assert_eq!(
            check_url("https://user:pw@example.com/", STRICT),
            Err(UrlRefused::Credentials)
        );
        let t = check_url("https://Hooks.Example.com:8443/x?y=1", STRICT).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.literal),
            ("hooks.example.com", 8443, None)
        );
        let t = check_url("https://93.184.216.34/x", STRICT).unwrap();
        assert_eq!(t.port, 443);
    }

    #[test]
    fn every_resolved_address_must_be_public() {
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let private: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(check_addresses(&[public], STRICT), Ok(()));
        assert_eq!(
            check_addresses(&[public, private], STRICT),
            Err(UrlRefused::NotPublic(private))
        );
        assert_eq!(check_addresses(&[], STRICT), Err(UrlRefused::NoAddress));
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(check_addresses(&[loopback], STRICT).is_err());
        assert_eq!(check_addresses(&[loopback], TESTING), Ok(()));
        assert_eq!(
            check_addresses(&[private], TESTING),
            Err(UrlRefused::NotPublic(private))
        );
    }

    #[test]
    fn the_test_setting_allows_http_to_loopback_only() {
        assert!(check_url("http://127.0.0.1:9000/hook", TESTING).is_ok());
        assert!(check_url("http://[::1]:9000/hook", TESTING).is_ok());
        assert_eq!(
            check_url("http://example.com/hook", TESTING),
            Err(UrlRefused::NotHttps)
        );
        assert!(matches!(
            check_url("http://10.0.0.1/hook", TESTING),
            Err(UrlRefused::NotPublic(_))
        ));
        assert!(check_url("http://127.0.0.1:9000/hook", STRICT).is_err());
    }
}
