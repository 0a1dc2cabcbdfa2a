//! What happened to pods, collected during a round and told as Events
//! (the kubelet's `Started`, `Killing`, `Unhealthy`, `BackOff`, ...).

use rudder_api::core::Pod;

use super::PodRuntime;

/// Something that happened to a pod, to be told as an Event (the
/// kubelet's `Started`, `Killing`, `Unhealthy`, `BackOff`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEvent {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's uid.
    pub uid: String,
    /// The container it is about, if one.
    pub container: Option<String>,
    /// A warning rather than routine.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// For humans.
    pub message: String,
}

/// What happened to one container during a round, before it is tied to
/// its pod.
pub(super) struct ContainerNote {
    pub(super) warning: bool,
    pub(super) reason: &'static str,
    pub(super) message: String,
}

impl PodRuntime {
    /// The events since the last call.
    pub fn take_events(&mut self) -> Vec<PodEvent> {
        std::mem::take(
            self.events
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub(super) fn note(&self, pod: &Pod, container: Option<&str>, note: ContainerNote) {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        events.push(PodEvent {
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            container: container.map(str::to_owned),
            warning: note.warning,
            reason: note.reason,
            message: note.message,
        });
    }
}
