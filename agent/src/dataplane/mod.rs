//! The eBPF dataplane of one node: loads the kernel programs embedded at
//! build time, pins their maps and links under the node's bpffs directory
//! (so an agent restart keeps forwarding and keeps counting), and attaches
//! them to interfaces. Reading and writing the pinned maps is
//! `rudder_dataplane_maps`, shared with `rudderctl` and the benchmarks.
//!
//! Layout of a node's bpffs directory:
//! ```text
//! <dir>/maps/<MAP_NAME>          maps, pinned by name (rudder_dataplane_maps::maps_dir)
//! <dir>/links/<program>@<iface>  one bpf_link per attached program
//! ```

mod attach;
mod bpffs;
mod counters;
pub mod kernel;
mod object;
pub mod services;
mod sys;
mod test_run;

use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    programs::{CgroupSockAddr, SchedClassifier, Xdp},
};
use dataplane_common::map_names;
use rudder_dataplane_maps::maps_dir;

pub use attach::{AttachError, detach, detach_cgroup, detach_tc_filter};
pub use bpffs::ensure_bpffs;
pub use counters::detach_counters;
pub use kernel::{AttachMode, KernelProbe, TcAttach};
pub use object::kernel_programs;
pub use rudder_dataplane_maps::{InterfaceCounters, MapsError, read_interface_counters};
pub use test_run::ProgramRun;

