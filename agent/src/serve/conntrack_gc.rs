//! Collecting expired conntrack entries every `gc_interval`.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use super::lock;
use crate::dataplane::services::{ConntrackTimeouts, ServiceDataplane};

/// Collects conntrack every `interval`, the first time one interval after
/// the start.
pub(super) async fn run(services: Arc<Mutex<ServiceDataplane>>, interval: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let collected = tokio::task::block_in_place(|| {
            lock(&services).collect_conntrack(&ConntrackTimeouts::default())
        });
        match collected {
            Ok(stats) => tracing::debug!(?stats, "conntrack collected"),
            Err(err) => tracing::warn!(%err, "conntrack collection"),
        }
    }
}
