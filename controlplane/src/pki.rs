//! The cluster's certificate authority and the certificates it signs.
//!
//! On first start the control plane makes a CA (`<data-dir>/pki/ca.crt`,
//! `ca.key`) unless one is there already (given by the operator, or copied
//! from the first replica); every start signs a fresh serving certificate
//! for the addresses it listens on, and the first start writes the
//! administrator's kubeconfig (`admin.kubeconfig`: `O=system:masters`).
//! Keys are ECDSA P-256 and written mode 0600.

use std::{
    io::Write,
    net::IpAddr,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// How long the CA is valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long serving and user certificates are valid.
pub const LEAF_VALIDITY: Duration = Duration::days(365);

/// Why the cluster's certificates could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key could not be made or parsed.
    #[error("{what}")]
    Certificate {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: rcgen::Error,
    },
    /// A PEM file holds no usable certificate.
    #[error("{0}")]
    Invalid(String),
}

/// A certificate and its private key, PEM encoded.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a private key.
        f.debug_struct("IssuedCert").finish_non_exhaustive()
    }
}

/// Who a client certificate names: `CN` is the user, each `O` a group
/// (as kube-apiserver reads them).
#[derive(Debug, Clone)]
pub struct ClientProfile {
    /// The user name (`CN`).
    pub user: String,
    /// The groups (`O`).
    pub groups: Vec<String>,
    /// Valid from.
    pub not_before: OffsetDateTime,
    /// Valid until.
    pub not_after: OffsetDateTime,
}

impl ClientProfile {
    /// A profile valid from now for [`LEAF_VALIDITY`].
    pub fn new(user: &str, groups: &[&str]) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            user: user.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            not_before: now - Duration::minutes(5),
            not_after: now + LEAF_VALIDITY,
        }
    }
}

/// The cluster CA: signs serving and client certificates.
pub struct ClusterPki {
    dir: PathBuf,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
    ca_spki_sha256: String,
}

impl std::fmt::Debug for ClusterPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPki")
            .field("dir", &self.dir)
            .field("ca_hash", &self.ca_spki_sha256)
            .finish_non_exhaustive()
    }
}

