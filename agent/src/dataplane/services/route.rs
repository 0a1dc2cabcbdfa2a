//! The blackhole route for the service CIDR: a packet to a service address
//! that no program translated (no frontend for that port, a program not yet
//! attached) must die on this node, not wander off through a default route.

use rudder_netlink::{Ipv4Subnet, NextHop, RouteSocket};

use crate::dataplane::DataplaneError;

/// Installs (or keeps) the blackhole route for `cidr` in the current network
/// namespace, as `ip route replace blackhole <cidr>` would. Idempotent.
///
/// # Errors
/// When `cidr` is not a network (`10.96.0.0/12`) or the kernel refuses the
/// route.
pub fn install_service_blackhole(cidr: &str) -> Result<(), DataplaneError> {
    let dst = Ipv4Subnet::parse_network(cidr).map_err(|reason| DataplaneError::ServiceCidr {
        cidr: cidr.to_owned(),
        reason,
    })?;
    RouteSocket::open()
        .and_then(|mut socket| socket.replace_route(dst, NextHop::Blackhole))
        .map_err(|source| DataplaneError::Route {
            cidr: cidr.to_owned(),
            source,
        })
}