/// Errors from loading, attaching or reading the dataplane. Each keeps
/// its cause as its [`std::error::Error::source`] (aya's errors keep the
/// errno in theirs): print the whole chain to show it to a person.
#[expect(
    missing_docs,
    reason = "fields name what failed (a path, map, program or interface) and its cause"
)]
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The agent was built with RUDDER_SKIP_EBPF.
    #[error(
        "this rudder-agent was built without kernel programs (RUDDER_SKIP_EBPF); \
         rebuild after `cargo xtask build-ebpf`"
    )]
    NoKernelPrograms,
    /// The directory is not on a bpffs, and not where the agent mounts one.
    #[error("bpffs directory {}: not on a bpffs; mount one first (`mount -t bpf bpf {}`)", .path.display(), .path.display())]
    NotOnBpffs { path: PathBuf },
    /// A directory on the bpffs cannot be created.
    #[error("bpffs directory {}: cannot create it", .path.display())]
    BpffsDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// bpffs cannot be mounted.
    #[error("mounting bpffs on {}", .path.display())]
    MountBpffs {
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    /// Loading the object into the kernel failed.
    #[error("loading the kernel programs")]
    Load(#[from] aya::EbpfError),
    /// A program is not in the object.
    #[error("program {name}: not in the object")]
    ProgramMissing { name: &'static str },
    /// A program has another type than expected.
    #[error("program {name}: not of the expected type")]
    ProgramType {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    /// The kernel refused to load a program.
    #[error("program {name}: the kernel refused it")]
    ProgramLoad {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A test run was asked of a program that is neither tc nor XDP.
    #[error("program {name}: not a tc or XDP program")]
    NotTestable { name: &'static str },
    /// BPF_PROG_TEST_RUN failed.
    #[error("program {name}: BPF_PROG_TEST_RUN")]
    TestRun {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    /// Attaching a program to (or detaching it from) an interface or cgroup
    /// failed.
    #[error("attaching {program} to {iface}")]
    Attach {
        program: &'static str,
        iface: String,
        /// What went wrong (boxed: aya's errors are large).
        #[source]
        source: Box<AttachError>,
    },
    /// The service table is full.
    #[error("service table")]
    Table(#[from] services::TableError),
    /// The service CIDR is not a network (a message for the operator who
    /// configured it).
    #[error("service CIDR {cidr}: {reason}")]
    ServiceCidr { cidr: String, reason: String },
    /// The kernel refused the service CIDR's blackhole route.
    #[error("blackhole route for {cidr}")]
    Route {
        cidr: String,
        #[source]
        source: rudder_netlink::NetlinkError,
    },
    /// Opening, reading or writing a pinned map failed.
    #[error(transparent)]
    Maps(#[from] MapsError),
}

/// Capacities of the service maps (entries). Frontend ids, reverse-NAT
/// entries and per-service counters share the frontend capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSizes {
    /// Frontends: one per Service port, plus one per NodePort and node address.
    pub frontends: u32,
    /// Backend slots across all frontends.
    pub backend_slots: u32,
    /// Distinct backends.
    pub backends: u32,
    /// Conntrack entries (two per flow).
    pub conntrack: u32,
    /// Session-affinity entries.
    pub affinity: u32,
    /// Sockets translated at connect time (cgroup hooks).
    pub sockets: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        use dataplane_common::service as s;
        Self {
            frontends: s::MAX_FRONTENDS,
            backend_slots: s::MAX_BACKEND_SLOTS,
            backends: s::MAX_BACKENDS,
            conntrack: s::MAX_CONNTRACK,
            affinity: s::MAX_AFFINITY,
            sockets: s::MAX_SOCKET_NAT,
        }
    }
}

/// The loaded kernel programs of one node.
#[derive(Debug)]
pub struct Dataplane {
    ebpf: Ebpf,
    dir: PathBuf,
    tc_attach: TcAttach,
}

impl Dataplane {
    /// Loads the embedded kernel programs. Maps already pinned under `dir`
    /// (by an earlier run of the agent) are reused, not recreated, so
    /// counters and tables survive a restart. Mounts bpffs if needed.
    ///
    /// # Errors
    /// When the directory is not on a bpffs that can be mounted, when the
    /// agent was built without kernel programs, or when the kernel rejects
    /// the programs.
    pub fn load(dir: &Path) -> Result<Self, DataplaneError> {
        Self::load_with(dir, &MapSizes::default())
    }

    /// [`Dataplane::load`] with chosen map sizes. Sizes apply when a map is
    /// first created; maps already pinned keep the size they were made with.
    ///
    /// # Errors
    /// As [`Dataplane::load`].
    pub fn load_with(dir: &Path, sizes: &MapSizes) -> Result<Self, DataplaneError> {
        let object = kernel_programs()?;
        ensure_bpffs(dir)?;
        for sub in [maps_dir(dir), links_dir(dir)] {
            std::fs::create_dir_all(&sub).map_err(|source| DataplaneError::BpffsDirectory {
                path: sub.clone(),
                source,
            })?;
        }
        let maps = maps_dir(dir);
        let mut loader = EbpfLoader::new();
        loader.default_map_pin_directory(&maps);
        let MapSizes {
            frontends,
            backend_slots,
            backends,
            conntrack,
            affinity,
            sockets,
        } = *sizes;
        for (name, size) in [
            (map_names::FRONTENDS, frontends),
            (map_names::REVERSE_NAT, frontends),
            (map_names::SERVICE_COUNTERS, frontends),
            (map_names::BACKEND_SLOTS, backend_slots),
            (map_names::BACKENDS, backends),
            (map_names::CONNTRACK, conntrack),
            (map_names::AFFINITY, affinity),
            (map_names::SOCKET_NAT, sockets),
        ] {
            loader.map_max_entries(name, size);
        }
        let ebpf = loader.load(object)?;
        Ok(Self {
            ebpf,
            dir: dir.to_path_buf(),
            tc_attach: TcAttach::for_running_kernel(),
        })
    }

    /// Chooses how tc programs attach from now on (default: TCX where the
    /// kernel has it, see [`TcAttach::for_running_kernel`]). Links already
    /// pinned keep being switched in place either way.
    pub fn set_tc_attach(&mut self, tc_attach: TcAttach) {
        self.tc_attach = tc_attach;
    }

    /// How tc programs attach.
    pub fn tc_attach(&self) -> TcAttach {
        self.tc_attach
    }

    /// The node's bpffs directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn classifier(&mut self, name: &'static str) -> Result<&mut SchedClassifier, DataplaneError> {
        let program: &mut SchedClassifier = self
            .ebpf
            .program_mut(name)
            .ok_or(DataplaneError::ProgramMissing { name })?
            .try_into()
            .map_err(|source| DataplaneError::ProgramType { name, source })?;
        load_once(name, program.fd().is_ok(), || program.load())?;
        Ok(program)
    }

    fn cgroup_sock_addr(
        &mut self,
        name: &'static str,
    ) -> Result<&mut CgroupSockAddr, DataplaneError> {
        let program: &mut CgroupSockAddr = self
            .ebpf
            .program_mut(name)
            .ok_or(DataplaneError::ProgramMissing { name })?
            .try_into()
            .map_err(|source| DataplaneError::ProgramType { name, source })?;
        load_once(name, program.fd().is_ok(), || program.load())?;
        Ok(program)
    }

    fn xdp(&mut self, name: &'static str) -> Result<&mut Xdp, DataplaneError> {
        let program: &mut Xdp = self
            .ebpf
            .program_mut(name)
            .ok_or(DataplaneError::ProgramMissing { name })?
            .try_into()
            .map_err(|source| DataplaneError::ProgramType { name, source })?;
        load_once(name, program.fd().is_ok(), || program.load())?;
        Ok(program)
    }
}

/// Loads a program into the kernel unless it already is.
fn load_once(
    name: &'static str,
    loaded: bool,
    load: impl FnOnce() -> Result<(), aya::programs::ProgramError>,
) -> Result<(), DataplaneError> {
    if loaded {
        return Ok(());
    }
    load().map_err(|source| DataplaneError::ProgramLoad { name, source })
}

fn links_dir(dir: &Path) -> PathBuf {
    dir.join("links")
}

/// An error with all its sources, `outer: inner: innermost`, for logs and
/// messages a person reads: [`DataplaneError`] and aya's errors keep the
/// errno in their sources, which users need to see.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}
