//! PATCH as kube-apiserver takes it: JSON merge patch (RFC 7386), JSON
//! patch (RFC 6902) and strategic merge patch, whose lists with a merge key
//! (containers by `name`, container ports by `containerPort`, conditions by
//! `type`, ...) merge element by element instead of being replaced, with the
//! directives kubectl sends (`$patch: delete|replace|merge`,
//! `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`,
//! `$retainKeys`).
//!
//! The merge keys are the `patchMergeKey`/`patchStrategy` tags of the
//! Kubernetes types rudder serves ([`rudder_api::strategic_merge`], the
//! table the OpenAPI schema states them from too).

use serde_json::{Map, Value};

use rudder_api::strategic_merge::{self, ListStrategy};

use super::ApiServerError;

/// The patch formats, by their content-type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
}

impl PatchType {
    /// The patch type a PATCH's content-type names.
    ///
    /// # Errors
    /// [`ApiServerError::UnsupportedMediaType`] for anything else, server-side
    /// apply included (not served yet).
    pub fn from_content_type(content_type: &str) -> Result<Self, ApiServerError> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/strategic-merge-patch+json" => Ok(Self::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Err(ApiServerError::UnsupportedMediaType(
                    "server-side apply is not supported by rudder yet: use client-side \
                     `kubectl apply` (without --server-side)"
                        .into(),
                ))
            }
            other => Err(ApiServerError::UnsupportedMediaType(format!(
                "the PATCH content-type {other:?} is not one of application/merge-patch+json, \
                 application/json-patch+json, application/strategic-merge-patch+json"
            ))),
        }
    }
}

/// Applies `body`, a patch of `patch_type`, to `current`.
///
/// # Errors
/// [`ApiServerError::BadRequest`] when the body is not a patch of its type
/// or a JSON patch operation fails (a path that is not there, a failed
/// `test`).
pub fn apply(current: &Value, patch_type: PatchType, body: &[u8]) -> Result<Value, ApiServerError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|err| ApiServerError::BadRequest(format!("the patch body is not JSON: {err}")))?;
    match patch_type {
        PatchType::Merge => {
            require_object(&patch, "a JSON merge patch")?;
            Ok(merge_patch(current.clone(), &patch))
        }
        PatchType::StrategicMerge => {
            require_object(&patch, "a strategic merge patch")?;
            strategic_merge(current.clone(), &patch, &mut Vec::new())
        }
        PatchType::Json => json_patch(current.clone(), &patch),
    }
}

fn require_object(patch: &Value, what: &str) -> Result<(), ApiServerError> {
    if patch.is_object() {
        Ok(())
    } else {
        Err(ApiServerError::BadRequest(format!(
            "{what} must be a JSON object, not {patch}"
        )))
    }
}

/// RFC 7386: objects merge key by key, `null` removes, anything else
/// replaces.
fn merge_patch(target: Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut target = match target {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            let merged = merge_patch(target.remove(key).unwrap_or(Value::Null), value);
            target.insert(key.clone(), merged);
        }
    }
    Value::Object(target)
}

/// The strategy of the list `field` at `path` (the field names above it).
fn list_strategy(path: &[String], field: &str) -> ListStrategy {
    strategic_merge::list_strategy(path.last().map_or("", String::as_str), field)
}

const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// A strategic merge patch of the object `patch` onto `target`.
fn strategic_merge(
    target: Value,
    patch: &Value,
    path: &mut Vec<String>,
) -> Result<Value, ApiServerError> {
    let Value::Object(patch) = patch else {
        return Ok(patch.clone());
    };
    let mut target = match target {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = patch.clone();
            replaced.remove("$patch");
            return Ok(Value::Object(replaced));
        }
        Some("delete") => return Ok(Value::Null),
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiServerError::BadRequest(format!(
                "strategic merge patch: unknown $patch directive {other:?} at {}",
                dotted(path)
            )));
        }
    }
    if let Some(retain) = patch.get("$retainKeys") {
        let keys: Vec<&str> = retain
            .as_array()
            .map(|keys| keys.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        target.retain(|key, _| keys.contains(&key.as_str()));
    }
    for (key, value) in patch {
        if key == "$patch" || key == "$retainKeys" || key.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            if let (Some(Value::Array(list)), Some(gone)) =
                (target.get_mut(field), value.as_array())
            {
                list.retain(|item| !gone.contains(item));
            }
            continue;
        }
        if value.is_null() {
            target.remove(key);
            continue;
        }
        let current = target.remove(key).unwrap_or(Value::Null);
        path.push(key.clone());
        let merged = match value {
            Value::Object(_) => strategic_merge(current, value, path),
            Value::Array(items) => match list_strategy(&path[..path.len() - 1], key) {
                ListStrategy::MergeKey(merge_key) => merge_by_key(current, items, merge_key, path),
                ListStrategy::Set => Ok(merge_set(current, items)),
                ListStrategy::Replace => Ok(value.clone()),
            },
            _ => Ok(value.clone()),
        };
        path.pop();
        let merged = merged?;
        if !merged.is_null() {
            target.insert(key.clone(), merged);
        }
    }
    for (key, order) in patch {
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER)
            && let (Some(Value::Array(list)), Some(order)) =
                (target.get_mut(field), order.as_array())
        {
            reorder(list, order, list_strategy(path, field));
        }
    }
    Ok(Value::Object(target))
}

