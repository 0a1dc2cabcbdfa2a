//! The HTTP/JSON front end, with Kubernetes paths, for curl users:
//!
//! ```text
//! GET    /api/v1/namespaces/{ns}/pods[?labelSelector=..&fieldSelector=..&watch=true&resourceVersion=N]
//! POST   /api/v1/namespaces/{ns}/pods
//! GET    /api/v1/namespaces/{ns}/pods/{name}
//! PUT    /api/v1/namespaces/{ns}/pods/{name}          (and .../status)
//! GET|PUT|PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale
//! PATCH  /api/v1/namespaces/{ns}/pods/{name}          (merge, JSON, strategic merge)
//! DELETE /api/v1/namespaces/{ns}/pods/{name}
//! GET    /api/v1/pods                                 (every namespace)
//! GET    /api/v1/nodes/{name}, /api/v1/namespaces/{name}
//! GET    /apis/apps/v1/namespaces/{ns}/deployments/{name}
//! GET    /apis/coordination.k8s.io/v1/namespaces/{ns}/leases
//! ```
//!
//! Errors are Kubernetes `Status` objects; `?watch=true` streams one JSON
//! event per line (`{"type":"ADDED","object":{...}}`).

use std::collections::HashMap;

use axum::{
    Extension, Router,
    body::{Body, Bytes},
    extract::{Query, State},
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::get,
};
use rudder_api::{Kind, meta::PropagationPolicy};
use serde_json::{Value, json};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};

use super::{
    ApiServer, ApiServerError, DeleteOptions, Filter, Write, discovery,
    error::code_and_reason,
    field_validation::FieldValidation,
    openapi,
    patch::{self, PatchType},
    protobuf, scale, table,
};
use crate::{
    auth::UserInfo,
    authz::{self, Attributes, attributes::verb_of},
};

/// The HTTP routes.
pub fn router(api: ApiServer) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .fallback(handle)
        .with_state(api)
}

/// A request resolved to a kind and an object or collection.
#[derive(Debug)]
struct Target {
    kind: Kind,
    namespace: String,
    name: Option<String>,
    subresource: Subresource,
}

/// The part of an object a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subresource {
    /// The object itself.
    None,
    /// `/status`.
    Status,
    /// `/scale` (Deployments, ReplicaSets).
    Scale,
}

impl Subresource {
    /// The name RBAC rules use for it ("" for the object itself).
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Status => "status",
            Self::Scale => "scale",
        }
    }

    fn parse(kind: Kind, name: &str) -> Option<Self> {
        match name {
            "status" if kind.has_status() => Some(Self::Status),
            "scale" if scale::has_scale(kind) => Some(Self::Scale),
            _ => None,
        }
    }
}

