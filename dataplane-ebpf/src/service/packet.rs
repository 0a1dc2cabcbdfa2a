//! The packet operations translation needs, for tc (socket buffers, through
//! kernel helpers that also handle CHECKSUM_PARTIAL) and for XDP (raw frames
//! with complete checksums, through direct access and RFC 1624 incremental
//! checksum updates).

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    programs::{TcContext, XdpContext},
};

/// Reading and rewriting a packet.
pub trait Packet {
    /// Reads a `T` at `offset`, if the packet is long enough.
    fn load<T: Copy>(&self, offset: usize) -> Option<T>;
    /// Writes `value` at `offset`.
    fn store<T: Copy>(&self, offset: usize, value: &T) -> Option<()>;
    /// Updates the IPv4 header checksum at `offset` for a 4-byte field
    /// changing from `from` to `to`.
    fn replace_l3_checksum(&self, offset: usize, from: u32, to: u32) -> Option<()>;
    /// Updates the TCP/UDP checksum at `offset` for a field of `size` bytes
    /// (2 or 4) changing from `from` to `to`; `pseudo` when the field is in
    /// the pseudo-header (an address). `udp`: a zero checksum means none.
    fn replace_l4_checksum(
        &self,
        offset: usize,
        from: u32,
        to: u32,
        size: u8,
        pseudo: bool,
        udp: bool,
    ) -> Option<()>;
    /// Packet length in bytes.
    fn len(&self) -> u32;
}

impl Packet for TcContext {
    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Option<T> {
        TcContext::load(self, offset).ok()
    }

    #[inline(always)]
    fn store<T: Copy>(&self, offset: usize, value: &T) -> Option<()> {
        TcContext::store(self, offset, value, 0).ok()
    }

    #[inline(always)]
    fn replace_l3_checksum(&self, offset: usize, from: u32, to: u32) -> Option<()> {
        self.l3_csum_replace(offset, u64::from(from), u64::from(to), 4)
            .ok()
    }

    #[inline(always)]
    fn replace_l4_checksum(
        &self,
        offset: usize,
        from: u32,
        to: u32,
        size: u8,
        pseudo: bool,
        udp: bool,
    ) -> Option<()> {
        let mut flags = u64::from(size);
        if pseudo {
            flags |= u64::from(BPF_F_PSEUDO_HDR);
        }
        if udp {
            flags |= u64::from(BPF_F_MARK_MANGLED_0);
        }
        self.l4_csum_replace(offset, u64::from(from), u64::from(to), flags)
            .ok()
    }

    #[inline(always)]
    fn len(&self) -> u32 {
        TcContext::len(self)
    }
}

/// Direct access to an XDP frame.
impl Packet for XdpContext {
    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Option<T> {
        let ptr = xdp_ptr::<T>(self, offset)?;
        // SAFETY: `xdp_ptr` checked that the bytes lie inside the frame.
        Some(unsafe { core::ptr::read_unaligned(ptr) })
    }

    #[inline(always)]
    fn store<T: Copy>(&self, offset: usize, value: &T) -> Option<()> {
        let ptr = xdp_ptr::<T>(self, offset)?;
        // SAFETY: as in `load`; XDP frames are writable.
        unsafe { core::ptr::write_unaligned(ptr, *value) };
        Some(())
    }

    #[inline(always)]
    fn replace_l3_checksum(&self, offset: usize, from: u32, to: u32) -> Option<()> {
        let sum: u16 = self.load(offset)?;
        self.store(offset, &incremental(sum, from, to, 4))
    }

    #[inline(always)]
    fn replace_l4_checksum(
        &self,
        offset: usize,
        from: u32,
        to: u32,
        size: u8,
        _pseudo: bool,
        udp: bool,
    ) -> Option<()> {
        let sum: u16 = self.load(offset)?;
        if udp && sum == 0 {
            return Some(());
        }
        let mut updated = incremental(sum, from, to, size);
        if udp && updated == 0 {
            updated = 0xffff;
        }
        self.store(offset, &updated)
    }

    #[inline(always)]
    fn len(&self) -> u32 {
        (self.data_end() - self.data()) as u32
    }
}

/// A pointer to `size_of::<T>()` bytes at `offset`, if they are in the frame.
#[inline(always)]
fn xdp_ptr<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// RFC 1624 eq. 3: HC' = ~(~HC + ~m + m'), over the 16-bit words of a
/// field of `size` bytes. Values are as in the packet (network order).
#[inline(always)]
fn incremental(sum: u16, from: u32, to: u32, size: u8) -> u16 {
    let mut acc = u32::from(!sum);
    if size == 4 {
        acc += u32::from(!(from as u16)) + u32::from(!((from >> 16) as u16));
        acc += u32::from(to as u16) + u32::from((to >> 16) as u16);
    } else {
        acc += u32::from(!(from as u16)) + u32::from(to as u16);
    }
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    !(acc as u16)
}
