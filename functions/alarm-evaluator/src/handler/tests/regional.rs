//! The issue-10 scenarios through the evaluator's handler over the fakes, on the example
//! configuration: `orders` (primary in us-east-1, the functions in us-west-2, quorum 2 of: the
//! availability alarm in us-east-1, the witness's alarm `orders-primary-canary` in us-west-2 on
//! the us-east-2 witness's metric, RDS status, and the DR-side SQL canary), and `inventory`
//! (Multi-AZ, us-west-2). Time is a fixed clock advanced by the scheduled tick, one a minute (or
//! every 10 s where RDS's own timing matters), as EventBridge delivers it.
//!
//! Which of these fail on the code before issue 10: 2 and 3 (no message at all), 4 (two alarms
//! outvoted RDS and the canary: a failover), 5 (decided ~120 s into RDS's own failover), 6 (an
//! access-denied canary voted down; with quorum 1 a failover). Scenario 1 decides on the old code
//! too once the witness's alarm exists — what was missing there was the witness and the config.

use super::*;
use failover_adapters::fakes::FakeMetrics;

const WITNESS_ALARM: &str = "orders-primary-canary";
const PRIMARY_ALARM: &str = "orders-primary-availability";

/// Ticks every `every` seconds for `secs` seconds; the verdicts of `site`, with the clock's time.
async fn ticks(w: &World, site: &str, every: i64, secs: i64) -> Vec<(i64, Verdict)> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let start = w.clock.now();
    let mut out = vec![];
    loop {
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let at = (w.clock.now() - start).num_seconds();
        if at > secs {
            return out;
        }
        let r = handle(
            &w.deps,
            tick_event(&format!("tick-{site}-{n}"), w.clock.now()),
        )
        .await
        .unwrap();
        let v = r
            .verdicts
            .iter()
            .find(|v| v.site.as_deref() == Some(site))
            .cloned()
            .expect("a verdict for the site");
        out.push((at, v));
        w.clock.advance(every);
    }
}

fn decisions(vs: &[(i64, Verdict)]) -> Vec<i64> {
    vs.iter()
        .filter(|(_, v)| v.outcome.name() == "failover-decided")
        .map(|(t, _)| *t)
        .collect()
}

fn warnings(w: &World, site: &str) -> Vec<String> {
    w.bus
        .published
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.site == site && e.event_type == failover_policy::EventType::EvidenceWarning)
        .map(|e| e.verdict.summary.clone())
        .collect()
}

fn quorum_detail(v: &Verdict) -> String {
    v.guards
        .iter()
        .find(|g| g.guard == failover_policy::Guard::Quorum)
        .map(|g| g.detail.clone())
        .unwrap_or_default()
}

fn dark(metrics: &FakeMetrics, region: &str) {
    metrics.dead_regions.lock().unwrap().push(region.into());
}

#[tokio::test]
async fn scenario_1_the_primarys_region_goes_dark_and_one_failover_is_decided_in_time() {
    let w = world();
    handle(&w.deps, tick_event("before", w.clock.now()))
        .await
        .unwrap();
    w.clock.advance(60);
    // us-east-1 is dark for the DR side and for the witness: its CloudWatch and RDS API time
    // out, the endpoint answers nobody. The witness's 10 s alarm reaches ALARM ~40 s later.
    w.topology.kill_region("us-east-1");
    dark(&w.metrics, "us-east-1");
    w.metrics.set_lag("orders-replica-1", -1.0);
    w.metrics.set_lag("orders-replica-2", -1.0);
    w.canary.set(
        "orders",
        CanaryResult::Unreachable {
            error: "no connection within 2000 ms".into(),
        },
    );
    let mut vs = ticks(&w, "orders", 10, 30).await;
    w.metrics
        .set_alarm("us-west-2", WITNESS_ALARM, AlarmState::Alarm);
    let quorum_possible_at = vs.last().unwrap().0 + 10;
    let later = ticks(&w, "orders", 60, 15 * 60).await;
    vs.extend(later.into_iter().map(|(t, v)| (t + quorum_possible_at, v)));

    let d = decisions(&vs);
    assert_eq!(d.len(), 1, "exactly one decision in 15 minutes: {d:?}");
    let window = w.deps.cfg.site("orders").unwrap().thresholds.sustained_secs as i64;
    let after = d[0] - quorum_possible_at;
    assert!(
        after <= window + 60,
        "decided {after} s after the quorum could be met; the window is {window} s plus one 60 s evaluation"
    );
    let decided = &vs.iter().find(|(t, _)| *t == d[0]).unwrap().1;
    let q = quorum_detail(decided);
    assert!(q.starts_with("down 2, up 0, unknown 2"), "{q}");
    println!(
        "scenario 1: decided {after} s after the witness's alarm fired (window {window} s); {q}"
    );
}

#[tokio::test]
async fn scenario_2_a_partition_between_the_dr_region_and_the_primary_is_not_an_outage() {
    let w = world();
    // Only the DR side's path to the endpoint is cut: the witness still reaches the primary,
    // RDS (a regional API on the internet) says available, the primary's alarm is OK.
    w.canary.set(
        "orders",
        CanaryResult::Unreachable {
            error: "no connection within 2000 ms".into(),
        },
    );
    let vs = ticks(&w, "orders", 60, 15 * 60).await;
    assert!(decisions(&vs).is_empty(), "no failover");
    let ws = warnings(&w, "orders");
    assert_eq!(ws.len(), 1, "one message, not one per tick: {ws:?}");
    assert!(
        ws[0].contains("the DR side lost sight of the primary"),
        "{}",
        ws[0]
    );
    assert!(ws[0].contains(WITNESS_ALARM), "{}", ws[0]);

    // Worse: the DR side cannot read us-east-1's APIs either. Still one down against one up.
    dark(&w.metrics, "us-east-1");
    w.topology.kill_region("us-east-1");
    let vs = ticks(&w, "orders", 60, 15 * 60).await;
    assert!(decisions(&vs).is_empty());
    let q = quorum_detail(&vs.last().unwrap().1);
    assert!(q.starts_with("down 1, up 1, unknown 2"), "{q}");
    println!("scenario 2: {}; {q}", vs.last().unwrap().1.summary);
}

