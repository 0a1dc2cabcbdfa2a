//! The stores under test as child processes on 127.0.0.1: rudder's
//! control plane and Debian's etcd, each killed when dropped.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use anyhow::{Context, Result};

/// A server process, killed when dropped.
pub struct Server(Child);

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `program` as found on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// A port on 127.0.0.1 nobody listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts a single-node rudder store on `port`, keeping its data in `dir`.
pub fn start_rudder(binary: &Path, dir: &Path, port: u16) -> Result<Server> {
    let child = Command::new(binary)
        .args(["--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--http-listen", "off", "--compaction-interval-seconds", "0"])
        // The benchmark drives the raw etcd API (as it does etcd's), on loopback.
        .args(["--insecure-plaintext", "--enable-etcd-api"])
        // The store alone, as etcd is: no controllers writing beside the load.
        .args(["--no-controllers", "--no-scheduler"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Server(child))
}

/// Starts replica `i` of a 3-replica rudder store whose members serve on
/// `ports` (clients and Raft on the same port).
pub fn start_rudder_replica(binary: &Path, dir: &Path, ports: &[u16], i: usize) -> Result<Server> {
    let mut command = Command::new(binary);
    command
        .args(["--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{}", ports[i])])
        .args(["--http-listen", "off", "--compaction-interval-seconds", "0"])
        // The benchmark drives the raw etcd API (as it does etcd's), on loopback.
        .args(["--insecure-plaintext", "--enable-etcd-api"])
        .args(["--no-controllers", "--no-scheduler"])
        .args(["--node-id", &(i + 1).to_string()]);
    for (j, port) in ports.iter().enumerate() {
        command.args(["--peer", &format!("{}=127.0.0.1:{port}", j + 1)]);
    }
    let child = command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Server(child))
}

/// Starts member `i` of a 3-member etcd cluster serving clients on `ports`
/// and peers on `peer_ports`.
pub fn start_etcd_member(
    binary: &Path,
    dir: &Path,
    ports: &[u16],
    peer_ports: &[u16],
    i: usize,
) -> Result<Server> {
    let client = format!("http://127.0.0.1:{}", ports[i]);
    let peer = format!("http://127.0.0.1:{}", peer_ports[i]);
    let cluster: Vec<String> = peer_ports
        .iter()
        .enumerate()
        .map(|(j, port)| format!("m{}=http://127.0.0.1:{port}", j + 1))
        .collect();
    let child = Command::new(binary)
        .args(["--name", &format!("m{}", i + 1), "--data-dir"])
        .arg(dir)
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &cluster.join(",")])
        .args(["--initial-cluster-state", "new"])
        .args(["--logger", "zap", "--log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Server(child))
}

/// Starts a single-member etcd on `port` (peers on `peer_port`).
pub fn start_etcd(binary: &Path, dir: &Path, port: u16, peer_port: u16) -> Result<Server> {
    start_etcd_member(binary, dir, &[port], &[peer_port], 0)
}

/// The first line of `etcd --version`.
pub fn etcd_version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "etcd".to_owned())
}

/// Peak resident set (VmHWM) of the server process.
pub fn peak_rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no VmHWM in /proc/PID/status")?;
    Ok(kib / 1024.0)
}
