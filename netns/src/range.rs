//! The address range test hosts live in, and the check that it is not the
//! machine's own.
//!
//! Test hosts are addressed from 198.18.0.0/15 (RFC 2544: reserved for
//! network benchmarking, never routed on the internet). On these machines
//! the uplink is 192.0.2.0/24, which is why test hosts left it. Before a
//! test network is built, the root namespace's addresses and routes are
//! read: if any of them overlaps the range, a command run without `ip netns
//! exec` could reach the real network, so the run refuses to start.

use std::net::Ipv4Addr;

use crate::{NetnsError, Result, network::ip};

/// The reserved range every test network takes its addresses from.
pub const TEST_RANGE: Ipv4Net = Ipv4Net {
    addr: Ipv4Addr::new(198, 18, 0, 0),
    prefix_len: 15,
};

/// The underlay subnet of test hosts (198.18.0.N/24), inside [`TEST_RANGE`].
pub const UNDERLAY: Ipv4Net = Ipv4Net {
    addr: Ipv4Addr::new(198, 18, 0, 0),
    prefix_len: 24,
};

/// An IPv4 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    /// The first address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0-32.
    pub prefix_len: u8,
}

impl Ipv4Net {
    /// Parses `a.b.c.d/len` or a bare address (a /32).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, len) = text.split_once('/').unwrap_or((text, "32"));
        let prefix_len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
        Some(Self {
            addr: addr.parse().ok()?,
            prefix_len,
        })
    }

    /// The `index`-th address of the prefix (`UNDERLAY.host(3)` = 198.18.0.3).
    #[must_use]
    pub fn host(&self, index: u8) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + u32::from(index))
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0)
    }

    /// Whether the two prefixes share any address.
    #[must_use]
    pub fn overlaps(&self, other: &Self) -> bool {
        let mask = self.mask() & other.mask();
        u32::from(self.addr) & mask == u32::from(other.addr) & mask
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Fails if any address or route of the current (root) namespace overlaps
/// [`TEST_RANGE`]. The default route is not counted: it covers every
/// address, and no test host is ever given one.
///
/// # Errors
/// [`NetnsError::RangeTaken`] naming what overlaps; `ip` failures.
pub fn check_root_namespace_clear() -> Result<()> {
    let taken = overlapping(
        &ip(&["-4", "-o", "addr", "show"])?,
        &ip(&["-4", "route", "show", "table", "all"])?,
    );
    match taken.first() {
        None => Ok(()),
        Some(what) => Err(NetnsError::RangeTaken {
            range: TEST_RANGE.to_string(),
            what: what.clone(),
        }),
    }
}

/// What in `ip -o addr` and `ip route` output overlaps [`TEST_RANGE`].
fn overlapping(addresses: &str, routes: &str) -> Vec<String> {
    let mut taken = Vec::new();
    for line in addresses.lines() {
        // "2: eth0    inet 192.0.2.2/24 brd ... scope global eth0"
        let mut words = line.split_whitespace();
        if words.any(|w| w == "inet")
            && let Some(net) = words.next().and_then(Ipv4Net::parse)
            && net.overlaps(&TEST_RANGE)
        {
            taken.push(format!("address {net} ({})", line.trim()));
        }
    }
    for line in routes.lines() {
        // "[type] <dst> ...": local/broadcast routes name their type first.
        let mut words = line.split_whitespace();
        let Some(mut first) = words.next() else {
            continue;
        };
        if matches!(
            first,
            "local"
                | "broadcast"
                | "unicast"
                | "blackhole"
                | "unreachable"
                | "prohibit"
                | "multicast"
                | "anycast"
        ) {
            first = words.next().unwrap_or("");
        }
        if first == "default" {
            continue;
        }
        if let Some(net) = Ipv4Net::parse(first)
            && net.overlaps(&TEST_RANGE)
        {
            taken.push(format!("route {}", line.trim()));
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_overlap_when_they_share_an_address() {
        let net = |t| Ipv4Net::parse(t).expect("prefix");
        assert!(net("198.18.0.0/15").overlaps(&net("198.19.255.1")));
        assert!(net("198.18.5.0/24").overlaps(&TEST_RANGE));
        assert!(net("0.0.0.0/0").overlaps(&TEST_RANGE));
        assert!(!net("192.0.2.0/24").overlaps(&TEST_RANGE));
        assert!(!net("198.20.0.0/16").overlaps(&TEST_RANGE));
        assert_eq!(UNDERLAY.host(3), Ipv4Addr::new(198, 18, 0, 3));
        assert_eq!(Ipv4Net::parse("1.2.3.4/33"), None);
    }

    #[test]
    fn the_machines_uplink_is_not_in_the_way_but_a_route_into_the_range_is() {
        let addresses = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                         4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\n";
        let routes = "default via 192.0.2.1 dev eth0\n\
                      192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n\
                      local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1\n";
        assert!(overlapping(addresses, routes).is_empty());
        let routes = format!("{routes}198.18.0.0/24 via 192.0.2.9 dev eth0\n");
        assert_eq!(overlapping(addresses, &routes).len(), 1);
        let addresses = format!("{addresses}5: veth0    inet 198.19.0.1/30 scope global veth0\n");
        assert_eq!(overlapping(&addresses, "").len(), 1);
    }
}
