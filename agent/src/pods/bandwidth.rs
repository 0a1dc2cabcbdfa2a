//! The `bandwidth` capability a pod's sandbox is wired with: its
//! `kubernetes.io/ingress-bandwidth` and `egress-bandwidth` annotations,
//! read by the API's one parser ([`rudder_api::bandwidth`]), handed to the
//! CNI plugins as `runtimeConfig.bandwidth` (bits/s, bursts in bits) as a
//! container runtime does.

use rudder_api::{bandwidth::BandwidthLimits, core::Pod};
use serde_json::{Value, json};

/// The capability for `pod`: rates in bits/s, each burst an eighth of a
/// second at its rate. Empty when the pod sets no limit, or sets one the API
/// would have refused (an object written past it): that is logged, never
/// silently dropped.
pub(super) fn capability(pod: &Pod) -> Value {
    let limits = match BandwidthLimits::from_annotations(&pod.metadata.annotations) {
        Ok(limits) => limits,
        Err((annotation, why)) => {
            tracing::warn!(
                pod = %format!("{}/{}", pod.metadata.namespace, pod.metadata.name),
                annotation,
                %why,
                "bandwidth annotation ignored"
            );
            BandwidthLimits::default()
        }
    };
    let mut out = serde_json::Map::new();
    if let Some(rate) = limits.ingress_bps {
        out.insert("ingressRate".into(), json!(rate));
        out.insert("ingressBurst".into(), json!(rate / 8));
    }
    if let Some(rate) = limits.egress_bps {
        out.insert("egressRate".into(), json!(rate));
        out.insert("egressBurst".into(), json!(rate / 8));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotations: &[(&str, &str)]) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.annotations = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        pod
    }

    #[test]
    fn bandwidth_annotations_become_the_cni_capability() {
        let capability = capability(&pod(&[
            ("kubernetes.io/ingress-bandwidth", "10M"),
            ("kubernetes.io/egress-bandwidth", "1Gi"),
        ]));
        assert_eq!(
            capability,
            json!({"ingressRate": 10_000_000, "ingressBurst": 1_250_000,
                   "egressRate": 1_u64 << 30, "egressBurst": (1_u64 << 30) / 8})
        );
        assert_eq!(capability_of_none(), json!({}));
        assert_eq!(
            super::capability(&pod(&[("kubernetes.io/egress-bandwidth", "fast")])),
            json!({})
        );
    }

    fn capability_of_none() -> Value {
        super::capability(&pod(&[]))
    }
}
