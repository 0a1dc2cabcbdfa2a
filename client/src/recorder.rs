//! Recording [`Event`]s: what controllers, the scheduler and agents tell
//! users about the objects they act on (`rudderctl describe` lists them).
//!
//! Recording never blocks or fails the caller: events go into a bounded
//! queue that one background task writes to the API server, and when the
//! queue is full (the server is slow or down) the newest events are
//! dropped and counted. That is the right trade for events, which are
//! advice to humans, never state anything depends on.
//!
//! Repeats are folded, as Kubernetes' event correlator does: the same
//! reason and message about the same object within [`FOLD_WINDOW`] update
//! one Event's `count` and `lastTimestamp` instead of creating another, so
//! a pod that fails to schedule a thousand times is one object, not a
//! thousand.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::{sync::mpsc, task::JoinHandle};

use rudder_api::{
    Resource,
    core::{Event, EventSource, ObjectReference},
    events::{CLUSTER_SCOPED_EVENT_NAMESPACE, EventType, reference_to},
    meta::ObjectMeta,
    time::format_rfc3339,
};

use crate::{Client, ClientError};

/// Events waiting to be written; more are dropped (and counted).
const QUEUE_CAPACITY: usize = 1024;

/// Distinct events remembered for folding repeats.
const FOLD_CACHE_ENTRIES: usize = 4096;

/// A repeat within this long of the previous occurrence is folded into it.
pub const FOLD_WINDOW: Duration = Duration::from_secs(600);

/// One event to write.
#[derive(Debug, Clone)]
struct Occurrence {
    involved: ObjectReference,
    type_: EventType,
    reason: String,
    message: String,
    at: SystemTime,
}

/// Records events for one component; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventRecorder {
    queue: Option<mpsc::Sender<Occurrence>>,
    dropped: Arc<AtomicU64>,
}

impl EventRecorder {
    /// Starts the writer task for `component` (`rudder-scheduler`)
    /// running on `host`; it ends when every clone of the recorder is
    /// dropped, or when the returned handle is aborted.
    pub fn start(client: Client, component: &str, host: &str) -> (Self, JoinHandle<()>) {
        let (queue, pending) = mpsc::channel(QUEUE_CAPACITY);
        let writer = Writer {
            client,
            source: EventSource {
                component: component.to_owned(),
                host: host.to_owned(),
            },
            folded: FoldCache::default(),
            sequence: 0,
        };
        let task = tokio::spawn(writer.run(pending));
        let recorder = Self {
            queue: Some(queue),
            dropped: Arc::default(),
        };
        (recorder, task)
    }

    /// A recorder that records nothing (for tools and tests that do not
    /// want events).
    pub fn discard() -> Self {
        Self {
            queue: None,
            dropped: Arc::default(),
        }
    }

    /// Records that `reason` happened to `object`.
    pub fn record<T: Resource>(
        &self,
        object: &T,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.record_about(reference_to(object), type_, reason, message);
    }

    /// Records that `reason` happened to the object `involved` names.
    pub fn record_about(
        &self,
        involved: ObjectReference,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let Some(queue) = &self.queue else {
            return;
        };
        let occurrence = Occurrence {
            involved,
            type_,
            reason: reason.to_owned(),
            message: message.into(),
            at: SystemTime::now(),
        };
        if queue.try_send(occurrence).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Say so now and then, not once per event.
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "event queue full; dropping events");
            }
        }
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What makes two occurrences "the same event".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FoldKey {
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    field_path: String,
    type_: EventType,
    reason: String,
    message: String,
}

impl FoldKey {
    fn of(occurrence: &Occurrence) -> Self {
        let text = |s: &Option<String>| s.clone().unwrap_or_default();
        let involved = &occurrence.involved;
        Self {
            kind: text(&involved.kind),
            namespace: text(&involved.namespace),
            name: text(&involved.name),
            uid: text(&involved.uid),
            field_path: text(&involved.field_path),
            type_: occurrence.type_,
            reason: occurrence.reason.clone(),
            message: occurrence.message.clone(),
        }
    }
}

/// The stored event an occurrence was folded into.
#[derive(Debug, Clone)]
struct Folded {
    event: Event,
    last: SystemTime,
}

/// Recently written events, oldest evicted first.
#[derive(Debug, Default)]
struct FoldCache {
    entries: HashMap<FoldKey, Folded>,
    order: VecDeque<FoldKey>,
}

impl FoldCache {
    fn get(&self, key: &FoldKey, now: SystemTime) -> Option<&Folded> {
        self.entries.get(key).filter(|folded| {
            now.duration_since(folded.last)
                .is_ok_and(|age| age <= FOLD_WINDOW)
        })
    }

