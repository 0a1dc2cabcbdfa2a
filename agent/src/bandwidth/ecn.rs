//! TCP settings in pod namespaces, for the bandwidth bucket (both are per
//! network namespace; the pod spec has no sysctls to set them otherwise):
//!
//! - `net.ipv4.tcp_ecn=1`: the default 2 answers ECN but never asks for it,
//!   so pods' own connections would never be ECN-capable and the bucket
//!   could only drop.
//! - `net.ipv4.tcp_rto_min_us=50000`: the bucket has no queue, so at the
//!   sub-millisecond round trips between pods TCP cannot slow down below
//!   its minimum window and the bucket must drop now and then. A drop at the
//!   tail of a window is recovered by the retransmission timer, whose
//!   default floor of 200 ms is sized for the WAN: the flow then idles
//!   200 ms while the bucket stores only its burst (100 ms by default), and
//!   a limited flow got about half its limit. A 50 ms floor fits in the
//!   burst; it stays above the receivers' 40 ms delayed-ACK floor (a 5 ms
//!   floor fired spuriously on single BBR flows and cost more than it
//!   saved). Kernels before 6.11 lack the sysctl; there it is skipped and
//!   flows keep the 200 ms.

use std::{io, path::Path};

/// What [`enable_in`] writes in every pod namespace: sysctl, value, and
/// whether a kernel without it is an error.
pub const POD_SYSCTLS: [(&str, &str, bool); 2] = [
    ("net.ipv4.tcp_ecn", "1", true),
    ("net.ipv4.tcp_rto_min_us", "50000", false),
];

/// Writes [`POD_SYSCTLS`] in the network namespace at `netns` (a
/// `/run/netns/<name>` file).
///
/// # Errors
/// When the namespace cannot be entered or a required sysctl not written.
pub fn enable_in(netns: &Path) -> io::Result<()> {
    let netns = std::fs::File::open(netns)?;
    // A thread of its own: /proc/sys/net shows the namespace of the thread
    // that opens it, and the agent's threads must stay in the node's.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from)?;
                for (name, value, required) in POD_SYSCTLS {
                    let path = Path::new("/proc/sys").join(name.replace('.', "/"));
                    match std::fs::write(&path, value) {
                        Err(err) if !required && err.kind() == io::ErrorKind::NotFound => {
                            tracing::info!(sysctl = name, "not in this kernel, skipped");
                        }
                        other => other.map_err(|err| {
                            io::Error::new(err.kind(), format!("writing {name}: {err}"))
                        })?,
                    }
                }
                Ok(())
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the sysctl thread panicked")))
    })
}
