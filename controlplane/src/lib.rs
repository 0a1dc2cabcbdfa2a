//! rudder's control plane: the API server (gRPC and HTTP/JSON, over the
//! store in `rudder-kvstore`), the controllers and the scheduler.
//!
//! The binary `rudder-controlplane` ([`server`]) runs the store, and on one
//! port ([`api_port`]) the etcd-compatible store API, the resource API and
//! the node-sync stream over gRPC beside the Kubernetes REST API; the leader among the
//! replicas ([`leader`]) also runs the controllers ([`controllers`]) and
//! the scheduler ([`scheduler`]), which are clients of the API server built
//! on `rudder_client`'s informers and work queues ([`informers`] is the set
//! they share).

pub mod api_port;
pub mod apiserver;
pub mod auth;
pub mod authz;
pub mod controllers;
pub mod informers;
pub mod leader;
pub mod manager;
pub mod pki;
pub mod scheduler;
pub mod server;