/// Merges the patch's elements into the current list by `merge_key`:
/// a matching element is merged, `$patch: delete` removes it, a new one is
/// appended.
fn merge_by_key(
    current: Value,
    items: &[Value],
    merge_key: &str,
    path: &mut Vec<String>,
) -> Result<Value, ApiServerError> {
    let mut list = match current {
        Value::Array(list) => list,
        _ => Vec::new(),
    };
    if items
        .iter()
        .any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        let kept = items
            .iter()
            .filter(|item| item.get("$patch").is_none())
            .cloned()
            .collect();
        return Ok(Value::Array(kept));
    }
    for item in items {
        let Some(key) = item.get(merge_key) else {
            return Err(ApiServerError::BadRequest(format!(
                "strategic merge patch: an element of {} has no merge key {merge_key:?}: {item}",
                dotted(path)
            )));
        };
        let position = list.iter().position(|old| old.get(merge_key) == Some(key));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(at), true) => {
                list.remove(at);
            }
            (None, true) => {}
            (Some(at), false) => {
                let old = std::mem::take(&mut list[at]);
                list[at] = strategic_merge(old, item, path)?;
            }
            (None, false) => list.push(strategic_merge(Value::Null, item, path)?),
        }
    }
    Ok(Value::Array(list))
}

/// The union of a list of scalars and the patch's, current order first.
fn merge_set(current: Value, items: &[Value]) -> Value {
    let mut list = match current {
        Value::Array(list) => list,
        _ => Vec::new(),
    };
    for item in items {
        if !list.contains(item) {
            list.push(item.clone());
        }
    }
    Value::Array(list)
}

/// `$setElementOrder`: the elements it names come in its order, the rest
/// (elements only the server knows) after them as they were.
fn reorder(list: &mut Vec<Value>, order: &[Value], strategy: ListStrategy) {
    let identity = |item: &Value| match strategy {
        ListStrategy::MergeKey(key) => item.get(key).cloned(),
        ListStrategy::Set | ListStrategy::Replace => Some(item.clone()),
    };
    let mut rest = std::mem::take(list);
    for wanted in order {
        let wanted = identity(wanted);
        if let Some(at) = rest.iter().position(|item| identity(item) == wanted) {
            list.push(rest.remove(at));
        }
    }
    list.append(&mut rest);
}

fn dotted(path: &[String]) -> String {
    if path.is_empty() {
        "the object".into()
    } else {
        path.join(".")
    }
}

/// RFC 6902: a list of operations applied in order; any failure fails the
/// whole patch.
fn json_patch(mut target: Value, patch: &Value) -> Result<Value, ApiServerError> {
    let Value::Array(operations) = patch else {
        return Err(ApiServerError::BadRequest(format!(
            "a JSON patch must be a list of operations, not {patch}"
        )));
    };
    for (index, operation) in operations.iter().enumerate() {
        let failed = |reason: String| {
            ApiServerError::BadRequest(format!("JSON patch operation {index}: {reason}"))
        };
        let op = operation
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| failed(format!("no \"op\" in {operation}")))?;
        let path = pointer(operation, "path").map_err(&failed)?;
        let value = || {
            operation
                .get("value")
                .cloned()
                .ok_or_else(|| failed(format!("{op} needs a \"value\"")))
        };
        match op {
            "add" => add(&mut target, &path, value()?).map_err(&failed)?,
            "remove" => {
                remove(&mut target, &path).map_err(&failed)?;
            }
            "replace" => {
                remove(&mut target, &path).map_err(&failed)?;
                add(&mut target, &path, value()?).map_err(&failed)?;
            }
            "move" => {
                let from = pointer(operation, "from").map_err(&failed)?;
                let moved = remove(&mut target, &from).map_err(&failed)?;
                add(&mut target, &path, moved).map_err(&failed)?;
            }
            "copy" => {
                let from = pointer(operation, "from").map_err(&failed)?;
                let copied = target
                    .pointer(&from)
                    .cloned()
                    .ok_or_else(|| failed(format!("nothing at {from:?} to copy")))?;
                add(&mut target, &path, copied).map_err(&failed)?;
            }
            "test" => {
                let expected = value()?;
                if target.pointer(&path) != Some(&expected) {
                    return Err(failed(format!("test failed: {path:?} is not {expected}")));
                }
            }
            other => return Err(failed(format!("unknown op {other:?}"))),
        }
    }
    Ok(target)
}

