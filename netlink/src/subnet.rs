//! IPv4 subnets as the IPAM config names them (`10.244.1.0/24`).

use std::{fmt, net::Ipv4Addr, str::FromStr};

/// An IPv4 network: its first address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Subnet {
    network: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Subnet {
    /// The subnet containing `addr` with `prefix_len` bits of network.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Option<Self> {
        (prefix_len <= 32).then(|| Self {
            network: Ipv4Addr::from(u32::from(addr) & mask(prefix_len)),
            prefix_len,
        })
    }

    /// Parses `NETWORK/PREFIX` with no host bits set, as `ip route`
    /// insists for a route's destination (`10.96.0.0/12`, not
    /// `10.96.0.1/12`).
    ///
    /// # Errors
    ///
    /// What is wrong with `s`, for a person to read.
    pub fn parse_network(s: &str) -> Result<Self, String> {
        let subnet: Self = s.parse()?;
        let given = s.split_once('/').and_then(|(addr, _)| addr.parse().ok());
        if given != Some(subnet.network) {
            return Err(format!("{s:?} has host bits set: the network is {subnet}"));
        }
        Ok(subnet)
    }

    /// The network address.
    pub fn network(self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix_len(self) -> u8 {
        self.prefix_len
    }

    /// The broadcast (last) address.
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix_len))
    }

    /// Whether `addr` is inside.
    pub fn contains(self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix_len) == u32::from(self.network)
    }

    /// Whether all of `other` is inside.
    pub fn covers(self, other: Self) -> bool {
        other.prefix_len >= self.prefix_len && self.contains(other.network)
    }

    /// Whether the two share any address (one covers the other: subnets
    /// never partly overlap).
    pub fn overlaps(self, other: Self) -> bool {
        self.covers(other) || other.covers(self)
    }
}

fn mask(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

impl FromStr for Ipv4Subnet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not ADDRESS/PREFIX"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
        prefix
            .parse::<u8>()
            .ok()
            .and_then(|prefix| Self::new(addr, prefix))
            .ok_or_else(|| format!("{prefix:?} is not a prefix length 0-32"))
    }
}

impl fmt::Display for Ipv4Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::Ipv4Subnet;

    #[test]
    fn parses_and_canonicalises() {
        let subnet: Ipv4Subnet = "10.244.1.7/24".parse().expect("valid");
        assert_eq!(subnet.to_string(), "10.244.1.0/24");
        assert_eq!(subnet.broadcast(), Ipv4Addr::new(10, 244, 1, 255));
        assert!(subnet.contains(Ipv4Addr::new(10, 244, 1, 200)));
        assert!(!subnet.contains(Ipv4Addr::new(10, 244, 2, 1)));
        let all: Ipv4Subnet = "0.0.0.0/0".parse().expect("valid");
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
        for bad in ["10.0.0.0", "10.0.0.0/33", "fd00::/64", "x/8"] {
            assert!(bad.parse::<Ipv4Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_route_destination_has_no_host_bits() {
        let services = Ipv4Subnet::parse_network("10.96.0.0/12").expect("network");
        assert_eq!(services.to_string(), "10.96.0.0/12");
        let err = Ipv4Subnet::parse_network("10.96.0.1/12").expect_err("host bits");
        assert!(err.contains("10.96.0.0/12"), "{err}");
        assert!(Ipv4Subnet::parse_network("10.96.0.0").is_err());
    }

    #[test]
    fn covering_and_overlapping() {
        let net = |s: &str| Ipv4Subnet::parse_network(s).expect("subnet");
        let cluster = net("10.244.0.0/16");
        assert!(cluster.covers(net("10.244.3.0/24")));
        assert!(cluster.covers(cluster));
        assert!(!cluster.covers(net("10.0.0.0/8")));
        assert!(!cluster.covers(net("10.245.0.0/24")));
        assert!(!cluster.covers(net("0.0.0.0/0")));
        assert!(net("0.0.0.0/0").overlaps(net("10.244.3.0/24")));
        assert!(net("10.244.3.0/24").overlaps(net("10.244.0.0/16")));
        assert!(!net("10.244.3.0/24").overlaps(net("10.244.4.0/24")));
    }
}
