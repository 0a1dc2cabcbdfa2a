//! rudder's control plane: the Raft-replicated key-value store (openraft +
//! redb), the API server (gRPC and HTTP/JSON), the scheduler and the
//! controllers (Deployments, Services, Endpoints, Nodes).
//!
//! Filled in by the control-plane and scheduler issues; the crate exists now
//! so the workspace already has the shape of the architecture
//! (docs/architecture.md).