fn resolve(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segments.as_slice() {
        ["api", "v1", rest @ ..] => (rest, ""),
        ["apis", group, "v1", rest @ ..] => (rest, *group),
        _ => return None,
    };
    let (rest, group) = rest;
    let kind_in_group = |plural: &str| {
        Kind::ALL
            .into_iter()
            .find(|k| k.plural() == plural && k.group() == group)
    };
    let target = |kind: Kind, namespace: &str, name: Option<&str>, subresource| Target {
        kind,
        namespace: namespace.to_owned(),
        name: name.map(str::to_owned),
        subresource,
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..]
            if kind_in_group(plural).is_some_and(Kind::namespaced) =>
        {
            let kind = kind_in_group(plural)?;
            match tail {
                [] => Some(target(kind, ns, None, Subresource::None)),
                [name] => Some(target(kind, ns, Some(name), Subresource::None)),
                [name, sub] => Some(target(kind, ns, Some(name), Subresource::parse(kind, sub)?)),
                _ => None,
            }
        }
        [plural, tail @ ..] => {
            let kind = kind_in_group(plural)?;
            match tail {
                [] => Some(target(kind, "", None, Subresource::None)),
                [name] if !kind.namespaced() => {
                    Some(target(kind, "", Some(name), Subresource::None))
                }
                [name, sub] if !kind.namespaced() => {
                    Some(target(kind, "", Some(name), Subresource::parse(kind, sub)?))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// The path of SelfSubjectAccessReviews (`kubectl auth can-i`).
const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

async fn handle(
    State(api): State<ApiServer>,
    user: Option<Extension<UserInfo>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let user = user.map(|Extension(user)| user);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if method == Method::GET
        && let Some(document) = discovery::document(uri.path())
    {
        let attributes = Attributes::non_resource("get", uri.path());
        if let Err(err) = api.authorize(user.as_ref(), &attributes) {
            return error_response(&err);
        }
        return json_response(StatusCode::OK, &document);
    }
    if uri.path().trim_end_matches('/') == ACCESS_REVIEWS {
        return match review(&api, user.as_ref(), &method, content_type, &body).await {
            Ok(answer) => json_response(StatusCode::CREATED, &answer),
            Err(err) => error_response(&err),
        };
    }
    if method == Method::GET
        && let Some(served) = openapi::document(
            uri.path(),
            uri.query().unwrap_or_default(),
            headers
                .get(header::ACCEPT)
                .and_then(|accept| accept.to_str().ok())
                .unwrap_or_default(),
        )
    {
        let attributes = Attributes::non_resource("get", uri.path());
        if let Err(err) = api.authorize(user.as_ref(), &attributes) {
            return error_response(&err);
        }
        let cache = if served.immutable {
            "public, immutable"
        } else {
            "no-cache, private"
        };
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, served.media),
                (header::CACHE_CONTROL, cache),
            ],
            served.body,
        )
            .into_response();
    }
    let as_table = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(table::wanted);
    let Some(target) = resolve(uri.path()) else {
        return status_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "the server could not find the requested resource {}",
                uri.path()
            ),
        );
    };
    let request = Request {
        user: user.as_ref(),
        method,
        target,
        query,
        content_type,
        body,
        as_table,
    };
    match serve(api, request).await {
        Ok(response) => response,
        Err(err) => error_response(&err),
    }
}

/// Answers a SelfSubjectAccessReview (JSON or protobuf) for the caller.
async fn review(
    api: &ApiServer,
    user: Option<&UserInfo>,
    method: &Method,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiServerError> {
    if method != Method::POST {
        return Err(ApiServerError::BadRequest(format!(
            "method {method} is not supported on selfsubjectaccessreviews: POST one"
        )));
    }
    let attributes = Attributes {
        verb: "create",
        target: authz::Target::Resource(authz::ResourceAttributes {
            group: authz::review::GROUP,
            resource: authz::review::RESOURCE,
            ..authz::ResourceAttributes::default()
        }),
    };
    api.authorize(user, &attributes)?;
    let review = if protobuf::is_protobuf(content_type) {
        protobuf::decode(protobuf::Message::SelfSubjectAccessReview, body)?
    } else {
        serde_json::from_slice(body).map_err(|err| {
            ApiServerError::BadRequest(format!(
                "selfsubjectaccessreview: the request body is not JSON: {err}"
            ))
        })?
    };
    let Some(user) = user else {
        return Err(ApiServerError::Forbidden(
            "the request carries no authenticated user".to_owned(),
        ));
    };
    authz::review::answer(api.authorizer(), user, review)
}

/// One REST request, resolved.
struct Request<'a> {
    user: Option<&'a UserInfo>,
    method: Method,
    target: Target,
    query: HashMap<String, String>,
    content_type: &'a str,
    body: Bytes,
    as_table: bool,
}

/// How often a PATCH is retried when the object changed between reading
/// and writing it (a patch without a resourceVersion applies to whatever
/// is current, as kube-apiserver's do).
const PATCH_ATTEMPTS: usize = 5;

