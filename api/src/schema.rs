//! The OpenAPI schema of the kinds rudder serves, generated from the
//! types of this crate (their serde shapes and doc comments): what
//! `/openapi/v3` serves, `kubectl explain` prints and server-side field
//! validation checks objects against.
//!
//! Definitions carry Kubernetes' names (`io.k8s.api.core.v1.Pod`,
//! `io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta`, ...), the top-level
//! kinds their `x-kubernetes-group-version-kind`, and lists the strategic
//! merge patch merges by key their `x-kubernetes-patch-merge-key` and
//! `x-kubernetes-patch-strategy` (from [`crate::strategic_merge`]).
//!
//! Kubernetes fields rudder stores as written but does not act on are
//! typed too ([`crate::kept`]), down to their flat parts; those are
//! [`serde_json::Value`]s with [`free_form`] or [`free_form_list`]
//! schemas: objects marked `x-kubernetes-preserve-unknown-fields`, whose
//! insides no validation looks into. So a Kubernetes manifest is known
//! field by field, and a field that is neither rudder's nor Kubernetes' is
//! unknown ([`unknown_fields`]).

use std::{collections::BTreeMap, sync::OnceLock};

use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings, json_schema};
use serde_json::{Map, Value, json};

use crate::{
    apps::{Deployment, ReplicaSet},
    coordination::Lease,
    core::{Endpoints, Event, Namespace, Node, Pod, Service},
    discovery::EndpointSlice,
    kind::Kind,
    rbac::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    strategic_merge::list_strategy,
};

/// Marks an object as kept whole, unvalidated inside.
const PRESERVE_UNKNOWN: &str = "x-kubernetes-preserve-unknown-fields";
/// The extension naming a definition's kind.
const GROUP_VERSION_KIND: &str = "x-kubernetes-group-version-kind";
/// Where definitions live in an OpenAPI 3 document.
const DEFINITIONS_PREFIX: &str = "#/components/schemas/";

/// The schema of a Kubernetes object field rudder keeps as written.
pub fn free_form(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object", PRESERVE_UNKNOWN: true})
}

/// The schema of a Kubernetes list field of objects rudder keeps as written.
pub fn free_form_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array", "items": {"type": "object", PRESERVE_UNKNOWN: true}})
}

/// Every definition the kinds use, by name, generated once.
pub fn definitions() -> &'static Map<String, Value> {
    static DEFINITIONS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFINITIONS.get_or_init(generate)
}

/// The name of `kind`'s definition (`io.k8s.api.core.v1.Pod`).
pub fn definition_name(kind: Kind) -> String {
    match kind {
        Kind::Namespace => Namespace::schema_name(),
        Kind::Node => Node::schema_name(),
        Kind::Lease => Lease::schema_name(),
        Kind::Pod => Pod::schema_name(),
        Kind::Deployment => Deployment::schema_name(),
        Kind::ReplicaSet => ReplicaSet::schema_name(),
        Kind::Service => Service::schema_name(),
        Kind::Endpoints => Endpoints::schema_name(),
        Kind::EndpointSlice => EndpointSlice::schema_name(),
        Kind::Event => Event::schema_name(),
        Kind::Role => Role::schema_name(),
        Kind::ClusterRole => ClusterRole::schema_name(),
        Kind::RoleBinding => RoleBinding::schema_name(),
        Kind::ClusterRoleBinding => ClusterRoleBinding::schema_name(),
    }
    .into_owned()
}

/// A `$ref` to the definition `name`.
pub fn reference(name: &str) -> Value {
    json!({"$ref": format!("{DEFINITIONS_PREFIX}{name}")})
}

