//! The kernel programs, embedded in the agent at build time.

use super::DataplaneError;

/// The object file built by `cargo xtask build-ebpf`, aligned for the ELF
/// parser. Empty when the agent was built with RUDDER_SKIP_EBPF.
static KERNEL_PROGRAMS: &[u8] = aya::include_bytes_aligned!(env!("RUDDER_EBPF_OBJECT_PATH"));

/// The embedded object file.
///
/// # Errors
/// [`DataplaneError::NoKernelPrograms`] when built with RUDDER_SKIP_EBPF.
pub fn kernel_programs() -> Result<&'static [u8], DataplaneError> {
    if KERNEL_PROGRAMS.is_empty() {
        return Err(DataplaneError::NoKernelPrograms);
    }
    Ok(KERNEL_PROGRAMS)
}

#[cfg(test)]
mod tests {
    use dataplane_common::map_names;

    /// The kernel side checks each map's literal name against its constant
    /// at compile time (`pinned_map!`); this checks the other direction:
    /// every constant names a map the object really has.
    #[test]
    fn the_kernel_object_has_exactly_the_maps_dataplane_common_names() {
        let Ok(object) = super::kernel_programs() else {
            // Built with RUDDER_SKIP_EBPF: there is no object to compare.
            return;
        };
        let parsed = aya_obj::Object::parse(object).expect("the embedded object parses");
        let mut found: Vec<&str> = parsed
            .maps
            .keys()
            .map(String::as_str)
            .filter(|name| !name.starts_with('.'))
            .collect();
        found.sort_unstable();
        let mut named = vec![
            map_names::INTERFACE_COUNTERS,
            map_names::FRONTENDS,
            map_names::BACKEND_SLOTS,
            map_names::BACKENDS,
            map_names::REVERSE_NAT,
            map_names::CONNTRACK,
            map_names::AFFINITY,
            map_names::MAGLEV,
            map_names::SERVICE_COUNTERS,
            map_names::SOCKET_NAT,
            map_names::NODE_CONFIG,
            map_names::BANDWIDTH,
            map_names::BANDWIDTH_COUNTERS,
        ];
        named.sort_unstable();
        assert_eq!(found, named);
    }
}