async fn serve(api: ApiServer, request: Request<'_>) -> Result<Response, ApiServerError> {
    let Request {
        user,
        method,
        target,
        query,
        content_type,
        body,
        as_table,
    } = request;
    let param = |name: &str| query.get(name).map_or("", String::as_str);
    let Target {
        kind,
        namespace,
        name,
        subresource,
    } = target;
    let verb = verb_of(
        &method,
        name.is_some(),
        matches!(param("watch"), "true" | "1"),
    );
    let creating = method == Method::POST && name.is_none();
    // A create into a namespaced kind without a namespace in the path goes
    // to the body's namespace: authorised there once the body is read.
    if !(creating && kind.namespaced() && namespace.is_empty()) {
        let attributes = Attributes::resource(
            verb,
            kind,
            subresource.as_str(),
            &namespace,
            name.as_deref().unwrap_or_default(),
        );
        api.authorize(user, &attributes)?;
    }
    // The object a create or update sends, read before admission
    // (NodeRestriction looks at it).
    let sent = match (&method, &name) {
        (&Method::POST, None) => {
            let mut object = parse_body(kind, content_type, &body)?;
            if kind.namespaced() && !namespace.is_empty() {
                object["metadata"]["namespace"] = json!(namespace);
            }
            Some(object)
        }
        (&Method::PUT, Some(name)) if subresource != Subresource::Scale => {
            let mut object = parse_body(kind, content_type, &body)?;
            let body_name = rudder_api::object::name_of(&object);
            if !body_name.is_empty() && body_name != *name {
                return Err(ApiServerError::BadRequest(format!(
                    "{}: the name in the body ({body_name:?}) does not match the URL ({name:?})",
                    kind.name().to_lowercase()
                )));
            }
            object["metadata"]["name"] = json!(name);
            if kind.namespaced() {
                object["metadata"]["namespace"] = json!(namespace);
            }
            Some(object)
        }
        _ => None,
    };
    let target_namespace = match &sent {
        Some(object) if creating && kind.namespaced() && namespace.is_empty() => {
            let body_namespace = rudder_api::object::metadata_of(object).namespace;
            let effective = super::storage::effective_namespace(kind, &body_namespace);
            api.authorize(user, &Attributes::resource(verb, kind, "", &effective, ""))?;
            effective
        }
        _ => namespace.clone(),
    };
    let attributes = Attributes::resource(
        verb,
        kind,
        subresource.as_str(),
        &target_namespace,
        name.as_deref().unwrap_or_default(),
    );
    api.admit(user, &attributes, sent.as_ref()).await?;
    if subresource == Subresource::Scale
        && let Some(name) = &name
    {
        let write = write_of(param("dryRun"))?;
        let request = ScaleRequest {
            method,
            kind,
            namespace: &namespace,
            name,
            content_type,
            body: &body,
            write,
        };
        return serve_scale(api, request).await;
    }
    let status = subresource == Subresource::Status;
    let write = write_of(param("dryRun"))?;
    let validation = FieldValidation::parse(param("fieldValidation"))?;
    match (method, name) {
        (Method::GET, None) => {
            let filter = Filter::parse(&namespace, param("labelSelector"), param("fieldSelector"))?;
            if matches!(param("watch"), "true" | "1") {
                return watch(api, kind, filter, param("resourceVersion")).await;
            }
            let (items, revision) = api.list(kind, &filter).await?;
            if as_table {
                let include = table::Include::parse(param("includeObject"))?;
                let answer = table::table(kind, &items, Some(revision.to_string()), include);
                return Ok(json_response(StatusCode::OK, &answer));
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "apiVersion": kind.api_version(),
                    "kind": format!("{}List", kind.name()),
                    "metadata": {"resourceVersion": revision.to_string()},
                    "items": items,
                }),
            ))
        }
        (Method::POST, None) => {
            let object = sent.unwrap_or_default();
            let warnings = validation.check(kind, &body, &object, None)?;
            api.check_escalation(user, kind, &object)?;
            let created = api.create_with(kind, object, write).await?;
            Ok(with_warnings(
                json_response(StatusCode::CREATED, &created),
                &warnings,
            ))
        }
        (Method::GET, Some(name)) => {
            let object = api.get(kind, &namespace, &name).await?;
            if as_table && !status {
                let include = table::Include::parse(param("includeObject"))?;
                let answer = table::table(kind, std::slice::from_ref(&object), None, include);
                return Ok(json_response(StatusCode::OK, &answer));
            }
            Ok(json_response(StatusCode::OK, &object))
        }
        (Method::PUT, Some(_)) => {
            let object = sent.unwrap_or_default();
            let warnings = validation.check(kind, &body, &object, None)?;
            api.check_escalation(user, kind, &object)?;
            let updated = api.update_with(kind, object, status, write).await?;
            Ok(with_warnings(
                json_response(StatusCode::OK, &updated),
                &warnings,
            ))
        }
        (Method::PATCH, Some(name)) => {
            let patch_type = PatchType::from_content_type(content_type)?;
            let (patched, warnings) = patch_retrying(&body, || async {
                let current = api.get(kind, &namespace, &name).await?;
                let patched = patch::apply(&current, patch_type, &body)?;
                api.check_escalation(user, kind, &patched)?;
                // Only what this patch brings in: fields an earlier request
                // stored with validation off are not this request's.
                let warnings = validation.check(kind, &body, &patched, Some(&current))?;
                let written = api.update_with(kind, patched, status, write).await?;
                Ok((written, warnings))
            })
            .await?;
            Ok(with_warnings(
                json_response(StatusCode::OK, &patched),
                &warnings,
            ))
        }
        (Method::DELETE, Some(name)) => {
            let options = delete_options(&query, &body)?;
            // A dry run asked for in the query or in the body.
            let write = match delete_body_write(&body)? {
                Write::DryRun => Write::DryRun,
                Write::Persist => write,
            };
            let deleted = match write {
                Write::Persist => api.delete(kind, &namespace, &name, &options).await?,
                // What would be deleted; nothing is.
                Write::DryRun => api.get(kind, &namespace, &name).await?,
            };
            Ok(json_response(StatusCode::OK, &deleted))
        }
        (method, _) => Err(ApiServerError::BadRequest(format!(
            "method {method} is not supported on this path"
        ))),
    }
}

