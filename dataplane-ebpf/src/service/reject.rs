//! Refusing connections to a frontend without backends, promptly: a TCP
//! reset for TCP, an ICMP port unreachable for UDP, sent back out of the
//! interface the packet came in on. Anything else is dropped.

use aya_ebpf::{
    helpers::{bpf_redirect, bpf_skb_change_tail},
    programs::TcContext,
};
use dataplane_common::service::proto;

use super::{
    Hook, TC_DROP,
    flow::{Flow, L3_OFFSET, tcp_flags},
};

/// Ethernet + IPv4 + TCP, no options.
const RST_LEN: usize = 14 + 20 + 20;
/// Ethernet + IPv4 + ICMP header + quoted IPv4 header + 8 quoted bytes.
const ICMP_LEN: usize = 14 + 20 + 8 + 20 + 8;

/// Answers `flow` with a refusal and returns the verdict.
#[inline(always)]
pub fn refuse(ctx: &TcContext, flow: &Flow, hook: Hook) -> i32 {
    // Only where the sender is on the other side of this interface.
    if hook != Hook::FromPod && hook != Hook::FromNetwork {
        return TC_DROP;
    }
    let built = match flow.proto {
        proto::TCP => tcp_reset(ctx, flow),
        proto::UDP => icmp_port_unreachable(ctx, flow),
        _ => None,
    };
    if built.is_none() {
        return TC_DROP;
    }
    // SAFETY: `skb` is this program's context.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: bpf_redirect has no memory preconditions.
    unsafe { bpf_redirect(ifindex, 0) as i32 }
}

/// Ethernet header of the answer: the sender's MAC becomes the destination.
#[inline(always)]
fn reversed_ethernet<const N: usize>(ctx: &TcContext, frame: &mut [u8; N]) -> Option<()> {
    let macs: [u8; 12] = ctx.load(0).ok()?;
    frame[0..6].copy_from_slice(&macs[6..12]);
    frame[6..12].copy_from_slice(&macs[0..6]);
    frame[12] = 0x08;
    frame[13] = 0x00;
    Some(())
}

/// IPv4 header of the answer, from the service address back to the client.
#[inline(always)]
fn reply_ipv4<const N: usize>(flow: &Flow, frame: &mut [u8; N], total_len: u16, ip_proto: u8) {
    let ip = &mut frame[L3_OFFSET..L3_OFFSET + 20];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&total_len.to_be_bytes());
    ip[4..6].copy_from_slice(&[0, 0]);
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // don't fragment
    ip[8] = 64;
    ip[9] = ip_proto;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&flow.daddr.to_ne_bytes());
    ip[16..20].copy_from_slice(&flow.saddr.to_ne_bytes());
    let csum = checksum(0, ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
}

/// Turns the packet into a RST (RFC 9293 3.10.7.1, "CLOSED" state).
#[inline(always)]
fn tcp_reset(ctx: &TcContext, flow: &Flow) -> Option<()> {
    if flow.tcp_flags & tcp_flags::RST != 0 {
        return None; // never answer a reset
    }
    let l4 = flow.l4_offset();
    let seq: u32 = u32::from_be(ctx.load(l4 + 4).ok()?);
    let ack: u32 = u32::from_be(ctx.load(l4 + 8).ok()?);
    let data_offset: u8 = ctx.load(l4 + 12).ok()?;
    let header_len = usize::from(data_offset >> 4) * 4;
    let payload = usize::from(flow.ip_total_len).saturating_sub(flow.ip_header_len + header_len);

    let mut frame = [0u8; RST_LEN];
    reversed_ethernet(ctx, &mut frame)?;
    reply_ipv4(flow, &mut frame, 40, proto::TCP);
    let tcp = &mut frame[34..54];
    tcp[0..2].copy_from_slice(&flow.dport.to_ne_bytes());
    tcp[2..4].copy_from_slice(&flow.sport.to_ne_bytes());
    let (seq_out, ack_out, flags) = if flow.tcp_flags & tcp_flags::ACK != 0 {
        (ack, 0, tcp_flags::RST)
    } else {
        let mut len = payload as u32;
        if flow.tcp_flags & tcp_flags::SYN != 0 {
            len += 1;
        }
        if flow.tcp_flags & tcp_flags::FIN != 0 {
            len += 1;
        }
        (0, seq.wrapping_add(len), tcp_flags::RST | tcp_flags::ACK)
    };
    tcp[4..8].copy_from_slice(&seq_out.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack_out.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    let csum = checksum(pseudo_header_sum(flow, proto::TCP, 20), tcp);
    tcp[16..18].copy_from_slice(&csum.to_be_bytes());

    // SAFETY: `skb` is this program's context; the new length is valid.
    if unsafe { bpf_skb_change_tail(ctx.skb.skb, RST_LEN as u32, 0) } != 0 {
        return None;
    }
    ctx.store(0, &frame, 0).ok()
}

/// Turns the packet into an ICMP port unreachable quoting its headers.
#[inline(always)]
fn icmp_port_unreachable(ctx: &TcContext, flow: &Flow) -> Option<()> {
    if flow.ip_header_len != 20 {
        return None;
    }
    let quoted: [u8; 28] = ctx.load(L3_OFFSET).ok()?;
    let mut frame = [0u8; ICMP_LEN];
    reversed_ethernet(ctx, &mut frame)?;
    reply_ipv4(flow, &mut frame, (ICMP_LEN - 14) as u16, 1);
    let icmp = &mut frame[34..ICMP_LEN];
    icmp[0] = 3; // destination unreachable
    icmp[1] = 3; // port unreachable
    icmp[8..36].copy_from_slice(&quoted);
    let csum = checksum(0, icmp);
    icmp[2..4].copy_from_slice(&csum.to_be_bytes());

    // SAFETY: `skb` is this program's context; the new length is valid.
    if unsafe { bpf_skb_change_tail(ctx.skb.skb, ICMP_LEN as u32, 0) } != 0 {
        return None;
    }
    ctx.store(0, &frame, 0).ok()
}

/// Sum of the TCP/UDP pseudo-header of the answer (addresses swapped).
#[inline(always)]
fn pseudo_header_sum(flow: &Flow, ip_proto: u8, l4_len: u16) -> u32 {
    let s = flow.daddr.to_ne_bytes();
    let d = flow.saddr.to_ne_bytes();
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(ip_proto)
        + u32::from(l4_len)
}

/// RFC 1071 checksum of `bytes` (even length) on top of `initial`.
#[inline(always)]
fn checksum(initial: u32, bytes: &[u8]) -> u16 {
    let mut sum = initial;
    let mut i = 0;
    while i + 1 < bytes.len() {
        sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
