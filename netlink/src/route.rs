//! IPv4 routes of the main table: the plugin's routes in a sandbox, the
//! agent's routes to other nodes' pods and its service blackhole.

use std::net::Ipv4Addr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType},
};

use crate::{Ipv4Subnet, Result, RouteSocket};

/// The main routing table.
const RT_TABLE_MAIN: u8 = 254;

/// An IPv4 route of the main table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteState {
    /// Destination.
    pub dst: Ipv4Subnet,
    /// Next hop, if any.
    pub gw: Option<Ipv4Addr>,
    /// Output interface.
    pub oif: Option<u32>,
    /// What the route does: forward (`Unicast`), drop (`BlackHole`), ...
    pub kind: RouteType,
}

/// Where a route sends the packets it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// A gateway on a directly connected network (`via GW`); the kernel
    /// picks the link that reaches it.
    Gateway(Ipv4Addr),
    /// Nowhere: the packets are dropped (`blackhole`).
    Blackhole,
}

impl NextHop {
    fn kind(self) -> RouteType {
        match self {
            Self::Gateway(_) => RouteType::Unicast,
            Self::Blackhole => RouteType::BlackHole,
        }
    }

    fn push_to(self, message: &mut RouteMessage) {
        match self {
            Self::Gateway(gw) => message
                .attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(gw))),
            Self::Blackhole => {}
        }
    }
}

/// A request about the route to `dst` in the main table, as `ip route`
/// makes it when adding: protocol boot, global scope.
fn route_message(dst: Ipv4Subnet, kind: RouteType) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = AddressFamily::Inet;
    message.header.destination_prefix_length = dst.prefix_len();
    message.header.table = RT_TABLE_MAIN;
    message.header.protocol = RouteProtocol::Boot;
    message.header.scope = RouteScope::Universe;
    message.header.kind = kind;
    if dst.prefix_len() > 0 {
        message
            .attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                dst.network(),
            )));
    }
    message
}

impl RouteSocket {
    /// Adds a route to `dst` via `gw` out of link `oif`.
    ///
    /// # Errors
    ///
    /// The kernel's answer; `EEXIST` when it is there already.
    pub fn add_route(&mut self, dst: Ipv4Subnet, gw: Ipv4Addr, oif: u32) -> Result<()> {
        let mut message = route_message(dst, RouteType::Unicast);
        NextHop::Gateway(gw).push_to(&mut message);
        message.attributes.push(RouteAttribute::Oif(oif));
        self.ack(
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Installs the route to `dst` through `next_hop`, replacing the main
    /// table's route to the same destination if there is one (`ip route
    /// replace`): idempotent.
    ///
    /// # Errors
    ///
    /// The kernel's answer, e.g. `ENETUNREACH` when no link reaches the
    /// gateway.
    pub fn replace_route(&mut self, dst: Ipv4Subnet, next_hop: NextHop) -> Result<()> {
        let mut message = route_message(dst, next_hop.kind());
        next_hop.push_to(&mut message);
        self.ack(
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// Deletes the main table's route to `dst` through `next_hop`, whatever
    /// its protocol and scope (`ip route del`).
    ///
    /// # Errors
    ///
    /// The kernel's answer; `ESRCH` when there is no such route.
    pub fn delete_route(&mut self, dst: Ipv4Subnet, next_hop: NextHop) -> Result<()> {
        let mut message = route_message(dst, next_hop.kind());
        // Unset protocol and scope "nowhere" match any, as `ip route del`
        // asks.
        message.header.protocol = RouteProtocol::Unspec;
        message.header.scope = RouteScope::NoWhere;
        next_hop.push_to(&mut message);
        self.ack(RouteNetlinkMessage::DelRoute(message), 0)
    }

    /// The IPv4 routes of the main table.
    ///
    /// # Errors
    ///
    /// The kernel's answer.
    pub fn routes(&mut self) -> Result<Vec<RouteState>> {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        let replies = self.request(RouteNetlinkMessage::GetRoute(message), NLM_F_DUMP)?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewRoute(route) if route.header.table == RT_TABLE_MAIN => {
                    let mut dst = Ipv4Addr::UNSPECIFIED;
                    let mut gw = None;
                    let mut oif = None;
                    for attribute in &route.attributes {
                        match attribute {
                            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
                            RouteAttribute::Gateway(RouteAddress::Inet(a)) => gw = Some(*a),
                            RouteAttribute::Oif(index) => oif = Some(*index),
                            _ => {}
                        }
                    }
                    Some(RouteState {
                        dst: Ipv4Subnet::new(dst, route.header.destination_prefix_length)?,
                        gw,
                        oif,
                        kind: route.header.kind,
                    })
                }
                _ => None,
            })
            .collect())
    }
}
