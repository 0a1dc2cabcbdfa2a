//! `fieldValidation` (Ignore, Warn, Strict): what a create, update or
//! patch over HTTP does with fields its object's schema does not have.
//!
//! The schema is the one `/openapi/v3` serves ([`rudder_api::schema`]).
//! Unlike kube-apiserver, which drops unknown fields, rudder keeps what
//! the user wrote (see [`rudder_api::object`]): `Ignore` and `Warn` store
//! the object as sent, `Warn` (the default, as in Kubernetes) answers a
//! `Warning` header per unknown field, and `Strict` refuses the request.
//! A field given twice in the request's JSON (the last one would win) is
//! treated the same way.

use std::{collections::HashSet, fmt};

use rudder_api::{Kind, schema};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::ApiServerError;

/// A request's `fieldValidation` directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Unknown fields are kept silently.
    Ignore,
    /// Unknown fields are kept, each named in a warning.
    Warn,
    /// A request with an unknown field fails.
    Strict,
}

impl FieldValidation {
    /// The directive of the `fieldValidation` query parameter (empty:
    /// Warn).
    ///
    /// # Errors
    /// [`ApiServerError::BadRequest`] for any other value.
    pub fn parse(text: &str) -> Result<Self, ApiServerError> {
        match text {
            "Ignore" => Ok(Self::Ignore),
            "" | "Warn" => Ok(Self::Warn),
            "Strict" => Ok(Self::Strict),
            other => Err(ApiServerError::BadRequest(format!(
                "fieldValidation {other:?} is not one of Ignore, Warn, Strict"
            ))),
        }
    }

    /// Checks `object`, a `kind` sent as `body`, for unknown fields and
    /// `body` for fields given twice; a patched object names the object it
    /// was patched from as `before`, whose own unknown fields are not held
    /// against the patch (and `body` is the patch). Returns the warnings to
    /// send.
    ///
    /// # Errors
    /// [`ApiServerError::BadRequest`] under `Strict` when there is an
    /// unknown or duplicate field, naming every one (`strict decoding
    /// error: unknown field "spec.foo"`, as Kubernetes words it).
    pub fn check(
        self,
        kind: Kind,
        body: &[u8],
        object: &Value,
        before: Option<&Value>,
    ) -> Result<Vec<String>, ApiServerError> {
        if self == Self::Ignore {
            return Ok(Vec::new());
        }
        let mut unknown = schema::unknown_fields(kind, object);
        if let Some(before) = before {
            let known_before = schema::unknown_fields(kind, before);
            unknown.retain(|field| !known_before.contains(field));
        }
        let named: Vec<String> = unknown
            .iter()
            .map(|field| format!("unknown field {field:?}"))
            .chain(
                duplicate_fields(body)
                    .iter()
                    .map(|field| format!("duplicate field {field:?}")),
            )
            .collect();
        match self {
            Self::Strict if !named.is_empty() => Err(ApiServerError::BadRequest(format!(
                "{} {:?}: strict decoding error: {}",
                kind.name().to_lowercase(),
                rudder_api::object::name_of(object),
                named.join(", ")
            ))),
            _ => Ok(named),
        }
    }
}

/// The fields `body` (JSON) gives more than once, by path; nothing for a
/// body that is not JSON (decoding it reports that).
fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let seed = Fields {
        path: String::new(),
        found: &mut found,
    };
    if seed.deserialize(&mut deserializer).is_err() {
        return Vec::new();
    }
    found
}

/// Walks a JSON document noting repeated keys (serde_json's own recursion
/// limit bounds the depth).
struct Fields<'a> {
    path: String,
    found: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let mut index = 0;
        while items
            .next_element_seed(Fields {
                path: format!("{}[{index}]", self.path),
                found: &mut *self.found,
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(name) = fields.next_key::<String>()? {
            let path = if self.path.is_empty() {
                name.clone()
            } else {
                format!("{}.{name}", self.path)
            };
            if !seen.insert(name) {
                self.found.push(path.clone());
            }
            fields.next_value_seed(Fields {
                path,
                found: &mut *self.found,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A Deployment using Kubernetes fields rudder keeps without
    /// modelling them, with `extra` merged in.
    fn deployment(extra: Value) -> Value {
        let container = json!({
            "name": "api",
            "image": "registry.example/api:2",
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "securityContext": {"runAsUser": 1000},
        });
        let pod_spec = json!({
            "containers": [container],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "serviceAccountName": "api",
        });
        let mut object = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"tier": "api"}},
                "template": {"metadata": {"labels": {"tier": "api"}}, "spec": pod_spec},
            },
        });
        rudder_api::object::merge(&mut object, extra);
        object
    }

    #[test]
    fn kubernetes_fields_rudder_keeps_are_known() {
        let object = deployment(json!({}));
        for validation in [FieldValidation::Strict, FieldValidation::Warn] {
            assert_eq!(
                validation
                    .check(Kind::Deployment, b"{}", &object, None)
                    .expect("valid"),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn strict_names_every_unknown_field_by_its_path() {
        let object = deployment(json!({
            "spec": {"foo": 1, "template": {"spec": {"containers": [{"colour": "red"}]}}}
        }));
        let err = FieldValidation::Strict
            .check(Kind::Deployment, b"{}", &object, None)
            .expect_err("unknown fields");
        assert_eq!(
            err.to_string(),
            "deployment \"web\": strict decoding error: unknown field \"spec.foo\", \
             unknown field \"spec.template.spec.containers[0].colour\""
        );
        let warnings = FieldValidation::Warn
            .check(Kind::Deployment, b"{}", &object, None)
            .expect("warn passes");
        assert_eq!(
            warnings,
            [
                "unknown field \"spec.foo\"",
                "unknown field \"spec.template.spec.containers[0].colour\""
            ]
        );
        assert!(
            FieldValidation::Ignore
                .check(Kind::Deployment, b"{}", &object, None)
                .expect("ignored")
                .is_empty()
        );
    }

    #[test]
    fn a_patch_answers_only_for_the_fields_it_brings() {
        let before = deployment(json!({"spec": {"foo": 1}}));
        let after = deployment(json!({"spec": {"foo": 1, "bar": 2}}));
        let err = FieldValidation::Strict
            .check(Kind::Deployment, b"{}", &after, Some(&before))
            .expect_err("bar is new");
        assert!(
            err.to_string().ends_with("unknown field \"spec.bar\""),
            "{err}"
        );
        assert!(
            FieldValidation::Strict
                .check(Kind::Deployment, b"{}", &before, Some(&before))
                .is_ok()
        );
    }

    #[test]
    fn fields_given_twice_are_named() {
        let body = br#"{"kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "name": "b"}]}}, "replicas": 2}}"#;
        let object: Value = serde_json::from_slice(body).expect("json");
        let err = FieldValidation::Strict
            .check(Kind::Deployment, body, &object, None)
            .expect_err("duplicates");
        assert_eq!(
            err.to_string(),
            "deployment \"web\": strict decoding error: \
             duplicate field \"spec.template.spec.containers[0].name\", \
             duplicate field \"spec.replicas\""
        );
        assert!(duplicate_fields(b"not json").is_empty());
        assert!(duplicate_fields(br#"[{"a": 1}, {"a": 2}]"#).is_empty());
    }

    #[test]
    fn unknown_directives_are_refused() {
        assert_eq!(
            FieldValidation::parse("").expect("default"),
            FieldValidation::Warn
        );
        let err = FieldValidation::parse("strict").expect_err("case matters");
        assert!(
            err.to_string().contains("not one of Ignore, Warn, Strict"),
            "{err}"
        );
    }
}
