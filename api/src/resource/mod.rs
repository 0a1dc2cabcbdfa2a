//! The [`Resource`] trait: what every kind provides (its metadata,
//! defaulting and validation). Its implementations live beside it, one file
//! per group of kinds: [`pod`] (Pod and the pod spec templates share),
//! [`service`], [`apps`] (Deployment, ReplicaSet) and [`cluster`]
//! (Namespace, Node, Lease, Event, Endpoints), [`rbac`] (Role,
//! ClusterRole, RoleBinding, ClusterRoleBinding).

mod apps;
mod cluster;
mod pod;
mod rbac;
mod service;

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    kind::Kind,
    meta::ObjectMeta,
    validation::{FieldErrors, is_uid},
};

/// A kind of object the API serves.
pub trait Resource: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The kind.
    const KIND: Kind;

    /// The object's metadata.
    fn metadata(&self) -> &ObjectMeta;

    /// The object's metadata, to change.
    fn metadata_mut(&mut self) -> &mut ObjectMeta;

    /// Fills in what the user left out, as Kubernetes does.
    fn apply_defaults(&mut self) {}

    /// Checks the object, appending every problem to `errors`.
    fn validate(&self, errors: &mut FieldErrors);
}

/// Sets `apiVersion`/`kind` and validates the metadata every kind shares.
pub(crate) fn validate_metadata(kind: Kind, meta: &ObjectMeta, errors: &mut FieldErrors) {
    match kind {
        // Their names become DNS labels (service DNS, namespace names).
        Kind::Namespace | Kind::Service => errors.dns_label("metadata.name", &meta.name),
        // `system:node`, `system:kube-scheduler`: path segments, not DNS names.
        Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding => {
            if let Err(why) = rbac::check_path_segment(&meta.name) {
                errors.push("metadata.name", format!("{:?}: {why}", meta.name));
            }
        }
        _ => errors.dns_subdomain("metadata.name", &meta.name),
    }
    if kind.namespaced() {
        errors.dns_label("metadata.namespace", &meta.namespace);
    } else if !meta.namespace.is_empty() {
        errors.push(
            "metadata.namespace",
            format!("{kind} is cluster-scoped and takes no namespace"),
        );
    }
    errors.labels("metadata.labels", &meta.labels);
    errors.annotation_keys("metadata.annotations", &meta.annotations);
    if !meta.uid.is_empty() && !is_uid(&meta.uid) {
        errors.push(
            "metadata.uid",
            format!(
                "{:?} is not a uid: the API server assigns uids (a UUID); leave it out",
                meta.uid
            ),
        );
    }
    if !meta.resource_version.is_empty() && meta.resource_version.parse::<i64>().is_err() {
        errors.push(
            "metadata.resourceVersion",
            format!(
                "{:?} is not a resource version (a number from a previous read)",
                meta.resource_version
            ),
        );
    }
}

pub(crate) fn default_type_meta(kind: Kind, api_version: &mut String, kind_field: &mut String) {
    if api_version.is_empty() {
        kind.api_version().clone_into(api_version);
    }
    if kind_field.is_empty() {
        kind.name().clone_into(kind_field);
    }
}

/// The `metadata`/`metadata_mut` pair every kind implements the same way.
macro_rules! type_meta {
    ($ty:ty, $kind:expr) => {
        fn metadata(&self) -> &ObjectMeta {
            &self.metadata
        }
        fn metadata_mut(&mut self) -> &mut ObjectMeta {
            &mut self.metadata
        }
    };
}
pub(crate) use type_meta;
