//! rudder's control plane: the API server (gRPC and HTTP/JSON, over the
//! store in `rudder-kvstore`), the controllers and the scheduler.
//!
//! The binary `rudder-controlplane` ([`server`]) runs the store, the etcd-
//! compatible store API, the resource API and the node-sync stream on one
//! gRPC port, and the HTTP/JSON API on another; the leader among the
//! replicas ([`leader`]) also runs the controllers ([`controllers`]) and
//! the scheduler ([`scheduler`]), which are clients of the API server built
//! on [`informer`]s and [`workqueue`]s.

pub mod apiserver;
pub mod controllers;
pub mod informer;
pub mod informers;
pub mod leader;
pub mod manager;
pub mod scheduler;
pub mod server;
pub mod workqueue;
