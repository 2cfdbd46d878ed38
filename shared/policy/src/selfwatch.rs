//! The tool watches itself: what the evaluator publishes on every scheduled tick, as EMF lines
//! ([`crate::emf`]), for the dashboard's per-site panels and the template's alarms.
//!
//! Per site, one line (dimension `Site`): `PhaseCode` (the phase as a number, [`phase_code`]),
//! `VotesDown`/`VotesUp`/`VotesUnknown`, `WorstCandidateLagSeconds` and `LagToRpo` (the worst
//! candidate's lag over the site's `max_lag_secs`), `CandidatesWithoutLag`, `DecisionLatency`,
//! `FenceState` ([`FenceState`]), `Protected`, `PhaseOverdue`, `OldPrimaryWritable` and
//! `Evaluated`; `InPhase` = 1 under (`Site`, `Phase`), so a graph can show the phase by name;
//! `PhaseOverdue` and `OldPrimaryWritable` also without dimensions, for one alarm each over every
//! site. Per tick, one line (no dimensions) with `SitesFailed` and, when at least one site was
//! evaluated, `Heartbeat`.
//!
//! A value the tick did not observe is left out, never written as 0: no evidence (a site not
//! gathered for) means no vote or lag metrics; an unknown record (a lost race) means no phase,
//! fence, protection or deadline metrics.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::config::SiteConfig;
use crate::emf::{Directive, Document, Unit};
use crate::evidence::Evidence;
use crate::incident::{Phase, SiteState};

pub const NAMESPACE: &str = "rds-failover";

/// The phase as a number, stable across releases (new phases get new numbers).
pub fn phase_code(p: Phase) -> u32 {
    match p {
        Phase::Idle => 0,
        Phase::Suspected => 1,
        Phase::AwaitingApproval => 2,
        Phase::Refused => 3,
        Phase::Shadowed => 4,
        Phase::Promoting => 5,
        Phase::Promoted => 6,
        Phase::DnsPinned => 7,
        Phase::Completed => 8,
        Phase::Aborted => 9,
        Phase::Failed => 10,
    }
}

/// The current epoch's fence of the old primary, as one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceState {
    /// No fence recorded for the current epoch.
    None = 0,
    /// Steps still pending.
    InProgress = 1,
    /// Every step observed or not applicable.
    Fenced = 2,
    /// A step the tool will not do: a human must (the fence's page says which).
    NeedsHuman = 3,
    /// The old primary was seen answering and writable after the failover.
    WritableAgain = 4,
}

impl FenceState {
    pub fn of(st: &SiteState) -> Self {
        let Some(f) = st.fence.as_ref().filter(|f| f.epoch == st.epoch) else {
            return FenceState::None;
        };
        if f.writable_since.is_some() {
            FenceState::WritableAgain
        } else if f
            .steps
            .iter()
            .any(|s| matches!(s.state, crate::fence::StepState::Refused { .. }))
        {
            FenceState::NeedsHuman
        } else if f.finished() {
            FenceState::Fenced
        } else {
            FenceState::InProgress
        }
    }
}

/// What one site's evaluation on a tick left: its record (when known), the evidence it judged
/// on (when gathered), and how long deciding took.
pub struct SiteTick<'a> {
    pub site: &'a SiteConfig,
    pub state: Option<&'a SiteState>,
    pub evidence: Option<&'a Evidence>,
    /// From the tick's start to this site's verdict; `None` when the site was not evaluated.
    pub latency: Option<std::time::Duration>,
    pub now: DateTime<Utc>,
}

/// The worst candidate's lag (seconds) among those with a reading, and how many had none.
fn worst_lag(ev: &Evidence) -> (Option<f64>, usize) {
    let known: Vec<f64> = ev.candidates.iter().filter_map(|c| c.lag_secs).collect();
    let worst = known
        .iter()
        .copied()
        .fold(None, |m: Option<f64>, l| Some(m.map_or(l, |m| m.max(l))));
    (worst, ev.candidates.len() - known.len())
}

