//! Network namespaces: open one by path or name, create and delete named
//! ones the way `ip netns add`/`del` do (an nsfs file bind-mounted under
//! `/run/netns`), and run code inside one.
//!
//! Network namespaces belong to threads: [`NetworkNamespace::run`] enters
//! on a thread of its own, so the caller's threads never leave theirs, and
//! [`NetworkNamespace::spawn`] enters in the child between fork and exec.

use std::{
    fs::File,
    io,
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd},
        unix::{fs::DirBuilderExt, process::CommandExt},
    },
    path::{Path, PathBuf},
    process::{Child, Command},
};

use nix::{
    errno::Errno,
    fcntl::OFlag,
    mount::{MntFlags, MsFlags},
    sched::CloneFlags,
    sys::stat::Mode,
};

use crate::{NamespaceError, RouteSocket};

/// Where named network namespaces live (as `ip netns` keeps them).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// `statfs` magic of nsfs, where namespace files live.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// An open network namespace file: a bind mount such as `/run/netns/NAME`,
/// or `/proc/PID/ns/net`. The namespace lives at least as long as the
/// handle.
#[derive(Debug)]
pub struct NetworkNamespace {
    path: PathBuf,
    file: File,
}

impl NetworkNamespace {
    /// Opens the network namespace file at `path`.
    ///
    /// # Errors
    ///
    /// [`NamespaceError::Open`] when it cannot be opened (see
    /// [`NamespaceError::is_not_found`]), [`NamespaceError::Stat`] or
    /// [`NamespaceError::NotNetworkNamespace`] when it is not on nsfs.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, NamespaceError> {
        let path = path.as_ref().to_owned();
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(source) => return Err(NamespaceError::Open { path, source }),
        };
        let fs = match nix::sys::statfs::fstatfs(&file) {
            Ok(fs) => fs,
            Err(errno) => {
                return Err(NamespaceError::Stat {
                    path,
                    source: errno.into(),
                });
            }
        };
        // The magic's integer type differs between libcs.
        #[expect(
            clippy::useless_conversion,
            reason = "f_type is i64 on glibc x86_64 only"
        )]
        let magic = i64::from(fs.filesystem_type().0);
        if magic != NSFS_MAGIC {
            return Err(NamespaceError::NotNetworkNamespace { path });
        }
        Ok(Self { path, file })
    }

    /// Opens the named namespace `/run/netns/NAME`.
    ///
    /// # Errors
    ///
    /// [`NamespaceError::InvalidName`], else as [`NetworkNamespace::open`].
    pub fn open_named(name: &str) -> Result<Self, NamespaceError> {
        Self::open(named_path(name)?)
    }

    /// Creates a new network namespace named `name`, as `ip netns add`
    /// does: `/run/netns` made a shared mount (so the name is seen in other
    /// mount namespaces), a new namespace bind-mounted on
    /// `/run/netns/NAME`. The namespace has only a loopback, down.
    ///
    /// # Errors
    ///
    /// [`NamespaceError::InvalidName`]; [`NamespaceError::Exists`] when
    /// the name is taken (the existing namespace is left alone);
    /// [`NamespaceError::Create`] when a step fails (nothing is left
    /// behind).
    pub fn create_named(name: &str) -> Result<Self, NamespaceError> {
        let path = named_path(name)?;
        let failed = |what: &'static str, source: io::Error| NamespaceError::Create {
            path: path.clone(),
            what,
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(NETNS_RUN_DIR)
            .map_err(|e| failed("cannot create the directory", e))?;
        share_run_dir().map_err(|e| failed("cannot make the directory a shared mount", e))?;
        match nix::fcntl::open(
            &path,
            OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => drop(fd),
            Err(Errno::EEXIST) => return Err(NamespaceError::Exists { path }),
            Err(errno) => return Err(failed("cannot create the file", errno.into())),
        }
        if let Err(err) = bind_new_namespace(&path) {
            let _ = std::fs::remove_file(&path);
            return Err(failed("cannot make the namespace", err));
        }
        Self::open(&path)
    }

    /// Deletes the named namespace, as `ip netns del` does: unmounts
    /// `/run/netns/NAME` and removes the file. The namespace itself goes
    /// once no process and no open handle holds it.
    ///
    /// # Errors
    ///
    /// [`NamespaceError::InvalidName`]; [`NamespaceError::Delete`] when the
    /// file cannot be removed (`ENOENT`: there is no such namespace).
    pub fn delete_named(name: &str) -> Result<(), NamespaceError> {
        let path = named_path(name)?;
        // A file that is not (or no longer) a mount point is still removed.
        let _ = nix::mount::umount2(&path, MntFlags::MNT_DETACH);
        std::fs::remove_file(&path).map_err(|source| NamespaceError::Delete { path, source })
    }

    /// The path it was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace file, to hand to the kernel (e.g. a veth peer's
    /// namespace).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Runs `f` on a thread that has entered the namespace, and returns
    /// what it returned. Sockets `f` opens stay in the namespace. A panic
    /// in `f` is resumed on the calling thread.
    ///
    /// # Errors
    ///
    /// [`NamespaceError::Enter`] when the namespace cannot be entered.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NamespaceError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    nix::sched::setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|errno| {
                        NamespaceError::Enter {
                            path: self.path.clone(),
                            source: errno.into(),
                        }
                    })?;
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// A netlink socket that talks to this namespace.
    ///
    /// # Errors
    ///
    /// [`NamespaceError::Enter`], or [`NamespaceError::Socket`] when the
    /// socket cannot be opened.
    pub fn route_socket(&self) -> Result<RouteSocket, NamespaceError> {
        self.run(RouteSocket::open)?
            .map_err(|source| NamespaceError::Socket {
                path: self.path.clone(),
                source,
            })
    }

    /// Spawns `command` with its network namespace set to this one; the
    /// rest of its context (mounts, `/sys`, `/etc`) is the caller's, as it
    /// is for a pod's containers.
    ///
    /// # Errors
    ///
    /// The spawn's error, including the child's failure to enter the
    /// namespace.
    pub fn spawn(&self, mut command: Command) -> io::Result<Child> {
        let fd = self.file.as_raw_fd();
        // SAFETY: between fork and exec the closure makes one
        // async-signal-safe syscall, on a descriptor that `self` keeps open
        // until `spawn` below has returned; `command` is consumed, so it
        // cannot run the closure again after `self` is gone.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
        command.spawn()
    }
}

