//! Node client certificates: the `Certificates` gRPC service.
//!
//! Kubernetes' kubelet TLS bootstrap, in one call: a node holding a
//! bootstrap token (group `system:bootstrappers`) sends a PKCS#10 request
//! for `system:node:<name>` and gets the certificate back at once (what
//! kube-controller-manager's csrapproving controller does for
//! `kubernetes.io/kube-apiserver-client-kubelet` requests); a node renews
//! with its current certificate, for its own name only; `system:masters`
//! may sign for any node. The certificate says `CN=system:node:<name>`,
//! `O=system:nodes` whatever the request's subject says.

use std::{sync::Arc, time::Duration};

use rudder_api::proto::{self, certificates_server::Certificates};
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::{MASTERS_GROUP, UserInfo, bootstrap::BOOTSTRAPPERS_GROUP};
use crate::pki::{ClientProfile, ClusterPki};

/// The group of every node's certificate.
pub const NODES_GROUP: &str = "system:nodes";
/// The prefix of a node's user name.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// How long a node certificate is valid unless configured otherwise.
pub const DEFAULT_NODE_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// The node a user is, if it is one: `system:node:<name>` in
/// `system:nodes`.
pub fn node_of(user: &UserInfo) -> Option<&str> {
    user.name
        .strip_prefix(NODE_USER_PREFIX)
        .filter(|name| !name.is_empty() && user.in_group(NODES_GROUP))
}

/// Signs node certificates with the cluster CA.
#[derive(Debug, Clone)]
pub struct NodeCertificates {
    pki: Arc<ClusterPki>,
    validity: Duration,
}

impl NodeCertificates {
    /// Signs with `pki`, certificates valid for `validity`.
    pub fn new(pki: Arc<ClusterPki>, validity: Duration) -> Self {
        Self { pki, validity }
    }

    /// Whether `user` may have a certificate for `node`.
    ///
    /// # Errors
    /// `PermissionDenied` saying why not.
    fn may_sign(user: &UserInfo, node: &str) -> Result<(), Status> {
        if user.in_group(MASTERS_GROUP) || user.in_group(BOOTSTRAPPERS_GROUP) {
            return Ok(());
        }
        match node_of(user) {
            Some(own) if own == node => Ok(()),
            Some(own) => Err(Status::permission_denied(format!(
                "node {own:?} may renew only its own certificate, not {node:?}'s"
            ))),
            None => Err(Status::permission_denied(format!(
                "user {:?} may not request node certificates: use a bootstrap token (`rudder-agent join`)",
                user.name
            ))),
        }
    }

    /// Signs `csr_pem` for `node` on behalf of `user`.
    ///
    /// # Errors
    /// `PermissionDenied`, or `InvalidArgument` for a bad name or request.
    pub fn sign(&self, user: &UserInfo, node: &str, csr_pem: &str) -> Result<String, Status> {
        let mut errors = rudder_api::validation::FieldErrors::default();
        errors.dns_subdomain("nodeName", node);
        if let Some(err) = errors.into_vec().into_iter().next() {
            return Err(Status::invalid_argument(err.message));
        }
        Self::may_sign(user, node)?;
        let now = OffsetDateTime::now_utc();
        let profile = ClientProfile {
            user: format!("{NODE_USER_PREFIX}{node}"),
            groups: vec![NODES_GROUP.to_owned()],
            // A little clock skew is forgiven; not more, or a short-lived
            // certificate would look half used up when issued.
            not_before: now - time::Duration::seconds(30),
            not_after: now + self.validity,
        };
        let cert = self
            .pki
            .sign_csr(csr_pem, &profile)
            .map_err(|err| Status::invalid_argument(error_chain(&err)))?;
        tracing::info!(node, requester = %user.name, valid_for = ?self.validity, "signed a node certificate");
        Ok(cert)
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tonic::async_trait]
impl Certificates for NodeCertificates {
    async fn sign_node_certificate(
        &self,
        request: Request<proto::NodeCertificateRequest>,
    ) -> Result<Response<proto::NodeCertificateResponse>, Status> {
        let user = request
            .extensions()
            .get::<UserInfo>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no authenticated user"))?;
        let request = request.into_inner();
        let certificate_pem = self.sign(&user, &request.node_name, &request.csr_pem)?;
        Ok(Response::new(proto::NodeCertificateResponse {
            certificate_pem,
            ca_pem: self.pki.ca_pem().to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, group: &str) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: vec![group.into()],
        }
    }

    fn csr() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("pem")
    }

    #[test]
    fn bootstrappers_get_node_certificates_and_nodes_renew_only_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Arc::new(ClusterPki::load_or_create(dir.path()).expect("ca"));
        let certs = NodeCertificates::new(pki, Duration::from_secs(3600));
        let pem = certs
            .sign(
                &user("system:bootstrap:abcdef", BOOTSTRAPPERS_GROUP),
                "node1",
                &csr(),
            )
            .expect("signed");
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
        let der = rustls::pki_types::CertificateDer::from(pem.contents);
        let named = super::super::user_of_certificate(&der).expect("user");
        assert_eq!(named.name, "system:node:node1");
        assert_eq!(named.groups, [NODES_GROUP]);
        assert_eq!(node_of(&named), Some("node1"));

        let node1 = user("system:node:node1", NODES_GROUP);
        certs.sign(&node1, "node1", &csr()).expect("renewed");
        let other = certs.sign(&node1, "node2", &csr()).expect_err("refused");
        assert_eq!(other.code(), tonic::Code::PermissionDenied);
        let stranger = certs
            .sign(&user("jane", "dev"), "node1", &csr())
            .expect_err("refused");
        assert_eq!(stranger.code(), tonic::Code::PermissionDenied);
        let bad = certs
            .sign(
                &node1,
                "node1",
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            )
            .expect_err("refused");
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        let bad_name = certs.sign(&node1, "../x", &csr()).expect_err("refused");
        assert_eq!(bad_name.code(), tonic::Code::InvalidArgument);
    }
}
