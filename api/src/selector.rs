//! Label and field selectors, in Kubernetes' string syntax.

use std::{collections::BTreeMap, fmt};

use serde_json::Value;

use crate::{
    error::ApiError,
    meta::LabelSelector,
    validation::{check_qualified_name, is_label_value},
};

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// Parses `app=web,tier!=db,env in (prod,staging),!legacy,track`.
    ///
    /// # Errors
    /// [`ApiError::InvalidSelector`] naming the part that does not parse.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part).map_err(|why| {
                ApiError::InvalidSelector(format!("label selector {text:?}: {why}"))
            })?);
        }
        Ok(Self { requirements })
    }

    /// The selector of a Deployment or ReplicaSet.
    ///
    /// # Errors
    /// [`ApiError::InvalidSelector`] for an unknown operator.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Self, ApiError> {
        let mut requirements: Vec<Requirement> = selector
            .match_labels
            .iter()
            .map(|(k, v)| Requirement::Equals(k.clone(), v.clone()))
            .collect();
        for expr in &selector.match_expressions {
            let key = expr.key.clone();
            requirements.push(match expr.operator.as_str() {
                "In" => Requirement::In(key, expr.values.clone()),
                "NotIn" => Requirement::NotIn(key, expr.values.clone()),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => {
                    return Err(ApiError::InvalidSelector(format!(
                        "matchExpressions operator {other:?} is not one of In, NotIn, Exists, DoesNotExist"
                    )));
                }
            });
        }
        Ok(Self { requirements })
    }

    /// Whether the selector has no requirement (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|req| match req {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// Whether the `metadata.labels` of a JSON object satisfy the selector.
    pub fn matches_object(&self, object: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        let labels: BTreeMap<String, String> = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        self.matches(&labels)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|req| match req {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Splits at commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// One requirement; the error says what is wrong with it.
fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(checked_key(key)?));
    }
    if let Some((key, value)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(
            checked_key(key)?,
            checked_value(value)?,
        ));
    }
    if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Equals(
            checked_key(key)?,
            checked_value(value)?,
        ));
    }
    for (word, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((key, values)) = part.split_once(word) {
            let values = values
                .trim()
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| format!("{part:?}: the values of {word:?} go in parentheses"))?;
            let values = values
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(checked_value)
                .collect::<Result<Vec<String>, String>>()?;
            let key = checked_key(key)?;
            return Ok(if negated {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    Ok(Requirement::Exists(checked_key(part)?))
}

fn checked_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    if key.is_empty() {
        return Err("a requirement needs a label key".to_owned());
    }
    check_qualified_name(key)
        .map(|()| key.to_owned())
        .map_err(|why| format!("{key:?} is not a label key: {why}"))
}

fn checked_value(value: &str) -> Result<String, String> {
    let value = value.trim();
    if is_label_value(value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a label value: at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"
        ))
    }
}

/// A parsed field selector: `spec.nodeName=n1,metadata.namespace!=kube-system`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Fields a selector may name (the `involvedObject` ones, `reason`
    /// and `type` select Events, as `kubectl describe` does).
    const FIELDS: [&'static str; 10] = [
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "status.phase",
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "reason",
        "type",
    ];

    /// Parses a field selector.
    ///
    /// # Errors
    /// [`ApiError::InvalidSelector`] for syntax errors and unsupported fields.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::InvalidSelector(format!(
                    "field selector {text:?}: {part:?} is not FIELD=VALUE or FIELD!=VALUE"
                )));
            };
            let field = field.trim();
            if !Self::FIELDS.contains(&field) {
                return Err(ApiError::InvalidSelector(format!(
                    "field selector {text:?}: field {field:?} is not supported; use one of {}",
                    Self::FIELDS.join(", ")
                )));
            }
            terms.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self { terms })
    }

    /// Whether the selector has no term.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether a JSON object satisfies every term (a missing field is "").
    pub fn matches_object(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, equal, value)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let actual = object
                .pointer(&pointer)
                .and_then(Value::as_str)
                .unwrap_or("");
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_selector_syntax() {
        let selector = Selector::parse("app=web, tier!=db,env in (prod, staging),!legacy,track")
            .expect("parses");
        assert!(selector.matches(&labels(&[("app", "web"), ("env", "prod"), ("track", "x")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("env", "dev"), ("track", "x")])));
        assert!(!selector.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("track", "x"),
            ("legacy", "1")
        ])));
        assert!(Selector::parse("").expect("empty").matches(&labels(&[])));
        assert!(Selector::parse("a in b").is_err());
        let notin = Selector::parse("env notin (prod)").expect("parses");
        assert!(notin.matches(&labels(&[])));
        assert!(!notin.matches(&labels(&[("env", "prod")])));
        assert!(
            Selector::parse("app=")
                .expect("empty value")
                .matches(&labels(&[("app", "")]))
        );
        assert!(Selector::parse("app.kubernetes.io/name=web").is_ok());
    }

    #[test]
    fn malformed_label_selectors_say_what_is_wrong() {
        let err = |text: &str| Selector::parse(text).expect_err(text).to_string();
        assert!(
            err("app===").contains(r#""=" is not a label value"#),
            "{}",
            err("app===")
        );
        assert!(err("app=a b").contains("is not a label value"));
        assert!(err("=web").contains("needs a label key"));
        assert!(err("bad key=1").contains("is not a label key"));
        assert!(err("env in (prod,-x)").contains(r#""-x" is not a label value"#));
        assert!(err("env in prod").contains("parentheses"));
        assert!(err("!").contains("needs a label key"));
    }

    #[test]
    fn field_selector_on_node_name() {
        let selector = FieldSelector::parse("spec.nodeName=n1").expect("parses");
        assert!(selector.matches_object(&serde_json::json!({"spec": {"nodeName": "n1"}})));
        assert!(!selector.matches_object(&serde_json::json!({"spec": {}})));
        let unbound = FieldSelector::parse("spec.nodeName=").expect("parses");
        assert!(unbound.matches_object(&serde_json::json!({"spec": {}})));
        assert!(FieldSelector::parse("spec.foo=1").is_err());
    }
}
