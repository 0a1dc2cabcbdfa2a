//! `fieldValidation` (Ignore, Warn, Strict): what a create, update or
//! patch over HTTP does with fields its object's schema does not have.
//!
//! The schema is the one `/openapi/v3` serves ([`rudder_api::schema`]).
//! Unlike kube-apiserver, which drops unknown fields, rudder keeps what
//! the user wrote (see [`rudder_api::object`]): `Ignore` and `Warn` store
//! the object as sent, `Warn` (the default, as in Kubernetes) answers a
//! `Warning` header per unknown field, and `Strict` refuses the request.

use rudder_api::{Kind, schema};
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

    /// Checks `object`, a `kind`, for unknown fields; a patched object
    /// names the object it was patched from as `before`, whose own unknown
    /// fields are not held against the patch. Returns the warnings to send.
    ///
    /// # Errors
    /// [`ApiServerError::BadRequest`] under `Strict` when there is an
    /// unknown field, naming every one (`strict decoding error: unknown
    /// field "spec.foo"`, as Kubernetes words it).
    pub fn check(
        self,
        kind: Kind,
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
                    .check(Kind::Deployment, &object, None)
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
            .check(Kind::Deployment, &object, None)
            .expect_err("unknown fields");
        assert_eq!(
            err.to_string(),
            "deployment \"web\": strict decoding error: unknown field \"spec.foo\", \
             unknown field \"spec.template.spec.containers[0].colour\""
        );
        let warnings = FieldValidation::Warn
            .check(Kind::Deployment, &object, None)
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
                .check(Kind::Deployment, &object, None)
                .expect("ignored")
                .is_empty()
        );
    }

    #[test]
    fn a_patch_answers_only_for_the_fields_it_brings() {
        let before = deployment(json!({"spec": {"foo": 1}}));
        let after = deployment(json!({"spec": {"foo": 1, "bar": 2}}));
        let err = FieldValidation::Strict
            .check(Kind::Deployment, &after, Some(&before))
            .expect_err("bar is new");
        assert!(
            err.to_string().ends_with("unknown field \"spec.bar\""),
            "{err}"
        );
        assert!(
            FieldValidation::Strict
                .check(Kind::Deployment, &before, Some(&before))
                .is_ok()
        );
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
