//! Well-known names the components agree on: namespaces, labels,
//! annotations and taints, spelled as Kubernetes spells them. (The
//! namespace of events about cluster-scoped objects is
//! [`crate::events::CLUSTER_SCOPED_EVENT_NAMESPACE`]; the bandwidth
//! annotations are [`crate::bandwidth::INGRESS_ANNOTATION`] and
//! [`crate::bandwidth::EGRESS_ANNOTATION`], next to their parser.)

/// Namespace of the node heartbeat leases, one per node, named after it.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Namespace of the control plane's own objects (its leader lease).
pub const SYSTEM_NAMESPACE: &str = "kube-system";
/// Namespace of objects that name none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Node label with the node's name.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// Label a Deployment puts on its ReplicaSets and their pods: the hash of
/// the pod template, telling one revision's pods from another's.
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Annotation with a Deployment's (and its ReplicaSets') revision number.
pub const DEPLOYMENT_REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// NoExecute taint of nodes that stopped heartbeating.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
/// NoExecute taint of nodes that report themselves not ready.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
