//! The watched view of the RBAC objects: one list+watch per kind (Role,
//! ClusterRole, RoleBinding, ClusterRoleBinding) keeps a [`Policy`], and
//! every change rebuilds the [`RbacIndex`] and swaps it in. Requests read
//! the current index through an `Arc`, never the store.

use std::{
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use rudder_api::{
    Kind, Resource,
    rbac::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef},
};
use serde_json::Value;
use tokio::sync::watch;

use super::rbac::{Policy, RbacIndex};
use crate::apiserver::{ApiServer, EventType, Filter};

/// How long a failed list waits before the next try.
const RETRY: Duration = Duration::from_millis(500);

/// The current RBAC index, shared by the authoriser and the view's
/// watchers.
#[derive(Debug, Clone, Default)]
pub struct RbacView {
    index: Arc<RwLock<Arc<RbacIndex>>>,
    policy: Arc<Mutex<Policy>>,
    /// How many of the four kinds have been listed once.
    synced: Option<watch::Receiver<usize>>,
}

impl RbacView {
    /// An empty view nobody feeds (denies everything RBAC would decide).
    pub fn empty() -> Self {
        Self::default()
    }

    /// The index as of now.
    pub fn index(&self) -> Arc<RbacIndex> {
        match self.index.read() {
            Ok(index) => index.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The rules of the role `role_ref` names, seen from `namespace` (a
    /// RoleBinding's; a Role is looked up there).
    pub fn role_rules(&self, namespace: &str, role_ref: &RoleRef) -> Option<Vec<PolicyRule>> {
        let policy = match self.policy.lock() {
            Ok(policy) => policy,
            Err(poisoned) => poisoned.into_inner(),
        };
        match role_ref.kind.as_str() {
            "ClusterRole" => policy
                .cluster_roles
                .get(&role_ref.name)
                .map(|r| r.rules.clone()),
            "Role" => policy
                .roles
                .get(&(namespace.to_owned(), role_ref.name.clone()))
                .map(|r| r.rules.clone()),
            _ => None,
        }
    }

    /// Starts following the four kinds in `api`'s store until `stop`
    /// turns true.
    pub fn start(api: &ApiServer, stop: &watch::Receiver<bool>) -> Self {
        let (synced_tx, synced) = watch::channel(0usize);
        let view = Self {
            synced: Some(synced),
            ..Self::default()
        };
        let synced_tx = Arc::new(synced_tx);
        for kind in [
            Kind::Role,
            Kind::ClusterRole,
            Kind::RoleBinding,
            Kind::ClusterRoleBinding,
        ] {
            let follower = view.clone();
            let api = api.clone();
            let synced = synced_tx.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = follower.follow(api, kind, &synced) => {}
                    _ = stop.wait_for(|stop| *stop) => {}
                }
            });
        }
        view
    }

    /// Waits until every kind has been listed once (at most `timeout`).
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let Some(mut synced) = self.synced.clone() else {
            return true;
        };
        tokio::time::timeout(timeout, synced.wait_for(|n| *n >= 4))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// List, then watch from the list's revision; again from a fresh list
    /// when the watch ends or its revision is compacted.
    async fn follow(&self, api: ApiServer, kind: Kind, synced: &watch::Sender<usize>) {
        let mut counted = false;
        loop {
            let (items, revision) = match api.list(kind, &Filter::default()).await {
                Ok(listed) => listed,
                Err(err) => {
                    tracing::debug!(%kind, error = %err, "RBAC view: list failed; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            self.change(|policy| {
                clear(policy, kind);
                for item in &items {
                    put(policy, kind, item);
                }
            });
            if !counted {
                counted = true;
                synced.send_modify(|n| *n += 1);
            }
            let mut events = match api
                .watch(kind, Filter::default(), &revision.to_string())
                .await
            {
                Ok(events) => events,
                Err(err) => {
                    tracing::debug!(%kind, error = %err, "RBAC view: watch failed; re-listing");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            while let Some(event) = events.recv().await {
                let Ok(event) = event else { break };
                self.change(|policy| match event.type_ {
                    EventType::Added | EventType::Modified => put(policy, kind, &event.object),
                    EventType::Deleted => remove(policy, kind, &event.object),
                });
            }
            // Compacted or cut off: list again, without spinning.
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Applies `edit` to the policy and publishes the rebuilt index.
    fn change(&self, edit: impl FnOnce(&mut Policy)) {
        let mut policy = match self.policy.lock() {
            Ok(policy) => policy,
            Err(poisoned) => poisoned.into_inner(),
        };
        edit(&mut policy);
        let index = Arc::new(RbacIndex::build(&policy));
        // Published under the policy's lock: another kind's change built
        // meanwhile must not be overwritten by this older index.
        match self.index.write() {
            Ok(mut current) => *current = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
        drop(policy);
    }
}

fn key_of(object: &Value) -> (String, String) {
    let meta = rudder_api::object::metadata_of(object);
    (meta.namespace, meta.name)
}

fn typed<T: Resource>(object: &Value) -> Option<T> {
    match serde_json::from_value(object.clone()) {
        Ok(typed) => Some(typed),
        Err(err) => {
            // Stored objects were validated; one that does not decode
            // grants nothing rather than stopping the view.
            tracing::warn!(kind = %T::KIND, error = %err, "RBAC view: stored object does not decode");
            None
        }
    }
}

fn put(policy: &mut Policy, kind: Kind, object: &Value) {
    let (namespace, name) = key_of(object);
    match kind {
        Kind::Role => {
            if let Some(role) = typed::<Role>(object) {
                policy.roles.insert((namespace, name), role);
            }
        }
        Kind::ClusterRole => {
            if let Some(role) = typed::<ClusterRole>(object) {
                policy.cluster_roles.insert(name, role);
            }
        }
        Kind::RoleBinding => {
            if let Some(binding) = typed::<RoleBinding>(object) {
                policy.role_bindings.insert((namespace, name), binding);
            }
        }
        Kind::ClusterRoleBinding => {
            if let Some(binding) = typed::<ClusterRoleBinding>(object) {
                policy.cluster_role_bindings.insert(name, binding);
            }
        }
        _ => {}
    }
}

fn remove(policy: &mut Policy, kind: Kind, object: &Value) {
    let (namespace, name) = key_of(object);
    match kind {
        Kind::Role => drop(policy.roles.remove(&(namespace, name))),
        Kind::ClusterRole => drop(policy.cluster_roles.remove(&name)),
        Kind::RoleBinding => drop(policy.role_bindings.remove(&(namespace, name))),
        Kind::ClusterRoleBinding => drop(policy.cluster_role_bindings.remove(&name)),
        _ => {}
    }
}

fn clear(policy: &mut Policy, kind: Kind) {
    match kind {
        Kind::Role => policy.roles.clear(),
        Kind::ClusterRole => policy.cluster_roles.clear(),
        Kind::RoleBinding => policy.role_bindings.clear(),
        Kind::ClusterRoleBinding => policy.cluster_role_bindings.clear(),
        _ => {}
    }
}
