//! Node affinity: which nodes a pod's `affinity.nodeAffinity` selects, and
//! what a valid one looks like. The scheduler filters on the required part
//! and scores with the preferred part.

use std::collections::BTreeMap;

use crate::core::{NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use crate::validation::FieldErrors;

/// The only field `matchFields` may name, as in Kubernetes.
const NODE_NAME_FIELD: &str = "metadata.name";

impl NodeSelector {
    /// Whether a node with this name and these labels matches any term.
    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.node_selector_terms
            .iter()
            .any(|term| term.matches(node_name, labels))
    }
}

impl NodeSelectorTerm {
    /// Whether every requirement holds. A term without requirements
    /// matches nothing: an empty term is far more likely a mistake than a
    /// wish to run anywhere (Kubernetes decides the same way).
    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.match_expressions.is_empty() && self.match_fields.is_empty() {
            return false;
        }
        self.match_expressions
            .iter()
            .all(|req| req.holds_for(labels.get(&req.key).map(String::as_str)))
            && self
                .match_fields
                .iter()
                .all(|req| req.key == NODE_NAME_FIELD && req.holds_for(Some(node_name)))
    }
}

impl NodeSelectorRequirement {
    /// Whether the requirement holds for a label's value (`None`: the
    /// node does not have the label). `Gt`/`Lt` compare integers; a value
    /// that is not one fails them.
    fn holds_for(&self, value: Option<&str>) -> bool {
        match self.operator.as_str() {
            "In" => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            "NotIn" => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            "Gt" | "Lt" => {
                let (Some(value), [bound]) = (value, self.values.as_slice()) else {
                    return false;
                };
                let (Ok(value), Ok(bound)) = (value.parse::<i64>(), bound.parse::<i64>()) else {
                    return false;
                };
                if self.operator == "Gt" {
                    value > bound
                } else {
                    value < bound
                }
            }
            _ => false,
        }
    }
}

