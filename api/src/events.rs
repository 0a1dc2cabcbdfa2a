//! The vocabulary of [`Event`](crate::core::Event)s: what controllers, the
//! scheduler and agents tell users about the objects they act on
//! (`rudderctl describe` lists them). Recording them is
//! `rudder_client::recorder`'s job.

use crate::{core::ObjectReference, resource::Resource};

/// Namespace of events about cluster-scoped objects (Nodes), as Kubernetes.
pub const CLUSTER_SCOPED_EVENT_NAMESPACE: &str = "default";

/// Whether an event is routine or worth a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Routine (`Scheduled`, `SuccessfulCreate`).
    Normal,
    /// Something went wrong (`FailedScheduling`, `Unhealthy`).
    Warning,
}

impl EventType {
    /// The Event `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The reference an event about `object` carries.
pub fn reference_to<T: Resource>(object: &T) -> ObjectReference {
    let meta = object.metadata();
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    ObjectReference {
        kind: Some(T::KIND.name().to_owned()),
        namespace: non_empty(&meta.namespace),
        name: Some(meta.name.clone()),
        uid: non_empty(&meta.uid),
        api_version: Some(T::KIND.api_version().to_owned()),
        resource_version: non_empty(&meta.resource_version),
        field_path: None,
    }
}
