//! Joining a cluster: the client half of `rudder-agent join`.
//!
//! 1. [`discover_ca`]: connect to the server without trusting it, take the
//!    CA certificate it sends with its chain, and accept it only when the
//!    SHA-256 of its SubjectPublicKeyInfo is the pinned one (kubeadm's
//!    `--discovery-token-ca-cert-hash`); nothing is sent before that but a
//!    TLS ClientHello.
//! 2. [`request_node_certificate`]: over TLS verified against that CA,
//!    present a bootstrap token (or the node's current certificate, to
//!    renew) and a PKCS#10 request for a fresh key; the control plane
//!    returns `CN=system:node:<name>, O=system:nodes`.

use std::{sync::Arc, time::Duration};

use rudder_api::proto::{self, certificates_client::CertificatesClient};
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

use crate::{ClientConfig, ClientIdentity, Credentials, credentials::BearerToken};

/// How long discovery may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// Why joining failed. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// `--server` is not `https://host:port`.
    #[error("--server {0:?} is not an address like https://10.0.0.1:7400")]
    BadServer(String),
    /// The hash is not `sha256:<64 hex>`.
    #[error(
        "--ca-cert-hash {0:?} is not sha256:<64 hex digits> (the hash `rudder-controlplane init` printed)"
    )]
    BadHash(String),
    /// The server could not be reached or spoke no TLS.
    #[error("cannot reach the control plane at {server}: {reason}")]
    Unreachable {
        /// The server.
        server: String,
        /// Why.
        reason: String,
    },
    /// The server's CA is not the pinned one.
    #[error(
        "the control plane at {server} presents a CA with hash {found}, but --ca-cert-hash pins {pinned}: refusing to trust it (a different cluster, or someone in between)"
    )]
    HashMismatch {
        /// The server.
        server: String,
        /// What it sent (each certificate of its chain).
        found: String,
        /// What was pinned.
        pinned: String,
    },
    /// The control plane refused the request.
    #[error("the control plane refused the node certificate request: {0}")]
    Refused(String),
    /// A key, request or certificate could not be made or read.
    #[error("{0}")]
    Certificate(String),
}

/// A checked `sha256:<hex>` pin.
fn parse_pin(pin: &str) -> Result<String, JoinError> {
    let hex = pin
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| JoinError::BadHash(pin.to_owned()))?;
    Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// `sha256:<hex>` of a DER certificate's SubjectPublicKeyInfo.
///
/// # Errors
/// When it does not parse.
pub fn spki_hash_of_der(der: &[u8]) -> Result<String, JoinError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|err| {
        JoinError::Certificate(format!("the server sent a bad certificate: {err}"))
    })?;
    let digest = Sha256::digest(cert.tbs_certificate.subject_pki.raw);
    Ok(format!("sha256:{}", hex(&digest)))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// `host:port` of `https://host:port`.
