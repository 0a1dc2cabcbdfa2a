//! `cargo xtask bench store`: written with the store (issue 4).

use anyhow::{Result, bail};

/// Runs the store benchmark.
pub fn run() -> Result<()> {
    bail!("the store benchmark lands with the store (issue 4)")
}
