//! `rudder-bench faults`: what a client of a Service sees while the
//! cluster changes and breaks, written to `docs/benchmarks/faults.md`.
//!
//! One cluster (a control plane, three nodes, the web app of
//! `rudder_tests::service_client`: a Deployment of three HTTP responders,
//! its ClusterIP Service, a client pod on node1). For each fault a client
//! loop runs through the ClusterIP the whole time, one new connection every
//! 20 ms, none retried, and every failed request counts:
//! 1. scale 3 -> 6; 2. scale 6 -> 2; 3. a rolling update of the pods' env;
//! 4. kill -9 of node1's agent (also: does a kept-alive connection survive);
//! 5. node3 lost entirely (its agent and pods killed, its link down);
//! 6. on a second cluster with three control-plane replicas (Raft), kill -9
//!    of the leader: how long until a change is accepted again (rudderctl
//!    retrying a scale from the client host), and what the loop saw.
//!
//! Time to recovery is from the fault to the loop's last failed request
//! (0 when none failed). The control plane runs with a 10 s node grace
//! period (Kubernetes' default is 40 s) to keep the run short; the goal
//! for node loss is stated against the grace period in use.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use rudder_tests::{
    control::{Cluster, ClusterOptions, start_agent},
    service_client::{
        LoopSummary, ServiceLoop, cluster_ip, json, pod_sandbox, ready_pod_ips, wait_for_replicas,
        web_cluster,
    },
};

use crate::machine::{self, Machine};

/// Options of `rudder-bench faults`.
#[derive(clap::Args, Debug)]
pub struct Options {
    /// Where to write the report.
    #[arg(long, default_value = "docs/benchmarks/faults.md")]
    out: PathBuf,
    /// Commit the binaries were built from, for the report.
    #[arg(long)]
    commit: Option<String>,
}

/// The node grace period the control plane runs with here. Agents renew
/// their lease every third of its 40 s, so a grace period below ~14 s makes
/// every live node flap NotReady, and taint-based eviction then deletes its
/// pods (the bench's client pod among them): 20 s stays clear of that.
const NODE_GRACE: Duration = Duration::from_secs(20);
/// Longest any one wait may take.
const LIMIT: Duration = Duration::from_secs(90);
/// Quiet time the loop runs after a fault has settled, so late failures count.
const SETTLE: Duration = Duration::from_secs(2);

/// One fault's row.
struct Row {
    fault: &'static str,
    summary: LoopSummary,
    /// When the fault was made, ms from the loop's start.
    fault_at_ms: u64,
    /// Established connections broken / kept (agent kill only).
    established: Option<(usize, usize)>,
    /// Leader kill only: ms from the kill to the first accepted change.
    change_accepted_ms: Option<u64>,
    goal: String,
    met: bool,
}

impl Row {
    fn recovery_ms(&self) -> u64 {
        let loop_recovery = self
            .summary
            .last_failure_ms
            .map_or(0, |last| last.saturating_sub(self.fault_at_ms));
        loop_recovery.max(self.change_accepted_ms.unwrap_or(0))
    }
}

/// Runs every fault and writes the report.
///
/// # Errors
/// When the cluster cannot be built or a fault cannot be made.
pub fn run(options: &Options) -> Result<()> {
    let started = Instant::now();
    let machine = Machine::describe();
    let load_start = machine::load_average();
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("bench binary directory")?
        .to_path_buf();
    let mut cluster_options = ClusterOptions::for_tests("flt");
    cluster_options.nodes = 3;
    cluster_options.bin_dir = bin_dir.clone();
    cluster_options.chain_tuning_on_node2 = false;
    cluster_options.pod_cgroups_on_node1 = false;
    cluster_options.log_to_files = true;
    cluster_options.controlplane_args = vec![
        "--node-grace-period-seconds".into(),
        NODE_GRACE.as_secs().to_string(),
        "--pod-eviction-timeout-seconds".into(),
        "2".into(),
    ];
    let mut c = web_cluster(&cluster_options)?;
    wait_for_replicas(&c, "web", 3, LIMIT)?;
    let mut rows = Vec::new();

    rows.push(scale(&c, "scale 3 -> 6", 6)?);
    rows.push(scale(&c, "scale 6 -> 2", 2)?);
    wait_for_replicas(&c, "web", 2, LIMIT)?;
    let scaled = c.rudderctl(&["scale", "deployment/web", "--replicas", "3"]);
    if !scaled.status.success() {
        bail!("scale back to 3 failed");
    }
    wait_for_replicas(&c, "web", 3, LIMIT)?;
    rows.push(rolling_update(&c)?);
    rows.push(agent_kill(&mut c)?);
    rows.push(node_loss(&mut c)?);
    drop(c);
    rows.push(leader_kill(&bin_dir)?);

    let report = render(&rows, &machine, options, started.elapsed(), load_start);
    crate::report_file::write(&options.out, &report)
}

fn client_loop(c: &Cluster) -> Result<ServiceLoop> {
    let sandbox = pod_sandbox(c, 0, "client")?;
    ServiceLoop::start(c, &sandbox, &cluster_ip(c, "web")?, LIMIT * 2)
}

