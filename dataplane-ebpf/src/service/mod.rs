//! Service load balancing: ClusterIP and NodePort translation with
//! conntrack, reverse NAT, SNAT for NodePort traffic sent to other nodes,
//! session affinity, Maglev, rejection when there is no backend, and
//! per-service counters.
//!
//! One core ([`translate`]) serves four tc hooks; what differs per hook is
//! in [`Hook`]. Every packet first gets a reply lookup (is it the answer of
//! a translated flow? then restore the service address), then a frontend
//! lookup (is it addressed to a service? then pick a backend). Packets that
//! are neither, or that the parser does not understand, pass untouched.

mod conntrack;
mod flow;
mod maps;
mod nat;
mod packet;
mod redirect;
mod reject;
mod select;
mod socket;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_ktime_get_ns,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use dataplane_common::{
    bandwidth::BandwidthDirection,
    service::{
        BACKEND_LOCAL, Backend, FRONTEND_EXTERNAL_LOCAL, FRONTEND_NODE_PORT, Frontend, FrontendKey,
    },
};

use crate::bandwidth::{self, Verdict};

use self::{
    flow::Flow,
    maps::{FRONTENDS, NODE_CONFIG},
    packet::Packet,
};

/// TCX_NEXT / TC_ACT_UNSPEC: continue with the next program, then the stack.
pub const TC_NEXT: i32 = -1;
/// TC_ACT_SHOT: drop.
pub const TC_DROP: i32 = 2;

/// Where a program is attached; decides which translations apply.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Ingress of a pod's host-side veth: the pod is sending.
    FromPod,
    /// Egress of a pod's host-side veth: the pod is receiving.
    ToPod,
    /// Ingress of the node uplink (tc or XDP): from the network.
    FromNetwork,
    /// Egress of the node uplink: to the network.
    ToNetwork,
}

/// What translation decided; each program type turns it into its verdict.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Continue (translated or not) through the stack.
    Pass,
    /// Drop.
    Drop,
    /// No backend: refuse the connection (frontend id for the counters).
    Refuse(u32),
    /// Translated to carry this node's address as its source while still
    /// on the way in: send it out directly (the stack would drop it as a
    /// martian).
    RouteOut {
        /// New source address.
        saddr: u32,
        /// New destination address.
        daddr: u32,
    },
}

/// Applies the pod's egress bandwidth limit, then translates service
/// traffic leaving the pod (ClusterIP, NodePort by node address, hairpin)
/// and replies of local backends.
#[classifier]
pub fn svc_from_pod(ctx: TcContext) -> i32 {
    if bandwidth::limit(&ctx, BandwidthDirection::FromPod) == Verdict::Drop {
        return TC_DROP;
    }
    tc_translate(&ctx, Hook::FromPod)
}

/// Applies the pod's ingress bandwidth limit, then restores the service
/// address on replies entering the pod.
#[classifier]
pub fn svc_to_pod(ctx: TcContext) -> i32 {
    if bandwidth::limit(&ctx, BandwidthDirection::ToPod) == Verdict::Drop {
        return TC_DROP;
    }
    tc_translate(&ctx, Hook::ToPod)
}

/// Translates NodePort traffic from the network, and replies to flows this
/// node source-NATed.
#[classifier]
pub fn svc_from_net(ctx: TcContext) -> i32 {
    tc_translate(&ctx, Hook::FromNetwork)
}

/// Restores the NodePort address on replies of local backends leaving for
/// the network.
#[classifier]
pub fn svc_to_net(ctx: TcContext) -> i32 {
    tc_translate(&ctx, Hook::ToNetwork)
}

/// NodePort fast path: translates new and known NodePort flows from the
/// network before the kernel allocates a socket buffer. Everything else,
/// including replies and refusals, is left to the tc programs, which also
/// handle checksums a local sender left partial (XDP sees complete
/// checksums from real NICs; test hosts turn veth checksum offload off).
#[xdp]
pub fn svc_xdp(ctx: XdpContext) -> u32 {
    let Some(flow) = Flow::parse(&ctx) else {
        return xdp_action::XDP_PASS;
    };
    match translate(&ctx, &flow, Hook::FromNetwork, false) {
        Outcome::Pass | Outcome::Refuse(_) => xdp_action::XDP_PASS,
        Outcome::Drop => xdp_action::XDP_DROP,
        Outcome::RouteOut { saddr, daddr } => match redirect::xdp_route_out(&ctx, saddr, daddr) {
            Some(action) => action,
            // Next hop not resolved yet: undo the rewrite and let tc send
            // it (its conntrack entry exists now), resolving the neighbour.
            None => match restore(&ctx, &flow) {
                Some(()) => xdp_action::XDP_PASS,
                None => xdp_action::XDP_DROP,
            },
        },
    }
}

/// Puts `original`'s addresses and ports back into the frame.
#[inline(always)]
fn restore<P: Packet>(ctx: &P, original: &Flow) -> Option<()> {
    let current = Flow::parse(ctx)?;
    nat::rewrite_destination(ctx, &current, original.daddr, original.dport).ok()?;
    nat::rewrite_source(ctx, &current, original.saddr, original.sport).ok()
}

