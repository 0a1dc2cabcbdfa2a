//! Stopping `serve`: SIGTERM and SIGINT set a flag the serve loop and the
//! pod port follower look at between rounds.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

/// Set by SIGTERM/SIGINT.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether SIGTERM or SIGINT arrived.
pub(super) fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Makes SIGTERM and SIGINT request a stop.
///
/// # Errors
/// When a handler cannot be installed.
pub(super) fn install_handlers() -> Result<()> {
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let action = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::Handler(request_stop),
            nix::sys::signal::SaFlags::empty(),
            nix::sys::signal::SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic.
        unsafe { nix::sys::signal::sigaction(signal, &action) }
            .context("installing signal handlers")?;
    }
    Ok(())
}
