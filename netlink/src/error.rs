//! The crate's errors: what the kernel refused, and what went wrong on the
//! way to it.

use std::io;

use nix::errno::Errno;

/// A netlink request that failed.
///
/// The kernel's refusals carry their errno, so callers decide by matching
/// it (`EEXIST` when a link, address or route is there already, `ENODEV`
/// for a missing link, `ESRCH` for a missing route), never by text.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel answered the request with this error.
    #[error("{}", io::Error::from(*.0))]
    Kernel(Errno),
    /// Opening, sending on or receiving from the socket failed.
    #[error(transparent)]
    Socket(#[from] io::Error),
    /// The kernel's answer could not be decoded.
    #[error("cannot decode the kernel's answer: {0}")]
    Decode(#[source] netlink_packet_core::DecodeError),
    /// The kernel's answer did not fit the netlink framing.
    #[error("netlink reply {0}")]
    Malformed(&'static str),
}

impl NetlinkError {
    /// The errno behind the failure: the kernel's answer, or the socket
    /// call's error. `None` for answers that could not be read.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Kernel(errno) => Some(*errno),
            Self::Socket(err) => err.raw_os_error().map(Errno::from_raw),
            Self::Decode(_) | Self::Malformed(_) => None,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = NetlinkError> = std::result::Result<T, E>;
