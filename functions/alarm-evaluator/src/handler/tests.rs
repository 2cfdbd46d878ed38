//! Handler tests over the AWS-faithful fakes: the choreography (what is read, written and emitted,
//! in which order) under malformed input, foreign input, lost races, failing AWS calls and
//! at-least-once delivery. The policy's own decision tables live in the policy crate.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use failover_adapters::fakes::*;
use failover_adapters::ports::{ErrorKind, FixedClock, InstanceInfo};
use failover_policy::evidence::CanaryResult;
use failover_policy::signal::AlarmState;
use failover_policy::{Config, Phase};
use lambda_runtime::Diagnostic;
use serde_json::{json, Value};

use super::*;

const EXAMPLE: &str = include_str!("../../../../infra/sites.example.json");

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
}

struct World {
    deps: Arc<Deps>,
    topology: Arc<FakeTopology>,
    metrics: Arc<FakeMetrics>,
    ledger: Arc<FakeLedger>,
    bus: Arc<FakeBus>,
    canary: Arc<FakeCanary>,
    clock: Arc<FixedClock>,
    fence: Arc<failover_adapters::fence::FakeFence>,
    old_primary: Arc<failover_adapters::fence::FakeOldPrimarySql>,
    rechecks: Arc<failover_adapters::recheck::RecordedRechecks>,
    lines: Arc<RecordedLines>,
}

fn instance(id: &str, status: &str, source: Option<&str>) -> InstanceInfo {
    InstanceInfo {
        id: id.into(),
        status: status.into(),
        replication_source: source.map(String::from),
        ..Default::default()
    }
}

/// The `orders` site, healthy: primary in us-east-1 with two cross-region replicas.
fn world() -> World {
    let topology = Arc::new(FakeTopology::default());
    topology.set_instance(instance("orders-primary", "available", None));
    let src = "arn:aws:rds:us-east-1:123456789012:db:orders-primary";
    topology.set_instance(instance("orders-replica-1", "available", Some(src)));
    topology.set_instance(instance("orders-replica-2", "available", Some(src)));
    let metrics = Arc::new(FakeMetrics::default());
    // Every alarm the example configures exists, OK, in its region (an alarm CloudWatch does not
    // know is a dark voter, and is warned about).
    let cfg = Config::from_document(EXAMPLE).unwrap();
    for a in cfg.sites.iter().flat_map(|s| s.alarms.iter()) {
        metrics.set_alarm(
            a.region.as_deref().unwrap_or(&cfg.region),
            &a.name,
            AlarmState::Ok,
        );
    }
    metrics.set_lag("orders-replica-1", 1.0);
    metrics.set_lag("orders-replica-2", 3.0);
    let canary = Arc::new(FakeCanary::default());
    for site in ["orders", "billing", "payments", "inventory"] {
        canary.set(site, CanaryResult::Reachable { latency_ms: 2 });
    }
    let ledger = Arc::new(FakeLedger::default());
    let bus = Arc::new(FakeBus::default());
    let clock = Arc::new(FixedClock::at(t0()));
    let fence = Arc::new(failover_adapters::fence::FakeFence::default());
    let old_primary = Arc::new(failover_adapters::fence::FakeOldPrimarySql::default());
    let rechecks = Arc::new(failover_adapters::recheck::RecordedRechecks::default());
    let lines = Arc::new(RecordedLines::default());
    let deps = Arc::new(Deps {
        rechecks: rechecks.clone(),
        metric_lines: lines.clone(),
        cfg: Config::from_document(EXAMPLE).unwrap(),
        cfg_object_version: None,
        topology: topology.clone(),
        metrics: metrics.clone(),
        ledger: ledger.clone(),
        bus: bus.clone(),
        canary: canary.clone(),
        clock: clock.clone(),
        fanout: Fanout::default(),
        fence: fence.clone(),
        old_primary: old_primary.clone(),
    });
    World {
        deps,
        topology,
        metrics,
        ledger,
        bus,
        canary,
        clock,
        fence,
        old_primary,
        rechecks,
        lines,
    }
}

