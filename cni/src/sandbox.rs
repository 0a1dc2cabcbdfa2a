//! The container's network namespace (`CNI_NETNS`), and running code inside
//! it on a thread of its own: network namespaces are per thread, and the
//! main thread never leaves the node's.

use std::{
    fs::File,
    io,
    os::fd::{AsFd, BorrowedFd},
};

use crate::error::{CniError, Result};

/// `statfs` magic of nsfs, where namespace files live.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// An open network namespace file.
#[derive(Debug)]
pub struct Sandbox {
    path: String,
    file: File,
}

impl Sandbox {
    /// Opens `path` (a bind mount such as `/run/netns/NAME` or
    /// `/proc/PID/ns/net`). `Ok(None)` when it does not exist.
    ///
    /// # Errors
    ///
    /// Code 4 when it exists but is not a network namespace, 5 when it
    /// cannot be opened.
    pub fn open(path: &str) -> Result<Option<Self>> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CniError::io("cannot open network namespace", path, e)),
        };
        let fs = nix::sys::statfs::fstatfs(&file)
            .map_err(|errno| CniError::io("cannot stat", path, errno.into()))?;
        // The magic's integer type differs between libcs.
        #[expect(
            clippy::useless_conversion,
            reason = "f_type is i64 on glibc x86_64 only"
        )]
        let magic = i64::from(fs.filesystem_type().0);
        if magic != NSFS_MAGIC {
            return Err(CniError::env(
                "CNI_NETNS",
                format!("{path} is not a network namespace (not on nsfs)"),
            ));
        }
        Ok(Some(Self {
            path: path.to_owned(),
            file,
        }))
    }

    /// Opens `path`, which must exist (ADD, CHECK).
    ///
    /// # Errors
    ///
    /// [`CniError::ContainerUnknown`] (code 3) when it does not, else as
    /// [`Sandbox::open`].
    pub fn open_existing(path: &str) -> Result<Self> {
        Self::open(path)?.ok_or_else(|| CniError::ContainerUnknown {
            path: path.to_owned(),
        })
    }

    /// The path the runtime gave.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The namespace file, to hand to the kernel (veth peer placement).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Runs `f` on a thread that has entered the namespace.
    ///
    /// # Errors
    ///
    /// Code 5 when the namespace cannot be entered; otherwise `f`'s result.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    nix::sched::setns(&self.file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(
                        |errno| {
                            CniError::io("cannot enter network namespace", &self.path, errno.into())
                        },
                    )?;
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}
