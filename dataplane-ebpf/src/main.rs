//! rudder's kernel programs.
//!
//! Built only by `cargo xtask build-ebpf` (nightly, `bpfel-unknown-none`,
//! `-Z build-std=core`); the agent embeds the resulting object. Every program
//! passes packets it does not understand on untouched.
//!
//! On the host (`cargo clippy --workspace`) the crate is an ordinary binary
//! so the program code is still type-checked and linted.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

mod bandwidth;
mod counters;
mod pinned;
mod service;

/// The kernel refuses GPL-only helpers to programs without a GPL-compatible
/// licence; rudder's kernel programs are dual-licensed for that reason.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // The verifier proves there is no reachable panic; this only satisfies
    // the compiler.
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!("dataplane-ebpf holds kernel programs: build it with `cargo xtask build-ebpf`");
    std::process::exit(1);
}
