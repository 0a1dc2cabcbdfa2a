//! The `v1` (core) kinds: Namespace, Node, Pod, Service, Endpoints, Event.
//!
//! One cohesive thing, longer than most files here: the serde shapes of
//! Kubernetes' core/v1 objects as rudder models them (no logic; defaulting
//! and validation are in [`crate::resource`]).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    kept::{
        EnvFromSource, HostAlias, Lifecycle, PodAffinity, PodDnsConfig, PodSecurityContext,
        SecurityContext, TopologySpreadConstraint, Volume,
    },
    meta::{Condition, ObjectMeta},
};

/// A port given as a number or as the name of a container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A name, or a percentage such as "25%".
    String(String),
}

impl JsonSchema for IntOrString {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // Kubernetes' form: a string whose format says a number is fine too.
        schemars::json_schema!({
            "type": "string",
            "format": "int-or-string",
            "description": "A number, or a string such as a port name or a percentage (\"25%\")."
        })
    }
}

/// A namespace: a scope for names of namespaced objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.Namespace")]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    /// `v1`.
    #[serde(default)]
    pub api_version: String,
    /// `Namespace`.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<NamespaceSpec>,
    /// Observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NamespaceStatus>,
}

/// `Namespace.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.NamespaceSpec")]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSpec {
    /// Finalizers run before the namespace goes away.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

/// `Namespace.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.NamespaceStatus")]
#[serde(rename_all = "camelCase")]
pub struct NamespaceStatus {
    /// `Active` or `Terminating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Conditions of the namespace. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub conditions: Vec<serde_json::Value>,
}

/// A machine that runs pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.Node")]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// `v1`.
    #[serde(default)]
    pub api_version: String,
    /// `Node`.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: NodeSpec,
    /// Observed state, reported by the node's agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NodeStatus>,
}

/// `Node.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.NodeSpec")]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    /// The pod address range of this node, e.g. `10.244.1.0/24`.
    #[serde(default, rename = "podCIDR", skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<String>,
    /// All pod ranges (dual stack).
    #[serde(default, rename = "podCIDRs", skip_serializing_if = "Vec::is_empty")]
    pub pod_cidrs: Vec<String>,
    /// No new pods are scheduled here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unschedulable: Option<bool>,
    /// Taints repelling pods that do not tolerate them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// The node's ID in its cloud provider.
    #[serde(
        default,
        rename = "providerID",
        skip_serializing_if = "Option::is_none"
    )]
    pub provider_id: Option<String>,
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.Taint")]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
    /// When a `NoExecute` taint was added (RFC 3339), as the node lifecycle
    /// controller writes it; informational: eviction counts from when the
    /// controller saw the taint, not from another machine's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_added: Option<String>,
}

/// `Node.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.NodeStatus")]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Addresses of the node (`InternalIP`, `Hostname`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    /// Conditions, `Ready` foremost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Total resources.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, String>,
    /// Resources available to pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocatable: BTreeMap<String, String>,
    /// Kubernetes' deprecated node phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Versions of the node's kernel, OS and runtime. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub node_info: Option<serde_json::Value>,
    /// Ports of the node's daemons. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub daemon_endpoints: Option<serde_json::Value>,
    /// Images on the node. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub images: Vec<serde_json::Value>,
}

/// One address of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.NodeAddress")]
#[serde(rename_all = "camelCase")]
pub struct NodeAddress {
    /// `InternalIP`, `ExternalIP` or `Hostname`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The address.
    pub address: String,
}

/// A group of containers sharing a network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.Pod")]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// `v1`.
    #[serde(default)]
    pub api_version: String,
    /// `Pod`.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: PodSpec,
    /// Observed state, reported by the node's agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PodStatus>,
}

