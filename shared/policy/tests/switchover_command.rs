//! The `switchover` operator command through the evaluator's `decide`: preconditions shown like
//! a verdict, one epoch recorded with the fence intent, and duplicate or concurrent commands
//! (scenario 5) answered with the one switchover in flight.

use chrono::{DateTime, TimeZone, Utc};
use failover_policy::config::DbRef;
use failover_policy::evidence::{CanaryResult, CandidateEvidence, DbObservation, Evidence};
use failover_policy::incident::DecisionTrigger;
use failover_policy::signal::{Delivery, OperatorAction, OperatorCommand};
use failover_policy::switchover::SwPhase;
use failover_policy::verdict::RefusalReason;
use failover_policy::*;

const EXAMPLE: &str = include_str!("../../../infra/sites.example.json");

fn cfg(fence: bool) -> Config {
    let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    for s in v["sites"].as_array_mut().unwrap() {
        if s["id"] == "orders" && fence {
            s["fence"] = serde_json::json!({"parameter_group": "orders-primary-params"});
        }
    }
    Config::from_document(&v.to_string()).unwrap()
}

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn cmd(candidate: &str, id: &str, delivery: Delivery) -> Signal {
    cmd_for("orders", candidate, id, delivery)
}

fn cmd_for(site: &str, candidate: &str, id: &str, delivery: Delivery) -> Signal {
    Signal {
        id: id.into(),
        delivery,
        source: "rds-failover.operator".into(),
        account: None,
        region: None,
        time: None,
        kind: SignalKind::Operator(OperatorCommand {
            command: OperatorAction::Switchover,
            site: site.into(),
            reason: Some("planned DR move".into()),
            operator: Some("ana@example.com".into()),
            override_rpo: false,
            epoch: None,
            candidate: Some(candidate.into()),
            force: false,
            override_cooldown: false,
            primary: None,
            max_wait_secs: Some(45),
            outside_window: false,
            principal: None,
            drill: None,
        }),
    }
}

fn replica(id: &str, lag: Option<f64>) -> CandidateEvidence {
    CandidateEvidence {
        db: DbRef {
            id: id.into(),
            region: "us-west-2".into(),
        },
        status: DbObservation::status("available"),
        replica_of_primary: Some(true),
        lag_secs: lag,
        lag_at: None,
        replication: None,
        created_at: None,
    }
}

fn healthy(lag1: Option<f64>) -> Evidence {
    Evidence {
        alarms: vec![],
        primary: DbObservation::status("available"),
        candidates: vec![
            replica("orders-replica-1", lag1),
            replica("orders-replica-2", Some(0.0)),
        ],
        canary: CanaryResult::Reachable { latency_ms: 2 },
        primary_multi_az: None,
        vantage_region: Some("us-west-2".into()),
        primary_gtid: Some(true),
        read_only_groups: vec![],
    }
}

fn run(c: &Config, sig: &Signal, ev: &Evidence, st: &SiteState, at: i64) -> Decision {
    decide(c.site("orders").unwrap(), sig, Some(ev), st, t(at))
}

/// The Aurora cluster site `billing`: writer billing-1, reader billing-2.
fn billing(st: &SiteState, sig: &Signal, at: i64) -> Decision {
    let ev = Evidence {
        candidates: vec![CandidateEvidence {
            db: DbRef {
                id: "billing-2".into(),
                region: "us-west-2".into(),
            },
            ..replica("billing-2", Some(0.0))
        }],
        ..healthy(Some(0.0))
    };
    decide(
        cfg(true).site("billing").unwrap(),
        sig,
        Some(&ev),
        st,
        t(at),
    )
}

fn bcmd(id: &str, delivery: Delivery) -> Signal {
    cmd_for("billing", "billing-2", id, delivery)
}

