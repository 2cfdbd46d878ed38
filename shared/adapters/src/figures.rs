//! The Rust reliability suites' figures (docs/reliability.md): each suite writes
//! `$RELIABILITY_DIR/<suite>.json` (default `<repo>/.run/reliability/`), which
//! `tests/reliability_report.py` sums into one table.

use std::path::{Path, PathBuf};

/// Writes `figures` (the suite's name and the report's counts, as the report's contract says) to
/// `$RELIABILITY_DIR/<suite>.json`; returns the file's path.
pub fn write_reliability_figures(suite: &str, figures: &impl serde::Serialize) -> PathBuf {
    let dir = std::env::var_os("RELIABILITY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.run/reliability"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{suite}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(figures).unwrap()).unwrap();
    path
}
