//! The bpf(2) commands aya 0.14 does not expose on a pinned link: opening
//! it by path as a plain fd, switching its program (for link types aya has
//! no `attach_to_link` for), and BPF_LINK_DETACH. `bpf_attr` and the
//! command numbers are aya-obj's bindings of linux/bpf.h, the ones aya
//! itself fills.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

use aya_obj::generated::{bpf_attr, bpf_cmd};

fn bpf(cmd: bpf_cmd, attr: &bpf_attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is initialised, outlives the call, and its size is
    // passed, so the kernel reads only within it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *const bpf_attr,
            std::mem::size_of::<bpf_attr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

/// An all-zero `bpf_attr`: the kernel requires every byte past the
/// command's member to be zero.
fn zeroed_attr() -> bpf_attr {
    // SAFETY: bpf_attr is a C union of integers and arrays of integers,
    // for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

fn fd_u32(fd: BorrowedFd<'_>) -> io::Result<u32> {
    u32::try_from(fd.as_raw_fd()).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))
}

/// BPF_OBJ_GET: a new fd for the object pinned at `path`.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_4.pathname = path.as_ptr() as u64;
    let fd = bpf(bpf_cmd::BPF_OBJ_GET, &attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// BPF_LINK_DETACH (Linux 5.9): detaches the link from its hook now. The
/// link object lives on, defunct, until its last reference goes.
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = zeroed_attr();
    attr.link_detach.link_fd = fd_u32(link)?;
    bpf(bpf_cmd::BPF_LINK_DETACH, &attr).map(drop)
}

/// BPF_LINK_UPDATE (Linux 5.7): atomically makes `link` run `program`.
pub fn link_update(link: BorrowedFd<'_>, program: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = zeroed_attr();
    attr.link_update.link_fd = fd_u32(link)?;
    attr.link_update.__bindgen_anon_1.new_prog_fd = fd_u32(program)?;
    bpf(bpf_cmd::BPF_LINK_UPDATE, &attr).map(drop)
}
