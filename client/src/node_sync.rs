//! The node-sync stream an agent follows: a snapshot of what concerns its
//! node, then changes in store order, resumable by revision (see
//! [`Client::node_sync`](crate::Client::node_sync)).

use rudder_api::{
    Kind,
    core::{Endpoints, Pod, Service},
    discovery::EndpointSlice,
    object,
    proto::{self, node_sync_message::Message},
    resource::Resource,
};

use crate::error::{ClientError, DecodeError};

/// What the node-sync stream delivers.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "updates are handled one at a time; boxing a change would only add an allocation"
)]
pub enum NodeSyncUpdate {
    /// Everything relevant to the node at `revision`: replaces whatever the
    /// agent knew.
    Snapshot {
        /// Resume from here.
        revision: i64,
        /// Pods bound to the node.
        pods: Vec<Pod>,
        /// Every service.
        services: Vec<Service>,
        /// Every endpoints object.
        endpoints: Vec<Endpoints>,
        /// Every EndpointSlice.
        endpoint_slices: Vec<EndpointSlice>,
    },
    /// One change, in store order.
    Change {
        /// Resume from here.
        revision: i64,
        /// The change.
        change: NodeChange,
    },
    /// Nothing for this node up to `revision`.
    Bookmark {
        /// Resume from here.
        revision: i64,
    },
}

/// One change seen by a node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeChange {
    /// A pod was bound to the node, or changed.
    PodUpserted(Pod),
    /// A pod was deleted or left the node; its last state.
    PodDeleted(Pod),
    /// A service was created or changed.
    ServiceUpserted(Service),
    /// A service was deleted; its last state.
    ServiceDeleted(Service),
    /// Endpoints were created or changed.
    EndpointsUpserted(Endpoints),
    /// Endpoints were deleted; their last state.
    EndpointsDeleted(Endpoints),
    /// An EndpointSlice was created or changed.
    EndpointSliceUpserted(EndpointSlice),
    /// An EndpointSlice was deleted; its last state.
    EndpointSliceDeleted(EndpointSlice),
}

/// The node-sync stream; see [`Client::node_sync`].
#[derive(Debug)]
pub struct NodeSyncStream {
    pub(crate) stream: tonic::Streaming<proto::NodeSyncMessage>,
}

impl NodeSyncStream {
    /// The next update; `None` when the server ended the stream (reconnect
    /// with the last revision seen).
    pub async fn next(&mut self) -> Option<Result<NodeSyncUpdate, ClientError>> {
        let message = match self.stream.message().await {
            Ok(Some(message)) => message,
            Ok(None) => return None,
            Err(status) => return Some(Err(status.into())),
        };
        Some(decode_node_sync(message))
    }
}

fn decode_node_sync(message: proto::NodeSyncMessage) -> Result<NodeSyncUpdate, ClientError> {
    match message.message {
        Some(Message::Snapshot(snapshot)) => Ok(NodeSyncUpdate::Snapshot {
            revision: snapshot.revision,
            pods: decode_all(&snapshot.pods_json)?,
            services: decode_all(&snapshot.services_json)?,
            endpoints: decode_all(&snapshot.endpoints_json)?,
            endpoint_slices: decode_all(&snapshot.endpoint_slices_json)?,
        }),
        Some(Message::Change(change)) => {
            let kind = Kind::parse(&change.kind).ok_or_else(|| {
                ClientError::Decode(DecodeError::UnknownKind(change.kind.clone()))
            })?;
            let json = &change.object_json;
            let change_of = match (kind, change.deleted) {
                (Kind::Pod, false) => NodeChange::PodUpserted(object::decode(json)?),
                (Kind::Pod, true) => NodeChange::PodDeleted(object::decode(json)?),
                (Kind::Service, false) => NodeChange::ServiceUpserted(object::decode(json)?),
                (Kind::Service, true) => NodeChange::ServiceDeleted(object::decode(json)?),
                (Kind::Endpoints, false) => NodeChange::EndpointsUpserted(object::decode(json)?),
                (Kind::Endpoints, true) => NodeChange::EndpointsDeleted(object::decode(json)?),
                (Kind::EndpointSlice, false) => {
                    NodeChange::EndpointSliceUpserted(object::decode(json)?)
                }
                (Kind::EndpointSlice, true) => {
                    NodeChange::EndpointSliceDeleted(object::decode(json)?)
                }
                (other, _) => {
                    return Err(ClientError::Decode(DecodeError::UnexpectedKind(other)));
                }
            };
            Ok(NodeSyncUpdate::Change {
                revision: change.revision,
                change: change_of,
            })
        }
        Some(Message::Bookmark(bookmark)) => Ok(NodeSyncUpdate::Bookmark {
            revision: bookmark.revision,
        }),
        None => Err(ClientError::Decode(DecodeError::EmptyMessage)),
    }
}

fn decode_all<T: Resource>(items: &[Vec<u8>]) -> Result<Vec<T>, ClientError> {
    items
        .iter()
        .map(|item| object::decode(item).map_err(ClientError::from))
        .collect()
}
