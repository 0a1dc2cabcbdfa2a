//! How a client proves who it is and whom it trusts: the cluster CA, a
//! client certificate and/or a bearer token, as a kubeconfig user holds
//! them ([`crate::kubeconfig`] reads one into a [`ClientConfig`]).

use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::Interceptor,
    transport::{Certificate, ClientTlsConfig, Identity},
};

/// A client certificate and its key, PEM encoded.
#[derive(Clone)]
pub struct ClientIdentity {
    /// The certificate (chain).
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

/// What to trust and what to present.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The CA the server's certificate must chain to; `None` for a
    /// plaintext (`--insecure-plaintext`) server.
    pub ca_pem: Option<String>,
    /// The name the server's certificate must carry, when it is not the
    /// host of the address (kubeconfig's `tls-server-name`).
    pub server_name: Option<String>,
    /// A client certificate to present.
    pub identity: Option<ClientIdentity>,
    /// A bearer token to send with every call.
    pub token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a key or a token.
        f.debug_struct("Credentials")
            .field("tls", &self.ca_pem.is_some())
            .field("server_name", &self.server_name)
            .field("client_certificate", &self.identity.is_some())
            .field("token", &self.token.is_some())
            .finish()
    }
}

impl Credentials {
    /// The channel's TLS settings, `None` for plaintext.
    pub(crate) fn tls(&self) -> Option<ClientTlsConfig> {
        let ca = self.ca_pem.as_ref()?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let Some(name) = &self.server_name {
            tls = tls.domain_name(name.clone());
        }
        if let Some(identity) = &self.identity {
            tls = tls.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
        }
        Some(tls)
    }
}

/// Where the API server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://host:port` (or `http://` for a plaintext server).
    pub server: String,
    /// Trust and identity.
    pub credentials: Credentials,
    /// A kubeconfig to read the credentials from again on every connect
    /// (its server is ignored: `server` stays): a node whose certificate
    /// is renewed into the file presents the new one on its next
    /// connection.
    pub reload_from: Option<std::path::PathBuf>,
}

impl ClientConfig {
    /// The credentials to connect with now: re-read from
    /// [`Self::reload_from`] when set (falling back to the ones held when
    /// the file cannot be read).
    pub fn current_credentials(&self) -> Credentials {
        let Some(path) = &self.reload_from else {
            return self.credentials.clone();
        };
        match crate::Kubeconfig::load(path).and_then(|k| k.client_config(path, None)) {
            Ok(config) => config.credentials,
            Err(err) => {
                tracing::warn!(error = %err, "re-reading the kubeconfig failed; using the credentials read before");
                self.credentials.clone()
            }
        }
    }

    /// A plaintext server at `addr` (`http://host:port` or `host:port`).
    pub fn insecure(addr: &str) -> Self {
        Self {
            server: addr.to_owned(),
            credentials: Credentials::default(),
            reload_from: None,
        }
    }
}

/// Adds `authorization: Bearer <token>` to every call (when there is a
/// token).
#[derive(Clone, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BearerToken")
            .field(&self.0.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl BearerToken {
    /// The header for `token`.
    ///
    /// # Errors
    /// When the token has characters a header cannot carry.
    pub fn new(token: Option<&str>) -> Result<Self, String> {
        token
            .map(|token| {
                let mut value: MetadataValue<Ascii> = format!("Bearer {token}")
                    .parse()
                    .map_err(|_| "the bearer token has characters a header cannot carry")?;
                value.set_sensitive(true);
                Ok(value)
            })
            .transpose()
            .map(Self)
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}
