//! Votes from where they can still be cast: the quorum rule, the regional-loss check of the
//! configuration, and the warnings that say a voter is not telling the truth.
//!
//! When the primary's whole region is lost, everything in it goes dark together — its CloudWatch
//! alarms, its RDS API, its endpoint — and unknown must stay unknown. So:
//! - the quorum counts *up* votes too: a failover needs `down >= k` **and** `down > up`, so two
//!   alarms whose metric went missing cannot outvote RDS saying `available` and a canary that
//!   answers ([`quorum_met`]);
//! - an `auto` site must be able to reach its quorum with the voters that live outside its
//!   primary's region — the DR-side canary and alarms in the DR region on the witness's metric —
//!   and must say so explicitly to let a single voter decide ([`check_site`]);
//! - a voter that goes dark, a canary the server answers with an error, and a DR side that lost
//!   sight of a primary another vantage still reaches are each announced once per episode (an
//!   `EvidenceWarning`), not paged on every tick ([`note_warnings`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{invalid, ApprovalMode, ConfigError, SiteConfig};
use crate::evidence::{CanaryResult, Evidence, Tally};
use crate::recovery::Recovering;
use crate::signal::AlarmState;

/// A warning is announced once it has held this long: one scheduled tick (the evaluator's
/// schedule is `rate(1 minute)`), so a voter that is wrong for a single evaluation — an alarm
/// that has not yet caught up with the canary at the start of a real outage — is not a page.
pub const WARNING_SETTLE_SECS: i64 = 60;

/// What the voters looked like across evaluations, kept in the site's ledger record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Watchlist {
    /// Warnings in progress by key (`canary-answered`, `dark:<voter>`, `dr-lost-sight`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub warnings: BTreeMap<String, WarningMark>,
    /// Since when a Multi-AZ primary has been seen recovering by itself (`crate::recovery`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovering: Option<Recovering>,
}

