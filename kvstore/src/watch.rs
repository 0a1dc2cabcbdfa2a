//! Watchers: replay of history from a revision, then live events, in order
//! and without gaps.
//!
//! The [`WatchHub`] holds one bounded queue per live watcher. Publishing
//! never waits: a watcher whose queue is full is cut off (it learns the
//! revision to resume from), so one slow consumer can neither hold up the
//! store nor make it buffer without bound.
//!
//! A new watcher first replays history from the store in pages, without
//! being registered; it registers only once it has read everything up to
//! the last published revision, checked under the hub's lock. From then on
//! every newer revision reaches it through its queue, so nothing is missed,
//! and anything it already replayed is skipped by revision.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::sync::mpsc;

use crate::{
    error::{StoreError, WatchError},
    mvcc::Mvcc,
    types::{KeyRange, RevisionEvents},
};

/// How many revisions one history read looks at.
const HISTORY_PAGE: usize = 512;

/// The registry of live watchers.
#[derive(Debug)]
pub(crate) struct WatchHub {
    inner: Mutex<HubInner>,
    queue_capacity: usize,
}

#[derive(Debug)]
struct HubInner {
    /// Last revision handed to the watchers.
    published: i64,
    next_id: u64,
    slots: HashMap<u64, Slot>,
}

#[derive(Debug)]
struct Slot {
    range: KeyRange,
    queue: mpsc::Sender<Arc<RevisionEvents>>,
    lagged: Arc<AtomicBool>,
}

impl WatchHub {
    /// A hub whose last published revision is `revision`; each watcher may
    /// have `queue_capacity` revisions waiting before it is cut off.
    pub fn new(revision: i64, queue_capacity: usize) -> Self {
        Self {
            inner: Mutex::new(HubInner {
                published: revision,
                next_id: 0,
                slots: HashMap::new(),
            }),
            queue_capacity: queue_capacity.max(1),
        }
    }

    /// The last revision handed to watchers.
    pub fn published(&self) -> i64 {
        self.lock().published
    }

