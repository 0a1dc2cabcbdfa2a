//! The Endpoints controller: for every Service with a selector, its
//! EndpointSlices (`endpoint_slices.rs`, terminating pods included) and one
//! Endpoints object (same name) listing the selected pods' addresses —
//! ready pods in `addresses`, the others in `notReadyAddresses`, pods being
//! deleted nowhere — with each address's node (the dataplane uses it to
//! tell local backends) and the service ports resolved against the pod's
//! container ports.
//!
//! Updates are batched by the work queue: however many pods of a Service
//! change while its Endpoints are being written, the next write covers
//! them all at once.

use std::collections::BTreeMap;

use rudder_api::{
    core::{
        EndpointAddress, EndpointPort, EndpointSubset, Endpoints, IntOrString, ObjectReference,
        Pod, Service, ServicePort,
    },
    events::EventType,
    facts::{ObjectExt, ObjectRef, PodExt},
    meta::ObjectMeta,
    selector::Selector,
};
use rudder_client::{Client, ClientError, EventRecorder, workqueue::WorkQueue};
use tokio::task::JoinHandle;

use super::{Requeue, endpoint_slices, spawn_workers};

use crate::informers::Informers;

/// Keeps Endpoints in step with Services and their pods.
#[derive(Debug, Clone)]
pub struct EndpointsController {
    client: Client,
    informers: Informers,
    events: EventRecorder,
    queue: WorkQueue<ObjectRef>,
}

impl EndpointsController {
    /// A controller over the shared informers, reporting to `events`.
    pub fn new(client: Client, informers: Informers, events: EventRecorder) -> Self {
        Self {
            client,
            informers,
            events,
            queue: WorkQueue::default(),
        }
    }

    /// Registers its handlers and spawns its workers.
    pub fn start(self, tasks: &mut Vec<JoinHandle<()>>) {
        let queue = self.queue.clone();
        self.informers
            .services
            .on_change(move |change| queue.add(change.object().key()));
        let queue = self.queue.clone();
        self.informers
            .endpoints
            .on_change(move |change| queue.add(change.object().key()));
        let queue = self.queue.clone();
        self.informers.endpoint_slices.on_change(move |change| {
            let slice = change.object();
            if let Some(service) = slice.service_name() {
                queue.add(ObjectRef::new(slice.metadata.namespace.as_str(), service));
            }
        });
        let queue = self.queue.clone();
        let services = self.informers.services.clone();
        self.informers.pods.on_change(move |change| {
            let pod = change.object();
            for service in services.in_namespace(&pod.metadata.namespace) {
                let selects = |pod: &Pod| {
                    !service.spec.selector.is_empty()
                        && service
                            .spec
                            .selector
                            .iter()
                            .all(|(k, v)| pod.metadata.labels.get(k) == Some(v))
                };
                if selects(pod) || change.old().is_some_and(|old| selects(old)) {
                    queue.add(service.key());
                }
            }
        });
        let controller = self.clone();
        spawn_workers(
            "endpoints",
            self.informers.clone(),
            self.queue.clone(),
            4,
            move |key: ObjectRef| {
                let controller = controller.clone();
                async move { controller.reconcile(&key).await }
            },
            tasks,
        );
    }

    async fn reconcile(&self, key: &ObjectRef) -> Result<Requeue, ClientError> {
        let result = self.sync(key).await;
        if let Err(err) = &result
            && !matches!(err, ClientError::Conflict(_))
            && let Some(service) = self.informers.services.get(key)
        {
            self.events.record(
                &*service,
                EventType::Warning,
                "FailedToUpdateEndpoint",
                format!("Failed to update endpoint {key}: {err}"),
            );
        }
        result
    }

