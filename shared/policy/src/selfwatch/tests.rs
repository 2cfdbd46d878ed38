use super::*;
use crate::config::{AlarmRole, Config, DbRef};
use crate::evidence::{AlarmEvidence, CanaryResult, CandidateEvidence, DbObservation};
use crate::incident::PromotionRecord;
use crate::signal::AlarmState;
use chrono::{Duration, TimeZone};
use serde_json::Value;

const EXAMPLE: &str = include_str!("../../../../infra/sites.example.json");

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 4, 0, 0).unwrap()
}

fn site() -> SiteConfig {
    Config::from_document(EXAMPLE)
        .unwrap()
        .site("orders")
        .unwrap()
        .clone()
}

fn candidate(id: &str, lag: Option<f64>) -> CandidateEvidence {
    CandidateEvidence {
        db: DbRef {
            id: id.into(),
            region: "us-west-2".into(),
        },
        status: DbObservation::Status {
            status: "available".into(),
        },
        replica_of_primary: Some(true),
        lag_secs: lag,
        lag_at: None,
        replication: None,
        created_at: None,
    }
}

/// One availability alarm in ALARM, one OK, the primary unreadable, the canary refused.
fn evidence(lags: &[Option<f64>]) -> Evidence {
    let alarm = |name: &str, s| AlarmEvidence {
        name: name.into(),
        role: AlarmRole::Availability,
        state: Some(s),
    };
    Evidence {
        alarms: vec![alarm("a", AlarmState::Alarm), alarm("b", AlarmState::Ok)],
        primary: DbObservation::Unreadable {
            error: "timed out".into(),
        },
        candidates: lags
            .iter()
            .enumerate()
            .map(|(i, l)| candidate(&format!("r{i}"), *l))
            .collect(),
        canary: CanaryResult::Unreachable {
            error: "refused".into(),
        },
        primary_multi_az: None,
        vantage_region: None,
        primary_gtid: None,
        read_only_groups: vec![],
    }
}

fn line(t: &SiteTick) -> Value {
    serde_json::from_str(&site_document(t).to_line().expect("valid EMF")).unwrap()
}

