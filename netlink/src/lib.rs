//! rudder-netlink: a small synchronous rtnetlink client shared by the CNI
//! plugin and the agent, one socket per network namespace.
//!
//! A netlink socket talks to the namespace its creating thread was in, so
//! [`RouteSocket::open`] on a thread that entered a sandbox configures the
//! sandbox.

mod subnet;

pub use netlink_packet_route::link::InfoKind;
pub use subnet::Ipv4Subnet;

mod address;
mod link;
mod route;
mod socket;

pub use link::{LinkState, VethEnd, format_mac};
pub use route::RouteState;
pub use socket::RouteSocket;
