//! rudder's API types: the resources users write as YAML (Pod, Service,
//! Endpoints, Node, Deployment, ReplicaSet, Namespace, Lease), their
//! validation and defaulting, and the protobuf/gRPC definitions the control
//! plane, agents and `rudderctl` speak.
//!
//! Objects are Kubernetes-shaped: existing Kubernetes YAML for these kinds
//! decodes unchanged, and fields rudder does not model are kept (see
//! [`object::normalize`]).
//!
//! No I/O happens here: the API client, the event recorder and the
//! informers live in `rudder-client`. The generated gRPC code ([`proto`])
//! stays here so that the server and the client share one copy of it.

pub mod apps;
pub mod bandwidth;
pub mod columns;
pub mod coordination;
pub mod core;
pub mod discovery;
pub mod downward;
pub mod error;
pub mod events;
pub mod facts;
pub mod kept;
pub mod kind;
pub mod meta;
pub mod names;
pub mod node_selector;
pub mod object;
pub mod quantity;
pub mod rbac;
pub mod resource;
pub mod schema;
pub mod selector;
pub mod strategic_merge;
pub mod taints;
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
