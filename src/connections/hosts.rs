//! Host rules: a profile may not point Warden at its own network. The host is resolved once, every address it
//! resolves to is checked (loopback, private, link-local, CGNAT, unique-local, multicast, broadcast,
//! unspecified and the IPv6 forms that embed such an IPv4 address are internal), and the connection is then
//! made to the checked address itself, so a second DNS answer cannot rebind it to an internal one.
//! `CONNECTION_ALLOWED_HOSTS` lets named hosts (as the user wrote them) or addresses and networks (as resolved)
//! through.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use super::ConnectionError;
use crate::config::AllowedHost;

/// The host as given, checked for shape: a name or an IP literal (IPv6 with or without brackets).
pub fn parse_host(host: &str) -> Result<String, ConnectionError> {
    let host = host.trim();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let valid = !bare.is_empty()
        && bare.len() <= 253
        && (bare.parse::<IpAddr>().is_ok()
            || bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'));
    if !valid {
        return Err(ConnectionError::Invalid(
            "host must be a host name or an IP address".into(),
        ));
    }
    Ok(bare.to_string())
}

/// Whether an address is one of the server's own networks' (or otherwise not a public unicast address).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_internal_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || (first & 0xfe00) == 0xfc00 // unique-local fc00::/7
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0 // "this network"
        || (a == 100 && (b & 0xc0) == 64) // CGNAT 100.64.0.0/10
        || a >= 240 // reserved
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64
/// (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::`) address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] && !(v6.is_loopback() || v6.is_unspecified()) {
        return Some(low());
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low());
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// Resolves `host` (within `timeout`) and checks every address; answers the one address to connect to.
pub async fn resolve(
    host: &str,
    port: u16,
    allowed: &[AllowedHost],
    timeout: Duration,
) -> Result<SocketAddr, ConnectionError> {
    let host = parse_host(host)?;
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    let allowed_by_name = allowed
        .iter()
        .any(|a| matches!(a, AllowedHost::Name(n) if *n == name));
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port)))
            .await
            .map_err(|_| ConnectionError::Timeout)?
            .map_err(|_| {
                ConnectionError::Unreachable(format!("host {host} could not be resolved"))
            })?
            .collect(),
    };
    let first = *addrs.first().ok_or_else(|| {
        ConnectionError::Unreachable(format!("host {host} could not be resolved"))
    })?;
    if !allowed_by_name {
        let allowed_by_address = |ip: IpAddr| {
            allowed
                .iter()
                .any(|a| matches!(a, AllowedHost::Net(net) if net.contains(ip)))
        };
        if addrs
            .iter()
            .any(|a| is_internal(a.ip()) && !allowed_by_address(a.ip()))
        {
            return Err(ConnectionError::HostNotAllowed(host));
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IpNet;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_recognised_in_every_form() {
        for internal in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
        ] {
            assert!(is_internal(ip(internal)), "{internal}");
        }
        for public in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "93.184.216.34",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(ip(public)), "{public}");
        }
    }

    #[tokio::test]
    async fn internal_hosts_are_refused_unless_allowed_by_address_or_name() {
        let t = Duration::from_secs(5);
        for host in [
            "127.0.0.1",
            "10.1.2.3",
            "::ffff:127.0.0.1",
            "[::1]",
            "localhost",
        ] {
            assert!(
                matches!(
                    resolve(host, 5432, &[], t).await,
                    Err(ConnectionError::HostNotAllowed(_))
                ),
                "{host}"
            );
        }
        let loopback = [AllowedHost::Net(IpNet::parse("127.0.0.1").unwrap())];
        assert_eq!(
            resolve("127.0.0.1", 5432, &loopback, t).await.unwrap(),
            "127.0.0.1:5432".parse().unwrap()
        );
        assert!(
            resolve("::ffff:127.0.0.1", 5432, &loopback, t)
                .await
                .is_ok()
        );
        assert!(resolve("10.1.2.3", 5432, &loopback, t).await.is_err());
        let by_name = [AllowedHost::Name("localhost".into())];
        let pinned = resolve("LOCALHOST", 5432, &by_name, t).await.unwrap();
        assert!(pinned.ip().is_loopback());
        assert!(matches!(
            resolve("bad host/x", 1, &[], t).await,
            Err(ConnectionError::Invalid(_))
        ));
    }
}