impl World {
    /// The same world (fakes shared) under another configuration.
    fn with_config(self, cfg: Config) -> World {
        let deps = Deps {
            cfg,
            cfg_object_version: None,
            topology: self.topology.clone(),
            metrics: self.metrics.clone(),
            ledger: self.ledger.clone(),
            bus: self.bus.clone(),
            canary: self.canary.clone(),
            clock: self.clock.clone(),
            fanout: self.deps.fanout,
            fence: self.fence.clone(),
            old_primary: self.old_primary.clone(),
            rechecks: self.rechecks.clone(),
            metric_lines: self.lines.clone(),
        };
        World {
            deps: Arc::new(deps),
            ..self
        }
    }

    /// The primary's region goes dark: alarms fire, SQL is refused, lag reads -1.
    fn lose_primary(&self) {
        self.topology.kill_region("us-east-1");
        self.metrics.set_alarm(
            "us-west-2",
            "orders-primary-availability",
            AlarmState::Alarm,
        );
        self.metrics
            .set_alarm("us-west-2", "orders-primary-canary", AlarmState::Alarm);
        self.metrics.set_lag("orders-replica-1", -1.0);
        self.metrics.set_lag("orders-replica-2", -1.0);
        self.canary.set(
            "orders",
            CanaryResult::Unreachable {
                error: "connection refused".into(),
            },
        );
    }
}

/// An instant as EventBridge spells its envelope's `time` (`2026-11-24T10:00:00Z`): the
/// evaluator reads only the spellings AWS uses (failover_policy::signal::TimeDialect).
fn aws_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// An instant as CloudWatch spells an alarm state's `timestamp` (`2026-11-24T10:00:00.000+0000`).
fn alarm_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

fn alarm_event(id: &str, name: &str, state: &str, time: DateTime<Utc>) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
        "account": "123456789012", "time": aws_time(time), "region": "us-west-2",
        "resources": [format!("arn:aws:cloudwatch:us-west-2:123456789012:alarm:{name}")],
        "detail": {
            "alarmName": name,
            "state": {"value": state, "reason": "test", "timestamp": alarm_time(time)},
            "previousState": {"value": "OK", "reason": "test", "timestamp": alarm_time(time)},
            "configuration": {"metrics": []}
        }
    })
}

fn tick_event(id: &str, time: DateTime<Utc>) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": aws_time(time), "region": "us-west-2",
        "resources": ["arn:aws:events:us-west-2:123456789012:rule/rds-failover-tick"], "detail": {}
    })
}

fn orders_verdict(r: &Response) -> &Verdict {
    r.verdicts
        .iter()
        .find(|v| v.site.as_deref() == Some("orders"))
        .expect("orders verdict")
}

#[tokio::test]
async fn malformed_input_is_a_typed_error_with_no_reads_writes_or_events() {
    let w = world();
    for bad in [
        json!([1, 2]),
        json!({}),
        json!("x"),
        json!({"detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch"}),
    ] {
        let err = handle(&w.deps, bad.clone()).await.unwrap_err();
        assert!(matches!(err, EvaluatorError::BadInput(_)), "{bad}: {err}");
        assert_eq!(Diagnostic::from(err).error_type, "BadInput");
    }
    assert_eq!(*w.topology.calls.lock().unwrap(), 0);
    assert_eq!(w.ledger.commit_count(), 0);
    assert!(w.bus.types().is_empty());
}

#[tokio::test]
async fn foreign_input_is_ignored_before_any_aws_call() {
    let w = world();
    let mut e = alarm_event("x1", "orders-primary-availability", "ALARM", t0());
    e["account"] = json!("999999999999");
    e["resources"] =
        json!(["arn:aws:cloudwatch:us-west-2:999999999999:alarm:orders-primary-availability"]);
    let r = handle(&w.deps, e).await.unwrap();
    assert_eq!(r.verdicts[0].outcome.name(), "ignore");
    assert_eq!(*w.topology.calls.lock().unwrap(), 0);
    assert_eq!(*w.canary.probes.lock().unwrap(), 0);
    assert_eq!(w.ledger.commit_count(), 0);
    assert!(w.bus.types().is_empty());
}