fn generate() -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    for kind in Kind::ALL {
        match kind {
            Kind::Namespace => generator.subschema_for::<Namespace>(),
            Kind::Node => generator.subschema_for::<Node>(),
            Kind::Lease => generator.subschema_for::<Lease>(),
            Kind::Pod => generator.subschema_for::<Pod>(),
            Kind::Deployment => generator.subschema_for::<Deployment>(),
            Kind::ReplicaSet => generator.subschema_for::<ReplicaSet>(),
            Kind::Service => generator.subschema_for::<Service>(),
            Kind::Endpoints => generator.subschema_for::<Endpoints>(),
            Kind::EndpointSlice => generator.subschema_for::<EndpointSlice>(),
            Kind::Event => generator.subschema_for::<Event>(),
            Kind::Role => generator.subschema_for::<Role>(),
            Kind::ClusterRole => generator.subschema_for::<ClusterRole>(),
            Kind::RoleBinding => generator.subschema_for::<RoleBinding>(),
            Kind::ClusterRoleBinding => generator.subschema_for::<ClusterRoleBinding>(),
        };
    }
    let mut definitions = generator.take_definitions(true);
    for schema in definitions.values_mut() {
        tidy(schema);
    }
    for kind in Kind::ALL {
        if let Some(Value::Object(schema)) = definitions.get_mut(&definition_name(kind)) {
            schema.insert(
                GROUP_VERSION_KIND.to_owned(),
                json!([{"group": kind.group(), "version": "v1", "kind": kind.name()}]),
            );
        }
    }
    let mut strategies = BTreeMap::new();
    for kind in Kind::ALL {
        collect_list_strategies(&definitions, &definition_name(kind), "", &mut strategies);
    }
    for ((definition, field), extensions) in strategies {
        if let Some(property) = definitions
            .get_mut(&definition)
            .and_then(|schema| schema.pointer_mut(&format!("/properties/{field}")))
            .and_then(Value::as_object_mut)
        {
            for (name, value) in extensions {
                property.insert(name.to_owned(), json!(value));
            }
        }
    }
    definitions
}

/// Turns schemars' OpenAPI 3 output into Kubernetes' style: no defaults
/// or `nullable` (an omitted field and a null one mean the same here),
/// optional fields as their type alone, a doc comment's title and body as
/// one description, and its lines joined into paragraphs.
fn tidy(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    map.remove("default");
    map.remove("nullable");
    map.remove("$schema");
    if let Some(Value::Array(choices)) = map.get("anyOf")
        && choices.len() == 2
        && let Some(other) = choices.iter().find(|choice| !is_null_only(choice))
        && choices.iter().any(is_null_only)
    {
        let other = other.clone();
        map.remove("anyOf");
        match other {
            Value::Object(other) if other.contains_key("$ref") && other.len() == 1 => {
                map.insert("allOf".to_owned(), json!([other]));
            }
            Value::Object(other) => {
                for (key, value) in other {
                    map.entry(key).or_insert(value);
                }
            }
            _ => {}
        }
    }
    let title = map
        .remove("title")
        .and_then(|t| t.as_str().map(str::to_owned));
    let description = map
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let joined = match (title, description) {
        (Some(title), Some(body)) => Some(format!("{title}\n\n{body}")),
        (Some(text), None) | (None, Some(text)) => Some(text),
        (None, None) => None,
    };
    if let Some(text) = joined {
        map.insert("description".to_owned(), json!(paragraphs(&text)));
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(tidy);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = map.get_mut(key) {
            tidy(sub);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(subs)) = map.get_mut(key) {
            subs.iter_mut().for_each(tidy);
        }
    }
    if map.get("allOf").is_some_and(|all| {
        all.as_array()
            .is_some_and(|all| all.len() == 1 && all[0].get("$ref").is_some())
    }) && map.len() == 1
        && let Some(Value::Array(mut all)) = map.remove("allOf")
        && let Some(Value::Object(reference)) = all.pop()
    {
        *map = reference;
    }
}

/// Whether a schema admits only `null` (the other half of an `Option`).
fn is_null_only(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
        || schema
            .get("enum")
            .and_then(Value::as_array)
            .is_some_and(|values| values.iter().all(Value::is_null))
        || schema.get("const").is_some_and(Value::is_null)
}

