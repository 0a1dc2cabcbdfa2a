//! Following the control plane's node-sync stream: Services, Endpoint
//! Slices and Endpoints of the whole cluster, as a snapshot then changes,
//! resumed by revision after a disconnect. Each change becomes the
//! dataplane change of the one Service it touches. A Service with slices is
//! served from them (they know terminating endpoints); one without, from
//! its v1 Endpoints.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use rudder_api::{
    core::{Endpoints, Service},
    discovery::EndpointSlice,
    facts::{ObjectExt, ObjectRef},
};
use rudder_client::{Client, ClientConfig, NodeChange, NodeSyncUpdate};
use tokio::sync::mpsc::UnboundedSender;

use super::{
    from_api::{Backends, service_state},
    updates::{PodUpdate, ServiceUpdate},
};
use crate::{
    dataplane::services::{ServiceChange, ServiceName, ServiceState},
    pods::ServiceEnvironment,
};

/// What one change of the stream means for this node.
#[derive(Debug)]
enum Absorbed {
    /// The change of the one Service it touched.
    Service(ServiceChange),
    /// A pod bound to this node changed (boxed: a pod is large).
    Pod(Box<PodUpdate>),
    /// Nothing the node serves (a slice of no Service).
    Nothing,
}

/// The cluster's Services, Endpoints and EndpointSlices as last heard.
#[derive(Default)]
struct Cache {
    services: BTreeMap<ObjectRef, Service>,
    endpoints: BTreeMap<ObjectRef, Endpoints>,
    /// Slices by the Service they belong to, then by slice name.
    slices: BTreeMap<ObjectRef, BTreeMap<String, EndpointSlice>>,
}

impl Cache {
    fn all(&self, node: &str) -> Vec<ServiceState> {
        self.services
            .iter()
            .filter_map(|(k, s)| self.state_of(k, s, node))
            .collect()
    }

    fn state_of(&self, k: &ObjectRef, service: &Service, node: &str) -> Option<ServiceState> {
        match self.slices.get(k).filter(|s| !s.is_empty()) {
            Some(slices) => {
                let slices: Vec<&EndpointSlice> = slices.values().collect();
                service_state(service, Backends::Slices(&slices), node)
            }
            None => service_state(service, Backends::Endpoints(self.endpoints.get(k)), node),
        }
    }

    /// The Service a slice belongs to (its `kubernetes.io/service-name`).
    fn service_of(slice: &EndpointSlice) -> Option<ObjectRef> {
        slice
            .service_name()
            .map(|s| ObjectRef::new(slice.metadata.namespace.as_str(), s))
    }

    /// The dataplane change for the Service `k` as the cache now has it.
    fn change_of(&self, k: &ObjectRef, node: &str) -> ServiceChange {
        self.services
            .get(k)
            .and_then(|s| self.state_of(k, s, node))
            .map_or_else(
                || ServiceChange::Delete(ServiceName::new(&k.namespace, &k.name)),
                ServiceChange::Upsert,
            )
    }

    /// Applies one change; returns the dataplane change, if any.
    #[cfg(test)]
    fn apply(&mut self, change: NodeChange, node: &str) -> Option<ServiceChange> {
        match self.absorb(change, node) {
            Absorbed::Service(change) => Some(change),
            Absorbed::Pod(_) | Absorbed::Nothing => None,
        }
    }

    /// Takes one change into the cache; what it means for the node.
    fn absorb(&mut self, change: NodeChange, node: &str) -> Absorbed {
        let touched = match change {
            NodeChange::ServiceUpserted(s) => {
                let k = s.key();
                self.services.insert(k.clone(), s);
                k
            }
            NodeChange::ServiceDeleted(s) => {
                let k = s.key();
                self.services.remove(&k);
                k
            }
            NodeChange::EndpointsUpserted(e) => {
                let k = e.key();
                self.endpoints.insert(k.clone(), e);
                k
            }
            NodeChange::EndpointsDeleted(e) => {
                let k = e.key();
                self.endpoints.remove(&k);
                k
            }
            NodeChange::EndpointSliceUpserted(slice) => {
                let Some(k) = Self::service_of(&slice) else {
                    return Absorbed::Nothing;
                };
                self.slices
                    .entry(k.clone())
                    .or_default()
                    .insert(slice.metadata.name.clone(), slice);
                k
            }
            NodeChange::EndpointSliceDeleted(slice) => {
                let Some(k) = Self::service_of(&slice) else {
                    return Absorbed::Nothing;
                };
                if let Some(slices) = self.slices.get_mut(&k) {
                    slices.remove(&slice.metadata.name);
                    if slices.is_empty() {
                        self.slices.remove(&k);
                    }
                }
                k
            }
            NodeChange::PodUpserted(pod) => {
                return Absorbed::Pod(Box::new(PodUpdate::Upserted(pod)));
            }
            NodeChange::PodDeleted(pod) => return Absorbed::Pod(Box::new(PodUpdate::Deleted(pod))),
        };
        Absorbed::Service(self.change_of(&touched, node))
    }
}

