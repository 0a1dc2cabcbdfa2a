//! rudder-netlink: a small synchronous rtnetlink client shared by the CNI
//! plugin and the agent, one socket per network namespace.
//!
//! A netlink socket talks to the namespace its creating thread was in, so
//! [`RouteSocket::open`] on a thread that entered a sandbox configures the
//! sandbox.

mod subnet;

pub use netlink_packet_route::link::InfoKind;
pub use subnet::Ipv4Subnet;

use std::{
    io,
    net::{IpAddr, Ipv4Addr},
    os::fd::{AsRawFd, BorrowedFd},
};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressMessage},
    link::{InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// The main routing table.
const RT_TABLE_MAIN: u8 = 254;
/// Receive buffer: large enough for any dump datagram the kernel sends.
const RECV_BUFFER: usize = 64 * 1024;

/// A link as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// Interface index.
    pub index: u32,
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

/// A NETLINK_ROUTE socket bound to the namespace it was opened in.
#[derive(Debug)]
pub struct RouteSocket {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl RouteSocket {
    /// Opens a socket in the calling thread's network namespace.
    ///
    /// # Errors
    ///
    /// The socket call's error.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Self {
            socket,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUFFER),
        })
    }

    /// Sends one request and returns what the kernel answered, up to its
    /// ACK (or the end of a dump).
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        loop {
            self.buf.clear();
            let len = self.socket.recv(&mut self.buf, 0)?;
            if len > self.buf.len() {
                return Err(io::Error::other("netlink reply truncated"));
            }
            let mut offset = 0;
            while offset + 16 <= self.buf.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let length = reply.header.length as usize;
                if length < 16 {
                    return Err(io::Error::other("netlink reply with a bad length"));
                }
                offset += length.div_ceil(4) * 4;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(err) => {
                        return match err.code {
                            Some(_) => Err(err.to_io()),
                            None => Ok(replies),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(inner) => {
                        replies.push(inner);
                        // A plain GET answers with one message and no ACK.
                        if !dump && flags & NLM_F_ACK == 0 {
                            return Ok(replies);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn ack(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        self.request(message, NLM_F_ACK | flags).map(drop)
    }

    /// The link called `name`, or `None` when there is none.
    ///
    /// # Errors
    ///
    /// The kernel's answer, other than "no such device".
    pub fn link(&mut self, name: &str) -> io::Result<Option<LinkState>> {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        match self.request(RouteNetlinkMessage::GetLink(message), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|reply| match reply {
                RouteNetlinkMessage::NewLink(link) => Some(link_state(link)),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a bridge, up, with a fixed hardware address (so it does not
    /// change as ports come and go).
    ///
    /// # Errors
    ///
    /// The kernel's answer; `EEXIST` when it exists.
    pub fn create_bridge(&mut self, name: &str, mac: [u8; 6], mtu: Option<u32>) -> io::Result<()> {
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
    ) -> io::Result<()> {
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
    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
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
    pub fn delete_link(&mut self, name: &str) -> io::Result<()> {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        self.ack(RouteNetlinkMessage::DelLink(message), 0)
    }

    /// Adds `addr/prefix_len` to a link.
    ///
    /// # Errors
    ///
    /// The kernel's answer; `EEXIST` when the link has it already.
    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
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
    pub fn addresses(&mut self, index: u32) -> io::Result<Vec<(Ipv4Addr, u8)>> {
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

    /// Adds a route to `dst` via `gw` out of link `oif`.
    ///
    /// # Errors
    ///
    /// The kernel's answer; `EEXIST` when it is there already.
    pub fn add_route(&mut self, dst: Ipv4Subnet, gw: Ipv4Addr, oif: u32) -> io::Result<()> {
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
    pub fn routes(&mut self) -> io::Result<Vec<RouteState>> {
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

fn link_state(link: LinkMessage) -> LinkState {
    let mut state = LinkState {
        index: link.header.index,
        mac: None,
        up: link.header.flags.contains(LinkFlags::Up),
        master: None,
        kind: None,
        mtu: None,
    };
    for attribute in link.attributes {
        match attribute {
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
