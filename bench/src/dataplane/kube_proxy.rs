//! The reference: the nat-table ruleset kube-proxy's iptables mode writes
//! for the same services, as `iptables-restore` input.
//!
//! - `PREROUTING` and `OUTPUT` jump to `KUBE-SERVICES`, which has one rule
//!   per service port matching its ClusterIP and port;
//! - each `KUBE-SVC-<hash>` marks traffic from outside the pod CIDR for
//!   masquerade, then picks an endpoint with `-m statistic --mode random
//!   --probability 1/(n-i)` jumps (the last one unconditional);
//! - each `KUBE-SEP-<hash>` marks hairpin traffic and DNATs to the endpoint;
//! - `KUBE-POSTROUTING` masquerades marked traffic, `KUBE-NODEPORTS` comes
//!   last in `KUBE-SERVICES`.
//!
//! Chain names hash the service (and endpoint) name into 16 base32
//! characters, as kube-proxy's do. A partial sync (one service changed)
//! rewrites `KUBE-SERVICES` and the fixed chains in full plus the changed
//! service's chains, and deletes chains of endpoints that are gone — what
//! kube-proxy's partial syncs write.

use std::{
    fmt::Write as _,
    io::Write as _,
    net::Ipv4Addr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use netns::Netns;

use super::synthetic::{BenchService, NAMESPACE, POD_CIDR, SERVICE_PORT, TARGET_PORT};

/// Longest one `iptables-restore` may take before the benchmark gives up.
const RESTORE_LIMIT: Duration = Duration::from_secs(120);

/// The mark kube-proxy uses for "masquerade this".
const MASQ_MARK: &str = "0x4000";

/// The full nat table: what a first sync (or a full resync) restores.
pub fn full_restore(services: &[BenchService]) -> String {
    let mut out = String::with_capacity(services.len() * 1_200);
    out.push_str("*nat\n");
    out.push_str(":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n");
    out.push_str(":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n");
    fixed_chain_lines(&mut out);
    for service in services {
        service_chain_lines(&mut out, service);
    }
    out.push_str(
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
    );
    out.push_str(
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
    );
    out.push_str(
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n",
    );
    fixed_rules(&mut out);
    services_rules(&mut out, services);
    for service in services {
        service_rules(&mut out, service);
    }
    out.push_str("COMMIT\n");
    out
}

/// A partial sync after `changed` (the new version of a service in
/// `services`) lost the endpoints `gone`; restore it with `--noflush`.
pub fn partial_restore(
    services: &[BenchService],
    changed: &BenchService,
    gone: &[Ipv4Addr],
) -> String {
    let mut out = String::with_capacity(services.len() * 200);
    out.push_str("*nat\n");
    fixed_chain_lines(&mut out);
    service_chain_lines(&mut out, changed);
    for endpoint in gone {
        let _ = writeln!(out, ":{} - [0:0]", sep_chain(changed, *endpoint));
    }
    fixed_rules(&mut out);
    services_rules(&mut out, services);
    service_rules(&mut out, changed);
    for endpoint in gone {
        let _ = writeln!(out, "-X {}", sep_chain(changed, *endpoint));
    }
    out.push_str("COMMIT\n");
    out
}

/// How `iptables-restore` treats the tables it is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restore {
    /// Replace the whole table (a first or full sync).
    Replace,
    /// Keep what is not mentioned (`--noflush`, as kube-proxy runs it).
    NoFlush,
}