/// Our account in the envelope, another account's alarm in `resources` (issue 17): the payload
/// contradicts itself and is refused as `BadInput` naming both fields, before any AWS call.
#[tokio::test]
async fn self_contradicting_input_is_bad_input_before_any_aws_call() {
    let w = world();
    let mut e = alarm_event("x2", "orders-primary-availability", "ALARM", t0());
    e["resources"] =
        json!(["arn:aws:cloudwatch:us-west-2:999999999999:alarm:orders-primary-availability"]);
    let err = handle(&w.deps, e).await.unwrap_err();
    assert!(err.to_string().contains("`account`"), "{err}");
    assert!(err.to_string().contains("`resources[0]`"), "{err}");
    assert_eq!(Diagnostic::from(err).error_type, "BadInput");
    assert_eq!(*w.topology.calls.lock().unwrap(), 0);
    assert_eq!(*w.canary.probes.lock().unwrap(), 0);
    assert_eq!(w.ledger.commit_count(), 0);
    assert!(w.bus.types().is_empty());
}

#[tokio::test]
async fn a_real_outage_runs_from_suspicion_to_one_failover_decision() {
    let w = world();
    // A healthy tick records the last good lag before the outage.
    let r = handle(&w.deps, tick_event("t0", t0())).await.unwrap();
    assert_eq!(orders_verdict(&r).outcome.name(), "ignore");

    w.lose_primary();
    w.clock.advance(30);
    let r = handle(
        &w.deps,
        alarm_event("a1", "orders-primary-availability", "ALARM", w.clock.now()),
    )
    .await
    .unwrap();
    assert_eq!(orders_verdict(&r).outcome.name(), "suspected");
    assert_eq!(r.emitted, vec!["IncidentSuspected"]);

    w.clock.advance(60);
    let r = handle(&w.deps, tick_event("t1", w.clock.now()))
        .await
        .unwrap();
    assert_eq!(orders_verdict(&r).outcome.name(), "suspected");

    w.clock.advance(60);
    let r = handle(&w.deps, tick_event("t2", w.clock.now()))
        .await
        .unwrap();
    let v = orders_verdict(&r);
    assert_eq!(v.outcome.name(), "failover-decided", "{:#?}", v);
    assert_eq!(r.emitted, vec!["FailoverDecided"]);
    let st = w.ledger.get("orders").unwrap();
    assert_eq!((st.phase, st.epoch), (Phase::Promoting, 1));
    assert!(st.outbox.is_empty(), "confirmed events leave the outbox");
    assert_eq!(w.bus.types(), vec!["IncidentSuspected", "FailoverDecided"]);

    // Late and duplicate deliveries change nothing and emit nothing.
    let before = w.ledger.get("orders").unwrap();
    let r = handle(
        &w.deps,
        alarm_event("a1", "orders-primary-availability", "ALARM", w.clock.now()),
    )
    .await
    .unwrap();
    assert_eq!(orders_verdict(&r).outcome.name(), "ignore");
    assert_eq!(w.ledger.get("orders").unwrap().version, before.version);
    assert_eq!(w.bus.types().len(), 2);
}

#[tokio::test]
async fn an_event_lost_between_commit_and_publish_is_re_emitted_next_time() {
    let w = world();
    handle(&w.deps, tick_event("t0", t0())).await.unwrap();
    w.lose_primary();
    for (i, s) in [0, 60].iter().enumerate() {
        w.clock.set(t0() + Duration::seconds(*s));
        handle(&w.deps, tick_event(&format!("t{}", i + 1), w.clock.now()))
            .await
            .unwrap();
    }
    // The decisive tick commits FailoverDecided, then EventBridge fails.
    w.bus.faults.inject("PutEvents", ErrorKind::Unavailable, 1);
    w.clock.set(t0() + Duration::seconds(120));
    let err = handle(&w.deps, tick_event("t3", w.clock.now()))
        .await
        .unwrap_err();
    assert_eq!(Diagnostic::from(err).error_type, "Retryable.Unavailable");
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::Promoting, "the decision is durable");
    assert_eq!(st.outbox.len(), 1, "and its event waits in the outbox");
    assert!(!w.bus.types().contains(&"FailoverDecided"));

    // Lambda retries the same delivery: the outbox is flushed, the decision is not re-made.
    let r = handle(&w.deps, tick_event("t3", w.clock.now()))
        .await
        .unwrap();
    assert_eq!(r.emitted, vec!["FailoverDecided"]);
    assert_eq!(
        w.bus
            .types()
            .iter()
            .filter(|t| **t == "FailoverDecided")
            .count(),
        1
    );
    assert!(w.ledger.get("orders").unwrap().outbox.is_empty());
}

