//! Rewriting addresses and ports, keeping the IPv4 and TCP/UDP checksums
//! right (see [`Packet`] for how, per hook type).

use dataplane_common::service::proto;

use super::{
    flow::{Flow, IP_CSUM_OFFSET, IP_DADDR_OFFSET, IP_SADDR_OFFSET},
    packet::Packet,
};

/// A rewrite the packet did not allow (too short, or a helper failed).
#[derive(Debug)]
pub struct RewriteError;

/// Sets the destination address and port, fixing both checksums.
#[inline(always)]
pub fn rewrite_destination<P: Packet>(
    ctx: &P,
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
pub fn rewrite_source<P: Packet>(
    ctx: &P,
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
fn rewrite<P: Packet>(
    ctx: &P,
    flow: &Flow,
    addr_offset: usize,
    old_addr: u32,
    new_addr: u32,
    port_offset: usize,
    old_port: u16,
    new_port: u16,
) -> Result<(), RewriteError> {
    let csum = flow.l4_csum_offset();
    let udp = flow.proto == proto::UDP;
    if old_addr != new_addr {
        // The address is part of the L4 pseudo-header.
        ctx.replace_l4_checksum(csum, old_addr, new_addr, 4, true, udp)
            .ok_or(RewriteError)?;
        ctx.replace_l3_checksum(IP_CSUM_OFFSET, old_addr, new_addr)
            .ok_or(RewriteError)?;
        ctx.store(addr_offset, &new_addr).ok_or(RewriteError)?;
    }
    if old_port != new_port {
        ctx.replace_l4_checksum(
            csum,
            u32::from(old_port),
            u32::from(new_port),
            2,
            false,
            udp,
        )
        .ok_or(RewriteError)?;
        ctx.store(port_offset, &new_port).ok_or(RewriteError)?;
    }
    Ok(())
}
