//! Issue 16: the tick evaluates its sites concurrently, each within its own budget; one site's
//! failure or slowness is that site's verdict and error, never another site's. The blackholed
//! region runs on tokio's paused clock (time advances only when every task waits), so "within
//! its budget" is read off the virtual clock, deterministically.

use super::*;
use failover_adapters::aws::OPERATION_TIMEOUT;

/// The example with its sites in reverse order: `orders` (the site that fails over) is evaluated
/// last, after the sites whose failures must not stop it.
fn orders_last(w: World) -> World {
    let mut cfg = Config::from_document(EXAMPLE).unwrap();
    cfg.sites.reverse();
    assert_eq!(cfg.sites.last().map(|s| s.id.as_str()), Some("orders"));
    w.with_config(cfg)
}

/// Ticks a minute apart through `orders`' sustained window (120 s); returns the decisive tick's result.
async fn tick_through_the_window(w: &World) -> Result<Response, EvaluatorError> {
    let _ = handle(&w.deps, tick_event("t0", t0())).await;
    w.lose_primary();
    let mut last = None;
    for (i, s) in [0, 60, 120].iter().enumerate() {
        w.clock.set(t0() + Duration::seconds(*s));
        last = Some(handle(&w.deps, tick_event(&format!("t{}", i + 1), w.clock.now())).await);
    }
    last.expect("three ticks")
}

#[tokio::test]
async fn one_sites_unreadable_record_does_not_stop_a_later_sites_failover() {
    let w = orders_last(world());
    w.ledger
        .failing_sites
        .lock()
        .unwrap()
        .insert("inventory".into(), ErrorKind::AccessDenied);

    let err = tick_through_the_window(&w).await.unwrap_err();

    // The failure is inventory's, and says so...
    let d = Diagnostic::from(err);
    assert_eq!(d.error_type, "Fatal.AccessDenied");
    assert!(
        d.error_message.contains("site inventory"),
        "{}",
        d.error_message
    );
    // ...and orders, evaluated after it, was still decided on the same tick.
    let st = w.ledger.get("orders").unwrap();
    assert_eq!((st.phase, st.epoch), (Phase::Promoting, 1));
    assert!(
        w.bus.types().contains(&"FailoverDecided"),
        "{:?}",
        w.bus.types()
    );
}

/// Goal 3 of the RTO issue: one site's failure is that site's verdict — a panic too (the sites
/// share one task: unguarded, it unwound through every other site's evaluation).
#[tokio::test]
async fn one_sites_panic_is_that_sites_failure_and_a_later_sites_failover_is_still_decided() {
    let w = orders_last(world());
    w.ledger
        .panicking_sites
        .lock()
        .unwrap()
        .insert("inventory".into());

    let err = tick_through_the_window(&w).await.unwrap_err();

    let d = Diagnostic::from(err);
    assert_eq!(d.error_type, "Fatal.Panic");
    assert!(
        d.error_message
            .contains("site inventory: evaluation panicked"),
        "{}",
        d.error_message
    );
    let st = w.ledger.get("orders").unwrap();
    assert_eq!((st.phase, st.epoch), (Phase::Promoting, 1));
    assert!(
        w.bus.types().contains(&"FailoverDecided"),
        "{:?}",
        w.bus.types()
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_region_times_its_sites_out_within_budget_while_the_others_are_evaluated() {
    let w = world();
    // billing (us-west-2, quorum 1) has its one alarm firing: this tick must suspect it.
    w.metrics.set_alarm(
        "us-west-2",
        "billing-writer-availability",
        AlarmState::Alarm,
    );
    // us-east-1's RDS API never answers (no client timeout bounds the call): orders and payments
    // (primaries there) cannot be evaluated at all.
    w.topology.blackhole_region("us-east-1", None);
    let budget = w.deps.fanout.site_budget;

    let started = tokio::time::Instant::now();
    let err = handle(&w.deps, tick_event("t0", t0())).await.unwrap_err();
    let took = started.elapsed();

    match &err {
        EvaluatorError::Sites { failed, total } => {
            assert_eq!(*total, 4);
            let sites: Vec<String> = failed.iter().map(|e| e.to_string()).collect();
            assert_eq!(failed.len(), 2, "{sites:?}");
            assert!(
                sites[0].starts_with("site orders: not evaluated within"),
                "{sites:?}"
            );
            assert!(
                sites[1].starts_with("site payments: not evaluated within"),
                "{sites:?}"
            );
        }
        other => panic!("expected the two us-east-1 sites' timeouts, got {other}"),
    }
    assert_eq!(Diagnostic::from(err).error_type, "Retryable.Timeout");
    // Both hung sites ran side by side: the tick took one budget, not one per hung site.
    assert!(took >= budget && took < budget * 2, "{took:?}");
    // billing was evaluated on the same tick: its record says so.
    assert_eq!(
        w.ledger.get("billing").map(|s| s.phase),
        Some(Phase::Suspected)
    );
}

#[tokio::test(start_paused = true)]
async fn a_dark_primary_region_is_decided_on_unknown_evidence_inside_the_budget() {
    // As the SDK answers a blackholed region: every read there times out after the operation
    // timeout. The site's budget outlasts that, so the outage is decided, not timed out.
    let w = orders_last(world());
    w.topology
        .blackhole_region("us-east-1", Some(OPERATION_TIMEOUT));
    w.metrics
        .dead_regions
        .lock()
        .unwrap()
        .push("us-east-1".into());

    let r = tick_through_the_window(&w).await.unwrap();

    assert_eq!(
        orders_verdict(&r).outcome.name(),
        "failover-decided",
        "{:#?}",
        orders_verdict(&r)
    );
    assert!(w.deps.fanout.site_budget > OPERATION_TIMEOUT);
}
