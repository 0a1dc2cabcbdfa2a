//! `cargo xtask build-ebpf`: the kernel programs, built with the nightly.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::shell;

/// Where the object lands; the agent's build script embeds it from here.
pub fn object_path() -> PathBuf {
    shell::workspace_root().join("target/ebpf/bpfel-unknown-none/release/dataplane-ebpf")
}

/// Builds `dataplane-ebpf` for `bpfel-unknown-none` (release, with BTF) and
/// returns the path of the object file.
pub fn run() -> Result<PathBuf> {
    let root = shell::workspace_root();
    let mut cmd = std::process::Command::new("rustup");
    cmd.current_dir(root.join("dataplane-ebpf"))
        .args(["run", "nightly", "cargo", "build", "--release"])
        .args(["--package", "dataplane-ebpf"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(root.join("target/ebpf"))
        // BTF lets the loader relocate against this kernel and lets bpftool
        // print map contents with field names.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Cdebuginfo=2\x1f-Clink-arg=--btf",
        );
    // We run under the stable cargo: its variables would pin the nested build
    // to the stable compiler.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
        "CARGO",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    shell::run(&mut cmd).context(
        "building the kernel programs failed; `cargo xtask setup` installs the nightly's \
         rust-src and bpf-linker they need",
    )?;
    Ok(object_path())
}
