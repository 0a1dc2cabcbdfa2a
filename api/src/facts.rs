//! Facts about objects that controllers, the scheduler and agents read the
//! same way: an object's key and revision, its controlling owner, a pod's
//! readiness, conditions. Extension traits on the types (as kube-rs's
//! `ResourceExt`), computed from the object alone: no I/O.

use crate::{
    core::{Node, Pod},
    meta::{Condition, OwnerReference},
    resource::Resource,
};

/// What every object can say about itself.
pub trait ObjectExt: Resource {
    /// The `namespace/name` key of the object (`name` when cluster-scoped).
    fn key(&self) -> String {
        let meta = self.metadata();
        if meta.namespace.is_empty() {
            meta.name.clone()
        } else {
            format!("{}/{}", meta.namespace, meta.name)
        }
    }

    /// The store revision of the object's last write (its
    /// resourceVersion), 0 when it has none.
    fn revision(&self) -> i64 {
        self.metadata().resource_version.parse().unwrap_or(0)
    }

    /// The controlling owner reference, if any.
    fn controller(&self) -> Option<&OwnerReference> {
        self.metadata()
            .owner_references
            .iter()
            .find(|r| r.controller == Some(true))
    }
}

impl<T: Resource> ObjectExt for T {}

/// Splits a `namespace/name` key into its namespace ("" for a
/// cluster-scoped name) and name.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// Reading and writing a status's conditions.
pub trait Conditions {
    /// The condition of `type_`.
    fn condition(&self, type_: &str) -> Option<&Condition>;

    /// Sets a condition, keeping its transition time unless the status
    /// changes; returns whether anything changed.
    fn set_condition(&mut self, type_: &str, status: &str, reason: &str, message: String) -> bool;
}

impl Conditions for Vec<Condition> {
    fn condition(&self, type_: &str) -> Option<&Condition> {
        self.iter().find(|c| c.type_ == type_)
    }

    fn set_condition(&mut self, type_: &str, status: &str, reason: &str, message: String) -> bool {
        let now = crate::time::now_rfc3339();
        match self.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) => {
                if existing.status == status
                    && existing.reason.as_deref() == Some(reason)
                    && existing.message.as_deref() == Some(message.as_str())
                {
                    return false;
                }
                if existing.status != status {
                    existing.last_transition_time = Some(now);
                }
                existing.status = status.to_owned();
                existing.reason = Some(reason.to_owned());
                existing.message = Some(message);
                true
            }
            None => {
                self.push(Condition {
                    type_: type_.to_owned(),
                    status: status.to_owned(),
                    reason: Some(reason.to_owned()),
                    message: Some(message),
                    last_transition_time: Some(now),
                    last_heartbeat_time: None,
                });
                true
            }
        }
    }
}

/// Facts about a pod.
pub trait PodExt {
    /// The pod's condition of `type_`.
    fn condition(&self, type_: &str) -> Option<&Condition>;

    /// Whether the pod's `Ready` condition is `True`.
    fn is_ready(&self) -> bool {
        self.condition("Ready").is_some_and(|c| c.status == "True")
    }

    /// Whether the pod is active: not being deleted, not finished.
    fn is_active(&self) -> bool;
}

impl PodExt for Pod {
    fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status.as_ref()?.conditions.condition(type_)
    }

    fn is_active(&self) -> bool {
        self.metadata.deletion_timestamp.is_none()
            && !matches!(
                self.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
    }
}

/// Facts about a node.
pub trait NodeExt {
    /// The node's condition of `type_`.
    fn condition(&self, type_: &str) -> Option<&Condition>;

    /// Whether the node's `Ready` condition is `True`.
    fn is_ready(&self) -> bool {
        self.condition("Ready").is_some_and(|c| c.status == "True")
    }
}

impl NodeExt for Node {
    fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status.as_ref()?.conditions.condition(type_)
    }
}
