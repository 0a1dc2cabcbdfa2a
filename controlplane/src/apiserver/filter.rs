//! Which objects a list or watch covers: a namespace, a label selector and
//! a field selector.

use rudder_api::selector::{FieldSelector, Selector};
use serde_json::Value;

use super::ApiServerError;

/// Which objects a list or watch covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Namespace, empty for all.
    pub namespace: String,
    /// Label selector.
    pub labels: Selector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl Filter {
    /// Parses selectors given as strings.
    ///
    /// # Errors
    /// [`ApiServerError::Invalid`] for a selector that does not parse.
    pub fn parse(namespace: &str, labels: &str, fields: &str) -> Result<Self, ApiServerError> {
        Ok(Self {
            namespace: namespace.to_owned(),
            labels: Selector::parse(labels)?,
            fields: FieldSelector::parse(fields)?,
        })
    }

    pub(super) fn matches(&self, object: &Value) -> bool {
        (self.namespace.is_empty()
            || object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                == Some(self.namespace.as_str()))
            && self.labels.matches_object(object)
            && self.fields.matches_object(object)
    }
}
