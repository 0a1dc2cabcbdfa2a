//! ECN in pod namespaces: `net.ipv4.tcp_ecn` is per network namespace and
//! defaults to 2 (answer ECN, never ask for it), so pods' own connections
//! would never be ECN-capable and the bandwidth bucket could only drop.

use std::{io, path::Path};

/// Sets `net.ipv4.tcp_ecn=1` (request ECN on outgoing connections) in the
/// network namespace at `netns` (a `/run/netns/<name>` file).
///
/// # Errors
/// When the namespace cannot be entered or the sysctl not written.
pub fn enable_in(netns: &Path) -> io::Result<()> {
    let netns = std::fs::File::open(netns)?;
    // A thread of its own: /proc/sys/net shows the namespace of the thread
    // that opens it, and the agent's threads must stay in the node's.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from)?;
                std::fs::write("/proc/sys/net/ipv4/tcp_ecn", "1")
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the sysctl thread panicked")))
    })
}
