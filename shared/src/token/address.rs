//! Address binding: IPv4/IPv6 addresses and CIDR blocks via `ipnet`.

use std::net::IpAddr;

use ipnet::IpNet;

/// Parses an address or CIDR block; a bare address becomes a host network.
/// Host bits set in a CIDR are cleared (`10.0.0.7/8` means `10.0.0.0/8`).
pub fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(canonical_net(net.trunc()));
    }
    text.parse::<IpAddr>()
        .ok()
        .map(|ip| IpNet::from(canonical_ip(ip)))
}

pub fn parse_ip(text: &str) -> Option<IpAddr> {
    text.trim().parse::<IpAddr>().ok().map(canonical_ip)
}

/// IPv4-mapped IPv6 (`::ffff:203.0.113.9`) is the IPv4 address it maps.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        other => other,
    }
}

pub fn allowed(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical_ip(ip);
    nets.iter().any(|n| n.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_cidrs() {
        let nets: Vec<IpNet> = ["203.0.113.9", "10.0.0.0/8", "2001:db8::/32"]
            .iter()
            .map(|s| parse_net(s).unwrap())
            .collect();
        assert!(allowed(&nets, "203.0.113.9".parse().unwrap()));
        assert!(!allowed(&nets, "203.0.113.10".parse().unwrap()));
        assert!(allowed(&nets, "10.200.1.1".parse().unwrap()));
        assert!(allowed(&nets, "2001:db8:1::5".parse().unwrap()));
        assert!(!allowed(&nets, "2001:db9::1".parse().unwrap()));
        assert!(allowed(&nets, "::ffff:203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn refuses_garbage_and_normalises() {
        for bad in [
            "",
            "300.1.1.1",
            "10.0.0.0/33",
            "abc",
            "1.2.3.4/",
            "::/129",
            "1.2.3",
        ] {
            assert!(parse_net(bad).is_none(), "{bad}");
        }
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            parse_net("::ffff:1.2.3.4").unwrap().to_string(),
            "1.2.3.4/32"
        );
    }
}