/// Where the stream's updates go.
pub struct NodeSyncOutputs {
    /// Service changes (the map writer).
    pub services: UnboundedSender<ServiceUpdate>,
    /// Pod changes (the pod rounds); `None`: this node runs no pods, pod
    /// changes are dropped.
    pub pods: Option<UnboundedSender<PodUpdate>>,
    /// The Services as containers' environment variables.
    pub service_env: ServiceEnvironment,
}

/// Follows the node-sync stream of `node` from the API server `api`, sending every update
/// to `outputs`, reconnecting (from the last revision) until a receiver is
/// gone.
pub async fn follow(api: ClientConfig, node: String, outputs: NodeSyncOutputs) {
    let mut revision = 0;
    let mut cache = Cache::default();
    let mut backoff = Duration::from_millis(100);
    loop {
        match stream_once(&api, &node, &outputs, &mut revision, &mut cache).await {
            Ok(()) => tracing::info!(
                server = %api.server,
                revision,
                "node-sync stream ended; resuming"
            ),
            Err(Stop) => return,
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// A receiver is gone: the agent is stopping.
struct Stop;

impl NodeSyncOutputs {
    fn service(&self, update: ServiceUpdate) -> Result<(), Stop> {
        self.services.send(update).map_err(|_| Stop)
    }

    fn pod(&self, update: PodUpdate) -> Result<(), Stop> {
        match &self.pods {
            Some(pods) => pods.send(update).map_err(|_| Stop),
            None => Ok(()),
        }
    }
}

async fn stream_once(
    api: &ClientConfig,
    node: &str,
    outputs: &NodeSyncOutputs,
    revision: &mut i64,
    cache: &mut Cache,
) -> Result<(), Stop> {
    let client = match Client::connect_with(api).await {
        Ok(client) => client,
        Err(err) => {
            tracing::warn!(server = %api.server, %err, "control plane unreachable");
            return Ok(());
        }
    };
    let mut stream = match client.node_sync(node, *revision).await {
        Ok(stream) => stream,
        Err(err) => {
            tracing::warn!(server = %api.server, %err, "node-sync refused");
            return Ok(());
        }
    };
    while let Some(update) = stream.next().await {
        let received = Instant::now();
        let update = match update {
            Ok(update) => update,
            Err(err) => {
                tracing::warn!(%err, "node-sync stream broke");
                return Ok(());
            }
        };
        match update {
            NodeSyncUpdate::Snapshot {
                revision: at_revision,
                services,
                endpoints,
                endpoint_slices,
                pods,
            } => {
                outputs.pod(PodUpdate::Resync(pods))?;
                *revision = at_revision;
                *cache = Cache::default();
                outputs.service_env.replace(&services);
                for s in services {
                    cache.services.insert(s.key(), s);
                }
                for e in endpoints {
                    cache.endpoints.insert(e.key(), e);
                }
                for slice in endpoint_slices {
                    if let Some(k) = Cache::service_of(&slice) {
                        cache
                            .slices
                            .entry(k)
                            .or_default()
                            .insert(slice.metadata.name.clone(), slice);
                    }
                }
                outputs.service(ServiceUpdate::Resync {
                    services: cache.all(node),
                    received,
                })?;
            }
            NodeSyncUpdate::Change {
                revision: at_revision,
                change,
            } => {
                *revision = at_revision;
                match &change {
                    NodeChange::ServiceUpserted(s) => outputs.service_env.upsert(s),
                    NodeChange::ServiceDeleted(s) => outputs.service_env.remove(&s.key()),
                    _ => {}
                }
                match cache.absorb(change, node) {
                    Absorbed::Service(change) => {
                        outputs.service(ServiceUpdate::Apply { change, received })?;
                    }
                    Absorbed::Pod(update) => outputs.pod(*update)?,
                    Absorbed::Nothing => {}
                }
            }
            NodeSyncUpdate::Bookmark {
                revision: at_revision,
            } => {
                *revision = at_revision;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> Service {
        serde_json::from_str(&format!(
            r#"{{"metadata": {{"name": "{name}", "namespace": "default"}},
                "spec": {{"clusterIP": "10.96.0.10", "ports": [{{"port": 80}}]}}}}"#
        ))
        .expect("json")
    }

    fn endpoints(name: &str, ips: &[&str]) -> Endpoints {
        let addresses: Vec<String> = ips
            .iter()
            .map(|ip| format!(r#"{{"ip": "{ip}"}}"#))
            .collect();
        serde_json::from_str(&format!(
            r#"{{"metadata": {{"name": "{name}", "namespace": "default"}},
                "subsets": [{{"addresses": [{}], "ports": [{{"port": 8080}}]}}]}}"#,
            addresses.join(",")
        ))
        .expect("json")
    }

    #[test]
    fn each_change_becomes_the_change_of_its_service() {
        let mut cache = Cache::default();
        let Some(ServiceChange::Upsert(s)) =
            cache.apply(NodeChange::ServiceUpserted(service("web")), "n1")
        else {
            panic!("a new service is upserted");
        };
        assert!(s.endpoints.is_empty());
        let Some(ServiceChange::Upsert(s)) = cache.apply(
            NodeChange::EndpointsUpserted(endpoints("web", &["10.244.1.2"])),
            "n1",
        ) else {
            panic!("endpoints upsert their service");
        };
        assert_eq!(s.endpoints.len(), 1);
        let deleted = cache.apply(NodeChange::ServiceDeleted(service("web")), "n1");
        assert_eq!(
            deleted,
            Some(ServiceChange::Delete(ServiceName::new("default", "web")))
        );
        // Endpoints of a service that is gone: nothing to serve.
        let late = cache.apply(
            NodeChange::EndpointsUpserted(endpoints("web", &["10.244.1.3"])),
            "n1",
        );
        assert_eq!(
            late,
            Some(ServiceChange::Delete(ServiceName::new("default", "web")))
        );
    }

    fn slice(service: &str, ready: &[&str], terminating: &[&str]) -> EndpointSlice {
        let endpoint = |ip: &str, ready: bool| {
            format!(
                r#"{{"addresses": ["{ip}"], "conditions": {{"ready": {ready}, "serving": true, "terminating": {}}}}}"#,
                !ready
            )
        };
        let endpoints: Vec<String> = ready
            .iter()
            .map(|ip| endpoint(ip, true))
            .chain(terminating.iter().map(|ip| endpoint(ip, false)))
            .collect();
        serde_json::from_str(&format!(
            r#"{{"metadata": {{"name": "{service}-0", "namespace": "default",
                               "labels": {{"kubernetes.io/service-name": "{service}"}}}},
                "addressType": "IPv4", "ports": [{{"port": 8080}}], "endpoints": [{}]}}"#,
            endpoints.join(",")
        ))
        .expect("json")
    }

    #[test]
    fn slices_take_over_from_endpoints_and_keep_terminating_backends() {
        let mut cache = Cache::default();
        cache.apply(NodeChange::ServiceUpserted(service("web")), "n1");
        cache.apply(
            NodeChange::EndpointsUpserted(endpoints("web", &["10.244.1.2", "10.244.1.3"])),
            "n1",
        );
        let Some(ServiceChange::Upsert(s)) = cache.apply(
            NodeChange::EndpointSliceUpserted(slice("web", &["10.244.1.2"], &["10.244.1.3"])),
            "n1",
        ) else {
            panic!("a slice upserts its service");
        };
        let seen: Vec<(String, bool)> = s
            .endpoints
            .iter()
            .map(|e| (e.addr.to_string(), e.terminating))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("10.244.1.2".to_owned(), false),
                ("10.244.1.3".to_owned(), true)
            ],
            "the slice, not the Endpoints, says what terminates"
        );
        // The slice gone: the Endpoints serve again.
        let Some(ServiceChange::Upsert(s)) = cache.apply(
            NodeChange::EndpointSliceDeleted(slice("web", &[], &[])),
            "n1",
        ) else {
            panic!("a deleted slice upserts its service");
        };
        assert_eq!(s.endpoints.len(), 2);
        assert!(s.endpoints.iter().all(|e| !e.terminating));
        // A slice of no Service touches nothing.
        let mut orphan = slice("web", &["10.244.9.9"], &[]);
        orphan.metadata.labels.clear();
        assert_eq!(
            cache.apply(NodeChange::EndpointSliceUpserted(orphan), "n1"),
            None
        );
    }
}