#[tokio::test]
async fn concurrent_deliveries_decide_exactly_once() {
    let w = world();
    handle(&w.deps, tick_event("t0", t0())).await.unwrap();
    w.lose_primary();
    handle(&w.deps, tick_event("t1", t0() + Duration::seconds(1)))
        .await
        .unwrap();
    w.clock.set(t0() + Duration::seconds(200));
    let mut tasks = vec![];
    for i in 0..32 {
        let deps = w.deps.clone();
        let now = w.clock.now();
        tasks.push(tokio::spawn(async move {
            handle(
                &deps,
                alarm_event(
                    &format!("dup-{}", i % 4),
                    "orders-primary-availability",
                    "ALARM",
                    now,
                ),
            )
            .await
        }));
    }
    let mut decided = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                decided += r
                    .verdicts
                    .iter()
                    .filter(|v| v.outcome.name() == "failover-decided")
                    .count()
            }
            Err(e) => assert_eq!(Diagnostic::from(e).error_type, "Retryable.Contention"),
        }
    }
    assert_eq!(decided, 1);
    assert_eq!(
        w.bus
            .types()
            .iter()
            .filter(|t| **t == "FailoverDecided")
            .count(),
        1
    );
    assert_eq!(w.ledger.get("orders").unwrap().epoch, 1);
}

#[tokio::test]
async fn aws_failures_map_to_retryable_or_fatal_error_types() {
    let w = world();
    w.ledger.faults.inject("GetItem", ErrorKind::Throttled, 1);
    let e = handle(&w.deps, tick_event("t0", t0())).await.unwrap_err();
    assert_eq!(Diagnostic::from(e).error_type, "Retryable.Throttled");

    w.ledger
        .faults
        .inject("PutItem", ErrorKind::AccessDenied, 1);
    let e = handle(&w.deps, tick_event("t1", t0())).await.unwrap_err();
    let d = Diagnostic::from(e);
    assert_eq!(d.error_type, "Fatal.AccessDenied");
    assert!(d.error_message.contains("PutItem"), "{}", d.error_message);
}

#[tokio::test]
async fn failing_evidence_reads_are_unknown_not_errors() {
    let w = world();
    w.topology
        .faults
        .inject("DescribeDBInstances", ErrorKind::Throttled, 10);
    w.metrics
        .faults
        .inject("DescribeAlarms", ErrorKind::Unavailable, 10);
    w.canary.set(
        "orders",
        CanaryResult::Unknown {
            reason: "secret unreadable".into(),
        },
    );
    let r = handle(&w.deps, tick_event("t0", t0())).await.unwrap();
    let v = orders_verdict(&r);
    assert_eq!(v.outcome.name(), "watch", "{:#?}", v);
    assert_eq!(w.ledger.get("orders").map(|s| s.phase), Some(Phase::Idle));
}

#[tokio::test]
async fn operator_commands_need_no_evidence_and_round_trip() {
    let w = world();
    let r = handle(&w.deps, json!({"command": "pause", "site": "orders", "reason": "regional event", "operator": "bob"})).await.unwrap();
    assert_eq!(r.verdicts[0].outcome.name(), "paused");
    assert_eq!(
        *w.topology.calls.lock().unwrap(),
        0,
        "pause reads nothing from RDS"
    );
    assert_eq!(w.bus.types(), vec!["AutomationPaused"]);
    let r = handle(&w.deps, json!({"command": "status", "site": "orders"}))
        .await
        .unwrap();
    assert!(r.verdicts[0].summary.contains("paused by bob"));
}

