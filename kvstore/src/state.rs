//! The state machine as the consensus layers drive it: apply to redb, then
//! tell the watchers and the lease clock.

use std::{sync::Arc, time::Instant};

use redb::WriteTransaction;

use crate::{
    error::StoreError,
    lease::LeaseClock,
    mvcc::Mvcc,
    types::{Command, CommandResult},
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

    /// Applies `commands` in one transaction, then publishes their events
    /// and updates lease deadlines. See [`Mvcc::apply`] for the arguments.
    pub fn apply(
        &self,
        commands: &[Command],
        durable: bool,
        extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<Vec<Result<CommandResult, StoreError>>, StoreError> {
        let applied = self.mvcc.apply(commands, durable, extra)?;
        self.hub.publish(&applied.events);
        let now = Instant::now();
        for (command, result) in commands.iter().zip(&applied.results) {
            match (command, result) {
                (Command::LeaseGrant { .. }, Ok(CommandResult::LeaseGranted { id, ttl, .. })) => {
                    self.leases.grant(*id, *ttl, now);
                }
                (Command::LeaseRevoke { id }, _) => self.leases.remove(*id),
                _ => {}
            }
        }
        Ok(applied.results)
    }
}
