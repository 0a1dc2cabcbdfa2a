//! rudder's API types: the resources users write as YAML (Pod, Service,
//! Endpoints, Node, Deployment, ReplicaSet, Namespace, Lease), their
//! validation and defaulting, and the protobuf/gRPC definitions the control
//! plane, agents and `rudderctl` speak.
//!
//! Objects are Kubernetes-shaped: existing Kubernetes YAML for these kinds
//! decodes unchanged, and fields rudder does not model are kept (see
//! [`object::normalize`]).
//!
//! Agents use [`client::Client::node_sync`]; controllers use the typed
//! [`client::Client`] calls.

pub mod apps;
pub mod bandwidth;
pub mod client;
pub mod coordination;
pub mod core;
pub mod error;
pub mod events;
pub mod kind;
pub mod meta;
pub mod node_selector;
pub mod object;
pub mod quantity;
pub mod resource;
pub mod selector;
pub mod time;
pub mod validation;

pub use error::{ApiError, FieldError};
pub use kind::Kind;
pub use resource::Resource;

/// Generated protobuf messages and tonic services of `rudder.api.v1`.
#[expect(
    missing_docs,
    clippy::allow_attributes,
    reason = "generated from proto/rudder.proto, which documents the messages"
)]
pub mod proto {
    tonic::include_proto!("rudder.api.v1");
}
