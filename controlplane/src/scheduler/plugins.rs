//! The scheduler's filters and scores over what it knows about nodes and
//! pods ([`super::node_info`]): each filter says why a node cannot take a
//! pod, each score says how well it fits (0-100).

use rudder_api::{
    core::{NodeAffinity, Pod},
    taints::tolerates,
};

use super::node_info::scoring_requests;
pub use super::node_info::{NodeInfo, PodNeeds, Resources};

/// Why a node cannot take a pod (the scheduler counts these per reason).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unfit {
    /// Not ready.
    NotReady,
    /// Cordoned.
    Unschedulable,
    /// Labels do not satisfy the pod's nodeSelector or required node
    /// affinity.
    NodeAffinity,
    /// A taint the pod does not tolerate.
    Taint(String),
    /// Too many pods.
    TooManyPods,
    /// Not enough cpu left.
    Cpu,
    /// Not enough memory left.
    Memory,
    /// A host port is taken.
    HostPort,
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::NotReady => f.write_str("node(s) were not ready"),
            Unfit::Unschedulable => f.write_str("node(s) were unschedulable"),
            Unfit::NodeAffinity => f.write_str("node(s) didn't match Pod's node affinity/selector"),
            Unfit::Taint(taint) => write!(f, "node(s) had untolerated taint {{{taint}}}"),
            Unfit::TooManyPods => f.write_str("Too many pods"),
            Unfit::Cpu => f.write_str("Insufficient cpu"),
            Unfit::Memory => f.write_str("Insufficient memory"),
            Unfit::HostPort => {
                f.write_str("node(s) didn't have free ports for the requested pod ports")
            }
        }
    }
}

/// Runs every filter; the first that fails names the reason.
pub fn filter(pod: &Pod, needs: &PodNeeds, info: &NodeInfo) -> Result<(), Unfit> {
    let node = &info.node;
    if !info.ready {
        return Err(Unfit::NotReady);
    }
    if node.spec.unschedulable == Some(true) {
        return Err(Unfit::Unschedulable);
    }
    if !pod
        .spec
        .node_selector
        .iter()
        .all(|(k, v)| node.metadata.labels.get(k) == Some(v))
    {
        return Err(Unfit::NodeAffinity);
    }
    if let Some(required) = node_affinity(pod).and_then(|a| {
        a.required_during_scheduling_ignored_during_execution
            .as_ref()
    }) && !required.matches(&node.metadata.name, &node.metadata.labels)
    {
        return Err(Unfit::NodeAffinity);
    }
    for taint in &node.spec.taints {
        if matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !pod.spec.tolerations.iter().any(|t| tolerates(t, taint))
        {
            let value = taint.value.as_deref().unwrap_or_default();
            let shown = if value.is_empty() {
                format!("{}: {}", taint.key, taint.effect)
            } else {
                format!("{}={value}: {}", taint.key, taint.effect)
            };
            return Err(Unfit::Taint(shown));
        }
    }
    if info.pods + 1 > info.max_pods {
        return Err(Unfit::TooManyPods);
    }
    if needs.requests.cpu_milli > 0
        && info.requested.cpu_milli + needs.requests.cpu_milli > info.allocatable.cpu_milli
    {
        return Err(Unfit::Cpu);
    }
    if needs.requests.memory > 0
        && info.requested.memory + needs.requests.memory > info.allocatable.memory
    {
        return Err(Unfit::Memory);
    }
    if needs
        .host_ports
        .iter()
        .any(|port| info.host_ports.contains_key(port))
    {
        return Err(Unfit::HostPort);
    }
    Ok(())
}

fn node_affinity(pod: &Pod) -> Option<&NodeAffinity> {
    pod.spec.affinity.as_ref()?.node_affinity.as_ref()
}

/// Summed weights of the pod's preferred node-affinity terms this node
/// matches (the caller normalises them over the feasible nodes).
pub fn node_preference(pod: &Pod, info: &NodeInfo) -> u32 {
    let Some(affinity) = node_affinity(pod) else {
        return 0;
    };
    let node = &info.node;
    affinity
        .preferred_during_scheduling_ignored_during_execution
        .iter()
        .filter(|term| {
            term.preference
                .matches(&node.metadata.name, &node.metadata.labels)
        })
        .map(|term| u32::try_from(term.weight).unwrap_or(0))
        .sum()
}

