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
    collections::{HashMap, VecDeque},
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
///
/// It first replays history from the store, page by page, and switches to
/// its live queue in the hub once it has read everything published; a
/// watcher starting from the next revision is registered at once.
#[derive(Debug)]
pub struct Watcher {
    mvcc: Arc<Mvcc>,
    hub: Arc<WatchHub>,
    range: KeyRange,
    start_revision: i64,
    /// Every revision before this one has been handed out or skipped.
    next: i64,
    /// History read but not yet handed out.
    replayed: VecDeque<RevisionEvents>,
    /// Every revision before this one has been read from history.
    read_to: i64,
    /// Once registered: the live queue and whether it was cut off.
    live: Option<(mpsc::Receiver<Arc<RevisionEvents>>, Arc<AtomicBool>)>,
    ended: bool,
}

impl Watcher {
    /// The next revision with events in the range. Cancel-safe: dropping
    /// the future loses nothing.
    pub async fn next(&mut self) -> Option<Result<RevisionEvents, WatchError>> {
        if self.ended {
            return None;
        }
        let result = self.advance().await;
        if result.is_err() {
            self.ended = true;
        }
        Some(result)
    }

    async fn advance(&mut self) -> Result<RevisionEvents, WatchError> {
        loop {
            if let Some(revision) = self.replayed.pop_front() {
                self.next = revision.revision + 1;
                return Ok(revision);
            }
            if let Some((live, lagged)) = &mut self.live {
                let Some(revision) = live.recv().await else {
                    return Err(if lagged.load(Ordering::Acquire) {
                        WatchError::Lagged {
                            resume_from: self.next,
                        }
                    } else {
                        WatchError::Closed("the store is shutting down".to_owned())
                    });
                };
                if revision.revision < self.next {
                    // Already replayed from history.
                    continue;
                }
                self.next = revision.revision + 1;
                return Ok(Arc::unwrap_or_clone(revision));
            }
            if let Some(registered) = self.hub.register(&self.range, self.read_to - 1) {
                self.live = Some(registered);
                continue;
            }
            self.read_history().await?;
        }
    }

    /// Reads the next page of history into `replayed`.
    async fn read_history(&mut self) -> Result<(), WatchError> {
        let to = self.hub.published();
        let (mvcc, range, from) = (self.mvcc.clone(), self.range.clone(), self.read_to);
        let page =
            tokio::task::spawn_blocking(move || mvcc.history(&range, from, to, HISTORY_PAGE))
                .await
                .map_err(|err| WatchError::Closed(err.to_string()))?;
        let page = page.map_err(|err| match err {
            StoreError::Compacted {
                compact_revision, ..
            } => WatchError::Compacted {
                requested: from,
                compact_revision,
            },
            other => WatchError::Closed(other.to_string()),
        })?;
        self.replayed.extend(page.revisions);
        self.read_to = page.scanned_to + 1;
        Ok(())
    }

    /// The first revision this watcher reports (the store's revision + 1
    /// when it was asked to start "now").
    pub fn start_revision(&self) -> i64 {
        self.start_revision
    }
}

/// Starts a watcher on `range` from `start_revision` (0: from the next
/// revision on).
pub(crate) fn start(
    mvcc: Arc<Mvcc>,
    hub: Arc<WatchHub>,
    range: KeyRange,
    start_revision: i64,
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
    // Starting from the next revision: register now, so every write after
    // this call reaches the live queue.
    let live = hub.register(&range, start - 1);
    Ok(Watcher {
        mvcc,
        hub,
        range,
        start_revision: start,
        next: start,
        replayed: VecDeque::new(),
        read_to: start,
        live,
        ended: false,
    })
}
