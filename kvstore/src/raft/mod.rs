//! Three (or more) replicas agreeing through Raft (openraft 0.9, kept
//! behind [`crate::consensus::Consensus`]).
//!
//! - The log lives in `raft-log.redb`, the state machine in `state.redb`
//!   of the data directory. The log fsyncs before anything is acknowledged
//!   (one fsync for concurrent proposals); applying to the state machine
//!   fsyncs only now and then, the log replays the rest after a crash (see
//!   `state_machine.rs`).
//! - Writes on a follower are forwarded to the leader over the replicas'
//!   own gRPC service; reads are linearizable everywhere: the leader
//!   confirms its leadership (read index) and the replica waits until it
//!   has applied that far. The read index is never below the leader's last
//!   log entry when its tenure began, which covers a leader restarted in its
//!   old term (openraft restores it as leader at once, with no fresh entry
//!   of its own and only the commit index it saved).
//! - The group is formed once: a replica with an empty log proposes the
//!   initial membership only if no peer already belongs to a group (a
//!   replica whose data directory was wiped rejoins and catches up instead).
//! - A forwarded write whose outcome is unknown (the leader died while it
//!   was in flight) is reported as [`StoreError::Unavailable`], never
//!   retried here: retrying could apply it twice.
//! - Snapshots (the whole key space) let a replica that was down, or is
//!   new, catch up once the leader has purged the log it missed.

mod log;
mod network;
mod state_machine;

use std::{
    collections::BTreeMap,
    io::Cursor,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use openraft::{
    BasicNode, Config, Raft, SnapshotPolicy, error::ClientWriteError, error::RaftError,
};
use tonic::{Request, Response, Status, transport::Channel};

use crate::{
    consensus::{Consensus, ReplicaStatus},
    error::StoreError,
    proto::raft::{
        RaftPayload, StatusRequest, StatusResponse,
        raft_transport_client::RaftTransportClient,
        raft_transport_server::{RaftTransport, RaftTransportServer},
    },
    state::StateMachine,
    store::{Store, StoreConfig, open_state},
    types::{Command, CommandResult},
};

/// What applying one log entry answers.
pub(crate) type ApplyResult = Result<CommandResult, StoreError>;

openraft::declare_raft_types!(
    /// rudder's openraft configuration.
    pub TypeConfig:
        D = Command,
        R = ApplyResult,
);

/// How often a leader sends heartbeats and how long a follower hears
/// nothing before it stands (etcd's `--heartbeat-interval` and
/// `--election-timeout`).
///
/// A replica draws its election timeout once per process from
/// `election_timeout_ms..2 * election_timeout_ms`; openraft's leader lease
/// is the top of that range. After a leader dies, the first candidate
/// stands after the lease plus its own timeout: 450..600 ms by default
/// (see [`Shared::stand_after`] for a first candidate whose log is behind).
/// Nothing shorter than the lease (300 ms) of silence from a leader starts
/// an election; heartbeats go out on openraft's tick, every 1.5 heartbeat
/// intervals (75 ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTiming {
    /// Milliseconds between a leader's heartbeats.
    pub heartbeat_ms: u64,
    /// The lower end of the election timeout, in milliseconds.
    pub election_timeout_ms: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        Self {
            heartbeat_ms: 50,
            election_timeout_ms: 150,
        }
    }
}

impl RaftTiming {
    /// The top of the election timeout range, also openraft's leader lease.
    fn election_max_ms(self) -> u64 {
        self.election_timeout_ms.saturating_mul(2)
    }

    fn check(self) -> Result<(), StoreError> {
        let Self {
            heartbeat_ms,
            election_timeout_ms,
        } = self;
        if heartbeat_ms == 0 || election_timeout_ms < heartbeat_ms.saturating_mul(2) {
            return Err(StoreError::InvalidRequest(format!(
                "raft timing: the election timeout ({election_timeout_ms} ms) must be at least \
                 twice the heartbeat interval ({heartbeat_ms} ms), and the heartbeat above 0"
            )));
        }
        if election_timeout_ms > 60_000 {
            return Err(StoreError::InvalidRequest(format!(
                "raft timing: an election timeout of {election_timeout_ms} ms would leave the \
                 group without a leader for minutes after a crash; use at most 60000"
            )));
        }
        Ok(())
    }
}

