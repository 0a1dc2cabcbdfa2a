//! `cargo xtask vm up|smoke|ssh|down`: a rudder cluster on real virtual
//! machines (qemu/KVM), each its own Debian kernel.
//!
//! - `up [--workers N]` builds (or reuses) a Debian trixie image under
//!   target/vm/, and boots a control-plane VM and N worker VMs, each on a
//!   copy-on-write overlay of that image, with the image's kernel;
//! - `smoke [--workers N] [--keep]` brings them up, provisions them with
//!   vagrant/provision/ (the same scripts the Vagrantfile runs), runs the
//!   smoke test, prints each step with its result and time, and tears it
//!   all down (unless --keep);
//! - `image` builds the image alone (unless cached);
//! - `ssh VM [CMD...]` runs a command (or a shell) on a VM (`cp`, `w1`, ...);
//! - `down` removes every VM process, tap, bridge, namespace and overlay,
//!   also what a crashed `up` left.
//!
//! Networking (DESIGN.md, "Test hosts"): the VMs' NICs are tap devices on a
//! bridge inside a network namespace `up` creates, addressed from
//! 198.18.10.0/24; no user-mode networking, no NAT, no route anywhere else.
//! qemu runs inside that namespace, and so does `ssh`: the root namespace
//! never talks to the VMs' addresses. The project's tree reaches the VMs
//! read-only over virtio-9p, at /mnt/rudder.
//!
//! Without /dev/kvm every command says so and exits 0: CI machines without
//! virtualisation skip the VMs instead of failing.

mod image;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{cluster, shell};

/// The VMs' network, inside the namespace only: .1 the namespace's end of
/// the bridge, .10 the control plane, .11... the workers.
const NET_PREFIX: &str = "198.18.10";
/// Namespaces `up` creates are named `rvm-<pid>`.
const NETNS_PREFIX: &str = "rvm-";
/// Where the project's tree appears inside the VMs.
const GUEST_TREE: &str = "/mnt/rudder";
/// How long a VM may take from qemu's start to answering ssh (TCG
/// emulation on a busy machine takes minutes).
const BOOT_TIMEOUT: Duration = Duration::from_secs(420);
/// Memory per VM (MiB).
const MEMORY_MIB: u32 = 1024;

/// One VM of a run.
#[derive(Debug, Clone)]
struct Vm {
    label: String,
    addr: String,
    pid: Option<u32>,
}

/// What `up` made, as recorded in target/vm/run/state.json.
#[derive(Debug)]
struct Run {
    netns: String,
    vms: Vec<Vm>,
}

impl Run {
    fn vm(&self, label: &str) -> Result<&Vm> {
        self.vms.iter().find(|v| v.label == label).with_context(|| {
            let labels: Vec<&str> = self.vms.iter().map(|v| v.label.as_str()).collect();
            format!("no VM {label:?} (VMs: {})", labels.join(", "))
        })
    }

    fn workers(&self) -> impl Iterator<Item = &Vm> {
        self.vms.iter().filter(|v| v.label != "cp")
    }

