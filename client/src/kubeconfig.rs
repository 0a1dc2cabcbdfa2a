//! kubeconfig files (`apiVersion: v1, kind: Config`): the subset rudder
//! writes and reads, in the format kubectl reads (clusters with
//! `server` and `certificate-authority[-data]`, users with
//! `client-certificate[-data]`/`client-key[-data]` or `token`/`tokenFile`,
//! contexts, `current-context`).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::credentials::{ClientConfig, ClientIdentity, Credentials};

/// Why a kubeconfig could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// A file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not YAML of the expected shape.
    #[error("{path}: not a kubeconfig")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// Something is missing or inconsistent.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A kubeconfig file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    /// `v1`.
    #[serde(default)]
    pub api_version: String,
    /// `Config`.
    #[serde(default)]
    pub kind: String,
    /// The clusters.
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    /// The users.
    #[serde(default)]
    pub users: Vec<NamedUser>,
    /// The contexts (cluster + user).
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    /// The context used when none is asked for.
    #[serde(default)]
    pub current_context: String,
}

/// A named cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NamedCluster {
    /// Its name.
    pub name: String,
    /// Where it is.
    pub cluster: ClusterEntry,
}

/// Where a cluster is and what to trust.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClusterEntry {
    /// `https://host:port`.
    pub server: String,
    /// The CA, base64 of its PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    /// The CA as a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<PathBuf>,
    /// The name the server's certificate carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

/// A named user.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NamedUser {
    /// Its name.
    pub name: String,
    /// Its credentials.
    pub user: UserEntry,
}

/// A user's credentials.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct UserEntry {
    /// Client certificate, base64 of its PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<String>,
    /// Client key, base64 of its PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_data: Option<String>,
    /// Client certificate as a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<PathBuf>,
    /// Client key as a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// A bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A file holding a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

impl std::fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserEntry").finish_non_exhaustive()
    }
}

/// A named context.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NamedContext {
    /// Its name.
    pub name: String,
    /// Which cluster and user.
    pub context: ContextEntry,
}

/// A cluster and a user.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContextEntry {
    /// The cluster's name.
    pub cluster: String,
    /// The user's name.
    pub user: String,
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

impl Kubeconfig {
    /// One cluster, one user, one context named `<user>@<cluster>`, with
    /// everything embedded.
    pub fn single(
        cluster: &str,
        server: &str,
        ca_pem: &str,
        user: &str,
        credentials: UserEntry,
    ) -> Self {
        let context = format!("{user}@{cluster}");
        Self {
            api_version: "v1".into(),
            kind: "Config".into(),
            clusters: vec![NamedCluster {
                name: cluster.into(),
                cluster: ClusterEntry {
                    server: server.into(),
                    certificate_authority_data: Some(b64(ca_pem)),
                    ..ClusterEntry::default()
                },
            }],
            users: vec![NamedUser {
                name: user.into(),
                user: credentials,
            }],
            contexts: vec![NamedContext {
                name: context.clone(),
                context: ContextEntry {
                    cluster: cluster.into(),
                    user: user.into(),
                },
            }],
            current_context: context,
        }
    }

    /// Embedded client certificate credentials.
    pub fn certificate_user(identity: &ClientIdentity) -> UserEntry {
        UserEntry {
            client_certificate_data: Some(b64(&identity.cert_pem)),
            client_key_data: Some(b64(&identity.key_pem)),
            ..UserEntry::default()
        }
    }

    /// The file's YAML.
    ///
    /// # Panics
    /// Never: these types always serialise.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }

