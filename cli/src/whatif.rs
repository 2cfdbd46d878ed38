//! `what-if SITE --config NEW`: the site's audit trail re-decided by the policy crate.

use failover_policy::whatif::{replay, Report};
use failover_policy::SiteState;

/// `trail` newest first, as `history` reads it.
pub fn run(cfg: &failover_policy::Config, site: &str, mut trail: Vec<SiteState>) -> Report {
    trail.reverse();
    replay(cfg, site, &trail)
}

pub fn render(r: &Report, new_version: &str) -> String {
    let mut out = format!(
        "site {}: {} recorded decision(s) re-decided under configuration {new_version}\n",
        r.site, r.replayed
    );
    for d in &r.differences {
        out += &format!(
            "  {}  {:<40} recorded: {:<40} what-if: {}\n",
            d.at.format("%Y-%m-%d %H:%M:%SZ"),
            d.signal,
            d.recorded,
            d.whatif
        );
    }
    for c in r.conclusion() {
        out += &format!("=> {c}\n");
    }
    out
}
