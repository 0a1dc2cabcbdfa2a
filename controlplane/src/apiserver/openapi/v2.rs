//! `/openapi/v2`: the same definitions as Swagger 2.0, which kubectl still
//! reads for client-side validation where the OpenAPI 3 documents do not
//! settle it: a `kind: List` file (`kubectl get -o yaml` output) or a kind
//! rudder does not serve. kubectl asks for it only as protobuf, in
//! gnostic's `openapi.v2.Document` message; a client asking for JSON gets
//! the JSON form.
//!
//! Only the parts of the message kubectl reads are written: the version,
//! the info and the definitions (schemas with their type, format,
//! description, required fields, properties, items, additional properties,
//! reference and vendor extensions).

use prost::Message;
use serde_json::{Map, Value, json};

/// What names the protobuf form in an `Accept` header: kubectl asks for
/// `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`.
pub const PROTOBUF_ACCEPTED: &str = "com.github.proto-openapi.spec.v2";

/// The media type the protobuf form is answered with: the one asked for
/// with `.` for `@`, which Go's media type parser would refuse (as
/// kube-apiserver answers it).
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The Swagger 2.0 document of `definitions` (OpenAPI 3 schemas whose
/// references point into `#/components/schemas/`).
pub fn json_document(title: &str, version: &str, definitions: &Map<String, Value>) -> Value {
    let definitions: Map<String, Value> = definitions
        .iter()
        .map(|(name, schema)| (name.clone(), to_v2(schema)))
        .collect();
    json!({
        "swagger": "2.0",
        "info": {"title": title, "version": version},
        "paths": {},
        "definitions": definitions,
    })
}

/// An OpenAPI 3 schema in Swagger 2.0's words: references point into
/// `#/definitions/`, and a one-reference `allOf` (the OpenAPI 3 way to
/// describe a referring field) is the reference itself.
fn to_v2(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                match key.as_str() {
                    "$ref" => {
                        let name = value
                            .as_str()
                            .unwrap_or_default()
                            .trim_start_matches("#/components/schemas/");
                        out.insert(key.clone(), json!(format!("#/definitions/{name}")));
                    }
                    "allOf" => match value.as_array().map(Vec::as_slice) {
                        Some([only]) if only.get("$ref").is_some() => {
                            if let Value::Object(reference) = to_v2(only) {
                                out.extend(reference);
                            }
                        }
                        _ => {
                            out.insert(key.clone(), to_v2(value));
                        }
                    },
                    _ => {
                        out.insert(key.clone(), to_v2(value));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_v2).collect()),
        other => other.clone(),
    }
}

/// The document as gnostic's protobuf message.
pub fn protobuf(document: &Value) -> Vec<u8> {
    let info = document.get("info").map(|info| Info {
        title: text(info, "title"),
        version: text(info, "version"),
    });
    let definitions = document
        .get("definitions")
        .and_then(Value::as_object)
        .map(|definitions| Definitions {
            additional_properties: named_schemas(definitions),
        });
    Document {
        swagger: text(document, "swagger"),
        info,
        definitions,
    }
    .encode_to_vec()
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn named_schemas(map: &Map<String, Value>) -> Vec<NamedSchema> {
    map.iter()
        .map(|(name, schema)| NamedSchema {
            name: name.clone(),
            value: Some(schema_message(schema)),
        })
        .collect()
}

fn schema_message(schema: &Value) -> Schema {
    let strings = |key: &str| -> Vec<String> {
        match schema.get(key) {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    };
    let additional_properties = match schema.get("additionalProperties") {
        Some(Value::Bool(allowed)) => Some(Box::new(AdditionalPropertiesItem {
            schema: None,
            boolean: Some(*allowed),
        })),
        Some(sub @ Value::Object(_)) => Some(Box::new(AdditionalPropertiesItem {
            schema: Some(Box::new(schema_message(sub))),
            boolean: None,
        })),
        _ => None,
    };
    let type_ = strings("type");
    let vendor_extension = schema
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| key.starts_with("x-"))
        .map(|(key, value)| NamedAny {
            name: key.clone(),
            // gnostic keeps extension values as YAML text; JSON is YAML.
            value: Some(Any {
                yaml: value.to_string(),
            }),
        })
        .collect();
    Schema {
        reference: text(schema, "$ref"),
        format: text(schema, "format"),
        description: text(schema, "description"),
        required: strings("required"),
        additional_properties,
        type_: (!type_.is_empty()).then_some(TypeItem { value: type_ }),
        items: schema.get("items").map(|items| ItemsItem {
            schema: vec![schema_message(items)],
        }),
        properties: schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| Properties {
                additional_properties: named_schemas(properties),
            }),
        vendor_extension,
    }
}

