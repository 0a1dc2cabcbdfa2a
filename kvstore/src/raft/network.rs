//! openraft's messages between replicas, over the `RaftTransport` gRPC
//! service, as JSON payloads.

use std::{collections::BTreeMap, time::Duration};

use openraft::{
    BasicNode, RaftNetwork, RaftNetworkFactory,
    error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable},
    network::RPCOption,
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
        InstallSnapshotResponse, VoteRequest, VoteResponse,
    },
};
use tonic::transport::Channel;

use super::TypeConfig;
use crate::proto::raft::{RaftPayload, raft_transport_client::RaftTransportClient};

/// Makes a client per peer, over one channel per peer shared by every
/// client: openraft asks for a new client for each leadership check of a
/// linearizable read, and a fresh channel cost a TCP and HTTP/2 handshake
/// with each follower on every read. A channel reconnects by itself after
/// its peer restarts.
#[derive(Default)]
pub(crate) struct Network {
    channels: BTreeMap<u64, (String, Channel)>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        let channel = match self.channels.get(&target) {
            Some((addr, channel)) if *addr == node.addr => Some(channel.clone()),
            _ => {
                let channel = Channel::from_shared(format!("http://{}", node.addr))
                    .map(|endpoint| {
                        endpoint
                            .connect_timeout(Duration::from_millis(500))
                            .tcp_nodelay(true)
                            .connect_lazy()
                    })
                    .ok();
                if let Some(channel) = &channel {
                    self.channels
                        .insert(target, (node.addr.clone(), channel.clone()));
                }
                channel
            }
        };
        PeerClient {
            target,
            client: channel.map(|channel| {
                RaftTransportClient::new(channel)
                    .max_decoding_message_size(usize::MAX)
                    .max_encoding_message_size(usize::MAX)
            }),
        }
    }
}

/// The connection to one peer.
pub(crate) struct PeerClient {
    target: u64,
    client: Option<RaftTransportClient<Channel>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl PeerClient {
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: &Req,
        option: &RPCOption,
        kind: Rpc,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let Some(client) = self.client.as_mut() else {
            return Err(RPCError::Unreachable(Unreachable::new(&TransportError(
                "peer address is not a valid URL".to_owned(),
            ))));
        };
        let payload =
            serde_json::to_vec(rpc).map_err(|err| RPCError::Network(NetworkError::new(&err)))?;
        let mut request = tonic::Request::new(RaftPayload { payload });
        request.set_timeout(option.hard_ttl());
        let response = match kind {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        }
        .map_err(|status| {
            let err = TransportError(status.to_string());
            // openraft stops sending to an unreachable peer for 500 ms,
            // heartbeats included: right for a peer that is down, but a
            // reply that is merely late (a busy disk or CPU) is no reason
            // to go silent for longer than the election timeout, which
            // made followers stand against a healthy leader under load.
            if super::never_sent(&status) {
                RPCError::Unreachable(Unreachable::new(&err))
            } else {
                RPCError::Network(NetworkError::new(&err))
            }
        })?;
        let result: Result<Resp, RaftError<u64, E>> =
            serde_json::from_slice(&response.into_inner().payload)
                .map_err(|err| RPCError::Network(NetworkError::new(&err)))?;
        result.map_err(|err| RPCError::RemoteError(RemoteError::new(self.target, err)))
    }
}

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(&rpc, &option, Rpc::Append).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(&rpc, &option, Rpc::Snapshot).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(&rpc, &option, Rpc::Vote).await
    }
}
