//! Informers: a local, indexed copy of one kind's objects, kept current by
//! list + watch through the API server.
//!
//! The loop is [`list_watch`]: list (the cache becomes exactly that list,
//! changes reported as adds/updates/deletes), watch from the list's
//! revision, and on a `Gone` (compacted or lagged) watch list again.
//! Handlers run after the cache has the change, so a handler that enqueues
//! a key never makes a worker read an older cache than the event it saw.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, RwLock},
    time::Duration,
};

use rudder_api::{
    Resource,
    apps::{Deployment, ReplicaSet},
    coordination::Lease,
    core::{Endpoints, Node, Pod, Service},
    discovery::EndpointSlice,
    facts::{ObjectExt, ObjectRef},
    selector::Selector,
};
use tokio::sync::watch;

use crate::{
    client::{Client, ListOptions, WatchEvent},
    list_watch::{ListWatchEvent, list_watch},
};

/// An object the informer can index by the node it is bound to (Pods);
/// other kinds are bound to none.
pub trait NodeBound: Resource {
    /// The node the object is bound to, for the by-node index.
    fn node_name(&self) -> Option<&str> {
        None
    }
}

impl NodeBound for Pod {
    fn node_name(&self) -> Option<&str> {
        self.spec.node_name.as_deref().filter(|n| !n.is_empty())
    }
}
impl NodeBound for Node {}
impl NodeBound for Deployment {}
impl NodeBound for ReplicaSet {}
impl NodeBound for Service {}
impl NodeBound for Endpoints {}
impl NodeBound for Lease {}
impl NodeBound for EndpointSlice {}

/// A change the informer applied to its cache.
#[derive(Debug, Clone)]
pub enum Change<T> {
    /// A new object.
    Added(Arc<T>),
    /// An object changed: before and after.
    Updated(Arc<T>, Arc<T>),
    /// An object went away: its last state.
    Deleted(Arc<T>),
}

impl<T> Change<T> {
    /// The object's newest state.
    pub fn object(&self) -> &Arc<T> {
        match self {
            Change::Added(object) | Change::Updated(_, object) | Change::Deleted(object) => object,
        }
    }

    /// The previous state, if any.
    pub fn old(&self) -> Option<&Arc<T>> {
        match self {
            Change::Updated(old, _) => Some(old),
            Change::Added(_) | Change::Deleted(_) => None,
        }
    }
}

type Handler<T> = Box<dyn Fn(&Change<T>) + Send + Sync>;

struct Cache<T> {
    objects: HashMap<ObjectRef, Arc<T>>,
    by_namespace: HashMap<String, BTreeSet<ObjectRef>>,
    by_node: HashMap<String, BTreeSet<ObjectRef>>,
    by_label: HashMap<(String, String), BTreeSet<ObjectRef>>,
}

impl<T: NodeBound> Cache<T> {
    fn new() -> Self {
        Self {
            objects: HashMap::new(),
            by_namespace: HashMap::new(),
            by_node: HashMap::new(),
            by_label: HashMap::new(),
        }
    }

    fn index(&mut self, key: &ObjectRef, object: &T) {
        let meta = object.metadata();
        self.by_namespace
            .entry(meta.namespace.clone())
            .or_default()
            .insert(key.clone());
        if let Some(node) = object.node_name() {
            self.by_node
                .entry(node.to_owned())
                .or_default()
                .insert(key.clone());
        }
        for (k, v) in &meta.labels {
            self.by_label
                .entry((k.clone(), v.clone()))
                .or_default()
                .insert(key.clone());
        }
    }

    fn unindex(&mut self, key: &ObjectRef, object: &T) {
        fn remove<K: std::hash::Hash + Eq>(
            index: &mut HashMap<K, BTreeSet<ObjectRef>>,
            at: K,
            key: &ObjectRef,
        ) {
            if let Some(keys) = index.get_mut(&at) {
                keys.remove(key);
                if keys.is_empty() {
                    index.remove(&at);
                }
            }
        }
        let meta = object.metadata();
        remove(&mut self.by_namespace, meta.namespace.clone(), key);
        if let Some(node) = object.node_name() {
            remove(&mut self.by_node, node.to_owned(), key);
        }
        for (k, v) in &meta.labels {
            remove(&mut self.by_label, (k.clone(), v.clone()), key);
        }
    }

