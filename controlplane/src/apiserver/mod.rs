//! The API server: Kubernetes semantics (create/get/list/update/status/
//! delete/watch with resourceVersion compare-and-swap) on top of the store,
//! served over gRPC ([`grpc`]) and HTTP/JSON ([`http`]), plus the per-node
//! sync stream ([`nodesync`]).
//!
//! Objects are stored as JSON under `/registry/<plural>/[<namespace>/]<name>`
//! without `metadata.resourceVersion` ([`storage`]): the store's
//! `mod_revision` of the key *is* the resourceVersion, filled in on every
//! read, and updates compare it in the same transaction that writes
//! ([`crud`]). Kinds that keep more than their object (a Service's
//! ClusterIP and NodePorts) add to that transaction through their
//! [`hooks::WriteHooks`]. Errors and their gRPC/HTTP mapping are in
//! [`error`], watches in [`watch`].

pub mod allocation;
mod crud;
pub mod deletion;
pub mod discovery;
pub mod error;
pub mod field_validation;
mod filter;
pub mod grpc;
pub mod hooks;
pub mod http;
mod kind_hooks;
mod node_fields;
pub mod nodesync;
pub mod openapi;
pub mod patch;
pub mod scale;
mod storage;
pub mod table;
mod watch;

use rudder_api::Kind;
use rudder_kvstore::Store;
use serde_json::json;

pub use rudder_api::meta::DeleteOptions;

pub use self::{
    crud::Write,
    error::ApiServerError,
    filter::Filter,
    watch::{EventType, ResourceEvent},
};

/// The API server's operations, shared by the gRPC and HTTP front ends.
#[derive(Debug, Clone)]
pub struct ApiServer {
    store: Store,
}

impl ApiServer {
    /// Serves objects kept in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates `default` and `kube-system` if missing.
    ///
    /// # Errors
    /// Store errors.
    pub async fn ensure_builtin_namespaces(&self) -> Result<(), ApiServerError> {
        for name in ["default", "kube-system"] {
            let namespace =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            match self.create(Kind::Namespace, namespace).await {
                Ok(_) | Err(ApiServerError::AlreadyExists(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}
