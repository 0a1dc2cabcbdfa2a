//! Conntrack: one entry per direction of a translated flow. The forward
//! entry (client -> frontend) pins the flow to its backend; the reply entry
//! (backend -> client, or -> the SNAT source) says how to restore the
//! frontend address on the way back.

use aya_ebpf::bindings::BPF_NOEXIST;
use dataplane_common::service::{
    Backend, CT_CLOSING, CT_FORWARD, CT_REPLY, CT_SNAT, ConntrackEntry, ConntrackKey, NodeConfig,
    flow_hash,
};

use super::{
    Hook, Outcome,
    flow::{Flow, tcp_flags},
    maps::{BACKENDS, CONNTRACK, NODE_CONFIG, REVERSE_NAT, count_packet},
    nat,
    packet::Packet,
};

/// How often a flow's `last_seen` is refreshed: writing it on every packet
/// would bounce its cache line between CPUs for nothing.
const TOUCH_INTERVAL_NS: u64 = 1_000_000_000;

/// SNAT ports tried before a NodePort flow is dropped.
const SNAT_ATTEMPTS: u32 = 8;

#[inline(always)]
fn key(flow: &Flow, direction: u8) -> ConntrackKey {
    ConntrackKey {
        saddr: flow.saddr,
        daddr: flow.daddr,
        sport: flow.sport,
        dport: flow.dport,
        proto: flow.proto,
        direction,
        pad: 0,
    }
}

/// Refreshes an entry's idle clock and notes the end of a TCP flow.
#[inline(always)]
fn touch(entry: *mut ConntrackEntry, flow: &Flow, now: u64) {
    // SAFETY: `entry` comes from a successful lookup in this program run,
    // so it points at a live, aligned value for the whole run. Packets of
    // the same flow run on other CPUs at the same time and write the same
    // fields, so no reference (which would claim exclusive access) is
    // formed: each field is read and written once through a raw pointer
    // with a volatile access, which the BPF backend emits as one aligned
    // load or store of that width, so a racing write is seen whole or not
    // at all. A lost race only loses an idle-clock refresh that the other
    // CPU made at the same instant, or sets CT_CLOSING twice (no other
    // flag changes after the entry is created).
    unsafe {
        let last_seen = &raw mut (*entry).last_seen_ns;
        if now.wrapping_sub(last_seen.read_volatile()) > TOUCH_INTERVAL_NS {
            last_seen.write_volatile(now);
        }
        let flags = &raw mut (*entry).flags;
        let state = flags.read_volatile();
        if flow.tcp_flags & (tcp_flags::FIN | tcp_flags::RST) != 0 && state & CT_CLOSING == 0 {
            flags.write_volatile(state | CT_CLOSING);
        }
    }
}

/// If `flow` is a reply of a translated flow, restores the frontend as its
/// source (and the original client as its destination after SNAT) and
/// returns what to do with it; `None` if it is not a reply.
///
/// Where the restored source would be one of this node's own addresses (a
/// NodePort), the packet must not enter the node's IP stack again, which
/// drops packets from its own addresses as martians:
/// - leaving a pod, it is left alone here and translated after routing, on
///   the way out (uplink egress, or the client pod's veth egress);
/// - arriving from the network without SNAT, it is the reply to a pod here
///   whose flow went to a backend on another node: it is likewise left
///   alone and translated on the client pod's veth egress (a pod reaching
///   its own node's NodePort would otherwise see the reply dropped);
/// - arriving from the network after SNAT, it is sent straight back out
///   ([`Outcome::RouteOut`]).
#[inline(always)]
pub fn reverse<P: Packet>(ctx: &P, flow: &Flow, hook: Hook) -> Option<Outcome> {
    let entry_ptr = CONNTRACK.get_ptr_mut(key(flow, CT_REPLY))?;
    // The clock is read only for packets that have an entry to refresh.
    touch(entry_ptr, flow, super::monotonic_ns());
    // SAFETY: as in `touch`.
    let entry = unsafe { *entry_ptr };
    let snat = entry.flags & CT_SNAT != 0;
    if matches!(hook, Hook::FromPod | Hook::FromNetwork) && !snat {
        // Translated on the way out instead (see above); ClusterIP replies
        // take the same path so every reply is handled in one place.
        return Some(Outcome::Pass);
    }
    // The service is gone: nothing to restore; the client will reset.
    let frontend = REVERSE_NAT.get_ptr(entry.frontend_id)?;
    // SAFETY: a pointer from a successful lookup stays valid for this run.
    let frontend = unsafe { *frontend };
    if nat::rewrite_source(ctx, flow, frontend.addr, frontend.port).is_err() {
        return Some(Outcome::Drop);
    }
    if snat && nat::rewrite_destination(ctx, flow, entry.nat_addr, entry.nat_port).is_err() {
        return Some(Outcome::Drop);
    }
    count_packet(entry.frontend_id, ctx.len());
    // A source-NATed NodePort reply now comes from this node's address and
    // must leave directly (a hairpin reply comes from a ClusterIP: fine).
    let node_addr = NODE_CONFIG.get(0).map_or(0, |config| config.node_addr);
    if snat && frontend.addr == node_addr {
        return Some(Outcome::RouteOut {
            saddr: frontend.addr,
            daddr: entry.nat_addr,
        });
    }
    Some(Outcome::Pass)
}

