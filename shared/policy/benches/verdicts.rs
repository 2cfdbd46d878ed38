//! Policy throughput: verdicts per second on one core.
//!
//! Method (see docs/bench.md): criterion, one thread, release profile. Each iteration is one whole
//! verdict as the evaluator computes it — for `parse+route+decide`, from the raw EventBridge JSON
//! bytes of a recorded alarm event through parsing, routing and the full guard evaluation against
//! a site with an open incident (the most expensive path: every guard runs and is explained).
//! Throughput is reported per element (= per verdict); criterion's `thrpt` line is verdicts/s.

use std::hint::black_box;

use chrono::{Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use failover_policy::config::{AlarmRole, DbRef};
use failover_policy::evidence::{
    AlarmEvidence, CanaryResult, CandidateEvidence, DbObservation, Evidence, LagSample,
};
use failover_policy::signal::AlarmState;
use failover_policy::{decide, parse_bytes, route, Config, Routing, SiteState};

const EXAMPLE: &str = include_str!("../../../infra/sites.example.json");

fn outage() -> Evidence {
    let cand = |id: &str| CandidateEvidence {
        db: DbRef {
            id: id.into(),
            region: "us-west-2".into(),
        },
        status: DbObservation::status("available"),
        replica_of_primary: Some(true),
        lag_secs: None,
        lag_at: None,
        replication: None,
        created_at: None,
    };
    Evidence {
        primary_multi_az: None,
        vantage_region: Some("us-west-2".into()),
        primary_gtid: None,
        read_only_groups: vec![],
        alarms: vec![
            AlarmEvidence {
                name: "orders-primary-availability".into(),
                role: AlarmRole::Availability,
                state: Some(AlarmState::Alarm),
            },
            AlarmEvidence {
                name: "orders-primary-canary".into(),
                role: AlarmRole::Availability,
                state: Some(AlarmState::Alarm),
            },
            AlarmEvidence {
                name: "orders-replica-lag".into(),
                role: AlarmRole::Lag,
                state: Some(AlarmState::Ok),
            },
        ],
        primary: DbObservation::Unreadable {
            error: "timeout".into(),
        },
        candidates: vec![cand("orders-replica-1"), cand("orders-replica-2")],
        canary: CanaryResult::Unreachable {
            error: "refused".into(),
        },
    }
}

fn bench(c: &mut Criterion) {
    let cfg = Config::from_document(EXAMPLE).unwrap();
    let site = cfg.site("orders").unwrap().clone();
    let now = Utc.with_ymd_and_hms(2026, 11, 24, 10, 5, 0).unwrap();
    let mut state = SiteState::new("orders");
    state
        .open_incident(now - Duration::seconds(300), "bench")
        .unwrap();
    state.quorum_since = Some(now - Duration::seconds(300));
    state.last_good_lag.insert(
        "orders-replica-1".into(),
        LagSample {
            secs: 2.0,
            at: now - Duration::seconds(400),
            created_at: None,
        },
    );
    let evidence = outage();
    let raw = serde_json::to_vec(&serde_json::json!({
        "version": "0", "id": "bench-1", "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
        "account": "123456789012", "time": "2026-11-24T10:04:50Z", "region": "us-west-2",
        "resources": ["arn:aws:cloudwatch:us-west-2:123456789012:alarm:orders-primary-availability"],
        "detail": {"alarmName": "orders-primary-availability",
            "state": {"value": "ALARM", "reason": "Threshold Crossed", "timestamp": "2026-11-24T10:04:50.000+0000"},
            "previousState": {"value": "OK", "reason": "ok", "timestamp": "2026-11-24T09:00:00.000+0000"},
            "configuration": {"metrics": []}}
    }))
    .unwrap();

    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decide (full guard evaluation)", |b| {
        let signal = parse_bytes(&raw).unwrap();
        b.iter(|| {
            black_box(decide(
                &site,
                black_box(&signal),
                Some(&evidence),
                &state,
                now,
            ))
        })
    });
    g.bench_function("parse+route+decide (from raw event bytes)", |b| {
        b.iter(|| {
            let signal = parse_bytes(black_box(&raw)).unwrap();
            match route(&cfg, &signal, now) {
                Routing::Sites(_) => {
                    black_box(decide(&site, &signal, Some(&evidence), &state, now))
                }
                Routing::Ignore(_) => unreachable!(),
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