#[test]
fn a_switchover_records_one_epoch_and_its_decision() {
    let st = SiteState::new("billing");
    let d = billing(&st, &bcmd("a", Delivery::Direct), 0);
    assert!(
        matches!(d.verdict.outcome, Outcome::FailoverDecided { ref candidate } if candidate.id == "billing-2"),
        "{:?}",
        d.verdict
    );
    let next = d.next.expect("written");
    assert_eq!((next.epoch, next.phase), (1, Phase::Promoting));
    let sw = next.switchover.as_ref().unwrap();
    assert_eq!(
        (sw.epoch, sw.phase, sw.max_wait_secs),
        (1, SwPhase::Promoting, 45)
    );
    assert_eq!(
        next.decision.as_ref().unwrap().trigger,
        DecisionTrigger::PlannedSwitchover
    );
    assert!(
        next.forced.is_none(),
        "Aurora demotes the old writer itself"
    );
    assert_eq!(d.emit.len(), 1);
    assert_eq!(d.emit[0].event_type, EventType::FailoverDecided);
    assert!(
        d.verdict.summary.contains("planned switchover"),
        "{}",
        d.verdict.summary
    );
}

/// An RDS read replica's switchover is judged, then recorded as a fence-first epoch: the tick
/// fences, captures and waits (alarm-evaluator's `switchover` driver), and the promoter is held
/// until the target has applied the fenced position.
#[test]
fn an_rds_replica_switchover_records_a_fence_first_epoch_held_until_caught_up() {
    let c = cfg(true);
    let d = run(
        &c,
        &cmd("orders-replica-1", "a", Delivery::Direct),
        &healthy(Some(0.0)),
        &SiteState::new("orders"),
        0,
    );
    assert!(
        matches!(d.verdict.outcome, Outcome::FailoverDecided { .. }),
        "{:?}",
        d.verdict
    );
    let next = d.next.unwrap();
    let sw = next.switchover.as_ref().unwrap();
    assert_eq!(sw.phase, SwPhase::Fencing);
    assert!(next.forced.as_ref().is_some_and(|f| f.fence_first));
    assert!(matches!(
        failover_policy::fence::fenced_first(&next),
        failover_policy::fence::FencedFirst::Waiting(_)
    ));
    assert_eq!(d.emit.len(), 1);
    assert_eq!(d.emit[0].event_type, EventType::FailoverDecided);
    assert!(
        d.verdict
            .guards
            .iter()
            .filter(|g| g.result == failover_policy::verdict::GuardResult::Pass)
            .count()
            >= 6
    );
}

/// Scenario 5: duplicate and concurrent commands → one switchover.
#[test]
fn duplicate_and_concurrent_commands_make_one_switchover() {
    let first = billing(&SiteState::new("billing"), &bcmd("a", Delivery::Direct), 0);
    let st = first.next.unwrap();
    // The same command again (a retry, a second operator): nothing written, nothing emitted.
    for (id, delivery) in [
        ("a", Delivery::Direct),
        ("b", Delivery::Direct),
        ("c", Delivery::EventBridge),
    ] {
        let d = billing(&st, &bcmd(id, delivery), 5);
        assert!(d.next.is_none(), "{id}: {:?}", d.verdict);
        assert!(d.emit.is_empty());
        assert!(
            d.verdict.summary.contains("duplicate"),
            "{}",
            d.verdict.summary
        );
    }
    // A failover command meanwhile finds it in flight.
    let mut f = bcmd("e", Delivery::Direct);
    if let SignalKind::Operator(c) = &mut f.kind {
        c.command = OperatorAction::Failover;
    }
    let d = billing(&st, &f, 5);
    assert!(d.next.is_none() && d.emit.is_empty(), "{:?}", d.verdict);
    // Two evaluators racing from the same record: both write version+1 of the same record, and
    // the ledger's compare-and-set lets only one of them commit.
    let base = SiteState::new("billing");
    let x = billing(&base, &bcmd("x", Delivery::Direct), 0)
        .next
        .unwrap();
    let y = billing(&base, &bcmd("y", Delivery::Direct), 1)
        .next
        .unwrap();
    assert_eq!((x.version, y.version), (base.version + 1, base.version + 1));
    // Once the epoch is closed, a new switchover may start (a new epoch).
    let mut done = st.clone();
    done.phase = Phase::Completed;
    let d = billing(&done, &bcmd("z", Delivery::Direct), 600);
    assert_eq!(d.next.unwrap().epoch, 2);
}

