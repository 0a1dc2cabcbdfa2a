//! `cargo xtask cluster down` leaves nothing of a cluster behind: a cluster
//! brought up by `cluster up` with pods running, then taken down, has no
//! namespace (hosts, underlay, pod sandboxes), no pinned map or link on
//! bpffs, no process, no scratch directory (the store's data, the agents'
//! state) and no change to the root namespace's links and routes.
//!
//! Runs alone (see .config/nextest.toml): it compares the root namespace's
//! links and routes before and after, and `down` removes every cluster.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

/// The xtask binary, run as a user runs `cargo xtask ...`.
fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(rudder_tests::binary("xtask"))
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("xtask runs")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Names in `dir` (empty when it does not exist).
fn names_in(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The root namespace's links and routes, as `ip` shows them.
fn root_namespace() -> (String, String) {
    let show = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().expect("ip runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    (
        show(&["-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(","),
        show(&["route", "show", "table", "all"]),
    )
}

/// A process's command line (`None` once it is gone).
fn cmdline(pid: &str) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// Every process whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<(String, String)> {
    names_in("/proc")
        .into_iter()
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|pid| {
            let line = cmdline(&pid)?;
            line.contains(needle).then_some((pid, line))
        })
        .collect()
}

#[test]
fn cluster_down_leaves_nothing_behind() {
    rudder_tests::require_root();
    let before = root_namespace();
    let up = xtask(&["cluster", "up", "--nodes", "2"]);
    assert!(
        up.status.success(),
        "cluster up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    // What this `up` made, from its record.
    let scratch = names_in(&std::env::temp_dir().display().to_string())
        .into_iter()
        .filter(|n| n.starts_with("rudder-cluster-"))
        .map(|n| std::env::temp_dir().join(n))
        .max_by_key(|p| {
            std::fs::metadata(p.join("cluster.json"))
                .and_then(|m| m.modified())
                .ok()
        })
        .expect("a cluster record");
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(scratch.join("cluster.json")).expect("record"),
    )
    .expect("record is JSON");
    let host_ns: Vec<String> = record["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter_map(|h| h["netns"].as_str().map(str::to_owned))
        .collect();
    // Namespaces of one run share `rdr-<pid>-<seq>-<label>-`.
    let prefix = host_ns[0]
        .rsplit_once('-')
        .map(|(p, _)| format!("{p}-"))
        .expect("namespace prefix");

    // Pods running: sandboxes, pinned programs, pod processes.
    let manifest = workspace_root().join("examples/web.yaml");
    let applied = xtask(&[
        "cluster",
        "exec",
        "client",
        "--",
        "rudderctl",
        "apply",
        "-f",
        &manifest.display().to_string(),
    ]);
    assert!(
        applied.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    rudder_tests::wait_for("the web pods to run", || {
        let out = xtask(&[
            "cluster",
            "exec",
            "client",
            "--",
            "rudderctl",
            "get",
            "pods",
            "-o",
            "json",
        ]);
        let pods: Value = serde_json::from_slice(&out.stdout).ok()?;
        let running = pods["items"]
            .as_array()?
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        (running == 3).then_some(())
    });
    let sandboxes: Vec<String> = names_in("/run/netns")
        .into_iter()
        .filter(|n| n.starts_with(&prefix) && !host_ns.contains(n))
        .collect();
    assert!(!sandboxes.is_empty(), "pod sandboxes exist under {prefix}");
    let pins: Vec<String> = names_in(netns::TEST_BPFFS_ROOT)
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(!pins.is_empty(), "the nodes pinned their maps");
    // Every process of the cluster: control plane, agents, pods, each in
    // one of its namespaces.
    let processes: Vec<(String, String)> = names_in("/run/netns")
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .flat_map(|ns| {
            let out = Command::new("ip")
                .args(["netns", "pids", &ns])
                .output()
                .expect("ip netns pids");
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|pid| Some((pid.clone(), cmdline(&pid)?)))
        .collect();
    assert!(
        processes
            .iter()
            .any(|(_, c)| c.contains("rudder-testapp http")),
        "pod processes run: {processes:?}"
    );
    let scratch_text = scratch.display().to_string();

    let down = xtask(&["cluster", "down"]);
    assert!(
        down.status.success(),
        "cluster down: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    let namespaces: Vec<String> = names_in("/run/netns")
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(namespaces.is_empty(), "namespaces left: {namespaces:?}");
    let pins: Vec<String> = names_in(netns::TEST_BPFFS_ROOT)
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(pins.is_empty(), "bpffs pins left: {pins:?}");
    let left: Vec<&(String, String)> = processes
        .iter()
        .filter(|(pid, was)| cmdline(pid).as_ref() == Some(was))
        .collect();
    assert!(left.is_empty(), "processes left: {left:?}");
    let cluster_processes = processes_mentioning(&scratch_text);
    assert!(
        cluster_processes.is_empty(),
        "control plane or agents left: {cluster_processes:?}"
    );
    assert!(
        !scratch.exists(),
        "{scratch_text} (store, agent state) left"
    );
    assert_eq!(
        root_namespace(),
        before,
        "the root namespace's links and routes are as before"
    );
}
