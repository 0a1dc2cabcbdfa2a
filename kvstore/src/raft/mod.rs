//! Three (or more) replicas agreeing through Raft (openraft 0.9, kept
//! behind [`crate::consensus::Consensus`]).
//!
//! - The log lives in `raft-log.redb`, the state machine in `state.redb`
//!   of the data directory; both fsync before anything is acknowledged.
//! - Writes on a follower are forwarded to the leader over the replicas'
//!   own gRPC service; reads are linearizable everywhere: the leader
//!   confirms its leadership (read index) and the replica waits until it
//!   has applied that far.
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
use tonic::{Request, Response, Status};

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
    /// The replicas form a group the first time they all run: every one
    /// proposes the same initial membership, and Raft settles on one.
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
        let state = open_state(&config)?;
        let log = log::LogStore::open(&config.data_dir.join("raft-log.redb"))?;
        let state_machine = state_machine::ReplicaStateMachine::new(state.clone());
        let raft_config = Config {
            cluster_name: "rudder".to_owned(),
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(replication.snapshot_after_logs),
            max_in_snapshot_log_to_keep: 200,
            ..Config::default()
        }
        .validate()
        .map_err(|err| StoreError::InvalidRequest(format!("raft configuration: {err}")))?;
        let raft = Raft::new(
            replication.node_id,
            Arc::new(raft_config),
            network::Network,
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
        // Already initialized (a restart, or another replica won): fine.
        if let Err(err) = raft.initialize(members).await {
            tracing::debug!(error = %err, "raft group already initialized");
        }
        let shared = Arc::new(Shared {
            raft,
            node_id: replication.node_id,
            peers: replication.peers,
            state: state.clone(),
        });
        let service = RaftTransportServer::new(RaftService {
            shared: shared.clone(),
        })
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
        let store = Store::assemble(state, Box::new(RaftConsensus { shared }), config);
        Ok((store, service))
    }
}

/// What the consensus layer and the transport service share.
struct Shared {
    raft: Raft<TypeConfig>,
    node_id: u64,
    peers: BTreeMap<u64, String>,
    state: Arc<StateMachine>,
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

    async fn read_index_locally(&self) -> Result<u64, StoreError> {
        match self.raft.get_read_log_id().await {
            Ok((read_log_id, _)) => Ok(read_log_id.map_or(0, |id| id.index)),
            Err(err) => Err(StoreError::NotLeader {
                leader_addr: self.leader_addr().filter(|_| {
                    // A leader that just lost leadership knows no better.
                    !err.to_string().is_empty()
                }),
            }),
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
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .map_err(|err| StoreError::Unavailable(err.to_string()))?
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await
            .map_err(|err| StoreError::NotLeader {
                // Not connected, so nothing was sent: safe to retry.
                leader_addr: Some(format!("{addr} (unreachable: {err})")),
            })?;
        let reply = RaftTransportClient::new(channel)
            .forward(RaftPayload { payload })
            .await
            .map_err(|status| {
                StoreError::Unavailable(format!(
                    "forwarding to the leader at {addr} failed; the write may or may not have been committed: {}",
                    status.message()
                ))
            })?;
        serde_json::from_slice(&reply.into_inner().payload)
            .map_err(|err| StoreError::Storage(format!("leader's reply: {err}")))
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
                    Ok(response) => return response,
                    // Refused before anything was appended: the leader moved;
                    // try again with whoever leads now.
                    Err(StoreError::NotLeader { .. }) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
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
        let result = self.shared.raft.append_entries(decode(request)?).await;
        encode(&result)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let result = self.shared.raft.vote(decode(request)?).await;
        encode(&result)
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
