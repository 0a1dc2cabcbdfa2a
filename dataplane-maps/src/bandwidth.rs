//! The pinned bandwidth maps: per pod veth and direction, the limit the
//! agent sets (with the kernel's bucket state) and what the bucket did.

use std::{collections::BTreeMap, path::Path};

use aya::maps::{HashMap, MapData, PerCpuHashMap};
use dataplane_common::{
    bandwidth::{BandwidthCounters, BandwidthDirection, BandwidthKey, BandwidthLimit},
    map_names,
};

use crate::{MapsError, open_pinned};

/// A limit as the agent sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BandwidthShape {
    /// Bytes per second (at least 1).
    pub rate_bytes_per_sec: u64,
    /// Burst, bytes.
    pub burst_bytes: u64,
    /// `dataplane_common::bandwidth::BANDWIDTH_*` flags.
    pub flags: u32,
}

/// One limited (veth, direction) as read back from the maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BandwidthEntry {
    /// The pod's host-side veth.
    pub ifindex: u32,
    /// Which way.
    pub direction: BandwidthDirection,
    /// The limit and the bucket's state.
    pub limit: BandwidthLimit,
    /// Summed over CPUs.
    pub counters: BandwidthCounters,
}

impl BandwidthEntry {
    /// Which enforcement runs, as `rudderctl` and the metrics name it.
    #[must_use]
    pub fn path(&self) -> &'static str {
        if self.limit.flags & dataplane_common::bandwidth::BANDWIDTH_EDT != 0 {
            "edt"
        } else {
            "token-bucket+ecn"
        }
    }
}

/// Handles on the two bandwidth maps of one node.
pub struct BandwidthMaps {
    limits: HashMap<MapData, BandwidthKey, BandwidthLimit>,
    counters: PerCpuHashMap<MapData, BandwidthKey, BandwidthCounters>,
}

fn key(ifindex: u32, direction: BandwidthDirection) -> BandwidthKey {
    BandwidthKey {
        ifindex,
        direction: direction as u32,
    }
}

impl BandwidthMaps {
    /// Opens the maps pinned under the node directory `dir`.
    ///
    /// # Errors
    /// When a map is not pinned there or has an unexpected type.
    pub fn open(dir: &Path) -> Result<Self, MapsError> {
        Ok(Self {
            limits: open_pinned(dir, map_names::BANDWIDTH)?,
            counters: open_pinned(dir, map_names::BANDWIDTH_COUNTERS)?,
        })
    }

    /// Limits `ifindex` in `direction` to `shape`. An unchanged limit is
    /// left alone (its bucket keeps its state: an agent restart does not
    /// refill it); a changed one starts with a full bucket.
    ///
    /// # Errors
    /// When the kernel refuses the update (map full).
    pub fn set(
        &mut self,
        ifindex: u32,
        direction: BandwidthDirection,
        shape: BandwidthShape,
    ) -> Result<(), MapsError> {
        let key = key(ifindex, direction);
        let BandwidthShape {
            rate_bytes_per_sec,
            burst_bytes,
            flags,
        } = shape;
        if let Ok(current) = self.limits.get(&key, 0)
            && current.rate_bytes_per_sec == rate_bytes_per_sec
            && current.burst_bytes == burst_bytes
            && current.flags == flags
        {
            return Ok(());
        }
        let limit = BandwidthLimit {
            rate_bytes_per_sec,
            burst_bytes,
            backlog_until_ns: 0,
            flags,
            pad: 0,
        };
        self.limits
            .insert(key, limit, 0)
            .map_err(|source| MapsError::Map {
                name: map_names::BANDWIDTH,
                source,
            })
    }

    /// Lifts the limit of `ifindex` in `direction` and forgets its counters;
    /// nothing happens when there is none.
    ///
    /// # Errors
    /// When the kernel refuses the deletion of an existing entry.
    pub fn remove(&mut self, ifindex: u32, direction: BandwidthDirection) -> Result<(), MapsError> {
        let key = key(ifindex, direction);
        crate::ignore_missing(self.limits.remove(&key)).map_err(|source| MapsError::Map {
            name: map_names::BANDWIDTH,
            source,
        })?;
        crate::ignore_missing(self.counters.remove(&key)).map_err(|source| MapsError::Map {
            name: map_names::BANDWIDTH_COUNTERS,
            source,
        })
    }

    /// Every limit with its counters, sorted by interface and direction.
    ///
    /// # Errors
    /// When a map cannot be read.
    pub fn entries(&self) -> Result<Vec<BandwidthEntry>, MapsError> {
        let mut counters = BTreeMap::new();
        for entry in self.counters.iter() {
            let (key, per_cpu) = entry.map_err(|source| MapsError::Map {
                name: map_names::BANDWIDTH_COUNTERS,
                source,
            })?;
            let sum = per_cpu
                .iter()
                .fold(BandwidthCounters::default(), |sum, cpu| sum.add(*cpu));
            counters.insert(key, sum);
        }
        let mut out = Vec::new();
        for entry in self.limits.iter() {
            let (key, limit) = entry.map_err(|source| MapsError::Map {
                name: map_names::BANDWIDTH,
                source,
            })?;
            let Some(direction) = BandwidthDirection::from_u32(key.direction) else {
                continue;
            };
            out.push(BandwidthEntry {
                ifindex: key.ifindex,
                direction,
                limit,
                counters: counters.get(&key).copied().unwrap_or_default(),
            });
        }
        out.sort_by_key(|e| (e.ifindex, e.direction));
        Ok(out)
    }

    /// The (veth, direction) pairs limited now.
    ///
    /// # Errors
    /// When the map cannot be read.
    pub fn limited(&self) -> Result<Vec<(u32, BandwidthDirection)>, MapsError> {
        self.limits
            .keys()
            .map(|key| {
                key.map_err(|source| MapsError::Map {
                    name: map_names::BANDWIDTH,
                    source,
                })
            })
            .filter_map(|key| match key {
                Ok(key) => BandwidthDirection::from_u32(key.direction)
                    .map(|direction| Ok((key.ifindex, direction))),
                Err(err) => Some(Err(err)),
            })
            .collect()
    }
}
