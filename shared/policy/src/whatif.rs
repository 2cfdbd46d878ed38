//! `what-if`: the site's audit trail re-decided under another configuration.
//!
//! Every record the evaluator writes carries the [`Observation`] it decided on: the signal, the
//! evidence it gathered, the time, the outcome, and the configuration's version. [`replay`] walks
//! the trail oldest first and decides each observation again, with the same [`route`] and
//! [`decide`] the evaluator runs, on a state that follows the *new* configuration's own decisions
//! (its sustained window, its incidents). Records written by the other functions (promoter,
//! pinner) are adopted while the re-decided state agrees with the recorded one; once they differ
//! the replay keeps its own state, since what the other functions would have done then was never
//! observed. Decisions the evaluator did not record (a verdict that changed nothing, an input
//! ignored before any AWS call) cannot be replayed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::decide::{decide, route, Routing};
use crate::evidence::Evidence;
use crate::incident::{Phase, SiteState};
use crate::signal::{Signal, SignalKind};
use crate::verdict::Outcome;
use crate::Config;

/// What one evaluator decision was made on, and what it concluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub at: DateTime<Utc>,
    pub signal: Signal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    pub outcome: Outcome,
    pub phase: Phase,
    pub summary: String,
    /// The version of the configuration the decision used ([`Config::version`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<String>,
    /// The stored object's version when the configuration came from S3 (its `VersionId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_object_version: Option<String>,
}

/// One decision that comes out differently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub at: DateTime<Utc>,
    pub signal: String,
    pub recorded: String,
    pub whatif: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub site: String,
    /// Observations decided again.
    pub replayed: usize,
    pub differences: Vec<Difference>,
    /// When each side first decided (or asked approval for) a failover, if it did.
    pub recorded_failover: Option<DateTime<Utc>>,
    pub whatif_failover: Option<DateTime<Utc>>,
    /// Incidents opened (epoch bumps) within the trail.
    pub recorded_incidents: u64,
    pub whatif_incidents: u64,
}

fn describe_signal(s: &Signal) -> String {
    match &s.kind {
        SignalKind::Alarm(a) => format!("alarm {} -> {:?}", a.name, a.state),
        SignalKind::Rds(r) => format!("RDS {} on {}", r.event_id, r.source_id),
        SignalKind::Tick => "tick".into(),
        SignalKind::Recheck(r) => format!("re-check of {} (window end {})", r.site, r.due),
        SignalKind::Operator(c) => format!("operator {}", c.command.as_str()),
    }
}

fn words(outcome: &Outcome, phase: Phase) -> String {
    format!("{} (phase {phase})", outcome.name())
}

fn decides_failover(o: &Outcome) -> bool {
    matches!(
        o,
        Outcome::FailoverDecided { .. } | Outcome::AwaitingApproval { .. }
    )
}

/// Re-decides `trail` (one site's audit records, oldest first) under `cfg`.
pub fn replay(cfg: &Config, site_id: &str, trail: &[SiteState]) -> Report {
    let mut report = Report {
        site: site_id.to_string(),
        replayed: 0,
        differences: vec![],
        recorded_failover: None,
        whatif_failover: None,
        recorded_incidents: 0,
        whatif_incidents: 0,
    };
    let mut sim: Option<SiteState> = None;
    let mut prev: Option<&SiteState> = None;
    for rec in trail {
        let before = match prev {
            Some(p) => p.clone(),
            None if rec.version <= 1 => SiteState::new(site_id),
            None => {
                prev = Some(rec);
                continue;
            }
        };
        if rec.epoch > before.epoch {
            report.recorded_incidents += 1;
        }
        let new_obs = rec
            .observation
            .as_ref()
            .filter(|o| Some(*o) != before.observation.as_ref());
        let base = sim.take().unwrap_or_else(|| before.clone());
        let Some(obs) = new_obs else {
            // Another function's write: adopted while the replay agrees with the record.
            let agrees = base.phase == before.phase && base.epoch == before.epoch;
            sim = Some(if agrees { rec.clone() } else { base });
            prev = Some(rec);
            continue;
        };
        report.replayed += 1;
        if decides_failover(&obs.outcome) && report.recorded_failover.is_none() {
            report.recorded_failover = Some(obs.at);
        }
        let (outcome, phase, next) = redecide(cfg, site_id, obs, &base);
        if next.epoch > base.epoch {
            report.whatif_incidents += 1;
        }
        if decides_failover(&outcome) && report.whatif_failover.is_none() {
            report.whatif_failover = Some(obs.at);
        }
        if outcome.name() != obs.outcome.name() || phase != obs.phase {
            report.differences.push(Difference {
                at: obs.at,
                signal: describe_signal(&obs.signal),
                recorded: words(&obs.outcome, obs.phase),
                whatif: words(&outcome, phase),
            });
        }
        sim = Some(next);
        prev = Some(rec);
    }
    report
}

fn redecide(
    cfg: &Config,
    site_id: &str,
    obs: &Observation,
    base: &SiteState,
) -> (Outcome, Phase, SiteState) {
    let routed = match route(cfg, &obs.signal, obs.at) {
        Routing::Ignore(v) => Err(v),
        Routing::Sites(ids) if ids.iter().any(|i| i == site_id) => Ok(()),
        Routing::Sites(_) => Err(crate::verdict::Verdict {
            site: Some(site_id.into()),
            outcome: Outcome::Ignore {
                reason: crate::verdict::IgnoreReason::UnknownResource,
            },
            epoch: base.epoch,
            phase: base.phase,
            summary: "not routed to this site".into(),
            guards: vec![],
        }),
    };
    let Some(site) = cfg.site(site_id) else {
        return (
            Outcome::Ignore {
                reason: crate::verdict::IgnoreReason::UnknownSite,
            },
            base.phase,
            base.clone(),
        );
    };
    match routed {
        Err(v) => (v.outcome, base.phase, base.clone()),
        Ok(()) => {
            let d = decide(site, &obs.signal, obs.evidence.as_ref(), base, obs.at);
            let next = d.next.unwrap_or_else(|| base.clone());
            (d.verdict.outcome, d.verdict.phase, next)
        }
    }
}

impl Report {
    /// The report in sentences: what would have come earlier, later, or not at all.
    pub fn conclusion(&self) -> Vec<String> {
        let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%SZ").to_string();
        let mut out = vec![];
        match (self.recorded_failover, self.whatif_failover) {
            (Some(r), Some(w)) if r == w => out.push(format!(
                "the failover of {} would have come at the same time",
                fmt(r)
            )),
            (Some(r), Some(w)) => {
                let secs = (w - r).num_seconds();
                let when = if secs > 0 { "later" } else { "earlier" };
                out.push(format!(
                    "the failover of {} would have come {} s {when}",
                    fmt(r),
                    secs.abs()
                ));
            }
            (Some(r), None) => out.push(format!(
                "the failover of {} would not have been decided",
                fmt(r)
            )),
            (None, Some(w)) => out.push(format!(
                "a failover would have been decided at {} (none was)",
                fmt(w)
            )),
            (None, None) => {}
        }
        if self.recorded_incidents != self.whatif_incidents {
            out.push(format!(
                "incidents opened: {} recorded, {} under the new configuration",
                self.recorded_incidents, self.whatif_incidents
            ));
        }
        if self.differences.is_empty() {
            out.push(format!(
                "all {} recorded decisions come out the same",
                self.replayed
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests;
