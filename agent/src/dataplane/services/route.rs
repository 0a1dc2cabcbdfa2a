//! The blackhole route for the service CIDR: a packet to a service address
//! that no program translated (no frontend for that port, a program not yet
//! attached) must die on this node, not wander off through a default route.

use std::process::Command;

use crate::dataplane::DataplaneError;

/// Installs (or keeps) `ip route blackhole <cidr>` in the current network
/// namespace. Idempotent.
///
/// # Errors
/// When `ip` is missing or refuses the route (e.g. a malformed CIDR).
pub fn install_service_blackhole(cidr: &str) -> Result<(), DataplaneError> {
    let out = Command::new("ip")
        .args(["route", "replace", "blackhole", cidr])
        .output()
        .map_err(|e| DataplaneError::Route {
            cidr: cidr.to_owned(),
            reason: format!("running ip: {e}"),
        })?;
    if !out.status.success() {
        return Err(DataplaneError::Route {
            cidr: cidr.to_owned(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}
