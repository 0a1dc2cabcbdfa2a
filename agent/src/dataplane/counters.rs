//! Per-interface packet counters: attaching the counting programs (the
//! counts are read back by `rudder_dataplane_maps::read_interface_counters`).

use std::path::Path;

use aya::programs::TcAttachType;
use dataplane_common::program_names;

use super::{Dataplane, DataplaneError, attach};

/// The counting programs and where each attaches.
const COUNTING_PROGRAMS: [&str; 3] = [
    program_names::COUNT_TC_INGRESS,
    program_names::COUNT_TC_EGRESS,
    program_names::COUNT_XDP,
];

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
        self.attach_tc(
            program_names::COUNT_TC_INGRESS,
            iface,
            TcAttachType::Ingress,
        )?;
        self.attach_tc(program_names::COUNT_TC_EGRESS, iface, TcAttachType::Egress)?;
        self.attach_xdp(program_names::COUNT_XDP, iface)
    }
}

/// Detaches every counting program from `iface` (see [`attach::detach`]).
///
/// # Errors
/// When a pinned link cannot be opened, detached or unpinned.
pub fn detach_counters(dir: &Path, iface: &str) -> Result<(), DataplaneError> {
    // Where TCX is missing the tc programs are filters, not pinned links.
    attach::detach_program_filter(
        iface,
        program_names::COUNT_TC_INGRESS,
        TcAttachType::Ingress,
    );
    attach::detach_program_filter(iface, program_names::COUNT_TC_EGRESS, TcAttachType::Egress);
    COUNTING_PROGRAMS
        .iter()
        .try_for_each(|program| attach::detach(dir, program, iface))
}