fn pointer(operation: &Value, field: &str) -> Result<String, String> {
    let path = operation
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no {field:?} in {operation}"))?;
    if !path.is_empty() && !path.starts_with('/') {
        return Err(format!("{field} {path:?} is not a JSON pointer"));
    }
    Ok(path.to_owned())
}

/// The parent's pointer and the last reference token, unescaped.
fn split_last(path: &str) -> Result<(&str, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| "the whole document cannot be the target here".to_owned())?;
    Ok((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = split_last(path)?;
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            Ok(())
        }
        Some(Value::Array(list)) => {
            let at = if last == "-" {
                list.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|at| *at <= list.len())
                    .ok_or_else(|| format!("{path:?}: index {last:?} is out of range"))?
            };
            list.insert(at, value);
            Ok(())
        }
        Some(_) => Err(format!("{parent:?} is neither an object nor a list")),
        None => Err(format!("{parent:?} does not exist")),
    }
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_last(path)?;
    let removed = match target.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&last),
        Some(Value::Array(list)) => last
            .parse::<usize>()
            .ok()
            .filter(|at| *at < list.len())
            .map(|at| list.remove(at)),
        _ => None,
    };
    removed.ok_or_else(|| format!("{path:?} does not exist"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patched(current: &Value, patch_type: PatchType, patch: &Value) -> Value {
        apply(current, patch_type, patch.to_string().as_bytes()).expect("patch applies")
    }

    #[test]
    fn merge_patch_sets_and_removes_keys_and_replaces_lists() {
        let current = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"l": [1, 2]}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"l": [3]}});
        assert_eq!(
            patched(&current, PatchType::Merge, &patch),
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"l": [3]}})
        );
    }

    #[test]
    fn strategic_merge_merges_containers_by_name_and_keeps_the_rest() {
        let current = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "b:1"},
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:2", "ports": [{"containerPort": 81}]},
            {"name": "c", "image": "c:1"},
        ]}}}});
        let out = patched(&current, PatchType::StrategicMerge, &patch);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "a", "image": "a:2", "ports": [{"containerPort": 80}, {"containerPort": 81}]},
                {"name": "b", "image": "b:1"},
                {"name": "c", "image": "c:1"},
            ])
        );
    }

    #[test]
    fn strategic_merge_directives_delete_replace_and_order() {
        let current = json!({
            "metadata": {"finalizers": ["x", "y"]},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}], "tolerations": [{"key": "t"}]},
        });
        let patch = json!({
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"], "finalizers": ["z"]},
            "spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                "containers": [{"name": "b", "$patch": "delete"}],
                "tolerations": [{"key": "u"}],
            },
        });
        let out = patched(&current, PatchType::StrategicMerge, &patch);
        assert_eq!(out["metadata"]["finalizers"], json!(["y", "z"]));
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "c"}, {"name": "a"}])
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "u"}]));
        let replace = json!({"spec": {"$patch": "replace", "containers": []}});
        assert_eq!(
            patched(&current, PatchType::StrategicMerge, &replace)["spec"],
            json!({"containers": []})
        );
    }

    #[test]
    fn json_patch_applies_every_operation_or_none() {
        let current =
            json!({"spec": {"replicas": 1, "list": ["a"]}, "metadata": {"labels": {"k/x": "v"}}});
        let patch = json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/list/-", "value": "b"},
            {"op": "add", "path": "/spec/list/0", "value": "z"},
            {"op": "remove", "path": "/metadata/labels/k~1x"},
            {"op": "copy", "from": "/spec/replicas", "path": "/spec/copied"},
            {"op": "move", "from": "/spec/copied", "path": "/spec/moved"},
        ]);
        assert_eq!(
            patched(&current, PatchType::Json, &patch),
            json!({"spec": {"replicas": 3, "list": ["z", "a", "b"], "moved": 3}, "metadata": {"labels": {}}})
        );
        for bad in [
            json!([{"op": "test", "path": "/spec/replicas", "value": 2}]),
            json!([{"op": "remove", "path": "/spec/missing"}]),
            json!([{"op": "add", "path": "/spec/list/7", "value": 1}]),
            json!([{"op": "jump", "path": "/spec"}]),
            json!({"op": "add"}),
        ] {
            let err = apply(&current, PatchType::Json, bad.to_string().as_bytes())
                .expect_err("a bad JSON patch fails");
            assert!(matches!(err, ApiServerError::BadRequest(_)), "{err}");
        }
    }

    #[test]
    fn server_side_apply_and_unknown_types_are_unsupported_media() {
        for content_type in ["application/apply-patch+yaml", "text/plain"] {
            assert!(matches!(
                PatchType::from_content_type(content_type),
                Err(ApiServerError::UnsupportedMediaType(_))
            ));
        }
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json; charset=utf-8")
                .expect("smp"),
            PatchType::StrategicMerge
        );
    }
}
