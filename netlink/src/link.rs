//! Links: look-up, listing, bridge ports, bridges, veth pairs, up, delete.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage},
};
use nix::errno::Errno;

use crate::{Result, RouteSocket};

/// A link as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address.
    pub mac: Option<[u8; 6]>,
    /// Administratively up.
    pub up: bool,
    /// Index of the bridge (or other master) it is enslaved to.
    pub master: Option<u32>,
    /// Link kind (`bridge`, `veth`, ...), where the kernel says.
    pub kind: Option<InfoKind>,
    /// MTU.
    pub mtu: Option<u32>,
}

/// One end of a veth pair to create.
#[derive(Clone, Debug)]
pub struct VethEnd<'a> {
    /// Interface name.
    pub name: &'a str,
    /// Hardware address.
    pub mac: [u8; 6],
    /// Bridge to enslave it to (host end).
    pub master: Option<u32>,
    /// MTU, or the kernel default.
    pub mtu: Option<u32>,
}

impl RouteSocket {
    /// The link called `name`, or `None` when there is none.
    ///
    /// # Errors
    ///
    /// The kernel's answer, other than "no such device".
    pub fn link(&mut self, name: &str) -> Result<Option<LinkState>> {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        match self.request(RouteNetlinkMessage::GetLink(message), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|reply| match reply {
                RouteNetlinkMessage::NewLink(link) => Some(link_state(link)),
                _ => None,
            })),
            Err(e) if e.errno() == Some(Errno::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link of the namespace.
    ///
    /// # Errors
    ///
    /// The kernel's answer.
    pub fn links(&mut self) -> Result<Vec<LinkState>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewLink(link) => Some(link_state(link)),
                _ => None,
            })
            .collect())
    }

    /// The links enslaved to the link `master` (a bridge's ports), as
    /// `ip link show master NAME` lists them.
    ///
    /// # Errors
    ///
    /// The kernel's answer.
    pub fn ports_of(&mut self, master: u32) -> Result<Vec<LinkState>> {
        let mut links = self.links()?;
        links.retain(|link| link.master == Some(master));
        Ok(links)
    }

    /// Creates a bridge, up, with a fixed hardware address (so it does not
    /// change as ports come and go).
    ///
    /// # Errors
    ///
    /// The kernel's answer; `EEXIST` when it exists.
    pub fn create_bridge(&mut self, name: &str, mac: [u8; 6], mtu: Option<u32>) -> Result<()> {
        let mut message = LinkMessage::default();
        up(&mut message);
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        message
            .attributes
            .push(LinkAttribute::Address(mac.to_vec()));
        if let Some(mtu) = mtu {
            message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.ack(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Creates a veth pair: `host` here and up, `peer` (down) straight in
    /// the namespace `peer_netns`, so no other namespace ever holds the
    /// pod's end.
    ///
    /// # Errors
    ///
    /// The kernel's answer; `EEXIST` when either name is taken.
    pub fn create_veth(
        &mut self,
        host: &VethEnd<'_>,
        peer: &VethEnd<'_>,
        peer_netns: BorrowedFd<'_>,
    ) -> Result<()> {
        // The peer cannot be created up: the kernel configures it before
        // pairing it, and a veth without its peer refuses to open.
        let mut peer_message = LinkMessage::default();
        set_end(&mut peer_message, peer);
        peer_message
            .attributes
            .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        let mut message = LinkMessage::default();
        up(&mut message);
        set_end(&mut message, host);
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_message))),
        ]));
        self.ack(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Sets a link up.
    ///
    /// # Errors
    ///
    /// The kernel's answer.
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        up(&mut message);
        self.ack(RouteNetlinkMessage::SetLink(message), 0)
    }

    /// Deletes the link called `name` (a veth takes its peer with it).
    ///
    /// # Errors
    ///
    /// The kernel's answer; `ENODEV` when there is none.
    pub fn delete_link(&mut self, name: &str) -> Result<()> {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        self.ack(RouteNetlinkMessage::DelLink(message), 0)
    }
}

fn up(message: &mut LinkMessage) {
    message.header.flags = LinkFlags::Up;
    message.header.change_mask = LinkFlags::Up;
}

fn set_end(message: &mut LinkMessage, end: &VethEnd<'_>) {
    message
        .attributes
        .push(LinkAttribute::IfName(end.name.to_owned()));
    message
        .attributes
        .push(LinkAttribute::Address(end.mac.to_vec()));
    if let Some(master) = end.master {
        message.attributes.push(LinkAttribute::Controller(master));
    }
    if let Some(mtu) = end.mtu {
        message.attributes.push(LinkAttribute::Mtu(mtu));
    }
}

pub(crate) fn link_state(link: LinkMessage) -> LinkState {
    let mut state = LinkState {
        index: link.header.index,
        name: String::new(),
        mac: None,
        up: link.header.flags.contains(LinkFlags::Up),
        master: None,
        kind: None,
        mtu: None,
    };
    for attribute in link.attributes {
        match attribute {
            LinkAttribute::IfName(name) => state.name = name,
            LinkAttribute::Address(bytes) => state.mac = bytes.try_into().ok(),
            LinkAttribute::Controller(index) => state.master = Some(index),
            LinkAttribute::Mtu(mtu) => state.mtu = Some(mtu),
            LinkAttribute::LinkInfo(infos) => {
                state.kind = infos.into_iter().find_map(|info| match info {
                    LinkInfo::Kind(kind) => Some(kind),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    state
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}
