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
