//! Errors of the API types: decoding, validation, selectors.

use std::fmt;

/// One thing wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field (`spec.ports[0].port`).
    pub field: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Everything that can be wrong with an object or a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The object fails validation.
    #[error("{} {:?}: {}", .kind.to_lowercase(), .name, join(.errors))]
    Invalid {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// Every problem found.
        errors: Vec<FieldError>,
    },
    /// The object is not well-formed (wrong types, not JSON).
    #[error("{} {:?}: {field}: {message}", .kind.to_lowercase(), .name)]
    Malformed {
        /// The object's kind.
        kind: String,
        /// The object's name, if it could be read.
        name: String,
        /// Path of the offending field.
        field: String,
        /// The decoder's complaint.
        message: String,
    },
    /// A kind rudder does not serve.
    #[error(
        "unknown kind {0:?}: rudder serves Namespace, Node, Lease, Pod, Deployment, ReplicaSet, Service and Endpoints"
    )]
    UnknownKind(String),
    /// A selector that does not parse.
    #[error("{0}")]
    InvalidSelector(String),
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