    fn put(&mut self, key: FoldKey, folded: Folded) {
        if self.entries.insert(key.clone(), folded).is_none() {
            self.order.push_back(key);
            while self.order.len() > FOLD_CACHE_ENTRIES {
                if let Some(oldest) = self.order.pop_front() {
                    self.entries.remove(&oldest);
                }
            }
        }
    }
}

struct Writer {
    client: Client,
    source: EventSource,
    folded: FoldCache,
    sequence: u64,
}

impl Writer {
    async fn run(mut self, mut pending: mpsc::Receiver<Occurrence>) {
        while let Some(occurrence) = pending.recv().await {
            if let Err(err) = self.write(occurrence).await {
                tracing::debug!(%err, "writing an event");
            }
        }
    }

    async fn write(&mut self, occurrence: Occurrence) -> Result<(), ClientError> {
        let key = FoldKey::of(&occurrence);
        let timestamp = format_rfc3339(occurrence.at);
        if let Some(previous) = self.folded.get(&key, occurrence.at) {
            let mut event = previous.event.clone();
            event.count = Some(event.count.unwrap_or(1).saturating_add(1));
            event.last_timestamp = Some(timestamp.clone());
            // Unconditional: only this writer updates its events.
            event.metadata.resource_version.clear();
            match self.client.update(&event).await {
                Ok(stored) => {
                    self.folded.put(
                        key,
                        Folded {
                            event: stored,
                            last: occurrence.at,
                        },
                    );
                    return Ok(());
                }
                // Expired and collected meanwhile: write it anew.
                Err(ClientError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        let event = self.new_event(&occurrence, timestamp);
        let stored = self.client.create(&event).await?;
        self.folded.put(
            key,
            Folded {
                event: stored,
                last: occurrence.at,
            },
        );
        Ok(())
    }

    fn new_event(&mut self, occurrence: &Occurrence, timestamp: String) -> Event {
        self.sequence += 1;
        let involved = &occurrence.involved;
        let namespace = involved
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| CLUSTER_SCOPED_EVENT_NAMESPACE.to_owned());
        let nanos = occurrence
            .at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        // Kubernetes names events `<object>.<hex time>`; the sequence keeps
        // two events of one object within a clock tick apart.
        let name = format!(
            "{}.{nanos:x}{:x}",
            involved.name.as_deref().unwrap_or("unknown"),
            self.sequence
        );
        Event {
            api_version: String::new(),
            kind: String::new(),
            metadata: ObjectMeta {
                name,
                namespace,
                ..ObjectMeta::default()
            },
            involved_object: involved.clone(),
            reason: Some(occurrence.reason.clone()),
            message: Some(occurrence.message.clone()),
            type_: Some(occurrence.type_.as_str().to_owned()),
            source: Some(self.source.clone()),
            first_timestamp: Some(timestamp.clone()),
            last_timestamp: Some(timestamp),
            count: Some(1),
            reporting_component: Some(self.source.component.clone()),
            reporting_instance: Some(self.source.host.clone()),
            ..Event::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occurrence(reason: &str, message: &str) -> Occurrence {
        Occurrence {
            involved: ObjectReference {
                kind: Some("Pod".to_owned()),
                namespace: Some("default".to_owned()),
                name: Some("web-1".to_owned()),
                uid: Some("u1".to_owned()),
                ..ObjectReference::default()
            },
            type_: EventType::Warning,
            reason: reason.to_owned(),
            message: message.to_owned(),
            at: SystemTime::now(),
        }
    }

    #[test]
    fn the_same_reason_and_message_fold_and_others_do_not() {
        let a = FoldKey::of(&occurrence("FailedScheduling", "0/3 nodes"));
        assert_eq!(a, FoldKey::of(&occurrence("FailedScheduling", "0/3 nodes")));
        assert_ne!(a, FoldKey::of(&occurrence("FailedScheduling", "0/4 nodes")));
        assert_ne!(a, FoldKey::of(&occurrence("Scheduled", "0/3 nodes")));
    }

    #[test]
    fn the_fold_cache_forgets_the_oldest_and_old_occurrences() {
        let mut cache = FoldCache::default();
        let now = SystemTime::now();
        for i in 0..=FOLD_CACHE_ENTRIES {
            cache.put(
                FoldKey::of(&occurrence("R", &i.to_string())),
                Folded {
                    event: Event::default(),
                    last: now,
                },
            );
        }
        assert_eq!(cache.entries.len(), FOLD_CACHE_ENTRIES);
        assert!(
            cache
                .get(&FoldKey::of(&occurrence("R", "0")), now)
                .is_none()
        );
        let newest = FoldKey::of(&occurrence("R", &FOLD_CACHE_ENTRIES.to_string()));
        assert!(cache.get(&newest, now).is_some());
        let later = now + FOLD_WINDOW + Duration::from_secs(1);
        assert!(cache.get(&newest, later).is_none());
    }
}