/// How long a write or read waits for a leader to exist.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Settings of a replicated store.
#[derive(Debug, Clone)]
pub struct Replication {
    /// This replica's id (a member of `peers`).
    pub node_id: u64,
    /// Every replica's id and gRPC address (`host:port`), this one included.
    /// The address serves clients and the other replicas alike.
    pub peers: BTreeMap<u64, String>,
    /// Take a snapshot after this many log entries (and keep only a few
    /// hundred entries behind it).
    pub snapshot_after_logs: u64,
    /// Heartbeat and election timeouts.
    pub timing: RaftTiming,
}

/// Requests one replica sends another besides Raft's own.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum Forwarded {
    /// A client's write, for the leader to commit.
    Propose(Command),
    /// "Confirm you lead and tell me your commit index" (a read index).
    ReadIndex,
    /// A client's keep-alive of a lease: deadlines live on the leader.
    LeaseKeepAlive(i64),
    /// "How long has this lease left?"
    LeaseRemaining(i64),
}

/// Answers to [`Forwarded`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum ForwardReply {
    Applied(ApplyResult),
    ReadIndex(Result<u64, StoreError>),
    /// TTL (keep-alive) or seconds left, `None` for an unknown lease.
    Lease(Result<Option<i64>, StoreError>),
}

impl Store {
    /// Opens one replica of a replicated store. Returns the store and the
    /// gRPC service the other replicas talk to: serve it on this replica's
    /// address (`replication.peers[node_id]`) next to the client services.
    ///
    /// The replicas form a group the first time they run: a replica with an
    /// empty log proposes the initial membership unless a peer already
    /// belongs to a group (then it waits to be caught up).
    ///
    /// # Errors
    /// [`StoreError::Storage`], [`StoreError::Database`] for an unusable data directory,
    /// [`StoreError::InvalidRequest`] if `node_id` is not among `peers`.
    pub async fn open_replicated(
        config: StoreConfig,
        replication: Replication,
    ) -> Result<(Self, RaftTransportServer<RaftService>), StoreError> {
        if !replication.peers.contains_key(&replication.node_id) {
            return Err(StoreError::InvalidRequest(format!(
                "replica id {} is not among the peers {:?}",
                replication.node_id,
                replication.peers.keys().collect::<Vec<_>>()
            )));
        }
        replication.timing.check()?;
        let state = open_state(&config)?;
        let log = log::LogStore::open(&config.data_dir.join("raft-log.redb"))?;
        let state_machine = state_machine::ReplicaStateMachine::new(state.clone());
        let raft_config = Config {
            cluster_name: "rudder".to_owned(),
            heartbeat_interval: replication.timing.heartbeat_ms,
            election_timeout_min: replication.timing.election_timeout_ms,
            election_timeout_max: replication.timing.election_max_ms(),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(replication.snapshot_after_logs),
            max_in_snapshot_log_to_keep: 200,
            ..Config::default()
        }
        .validate()
        .map_err(|err| StoreError::InvalidRequest(format!("raft configuration: {err}")))?;
        let raft = Raft::new(
            replication.node_id,
            Arc::new(raft_config),
            network::Network::default(),
            log,
            state_machine,
        )
        .await
        .map_err(|err| StoreError::Storage(format!("starting raft: {err}")))?;
        let members: BTreeMap<u64, BasicNode> = replication
            .peers
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|err| StoreError::Storage(format!("starting raft: {err}")))?;
        if !initialized {
            match group_of_peers(replication.node_id, &replication.peers).await {
                Some(peer) => tracing::info!(
                    peer,
                    "empty log, but replica {peer} already belongs to a group: waiting to be caught up"
                ),
                None => {
                    // Every replica of a new group proposes the same
                    // membership; Raft settles on one.
                    if let Err(err) = raft.initialize(members).await {
                        tracing::info!(error = %err, "another replica formed the group first");
                    }
                }
            }
        }
        let (reads, read_requests) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            reads,
            raft,
            node_id: replication.node_id,
            peers: replication.peers,
            state: state.clone(),
            tenure: std::sync::Mutex::new(None),
            channels: std::sync::Mutex::new(BTreeMap::new()),
            last_append: std::sync::Mutex::new(Instant::now()),
            lease: Duration::from_millis(replication.timing.election_max_ms()),
        });
        tokio::spawn(read_index_rounds(Arc::downgrade(&shared), read_requests));
        let service = RaftTransportServer::new(RaftService {
            shared: shared.clone(),
        })
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
        let store = Store::assemble(state, Box::new(RaftConsensus { shared }), config);
        Ok((store, service))
    }
}

