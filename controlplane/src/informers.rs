//! The informers the controllers and the scheduler share: one cache per
//! kind, filled by one list+watch each, read by every worker.

use rudder_api::{
    apps::{Deployment, ReplicaSet},
    coordination::Lease,
    core::{Endpoints, Node, Pod, Service},
    discovery::EndpointSlice,
    names::NODE_LEASE_NAMESPACE,
};
use rudder_client::{Client, ListOptions, informer::Informer};
use tokio::task::JoinHandle;

/// The informers the controllers and the scheduler share.
#[derive(Debug, Clone)]
pub struct Informers {
    /// Every pod.
    pub pods: Informer<Pod>,
    /// Every node.
    pub nodes: Informer<Node>,
    /// Every ReplicaSet.
    pub replica_sets: Informer<ReplicaSet>,
    /// Every Deployment.
    pub deployments: Informer<Deployment>,
    /// Every Service.
    pub services: Informer<Service>,
    /// Every Endpoints object.
    pub endpoints: Informer<Endpoints>,
    /// Every EndpointSlice.
    pub endpoint_slices: Informer<EndpointSlice>,
    /// Node heartbeat leases.
    pub node_leases: Informer<Lease>,
}

impl Informers {
    /// Informers over every object of their kind (node leases: those in
    /// [`NODE_LEASE_NAMESPACE`]), not yet running.
    pub(crate) fn new() -> Self {
        Self {
            pods: Informer::new(ListOptions::default()),
            nodes: Informer::new(ListOptions::default()),
            replica_sets: Informer::new(ListOptions::default()),
            deployments: Informer::new(ListOptions::default()),
            services: Informer::new(ListOptions::default()),
            endpoints: Informer::new(ListOptions::default()),
            endpoint_slices: Informer::new(ListOptions::default()),
            node_leases: Informer::new(ListOptions {
                namespace: NODE_LEASE_NAMESPACE.to_owned(),
                ..ListOptions::default()
            }),
        }
    }

    /// Spawns each informer's list+watch into `tasks`.
    pub(crate) fn run(&self, client: &Client, tasks: &mut Vec<JoinHandle<()>>) {
        tasks.push(tokio::spawn(self.pods.clone().run(client.clone())));
        tasks.push(tokio::spawn(self.nodes.clone().run(client.clone())));
        tasks.push(tokio::spawn(self.replica_sets.clone().run(client.clone())));
        tasks.push(tokio::spawn(self.deployments.clone().run(client.clone())));
        tasks.push(tokio::spawn(self.services.clone().run(client.clone())));
        tasks.push(tokio::spawn(self.endpoints.clone().run(client.clone())));
        tasks.push(tokio::spawn(
            self.endpoint_slices.clone().run(client.clone()),
        ));
        tasks.push(tokio::spawn(self.node_leases.clone().run(client.clone())));
    }

    /// Waits until every informer has listed once.
    pub(crate) async fn synced(&self) {
        self.pods.synced().await;
        self.nodes.synced().await;
        self.replica_sets.synced().await;
        self.deployments.synced().await;
        self.services.synced().await;
        self.endpoints.synced().await;
        self.endpoint_slices.synced().await;
        self.node_leases.synced().await;
    }
}
