//! When a sign-in deserves a "new sign-in" mail: the account signs in from a device (its
//! `user-agent`) on a network (its address's /24 for IPv4, /48 for IPv6) that none of its
//! earlier sessions — active, expired or revoked — came from. The very first sign-in of an
//! account has nothing to compare with and never alerts (the owner just registered).
//!
//! The network, not the address: a phone moving between addresses of one provider, or a home
//! router renumbered inside its prefix, is the same place; a new browser or a new network is
//! what an account owner wants to hear about.

use super::Session;

/// The network an address belongs to for the alert: the /24 of an IPv4 address (IPv4-mapped
/// IPv6 included), the /48 of an IPv6 one; the text itself when it is not an address.
pub fn network_of(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => network_of(&v4.to_string()),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        },
        Err(_) => ip.to_owned(),
    }
}

/// Whether a sign-in from `user_agent` at `ip` is new for an account whose earlier sessions
/// are `earlier`: `false` when there are none (the first sign-in), or when one of them had the
/// same user agent on the same network.
pub fn is_new_sign_in(earlier: &[Session], user_agent: Option<&str>, ip: Option<&str>) -> bool {
    if earlier.is_empty() {
        return false;
    }
    let network = ip.map(network_of);
    !earlier
        .iter()
        .any(|session| session.user_agent.as_deref() == user_agent && session.ip.as_deref().map(network_of) == network)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::{SessionId, UserId};

    fn session(user_agent: &str, ip: &str) -> Session {
        let now = Utc::now();
        Session {
            id: SessionId::from_uuid(Uuid::now_v7()),
            user_id: UserId::from_uuid(Uuid::now_v7()),
            user_agent: Some(user_agent.to_owned()),
            ip: Some(ip.to_owned()),
            created_at: now,
            last_seen_at: now,
            expires_at: now,
            revoked_at: Some(now),
        }
    }

    #[test]
    fn the_first_sign_in_never_alerts() {
        assert!(!is_new_sign_in(&[], Some("Firefox"), Some("192.0.2.1")));
    }

    #[test]
    fn the_same_device_on_the_same_network_is_known_even_from_a_revoked_session() {
        let earlier = [session("Firefox", "192.0.2.1")];
        assert!(!is_new_sign_in(&earlier, Some("Firefox"), Some("192.0.2.200")), "same /24");
        assert!(!is_new_sign_in(&earlier, Some("Firefox"), Some("::ffff:192.0.2.9")), "IPv4-mapped");
    }

    #[test]
    fn a_new_device_or_a_new_network_alerts() {
        let earlier = [session("Firefox", "192.0.2.1"), session("curl/8", "2001:db8:1:2::1")];
        assert!(is_new_sign_in(&earlier, Some("Chrome"), Some("192.0.2.1")), "new device");
        assert!(is_new_sign_in(&earlier, Some("Firefox"), Some("198.51.100.1")), "new network");
        assert!(!is_new_sign_in(&earlier, Some("curl/8"), Some("2001:db8:1:ffff::9")), "same /48");
        assert!(is_new_sign_in(&earlier, Some("curl/8"), Some("2001:db8:2::1")), "another /48");
        assert!(is_new_sign_in(&earlier, None, None), "nothing known about it");
    }

    #[test]
    fn networks_are_prefixes() {
        assert_eq!(network_of("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(network_of("2001:db8:abcd:12::1"), "2001:db8:abcd::/48");
        assert_eq!(network_of("unknown"), "unknown");
    }
}
