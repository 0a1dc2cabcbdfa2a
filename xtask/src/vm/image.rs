//! The VMs' disk image: Debian from the archive (debootstrap), with its own
//! kernel and initrd beside it for direct boot, cached under target/vm/ and
//! keyed on everything that goes into it.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail};

use crate::shell;

/// The Debian release the VMs run (kernel 6.12).
const SUITE: &str = "trixie";
/// Where debootstrap fetches it (`RUDDER_VM_MIRROR` overrides).
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// What the image holds beyond minbase, and why.
const PACKAGES: &[&str] = &[
    // init, device nodes, kernel modules
    "systemd",
    "systemd-sysv",
    "udev",
    "kmod",
    "linux-image-amd64",
    // the way in from `vm ssh`
    "openssh-server",
    // the provisioning scripts: ip/tc, JSON, the no-rules check
    "iproute2",
    "procps",
    "jq",
    "iptables",
    "nftables",
];
/// The root filesystem's size (sparse; the overlays hold what VMs write).
const DISK_SIZE: &str = "3G";

/// Sets the VM's address and hostname from its kernel command line
/// (`rudder.addr=198.18.10.10/24 rudder.hostname=cp`): one image, many VMs.
const NET_SCRIPT: &str = r#"#!/bin/sh
# The address and name `cargo xtask vm` gave this VM on its kernel command line.
set -eu
addr= name=
for arg in $(cat /proc/cmdline); do
    case $arg in
        rudder.addr=*) addr=${arg#*=} ;;
        rudder.hostname=*) name=${arg#*=} ;;
    esac
done
if [ -n "$name" ]; then
    hostname "$name"
    echo "$name" >/etc/hostname
    printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$name" >/etc/hosts
fi
ip link set lo up
ip link set eth0 up
if [ -n "$addr" ]; then ip addr replace "$addr" dev eth0; fi
"#;

const NET_UNIT: &str = "[Unit]
Description=Address and hostname from the kernel command line (cargo xtask vm)
DefaultDependencies=no
After=systemd-udevd.service sys-subsystem-net-devices-eth0.device
Wants=sys-subsystem-net-devices-eth0.device
Before=network-online.target ssh.service
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/rudder-vm-net

[Install]
WantedBy=multi-user.target
";

/// The project's tree, shared read-only by the host over virtio-9p.
const FSTAB: &str = "/dev/vda / ext4 rw,errors=remount-ro 0 1
rudder /mnt/rudder 9p trans=virtio,version=9p2000.L,ro,msize=262144,nofail,x-systemd.device-timeout=10s 0 0
";

/// A built image: the disk every VM's overlay is backed by, and its kernel.
#[derive(Debug, Clone)]
pub struct Image {
    pub disk: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// The image for `ssh_pubkey`, built unless a matching one is cached.
/// Returns it and whether it was built now.
///
/// # Errors
/// When debootstrap, mkfs or a copy fails.
pub fn ensure(vm_dir: &Path, ssh_pubkey: &str) -> Result<(Image, bool)> {
    let mirror = std::env::var("RUDDER_VM_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_owned());
    let inputs = [
        SUITE,
        &mirror,
        &PACKAGES.join(","),
        DISK_SIZE,
        NET_SCRIPT,
        NET_UNIT,
        FSTAB,
        ssh_pubkey,
    ]
    .join("\n\0");
    let dir = vm_dir.join(format!("image-{:016x}", fnv1a(inputs.as_bytes())));
    let image = Image {
        disk: dir.join("root.raw"),
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
    };
    let done = dir.join("inputs.txt");
    if done.is_file() {
        return Ok((image, false));
    }
    // An older image is of no further use: keep the disk small.
    remove_other_images(vm_dir, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let rootfs = dir.join("rootfs");
    println!(
        "vm: building the image in {} (debootstrap {SUITE} from {mirror}; a few minutes)",
        dir.display()
    );
    let log = dir.join("debootstrap.log");
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", "--components=main"])
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg(SUITE)
        .arg(&rootfs)
        .arg(&mirror)
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(&log)?)
        .status()
        .context("vm: debootstrap is missing: run `cargo xtask setup`")?;
    if !status.success() {
        bail!("vm: debootstrap failed ({status}); see {}", log.display());
    }
    println!(
        "vm: debootstrap done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    configure(&rootfs, ssh_pubkey)?;
    copy_boot_files(&rootfs, &image)?;
    shell::run(
        Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-L",
                "rudder-root",
                "-E",
                "root_owner=0:0",
                "-d",
            ])
            .arg(&rootfs)
            .arg(&image.disk)
            .arg(DISK_SIZE),
    )?;
    std::fs::remove_dir_all(&rootfs)?;
    std::fs::write(&done, inputs.replace('\0', ""))?;
    println!(
        "vm: image built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok((image, true))
}

/// Files that make the debootstrapped tree a VM `vm` can boot and reach.
fn configure(rootfs: &Path, ssh_pubkey: &str) -> Result<()> {
    let write = |path: &str, text: &str, mode: u32| -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = rootfs.join(path.trim_start_matches('/'));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    write("/etc/fstab", FSTAB, 0o644)?;
    std::fs::create_dir_all(rootfs.join("mnt/rudder"))?;
    write("/usr/local/sbin/rudder-vm-net", NET_SCRIPT, 0o755)?;
    write("/etc/systemd/system/rudder-vm-net.service", NET_UNIT, 0o644)?;
    let wants = rootfs.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants)?;
    let link = wants.join("rudder-vm-net.service");
    if !link.exists() {
        std::os::unix::fs::symlink("/etc/systemd/system/rudder-vm-net.service", link)?;
    }
    write("/root/.ssh/authorized_keys", ssh_pubkey, 0o600)?;
    std::fs::set_permissions(
        rootfs.join("root/.ssh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )?;
    // Each VM makes its own machine id at first boot.
    write("/etc/machine-id", "", 0o444)?;
    // The archive's packages are installed; their downloads are dead weight.
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        for entry in std::fs::read_dir(rootfs.join(dir))?.flatten() {
            if entry.path().is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}

/// The kernel and initrd the package installed, for qemu's direct boot.
fn copy_boot_files(rootfs: &Path, image: &Image) -> Result<()> {
    let boot = rootfs.join("boot");
    let find = |prefix: &str| -> Result<PathBuf> {
        std::fs::read_dir(&boot)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .max()
            .with_context(|| format!("no {prefix}* in {}", boot.display()))
    };
    std::fs::copy(find("vmlinuz-")?, &image.kernel)?;
    std::fs::copy(find("initrd.img-")?, &image.initrd)?;
    Ok(())
}

fn remove_other_images(vm_dir: &Path, keep: &Path) {
    for entry in std::fs::read_dir(vm_dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let is_image = entry.file_name().to_string_lossy().starts_with("image-");
        if is_image && path != keep {
            println!("vm: removing the outdated image {}", path.display());
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// FNV-1a: a stable hash of the image's inputs (std's hasher may change
/// between Rust releases, which would rebuild the image for nothing).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::fnv1a;

    #[test]
    fn the_cache_key_is_stable_and_sees_every_byte() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fnv1a(b"trixie\n\0jq"), fnv1a(b"trixie\n\0jr"));
    }
}
