//! The client's address: the TCP peer, or — when the peer is a trusted proxy — the right-most
//! `x-forwarded-for` entry that is not itself a trusted proxy. Trusting the header from anyone
//! would let a client forge its address and dodge per-address limits.

use std::net::IpAddr;

use actix_web::HttpRequest;

/// One trusted proxy address or network (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `address[/prefix]`.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (address, prefix) = match raw.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (raw, None),
        };
        let address: IpAddr = address.parse().map_err(|_| format!("`{raw}` is not an IP address or CIDR network"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{raw}` has an invalid prefix length"))?,
        };
        Ok(Self { address, prefix })
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose `x-forwarded-for` is believed, as app data.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<Network>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client address of `req`.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|part| part.trim().parse().ok())
            .collect();
        Some(forwarded.into_iter().rev().find(|ip| !self.trusts(*ip)).unwrap_or(peer))
    }
}

/// Where the request comes from, for the session record and the per-address lockout: the peer,
/// or the forwarded client when the peer is a trusted proxy (`TENANTRY_TRUSTED_PROXIES`).
pub fn client_info(req: &HttpRequest) -> tenantry_application::ClientInfo {
    let proxies = req.app_data::<TrustedProxies>().cloned().unwrap_or_default();
    tenantry_application::ClientInfo {
        user_agent: req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
        ip: proxies.client_ip(req).map(|ip| ip.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn networks_match_by_prefix() {
        let net = Network::parse("10.1.0.0/16").expect("valid");
        assert!(net.contains("10.1.200.3".parse().expect("ip")));
        assert!(!net.contains("10.2.0.1".parse().expect("ip")));
        let v6 = Network::parse("2001:db8::/32").expect("valid");
        assert!(v6.contains("2001:db8:1::7".parse().expect("ip")));
        assert!(!v6.contains("10.1.0.1".parse().expect("ip")));
        assert!(Network::parse("192.0.2.1").expect("valid").contains("192.0.2.1".parse().expect("ip")));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("proxy.internal").is_err());
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_peer() {
        let trusted = TrustedProxies(vec![
            Network::parse("127.0.0.0/8").expect("valid"),
            Network::parse("10.0.0.0/8").expect("valid"),
        ]);
        let via_proxy = TestRequest::default()
            .peer_addr("127.0.0.1:9000".parse().expect("addr"))
            .insert_header(("x-forwarded-for", "198.51.100.7, 203.0.113.9, 10.0.0.5"))
            .to_http_request();
        assert_eq!(trusted.client_ip(&via_proxy), Some("203.0.113.9".parse().expect("ip")), "right-most untrusted hop");
        let direct = TestRequest::default()
            .peer_addr("203.0.113.50:9000".parse().expect("addr"))
            .insert_header(("x-forwarded-for", "1.2.3.4"))
            .to_http_request();
        assert_eq!(trusted.client_ip(&direct), Some("203.0.113.50".parse().expect("ip")), "a client cannot forge it");
        assert_eq!(TrustedProxies::default().client_ip(&via_proxy), Some("127.0.0.1".parse().expect("ip")));
    }
}
