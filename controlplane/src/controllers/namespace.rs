//! Namespace deletion: a deleted Namespace is kept, `Terminating`, with
//! the `kubernetes` finalizer while this controller deletes every object in
//! it (pods gracefully: they go once their agents have stopped them); when
//! nothing is left it removes the finalizer, and the API server removes
//! the Namespace.
//!
//! No informer: namespaces are deleted rarely, and a sweep lists only the
//! contents of those being deleted.

use std::time::Duration;

use rudder_api::Kind;
use rudder_client::{Client, ClientError, ListOptions};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::apiserver::deletion::NAMESPACE_FINALIZER;

/// How often terminating namespaces are looked at.
const SWEEP_PERIOD: Duration = Duration::from_millis(500);

/// Empties and finalizes deleted Namespaces.
#[derive(Debug, Clone)]
pub struct NamespaceController {
    client: Client,
}

impl NamespaceController {
    /// A controller acting through `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Spawns the periodic sweep.
    pub fn start(self, tasks: &mut Vec<JoinHandle<()>>) {
        tasks.push(tokio::spawn(async move {
            loop {
                if let Err(err) = self.sweep().await {
                    tracing::warn!(%err, "finalizing deleted namespaces");
                }
                tokio::time::sleep(SWEEP_PERIOD).await;
            }
        }));
    }

    /// One pass over the namespaces being deleted; returns how many were
    /// finalized.
    ///
    /// # Errors
    /// Listing or writing failed (the next sweep tries again).
    pub async fn sweep(&self) -> Result<usize, ClientError> {
        let namespaces = self
            .client
            .list_json(Kind::Namespace, &ListOptions::default())
            .await?;
        let mut finalized = 0;
        for namespace in namespaces.items {
            if namespace["metadata"]["deletionTimestamp"].is_null() || !has_finalizer(&namespace) {
                continue;
            }
            let name = namespace["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if self.delete_contents(&name).await? == 0 {
                self.finalize(namespace).await?;
                tracing::info!(namespace = %name, "namespace emptied and finalized");
                finalized += 1;
            }
        }
        Ok(finalized)
    }

    /// Deletes what is in `namespace`; returns how many objects are still
    /// there (pods terminating, objects with finalizers).
    async fn delete_contents(&self, namespace: &str) -> Result<usize, ClientError> {
        let mut left = 0;
        for kind in Kind::ALL.into_iter().filter(|kind| kind.namespaced()) {
            let options = ListOptions {
                namespace: namespace.to_owned(),
                ..ListOptions::default()
            };
            let objects = self.client.list_json(kind, &options).await?;
            for object in objects.items {
                left += 1;
                if !object["metadata"]["deletionTimestamp"].is_null() {
                    continue;
                }
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                match self.client.delete_json(kind, namespace, name, "").await {
                    Ok(_) | Err(ClientError::NotFound(_)) => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(left)
    }

    async fn finalize(&self, mut namespace: Value) -> Result<(), ClientError> {
        if let Some(finalizers) = namespace
            .pointer_mut("/spec/finalizers")
            .and_then(Value::as_array_mut)
        {
            finalizers.retain(|f| f != NAMESPACE_FINALIZER);
        }
        match self
            .client
            .update_json(Kind::Namespace, &namespace, false)
            .await
        {
            Ok(_) | Err(ClientError::NotFound(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

fn has_finalizer(namespace: &Value) -> bool {
    namespace
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|list| list.iter().any(|f| f == NAMESPACE_FINALIZER))
}
