//! rudder's control plane: the API server (gRPC and HTTP/JSON, over the
//! store in `rudder-kvstore`), with the scheduler and controllers to come.
//!
//! The binary `rudder-controlplane` ([`server`]) runs the store, the etcd-
//! compatible store API, the resource API and the node-sync stream on one
//! gRPC port, and the HTTP/JSON API on another.

pub mod apiserver;
pub mod server;