/// Runs `attempt` (read, patch, write) again while it conflicts with
/// another writer, unless the patch named the version it applies to.
async fn patch_retrying<T, F, Fut>(body: &[u8], attempt: F) -> Result<T, ApiServerError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiServerError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(ApiServerError::Conflict(_))
                if tries < PATCH_ATTEMPTS && !patch_names_version(body) =>
            {
                tries += 1;
            }
            result => return result,
        }
    }
}

/// `GET`, `PUT` and `PATCH` of `/scale`: the object seen and changed
/// through its autoscaling/v1 `Scale`.
async fn serve_scale(
    api: ApiServer,
    request: ScaleRequest<'_>,
) -> Result<Response, ApiServerError> {
    let ScaleRequest {
        method,
        kind,
        namespace,
        name,
        content_type,
        body,
        write,
    } = request;
    let scaled = match method {
        Method::GET => api.get(kind, namespace, name).await?,
        Method::PUT => {
            let wanted: Value = serde_json::from_slice(body).map_err(|err| {
                ApiServerError::BadRequest(format!("the Scale body is not JSON: {err}"))
            })?;
            let current = api.get(kind, namespace, name).await?;
            api.update_with(
                kind,
                scale::with_scale(kind, current, &wanted)?,
                false,
                write,
            )
            .await?
        }
        Method::PATCH => {
            let patch_type = PatchType::from_content_type(content_type)?;
            patch_retrying(body, || async {
                let current = api.get(kind, namespace, name).await?;
                let wanted = patch::apply(&scale::scale_of(&current), patch_type, body)?;
                api.update_with(
                    kind,
                    scale::with_scale(kind, current, &wanted)?,
                    false,
                    write,
                )
                .await
            })
            .await?
        }
        method => {
            return Err(ApiServerError::BadRequest(format!(
                "method {method} is not supported on {}/scale",
                kind.plural()
            )));
        }
    };
    Ok(json_response(StatusCode::OK, &scale::scale_of(&scaled)))
}