    /// `ssh` to `vm` from inside the namespace, running `remote` (a shell
    /// command line) there.
    fn ssh(&self, vm: &Vm, remote: &str) -> Command {
        let key = vm_dir().join("ssh/id_ed25519");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, "ssh", "-i"])
            .arg(key)
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=30",
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "BatchMode=yes",
            ])
            .arg(format!("root@{}", vm.addr));
        if !remote.is_empty() {
            cmd.arg(remote);
        }
        cmd
    }

    /// Runs `remote` on `vm`, its output shown; fails when it fails.
    fn run_on(&self, vm: &Vm, remote: &str) -> Result<()> {
        let status = self
            .ssh(vm, remote)
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("running ssh to {}", vm.label))?;
        if !status.success() {
            bail!("`{remote}` failed on {} ({status})", vm.label);
        }
        Ok(())
    }

    /// Runs `remote` on every VM in `vms` at once; fails naming those where
    /// it failed.
    fn run_on_each(&self, vms: &[&Vm], remote: &str) -> Result<()> {
        let children = vms
            .iter()
            .map(|vm| {
                let child = self.ssh(vm, remote).stdin(Stdio::null()).spawn();
                (vm.label.as_str(), child)
            })
            .collect::<Vec<_>>();
        let failed: Vec<&str> = children
            .into_iter()
            .filter_map(|(label, child)| {
                let ok = child.and_then(|mut c| c.wait()).is_ok_and(|s| s.success());
                (!ok).then_some(label)
            })
            .collect();
        if !failed.is_empty() {
            bail!("`{remote}` failed on {}", failed.join(", "));
        }
        Ok(())
    }

    /// Copies directory `dir` of `from` to the same path on `to` (tar over ssh).
    fn copy_dir(&self, from: &Vm, to: &Vm, dir: &str) -> Result<()> {
        let out = self
            .ssh(
                from,
                &format!("tar -C / -c {}", dir.trim_start_matches('/')),
            )
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!(
                "reading {dir} on {}: {}",
                from.label,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut child = self.ssh(to, "tar -C / -x").stdin(Stdio::piped()).spawn()?;
        child
            .stdin
            .take()
            .context("no stdin for ssh")?
            .write_all(&out.stdout)?;
        let status = child.wait()?;
        if !status.success() {
            bail!("writing {dir} on {} ({status})", to.label);
        }
        Ok(())
    }

    fn record(&self) -> Value {
        json!({
            "netns": self.netns,
            "vms": self.vms.iter().map(|v| json!({
                "label": v.label, "addr": v.addr, "pid": v.pid,
            })).collect::<Vec<_>>(),
        })
    }

    fn load() -> Result<Option<Self>> {
        let path = run_dir().join("state.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a VM run record", path.display()))?;
        let vms = value["vms"]
            .as_array()
            .context("the VM run record lacks vms")?
            .iter()
            .map(|v| Vm {
                label: v["label"].as_str().unwrap_or_default().to_owned(),
                addr: v["addr"].as_str().unwrap_or_default().to_owned(),
                pid: v["pid"].as_u64().and_then(|p| u32::try_from(p).ok()),
            })
            .collect();
        Ok(Some(Self {
            netns: value["netns"]
                .as_str()
                .context("the VM run record lacks netns")?
                .to_owned(),
            vms,
        }))
    }
}

fn vm_dir() -> PathBuf {
    shell::workspace_root().join("target/vm")
}

fn run_dir() -> PathBuf {
    vm_dir().join("run")
}

/// Why VMs cannot run here, if they cannot.
fn unavailable() -> Option<String> {
    if !netns::have_privileges() {
        return Some("VMs need root (network namespaces, taps, /dev/kvm)".to_owned());
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => None,
        Err(err) => Some(format!(
            "/dev/kvm is not usable ({err}): this machine cannot run KVM guests"
        )),
    }
}

/// How qemu runs the guests: KVM, or TCG emulation where this machine's
/// KVM cannot run a stock kernel. `RUDDER_VM_ACCEL=kvm|tcg` overrides.
fn accel() -> (&'static str, &'static str) {
    const KVM: (&str, &str) = ("kvm", "host");
    const TCG: (&str, &str) = ("tcg", "max");
    match std::env::var("RUDDER_VM_ACCEL").as_deref() {
        Ok("kvm") => return KVM,
        Ok("tcg") => return TCG,
        _ => {}
    }
    // kvm-pvm (paravirtualised nested KVM, as on Firecracker-style hosts
    // without hardware virtualisation) runs only PVM-enabled guest kernels:
    // Debian's kernel dies in its decompressor there (an emulation error
    // in the host's dmesg, nothing on the guest's console).
    if Path::new("/sys/module/kvm_pvm").exists() {
        println!(
            "vm: this machine's /dev/kvm is kvm-pvm, which cannot run Debian's kernel: \
             emulating the VMs with TCG (slower; RUDDER_VM_ACCEL=kvm forces KVM)"
        );
        return TCG;
    }
    KVM
}

