//! Sending a translated packet straight out of the node, past its IP stack.
//!
//! Needed where translation gives a packet one of the node's own addresses
//! as its source (SNAT to the node address, or restoring a NodePort as the
//! source of a reply) while it is still on the way in: the stack would drop
//! it as a martian. The FIB tells where it goes; the neighbour table (or
//! `bpf_redirect_neigh` when the neighbour is not resolved yet) gives the
//! MAC addresses.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_fib_lookup, bpf_redirect, bpf_redirect_neigh},
    programs::{TcContext, XdpContext},
};

use super::{TC_DROP, packet::Packet};

const AF_INET: u8 = 2;
/// BPF_FIB_LKUP_RET_SUCCESS.
const FIB_SUCCESS: i64 = 0;
/// BPF_FIB_LKUP_RET_NO_NEIGH: route found, neighbour not resolved.
const FIB_NO_NEIGH: i64 = 7;

/// `struct bpf_fib_lookup` (linux/bpf.h), IPv4 view, 64 bytes.
#[repr(C)]
struct FibLookup {
    family: u8,
    l4_protocol: u8,
    sport: u16,
    dport: u16,
    tot_len: u16,
    ifindex: u32,
    tos: u32,
    ipv4_src: [u32; 4],
    ipv4_dst: [u32; 4],
    vlan: u32,
    /// Output: source MAC then destination MAC.
    smac: [u8; 6],
    dmac: [u8; 6],
}

/// `struct bpf_redir_neigh` (linux/bpf.h), IPv4 view.
#[repr(C)]
struct RedirectNeighbour {
    nh_family: u32,
    ipv4_nh: [u32; 4],
}

const _: () = assert!(core::mem::size_of::<FibLookup>() == 64);
const _: () = assert!(core::mem::size_of::<RedirectNeighbour>() == 20);

/// A FIB query from `ifindex` for `saddr` -> `daddr`.
#[inline(always)]
fn query(ifindex: u32, saddr: u32, daddr: u32) -> FibLookup {
    FibLookup {
        family: AF_INET,
        l4_protocol: 0,
        sport: 0,
        dport: 0,
        tot_len: 0,
        ifindex,
        tos: 0,
        ipv4_src: [saddr, 0, 0, 0],
        ipv4_dst: [daddr, 0, 0, 0],
        vlan: 0,
        smac: [0; 6],
        dmac: [0; 6],
    }
}

/// Writes the MAC addresses the FIB found into the frame.
#[inline(always)]
fn set_macs<P: Packet>(ctx: &P, params: &FibLookup) -> Option<()> {
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&params.dmac);
    macs[6..].copy_from_slice(&params.smac);
    ctx.store(0, &macs)
}

/// Routes the (already translated) packet from `saddr` to `daddr` out of
/// the node and returns the verdict (TC_ACT_REDIRECT, or drop when there is
/// no route).
#[inline(always)]
pub fn route_out(ctx: &TcContext, saddr: u32, daddr: u32) -> i32 {
    // SAFETY: `skb` is this program's context.
    let mut params = query(unsafe { (*ctx.skb.skb).ifindex }, saddr, daddr);
    // SAFETY: `params` is a valid, initialised bpf_fib_lookup of the size passed.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.skb.skb.cast(),
            (&raw mut params).cast(),
            core::mem::size_of::<FibLookup>() as i32,
            0,
        )
    };
    match rc {
        FIB_SUCCESS => {
            if set_macs(ctx, &params).is_none() {
                return TC_DROP;
            }
            // SAFETY: no memory arguments.
            unsafe { bpf_redirect(params.ifindex, 0) as i32 }
        }
        FIB_NO_NEIGH => {
            // The FIB wrote the next hop (gateway or the destination itself)
            // into ipv4_dst.
            let mut next_hop = RedirectNeighbour {
                nh_family: u32::from(AF_INET),
                ipv4_nh: [params.ipv4_dst[0], 0, 0, 0],
            };
            // SAFETY: `next_hop` is a valid bpf_redir_neigh of the size passed.
            unsafe {
                bpf_redirect_neigh(
                    params.ifindex,
                    (&raw mut next_hop).cast(),
                    core::mem::size_of::<RedirectNeighbour>() as i32,
                    0,
                ) as i32
            }
        }
        _ => TC_DROP,
    }
}

/// [`route_out`] for XDP: out of the same interface with XDP_TX, or another
/// one with a redirect. `None` when there is no route or the neighbour is
/// not resolved (XDP cannot wait for it); the frame is untouched then.
#[inline(always)]
pub fn xdp_route_out(ctx: &XdpContext, saddr: u32, daddr: u32) -> Option<u32> {
    // SAFETY: `ctx` is this program's context.
    let ingress = unsafe { (*ctx.ctx).ingress_ifindex };
    let mut params = query(ingress, saddr, daddr);
    // SAFETY: `params` is a valid, initialised bpf_fib_lookup of the size passed.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.ctx.cast(),
            (&raw mut params).cast(),
            core::mem::size_of::<FibLookup>() as i32,
            0,
        )
    };
    if rc != FIB_SUCCESS {
        return None;
    }
    set_macs(ctx, &params)?;
    if params.ifindex == ingress {
        return Some(xdp_action::XDP_TX);
    }
    // SAFETY: no memory arguments.
    Some(unsafe { bpf_redirect(params.ifindex, 0) as u32 })
}