fn zero_failures(fault: &'static str, summary: LoopSummary, fault_at_ms: u64) -> Row {
    let met = summary.failed == 0;
    Row {
        fault,
        summary,
        fault_at_ms,
        established: None,
        change_accepted_ms: None,
        goal: "0 failed".into(),
        met,
    }
}

fn scale(c: &Cluster, fault: &'static str, replicas: usize) -> Result<Row> {
    let client = client_loop(c)?;
    std::thread::sleep(SETTLE);
    let fault_at_ms = millis(client.elapsed());
    let scaled = c.rudderctl(&[
        "scale",
        "deployment/web",
        "--replicas",
        &replicas.to_string(),
    ]);
    if !scaled.status.success() {
        bail!("{fault}: {}", String::from_utf8_lossy(&scaled.stderr));
    }
    wait_for_replicas(c, "web", replicas, LIMIT)?;
    // Pods being removed may still run: wait until only `replicas` exist.
    wait_for(LIMIT, || pod_names(c).len() == replicas)?;
    std::thread::sleep(SETTLE);
    Ok(zero_failures(fault, client.finish()?, fault_at_ms))
}

fn pod_names(c: &Cluster) -> Vec<String> {
    json(c, &["get", "pods", "-l", "app=web", "-o", "json"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

fn rolling_update(c: &Cluster) -> Result<Row> {
    let before = pod_names(c);
    let mut deployment = json(c, &["get", "deployment", "web", "-o", "json"]);
    deployment["spec"]["template"]["spec"]["containers"][0]["env"] =
        serde_json::json!([{"name": "VERSION", "value": "2"}]);
    if let Some(meta) = deployment["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
    }
    let file = c.scratch.join("rolling-update.json");
    std::fs::write(&file, deployment.to_string())?;
    let client = client_loop(c)?;
    std::thread::sleep(SETTLE);
    let fault_at_ms = millis(client.elapsed());
    let applied = c.rudderctl(&["apply", "-f", &file.display().to_string()]);
    if !applied.status.success() {
        bail!(
            "rolling update: {}",
            String::from_utf8_lossy(&applied.stderr)
        );
    }
    // Done when three pods, none of the old ones, are Ready in the Endpoints.
    wait_for(LIMIT, || {
        let now = pod_names(c);
        now.len() == 3 && now.iter().all(|p| !before.contains(p))
    })?;
    wait_for_replicas(c, "web", 3, LIMIT)?;
    std::thread::sleep(SETTLE);
    Ok(zero_failures(
        "rolling update (env)",
        client.finish()?,
        fault_at_ms,
    ))
}

fn agent_kill(c: &mut Cluster) -> Result<Row> {
    let target = cluster_ip(c, "web")?;
    let session = pod_sandbox(c, 0, "client")?
        .command(&c.program("rudder-testapp").display().to_string())
        .args(["http-get", "--to", &target, "--keep-alive", "--count", "60"])
        .args(["--interval-ms", "100", "--retry-ms", "5000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let client = client_loop(c)?;
    std::thread::sleep(SETTLE);
    let fault_at_ms = millis(client.elapsed());
    // Dropping the handle SIGKILLs the agent.
    drop(c.nodes[0].agent.take());
    start_agent(&mut c.nodes[0]);
    let out = session.wait_with_output()?;
    let kept = out.status.success() && String::from_utf8_lossy(&out.stdout).lines().count() == 60;
    wait_for_replicas(c, "web", 3, LIMIT)?;
    std::thread::sleep(SETTLE);
    let summary = client.finish()?;
    let met = kept && summary.failed == 0;
    Ok(Row {
        fault: "kill -9 of node1's agent",
        summary,
        fault_at_ms,
        established: Some(if kept { (0, 1) } else { (1, 0) }),
        change_accepted_ms: None,
        goal: "0 broken established, 0 failed".into(),
        met,
    })
}

fn node_loss(c: &mut Cluster) -> Result<Row> {
    let client = client_loop(c)?;
    std::thread::sleep(SETTLE);
    let fault_at_ms = millis(client.elapsed());
    let lost = 2;
    // Node3 stops entirely: its agent, every process in its pods, its link.
    c.lose_node(lost)?;
    // Recovered when three Ready pods, none on node3, are the Endpoints.
    let lost_name = c.nodes[lost].name.clone();
    wait_for(LIMIT + NODE_GRACE, || {
        let pods = json(c, &["get", "pods", "-l", "app=web", "-o", "json"]);
        let elsewhere = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["spec"]["nodeName"].as_str() != Some(lost_name.as_str()))
            .count();
        elsewhere >= 3
    })?;
    wait_for(LIMIT, || {
        let ready = ready_pod_ips(c, "web");
        let endpoints = rudder_tests::service_client::endpoint_ips(c, "web");
        ready.len() >= 3 && endpoints.is_subset(&ready) && endpoints.len() >= 3
    })?;
    std::thread::sleep(SETTLE);
    let summary = client.finish()?;
    let goal = NODE_GRACE + Duration::from_secs(5);
    let row = Row {
        fault: "node3 lost (agent, pods, link)",
        summary,
        fault_at_ms,
        established: None,
        change_accepted_ms: None,
        goal: format!("answering again within {} s (grace + 5 s)", goal.as_secs()),
        met: false,
    };
    let met = row.recovery_ms() <= millis(goal);
    Ok(Row { met, ..row })
}

/// A cluster of three control-plane replicas and two nodes: the leader
/// is killed while the loop runs; recovered when a change is accepted.
fn leader_kill(bin_dir: &std::path::Path) -> Result<Row> {
    let mut options = ClusterOptions::for_tests("fltcp");
    options.nodes = 2;
    options.control_planes = 3;
    options.bin_dir = bin_dir.to_path_buf();
    options.chain_tuning_on_node2 = false;
    options.pod_cgroups_on_node1 = false;
    options.log_to_files = true;
    let mut c = web_cluster(&options)?;
    wait_for_replicas(&c, "web", 3, LIMIT)?;
    let client = client_loop(&c)?;
    std::thread::sleep(SETTLE);
    let leader = poll(LIMIT, || c.leader()).context("the replicas agree on no leader")?;
    let fault_at_ms = millis(client.elapsed());
    let killed = Instant::now();
    c.kill_controlplane(leader);
    // One change, retried until the survivors accept it (rudderctl tries
    // the replicas in turn; the first is the dead leader when it was cp1).
    poll(LIMIT, || {
        c.rudderctl(&["scale", "deployment/web", "--replicas", "4"])
            .status
            .success()
            .then_some(())
    })
    .context("no change accepted after the leader's death")?;
    let accepted = millis(killed.elapsed());
    wait_for_replicas(&c, "web", 4, LIMIT)?;
    std::thread::sleep(SETTLE);
    let summary = client.finish()?;
    let met = accepted <= 1000 && summary.failed == 0;
    Ok(Row {
        fault: "kill -9 of the control-plane leader (3 replicas)",
        summary,
        fault_at_ms,
        established: None,
        change_accepted_ms: Some(accepted),
        goal: "first accepted change within 1 s, 0 failed".into(),
        met,
    })
}

/// Polls (bounded) until `check` gives a value.
fn poll<T>(limit: Duration, check: impl Fn() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(value) = check() {
            return Some(value);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Polls (bounded) until `check` holds.
fn wait_for(limit: Duration, check: impl Fn() -> bool) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("a condition did not hold within {} s", limit.as_secs())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn render(
    rows: &[Row],
    machine: &Machine,
    options: &Options,
    took: Duration,
    load_start: f64,
) -> String {
    let mut out = format!(
        "# Faults: what a Service's client sees\n\n{}\n\n\
         A control plane and three nodes in test hosts; a client pod on node1 requests the web \
         Service's ClusterIP every 20 ms on a new connection, never retrying, through each fault. \
         Time to recovery runs from the fault to the last failed request. The node grace period \
         is {} s here (Kubernetes' default: 40 s).\n\n\
         | fault | requests failed / made | established connections broken | time to recovery | goal | met |\n\
         |---|---|---|---|---|---|\n",
        machine.written_by(
            "cargo xtask bench faults",
            options.commit.as_deref(),
            took,
            load_start
        ),
        NODE_GRACE.as_secs(),
    );
    for row in rows {
        let established = row.established.map_or_else(
            || "-".to_owned(),
            |(broken, kept)| format!("{broken} of {}", broken + kept),
        );
        out.push_str(&format!(
            "| {} | {} / {} | {established} | {:.1} s | {} | {} |\n",
            row.fault,
            row.summary.failed,
            row.summary.requests,
            row.recovery_ms() as f64 / 1000.0,
            row.goal,
            if row.met { "yes" } else { "**no**" },
        ));
    }
    out.push_str("\n## What the run saw\n\n");
    for row in rows {
        let first = row.summary.raw["first_error"].as_str().unwrap_or("none");
        let when: Vec<String> = row.summary.raw["failures"]
            .as_array()
            .into_iter()
            .flatten()
            .take(5)
            .filter_map(|f| f["at_ms"].as_u64())
            .map(|at| format!("{:+.2} s", (at as f64 - row.fault_at_ms as f64) / 1000.0))
            .collect();
        out.push_str(&format!(
            "- **{}**: {} pods answered; first error: {first}{}\n",
            row.fault,
            row.summary.responders.len(),
            if when.is_empty() {
                String::new()
            } else {
                format!(" (failures at {} from the fault)", when.join(", "))
            }
        ));
    }
    out.push_str(
        "\nThe leader kill runs on its own cluster: three control-plane replicas (plaintext: \
         Raft has no TLS yet) and two nodes whose agents know every replica. Its time to \
         recovery is from the kill to the first change the survivors accept, measured by \
         rudderctl runs from the client host (each a new process and connection, so it \
         includes their start).\n",
    );
    out
}