/// Runs `body` when VMs can run here; otherwise says why and succeeds.
pub fn guarded(body: impl FnOnce() -> Result<ExitCode>) -> Result<ExitCode> {
    if let Some(why) = unavailable() {
        println!("vm: skipped: {why}");
        return Ok(ExitCode::SUCCESS);
    }
    body()
}

/// `vm up`: boots the VMs and leaves them running.
///
/// # Errors
/// When a build, the image or a VM's boot fails.
pub fn up_command(workers: usize) -> Result<ExitCode> {
    let (run, times) = up(workers)?;
    for (step, took) in &times {
        println!("vm: {step}: {:.1} s", took.as_secs_f64());
    }
    println!("vm: up:");
    for vm in &run.vms {
        println!("   {:<4} {}", vm.label, vm.addr);
    }
    println!(
        "   cargo xtask vm ssh cp -- journalctl -b\n   cargo xtask vm smoke --keep\n   cargo xtask vm down"
    );
    Ok(ExitCode::SUCCESS)
}

/// `vm image`: the image alone (built unless cached), and how long it took.
///
/// # Errors
/// When debootstrap or mkfs fails.
pub fn image_command() -> Result<ExitCode> {
    let started = Instant::now();
    let (image, built) = image::ensure(&vm_dir(), &ensure_ssh_key()?)?;
    println!(
        "vm: image {} ({}, {:.1} s)",
        image.disk.display(),
        if built { "built" } else { "cached" },
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Builds what is needed and boots 1 + `workers` VMs; how long each part took.
fn up(workers: usize) -> Result<(Run, Vec<(String, Duration)>)> {
    if !(1..=20).contains(&workers) {
        bail!("--workers {workers}: use 1 to 20");
    }
    down()?;
    let mut times = Vec::new();
    let started = Instant::now();
    cluster::build()?;
    times.push(("build the binaries".to_owned(), started.elapsed()));

    let started = Instant::now();
    let pubkey = ensure_ssh_key()?;
    let (image, built) = image::ensure(&vm_dir(), &pubkey)?;
    let what = if built {
        "build the image"
    } else {
        "image (cached)"
    };
    times.push((what.to_owned(), started.elapsed()));

    let started = Instant::now();
    check_subnet_is_free()?;
    let run_dir = run_dir();
    std::fs::create_dir_all(&run_dir)?;
    let mut run = Run {
        netns: format!("{NETNS_PREFIX}{}", std::process::id()),
        vms: std::iter::once("cp".to_owned())
            .chain((1..=workers).map(|i| format!("w{i}")))
            .enumerate()
            .map(|(i, label)| Vm {
                label,
                addr: format!("{NET_PREFIX}.{}", 10 + i),
                pid: None,
            })
            .collect(),
    };
    // Recorded first: a failure from here on leaves what `down` needs.
    save(&run)?;
    make_network(&run)?;
    let accel = accel();
    for i in 0..run.vms.len() {
        let pid = boot(&run, &run.vms[i], &image, &run_dir, accel)?;
        run.vms[i].pid = Some(pid);
        save(&run)?;
    }
    for vm in &run.vms {
        wait_for_ssh(&run, vm)?;
    }
    times.push((
        format!("boot {} VMs until ssh answers", run.vms.len()),
        started.elapsed(),
    ));
    Ok((run, times))
}

fn save(run: &Run) -> Result<()> {
    std::fs::write(
        run_dir().join("state.json"),
        serde_json::to_string_pretty(&run.record())?,
    )?;
    Ok(())
}

/// The key `vm ssh` uses; its public half goes into the image.
fn ensure_ssh_key() -> Result<String> {
    let dir = vm_dir().join("ssh");
    let key = dir.join("id_ed25519");
    if !key.is_file() {
        std::fs::create_dir_all(&dir)?;
        shell::run(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "rudder-vm", "-f"])
                .arg(&key),
        )
        .context("vm: ssh-keygen failed (openssh-client is needed)")?;
    }
    Ok(std::fs::read_to_string(dir.join("id_ed25519.pub"))?)
}

