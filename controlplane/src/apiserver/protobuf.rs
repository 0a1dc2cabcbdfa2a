//! Request bodies in Kubernetes' protobuf encoding
//! (`application/vnd.kubernetes.protobuf`), which kubectl's typed clients
//! send for some kinds (`kubectl auth can-i`, `kubectl create
//! clusterrolebinding`): the `k8s\0` magic, a `runtime.Unknown` envelope
//! (type meta + raw message), and the message itself, decoded here into
//! the JSON object the rest of the server handles. Only namespaces, the
//! RBAC kinds and access reviews are understood (what `kubectl create
//! namespace|role|clusterrole|rolebinding|clusterrolebinding` and `kubectl
//! auth can-i` send); replies are always JSON.

use rudder_api::Kind;
use serde_json::{Map, Value, json};

use super::ApiServerError;

/// The content type of protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// How deeply messages may nest (the kinds here need 4).
const MAX_DEPTH: usize = 8;

/// What a protobuf body can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// One of the served kinds.
    Kind(Kind),
    /// `authorization.k8s.io/v1` SelfSubjectAccessReview.
    SelfSubjectAccessReview,
}

/// Whether `content_type` is the protobuf one.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

/// Decodes a protobuf body holding `expected` into its JSON form.
///
/// # Errors
/// [`ApiServerError::BadRequest`] for a body that is not a Kubernetes
/// protobuf envelope or does not hold `expected`;
/// [`ApiServerError::UnsupportedMediaType`] for a kind this server only
/// takes as JSON.
pub fn decode(expected: Message, body: &[u8]) -> Result<Value, ApiServerError> {
    let bad = |why: &str| ApiServerError::BadRequest(format!("the protobuf body {why}"));
    let envelope = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| bad("does not start with the Kubernetes magic \"k8s\\0\""))?;
    let mut type_meta = None;
    let mut raw = None;
    for field in Fields::new(envelope) {
        match field.map_err(bad)? {
            (1, Wire::Bytes(bytes)) => type_meta = Some(bytes),
            (2, Wire::Bytes(bytes)) => raw = Some(bytes),
            _ => {}
        }
    }
    let (mut api_version, mut kind) = (String::new(), String::new());
    if let Some(type_meta) = type_meta {
        for field in Fields::new(type_meta) {
            match field.map_err(bad)? {
                (1, Wire::Bytes(b)) => api_version = utf8(b).map_err(bad)?,
                (2, Wire::Bytes(b)) => kind = utf8(b).map_err(bad)?,
                _ => {}
            }
        }
    }
    let raw = raw.ok_or_else(|| bad("has no raw message"))?;
    let schema: &Schema = match expected {
        Message::SelfSubjectAccessReview => &SSAR,
        Message::Kind(Kind::Role | Kind::ClusterRole) => &ROLE,
        Message::Kind(Kind::RoleBinding | Kind::ClusterRoleBinding) => &BINDING,
        Message::Kind(Kind::Namespace) => &NAMESPACE,
        Message::Kind(other) => {
            return Err(ApiServerError::UnsupportedMediaType(format!(
                "{}: send it as JSON (application/json); protobuf is only taken for namespaces, RBAC objects and access reviews",
                other.plural()
            )));
        }
    };
    let expected_kind = match expected {
        Message::SelfSubjectAccessReview => "SelfSubjectAccessReview",
        Message::Kind(kind) => kind.name(),
    };
    if !kind.is_empty() && kind != expected_kind {
        return Err(bad(&format!("holds a {kind}, not a {expected_kind}")));
    }
    let mut object = message(schema, raw, 0).map_err(bad)?;
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(api_version));
        map.insert("kind".into(), json!(expected_kind));
    }
    Ok(object)
}

fn utf8(bytes: &[u8]) -> Result<String, &'static str> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "has a string that is not UTF-8")
}

