//! The single-replica store: proposals go straight to the state machine
//! through one writer thread that commits them in batches.
//!
//! Group commit: while one batch waits for its fsync, new proposals queue
//! up; the writer takes all of them (up to [`MAX_BATCH`]) into the next
//! write transaction, so concurrent clients share one fsync. Every proposal
//! is answered only after the transaction holding it is durable.

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    thread,
};

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::{
    consensus::{Consensus, ReplicaStatus},
    error::StoreError,
    state::StateMachine,
    types::{Command, CommandResult},
};

/// Most proposals one write transaction takes.
const MAX_BATCH: usize = 1024;

struct Proposal {
    command: Command,
    reply: oneshot::Sender<Result<CommandResult, StoreError>>,
}

/// A store of one replica: it is always the leader.
pub(crate) struct SingleNode {
    /// `None` once shut down.
    proposals: Mutex<Option<mpsc::Sender<Proposal>>>,
    writer: Mutex<Option<thread::JoinHandle<()>>>,
    state: Arc<StateMachine>,
}

impl SingleNode {
    /// Starts the writer thread.
    pub fn start(state: Arc<StateMachine>) -> Result<Self, StoreError> {
        let (proposals, receiver) = mpsc::channel(MAX_BATCH * 4);
        let writer_state = state.clone();
        let writer = thread::Builder::new()
            .name("rudder-store-writer".to_owned())
            .spawn(move || write_loop(&writer_state, receiver))
            .map_err(|err| StoreError::Storage(format!("starting the writer thread: {err}")))?;
        Ok(Self {
            proposals: Mutex::new(Some(proposals)),
            writer: Mutex::new(Some(writer)),
            state,
        })
    }
}

fn write_loop(state: &StateMachine, mut receiver: mpsc::Receiver<Proposal>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(proposal) => batch.push(proposal),
                Err(_) => break,
            }
        }
        let (commands, replies): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .map(|Proposal { command, reply }| (command, reply))
            .unzip();
        match state.apply(&commands, true, |_| Ok(())) {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "committing a batch of writes failed");
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Storage(err.to_string())));
                }
            }
        }
    }
    tracing::debug!("store writer stopped");
}

impl Consensus for SingleNode {
    fn propose(&self, command: Command) -> BoxFuture<'_, Result<CommandResult, StoreError>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let proposals = lock(&self.proposals)
                .clone()
                .ok_or_else(|| StoreError::Unavailable("the store is shut down".to_owned()))?;
            proposals
                .send(Proposal { command, reply })
                .await
                .map_err(|_| StoreError::Unavailable("the store is shutting down".to_owned()))?;
            answer
                .await
                .map_err(|_| StoreError::Unavailable("the store is shutting down".to_owned()))?
        })
    }

    fn read_barrier(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        // Writes are answered only once committed, and reads see every
        // committed transaction: a single replica is linearizable as is.
        Box::pin(async { Ok(()) })
    }

    fn is_leader(&self) -> bool {
        true
    }

    fn status(&self) -> ReplicaStatus {
        ReplicaStatus {
            id: 1,
            leader_id: Some(1),
            leader_addr: None,
            term: 1,
            revision: self.state.hub().published(),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        // Closing the queue lets the writer finish what it holds and stop;
        // joining it means the database is closed when this returns.
        lock(&self.proposals).take();
        let writer = lock(&self.writer).take();
        Box::pin(async move {
            if let Some(writer) = writer {
                let _ = tokio::task::spawn_blocking(move || writer.join()).await;
            }
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
