//! Test hosts as network namespaces, for rudder's tests, demo and benchmarks.
//!
//! A [`TestNetwork`] is one private underlay: a bridge living in its own
//! namespace, with every [`Host`] (a namespace of its own) plugged into it by
//! a veth pair and addressed from 198.18.0.0/24, inside 198.18.0.0/15 (RFC
//! 2544; the run refuses to start if the machine uses any of it). Nothing gets a
//! route to the machine's uplink, and nothing is created in the root
//! namespace, so packets only ever travel between namespaces the caller made.
//!
//! Names are unique per run (`rdr-<pid>-<seq>-<label>`); dropping the
//! [`TestNetwork`] (also while unwinding from a panic) kills the processes
//! left in its namespaces and deletes them, which deletes their links too.
//! A run killed outright (SIGKILL, Ctrl-C) leaves namespaces whose pid is
//! dead; [`sweep_stale`], called by every new [`TestNetwork`], removes them.

mod netns;
mod network;
mod process;
mod range;

pub use netns::Netns;
pub use network::{
    Host, TEST_BPFFS_ROOT, TestNetwork, UNDERLAY_PREFIX_LEN, kept_networks, remove_kept,
    sweep_stale,
};
pub use process::HostProcess;
pub use range::{Ipv4Net, TEST_RANGE, UNDERLAY, check_root_namespace_clear};

/// Prefix of every namespace this crate creates; the sweeper only touches these.
pub const NAME_PREFIX: &str = "rdr-";

/// Whether this process may create namespaces (tests that need it skip
/// themselves with a message otherwise).
pub fn have_privileges() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Errors from building or using test hosts.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A command (usually `ip`) could not be started.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Entering a namespace failed.
    #[error("cannot enter network namespace {name}: {source}")]
    Enter {
        /// The namespace.
        name: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The machine itself uses part of the test range: building test hosts
    /// there could send packets to the real network.
    #[error(
        "refusing to build test hosts: the root namespace has {what}, which overlaps the test range {range}; \
         free that range (it is reserved for benchmarking, RFC 2544) or run on another machine"
    )]
    RangeTaken {
        /// The test range.
        range: String,
        /// The address or route in the way.
        what: String,
    },
    /// The underlay has no addresses left.
    #[error("test network {0} is full: at most 250 hosts")]
    Full(String),
}

/// Result alias for this crate.
pub type Result<T, E = NetnsError> = std::result::Result<T, E>;
