//! Leader election through a Lease in the store, so that of several
//! control-plane replicas exactly one runs the controllers and the
//! scheduler.
//!
//! The holder renews `spec.renewTime` every third of the lease duration
//! with a compare-and-swap update. Others take over when the lease record
//! has not changed for a whole lease duration *as measured by their own
//! clock since they saw it change*: comparing the holder's timestamps with
//! the local clock would make clock skew between machines decide who leads.

use std::time::Duration;

use rudder_api::{
    coordination::{Lease, LeaseSpec},
    meta::ObjectMeta,
    names::SYSTEM_NAMESPACE,
};
use rudder_client::{Client, ClientError};
use tokio::{sync::watch, time::Instant};

/// Where the lease lives and how long it lasts.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// This replica's identity (unique per process).
    pub identity: String,
    /// Namespace of the lease.
    pub namespace: String,
    /// Name of the lease.
    pub name: String,
    /// How long a holder may go without renewing.
    pub lease_duration: Duration,
}

impl LeaderConfig {
    /// The control plane's lease (`kube-system/rudder-controlplane`) with a
    /// 15 s duration.
    pub fn controlplane(identity: String) -> Self {
        Self {
            identity,
            namespace: SYSTEM_NAMESPACE.to_owned(),
            name: "rudder-controlplane".to_owned(),
            lease_duration: Duration::from_secs(15),
        }
    }
}

/// Campaigns forever; `leading` is true while this replica holds the lease.
pub async fn run(client: Client, config: LeaderConfig, leading: watch::Sender<bool>) {
    let mut observed: Option<(LeaseSpec, Instant)> = None;
    let mut last_renewal: Option<Instant> = None;
    loop {
        match try_acquire_or_renew(&client, &config, &mut observed).await {
            Ok(true) => {
                last_renewal = Some(Instant::now());
                if !*leading.borrow() {
                    tracing::info!(identity = %config.identity, "became the leader: controllers and scheduler start");
                }
                leading.send_replace(true);
            }
            Ok(false) => {
                if *leading.borrow() {
                    tracing::warn!(identity = %config.identity, "lost the leader lease: controllers and scheduler stop");
                }
                leading.send_replace(false);
            }
            Err(err) => {
                tracing::debug!(error = %err, "leader election round failed");
                // A leader that cannot renew steps down before the lease
                // could have expired for the others.
                let expired = last_renewal
                    .is_none_or(|at| at.elapsed() >= config.lease_duration.mul_f32(0.8));
                if expired && *leading.borrow() {
                    tracing::warn!("cannot renew the leader lease: stepping down");
                    leading.send_replace(false);
                }
            }
        }
        tokio::time::sleep(config.lease_duration / 3).await;
    }
}

async fn try_acquire_or_renew(
    client: &Client,
    config: &LeaderConfig,
    observed: &mut Option<(LeaseSpec, Instant)>,
) -> Result<bool, ClientError> {
    let now = rudder_api::time::now_rfc3339();
    let lease = match client.get::<Lease>(&config.namespace, &config.name).await {
        Ok(lease) => lease,
        Err(ClientError::NotFound(_)) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: config.name.clone(),
                    namespace: config.namespace.clone(),
                    ..ObjectMeta::default()
                },
                spec: LeaseSpec {
                    holder_identity: Some(config.identity.clone()),
                    lease_duration_seconds: Some(
                        i64::try_from(config.lease_duration.as_secs()).unwrap_or(15),
                    ),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    preferred_holder: None,
                    strategy: None,
                },
                ..Lease::default()
            };
            return match client.create(&lease).await {
                Ok(_) => Ok(true),
                Err(ClientError::AlreadyExists(_)) => Ok(false),
                Err(err) => Err(err),
            };
        }
        Err(err) => return Err(err),
    };
    if observed
        .as_ref()
        .is_none_or(|(spec, _)| *spec != lease.spec)
    {
        *observed = Some((lease.spec.clone(), Instant::now()));
    }
    let holder = lease.spec.holder_identity.clone().unwrap_or_default();
    let ours = holder == config.identity;
    let duration = lease
        .spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(config.lease_duration, Duration::from_secs);
    let expired = observed
        .as_ref()
        .is_some_and(|(_, seen)| seen.elapsed() >= duration);
    if !ours && !holder.is_empty() && !expired {
        return Ok(false);
    }
    let mut next = lease.clone();
    next.spec.renew_time = Some(now.clone());
    next.spec.lease_duration_seconds =
        Some(i64::try_from(config.lease_duration.as_secs()).unwrap_or(15));
    if !ours {
        next.spec.holder_identity = Some(config.identity.clone());
        next.spec.acquire_time = Some(now);
        next.spec.lease_transitions = Some(lease.spec.lease_transitions.unwrap_or(0) + 1);
    }
    match client.update(&next).await {
        Ok(updated) => {
            *observed = Some((updated.spec, Instant::now()));
            Ok(true)
        }
        // Someone else renewed or took it first.
        Err(ClientError::Conflict(_)) => Ok(false),
        Err(err) => Err(err),
    }
}
