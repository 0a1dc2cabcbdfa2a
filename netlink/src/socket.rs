//! The socket and its request/answer exchange: every request the crate
//! makes goes through [`RouteSocket::request`].

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::errno::Errno;

use crate::{NetlinkError, Result};

/// Receive buffer: large enough for any dump datagram the kernel sends.
const RECV_BUFFER: usize = 64 * 1024;

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
    /// [`NetlinkError::Socket`] with the socket call's error.
    pub fn open() -> Result<Self> {
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
    pub(crate) fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
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
                return Err(NetlinkError::Malformed("truncated"));
            }
            for reply in Datagram::new(&self.buf) {
                let reply = reply?;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(err) => {
                        return match err.code {
                            Some(code) => Err(NetlinkError::Kernel(Errno::from_raw(-code.get()))),
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

    pub(crate) fn ack(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<()> {
        self.request(message, NLM_F_ACK | flags).map(drop)
    }
}

/// The messages of one datagram from the kernel, decoded one at a time.
pub(crate) struct Datagram<'a> {
    bytes: &'a [u8],
    offset: usize,
}

/// Length of a netlink message header: no message is shorter.
const HEADER_LEN: usize = 16;

impl<'a> Datagram<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, offset: 0 }
    }
}

impl Iterator for Datagram<'_> {
    type Item = Result<NetlinkMessage<RouteNetlinkMessage>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.get(self.offset..)?;
        if rest.len() < HEADER_LEN {
            return None;
        }
        let message = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest) {
            Ok(message) => message,
            Err(err) => {
                self.offset = self.bytes.len();
                return Some(Err(NetlinkError::Decode(err)));
            }
        };
        let length = message.header.length as usize;
        if length < HEADER_LEN {
            self.offset = self.bytes.len();
            return Some(Err(NetlinkError::Malformed("with a bad length")));
        }
        // Messages are aligned to 4 bytes.
        self.offset += length.div_ceil(4) * 4;
        Some(Ok(message))
    }
}
