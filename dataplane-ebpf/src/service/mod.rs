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
mod redirect;
mod reject;
mod select;

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::classifier, programs::TcContext};
use dataplane_common::service::{
    BACKEND_LOCAL, FRONTEND_EXTERNAL_LOCAL, FRONTEND_NODE_PORT, Frontend, FrontendKey,
};

use self::{
    flow::Flow,
    maps::{FRONTENDS, NODE_CONFIG},
};

/// TCX_NEXT / TC_ACT_UNSPEC: continue with the next program, then the stack.
pub const TC_NEXT: i32 = -1;
/// TC_ACT_SHOT: drop.
pub const TC_DROP: i32 = 2;

/// Where a tc program is attached; decides which translations apply.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Ingress of a pod's host-side veth: the pod is sending.
    FromPod,
    /// Egress of a pod's host-side veth: the pod is receiving.
    ToPod,
    /// Ingress of the node uplink: from the network.
    FromNetwork,
    /// Egress of the node uplink: to the network.
    ToNetwork,
}

/// Translates service traffic leaving a pod (ClusterIP, NodePort by node
/// address, hairpin) and replies of local backends.
#[classifier]
pub fn svc_from_pod(ctx: TcContext) -> i32 {
    translate(&ctx, Hook::FromPod)
}

/// Restores the service address on replies entering a pod.
#[classifier]
pub fn svc_to_pod(ctx: TcContext) -> i32 {
    translate(&ctx, Hook::ToPod)
}

/// Translates NodePort traffic from the network, and replies to flows this
/// node source-NATed.
#[classifier]
pub fn svc_from_net(ctx: TcContext) -> i32 {
    translate(&ctx, Hook::FromNetwork)
}

/// Restores the NodePort address on replies of local backends leaving for
/// the network.
#[classifier]
pub fn svc_to_net(ctx: TcContext) -> i32 {
    translate(&ctx, Hook::ToNetwork)
}

#[inline(always)]
fn translate(ctx: &TcContext, hook: Hook) -> i32 {
    let Some(flow) = Flow::parse(ctx) else {
        return TC_NEXT;
    };
    let now = monotonic_ns();
    if let Some(verdict) = conntrack::reverse(ctx, &flow, hook, now) {
        return verdict;
    }
    if hook == Hook::ToPod || hook == Hook::ToNetwork {
        return TC_NEXT;
    }
    let key = FrontendKey {
        addr: flow.daddr,
        port: flow.dport,
        proto: flow.proto,
        pad: 0,
    };
    let Some(frontend) = FRONTENDS.get_ptr(key) else {
        return TC_NEXT;
    };
    // SAFETY: a pointer from a successful lookup stays valid for this run.
    let frontend: Frontend = unsafe { *frontend };
    // From the network only NodePorts are served; ClusterIPs are internal.
    if hook == Hook::FromNetwork && frontend.flags & FRONTEND_NODE_PORT == 0 {
        return TC_NEXT;
    }
    forward(ctx, hook, &flow, &frontend, now)
}

/// New or known flow to a frontend: find its backend, record it, rewrite.
#[inline(always)]
fn forward(ctx: &TcContext, hook: Hook, flow: &Flow, frontend: &Frontend, now: u64) -> i32 {
    let (backend, snat) = match conntrack::lookup_forward(flow, now) {
        Some(known) => known,
        None => match new_flow(ctx, hook, flow, frontend, now) {
            Ok(assigned) => assigned,
            Err(verdict) => {
                maps::count_drop(frontend.id);
                return verdict;
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
        return TC_DROP;
    }
    maps::count_packet(frontend.id, ctx.len());
    // Source-NATed to this node's address on the way in: the stack would
    // drop it as a martian, so it leaves directly. (Hairpin SNAT uses a
    // link-local address, which the stack accepts.)
    match snat {
        Some((addr, _)) if hook == Hook::FromNetwork => redirect::route_out(ctx, addr, backend.addr),
        _ => TC_NEXT,
    }
}

/// Picks a backend for a new flow, decides its SNAT and records it; the
/// error is the verdict for a flow that cannot be served.
#[inline(always)]
fn new_flow(
    ctx: &TcContext,
    hook: Hook,
    flow: &Flow,
    frontend: &Frontend,
    now: u64,
) -> Result<(dataplane_common::service::Backend, Option<(u32, u16)>), i32> {
    let Some((backend_id, backend)) = select::backend(flow, frontend, now) else {
        return Err(reject::refuse(ctx, flow, hook));
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
                .ok_or(TC_DROP)?;
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
        return Err(TC_DROP);
    }
    maps::count_new_flow(frontend.id);
    Ok((backend, snat))
}

#[inline(always)]
fn monotonic_ns() -> u64 {
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    unsafe { bpf_ktime_get_ns() }
}
