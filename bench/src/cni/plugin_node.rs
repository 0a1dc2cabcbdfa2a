//! A node host with one CNI plugin configured on it, invoked the way a
//! container runtime invokes it: spawned inside the node's namespace with
//! the CNI_* environment and the network configuration on stdin.

use std::{
    io::Write,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use netns::{Host, Netns, TestNetwork};
use serde_json::{Value, json};

/// Which plugin a node uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plugin {
    /// rudder-cni.
    Rudder,
    /// The reference `bridge` plugin with `host-local` IPAM.
    Reference,
}

impl Plugin {
    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Rudder => "rudder-cni",
            Self::Reference => "bridge + host-local",
        }
    }
}

/// A node host whose pods one plugin wires, each node with its own bridge
/// (`cni0`) and /24.
pub struct PluginNode {
    /// The plugin.
    pub plugin: Plugin,
    /// The node's host.
    pub host: Host,
    binary: PathBuf,
    config: Value,
    cni_path: PathBuf,
}

impl PluginNode {
    /// Adds a node host to `network` with `plugin` configured for the pod
    /// subnet 10.244.`subnet`.0/24, keeping its state under `state`.
    ///
    /// # Errors
    /// When the host cannot be made or a plugin binary is missing.
    pub fn new(
        network: &mut TestNetwork,
        label: &str,
        plugin: Plugin,
        subnet: u8,
        binaries: &PluginBinaries,
        state: &Path,
    ) -> Result<Self> {
        let state = state.join(label);
        let subnet = format!("10.244.{subnet}.0/24");
        let (binary, config) = match plugin {
            Plugin::Rudder => (
                binaries.rudder.clone(),
                json!({
                    "cniVersion": "1.0.0", "name": "bench", "type": "rudder-cni", "bridge": "cni0",
                    "ipam": {"subnet": subnet, "dataDir": state.join("ipam")},
                    "bandwidthDir": state.join("bandwidth"),
                }),
            ),
            Plugin::Reference => (
                binaries.reference_dir.join("bridge"),
                json!({
                    "cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cni0",
                    "isDefaultGateway": true,
                    "ipam": {"type": "host-local", "subnet": subnet, "dataDir": state.join("ipam")},
                }),
            ),
        };
        Ok(Self {
            plugin,
            host: network.add_host(label)?,
            binary,
            config,
            cni_path: binaries.reference_dir.clone(),
        })
    }

    /// Runs the plugin once in the node's namespace for the sandbox
    /// `sandbox` (interface `eth0`); returns its wall time and its stdout.
    ///
    /// # Errors
    /// When the plugin cannot be run or fails.
    pub fn invoke(&self, command: &str, id: &str, sandbox: &Netns) -> Result<(Duration, String)> {
        self.invoke_plugin(&self.binary, &self.config, command, id, sandbox)
    }

    /// Runs `binary` (a plugin chained after this node's, say) with the
    /// network configuration `config`, as [`Self::invoke`] runs the node's.
    ///
    /// # Errors
    /// When the plugin cannot be run or fails.
    pub fn invoke_plugin(
        &self,
        binary: &Path,
        config: &Value,
        command: &str,
        id: &str,
        sandbox: &Netns,
    ) -> Result<(Duration, String)> {
        let stdin = config.to_string();
        let netns = format!("/run/netns/{}", sandbox.name());
        let (elapsed, output) = self.host.enter(|| -> Result<_> {
            let start = Instant::now();
            let mut child = Command::new(binary)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("CNI_COMMAND", command)
                .env("CNI_CONTAINERID", id)
                .env("CNI_NETNS", &netns)
                .env("CNI_IFNAME", "eth0")
                .env("CNI_PATH", &self.cni_path)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("spawn {}", binary.display()))?;
            if let Some(mut input) = child.stdin.take() {
                input.write_all(stdin.as_bytes())?;
            }
            let output = child.wait_with_output()?;
            Ok((start.elapsed(), output))
        })??;
        ensure!(
            output.status.success(),
            "{} {command} {id} failed: {}{}",
            binary.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok((
            elapsed,
            String::from_utf8_lossy(&output.stdout).into_owned(),
        ))
    }

    /// ADDs `sandbox` and returns the address the plugin gave it.
    ///
    /// # Errors
    /// When the plugin fails or its result has no IPv4 address.
    pub fn add_pod(&self, id: &str, sandbox: &Netns) -> Result<Ipv4Addr> {
        let (_, result) = self.invoke("ADD", id, sandbox)?;
        let result: Value = serde_json::from_str(&result)
            .with_context(|| format!("{} printed no JSON result", self.plugin.label()))?;
        result["ips"][0]["address"]
            .as_str()
            .and_then(|cidr| cidr.split('/').next())
            .and_then(|ip| ip.parse().ok())
            .with_context(|| format!("no address in {}'s result {result}", self.plugin.label()))
    }
}

/// Where the plugins are.
#[derive(Clone, Debug)]
pub struct PluginBinaries {
    /// rudder-cni.
    pub rudder: PathBuf,
    /// The reference plugins (`bridge`, `host-local`).
    pub reference_dir: PathBuf,
    /// Debian's version of the reference plugins, for the report.
    pub reference_version: String,
}

impl PluginBinaries {
    /// rudder-cni next to this binary and the reference plugins in
    /// `reference_dir`.
    ///
    /// # Errors
    /// When either is missing.
    pub fn find(reference_dir: &Path) -> Result<Self> {
        let rudder = std::env::current_exe()
            .context("locating this binary")?
            .with_file_name("rudder-cni");
        ensure!(
            rudder.is_file(),
            "{} is not built (`cargo xtask bench cni` builds it)",
            rudder.display()
        );
        ensure!(
            reference_dir.join("bridge").is_file() && reference_dir.join("host-local").is_file(),
            "reference plugins missing in {}: `cargo xtask setup` installs containernetworking-plugins",
            reference_dir.display()
        );
        let reference_version = Command::new("dpkg-query")
            .args(["-W", "-f", "${Version}", "containernetworking-plugins"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "(version unknown)".to_owned());
        Ok(Self {
            rudder,
            reference_dir: reference_dir.to_path_buf(),
            reference_version,
        })
    }
}