#[tokio::test]
async fn an_unpinned_promotion_holds_automation_until_a_human_completes_its_epoch() {
    let w = world();
    handle(&w.deps, tick_event("t0", t0())).await.unwrap();
    w.lose_primary();
    for (i, s) in [30, 90, 150].iter().enumerate() {
        w.clock.set(t0() + Duration::seconds(*s));
        handle(&w.deps, tick_event(&format!("a{i}"), w.clock.now()))
            .await
            .unwrap();
    }
    // Epoch 1 asked RDS to promote orders-replica-1, then failed before DNS was pinned.
    let mut st = w.ledger.get("orders").unwrap();
    assert_eq!((st.epoch, st.phase), (1, Phase::Promoting));
    st.promotion = Some(failover_policy::incident::PromotionRecord {
        epoch: 1,
        candidate: failover_policy::config::DbRef {
            id: "orders-replica-1".into(),
            region: "us-west-2".into(),
        },
        action: "PromoteReadReplica".into(),
        requested_at: w.clock.now(),
        completed_at: None,
        endpoint: None,
        writable_verified_at: None,
        resolved: None,
    });
    st.phase = Phase::Failed;
    st.version += 1;
    w.ledger.put(st);

    // After the cooldown the primary is still down: automation must not promote a second one.
    let tick = |n: usize| {
        w.clock.advance(60);
        tick_event(&format!("h{n}"), w.clock.now())
    };
    w.clock.advance(3600);
    let mut last = String::new();
    for n in 0..4 {
        let r = handle(&w.deps, tick(n)).await.unwrap();
        last = orders_verdict(&r).outcome.name().to_string();
    }
    assert_eq!(last, "refused");
    let st = w.ledger.get("orders").unwrap();
    assert_eq!((st.epoch, st.phase), (2, Phase::Refused));
    let refusal = w
        .bus
        .published
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e.event_type == failover_policy::EventType::FailoverRefused)
        .cloned()
        .unwrap();
    let body = failover_policy::notice::compose(&refusal, w.clock.now()).body;
    assert!(
        body.contains(r#""command":"complete","site":"orders","epoch":1"#),
        "{body}"
    );

    // A human fenced orders-replica-1 off and says so, naming the failed epoch.
    let r = handle(
        &w.deps,
        json!({"command": "complete", "site": "orders", "epoch": 1, "operator": "alice",
               "reason": "orders-replica-1 stopped by hand"}),
    )
    .await
    .unwrap();
    assert_eq!(r.verdicts[0].outcome.name(), "completed", "{r:#?}");
    assert_eq!(w.bus.types().last(), Some(&"FailoverCompleted"));
    let resolved = w.ledger.get("orders").unwrap().promotion.unwrap().resolved;
    assert_eq!(resolved.map(|r| r.by), Some("alice".to_string()));

    // Automation acts again. An hour into the outage the pre-outage samples bound nothing (the
    // RPO guard refuses them as too old); a replica that reports a reading now is promotable.
    w.metrics.set_lag("orders-replica-2", 1.0);
    let r = handle(&w.deps, tick(9)).await.unwrap();
    let v = orders_verdict(&r);
    assert_eq!(v.outcome.name(), "failover-decided", "{v:#?}");
    assert_eq!(w.ledger.get("orders").unwrap().phase, Phase::Promoting);
}

