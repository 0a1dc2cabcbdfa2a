//! What `serve`'s tasks hand each other, one kind of update per channel:
//! Service changes go to the map writer, pod changes to the pod rounds.

use std::time::Instant;

use rudder_api::core::Pod;

use crate::dataplane::services::{ServiceChange, ServiceState};

/// A change to the Services this node serves.
#[derive(Debug)]
pub enum ServiceUpdate {
    /// The full set of Services (after a snapshot, or a services file read).
    Resync {
        /// Every Service the node serves.
        services: Vec<ServiceState>,
        /// When the agent received it (start of the sync latency).
        received: Instant,
    },
    /// One Service changed.
    Apply {
        /// The Service's new state, or its deletion.
        change: ServiceChange,
        /// When the agent received it (start of the sync latency).
        received: Instant,
    },
}

/// A change to the pods bound to this node.
#[derive(Debug)]
pub enum PodUpdate {
    /// The full set of pods bound to this node (after a snapshot).
    Resync(Vec<Pod>),
    /// A pod bound to this node appeared or changed.
    Upserted(Pod),
    /// A pod left this node or was deleted.
    Deleted(Pod),
}
