//! The `coordination.k8s.io/v1` kind: Lease (node heartbeats, leader
//! election).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;

/// A lease held by one identity, renewed while it lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.coordination.v1.Lease")]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// `coordination.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `Lease`.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The holder and its deadlines.
    #[serde(default)]
    pub spec: LeaseSpec,
}

/// `Lease.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.coordination.v1.LeaseSpec")]
#[serde(rename_all = "camelCase")]
pub struct LeaseSpec {
    /// Who holds the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    /// Seconds the holder may go without renewing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<i64>,
    /// RFC 3339 (microseconds) time the lease was acquired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_time: Option<String>,
    /// RFC 3339 (microseconds) time of the last renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<String>,
    /// Times the holder changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_transitions: Option<i64>,
    /// Holder a coordinated leader election prefers. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_holder: Option<String>,
    /// Coordinated leader election strategy. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
}
