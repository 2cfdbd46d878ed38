//! The audit trail of an outage, recorded as the evaluator records it (every committed decision
//! carries its observation), then re-decided under other thresholds.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::config::{AlarmRole, DbRef};
use crate::evidence::{AlarmEvidence, CanaryResult, CandidateEvidence, DbObservation};
use crate::signal::{AlarmState, Delivery};

const EXAMPLE: &str = include_str!("../../../../infra/sites.example.json");

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
}

fn tick(n: i64) -> Signal {
    Signal {
        id: format!("tick-{n}"),
        delivery: Delivery::EventBridge,
        source: "aws.events".into(),
        account: Some("123456789012".into()),
        region: Some("us-west-2".into()),
        time: Some(t0() + Duration::seconds(n)),
        kind: SignalKind::Tick,
    }
}

fn evidence(down: bool) -> Evidence {
    let alarm = |name: &str| AlarmEvidence {
        name: name.into(),
        role: AlarmRole::Availability,
        state: Some(if down {
            AlarmState::Alarm
        } else {
            AlarmState::Ok
        }),
    };
    let cand = |id: &str, lag: f64| CandidateEvidence {
        db: DbRef {
            id: id.into(),
            region: "us-west-2".into(),
        },
        status: DbObservation::status("available"),
        replica_of_primary: Some(true),
        lag_secs: (!down).then_some(lag),
        lag_at: None,
        replication: None,
        created_at: None,
    };
    Evidence {
        alarms: vec![
            alarm("orders-primary-availability"),
            alarm("orders-primary-canary"),
        ],
        primary: if down {
            DbObservation::Unreadable {
                error: "timeout".into(),
            }
        } else {
            DbObservation::status("available")
        },
        candidates: vec![cand("orders-replica-1", 2.0), cand("orders-replica-2", 4.0)],
        canary: if down {
            CanaryResult::Unreachable {
                error: "connection refused".into(),
            }
        } else {
            CanaryResult::Reachable { latency_ms: 3 }
        },
        primary_multi_az: None,
        vantage_region: Some("us-west-2".into()),
        primary_gtid: None,
        read_only_groups: vec![],
    }
}

/// What the evaluator writes: each committed decision with its observation, version by version.
/// Healthy for a minute, then down every 30 s until the sustained window (120 s) decides.
fn recorded_trail(cfg: &Config) -> Vec<SiteState> {
    let site = cfg.site("orders").unwrap();
    let mut st = SiteState::new("orders");
    let mut trail = vec![];
    for n in (0..=300).step_by(30) {
        let sig = tick(n);
        let ev = evidence(n >= 60);
        let now = t0() + Duration::seconds(n);
        let d = decide(site, &sig, Some(&ev), &st, now);
        if let Some(mut next) = d.next {
            next.observation = Some(Observation {
                at: now,
                signal: sig,
                evidence: Some(ev),
                outcome: d.verdict.outcome.clone(),
                phase: d.verdict.phase,
                summary: d.verdict.summary.clone(),
                config_version: Some(cfg.version()),
                config_object_version: None,
            });
            st = next;
            trail.push(st.clone());
        }
        if st.phase == Phase::Promoting {
            break;
        }
    }
    trail
}

fn with(f: impl Fn(&mut crate::config::Thresholds)) -> Config {
    let mut cfg = Config::from_document(EXAMPLE).unwrap();
    for s in &mut cfg.sites {
        f(&mut s.thresholds);
    }
    cfg
}

#[test]
fn the_same_configuration_decides_the_same() {
    let cfg = Config::from_document(EXAMPLE).unwrap();
    let trail = recorded_trail(&cfg);
    let r = replay(&cfg, "orders", &trail);
    assert!(r.replayed >= 5, "{r:?}");
    assert_eq!(r.differences, vec![], "{r:?}");
    assert_eq!(r.recorded_failover, r.whatif_failover);
    assert!(r.recorded_failover.is_some());
}

#[test]
fn a_longer_sustained_window_fails_over_later_and_names_the_difference() {
    let cfg = Config::from_document(EXAMPLE).unwrap();
    let trail = recorded_trail(&cfg);
    let recorded = replay(&cfg, "orders", &trail).recorded_failover.unwrap();
    // The recorded trail ends at the decision, so a window longer than what was observed never
    // decides; 90 s instead of 120 s decides 30 s earlier.
    let shorter = with(|t| t.sustained_secs = 90);
    let r = replay(&shorter, "orders", &trail);
    assert_eq!(
        r.whatif_failover,
        Some(recorded - Duration::seconds(30)),
        "{r:?}"
    );
    assert!(
        r.conclusion()[0].contains("would have come 30 s earlier"),
        "{:?}",
        r.conclusion()
    );
    let longer = with(|t| t.sustained_secs = 600);
    let r = replay(&longer, "orders", &trail);
    assert_eq!(r.whatif_failover, None);
    assert!(r.conclusion()[0].contains("would not have been decided"));
    let last = r.differences.last().expect("the decision differs");
    assert!(last.recorded.starts_with("failover-decided"), "{last:?}");
}

#[test]
fn a_quorum_the_outage_never_reaches_holds_the_incident_at_suspected() {
    let cfg = Config::from_document(EXAMPLE).unwrap();
    let trail = recorded_trail(&cfg);
    // Three voters say down (the RDS read is unknown): a quorum of 4 is never met.
    let strict = with(|t| t.quorum = 4);
    let r = replay(&strict, "orders", &trail);
    assert_eq!(r.whatif_failover, None, "{r:?}");
    assert_eq!(r.differences.len(), 1, "{r:?}");
    assert_eq!(r.differences[0].whatif, "suspected (phase suspected)");
    assert_eq!((r.recorded_incidents, r.whatif_incidents), (1, 1));
}