/// `/run/netns/NAME`, for a name that is one path component.
fn named_path(name: &str) -> Result<PathBuf, NamespaceError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name == "." || name == ".." || name.contains('/') {
        Some("it must be a plain file name")
    } else if name.contains('\0') {
        Some("it contains a NUL byte")
    } else if name.len() > 255 {
        Some("longer than 255 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NamespaceError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(Path::new(NETNS_RUN_DIR).join(name)),
    }
}

/// Makes `/run/netns` a shared mount, bind-mounting it on itself first if
/// it is not a mount point yet, so namespaces mounted in it later show up
/// in every mount namespace that shares it.
fn share_run_dir() -> io::Result<()> {
    let make_shared = || {
        nix::mount::mount(
            None::<&str>,
            NETNS_RUN_DIR,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match make_shared() {
        Ok(()) => Ok(()),
        // Not a mount point.
        Err(Errno::EINVAL) => {
            nix::mount::mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            Ok(make_shared()?)
        }
        Err(errno) => Err(errno.into()),
    }
}

/// Makes a new network namespace on a thread of its own and bind-mounts it
/// on `path`; the thread then ends and the mount keeps the namespace.
fn bind_new_namespace(path: &Path) -> io::Result<()> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
                nix::mount::mount(
                    Some("/proc/thread-self/ns/net"),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )?;
                Ok(())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_one_path_component() {
        for bad in ["", ".", "..", "a/b", "/etc", "x\0y", &"n".repeat(256)] {
            assert!(
                matches!(
                    NetworkNamespace::create_named(bad),
                    Err(NamespaceError::InvalidName { .. })
                ),
                "{bad:?}"
            );
            assert!(matches!(
                NetworkNamespace::delete_named(bad),
                Err(NamespaceError::InvalidName { .. })
            ));
        }
        assert_eq!(
            named_path("pod-1").expect("valid"),
            Path::new("/run/netns/pod-1")
        );
    }

    #[test]
    fn only_namespace_files_open() {
        let missing = NetworkNamespace::open("/nonexistent/netns").expect_err("missing");
        assert!(missing.is_not_found(), "{missing}");
        let not_nsfs = NetworkNamespace::open("/proc/self/status").expect_err("procfs");
        assert!(
            matches!(not_nsfs, NamespaceError::NotNetworkNamespace { .. }),
            "{not_nsfs}"
        );
        NetworkNamespace::open("/proc/self/ns/net").expect("own namespace");
    }
}
