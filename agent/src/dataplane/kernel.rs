//! What the running kernel offers the dataplane, probed when the agent
//! starts: it prints what it will use and refuses, with the reason, what
//! it cannot do, rather than failing later on a bare errno.
//!
//! | feature                           | kernel | config                          |
//! |-----------------------------------|--------|---------------------------------|
//! | minimum supported (Debian 12)     | 6.1    | BPF_SYSCALL, BPF_JIT, DEBUG_INFO_BTF |
//! | tc clsact + bpf filter (netlink)  | any    | NET_SCH_INGRESS, NET_CLS_BPF, NET_CLS_ACT |
//! | TCX links (preferred tc attach)   | 6.6    |                                 |
//! | XDP bpf_link (native or generic)  | 5.9    | (driver support for native)     |
//! | cgroup sock_addr hooks, bpf_link  | 5.7    | CGROUP_BPF, cgroup v2 mounted   |
//! | fq qdisc (EDT pacing)             | any    | NET_SCH_FQ                      |

use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
};

/// The oldest kernel rudder supports: Debian 12's. Older ones lack pieces
/// the programs and their attachment rely on (and are not tested).
pub const MINIMUM_KERNEL: (u32, u32) = (6, 1);
/// The first kernel with TCX (bpf_link based tc attachment).
pub const TCX_KERNEL: (u32, u32) = (6, 6);

/// How tc programs attach to interfaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcAttach {
    /// TCX: pinned bpf_links, switched atomically on an agent restart.
    Tcx,
    /// A clsact qdisc with a bpf filter at rudder's priority, over netlink
    /// (kernels before 6.6); a restarted agent replaces the filter's
    /// program in place.
    Filter,
}

impl TcAttach {
    /// TCX where the running kernel has it, filters otherwise.
    pub fn for_running_kernel() -> Self {
        match kernel_version(&kernel_release()) {
            Some(version) if version < TCX_KERNEL => Self::Filter,
            _ => Self::Tcx,
        }
    }
}

impl fmt::Display for TcAttach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcx => "TCX links",
            Self::Filter => "tc clsact filters (netlink)",
        })
    }
}

/// The `--attach-mode` an operator asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachMode {
    /// TCX where the kernel has it (6.6+), tc filters otherwise.
    #[default]
    Auto,
    /// TCX only (refused on kernels without it).
    Tcx,
    /// tc filters everywhere, as on kernels before 6.6.
    Tc,
}

impl FromStr for AttachMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(Self::Auto),
            "tcx" => Ok(Self::Tcx),
            "tc" => Ok(Self::Tc),
            other => Err(format!("{other:?}: expected auto, tcx or tc")),
        }
    }
}

/// What the kernel cannot do that this agent was asked to.
#[expect(
    missing_docs,
    reason = "fields name the kernel release, path or setting at fault"
)]
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The kernel is older than [`MINIMUM_KERNEL`].
    #[error(
        "kernel {release} is older than {}.{}, the oldest rudder supports (Debian 12's); \
         boot a newer kernel",
        MINIMUM_KERNEL.0, MINIMUM_KERNEL.1
    )]
    TooOld { release: String },
    /// No kernel BTF: the programs cannot be relocated against this kernel.
    #[error(
        "kernel {release} has no BTF (/sys/kernel/btf/vmlinux is missing): rudder's programs \
         need a kernel built with CONFIG_DEBUG_INFO_BTF=y (every Debian kernel is)"
    )]
    NoBtf { release: String },
    /// No bpf file system type: nothing can be pinned, so nothing survives
    /// an agent restart.
    #[error(
        "kernel {release} has no bpf file system (not in /proc/filesystems): pinned maps and \
         links need CONFIG_BPF_SYSCALL=y"
    )]
    NoBpffs { release: String },
    /// A cgroup directory given for socket hooks or pod limits is not on
    /// cgroup v2.
    #[error(
        "{what} {}: not a cgroup v2 directory ({found}); rudder's socket hooks and pod limits \
         need the unified hierarchy (boot with systemd.unified_cgroup_hierarchy=1, or give a \
         directory under the cgroup2 mount)",
        .path.display()
    )]
    NotCgroup2 {
        what: &'static str,
        path: PathBuf,
        found: String,
    },
    /// TCX was asked for on a kernel without it.
    #[error(
        "--attach-mode tcx: kernel {release} has no TCX (6.6 and later); use --attach-mode tc \
         or auto"
    )]
    NoTcx { release: String },
}

