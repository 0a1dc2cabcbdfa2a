//! Facts about objects that controllers, the scheduler and agents read the
//! same way: an object's key and revision, its controlling owner, a pod's
//! readiness, conditions. Extension traits on the types (as kube-rs's
//! `ResourceExt`), computed from the object alone: no I/O.

use std::fmt;

use crate::{
    core::{Node, Pod},
    meta::{Condition, OwnerReference},
    resource::Resource,
};

/// Which object of a kind: its namespace (empty when cluster-scoped) and
/// name. The one key informer caches, work queues and controllers use
/// (kube-rs's `ObjectRef`, without the kind: every cache and queue holds
/// one kind). Shown, and parsed, as `namespace/name` or `name`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// The namespace, "" for a cluster-scoped object.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl ObjectRef {
    /// The object `name` in `namespace` ("" when cluster-scoped).
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Reads the `namespace/name` (or `name`) form `Display` writes.
    pub fn parse(text: &str) -> Self {
        match text.split_once('/') {
            Some((namespace, name)) => ObjectRef::new(namespace, name),
            None => ObjectRef::new("", text),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// What every object can say about itself.
pub trait ObjectExt: Resource {
    /// Which object this is: its namespace and name.
    fn key(&self) -> ObjectRef {
        let meta = self.metadata();
        ObjectRef::new(meta.namespace.as_str(), meta.name.as_str())
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
                    ..Condition::default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_refs_round_trip_through_their_text() {
        for text in ["default/web", "node1", "kube-system/a-b.c"] {
            assert_eq!(ObjectRef::parse(text).to_string(), text);
        }
        assert_eq!(
            ObjectRef::parse("default/web"),
            ObjectRef::new("default", "web")
        );
        assert_eq!(ObjectRef::parse("node1").namespace, "");
    }
}
