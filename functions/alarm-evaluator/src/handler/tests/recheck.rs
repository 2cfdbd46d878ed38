//! Issue 16, goal 1: the decision comes when the sustained window closes, through the re-check
//! the evaluator arms for that moment, not at the next scheduled tick.

use failover_policy::recheck::Arm;

use super::*;

/// The SQS event Lambda's event source mapping would deliver for `arm`.
fn sqs_event(message_id: &str, arm: &Arm) -> Value {
    json!({"Records": [{
        "messageId": message_id,
        "receiptHandle": "AQEB",
        "body": arm.body(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764583200000",
                       "SenderId": "AROA", "ApproximateFirstReceiveTimestamp": "1764583200000"},
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-west-2:123456789012:rds-failover-recheck",
        "awsRegion": "us-west-2"
    }]})
}

fn armed(w: &World) -> Vec<Arm> {
    w.rechecks.armed.lock().unwrap().clone()
}

#[tokio::test]
async fn the_failover_is_decided_by_the_recheck_armed_for_the_end_of_the_window() {
    let w = world();
    // A healthy tick records the last good lag before the outage.
    handle(&w.deps, tick_event("t0", t0())).await.unwrap();
    assert!(armed(&w).is_empty(), "nothing to re-check while healthy");
    w.lose_primary();
    w.clock.advance(30);
    let r = handle(
        &w.deps,
        alarm_event("a1", "orders-primary-availability", "ALARM", w.clock.now()),
    )
    .await
    .unwrap();
    assert_eq!(orders_verdict(&r).outcome.name(), "suspected");
    let st = w.ledger.get("orders").unwrap();
    let since = st.quorum_since.expect("quorum met");
    let window = w.deps.cfg.site("orders").unwrap().thresholds.sustained_secs as i64;
    let arms = armed(&w);
    assert_eq!(arms.len(), 1, "one re-check for orders: {arms:?}");
    let arm = arms[0].clone();
    assert_eq!(arm.site, "orders");
    assert_eq!(arm.armed.due, since + Duration::seconds(window));
    assert_eq!(st.recheck, Some(arm.armed), "recorded with the observation");

    // A tick inside the window evaluates, and arms nothing more.
    w.clock.advance(20);
    handle(&w.deps, tick_event("t1", w.clock.now()))
        .await
        .unwrap();
    assert_eq!(armed(&w).len(), 1);

    // The message becomes visible at the window's end: the decision, with no tick.
    w.clock.set(arm.armed.at);
    let r = handle(&w.deps, sqs_event("m-1", &arm)).await.unwrap();
    let v = orders_verdict(&r);
    assert_eq!(v.outcome.name(), "failover-decided", "{v:#?}");
    assert_eq!(r.emitted, vec!["FailoverDecided"]);
    assert_eq!(
        r.verdicts.len(),
        1,
        "a re-check evaluates its own site only"
    );

    // SQS delivers it again (at least once): a duplicate, nothing more.
    let r = handle(&w.deps, sqs_event("m-1", &arm)).await.unwrap();
    assert_eq!(orders_verdict(&r).outcome.name(), "ignore");
    assert_eq!(
        w.bus
            .types()
            .iter()
            .filter(|t| **t == "FailoverDecided")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_recheck_after_the_outage_cleared_decides_nothing() {
    let w = world();
    w.lose_primary();
    w.clock.advance(30);
    handle(
        &w.deps,
        alarm_event("a1", "orders-primary-availability", "ALARM", w.clock.now()),
    )
    .await
    .unwrap();
    let arm = armed(&w)[0].clone();
    // The primary came back (a blip): fresh evidence says so when the re-check arrives.
    let healthy = world();
    let w2 = World {
        ledger: w.ledger.clone(),
        ..healthy
    };
    let deps = Deps {
        cfg: w2.deps.cfg.clone(),
        cfg_object_version: None,
        topology: w2.topology.clone(),
        metrics: w2.metrics.clone(),
        ledger: w.ledger.clone(),
        bus: w2.bus.clone(),
        canary: w2.canary.clone(),
        clock: w2.clock.clone(),
        fanout: w2.deps.fanout,
        fence: w2.fence.clone(),
        old_primary: w2.old_primary.clone(),
        rechecks: w2.rechecks.clone(),
        metric_lines: w2.lines.clone(),
    };
    w2.clock.set(arm.armed.at);
    let r = handle(&deps, sqs_event("m-1", &arm)).await.unwrap();
    let v = orders_verdict(&r);
    assert_ne!(v.outcome.name(), "failover-decided", "{v:#?}");
    assert_ne!(v.outcome.name(), "ignore", "evaluated, not dropped: {v:#?}");
    assert!(
        v.guards
            .iter()
            .any(|g| g.guard == failover_policy::verdict::Guard::Quorum),
        "the quorum was judged on fresh evidence"
    );
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(
        st.quorum_since, None,
        "the window is over: the quorum is gone"
    );
    assert!(!w2.bus.types().contains(&"FailoverDecided"));
}

#[tokio::test]
async fn a_failed_send_is_logged_and_the_next_evaluation_arms_it() {
    let w = world();
    w.lose_primary();
    w.rechecks
        .faults
        .inject("SendMessage", ErrorKind::Unavailable, 1);
    w.clock.advance(30);
    let r = handle(
        &w.deps,
        alarm_event("a1", "orders-primary-availability", "ALARM", w.clock.now()),
    )
    .await
    .unwrap();
    assert_eq!(
        orders_verdict(&r).outcome.name(),
        "suspected",
        "the observation still lands"
    );
    assert_eq!(w.ledger.get("orders").unwrap().recheck, None);
    assert!(armed(&w).is_empty());
    w.clock.advance(10);
    handle(&w.deps, tick_event("t1", w.clock.now()))
        .await
        .unwrap();
    assert_eq!(armed(&w).len(), 1, "armed by the next evaluation");
}

#[tokio::test]
async fn a_recheck_for_an_unconfigured_site_or_from_another_account_touches_nothing() {
    let w = world();
    let arm = Arm {
        site: "nope".into(),
        armed: failover_policy::recheck::Armed {
            due: w.clock.now(),
            at: w.clock.now(),
        },
        delay_secs: 1,
    };
    let r = handle(&w.deps, sqs_event("m-9", &arm)).await.unwrap();
    assert_eq!(r.verdicts[0].outcome.name(), "ignore");
    let mut foreign = sqs_event(
        "m-10",
        &Arm {
            site: "orders".into(),
            ..arm
        },
    );
    foreign["Records"][0]["eventSourceARN"] =
        json!("arn:aws:sqs:us-west-2:999999999999:rds-failover-recheck");
    let r = handle(&w.deps, foreign).await.unwrap();
    assert_eq!(r.verdicts[0].outcome.name(), "ignore");
    assert!(w.ledger.get("orders").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_slow_sqs_never_holds_back_the_observation_that_opened_the_window() {
    let w = world();
    handle(&w.deps, tick_event("t0", t0())).await.unwrap();
    w.lose_primary();
    *w.rechecks.delay.lock().unwrap() = Some(std::time::Duration::from_secs(60));
    w.clock.advance(30);
    let r = handle(
        &w.deps,
        alarm_event("a1", "orders-primary-availability", "ALARM", w.clock.now()),
    )
    .await
    .expect("the evaluation is not failed by a hung SendMessage");
    assert_eq!(orders_verdict(&r).outcome.name(), "suspected");
    let st = w.ledger.get("orders").unwrap();
    assert!(st.quorum_since.is_some(), "the window's start is committed");
    assert_eq!(st.recheck, None, "nothing recorded as armed");
    assert_eq!(r.emitted, vec!["IncidentSuspected"]);
}

#[tokio::test]
async fn without_a_queue_nothing_is_armed_or_recorded() {
    let w = world();
    let deps = Deps {
        rechecks: Arc::new(failover_adapters::recheck::TickOnly),
        metric_lines: w.lines.clone(),
        cfg: w.deps.cfg.clone(),
        cfg_object_version: None,
        topology: w.topology.clone(),
        metrics: w.metrics.clone(),
        ledger: w.ledger.clone(),
        bus: w.bus.clone(),
        canary: w.canary.clone(),
        clock: w.clock.clone(),
        fanout: w.deps.fanout,
        fence: w.fence.clone(),
        old_primary: w.old_primary.clone(),
    };
    handle(&deps, tick_event("t0", t0())).await.unwrap();
    w.lose_primary();
    w.clock.advance(30);
    handle(
        &deps,
        alarm_event("a1", "orders-primary-availability", "ALARM", w.clock.now()),
    )
    .await
    .unwrap();
    let st = w.ledger.get("orders").unwrap();
    assert!(st.quorum_since.is_some());
    assert_eq!(st.recheck, None);
}
