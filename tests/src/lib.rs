//! Helpers for rudder's end-to-end tests, which run in network-namespace
//! test hosts (see the `netns` crate) and need root.

pub mod cluster;
pub mod control;
pub mod service_client;

use std::path::PathBuf;

/// Fails the calling test unless it runs as root. These tests create
/// namespaces and load eBPF programs; CI runs them as root, and a silent
/// skip would let them rot.
pub fn require_root() {
    assert!(
        netns::have_privileges(),
        "this test creates network namespaces and loads eBPF programs: run it as root"
    );
}

/// Polls every 100 ms, for up to 90 s by the clock (a check may itself take
/// a while on a loaded machine, so the bound is a deadline, not a count),
/// until `check` gives a value; returns it.
///
/// # Panics
/// When it never does, naming `what`.
pub fn wait_for<T>(what: &str, check: impl Fn() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Waits (polling, at most `within`) for the admin kubeconfig a freshly
/// started `rudder-controlplane --data-dir DATA` writes to
/// `DATA/pki/admin.kubeconfig`; its path.
///
/// # Errors
/// When it does not appear in time.
pub fn admin_kubeconfig(
    data_dir: &std::path::Path,
    within: std::time::Duration,
) -> anyhow::Result<PathBuf> {
    let path = data_dir.join("pki/admin.kubeconfig");
    let deadline = std::time::Instant::now() + within;
    while !path.is_file() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the control plane wrote no {} within {within:?}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(path)
}

/// Joins a node as an operator would (`rudder-controlplane token create`
/// on the control plane's data, `rudder-agent join` on the node): the
/// agent runs inside `netns`, checks the control plane at `server`
/// against the pinned CA hash, and writes its node credential to
/// `config_dir/agent.kubeconfig`, whose path this returns.
///
/// # Errors
/// When either command fails (with its output).
pub fn join_node(
    bin_dir: &std::path::Path,
    cp_data_dir: &std::path::Path,
    server: &str,
    netns: &str,
    node: &str,
    config_dir: &std::path::Path,
) -> anyhow::Result<PathBuf> {
    use anyhow::Context as _;
    let run = |cmd: &mut std::process::Command, what: &str| -> anyhow::Result<String> {
        let out = cmd.output().with_context(|| what.to_owned())?;
        anyhow::ensure!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let join = run(
        std::process::Command::new(bin_dir.join("rudder-controlplane"))
            .args(["token", "create", "--ttl", "1h", "--print-join-command"])
            .args(["--description", &format!("join {node}")])
            .arg("--data-dir")
            .arg(cp_data_dir),
        "rudder-controlplane token create",
    )?;
    // `rudder-agent join --server S --token T --ca-cert-hash H`: keep the
    // token and the hash, aim at `server`.
    let words: Vec<&str> = join.split_whitespace().collect();
    let value = |flag: &str| {
        words
            .iter()
            .position(|w| *w == flag)
            .and_then(|i| words.get(i + 1))
            .map(|v| (*v).to_owned())
            .with_context(|| format!("no {flag} in {join:?}"))
    };
    let (token, hash) = (value("--token")?, value("--ca-cert-hash")?);
    run(
        std::process::Command::new(bin_dir.join("rudder-agent"))
            .args(["--netns", netns, "join", "--server", server])
            .args(["--token", &token, "--ca-cert-hash", &hash])
            .args(["--node-name", node, "--no-start", "--config-dir"])
            .arg(config_dir),
        &format!("rudder-agent join for {node}"),
    )?;
    Ok(config_dir.join("agent.kubeconfig"))
}

/// Path of a workspace binary (`rudder-testapp`, `rudder-agent`, ...), built
/// next to the test (or benchmark) executable by `cargo build --workspace --bins` (which
/// `cargo xtask test` runs before the tests).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> -> target/<profile>/<name>; a binary
    // (rudder-bench) runs from target/<profile>/ itself.
    let dir = exe.parent();
    let path = dir
        .filter(|dir| dir.ends_with("deps"))
        .and_then(std::path::Path::parent)
        .or(dir)
        .map(|profile| profile.join(name))
        .unwrap_or_default();
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` first (`cargo xtask test` does)",
        path.display()
    );
    path
}

/// A cgroup v2 directory of this test run, removed on drop (after killing
/// what is still in it). Uses the machine's cgroup2 mount (the unified
/// hierarchy of a hybrid setup, or /sys/fs/cgroup itself).
pub struct TestCgroup {
    path: PathBuf,
}

impl TestCgroup {
    /// Creates `rudder-test-<pid>-<label>` under the cgroup2 mount.
    ///
    /// # Panics
    /// When no cgroup2 hierarchy is mounted or the directory cannot be made.
    pub fn new(label: &str) -> Self {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let root = mounts
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
                (fstype == "cgroup2").then(|| PathBuf::from(dir))
            })
            .next()
            .expect("a cgroup2 hierarchy is mounted");
        let path = root.join(format!("rudder-test-{}-{label}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create test cgroup");
        Self { path }
    }

    /// The cgroup directory.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Runs `args` inside `netns` as a process of this cgroup; returns its
    /// output whatever its exit status. (It joins the cgroup before `ip
    /// netns exec`, which hides the cgroup filesystem behind a fresh /sys.)
    pub fn output_in(&self, netns: &netns::Netns, args: &[&str]) -> std::process::Output {
        let procs = self.path.join("cgroup.procs");
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > '{}' && exec ip netns exec {} \"$@\"",
                procs.display(),
                netns.name()
            ))
            .arg("sh")
            .args(args)
            .output()
            .expect("sh runs")
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        remove_cgroup(&self.path);
    }
}