/// The first peer (other than `me`) that reports a Raft term, i.e. belongs
/// to a group already; `None` if none answers so within a short wait.
async fn group_of_peers(me: u64, peers: &BTreeMap<u64, String>) -> Option<u64> {
    let asks = peers.iter().filter(|(id, _)| **id != me).map(|(id, addr)| {
        let addr = addr.clone();
        async move {
            let ask = async {
                let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
                let status = RaftTransportClient::new(channel)
                    .status(StatusRequest {})
                    .await
                    .ok()?;
                Some(status.into_inner().term)
            };
            match tokio::time::timeout(PEER_PROBE, ask).await {
                Ok(Some(term)) if term > 0 => Some(*id),
                _ => None,
            }
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .next()
}

/// How long a replica with an empty log asks each peer whether a group
/// exists before it proposes one.
const PEER_PROBE: Duration = Duration::from_millis(500);

/// What the consensus layer and the transport service share.
struct Shared {
    raft: Raft<TypeConfig>,
    node_id: u64,
    peers: BTreeMap<u64, String>,
    state: Arc<StateMachine>,
    /// The term this replica last answered a read index in, and its last
    /// log index when it first did: the floor of its read indexes in that
    /// term.
    tenure: std::sync::Mutex<Option<(u64, u64)>>,
    /// One channel per peer for forwarded requests.
    channels: std::sync::Mutex<BTreeMap<u64, Channel>>,
    /// When a leader's AppendEntries (heartbeats included) last arrived.
    last_append: std::sync::Mutex<Instant>,
    /// openraft's leader lease.
    lease: Duration,
    /// Read indexes asked of this replica as the leader, answered in rounds
    /// (see [`read_index_rounds`]).
    reads: tokio::sync::mpsc::UnboundedSender<ReadWaiter>,
}

/// Where the answer to one read index request goes.
type ReadWaiter = tokio::sync::oneshot::Sender<Result<u64, StoreError>>;

/// Answers read index requests in rounds: every request waiting when a
/// round starts shares its one leadership confirmation (a heartbeat to a
/// majority), so concurrent linearizable reads cost one round trip between
/// them rather than one each. A request arriving during a round waits for
/// the next: the confirmation it gets always started after it was asked,
/// as a read index must. Ends with the replica.
async fn read_index_rounds(
    shared: std::sync::Weak<Shared>,
    mut requests: tokio::sync::mpsc::UnboundedReceiver<ReadWaiter>,
) {
    while let Some(first) = requests.recv().await {
        let mut waiting = vec![first];
        while let Ok(next) = requests.try_recv() {
            waiting.push(next);
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let index = shared.confirm_read_index().await;
        drop(shared);
        for waiter in waiting {
            let _ = waiter.send(index.clone());
        }
    }
}

impl Shared {
    fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    fn leader_addr(&self) -> Option<String> {
        self.leader().and_then(|id| self.peers.get(&id).cloned())
    }

    /// Commits `command` here, as the leader.
    async fn propose_locally(&self, command: Command) -> Result<ApplyResult, StoreError> {
        match self.raft.client_write(command).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(StoreError::NotLeader {
                    leader_addr: forward.leader_node.map(|node| node.addr),
                })
            }
            Err(err) => Err(StoreError::Unavailable(format!(
                "the write may or may not have been committed: {err}"
            ))),
        }
    }

    /// A read index, as the leader: openraft's (its commit index, or the
    /// first entry of its term if that is later), raised to the last log
    /// entry it held when it first answered in this term.
    ///
    /// openraft's alone is not enough after a restart: a leader restarted
    /// before anyone else stood resumes its old term, whose first entry is
    /// long committed, and its commit index is only what it saved. Writes it
    /// acknowledged before the crash are in its log, though (it was the only
    /// leader of the term), so waiting until everything logged then is
    /// applied covers them. In a term won by election this costs nothing
    /// extra: the term's first entry already comes after the old log.
    ///
    /// Concurrent requests share a round (see [`read_index_rounds`]).
    async fn read_index_locally(&self) -> Result<u64, StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.reads
            .send(answer)
            .map_err(|_| StoreError::Unavailable("the replica is shutting down".to_owned()))?;
        answered
            .await
            .map_err(|_| StoreError::Unavailable("the replica is shutting down".to_owned()))?
    }

    /// One round of [`Self::read_index_locally`].
    async fn confirm_read_index(&self) -> Result<u64, StoreError> {
        match self.raft.get_read_log_id().await {
            Ok((read_log_id, _)) => Ok(read_log_id
                .map_or(0, |id| id.index)
                .max(self.tenure_floor())),
            Err(err) => Err(StoreError::NotLeader {
                leader_addr: self.leader_addr().filter(|_| {
                    // A leader that just lost leadership knows no better.
                    !err.to_string().is_empty()
                }),
            }),
        }
    }

    /// See [`Self::read_index_locally`]. Taken after leadership was
    /// confirmed in the current term, so the log it reads holds at least
    /// what the leader restarted with.
    fn tenure_floor(&self) -> u64 {
        let (term, last_log) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            (metrics.current_term, metrics.last_log_index.unwrap_or(0))
        };
        let mut tenure = self
            .tenure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *tenure {
            Some((known, floor)) if known == term => floor,
            _ => {
                *tenure = Some((term, last_log));
                last_log
            }
        }
    }

    /// Called after refusing `candidate` its vote: if it was refused for
    /// a log shorter than ours, and we too have heard nothing from a leader
    /// for a whole leader lease, stand now, in a term above the candidate's.
    ///
    /// openraft would have us wait: the candidate, refused, adds twice the
    /// maximum election timeout before it stands again, and our own first
    /// campaign would reuse the term the candidate already voted for itself
    /// in and fail, so the group had no leader for a further election
    /// timeout or two (the "extra 1.6 s" of issue 12). Nothing here starts
    /// an election that our own timer would not start within one election
    /// timeout anyway: the leader is silent to both of us.
    async fn stand_after(&self, candidate: &openraft::raft::VoteRequest<u64>, granted: bool) {
        if granted {
            return;
        }
        let (our_term, our_log, leader_is_us) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            (
                metrics.current_term,
                metrics.last_log_index,
                metrics.current_leader == Some(self.node_id),
            )
        };
        let silent = self
            .last_append
            .lock()
            .is_ok_and(|at| at.elapsed() > self.lease);
        let behind = candidate.last_log_id.map(|id| id.index) < our_log;
        let candidate_term = candidate.vote.leader_id().term;
        if leader_is_us || !silent || !behind || candidate_term < our_term {
            return;
        }
        // Each campaign takes the next term; at most a few are needed.
        let campaigns = (candidate_term + 1 - our_term).min(3);
        tracing::info!(
            candidate = candidate.vote.leader_id().node_id,
            candidate_term,
            our_term,
            "a candidate with a shorter log stood while the leader is silent: standing now"
        );
        for _ in 0..campaigns {
            if let Err(err) = self.raft.trigger().elect().await {
                tracing::warn!(error = %err, "could not stand for election");
                return;
            }
        }
    }

    /// Answers a lease request as the leader; a replica that does not lead
    /// refuses (its deadlines are stale).
    fn lease_locally(&self, request: &Forwarded) -> Result<Option<i64>, StoreError> {
        if self.leader() != Some(self.node_id) {
            return Err(StoreError::NotLeader {
                leader_addr: self.leader_addr(),
            });
        }
        let now = Instant::now();
        Ok(match request {
            Forwarded::LeaseKeepAlive(id) => self.state.leases().keep_alive(*id, now),
            Forwarded::LeaseRemaining(id) => self.state.leases().remaining(*id, now),
            Forwarded::Propose(_) | Forwarded::ReadIndex => None,
        })
    }

    /// Sends a lease request to the leader (or answers it, leading),
    /// retrying while leadership moves.
    async fn lease_request(&self, request: Forwarded) -> Result<Option<i64>, StoreError> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let leader = self.wait_for_leader(deadline).await?;
            let outcome = if leader == self.node_id {
                self.lease_locally(&request)
            } else {
                match self.forward(leader, &request).await {
                    Ok(ForwardReply::Lease(outcome)) => outcome,
                    Ok(_) => Err(StoreError::Storage(
                        "leader answered a lease request with something else".to_owned(),
                    )),
                    Err(err) => Err(err),
                }
            };
            match outcome {
                // Keep-alives and queries change nothing durable: retrying
                // is safe.
                Err(StoreError::NotLeader { .. } | StoreError::Unavailable(_))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn forward(&self, leader: u64, request: &Forwarded) -> Result<ForwardReply, StoreError> {
        let addr = self.peers.get(&leader).cloned().ok_or_else(|| {
            StoreError::Unavailable(format!("leader {leader} is not among the configured peers"))
        })?;
        let payload =
            serde_json::to_vec(request).map_err(|err| StoreError::Storage(err.to_string()))?;
        let channel = self.peer_channel(leader, &addr)?;
        let reply = RaftTransportClient::new(channel)
            .forward(RaftPayload { payload })
            .await
            .map_err(|status| {
                if never_sent(&status) {
                    // No connection, so nothing was sent: safe to retry
                    // (the peer is down, or leadership moved with it).
                    StoreError::NotLeader {
                        leader_addr: Some(format!("{addr} (unreachable: {})", status.message())),
                    }
                } else {
                    StoreError::Unavailable(format!(
                        "forwarding to the leader at {addr} failed; the write may or may not have been committed: {}",
                        status.message()
                    ))
                }
            })?;
        serde_json::from_slice(&reply.into_inner().payload)
            .map_err(|err| StoreError::Storage(format!("leader's reply: {err}")))
    }

    /// The channel to peer `id`, made once and shared by every forwarded
    /// request (HTTP/2 multiplexes them; a new connection per write cost a
    /// TCP and HTTP/2 handshake on every follower write). It reconnects by
    /// itself after the peer restarts.
    fn peer_channel(&self, id: u64, addr: &str) -> Result<Channel, StoreError> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(channel) = channels.get(&id) {
            return Ok(channel.clone());
        }
        let channel = Channel::from_shared(format!("http://{addr}"))
            .map_err(|err| StoreError::Unavailable(format!("peer address {addr}: {err}")))?
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy();
        channels.insert(id, channel.clone());
        Ok(channel)
    }

    async fn wait_for_leader(&self, deadline: Instant) -> Result<u64, StoreError> {
        loop {
            if let Some(leader) = self.leader() {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Unavailable(
                    "no leader elected (is a majority of replicas running?)".to_owned(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether a failed call never left this process: the channel could not
/// connect, so the peer cannot have seen the request.
pub(crate) fn never_sent(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(status);
    while let Some(err) = source {
        if err.downcast_ref::<tonic::ConnectError>().is_some() {
            return true;
        }
        source = err.source();
    }
    false
}

/// [`Consensus`] through openraft.
struct RaftConsensus {
    shared: Arc<Shared>,
}

impl Consensus for RaftConsensus {
    fn propose(&self, command: Command) -> BoxFuture<'_, Result<CommandResult, StoreError>> {
        Box::pin(async move {
            let deadline = Instant::now() + LEADER_WAIT;
            loop {
                let leader = self.shared.wait_for_leader(deadline).await?;
                let outcome = if leader == self.shared.node_id {
                    self.shared.propose_locally(command.clone()).await
                } else {
                    match self
                        .shared
                        .forward(leader, &Forwarded::Propose(command.clone()))
                        .await
                    {
                        Ok(ForwardReply::Applied(response)) => Ok(response),
                        Ok(ForwardReply::ReadIndex(_) | ForwardReply::Lease(_)) => {
                            Err(StoreError::Storage(
                                "leader answered a write with something else".to_owned(),
                            ))
                        }
                        Err(err) => Err(err),
                    }
                };
                match outcome {
                    // Refused before anything was appended, here or by the
                    // replica we forwarded to (which answers `Applied` with
                    // the refusal): the leader moved; try again with whoever
                    // leads now.
                    Err(StoreError::NotLeader { .. }) | Ok(Err(StoreError::NotLeader { .. }))
                        if Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(response) => return response,
                    Err(err) => return Err(err),
                }
            }
        })
    }

    fn read_barrier(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let deadline = Instant::now() + LEADER_WAIT;
            loop {
                let leader = self.shared.wait_for_leader(deadline).await?;
                let index = if leader == self.shared.node_id {
                    self.shared.read_index_locally().await
                } else {
                    match self.shared.forward(leader, &Forwarded::ReadIndex).await {
                        Ok(ForwardReply::ReadIndex(index)) => index,
                        Ok(ForwardReply::Applied(_) | ForwardReply::Lease(_)) => {
                            Err(StoreError::Storage(
                                "leader answered a read index with something else".to_owned(),
                            ))
                        }
                        Err(err) => Err(err),
                    }
                };
                match index {
                    Ok(index) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        return self
                            .shared
                            .raft
                            .wait(Some(left.max(Duration::from_millis(100))))
                            .applied_index_at_least(Some(index), "linearizable read")
                            .await
                            .map(|_| ())
                            .map_err(|err| {
                                StoreError::Unavailable(format!(
                                    "catching up to the leader's commit index {index}: {err}"
                                ))
                            });
                    }
                    Err(StoreError::NotLeader { .. } | StoreError::Unavailable(_))
                        if Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(err) => return Err(err),
                }
            }
        })
    }

    fn is_leader(&self) -> bool {
        self.shared.leader() == Some(self.shared.node_id)
    }

    fn lease_keep_alive(&self, id: i64) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        Box::pin(self.shared.lease_request(Forwarded::LeaseKeepAlive(id)))
    }

    fn lease_remaining(&self, id: i64) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        Box::pin(self.shared.lease_request(Forwarded::LeaseRemaining(id)))
    }

    fn status(&self) -> ReplicaStatus {
        let metrics = self.shared.raft.metrics().borrow().clone();
        ReplicaStatus {
            id: self.shared.node_id,
            leader_id: metrics.current_leader,
            leader_addr: metrics
                .current_leader
                .and_then(|id| self.shared.peers.get(&id).cloned()),
            term: metrics.current_term,
            revision: self.shared.state.hub().published(),
            raft_index: metrics.last_log_index.unwrap_or(0),
            applied_index: metrics.last_applied.map_or(0, |id| id.index),
            members: self
                .shared
                .peers
                .iter()
                .map(|(id, addr)| (*id, addr.clone()))
                .collect(),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(err) = self.shared.raft.shutdown().await {
                tracing::warn!(error = %err, "raft did not shut down cleanly");
            }
        })
    }
}