/// A concurrent switchover to another target is refused while one is in flight.
#[test]
fn a_concurrent_switchover_to_another_target_is_refused() {
    let first = run(
        &cfg(true),
        &cmd("orders-replica-1", "a", Delivery::Direct),
        &healthy(Some(0.0)),
        &SiteState::new("orders"),
        0,
    );
    let second = run(
        &cfg(true),
        &cmd("orders-replica-2", "b", Delivery::Direct),
        &healthy(Some(0.0)),
        first.next.as_ref().unwrap(),
        5,
    );
    assert_eq!(
        second.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::AlreadyInFlight
        }
    );
    let st = billing(&SiteState::new("billing"), &bcmd("a", Delivery::Direct), 0)
        .next
        .unwrap();
    let mut other = st.clone();
    other.switchover.as_mut().unwrap().target.id = "billing-3".into();
    let d = billing(&other, &bcmd("b", Delivery::Direct), 5);
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::AlreadyInFlight
        }
    );
    assert!(d.next.is_none() && d.emit.is_empty());
}

#[test]
fn preconditions_refuse_with_the_verdict_shown() {
    let c = cfg(true);
    let st = SiteState::new("orders");
    let cases: Vec<(&str, Evidence, RefusalReason)> = vec![
        ("lagging", healthy(Some(12.0)), RefusalReason::RpoExceeded),
        ("lag unknown", healthy(None), RefusalReason::LagUnknown),
        (
            "primary down",
            Evidence {
                canary: CanaryResult::Unreachable {
                    error: "refused".into(),
                },
                ..healthy(Some(0.0))
            },
            RefusalReason::PrimaryUnhealthy,
        ),
    ];
    for (name, ev, want) in cases {
        let d = run(
            &c,
            &cmd("orders-replica-1", "a", Delivery::Direct),
            &ev,
            &st,
            0,
        );
        assert_eq!(
            d.verdict.outcome,
            Outcome::Refused { reason: want },
            "{name}"
        );
        assert!(d.verdict.guards.len() > 6, "{name}: every guard shown");
        assert!(d.next.is_none(), "{name}");
    }
    // No fence configured: refused (two writers otherwise).
    let d = run(
        &cfg(false),
        &cmd("orders-replica-1", "a", Delivery::Direct),
        &healthy(Some(0.0)),
        &st,
        0,
    );
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NotFenceable
        }
    );
    // A target that is not a candidate.
    let d = run(
        &c,
        &cmd("orders-primary", "a", Delivery::Direct),
        &healthy(Some(0.0)),
        &st,
        0,
    );
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::NoHealthyCandidate
        }
    );
    // Paused.
    let mut paused = st.clone();
    paused.paused = Some(failover_policy::incident::Pause {
        by: "bo".into(),
        reason: "freeze".into(),
        at: t(0),
    });
    let d = run(
        &c,
        &cmd("orders-replica-1", "a", Delivery::Direct),
        &healthy(Some(0.0)),
        &paused,
        0,
    );
    assert_eq!(
        d.verdict.outcome,
        Outcome::Refused {
            reason: RefusalReason::Paused
        }
    );
}

#[test]
fn the_command_needs_a_target_and_a_reason() {
    for (body, field) in [
        (
            serde_json::json!({"command": "switchover", "site": "orders", "reason": "x"}),
            "candidate",
        ),
        (
            serde_json::json!({"command": "switchover", "site": "orders", "candidate": "orders-replica-1"}),
            "reason",
        ),
    ] {
        let e = parse_signal(&body).unwrap_err().to_string();
        assert!(e.contains(field), "{e}");
    }
    let stray = serde_json::json!({"command": "failover", "site": "orders", "max_wait_secs": 5});
    let e = parse_signal(&stray).unwrap_err().to_string();
    assert!(e.contains("max_wait_secs"), "{e}");
    let ok = serde_json::json!({"command": "switchover", "site": "orders", "candidate": "orders-replica-1",
        "reason": "x", "max_wait_secs": 30});
    parse_signal(&ok).unwrap();
}