/// `Pod.spec` (also the `template.spec` of Deployments and ReplicaSets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.PodSpec")]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// The containers; at least one.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// Containers run to completion before `containers` start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    /// The node the pod is bound to (set by the scheduler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Labels a node must have to run the pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// `Always` (default), `OnFailure` or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    /// Seconds between SIGTERM and SIGKILL; default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    /// Run in the node's network namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
    /// Hostname of the pod; default its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Whether containers get the docker-link style variables of the
    /// namespace's Services (`WEB_PORT_80_TCP_ADDR`, ...); default true.
    /// `WEB_SERVICE_HOST`/`_PORT` are given either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_service_links: Option<bool>,
    /// Node taints this pod tolerates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Scheduling constraints beyond `nodeSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Volumes the containers may mount. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Pod-level security attributes. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// The service account the pod runs as. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Deprecated alias of serviceAccountName. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Whether a service account token is mounted. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
    /// `ClusterFirst` (default), `Default`, `ClusterFirstWithHostNet` or `None`. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<String>,
    /// DNS resolver settings. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<PodDnsConfig>,
    /// Secrets for pulling images. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub image_pull_secrets: Vec<serde_json::Value>,
    /// Priority class of the pod. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Priority value resolved from the class. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// `PreemptLowerPriority` or `Never`. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemption_policy: Option<String>,
    /// The scheduler that places the pod; rudder has one. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<String>,
    /// How pods spread over topology domains. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// Share the node's PID namespace. Kept as written; rudder does not act on it.
    #[serde(default, rename = "hostPID", skip_serializing_if = "Option::is_none")]
    pub host_pid: Option<bool>,
    /// Share the node's IPC namespace. Kept as written; rudder does not act on it.
    #[serde(default, rename = "hostIPC", skip_serializing_if = "Option::is_none")]
    pub host_ipc: Option<bool>,
    /// Whether host user namespaces are used. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_users: Option<bool>,
    /// Containers share one PID namespace. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_process_namespace: Option<bool>,
    /// Subdomain of the pod's hostname. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    /// Hostname set as the FQDN. Kept as written; rudder does not act on it.
    #[serde(
        default,
        rename = "setHostnameAsFQDN",
        skip_serializing_if = "Option::is_none"
    )]
    pub set_hostname_as_fqdn: Option<bool>,
    /// Extra /etc/hosts entries. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_aliases: Vec<HostAlias>,
    /// RuntimeClass of the pod. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    /// Resources of the sandbox beyond the containers'. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub overhead: Option<serde_json::Value>,
    /// Extra conditions for readiness. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub readiness_gates: Vec<serde_json::Value>,
    /// Seconds the pod may run before it is failed. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// The OS the pod needs. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub os: Option<serde_json::Value>,
    /// Ephemeral debugging containers. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub ephemeral_containers: Vec<serde_json::Value>,
    /// Gates holding the pod back from scheduling. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub scheduling_gates: Vec<serde_json::Value>,
    /// Dynamic resource claims. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub resource_claims: Vec<serde_json::Value>,
    /// Pod-level resource requirements. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// `Pod.spec.affinity`. Only node affinity is modelled; `podAffinity` and
/// `podAntiAffinity` are kept in the stored object but not acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.Affinity")]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    /// Which nodes the pod must, or would rather, run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinity>,
    /// Co-location with other pods. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_affinity: Option<PodAffinity>,
    /// Separation from other pods. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_anti_affinity: Option<PodAffinity>,
}

/// Node affinity: a hard requirement the scheduler filters on, and
/// weighted preferences it scores with. Neither evicts a running pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.NodeAffinity")]
#[serde(rename_all = "camelCase")]
pub struct NodeAffinity {
    /// The node must match one of these terms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
    /// Nodes matching a term get its weight added to their score.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_during_scheduling_ignored_during_execution: Vec<PreferredSchedulingTerm>,
}

/// Terms ORed together: a node matching any one of them is selected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.NodeSelector")]
#[serde(rename_all = "camelCase")]
pub struct NodeSelector {
    /// At least one term.
    #[serde(default)]
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

/// Requirements ANDed together; a term with none matches no node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.NodeSelectorTerm")]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorTerm {
    /// Requirements on the node's labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<NodeSelectorRequirement>,
    /// Requirements on the node's fields (only `metadata.name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_fields: Vec<NodeSelectorRequirement>,
}