#[tokio::test]
async fn after_complete_automation_decides_on_the_ledgers_topology_not_the_stale_configuration() {
    // Epoch 1 promoted orders-replica-1 and pinned DNS to it; `complete` was sent without any
    // configuration edit. orders-replica-2 is still a replica of the dead orders-primary.
    let w = world();
    handle(&w.deps, tick_event("t0", t0())).await.unwrap();
    w.lose_primary();
    for (i, s) in [30, 90, 150].iter().enumerate() {
        w.clock.set(t0() + Duration::seconds(*s));
        handle(&w.deps, tick_event(&format!("a{i}"), w.clock.now()))
            .await
            .unwrap();
    }
    let mut st = w.ledger.get("orders").unwrap();
    assert_eq!((st.epoch, st.phase), (1, Phase::Promoting));
    let r1 = failover_policy::config::DbRef {
        id: "orders-replica-1".into(),
        region: "us-west-2".into(),
    };
    let endpoint = "orders-replica-1.x.us-west-2.rds.amazonaws.com:3306";
    st = failover_policy::promote::request(
        &st,
        &r1,
        &failover_policy::promote::PromotionAction::PromoteReadReplica {
            instance: r1.clone(),
        },
        w.clock.now(),
    );
    let p = st.promotion.as_mut().unwrap();
    p.completed_at = Some(w.clock.now());
    p.endpoint = Some(endpoint.into());
    st.dns = Some(failover_policy::incident::DnsRecord {
        epoch: 1,
        zone_id: "Z0ORDERSEXAMPLE".into(),
        name: "db.orders.example.com".into(),
        record_type: "CNAME".into(),
        set_identifier: None,
        previous_values: vec!["orders-primary.x.us-east-1.rds.amazonaws.com".into()],
        previous_ttl: Some(60),
        new_value: "orders-replica-1.x.us-west-2.rds.amazonaws.com".into(),
        change_id: Some("C1".into()),
        insync_at: Some(w.clock.now()),
        previous_records: None,
    });
    for ph in [Phase::Promoted, Phase::DnsPinned] {
        st.transition(1, ph, w.clock.now(), "test").unwrap();
    }
    st.version += 1;
    w.ledger.put(st);
    w.topology
        .update_instance("orders-replica-1", |i| i.replication_source = None);

    let r = handle(
        &w.deps,
        json!({"command": "complete", "site": "orders", "epoch": 1, "operator": "alice",
               "reason": "orders now served from us-west-2"}),
    )
    .await
    .unwrap();
    assert_eq!(r.verdicts[0].outcome.name(), "completed", "{r:#?}");

    // Past the cooldown the new writer dies too. The configuration still says orders-primary
    // is the primary and orders-replica-2 its replica (lag -1 now, 3 s two hours ago).
    w.clock.advance(2 * 3600);
    w.topology.set_status("orders-replica-1", "failed");
    let mut verdicts = vec![];
    for n in 0..5 {
        w.clock.advance(60);
        let r = handle(&w.deps, tick_event(&format!("b{n}"), w.clock.now()))
            .await
            .unwrap();
        verdicts.push(orders_verdict(&r).clone());
    }
    assert!(
        verdicts.iter().all(|v| v.outcome.name() != "failover-decided"),
        "orders-replica-2 replicates from the dead orders-primary: promoting it makes a second writer: {verdicts:#?}"
    );
    let last = verdicts.last().unwrap();
    assert_eq!(last.outcome.name(), "refused", "{last:#?}");
    assert!(
        last.summary.contains("orders-replica-2")
            && last
                .summary
                .contains("does not replicate from the primary orders-replica-1"),
        "{}",
        last.summary
    );
    // Not even a human's RPO override can promote it: it is no replica of the live topology.
    let r = handle(
        &w.deps,
        json!({"command": "failover", "site": "orders", "override_rpo": true, "candidate": "orders-replica-2",
               "operator": "bob", "reason": "writer lost"}),
    )
    .await
    .unwrap();
    let v = &r.verdicts[0];
    assert_eq!(v.outcome.name(), "refused", "{v:#?}");
    let decided = w
        .bus
        .types()
        .iter()
        .filter(|t| **t == "FailoverDecided")
        .count();
    assert_eq!(decided, 1, "only epoch 1's decision: {:?}", w.bus.types());
    assert!(
        v.summary
            .contains("does not replicate from the primary orders-replica-1"),
        "{}",
        v.summary
    );
}

#[tokio::test]
async fn an_epoch_in_flight_for_a_site_dropped_from_the_configuration_pages_once() {
    // `legacy` was removed from the configuration while its failover was `promoted`: no function
    // looks it up any more. The tick finds it in the ledger and pages once, with the next step.
    let w = world();
    let mut st = SiteState::new("legacy");
    st.open_incident(t0(), "test").unwrap();
    for ph in [Phase::Promoting, Phase::Promoted] {
        st.transition(1, ph, t0(), "test").unwrap();
    }
    st.version = 7;
    w.ledger.put(st);
    for n in 0..3 {
        w.clock.advance(60);
        handle(&w.deps, tick_event(&format!("d{n}"), w.clock.now()))
            .await
            .unwrap();
    }
    let pages: Vec<_> = w
        .bus
        .published
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.site == "legacy")
        .cloned()
        .collect();
    assert_eq!(pages.len(), 1, "{pages:#?}");
    assert_eq!(
        pages[0].event_type,
        failover_policy::EventType::PhaseOverdue
    );
    let body = failover_policy::notice::compose(&pages[0], w.clock.now()).body;
    assert!(
        body.contains("no longer names site legacy") && body.contains("Restore the site"),
        "{body}"
    );
    assert_eq!(
        w.ledger.get("legacy").unwrap().phase,
        Phase::Promoted,
        "nothing else changes"
    );
}

