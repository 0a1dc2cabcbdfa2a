//! The plugin's errors and the CNI error codes they are reported with.

use std::{io, path::PathBuf};

/// Everything that can make a CNI command fail. Each variant maps to a code
/// of the spec (1-99) or one of rudder-cni's own (100 and up), see
/// [`CniError::code`]; the message says what was wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The config asks for a spec version this plugin does not speak.
    #[error("incompatible CNI version {requested:?}: rudder-cni supports {supported}")]
    IncompatibleVersion {
        /// The `cniVersion` of the config.
        requested: String,
        /// The versions this plugin supports, comma separated.
        supported: String,
    },
    /// The command exists only in later spec versions than the config's.
    #[error("{command} needs cniVersion 1.1.0 or later, the config says {version}")]
    CommandNeedsNewerVersion {
        /// The command (GC, STATUS).
        command: &'static str,
        /// The config's `cniVersion`.
        version: String,
    },
    /// A config field has a value the plugin understands but does not support.
    #[error("unsupported field in network config: {field} = {value}: {reason}")]
    UnsupportedField {
        /// JSON path of the field.
        field: String,
        /// Its value.
        value: String,
        /// Why it is not supported.
        reason: String,
    },
    /// The container's network namespace does not exist.
    #[error("container network namespace {path} does not exist")]
    ContainerUnknown {
        /// `CNI_NETNS`.
        path: String,
    },
    /// A `CNI_*` environment variable is missing or malformed.
    #[error("invalid environment variable {var}: {reason}")]
    InvalidEnvironment {
        /// The variable.
        var: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file the plugin keeps (allocations, bandwidth records) could not be
    /// read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// Standard input is not a JSON object.
    #[error("cannot decode the network config on stdin: {0}")]
    Decode(String),
    /// The network config is valid JSON but not a valid rudder-cni config.
    #[error("invalid network config: {field}: {reason}")]
    InvalidConfig {
        /// JSON path of the offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The plugin cannot serve ADD right now (STATUS).
    #[error("rudder-cni cannot add attachments: {0}")]
    NotAvailable(String),
    /// Every address of the range is allocated.
    #[error("network {network}: no free address left in {range} ({count} allocated)")]
    SubnetExhausted {
        /// The network name.
        network: String,
        /// The allocatable range, `start-end`.
        range: String,
        /// How many addresses are allocated.
        count: usize,
    },
    /// The attachment already holds an address: ADD twice without DEL.
    #[error(
        "container {container_id} interface {ifname} already has {ip} in network {network}: DEL it first"
    )]
    AlreadyAllocated {
        /// `CNI_CONTAINERID`.
        container_id: String,
        /// `CNI_IFNAME`.
        ifname: String,
        /// Its address.
        ip: std::net::Ipv4Addr,
        /// The network name.
        network: String,
    },
    /// A netlink request failed.
    #[error("{op}: {source}")]
    Netlink {
        /// What was asked of the kernel, with the names involved.
        op: String,
        /// The kernel's answer.
        source: rudder_netlink::NetlinkError,
    },
    /// An interface that ADD must create already exists.
    #[error("{0}")]
    InterfaceExists(String),
    /// CHECK found the attachment different from what ADD left.
    #[error("check failed: {0}")]
    CheckFailed(String),
}

impl CniError {
    /// The error code reported in the CNI error JSON.
    pub fn code(&self) -> u32 {
        match self {
            Self::IncompatibleVersion { .. } | Self::CommandNeedsNewerVersion { .. } => 1,
            Self::UnsupportedField { .. } => 2,
            Self::ContainerUnknown { .. } => 3,
            Self::InvalidEnvironment { .. } => 4,
            Self::Io { .. } => 5,
            Self::Decode(_) => 6,
            Self::InvalidConfig { .. } => 7,
            Self::Netlink { source, .. } if is_transient(source) => 11,
            Self::NotAvailable(_) => 50,
            Self::SubnetExhausted { .. } => 100,
            Self::AlreadyAllocated { .. } => 101,
            Self::Netlink { .. } => 102,
            Self::InterfaceExists(_) => 103,
            Self::CheckFailed(_) => 104,
        }
    }

    /// A short hint for the `details` field, where there is something to add.
    pub fn details(&self) -> Option<String> {
        match self {
            Self::SubnetExhausted { .. } => {
                Some("release addresses with DEL or GC, or widen ipam.rangeStart/rangeEnd".into())
            }
            Self::Netlink { source, .. } if is_transient(source) => {
                Some("the kernel was busy; try again".into())
            }
            _ => None,
        }
    }

    /// Shorthand for [`CniError::InvalidConfig`].
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`CniError::InvalidEnvironment`].
    pub(crate) fn env(var: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidEnvironment {
            var,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`CniError::Io`].
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`CniError::Netlink`].
    pub(crate) fn netlink(op: impl Into<String>, source: rudder_netlink::NetlinkError) -> Self {
        Self::Netlink {
            op: op.into(),
            source,
        }
    }
}

/// Errors worth retrying as they are (spec code 11).
fn is_transient(err: &rudder_netlink::NetlinkError) -> bool {
    use rudder_netlink::Errno;
    matches!(
        err.errno(),
        Some(Errno::EAGAIN | Errno::EBUSY | Errno::EINTR | Errno::ENOBUFS)
    )
}

/// Result alias for this crate.
pub type Result<T, E = CniError> = std::result::Result<T, E>;