/// `PreferNoSchedule` taints of the node the pod does not tolerate: the
/// scheduler avoids such nodes when others fit (the caller normalises the
/// counts over the feasible nodes).
pub fn intolerable_soft_taints(pod: &Pod, info: &NodeInfo) -> u32 {
    let count = info
        .node
        .spec
        .taints
        .iter()
        .filter(|taint| {
            taint.effect == "PreferNoSchedule"
                && !pod.spec.tolerations.iter().any(|t| tolerates(t, taint))
        })
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// What the scores count on one feasible node; each count is scored
/// relative to the largest over all feasible nodes, as kube-scheduler
/// normalises its scores.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeCounts {
    /// Pods of the same controlling owner already here (spreading).
    pub siblings: f64,
    /// Summed weights of the matching preferred node-affinity terms.
    pub preference: f64,
    /// `PreferNoSchedule` taints the pod does not tolerate.
    pub soft_taints: f64,
}

impl NodeCounts {
    /// The counts of `info` for `pod`.
    pub fn of(pod: &Pod, needs: &PodNeeds, info: &NodeInfo) -> Self {
        let siblings = needs
            .owner
            .as_ref()
            .and_then(|owner| info.owners.get(owner).copied())
            .unwrap_or(0);
        Self {
            siblings: f64::from(siblings),
            preference: f64::from(node_preference(pod, info)),
            soft_taints: f64::from(intolerable_soft_taints(pod, info)),
        }
    }

    /// The largest of each count.
    pub fn most<'a>(all: impl IntoIterator<Item = &'a Self>) -> Self {
        all.into_iter().fold(Self::default(), |most, c| Self {
            siblings: most.siblings.max(c.siblings),
            preference: most.preference.max(c.preference),
            soft_taints: most.soft_taints.max(c.soft_taints),
        })
    }
}

/// The whole score of a feasible node: resources, plus spreading and
/// preferred node affinity weighted double and soft taints triple, as
/// kube-scheduler weighs them over the resource scores.
pub fn score(needs: &PodNeeds, info: &NodeInfo, counts: &NodeCounts, most: &NodeCounts) -> f64 {
    resource_score(needs, info)
        + 2.0 * fewer_is_better(counts.siblings, most.siblings)
        + 2.0 * more_is_better(counts.preference, most.preference)
        + 3.0 * fewer_is_better(counts.soft_taints, most.soft_taints)
}

/// `value` as 0-100 of `most` (0 everywhere when every count is 0).
pub fn more_is_better(value: f64, most: f64) -> f64 {
    if most > 0.0 {
        value * 100.0 / most
    } else {
        0.0
    }
}

/// 100 for a count of 0, down to 0 for the largest (100 everywhere when
/// every count is 0).
pub fn fewer_is_better(value: f64, most: f64) -> f64 {
    if most > 0.0 {
        100.0 - value * 100.0 / most
    } else {
        100.0
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "scores are coarse fractions; a lost low bit does not matter"
)]
fn fraction(used: i64, total: i64) -> f64 {
    if total <= 0 {
        1.0
    } else {
        (used as f64 / total as f64).min(1.0)
    }
}

