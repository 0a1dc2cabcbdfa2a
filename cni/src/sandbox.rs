//! The container's network namespace (`CNI_NETNS`), and running code inside
//! it on a thread of its own: network namespaces are per thread, and the
//! main thread never leaves the node's.

use std::os::fd::BorrowedFd;

use rudder_netlink::{NamespaceError, NetworkNamespace};

use crate::error::{CniError, Result};

/// An open network namespace file.
#[derive(Debug)]
pub struct Sandbox {
    path: String,
    netns: NetworkNamespace,
}

impl Sandbox {
    /// Opens `path` (a bind mount such as `/run/netns/NAME` or
    /// `/proc/PID/ns/net`). `Ok(None)` when it does not exist.
    ///
    /// # Errors
    ///
    /// Code 4 when it exists but is not a network namespace, 5 when it
    /// cannot be opened.
    pub fn open(path: &str) -> Result<Option<Self>> {
        match NetworkNamespace::open(path) {
            Ok(netns) => Ok(Some(Self {
                path: path.to_owned(),
                netns,
            })),
            Err(err) if err.is_not_found() => Ok(None),
            Err(NamespaceError::Stat { source, .. }) => {
                Err(CniError::io("cannot stat", path, source))
            }
            Err(NamespaceError::Open { source, .. }) => {
                Err(CniError::io("cannot open network namespace", path, source))
            }
            Err(NamespaceError::NotNetworkNamespace { .. }) => Err(CniError::env(
                "CNI_NETNS",
                format!("{path} is not a network namespace (not on nsfs)"),
            )),
            // Opening reports nothing else.
            Err(other) => Err(CniError::io(
                "cannot open network namespace",
                path,
                std::io::Error::other(other),
            )),
        }
    }

    /// Opens `path`, which must exist (ADD, CHECK).
    ///
    /// # Errors
    ///
    /// [`CniError::ContainerUnknown`] (code 3) when it does not, else as
    /// [`Sandbox::open`].
    pub fn open_existing(path: &str) -> Result<Self> {
        Self::open(path)?.ok_or_else(|| CniError::ContainerUnknown {
            path: path.to_owned(),
        })
    }

    /// The path the runtime gave.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The namespace file, to hand to the kernel (veth peer placement).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.netns.fd()
    }

    /// Runs `f` on a thread that has entered the namespace.
    ///
    /// # Errors
    ///
    /// Code 5 when the namespace cannot be entered; otherwise `f`'s result.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        self.netns.run(f).map_err(|err| match err {
            NamespaceError::Enter { source, .. } => {
                CniError::io("cannot enter network namespace", &self.path, source)
            }
            // Entering reports nothing else.
            other => CniError::io(
                "cannot enter network namespace",
                &self.path,
                std::io::Error::other(other),
            ),
        })?
    }
}
