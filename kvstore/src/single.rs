//! The single-replica store: proposals go to one writer thread that commits
//! them in batches.
//!
//! Group commit, as etcd does it: while one batch is being synced, new
//! proposals queue up, and the writer takes all of them (up to
//! [`MAX_BATCH`] / [`MAX_BATCH_BYTES`]) as the next batch the moment the
//! sync returns. No timer: a lone client pays for one sync, many clients
//! share one.
//!
//! A batch is staged (its results computed against the current state),
//! appended to the write-ahead log ([`crate::wal`]) and `fdatasync`ed, and
//! only then published: readers and watchers see it and its proposers get
//! their answers. Its changes to the tables stay in memory as a pending
//! layer ([`crate::overlay`]) until a flusher thread writes them into redb,
//! many batches in one transaction, every [`FLUSH_INTERVAL`] (or
//! [`FLUSH_ROWS`]). Those transactions are not fsynced: the log already
//! made their changes durable, and every fsync of redb (many scattered
//! pages) slows the log's next sync down. A checkpoint, an fsynced redb
//! transaction, comes when a log segment is half full or
//! [`CHECKPOINT_INTERVAL`] has passed; after it the segment it closed may
//! be reused. No write ever waits for redb.

use std::{
    path::Path,
    sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc as std_mpsc},
    thread,
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::{
    consensus::{Consensus, ReplicaStatus},
    error::StoreError,
    mvcc::Mvcc,
    overlay::Layer,
    state::StateMachine,
    types::{Command, CommandResult, CompareTarget, Op},
    wal::{SEGMENT_SIZE, Wal},
};

/// Most proposals one batch takes.
const MAX_BATCH: usize = 1024;

/// A batch stops taking proposals once their keys and values add up to
/// this, so it always fits a log segment.
const MAX_BATCH_BYTES: usize = 4 << 20;

/// Pending changes are written into redb at least this often...
const FLUSH_INTERVAL: Duration = Duration::from_millis(250);

/// ...or once this many rows are pending.
const FLUSH_ROWS: usize = 16384;

/// redb is made durable (and a log segment closed) at least this often.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

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
        let mut writer = Writer::recover(state.clone(), data_dir)?;
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

fn storage(err: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(format!("write-ahead log: {err}"))
}

/// Pending changes handed to the flusher, and the last log record in them.
struct FlushJob {
    /// `None`: nothing pending, only make redb durable.
    layer: Option<Layer>,
    seq: i64,
    /// A checkpoint: fsync, so the log before `seq` may be reused.
    durable: bool,
}

/// The thread that writes pending changes into redb.
struct Flusher {
    jobs: Option<std_mpsc::Sender<FlushJob>>,
    done: std_mpsc::Receiver<(FlushJob, Result<(), StoreError>)>,
    thread: Option<thread::JoinHandle<()>>,
    /// Whether a job is under way.
    busy: bool,
    /// A job that failed, to try again.
    failed: Option<FlushJob>,
}

