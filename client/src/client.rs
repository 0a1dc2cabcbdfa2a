//! The Rust client of rudder's API server (gRPC): typed CRUD and watch for
//! controllers, JSON-level calls for `rudderctl`, and the node-sync stream
//! for agents.
//!
//! # Node sync (what an agent uses)
//!
//! ```no_run
//! # async fn agent() -> Result<(), rudder_client::ClientError> {
//! use rudder_client::{Client, NodeSyncUpdate};
//!
//! let client = Client::connect("http://127.0.0.1:7400").await?;
//! let mut resume = 0; // 0: start with a snapshot
//! let mut stream = client.node_sync("node1", resume).await?;
//! while let Some(update) = stream.next().await {
//!     match update? {
//!         NodeSyncUpdate::Snapshot { revision, pods, services, endpoints } => {
//!             // Replace everything known with these; then resume = revision.
//!             resume = revision;
//!         }
//!         NodeSyncUpdate::Change { revision, change } => {
//!             // Apply one upsert/delete; then resume = revision.
//!             resume = revision;
//!         }
//!         NodeSyncUpdate::Bookmark { revision } => resume = revision,
//!     }
//! }
//! // The stream ended (server restart, network): reconnect with
//! // `client.node_sync("node1", resume)`; the server sends a fresh
//! // snapshot instead of changes if `resume` has been compacted away.
//! # Ok(()) }
//! ```

use rudder_api::{
    Kind,
    meta::DeleteOptions,
    object,
    proto::{self, node_sync_client::NodeSyncClient, resources_client::ResourcesClient},
    resource::Resource,
};
use std::time::Duration;

use serde_json::Value;
use tonic::{
    service::interceptor::InterceptedService,
    transport::{Channel, ClientTlsConfig, Endpoint},
};

use crate::{
    credentials::{BearerToken, ClientConfig},
    error::{ClientError, DecodeError},
    failover::FailoverChannel,
    node_sync::NodeSyncStream,
};

/// Which objects a list or watch returns.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Namespace; empty for every namespace.
    pub namespace: String,
    /// Label selector (`app=web,tier!=db`).
    pub label_selector: String,
    /// Field selector (`spec.nodeName=node1`).
    pub field_selector: String,
}

/// A list of objects and the revision it was read at (watch from there).
#[derive(Debug, Clone)]
pub struct ObjectList<T> {
    /// The objects, ordered by namespace and name.
    pub items: Vec<T>,
    /// The store revision of the list.
    pub resource_version: String,
}

/// One event of a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<T> {
    /// The object appeared (or started matching the selector).
    Added(T),
    /// The object changed.
    Modified(T),
    /// The object went away (or stopped matching); its last state.
    Deleted(T),
    /// Nothing for this watch up to `resource_version`.
    Bookmark {
        /// Resume from here.
        resource_version: String,
    },
}

/// The largest answer the client accepts. A list returns every matching
/// object in one message (read at one revision), so tonic's default of
/// 4 MiB would make a list of ~10,000 pods fail and an informer retry it
/// forever; like kube-apiserver's own store client, accept what gRPC can
/// carry.
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// How long a connect to one server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A connection to the API server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    resources: ResourcesClient<InterceptedService<FailoverChannel, BearerToken>>,
    node_sync: NodeSyncClient<InterceptedService<FailoverChannel, BearerToken>>,
}

impl Client {
    /// Connects to a plaintext server at `addr` (`http://host:port` or
    /// `host:port`): one started with `--insecure-plaintext`, or an
    /// in-process server of a test.
    ///
    /// # Errors
    /// [`ClientError::Connect`].
    pub async fn connect(addr: &str) -> Result<Self, ClientError> {
        Self::connect_with(&ClientConfig::insecure(addr)).await
    }

