//! Kubernetes core/v1 shapes rudder stores and validates but does not act
//! on: volumes, security contexts, lifecycle hooks, `envFrom`, DNS config,
//! host aliases, topology spread and pod (anti-)affinity.
//!
//! They are typed down to the level where their contents are flat (a
//! volume's source, an SELinux label), which is what the schema needs:
//! strict validation then catches a misspelt `volumeMount`, and kubectl can
//! compute a client-side apply patch of a change anywhere in them from
//! `/openapi/v3` (it looks up every object it descends into). Below that
//! level a field is a free-form object ([`crate::schema::free_form`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    core::{ExecAction, HttpGetAction, TcpSocketAction},
    meta::LabelSelector,
};

/// Declares a struct whose every field is an optional free-form object
/// (a volume's sources), so each is named once.
macro_rules! free_form_fields {
    (
        $(#[$outer:meta])*
        $name:ident as $k8s:literal {
            $( $(#[$field_doc:meta])* $field:ident ),* $(,)?
        }
        $($typed:tt)*
    ) => {
        $(#[$outer])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
        #[schemars(rename = $k8s)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $($typed)*
            $(
                $(#[$field_doc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[schemars(schema_with = "crate::schema::free_form")]
                pub $field: Option<serde_json::Value>,
            )*
        }
    };
}

free_form_fields! {
    /// A volume the pod's containers may mount. The embedded runtime mounts
    /// none; the volume is kept as written.
    Volume as "io.k8s.api.core.v1.Volume" {
        /// Scratch space that lives as long as the pod.
        empty_dir,
        /// A file or directory of the node.
        host_path,
        /// A ConfigMap's keys as files.
        config_map,
        /// A Secret's keys as files.
        secret,
        /// A PersistentVolumeClaim.
        persistent_volume_claim,
        /// Several sources in one directory.
        projected,
        /// Fields of the pod as files.
        #[serde(rename = "downwardAPI")]
        downward_api,
        /// An NFS export.
        nfs,
        /// A CSI driver's volume.
        csi,
        /// A volume made for the pod from a claim template.
        ephemeral,
        /// An OCI image's contents.
        image,
        /// An iSCSI disk.
        iscsi,
        /// A Fibre Channel disk.
        fc,
        /// A Ceph RBD image.
        rbd,
        /// A CephFS mount.
        cephfs,
        /// A GlusterFS mount.
        glusterfs,
        /// A git repository (deprecated).
        git_repo,
        /// A FlexVolume driver's volume.
        flex_volume,
        /// An AWS EBS disk.
        aws_elastic_block_store,
        /// A GCE persistent disk.
        gce_persistent_disk,
        /// An Azure disk.
        azure_disk,
        /// An Azure file share.
        azure_file,
        /// An OpenStack Cinder volume.
        cinder,
        /// A vSphere volume.
        vsphere_volume,
        /// A Photon persistent disk.
        photon_persistent_disk,
        /// A Portworx volume.
        portworx_volume,
        /// A Quobyte volume.
        quobyte,
        /// A ScaleIO volume.
        #[serde(rename = "scaleIO")]
        scale_io,
        /// A StorageOS volume.
        storageos,
        /// A Flocker volume.
        flocker,
    }
    /// Unique in the pod; what `volumeMounts` name.
    #[serde(default)]
    pub name: String,
}

/// Pod-level security attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.PodSecurityContext")]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    /// Who the processes run as, and the profiles confining them.
    #[serde(flatten)]
    pub identity: ProcessIdentity,
    /// Group owning the pod's volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<i64>,
    /// `OnRootMismatch` or `Always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group_change_policy: Option<String>,
    /// Further groups of the containers' processes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supplemental_groups: Vec<i64>,
    /// `Merge` or `Strict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplemental_groups_policy: Option<String>,
    /// Namespaced sysctls set for the pod (`name`, `value`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub sysctls: Vec<serde_json::Value>,
    /// `MountOption` or `Recursive`.
    #[serde(
        default,
        rename = "seLinuxChangePolicy",
        skip_serializing_if = "Option::is_none"
    )]
    pub se_linux_change_policy: Option<String>,
}

/// Container-level security attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.SecurityContext")]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    /// Who the process runs as, and the profiles confining it.
    #[serde(flatten)]
    pub identity: ProcessIdentity,
    /// Run privileged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Whether a process may gain more privileges than its parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    /// Mount the root filesystem read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    /// Capabilities added and dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// `Default` or `Unmasked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc_mount: Option<String>,
}

