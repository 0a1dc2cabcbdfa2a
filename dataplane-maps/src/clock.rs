//! The clock conntrack and affinity entries are stamped with.

/// Now on the monotonic clock the kernel programs stamp entries with
/// (`bpf_ktime_get_ns`), in nanoseconds.
pub fn monotonic_now_ns() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux; 0 would only make GC lenient.
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |now| {
        u64::try_from(now.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(now.tv_nsec()).unwrap_or(0)
    })
}
