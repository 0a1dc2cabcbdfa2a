//! What talks to rudder's API server, shared by the controllers, the
//! scheduler, agents and `rudderctl`:
//!
//! - [`client`]: the gRPC client (typed CRUD and watch, JSON-level calls,
//!   the node-sync stream) and its [`ClientError`];
//! - [`list_watch`]: the one list+watch loop (list, watch from the list's
//!   revision, re-list when compacted);
//! - [`informer`]: a local, indexed copy of one kind, kept current by
//!   that loop; [`workqueue`]: the deduplicating, rate-limited key queue
//!   controllers drain;
//! - [`recorder`]: the event recorder (the Event types are in
//!   `rudder_api::events`).
//!
//! `rudder-api` holds the types this crate moves; it does no I/O itself.

pub mod bootstrap;
pub mod client;
pub mod credentials;
pub mod error;
pub mod failover;
pub mod informer;
pub mod kubeconfig;
pub mod list_watch;
pub mod node_sync;
pub mod recorder;
pub mod workqueue;

pub use client::{Client, ListOptions, ObjectList, Watch, WatchEvent};
pub use credentials::{ClientConfig, ClientIdentity, Credentials};
pub use error::{ClientError, DecodeError};
pub use kubeconfig::{Kubeconfig, KubeconfigError};
pub use node_sync::{NodeChange, NodeSyncStream, NodeSyncUpdate};
pub use recorder::EventRecorder;