#[inline(always)]
fn tc_translate(ctx: &TcContext, hook: Hook) -> i32 {
    let Some(flow) = Flow::parse(ctx) else {
        return TC_NEXT;
    };
    match translate(ctx, &flow, hook, true) {
        Outcome::Pass => TC_NEXT,
        Outcome::Drop => TC_DROP,
        Outcome::Refuse(frontend_id) => {
            maps::count_drop(frontend_id);
            reject::refuse(ctx, &flow, hook)
        }
        Outcome::RouteOut { saddr, daddr } => redirect::route_out(ctx, saddr, daddr),
    }
}

/// The translation shared by every hook. `replies`: whether to look for
/// replies of translated flows too (the XDP fast path does not).
#[inline(always)]
fn translate<P: Packet>(ctx: &P, flow: &Flow, hook: Hook, replies: bool) -> Outcome {
    if replies
        && may_be_translated_reply(hook, flow)
        && let Some(outcome) = conntrack::reverse(ctx, flow, hook)
    {
        return outcome;
    }
    if hook == Hook::ToPod || hook == Hook::ToNetwork {
        return Outcome::Pass;
    }
    let key = FrontendKey {
        addr: flow.daddr,
        port: flow.dport,
        proto: flow.proto,
        pad: 0,
    };
    let Some(frontend) = FRONTENDS.get_ptr(key) else {
        return Outcome::Pass;
    };
    // SAFETY: a pointer from a successful lookup stays valid for this run.
    let frontend: Frontend = unsafe { *frontend };
    // From the network only NodePorts are served; ClusterIPs are internal.
    if hook == Hook::FromNetwork && frontend.flags & FRONTEND_NODE_PORT == 0 {
        return Outcome::Pass;
    }
    forward(ctx, hook, flow, &frontend, monotonic_ns())
}

/// Whether `flow` may be a reply this hook translates, before paying for
/// a conntrack lookup. Leaving a pod, only replies of source-NATed flows
/// are translated (every other reply is restored on its way into the
/// client pod, or out of the node), and those are addressed to this
/// node's address or to the hairpin address: the bulk of pod traffic,
/// pod to pod, skips the lookup.
#[inline(always)]
fn may_be_translated_reply(hook: Hook, flow: &Flow) -> bool {
    if hook != Hook::FromPod {
        return true;
    }
    NODE_CONFIG
        .get(0)
        .is_none_or(|config| flow.daddr == config.node_addr || flow.daddr == config.hairpin_addr)
}

/// New or known flow to a frontend: find its backend, record it, rewrite.
#[inline(always)]
fn forward<P: Packet>(ctx: &P, hook: Hook, flow: &Flow, frontend: &Frontend, now: u64) -> Outcome {
    let (backend, snat) = match conntrack::lookup_forward(flow, now) {
        Some(known) => known,
        None => match new_flow(hook, flow, frontend, now) {
            Ok(assigned) => assigned,
            Err(outcome) => {
                if outcome == Outcome::Drop {
                    maps::count_drop(frontend.id);
                }
                return outcome;
            }
        },
    };
    let rewritten =
        nat::rewrite_destination(ctx, flow, backend.addr, backend.port).and_then(|()| match snat {
            Some((addr, port)) => nat::rewrite_source(ctx, flow, addr, port),
            None => Ok(()),
        });
    if rewritten.is_err() {
        maps::count_drop(frontend.id);
        return Outcome::Drop;
    }
    maps::count_packet(frontend.id, ctx.len());
    // Source-NATed to this node's address on the way in. (Hairpin SNAT uses
    // a link-local address, which the stack accepts.)
    match snat {
        Some((addr, _)) if hook == Hook::FromNetwork => Outcome::RouteOut {
            saddr: addr,
            daddr: backend.addr,
        },
        _ => Outcome::Pass,
    }
}

/// Picks a backend for a new flow, decides its SNAT and records it; the
/// error says what to do with a flow that cannot be served.
#[inline(always)]
fn new_flow(
    hook: Hook,
    flow: &Flow,
    frontend: &Frontend,
    now: u64,
) -> Result<(Backend, Option<(u32, u16)>), Outcome> {
    let Some((backend_id, backend)) = select::backend(flow, frontend, now) else {
        return Err(Outcome::Refuse(frontend.id));
    };
    let config = NODE_CONFIG.get(0).copied().unwrap_or_default();
    // A pod reaching itself through a service: its own address as the
    // source would make it drop the packet as a martian.
    let hairpin = hook == Hook::FromPod && backend.addr == flow.saddr;
    // NodePort to another node's backend with externalTrafficPolicy
    // Cluster: the reply must come back through this node.
    let remote_node_port = hook == Hook::FromNetwork
        && backend.flags & BACKEND_LOCAL == 0
        && frontend.flags & FRONTEND_EXTERNAL_LOCAL == 0;
    let (snat, port_taken) = if hairpin {
        (Some((config.hairpin_addr, flow.sport)), false)
    } else if remote_node_port {
        let port =
            conntrack::allocate_snat_port(flow, &backend, &config, frontend.id, backend_id, now)
                .ok_or(Outcome::Drop)?;
        (Some((config.node_addr, port)), true)
    } else {
        (None, false)
    };
    if !conntrack::create(
        flow,
        frontend.id,
        backend_id,
        &backend,
        snat,
        port_taken,
        now,
    ) {
        return Err(Outcome::Drop);
    }
    maps::count_new_flow(frontend.id);
    Ok((backend, snat))
}

#[inline(always)]
fn monotonic_ns() -> u64 {
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    unsafe { bpf_ktime_get_ns() }
}
