//! The bpf(2) commands aya 0.14 does not expose on a pinned link: opening
//! it by path as a plain fd, switching its program (for link types aya has
//! no `attach_to_link` for), and BPF_LINK_DETACH.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

/// `enum bpf_cmd` values from linux/bpf.h.
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_LINK_DETACH: libc::c_long = 34;

/// A `union bpf_attr`, as large as any member this module uses; members
/// are laid out over its start.
#[repr(C, align(8))]
struct BpfAttr([u8; 64]);

fn bpf(cmd: libc::c_long, attr: &BpfAttr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is initialised, outlives the call, and its size is
    // passed, so the kernel reads only within it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const BpfAttr,
            std::mem::size_of::<BpfAttr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

/// BPF_OBJ_GET: a new fd for the object pinned at `path`.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // struct { __aligned_u64 pathname; __u32 bpf_fd; __u32 file_flags; }
    let mut attr = BpfAttr([0; 64]);
    attr.0[..8].copy_from_slice(&(path.as_ptr() as u64).to_ne_bytes());
    let fd = bpf(BPF_OBJ_GET, &attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// BPF_LINK_DETACH (Linux 5.9): detaches the link from its hook now. The
/// link object lives on, defunct, until its last reference goes.
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    // struct { __u32 link_fd; }
    let mut attr = BpfAttr([0; 64]);
    let fd =
        u32::try_from(link.as_raw_fd()).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    attr.0[..4].copy_from_slice(&fd.to_ne_bytes());
    bpf(BPF_LINK_DETACH, &attr).map(drop)
}

/// BPF_LINK_UPDATE (Linux 5.7): atomically makes `link` run `program`.
pub fn link_update(link: BorrowedFd<'_>, program: BorrowedFd<'_>) -> io::Result<()> {
    // struct { __u32 link_fd; __u32 new_prog_fd; __u32 flags; __u32 old_prog_fd; }
    let mut attr = BpfAttr([0; 64]);
    let fd = |fd: BorrowedFd<'_>| {
        u32::try_from(fd.as_raw_fd()).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))
    };
    attr.0[..4].copy_from_slice(&fd(link)?.to_ne_bytes());
    attr.0[4..8].copy_from_slice(&fd(program)?.to_ne_bytes());
    bpf(BPF_LINK_UPDATE, &attr).map(drop)
}
