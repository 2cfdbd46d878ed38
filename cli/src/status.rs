//! `status`: the ledger's record of each site, with the evaluator's live evidence beside it.

use failover_policy::evidence::{Evidence, Tally};
use failover_policy::signal::{OperatorAction, OperatorCommand};
use failover_policy::{Phase, SiteState};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::target::Target;
use crate::CliError;

/// What the evaluator's `status` answer carries for one site (its `evidence` list).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Live {
    pub evidence: Evidence,
    pub tally: Tally,
    pub quorum: u32,
    pub max_lag_secs: u64,
}

#[derive(Debug, Serialize)]
pub struct SiteStatus {
    pub record: SiteState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<Live>,
    /// Why there is no live evidence, when the evaluator was asked and could not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_error: Option<String>,
}

pub async fn gather(
    target: &Target,
    site: Option<&str>,
    live: bool,
) -> Result<Vec<SiteStatus>, CliError> {
    let ledger = target.ledger();
    let records = match site {
        Some(s) => vec![ledger.load(s).await?],
        None => ledger.all_sites().await?,
    };
    let statuses = stream::iter(records)
        .map(|record| async move {
            if !live {
                return SiteStatus {
                    record,
                    live: None,
                    live_error: None,
                };
            }
            match ask_live(target, &record.site).await {
                Ok(l) => SiteStatus {
                    record,
                    live: Some(l),
                    live_error: None,
                },
                Err(e) => SiteStatus {
                    record,
                    live: None,
                    live_error: Some(e.to_string()),
                },
            }
        })
        .buffered(8)
        .collect()
        .await;
    Ok(statuses)
}

async fn ask_live(target: &Target, site: &str) -> Result<Live, CliError> {
    let cmd = OperatorCommand {
        command: OperatorAction::Status,
        site: site.into(),
        reason: None,
        operator: None,
        override_rpo: false,
        epoch: None,
        candidate: None,
        force: false,
        override_cooldown: false,
        primary: None,
        max_wait_secs: None,
        outside_window: false,
        principal: None,
        drill: None,
    };
    let answer = crate::invoke::evaluator(target, &cmd).await?;
    let found = answer["evidence"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["site"] == site))
        .ok_or_else(|| {
            let why = answer["verdicts"][0]["summary"]
                .as_str()
                .unwrap_or("no evidence in the evaluator's answer");
            CliError::Refused(why.to_string())
        })?;
    serde_json::from_value(found.clone()).map_err(|e| CliError::Aws {
        what: "the evaluator's status answer".into(),
        error: e.to_string(),
    })
}

fn votes(s: &SiteStatus) -> String {
    match &s.live {
        Some(l) => format!(
            "{}/{}/{} (quorum {})",
            l.tally.down, l.tally.up, l.tally.unknown, l.quorum
        ),
        None => "-".into(),
    }
}

fn approval(st: &SiteState) -> String {
    let mut out = vec![];
    if let Some(p) = &st.paused {
        out.push(format!("paused by {}", p.by));
    }
    if st.phase == Phase::AwaitingApproval {
        out.push(format!("awaiting approval (epoch {})", st.epoch));
    }
    if out.is_empty() {
        "-".into()
    } else {
        out.join("; ")
    }
}

fn fence(st: &SiteState) -> String {
    match &st.fence {
        None => "-".into(),
        Some(f) if f.steps.is_empty() => format!("recorded (epoch {})", f.epoch),
        Some(f) => format!("epoch {}: {}", f.epoch, f.state_key()),
    }
}

/// The table, then each site's evidence and its last incident's timeline.
pub fn render(statuses: &[SiteStatus]) -> String {
    let mut out = format!(
        "{:<12} {:<18} {:>5}  {:<22} {:<28} {}\n",
        "SITE", "PHASE", "EPOCH", "VOTES down/up/unknown", "PAUSE / APPROVAL", "FENCE"
    );
    for s in statuses {
        let st = &s.record;
        out += &format!(
            "{:<12} {:<18} {:>5}  {:<22} {:<28} {}\n",
            st.site,
            st.phase.as_str(),
            st.epoch,
            votes(s),
            approval(st),
            fence(st)
        );
    }
    for s in statuses {
        out += &details(s);
    }
    out
}

