//! Connect-time translation (cgroup sock_addr hooks): a process in the
//! cgroup that connects to, or sends a datagram to, a frontend is pointed at
//! a backend before any packet exists, so its packets need no per-packet
//! NAT at all. Replies to unconnected UDP sockets get the frontend back as
//! their source at recvmsg.
//!
//! The "flow" hashed for Maglev is the socket (its cookie); the "client"
//! for session affinity is the network namespace (a pod), as no source
//! address is known yet at connect time.

use aya_ebpf::{
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    macros::cgroup_sock_addr,
    maps::LruHashMap,
    programs::SockAddrContext,
};
use dataplane_common::{
    map_names,
    service::{Frontend, FrontendKey, MAX_SOCKET_NAT, ReverseNat, SocketNatKey},
};

use super::{
    flow::Flow,
    maps::{FRONTENDS, count_new_flow},
    select,
};
use crate::pinned::pinned_map;

/// Proceed with the (possibly rewritten) operation.
const ALLOW: i32 = 1;

pinned_map! {
    map_names::SOCKET_NAT = "SOCKET_NAT",
    /// Which frontend a socket's backend stands for.
    static SOCKET_NAT: LruHashMap<SocketNatKey, ReverseNat> = LruHashMap::pinned(MAX_SOCKET_NAT, 0);
}

/// connect() of TCP and UDP sockets.
#[cgroup_sock_addr(connect4)]
pub fn sock_connect4(ctx: SockAddrContext) -> i32 {
    translate_destination(&ctx)
}

/// sendmsg() on unconnected UDP sockets.
#[cgroup_sock_addr(sendmsg4)]
pub fn sock_sendmsg4(ctx: SockAddrContext) -> i32 {
    translate_destination(&ctx)
}

/// recvmsg() on UDP sockets: the reply's source becomes the frontend.
#[cgroup_sock_addr(recvmsg4)]
pub fn sock_recvmsg4(ctx: SockAddrContext) -> i32 {
    // SAFETY: the context pointer the kernel handed to this program.
    let addr = unsafe { &mut *ctx.sock_addr };
    // SAFETY: bpf_get_socket_cookie takes this program's context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
    let key = SocketNatKey {
        cookie,
        addr: addr.user_ip4,
        port: addr.user_port as u16,
        pad: 0,
    };
    if let Some(frontend) = SOCKET_NAT.get_ptr(key) {
        // SAFETY: a pointer from a successful lookup stays valid for this run.
        let frontend = unsafe { *frontend };
        addr.user_ip4 = frontend.addr;
        addr.user_port = u32::from(frontend.port);
    }
    ALLOW
}

#[inline(always)]
fn translate_destination(ctx: &SockAddrContext) -> i32 {
    // SAFETY: the context pointer the kernel handed to this program.
    let addr = unsafe { &mut *ctx.sock_addr };
    let key = FrontendKey {
        addr: addr.user_ip4,
        port: addr.user_port as u16,
        proto: addr.protocol as u8,
        pad: 0,
    };
    let Some(frontend) = FRONTENDS.get_ptr(key) else {
        return ALLOW;
    };
    // SAFETY: as above.
    let frontend: Frontend = unsafe { *frontend };
    // SAFETY: both helpers take this program's context.
    let (cookie, netns) = unsafe {
        (
            bpf_get_socket_cookie(ctx.sock_addr.cast()),
            bpf_get_netns_cookie(ctx.sock_addr.cast()),
        )
    };
    let flow = Flow {
        saddr: netns as u32,
        daddr: key.addr,
        sport: cookie as u16,
        dport: key.port,
        proto: key.proto,
        tcp_flags: 0,
        ip_header_len: 20,
        ip_total_len: 0,
    };
    // No backend: leave the address alone; the packet path refuses it (a
    // pod's veth) or the service CIDR blackhole route does (the host).
    let Some((_, backend)) = select::backend(&flow, &frontend, super::monotonic_ns()) else {
        return ALLOW;
    };
    let nat_key = SocketNatKey {
        cookie,
        addr: backend.addr,
        port: backend.port,
        pad: 0,
    };
    let original = ReverseNat {
        addr: key.addr,
        port: key.port,
        pad: 0,
    };
    let _ = SOCKET_NAT.insert(nat_key, original, 0);
    addr.user_ip4 = backend.addr;
    addr.user_port = u32::from(backend.port);
    count_new_flow(frontend.id);
    ALLOW
}