/// Doc comment text as paragraphs: lines joined with spaces, blank lines
/// kept as paragraph breaks.
fn paragraphs(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            paragraph
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|paragraph| !paragraph.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The definition a property schema refers to, directly, through a
/// one-element `allOf`, or as the items of a list.
fn referenced(schema: &Value) -> Option<&str> {
    let schema = schema.get("items").unwrap_or(schema);
    let reference = schema.get("$ref").or_else(|| {
        schema
            .get("allOf")
            .and_then(Value::as_array)
            .filter(|all| all.len() == 1)
            .and_then(|all| all[0].get("$ref"))
    })?;
    reference.as_str()?.strip_prefix(DEFINITIONS_PREFIX)
}

/// The strategic merge strategy of every list property reachable from the
/// definition `name`, found where `name` sits in the field `parent`:
/// `(definition, property) -> extensions`. A definition reached from two
/// places gets the strategy of the first (they agree; a test checks).
fn collect_list_strategies(
    definitions: &Map<String, Value>,
    name: &str,
    parent: &str,
    strategies: &mut BTreeMap<(String, String), Vec<(&'static str, &'static str)>>,
) {
    let Some(Value::Object(properties)) = definitions
        .get(name)
        .and_then(|schema| schema.get("properties"))
    else {
        return;
    };
    for (field, property) in properties {
        let key = (name.to_owned(), field.clone());
        if strategies.contains_key(&key) {
            continue;
        }
        if property.get("type").and_then(Value::as_str) == Some("array") {
            strategies.insert(key, list_strategy(parent, field).openapi_extensions());
        } else {
            strategies.insert(key, Vec::new());
        }
        if let Some(inner) = referenced(property) {
            collect_list_strategies(definitions, inner, field, strategies);
        }
    }
}

/// The fields of `object` (a `kind`) that its schema does not have, as
/// Kubernetes names them in a strict decoding error
/// (`spec.template.spec.containers[0].foo`), in document order. Fields
/// inside objects rudder keeps as written are never unknown.
pub fn unknown_fields(kind: Kind, object: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let root = reference(&definition_name(kind));
    walk_unknown(definitions(), &root, object, String::new(), &mut unknown);
    unknown
}

fn walk_unknown(
    definitions: &Map<String, Value>,
    schema: &Value,
    value: &Value,
    path: String,
    unknown: &mut Vec<String>,
) {
    let schema = resolve(definitions, schema);
    if schema.get(PRESERVE_UNKNOWN) == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(fields) => {
            if let Some(Value::Object(properties)) = schema.get("properties") {
                for (name, field) in fields {
                    let at = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}.{name}")
                    };
                    match properties.get(name) {
                        Some(property) => walk_unknown(definitions, property, field, at, unknown),
                        None => unknown.push(at),
                    }
                }
            } else if let Some(values @ Value::Object(_)) = schema.get("additionalProperties") {
                for (name, field) in fields {
                    walk_unknown(
                        definitions,
                        values,
                        field,
                        format!("{path}.{name}"),
                        unknown,
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    walk_unknown(
                        definitions,
                        item_schema,
                        item,
                        format!("{path}[{index}]"),
                        unknown,
                    );
                }
            }
        }
        _ => {}
    }
}