/// One requirement: `key` `operator` `values`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.NodeSelectorRequirement")]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorRequirement {
    /// Label key (or field path for `matchFields`).
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt` or `Lt`.
    pub operator: String,
    /// Values for `In`/`NotIn`; one integer for `Gt`/`Lt`; none otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A weighted preference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.PreferredSchedulingTerm")]
#[serde(rename_all = "camelCase")]
pub struct PreferredSchedulingTerm {
    /// 1-100.
    pub weight: i32,
    /// The nodes preferred.
    pub preference: NodeSelectorTerm,
}

/// A taint a pod tolerates (`Equal`: key and value match; `Exists`: the
/// key alone, or every taint when the key is empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.Toleration")]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    /// Taint key; empty with `Exists` tolerates everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Equal` (default) or `Exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Taint value for `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Effect tolerated; empty for every effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// With `NoExecute`: seconds the pod stays after the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// One container (with the embedded runtime: a process).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.Container")]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// DNS-1123 label, unique in the pod.
    #[serde(default)]
    pub name: String,
    /// Image reference; recorded, resolved only by runtimes that pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Entrypoint (argv[0..]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments after the command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Ports the container listens on (informational, and named targets
    /// for Services).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    /// Resource requests and limits (`cpu: 500m`, `memory: 64Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// When the container counts as ready for traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    /// When the container is restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    /// Until it first passes, liveness and readiness are not probed; failing
    /// it `failureThreshold` times restarts the container (for slow starters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<Probe>,
    /// `Always`, `IfNotPresent` or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Environment from ConfigMaps and Secrets. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    /// Volumes mounted into the container. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub volume_mounts: Vec<serde_json::Value>,
    /// Block devices of the container. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub volume_devices: Vec<serde_json::Value>,
    /// Container-level security attributes. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// postStart and preStop hooks. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Keep stdin open. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<bool>,
    /// Close stdin after the first attach. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_once: Option<bool>,
    /// Allocate a TTY. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// Path of the termination message file. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_message_path: Option<String>,
    /// `File` or `FallbackToLogsOnError`. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_message_policy: Option<String>,
    /// Per-container restart policy (sidecars). Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    /// How resources are resized. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub resize_policy: Vec<serde_json::Value>,
}

/// An environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.EnvVar")]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Name.
    pub name: String,
    /// Value; `$(NAME)` refers to a variable defined before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where the value comes from instead (the downward API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// `EnvVar.valueFrom`. Only `fieldRef` is supported; the others (rudder has
/// no ConfigMaps or Secrets) are kept as written so validation can name
/// them in its refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.EnvVarSource")]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    /// A field of the pod: `metadata.name`, `status.podIP`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,
    /// A container's resource request or limit (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub resource_field_ref: Option<serde_json::Value>,
    /// A ConfigMap key (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub config_map_key_ref: Option<serde_json::Value>,
    /// A Secret key (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub secret_key_ref: Option<serde_json::Value>,
}

/// A field of the pod, by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.ObjectFieldSelector")]
#[serde(rename_all = "camelCase")]
pub struct ObjectFieldSelector {
    /// The schema version the path is written in (`v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `metadata.name`, `metadata.labels['app']`, `status.podIP`, ...
    pub field_path: String,
}

/// A port of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.ContainerPort")]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    /// IANA_SVC_NAME, referable from a Service's targetPort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 1-65535.
    pub container_port: i64,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port on the node forwarded to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i64>,
    /// Host address to bind the host port to. Kept as written; rudder does not act on it.
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// Resource requests and limits, as Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.ResourceRequirements")]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequirements {
    /// Upper bounds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
    /// Amounts reserved for scheduling.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// Dynamic resource claims used. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub claims: Vec<serde_json::Value>,
}

/// A health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.Probe")]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// HTTP GET that must answer 200-399.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    /// TCP connect that must succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    /// Command that must exit 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    /// Seconds before the first probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<i64>,
    /// Seconds between probes; default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i64>,
    /// Seconds a probe may take; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// Failures in a row that count; default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i64>,
    /// Successes in a row that count; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<i64>,
    /// gRPC health check (not run by rudder). Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub grpc: Option<serde_json::Value>,
    /// Grace period on a failed probe. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
}