#[tokio::test]
async fn scenario_3_the_witness_region_dark_alone_is_a_warning_naming_it() {
    let w = world();
    // The witness's region is dark: it publishes nothing, its alarm (missing = missing) goes
    // INSUFFICIENT_DATA. Everything else is healthy.
    w.metrics
        .set_alarm("us-west-2", WITNESS_ALARM, AlarmState::InsufficientData);
    let vs = ticks(&w, "orders", 60, 15 * 60).await;
    assert!(decisions(&vs).is_empty(), "no failover");
    assert!(vs.iter().all(|(_, v)| v.outcome.name() == "ignore"));
    let ws = warnings(&w, "orders");
    assert_eq!(ws.len(), 1, "{ws:?}");
    assert!(
        ws[0].contains(&format!(
            "voter alarm {WITNESS_ALARM} (us-west-2) is INSUFFICIENT_DATA"
        )),
        "{}",
        ws[0]
    );
    println!("scenario 3: {}", ws[0]);
}

#[tokio::test]
async fn scenario_4_two_alarms_firing_against_rds_available_and_a_live_canary_never_fail_over() {
    let w = world();
    w.metrics
        .set_alarm("us-east-1", PRIMARY_ALARM, AlarmState::Alarm);
    w.metrics
        .set_alarm("us-west-2", WITNESS_ALARM, AlarmState::Alarm);
    let vs = ticks(&w, "orders", 60, 15 * 60).await;
    assert!(
        decisions(&vs).is_empty(),
        "a live primary is never failed over"
    );
    let last = &vs.last().unwrap().1;
    let q = quorum_detail(last);
    assert!(q.starts_with("down 2, up 2, unknown 0"), "{q}");
    println!("scenario 4: {} | {q}", last.summary);
}

/// inventory's Multi-AZ primary, failing over by itself: `rebooting`, alarm firing, canary refused.
fn multi_az_failover(w: &World) {
    w.topology.set_instance(InstanceInfo {
        multi_az: true,
        ..instance("inventory-db", "rebooting", None)
    });
    w.metrics
        .set_alarm("us-west-2", "inventory-db-availability", AlarmState::Alarm);
    w.canary.set(
        "inventory",
        CanaryResult::Unreachable {
            error: "connection refused".into(),
        },
    );
}

#[tokio::test]
async fn scenario_5_a_multi_az_failover_seen_only_as_status_is_held_then_the_normal_rules_apply() {
    let w = world();
    multi_az_failover(&w);
    let vs = ticks(&w, "inventory", 10, 150).await;
    assert!(
        decisions(&vs).is_empty(),
        "150 s of `rebooting`: RDS's own failover is not raced"
    );
    let held = &vs.last().unwrap().1;
    assert_eq!(held.outcome.name(), "watch", "{}", held.summary);
    assert!(w.bus.types().iter().all(|t| *t != "FailoverDecided"));

    let more = ticks(&w, "inventory", 10, 120).await;
    let d = decisions(&more);
    assert_eq!(d.len(), 1, "past the 180 s grace the normal rules decide");
    println!(
        "scenario 5: held for 150 s ({}); decided {} s later, at {} s of `rebooting`",
        held.summary,
        d[0],
        160 + d[0]
    );
}

#[tokio::test]
async fn scenario_6_a_canary_answered_with_1045_for_an_hour_on_quorum_1_is_one_warning() {
    let w = world();
    let mut doc: Value = serde_json::from_str(EXAMPLE).unwrap();
    doc["sites"][0]["thresholds"]["quorum"] = json!(1);
    doc["sites"][0]["thresholds"]["allow_single_vote"] = json!(true);
    let deps = Deps {
        cfg: Config::from_document(&doc.to_string()).unwrap(),
        cfg_object_version: None,
        topology: w.topology.clone(),
        metrics: w.metrics.clone(),
        ledger: w.ledger.clone(),
        bus: w.bus.clone(),
        canary: w.canary.clone(),
        clock: w.clock.clone(),
        fanout: Fanout::default(),
        fence: w.fence.clone(),
        old_primary: w.old_primary.clone(),
        rechecks: w.rechecks.clone(),
        metric_lines: w.lines.clone(),
    };
    let w = World {
        deps: Arc::new(deps),
        ..w
    };
    w.canary.set(
        "orders",
        CanaryResult::Answered {
            code: Some(1045),
            error: "ERROR 1045 (28000): Access denied for user 'failover_canary'@'10.0.0.7'".into(),
        },
    );
    let vs = ticks(&w, "orders", 60, 3600).await;
    assert!(decisions(&vs).is_empty());
    assert!(vs.iter().all(|(_, v)| v.epoch == 0), "no incident opened");
    let ws = warnings(&w, "orders");
    assert_eq!(
        ws.len(),
        1,
        "one warning in an hour, not a page per tick: {ws:?}"
    );
    assert!(ws[0].contains("the SQL canary needs fixing"), "{}", ws[0]);
    println!("scenario 6: 60 ticks, 0 decisions, 1 warning: {}", ws[0]);
}
