//! A node to run rudder-cni on: a test host namespace playing the node (the
//! bridge lives there), pod sandboxes as bare namespaces, and a private
//! directory for allocations and bandwidth records. The plugin is started
//! from a thread that entered the node's namespace, exactly as a runtime
//! on that node would start it; the root namespace is never touched.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the fixture"
)]

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use netns::{Host, Netns, TestNetwork};
use serde_json::{Value, json};

/// The plugin under test.
pub const RUDDER_CNI: &str = env!("CARGO_BIN_EXE_rudder-cni");
/// Where Debian's containernetworking-plugins live.
pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";
/// The pod subnet of the test node.
pub const SUBNET: &str = "10.244.1.0/24";
/// Its gateway (the bridge's address).
pub const GATEWAY: &str = "10.244.1.1";

/// What one plugin invocation returned.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status 0.
    pub success: bool,
    /// Exit code.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Outcome {
    /// Stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// The result of a successful ADD.
    pub fn result(&self) -> Value {
        assert!(self.success, "plugin failed: {self:?}");
        self.json()
    }

    /// The spec error of a failed invocation: asserts exit code 1 and the
    /// error JSON's shape, returns (code, msg).
    pub fn error(&self) -> (u64, String) {
        assert_eq!(self.code, Some(1), "expected a failure: {self:?}");
        let error = self.json();
        assert!(error["cniVersion"].is_string(), "{error}");
        let code = error["code"]
            .as_u64()
            .unwrap_or_else(|| panic!("no code: {error}"));
        let msg = error["msg"].as_str().unwrap_or_default().to_owned();
        assert!(!msg.is_empty(), "{error}");
        (code, msg)
    }
}

/// A node host with its own bridge, subnet and state directory.
pub struct TestNode {
    /// The node's namespace.
    pub node: Host,
    /// Allocations and bandwidth records live below this.
    pub dir: PathBuf,
    /// Owns every namespace; dropped after `dir` is removed.
    pub network: TestNetwork,
}

impl TestNode {
    /// Builds the node (and asserts the test runs as root).
    pub fn new(label: &str) -> Self {
        assert!(
            netns::have_privileges(),
            "rudder-cni tests create network namespaces: run them as root"
        );
        let mut network = TestNetwork::new(label).expect("test network");
        let node = network.add_host("node").expect("node host");
        let dir = std::env::temp_dir().join(format!("{}-cni", network.prefix()));
        std::fs::create_dir_all(&dir).expect("state dir");
        Self { node, dir, network }
    }

    /// A fresh pod sandbox.
    pub fn pod(&mut self, label: &str) -> Netns {
        self.network.add_namespace(label).expect("pod namespace")
    }

    /// The network config rudder-cni gets in these tests.
    pub fn config(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": "pods",
            "type": "rudder-cni",
            "bridge": "cni0",
            "ipam": {"subnet": SUBNET, "dataDir": self.dir.join("ipam")},
            "bandwidthDir": self.dir.join("bandwidth"),
        })
    }

    /// The directory holding the network's allocation files.
    pub fn allocation_dir(&self) -> PathBuf {
        self.dir.join("ipam").join("pods")
    }

    /// Addresses with an allocation file.
    pub fn allocated(&self) -> Vec<String> {
        let mut ips: Vec<String> = std::fs::read_dir(self.allocation_dir())
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|name| name.parse::<std::net::Ipv4Addr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        ips.sort();
        ips
    }

    /// Names of the veths in the node's namespace.
    pub fn node_veths(&self) -> Vec<String> {
        let out = self
            .node
            .ip(&["-o", "link", "show", "type", "veth"])
            .expect("ip link");
        out.lines()
            .filter_map(|line| line.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_owned())
            .filter(|name| name != "eth0")
            .collect()
    }

    /// Runs `plugin` in the node's namespace with exactly `env` and `stdin`.
    pub fn invoke_raw(&self, plugin: &Path, env: &[(&str, String)], stdin: &[u8]) -> Outcome {
        let output = self
            .node
            .enter(|| {
                let mut child = Command::new(plugin)
                    .env_clear()
                    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                    .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn plugin");
                let mut input = child.stdin.take().expect("stdin");
                input.write_all(stdin).expect("write stdin");
                drop(input);
                child.wait_with_output().expect("plugin output")
            })
            .expect("enter node");
        Outcome {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `plugin` as a runtime does for one attachment.
    pub fn invoke(
        &self,
        plugin: &Path,
        command: &str,
        container_id: &str,
        sandbox: Option<&str>,
        config: &Value,
    ) -> Outcome {
        let env = [
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", container_id.to_owned()),
            ("CNI_NETNS", sandbox.unwrap_or_default().to_owned()),
            ("CNI_IFNAME", "eth0".to_owned()),
            ("CNI_PATH", REFERENCE_PLUGINS.to_owned()),
        ];
        self.invoke_raw(plugin, &env, config.to_string().as_bytes())
    }

    /// rudder-cni `command` for `container_id` in `pod`.
    pub fn cni(
        &self,
        command: &str,
        container_id: &str,
        pod: Option<&Netns>,
        config: &Value,
    ) -> Outcome {
        let path = pod.map(netns_path);
        self.invoke(
            Path::new(RUDDER_CNI),
            command,
            container_id,
            path.as_deref(),
            config,
        )
    }

    /// A successful rudder-cni ADD; returns the result.
    pub fn add(&self, container_id: &str, pod: &Netns, config: &Value) -> Value {
        self.cni("ADD", container_id, Some(pod), config).result()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `/run/netns/<name>`.
pub fn netns_path(netns: &Netns) -> String {
    format!("/run/netns/{}", netns.name())
}

/// `config` with `prevResult` set.
pub fn with_prev_result(config: &Value, prev: &Value) -> Value {
    let mut config = config.clone();
    config["prevResult"] = prev.clone();
    config
}

/// The address of a result's first IP, without prefix.
pub fn result_ip(result: &Value) -> String {
    let address = result["ips"][0]["address"].as_str().unwrap_or_default();
    address.split('/').next().unwrap_or_default().to_owned()
}
