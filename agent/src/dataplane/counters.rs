//! Per-interface packet counters: attaching the counting programs and
//! reading the per-CPU counter map back.

use std::{io, os::fd::AsFd, path::Path};

use aya::{
    maps::{Map, MapData, PerCpuHashMap},
    programs::{
        LinkOrder, TcAttachType, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        tc::{SchedClassifierLink, TcAttachOptions},
        xdp::XdpLink,
    },
    sys::SyscallError,
};
use dataplane_common::{
    CounterHook, InterfaceCounterKey, PacketCounters, map_names, program_names,
};

use super::{Dataplane, DataplaneError, error_chain, links_dir, maps_dir, sys};

/// Counters of one interface at one hook, summed over CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceCounters {
    /// Interface index (in the node's network namespace).
    pub ifindex: u32,
    /// Where the packets were counted.
    pub hook: CounterHook,
    /// Packets and bytes.
    pub counters: PacketCounters,
}

impl Dataplane {
    /// Attaches the counting programs to `iface` at tc ingress, tc egress
    /// (both TCX links) and XDP, and pins the links under the node's
    /// directory. If links are already pinned for this interface (an earlier
    /// agent), they are atomically switched to the programs loaded now, so
    /// counting never stops.
    ///
    /// # Errors
    /// When the interface does not exist or the kernel refuses an attach.
    pub fn attach_counters(&mut self, iface: &str) -> Result<(), DataplaneError> {
        let links = links_dir(&self.dir);
        for (name, attach_type) in [
            (program_names::COUNT_TC_INGRESS, TcAttachType::Ingress),
            (program_names::COUNT_TC_EGRESS, TcAttachType::Egress),
        ] {
            let pin = links.join(link_pin_name(name, iface));
            let program = self.classifier(name)?;
            let attach_error = |reason: String| DataplaneError::Attach {
                program: name,
                iface: iface.to_owned(),
                reason,
            };
            let id = match pinned_link(&pin).map_err(|e| attach_error(error_chain(&e)))? {
                Some(old) => {
                    let link = SchedClassifierLink::try_from(old)
                        .map_err(|e| attach_error(error_chain(&e)))?;
                    program.attach_to_link(link)
                }
                None => program.attach_with_options(
                    iface,
                    attach_type,
                    TcAttachOptions::TcxOrder(LinkOrder::default()),
                ),
            }
            .map_err(|e| attach_error(error_chain(&e)))?;
            let link: FdLink = program
                .take_link(id)
                .map_err(|e| attach_error(error_chain(&e)))?
                .try_into()
                .map_err(|e: LinkError| attach_error(error_chain(&e)))?;
            keep_pinned(link, &pin).map_err(attach_error)?;
        }

        let name = program_names::COUNT_XDP;
        let attach_error = |reason: String| DataplaneError::Attach {
            program: name,
            iface: iface.to_owned(),
            reason,
        };
        let pin = links.join(link_pin_name(name, iface));
        let program = self.xdp(name)?;
        let id = match pinned_link(&pin).map_err(|e| attach_error(error_chain(&e)))? {
            Some(old) => {
                let link = XdpLink::try_from(old).map_err(|e| attach_error(error_chain(&e)))?;
                program.attach_to_link(link)
            }
            None => program.attach(iface, XdpMode::default()),
        }
        .map_err(|e| attach_error(error_chain(&e)))?;
        let link: FdLink = program
            .take_link(id)
            .map_err(|e| attach_error(error_chain(&e)))?
            .try_into()
            .map_err(|e: LinkError| attach_error(error_chain(&e)))?;
        keep_pinned(link, &pin).map_err(attach_error)
    }
}

/// Detaches every counting program from `iface`: each pinned link is
/// detached at once (BPF_LINK_DETACH), then its pin removed. Removing the
/// pin alone would leave the detach to a deferred kernel work item.
///
/// # Errors
/// When a pinned link cannot be opened, detached or unpinned.
pub fn detach_counters(dir: &Path, iface: &str) -> Result<(), DataplaneError> {
    for name in [
        program_names::COUNT_TC_INGRESS,
        program_names::COUNT_TC_EGRESS,
        program_names::COUNT_XDP,
    ] {
        let pin = links_dir(dir).join(link_pin_name(name, iface));
        let detach_error = |reason: String| DataplaneError::Attach {
            program: name,
            iface: iface.to_owned(),
            reason: format!("detaching {}: {reason}", pin.display()),
        };
        let link = match sys::obj_get(&pin) {
            Ok(link) => link,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(detach_error(err.to_string())),
        };
        sys::link_detach(link.as_fd()).map_err(|e| detach_error(error_chain(&e)))?;
        std::fs::remove_file(&pin).map_err(|e| detach_error(error_chain(&e)))?;
    }
    Ok(())
}

/// The link pinned at `pin`, if there is one.
fn pinned_link(pin: &Path) -> Result<Option<FdLink>, LinkError> {
    match PinnedLink::from_pin(pin) {
        Ok(link) => Ok(Some(FdLink::from(link))),
        Err(LinkError::SyscallError(SyscallError { io_error, .. }))
            if io_error.kind() == io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Pins `link` at `pin` unless that pin already holds it (after an atomic
/// program switch the pinned link is the same kernel object).
fn keep_pinned(link: FdLink, pin: &Path) -> Result<(), String> {
    if pin.exists() {
        return Ok(());
    }
    link.pin(pin)
        .map(drop)
        .map_err(|e| format!("pinning at {}: {e}", pin.display()))
}

/// Reads the pinned counter map of the node whose bpffs directory is `dir`,
/// summing each entry over CPUs, sorted by interface and hook.
///
/// # Errors
/// When the map is not pinned there (no agent ever loaded the dataplane).
pub fn read_interface_counters(dir: &Path) -> Result<Vec<InterfaceCounters>, DataplaneError> {
    let name = map_names::INTERFACE_COUNTERS;
    let map_error = |reason: String| DataplaneError::Map { name, reason };
    let path = maps_dir(dir).join(name);
    let data =
        MapData::from_pin(&path).map_err(|e| map_error(format!("{}: {e}", path.display())))?;
    let map: PerCpuHashMap<MapData, InterfaceCounterKey, PacketCounters> =
        PerCpuHashMap::try_from(Map::PerCpuHashMap(data))
            .map_err(|e| map_error(error_chain(&e)))?;
    let mut out = Vec::new();
    for entry in map.iter() {
        let (key, per_cpu) = entry.map_err(|e| map_error(error_chain(&e)))?;
        let Some(hook) = CounterHook::from_u32(key.hook) else {
            continue;
        };
        let counters = per_cpu
            .iter()
            .fold(PacketCounters::default(), |sum, cpu| sum.add(*cpu));
        out.push(InterfaceCounters {
            ifindex: key.ifindex,
            hook,
            counters,
        });
    }
    out.sort_by_key(|c| (c.ifindex, c.hook));
    Ok(out)
}

/// File name of the link pinning `program` to `iface`: `<program>@<iface>`.
/// bpffs refuses names containing '.', which interface names may contain
/// (VLANs: `eth0.100`) but never ':', so dots become colons.
fn link_pin_name(program: &str, iface: &str) -> String {
    format!("{program}@{}", iface.replace('.', ":"))
}

#[cfg(test)]
mod tests {
    use super::link_pin_name;

    #[test]
    fn link_pin_names_avoid_dots_bpffs_refuses() {
        assert_eq!(link_pin_name("count_xdp", "eth0"), "count_xdp@eth0");
        assert_eq!(link_pin_name("count_xdp", "eth0.100"), "count_xdp@eth0:100");
    }
}
