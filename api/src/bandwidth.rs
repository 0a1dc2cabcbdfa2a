//! Per-pod bandwidth limits: the `kubernetes.io/ingress-bandwidth` and
//! `kubernetes.io/egress-bandwidth` annotations, read once here for the API
//! (which rejects bad values), the agent (which passes them to the CNI
//! plugin's `bandwidth` capability) and the CNI plugin (which checks the
//! same range on `runtimeConfig`).

use std::collections::BTreeMap;

use crate::quantity::{self, QuantityError, saturating_u64};

/// Annotation limiting traffic into the pod, in bits per second (`10M`).
pub const INGRESS_ANNOTATION: &str = "kubernetes.io/ingress-bandwidth";
/// Annotation limiting traffic out of the pod, in bits per second (`10M`).
pub const EGRESS_ANNOTATION: &str = "kubernetes.io/egress-bandwidth";

/// The lowest limit accepted, bits/s: below it a single full-sized packet
/// takes longer than any TCP timer tolerates.
pub const MIN_RATE_BPS: u64 = 1_000;
/// The highest limit accepted, bits/s (1 Tbit/s): beyond any NIC a pod has.
pub const MAX_RATE_BPS: u64 = 1_000_000_000_000;

/// Why a bandwidth annotation (or CNI rate) is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BandwidthError {
    /// The value is not a Kubernetes quantity.
    #[error("{value:?} is not a quantity: {source}")]
    NotAQuantity {
        /// The text as written.
        value: String,
        /// What is wrong with it.
        source: QuantityError,
    },
    /// The value is outside [`MIN_RATE_BPS`]..=[`MAX_RATE_BPS`].
    #[error("{value:?} is out of range: a limit must be between 1k and 1T bits/s")]
    OutOfRange {
        /// The text as written.
        value: String,
    },
}

/// A pod's limits, bits per second; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BandwidthLimits {
    /// Into the pod.
    pub ingress_bps: Option<u64>,
    /// Out of the pod.
    pub egress_bps: Option<u64>,
}

impl BandwidthLimits {
    /// Reads the limits from a pod's annotations.
    ///
    /// # Errors
    /// The annotation key and why its value is refused.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Result<Self, (&'static str, BandwidthError)> {
        let read = |key: &'static str| {
            annotations
                .get(key)
                .map(|value| parse_rate(value).map_err(|err| (key, err)))
                .transpose()
        };
        Ok(Self {
            ingress_bps: read(INGRESS_ANNOTATION)?,
            egress_bps: read(EGRESS_ANNOTATION)?,
        })
    }

    /// Whether neither direction is limited.
    #[must_use]
    pub fn is_unlimited(&self) -> bool {
        self.ingress_bps.is_none() && self.egress_bps.is_none()
    }
}

/// Parses one rate (`10M` = 10,000,000 bits/s, `1Gi` = 2^30) and checks its range.
///
/// # Errors
/// Not a quantity, or outside 1k..=1T bits/s.
pub fn parse_rate(value: &str) -> Result<u64, BandwidthError> {
    let quantity = quantity::parse(value).map_err(|source| BandwidthError::NotAQuantity {
        value: value.to_owned(),
        source,
    })?;
    let bps = saturating_u64(quantity.units_ceil()).unwrap_or(0);
    if rate_in_range(bps) {
        Ok(bps)
    } else {
        Err(BandwidthError::OutOfRange {
            value: value.to_owned(),
        })
    }
}

/// Whether a rate in bits/s is within [`MIN_RATE_BPS`]..=[`MAX_RATE_BPS`].
#[must_use]
pub fn rate_in_range(bps: u64) -> bool {
    (MIN_RATE_BPS..=MAX_RATE_BPS).contains(&bps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn rates_read_as_kubernetes_quantities() {
        assert_eq!(parse_rate("10M"), Ok(10_000_000));
        assert_eq!(parse_rate("1Gi"), Ok(1 << 30));
        assert_eq!(parse_rate("500k"), Ok(500_000));
        assert_eq!(parse_rate("1T"), Ok(MAX_RATE_BPS));
        assert_eq!(parse_rate("1k"), Ok(MIN_RATE_BPS));
    }

    #[test]
    fn bad_and_absurd_rates_are_refused() {
        assert!(matches!(
            parse_rate("fast"),
            Err(BandwidthError::NotAQuantity { .. })
        ));
        for absurd in ["999", "0", "-10M", "2T", "1500m"] {
            assert!(
                matches!(parse_rate(absurd), Err(BandwidthError::OutOfRange { .. })),
                "{absurd}"
            );
        }
    }

    #[test]
    fn limits_come_from_both_annotations() {
        let limits = BandwidthLimits::from_annotations(&annotations(&[(EGRESS_ANNOTATION, "10M")]))
            .expect("valid");
        assert_eq!(limits.egress_bps, Some(10_000_000));
        assert_eq!(limits.ingress_bps, None);
        assert!(BandwidthLimits::default().is_unlimited());
        let err = BandwidthLimits::from_annotations(&annotations(&[(INGRESS_ANNOTATION, "10MB")]))
            .expect_err("invalid");
        assert_eq!(err.0, INGRESS_ANNOTATION);
    }
}