/// A field's wire value.
enum Wire<'a> {
    Varint,
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one message, in order.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first().ok_or("ends inside a number")?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("has a number longer than 10 bytes")
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], &'static str> {
        if len > self.rest.len() {
            return Err("ends inside a field");
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = (|| {
            let key = self.varint()?;
            let wire = match key & 7 {
                0 => {
                    self.varint()?;
                    Wire::Varint
                }
                1 => {
                    self.take(8)?;
                    Wire::Fixed
                }
                2 => {
                    let len = usize::try_from(self.varint()?).map_err(|_| "has a huge field")?;
                    Wire::Bytes(self.take(len)?)
                }
                5 => {
                    self.take(4)?;
                    Wire::Fixed
                }
                _ => return Err("uses a wire type Kubernetes does not"),
            };
            Ok((key >> 3, wire))
        })();
        if field.is_err() {
            // One error ends the iteration.
            self.rest = &[];
        }
        Some(field)
    }
}

/// How a field becomes JSON.
#[derive(Clone, Copy)]
enum Shape {
    Text,
    TextList,
    Map,
    Object(&'static Schema),
    ObjectList(&'static Schema),
}

/// A message's fields: number, JSON name, shape.
type Schema = [(u64, &'static str, Shape)];

static META: [(u64, &str, Shape); 7] = [
    (1, "name", Shape::Text),
    (2, "generateName", Shape::Text),
    (3, "namespace", Shape::Text),
    (5, "uid", Shape::Text),
    (6, "resourceVersion", Shape::Text),
    (11, "labels", Shape::Map),
    (12, "annotations", Shape::Map),
];
static NAMESPACE_SPEC: [(u64, &str, Shape); 1] = [(1, "finalizers", Shape::TextList)];
static NAMESPACE: [(u64, &str, Shape); 2] = [
    (1, "metadata", Shape::Object(&META)),
    (2, "spec", Shape::Object(&NAMESPACE_SPEC)),
];
static RULE: [(u64, &str, Shape); 5] = [
    (1, "verbs", Shape::TextList),
    (2, "apiGroups", Shape::TextList),
    (3, "resources", Shape::TextList),
    (4, "resourceNames", Shape::TextList),
    (5, "nonResourceURLs", Shape::TextList),
];
static ROLE: [(u64, &str, Shape); 2] = [
    (1, "metadata", Shape::Object(&META)),
    (2, "rules", Shape::ObjectList(&RULE)),
];
static SUBJECT: [(u64, &str, Shape); 4] = [
    (1, "kind", Shape::Text),
    (2, "apiGroup", Shape::Text),
    (3, "name", Shape::Text),
    (4, "namespace", Shape::Text),
];
static ROLE_REF: [(u64, &str, Shape); 3] = [
    (1, "apiGroup", Shape::Text),
    (2, "kind", Shape::Text),
    (3, "name", Shape::Text),
];
static BINDING: [(u64, &str, Shape); 3] = [
    (1, "metadata", Shape::Object(&META)),
    (2, "subjects", Shape::ObjectList(&SUBJECT)),
    (3, "roleRef", Shape::Object(&ROLE_REF)),
];
static RESOURCE_ATTRIBUTES: [(u64, &str, Shape); 7] = [
    (1, "namespace", Shape::Text),
    (2, "verb", Shape::Text),
    (3, "group", Shape::Text),
    (4, "version", Shape::Text),
    (5, "resource", Shape::Text),
    (6, "subresource", Shape::Text),
    (7, "name", Shape::Text),
];
static NON_RESOURCE_ATTRIBUTES: [(u64, &str, Shape); 2] =
    [(1, "path", Shape::Text), (2, "verb", Shape::Text)];
static SSAR_SPEC: [(u64, &str, Shape); 2] = [
    (1, "resourceAttributes", Shape::Object(&RESOURCE_ATTRIBUTES)),
    (
        2,
        "nonResourceAttributes",
        Shape::Object(&NON_RESOURCE_ATTRIBUTES),
    ),
];
static SSAR: [(u64, &str, Shape); 2] = [
    (1, "metadata", Shape::Object(&META)),
    (2, "spec", Shape::Object(&SSAR_SPEC)),
];

/// Decodes a message of `schema`; fields it does not list are skipped.
fn message(schema: &Schema, bytes: &[u8], depth: usize) -> Result<Value, &'static str> {
    if depth > MAX_DEPTH {
        return Err("nests too deeply");
    }
    let mut object = Map::new();
    for field in Fields::new(bytes) {
        let (number, wire) = field?;
        let Some(&(_, name, shape)) = schema.iter().find(|(n, _, _)| *n == number) else {
            continue;
        };
        match (shape, wire) {
            (Shape::Text, Wire::Bytes(b)) => {
                object.insert(name.into(), json!(utf8(b)?));
            }
            (Shape::TextList, Wire::Bytes(b)) => push(&mut object, name, json!(utf8(b)?)),
            (Shape::Map, Wire::Bytes(entry)) => {
                let (mut key, mut value) = (String::new(), String::new());
                for part in Fields::new(entry) {
                    match part? {
                        (1, Wire::Bytes(b)) => key = utf8(b)?,
                        (2, Wire::Bytes(b)) => value = utf8(b)?,
                        _ => {}
                    }
                }
                let map = object
                    .entry(name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(map) = map.as_object_mut() {
                    map.insert(key, json!(value));
                }
            }
            (Shape::Object(inner), Wire::Bytes(b)) => {
                object.insert(name.into(), message(inner, b, depth + 1)?);
            }
            (Shape::ObjectList(inner), Wire::Bytes(b)) => {
                let item = message(inner, b, depth + 1)?;
                push(&mut object, name, item);
            }
            _ => return Err("has a field of the wrong wire type"),
        }
    }
    Ok(Value::Object(object))
}

fn push(object: &mut Map<String, Value>, name: &str, item: Value) {
    let list = object
        .entry(name)
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(list) = list.as_array_mut() {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a length-delimited field.
    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(&mut out, (number << 3) | 2);
        varint(&mut out, bytes.len() as u64);
        out.extend_from_slice(bytes);
        out
    }

    fn varint(out: &mut Vec<u8>, mut value: u64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn envelope(kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [
            field(1, b"authorization.k8s.io/v1"),
            field(2, kind.as_bytes()),
        ]
        .concat();
        let mut body = b"k8s\0".to_vec();
        body.extend(field(1, &type_meta));
        body.extend(field(2, raw));
        body
    }

    #[test]
    fn an_access_review_decodes_as_kubectl_sends_it() {
        let attributes = [field(1, b"dev"), field(2, b"create"), field(5, b"pods")].concat();
        let spec = field(1, &attributes);
        let raw = [field(1, &[]), field(2, &spec)].concat();
        let review = decode(
            Message::SelfSubjectAccessReview,
            &envelope("SelfSubjectAccessReview", &raw),
        )
        .expect("decodes");
        assert_eq!(review["kind"], "SelfSubjectAccessReview");
        assert_eq!(review["spec"]["resourceAttributes"]["verb"], "create");
        assert_eq!(review["spec"]["resourceAttributes"]["namespace"], "dev");
        assert_eq!(review["spec"]["resourceAttributes"]["resource"], "pods");
    }

    #[test]
    fn a_binding_decodes_with_its_subjects_and_labels() {
        let label = [field(1, b"team"), field(2, b"a")].concat();
        let meta = [field(1, b"ops-view"), field(11, &label)].concat();
        let subject = [
            field(1, b"User"),
            field(2, b"rbac.authorization.k8s.io"),
            field(3, b"sam"),
        ]
        .concat();
        let role_ref = [
            field(1, b"rbac.authorization.k8s.io"),
            field(2, b"ClusterRole"),
            field(3, b"view"),
        ]
        .concat();
        let raw = [field(1, &meta), field(2, &subject), field(3, &role_ref)].concat();
        let binding = decode(
            Message::Kind(Kind::ClusterRoleBinding),
            &envelope("ClusterRoleBinding", &raw),
        )
        .expect("decodes");
        assert_eq!(binding["metadata"]["name"], "ops-view");
        assert_eq!(binding["metadata"]["labels"]["team"], "a");
        assert_eq!(binding["subjects"][0]["name"], "sam");
        assert_eq!(binding["roleRef"]["name"], "view");
    }

    #[test]
    fn truncated_and_foreign_bodies_are_refused() {
        assert!(decode(Message::SelfSubjectAccessReview, b"{}").is_err());
        let mut truncated = envelope("SelfSubjectAccessReview", &field(2, b"xyz"));
        truncated.truncate(truncated.len() - 2);
        assert!(decode(Message::SelfSubjectAccessReview, &truncated).is_err());
        assert!(decode(Message::Kind(Kind::Role), &envelope("Pod", &[])).is_err());
        assert!(matches!(
            decode(Message::Kind(Kind::Pod), &envelope("Pod", &[])),
            Err(ApiServerError::UnsupportedMediaType(_))
        ));
    }
}
