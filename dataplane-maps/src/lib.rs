//! Typed access to a node's pinned eBPF maps: the service tables, backend
//! slots, reverse NAT, Maglev tables, conntrack, bandwidth limits, counters
//! and node settings the kernel programs of `dataplane-ebpf` read and write.
//!
//! Every process on the node opens the same pins by path: the agent (which
//! loads the programs and creates the maps), `rudderctl dataplane` (which
//! only reads them) and the benchmarks. This crate does no loading or
//! attaching, so a reader of the maps does not link the agent.
//!
//! Layout of a node's bpffs directory:
//! ```text
//! <dir>/maps/<MAP_NAME>          maps, pinned by their dataplane_common::map_names
//! <dir>/links/<program>@<iface>  one bpf_link per attached program (the agent's)
//! ```

mod bandwidth;
mod clock;
mod counters;
mod protocol;
mod service;

use std::path::{Path, PathBuf};

use aya::maps::{Map, MapData, MapError};

pub use bandwidth::{BandwidthEntry, BandwidthMaps, BandwidthShape};
pub use clock::monotonic_now_ns;
pub use counters::{InterfaceCounters, read_interface_counters};
pub use protocol::Protocol;
pub use service::{MapContents, MapWrite, ServiceMaps};

/// Errors from opening, reading or writing a pinned map.
#[expect(
    missing_docs,
    reason = "fields name what failed (a path, map, program or interface) and its cause"
)]
#[derive(Debug, thiserror::Error)]
pub enum MapsError {
    /// A pinned map cannot be opened.
    #[error("map {name}: cannot open {} (is the node's dataplane loaded?)", .path.display())]
    Pin {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: aya::maps::MapError,
    },
    /// Reading or writing a map failed.
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
}

/// Where the maps of the node whose bpffs directory is `dir` are pinned.
pub fn maps_dir(dir: &Path) -> PathBuf {
    dir.join("maps")
}

/// Opens the map pinned as `name` under the node directory `dir` as `T`.
fn open_pinned<T: TryFrom<Map, Error = MapError>>(
    dir: &Path,
    name: &'static str,
) -> Result<T, MapsError> {
    let path = maps_dir(dir).join(name);
    let data = MapData::from_pin(&path).map_err(|source| MapsError::Pin {
        name,
        path: path.clone(),
        source,
    })?;
    Map::from_map_data(data)
        .and_then(T::try_from)
        .map_err(|source| MapsError::Map { name, source })
}

/// A delete's result with a missing key counted as done: aya reports it as
/// `KeyNotFound` or as the syscall's ENOENT, depending on the map type.
pub(crate) fn ignore_missing(
    result: Result<(), aya::maps::MapError>,
) -> Result<(), aya::maps::MapError> {
    use aya::maps::MapError;
    match result {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}