/// Runs `iptables-restore` inside `netns` (from a thread that entered it,
/// as kube-proxy would run it on its node) with `text` (made by `make`, in
/// the timing) on stdin; returns how long generating and restoring took.
///
/// # Errors
/// When the namespace cannot be entered, or iptables-restore fails or takes
/// longer than two minutes.
pub fn restore(
    netns: &Netns,
    mode: Restore,
    make: impl FnOnce() -> String + Send,
) -> Result<Duration> {
    netns
        .enter(move || -> Result<Duration> {
            let started = Instant::now();
            let text = make();
            let mut cmd = Command::new("iptables-restore");
            cmd.arg("-w");
            if mode == Restore::NoFlush {
                cmd.arg("--noflush");
            }
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting iptables-restore")?;
            let mut stdin = child.stdin.take().context("iptables-restore stdin")?;
            stdin
                .write_all(text.as_bytes())
                .context("writing the ruleset to iptables-restore")?;
            drop(stdin);
            loop {
                if let Some(status) = child.try_wait()? {
                    let took = started.elapsed();
                    if !status.success() {
                        let mut err = String::new();
                        if let Some(mut stderr) = child.stderr.take() {
                            let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
                        }
                        bail!("iptables-restore failed ({status}): {}", err.trim());
                    }
                    return Ok(took);
                }
                if started.elapsed() > RESTORE_LIMIT {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("iptables-restore took longer than {RESTORE_LIMIT:?}");
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        })
        .with_context(|| format!("entering {}", netns.name()))?
}

/// Rules in `text` (lines that add one).
pub fn rule_count(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("-A ")).count()
}

fn fixed_chain_lines(out: &mut String) {
    for chain in [
        "KUBE-SERVICES",
        "KUBE-NODEPORTS",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
    ] {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
}

fn fixed_rules(out: &mut String) {
    let _ = writeln!(
        out,
        "-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"
    );
    let _ = writeln!(out, "-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}");
    out.push_str(
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" \
         -j MASQUERADE --random-fully\n",
    );
    let _ = writeln!(out, "-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}");
}

fn service_chain_lines(out: &mut String, service: &BenchService) {
    let _ = writeln!(out, ":{} - [0:0]", svc_chain(service));
    for endpoint in &service.endpoints {
        let _ = writeln!(out, ":{} - [0:0]", sep_chain(service, *endpoint));
    }
}

/// `KUBE-SERVICES`: one jump per service port, then the NodePort catch-all.
fn services_rules(out: &mut String, services: &[BenchService]) {
    for service in services {
        let _ = writeln!(
            out,
            "-A KUBE-SERVICES -d {}/32 -p tcp -m comment --comment \"{} cluster IP\" \
             -m tcp --dport {SERVICE_PORT} -j {}",
            service.cluster_ip,
            port_name(service),
            svc_chain(service)
        );
    }
    out.push_str(
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must \
         be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n",
    );
}

/// A service's `KUBE-SVC-*` and `KUBE-SEP-*` rules.
fn service_rules(out: &mut String, service: &BenchService) {
    let svc = svc_chain(service);
    let name = port_name(service);
    let _ = writeln!(
        out,
        "-A {svc} ! -s {POD_CIDR} -d {}/32 -p tcp -m comment --comment \"{name} cluster IP\" \
         -m tcp --dport {SERVICE_PORT} -j KUBE-MARK-MASQ",
        service.cluster_ip
    );
    let n = service.endpoints.len();
    for (i, endpoint) in service.endpoints.iter().enumerate() {
        let sep = sep_chain(service, *endpoint);
        let comment = format!("{name} -> {endpoint}:{TARGET_PORT}");
        if i + 1 < n {
            let _ = writeln!(
                out,
                "-A {svc} -m comment --comment \"{comment}\" -m statistic --mode random \
                 --probability {:.11} -j {sep}",
                1.0 / (n - i) as f64
            );
        } else {
            let _ = writeln!(out, "-A {svc} -m comment --comment \"{comment}\" -j {sep}");
        }
    }
    for endpoint in &service.endpoints {
        let sep = sep_chain(service, *endpoint);
        let _ = writeln!(
            out,
            "-A {sep} -s {endpoint}/32 -m comment --comment \"{name}\" -j KUBE-MARK-MASQ"
        );
        let _ = writeln!(
            out,
            "-A {sep} -p tcp -m comment --comment \"{name}\" -m tcp \
             -j DNAT --to-destination {endpoint}:{TARGET_PORT}"
        );
    }
}

/// `bench/svc-000042:http`.
fn port_name(service: &BenchService) -> String {
    format!("{NAMESPACE}/{}:http", service.name)
}

fn svc_chain(service: &BenchService) -> String {
    format!(
        "KUBE-SVC-{}",
        chain_hash(&format!("{}tcp", port_name(service)))
    )
}

fn sep_chain(service: &BenchService, endpoint: Ipv4Addr) -> String {
    format!(
        "KUBE-SEP-{}",
        chain_hash(&format!(
            "{}tcp{endpoint}:{TARGET_PORT}",
            port_name(service)
        ))
    )
}

/// 16 base32 characters (A-Z, 2-7) from two FNV-1a hashes of `text`.
fn chain_hash(text: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let fnv = |seed: u64| {
        text.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let mut bits =
        (u128::from(fnv(0xcbf2_9ce4_8422_2325)) << 64) | u128::from(fnv(0x8422_2325_cbf2_9ce4));
    let mut out = String::with_capacity(16);
    for _ in 0..16 {
        out.push(char::from(ALPHABET[(bits & 31) as usize]));
        bits >>= 5;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::synthetic::services;

    #[test]
    fn the_full_ruleset_has_kube_proxys_shape() {
        let list = services(3, None);
        let text = full_restore(&list);
        assert!(text.starts_with("*nat\n") && text.ends_with("COMMIT\n"));
        // 3 KUBE-SERVICES jumps + nodeports, 3 x (masq + 3 statistic/jump
        // + 3 x 2 SEP rules), 4 fixed rules, 3 builtin jumps.
        assert_eq!(rule_count(&text), 4 + 3 * (1 + 3 + 6) + 4 + 3);
        assert_eq!(text.matches("--probability 0.33333333333").count(), 3);
        assert_eq!(text.matches("--probability 0.50000000000").count(), 3);
        assert!(text.contains("-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp"));
        assert!(text.contains("-j DNAT --to-destination 10.128.0.0:8080"));
    }

    #[test]
    fn a_partial_sync_rewrites_the_services_chain_and_deletes_gone_endpoints() {
        let mut list = services(4, None);
        let gone = list[2].endpoints[0];
        list[2].endpoints[0] = Ipv4Addr::new(10, 140, 0, 1);
        let text = partial_restore(&list, &list[2], &[gone]);
        assert_eq!(text.matches("-A KUBE-SERVICES -d").count(), 4);
        assert_eq!(text.matches("-X KUBE-SEP-").count(), 1);
        assert!(text.contains("10.140.0.1:8080"));
        assert!(!text.contains(&format!("-A {}", svc_chain(&list[1]))));
    }

    #[test]
    fn chain_names_are_stable_distinct_and_short_enough() {
        let list = services(1_000, None);
        let names: std::collections::HashSet<String> = list.iter().map(svc_chain).collect();
        assert_eq!(names.len(), 1_000);
        assert_eq!(svc_chain(&list[0]), svc_chain(&list[0]));
        // iptables limits chain names to 28 characters.
        assert!(names.iter().all(|n| n.len() <= 28));
    }
}
