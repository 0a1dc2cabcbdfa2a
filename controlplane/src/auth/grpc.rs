//! Authentication in front of every gRPC service.
//!
//! Each service is wrapped in an [`Authenticate`] interceptor with the
//! [`Audience`] it serves: the resource API and node sync take any
//! authenticated caller (authorisation decides what each may do); the
//! raw etcd-compatible store API and the Raft transport only
//! `system:masters` and the replicas' own group, because they bypass
//! validation and authorisation altogether.

use tonic::{Request, Status, service::Interceptor};

use super::{AuthError, Authenticator, MASTERS_GROUP, UserInfo, bootstrap::BOOTSTRAPPERS_GROUP};

/// The group of the control-plane replicas' peer certificates.
pub const REPLICAS_GROUP: &str = "system:rudder-replicas";

/// Who a service is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Any authenticated user but a bootstrap token's (those may only
    /// ask for a node certificate).
    Users,
    /// Any authenticated user, bootstrap tokens included: the
    /// certificate service, which checks who may have what itself.
    Bootstrap,
    /// Only `system:masters` and the replicas.
    Masters,
}

/// The interceptor: authenticates, checks the audience, and leaves the
/// caller's [`UserInfo`] in the request's extensions.
#[derive(Debug, Clone)]
pub struct Authenticate {
    authenticator: Option<Authenticator>,
    audience: Audience,
}

impl Authenticate {
    /// Authenticates with `authenticator` for `audience`.
    pub fn new(authenticator: Authenticator, audience: Audience) -> Self {
        Self {
            authenticator: Some(authenticator),
            audience,
        }
    }

    /// Lets everything through as `system:masters`: only for a server
    /// started with `--insecure-plaintext`, which says so loudly.
    pub fn insecure(audience: Audience) -> Self {
        Self {
            authenticator: None,
            audience,
        }
    }
}

/// The identity an `--insecure-plaintext` server gives every caller.
pub fn insecure_user() -> UserInfo {
    UserInfo {
        name: "system:insecure".into(),
        uid: String::new(),
        groups: vec![MASTERS_GROUP.into()],
    }
}

impl Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let Some(authenticator) = &self.authenticator else {
            request.extensions_mut().insert(insecure_user());
            return Ok(request);
        };
        // Served by tonic's own transport the chain is in its connect
        // info; on the shared API port, in the connection's TlsPeer.
        let certs = request.peer_certs().or_else(|| {
            request
                .extensions()
                .get::<super::http::TlsPeer>()
                .and_then(|peer| peer.certs.clone())
        });
        let header = request
            .metadata()
            .get("authorization")
            .map(|value| value.as_bytes());
        let user = authenticator
            .authenticate(certs.as_deref().map(Vec::as_slice), header)
            .map_err(|err: AuthError| Status::unauthenticated(err.to_string()))?;
        if self.audience == Audience::Masters
            && !user.in_group(MASTERS_GROUP)
            && !user.in_group(REPLICAS_GROUP)
        {
            return Err(Status::permission_denied(format!(
                "user {:?} may not use the store's raw API: it is for {MASTERS_GROUP} and the control-plane replicas",
                user.name
            )));
        }
        if self.audience == Audience::Users && user.in_group(BOOTSTRAPPERS_GROUP) {
            return Err(Status::permission_denied(format!(
                "user {:?} holds a bootstrap token, which may only request a node certificate",
                user.name
            )));
        }
        request.extensions_mut().insert(user);
        Ok(request)
    }
}