/// Least allocated and balanced allocation, each 0-100, summed: prefers
/// emptier nodes, and nodes whose cpu and memory fill up evenly.
///
/// Least allocated counts pods without requests at a default size, so they
/// spread; balanced allocation counts only what pods really request, as
/// kube-scheduler does. Counted at the default size, request-less pods
/// would saturate a small node's cpu long before its memory, and from then
/// on every further pod would make that node look *more* balanced: they
/// would pile onto whichever node filled up first.
pub fn resource_score(needs: &PodNeeds, info: &NodeInfo) -> f64 {
    let defaulted = scoring_requests(needs);
    let cpu = fraction(
        info.requested_nonzero.cpu_milli + defaulted.cpu_milli,
        info.allocatable.cpu_milli,
    );
    let memory = fraction(
        info.requested_nonzero.memory + defaulted.memory,
        info.allocatable.memory,
    );
    let least_allocated = ((1.0 - cpu) + (1.0 - memory)) * 50.0;
    // A pod that requests nothing changes no node's balance: every node
    // gets the same score, so the others decide (kube-scheduler skips the
    // plugin for such pods). Otherwise a slightly unbalanced node would
    // lose to a balanced one by far more than least-allocated can make
    // up, and request-less pods would pile onto the balanced one.
    let balanced = if needs.requests == Resources::default() {
        100.0
    } else {
        let requested_cpu = fraction(
            info.requested.cpu_milli + needs.requests.cpu_milli,
            info.allocatable.cpu_milli,
        );
        let requested_memory = fraction(
            info.requested.memory + needs.requests.memory,
            info.allocatable.memory,
        );
        // One minus the standard deviation of the two fractions.
        (1.0 - (requested_cpu - requested_memory).abs() / 2.0) * 100.0
    };
    least_allocated + balanced
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rudder_api::core::{Node, Taint, Toleration};

    use super::*;

    fn small_node(name: &str) -> NodeInfo {
        let resources: std::collections::BTreeMap<String, String> = [
            ("cpu".to_owned(), "2".to_owned()),
            ("memory".to_owned(), "24Gi".to_owned()),
            ("pods".to_owned(), "110".to_owned()),
        ]
        .into();
        let node = Node {
            metadata: rudder_api::meta::ObjectMeta {
                name: name.into(),
                ..Default::default()
            },
            status: Some(rudder_api::core::NodeStatus {
                allocatable: resources.clone(),
                capacity: resources,
                ..Default::default()
            }),
            ..Node::default()
        };
        NodeInfo::new(Arc::new(node))
    }

    #[test]
    fn request_less_pods_keep_preferring_the_emptier_node_past_its_default_cpu() {
        // 2 cpu hold 20 pods at the default 100m; far beyond that, the node
        // with fewer pods must still score higher.
        let needs = PodNeeds::default();
        for (fewer, more) in [(0, 1), (19, 20), (30, 70), (40, 41)] {
            let mut emptier = small_node("emptier");
            let mut fuller = small_node("fuller");
            for _ in 0..fewer {
                emptier.account(&needs, 1);
            }
            for _ in 0..more {
                fuller.account(&needs, 1);
            }
            assert!(
                resource_score(&needs, &emptier) > resource_score(&needs, &fuller),
                "{fewer} pods vs {more} pods"
            );
        }
    }

    #[test]
    fn request_less_pods_spread_even_when_one_node_is_unbalanced() {
        let needs = PodNeeds::default();
        let mut unbalanced = small_node("unbalanced");
        unbalanced.account(
            &PodNeeds {
                requests: Resources {
                    cpu_milli: 1000,
                    memory: 0,
                },
                ..PodNeeds::default()
            },
            1,
        );
        let mut balanced = small_node("balanced");
        for _ in 0..30 {
            balanced.account(&needs, 1);
        }
        // 30 request-less pods against one cpu-heavy pod: the emptier node
        // (by pod count and default sizes) wins, balance aside.
        assert!(resource_score(&needs, &unbalanced) > resource_score(&needs, &balanced));
    }

    #[test]
    fn balanced_allocation_prefers_the_node_whose_resources_fill_evenly() {
        let cpu_heavy = PodNeeds {
            requests: Resources {
                cpu_milli: 1000,
                memory: 1024 * 1024 * 1024,
            },
            ..PodNeeds::default()
        };
        let mut cpu_used = small_node("cpu-used");
        cpu_used.account(&cpu_heavy, 1);
        let mut memory_used = small_node("memory-used");
        memory_used.account(
            &PodNeeds {
                requests: Resources {
                    cpu_milli: 100,
                    memory: 12 * 1024 * 1024 * 1024,
                },
                ..PodNeeds::default()
            },
            1,
        );
        // A cpu-heavy pod fits better where memory is used and cpu is not.
        assert!(resource_score(&cpu_heavy, &memory_used) > resource_score(&cpu_heavy, &cpu_used));
    }

    #[test]
    fn soft_taints_count_only_prefer_no_schedule_that_the_pod_does_not_tolerate() {
        let mut node = Node::default();
        node.spec.taints = vec![
            Taint {
                key: "spot".into(),
                value: None,
                effect: "PreferNoSchedule".into(),
                ..Taint::default()
            },
            Taint {
                key: "old-kernel".into(),
                value: None,
                effect: "PreferNoSchedule".into(),
                ..Taint::default()
            },
            Taint {
                key: "dedicated".into(),
                value: None,
                effect: "NoSchedule".into(),
                ..Taint::default()
            },
        ];
        let info = NodeInfo::new(Arc::new(node));
        let mut pod = Pod::default();
        assert_eq!(intolerable_soft_taints(&pod, &info), 2);
        pod.spec.tolerations = vec![Toleration {
            key: Some("spot".into()),
            operator: Some("Exists".into()),
            ..Toleration::default()
        }];
        assert_eq!(intolerable_soft_taints(&pod, &info), 1);
        assert!((fewer_is_better(0.0, 2.0) - 100.0).abs() < f64::EPSILON);
        assert!((fewer_is_better(1.0, 2.0) - 50.0).abs() < f64::EPSILON);
        assert!(fewer_is_better(2.0, 2.0).abs() < f64::EPSILON);
        assert!((fewer_is_better(0.0, 0.0) - 100.0).abs() < f64::EPSILON);
    }
}