/// What the running kernel offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelProbe {
    /// `uname -r`.
    pub release: String,
    /// (major, minor), when the release parses.
    pub version: Option<(u32, u32)>,
    /// /sys/kernel/btf/vmlinux exists.
    pub btf: bool,
    /// The bpf file system type exists.
    pub bpffs: bool,
    /// /sys/fs/bpf is a bpffs mount already (else the agent mounts one).
    pub bpffs_mounted: bool,
    /// Where cgroup v2 is mounted, if anywhere (`None`: cgroup v1 only).
    pub cgroup2: Option<PathBuf>,
    /// Whether the fq qdisc is there (`None`: cannot tell: no kernel
    /// config to read and the module is not loaded).
    pub fq: Option<bool>,
}

/// What the agent will use, decided from a [`KernelProbe`] and its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelPlan {
    /// How tc programs attach.
    pub tc: TcAttach,
}

/// What `serve` is asked to do that depends on the kernel.
#[derive(Clone, Debug, Default)]
pub struct KernelNeeds<'a> {
    /// `--attach-mode`.
    pub attach_mode: AttachMode,
    /// `--cgroup`: connect-time translation there.
    pub socket_cgroup: Option<&'a Path>,
    /// `--pod-cgroup-root`.
    pub pod_cgroup_root: Option<&'a Path>,
}

impl KernelProbe {
    /// Probes the running kernel (reads /proc and /sys only).
    pub fn run() -> Self {
        let release = kernel_release();
        let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        let has_fs = |name: &str| {
            filesystems
                .lines()
                .any(|l| l.split_whitespace().last() == Some(name))
        };
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mount_of_type = |fstype: &str| {
            mounts.lines().find_map(|l| {
                let mut fields = l.split_whitespace();
                let (_, point, kind) = (fields.next(), fields.next()?, fields.next()?);
                (kind == fstype).then(|| PathBuf::from(point))
            })
        };
        Self {
            version: kernel_version(&release),
            btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
            bpffs: has_fs("bpf"),
            bpffs_mounted: mounts.lines().any(|l| {
                let mut fields = l.split_whitespace().skip(1);
                fields.next() == Some("/sys/fs/bpf") && fields.next() == Some("bpf")
            }),
            cgroup2: mount_of_type("cgroup2"),
            fq: fq_available(&release),
            release,
        }
    }

    /// What the agent will use for `needs`, or why it cannot.
    ///
    /// # Errors
    /// [`KernelError`] for a kernel too old, without BTF or bpffs, TCX
    /// asked for where there is none, or a cgroup directory not on cgroup v2.
    pub fn plan(&self, needs: &KernelNeeds<'_>) -> Result<KernelPlan, KernelError> {
        let release = || self.release.clone();
        if self.version.is_some_and(|v| v < MINIMUM_KERNEL) {
            return Err(KernelError::TooOld { release: release() });
        }
        if !self.btf {
            return Err(KernelError::NoBtf { release: release() });
        }
        if !self.bpffs {
            return Err(KernelError::NoBpffs { release: release() });
        }
        let has_tcx = self.version.is_none_or(|v| v >= TCX_KERNEL);
        let tc = match needs.attach_mode {
            AttachMode::Tc => TcAttach::Filter,
            AttachMode::Tcx if !has_tcx => return Err(KernelError::NoTcx { release: release() }),
            AttachMode::Tcx => TcAttach::Tcx,
            AttachMode::Auto if has_tcx => TcAttach::Tcx,
            AttachMode::Auto => TcAttach::Filter,
        };
        for (what, path) in [
            ("--cgroup", needs.socket_cgroup),
            ("--pod-cgroup-root", needs.pod_cgroup_root),
        ] {
            if let Some(path) = path {
                check_cgroup2(what, path)?;
            }
        }
        Ok(KernelPlan { tc })
    }

    /// One line per feature, for the agent's start-up log.
    pub fn describe(&self, plan: &KernelPlan, needs: &KernelNeeds<'_>, xdp: bool) -> Vec<String> {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let cgroup2 = self
            .cgroup2
            .as_ref()
            .map_or("not mounted (cgroup v1 only)".to_owned(), |p| {
                format!("mounted on {}", p.display())
            });
        let sockets = match needs.socket_cgroup {
            Some(path) => format!("on {}", path.display()),
            None => "off (no --cgroup)".to_owned(),
        };
        let fq = match self.fq {
            Some(true) => "available (EDT pacing)",
            Some(false) => "missing (CONFIG_NET_SCH_FQ): limits are enforced by drops",
            None => "unknown (no kernel config to read, module not loaded)",
        };
        vec![
            format!("kernel: {}", self.release),
            format!("BTF: {}", yes_no(self.btf)),
            format!(
                "bpffs: {}",
                if self.bpffs_mounted {
                    "mounted on /sys/fs/bpf"
                } else {
                    "supported, the agent mounts it"
                }
            ),
            format!("cgroup v2: {cgroup2}"),
            format!("tc attachment: {}", plan.tc),
            format!(
                "XDP: {}",
                if xdp {
                    "on (native where the uplink's driver has it, generic otherwise; logged at attach)"
                } else {
                    "off (no --xdp)"
                }
            ),
            format!("cgroup socket hooks: {sockets}"),
            format!("fq qdisc: {fq}"),
        ]
    }
}

