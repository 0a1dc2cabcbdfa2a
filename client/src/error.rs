//! What a call to the API server can fail with, keeping the cause.

use rudder_api::{ApiError, Kind};
use tonic::{Code, Status};

/// What a call to the API server can fail with. Server-side refusals
/// carry the server's message (it names the object and field); client-side
/// failures keep their cause.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not a URL a channel can be made from.
    #[error("{addr:?} is not an API server address (http://host:port or host:port)")]
    InvalidAddress {
        /// Address given.
        addr: String,
        /// Why it does not parse.
        #[source]
        source: tonic::codegen::http::uri::InvalidUri,
    },
    /// The server could not be reached.
    #[error("cannot reach the API server at {addr} (is rudder-controlplane running there?)")]
    Connect {
        /// Address tried.
        addr: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The credentials cannot be used as given (no CA for https, a token
    /// a header cannot carry, ...).
    #[error("{0}")]
    Credentials(String),
    /// The server does not know who the caller is (no or bad credentials).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An object of that name exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The object changed since it was read (stale resourceVersion).
    #[error("{0}")]
    Conflict(String),
    /// The object or request is invalid; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The resourceVersion asked for is compacted: re-list (HTTP 410).
    #[error("{0}")]
    Gone(String),
    /// The server or its store is unavailable right now.
    #[error("{0}")]
    Unavailable(String),
    /// The server answered something this client cannot decode.
    #[error("decoding the server's answer")]
    Decode(#[source] DecodeError),
    /// Any other failure the server or the transport reported.
    #[error("{}", .0.message())]
    Other(Box<Status>),
}

/// Why an answer of the server could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not the JSON expected.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// JSON, but not an object of the kind expected.
    #[error(transparent)]
    Object(#[from] ApiError),
    /// A node-sync change of a kind this client does not know.
    #[error("unknown kind {0:?}")]
    UnknownKind(String),
    /// A node-sync change of a kind node sync never sends.
    #[error("node sync sent a {0}, which it never should")]
    UnexpectedKind(Kind),
    /// A node-sync message with nothing in it.
    #[error("empty node sync message")]
    EmptyMessage,
}

impl From<Status> for ClientError {
    fn from(status: Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::Unauthenticated => Self::Unauthenticated(message),
            Code::PermissionDenied => Self::Forbidden(message),
            Code::NotFound => Self::NotFound(message),
            Code::AlreadyExists => Self::AlreadyExists(message),
            Code::Aborted => Self::Conflict(message),
            Code::InvalidArgument => Self::Invalid(message),
            Code::OutOfRange => Self::Gone(message),
            Code::Unavailable | Code::FailedPrecondition => Self::Unavailable(message),
            _ => Self::Other(Box::new(status)),
        }
    }
}

impl From<ApiError> for ClientError {
    fn from(err: ApiError) -> Self {
        Self::Decode(DecodeError::Object(err))
    }
}
