//! How objects are kept in the store: JSON under
//! `/registry/<plural>/[<namespace>/]<name>`, without
//! `metadata.resourceVersion` (the key's `mod_revision` is the
//! resourceVersion, filled in on every read).

use rudder_api::{Kind, object};
use rudder_kvstore::{KeyValue, StoreError};
use serde_json::{Value, json};

use super::ApiServerError;

pub(super) fn list_prefix(kind: Kind, namespace: &str) -> String {
    if kind.namespaced() && !namespace.is_empty() {
        format!("{}{namespace}/", kind.key_prefix())
    } else {
        kind.key_prefix()
    }
}

pub(super) fn effective_namespace(kind: Kind, namespace: &str) -> String {
    match (kind.namespaced(), namespace) {
        (false, _) => String::new(),
        (true, "") => "default".to_owned(),
        (true, ns) => ns.to_owned(),
    }
}

pub(super) fn ensure_metadata(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata") {
        Some(Value::Object(map)) => map,
        _ => unreachable!("metadata was just made an object"),
    }
}

pub(super) fn namespace_and_name(object: &Value) -> (String, String) {
    let meta = object::metadata_of(object);
    (meta.namespace, meta.name)
}

pub(super) fn set_resource_version(object: &mut Value, revision: i64) {
    ensure_metadata(object).insert("resourceVersion".into(), json!(revision.to_string()));
}

pub(super) fn encode(object: &Value) -> Vec<u8> {
    let mut stored = object.clone();
    if let Some(meta) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&stored).unwrap_or_default()
}

pub(super) fn decode(kv: &KeyValue) -> Result<Value, ApiServerError> {
    let mut object: Value = serde_json::from_slice(&kv.value).map_err(|err| {
        ApiServerError::Store(StoreError::Storage(format!(
            "object at {} is not JSON: {err}",
            String::from_utf8_lossy(&kv.key)
        )))
    })?;
    set_resource_version(&mut object, kv.mod_revision);
    Ok(object)
}