/// The VMs' subnet must not be one the machine already uses.
fn check_subnet_is_free() -> Result<()> {
    let prefix = format!("{NET_PREFIX}.");
    for what in [["-4", "addr"], ["-4", "route"]] {
        let text = shell::output(Command::new("ip").args(what)).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(&prefix)) {
            bail!(
                "vm: {NET_PREFIX}.0/24 is in use in the root namespace ({line:?}); refusing to start"
            );
        }
    }
    Ok(())
}

/// The namespace, its bridge (with the namespace's own address, for ssh)
/// and one tap per VM.
fn make_network(run: &Run) -> Result<()> {
    let ns = run.netns.as_str();
    let ip = |args: &[&str]| -> Result<()> {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", ns]).args(args);
        shell::run(&mut cmd)
    };
    shell::run(Command::new("ip").args(["netns", "add", ns]))?;
    ip(&["link", "set", "lo", "up"])?;
    ip(&["link", "add", "br0", "type", "bridge"])?;
    ip(&["addr", "add", &format!("{NET_PREFIX}.1/24"), "dev", "br0"])?;
    ip(&["link", "set", "br0", "up"])?;
    for vm in &run.vms {
        let tap = format!("tap-{}", vm.label);
        ip(&["tuntap", "add", "dev", &tap, "mode", "tap"])?;
        ip(&["link", "set", &tap, "master", "br0", "up"])?;
    }
    Ok(())
}

/// Starts `vm`'s qemu (daemonised, inside the namespace); its pid.
fn boot(
    run: &Run,
    vm: &Vm,
    image: &image::Image,
    run_dir: &Path,
    (accel, cpu): (&str, &str),
) -> Result<u32> {
    let overlay = run_dir.join(format!("{}.qcow2", vm.label));
    let _ = std::fs::remove_file(&overlay);
    shell::run(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&image.disk)
            .arg(&overlay),
    )?;
    let pidfile = run_dir.join(format!("{}.pid", vm.label));
    let _ = std::fs::remove_file(&pidfile);
    let octet = vm.addr.rsplit('.').next().unwrap_or("0");
    let octet: u8 = octet.parse().unwrap_or(0);
    let append = format!(
        "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet \
         systemd.default_device_timeout_sec=600 \
         rudder.addr={}/24 rudder.hostname={}",
        vm.addr, vm.label
    );
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &run.netns, "qemu-system-x86_64"])
        .args(["-name", &format!("rudder-vm-{}", vm.label)])
        .args(["-machine", &format!("q35,accel={accel}"), "-cpu", cpu])
        .args(["-smp", "2"])
        .args(["-m", &MEMORY_MIB.to_string()])
        .args(["-nodefaults", "-display", "none", "-monitor", "none"])
        .arg("-serial")
        .arg(format!(
            "file:{}",
            run_dir.join(format!("{}.console", vm.label)).display()
        ))
        .arg("-kernel")
        .arg(&image.kernel)
        .arg("-initrd")
        .arg(&image.initrd)
        .args(["-append", &append])
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=qcow2,cache=unsafe",
            overlay.display()
        ))
        .args([
            "-netdev",
            &format!("tap,id=n0,ifname=tap-{},script=no,downscript=no", vm.label),
        ])
        .args([
            "-device",
            &format!("virtio-net-pci,netdev=n0,mac=52:54:00:12:0a:{octet:02x}"),
        ])
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=rudder,security_model=none,readonly=on",
            shell::workspace_root().display()
        ))
        .args(["-device", "virtio-rng-pci"])
        .arg("-daemonize")
        .arg("-pidfile")
        .arg(&pidfile);
    shell::run(&mut cmd)?;
    let pid = std::fs::read_to_string(&pidfile)
        .with_context(|| format!("qemu wrote no {}", pidfile.display()))?;
    pid.trim()
        .parse()
        .with_context(|| format!("{} holds no pid", pidfile.display()))
}

