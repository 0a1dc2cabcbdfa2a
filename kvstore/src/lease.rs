//! Lease deadlines.
//!
//! Which leases exist, and their TTLs, is replicated state (the `leases`
//! table). When each one expires is not: like etcd, only the leader keeps
//! deadlines, refreshed by keep-alives, and a new leader (or a restarted
//! single node) gives every lease a full TTL again. Expiry is a revoke that
//! goes through the log like any write, so every replica deletes the same
//! keys at the same revision.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Deadlines of the leases this replica knows.
#[derive(Debug, Default)]
pub(crate) struct LeaseClock {
    leases: Mutex<HashMap<i64, Deadline>>,
}

#[derive(Debug, Clone, Copy)]
struct Deadline {
    ttl: i64,
    expires: Instant,
}

impl LeaseClock {
    /// Starts (or restarts) the full TTL of `id`.
    pub fn grant(&self, id: i64, ttl: i64, now: Instant) {
        self.lock().insert(
            id,
            Deadline {
                ttl,
                expires: now + ttl_duration(ttl),
            },
        );
    }

    /// Forgets every lease.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Forgets `id` (revoked or expired).
    pub fn remove(&self, id: i64) {
        self.lock().remove(&id);
    }

    /// Renews `id`; returns its TTL, or `None` if the lease is unknown.
    pub fn keep_alive(&self, id: i64, now: Instant) -> Option<i64> {
        let mut leases = self.lock();
        let deadline = leases.get_mut(&id)?;
        deadline.expires = now + ttl_duration(deadline.ttl);
        Some(deadline.ttl)
    }

    /// Seconds left for `id` (0 if it is due), or `None` if unknown.
    pub fn remaining(&self, id: i64, now: Instant) -> Option<i64> {
        let leases = self.lock();
        let deadline = leases.get(&id)?;
        let left = deadline.expires.saturating_duration_since(now).as_secs();
        Some(i64::try_from(left).unwrap_or(i64::MAX))
    }

    /// Gives every lease a full TTL from `now` (after a leader change).
    pub fn restart_all(&self, now: Instant) {
        for deadline in self.lock().values_mut() {
            deadline.expires = now + ttl_duration(deadline.ttl);
        }
    }

    /// Leases whose deadline has passed.
    pub fn expired(&self, now: Instant) -> Vec<i64> {
        self.lock()
            .iter()
            .filter(|(_, deadline)| deadline.expires <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Deadline>> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_pushes_the_deadline_back() {
        let clock = LeaseClock::default();
        let start = Instant::now();
        clock.grant(1, 10, start);
        assert!(clock.expired(start + Duration::from_secs(9)).is_empty());
        assert_eq!(
            clock.keep_alive(1, start + Duration::from_secs(9)),
            Some(10)
        );
        assert!(clock.expired(start + Duration::from_secs(18)).is_empty());
        assert_eq!(clock.expired(start + Duration::from_secs(19)), vec![1]);
        assert_eq!(clock.keep_alive(2, start), None);
    }
}
