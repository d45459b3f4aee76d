//! Which network peers count as the LAN. Pure address arithmetic, shared by
//! every listener that decides whom to answer (HTTP, RTSP, WebRTC) and by
//! the viewer policy.

use std::net::IpAddr;

/// Private, link-local, unique-local or loopback.
pub fn is_lan(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local() || v4.is_loopback(),
        IpAddr::V6(v6) => {
            let s = v6.segments()[0];
            v6.is_loopback() || (s & 0xffc0) == 0xfe80 || (s & 0xfe00) == 0xfc00
        }
    }
}

/// IPv4-mapped IPv6 addresses as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Whom the daemon's listeners accept connections and packets from
/// (`[security] accept_from`). Outgoing connections (push) are not
/// affected: see docs/security.md, "Inbound and outbound".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AcceptFrom {
    /// [`is_lan`] peers only.
    #[default]
    Lan,
    Any,
}

impl AcceptFrom {
    pub fn accepts(self, ip: IpAddr) -> bool {
        match self {
            AcceptFrom::Lan => is_lan(ip),
            AcceptFrom::Any => true,
        }
    }
}

impl std::str::FromStr for AcceptFrom {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lan" => Ok(AcceptFrom::Lan),
            "any" => Ok(AcceptFrom::Any),
            o => Err(format!("{o:?}: expected \"lan\" or \"any\"")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_is_private_link_local_and_loopback() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.9",
            "192.168.1.20",
            "169.254.3.4",
            "::1",
            "fe80::1",
            "fd12::3",
            "::ffff:192.168.1.2",
        ] {
            assert!(AcceptFrom::Lan.accepts(a.parse().unwrap()), "{a}");
        }
        for a in [
            "203.0.113.7",
            "8.8.8.8",
            "172.32.0.1",
            "100.64.0.1",
            "2001:db8::1",
            "::ffff:203.0.113.7",
        ] {
            assert!(!AcceptFrom::Lan.accepts(a.parse().unwrap()), "{a}");
            assert!(AcceptFrom::Any.accepts(a.parse().unwrap()), "{a}");
        }
        assert_eq!("any".parse(), Ok(AcceptFrom::Any));
        assert!("world".parse::<AcceptFrom>().is_err());
    }
}