fn details(s: &SiteStatus) -> String {
    let st = &s.record;
    let mut out = format!("\n{} (record version {}", st.site, st.version);
    if let Some(v) = st
        .observation
        .as_ref()
        .and_then(|o| o.config_version.as_ref())
    {
        out += &format!(", last decided with config {v}");
    }
    out += ")\n";
    if let Some(u) = failover_policy::reprotect::unprotected(st) {
        out += &format!("  {u}\n");
    }
    if let Some(r) = failover_policy::reprotect::in_flight(st) {
        out += &format!(
            "  reprotect {}: {:?}{}\n",
            r.replica,
            r.phase,
            r.note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
    }
    match (&s.live, &s.live_error) {
        (Some(l), _) => {
            out += "  votes:\n";
            for v in &l.tally.voters {
                out += &format!("    {v}\n");
            }
            out += &format!("  candidates (RPO {} s):\n", l.max_lag_secs);
            for c in &l.evidence.candidates {
                out += &format!("    {}\n", candidate_line(c, st, l.max_lag_secs));
            }
        }
        (None, Some(e)) => out += &format!("  live evidence unavailable: {e}\n"),
        (None, None) => {}
    }
    if let Some(f) = &st.failure {
        out += &format!("  failure: {f}\n");
    }
    if !st.timeline.is_empty() {
        out += &format!("  incident {} timeline:\n", st.epoch);
        let mut prev: Option<chrono::DateTime<chrono::Utc>> = None;
        for e in &st.timeline {
            let dur = prev
                .map(|p| format!("+{} s", (e.at - p).num_seconds()))
                .unwrap_or_default();
            out += &format!(
                "    {}  {:<8} {:<17} {}\n",
                e.at.format("%Y-%m-%d %H:%M:%SZ"),
                dur,
                e.phase.as_str(),
                e.note
            );
            prev = Some(e.at);
        }
    }
    out
}

fn candidate_line(
    c: &failover_policy::evidence::CandidateEvidence,
    st: &SiteState,
    rpo: u64,
) -> String {
    let lag = match (c.lag_secs, st.last_good_lag.get(&c.db.id)) {
        (Some(l), _) => {
            let verdict = if l <= rpo as f64 { "within" } else { "OVER" };
            format!("lag {l:.1} s ({verdict} RPO)")
        }
        (None, Some(s)) => format!(
            "no current lag; last good {:.1} s at {}",
            s.secs,
            s.at.format("%H:%M:%SZ")
        ),
        (None, None) => "no lag reading".into(),
    };
    format!(
        "{:<20} {:<10} {:<10} {}",
        c.db.id,
        c.db.region,
        c.status.describe(),
        lag
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_policy::config::DbRef;
    use failover_policy::topology::Topology;

    #[test]
    fn a_failed_over_site_with_no_reprotection_says_unprotected() {
        let mut st = SiteState::new("orders");
        st.epoch = 1;
        st.phase = failover_policy::Phase::Completed;
        let healthy = render(&[SiteStatus {
            record: st.clone(),
            live: None,
            live_error: None,
        }]);
        assert!(!healthy.contains("UNPROTECTED"), "{healthy}");
        st.topology = Some(Topology {
            epoch: 1,
            primary: DbRef {
                id: "orders-replica-1".into(),
                region: "us-west-2".into(),
            },
            endpoint: None,
            candidates: vec![],
            at: chrono::Utc::now(),
            configured_primary: None,
        });
        let out = render(&[SiteStatus {
            record: st,
            live: None,
            live_error: None,
        }]);
        assert!(out.contains("UNPROTECTED: orders-replica-1"), "{out}");
    }
}