/// One site's EMF document for this tick.
pub fn site_document(t: &SiteTick) -> Document {
    let mut d = Document::new(NAMESPACE, t.now);
    d.dimensions.insert("Site".into(), t.site.id.clone());
    let mut per_site: Vec<(String, Unit)> = vec![];
    let mut put = |d: &mut Document, name: &str, v: f64, unit: Unit| {
        d.values.insert(name.into(), v);
        per_site.push((name.into(), unit));
    };
    put(
        &mut d,
        "Evaluated",
        f64::from(u8::from(t.latency.is_some())),
        Unit::Count,
    );
    if let Some(l) = t.latency {
        put(
            &mut d,
            "DecisionLatency",
            l.as_secs_f64() * 1000.0,
            Unit::Milliseconds,
        );
    }
    if let Some(ev) = t.evidence {
        let tally = ev.tally();
        put(&mut d, "VotesDown", tally.down.into(), Unit::Count);
        put(&mut d, "VotesUp", tally.up.into(), Unit::Count);
        put(&mut d, "VotesUnknown", tally.unknown.into(), Unit::Count);
        let (worst, without) = worst_lag(ev);
        put(&mut d, "CandidatesWithoutLag", without as f64, Unit::Count);
        if let Some(w) = worst {
            put(&mut d, "WorstCandidateLagSeconds", w, Unit::Seconds);
            let rpo = t.site.thresholds.max_lag_secs as f64;
            // An RPO of 0 has no ratio; the lag in seconds says it all.
            if rpo > 0.0 {
                put(&mut d, "LagToRpo", w / rpo, Unit::None);
            }
        }
        d.properties
            .insert("RpoSeconds".into(), json!(t.site.thresholds.max_lag_secs));
    }
    let mut overdue = None;
    if let Some(st) = t.state {
        put(&mut d, "PhaseCode", phase_code(st.phase).into(), Unit::None);
        put(
            &mut d,
            "FenceState",
            f64::from(FenceState::of(st) as u8),
            Unit::None,
        );
        let protected = crate::reprotect::unprotected(st).is_none();
        put(
            &mut d,
            "Protected",
            f64::from(u8::from(protected)),
            Unit::None,
        );
        let late = crate::deadline::overdue(t.site, st, t.now).is_some();
        put(
            &mut d,
            PHASE_OVERDUE,
            f64::from(u8::from(late)),
            Unit::Count,
        );
        overdue = Some(late);
        // The split-brain signal: the old primary seen writable after the failover (the fence
        // state that is `FenceState` 4), also without dimensions — one alarm, max over sites.
        let writable = FenceState::of(st) == FenceState::WritableAgain;
        put(
            &mut d,
            OLD_PRIMARY_WRITABLE,
            f64::from(u8::from(writable)),
            Unit::Count,
        );
        d.dimensions
            .insert("Phase".into(), st.phase.as_str().into());
        d.values.insert("InPhase".into(), 1.0);
        d.properties.insert("Epoch".into(), json!(st.epoch));
    }
    d.directives.push(Directive {
        dimension_sets: vec![vec!["Site".into()]],
        metrics: per_site,
    });
    if overdue.is_some() {
        d.directives.push(Directive {
            dimension_sets: vec![vec!["Site".into(), "Phase".into()]],
            metrics: vec![("InPhase".into(), Unit::Count)],
        });
        d.directives.push(Directive {
            dimension_sets: vec![vec![]],
            metrics: vec![
                (PHASE_OVERDUE.into(), Unit::Count),
                (OLD_PRIMARY_WRITABLE.into(), Unit::Count),
            ],
        });
    }
    d
}

/// The tick's heartbeat: `Heartbeat` 1 when at least one site was evaluated (a tick on which
/// every site failed is not a beat: the missed-tick alarm must see it), and `SitesFailed`, both
/// without dimensions.
pub fn heartbeat_document(now: DateTime<Utc>, sites: usize, failed: usize) -> Document {
    let mut d = Document::new(NAMESPACE, now);
    let mut metrics = vec![(SITES_FAILED.into(), Unit::Count)];
    d.values.insert(SITES_FAILED.into(), failed as f64);
    if failed < sites {
        d.values.insert(HEARTBEAT.into(), 1.0);
        metrics.insert(0, (HEARTBEAT.into(), Unit::Count));
    }
    d.properties.insert("Sites".into(), json!(sites));
    d.directives.push(Directive {
        dimension_sets: vec![vec![]],
        metrics,
    });
    d
}

/// The metrics published without dimensions, which the template's self-watch alarms read
/// (tests/test_infra.py checks the template against the list a unit test writes from these).
pub const HEARTBEAT: &str = "Heartbeat";
pub const SITES_FAILED: &str = "SitesFailed";
pub const PHASE_OVERDUE: &str = "PhaseOverdue";
pub const OLD_PRIMARY_WRITABLE: &str = "OldPrimaryWritable";

#[cfg(test)]
mod tests;