    /// Hands newly committed revisions (in order) to the watchers.
    pub fn publish(&self, revisions: &[RevisionEvents]) {
        let Some(last) = revisions.last() else {
            return;
        };
        let mut inner = self.lock();
        inner.published = inner.published.max(last.revision);
        inner.slots.retain(|_, slot| {
            for revision in revisions {
                let matching = if revision
                    .events
                    .iter()
                    .all(|event| slot.range.contains(&event.kv.key))
                {
                    Arc::new(revision.clone())
                } else {
                    let events: Vec<_> = revision
                        .events
                        .iter()
                        .filter(|event| slot.range.contains(&event.kv.key))
                        .cloned()
                        .collect();
                    if events.is_empty() {
                        continue;
                    }
                    Arc::new(RevisionEvents {
                        revision: revision.revision,
                        events,
                    })
                };
                match slot.queue.try_send(matching) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        slot.lagged.store(true, Ordering::Release);
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
    }

    /// Registers a watcher if it has seen everything up to the last
    /// published revision (`seen`), otherwise returns `None` so it reads more
    /// history first.
    fn register(
        &self,
        range: &KeyRange,
        seen: i64,
    ) -> Option<(mpsc::Receiver<Arc<RevisionEvents>>, Arc<AtomicBool>)> {
        let mut inner = self.lock();
        if seen < inner.published {
            return None;
        }
        let (queue, receiver) = mpsc::channel(self.queue_capacity);
        let lagged = Arc::new(AtomicBool::new(false));
        let id = inner.next_id;
        inner.next_id += 1;
        inner.slots.insert(
            id,
            Slot {
                range: range.clone(),
                queue,
                lagged: lagged.clone(),
            },
        );
        Some((receiver, lagged))
    }

    /// The state was replaced wholesale (a Raft snapshot was installed):
    /// every watcher is cut off as if it lagged; resuming finds its revision
    /// compacted and re-lists.
    pub fn reset_to(&self, revision: i64) {
        let mut inner = self.lock();
        inner.published = revision;
        for slot in inner.slots.values() {
            slot.lagged.store(true, Ordering::Release);
        }
        inner.slots.clear();
    }

    /// Drops every watcher: they end with [`WatchError::Closed`].
    pub fn close(&self) {
        self.lock().slots.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubInner> {
        // A panic while holding the lock leaves plain data behind; carry on.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A stream of the revisions that touched a key range, from a start
/// revision on. Ends with an error when it cannot go on (compacted, cut off
/// for lagging, store closed); `None` only after such an error.
#[derive(Debug)]
pub struct Watcher {
    receiver: mpsc::Receiver<Result<RevisionEvents, WatchError>>,
    start_revision: i64,
}

impl Watcher {
    /// The next revision with events in the range.
    pub async fn next(&mut self) -> Option<Result<RevisionEvents, WatchError>> {
        self.receiver.recv().await
    }

    /// The first revision this watcher reports (the store's revision + 1
    /// when it was asked to start "now").
    pub fn start_revision(&self) -> i64 {
        self.start_revision
    }
}

/// Starts a watcher on `range` from `start_revision` (0: from the next
/// revision on). `buffer` bounds how many revisions wait for the consumer.
pub(crate) fn spawn(
    mvcc: Arc<Mvcc>,
    hub: Arc<WatchHub>,
    range: KeyRange,
    start_revision: i64,
    buffer: usize,
) -> Result<Watcher, WatchError> {
    let published = hub.published();
    let start = if start_revision <= 0 {
        published + 1
    } else {
        start_revision
    };
    if start > published + 1 {
        // Watching a future revision is allowed by etcd, but a Kubernetes
        // client asking for it has a stale idea of the store: say so.
        return Err(WatchError::FutureRevision {
            requested: start,
            current: published,
        });
    }
    let compacted = mvcc
        .compacted()
        .map_err(|err| WatchError::Closed(err.to_string()))?;
    if start < compacted {
        return Err(WatchError::Compacted {
            requested: start,
            compact_revision: compacted,
        });
    }
    let (sender, receiver) = mpsc::channel(buffer.max(1));
    tokio::spawn(run(mvcc, hub, range, start, sender));
    Ok(Watcher {
        receiver,
        start_revision: start,
    })
}

async fn run(
    mvcc: Arc<Mvcc>,
    hub: Arc<WatchHub>,
    range: KeyRange,
    start: i64,
    out: mpsc::Sender<Result<RevisionEvents, WatchError>>,
) {
    // Everything before `next` has been delivered.
    let mut next = start;
    let (mut live, lagged) = loop {
        if let Some(registered) = hub.register(&range, next - 1) {
            break registered;
        }
        let to = hub.published();
        let page = {
            let (mvcc, range) = (mvcc.clone(), range.clone());
            tokio::task::spawn_blocking(move || mvcc.history(&range, next, to, HISTORY_PAGE)).await
        };
        let page = match page {
            Ok(Ok(page)) => page,
            Ok(Err(StoreError::Compacted {
                compact_revision, ..
            })) => {
                let _ = out
                    .send(Err(WatchError::Compacted {
                        requested: next,
                        compact_revision,
                    }))
                    .await;
                return;
            }
            Ok(Err(err)) => {
                let _ = out.send(Err(WatchError::Closed(err.to_string()))).await;
                return;
            }
            Err(err) => {
                let _ = out.send(Err(WatchError::Closed(err.to_string()))).await;
                return;
            }
        };
        for revision in page.revisions {
            if out.send(Ok(revision)).await.is_err() {
                return;
            }
        }
        next = page.scanned_to + 1;
    };
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Some(revision) => {
                    if revision.revision < next {
                        continue;
                    }
                    next = revision.revision + 1;
                    let revision = Arc::unwrap_or_clone(revision);
                    if out.send(Ok(revision)).await.is_err() {
                        return;
                    }
                }
                None => {
                    let err = if lagged.load(Ordering::Acquire) {
                        WatchError::Lagged { resume_from: next }
                    } else {
                        WatchError::Closed("the store is shutting down".to_owned())
                    };
                    let _ = out.send(Err(err)).await;
                    return;
                }
            },
            () = out.closed() => return,
        }
    }
}
