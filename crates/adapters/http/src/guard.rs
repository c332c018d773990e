//! The SSRF guard: which IP addresses a webhook may be delivered to.
//!
//! Tenants choose webhook URLs, so without this guard they could make the server POST to its
//! own loopback services, the cloud metadata endpoint (169.254.169.254) or anything else on the
//! private network. The guard is applied to the address actually connected to: literal IP hosts
//! before sending, host names inside the resolver handed to reqwest (so a name cannot resolve to
//! a public address when checked and a private one when connected: no DNS-rebinding gap).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` must not be connected to, or `None` when it is an ordinary public address.
///
/// IPv6 addresses embedding an IPv4 one (IPv4-mapped `::ffff:a.b.c.d`, the deprecated
/// IPv4-compatible `::a.b.c.d`, and NAT64 `64:ff9b::a.b.c.d`) are judged as the IPv4 address
/// inside, since that is where the packets end up.
pub(crate) fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if a == 0 {
        // 0.0.0.0 connects to the local host on Linux; the rest of 0/8 is "this network".
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (b & 0b1100_0000) == 64 {
        Some("carrier-grade NAT")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a >= 240 {
        Some("reserved")
    } else if ip.is_documentation() || (a == 198 && (b & 0b1111_1110) == 18) {
        Some("documentation or benchmarking")
    } else if a == 192 && b == 0 && c == 0 {
        Some("reserved")
    } else {
        None
    }
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refusal_v4(v4);
    }
    let [s0, s1, s2, s3, s4, s5, ..] = segments;
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::a.b.c.d).
    let compatible = [s0, s1, s2, s3, s4, s5] == [0; 6];
    let nat64 = [s0, s1, s2, s3, s4, s5] == [0x64, 0xff9b, 0, 0, 0, 0];
    // Local-use NAT64 (64:ff9b:1::/48), 6to4 (2002::/16) and Teredo (2001::/32) carry or reach
    // IPv4 addresses the guard cannot judge from here: refused outright.
    if [s0, s1, s2] == [0x64, 0xff9b, 1] || s0 == 0x2002 || [s0, s1] == [0x2001, 0] {
        return Some("IPv4-translating");
    }
    if compatible || nat64 {
        let octets = ip.octets();
        return refusal_v4(Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]));
    }
    if ip.is_multicast() {
        Some("multicast")
    } else if (s0 & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if (s0 & 0xffc0) == 0xfec0 {
        Some("site-local")
    } else if (s0 & 0xfe00) == 0xfc00 {
        Some("unique-local")
    } else if s0 == 0x2001 && s1 == 0x0db8 {
        Some("documentation")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(s: &str) -> Option<&'static str> {
        refusal(s.parse().expect("an IP address"))
    }

    #[test]
    fn refuses_non_public_ipv4() {
        for (ip, why) in [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.254", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.254", "carrier-grade NAT"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.1", "documentation or benchmarking"),
            ("198.18.0.1", "documentation or benchmarking"),
            ("192.0.0.8", "reserved"),
        ] {
            assert_eq!(judge(ip), Some(why), "{ip}");
        }
    }

    #[test]
    fn allows_public_ipv4() {
        for ip in
            ["8.8.8.8", "1.1.1.1", "172.32.0.1", "172.15.255.255", "100.128.0.1", "100.63.255.255", "93.184.216.34"]
        {
            assert_eq!(judge(ip), None, "{ip}");
        }
    }

    #[test]
    fn refuses_non_public_ipv6() {
        for (ip, why) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.1.2.3", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a00:1", "private"),
            ("64:ff9b:1::a00:1", "IPv4-translating"),
            ("2002:7f00:1::1", "IPv4-translating"),
            ("2001:0:4136:e378::1", "IPv4-translating"),
        ] {
            assert_eq!(judge(ip), Some(why), "{ip}");
        }
    }

    #[test]
    fn allows_public_ipv6() {
        for ip in ["2606:4700:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            assert_eq!(judge(ip), None, "{ip}");
        }
    }
}
