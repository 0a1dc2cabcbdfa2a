//! rudder-netlink: rudder's one way to the kernel's network configuration,
//! shared by the CNI plugin and the agent.
//!
//! - [`RouteSocket`]: a small synchronous rtnetlink client (links, bridge
//!   ports, veth pairs, addresses, routes). A netlink socket talks to the
//!   namespace its creating thread was in, so [`RouteSocket::open`] on a
//!   thread that entered a sandbox configures the sandbox
//!   ([`NetworkNamespace::route_socket`] does just that).
//! - [`LinkMonitor`]: link notifications, to follow a bridge's ports as
//!   they come and go instead of polling.
//! - [`NetworkNamespace`]: named namespaces as `ip netns` keeps them, code
//!   and processes run inside one with `setns`.
//!
//! Failures are typed: the kernel's refusals carry their [`Errno`]
//! ([`NetlinkError::errno`]), so callers match `EEXIST` rather than text.

mod address;
mod error;
mod link;
mod monitor;
mod namespace;
mod route;
mod socket;
mod subnet;

pub use error::{NamespaceError, NetlinkError, Result};
pub use link::{LinkState, VethEnd, format_mac};
pub use monitor::{LinkEvent, LinkMonitor};
pub use namespace::{NETNS_RUN_DIR, NetworkNamespace};
pub use route::{NextHop, RouteState};
pub use socket::RouteSocket;
pub use subnet::Ipv4Subnet;

/// Link kinds as the kernel names them (`bridge`, `veth`, ...).
pub use netlink_packet_route::link::InfoKind;
/// Route types as the kernel names them (unicast, blackhole, ...).
pub use netlink_packet_route::route::RouteType;
/// The errno a [`NetlinkError`] carries.
pub use nix::errno::Errno;
