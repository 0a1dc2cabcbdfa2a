//! The bundle, unpacked and installed into a temporary root (DESTDIR) by
//! its own install.sh, as packaging and the VMs' provisioning do.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use super::{BINARIES, assemble};
use crate::shell;

/// A scratch directory removed when the test ends, passed or not.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rudder-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Stand-ins for the release binaries (building those is `cargo xtask
/// dist`'s job; this test checks what is around them).
fn stand_in_binaries(dir: &Path) -> Vec<(String, PathBuf)> {
    BINARIES
        .iter()
        .map(|(_, bin)| {
            let path = dir.join(bin);
            std::fs::write(&path, format!("#!/bin/sh\necho {bin} \"$@\"\n")).expect("stand-in");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            ((*bin).to_owned(), path)
        })
        .collect()
}

fn install(tree: &Path, args: &[&str]) -> std::process::Output {
    Command::new("sh")
        .arg(tree.join("install.sh"))
        .args(args)
        .env_remove("DESTDIR")
        .output()
        .expect("run install.sh")
}

fn installed_ok(tree: &Path, args: &[&str]) -> String {
    let out = install(tree, args);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "install.sh {args:?}: {text}");
    text
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn bundle_installs_into_a_destdir_idempotently() {
    let scratch = Scratch::new("dist-test");
    let bins = scratch.0.join("built");
    std::fs::create_dir_all(&bins).expect("bins");
    let binaries = stand_in_binaries(&bins);
    let out = scratch.0.join("out");
    let bundle =
        assemble(&shell::workspace_root(), &binaries, &out, "rudder-test").expect("bundle");

    // The archive holds the tree; install from the unpacked archive.
    let unpacked = scratch.0.join("unpacked");
    std::fs::create_dir_all(&unpacked).expect("unpack dir");
    shell::run(
        Command::new("tar")
            .arg("-C")
            .arg(&unpacked)
            .arg("-xzf")
            .arg(&bundle.archive),
    )
    .expect("untar");
    let tree = unpacked.join("rudder-test");
    let sums = Command::new("sha256sum")
        .current_dir(&tree)
        .args(["--quiet", "-c", "SHA256SUMS"])
        .status()
        .expect("sha256sum");
    assert!(sums.success(), "SHA256SUMS do not match the tree");

    let root = scratch.0.join("root");
    let root_arg = root.to_str().expect("utf-8 path");
    installed_ok(
        &tree,
        &["--destdir", root_arg, "--pod-cidr", "10.244.7.0/24"],
    );
    for (file, mode) in [
        ("usr/local/bin/rudder-controlplane", 0o755),
        ("usr/local/bin/rudder-agent", 0o755),
        ("usr/local/bin/rudderctl", 0o755),
        ("opt/cni/bin/rudder-cni", 0o755),
        ("etc/cni/net.d/10-rudder.conflist", 0o644),
        ("etc/rudder/controlplane.env", 0o644),
        ("etc/rudder/agent.env", 0o644),
        ("etc/systemd/system/rudder-controlplane.service", 0o644),
        ("etc/systemd/system/rudder-agent.service", 0o644),
    ] {
        let meta = std::fs::metadata(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    let etc_mode = std::fs::metadata(root.join("etc/rudder")).expect("etc/rudder");
    assert_eq!(etc_mode.permissions().mode() & 0o777, 0o700);

    // The conflist: 1.0.0 (containerd 1.6/1.7 refuse 1.1.0 results) with
    // this node's subnet.
    let conflist: serde_json::Value =
        serde_json::from_str(&read(&root.join("etc/cni/net.d/10-rudder.conflist")))
            .expect("conflist is JSON");
    assert_eq!(conflist["cniVersion"], "1.0.0");
    assert_eq!(conflist["plugins"][0]["type"], "rudder-cni");
    assert_eq!(conflist["plugins"][0]["ipam"]["subnet"], "10.244.7.0/24");

    // The env files are one-line EnvironmentFiles the units expand.
    for (env, var) in [
        ("controlplane.env", "RUDDER_CONTROLPLANE_OPTS"),
        ("agent.env", "RUDDER_AGENT_OPTS"),
    ] {
        let text = read(&root.join("etc/rudder").join(env));
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "{env}: {lines:?}");
        assert!(
            lines[0].starts_with(&format!("{var}=\"")),
            "{env}: {}",
            lines[0]
        );
    }
    let agent_unit = read(&root.join("etc/systemd/system/rudder-agent.service"));
    for line in [
        "ExecStart=/usr/local/bin/rudder-agent $RUDDER_AGENT_OPTS",
        "EnvironmentFile=/etc/rudder/agent.env",
        "KillMode=process",
        "Restart=on-failure",
        "RequiresMountsFor=/sys/fs/bpf /sys/fs/cgroup",
        "After=network-online.target",
        "Wants=network-online.target",
    ] {
        assert!(
            agent_unit.lines().any(|l| l == line),
            "agent unit lacks {line}"
        );
    }

    // Again, over an operator's edits: binaries and units replaced, the
    // configuration kept, the conflist kept without --pod-cidr.
    let agent_env = root.join("etc/rudder/agent.env");
    std::fs::write(&agent_env, "RUDDER_AGENT_OPTS=\"serve --node n1\"\n").expect("edit");
    std::fs::write(root.join("usr/local/bin/rudderctl"), "old").expect("edit");
    let again = installed_ok(&tree, &["--destdir", root_arg]);
    assert!(again.contains("kept"), "{again}");
    assert_eq!(read(&agent_env), "RUDDER_AGENT_OPTS=\"serve --node n1\"\n");
    assert!(read(&root.join("usr/local/bin/rudderctl")).contains("echo rudderctl"));
    assert!(read(&root.join("etc/cni/net.d/10-rudder.conflist")).contains("10.244.7.0/24"));

    // --prefix moves the binaries and the units follow them.
    installed_ok(&tree, &["--destdir", root_arg, "--prefix", "/opt/rudder"]);
    assert!(root.join("opt/rudder/bin/rudder-agent").exists());
    let moved = read(&root.join("etc/systemd/system/rudder-agent.service"));
    assert!(
        moved.contains("ExecStart=/opt/rudder/bin/rudder-agent $RUDDER_AGENT_OPTS"),
        "{moved}"
    );

    // Bad options are refused, clearly, before anything is written.
    for (args, says) in [
        (
            vec!["--destdir", root_arg, "--pod-cidr", "10.244.7.0"],
            "--pod-cidr",
        ),
        (
            vec!["--destdir", root_arg, "--cni-version", "0.3.1"],
            "--cni-version",
        ),
        (
            vec!["--destdir", root_arg, "--frobnicate"],
            "unknown option",
        ),
        (vec!["--destdir"], "needs a value"),
    ] {
        let out = install(&tree, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{args:?}: {err}"
        );
    }

    verify_units(&root);
}

const UNITS: [&str; 2] = ["rudder-controlplane.service", "rudder-agent.service"];

/// `systemd-analyze verify` on the installed units, where it exists.
fn verify_units(root: &Path) {
    if shell::output(Command::new("systemd-analyze").arg("--version")).is_none() {
        println!("note: no systemd-analyze here; units not verified");
        return;
    }
    let units = root.join("etc/systemd/system");
    // verify checks that ExecStart's binary exists: point the units at the
    // installed stand-ins.
    let verified = root.join("verify");
    std::fs::create_dir_all(&verified).expect("verify dir");
    let bin = root.join("opt/rudder/bin");
    for unit in UNITS {
        let text = read(&units.join(unit)).replace("/opt/rudder/bin", bin.to_str().expect("utf-8"));
        std::fs::write(verified.join(unit), text).expect("unit copy");
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(UNITS.map(|u| verified.join(u)))
        .output()
        .expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stderr);
    // Only complaints about rudder's own units count: the host's other
    // units may have warnings of their own.
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("rudder-")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {text}"
    );
}
