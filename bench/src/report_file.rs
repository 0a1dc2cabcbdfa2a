//! Where a benchmark's markdown report goes.

use std::path::Path;

use anyhow::{Context, Result};

/// Writes `text` to `path` (creating its directory) and prints it.
///
/// # Errors
/// When the file cannot be written.
pub fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    println!("\n{text}");
    println!("wrote {}", path.display());
    Ok(())
}