impl ClusterPki {
    /// Loads the CA from `dir` (`ca.crt`, `ca.key`), or makes one there
    /// when neither exists.
    ///
    /// # Errors
    /// When only one of the two files exists, they do not parse, or the
    /// directory cannot be written.
    pub fn load_or_create(dir: &Path) -> Result<Self, PkiError> {
        let cert_path = dir.join("ca.crt");
        let key_path = dir.join("ca.key");
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let ca_pem = read(&cert_path)?;
                let key = KeyPair::from_pem(&read(&key_path)?).map_err(|source| {
                    PkiError::Certificate {
                        what: format!("{}: not a private key", key_path.display()),
                        source,
                    }
                })?;
                Self::from_parts(dir, ca_pem, key)
            }
            (false, false) => {
                std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
                let key = generate_key("the cluster CA's key")?;
                let mut params = CertificateParams::default();
                params.distinguished_name = rcgen::DistinguishedName::new();
                params
                    .distinguished_name
                    .push(DnType::CommonName, "rudder-cluster-ca");
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages = vec![
                    KeyUsagePurpose::KeyCertSign,
                    KeyUsagePurpose::CrlSign,
                    KeyUsagePurpose::DigitalSignature,
                ];
                let now = OffsetDateTime::now_utc();
                params.not_before = now - Duration::minutes(5);
                params.not_after = now + CA_VALIDITY;
                let cert = params
                    .self_signed(&key)
                    .map_err(|source| PkiError::Certificate {
                        what: "signing the cluster CA".into(),
                        source,
                    })?;
                write_private(&key_path, &key.serialize_pem())?;
                write_file(&cert_path, &cert.pem(), 0o644)?;
                tracing::info!(dir = %dir.display(), "made a new cluster CA");
                Self::from_parts(dir, cert.pem(), key)
            }
            _ => Err(PkiError::Invalid(format!(
                "{}: give both ca.crt and ca.key, or neither (then a CA is made)",
                dir.display()
            ))),
        }
    }

    fn from_parts(dir: &Path, ca_pem: String, key: KeyPair) -> Result<Self, PkiError> {
        let ca_spki_sha256 = spki_sha256(&ca_pem)?;
        let issuer =
            Issuer::from_ca_cert_pem(&ca_pem, key).map_err(|source| PkiError::Certificate {
                what: format!("{}: not a CA certificate", dir.join("ca.crt").display()),
                source,
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            ca_pem,
            issuer,
            ca_spki_sha256,
        })
    }

    /// The directory holding the CA.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM): what clients trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `sha256:<hex>` of the CA's SubjectPublicKeyInfo, as kubeadm's
    /// `--discovery-token-ca-cert-hash` pins it.
    pub fn ca_hash(&self) -> &str {
        &self.ca_spki_sha256
    }

    /// Signs a serving certificate for these names and addresses.
    ///
    /// # Errors
    /// When a name is not a valid DNS name or signing fails.
    pub fn issue_serving(&self, names: &[String], ips: &[IpAddr]) -> Result<IssuedCert, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "rudder-apiserver");
        for name in names {
            let dns = name
                .clone()
                .try_into()
                .map_err(|source| PkiError::Certificate {
                    what: format!("serving certificate name {name:?}"),
                    source,
                })?;
            params.subject_alt_names.push(SanType::DnsName(dns));
        }
        params
            .subject_alt_names
            .extend(ips.iter().copied().map(SanType::IpAddress));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + LEAF_VALIDITY;
        self.sign(&params, "the serving certificate")
    }

    /// Signs a client certificate for `profile`.
    ///
    /// # Errors
    /// When signing fails, or `profile` has more than one group: the
    /// certificate library keeps one value per subject attribute, so a
    /// second `O` would silently replace the first (refused instead).
    pub fn issue_client(&self, profile: &ClientProfile) -> Result<IssuedCert, PkiError> {
        if profile.groups.len() > 1 {
            return Err(PkiError::Invalid(format!(
                "a certificate for {} can carry one group (O), not {}: {}",
                profile.user,
                profile.groups.len(),
                profile.groups.join(", ")
            )));
        }
        self.sign(
            &client_params(profile),
            &format!("a certificate for {}", profile.user),
        )
    }

    /// Signs a client certificate for `profile` over the public key of a
    /// PKCS#10 request (PEM), whose signature proves the requester holds
    /// the key. The request's own subject and extensions are ignored:
    /// `profile` says who the certificate names.
    ///
    /// # Errors
    /// When the request does not parse, its signature is wrong, or
    /// signing fails.
    pub fn sign_csr(&self, csr_pem: &str, profile: &ClientProfile) -> Result<String, PkiError> {
        let mut csr =
            rcgen::CertificateSigningRequestParams::from_pem(csr_pem).map_err(|source| {
                PkiError::Certificate {
                    what: "the certificate signing request is not a valid, signed PKCS#10 request"
                        .into(),
                    source,
                }
            })?;
        csr.params = client_params(profile);
        let cert = csr
            .signed_by(&self.issuer)
            .map_err(|source| PkiError::Certificate {
                what: format!("signing a certificate for {}", profile.user),
                source,
            })?;
        Ok(cert.pem())
    }

    fn sign(&self, params: &CertificateParams, what: &str) -> Result<IssuedCert, PkiError> {
        let key = generate_key(what)?;
        let cert =
            params
                .signed_by(&key, &self.issuer)
                .map_err(|source| PkiError::Certificate {
                    what: format!("signing {what}"),
                    source,
                })?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A client certificate's fields: `CN` the user, `O` the groups.
fn client_params(profile: &ClientProfile) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, profile.user.as_str());
    for group in &profile.groups {
        params
            .distinguished_name
            .push(DnType::OrganizationName, group.as_str());
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = profile.not_before;
    params.not_after = profile.not_after;
    params
}

fn generate_key(what: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(|source| PkiError::Certificate {
        what: format!("generating {what}"),
        source,
    })
}

/// `sha256:<hex>` of the SubjectPublicKeyInfo of the first certificate in
/// `pem`.
///
/// # Errors
/// When `pem` holds no parsable certificate.
pub fn spki_sha256(pem: &str) -> Result<String, PkiError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|err| PkiError::Invalid(format!("not a PEM certificate: {err}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|err| PkiError::Invalid(format!("not an X.509 certificate: {err}")))?;
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

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file only its owner can read (keys, credentials).
///
/// # Errors
/// When it cannot be written.
pub fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    write_file(path, text, 0o600)
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Written beside and renamed: a reader never sees half a key.
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_ca_is_loaded_again_with_the_same_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ClusterPki::load_or_create(dir.path()).expect("made");
        let again = ClusterPki::load_or_create(dir.path()).expect("loaded");
        assert_eq!(first.ca_hash(), again.ca_hash());
        assert!(first.ca_hash().starts_with("sha256:"));
        assert_eq!(first.ca_hash().len(), "sha256:".len() + 64);
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .expect("key")
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    #[test]
    fn a_lone_ca_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.key"), "x").expect("write");
        let err = ClusterPki::load_or_create(dir.path()).expect_err("refused");
        assert!(err.to_string().contains("both ca.crt and ca.key"), "{err}");
    }
}