/// Kills every process in the cgroup and its descendants, then removes
/// them bottom-up (a cgroup directory goes only once empty).
fn remove_cgroup(dir: &std::path::Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for child in children.flatten().filter(|c| c.path().is_dir()) {
            remove_cgroup(&child.path());
        }
    }
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for _ in 0..50 {
        if std::fs::remove_dir(dir).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A UDP/IPv4 packet in an Ethernet frame with correct checksums, for
/// BPF_PROG_TEST_RUN.
pub fn udp_packet(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut p = Vec::with_capacity(14 + ip_len);
    p.extend_from_slice(&[0x02, 0, 0, 0, 0, 2]); // dst mac
    p.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]); // src mac
    p.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&u16::try_from(ip_len).unwrap_or(u16::MAX).to_be_bytes());
    ip[8] = 64; // ttl
    ip[9] = 17; // udp
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let csum = internet_checksum(&ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    p.extend_from_slice(&ip);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&u16::try_from(udp_len).unwrap_or(u16::MAX).to_be_bytes());
    p.extend_from_slice(&[0, 0]); // checksum filled below
    p.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&u16::try_from(udp_len).unwrap_or(u16::MAX).to_be_bytes());
    pseudo.extend_from_slice(&p[34..]);
    let udp_csum = match internet_checksum(&pseudo) {
        0 => 0xffff,
        c => c,
    };
    p[40..42].copy_from_slice(&udp_csum.to_be_bytes());
    p
}

/// A TCP/IPv4 packet in an Ethernet frame with correct checksums.
pub fn tcp_packet(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let tcp_len = 20 + payload.len();
    let mut p = udp_packet(src, dst, sport, dport, &[]);
    p.truncate(14 + 20);
    p[14 + 9] = 6;
    let ip_len = u16::try_from(20 + tcp_len).unwrap_or(u16::MAX);
    p[16..18].copy_from_slice(&ip_len.to_be_bytes());
    p[24..26].copy_from_slice(&[0, 0]);
    let csum = internet_checksum(&p[14..34]);
    p[24..26].copy_from_slice(&csum.to_be_bytes());
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes()); // seq
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    tcp.extend_from_slice(payload);
    p.extend_from_slice(&tcp);
    let csum = l4_checksum(&p);
    p[34 + 16..34 + 18].copy_from_slice(&csum.to_be_bytes());
    p
}

/// The TCP/UDP checksum a packet (Ethernet + IPv4 without options) should
/// carry, computed over its current contents with the checksum field zeroed.
pub fn l4_checksum(packet: &[u8]) -> u16 {
    let proto = packet[23];
    let l4 = &packet[34..];
    let csum_at = if proto == 6 { 16 } else { 6 };
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&packet[26..34]);
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&u16::try_from(l4.len()).unwrap_or(u16::MAX).to_be_bytes());
    let mut body = l4.to_vec();
    body[csum_at..csum_at + 2].copy_from_slice(&[0, 0]);
    pseudo.extend_from_slice(&body);
    match internet_checksum(&pseudo) {
        0 if proto == 17 => 0xffff,
        c => c,
    }
}

/// Whether the IPv4 header and TCP/UDP checksums of `packet` are valid (a
/// zero UDP checksum means "none" and is valid).
pub fn checksums_valid(packet: &[u8]) -> bool {
    if internet_checksum(&packet[14..34]) != 0 {
        return false;
    }
    let proto = packet[23];
    let at = if proto == 6 { 34 + 16 } else { 34 + 6 };
    let stored = u16::from_be_bytes([packet[at], packet[at + 1]]);
    (proto == 17 && stored == 0) || stored == l4_checksum(packet)
}

/// RFC 1071 ones'-complement checksum.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| {
            u32::from(u16::from_be_bytes([
                pair[0],
                pair.get(1).copied().unwrap_or(0),
            ]))
        })
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::{internet_checksum, udp_packet};

    #[test]
    fn crafted_tcp_packet_has_valid_checksums_and_corruption_shows() {
        let mut p = super::tcp_packet([10, 0, 0, 1], [10, 0, 0, 2], 1234, 80, 0x02, b"");
        assert!(super::checksums_valid(&p));
        p[30] ^= 1; // destination address
        assert!(!super::checksums_valid(&p));
    }

    #[test]
    fn crafted_udp_packet_has_valid_checksums() {
        let p = udp_packet([10, 0, 0, 1], [10, 0, 0, 2], 1234, 53, b"hello");
        assert_eq!(p.len(), 14 + 20 + 8 + 5);
        // A correct header sums to zero.
        assert_eq!(internet_checksum(&p[14..34]), 0);
    }
}
