//! Per-pod cgroup v2 groups with the containers' limits: memory.max from
//! `resources.limits.memory`, cpu.max from `resources.limits.cpu`. Only
//! where a cgroup2 hierarchy is given (the machine's default may be v1).

use std::path::{Path, PathBuf};

use rudder_api::core::Pod;

/// cpu.max period, as systemd and the kubelet use.
const CPU_PERIOD_US: u64 = 100_000;

/// Creates (or reuses) `<root>/<sandbox>` and writes the pod's limits.
///
/// # Errors
/// When the directory cannot be made or a limit not written (a controller
/// not enabled in the parent's cgroup.subtree_control, say).
pub fn ensure(root: &Path, sandbox: &str, pod: &Pod) -> std::io::Result<PathBuf> {
    let dir = root.join(sandbox);
    std::fs::create_dir_all(&dir)?;
    let (mut memory, mut cpu_millis) = (Some(0u64), Some(0u64));
    for c in &pod.spec.containers {
        let limits = c.resources.as_ref().map(|r| &r.limits);
        memory = memory
            .zip(
                limits
                    .and_then(|l| l.get("memory"))
                    .and_then(|m| parse_bytes(m)),
            )
            .map(|(a, b)| a + b);
        cpu_millis = cpu_millis
            .zip(
                limits
                    .and_then(|l| l.get("cpu"))
                    .and_then(|m| parse_millicpu(m)),
            )
            .map(|(a, b)| a + b);
    }
    // A limit applies to the pod only when every container has one, as in
    // Kubernetes' pod-level cgroups.
    if let Some(bytes) = memory.filter(|b| *b > 0) {
        std::fs::write(dir.join("memory.max"), bytes.to_string())?;
    }
    if let Some(millis) = cpu_millis.filter(|m| *m > 0) {
        let quota = millis * CPU_PERIOD_US / 1000;
        std::fs::write(dir.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}"))?;
    }
    Ok(dir)
}

/// Removes the pod's group (its processes are gone by then).
pub fn remove(root: &Path, sandbox: &str) {
    let _ = std::fs::remove_dir(root.join(sandbox));
}

/// A memory quantity (`128Mi`, `1G`, `1000`) in bytes, rounded up.
fn parse_bytes(text: &str) -> Option<u64> {
    let quantity = rudder_api::quantity::parse(text).ok()?;
    rudder_api::quantity::saturating_u64(quantity.units_ceil())
}

/// A cpu quantity (`500m`, `2`, `0.5`) in millicpus (exact; finer rounds up).
fn parse_millicpu(text: &str) -> Option<u64> {
    let quantity = rudder_api::quantity::parse(text).ok()?;
    rudder_api::quantity::saturating_u64(quantity.milli())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_quantities_are_read_as_the_api_means_them() {
        assert_eq!(parse_bytes("128Mi"), Some(128 * 1024 * 1024));
        assert_eq!(parse_bytes("1G"), Some(1_000_000_000));
        assert_eq!(parse_bytes("1.5Gi"), Some(1_610_612_736));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_millicpu("500m"), Some(500));
        assert_eq!(parse_millicpu("2"), Some(2000));
        assert_eq!(parse_millicpu("0.25"), Some(250));
        assert_eq!(parse_millicpu("9m"), Some(9));
        assert_eq!(parse_millicpu("100u"), Some(1), "a validated 100u is not 0");
        assert_eq!(parse_bytes("-1"), None);
    }
}
