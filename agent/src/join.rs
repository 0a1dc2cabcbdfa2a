//! `rudder-agent join`: what `kubeadm join` does for a node, and the
//! renewal of the node's certificate while it serves.
//!
//! Join fetches the cluster CA without trusting it, checks it against the
//! pinned hash, asks for a node certificate with the bootstrap token, and
//! writes `<config-dir>/agent.kubeconfig` (the node's credential) and
//! `<config-dir>/agent.env` (`RUDDER_AGENT_OPTS="serve ..."`, the
//! EnvironmentFile of `rudder-agent.service`), then starts the unit when
//! systemd runs and it is installed. Running it again when the node holds a
//! valid certificate for the same server changes nothing.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use rudder_client::{
    ClientConfig, ClientIdentity, Kubeconfig,
    bootstrap::{self, Requester},
};

/// The unit `join` starts.
const UNIT: &str = "rudder-agent.service";
/// The file names in the config directory.
pub const KUBECONFIG_FILE: &str = "agent.kubeconfig";
const ENV_FILE: &str = "agent.env";

/// What `join` needs.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// `https://host:port` of the control plane's gRPC port.
    pub server: String,
    /// `<id>.<secret>`.
    pub token: String,
    /// `sha256:<hex>` of the CA's public key.
    pub ca_cert_hash: String,
    /// The node's name.
    pub node_name: String,
    /// Where agent.kubeconfig and agent.env go.
    pub config_dir: PathBuf,
    /// Do not start the unit.
    pub no_start: bool,
    /// Options `serve` gets besides --node, --controlplane, --kubeconfig.
    pub serve_args: Vec<String>,
}

/// Joins the node (see the module docs).
///
/// # Errors
/// A wrong CA hash (naming both), a refused token (the control plane's
/// reason), unwritable files.
pub async fn join(options: &JoinOptions) -> Result<()> {
    if options.token.trim().is_empty() {
        bail!("--token is empty: give the <id>.<secret> token `rudder-controlplane init` printed");
    }
    std::fs::create_dir_all(&options.config_dir).with_context(|| {
        format!(
            "the config directory {} cannot be created",
            options.config_dir.display()
        )
    })?;
    let kubeconfig_path = options.config_dir.join(KUBECONFIG_FILE);
    if let Some(why) = already_joined(&kubeconfig_path, options) {
        println!("[join] {why}: nothing to do");
    } else {
        let ca_pem = bootstrap::discover_ca(&options.server, &options.ca_cert_hash).await?;
        println!(
            "[join] the control plane's CA matches {}",
            options.ca_cert_hash
        );
        let identity = bootstrap::request_node_certificate(
            &options.server,
            &ca_pem,
            &Requester::Token(options.token.clone()),
            &options.node_name,
        )
        .await?;
        write_kubeconfig(
            &kubeconfig_path,
            &options.server,
            &ca_pem,
            &options.node_name,
            &identity,
        )?;
        println!(
            "[join] node certificate for system:node:{} in {}",
            options.node_name,
            kubeconfig_path.display()
        );
    }
    let env = options.config_dir.join(ENV_FILE);
    let mut opts = format!(
        "serve --node {} --controlplane {} --kubeconfig {}",
        options.node_name,
        options.server,
        kubeconfig_path.display()
    );
    for arg in &options.serve_args {
        opts.push(' ');
        opts.push_str(arg);
    }
    let line = format!("RUDDER_AGENT_OPTS=\"{opts}\"\n");
    if std::fs::read_to_string(&env).ok().as_deref() != Some(line.as_str()) {
        std::fs::write(&env, &line).with_context(|| format!("writing {}", env.display()))?;
        println!("[join] wrote {}", env.display());
    }
    if options.no_start {
        println!("[join] not starting the agent (--no-start)");
    } else if systemd_has_unit() {
        let status = Command::new("systemctl")
            .args(["enable", "--now", UNIT])
            .status()
            .context("running systemctl")?;
        if !status.success() {
            bail!("systemctl enable --now {UNIT} failed ({status}): see journalctl -u {UNIT}");
        }
        println!("[join] started {UNIT}");
    } else {
        println!(
            "[join] no systemd unit {UNIT} here: start the agent with\n    rudder-agent {opts}"
        );
    }
    Ok(())
}

