//! Where the API server is and who we are there.
//!
//! Credentials come from a kubeconfig, as kubectl finds it: `--kubeconfig`,
//! else `$KUBECONFIG` (its first file), else `~/.kube/config` if it exists
//! (`--context` picks a context other than the current one). The address
//! is `--server`, else `$RUDDER_SERVER`, else the kubeconfig's cluster,
//! else the `server:` line of `$RUDDER_CONFIG` (default
//! `~/.config/rudder/config.yaml`), else 127.0.0.1:7400. Without a
//! kubeconfig the server must be a plaintext one (`--insecure-plaintext`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use rudder_client::{Client, ClientConfig, Kubeconfig};

/// The default gRPC address of `rudder-controlplane`.
pub const DEFAULT_SERVER: &str = "127.0.0.1:7400";

/// Connection options every API command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// API server (gRPC) address; also $RUDDER_SERVER or `server:` in the
    /// config file.
    #[arg(long, global = true)]
    server: Option<String>,
    /// The kubeconfig with the cluster's CA and your credentials; also
    /// $KUBECONFIG, default ~/.kube/config.
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current-context).
    #[arg(long, global = true)]
    context: Option<String>,
}

impl ServerArgs {
    /// The address to use, and where it came from (for error messages).
    pub fn resolve(&self) -> Result<(String, String)> {
        if let Some(explicit) = self.explicit_server() {
            return Ok(explicit);
        }
        let path = config_path();
        if let Some(path) = path.filter(|p| p.exists()) {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let config: serde_json::Value = serde_yaml_ng::from_str(&text)
                .with_context(|| format!("{}: not YAML", path.display()))?;
            if let Some(server) = config.get("server").and_then(|s| s.as_str()) {
                return Ok((server.to_owned(), path.display().to_string()));
            }
        }
        Ok((DEFAULT_SERVER.to_owned(), "the default".to_owned()))
    }

    /// The kubeconfig to read, if any, and where its path came from.
    fn kubeconfig_path(&self) -> Option<(PathBuf, &'static str)> {
        if let Some(path) = &self.kubeconfig {
            return Some((path.clone(), "--kubeconfig"));
        }
        if let Some(first) = std::env::var_os("KUBECONFIG")
            .as_deref()
            .and_then(|paths| std::env::split_paths(paths).find(|p| !p.as_os_str().is_empty()))
        {
            return Some((first, "$KUBECONFIG"));
        }
        let home = PathBuf::from(std::env::var_os("HOME")?);
        let default = home.join(".kube/config");
        default.exists().then_some((default, "~/.kube/config"))
    }

    /// Connects to the API server.
    pub async fn connect(&self) -> Result<Client> {
        let (config, source) = match self.kubeconfig_path() {
            Some((path, from)) => {
                let mut config = Kubeconfig::load(&path)
                    .and_then(|k| k.client_config(&path, self.context.as_deref()))
                    .with_context(|| format!("the kubeconfig from {from}"))?;
                let mut source = format!("{} (from {from})", path.display());
                if let Some(server) = self.explicit_server() {
                    config.server = with_scheme_of(&server.0, &config.server);
                    source = format!("{} with the server from {}", source, server.1);
                }
                (config, source)
            }
            None => {
                if self.context.is_some() {
                    anyhow::bail!("--context needs a kubeconfig (--kubeconfig or $KUBECONFIG)");
                }
                let (server, source) = self.resolve()?;
                (ClientConfig::insecure(&server), source)
            }
        };
        Client::connect_with(&config)
            .await
            .with_context(|| format!("server {} from {source}", config.server))
    }

    fn explicit_server(&self) -> Option<(String, String)> {
        if let Some(server) = &self.server {
            return Some((server.clone(), "--server".to_owned()));
        }
        std::env::var("RUDDER_SERVER")
            .ok()
            .filter(|s| !s.is_empty())
            .map(|s| (s, "$RUDDER_SERVER".to_owned()))
    }
}

/// `server` as given, or with the kubeconfig's scheme when it has none
/// (`--server 10.0.0.1:7400` with a TLS kubeconfig means https).
fn with_scheme_of(server: &str, kubeconfig_server: &str) -> String {
    if server.contains("://") {
        return server.to_owned();
    }
    let scheme = kubeconfig_server
        .split_once("://")
        .map_or("https", |(scheme, _)| scheme);
    format!("{scheme}://{server}")
}

fn config_path() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("RUDDER_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME")?;
    Some(PathBuf::from(home).join(".config/rudder/config.yaml"))
}

/// Runs an async command on a small runtime: the CLI does one thing at a
/// time, so one thread is plenty.
pub fn block_on<T, F: std::future::Future<Output = Result<T>>>(future: F) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(future)
}

/// Turns a server error into kubectl's wording: `Error from server
/// (NotFound): pods "x" not found`.
pub fn explain(err: rudder_client::ClientError) -> anyhow::Error {
    use rudder_client::ClientError as E;
    let reason = match &err {
        E::NotFound(_) => "NotFound",
        E::AlreadyExists(_) => "AlreadyExists",
        E::Conflict(_) => "Conflict",
        E::Invalid(_) => "Invalid",
        E::Gone(_) => "Expired",
        E::Unavailable(_) => "ServiceUnavailable",
        E::Unauthenticated(_) => "Unauthorized",
        E::Forbidden(_) => "Forbidden",
        E::InvalidAddress { .. }
        | E::Connect { .. }
        | E::Credentials(_)
        | E::Decode(_)
        | E::Other(_) => {
            return anyhow::Error::new(err);
        }
    };
    anyhow::anyhow!("Error from server ({reason}): {err}")
}