fn metric_names(v: &Value, directive: usize) -> Vec<String> {
    v["_aws"]["CloudWatchMetrics"][directive]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_sites_line_carries_its_votes_its_worst_lag_against_the_rpo_and_its_phase() {
    let site = site();
    let rpo = site.thresholds.max_lag_secs as f64;
    let ev = evidence(&[Some(rpo / 4.0), Some(rpo * 1.5), None]);
    let st = SiteState::new("orders");
    let v = line(&SiteTick {
        site: &site,
        state: Some(&st),
        evidence: Some(&ev),
        latency: Some(std::time::Duration::from_millis(42)),
        now: t0(),
    });
    assert_eq!(
        v["_aws"]["Timestamp"],
        serde_json::json!(t0().timestamp_millis())
    );
    assert_eq!(v["Site"], "orders");
    let tally = ev.tally();
    assert_eq!(
        (
            v["VotesDown"].as_f64(),
            v["VotesUp"].as_f64(),
            v["VotesUnknown"].as_f64()
        ),
        (
            Some(f64::from(tally.down)),
            Some(f64::from(tally.up)),
            Some(f64::from(tally.unknown))
        )
    );
    assert_eq!(
        tally.down, 2,
        "the alarm and the canary: {:?}",
        tally.voters
    );
    assert_eq!(v["WorstCandidateLagSeconds"].as_f64(), Some(rpo * 1.5));
    assert_eq!(
        v["LagToRpo"].as_f64(),
        Some(1.5),
        "over the RPO reads above 1"
    );
    assert_eq!(v["CandidatesWithoutLag"].as_f64(), Some(1.0));
    assert_eq!(v["DecisionLatency"].as_f64(), Some(42.0));
    assert_eq!(
        (v["PhaseCode"].as_f64(), v["Phase"].as_str()),
        (Some(0.0), Some("idle"))
    );
    assert_eq!(
        (
            v["FenceState"].as_f64(),
            v["Protected"].as_f64(),
            v["PhaseOverdue"].as_f64()
        ),
        (Some(0.0), Some(1.0), Some(0.0))
    );
    let dims = &v["_aws"]["CloudWatchMetrics"];
    assert_eq!(dims[0]["Dimensions"], serde_json::json!([["Site"]]));
    assert_eq!(
        dims[1]["Dimensions"],
        serde_json::json!([["Site", "Phase"]])
    );
    assert_eq!(metric_names(&v, 1), ["InPhase"]);
    assert_eq!(
        dims[2]["Dimensions"],
        serde_json::json!([[]]),
        "one overdue alarm for every site"
    );
    assert_eq!(metric_names(&v, 2), ["PhaseOverdue", "OldPrimaryWritable"]);
    assert_eq!(v["OldPrimaryWritable"].as_f64(), Some(0.0));
}

#[test]
fn what_the_tick_did_not_observe_is_left_out_never_written_as_zero() {
    let site = site();
    let v = line(&SiteTick {
        site: &site,
        state: None,
        evidence: None,
        latency: None,
        now: t0(),
    });
    assert_eq!(metric_names(&v, 0), ["Evaluated"]);
    assert_eq!(v["Evaluated"].as_f64(), Some(0.0));
    assert_eq!(v["_aws"]["CloudWatchMetrics"].as_array().unwrap().len(), 1);
    // No lag reading at all: no worst lag, no ratio; the count says why.
    let ev = evidence(&[None, None]);
    let v = line(&SiteTick {
        site: &site,
        state: None,
        evidence: Some(&ev),
        latency: None,
        now: t0(),
    });
    assert!(
        v.get("WorstCandidateLagSeconds").is_none() && v.get("LagToRpo").is_none(),
        "{v}"
    );
    assert_eq!(v["CandidatesWithoutLag"].as_f64(), Some(2.0));
}

/// The deadline metric is the policy's own deadline (`deadline::overdue`): a promotion asked of
/// RDS and not confirmed past the engine's deadline plus the slack.
#[test]
fn a_promotion_past_its_deadline_reads_overdue_and_its_fence_in_progress() {
    let site = site();
    let r1 = DbRef {
        id: "orders-replica-1".into(),
        region: "us-west-2".into(),
    };
    let mut st = SiteState::new("orders");
    st.epoch = 1;
    st.candidate = Some(r1.clone());
    st.transition(1, Phase::Promoting, t0(), "decided").unwrap();
    st.promotion = Some(PromotionRecord {
        epoch: 1,
        candidate: r1,
        action: "PromoteReadReplica".into(),
        requested_at: t0(),
        completed_at: None,
        endpoint: None,
        writable_verified_at: None,
        resolved: None,
    });
    st.fence = Some(crate::fence::FenceRecord {
        epoch: 1,
        old_primary: site.primary.clone(),
        decided_at: t0(),
        decided_lag: None,
        endpoint: None,
        steps: vec![crate::fence::StepRecord {
            step: crate::fence::Step::ParameterReadOnly,
            state: crate::fence::StepState::Pending {
                attempts: 0,
                last: None,
            },
        }],
        paged: None,
        promoted_position: None,
        writable_since: None,
        snapshot_id: None,
        divergence: None,
    });
    let at = |m: i64| t0() + Duration::minutes(m);
    let due = (0..24 * 60)
        .find(|m| crate::deadline::overdue(&site, &st, at(*m)).is_some())
        .expect("a deadline");
    for (m, want) in [(due - 1, 0.0), (due, 1.0)] {
        let v = line(&SiteTick {
            site: &site,
            state: Some(&st),
            evidence: None,
            latency: None,
            now: at(m),
        });
        assert_eq!(v["PhaseOverdue"].as_f64(), Some(want), "minute {m}");
        assert_eq!(
            (v["PhaseCode"].as_f64(), v["Phase"].as_str()),
            (Some(5.0), Some("promoting"))
        );
        assert_eq!(
            v["FenceState"].as_f64(),
            Some(FenceState::InProgress as u8 as f64)
        );
        assert_eq!(v["OldPrimaryWritable"].as_f64(), Some(0.0));
    }
    // The old primary answers writable: the split-brain signal, from the same fence state.
    st.fence.as_mut().unwrap().writable_since = Some(at(due));
    let v = line(&SiteTick {
        site: &site,
        state: Some(&st),
        evidence: None,
        latency: None,
        now: at(due),
    });
    assert_eq!(
        (v["FenceState"].as_f64(), v["OldPrimaryWritable"].as_f64()),
        (Some(4.0), Some(1.0))
    );
    assert!(metric_names(&v, 2).contains(&OLD_PRIMARY_WRITABLE.to_string()));
    write_golden_line(&v);
}

#[test]
fn the_heartbeat_beats_only_when_a_site_was_evaluated_and_counts_the_failed() {
    let beat = |sites, failed| -> Value {
        serde_json::from_str(&heartbeat_document(t0(), sites, failed).to_line().unwrap()).unwrap()
    };
    let v = beat(4, 1);
    assert_eq!(v["Heartbeat"].as_f64(), Some(1.0));
    assert_eq!(
        v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([[]])
    );
    assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
    assert_eq!(metric_names(&v, 0), [HEARTBEAT, SITES_FAILED]);
    assert_eq!(
        (v["Sites"].as_u64(), v["SitesFailed"].as_f64()),
        (Some(4), Some(1.0))
    );
    write_golden_line(&v);
    // Every site failed: no beat (the missed-tick alarm's), the failures still counted.
    let v = beat(4, 4);
    assert!(v.get("Heartbeat").is_none(), "{v}");
    assert_eq!(metric_names(&v, 0), [SITES_FAILED]);
    assert_eq!(v["SitesFailed"].as_f64(), Some(4.0));
}

/// The golden EMF lines (tests/golden/selfwatch-emf.jsonl) that tests/test_infra.py checks the
/// template's self-watch alarms against: each line a test here produced must be in the file as
/// is (`UPDATE_GOLDEN=1 cargo test -p failover-policy selfwatch -- --test-threads=1` rewrites
/// it), so a renamed metric fails here and there.
fn write_golden_line(v: &Value) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/golden/selfwatch-emf.jsonl"
    );
    let key = v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"].clone();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("golden line is JSON"))
        .collect();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        lines.retain(|l| l["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] != key);
        lines.push(v.clone());
        lines.sort_by_key(|l| l.to_string());
        let out: Vec<String> = lines.iter().map(Value::to_string).collect();
        std::fs::write(path, out.join("\n") + "\n").unwrap();
    } else {
        assert!(
            lines.contains(v),
            "{path} lacks the line this code writes (UPDATE_GOLDEN=1 to accept): {v}"
        );
    }
}

#[test]
fn every_phase_has_its_own_number() {
    use Phase::*;
    let all = [
        Idle,
        Suspected,
        AwaitingApproval,
        Refused,
        Shadowed,
        Promoting,
        Promoted,
        DnsPinned,
        Completed,
        Aborted,
        Failed,
    ];
    let codes: std::collections::BTreeSet<u32> = all.iter().map(|p| phase_code(*p)).collect();
    assert_eq!(codes.len(), all.len());
}