/// The fields a pod's and a container's security context share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProcessIdentity {
    /// UID the processes run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// GID the processes run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    /// Refuse to start a container that would run as root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    /// SELinux label (`user`, `role`, `type`, `level`).
    #[serde(
        default,
        rename = "seLinuxOptions",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub se_linux_options: Option<serde_json::Value>,
    /// Seccomp profile (`type`, `localhostProfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub seccomp_profile: Option<serde_json::Value>,
    /// AppArmor profile (`type`, `localhostProfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub app_armor_profile: Option<serde_json::Value>,
    /// Windows-specific settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub windows_options: Option<serde_json::Value>,
}

/// Linux capabilities of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.Capabilities")]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// Added (`NET_ADMIN`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    /// Dropped (`ALL`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

/// Hooks run after a container starts and before it stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.Lifecycle")]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// Run right after the container starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_start: Option<LifecycleHandler>,
    /// Run before the container is sent its stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<LifecycleHandler>,
    /// The signal that stops the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// One lifecycle hook: exactly one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.LifecycleHandler")]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHandler {
    /// A command run in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    /// An HTTP GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    /// A TCP connect (deprecated for hooks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    /// A pause (`seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub sleep: Option<serde_json::Value>,
}

/// Environment variables from every key of a ConfigMap or Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.EnvFromSource")]
#[serde(rename_all = "camelCase")]
pub struct EnvFromSource {
    /// Prefix of every variable's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The ConfigMap (`name`, `optional`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub config_map_ref: Option<serde_json::Value>,
    /// The Secret (`name`, `optional`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub secret_ref: Option<serde_json::Value>,
}

/// DNS resolver settings beyond `dnsPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.PodDNSConfig")]
#[serde(rename_all = "camelCase")]
pub struct PodDnsConfig {
    /// Name server addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    /// Resolver options (`name`, `value`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub options: Vec<serde_json::Value>,
}

/// An `/etc/hosts` entry of the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.HostAlias")]
#[serde(rename_all = "camelCase")]
pub struct HostAlias {
    /// The address.
    #[serde(default)]
    pub ip: String,
    /// Names for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
}

/// How pods matching a selector spread over a topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.TopologySpreadConstraint")]
#[serde(rename_all = "camelCase")]
pub struct TopologySpreadConstraint {
    /// Greatest allowed difference in matching pods between domains.
    #[serde(default)]
    pub max_skew: i64,
    /// The node label whose values are the domains.
    #[serde(default)]
    pub topology_key: String,
    /// `DoNotSchedule` or `ScheduleAnyway`.
    #[serde(default)]
    pub when_unsatisfiable: String,
    /// The pods counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// Least number of eligible domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_domains: Option<i64>,
    /// Label keys whose values are taken from the incoming pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_label_keys: Vec<String>,
    /// `Honor` or `Ignore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity_policy: Option<String>,
    /// `Honor` or `Ignore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_taints_policy: Option<String>,
}

/// Co-location (or separation) with other pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.PodAffinity")]
#[serde(rename_all = "camelCase")]
pub struct PodAffinity {
    /// Terms that must all hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_during_scheduling_ignored_during_execution: Vec<PodAffinityTerm>,
    /// Weighted terms that are preferred.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_during_scheduling_ignored_during_execution: Vec<WeightedPodAffinityTerm>,
}

/// Pods (by selector, in namespaces) and the topology they are counted in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.PodAffinityTerm")]
#[serde(rename_all = "camelCase")]
pub struct PodAffinityTerm {
    /// The pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// Namespaces the pods are looked for in; default the pod's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces, by their labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// The node label whose values are the domains.
    #[serde(default)]
    pub topology_key: String,
    /// Label keys whose values must match the incoming pod's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_label_keys: Vec<String>,
    /// Label keys whose values must differ from the incoming pod's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatch_label_keys: Vec<String>,
}

/// A preferred pod affinity term and its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.WeightedPodAffinityTerm")]
#[serde(rename_all = "camelCase")]
pub struct WeightedPodAffinityTerm {
    /// 1-100.
    #[serde(default)]
    pub weight: i32,
    /// The term.
    #[serde(default)]
    pub pod_affinity_term: PodAffinityTerm,
}