fn host_port(server: &str) -> Result<(String, String), JoinError> {
    let rest = server
        .strip_prefix("https://")
        .ok_or_else(|| JoinError::BadServer(server.to_owned()))?;
    let rest = rest.trim_end_matches('/');
    let (host, _port) = rest
        .rsplit_once(':')
        .filter(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        .ok_or_else(|| JoinError::BadServer(server.to_owned()))?;
    Ok((host.trim_matches(['[', ']']).to_owned(), rest.to_owned()))
}

/// Accepts any chain: used only to read the chain, which is then checked
/// against the pin before anything is trusted or sent.
#[derive(Debug)]
struct ReadChainOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for ReadChainOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The cluster CA (PEM) of the server at `server` (`https://host:port`),
/// accepted only if its public key hashes to `pin`.
///
/// # Errors
/// [`JoinError::HashMismatch`] naming both hashes; unreachable servers and
/// bad arguments.
pub async fn discover_ca(server: &str, pin: &str) -> Result<String, JoinError> {
    let pin = parse_pin(pin)?;
    let (host, addr) = host_port(server)?;
    let unreachable = |reason: String| JoinError::Unreachable {
        server: server.to_owned(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| unreachable(err.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ReadChainOnly(provider)))
        .with_no_client_auth();
    let name =
        ServerName::try_from(host.clone()).map_err(|_| JoinError::BadServer(server.to_owned()))?;
    let chain = tokio::time::timeout(DISCOVERY_TIMEOUT, async {
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|err| unreachable(err.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|err| unreachable(format!("TLS handshake failed: {err}")))?;
        Ok::<_, JoinError>(
            tls.get_ref()
                .1
                .peer_certificates()
                .map(<[CertificateDer<'_>]>::to_vec)
                .unwrap_or_default(),
        )
    })
    .await
    .map_err(|_| unreachable(format!("no TLS answer within {DISCOVERY_TIMEOUT:?}")))??;
    let mut found = Vec::new();
    for cert in &chain {
        let hash = spki_hash_of_der(cert)?;
        if hash == pin {
            return Ok(pem_of(cert));
        }
        found.push(hash);
    }
    Err(JoinError::HashMismatch {
        server: server.to_owned(),
        found: if found.is_empty() {
            "(no certificate)".to_owned()
        } else {
            found.join(" / ")
        },
        pinned: pin,
    })
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// How the request proves who asks.
#[derive(Debug, Clone)]
pub enum Requester {
    /// A bootstrap token (`<id>.<secret>`).
    Token(String),
    /// The node's current certificate (renewal).
    Certificate(ClientIdentity),
}

/// A fresh key and the control plane's certificate for `node` over it.
///
/// # Errors
/// [`JoinError::Refused`] with the control plane's reason (wrong or
/// expired token, not allowed), connection and key errors.
pub async fn request_node_certificate(
    server: &str,
    ca_pem: &str,
    requester: &Requester,
    node: &str,
) -> Result<ClientIdentity, JoinError> {
    let key = rcgen::KeyPair::generate()
        .map_err(|err| JoinError::Certificate(format!("generating the node's key: {err}")))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    let csr_pem = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|err| JoinError::Certificate(format!("making the certificate request: {err}")))?;
    let (token, identity) = match requester {
        Requester::Token(token) => (Some(token.clone()), None),
        Requester::Certificate(identity) => (None, Some(identity.clone())),
    };
    let config = ClientConfig {
        server: server.to_owned(),
        credentials: Credentials {
            ca_pem: Some(ca_pem.to_owned()),
            server_name: None,
            identity,
            token: token.clone(),
        },
        reload_from: None,
    };
    let unreachable = |reason: String| JoinError::Unreachable {
        server: server.to_owned(),
        reason,
    };
    let tls = config
        .credentials
        .tls()
        .ok_or_else(|| unreachable("no CA".into()))?;
    let channel = Channel::from_shared(server.to_owned())
        .map_err(|_| JoinError::BadServer(server.to_owned()))?
        .tls_config(tls)
        .map_err(|err| unreachable(err.to_string()))?
        .connect_timeout(DISCOVERY_TIMEOUT)
        .timeout(DISCOVERY_TIMEOUT)
        .connect()
        .await
        .map_err(|err| unreachable(error_chain(&err)))?;
    let bearer = BearerToken::new(token.as_deref()).map_err(JoinError::Certificate)?;
    let mut certificates = CertificatesClient::with_interceptor(channel, bearer);
    let response = certificates
        .sign_node_certificate(proto::NodeCertificateRequest {
            node_name: node.to_owned(),
            csr_pem,
        })
        .await
        .map_err(|status| JoinError::Refused(status.message().to_owned()))?
        .into_inner();
    Ok(ClientIdentity {
        cert_pem: response.certificate_pem,
        key_pem: key.serialize_pem(),
    })
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

/// The subject common name (the user) of a PEM certificate.
///
/// # Errors
/// When it does not parse.
pub fn common_name_of(cert_pem: &str) -> Result<String, JoinError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|err| JoinError::Certificate(format!("not a PEM certificate: {err}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|err| JoinError::Certificate(format!("not an X.509 certificate: {err}")))?;
    Ok(cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned())
}

/// When a PEM certificate's validity starts and ends (Unix seconds).
///
/// # Errors
/// When it does not parse.
pub fn validity_of(cert_pem: &str) -> Result<(i64, i64), JoinError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|err| JoinError::Certificate(format!("not a PEM certificate: {err}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|err| JoinError::Certificate(format!("not an X.509 certificate: {err}")))?;
    Ok((
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_and_servers_are_checked() {
        assert!(parse_pin("sha256:abc").is_err());
        assert!(parse_pin(&format!("md5:{}", "a".repeat(64))).is_err());
        assert_eq!(
            parse_pin(&format!("sha256:{}", "A".repeat(64))).expect("pin"),
            format!("sha256:{}", "a".repeat(64))
        );
        assert!(host_port("http://1.2.3.4:7400").is_err());
        assert!(host_port("https://1.2.3.4").is_err());
        assert_eq!(
            host_port("https://198.18.0.1:7400/").expect("ok"),
            ("198.18.0.1".to_owned(), "198.18.0.1:7400".to_owned())
        );
    }
}
