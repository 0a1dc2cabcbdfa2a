//! `cargo xtask dist`: the release bundle a machine installs rudder from.
//!
//! ```text
//! target/dist/rudder-<version>-<arch>-linux/
//!   install.sh                          idempotent installer (--prefix, --destdir, ...)
//!   bin/rudder-controlplane rudder-agent rudderctl   -> /usr/local/bin
//!   cni/bin/rudder-cni                  -> /opt/cni/bin
//!   cni/net.d/10-rudder.conflist        -> /etc/cni/net.d (cniVersion 1.0.0)
//!   config/controlplane.env agent.env   -> /etc/rudder (kept when present)
//!   systemd/*.service                   -> /etc/systemd/system
//!   docs/operations.md
//!   VERSION SHA256SUMS
//! target/dist/rudder-<version>-<arch>-linux.tar.gz
//! ```
//!
//! The agent embeds the kernel programs at build time, so the bundle is
//! self-contained: nothing is compiled on the machine.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{build_ebpf, shell};

/// The release binaries: (cargo package, binary).
const BINARIES: [(&str, &str); 4] = [
    ("rudder-controlplane", "rudder-controlplane"),
    ("rudder-agent", "rudder-agent"),
    ("rudder-cli", "rudderctl"),
    ("rudder-cni", "rudder-cni"),
];

/// Files of the bundle taken from the repository: (source, place in the bundle).
const STATIC_FILES: [(&str, &str); 8] = [
    ("dist/install.sh", "install.sh"),
    (
        "dist/systemd/rudder-controlplane.service",
        "systemd/rudder-controlplane.service",
    ),
    (
        "dist/systemd/rudder-agent.service",
        "systemd/rudder-agent.service",
    ),
    (
        "dist/cni/10-rudder.conflist",
        "cni/net.d/10-rudder.conflist",
    ),
    ("dist/config/controlplane.env", "config/controlplane.env"),
    ("dist/config/agent.env", "config/agent.env"),
    ("docs/operations.md", "docs/operations.md"),
    ("README.md", "docs/README.md"),
];

/// Where a binary goes in the bundle.
fn bundle_place(binary: &str) -> String {
    match binary {
        "rudder-cni" => "cni/bin/rudder-cni".to_owned(),
        other => format!("bin/{other}"),
    }
}

/// What `cargo xtask dist` made.
pub struct Bundle {
    /// The unpacked tree.
    pub tree: PathBuf,
    /// The tar.gz of the tree.
    pub archive: PathBuf,
}

/// Builds the kernel programs and the release binaries, then assembles the
/// bundle under `out` (default target/dist).
///
/// # Errors
/// When a build fails or a file cannot be written.
pub fn run(out: Option<&Path>) -> Result<Bundle> {
    build_ebpf::run()?;
    let mut cmd = shell::cargo();
    cmd.args(["build", "--release", "--bins"]);
    for (package, _) in BINARIES {
        cmd.args(["-p", package]);
    }
    shell::run(&mut cmd)?;
    let root = shell::workspace_root();
    let release = root.join("target/release");
    let binaries: Vec<(String, PathBuf)> = BINARIES
        .iter()
        .map(|(_, bin)| ((*bin).to_owned(), release.join(bin)))
        .collect();
    let out = out.map_or_else(|| root.join("target/dist"), Path::to_path_buf);
    let bundle = assemble(&root, &binaries, &out, &bundle_name())?;
    println!(
        "bundle: {} ({} bytes)\n        {}",
        bundle.archive.display(),
        std::fs::metadata(&bundle.archive).map_or(0, |m| m.len()),
        bundle.tree.display()
    );
    Ok(bundle)
}

/// `rudder-<version>-<arch>-linux`.
fn bundle_name() -> String {
    format!(
        "rudder-{}-{}-linux",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// Lays out the bundle `name` under `out` from the repository at `root` and
/// `binaries` (name, built file), replacing an older tree of that name,
/// and packs it.
///
/// # Errors
/// When a file is missing or cannot be written, or tar fails.
pub fn assemble(
    root: &Path,
    binaries: &[(String, PathBuf)],
    out: &Path,
    name: &str,
) -> Result<Bundle> {
    let tree = out.join(name);
    if tree.exists() {
        std::fs::remove_dir_all(&tree).with_context(|| format!("removing {}", tree.display()))?;
    }
    for (from, to) in STATIC_FILES {
        copy(&root.join(from), &tree.join(to))?;
    }
    for (binary, built) in binaries {
        let place = tree.join(bundle_place(binary));
        copy(built, &place)?;
        strip_debug_info(&place);
    }
    std::fs::write(tree.join("VERSION"), version_text(root))?;
    write_checksums(&tree)?;
    let archive = out.join(format!("{name}.tar.gz"));
    shell::run(
        Command::new("tar")
            .arg("-C")
            .arg(out)
            .args(["--owner=0", "--group=0", "--numeric-owner", "-czf"])
            .arg(&archive)
            .arg(name),
    )?;
    Ok(Bundle { tree, archive })
}

/// Copies `from` to `to` with its permissions, making `to`'s directory.
fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

/// Drops debug info the release profile keeps (line tables for local
/// backtraces): the bundle goes to machines over the network. Symbols stay.
fn strip_debug_info(binary: &Path) {
    if shell::output(Command::new("strip").arg("--strip-debug").arg(binary)).is_none() {
        println!(
            "note: could not strip {} (no binutils?); the bundle is larger, not wrong",
            binary.display()
        );
    }
}

/// The VERSION file: the version, and the commit it was built from.
fn version_text(root: &Path) -> String {
    let commit = shell::output(
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["describe", "--always", "--dirty"]),
    )
    .map_or_else(|| "unknown".to_owned(), |c| c.trim().to_owned());
    format!("rudder {} ({commit})\n", env!("CARGO_PKG_VERSION"))
}

/// SHA256SUMS of every file in the tree, as `sha256sum -c` reads it.
fn write_checksums(tree: &Path) -> Result<()> {
    let mut files = Vec::new();
    list_files(tree, tree, &mut files)?;
    files.sort();
    let mut cmd = Command::new("sha256sum");
    cmd.current_dir(tree).args(&files);
    let Some(sums) = shell::output(&mut cmd) else {
        bail!("sha256sum failed in {}", tree.display());
    };
    std::fs::write(tree.join("SHA256SUMS"), sums)?;
    Ok(())
}

fn list_files(base: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            list_files(base, &path, files)?;
        } else if let Ok(relative) = path.strip_prefix(base) {
            files.push(relative.to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