    fn upsert(&mut self, object: T) -> Change<T> {
        let key = object.key();
        let object = Arc::new(object);
        let old = self.objects.insert(key.clone(), object.clone());
        if let Some(old) = &old {
            self.unindex(&key, old);
        }
        self.index(&key, &object);
        match old {
            Some(old) => Change::Updated(old, object),
            None => Change::Added(object),
        }
    }

    fn remove(&mut self, key: &ObjectRef) -> Option<Arc<T>> {
        let old = self.objects.remove(key)?;
        self.unindex(key, &old);
        Some(old)
    }
}

struct Shared<T> {
    cache: RwLock<Cache<T>>,
    handlers: RwLock<Vec<Handler<T>>>,
    /// Highest store revision the cache reflects.
    revision: watch::Sender<i64>,
    /// Whether the first list has been applied.
    synced: watch::Sender<bool>,
}

/// A cached, indexed, continuously updated view of one kind's objects.
/// Cheap to clone; clones share the cache.
pub struct Informer<T> {
    shared: Arc<Shared<T>>,
    options: ListOptions,
}

impl<T> Clone for Informer<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            options: self.options.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Informer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informer")
            .field("kind", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A handler that panicked leaves a consistent cache behind (handlers
    // run after the change is applied), so a poisoned lock is still usable.
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<T: NodeBound> Informer<T> {
    /// An informer over the objects `options` select; nothing happens until
    /// [`Informer::run`].
    pub fn new(options: ListOptions) -> Self {
        Self {
            shared: Arc::new(Shared {
                cache: RwLock::new(Cache::new()),
                handlers: RwLock::new(Vec::new()),
                revision: watch::Sender::new(0),
                synced: watch::Sender::new(false),
            }),
            options,
        }
    }

    /// Registers a handler called for every change, after the cache has it.
    /// Handlers must be quick (enqueue a key) and must not block.
    pub fn on_change(&self, handler: impl Fn(&Change<T>) + Send + Sync + 'static) {
        write(&self.shared.handlers).push(Box::new(handler));
    }

    /// Lists and watches forever through [`list_watch`] (re-listing
    /// after a compacted watch, retrying with backoff after errors). Spawn
    /// it.
    pub async fn run(self, client: Client) {
        let options = self.options.clone();
        list_watch(&client, &options, |event| match event {
            ListWatchEvent::Listed { items, revision } => self.replace(items, revision),
            ListWatchEvent::Watched(event) => self.apply(event),
        })
        .await;
    }

    /// Makes the cache exactly `items`, reporting the differences.
    fn replace(&self, items: Vec<T>, revision: i64) {
        let mut changes = Vec::new();
        {
            let mut cache = write(&self.shared.cache);
            let mut seen = BTreeSet::new();
            for item in items {
                let key = item.key();
                seen.insert(key.clone());
                let same = cache.objects.get(&key).is_some_and(|old| {
                    old.metadata().resource_version == item.metadata().resource_version
                });
                if !same {
                    changes.push(cache.upsert(item));
                }
            }
            let gone: Vec<ObjectRef> = cache
                .objects
                .keys()
                .filter(|key| !seen.contains(*key))
                .cloned()
                .collect();
            for key in gone {
                if let Some(old) = cache.remove(&key) {
                    changes.push(Change::Deleted(old));
                }
            }
        }
        self.shared
            .revision
            .send_modify(|r| *r = (*r).max(revision));
        self.notify(&changes);
        self.shared.synced.send_replace(true);
    }

    /// Applies one watch event.
    fn apply(&self, event: WatchEvent<T>) {
        let (change, version) = {
            let mut cache = write(&self.shared.cache);
            match event {
                WatchEvent::Bookmark { resource_version } => (None, resource_version),
                WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                    let version = object.metadata().resource_version.clone();
                    (Some(cache.upsert(object)), version)
                }
                WatchEvent::Deleted(object) => {
                    let version = object.metadata().resource_version.clone();
                    (cache.remove(&object.key()).map(Change::Deleted), version)
                }
            }
        };
        if let Ok(revision) = version.parse::<i64>() {
            self.shared
                .revision
                .send_modify(|r| *r = (*r).max(revision));
        }
        if let Some(change) = change {
            self.notify(std::slice::from_ref(&change));
        }
    }

    fn notify(&self, changes: &[Change<T>]) {
        let handlers = read(&self.shared.handlers);
        for change in changes {
            for handler in handlers.iter() {
                handler(change);
            }
        }
    }

    /// Waits until the first list is in the cache.
    pub async fn synced(&self) {
        let mut synced = self.shared.synced.subscribe();
        let _ = synced.wait_for(|s| *s).await;
    }

    /// Waits (at most `limit`) until the cache reflects store revision
    /// `revision`: a controller's read-your-writes barrier after it wrote.
    /// Returns whether it got there.
    pub async fn wait_for_revision(&self, revision: i64, limit: Duration) -> bool {
        let mut seen = self.shared.revision.subscribe();
        tokio::time::timeout(limit, seen.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits (at most `limit`) until `check` holds on the cache.
    pub async fn wait_until(&self, limit: Duration, check: impl Fn(&Self) -> bool) -> bool {
        let mut seen = self.shared.revision.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if check(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, seen.changed())
                .await
                .is_err()
            {
                return check(self);
            }
        }
    }

    /// The store revision the cache reflects.
    pub fn revision(&self) -> i64 {
        *self.shared.revision.borrow()
    }

    /// One object by its namespace and name.
    pub fn get(&self, key: &ObjectRef) -> Option<Arc<T>> {
        read(&self.shared.cache).objects.get(key).cloned()
    }

    /// Every object.
    pub fn list(&self) -> Vec<Arc<T>> {
        read(&self.shared.cache).objects.values().cloned().collect()
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        read(&self.shared.cache).objects.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Objects in `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<T>> {
        let cache = read(&self.shared.cache);
        collect(&cache, cache.by_namespace.get(namespace))
    }

    /// Objects bound to `node`.
    pub fn on_node(&self, node: &str) -> Vec<Arc<T>> {
        let cache = read(&self.shared.cache);
        collect(&cache, cache.by_node.get(node))
    }

    /// Objects in `namespace` whose labels match `selector`; `hint` (one
    /// equality the selector requires) narrows the search through the
    /// label index.
    pub fn select(
        &self,
        namespace: &str,
        selector: &Selector,
        hint: Option<(&str, &str)>,
    ) -> Vec<Arc<T>> {
        let cache = read(&self.shared.cache);
        let keys = match hint {
            Some((k, v)) => cache.by_label.get(&(k.to_owned(), v.to_owned())),
            None => cache.by_namespace.get(namespace),
        };
        let Some(keys) = keys else { return Vec::new() };
        keys.iter()
            .filter_map(|key| cache.objects.get(key))
            .filter(|object| {
                let meta = object.metadata();
                meta.namespace == namespace && selector.matches(&meta.labels)
            })
            .cloned()
            .collect()
    }
}

fn collect<T>(cache: &Cache<T>, keys: Option<&BTreeSet<ObjectRef>>) -> Vec<Arc<T>> {
    keys.into_iter()
        .flatten()
        .filter_map(|key| cache.objects.get(key).cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use rudder_api::meta::ObjectMeta;

    use super::*;

    fn pod(name: &str, node: Option<&str>, app: &str, version: &str) -> Pod {
        let mut pod = Pod {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                resource_version: version.into(),
                labels: [("app".to_owned(), app.to_owned())].into(),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        pod.spec.node_name = node.map(str::to_owned);
        pod
    }

    #[test]
    fn indexes_follow_changes_and_relists() {
        let informer = Informer::<Pod>::new(ListOptions::default());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        informer.on_change(move |change| {
            let kind = match change {
                Change::Added(_) => "added",
                Change::Updated(..) => "updated",
                Change::Deleted(_) => "deleted",
            };
            record
                .lock()
                .expect("lock")
                .push(format!("{kind} {}", change.object().metadata.name));
        });
        informer.replace(
            vec![pod("a", Some("n1"), "web", "1"), pod("b", None, "db", "2")],
            2,
        );
        informer.apply(WatchEvent::Modified(pod("b", Some("n2"), "web", "3")));
        let web = Selector::parse("app=web").expect("selector");
        assert_eq!(
            informer.select("default", &web, Some(("app", "web"))).len(),
            2
        );
        assert_eq!(informer.on_node("n2").len(), 1);
        assert_eq!(informer.revision(), 3);
        // A re-list without "a" reports it deleted and drops it from the indexes.
        informer.replace(vec![pod("b", Some("n2"), "web", "3")], 7);
        assert!(informer.on_node("n1").is_empty());
        assert_eq!(informer.in_namespace("default").len(), 1);
        assert_eq!(
            *seen.lock().expect("lock"),
            ["added a", "added b", "updated b", "deleted a"]
        );
    }
}
