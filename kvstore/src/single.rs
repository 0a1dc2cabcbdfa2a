//! The single-replica store: proposals go straight to the state machine
//! through one writer thread that commits them in batches.
//!
//! Group commit: while one batch waits for its fsync, new proposals queue
//! up; the writer takes all of them (up to [`MAX_BATCH`]) into the next
//! batch, so concurrent clients share one fsync. A batch is appended to the
//! write-ahead log ([`crate::wal`]) and synced, then applied to redb without
//! fsync; every proposal is answered only after its batch is in the log.
//! redb is made durable at checkpoints (every [`CHECKPOINT_EVERY`], when the
//! log is full, and at shutdown), after which the log starts over.

use std::{
    path::Path,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    thread,
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::{
    consensus::{Consensus, ReplicaStatus},
    error::StoreError,
    mvcc::Mvcc,
    state::StateMachine,
    types::{Command, CommandResult},
    wal::Wal,
};

/// Most proposals one write transaction takes.
const MAX_BATCH: usize = 1024;

/// How often redb is made durable so the log can start over.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

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
    /// Replays the write-ahead log in `data_dir` into `state`, then starts
    /// the writer thread.
    pub fn start(state: Arc<StateMachine>, data_dir: &Path) -> Result<Self, StoreError> {
        let mut writer = Writer::recover(state.clone(), &data_dir.join("wal"))?;
        let (proposals, receiver) = mpsc::channel(MAX_BATCH * 4);
        let writer = thread::Builder::new()
            .name("rudder-store-writer".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(|err| StoreError::Storage(format!("starting the writer thread: {err}")))?;
        Ok(Self {
            proposals: Mutex::new(Some(proposals)),
            writer: Mutex::new(Some(writer)),
            state,
        })
    }
}

/// The writer thread's state: the log and how far it got.
struct Writer {
    state: Arc<StateMachine>,
    wal: Wal,
    /// Sequence number of the last record appended.
    seq: i64,
    last_checkpoint: Instant,
}

fn storage(err: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(format!("write-ahead log: {err}"))
}

impl Writer {
    /// Opens the log and re-applies what redb lost in a crash (every record
    /// newer than redb's durable sequence number), then checkpoints.
    fn recover(state: Arc<StateMachine>, path: &Path) -> Result<Self, StoreError> {
        let (wal, records) = Wal::open(path).map_err(storage)?;
        let durable = state.mvcc().wal_seq()?;
        let mut seq = durable;
        let mut replayed = 0usize;
        for record in records {
            if record.seq <= durable {
                continue;
            }
            if record.seq != seq + 1 {
                // A gap means the rest belongs to an older cycle of the log.
                break;
            }
            let commands: Vec<Command> = postcard::from_bytes(&record.payload).map_err(storage)?;
            state.apply(&commands, false, |txn| Mvcc::set_wal_seq(txn, record.seq))?;
            seq = record.seq;
            replayed += commands.len();
        }
        if replayed > 0 {
            tracing::info!(writes = replayed, "replayed the write-ahead log");
        }
        let mut writer = Self {
            state,
            wal,
            seq,
            last_checkpoint: Instant::now(),
        };
        writer.checkpoint()?;
        Ok(writer)
    }

    /// Makes redb durable up to the last record, so the log can start over.
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        let seq = self.seq;
        self.state
            .apply(&[], true, |txn| Mvcc::set_wal_seq(txn, seq))?;
        self.wal.restart();
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    fn run(&mut self, mut receiver: mpsc::Receiver<Proposal>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = if self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                // Idle or not, checkpoint on time so the log stays short.
                if let Err(err) = self.checkpoint() {
                    tracing::error!(error = %err, "checkpoint failed");
                }
                match receiver.try_recv() {
                    Ok(proposal) => proposal,
                    Err(mpsc::error::TryRecvError::Empty) => match receiver.blocking_recv() {
                        Some(proposal) => proposal,
                        None => break,
                    },
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match receiver.blocking_recv() {
                    Some(proposal) => proposal,
                    None => break,
                }
            };
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
            match self.commit(&commands) {
                Ok(results) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "committing a batch of writes failed");
                    for reply in replies {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
        }
        if let Err(err) = self.checkpoint() {
            tracing::error!(error = %err, "final checkpoint failed");
        }
        tracing::debug!("store writer stopped");
    }

    /// Logs a batch durably, then applies it.
    fn commit(
        &mut self,
        commands: &[Command],
    ) -> Result<Vec<Result<CommandResult, StoreError>>, StoreError> {
        let payload = postcard::to_allocvec(commands).map_err(storage)?;
        if !self.wal.fits(payload.len()) {
            self.checkpoint()?;
            if !self.wal.fits(payload.len()) {
                return Err(StoreError::InvalidRequest(format!(
                    "a batch of {} bytes does not fit the {} MiB write-ahead log",
                    payload.len(),
                    crate::wal::WAL_SIZE >> 20
                )));
            }
        }
        let seq = self.seq + 1;
        self.wal.append(seq, &payload).map_err(storage)?;
        self.seq = seq;
        self.state
            .apply(commands, false, |txn| Mvcc::set_wal_seq(txn, seq))
    }
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