mod door;
/// Regional loss and honest votes through the handler (issue 10, scenarios 1-6).
mod fanout;
mod fence;
mod recheck;
mod regional;
/// The tick's own metrics (issue 15).
mod selfwatch;

/// `status` answers with what the evaluator sees now (issue 15): the votes with their sources and
/// each candidate's lag, and writes nothing.
#[tokio::test]
async fn status_returns_the_live_votes_and_lags_and_writes_nothing() {
    let w = world();
    w.lose_primary();
    let r = handle(&w.deps, json!({"command": "status", "site": "orders"}))
        .await
        .unwrap();
    assert_eq!(orders_verdict(&r).outcome.name(), "status");
    let [seen] = r.evidence.as_slice() else {
        panic!("one site's evidence: {:?}", r.evidence)
    };
    assert_eq!(seen.site, "orders");
    assert_eq!(
        (seen.tally.down, seen.quorum, seen.max_lag_secs),
        (2, 2, 30)
    );
    assert!(
        seen.tally
            .voters
            .iter()
            .any(|v| v.contains("sql canary: unreachable")),
        "{:?}",
        seen.tally.voters
    );
    assert_eq!(seen.evidence.candidates.len(), 2);
    assert_eq!(w.ledger.commit_count(), 0);
    assert!(w.bus.types().is_empty());
}

/// Every committed decision carries what it was decided on and the configuration's version
/// (issue 15: the audit trail names the version; `what-if` re-decides it).
#[tokio::test]
async fn a_committed_decision_records_its_observation_and_config_version() {
    let w = world();
    w.lose_primary();
    let e = alarm_event("obs-1", "orders-primary-availability", "ALARM", t0());
    handle(&w.deps, e).await.unwrap();
    let st = w.ledger.load("orders").await.unwrap();
    let obs = st.observation.expect("observation recorded");
    assert_eq!(obs.signal.id, "obs-1");
    assert_eq!(obs.at, t0());
    assert_eq!(obs.config_version, Some(w.deps.cfg.version()));
    let ev = obs.evidence.expect("the evidence it decided on");
    assert_eq!(ev.tally().down, 2);
    assert_eq!(obs.phase, st.phase);
}

/// Issue 15: a warm evaluator takes a new configuration version from the store without a cold
/// start, and the decision's audit entry names it (content hash and S3 VersionId).
#[tokio::test]
async fn a_warm_evaluator_decides_under_the_new_stored_version_and_records_it() {
    use failover_adapters::config_store::{FakeConfigStore, Hot, LiveConfig};
    use std::time::{Duration, Instant};
    let w = world();
    let store = Arc::new(FakeConfigStore::default());
    store.put(EXAMPLE);
    let live = LiveConfig::cold_start(store.clone(), Duration::from_secs(60))
        .await
        .unwrap();
    let base = Deps {
        cfg_object_version: live.current().version.object_version.clone(),
        ..(*w.deps).clone()
    };
    let hot = Hot::new(base, Some(live), |d: &Deps, l| Deps {
        cfg: l.config.clone(),
        cfg_object_version: l.version.object_version.clone(),
        ..d.clone()
    });
    let mut doc: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    doc["sites"][0]["thresholds"]["max_lag_secs"] = 45.into();
    let v2 = store.put(&doc.to_string());
    let deps = hot.get_at(Instant::now() + Duration::from_secs(61)).await;
    assert_eq!(deps.cfg.sites[0].thresholds.max_lag_secs, 45);
    w.lose_primary();
    let e = alarm_event("obs-2", "orders-primary-availability", "ALARM", t0());
    handle(&deps, e).await.unwrap();
    let obs = w.ledger.load("orders").await.unwrap().observation.unwrap();
    assert_eq!(obs.config_version, Some(deps.cfg.version()));
    assert_ne!(obs.config_version, Some(w.deps.cfg.version()));
    assert_eq!(obs.config_object_version, Some(v2));
}
mod crash;
mod drill;
mod failback;
mod reprotect;
mod switchover;