/// Why the node counts as joined already, if it does: a kubeconfig for the
/// same server whose certificate is this node's and valid for a while yet.
fn already_joined(path: &Path, options: &JoinOptions) -> Option<String> {
    let config = Kubeconfig::load(path)
        .ok()?
        .client_config(path, None)
        .ok()?;
    if config.server != options.server {
        return None;
    }
    let identity = config.credentials.identity?;
    let (_, not_after) = bootstrap::validity_of(&identity.cert_pem).ok()?;
    let now = unix_now();
    (not_after > now + 60).then(|| {
        format!(
            "{} already holds a certificate for this node and server, valid for {} s more",
            path.display(),
            not_after - now
        )
    })
}

fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: &str,
    node: &str,
    identity: &ClientIdentity,
) -> Result<()> {
    let config = Kubeconfig::single(
        "rudder",
        server,
        ca_pem,
        &format!("system:node:{node}"),
        Kubeconfig::certificate_user(identity),
    );
    write_private(path, &config.to_yaml())
}

/// Writes beside and renames (mode 0600): a reader never sees half a key.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn systemd_has_unit() -> bool {
    Path::new("/run/systemd/system").exists()
        && Command::new("systemctl")
            .args(["cat", UNIT])
            .output()
            .is_ok_and(|out| out.status.success())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// When a certificate valid from `not_before` to `not_after` should be
/// renewed: at two thirds of its lifetime (kubelet renews between 70% and
/// 90%).
pub fn renew_at(not_before: i64, not_after: i64) -> i64 {
    not_before + (not_after - not_before).max(0) * 2 / 3
}

/// Keeps the node's certificate fresh: sleeps until [`renew_at`], asks for
/// a new certificate with the current one, and rewrites the kubeconfig.
/// Connections already open (the node-sync stream) keep going on the TLS
/// session they have; every new connection presents the new certificate
/// (the agent's clients re-read the kubeconfig when they connect). Runs
/// until the process ends; failures are retried every 10 s.
pub async fn renew_forever(kubeconfig: PathBuf, node: String) {
    match current(&kubeconfig).map(|config| config.credentials.identity) {
        Ok(Some(identity))
            if bootstrap::common_name_of(&identity.cert_pem).ok()
                == Some(format!("system:node:{node}")) => {}
        // Not a node certificate (an admin's, a token): nothing to renew.
        _ => return,
    }
    loop {
        let wait = match next_renewal(&kubeconfig) {
            // At least 10 s apart, whatever the certificate says.
            Ok(at) => Duration::from_secs(u64::try_from(at - unix_now()).unwrap_or(0).max(10)),
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "cannot read the node certificate; not renewing");
                return;
            }
        };
        tokio::time::sleep(wait).await;
        match renew(&kubeconfig, &node).await {
            Ok(not_after) => {
                tracing::info!(node, not_after, "renewed the node certificate");
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "renewing the node certificate failed; retrying");
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    }
}

fn current(kubeconfig: &Path) -> Result<ClientConfig> {
    Kubeconfig::load(kubeconfig)
        .and_then(|k| k.client_config(kubeconfig, None))
        .with_context(|| format!("reading {}", kubeconfig.display()))
}

fn next_renewal(kubeconfig: &Path) -> Result<i64> {
    let config = current(kubeconfig)?;
    let identity = config
        .credentials
        .identity
        .context("the kubeconfig holds no client certificate")?;
    let (not_before, not_after) = bootstrap::validity_of(&identity.cert_pem)?;
    Ok(renew_at(not_before, not_after))
}

async fn renew(kubeconfig: &Path, node: &str) -> Result<i64> {
    let config = current(kubeconfig)?;
    let ca_pem = config
        .credentials
        .ca_pem
        .clone()
        .context("the kubeconfig holds no CA")?;
    let identity = config
        .credentials
        .identity
        .clone()
        .context("the kubeconfig holds no client certificate")?;
    let fresh = bootstrap::request_node_certificate(
        &config.server,
        &ca_pem,
        &Requester::Certificate(identity),
        node,
    )
    .await?;
    let (_, not_after) = bootstrap::validity_of(&fresh.cert_pem)?;
    write_kubeconfig(kubeconfig, &config.server, &ca_pem, node, &fresh)?;
    Ok(not_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_at_two_thirds_of_the_lifetime() {
        assert_eq!(renew_at(0, 300), 200);
        assert_eq!(renew_at(1000, 1000), 1000);
        assert_eq!(renew_at(1000, 900), 1000);
    }
}
