//! `cargo xtask bench dataplane`: being written (issue 3).

use anyhow::{Result, bail};

/// Runs the dataplane benchmark.
pub fn run() -> Result<()> {
    bail!("the dataplane benchmark is being written (issue 3)")
}