/// `openapi.v2.Document` (the fields written).
#[derive(Clone, PartialEq, Message)]
struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<Info>,
    #[prost(message, optional, tag = "9")]
    definitions: Option<Definitions>,
}

/// `openapi.v2.Info`.
#[derive(Clone, PartialEq, Message)]
struct Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
}

/// `openapi.v2.Definitions`.
#[derive(Clone, PartialEq, Message)]
struct Definitions {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

/// `openapi.v2.NamedSchema`.
#[derive(Clone, PartialEq, Message)]
struct NamedSchema {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Schema>,
}

/// `openapi.v2.Schema` (the fields written).
#[derive(Clone, PartialEq, Message)]
struct Schema {
    #[prost(string, tag = "1")]
    reference: String,
    #[prost(string, tag = "2")]
    format: String,
    #[prost(string, tag = "4")]
    description: String,
    #[prost(string, repeated, tag = "19")]
    required: Vec<String>,
    #[prost(message, optional, boxed, tag = "21")]
    additional_properties: Option<Box<AdditionalPropertiesItem>>,
    #[prost(message, optional, tag = "22")]
    type_: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    items: Option<ItemsItem>,
    #[prost(message, optional, tag = "25")]
    properties: Option<Properties>,
    #[prost(message, repeated, tag = "31")]
    vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.AdditionalPropertiesItem`: a oneof of a schema or a bool,
/// which on the wire is either field.
#[derive(Clone, PartialEq, Message)]
struct AdditionalPropertiesItem {
    #[prost(message, optional, boxed, tag = "1")]
    schema: Option<Box<Schema>>,
    #[prost(bool, optional, tag = "2")]
    boolean: Option<bool>,
}

/// `openapi.v2.TypeItem`.
#[derive(Clone, PartialEq, Message)]
struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    value: Vec<String>,
}

/// `openapi.v2.ItemsItem`.
#[derive(Clone, PartialEq, Message)]
struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    schema: Vec<Schema>,
}

/// `openapi.v2.Properties`.
#[derive(Clone, PartialEq, Message)]
struct Properties {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

/// `openapi.v2.NamedAny`.
#[derive(Clone, PartialEq, Message)]
struct NamedAny {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Any>,
}

/// `openapi.v2.Any` (its `yaml` form).
#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "2")]
    yaml: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_referring_fields_take_swagger_2_form() {
        let mut definitions = Map::new();
        definitions.insert(
            "io.k8s.api.core.v1.Pod".to_owned(),
            json!({
                "type": "object",
                "properties": {
                    "spec": {
                        "description": "Desired state.",
                        "allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]
                    },
                    "list": {"type": "array", "items": {"$ref": "#/components/schemas/X"}}
                },
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}]
            }),
        );
        let document = json_document("t", "v", &definitions);
        let pod = &document["definitions"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["properties"]["spec"],
            json!({"description": "Desired state.", "$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"})
        );
        assert_eq!(
            pod["properties"]["list"]["items"]["$ref"],
            "#/definitions/X"
        );
        let decoded = Document::decode(protobuf(&document).as_slice()).expect("decodes");
        assert_eq!(decoded.swagger, "2.0");
        let definitions = decoded
            .definitions
            .expect("definitions")
            .additional_properties;
        let pod = definitions[0].value.as_ref().expect("pod");
        assert_eq!(pod.type_.as_ref().expect("type").value, ["object"]);
        let properties = &pod
            .properties
            .as_ref()
            .expect("properties")
            .additional_properties;
        let spec = properties
            .iter()
            .find(|p| p.name == "spec")
            .and_then(|p| p.value.as_ref())
            .expect("spec");
        assert_eq!(spec.reference, "#/definitions/io.k8s.api.core.v1.PodSpec");
        assert_eq!(spec.description, "Desired state.");
        let gvk = &pod.vendor_extension[0];
        assert_eq!(gvk.name, "x-kubernetes-group-version-kind");
        assert_eq!(
            gvk.value.as_ref().expect("value").yaml,
            r#"[{"group":"","kind":"Pod","version":"v1"}]"#
        );
    }
}