/// A request for `/scale`.
struct ScaleRequest<'a> {
    method: Method,
    kind: Kind,
    namespace: &'a str,
    name: &'a str,
    content_type: &'a str,
    body: &'a [u8],
    write: Write,
}

/// The `dryRun` of a DeleteOptions body (kubectl puts it there, not in
/// the query): `["All"]` or nothing.
fn delete_body_write(body: &[u8]) -> Result<Write, ApiServerError> {
    let Ok(options) = serde_json::from_slice::<Value>(body) else {
        // Not JSON: delete_options has said so already.
        return Ok(Write::Persist);
    };
    match options.get("dryRun") {
        None | Some(Value::Null) => Ok(Write::Persist),
        Some(Value::Array(directives)) if directives.is_empty() => Ok(Write::Persist),
        Some(Value::Array(directives)) if directives.iter().all(|d| d == "All") => {
            Ok(Write::DryRun)
        }
        Some(other) => Err(ApiServerError::BadRequest(format!(
            "DeleteOptions.dryRun {other} is not supported: the only dry run is [\"All\"]"
        ))),
    }
}

/// The `dryRun` query parameter: absent, or `All` as Kubernetes takes it.
fn write_of(dry_run: &str) -> Result<Write, ApiServerError> {
    match dry_run {
        "" => Ok(Write::Persist),
        "All" => Ok(Write::DryRun),
        other => Err(ApiServerError::BadRequest(format!(
            "dryRun {other:?} is not supported: the only dry run is dryRun=All"
        ))),
    }
}

/// Whether a patch carries `metadata.resourceVersion`: then it is a
/// precondition, and a conflict is the client's to resolve.
fn patch_names_version(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|patch| {
        patch.pointer("/metadata/resourceVersion").is_some()
            || patch.as_array().is_some_and(|operations| {
                operations.iter().any(|op| {
                    op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion")
                })
            })
    })
}

/// A DELETE's options, as kubectl sends them: `gracePeriodSeconds`,
/// `resourceVersion` and `propagationPolicy` in the query, or a
/// `DeleteOptions` body (`gracePeriodSeconds`, `propagationPolicy` or the
/// older `orphanDependents`, `preconditions.uid`/`resourceVersion`).
fn delete_options(
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Result<DeleteOptions, ApiServerError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|err| {
            ApiServerError::BadRequest(format!("DeleteOptions body is not JSON: {err}"))
        })?
    };
    let grace_period_seconds = match query.get("gracePeriodSeconds") {
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            ApiServerError::BadRequest(format!(
                "gracePeriodSeconds {text:?} is not a whole number of seconds"
            ))
        })?),
        None => match body.get("gracePeriodSeconds") {
            None | Some(Value::Null) => None,
            Some(value) => Some(value.as_i64().ok_or_else(|| {
                ApiServerError::BadRequest(format!(
                    "DeleteOptions.gracePeriodSeconds {value} is not a whole number of seconds"
                ))
            })?),
        },
    };
    let precondition = |field: &str| {
        body.pointer(&format!("/preconditions/{field}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let resource_version = match query.get("resourceVersion") {
        Some(version) => version.clone(),
        None => precondition("resourceVersion"),
    };
    let propagation_policy = match (
        query.get("propagationPolicy").map(String::as_str),
        body.get("propagationPolicy"),
    ) {
        (Some(name), _) => Some(name),
        (None, None | Some(Value::Null)) => None,
        (None, Some(Value::String(name))) => Some(name.as_str()),
        (None, Some(other)) => {
            return Err(ApiServerError::BadRequest(format!(
                "DeleteOptions.propagationPolicy {other} is not a string"
            )));
        }
    }
    .map(PropagationPolicy::parse)
    .transpose()
    .map_err(ApiServerError::BadRequest)?;
    let orphan_dependents = match query.get("orphanDependents").map(String::as_str) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiServerError::BadRequest(format!(
                "orphanDependents {other:?} is not true or false"
            )));
        }
        None => body.get("orphanDependents").and_then(Value::as_bool),
    };
    let propagation_policy = match (propagation_policy, orphan_dependents) {
        (Some(_), Some(_)) => {
            return Err(ApiServerError::BadRequest(
                "DeleteOptions: give propagationPolicy or orphanDependents, not both".to_owned(),
            ));
        }
        (Some(policy), None) => Some(policy),
        (None, Some(true)) => Some(PropagationPolicy::Orphan),
        (None, Some(false)) => Some(PropagationPolicy::Background),
        (None, None) => None,
    };
    Ok(DeleteOptions {
        grace_period_seconds,
        resource_version,
        uid: precondition("uid"),
        propagation_policy,
    })
}

