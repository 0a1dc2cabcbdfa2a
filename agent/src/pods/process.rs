//! Container processes: started in the pod's network namespace (and cgroup,
//! when one is given), output appended to a log file, watched by pid so an
//! agent restart can adopt them.

use std::{
    fs::{File, OpenOptions},
    os::{
        fd::{AsRawFd, FromRawFd},
        unix::process::CommandExt,
    },
    path::Path,
    process::{Command, Stdio},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// How to start one container.
#[derive(Clone, Debug)]
pub struct Launch<'a> {
    /// argv: command then args, `$(VAR)` already expanded.
    pub argv: &'a [String],
    /// Environment.
    pub env: &'a [(String, String)],
    /// Working directory.
    pub working_dir: Option<&'a str>,
    /// The pod's network namespace file (/run/netns/...).
    pub netns: &'a Path,
    /// Log file (appended to).
    pub log: &'a Path,
    /// cgroup v2 directory to join, if any.
    pub cgroup: Option<&'a Path>,
}

/// Starts the process; returns its pid. It is not our child for long: it
/// runs in a session of its own and is watched by pid, so it outlives the
/// agent and the next agent adopts it.
///
/// # Errors
/// When the namespace, log or program cannot be opened.
pub fn start(launch: &Launch<'_>) -> std::io::Result<u32> {
    let (program, args) = launch
        .argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no command"))?;
    let netns = File::open(launch.netns)?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(launch.log)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(dir) = launch.working_dir {
        cmd.current_dir(dir);
    }
    // Opened before the fork: between fork and exec only raw syscalls run.
    let procs = launch
        .cgroup
        .map(|c| OpenOptions::new().write(true).open(c.join("cgroup.procs")))
        .transpose()?;
    let procs_fd = procs.as_ref().map(AsRawFd::as_raw_fd);
    let netns_fd = netns.as_raw_fd();
    // SAFETY: the closure only makes async-signal-safe syscalls (setns,
    // setsid, write) on file descriptors opened before the fork, which stay
    // open until `spawn` returns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(netns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::setsid();
            if let Some(fd) = procs_fd {
                // "0" moves the writing process into the cgroup.
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(procs);
    let pid = child.id();
    // Reaped by `reap` (SIGCHLD is left at its default; zombies are
    // collected with waitpid on each check).
    std::mem::forget(child);
    Ok(pid)
}

/// When `pid` started, in clock ticks since boot (`/proc/<pid>/stat`'s
/// 22nd field): with the pid, it names one process, where a pid alone may
/// have been reused by an unrelated one since it was recorded.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields
    // are counted after its last ')', where field 3 is the first.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether `pid` runs in the network namespace at `netns` (a pod's
/// processes all do; an unrelated process that got a recorded pid does not).
pub fn in_netns(pid: u32, netns: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(theirs), Ok(pods)) = (
        std::fs::metadata(format!("/proc/{pid}/ns/net")),
        std::fs::metadata(netns),
    ) else {
        return false;
    };
    (theirs.dev(), theirs.ino()) == (pods.dev(), pods.ino())
}

/// Whether the process recorded as `pid` started at `start` is the one
/// that has that pid now (`start` unknown: only that something has it).
fn is_same(pid: u32, start: Option<u64>) -> bool {
    start.is_none_or(|start| start_time(pid) == Some(start))
}

/// Whether `pid` still runs; reaps it (returning its exit code) if it was
/// our child and has exited. `start` is its [`start_time`] when it was
/// started: a pid that now names another process counts as gone.
pub fn check(pid: u32, start: Option<u64>) -> ProcessState {
    let Ok(raw) = i32::try_from(pid) else {
        return ProcessState::Gone(None);
    };
    match nix::sys::wait::waitpid(
        Pid::from_raw(raw),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    ) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => return ProcessState::Gone(Some(code)),
        Ok(nix::sys::wait::WaitStatus::Signaled(_, signal, _)) => {
            return ProcessState::Gone(Some(128 + signal as i32));
        }
        Ok(nix::sys::wait::WaitStatus::StillAlive) => return ProcessState::Running,
        // Not our child (adopted after a restart): ask the kernel.
        _ => {}
    }
    match kill(Pid::from_raw(raw), None) {
        Ok(()) if !is_zombie(pid) && is_same(pid, start) => ProcessState::Running,
        _ => ProcessState::Gone(None),
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// State of a watched process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessState {
    /// Still running.
    Running,
    /// Exited, with its code when known (128+N for signal N).
    Gone(Option<i32>),
}

/// Sends `signal` to the process's whole session (it is a session
/// leader), if `pid` still names the process that started at `start`.
/// The process is pinned with a pidfd before its start time is compared,
/// so it cannot be swapped for another between the check and the signal;
/// while the leader lives its pid, and so its group's, cannot be reused.
pub fn signal(pid: u32, start: Option<u64>, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    // SAFETY: pidfd_open takes a pid and flags and returns a new file
    // descriptor (or -1); nothing else is touched.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
    let pidfd = i32::try_from(fd)
        .ok()
        .filter(|fd| *fd >= 0)
        // SAFETY: a descriptor pidfd_open just returned, owned by nothing else.
        .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
    if !is_same(pid, start) {
        tracing::warn!(pid, "not signalling: the pid now names another process");
        return;
    }
    match &pidfd {
        Some(pidfd) => {
            // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
            let sent = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    signal as i32,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            if sent == 0 {
                let _ = kill(Pid::from_raw(-raw), signal);
            }
        }
        // No pidfds (a kernel before 5.3): the start time check alone.
        None => {
            let _ = kill(Pid::from_raw(-raw), signal);
            let _ = kill(Pid::from_raw(raw), signal);
        }
    }
}