/// Polls (bounded) until `vm` answers ssh.
fn wait_for_ssh(run: &Run, vm: &Vm) -> Result<()> {
    let started = Instant::now();
    loop {
        let ok = run
            .ssh(vm, "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(());
        }
        if started.elapsed() > BOOT_TIMEOUT {
            bail!(
                "{} did not answer ssh within {} s; its console: {}",
                vm.label,
                BOOT_TIMEOUT.as_secs(),
                run_dir().join(format!("{}.console", vm.label)).display()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `vm ssh VM [CMD...]`: the command's exit code passed on.
///
/// # Errors
/// When no VMs are up or the VM is unknown.
pub fn ssh(label: &str, command: &[String]) -> Result<ExitCode> {
    let run = Run::load()?.context("no VMs are up: start them with `cargo xtask vm up`")?;
    let vm = run.vm(label)?;
    let mut cmd = run.ssh(vm, &command.join(" "));
    if command.is_empty() {
        cmd.arg("-t");
    }
    let status = cmd.status()?;
    Ok(ExitCode::from(
        u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
    ))
}

/// One step of the smoke test and how it went.
struct Step {
    name: String,
    result: Result<(), String>,
    took: Duration,
}

/// `vm smoke`: up, provision, the smoke checks, down (unless `keep`).
///
/// # Errors
/// When a step fails (after the summary is printed and the VMs are down).
pub fn smoke(workers: usize, keep: bool) -> Result<ExitCode> {
    let mut steps: Vec<Step> = Vec::new();
    let outcome = smoke_steps(workers, &mut steps);
    println!("\nvm smoke: summary");
    for step in &steps {
        let result = match &step.result {
            Ok(()) => "ok".to_owned(),
            Err(err) => format!("FAILED: {err}"),
        };
        println!(
            "   {:<58} {:>6.1} s  {result}",
            step.name,
            step.took.as_secs_f64()
        );
    }
    if !keep {
        down()?;
    }
    outcome?;
    println!("vm smoke: passed");
    Ok(ExitCode::SUCCESS)
}

fn smoke_steps(workers: usize, steps: &mut Vec<Step>) -> Result<()> {
    let started = Instant::now();
    let (run, times) = match up(workers) {
        Ok(up) => up,
        Err(err) => {
            steps.push(Step {
                name: "up".to_owned(),
                result: Err(format!("{err:#}")),
                took: started.elapsed(),
            });
            return Err(err);
        }
    };
    for (name, took) in times {
        steps.push(Step {
            name,
            result: Ok(()),
            took,
        });
    }
    let mut step = |name: String, body: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        println!("\nvm smoke: {name}");
        let started = Instant::now();
        let result = body();
        steps.push(Step {
            name,
            result: result.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")),
            took: started.elapsed(),
        });
        result
    };
    let scripts = format!("{GUEST_TREE}/vagrant/provision");
    let bins = format!("{GUEST_TREE}/target/debug");
    let cp = run.vm("cp")?;
    let workers: Vec<&Vm> = run.workers().collect();
    let all: Vec<&Vm> = run.vms.iter().collect();

    step("install the binaries on every VM".into(), &mut || {
        run.run_on_each(&all, &format!("{scripts}/install.sh {bins}"))
    })?;
    step(format!("control plane on cp ({})", cp.addr), &mut || {
        run.run_on(cp, &format!("{scripts}/controlplane.sh {}", cp.addr))
    })?;
    step(format!("join {} worker(s)", workers.len()), &mut || {
        for (i, w) in workers.iter().enumerate() {
            run.copy_dir(cp, w, "/var/lib/rudder/join")?;
            run.run_on(
                w,
                &format!(
                    "{scripts}/worker.sh {} {} 10.244.{}.0/24 /var/lib/rudder/join",
                    w.label,
                    w.addr,
                    i + 1
                ),
            )?;
        }
        Ok(())
    })?;
    let addrs: Vec<&str> = workers.iter().map(|w| w.addr.as_str()).collect();
    step(
        "apply examples/, NodePort on each worker from cp".into(),
        &mut || {
            run.run_on(
                cp,
                &format!(
                    "{scripts}/smoke-controlplane.sh {GUEST_TREE}/examples {}",
                    addrs.join(" ")
                ),
            )
        },
    )?;
    step("ClusterIP from a pod on each worker".into(), &mut || {
        for w in &workers {
            run.copy_dir(cp, w, "/var/lib/rudder/join")?;
            run.run_on(
                w,
                &format!(
                    "{scripts}/smoke-worker.sh {} /var/lib/rudder/join/smoke",
                    w.label
                ),
            )?;
        }
        Ok(())
    })?;
    step(
        "iptables-save and nft list ruleset empty on every VM".into(),
        &mut || run.run_on_each(&all, &format!("{scripts}/check-no-rules.sh")),
    )?;
    step("sch_fq in every VM's kernel".into(), &mut || {
        run.run_on_each(&all, &format!("{scripts}/check-kernel.sh"))
    })?;
    Ok(())
}

/// `vm down`: every VM process, tap, bridge, namespace and overlay of any
/// run, recorded or not (a crashed `up` leaves a namespace named after it).
///
/// # Errors
/// When something is still there afterwards.
pub fn down() -> Result<()> {
    let mut namespaces: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(NETNS_PREFIX))
        .collect();
    let mut pids: Vec<u32> = Vec::new();
    if let Some(run) = Run::load()? {
        pids.extend(run.vms.iter().filter_map(|v| v.pid));
        if !namespaces.contains(&run.netns) {
            namespaces.push(run.netns);
        }
    }
    for ns in &namespaces {
        let text =
            shell::output(Command::new("ip").args(["netns", "pids", ns])).unwrap_or_default();
        pids.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    // Only qemu processes: a recorded pid may have been reused since.
    pids.retain(|pid| is_qemu(*pid));
    pids.sort_unstable();
    pids.dedup();
    stop(&pids)?;
    for ns in &namespaces {
        // The taps and the bridge live in the namespace and go with it.
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
    let _ = std::fs::remove_dir_all(run_dir());
    let left: Vec<&String> = namespaces
        .iter()
        .filter(|ns| Path::new("/run/netns").join(ns).exists())
        .collect();
    if !left.is_empty() {
        bail!("vm: namespaces still present after down: {left:?}");
    }
    if !namespaces.is_empty() || !pids.is_empty() {
        println!(
            "vm: down ({} VM process(es), namespace(s) {})",
            pids.len(),
            namespaces.join(", ")
        );
    }
    Ok(())
}

fn is_qemu(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).starts_with("qemu-system"))
}

/// SIGTERM, then SIGKILL for what is left after 10 s; waits until gone.
fn stop(pids: &[u32]) -> Result<()> {
    use nix::{sys::signal, unistd::Pid};
    let alive = |pid: &&u32| Path::new(&format!("/proc/{pid}")).exists() && is_qemu(**pid);
    for pid in pids {
        let _ = signal::kill(Pid::from_raw(i32::try_from(*pid)?), signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(&p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in pids.iter().filter(alive) {
        let _ = signal::kill(Pid::from_raw(i32::try_from(*pid)?), signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| alive(&p)) {
        if Instant::now() >= deadline {
            bail!("vm: qemu processes did not exit: {pids:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