/// A known flow's backend (if that backend still exists) and its SNAT source.
#[inline(always)]
pub fn lookup_forward(flow: &Flow, now: u64) -> Option<(Backend, Option<(u32, u16)>)> {
    let entry_ptr = CONNTRACK.get_ptr_mut(key(flow, CT_FORWARD))?;
    // SAFETY: as in `touch`.
    let entry = unsafe { *entry_ptr };
    // A backend that is gone ends its flows: the caller picks a new one.
    // A terminating backend that still exists keeps its flows.
    let backend = BACKENDS.get_ptr(entry.backend_id)?;
    touch(entry_ptr, flow, now);
    // SAFETY: a pointer from a successful lookup stays valid for this run.
    let backend = unsafe { *backend };
    let snat = (entry.flags & CT_SNAT != 0).then_some((entry.nat_addr, entry.nat_port));
    Some((backend, snat))
}

/// Records a new flow in both directions. With `snat_port_taken`, the
/// reply entry was already inserted by [`allocate_snat_port`].
#[inline(always)]
pub fn create(
    flow: &Flow,
    frontend_id: u32,
    backend_id: u32,
    backend: &Backend,
    snat: Option<(u32, u16)>,
    snat_port_taken: bool,
    now: u64,
) -> bool {
    let (nat_addr, nat_port, flags) = match snat {
        Some((addr, port)) => (addr, port, CT_SNAT),
        None => (0, 0, 0),
    };
    let forward = ConntrackEntry {
        last_seen_ns: now,
        backend_id,
        frontend_id,
        nat_addr,
        nat_port,
        pad: 0,
        flags,
        pad2: 0,
    };
    if CONNTRACK.insert(key(flow, CT_FORWARD), forward, 0).is_err() {
        return false;
    }
    if snat_port_taken {
        return true;
    }
    let (reply_key, reply) = reply_entry(flow, frontend_id, backend_id, backend, snat, now);
    CONNTRACK.insert(reply_key, reply, 0).is_ok()
}

#[inline(always)]
fn reply_entry(
    flow: &Flow,
    frontend_id: u32,
    backend_id: u32,
    backend: &Backend,
    snat: Option<(u32, u16)>,
    now: u64,
) -> (ConntrackKey, ConntrackEntry) {
    let (client_addr, client_port, flags) = match snat {
        Some((addr, port)) => (addr, port, CT_SNAT),
        None => (flow.saddr, flow.sport, 0),
    };
    let key = ConntrackKey {
        saddr: backend.addr,
        daddr: client_addr,
        sport: backend.port,
        dport: client_port,
        proto: flow.proto,
        direction: CT_REPLY,
        pad: 0,
    };
    let entry = ConntrackEntry {
        last_seen_ns: now,
        backend_id,
        frontend_id,
        // Where the reply really goes back to.
        nat_addr: flow.saddr,
        nat_port: flow.sport,
        pad: 0,
        flags,
        pad2: 0,
    };
    (key, entry)
}

/// Picks a free source port on the node address for a NodePort flow sent
/// to a backend on another node, claiming it by inserting the reply entry
/// (insert-if-absent, so two CPUs never get the same port).
#[inline(always)]
pub fn allocate_snat_port(
    flow: &Flow,
    backend: &Backend,
    config: &NodeConfig,
    frontend_id: u32,
    backend_id: u32,
    now: u64,
) -> Option<u16> {
    let min = u32::from(config.snat_port_min);
    let max = u32::from(config.snat_port_max);
    if min == 0 || max < min {
        return None;
    }
    let range = max - min + 1;
    let start = flow_hash(flow.saddr, flow.daddr, flow.sport, flow.dport, flow.proto);
    for attempt in 0..SNAT_ATTEMPTS {
        // A large odd stride visits different ports for nearby starts.
        let offset = start
            .wrapping_add(attempt.wrapping_mul(7_919))
            .checked_rem(range)?;
        let port = (min + offset) as u16;
        let port = port.to_be();
        let (key, entry) = reply_entry(
            flow,
            frontend_id,
            backend_id,
            backend,
            Some((config.node_addr, port)),
            now,
        );
        if CONNTRACK.insert(key, entry, u64::from(BPF_NOEXIST)).is_ok() {
            return Some(port);
        }
    }
    None
}
