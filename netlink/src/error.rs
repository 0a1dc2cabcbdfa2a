//! The crate's errors: what the kernel refused, what went wrong on the way
//! to it, and what a network namespace operation ran into.

use std::{io, path::PathBuf};

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

/// A network namespace that could not be opened, made, entered or removed.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// The name cannot name a file under `/run/netns`.
    #[error("{name:?} is not a valid network namespace name: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A namespace of that name exists already.
    #[error("network namespace {} exists already", path.display())]
    Exists {
        /// Its file.
        path: PathBuf,
    },
    /// The namespace file cannot be opened.
    #[error("cannot open network namespace {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The failure (`NotFound` when there is no such file).
        source: io::Error,
    },
    /// The file's file system cannot be asked for.
    #[error("cannot stat {}: {source}", path.display())]
    Stat {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// The file is not a namespace file.
    #[error("{} is not a network namespace (not on nsfs)", path.display())]
    NotNetworkNamespace {
        /// The file.
        path: PathBuf,
    },
    /// `setns` into the namespace failed.
    #[error("cannot enter network namespace {}: {source}", path.display())]
    Enter {
        /// The namespace file.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// A netlink socket cannot be opened inside the namespace.
    #[error("cannot open a netlink socket in {}: {source}", path.display())]
    Socket {
        /// The namespace file.
        path: PathBuf,
        /// The failure.
        source: NetlinkError,
    },
    /// A step of creating a named namespace failed.
    #[error("cannot create network namespace {}: {what}: {source}", path.display())]
    Create {
        /// The namespace file.
        path: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// The failure.
        source: io::Error,
    },
    /// The namespace file cannot be removed.
    #[error("cannot delete network namespace {}: {source}", path.display())]
    Delete {
        /// The namespace file.
        path: PathBuf,
        /// The failure (`NotFound` when there is no such namespace).
        source: io::Error,
    },
}

impl NamespaceError {
    /// Whether the namespace file does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Open { source, .. } | Self::Delete { source, .. } => {
                source.kind() == io::ErrorKind::NotFound
            }
            _ => false,
        }
    }
}
