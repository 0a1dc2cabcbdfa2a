//! The state machine as the consensus layers drive it: apply to redb, then
//! tell the watchers and the lease clock.

use std::{sync::Arc, time::Instant};

use redb::WriteTransaction;

use crate::{
    error::StoreError,
    lease::LeaseClock,
    mvcc::{Mvcc, Staged},
    types::{Command, CommandResult, RevisionEvents},
    watch::WatchHub,
};

/// The replicated state of one replica, and who must hear about changes.
#[derive(Debug)]
pub(crate) struct StateMachine {
    mvcc: Arc<Mvcc>,
    hub: Arc<WatchHub>,
    leases: LeaseClock,
}

impl StateMachine {
    /// Wraps the store's state; loads lease deadlines (full TTLs from now).
    pub fn new(mvcc: Arc<Mvcc>, watch_queue: usize) -> Result<Self, StoreError> {
        let hub = Arc::new(WatchHub::new(mvcc.revision()?, watch_queue));
        let leases = LeaseClock::default();
        let now = Instant::now();
        for (id, ttl) in mvcc.leases()? {
            leases.grant(id, ttl, now);
        }
        Ok(Self { mvcc, hub, leases })
    }

    /// The key-value state.
    pub fn mvcc(&self) -> &Arc<Mvcc> {
        &self.mvcc
    }

    /// The watchers.
    pub fn hub(&self) -> &Arc<WatchHub> {
        &self.hub
    }

    /// Lease deadlines.
    pub fn leases(&self) -> &LeaseClock {
        &self.leases
    }

    /// Reloads what is derived from the stored state after it was replaced
    /// (a Raft snapshot): the watchers' revision and lease deadlines.
    pub fn reload(&self) -> Result<(), StoreError> {
        self.hub.reset_to(self.mvcc.revision()?);
        let now = Instant::now();
        self.leases.clear();
        for (id, ttl) in self.mvcc.leases()? {
            self.leases.grant(id, ttl, now);
        }
        Ok(())
    }

    /// Applies `commands` without changing anything yet: their results,
    /// events and changes, for [`StateMachine::publish`] once durable.
    pub fn stage(&self, commands: &[Command]) -> Result<Staged, StoreError> {
        self.mvcc.stage(commands)
    }

    /// Makes staged changes visible to readers and watchers (their
    /// write-ahead-log record `wal_seq` is durable); returns the results
    /// and how many rows are pending for redb.
    pub fn publish_logged(
        &self,
        commands: &[Command],
        staged: Staged,
        wal_seq: i64,
    ) -> (Vec<Result<CommandResult, StoreError>>, usize) {
        let Staged {
            delta,
            results,
            events,
        } = staged;
        let pending = self.mvcc.add_pending(delta, wal_seq);
        self.announce(commands, &results, &events);
        (results, pending)
    }

    /// Applies `commands` and writes them into redb in one transaction
    /// (fsynced if `durable`), with `extra` writing further tables in the
    /// same one (Raft's applied log id); then publishes their events and
    /// updates lease deadlines.
    pub fn apply(
        &self,
        commands: &[Command],
        durable: bool,
        extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<Vec<Result<CommandResult, StoreError>>, StoreError> {
        let Staged {
            delta,
            results,
            events,
        } = self.mvcc.stage(commands)?;
        self.mvcc.write_delta(&delta, durable, extra)?;
        self.announce(commands, &results, &events);
        Ok(results)
    }

    /// Tells the lease clock, then the watchers, about applied commands:
    /// a watcher that sees a revoked lease's keys deleted must find the
    /// lease gone too (a keep-alive racing the event would renew it).
    fn announce(
        &self,
        commands: &[Command],
        results: &[Result<CommandResult, StoreError>],
        events: &[RevisionEvents],
    ) {
        let now = Instant::now();
        for (command, result) in commands.iter().zip(results) {
            match (command, result) {
                (Command::LeaseGrant { .. }, Ok(CommandResult::LeaseGranted { id, ttl, .. })) => {
                    self.leases.grant(*id, *ttl, now);
                }
                (Command::LeaseRevoke { id }, _) => self.leases.remove(*id),
                _ => {}
            }
        }
        self.hub.publish(events);
    }
}
