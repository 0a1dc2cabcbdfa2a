//! Link notifications (`RTNLGRP_LINK`): links as they appear, change (up,
//! down, a new master) and go, pushed by the kernel instead of polled.

use std::{
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    time::Duration,
};

use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
use nix::{
    errno::Errno,
    poll::{PollFd, PollFlags, PollTimeout, poll},
};

use crate::{LinkState, NetlinkError, Result, link::link_state, socket::Datagram};

/// Receive buffer: one notification datagram holds one link's state.
const RECV_BUFFER: usize = 64 * 1024;

/// What happened to a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// The link appeared or changed (flags, master, name, ...): its state
    /// now.
    Changed(LinkState),
    /// The link is gone: its last state.
    Removed(LinkState),
    /// The kernel dropped notifications (the socket's queue overflowed):
    /// what the subscriber knows may be stale, so it lists the links again.
    Lost,
}

/// A subscription to the link notifications of the network namespace it
/// was opened in.
///
/// Subscribe first, then list what is there ([`crate::RouteSocket::links`]):
/// a change made between the two is then seen at least once.
#[derive(Debug)]
pub struct LinkMonitor {
    socket: Socket,
    buf: Vec<u8>,
}

impl LinkMonitor {
    /// Subscribes in the calling thread's network namespace.
    ///
    /// # Errors
    ///
    /// [`NetlinkError::Socket`] with the socket call's error.
    pub fn open() -> Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.add_membership(libc::RTNLGRP_LINK)?;
        Ok(Self {
            socket,
            buf: Vec::with_capacity(RECV_BUFFER),
        })
    }

    /// Waits up to `timeout` for notifications and returns every one that
    /// has arrived (none when the time ran out, or a signal came).
    ///
    /// # Errors
    ///
    /// The socket's error, or an answer that cannot be decoded.
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<LinkEvent>> {
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(Errno::EINTR) => Ok(Vec::new()),
            Ok(_) => self.drain(),
            Err(errno) => Err(NetlinkError::Socket(errno.into())),
        }
    }

    /// Every notification that has arrived, without waiting: an event loop
    /// calls it when the socket ([`AsFd`]) is readable, and after it the
    /// socket has nothing left to read.
    ///
    /// # Errors
    ///
    /// The socket's error, or an answer that cannot be decoded.
    pub fn drain(&mut self) -> Result<Vec<LinkEvent>> {
        let mut events = Vec::new();
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, libc::MSG_DONTWAIT) {
                Ok(_) => {}
                Err(err) => match err.raw_os_error().map(Errno::from_raw) {
                    Some(Errno::EAGAIN) => return Ok(events),
                    Some(Errno::ENOBUFS) => {
                        events.push(LinkEvent::Lost);
                        continue;
                    }
                    Some(Errno::EINTR) => continue,
                    _ => return Err(err.into()),
                },
            }
            for message in Datagram::new(&self.buf) {
                match message?.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                        events.push(LinkEvent::Changed(link_state(link)));
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                        events.push(LinkEvent::Removed(link_state(link)));
                    }
                    _ => {}
                }
            }
        }
    }
}

impl AsFd for LinkMonitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}
