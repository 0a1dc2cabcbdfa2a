//! `meta.k8s.io/v1` Table answers, what kubectl asks for on `get`
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): the columns
//! kube-apiserver prints per kind, from [`rudder_api::columns`], the `-o
//! wide` ones at priority 1, each row carrying its object as
//! `PartialObjectMetadata` (`includeObject=Metadata`, the default), whole
//! (`Object`) or not at all (`None`).

use rudder_api::{Kind, columns};
use serde_json::{Value, json};

use super::ApiServerError;

/// Whether an `Accept` header asks for a meta.k8s.io/v1 Table.
pub fn wanted(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.first() == Some(&"application/json")
            && params.contains(&"as=Table")
            && params.contains(&"g=meta.k8s.io")
            && params.contains(&"v=v1")
    })
}

/// What each row carries of its object (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// Nothing.
    None,
    /// `PartialObjectMetadata`: apiVersion, kind, metadata.
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    /// Parses `includeObject` (empty: `Metadata`).
    ///
    /// # Errors
    /// `BadRequest` for any other value.
    pub fn parse(text: &str) -> Result<Self, ApiServerError> {
        match text {
            "" | "Metadata" => Ok(Self::Metadata),
            "Object" => Ok(Self::Object),
            "None" => Ok(Self::None),
            other => Err(ApiServerError::BadRequest(format!(
                "includeObject: {other:?} is not one of None, Metadata, Object"
            ))),
        }
    }
}

/// A header as kube-apiserver names the column (`CLUSTER-IP` is
/// `Cluster-IP`, `NOMINATED NODE` is `Nominated Node`); kubectl prints it
/// upper-cased again.
fn column_name(header: &str) -> String {
    header
        .split(' ')
        .map(|word| {
            word.split('-')
                .map(|part| {
                    if part == "IP" {
                        return part.to_owned();
                    }
                    let lower = part.to_ascii_lowercase();
                    let mut chars = lower.chars();
                    chars.next().map_or_else(String::new, |first| {
                        first.to_ascii_uppercase().to_string() + chars.as_str()
                    })
                })
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn column_definitions(kind: Kind) -> Vec<Value> {
    let narrow = columns::headers(kind, false, false).len();
    columns::headers(kind, true, false)
        .into_iter()
        .enumerate()
        .map(|(i, header)| {
            json!({
                "name": column_name(header),
                "type": "string",
                "format": if header == "NAME" { "name" } else { "" },
                "description": "",
                "priority": i32::from(i >= narrow),
            })
        })
        .collect()
}

fn row(kind: Kind, object: &Value, include: Include) -> Value {
    let mut row = json!({"cells": columns::row(kind, object, true, false)});
    match include {
        Include::None => {}
        Include::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
            });
        }
        Include::Object => row["object"] = object.clone(),
    }
    row
}

/// The Table of `objects` of `kind`, at `resource_version` for a list.
pub fn table(
    kind: Kind,
    objects: &[Value],
    resource_version: Option<String>,
    include: Include,
) -> Value {
    let mut metadata = json!({});
    if let Some(revision) = resource_version {
        metadata["resourceVersion"] = json!(revision);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(kind),
        "rows": objects.iter().map(|o| row(kind, o, include)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_header_asks_for_a_table() {
        assert!(wanted(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wanted("application/json"));
        assert!(!wanted("application/json;as=Table;v=v1beta1;g=meta.k8s.io"));
    }

    #[test]
    fn pod_tables_have_kube_apiservers_columns_and_metadata() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.1.0.5"}});
        let table = table(
            Kind::Pod,
            std::slice::from_ref(&pod),
            Some("7".into()),
            Include::Metadata,
        );
        let names: Vec<(&str, i64)> = table["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or(""),
                    c["priority"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1)
            ]
        );
        let row = &table["rows"][0];
        assert_eq!(row["cells"][0], "web");
        assert_eq!(row["cells"][5], "10.1.0.5");
        assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(row["object"]["metadata"]["namespace"], "default");
        assert!(row["object"].get("spec").is_none());
        assert_eq!(table["metadata"]["resourceVersion"], "7");
        assert_eq!(column_name("CLUSTER-IP"), "Cluster-IP");
        assert!(Include::parse("Everything").is_err());
    }
}
