//! Durations from pod specs turned into clock times without overflow.
//! The API bounds probe timings and grace periods (Kubernetes' int32
//! limits), but a value may still reach the runtime unchecked (a record or
//! an object written before the bounds existed): it is clamped, never
//! allowed to panic the pod loop.

use std::time::{Duration, Instant};

use rudder_api::validation::MAX_INT32;

/// The longest wait the runtime takes from a spec: Kubernetes' int32 bound
/// on its seconds fields (68 years).
pub(super) const LONGEST: Duration = Duration::from_secs(MAX_INT32.unsigned_abs());

/// A spec's seconds field as a duration: `default` when absent, clamped to
/// `min..=`[`LONGEST`] (negative counts as `min`).
pub(super) fn seconds(value: Option<i64>, default: u64, min: u64) -> Duration {
    let secs = value.map_or(default, |v| u64::try_from(v).unwrap_or(0));
    Duration::from_secs(secs.clamp(min, LONGEST.as_secs()))
}

/// `now + wait`, saturating: a wait past what the clock can hold ends
/// at the furthest time it can (at least [`LONGEST`] from now on Linux).
pub(super) fn after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .or_else(|| now.checked_add(wait.min(LONGEST)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_and_negative_seconds_are_clamped_not_overflowed() {
        assert_eq!(seconds(None, 10, 1), Duration::from_secs(10));
        assert_eq!(seconds(Some(0), 10, 1), Duration::from_secs(1));
        assert_eq!(seconds(Some(-5), 10, 0), Duration::ZERO);
        assert_eq!(seconds(Some(i64::MAX), 10, 1), LONGEST);
        assert_eq!(seconds(Some(i64::MIN), 10, 1), Duration::from_secs(1));
        let now = Instant::now();
        assert!(after(now, Duration::MAX) >= now + LONGEST);
        assert_eq!(
            after(now, Duration::from_secs(3)),
            now + Duration::from_secs(3)
        );
    }
}
