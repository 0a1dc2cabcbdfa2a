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
pub mod protobuf;
pub mod scale;
mod storage;
pub mod table;
mod watch;

use rudder_api::Kind;
use rudder_kvstore::Store;
use serde_json::{Value, json};

use crate::{
    auth::UserInfo,
    authz::{self, Attributes, Authorizer, Decision, attributes::Refusal},
};

pub use rudder_api::meta::DeleteOptions;

pub use self::{
    crud::Write,
    error::ApiServerError,
    filter::Filter,
    watch::{EventType, ResourceEvent},
};

/// The refusal of a request no authentication middleware vouched for.
fn unauthenticated() -> ApiServerError {
    ApiServerError::Forbidden("the request carries no authenticated user".to_owned())
}

/// The API server's operations, shared by the gRPC and HTTP front ends.
#[derive(Debug, Clone)]
pub struct ApiServer {
    store: Store,
    authorizer: Authorizer,
}

impl ApiServer {
    /// Serves objects kept in `store`; until [`ApiServer::with_authorizer`]
    /// gives it RBAC objects, only `system:masters` and nodes are allowed
    /// anything.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            authorizer: Authorizer::default(),
        }
    }

    /// Authorises requests with `authorizer`.
    #[must_use]
    pub fn with_authorizer(mut self, authorizer: Authorizer) -> Self {
        self.authorizer = authorizer;
        self
    }

    /// The authoriser chain.
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// Whether `user` (`None`: nobody authenticated) may make the request
    /// `attributes` describe.
    ///
    /// # Errors
    /// [`ApiServerError::Forbidden`] in Kubernetes' words.
    pub fn authorize(
        &self,
        user: Option<&UserInfo>,
        attributes: &Attributes<'_>,
    ) -> Result<(), ApiServerError> {
        let user = user.ok_or_else(unauthenticated)?;
        match self.authorizer.decide(user, attributes) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(ApiServerError::Forbidden(
                Refusal {
                    user,
                    attributes,
                    reason,
                }
                .to_string(),
            )),
        }
    }

    /// Admission after authorisation: for node identities, NodeRestriction,
    /// with `body` the object a create sends.
    ///
    /// # Errors
    /// [`ApiServerError::Forbidden`]; store errors of its reads.
    pub async fn admit(
        &self,
        user: Option<&UserInfo>,
        attributes: &Attributes<'_>,
        body: Option<&Value>,
    ) -> Result<(), ApiServerError> {
        let user = user.ok_or_else(unauthenticated)?;
        if let Some(node) = authz::node::node_of(user) {
            authz::node_restriction::admit(self, node, attributes, body).await?;
        }
        Ok(())
    }

    /// [`ApiServer::authorize`], then [`ApiServer::admit`].
    ///
    /// # Errors
    /// As both.
    pub async fn authorize_and_admit(
        &self,
        user: Option<&UserInfo>,
        attributes: &Attributes<'_>,
        body: Option<&Value>,
    ) -> Result<(), ApiServerError> {
        self.authorize(user, attributes)?;
        self.admit(user, attributes, body).await
    }

    /// Refuses a Role or binding granting what `user` does not hold
    /// (other kinds pass).
    ///
    /// # Errors
    /// [`ApiServerError::Forbidden`].
    pub fn check_escalation(
        &self,
        user: Option<&UserInfo>,
        kind: Kind,
        object: &Value,
    ) -> Result<(), ApiServerError> {
        if !matches!(
            kind,
            Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding
        ) {
            return Ok(());
        }
        match user {
            Some(user) if user.groups.iter().any(|g| g == crate::auth::MASTERS_GROUP) => Ok(()),
            Some(user) => authz::escalation::check(user, self.authorizer.view(), kind, object),
            None => Err(unauthenticated()),
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates `default`, `kube-system` and `kube-node-lease` (where
    /// nodes, which may not create namespaces, keep their leases) if
    /// missing.
    ///
    /// # Errors
    /// Store errors.
    pub async fn ensure_builtin_namespaces(&self) -> Result<(), ApiServerError> {
        for name in [
            "default",
            "kube-system",
            rudder_api::names::NODE_LEASE_NAMESPACE,
        ] {
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
