//! The tick's own metrics: one EMF line per configured site, then one heartbeat, written through
//! the `MetricLines` port (stdout on Lambda) as bare JSON objects.

use super::*;

fn lines_of(w: &World) -> Vec<Value> {
    w.lines
        .take()
        .iter()
        .map(|l| {
            assert!(!l.contains('\n'), "one log event per line: {l}");
            serde_json::from_str(l).expect("each line is one JSON object")
        })
        .collect()
}

fn site_line<'a>(lines: &'a [Value], site: &str) -> &'a Value {
    let found: Vec<&Value> = lines.iter().filter(|l| l["Site"] == site).collect();
    assert_eq!(found.len(), 1, "exactly one line for {site}: {lines:?}");
    found[0]
}

#[tokio::test(start_paused = true)]
async fn a_tick_writes_one_metric_line_per_site_and_a_heartbeat() {
    let w = world();
    handle(&w.deps, tick_event("t1", t0())).await.unwrap();
    let lines = lines_of(&w);
    assert_eq!(lines.len(), w.deps.cfg.sites.len() + 1, "{lines:?}");
    for site in &w.deps.cfg.sites {
        let l = site_line(&lines, &site.id);
        assert_eq!(l["_aws"]["Timestamp"], json!(t0().timestamp_millis()));
        assert_eq!(
            l["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "rds-failover"
        );
        assert_eq!(l["Evaluated"], json!(1.0), "{}", site.id);
        // No fake here waits: on the paused clock the decision took no time at all.
        assert_eq!(l["DecisionLatency"], json!(0.0), "{l}");
    }
    // orders, healthy: every voter up, replica lags 1 s and 3 s against an RPO of 30 s.
    let orders = site_line(&lines, "orders");
    assert_eq!(
        (&orders["VotesDown"], &orders["VotesUnknown"]),
        (&json!(0.0), &json!(0.0)),
        "{orders}"
    );
    assert!(orders["VotesUp"].as_f64().unwrap() >= 2.0, "{orders}");
    assert_eq!(orders["WorstCandidateLagSeconds"], json!(3.0));
    assert_eq!(orders["LagToRpo"], json!(0.1));
    assert_eq!(orders["CandidatesWithoutLag"], json!(0.0));
    assert_eq!(
        (&orders["PhaseCode"], &orders["Phase"]),
        (&json!(0.0), &json!("idle"))
    );
    assert_eq!(
        (
            &orders["Protected"],
            &orders["FenceState"],
            &orders["PhaseOverdue"]
        ),
        (&json!(1.0), &json!(0.0), &json!(0.0))
    );
    let beat = lines.last().unwrap();
    assert_eq!(
        beat["Heartbeat"],
        json!(1.0),
        "the heartbeat comes last: {beat}"
    );
    assert_eq!(
        beat["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([[]])
    );
    assert_eq!(
        (&beat["Sites"], &beat["SitesFailed"]),
        (&json!(4), &json!(0.0))
    );

    // The primary's region goes dark: the next tick's line shows the down votes, the lag that
    // can no longer be read, and the phase the evaluation moved the site to.
    w.lose_primary();
    w.clock.advance(60);
    let r = handle(&w.deps, tick_event("t2", t0() + Duration::seconds(60)))
        .await
        .unwrap();
    let lines = lines_of(&w);
    let orders = site_line(&lines, "orders");
    let phase = orders_verdict(&r).phase;
    assert_ne!(phase, Phase::Idle);
    assert_eq!(orders["Phase"], json!(phase.as_str()));
    assert_eq!(
        orders["PhaseCode"],
        json!(f64::from(failover_policy::selfwatch::phase_code(phase)))
    );
    assert!(orders["VotesDown"].as_f64().unwrap() >= 2.0, "{orders}");
    assert_eq!(orders["CandidatesWithoutLag"], json!(2.0));
    assert!(
        orders.get("WorstCandidateLagSeconds").is_none(),
        "no reading is not a lag of 0: {orders}"
    );
}

#[tokio::test(start_paused = true)]
async fn decision_latency_is_the_time_the_sites_reads_took_on_the_clock() {
    // us-east-1's API answers only after 3 s (a timeout, as the SDK's): orders and payments, whose
    // primaries are there, are decided on unknown evidence 3 s into the tick; billing and
    // inventory (us-west-2) at once.
    let w = world();
    let wait = std::time::Duration::from_secs(3);
    w.topology.blackhole_region("us-east-1", Some(wait));
    let _ = handle(&w.deps, tick_event("t1", t0())).await;
    let lines = lines_of(&w);
    let ms = |site| site_line(&lines, site)["DecisionLatency"].as_f64().unwrap();
    let budget = w.deps.fanout.site_budget.as_secs_f64() * 1000.0;
    for site in ["orders", "payments"] {
        assert!(
            ms(site) >= 3000.0 && ms(site) <= budget,
            "{site}: {} ms",
            ms(site)
        );
    }
    for site in ["billing", "inventory"] {
        assert!(ms(site) < 3000.0, "{site}: {} ms", ms(site));
    }
}

#[tokio::test]
async fn sites_that_fail_are_written_as_not_evaluated_and_the_heartbeat_does_not_beat() {
    let w = world();
    w.ledger
        .faults
        .inject("GetItem", ErrorKind::Unavailable, 100);
    assert!(handle(&w.deps, tick_event("t1", t0())).await.is_err());
    let lines = lines_of(&w);
    assert_eq!(lines.len(), 5, "{lines:?}");
    for site in ["orders", "billing", "payments", "inventory"] {
        let l = site_line(&lines, site);
        assert_eq!(l["Evaluated"], json!(0.0));
        assert!(
            l.get("PhaseCode").is_none() && l.get("VotesDown").is_none(),
            "{l}"
        );
    }
    assert_eq!(lines[4]["SitesFailed"], json!(4.0));
    assert!(
        lines[4].get("Heartbeat").is_none(),
        "a tick that evaluated no site is not a beat: {}",
        lines[4]
    );
}

#[tokio::test]
async fn only_the_scheduled_tick_writes_metric_lines() {
    let w = world();
    w.lose_primary();
    handle(
        &w.deps,
        alarm_event("a1", "orders-primary-availability", "ALARM", t0()),
    )
    .await
    .unwrap();
    assert!(w.lines.lines().is_empty(), "{:?}", w.lines.lines());
}
