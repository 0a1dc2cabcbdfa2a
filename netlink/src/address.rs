//! IPv4 addresses of links.

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressMessage},
};

use crate::{Ipv4Subnet, Result, RouteSocket};

impl RouteSocket {
    /// Adds `addr/prefix_len` to a link.
    ///
    /// # Errors
    ///
    /// The kernel's answer; `EEXIST` when the link has it already.
    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix_len: u8) -> Result<()> {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = prefix_len;
        message.header.index = index;
        message
            .attributes
            .push(AddressAttribute::Local(IpAddr::V4(addr)));
        message
            .attributes
            .push(AddressAttribute::Address(IpAddr::V4(addr)));
        let broadcast = Ipv4Subnet::new(addr, prefix_len).map(Ipv4Subnet::broadcast);
        if let Some(broadcast) = broadcast.filter(|_| prefix_len < 31) {
            message
                .attributes
                .push(AddressAttribute::Broadcast(broadcast));
        }
        self.ack(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// The IPv4 addresses of a link.
    ///
    /// # Errors
    ///
    /// The kernel's answer.
    pub fn addresses(&mut self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>> {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        let replies = self.request(RouteNetlinkMessage::GetAddress(message), NLM_F_DUMP)?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewAddress(address) if address.header.index == index => {
                    address
                        .attributes
                        .iter()
                        .find_map(|attribute| match attribute {
                            AddressAttribute::Local(IpAddr::V4(ip)) => {
                                Some((*ip, address.header.prefix_len))
                            }
                            _ => None,
                        })
                }
                _ => None,
            })
            .collect())
    }
}