/// The gRPC service replicas serve each other (Raft messages, forwarded
/// writes and read indexes, status).
pub struct RaftService {
    shared: Arc<Shared>,
}

fn decode<T: serde::de::DeserializeOwned>(request: Request<RaftPayload>) -> Result<T, Status> {
    serde_json::from_slice(&request.into_inner().payload)
        .map_err(|err| Status::invalid_argument(format!("undecodable raft message: {err}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    let payload = serde_json::to_vec(value).map_err(|err| Status::internal(err.to_string()))?;
    Ok(Response::new(RaftPayload { payload }))
}

#[tonic::async_trait]
impl RaftTransport for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        if let Ok(mut at) = self.shared.last_append.lock() {
            *at = Instant::now();
        }
        let result = self.shared.raft.append_entries(decode(request)?).await;
        encode(&result)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let candidate: openraft::raft::VoteRequest<u64> = decode(request)?;
        let result = self.shared.raft.vote(candidate.clone()).await;
        let reply = encode(&result);
        if let Ok(response) = &result {
            let shared = self.shared.clone();
            let granted = response.vote_granted;
            // After answering: the candidate need not wait for our campaign.
            tokio::spawn(async move { shared.stand_after(&candidate, granted).await });
        }
        reply
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let result = self.shared.raft.install_snapshot(decode(request)?).await;
        encode(&result)
    }

    async fn forward(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let reply = match decode::<Forwarded>(request)? {
            Forwarded::Propose(command) => match self.shared.propose_locally(command).await {
                Ok(response) => ForwardReply::Applied(response),
                Err(err) => ForwardReply::Applied(Err(err)),
            },
            Forwarded::ReadIndex => ForwardReply::ReadIndex(self.shared.read_index_locally().await),
            request @ (Forwarded::LeaseKeepAlive(_) | Forwarded::LeaseRemaining(_)) => {
                ForwardReply::Lease(self.shared.lease_locally(&request))
            }
        };
        encode(&reply)
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let metrics = self.shared.raft.metrics().borrow().clone();
        Ok(Response::new(StatusResponse {
            id: self.shared.node_id,
            leader_id: metrics.current_leader.unwrap_or(0),
            leader_addr: self.shared.leader_addr().unwrap_or_default(),
            term: metrics.current_term,
            revision: self.shared.state.hub().published(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fresh log and state machine stores in a temporary directory.
    struct Stores;

    impl
        openraft::testing::StoreBuilder<
            TypeConfig,
            log::LogStore,
            state_machine::ReplicaStateMachine,
            tempfile::TempDir,
        > for Stores
    {
        async fn build(
            &self,
        ) -> Result<
            (
                tempfile::TempDir,
                log::LogStore,
                state_machine::ReplicaStateMachine,
            ),
            openraft::StorageError<u64>,
        > {
            let dir = tempfile::tempdir().expect("temporary directory");
            let storage = |err: StoreError| {
                openraft::StorageError::from(openraft::StorageIOError::write_logs(&err))
            };
            let state = open_state(&StoreConfig::new(dir.path())).map_err(storage)?;
            let log = log::LogStore::open(&dir.path().join("raft-log.redb")).map_err(storage)?;
            Ok((dir, log, state_machine::ReplicaStateMachine::new(state)))
        }
    }

    /// openraft's own suite for storage implementations: the log (written
    /// by the writer thread, read back before and after it flushed), vote,
    /// purge, truncation, applying and snapshots.
    #[test]
    fn log_and_state_machine_pass_openraft_storage_suite() {
        openraft::testing::Suite::test_all(Stores).expect("storage suite");
    }

    #[tokio::test]
    async fn a_call_to_a_closed_port_was_never_sent() {
        // Bind, learn the port, close it: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("url")
            .connect_lazy();
        let status = RaftTransportClient::new(channel)
            .status(StatusRequest {})
            .await
            .expect_err("nothing listens");
        assert!(never_sent(&status), "{status:?}");
        assert!(!never_sent(&Status::unavailable("connection reset")));
    }
}
