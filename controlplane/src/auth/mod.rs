//! Who is calling: authentication of every API request.
//!
//! The TLS layer has already checked that a client certificate, if any,
//! chains to the cluster CA and is within its validity; here its subject
//! becomes the user (`CN`) and groups (`O`), as kube-apiserver reads it.
//! A request may instead carry `Authorization: Bearer <token>` with a
//! token from the static token file ([`tokens`]). Anything else is
//! anonymous and refused (401 / `Unauthenticated`), except the health
//! endpoints.
//!
//! - [`grpc`]: the interceptor in front of every gRPC service, with the
//!   per-service [`grpc::Audience`] (users, or only `system:masters`);
//! - [`http`]: the TLS listener of the HTTP API and its middleware.

pub mod bootstrap;
pub mod csr;
pub mod grpc;
pub mod http;
pub mod tokens;

use std::sync::Arc;

use rustls::pki_types::CertificateDer;

pub use bootstrap::BootstrapTokens;
pub use tokens::StaticTokens;

/// The group whose members may do anything (kube-apiserver's).
pub const MASTERS_GROUP: &str = "system:masters";
/// Every authenticated user is in this group.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (`CN`, or the token file's user).
    pub name: String,
    /// The token file's uid (empty for certificates).
    pub uid: String,
    /// The groups (`O`s, or the token file's groups).
    pub groups: Vec<String>,
}

impl UserInfo {
    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        group == AUTHENTICATED_GROUP || self.groups.iter().any(|g| g == group)
    }
}

/// Why a request was not authenticated. The messages are for the caller
/// and never echo a credential.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No certificate, no token.
    #[error("anonymous requests are not allowed: present a client certificate or a bearer token")]
    Anonymous,
    /// A token that is not in the token file.
    #[error("the bearer token is not valid")]
    BadToken,
    /// A bootstrap token past its expiry.
    #[error(
        "the bootstrap token expired at {0}: make a new one with `rudder-controlplane token create`"
    )]
    ExpiredToken(String),
    /// An `Authorization` header that is not `Bearer <token>`.
    #[error("the Authorization header must be \"Bearer <token>\"")]
    BadHeader,
    /// A certificate without a usable subject.
    #[error("the client certificate has no subject common name (CN), which names the user")]
    NoCommonName,
    /// A certificate that does not parse.
    #[error("the client certificate cannot be read")]
    BadCertificate,
}

/// Decides who a request comes from.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    tokens: Arc<StaticTokens>,
    bootstrap: Option<BootstrapTokens>,
}

impl Authenticator {
    /// Authenticates with client certificates and these tokens.
    pub fn new(tokens: StaticTokens) -> Self {
        Self {
            tokens: Arc::new(tokens),
            bootstrap: None,
        }
    }

    /// Also accepts these bootstrap tokens (read on each use).
    #[must_use]
    pub fn with_bootstrap_tokens(mut self, bootstrap: BootstrapTokens) -> Self {
        self.bootstrap = Some(bootstrap);
        self
    }

    /// Who sent a request with this verified peer chain (leaf first) and
    /// this `Authorization` header value.
    ///
    /// # Errors
    /// [`AuthError`]: anonymous, or a credential that is not valid. A
    /// header, when present, must be valid even if a certificate is too
    /// (a bad token is never silently ignored).
    pub fn authenticate(
        &self,
        peer_certs: Option<&[CertificateDer<'_>]>,
        authorization: Option<&[u8]>,
    ) -> Result<UserInfo, AuthError> {
        if let Some(header) = authorization {
            let header = std::str::from_utf8(header).map_err(|_| AuthError::BadHeader)?;
            let token = header
                .strip_prefix("Bearer ")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or(AuthError::BadHeader)?;
            if let Some(user) = self.tokens.user(token) {
                return Ok(user.clone());
            }
            if let Some(bootstrap) = &self.bootstrap
                && let Some(user) = bootstrap.authenticate(token)?
            {
                return Ok(user);
            }
            return Err(AuthError::BadToken);
        }
        match peer_certs.and_then(|chain| chain.first()) {
            Some(leaf) => user_of_certificate(leaf),
            None => Err(AuthError::Anonymous),
        }
    }
}

/// The user (`CN`) and groups (`O`) a verified certificate names.
///
/// # Errors
/// When it does not parse or has no common name.
pub fn user_of_certificate(der: &CertificateDer<'_>) -> Result<UserInfo, AuthError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| AuthError::BadCertificate)?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or(AuthError::NoCommonName)?
        .to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_owned)
        .collect();
    Ok(UserInfo {
        name,
        uid: String::new(),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{ClientProfile, ClusterPki};

    fn der_of(pem: &str) -> CertificateDer<'static> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
        CertificateDer::from(pem.contents)
    }

    #[test]
    fn a_certificate_names_the_user_and_groups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = ClusterPki::load_or_create(dir.path()).expect("ca");
        let cert = pki
            .issue_client(&ClientProfile::new("jane", &["system:masters"]))
            .expect("cert");
        let user = Authenticator::default()
            .authenticate(Some(&[der_of(&cert.cert_pem)]), None)
            .expect("authenticated");
        assert_eq!(user.name, "jane");
        assert!(user.in_group("system:masters"));
        assert!(!user.in_group("dev"));
        let two = pki.issue_client(&ClientProfile::new("jane", &["dev", "ops"]));
        assert!(two.is_err(), "a second O would have replaced the first");
        assert!(user.in_group(AUTHENTICATED_GROUP));
    }

    #[test]
    fn anonymous_and_wrong_tokens_are_refused() {
        let tokens = StaticTokens::parse("good,ci,1,\"ci\"").expect("tokens");
        let authn = Authenticator::new(tokens);
        assert_eq!(authn.authenticate(None, None), Err(AuthError::Anonymous));
        assert_eq!(
            authn.authenticate(None, Some(b"Bearer bad")),
            Err(AuthError::BadToken)
        );
        assert_eq!(
            authn.authenticate(None, Some(b"Basic Zm9v")),
            Err(AuthError::BadHeader)
        );
        assert_eq!(
            authn
                .authenticate(None, Some(b"Bearer good"))
                .expect("token user")
                .name,
            "ci"
        );
    }
}