impl Flusher {
    fn start(mvcc: Arc<Mvcc>) -> Result<Self, StoreError> {
        let (jobs, receiver) = std_mpsc::channel::<FlushJob>();
        let (report, done) = std_mpsc::channel();
        let thread = thread::Builder::new()
            .name("rudder-store-flusher".to_owned())
            .spawn(move || {
                for job in receiver {
                    let result = match &job.layer {
                        Some(layer) => mvcc.write_frozen(layer, job.durable),
                        None => mvcc.sync(),
                    };
                    if report.send((job, result)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|err| StoreError::Storage(format!("starting the flusher thread: {err}")))?;
        Ok(Self {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            busy: false,
            failed: None,
        })
    }

    fn send(&mut self, job: FlushJob) {
        if let Some(jobs) = &self.jobs {
            match jobs.send(job) {
                Ok(()) => self.busy = true,
                Err(std_mpsc::SendError(job)) => self.failed = Some(job),
            }
        }
    }

    /// The outcome of the job under way: `None` if there is none, or (not
    /// `wait`ing) it has not finished.
    fn outcome(&mut self, wait: bool) -> Option<(FlushJob, Result<(), StoreError>)> {
        if !self.busy {
            return None;
        }
        let outcome = if wait {
            self.done.recv().ok()
        } else {
            self.done.try_recv().ok()
        };
        if outcome.is_some() {
            self.busy = false;
        }
        outcome
    }

    fn stop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread's state: the log and how far it and redb got.
struct Writer {
    state: Arc<StateMachine>,
    wal: Wal,
    /// Sequence number of the last record appended.
    seq: i64,
    /// Every record up to this one is durable in redb.
    durable_seq: i64,
    flusher: Flusher,
    /// When the oldest change not yet handed to the flusher was published.
    pending_since: Option<Instant>,
    /// Rows pending (not yet handed to the flusher).
    pending_rows: usize,
    /// When the last checkpoint was started.
    last_checkpoint: Instant,
}

impl Writer {
    /// Opens the log and re-applies what redb lacks (every record newer
    /// than redb's durable sequence number), then writes it into redb.
    fn recover(state: Arc<StateMachine>, data_dir: &Path) -> Result<Self, StoreError> {
        let (wal, records) = Wal::open(data_dir).map_err(storage)?;
        let durable = state.mvcc().wal_seq()?;
        let mut seq = durable;
        let mut replayed = 0usize;
        for record in records {
            if record.seq <= durable {
                continue;
            }
            if record.seq != seq + 1 {
                // A gap: what follows was never acknowledged.
                break;
            }
            let commands: Vec<Command> = postcard::from_bytes(&record.payload).map_err(storage)?;
            let staged = state.stage(&commands)?;
            state.publish_logged(&commands, staged, record.seq);
            seq = record.seq;
            replayed += commands.len();
        }
        // The log starts over at its first segment: redb must hold all of
        // it first.
        if let Some(layer) = state.mvcc().freeze_pending() {
            state.mvcc().write_frozen(&layer, true)?;
        }
        if replayed > 0 {
            tracing::info!(writes = replayed, "replayed the write-ahead log");
        }
        let flusher = Flusher::start(state.mvcc().clone())?;
        Ok(Self {
            state,
            wal,
            seq,
            durable_seq: seq,
            flusher,
            pending_since: None,
            pending_rows: 0,
            last_checkpoint: Instant::now(),
        })
    }

    fn run(&mut self, mut receiver: mpsc::Receiver<Proposal>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = receiver.blocking_recv() {
            let mut bytes = size_hint(&first.command);
            batch.push(first);
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match receiver.try_recv() {
                    Ok(proposal) => {
                        bytes += size_hint(&proposal.command);
                        batch.push(proposal);
                    }
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
            self.flush_if_due(false);
        }
        // Leave redb complete, so the next start has nothing to replay.
        self.finish_flush();
        self.flush_if_due(true);
        self.finish_flush();
        self.flusher.stop();
        tracing::debug!("store writer stopped");
    }

    /// Stages a batch, logs it durably, then publishes it.
    fn commit(
        &mut self,
        commands: &[Command],
    ) -> Result<Vec<Result<CommandResult, StoreError>>, StoreError> {
        let staged = self.state.stage(commands)?;
        let payload = postcard::to_allocvec(commands).map_err(storage)?;
        self.make_room(payload.len())?;
        let seq = self.seq + 1;
        self.wal.append(seq, &payload).map_err(storage)?;
        self.seq = seq;
        let (results, rows) = self.state.publish_logged(commands, staged, seq);
        self.pending_rows = rows;
        self.pending_since.get_or_insert_with(Instant::now);
        Ok(results)
    }

    /// Makes sure the current log segment has room for a record of `len`
    /// bytes: if not, waits for redb to hold the other segment, and moves
    /// there.
    fn make_room(&mut self, len: usize) -> Result<(), StoreError> {
        if self.wal.fits(len) {
            return Ok(());
        }
        if !Wal::could_ever_fit(len) {
            return Err(StoreError::InvalidRequest(format!(
                "a batch of {len} bytes does not fit a {} MiB write-ahead log segment",
                SEGMENT_SIZE >> 20
            )));
        }
        self.finish_flush();
        self.flush_if_due(true);
        if self.wal.fits(len) {
            return Ok(());
        }
        Err(StoreError::Storage(
            "the write-ahead log is full because the state database cannot be written; see the earlier errors".to_owned(),
        ))
    }

    /// Waits for the flusher to finish what it is doing, retrying a failed
    /// job once.
    fn finish_flush(&mut self) {
        for _ in 0..2 {
            if let Some(outcome) = self.flusher.outcome(true) {
                self.record_flush(outcome);
            }
            match self.flusher.failed.take() {
                Some(job) => self.flusher.send(job),
                None => return,
            }
        }
        if let Some(outcome) = self.flusher.outcome(true) {
            self.record_flush(outcome);
        }
    }

    fn record_flush(&mut self, (job, result): (FlushJob, Result<(), StoreError>)) {
        match result {
            Ok(()) if job.durable => self.durable_seq = self.durable_seq.max(job.seq),
            Ok(()) => {}
            Err(err) => {
                tracing::error!(error = %err, "writing pending changes into the state database failed; will retry");
                self.flusher.failed = Some(job);
            }
        }
    }

    /// Hands the pending changes to the flusher when they are due, or a
    /// checkpoint when one is due (or `checkpoint`), if it is idle.
    fn flush_if_due(&mut self, checkpoint: bool) {
        if let Some(outcome) = self.flusher.outcome(false) {
            self.record_flush(outcome);
        }
        if self.flusher.busy {
            return;
        }
        if let Some(job) = self.flusher.failed.take() {
            self.flusher.send(job);
            return;
        }
        let checkpoint = checkpoint
            || self.wal.used() >= SEGMENT_SIZE / 2
            || (self.seq > self.durable_seq
                && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL);
        if checkpoint {
            // The other segment holds only records the last checkpoint made
            // durable; from now on this one's are being made durable.
            if !self.wal.switch(self.durable_seq) {
                return;
            }
            self.last_checkpoint = Instant::now();
        } else {
            let Some(since) = self.pending_since else {
                return;
            };
            if self.pending_rows < FLUSH_ROWS && since.elapsed() < FLUSH_INTERVAL {
                return;
            }
        }
        self.pending_since = None;
        self.pending_rows = 0;
        let layer = self.state.mvcc().freeze_pending();
        if layer.is_some() || checkpoint {
            self.flusher.send(FlushJob {
                layer,
                seq: self.seq,
                durable: checkpoint,
            });
        }
    }
}

/// Roughly how many bytes `command` adds to a log record.
fn size_hint(command: &Command) -> usize {
    match command {
        Command::Txn(txn) => txn
            .success
            .iter()
            .chain(&txn.failure)
            .map(|op| match op {
                Op::Put(put) => put.key.len() + put.value.len(),
                Op::Range(range) => range.range.key.len() + range.range.range_end.len(),
                Op::Delete(delete) => delete.range.key.len() + delete.range.range_end.len(),
            })
            .chain(txn.compare.iter().map(|compare| {
                compare.key.len()
                    + match &compare.target {
                        CompareTarget::Value(value) => value.len(),
                        _ => 8,
                    }
            }))
            .sum::<usize>()
            .saturating_add(16),
        _ => 16,
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
        // Writes are answered only once published, and reads see every
        // published write: a single replica is linearizable as is.
        Box::pin(async { Ok(()) })
    }

    fn is_leader(&self) -> bool {
        true
    }

    fn lease_keep_alive(&self, id: i64) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        let ttl = self.state.leases().keep_alive(id, Instant::now());
        Box::pin(async move { Ok(ttl) })
    }

    fn lease_remaining(&self, id: i64) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        let left = self.state.leases().remaining(id, Instant::now());
        Box::pin(async move { Ok(left) })
    }

    fn status(&self) -> ReplicaStatus {
        let revision = self.state.hub().published();
        let index = u64::try_from(revision).unwrap_or(0);
        ReplicaStatus {
            id: 1,
            leader_id: Some(1),
            leader_addr: None,
            term: 1,
            revision,
            raft_index: index,
            applied_index: index,
            members: vec![(1, String::new())],
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