    /// Connects as `config` says: TLS when it has a CA (`https://`), with
    /// its client certificate and/or bearer token. `config.server` may
    /// name several replicas of one control plane, comma-separated: the
    /// first that answers serves, and requests move on to the next when it
    /// goes away (see [`FailoverChannel`]).
    ///
    /// # Errors
    /// [`ClientError::InvalidAddress`], [`ClientError::Connect`] (no
    /// replica answered: the first one's error), [`ClientError::Credentials`].
    pub async fn connect_with(config: &ClientConfig) -> Result<Self, ClientError> {
        let credentials = config.current_credentials();
        let tls = credentials.tls();
        let token =
            BearerToken::new(credentials.token.as_deref()).map_err(ClientError::Credentials)?;
        let mut endpoints = Vec::new();
        for addr in config.server.split(',').map(str::trim) {
            endpoints.push((addr, endpoint(addr, tls.as_ref())?));
        }
        // Connect now to the first replica that answers (an unreachable
        // control plane is an error here, as it was with one server); the
        // others connect when the channel turns to them.
        let mut first_error = None;
        let mut live = None;
        for (i, (addr, endpoint)) in endpoints.iter().enumerate() {
            match endpoint.connect().await {
                Ok(channel) => {
                    live = Some((i, channel));
                    break;
                }
                Err(source) => {
                    first_error.get_or_insert(ClientError::Connect {
                        addr: (*addr).to_owned(),
                        source,
                    });
                }
            }
        }
        let Some((current, live)) = live else {
            return Err(first_error.unwrap_or_else(|| {
                ClientError::Credentials("no API server address given".to_owned())
            }));
        };
        let mut live = Some(live);
        let channels = endpoints
            .iter()
            .enumerate()
            .map(|(i, (_, endpoint))| match live.take_if(|_| i == current) {
                Some(channel) => channel,
                None => endpoint.connect_lazy(),
            })
            .collect();
        let channel = FailoverChannel::new(channels, current);
        Ok(Self {
            resources: ResourcesClient::with_interceptor(channel.clone(), token.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            node_sync: NodeSyncClient::with_interceptor(channel, token)
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
        })
    }

    /// Creates an object; returns it as stored (uid, resourceVersion,
    /// defaults).
    ///
    /// # Errors
    /// [`ClientError::AlreadyExists`], [`ClientError::Invalid`], ...
    pub async fn create<T: Resource>(&self, object: &T) -> Result<T, ClientError> {
        let json = self.create_json(T::KIND, &to_json(object)?).await?;
        Ok(object::from_value(T::KIND, json)?)
    }

    /// Reads one object.
    ///
    /// # Errors
    /// [`ClientError::NotFound`], ...
    pub async fn get<T: Resource>(&self, namespace: &str, name: &str) -> Result<T, ClientError> {
        let json = self.get_json(T::KIND, namespace, name).await?;
        Ok(object::from_value(T::KIND, json)?)
    }

    /// Lists objects.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a bad selector, ...
    pub async fn list<T: Resource>(
        &self,
        options: &ListOptions,
    ) -> Result<ObjectList<T>, ClientError> {
        let list = self.list_json(T::KIND, options).await?;
        Ok(ObjectList {
            items: list
                .items
                .into_iter()
                .map(|item| object::from_value(T::KIND, item))
                .collect::<Result<_, _>>()?,
            resource_version: list.resource_version,
        })
    }

    /// Replaces an object's spec and metadata. With
    /// `metadata.resourceVersion` set, fails with [`ClientError::Conflict`]
    /// if the object changed since.
    ///
    /// # Errors
    /// [`ClientError::Conflict`], [`ClientError::NotFound`], ...
    pub async fn update<T: Resource>(&self, object: &T) -> Result<T, ClientError> {
        let json = self.update_json(T::KIND, &to_json(object)?, false).await?;
        Ok(object::from_value(T::KIND, json)?)
    }

    /// Replaces an object's status (same compare-and-swap as
    /// [`Client::update`]).
    ///
    /// # Errors
    /// As [`Client::update`].
    pub async fn update_status<T: Resource>(&self, object: &T) -> Result<T, ClientError> {
        let json = self.update_json(T::KIND, &to_json(object)?, true).await?;
        Ok(object::from_value(T::KIND, json)?)
    }

    /// Deletes an object; returns its last state.
    ///
    /// # Errors
    /// [`ClientError::NotFound`], ...
    pub async fn delete<T: Resource>(&self, namespace: &str, name: &str) -> Result<T, ClientError> {
        let json = self.delete_json(T::KIND, namespace, name, "").await?;
        Ok(object::from_value(T::KIND, json)?)
    }

    /// Watches objects after `resource_version` ("" or "0": current objects
    /// as `Added` first).
    ///
    /// # Errors
    /// [`ClientError::Gone`] when `resource_version` is compacted.
    pub async fn watch<T: Resource>(
        &self,
        options: &ListOptions,
        resource_version: &str,
    ) -> Result<Watch<T>, ClientError> {
        let stream = self
            .resources
            .clone()
            .watch(proto::WatchRequest {
                kind: T::KIND.name().to_owned(),
                namespace: options.namespace.clone(),
                label_selector: options.label_selector.clone(),
                field_selector: options.field_selector.clone(),
                resource_version: resource_version.to_owned(),
            })
            .await?
            .into_inner();
        Ok(Watch {
            stream,
            _kind: std::marker::PhantomData,
        })
    }

    /// Creates an object given as JSON.
    ///
    /// # Errors
    /// As [`Client::create`].
    pub async fn create_json(&self, kind: Kind, object: &Value) -> Result<Value, ClientError> {
        let response = self
            .resources
            .clone()
            .create(proto::ObjectRequest {
                kind: kind.name().to_owned(),
                object_json: serde_json::to_vec(object).map_err(decode_err)?,
            })
            .await?;
        parse(&response.into_inner().object_json)
    }

    /// Reads one object as JSON.
    ///
    /// # Errors
    /// As [`Client::get`].
    pub async fn get_json(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ClientError> {
        let response = self
            .resources
            .clone()
            .get(proto::GetRequest {
                kind: kind.name().to_owned(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
            .await?;
        parse(&response.into_inner().object_json)
    }

    /// Lists objects as JSON.
    ///
    /// # Errors
    /// As [`Client::list`].
    pub async fn list_json(
        &self,
        kind: Kind,
        options: &ListOptions,
    ) -> Result<ObjectList<Value>, ClientError> {
        let response = self
            .resources
            .clone()
            .list(proto::ListRequest {
                kind: kind.name().to_owned(),
                namespace: options.namespace.clone(),
                label_selector: options.label_selector.clone(),
                field_selector: options.field_selector.clone(),
            })
            .await?
            .into_inner();
        Ok(ObjectList {
            items: response
                .items_json
                .iter()
                .map(|item| parse(item))
                .collect::<Result<_, _>>()?,
            resource_version: response.resource_version,
        })
    }

    /// Updates an object given as JSON (`status_only`: its status).
    ///
    /// # Errors
    /// As [`Client::update`].
    pub async fn update_json(
        &self,
        kind: Kind,
        object: &Value,
        status_only: bool,
    ) -> Result<Value, ClientError> {
        let request = proto::ObjectRequest {
            kind: kind.name().to_owned(),
            object_json: serde_json::to_vec(object).map_err(decode_err)?,
        };
        let mut resources = self.resources.clone();
        let response = if status_only {
            resources.update_status(request).await?
        } else {
            resources.update(request).await?
        };
        parse(&response.into_inner().object_json)
    }

    /// Deletes an object; `resource_version` (if not empty) is a
    /// precondition. Returns its last state as JSON.
    ///
    /// # Errors
    /// As [`Client::delete`], and [`ClientError::Conflict`] for a failed
    /// precondition.
    pub async fn delete_json(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        resource_version: &str,
    ) -> Result<Value, ClientError> {
        let options = DeleteOptions {
            resource_version: resource_version.to_owned(),
            ..DeleteOptions::default()
        };
        self.delete_with(kind, namespace, name, &options).await
    }

    /// Deletes an object with `options` (grace period, preconditions).
    /// Returns its state after the request: gone, or marked with
    /// `deletionTimestamp` while it finishes (a pod on a node).
    ///
    /// # Errors
    /// As [`Client::delete_json`].
    pub async fn delete_with(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value, ClientError> {
        let DeleteOptions {
            grace_period_seconds,
            resource_version,
            uid,
            propagation_policy,
        } = options;
        let response = self
            .resources
            .clone()
            .delete(proto::DeleteRequest {
                kind: kind.name().to_owned(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                resource_version: resource_version.clone(),
                grace_period_seconds: *grace_period_seconds,
                uid: uid.clone(),
                propagation_policy: propagation_policy
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
            })
            .await?;
        parse(&response.into_inner().object_json)
    }

    /// Watches objects as JSON; see [`Client::watch`].
    ///
    /// # Errors
    /// As [`Client::watch`].
    pub async fn watch_json(
        &self,
        kind: Kind,
        options: &ListOptions,
        resource_version: &str,
    ) -> Result<Watch<Value>, ClientError> {
        let stream = self
            .resources
            .clone()
            .watch(proto::WatchRequest {
                kind: kind.name().to_owned(),
                namespace: options.namespace.clone(),
                label_selector: options.label_selector.clone(),
                field_selector: options.field_selector.clone(),
                resource_version: resource_version.to_owned(),
            })
            .await?
            .into_inner();
        Ok(Watch {
            stream,
            _kind: std::marker::PhantomData,
        })
    }

    /// Opens the node-sync stream of `node`: the pods bound to it and every
    /// service and endpoints object. `resume_revision` 0 starts with a
    /// [`NodeSyncUpdate::Snapshot`]; a revision from an earlier stream
    /// continues with the changes after it (or a snapshot, if it has been
    /// compacted).
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a bad node name, transport errors.
    pub async fn node_sync(
        &self,
        node: &str,
        resume_revision: i64,
    ) -> Result<NodeSyncStream, ClientError> {
        let stream = self
            .node_sync
            .clone()
            .sync(proto::NodeSyncRequest {
                node_name: node.to_owned(),
                resume_revision,
            })
            .await?
            .into_inner();
        Ok(NodeSyncStream { stream })
    }
}

/// A watch on objects of one kind.
#[derive(Debug)]
pub struct Watch<T> {
    stream: tonic::Streaming<proto::WatchEvent>,
    _kind: std::marker::PhantomData<T>,
}

impl<T: serde::de::DeserializeOwned> Watch<T> {
    /// The next event; `None` when the server ended the watch.
    pub async fn next(&mut self) -> Option<Result<WatchEvent<T>, ClientError>> {
        let event = match self.stream.message().await {
            Ok(Some(event)) => event,
            Ok(None) => return None,
            Err(status) => return Some(Err(status.into())),
        };
        if event.r#type == "BOOKMARK" {
            return Some(Ok(WatchEvent::Bookmark {
                resource_version: event.resource_version,
            }));
        }
        let object: T = match serde_json::from_slice(&event.object_json) {
            Ok(object) => object,
            Err(err) => return Some(Err(decode_err(err))),
        };
        Some(Ok(match event.r#type.as_str() {
            "ADDED" => WatchEvent::Added(object),
            "DELETED" => WatchEvent::Deleted(object),
            _ => WatchEvent::Modified(object),
        }))
    }
}

fn to_json<T: Resource>(object: &T) -> Result<Value, ClientError> {
    serde_json::to_value(object).map_err(decode_err)
}

fn parse(bytes: &[u8]) -> Result<Value, ClientError> {
    serde_json::from_slice(bytes).map_err(decode_err)
}

pub(crate) fn decode_err(err: serde_json::Error) -> ClientError {
    ClientError::Decode(DecodeError::Json(err))
}

/// The channel endpoint of one server address, with TLS when `tls` is
/// given (then the address must be `https://` or bare).
fn endpoint(addr: &str, tls: Option<&ClientTlsConfig>) -> Result<Endpoint, ClientError> {
    let url = match (addr.split_once("://"), tls) {
        (Some(("https", _)), None) => {
            return Err(ClientError::Credentials(format!(
                "{addr} is https but no CA to verify it is given (certificate-authority in the kubeconfig)"
            )));
        }
        (Some(("http", _)), Some(_)) => {
            return Err(ClientError::Credentials(format!(
                "{addr} is plaintext http, but credentials are given: use https://"
            )));
        }
        (Some(_), _) => addr.to_owned(),
        (None, Some(_)) => format!("https://{addr}"),
        (None, None) => format!("http://{addr}"),
    };
    let endpoint = Channel::from_shared(url)
        .map_err(|source| ClientError::InvalidAddress {
            addr: addr.to_owned(),
            source,
        })?
        // A replica whose host is gone must not hold a request for the
        // system's TCP connect timeout (minutes) before the next is tried.
        .connect_timeout(CONNECT_TIMEOUT);
    match tls {
        Some(tls) => endpoint
            .tls_config(tls.clone())
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            }),
        None => Ok(endpoint),
    }
}