impl Watchlist {
    pub fn is_empty(&self) -> bool {
        self.warnings.is_empty() && self.recovering.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarningMark {
    pub since: DateTime<Utc>,
    pub announced: bool,
}

/// The value a vantage point publishes for one probe of a primary (metric `PrimaryUp`): 1 when
/// the server answered (even with an error), 0 when it did not, nothing at all when the probe
/// could not tell — so that, with the alarm's `TreatMissingData: missing`, an unknown stays
/// unknown (INSUFFICIENT_DATA) instead of reading as up or down. The SQL canary decides when it
/// could try; without credentials or TLS set up, the TCP connect does.
pub fn probe_value(sql: &CanaryResult, tcp: &CanaryResult) -> Option<f64> {
    use crate::evidence::Vote;
    let as_value = |v: Vote| match v {
        Vote::Up => Some(1.0),
        Vote::Down => Some(0.0),
        Vote::Unknown => None,
    };
    as_value(sql.vote()).or_else(|| as_value(tcp.vote()))
}

/// The quorum rule: at least `k` voters say down, and more say down than up.
pub fn quorum_met(t: &Tally, k: u32) -> bool {
    t.down >= k && t.down > t.up
}

/// The region an alarm of the site lives in (`None` in the config: the deployment's region).
fn alarm_region<'a>(a: &'a crate::config::AlarmRef, deployment_region: &'a str) -> &'a str {
    a.region.as_deref().unwrap_or(deployment_region)
}

/// The voters of a site that survive the loss of its primary's region, by name.
pub fn voters_outside_primary_region(site: &SiteConfig, deployment_region: &str) -> Vec<String> {
    let lost = site.primary.region.as_str();
    let mut v: Vec<String> = site
        .availability_alarms()
        .filter(|a| alarm_region(a, deployment_region) != lost)
        .map(|a| format!("alarm {} ({})", a.name, alarm_region(a, deployment_region)))
        .collect();
    if site.canary.is_some() && deployment_region != lost {
        v.push(format!("sql canary from {deployment_region}"));
    }
    v
}

/// Config checks that need the deployment's region: an `auto` site must reach its quorum
/// without its primary's region, and a quorum of one must be asked for explicitly.
pub fn check_site(site: &SiteConfig, deployment_region: &str, p: &str) -> Result<(), ConfigError> {
    if site.approval != ApprovalMode::Auto {
        // A human decides (require-approval) or nothing is mutated (shadow).
        return Ok(());
    }
    let t = &site.thresholds;
    if t.quorum == 1 && !t.allow_single_vote {
        return Err(invalid(
            format!("{p}.thresholds.quorum"),
            "at least 2 for `approval: auto` — one voter alone (a canary whose password rotated, \
             an alarm whose metric went missing) would fail over a live primary — or \
             `thresholds.allow_single_vote: true` to say the site means it",
            t.quorum,
        ));
    }
    let lost = &site.primary.region;
    if lost == deployment_region {
        // The functions run in the primary's region: losing it loses them too, so nothing can be
        // decided either way. Such a site is protected against instance and AZ loss only.
        return Ok(());
    }
    let outside = voters_outside_primary_region(site, deployment_region);
    if (outside.len() as u32) < t.quorum {
        let names = if outside.is_empty() {
            "none".to_string()
        } else {
            outside.join(", ")
        };
        return Err(invalid(
            format!("{p}.thresholds.quorum"),
            format!(
                "a quorum the voters outside {lost} can reach for `approval: auto`: if {lost} is \
                 lost, only {} voters remain ({names}); quorum is {} (add an availability alarm \
                 in {deployment_region} on the witness's metric, see docs/deploy.md)",
                outside.len(),
                t.quorum
            ),
            t.quorum,
        ));
    }
    Ok(())
}

/// One warning seen in this evaluation.
struct Seen {
    key: String,
    text: String,
}

fn observed(site: &SiteConfig, ev: &Evidence) -> Vec<Seen> {
    let mut out = vec![];
    let endpoint = site
        .canary
        .as_ref()
        .map(|c| c.endpoint.as_str())
        .unwrap_or("the primary");
    if let CanaryResult::Answered { error, .. } = &ev.canary {
        out.push(Seen {
            key: "canary-answered".into(),
            text: format!(
                "the SQL canary needs fixing: {endpoint} answered its connection with an error \
                 ({error}). A server that answers is alive, so the canary votes up, and it cannot \
                 vote down until it is fixed (credentials, grants, max_connections, a blocked \
                 host (FLUSH HOSTS), the database name, TLS)"
            ),
        });
    }
    let with_reading = ev.tally();
    let any_reading = with_reading.up + with_reading.down > 0;
    for a in ev.alarms.iter().filter(|a| a.vote().is_some()) {
        let dark = match a.state {
            None => Some("cannot be read"),
            Some(AlarmState::InsufficientData) => Some("is INSUFFICIENT_DATA"),
            _ => None,
        };
        let region = site
            .alarms
            .iter()
            .find(|r| r.name == a.name)
            .and_then(|r| r.region.clone())
            .or_else(|| ev.vantage_region.clone())
            .unwrap_or_else(|| "the deployment region".into());
        // A voter in the primary's own region going dark is part of what an outage there looks
        // like (the quorum guard lists it); the ones that must not go dark unnoticed are those
        // the regional-loss quorum rests on.
        if region == site.primary.region {
            continue;
        }
        if let (Some(how), true) = (dark, any_reading) {
            out.push(Seen {
                key: format!("dark:{}", a.name),
                text: format!(
                    "voter alarm {} ({region}) {how}: its vantage may be dark (its region, its \
                     prober, or the metric it watches); it counts as unknown, never up or down, \
                     and the quorum rests on the other voters",
                    a.name
                ),
            });
        }
    }
    if let (CanaryResult::Unreachable { error }, Some(from)) = (&ev.canary, &ev.vantage_region) {
        let lost = &site.primary.region;
        let sees_up: Vec<&str> = site
            .availability_alarms()
            .filter(|r| r.region.as_deref().unwrap_or(from) != lost)
            .filter(|r| {
                ev.alarms
                    .iter()
                    .any(|a| a.name == r.name && a.state == Some(AlarmState::Ok))
            })
            .map(|r| r.name.as_str())
            .collect();
        if !sees_up.is_empty() && from != lost {
            out.push(Seen {
                key: "dr-lost-sight".into(),
                text: format!(
                    "the DR side lost sight of the primary: the SQL canary from {from} gets no \
                     answer from {endpoint} ({error}) while {} outside {lost} says it is up. A \
                     network partition between {from} and the primary looks like this; it is \
                     not counted as an outage while other vantages still reach the primary",
                    sees_up.join(", ")
                ),
            });
        }
    }
    out
}

/// Updates the site's warnings from this evaluation and returns the texts to announce now: each
/// warning once, when it has held for [`WARNING_SETTLE_SECS`]. A warning not seen this time ends
/// its episode (the next one is announced again).
pub fn note_warnings(
    site: &SiteConfig,
    ev: &Evidence,
    watch: &mut Watchlist,
    now: DateTime<Utc>,
) -> Vec<String> {
    let seen = observed(site, ev);
    watch
        .warnings
        .retain(|k, _| seen.iter().any(|s| &s.key == k));
    let mut announce = vec![];
    for s in seen {
        let mark = watch.warnings.entry(s.key).or_insert(WarningMark {
            since: now,
            announced: false,
        });
        if !mark.announced && (now - mark.since).num_seconds() >= WARNING_SETTLE_SECS {
            mark.announced = true;
            announce.push(s.text);
        }
    }
    announce
}

/// The warnings currently in progress, for the verdict (announced or not).
pub fn current_warnings(site: &SiteConfig, ev: &Evidence) -> Vec<String> {
    observed(site, ev).into_iter().map(|s| s.text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(down: u32, up: u32, unknown: u32) -> Tally {
        Tally {
            down,
            up,
            unknown,
            voters: vec![],
        }
    }

    #[test]
    fn a_probe_publishes_up_down_or_nothing() {
        let up = CanaryResult::Reachable { latency_ms: 1 };
        let answered = CanaryResult::Answered {
            code: Some(1045),
            error: "denied".into(),
        };
        let down = CanaryResult::Unreachable {
            error: "refused".into(),
        };
        let unknown = CanaryResult::Unknown {
            reason: "no secret".into(),
        };
        assert_eq!(probe_value(&up, &down), Some(1.0));
        assert_eq!(probe_value(&answered, &up), Some(1.0));
        assert_eq!(
            probe_value(&down, &up),
            Some(0.0),
            "SQL hung behind an open port"
        );
        assert_eq!(probe_value(&unknown, &up), Some(1.0));
        assert_eq!(probe_value(&unknown, &down), Some(0.0));
        assert_eq!(
            probe_value(&unknown, &unknown),
            None,
            "unknown publishes nothing"
        );
    }

    #[test]
    fn up_votes_weigh_against_down_votes() {
        assert!(quorum_met(&tally(2, 0, 2), 2));
        assert!(quorum_met(&tally(2, 1, 1), 2));
        assert!(!quorum_met(&tally(2, 2, 0), 2), "a tie is not an outage");
        assert!(!quorum_met(&tally(1, 0, 3), 2));
        assert!(!quorum_met(&tally(3, 3, 0), 1));
    }
}
