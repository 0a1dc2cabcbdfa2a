//! `/openapi/v3`: the OpenAPI 3 documents kubectl reads for `explain`, for
//! computing client-side apply patches, and to learn that the server does
//! field validation (`fieldValidation` on a kind's PATCH operation), so
//! that `create`/`apply`/`replace` validate on the server instead of
//! downloading `/openapi/v2`.
//!
//! The index lists one document per group version
//! (`{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=..."}}}`);
//! each document has the paths and operations of its kinds and, under
//! `components.schemas`, the definitions generated from the API types
//! ([`rudder_api::schema`]) that its kinds use. `/openapi/v2` ([`v2`])
//! has all definitions in Swagger 2.0 form. Every document is built once,
//! on first use, and served from memory.

mod v2;

use std::{collections::BTreeMap, sync::OnceLock};

use rudder_api::{Kind, schema};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use super::discovery::KUBERNETES_MINOR;

/// The OpenAPI documents, serialised.
struct Documents {
    /// `/openapi/v3`.
    index: Vec<u8>,
    /// By group-version path (`api/v1`, `apis/apps/v1`): the document's
    /// hash (in the index's URL) and the document.
    by_group_version: BTreeMap<String, (String, Vec<u8>)>,
    /// `/openapi/v2` as JSON.
    v2_json: Vec<u8>,
    /// `/openapi/v2` as gnostic protobuf.
    v2_protobuf: Vec<u8>,
}

/// The media type of JSON documents.
const JSON: &str = "application/json";

fn documents() -> &'static Documents {
    static DOCUMENTS: OnceLock<Documents> = OnceLock::new();
    DOCUMENTS.get_or_init(build)
}

/// A document as served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Its media type.
    pub media: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
    /// Asked for by the hash the index names: it can never change, and
    /// kubectl's HTTP cache may keep it (`Cache-Control: public, immutable`,
    /// as kube-apiserver answers).
    pub immutable: bool,
}

/// The document at `path` (`/openapi/v3`, `/openapi/v3/apis/apps/v1`,
/// `/openapi/v2`), if `path` names one. `query` is the request's query
/// (its `hash`); `accept` chooses between `/openapi/v2`'s protobuf and JSON
/// forms.
pub fn document(path: &str, query: &str, accept: &str) -> Option<Served> {
    let path = path.trim_end_matches('/');
    let documents = documents();
    let mutable = |media, body: &'static [u8]| Served {
        media,
        body,
        immutable: false,
    };
    if path == "/openapi/v2" {
        return Some(if accept.contains(v2::PROTOBUF_ACCEPTED) {
            mutable(v2::PROTOBUF, &documents.v2_protobuf)
        } else {
            mutable(JSON, &documents.v2_json)
        });
    }
    let rest = path.strip_prefix("/openapi/v3")?;
    match rest.strip_prefix('/') {
        None if rest.is_empty() => Some(mutable(JSON, &documents.index)),
        Some(group_version) => {
            let (hash, body) = documents.by_group_version.get(group_version)?;
            let asked = query.split('&').find_map(|pair| pair.strip_prefix("hash="));
            Some(Served {
                media: JSON,
                body,
                immutable: asked == Some(hash.as_str()),
            })
        }
        None => None,
    }
}

fn title() -> &'static str {
    "Kubernetes (rudder)"
}

fn version() -> String {
    format!(
        "v1.{KUBERNETES_MINOR}.0+rudder-{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// The group-version path of a group's document (`api/v1`, `apis/apps/v1`).
fn group_version_path(group: &str) -> String {
    if group.is_empty() {
        "api/v1".to_owned()
    } else {
        format!("apis/{group}/v1")
    }
}

fn build() -> Documents {
    let mut groups: Vec<&'static str> = Vec::new();
    for kind in Kind::ALL {
        if !groups.contains(&kind.group()) {
            groups.push(kind.group());
        }
    }
    let mut by_group_version = BTreeMap::new();
    let mut index = Map::new();
    for group in groups {
        let path = group_version_path(group);
        let body = serde_json::to_vec(&group_document(group)).unwrap_or_default();
        let hash = hex_upper(&Sha512::digest(&body));
        index.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
        );
        by_group_version.insert(path, (hash, body));
    }
    let v2 = v2::json_document(title(), &version(), schema::definitions());
    Documents {
        index: serde_json::to_vec(&json!({"paths": index})).unwrap_or_default(),
        by_group_version,
        v2_json: serde_json::to_vec(&v2).unwrap_or_default(),
        v2_protobuf: v2::protobuf(&v2),
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

/// The OpenAPI 3 document of one group version.
fn group_document(group: &str) -> Value {
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|kind| kind.group() == group)
        .collect();
    let mut paths = Map::new();
    for &kind in &kinds {
        for (path, item) in kind_paths(kind) {
            paths.insert(path, item);
        }
    }
    let definitions = schema::definitions();
    let mut used = BTreeMap::new();
    for &kind in &kinds {
        collect_definitions(definitions, &schema::definition_name(kind), &mut used);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": title(), "version": version()},
        "paths": paths,
        "components": {"schemas": used},
    })
}

/// The definition `name` and every definition it refers to.
fn collect_definitions(
    definitions: &Map<String, Value>,
    name: &str,
    used: &mut BTreeMap<String, Value>,
) {
    if used.contains_key(name) {
        return;
    }
    let Some(schema) = definitions.get(name) else {
        return;
    };
    used.insert(name.to_owned(), schema.clone());
    let mut references = Vec::new();
    references_in(schema, &mut references);
    for reference in references {
        collect_definitions(definitions, &reference, used);
    }
}

fn references_in(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                found.push(name.to_owned());
            }
            map.values().for_each(|v| references_in(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references_in(v, found)),
        _ => {}
    }
}