/// Validates `affinity.nodeAffinity` at `path`.
pub fn validate_node_affinity(path: &str, affinity: &NodeAffinity, errors: &mut FieldErrors) {
    if let Some(required) = &affinity.required_during_scheduling_ignored_during_execution {
        let path = format!("{path}.requiredDuringSchedulingIgnoredDuringExecution");
        if required.node_selector_terms.is_empty() {
            errors.push(
                format!("{path}.nodeSelectorTerms"),
                "at least one term is required",
            );
        }
        for (i, term) in required.node_selector_terms.iter().enumerate() {
            validate_term(&format!("{path}.nodeSelectorTerms[{i}]"), term, errors);
        }
    }
    for (i, preferred) in affinity
        .preferred_during_scheduling_ignored_during_execution
        .iter()
        .enumerate()
    {
        let path = format!("{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
        if !(1..=100).contains(&preferred.weight) {
            errors.push(
                format!("{path}.weight"),
                format!("{} must be between 1 and 100", preferred.weight),
            );
        }
        validate_term(&format!("{path}.preference"), &preferred.preference, errors);
    }
}

fn validate_term(path: &str, term: &NodeSelectorTerm, errors: &mut FieldErrors) {
    for (i, req) in term.match_expressions.iter().enumerate() {
        let path = format!("{path}.matchExpressions[{i}]");
        errors.label_key(&format!("{path}.key"), &req.key);
        validate_operator_values(&path, req, errors);
    }
    for (i, req) in term.match_fields.iter().enumerate() {
        let path = format!("{path}.matchFields[{i}]");
        if req.key != NODE_NAME_FIELD {
            errors.push(
                format!("{path}.key"),
                format!("{:?} is not supported; only {NODE_NAME_FIELD}", req.key),
            );
        }
        if !matches!(req.operator.as_str(), "In" | "NotIn") || req.values.len() != 1 {
            errors.push(
                &path,
                format!("{NODE_NAME_FIELD} takes operator In or NotIn with exactly one value"),
            );
        }
    }
}

fn validate_operator_values(path: &str, req: &NodeSelectorRequirement, errors: &mut FieldErrors) {
    let values = format!("{path}.values");
    match req.operator.as_str() {
        "In" | "NotIn" if req.values.is_empty() => {
            errors.push(
                values,
                format!("operator {} needs at least one value", req.operator),
            );
        }
        "Exists" | "DoesNotExist" if !req.values.is_empty() => {
            errors.push(values, format!("operator {} takes no values", req.operator));
        }
        "Gt" | "Lt" => {
            if !matches!(req.values.as_slice(), [one] if one.parse::<i64>().is_ok()) {
                errors.push(
                    values,
                    format!("operator {} takes exactly one integer value", req.operator),
                );
            }
        }
        "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
        other => errors.push(
            format!("{path}.operator"),
            format!("{other:?} is not one of In, NotIn, Exists, DoesNotExist, Gt, Lt"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::PreferredSchedulingTerm;

    fn req(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn term(expressions: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: expressions,
            match_fields: Vec::new(),
        }
    }

    #[test]
    fn every_operator_matches_as_kubernetes_defines_it() {
        let node = labels(&[("zone", "a"), ("cores", "8")]);
        let holds = |r: NodeSelectorRequirement| term(vec![r]).matches("n1", &node);
        assert!(holds(req("zone", "In", &["a", "b"])));
        assert!(!holds(req("zone", "In", &["b"])));
        assert!(!holds(req("missing", "In", &["a"])));
        assert!(holds(req("zone", "NotIn", &["b"])));
        assert!(holds(req("missing", "NotIn", &["b"])));
        assert!(!holds(req("zone", "NotIn", &["a"])));
        assert!(holds(req("zone", "Exists", &[])));
        assert!(!holds(req("missing", "Exists", &[])));
        assert!(holds(req("missing", "DoesNotExist", &[])));
        assert!(!holds(req("zone", "DoesNotExist", &[])));
        assert!(holds(req("cores", "Gt", &["4"])));
        assert!(!holds(req("cores", "Gt", &["8"])));
        assert!(holds(req("cores", "Lt", &["16"])));
        assert!(!holds(req("zone", "Gt", &["1"])), "not an integer");
        assert!(!holds(req("zone", "Sometimes", &["a"])));
    }

    #[test]
    fn terms_are_ored_requirements_anded_and_empty_terms_match_nothing() {
        let node = labels(&[("zone", "a"), ("disk", "ssd")]);
        let both = term(vec![req("zone", "In", &["a"]), req("disk", "In", &["hdd"])]);
        assert!(!both.matches("n1", &node));
        let selector = NodeSelector {
            node_selector_terms: vec![both, term(vec![req("disk", "In", &["ssd"])])],
        };
        assert!(selector.matches("n1", &node));
        assert!(!term(Vec::new()).matches("n1", &node));
        assert!(
            !NodeSelector {
                node_selector_terms: Vec::new()
            }
            .matches("n1", &node)
        );
    }

    #[test]
    fn match_fields_select_by_node_name() {
        let by_name = NodeSelectorTerm {
            match_expressions: Vec::new(),
            match_fields: vec![req("metadata.name", "In", &["n2"])],
        };
        assert!(by_name.matches("n2", &BTreeMap::new()));
        assert!(!by_name.matches("n1", &BTreeMap::new()));
        let other_field = NodeSelectorTerm {
            match_expressions: Vec::new(),
            match_fields: vec![req("spec.podCIDR", "In", &["n2"])],
        };
        assert!(!other_field.matches("n2", &BTreeMap::new()));
    }

    #[test]
    fn invalid_affinity_is_reported_per_field() {
        let affinity = NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: vec![
                        req("zone", "In", &[]),
                        req("zone", "Exists", &["a"]),
                        req("cores", "Gt", &["many"]),
                        req("bad key!", "Near", &[]),
                    ],
                    match_fields: vec![req("spec.podCIDR", "In", &["x"])],
                }],
            }),
            preferred_during_scheduling_ignored_during_execution: vec![PreferredSchedulingTerm {
                weight: 0,
                preference: term(vec![req("zone", "In", &["a"])]),
            }],
        };
        let mut errors = FieldErrors::default();
        validate_node_affinity("spec.affinity.nodeAffinity", &affinity, &mut errors);
        let fields: Vec<String> = errors.into_vec().into_iter().map(|e| e.field).collect();
        let required = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]";
        for expected in [
            format!("{required}.matchExpressions[0].values"),
            format!("{required}.matchExpressions[1].values"),
            format!("{required}.matchExpressions[2].values"),
            format!("{required}.matchExpressions[3].key"),
            format!("{required}.matchExpressions[3].operator"),
            format!("{required}.matchFields[0].key"),
            "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight"
                .to_owned(),
        ] {
            assert!(fields.contains(&expected), "{expected} in {fields:?}");
        }
    }

    #[test]
    fn a_valid_affinity_passes() {
        let affinity = NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![term(vec![
                    req("topology.kubernetes.io/zone", "In", &["a", "b"]),
                    req("cores", "Gt", &["2"]),
                    req("gpu", "DoesNotExist", &[]),
                ])],
            }),
            preferred_during_scheduling_ignored_during_execution: vec![PreferredSchedulingTerm {
                weight: 50,
                preference: term(vec![req("disk", "In", &["ssd"])]),
            }],
        };
        let mut errors = FieldErrors::default();
        validate_node_affinity("spec.affinity.nodeAffinity", &affinity, &mut errors);
        assert!(errors.is_empty(), "{:?}", errors.into_vec());
    }
}
