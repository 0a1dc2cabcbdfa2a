//! Making sure the node's pin directory lives on a bpffs.

use std::path::{Path, PathBuf};

use nix::{mount::MsFlags, sys::statfs::BPF_FS_MAGIC};

use super::DataplaneError;

/// Where bpffs is conventionally mounted; the only place the agent mounts
/// one itself.
const DEFAULT_BPFFS: &str = "/sys/fs/bpf";

/// Creates `dir` on a bpffs. If no bpffs is mounted above it and `dir` is
/// under /sys/fs/bpf, mounts one there first (as systemd does on most
/// distributions). Pins only survive a restart of the agent if the mount is
/// in the machine's mount namespace, which is why the agent enters node
/// network namespaces with setns instead of `ip netns exec` (which gives
/// its child a private /sys).
///
/// # Errors
/// When `dir` is not under a bpffs and cannot be put under one.
pub fn ensure_bpffs(dir: &Path) -> Result<(), DataplaneError> {
    if !on_bpffs(&nearest_existing(dir)) {
        let root = Path::new(DEFAULT_BPFFS);
        if !dir.starts_with(root) {
            return Err(DataplaneError::NotOnBpffs {
                path: dir.to_path_buf(),
            });
        }
        std::fs::create_dir_all(root).map_err(|source| DataplaneError::BpffsDirectory {
            path: root.to_path_buf(),
            source,
        })?;
        if !on_bpffs(root) {
            nix::mount::mount(
                Some("bpf"),
                root,
                Some("bpf"),
                MsFlags::empty(),
                None::<&str>,
            )
            .map_err(|source| DataplaneError::MountBpffs {
                path: root.to_path_buf(),
                source,
            })?;
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| DataplaneError::BpffsDirectory {
        path: dir.to_path_buf(),
        source,
    })
}

fn on_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|fs| fs.filesystem_type() == BPF_FS_MAGIC)
}

fn nearest_existing(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|p| p.exists())
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}
