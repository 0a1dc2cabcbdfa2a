//! Event expiry: Events are deleted once their last occurrence is older
//! than the TTL (Kubernetes' `--event-ttl`, 1 h by default), so they tell
//! what happened lately without growing the store forever.
//!
//! No informer: events are written far more often than they are read,
//! and caching every one to expire a few would cost more than listing
//! them now and then.

use std::time::{Duration, SystemTime};

use rudder_api::{core::Event, time::parse_rfc3339};
use rudder_client::{Client, ClientError, ListOptions};
use tokio::task::JoinHandle;

/// Deletes expired Events.
#[derive(Debug, Clone)]
pub struct EventExpiry {
    client: Client,
    ttl: Duration,
}

impl EventExpiry {
    /// Expires events whose last occurrence is older than `ttl`.
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self { client, ttl }
    }

    /// Spawns the periodic sweep.
    pub fn start(self, tasks: &mut Vec<JoinHandle<()>>) {
        let period = (self.ttl / 4).clamp(Duration::from_millis(200), Duration::from_secs(60));
        tasks.push(tokio::spawn(async move {
            loop {
                match self.sweep(SystemTime::now()).await {
                    Ok(0) => {}
                    Ok(expired) => tracing::debug!(expired, "deleted expired events"),
                    Err(err) => tracing::warn!(%err, "expiring events"),
                }
                tokio::time::sleep(period).await;
            }
        }));
    }

    /// Deletes the events expired at `now`; returns how many.
    ///
    /// # Errors
    /// Listing failed, or a delete failed other than by the event being
    /// gone already.
    pub async fn sweep(&self, now: SystemTime) -> Result<usize, ClientError> {
        let events = self.client.list::<Event>(&ListOptions::default()).await?;
        let mut expired = 0;
        for event in events.items {
            if !self.is_expired(&event, now) {
                continue;
            }
            let meta = &event.metadata;
            match self
                .client
                .delete::<Event>(&meta.namespace, &meta.name)
                .await
            {
                Ok(_) => expired += 1,
                Err(ClientError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(expired)
    }

    fn is_expired(&self, event: &Event, now: SystemTime) -> bool {
        let last = event
            .last_timestamp
            .as_deref()
            .or(event.first_timestamp.as_deref())
            .or(event.metadata.creation_timestamp.as_deref())
            .and_then(parse_rfc3339);
        // An event without a readable time is kept: expiring it would
        // guess.
        last.is_some_and(|last| now.duration_since(last).is_ok_and(|age| age > self.ttl))
    }
}