/// `uname -r`.
fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// (major, minor) of a release such as `6.1.0-28-amd64` or `6.18.44-fc`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether sch_fq is built in, a module, or loaded.
fn fq_available(release: &str) -> Option<bool> {
    if Path::new("/sys/module/sch_fq").exists() {
        return Some(true);
    }
    let config = std::fs::read_to_string(format!("/boot/config-{release}")).ok();
    if let Some(config) = config {
        return Some(
            config
                .lines()
                .any(|l| l == "CONFIG_NET_SCH_FQ=y" || l == "CONFIG_NET_SCH_FQ=m"),
        );
    }
    let modules = Path::new("/lib/modules").join(release);
    let builtin = std::fs::read_to_string(modules.join("modules.builtin")).unwrap_or_default();
    if builtin.lines().any(|l| l.ends_with("/sch_fq.ko")) {
        return Some(true);
    }
    let sched = modules.join("kernel/net/sched");
    let module = std::fs::read_dir(&sched)
        .ok()?
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("sch_fq.ko"));
    Some(module)
}

fn check_cgroup2(what: &'static str, path: &Path) -> Result<(), KernelError> {
    let found = match nix::sys::statfs::statfs(path) {
        Ok(fs) if fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => return Ok(()),
        Ok(fs) if fs.filesystem_type() == nix::sys::statfs::CGROUP_SUPER_MAGIC => {
            "it is cgroup v1".to_owned()
        }
        Ok(_) => "it is not a cgroup file system".to_owned(),
        Err(err) => format!("cannot stat it: {err}"),
    };
    Err(KernelError::NotCgroup2 {
        what,
        path: path.to_path_buf(),
        found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(release: &str) -> KernelProbe {
        KernelProbe {
            release: release.to_owned(),
            version: kernel_version(release),
            btf: true,
            bpffs: true,
            bpffs_mounted: true,
            cgroup2: Some(PathBuf::from("/sys/fs/cgroup")),
            fq: Some(true),
        }
    }

    fn plan(probe: &KernelProbe, attach_mode: AttachMode) -> Result<KernelPlan, KernelError> {
        probe.plan(&KernelNeeds {
            attach_mode,
            ..KernelNeeds::default()
        })
    }

    #[test]
    fn parses_distribution_kernel_releases() {
        assert_eq!(kernel_version("6.1.0-28-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("6.12.9+bpo-amd64"), Some((6, 12)));
        assert_eq!(kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(kernel_version("5.10.0"), Some((5, 10)));
        assert_eq!(kernel_version("garbage"), None);
    }

    #[test]
    fn debian_12_gets_tc_filters_and_newer_kernels_tcx() {
        let bookworm = probe("6.1.0-28-amd64");
        assert_eq!(
            plan(&bookworm, AttachMode::Auto).map(|p| p.tc).ok(),
            Some(TcAttach::Filter)
        );
        let err = plan(&bookworm, AttachMode::Tcx)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("no TCX")));
        let trixie = probe("6.12.9-amd64");
        assert_eq!(
            plan(&trixie, AttachMode::Auto).map(|p| p.tc).ok(),
            Some(TcAttach::Tcx)
        );
        assert_eq!(
            plan(&trixie, AttachMode::Tc).map(|p| p.tc).ok(),
            Some(TcAttach::Filter)
        );
    }

    #[test]
    fn refuses_what_the_kernel_cannot_do_and_says_why() {
        let old = probe("5.10.0-30-amd64");
        let err = plan(&old, AttachMode::Auto).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("older than 6.1")), "too old");
        let no_btf = KernelProbe {
            btf: false,
            ..probe("6.1.0")
        };
        let err = plan(&no_btf, AttachMode::Auto).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("CONFIG_DEBUG_INFO_BTF")));
        let no_bpffs = KernelProbe {
            bpffs: false,
            ..probe("6.1.0")
        };
        assert!(matches!(
            plan(&no_bpffs, AttachMode::Auto),
            Err(KernelError::NoBpffs { .. })
        ));
        // /proc is no cgroup: a socket cgroup there is refused with the reason.
        let err = probe("6.12.0")
            .plan(&KernelNeeds {
                socket_cgroup: Some(Path::new("/proc")),
                ..KernelNeeds::default()
            })
            .err()
            .map(|e| e.to_string());
        assert!(
            err.is_some_and(|e| e.contains("--cgroup /proc: not a cgroup v2 directory")),
            "not cgroup2"
        );
        assert!("frob".parse::<AttachMode>().is_err());
        assert_eq!("tc".parse::<AttachMode>(), Ok(AttachMode::Tc));
    }
}
