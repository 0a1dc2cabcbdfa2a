//! rudder's API types: the resources users write as YAML (Pod, Service,
//! Endpoints, Node, Deployment, ReplicaSet, Namespace, Lease), their
//! validation and defaulting, and the protobuf/gRPC definitions the control
//! plane, agents and `rudderctl` speak.
//!
//! Filled in by the control-plane issue; the crate exists now so the
//! workspace already has the shape of the architecture (docs/architecture.md).