    /// Reads a kubeconfig file.
    ///
    /// # Errors
    /// When it cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Self, KubeconfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| KubeconfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_yaml_ng::from_str(&text).map_err(|source| KubeconfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The client settings of `context` (the current context when `None`).
    /// Relative file paths are relative to the kubeconfig's directory, as
    /// kubectl reads them.
    ///
    /// # Errors
    /// When the context, its cluster or user is missing, or a referenced
    /// file cannot be read.
    pub fn client_config(
        &self,
        path: &Path,
        context: Option<&str>,
    ) -> Result<ClientConfig, KubeconfigError> {
        let invalid = |reason: String| KubeconfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let wanted = context.unwrap_or(&self.current_context);
        if wanted.is_empty() {
            return Err(invalid("no current-context is set".into()));
        }
        let context = self
            .contexts
            .iter()
            .find(|c| c.name == wanted)
            .ok_or_else(|| invalid(format!("no context {wanted:?}")))?;
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == context.context.cluster)
            .ok_or_else(|| invalid(format!("no cluster {:?}", context.context.cluster)))?;
        let user = self.users.iter().find(|u| u.name == context.context.user);
        let base = path.parent().unwrap_or(Path::new("."));
        let ca_pem = embedded_or_file(
            cluster.cluster.certificate_authority_data.as_deref(),
            cluster.cluster.certificate_authority.as_deref(),
            base,
            "certificate-authority",
        )
        .map_err(&invalid)?;
        let mut credentials = Credentials {
            ca_pem,
            server_name: cluster.cluster.tls_server_name.clone(),
            identity: None,
            token: None,
        };
        if let Some(NamedUser { user, .. }) = user {
            let cert = embedded_or_file(
                user.client_certificate_data.as_deref(),
                user.client_certificate.as_deref(),
                base,
                "client-certificate",
            )
            .map_err(&invalid)?;
            let key = embedded_or_file(
                user.client_key_data.as_deref(),
                user.client_key.as_deref(),
                base,
                "client-key",
            )
            .map_err(&invalid)?;
            credentials.identity = match (cert, key) {
                (Some(cert_pem), Some(key_pem)) => Some(ClientIdentity { cert_pem, key_pem }),
                (None, None) => None,
                _ => {
                    return Err(invalid(format!(
                        "user {:?}: give both a client certificate and its key",
                        context.context.user
                    )));
                }
            };
            credentials.token = match (&user.token, &user.token_file) {
                (Some(token), _) => Some(token.clone()),
                (None, Some(file)) => {
                    let file = base.join(file);
                    let token = std::fs::read_to_string(&file)
                        .map_err(|err| invalid(format!("tokenFile {}: {err}", file.display())))?;
                    Some(token.trim().to_owned())
                }
                (None, None) => None,
            };
        } else if !context.context.user.is_empty() {
            return Err(invalid(format!("no user {:?}", context.context.user)));
        }
        Ok(ClientConfig {
            server: cluster.cluster.server.clone(),
            credentials,
            reload_from: None,
        })
    }
}

fn embedded_or_file(
    data: Option<&str>,
    file: Option<&Path>,
    base: &Path,
    what: &str,
) -> Result<Option<String>, String> {
    if let Some(data) = data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|err| format!("{what}-data is not base64: {err}"))?;
        return String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("{what}-data is not PEM text"));
    }
    match file {
        Some(file) => {
            let file = base.join(file);
            std::fs::read_to_string(&file)
                .map(Some)
                .map_err(|err| format!("{what} {}: {err}", file.display()))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_kubeconfig_reads_back_with_its_credentials() {
        let identity = ClientIdentity {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        let config = Kubeconfig::single(
            "rudder",
            "https://127.0.0.1:7400",
            "CA",
            "admin",
            Kubeconfig::certificate_user(&identity),
        );
        let yaml = config.to_yaml();
        assert!(yaml.contains("current-context: admin@rudder"), "{yaml}");
        assert!(yaml.contains("certificate-authority-data"), "{yaml}");
        let dir = std::env::temp_dir().join(format!("kubeconfig-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("config");
        std::fs::write(&path, yaml).expect("write");
        let read = Kubeconfig::load(&path)
            .expect("parses")
            .client_config(&path, None)
            .expect("usable");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(read.server, "https://127.0.0.1:7400");
        assert_eq!(read.credentials.ca_pem.as_deref(), Some("CA"));
        let got = read.credentials.identity.expect("identity");
        assert_eq!(
            (got.cert_pem.as_str(), got.key_pem.as_str()),
            ("CERT", "KEY")
        );
    }

    #[test]
    fn a_missing_context_is_named() {
        let config = Kubeconfig::default();
        let err = config
            .client_config(Path::new("/x/config"), Some("prod"))
            .expect_err("refused");
        assert!(err.to_string().contains("no context \"prod\""), "{err}");
    }
}
