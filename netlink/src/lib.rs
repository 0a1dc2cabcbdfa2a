//! rudder-netlink: a small synchronous rtnetlink client shared by the CNI
//! plugin and the agent, one socket per network namespace.
//!
//! A netlink socket talks to the namespace its creating thread was in, so
//! [`RouteSocket::open`] on a thread that entered a sandbox configures the
//! sandbox.

mod address;
mod error;
mod link;
mod route;
mod socket;
mod subnet;

pub use error::{NetlinkError, Result};
pub use link::{LinkState, VethEnd, format_mac};
pub use route::RouteState;
pub use socket::RouteSocket;
pub use subnet::Ipv4Subnet;

/// Link kinds as the kernel names them (`bridge`, `veth`, ...).
pub use netlink_packet_route::link::InfoKind;
/// The errno a [`NetlinkError`] carries.
pub use nix::errno::Errno;
