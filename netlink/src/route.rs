//! IPv4 routes of the main table.

use std::net::Ipv4Addr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
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
}

impl RouteSocket {
    /// Adds a route to `dst` via `gw` out of link `oif`.
    ///
    /// # Errors
    ///
    /// The kernel's answer; `EEXIST` when it is there already.
    pub fn add_route(&mut self, dst: Ipv4Subnet, gw: Ipv4Addr, oif: u32) -> Result<()> {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.destination_prefix_length = dst.prefix_len();
        message.header.table = RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::Boot;
        message.header.scope = RouteScope::Universe;
        message.header.kind = RouteType::Unicast;
        if dst.prefix_len() > 0 {
            message
                .attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(
                    dst.network(),
                )));
        }
        message
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
        message.attributes.push(RouteAttribute::Oif(oif));
        self.ack(
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
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
                    })
                }
                _ => None,
            })
            .collect())
    }
}
