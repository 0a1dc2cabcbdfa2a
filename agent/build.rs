//! Finds the kernel programs built by `cargo xtask build-ebpf` so the agent
//! can embed them. Set `RUDDER_SKIP_EBPF=1` to build without them (clippy,
//! docs); such an agent refuses to load a dataplane and says why.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=RUDDER_SKIP_EBPF");
    println!("cargo:rerun-if-env-changed=RUDDER_EBPF_OBJECT");
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let object = std::env::var_os("RUDDER_EBPF_OBJECT").map_or_else(
        || manifest_dir.join("../target/ebpf/bpfel-unknown-none/release/dataplane-ebpf"),
        PathBuf::from,
    );
    println!("cargo:rerun-if-changed={}", object.display());
    let skip = std::env::var_os("RUDDER_SKIP_EBPF").is_some_and(|v| !v.is_empty() && v != "0");
    let embedded = if object.is_file() {
        object
    } else if skip {
        println!(
            "cargo:warning=RUDDER_SKIP_EBPF set: building rudder-agent without kernel programs"
        );
        let empty = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
            .join("no-kernel-programs.o");
        std::fs::write(&empty, b"").expect("OUT_DIR is writable");
        empty
    } else {
        panic!(
            "\n\nrudder-agent embeds the kernel programs, but {} does not exist.\n\
             Run `cargo xtask build-ebpf` first (after `cargo xtask setup` on a new machine),\n\
             or set RUDDER_SKIP_EBPF=1 to build without them (e.g. for clippy).\n",
            object.display()
        );
    };
    println!(
        "cargo:rustc-env=RUDDER_EBPF_OBJECT_PATH={}",
        embedded.display()
    );
}