async fn watch(
    api: ApiServer,
    kind: Kind,
    filter: Filter,
    resource_version: &str,
) -> Result<Response, ApiServerError> {
    let events = api.watch(kind, filter, resource_version).await?;
    let lines = ReceiverStream::new(events).map(|event| {
        let line = match event {
            Ok(event) => json!({"type": event.type_.as_str(), "object": event.object}),
            Err(err) => {
                let (code, reason) = code_and_reason(&err);
                json!({"type": "ERROR", "object": status_object(code, reason, &err.to_string())})
            }
        };
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(bytes))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(lines))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

fn parse_body(kind: Kind, content_type: &str, body: &[u8]) -> Result<Value, ApiServerError> {
    if protobuf::is_protobuf(content_type) {
        return protobuf::decode(protobuf::Message::Kind(kind), body);
    }
    serde_json::from_slice(body).map_err(|err| {
        ApiServerError::BadRequest(format!(
            "{}: the request body is not JSON: {err}",
            kind.name().to_lowercase()
        ))
    })
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(value).unwrap_or_default(),
    )
        .into_response()
}

/// A response with one `Warning: 299 - "..."` header per warning, as
/// kube-apiserver sends them (kubectl prints each as `Warning: ...`).
fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        // A header value is visible ASCII; field names are the user's.
        let printable: String = warning
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        let quoted = printable.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = header::HeaderValue::from_str(&format!("299 - \"{quoted}\"")) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

fn status_object(code: StatusCode, reason: &str, message: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    })
}

fn status_response(code: StatusCode, reason: &str, message: &str) -> Response {
    json_response(code, &status_object(code, reason, message))
}

fn error_response(err: &ApiServerError) -> Response {
    let (code, reason) = code_and_reason(err);
    status_response(code, reason, &err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_paths_resolve() {
        let t = resolve("/api/v1/namespaces/default/pods/web").expect("pod");
        assert_eq!(
            (
                t.kind,
                t.namespace.as_str(),
                t.name.as_deref(),
                t.subresource
            ),
            (Kind::Pod, "default", Some("web"), Subresource::None)
        );
        let t = resolve("/apis/apps/v1/namespaces/prod/deployments").expect("list");
        assert_eq!((t.kind, t.name), (Kind::Deployment, None));
        let t = resolve("/api/v1/namespaces/kube-system").expect("namespace");
        assert_eq!(
            (t.kind, t.name.as_deref()),
            (Kind::Namespace, Some("kube-system"))
        );
        let t = resolve("/api/v1/nodes/n1/status").expect("node status");
        assert_eq!(t.subresource, Subresource::Status);
        let t = resolve("/apis/apps/v1/namespaces/x/deployments/web/scale").expect("scale");
        assert_eq!(t.subresource, Subresource::Scale);
        assert!(resolve("/api/v1/namespaces/x/pods/web/scale").is_none());
        let t = resolve("/api/v1/services").expect("all services");
        assert_eq!((t.kind, t.namespace.as_str()), (Kind::Service, ""));
        assert!(
            resolve("/apis/apps/v1/namespaces/x/pods").is_none(),
            "pods are not in apps"
        );
        assert!(resolve("/api/v1/namespaces/x/cronjobs").is_none());
    }
}