/// A schema with its `$ref` (or one-element `allOf`) followed.
fn resolve<'a>(definitions: &'a Map<String, Value>, schema: &'a Value) -> &'a Value {
    let mut schema = schema;
    // Bounded: a reference chain is at most as long as there are definitions.
    for _ in 0..=definitions.len() {
        let next = schema
            .get("$ref")
            .and_then(Value::as_str)
            .or_else(|| {
                schema
                    .get("allOf")
                    .and_then(Value::as_array)
                    .filter(|all| all.len() == 1)
                    .and_then(|all| all[0].get("$ref"))
                    .and_then(Value::as_str)
            })
            .and_then(|reference| reference.strip_prefix(DEFINITIONS_PREFIX))
            .and_then(|name| definitions.get(name));
        match next {
            Some(next) => schema = next,
            None => break,
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::strategic_merge::ListStrategy;

    fn definition(name: &str) -> &'static Value {
        definitions()
            .get(name)
            .unwrap_or_else(|| panic!("{name} is defined"))
    }

    #[test]
    fn kinds_are_named_as_kubernetes_names_them_with_their_gvk() {
        assert_eq!(definition_name(Kind::Pod), "io.k8s.api.core.v1.Pod");
        assert_eq!(
            definition_name(Kind::Deployment),
            "io.k8s.api.apps.v1.Deployment"
        );
        for kind in Kind::ALL {
            let gvk = &definition(&definition_name(kind))[GROUP_VERSION_KIND];
            assert_eq!(
                gvk,
                &json!([{"group": kind.group(), "version": "v1", "kind": kind.name()}]),
                "{kind}"
            );
        }
        assert!(definitions().contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(definitions().contains_key("io.k8s.apimachinery.pkg.util.intstr.IntOrString"));
    }

    #[test]
    fn descriptions_are_the_doc_comments_as_paragraphs() {
        let spec = definition("io.k8s.api.core.v1.PodSpec");
        assert_eq!(
            spec["properties"]["containers"]["description"],
            "The containers; at least one."
        );
        // A doc comment's wrapped lines are one paragraph.
        let meta = definition("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        assert_eq!(
            meta["properties"]["ownerReferences"]["description"],
            "Objects this one belongs to (a ReplicaSet's Deployment, a Pod's ReplicaSet)."
        );
        // Optional fields are their type alone: no nullable, no defaults.
        let text = serde_json::to_string(definitions()).expect("json");
        assert!(!text.contains("nullable"), "no nullable");
        assert!(!text.contains("\"default\""), "no defaults");
        assert!(!text.contains("anyOf"), "no anyOf left from Options");
    }

    #[test]
    fn lists_carry_the_strategic_merge_keys_the_patch_uses() {
        let extension = |definition_name: &str, field: &str, extension: &str| {
            definition(definition_name)["properties"][field]
                .get(extension)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let key = "x-kubernetes-patch-merge-key";
        let strategy = "x-kubernetes-patch-strategy";
        for (definition_name, field, merge_key) in [
            ("io.k8s.api.core.v1.PodSpec", "containers", Some("name")),
            ("io.k8s.api.core.v1.PodSpec", "volumes", Some("name")),
            (
                "io.k8s.api.core.v1.Container",
                "ports",
                Some("containerPort"),
            ),
            ("io.k8s.api.core.v1.ServiceSpec", "ports", Some("port")),
            ("io.k8s.api.core.v1.NodeStatus", "addresses", Some("type")),
            ("io.k8s.api.core.v1.EndpointSubset", "addresses", None),
            ("io.k8s.api.core.v1.PodSpec", "tolerations", None),
        ] {
            assert_eq!(
                extension(definition_name, field, key).as_deref(),
                merge_key,
                "{definition_name}.{field}"
            );
            assert_eq!(
                extension(definition_name, field, strategy).is_some(),
                merge_key.is_some(),
                "{definition_name}.{field}"
            );
        }
        let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
        assert_eq!(
            extension(meta, "finalizers", strategy).as_deref(),
            Some("merge")
        );
        assert_eq!(extension(meta, "finalizers", key), None);
    }

    /// Every place a definition is reached from must agree on its lists'
    /// strategies, or the schema would state one the patch does not use.
    #[test]
    fn every_path_to_a_list_agrees_on_its_strategy() {
        fn visit(
            name: &str,
            parent: &str,
            depth: usize,
            seen: &mut BTreeMap<(String, String), ListStrategy>,
        ) {
            assert!(depth < 32, "schema nesting is bounded");
            let Some(Value::Object(properties)) =
                definitions().get(name).and_then(|d| d.get("properties"))
            else {
                return;
            };
            for (field, property) in properties {
                if property.get("type").and_then(Value::as_str) == Some("array") {
                    let strategy = list_strategy(parent, field);
                    let earlier = seen
                        .entry((name.to_owned(), field.clone()))
                        .or_insert(strategy);
                    assert_eq!(*earlier, strategy, "{name}.{field} reached under {parent}");
                }
                if let Some(inner) = referenced(property) {
                    visit(inner, field, depth + 1, seen);
                }
            }
        }
        let mut seen = BTreeMap::new();
        for kind in Kind::ALL {
            visit(&definition_name(kind), "", 0, &mut seen);
        }
        assert!(seen.len() > 20, "lists were visited: {}", seen.len());
    }

    #[test]
    fn unknown_fields_are_found_where_kubernetes_has_none() {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "managedFields": [{"manager": "x"}]},
            "spec": {
                "containers": [
                    {"name": "c", "image": "x", "securityContext": {"seLinuxOptions": {"anything": {"goes": 1}}, "capability": {}}},
                    {"name": "d", "image": "y", "bogus": true, "ports": [{"containerPort": 80, "speed": 1}]}
                ],
                "volumes": [{"name": "v", "hostPath": {"path": "/x", "any": [1]}}, {"name": "w", "tmpfs": {}}],
                "dnsPolicy": "ClusterFirst",
                "extra": {"deep": 1}
            },
            "status": {},
            "colour": "red"
        });
        assert_eq!(
            unknown_fields(Kind::Pod, &pod),
            [
                "colour",
                "spec.containers[0].securityContext.capability",
                "spec.containers[1].bogus",
                "spec.containers[1].ports[0].speed",
                "spec.extra",
                "spec.volumes[1].tmpfs"
            ]
        );
    }
}
