//! Rewriting addresses and ports with the kernel's checksum helpers, which
//! also handle CHECKSUM_PARTIAL packets (the norm for traffic from local
//! sockets and veths) correctly.

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    programs::TcContext,
};
use dataplane_common::service::proto;

use super::flow::{Flow, IP_CSUM_OFFSET, IP_DADDR_OFFSET, IP_SADDR_OFFSET};

/// Error from a packet-rewriting helper (its negative errno).
pub type RewriteError = i64;

#[inline(always)]
fn l4_flags(flow: &Flow) -> u64 {
    // A zero UDP checksum means "none": keep it zero.
    if flow.proto == proto::UDP {
        u64::from(BPF_F_MARK_MANGLED_0)
    } else {
        0
    }
}

/// Sets the destination address and port, fixing both checksums.
#[inline(always)]
pub fn rewrite_destination(
    ctx: &TcContext,
    flow: &Flow,
    addr: u32,
    port: u16,
) -> Result<(), RewriteError> {
    rewrite(
        ctx,
        flow,
        IP_DADDR_OFFSET,
        flow.daddr,
        addr,
        flow.l4_offset() + 2,
        flow.dport,
        port,
    )
}

/// Sets the source address and port, fixing both checksums.
#[inline(always)]
pub fn rewrite_source(
    ctx: &TcContext,
    flow: &Flow,
    addr: u32,
    port: u16,
) -> Result<(), RewriteError> {
    rewrite(
        ctx,
        flow,
        IP_SADDR_OFFSET,
        flow.saddr,
        addr,
        flow.l4_offset(),
        flow.sport,
        port,
    )
}

#[inline(always)]
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per direction, all values distinct"
)]
fn rewrite(
    ctx: &TcContext,
    flow: &Flow,
    addr_offset: usize,
    old_addr: u32,
    new_addr: u32,
    port_offset: usize,
    old_port: u16,
    new_port: u16,
) -> Result<(), RewriteError> {
    let csum = flow.l4_csum_offset();
    let flags = l4_flags(flow);
    if old_addr != new_addr {
        // The address is part of the L4 pseudo-header.
        ctx.l4_csum_replace(
            csum,
            u64::from(old_addr),
            u64::from(new_addr),
            flags | u64::from(BPF_F_PSEUDO_HDR) | 4,
        )?;
        ctx.l3_csum_replace(IP_CSUM_OFFSET, u64::from(old_addr), u64::from(new_addr), 4)?;
        ctx.store(addr_offset, &new_addr, 0)?;
    }
    if old_port != new_port {
        ctx.l4_csum_replace(csum, u64::from(old_port), u64::from(new_port), flags | 2)?;
        ctx.store(port_offset, &new_port, 0)?;
    }
    Ok(())
}