    async fn sync(&self, key: &ObjectRef) -> Result<Requeue, ClientError> {
        let (namespace, name) = (key.namespace.as_str(), key.name.as_str());
        let existing = self.informers.endpoints.get(key);
        let Some(service) = self.informers.services.get(key) else {
            // The Service is gone: so are its Endpoints and slices (if we
            // made them).
            endpoint_slices::write(&self.client, &self.informers, key, Vec::new()).await?;
            if existing.is_some_and(|e| e.metadata.labels.contains_key(MANAGED_LABEL)) {
                match self.client.delete::<Endpoints>(namespace, name).await {
                    Ok(_) | Err(ClientError::NotFound(_)) => {}
                    Err(err) => return Err(err),
                }
            }
            return Ok(Requeue::No);
        };
        if service.spec.selector.is_empty() {
            // Endpoints of selector-less Services are the user's.
            return Ok(Requeue::No);
        }
        let selector = Selector::parse(
            &service
                .spec
                .selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        )
        .map_err(|err| ClientError::Invalid(err.to_string()))?;
        let hint = service.spec.selector.iter().next();
        let pods = self.informers.pods.select(
            namespace,
            &selector,
            hint.map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let slices = endpoint_slices::slices_for(&service, pods.iter().map(|p| &**p));
        endpoint_slices::write(&self.client, &self.informers, key, slices).await?;
        let subsets = subsets_for(&service, pods.iter().map(|p| &**p));
        let mut labels = service.metadata.labels.clone();
        labels.insert(MANAGED_LABEL.to_owned(), "endpoints-controller".to_owned());
        match existing {
            Some(current) if current.subsets == subsets && current.metadata.labels == labels => {}
            Some(current) => {
                let mut next = (*current).clone();
                next.subsets = subsets;
                next.metadata.labels = labels;
                self.client.update(&next).await?;
            }
            None => {
                let endpoints = Endpoints {
                    api_version: "v1".to_owned(),
                    kind: "Endpoints".to_owned(),
                    metadata: ObjectMeta {
                        name: name.to_owned(),
                        namespace: namespace.to_owned(),
                        labels,
                        ..ObjectMeta::default()
                    },
                    subsets,
                };
                match self.client.create(&endpoints).await {
                    Ok(_) => {}
                    // Created meanwhile (our cache is behind): look again.
                    Err(ClientError::AlreadyExists(message)) => {
                        return Err(ClientError::Conflict(message));
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(Requeue::No)
    }
}

/// A service port resolved for one pod: name, number, protocol.
pub(super) type ResolvedPort = (Option<String>, i64, Option<String>);

/// Label on Endpoints this controller maintains.
pub const MANAGED_LABEL: &str = "endpoints.rudder.dev/managed-by";

/// The subsets of a Service's Endpoints given its selected pods: pods
/// grouped by the ports they resolve to, addresses sorted so an unchanged
/// set compares equal.
pub fn subsets_for<'a>(
    service: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Vec<EndpointSubset> {
    let mut groups: BTreeMap<Vec<ResolvedPort>, EndpointSubset> = BTreeMap::new();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let status = pod.status.as_ref();
        if matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            continue;
        }
        let Some(ip) = status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        let ports = resolved_ports(service, pod);
        if ports.is_empty() {
            continue;
        }
        let address = EndpointAddress {
            ip,
            hostname: None,
            node_name: pod.spec.node_name.clone(),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".to_owned()),
                namespace: Some(pod.metadata.namespace.clone()),
                name: Some(pod.metadata.name.clone()),
                uid: Some(pod.metadata.uid.clone()),
                ..ObjectReference::default()
            }),
        };
        let subset = groups
            .entry(ports.clone())
            .or_insert_with(|| EndpointSubset {
                ports: ports
                    .iter()
                    .map(|(name, port, protocol)| EndpointPort {
                        name: name.clone(),
                        port: *port,
                        protocol: protocol.clone(),
                        app_protocol: None,
                    })
                    .collect(),
                ..EndpointSubset::default()
            });
        if pod.is_ready() {
            subset.addresses.push(address);
        } else {
            subset.not_ready_addresses.push(address);
        }
    }
    let mut subsets: Vec<_> = groups.into_values().collect();
    for subset in &mut subsets {
        subset.addresses.sort_by(|a, b| a.ip.cmp(&b.ip));
        subset.not_ready_addresses.sort_by(|a, b| a.ip.cmp(&b.ip));
    }
    subsets
}

/// The Service's ports as `pod` serves them (ports it cannot resolve left
/// out).
pub(super) fn resolved_ports(service: &Service, pod: &Pod) -> Vec<ResolvedPort> {
    service
        .spec
        .ports
        .iter()
        .filter_map(|port| {
            resolve_target_port(port, pod)
                .map(|number| (port.name.clone(), number, port.protocol.clone()))
        })
        .collect()
}

/// The pod port a service port reaches: a number as given, a name looked
/// up among the pod's container ports (same protocol).
fn resolve_target_port(port: &ServicePort, pod: &Pod) -> Option<i64> {
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(number)) => Some(*number),
        Some(IntOrString::String(name)) => {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            pod.spec
                .containers
                .iter()
                .flat_map(|c| &c.ports)
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

#[cfg(test)]
mod tests {
    use rudder_api::core::{Container, ContainerPort, PodStatus, ServiceSpec};
    use rudder_api::meta::Condition;

    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, port_name: &str, port: i64) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = name.into();
        pod.metadata.namespace = "default".into();
        pod.spec.node_name = Some("node1".into());
        pod.spec.containers = vec![Container {
            name: "c".into(),
            ports: vec![ContainerPort {
                name: Some(port_name.into()),
                container_port: port,
                ..ContainerPort::default()
            }],
            ..Container::default()
        }];
        pod.status = Some(PodStatus {
            pod_ip: Some(ip.into()),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Condition::default()
            }],
            ..PodStatus::default()
        });
        pod
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_readiness_splits_addresses() {
        let service = Service {
            spec: ServiceSpec {
                ports: vec![ServicePort {
                    port: 80,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }],
                ..ServiceSpec::default()
            },
            ..Service::default()
        };
        let mut terminating = pod("d", "10.244.0.4", true, "http", 8080);
        terminating.metadata.deletion_timestamp = Some("2024-01-01T00:00:00Z".into());
        let pods = [
            pod("a", "10.244.0.2", true, "http", 8080),
            pod("b", "10.244.0.3", false, "http", 8080),
            pod("c", "10.244.0.5", true, "http", 9090),
            terminating,
            pod("e", "10.244.0.6", true, "metrics", 8080),
        ];
        let subsets = subsets_for(&service, &pods);
        assert_eq!(subsets.len(), 2, "{subsets:?}");
        let on_8080 = subsets
            .iter()
            .find(|s| s.ports[0].port == 8080)
            .expect("8080");
        assert_eq!(on_8080.addresses.len(), 1);
        assert_eq!(on_8080.addresses[0].ip, "10.244.0.2");
        assert_eq!(on_8080.addresses[0].node_name.as_deref(), Some("node1"));
        assert_eq!(on_8080.not_ready_addresses[0].ip, "10.244.0.3");
        let on_9090 = subsets
            .iter()
            .find(|s| s.ports[0].port == 9090)
            .expect("9090");
        assert_eq!(on_9090.addresses[0].ip, "10.244.0.5");
    }
}
