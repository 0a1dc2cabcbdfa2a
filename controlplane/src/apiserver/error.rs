//! Errors of API operations and how each reaches a client: one gRPC code
//! and one HTTP status (with Kubernetes' `reason`) per error, so both front
//! ends and the node-sync stream report a failure the same way.

use axum::http::StatusCode;
use rudder_api::{ApiError, Kind};
use rudder_kvstore::{StoreError, WatchError};
use tonic::Status;

/// Errors of API operations, each mapping to one HTTP status / gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409, on create.
    #[error("{0}")]
    AlreadyExists(String),
    /// 409, a stale resourceVersion.
    #[error("{0}")]
    Conflict(String),
    /// 422 / 400: the object or request is invalid.
    #[error(transparent)]
    Invalid(#[from] ApiError),
    /// 400: a request that makes no sense.
    #[error("{0}")]
    BadRequest(String),
    /// 415: a body in a format this server does not take.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 403: the caller may not do this (the message says who, what and
    /// where, as Kubernetes words it).
    #[error("{0}")]
    Forbidden(String),
    /// 410: the resourceVersion has been compacted.
    #[error("{0}")]
    Gone(String),
    /// 503 / 500: the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Maps an API error onto the gRPC code clients act on.
pub fn status_of(err: ApiServerError) -> Status {
    let message = err.to_string();
    match err {
        ApiServerError::NotFound(_) => Status::not_found(message),
        ApiServerError::AlreadyExists(_) => Status::already_exists(message),
        ApiServerError::Conflict(_) => Status::aborted(message),
        ApiServerError::Invalid(_)
        | ApiServerError::BadRequest(_)
        | ApiServerError::UnsupportedMediaType(_) => Status::invalid_argument(message),
        ApiServerError::Forbidden(_) => Status::permission_denied(message),
        ApiServerError::Gone(_) => Status::out_of_range(message),
        ApiServerError::Store(StoreError::NotLeader { .. } | StoreError::Unavailable(_)) => {
            Status::unavailable(message)
        }
        ApiServerError::Store(_) => Status::internal(message),
    }
}

/// Maps an API error onto the HTTP status and Kubernetes `Status.reason`.
pub(crate) fn code_and_reason(err: &ApiServerError) -> (StatusCode, &'static str) {
    match err {
        ApiServerError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
        ApiServerError::AlreadyExists(_) => (StatusCode::CONFLICT, "AlreadyExists"),
        ApiServerError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
        ApiServerError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"),
        ApiServerError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
        ApiServerError::UnsupportedMediaType(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType")
        }
        ApiServerError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
        ApiServerError::Gone(_) => (StatusCode::GONE, "Expired"),
        ApiServerError::Store(StoreError::NotLeader { .. } | StoreError::Unavailable(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
        }
        ApiServerError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
    }
}

/// Maps a store watch failure onto the API error a watcher sees.
pub(crate) fn watch_error(err: &WatchError) -> ApiServerError {
    match err {
        WatchError::Compacted { .. } | WatchError::Lagged { .. } => {
            ApiServerError::Gone(format!("too old resource version: {err}"))
        }
        WatchError::FutureRevision { .. } => ApiServerError::BadRequest(err.to_string()),
        WatchError::Closed(_) => ApiServerError::Store(StoreError::Unavailable(err.to_string())),
    }
}

pub(super) fn in_namespace(kind: Kind, namespace: &str) -> String {
    if kind.namespaced() {
        format!(" in namespace {namespace:?}")
    } else {
        String::new()
    }
}

pub(super) fn not_found(kind: Kind, namespace: &str, name: &str) -> ApiServerError {
    ApiServerError::NotFound(format!(
        "{} {name:?} not found{}",
        kind.plural(),
        in_namespace(kind, namespace)
    ))
}

pub(super) fn conflict(kind: Kind, name: &str) -> ApiServerError {
    ApiServerError::Conflict(format!(
        "operation cannot be fulfilled on {} {name:?}: the object has been modified; read it again and apply your changes to the latest version",
        kind.plural()
    ))
}
