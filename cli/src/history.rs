//! `history`: a site's audit trail, newest first, one line per recorded step.

use failover_policy::SiteState;

use crate::target::Target;
use crate::CliError;

pub async fn read(target: &Target, site: &str, limit: usize) -> Result<Vec<SiteState>, CliError> {
    target.ledger().history(site, limit).await
}

/// What one record changed, in words: its new timeline entries, else the decision it recorded,
/// else a bookkeeping write.
fn step(rec: &SiteState, older: Option<&SiteState>) -> String {
    let same_epoch = older.is_some_and(|o| o.epoch == rec.epoch);
    let seen = if same_epoch {
        older.map_or(0, |o| o.timeline.len())
    } else {
        0
    };
    let notes: Vec<&str> = rec
        .timeline
        .iter()
        .skip(seen)
        .map(|e| e.note.as_str())
        .collect();
    let new_obs = rec
        .observation
        .as_ref()
        .filter(|o| older.and_then(|p| p.observation.as_ref()) != Some(*o));
    if !notes.is_empty() {
        return notes.join("; ");
    }
    if let Some(o) = new_obs {
        return format!("{}: {}", o.outcome.name(), o.summary);
    }
    match (older.map(|o| o.outbox.len()), rec.outbox.len()) {
        (Some(n), 0) if n > 0 => format!("{n} event(s) published from the outbox"),
        _ => "record updated".into(),
    }
}

/// One line per record, newest first: time, duration since the previous step, version, epoch,
/// phase, what happened and (for a decision) the configuration version it used.
pub fn render(site: &str, trail: &[SiteState]) -> String {
    if trail.is_empty() {
        return format!("no audit records for site {site}\n");
    }
    let mut out = format!(
        "{:<20} {:>9} {:>5} {:>5}  {:<17} {}\n",
        "TIME", "+DURATION", "VER", "EPOCH", "PHASE", "STEP"
    );
    for (i, rec) in trail.iter().enumerate() {
        let older = trail.get(i + 1);
        let dur = match (rec.updated_at, older.and_then(|o| o.updated_at)) {
            (Some(a), Some(b)) => format!("+{}s", (a - b).num_seconds()),
            _ => "-".into(),
        };
        let at = rec
            .updated_at
            .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
            .unwrap_or_default();
        let cfg = rec
            .observation
            .as_ref()
            .filter(|o| older.and_then(|p| p.observation.as_ref()) != Some(*o))
            .and_then(|o| o.config_version.as_deref())
            .map(|v| format!("  [{v}]"))
            .unwrap_or_default();
        out += &format!(
            "{at:<20} {dur:>9} {:>5} {:>5}  {:<17} {}{cfg}\n",
            rec.version,
            rec.epoch,
            rec.phase.as_str(),
            step(rec, older)
        );
    }
    out
}