/// A query parameter of an operation.
fn query(name: &str, description: &str, type_: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": type_, "uniqueItems": true},
    })
}

/// A path parameter.
fn path_parameter(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "description": description,
        "required": true,
        "schema": {"type": "string", "uniqueItems": true},
    })
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "When present (the only value is All), the request is checked and answered as if it \
         were carried out, and nothing is stored.",
        "string",
    )
}

fn field_manager() -> Value {
    query(
        "fieldManager",
        "The name of the actor making the change (accepted; rudder keeps no managedFields).",
        "string",
    )
}

fn field_validation() -> Value {
    query(
        "fieldValidation",
        "What to do with fields of the object that its schema does not have: Ignore keeps \
         them silently, Warn (the default) keeps them and answers a Warning header for each, \
         Strict refuses the request with 400 naming them. Fields of objects rudder keeps as \
         written (such as volumes) are never unknown.",
        "string",
    )
}

/// The operations of a kind on its collection, object and status paths.
fn kind_paths(kind: Kind) -> Vec<(String, Value)> {
    let prefix = if kind.group().is_empty() {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{}/v1", kind.group())
    };
    let plural = kind.plural();
    let collection = if kind.namespaced() {
        format!("{prefix}/namespaces/{{namespace}}/{plural}")
    } else {
        format!("{prefix}/{plural}")
    };
    let object = format!("{collection}/{{name}}");
    let definition = schema::reference(&schema::definition_name(kind));
    let gvk = json!({"group": kind.group(), "version": "v1", "kind": kind.name()});
    let body = |media: &[&str]| {
        let content: Map<String, Value> = media
            .iter()
            .map(|m| ((*m).to_owned(), json!({"schema": definition})))
            .collect();
        json!({"content": content, "required": true})
    };
    let answer = |code: &str| {
        json!({code: {
            "description": "OK",
            "content": {"application/json": {"schema": definition}},
        }})
    };
    let operation = |verb: &str, action: &str, parameters: Vec<Value>| {
        json!({
            "operationId": format!("{verb}{}", kind.name()),
            "description": format!("{verb} {}", kind.name()),
            "parameters": parameters,
            "responses": answer("200"),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        })
    };
    let patch_body = json!({
        "content": {
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/strategic-merge-patch+json": {"schema": {"type": "object"}},
        },
        "required": true,
    });
    let namespace = path_parameter("namespace", "The object's namespace.");
    let name = path_parameter("name", &format!("The {}'s name.", kind.name()));
    let scope = |mut parameters: Vec<Value>| {
        if kind.namespaced() {
            parameters.insert(0, namespace.clone());
        }
        json!(parameters)
    };
    let list_parameters = vec![
        query(
            "labelSelector",
            "Only objects whose labels match.",
            "string",
        ),
        query(
            "fieldSelector",
            "Only objects whose fields match.",
            "string",
        ),
        query("watch", "Stream changes instead of listing.", "boolean"),
        query(
            "resourceVersion",
            "List or watch from this version.",
            "string",
        ),
    ];
    let mut create = operation(
        "create",
        "post",
        vec![dry_run(), field_manager(), field_validation()],
    );
    create["requestBody"] = body(&["application/json"]);
    create["responses"] = answer("201");
    let mut paths = vec![(
        collection.clone(),
        json!({
            "get": operation("list", "list", list_parameters.clone()),
            "post": create,
            "parameters": scope(Vec::new()),
        }),
    )];
    let write_parameters = || vec![dry_run(), field_manager(), field_validation()];
    let object_item = |suffix: &str, with_delete: bool| {
        let mut replace = operation(&format!("replace{suffix}"), "put", write_parameters());
        replace["requestBody"] = body(&["application/json"]);
        let mut patch = operation(&format!("patch{suffix}"), "patch", write_parameters());
        patch["requestBody"] = patch_body.clone();
        let mut item = json!({
            "get": operation(&format!("read{suffix}"), "get", Vec::new()),
            "put": replace,
            "patch": patch,
            "parameters": scope(vec![name.clone()]),
        });
        if with_delete {
            item["delete"] = operation(
                "delete",
                "delete",
                vec![
                    dry_run(),
                    query(
                        "gracePeriodSeconds",
                        "Seconds the object is given to finish (pods).",
                        "integer",
                    ),
                ],
            );
        }
        item
    };
    paths.push((object.clone(), object_item("", true)));
    if kind.has_status() {
        paths.push((format!("{object}/status"), object_item("Status", false)));
    }
    if kind.namespaced() {
        paths.push((
            format!("{prefix}/{plural}"),
            json!({"get": operation("listForAllNamespaces", "list", list_parameters)}),
        ));
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(served: Option<Served>) -> Value {
        let served = served.expect("served");
        assert_eq!(served.media, JSON);
        serde_json::from_slice(served.body).expect("json")
    }

    #[test]
    fn index_names_every_group_version_with_a_hash() {
        let index = parse(document("/openapi/v3", "", ""));
        for path in [
            "api/v1",
            "apis/apps/v1",
            "apis/coordination.k8s.io/v1",
            "apis/discovery.k8s.io/v1",
        ] {
            let url = index["paths"][path]["serverRelativeURL"]
                .as_str()
                .unwrap_or_else(|| panic!("{path} in the index"));
            let (document_path, hash) = url.split_once("?hash=").expect("hash");
            assert_eq!(hash.len(), 128, "{url}");
            let served = document(document_path, &format!("hash={hash}"), "").expect("served");
            assert!(served.immutable, "{url} asked by its hash");
            let other = document(document_path, "hash=0", "").expect("served");
            assert!(
                !other.immutable,
                "another hash is not the served document's"
            );
        }
        assert!(document("/openapi/v3/apis/batch/v1", "", "").is_none());
        assert!(document("/openapi/v3x", "", "").is_none());
    }

    #[test]
    fn patch_operations_offer_field_validation_for_their_kind() {
        for kind in Kind::ALL {
            let doc = parse(document(
                &format!("/openapi/v3/{}", group_version_path(kind.group())),
                "",
                "",
            ));
            let paths = doc["paths"].as_object().expect("paths");
            let patches: Vec<&Value> = paths
                .values()
                .filter_map(|item| item.get("patch"))
                .filter(|op| op["x-kubernetes-group-version-kind"]["kind"] == kind.name())
                .collect();
            assert!(!patches.is_empty(), "{kind} has a PATCH operation");
            for op in patches {
                assert!(
                    op["parameters"]
                        .as_array()
                        .expect("parameters")
                        .iter()
                        .any(|p| p["name"] == "fieldValidation"),
                    "{kind}: {op}"
                );
            }
            let name = schema::definition_name(kind);
            let definition = &doc["components"]["schemas"][&name];
            assert_eq!(
                definition["x-kubernetes-group-version-kind"][0]["kind"],
                kind.name()
            );
        }
    }

    #[test]
    fn documents_are_built_once_and_served_from_memory() {
        let first = document("/openapi/v3/api/v1", "", "").expect("core");
        let again = document("/openapi/v3/api/v1", "", "").expect("core");
        assert!(std::ptr::eq(first.body, again.body), "the same bytes");
        let v2 = document("/openapi/v2", "", v2::PROTOBUF_ACCEPTED).expect("v2");
        let v2_again = document("/openapi/v2", "", v2::PROTOBUF_ACCEPTED).expect("v2");
        assert!(std::ptr::eq(v2.body, v2_again.body));
    }

    #[test]
    fn v2_is_served_as_protobuf_to_who_asks_and_json_otherwise() {
        let served = document(
            "/openapi/v2",
            "",
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        )
        .expect("v2");
        assert_eq!(served.media, v2::PROTOBUF);
        assert!(!served.body.is_empty());
        let json = parse(document("/openapi/v2", "", "application/json"));
        assert_eq!(json["swagger"], "2.0");
        assert_eq!(
            json["definitions"]["io.k8s.api.core.v1.Pod"]["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodSpec"
        );
    }

    #[test]
    fn documents_carry_every_definition_they_refer_to() {
        for path in ["api/v1", "apis/apps/v1"] {
            let doc = parse(document(&format!("/openapi/v3/{path}"), "", ""));
            let mut references = Vec::new();
            references_in(&doc, &mut references);
            assert!(!references.is_empty());
            for reference in references {
                assert!(
                    doc["components"]["schemas"].get(&reference).is_some(),
                    "{path} refers to {reference} and has it"
                );
            }
        }
        let apps = parse(document("/openapi/v3/apis/apps/v1", "", ""));
        assert!(
            apps["components"]["schemas"]
                .get("io.k8s.api.core.v1.PodSpec")
                .is_some()
        );
        assert!(
            apps["components"]["schemas"]
                .get("io.k8s.api.core.v1.Service")
                .is_none()
        );
    }
}
