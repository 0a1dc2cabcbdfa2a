//! Where the API server is: `--server`, else `$RUDDER_SERVER`, else the
//! `server:` line of the config file (`$RUDDER_CONFIG`, default
//! `~/.config/rudder/config.yaml`), else 127.0.0.1:7400.

use std::path::PathBuf;

use anyhow::{Context, Result};
use rudder_client::Client;

/// The default gRPC address of `rudder-controlplane`.
pub const DEFAULT_SERVER: &str = "127.0.0.1:7400";

/// Connection options every API command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// API server (gRPC) address; also $RUDDER_SERVER or `server:` in the
    /// config file.
    #[arg(long, global = true)]
    server: Option<String>,
}

impl ServerArgs {
    /// The address to use, and where it came from (for error messages).
    pub fn resolve(&self) -> Result<(String, String)> {
        if let Some(server) = &self.server {
            return Ok((server.clone(), "--server".to_owned()));
        }
        if let Ok(server) = std::env::var("RUDDER_SERVER")
            && !server.is_empty()
        {
            return Ok((server, "$RUDDER_SERVER".to_owned()));
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

    /// Connects to the API server.
    pub async fn connect(&self) -> Result<Client> {
        let (server, source) = self.resolve()?;
        Client::connect(&server)
            .await
            .with_context(|| format!("server address {server} from {source}"))
    }
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
        E::InvalidAddress { .. } | E::Connect { .. } | E::Decode(_) | E::Other(_) => {
            return anyhow::Error::new(err);
        }
    };
    anyhow::anyhow!("Error from server ({reason}): {err}")
}
