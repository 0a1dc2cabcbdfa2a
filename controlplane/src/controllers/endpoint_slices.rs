//! EndpointSlices (discovery.k8s.io/v1) of a Service, written next to its
//! v1 Endpoints by the Endpoints controller (one trigger, one view of the
//! pods). Unlike Endpoints, a slice keeps a pod that is being deleted, as
//! `terminating` (and `serving` while its readiness holds), so the
//! dataplane can give it no new flows and keep the established ones until
//! the pod is gone.
//!
//! Slices are named `<service>-<n>`, hold at most
//! [`MAX_ENDPOINTS_PER_SLICE`] endpoints that share ports, sorted by
//! address so an unchanged set compares equal and is not rewritten.

use std::collections::{BTreeMap, BTreeSet};

use rudder_api::{
    core::{ObjectReference, Pod, Service},
    discovery::{
        Endpoint, EndpointConditions, EndpointSlice, EndpointSlicePort, MANAGED_BY_CONTROLLER,
        MANAGED_BY_LABEL, MAX_ENDPOINTS_PER_SLICE, SERVICE_NAME_LABEL,
    },
    facts::{ObjectExt, ObjectRef, PodExt},
    meta::{ObjectMeta, OwnerReference},
};
use rudder_client::{Client, ClientError};

use super::endpoints::resolved_ports;
use crate::informers::Informers;

/// The slices a Service should have given its selected pods (names,
/// labels, endpoints; no revision).
pub fn slices_for<'a>(
    service: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Vec<EndpointSlice> {
    let mut groups: BTreeMap<Vec<EndpointSlicePort>, Vec<Endpoint>> = BTreeMap::new();
    for pod in pods {
        if matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            continue;
        }
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        let ports: Vec<EndpointSlicePort> = resolved_ports(service, pod)
            .into_iter()
            .map(|(name, port, protocol)| EndpointSlicePort {
                name,
                protocol: Some(protocol.unwrap_or_else(|| "TCP".to_owned())),
                port: Some(port),
                app_protocol: None,
            })
            .collect();
        if ports.is_empty() {
            continue;
        }
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let serving = pod.is_ready();
        groups.entry(ports).or_default().push(Endpoint {
            addresses: vec![ip],
            conditions: EndpointConditions {
                ready: Some(serving && !terminating),
                serving: Some(serving),
                terminating: Some(terminating),
            },
            hostname: None,
            node_name: pod.spec.node_name.clone(),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".to_owned()),
                namespace: Some(pod.metadata.namespace.clone()),
                name: Some(pod.metadata.name.clone()),
                uid: Some(pod.metadata.uid.clone()),
                ..ObjectReference::default()
            }),
            zone: None,
            hints: None,
            deprecated_topology: None,
        });
    }
    let mut labels = service.metadata.labels.clone();
    labels.insert(SERVICE_NAME_LABEL.to_owned(), service.metadata.name.clone());
    labels.insert(
        MANAGED_BY_LABEL.to_owned(),
        MANAGED_BY_CONTROLLER.to_owned(),
    );
    let owner = OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Service".to_owned(),
        name: service.metadata.name.clone(),
        uid: service.metadata.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let mut slices = Vec::new();
    for (ports, mut endpoints) in groups {
        endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
        for chunk in endpoints.chunks(MAX_ENDPOINTS_PER_SLICE) {
            slices.push(EndpointSlice {
                api_version: "discovery.k8s.io/v1".to_owned(),
                kind: "EndpointSlice".to_owned(),
                metadata: ObjectMeta {
                    name: format!("{}-{}", service.metadata.name, slices.len()),
                    namespace: service.metadata.namespace.clone(),
                    labels: labels.clone(),
                    owner_references: vec![owner.clone()],
                    ..ObjectMeta::default()
                },
                address_type: "IPv4".to_owned(),
                endpoints: chunk.to_vec(),
                ports: ports.clone(),
            });
        }
    }
    slices
}

/// Whether two slices say the same (ignoring revision and timestamps).
fn same(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    a.endpoints == b.endpoints
        && a.ports == b.ports
        && a.address_type == b.address_type
        && a.metadata.labels == b.metadata.labels
        && a.metadata.owner_references == b.metadata.owner_references
}

/// The slices this controller wrote for the Service `key`, from the cache.
fn managed_slices(informers: &Informers, key: &ObjectRef) -> Vec<EndpointSlice> {
    informers
        .endpoint_slices
        .in_namespace(&key.namespace)
        .into_iter()
        .filter(|s| {
            s.service_name() == Some(key.name.as_str())
                && s.metadata.labels.get(MANAGED_BY_LABEL).map(String::as_str)
                    == Some(MANAGED_BY_CONTROLLER)
        })
        .map(|s| (*s).clone())
        .collect()
}

/// Writes the Service's slices: creates and updates `desired`, deletes the
/// managed slices no longer wanted (all of them for a Service that is gone:
/// `desired` empty).
///
/// # Errors
/// A failed write; a slice created meanwhile (a cache behind) is a Conflict
/// so the queue retries with a fresher view.
pub async fn write(
    client: &Client,
    informers: &Informers,
    key: &ObjectRef,
    desired: Vec<EndpointSlice>,
) -> Result<(), ClientError> {
    let existing = managed_slices(informers, key);
    let wanted: BTreeSet<String> = desired.iter().map(|s| s.metadata.name.clone()).collect();
    for slice in desired {
        match existing
            .iter()
            .find(|e| e.metadata.name == slice.metadata.name)
        {
            Some(current) if same(current, &slice) => {}
            Some(current) => {
                let mut next = current.clone();
                next.endpoints = slice.endpoints;
                next.ports = slice.ports;
                next.address_type = slice.address_type;
                next.metadata.labels = slice.metadata.labels;
                next.metadata.owner_references = slice.metadata.owner_references;
                client.update(&next).await?;
            }
            None => match client.create(&slice).await {
                Ok(_) => {}
                Err(ClientError::AlreadyExists(message)) => {
                    return Err(ClientError::Conflict(message));
                }
                Err(err) => return Err(err),
            },
        }
    }
    for stale in existing
        .iter()
        .filter(|e| !wanted.contains(&e.metadata.name))
    {
        let name = stale.key().name;
        match client.delete::<EndpointSlice>(&key.namespace, &name).await {
            Ok(_) | Err(ClientError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
