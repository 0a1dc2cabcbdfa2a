//! The one list+watch loop, as kube-rs's `watcher`: list (the complete
//! state at a revision), watch from the list's revision, resume the watch
//! from the last revision seen when it ends, and list again when the
//! server says that revision is compacted (`Gone`). Errors restart the
//! loop with backoff; it never returns.

use std::time::Duration;

use rudder_api::Resource;

use crate::{Client, ClientError, ListOptions, WatchEvent};

/// What the loop hands its caller, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ListWatchEvent<T> {
    /// Everything that matches, as of `revision`: it replaces whatever the
    /// caller knew (objects not in it are gone).
    Listed {
        /// The objects.
        items: Vec<T>,
        /// The store revision of the list.
        revision: i64,
    },
    /// One change after the last list.
    Watched(WatchEvent<T>),
}

/// Lists and watches `T` forever, calling `handle` with each list and each
/// watch event.
pub async fn list_watch<T: Resource>(
    client: &Client,
    options: &ListOptions,
    mut handle: impl FnMut(ListWatchEvent<T>),
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match list_then_watch(client, options, &mut handle).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(err) => {
                tracing::debug!(kind = %T::KIND, error = %err, "list+watch restarts");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One list, then watches until the revision is compacted (`Ok`) or
/// something fails (`Err`).
async fn list_then_watch<T: Resource>(
    client: &Client,
    options: &ListOptions,
    handle: &mut impl FnMut(ListWatchEvent<T>),
) -> Result<(), ClientError> {
    let list = client.list::<T>(options).await?;
    tracing::debug!(kind = %T::KIND, items = list.items.len(), "listed");
    let mut version = list.resource_version;
    handle(ListWatchEvent::Listed {
        items: list.items,
        revision: version.parse().unwrap_or(0),
    });
    loop {
        let mut watch = match client.watch::<T>(options, &version).await {
            Ok(watch) => watch,
            Err(ClientError::Gone(_)) => return Ok(()),
            Err(err) => return Err(err),
        };
        loop {
            match watch.next().await {
                None => break,
                Some(Err(ClientError::Gone(_))) => return Ok(()),
                Some(Err(err)) => return Err(err),
                Some(Ok(event)) => {
                    let seen = match &event {
                        WatchEvent::Bookmark { resource_version } => resource_version,
                        WatchEvent::Added(object)
                        | WatchEvent::Modified(object)
                        | WatchEvent::Deleted(object) => &object.metadata().resource_version,
                    };
                    if !seen.is_empty() {
                        version.clone_from(seen);
                    }
                    handle(ListWatchEvent::Watched(event));
                }
            }
        }
    }
}