/// `Probe.httpGet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.k8s.api.core.v1.HTTPGetAction")]
#[serde(rename_all = "camelCase")]
pub struct HttpGetAction {
    /// Path; default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Port number or container port name.
    pub port: IntOrString,
    /// `HTTP` (default) or `HTTPS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Host to connect to; default the pod IP. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Headers of the request. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub http_headers: Vec<serde_json::Value>,
}

/// `Probe.tcpSocket`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.k8s.api.core.v1.TCPSocketAction")]
#[serde(rename_all = "camelCase")]
pub struct TcpSocketAction {
    /// Port number or container port name.
    pub port: IntOrString,
    /// Host to connect to; default the pod IP. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// `Probe.exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.ExecAction")]
#[serde(rename_all = "camelCase")]
pub struct ExecAction {
    /// The command.
    #[serde(default)]
    pub command: Vec<String>,
}

/// `Pod.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.PodStatus")]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Conditions (`PodScheduled`, `Ready`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Address of the node.
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Address of the pod.
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// All addresses of the pod.
    #[serde(default, rename = "podIPs", skip_serializing_if = "Vec::is_empty")]
    pub pod_ips: Vec<PodIp>,
    /// RFC 3339 time the agent accepted the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Per container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
    /// Why the pod is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Machine-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// All addresses of the node.
    #[serde(default, rename = "hostIPs", skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub host_ips: Vec<serde_json::Value>,
    /// Guaranteed, Burstable or BestEffort. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos_class: Option<String>,
    /// Node a preempting pod is headed for. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nominated_node_name: Option<String>,
    /// Per init container. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub init_container_statuses: Vec<serde_json::Value>,
    /// Per ephemeral container. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub ephemeral_container_statuses: Vec<serde_json::Value>,
}

/// One pod address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.PodIP")]
#[serde(rename_all = "camelCase")]
pub struct PodIp {
    /// The address.
    pub ip: String,
}

/// State of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.ContainerStatus")]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// Container name.
    pub name: String,
    /// Passes its readiness probe.
    #[serde(default)]
    pub ready: bool,
    /// Restarts so far.
    #[serde(default)]
    pub restart_count: i64,
    /// Image as recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Whether it has started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
    /// `{running: {...}}`, `{waiting: {...}}` or `{terminated: {...}}`,
    /// kept as Kubernetes writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub state: Option<serde_json::Value>,
    /// How the previous run ended (`{terminated: {exitCode, reason,
    /// startedAt, finishedAt}}`), after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub last_state: Option<serde_json::Value>,
    /// Image digest. Kept as written; rudder does not act on it.
    #[serde(default, rename = "imageID", skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Runtime's container ID. Kept as written; rudder does not act on it.
    #[serde(
        default,
        rename = "containerID",
        skip_serializing_if = "Option::is_none"
    )]
    pub container_id: Option<String>,
}

/// A stable virtual address in front of a set of pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.Service")]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// `v1`.
    #[serde(default)]
    pub api_version: String,
    /// `Service`.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: ServiceSpec,
    /// Observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub status: Option<serde_json::Value>,
}

/// `Service.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.ServiceSpec")]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// `ClusterIP` (default), `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The virtual address; allocated by the control plane when empty,
    /// `None` for a headless service.
    #[serde(default, rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    /// All virtual addresses.
    #[serde(default, rename = "clusterIPs", skip_serializing_if = "Vec::is_empty")]
    pub cluster_ips: Vec<String>,
    /// The ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Pods with these labels are the backends.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// `None` (default) or `ClientIP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<String>,
    /// Timeout of `ClientIP` affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<SessionAffinityConfig>,
    /// `Cluster` (default) or `Local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<String>,
    /// `Cluster` (default) or `Local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_traffic_policy: Option<String>,
    /// Extra addresses the service answers on. Kept as written; rudder does not act on it.
    #[serde(default, rename = "externalIPs", skip_serializing_if = "Vec::is_empty")]
    pub external_ips: Vec<String>,
    /// CNAME target of an ExternalName service. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    /// Requested load balancer address. Kept as written; rudder does not act on it.
    #[serde(
        default,
        rename = "loadBalancerIP",
        skip_serializing_if = "Option::is_none"
    )]
    pub load_balancer_ip: Option<String>,
    /// Client ranges allowed through the load balancer. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_source_ranges: Vec<String>,
    /// Load balancer implementation. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<String>,
    /// Whether LoadBalancer services get node ports. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocate_load_balancer_node_ports: Option<bool>,
    /// Health check port for `Local` traffic policy. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_node_port: Option<i64>,
    /// Not-ready pods are endpoints too. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_not_ready_addresses: Option<bool>,
    /// `IPv4` and/or `IPv6`. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<String>,
    /// `SingleStack`, `PreferDualStack` or `RequireDualStack`. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family_policy: Option<String>,
    /// Preference for nearby endpoints. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<String>,
}

