//! `lifeboat version` and `lifeboat generate completions|man`: what
//! packagers and operators install next to the binary.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, Global};
use crate::output;

/// Prints the version; with `--json`, also the repository format versions.
pub fn version(g: &Global) -> Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    if g.json {
        return output::json(&serde_json::json!({
            "version": version,
            "format_version": lifeboat_format::FORMAT_VERSION,
            "reads_format_versions_from": lifeboat_format::MIN_READ_VERSION,
        }));
    }
    outln!(
        "lifeboat {version} (repository format {})",
        lifeboat_format::FORMAT_VERSION
    );
    Ok(())
}

/// Writes the completion script for `shell` to standard output.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "lifeboat", &mut script);
    outln!("{}", String::from_utf8_lossy(&script).trim_end());
    Ok(())
}

/// Writes `lifeboat.1` and a page per command (`lifeboat-backup-files.1`, …)
/// into `dir`.
pub fn man(g: &Global, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write the manual pages to {}", dir.display()))?;
    let mut written: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("lifeboat") && n.ends_with(".1"))
        .collect();
    written.sort();
    if g.json {
        return output::json(&written);
    }
    if !g.quiet {
        outln!(
            "wrote {} manual page(s) to {}",
            written.len(),
            dir.display()
        );
    }
    Ok(())
}
