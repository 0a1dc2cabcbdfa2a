//! Choosing a backend for a new flow: session affinity first, then Maglev
//! or a uniformly random slot.

use aya_ebpf::helpers::bpf_get_prandom_u32;
use dataplane_common::service::{
    AffinityEntry, AffinityKey, BACKEND_DRAINING, Backend, BackendSlotKey, FRONTEND_AFFINITY,
    FRONTEND_MAGLEV, Frontend, MAGLEV_TABLE_SIZE, flow_hash,
};

use super::{
    flow::Flow,
    maps::{AFFINITY, BACKEND_SLOTS, BACKENDS, MAGLEV},
};

/// A backend for a new flow to `frontend`, with its id; `None` when the
/// frontend has no backend for new flows.
#[inline(always)]
pub fn backend(flow: &Flow, frontend: &Frontend, now: u64) -> Option<(u32, Backend)> {
    if frontend.backend_count == 0 {
        return None;
    }
    let affinity_key = AffinityKey {
        frontend_id: frontend.id,
        client: flow.saddr,
    };
    let affinity = frontend.flags & FRONTEND_AFFINITY != 0;
    if affinity && let Some(found) = sticky_backend(affinity_key, frontend, now) {
        return Some(found);
    }
    let backend_id = if frontend.flags & FRONTEND_MAGLEV != 0 {
        let table = MAGLEV.get_ptr(frontend.id)?;
        // The frontend address is left out of the hash: a NodePort flow
        // hashes alike whichever node's address it was sent to, and every
        // node has the same table, so every node picks the same backend.
        let slot = flow_hash(flow.saddr, 0, flow.sport, flow.dport, flow.proto) as usize
            % MAGLEV_TABLE_SIZE;
        // LLVM turns `%` into a multiply-shift the verifier cannot bound;
        // an opaque copy keeps the explicit range check below in the code.
        let slot = core::hint::black_box(slot);
        if slot >= MAGLEV_TABLE_SIZE {
            return None;
        }
        // SAFETY: a pointer from a successful lookup stays valid for this run.
        *unsafe { &*table }.backends.get(slot)?
    } else {
        // SAFETY: bpf_get_prandom_u32 has no preconditions.
        let random = unsafe { bpf_get_prandom_u32() };
        let slot = random.checked_rem(u32::from(frontend.backend_count))? + 1;
        let id = BACKEND_SLOTS.get_ptr(BackendSlotKey {
            frontend_id: frontend.id,
            slot,
        })?;
        // SAFETY: as above.
        unsafe { *id }
    };
    let backend = BACKENDS.get_ptr(backend_id)?;
    // SAFETY: as above.
    let backend = unsafe { *backend };
    if affinity {
        let entry = AffinityEntry {
            last_used_ns: now,
            backend_id,
            pad: 0,
        };
        let _ = AFFINITY.insert(affinity_key, entry, 0);
    }
    Some((backend_id, backend))
}

/// The client's remembered backend, if the memory is fresh and the backend
/// still takes new flows.
#[inline(always)]
fn sticky_backend(key: AffinityKey, frontend: &Frontend, now: u64) -> Option<(u32, Backend)> {
    let entry = AFFINITY.get_ptr_mut(key)?;
    // SAFETY: a pointer from a successful lookup stays valid and aligned
    // for this run. The same client's flows run on other CPUs at the same
    // time and refresh `last_used_ns`, so no reference (which would claim
    // exclusive access) is formed: each field is accessed once through a
    // raw pointer with a volatile access, one aligned load or store in
    // BPF, so a racing write is seen whole or not at all.
    let (last_used, backend_id) = unsafe {
        (
            &raw mut (*entry).last_used_ns,
            (&raw const (*entry).backend_id).read_volatile(),
        )
    };
    let timeout_ns = u64::from(frontend.affinity_timeout_s) * 1_000_000_000;
    // SAFETY: as above.
    if now.wrapping_sub(unsafe { last_used.read_volatile() }) > timeout_ns {
        return None;
    }
    let backend = BACKENDS.get_ptr(backend_id)?;
    // SAFETY: a pointer from a successful lookup; copied out whole, and
    // user space replaces backends with whole-value updates.
    let backend = unsafe { *backend };
    if backend.flags & BACKEND_DRAINING != 0 {
        return None;
    }
    // SAFETY: as above; a refresh racing another CPU's writes the same
    // instant, either of which is right.
    unsafe { last_used.write_volatile(now) };
    Some((backend_id, backend))
}
