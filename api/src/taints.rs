//! Taints and tolerations, read the same way by the scheduler (may a pod go
//! to a node?) and by taint-based eviction (may a pod stay on it, and for how
//! long?). Pure functions of the objects: no I/O, no clock.

use std::time::Duration;

use crate::core::{Taint, Toleration};

/// The effect that evicts running pods.
pub const NO_EXECUTE: &str = "NoExecute";

/// Whether a toleration matches a taint: same effect (or the toleration names
/// none), and `Equal` on key and value or `Exists` on the key (an empty key
/// with `Exists` matches every taint).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => key.is_empty() || key == taint.key,
        _ => {
            key == taint.key
                && toleration.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
    }
}

/// What the `NoExecute` taints of a node mean for one pod on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Some taint is not tolerated (or tolerated for 0 s or less): evict now.
    Now,
    /// Every taint is tolerated, the shortest `tolerationSeconds` of the
    /// tolerations used is this long: evict once the taints have been there
    /// that long.
    After(Duration),
    /// Every taint is tolerated without a time limit (or there is none).
    Never,
}

/// The eviction verdict for a pod with `tolerations` on a node with `taints`
/// (only the `NoExecute` ones count). `implicit` gives the toleration a pod
/// has for a taint it does not tolerate itself: Kubernetes' DefaultToleration
/// Seconds admission gives every pod 300 s for the node lifecycle's
/// `not-ready`/`unreachable` taints; here the controller passes its
/// configured eviction timeout for those, so a pod's spec is not rewritten.
///
/// As in Kubernetes, the tolerations that match count together: the
/// shortest `tolerationSeconds` among them wins, one without seconds
/// tolerates forever.
pub fn eviction(
    tolerations: &[Toleration],
    taints: &[Taint],
    implicit: impl Fn(&Taint) -> Option<Duration>,
) -> Eviction {
    let mut shortest: Option<Duration> = None;
    for taint in taints.iter().filter(|t| t.effect == NO_EXECUTE) {
        let matching: Vec<&Toleration> = tolerations
            .iter()
            .filter(|toleration| tolerates(toleration, taint))
            .collect();
        let seconds: Option<Duration> = if matching.is_empty() {
            match implicit(taint) {
                Some(after) => Some(after),
                None => return Eviction::Now,
            }
        } else {
            let mut least = None;
            for toleration in matching {
                if let Some(s) = toleration.toleration_seconds {
                    if s <= 0 {
                        return Eviction::Now;
                    }
                    let after = Duration::from_secs(s.unsigned_abs());
                    least = Some(least.map_or(after, |l: Duration| l.min(after)));
                }
            }
            least
        };
        if let Some(after) = seconds {
            shortest = Some(shortest.map_or(after, |s| s.min(after)));
        }
    }
    match shortest {
        Some(after) if after.is_zero() => Eviction::Now,
        Some(after) => Eviction::After(after),
        None => Eviction::Never,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            ..Taint::default()
        }
    }

    fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(NO_EXECUTE.into()),
            toleration_seconds: seconds,
            ..Toleration::default()
        }
    }

    #[test]
    fn tolerations_match_key_value_and_effect() {
        let taint = Taint {
            key: "dedicated".into(),
            value: Some("db".into()),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let equal = Toleration {
            key: Some("dedicated".into()),
            value: Some("db".into()),
            ..Toleration::default()
        };
        assert!(tolerates(&equal, &taint));
        let other_value = Toleration {
            value: Some("web".into()),
            ..equal.clone()
        };
        assert!(!tolerates(&other_value, &taint));
        let exists_all = Toleration {
            operator: Some("Exists".into()),
            ..Toleration::default()
        };
        assert!(tolerates(&exists_all, &taint));
        let wrong_effect = Toleration {
            effect: Some(NO_EXECUTE.into()),
            ..equal
        };
        assert!(!tolerates(&wrong_effect, &taint));
    }

    #[test]
    fn an_untolerated_no_execute_taint_evicts_at_once() {
        let none = |_: &Taint| None;
        assert_eq!(
            eviction(&[], &[taint("gpu", NO_EXECUTE)], none),
            Eviction::Now
        );
        // NoSchedule taints do not evict running pods.
        assert_eq!(
            eviction(&[], &[taint("gpu", "NoSchedule")], none),
            Eviction::Never
        );
        // One tolerated, one not: evicted.
        assert_eq!(
            eviction(
                &[toleration("gpu", None)],
                &[taint("gpu", NO_EXECUTE), taint("spot", NO_EXECUTE)],
                none
            ),
            Eviction::Now
        );
        assert_eq!(
            eviction(
                &[toleration("gpu", Some(0))],
                &[taint("gpu", NO_EXECUTE)],
                none
            ),
            Eviction::Now
        );
    }

    #[test]
    fn the_shortest_toleration_seconds_of_the_matching_tolerations_wins() {
        let none = |_: &Taint| None;
        let taints = [taint("gpu", NO_EXECUTE), taint("spot", NO_EXECUTE)];
        assert_eq!(
            eviction(
                &[toleration("gpu", Some(60)), toleration("spot", Some(10))],
                &taints,
                none
            ),
            Eviction::After(Duration::from_secs(10))
        );
        assert_eq!(
            eviction(
                &[toleration("gpu", None), toleration("spot", None)],
                &taints,
                none
            ),
            Eviction::Never
        );
        // One without seconds and one with: the time limit holds.
        assert_eq!(
            eviction(
                &[toleration("gpu", None), toleration("spot", Some(30))],
                &taints,
                none
            ),
            Eviction::After(Duration::from_secs(30))
        );
    }

    #[test]
    fn implicit_tolerations_apply_only_where_the_pod_has_none_of_its_own() {
        let implicit = |t: &Taint| {
            (t.key == "node.kubernetes.io/unreachable").then_some(Duration::from_secs(300))
        };
        let unreachable = [taint("node.kubernetes.io/unreachable", NO_EXECUTE)];
        assert_eq!(
            eviction(&[], &unreachable, implicit),
            Eviction::After(Duration::from_secs(300))
        );
        assert_eq!(
            eviction(
                &[toleration("node.kubernetes.io/unreachable", None)],
                &unreachable,
                implicit
            ),
            Eviction::Never
        );
        assert_eq!(
            eviction(
                &[toleration("node.kubernetes.io/unreachable", Some(5))],
                &unreachable,
                implicit
            ),
            Eviction::After(Duration::from_secs(5))
        );
        assert_eq!(
            eviction(&[], &[taint("gpu", NO_EXECUTE)], implicit),
            Eviction::Now
        );
    }
}
