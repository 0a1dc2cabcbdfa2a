//! Parsing the headers the translation needs. Anything that is not an
//! unfragmented IPv4 TCP or UDP packet with complete headers yields `None`
//! and passes untouched.

use dataplane_common::service::proto;

use super::packet::Packet;

/// Ethernet header length; IPv4 starts here.
pub const L3_OFFSET: usize = 14;
/// Offset of the IPv4 header checksum.
pub const IP_CSUM_OFFSET: usize = L3_OFFSET + 10;
/// Offset of the IPv4 source address.
pub const IP_SADDR_OFFSET: usize = L3_OFFSET + 12;
/// Offset of the IPv4 destination address.
pub const IP_DADDR_OFFSET: usize = L3_OFFSET + 16;

/// TCP flag bits (byte 13 of the TCP header).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

/// An IPv4 header without options, as on the wire.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv4Header {
    pub version_ihl: u8,
    pub tos: u8,
    pub total_len: u16,
    pub id: u16,
    pub frag_off: u16,
    pub ttl: u8,
    pub proto: u8,
    pub check: u16,
    pub saddr: u32,
    pub daddr: u32,
}

/// What the translation knows of a packet. Addresses and ports in network
/// byte order.
#[derive(Clone, Copy)]
pub struct Flow {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// TCP flags; zero for UDP.
    pub tcp_flags: u8,
    /// IPv4 header length in bytes (20..=60).
    pub ip_header_len: usize,
    /// IPv4 total length (host byte order).
    pub ip_total_len: u16,
}

impl Flow {
    /// Parses Ethernet + IPv4 + TCP/UDP ports; `None` for anything else.
    #[inline(always)]
    pub fn parse<P: Packet>(ctx: &P) -> Option<Self> {
        let ether_type: u16 = ctx.load(12)?;
        if ether_type != 0x0800u16.to_be() {
            return None;
        }
        let ip: Ipv4Header = ctx.load(L3_OFFSET)?;
        if ip.version_ihl >> 4 != 4 {
            return None;
        }
        let ip_header_len = usize::from(ip.version_ihl & 0x0f) * 4;
        if ip_header_len < 20 {
            return None;
        }
        // Fragments (MF set or an offset) carry no usable L4 header on all
        // but the first; translating only the first would split the packet.
        if u16::from_be(ip.frag_off) & 0x3fff != 0 {
            return None;
        }
        let l4 = L3_OFFSET + ip_header_len;
        let (ports, tcp_flags) = match ip.proto {
            proto::TCP => {
                let ports: [u16; 2] = ctx.load(l4)?;
                let flags: u8 = ctx.load(l4 + 13)?;
                (ports, flags)
            }
            proto::UDP => {
                let ports: [u16; 2] = ctx.load(l4)?;
                // The whole UDP header must be there (length, checksum).
                let _: u32 = ctx.load(l4 + 4)?;
                (ports, 0)
            }
            _ => return None,
        };
        Some(Self {
            saddr: ip.saddr,
            daddr: ip.daddr,
            sport: ports[0],
            dport: ports[1],
            proto: ip.proto,
            tcp_flags,
            ip_header_len,
            ip_total_len: u16::from_be(ip.total_len),
        })
    }

    /// Offset of the L4 header.
    #[inline(always)]
    pub fn l4_offset(&self) -> usize {
        L3_OFFSET + self.ip_header_len
    }

    /// Offset of the L4 checksum.
    #[inline(always)]
    pub fn l4_csum_offset(&self) -> usize {
        self.l4_offset() + if self.proto == proto::TCP { 16 } else { 6 }
    }
}