/// `Service.spec.sessionAffinityConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.SessionAffinityConfig")]
#[serde(rename_all = "camelCase")]
pub struct SessionAffinityConfig {
    /// Client-IP affinity settings.
    #[serde(default, rename = "clientIP", skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<ClientIpConfig>,
}

/// `sessionAffinityConfig.clientIP`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.ClientIPConfig")]
#[serde(rename_all = "camelCase")]
pub struct ClientIpConfig {
    /// Seconds of affinity; default 10800.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
}

/// One port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.ServicePort")]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Required when there is more than one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The service port, 1-65535.
    pub port: i64,
    /// Pod port number or container port name; default `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// Port on every node (NodePort/LoadBalancer), 30000-32767.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i64>,
    /// Application protocol (`http`, ...). Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

/// The addresses behind a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.Endpoints")]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// `v1`.
    #[serde(default)]
    pub api_version: String,
    /// `Endpoints`.
    #[serde(default)]
    pub kind: String,
    /// Metadata; the name is the service's.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Sets of addresses sharing ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<EndpointSubset>,
}

/// Addresses and the ports they all serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.EndpointSubset")]
#[serde(rename_all = "camelCase")]
pub struct EndpointSubset {
    /// Ready addresses: they get traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<EndpointAddress>,
    /// Addresses of pods that are not ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ready_addresses: Vec<EndpointAddress>,
    /// The ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
}

/// One backend address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.EndpointAddress")]
#[serde(rename_all = "camelCase")]
pub struct EndpointAddress {
    /// The pod's IP.
    pub ip: String,
    /// Hostname of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The node it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
}

/// A reference to an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.ObjectReference")]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The object's apiVersion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The object's resourceVersion when referenced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// A part of the object (`spec.containers{web}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
}

/// A port of an endpoints subset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.EndpointPort")]
#[serde(rename_all = "camelCase")]
pub struct EndpointPort {
    /// Matches the service port's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The pod port.
    pub port: i64,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Application protocol. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

/// A record of something that happened to an object: what a controller,
/// the scheduler or an agent did or failed to do (`v1` Event, the form
/// `kubectl describe` shows). Repeats of the same event are folded into
/// one object whose `count` and `lastTimestamp` grow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.Event")]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `v1`.
    #[serde(default)]
    pub api_version: String,
    /// `Event`.
    #[serde(default)]
    pub kind: String,
    /// Metadata; the name is the involved object's plus a unique suffix.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The object the event is about.
    #[serde(default)]
    pub involved_object: ObjectReference,
    /// A short CamelCase reason (`Scheduled`, `FailedScheduling`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What happened, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Normal` or `Warning`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Who reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<EventSource>,
    /// When it first happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_timestamp: Option<String>,
    /// When it last happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<String>,
    /// How many times it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// The component that reported it (`rudder-scheduler`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_component: Option<String>,
    /// The instance of that component (a host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_instance: Option<String>,
    /// Time of a series event, in microseconds. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    /// Data of a series of events. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub series: Option<serde_json::Value>,
    /// What was done. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// A second object involved. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub related: Option<serde_json::Value>,
}

/// The reporter of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.EventSource")]
#[serde(rename_all = "camelCase")]
pub struct EventSource {
    /// The component (`rudder-scheduler`, `rudder-agent`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub component: String,
    /// The host it runs on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
}
