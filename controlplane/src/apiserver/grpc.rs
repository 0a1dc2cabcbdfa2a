//! The gRPC front end of the API server (`rudder.api.v1`).

use std::pin::Pin;

use futures::Stream;
use rudder_api::{
    Kind,
    meta::PropagationPolicy,
    proto::{
        self, NodeSyncMessage, NodeSyncRequest, node_sync_server::NodeSync,
        resources_server::Resources,
    },
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{ApiServer, DeleteOptions, Filter, error::status_of, storage::effective_namespace};
use crate::{auth::UserInfo, authz::Attributes};

/// The caller the authentication interceptor left in the request.
fn caller<T>(request: &Request<T>) -> Option<UserInfo> {
    request.extensions().get::<UserInfo>().cloned()
}

/// The namespace and name an object sent for a create or update names.
fn identity_of(kind: Kind, object: &Value) -> (String, String) {
    let meta = rudder_api::object::metadata_of(object);
    (effective_namespace(kind, &meta.namespace), meta.name)
}

fn kind_of(name: &str) -> Result<Kind, Status> {
    Kind::parse(name)
        .ok_or_else(|| status_of(rudder_api::ApiError::UnknownKind(name.to_owned()).into()))
}

fn parse_object(kind: Kind, json: &[u8]) -> Result<Value, Status> {
    serde_json::from_slice(json).map_err(|err| {
        Status::invalid_argument(format!(
            "{}: the object is not JSON: {err}",
            kind.name().to_lowercase()
        ))
    })
}

fn object_response(object: &Value) -> Response<proto::ObjectResponse> {
    Response::new(proto::ObjectResponse {
        object_json: serde_json::to_vec(object).unwrap_or_default(),
    })
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Resources for ApiServer {
    type WatchStream = BoxStream<proto::WatchEvent>;

    async fn create(
        &self,
        request: Request<proto::ObjectRequest>,
    ) -> Result<Response<proto::ObjectResponse>, Status> {
        let user = caller(&request);
        let request = request.into_inner();
        let kind = kind_of(&request.kind)?;
        let object = parse_object(kind, &request.object_json)?;
        let (namespace, _) = identity_of(kind, &object);
        let attributes = Attributes::resource("create", kind, "", &namespace, "");
        self.authorize_and_admit(user.as_ref(), &attributes, Some(&object))
            .await
            .map_err(status_of)?;
        self.check_escalation(user.as_ref(), kind, &object)
            .map_err(status_of)?;
        let created = ApiServer::create(self, kind, object)
            .await
            .map_err(status_of)?;
        Ok(object_response(&created))
    }

    async fn get(
        &self,
        request: Request<proto::GetRequest>,
    ) -> Result<Response<proto::ObjectResponse>, Status> {
        let user = caller(&request);
        let request = request.into_inner();
        let kind = kind_of(&request.kind)?;
        let namespace = effective_namespace(kind, &request.namespace);
        let attributes = Attributes::resource("get", kind, "", &namespace, &request.name);
        self.authorize_and_admit(user.as_ref(), &attributes, None)
            .await
            .map_err(status_of)?;
        let object = ApiServer::get(self, kind, &request.namespace, &request.name)
            .await
            .map_err(status_of)?;
        Ok(object_response(&object))
    }

    async fn list(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        let user = caller(&request);
        let request = request.into_inner();
        let kind = kind_of(&request.kind)?;
        let attributes = Attributes::resource("list", kind, "", &request.namespace, "");
        self.authorize_and_admit(user.as_ref(), &attributes, None)
            .await
            .map_err(status_of)?;
        let filter = Filter::parse(
            &request.namespace,
            &request.label_selector,
            &request.field_selector,
        )
        .map_err(status_of)?;
        let (items, revision) = ApiServer::list(self, kind, &filter)
            .await
            .map_err(status_of)?;
        Ok(Response::new(proto::ListResponse {
            resource_version: revision.to_string(),
            items_json: items
                .iter()
                .map(|item| serde_json::to_vec(item).unwrap_or_default())
                .collect(),
        }))
    }

    async fn update(
        &self,
        request: Request<proto::ObjectRequest>,
    ) -> Result<Response<proto::ObjectResponse>, Status> {
        let user = caller(&request);
        let request = request.into_inner();
        let kind = kind_of(&request.kind)?;
        let object = parse_object(kind, &request.object_json)?;
        let (namespace, name) = identity_of(kind, &object);
        let attributes = Attributes::resource("update", kind, "", &namespace, &name);
        self.authorize_and_admit(user.as_ref(), &attributes, Some(&object))
            .await
            .map_err(status_of)?;
        self.check_escalation(user.as_ref(), kind, &object)
            .map_err(status_of)?;
        let updated = ApiServer::update(self, kind, object, false)
            .await
            .map_err(status_of)?;
        Ok(object_response(&updated))
    }

    async fn update_status(
        &self,
        request: Request<proto::ObjectRequest>,
    ) -> Result<Response<proto::ObjectResponse>, Status> {
        let user = caller(&request);
        let request = request.into_inner();
        let kind = kind_of(&request.kind)?;
        let object = parse_object(kind, &request.object_json)?;
        let (namespace, name) = identity_of(kind, &object);
        let attributes = Attributes::resource("update", kind, "status", &namespace, &name);
        self.authorize_and_admit(user.as_ref(), &attributes, Some(&object))
            .await
            .map_err(status_of)?;
        let updated = ApiServer::update(self, kind, object, true)
            .await
            .map_err(status_of)?;
        Ok(object_response(&updated))
    }

    async fn delete(
        &self,
        request: Request<proto::DeleteRequest>,
    ) -> Result<Response<proto::ObjectResponse>, Status> {
        let user = caller(&request);
        let request = request.into_inner();
        let kind = kind_of(&request.kind)?;
        let propagation_policy = match request.propagation_policy.as_str() {
            "" => None,
            name => Some(PropagationPolicy::parse(name).map_err(Status::invalid_argument)?),
        };
        let namespace = effective_namespace(kind, &request.namespace);
        let attributes = Attributes::resource("delete", kind, "", &namespace, &request.name);
        self.authorize_and_admit(user.as_ref(), &attributes, None)
            .await
            .map_err(status_of)?;
        let deleted = ApiServer::delete(
            self,
            kind,
            &request.namespace,
            &request.name,
            &DeleteOptions {
                grace_period_seconds: request.grace_period_seconds,
                resource_version: request.resource_version.clone(),
                uid: request.uid.clone(),
                propagation_policy,
            },
        )
        .await
        .map_err(status_of)?;
        Ok(object_response(&deleted))
    }

    async fn watch(
        &self,
        request: Request<proto::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let user = caller(&request);
        let request = request.into_inner();
        let kind = kind_of(&request.kind)?;
        let attributes = Attributes::resource("watch", kind, "", &request.namespace, "");
        self.authorize_and_admit(user.as_ref(), &attributes, None)
            .await
            .map_err(status_of)?;
        let filter = Filter::parse(
            &request.namespace,
            &request.label_selector,
            &request.field_selector,
        )
        .map_err(status_of)?;
        let events = ApiServer::watch(self, kind, filter, &request.resource_version)
            .await
            .map_err(status_of)?;
        let stream = tokio_stream::StreamExt::map(ReceiverStream::new(events), |event| {
            let event = event.map_err(status_of)?;
            Ok(proto::WatchEvent {
                r#type: event.type_.as_str().to_owned(),
                object_json: serde_json::to_vec(&event.object).unwrap_or_default(),
                resource_version: event.revision.to_string(),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[tonic::async_trait]
impl NodeSync for ApiServer {
    type SyncStream = BoxStream<NodeSyncMessage>;

    async fn sync(
        &self,
        request: Request<NodeSyncRequest>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        let user = caller(&request);
        let request = request.into_inner();
        if request.node_name.is_empty() {
            return Err(Status::invalid_argument("node sync: node_name is required"));
        }
        super::nodesync::authorize(self, user.as_ref(), &request.node_name).map_err(status_of)?;
        tracing::info!(node = %request.node_name, resume = request.resume_revision, "node sync stream opened");
        let (out, receiver) = mpsc::channel(256);
        tokio::spawn(super::nodesync::run(
            self.clone(),
            request.node_name,
            request.resume_revision,
            out,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
