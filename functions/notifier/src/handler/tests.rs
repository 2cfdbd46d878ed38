//! Handler tests over the fakes: an SNS topic that records and fails on demand, and a claim log with
//! DynamoDB's conditional-write semantics (lease included), and a ledger holding each site's
//! record the events are checked against.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use failover_adapters::fakes::FakeLedger;
use failover_adapters::notify::{FakeNotificationLog, FakeNotifications};
use failover_adapters::ports::{ErrorKind, FixedClock};
use failover_policy::config::DbRef;
use failover_policy::incident::TimelineEntry;
use failover_policy::notice::{AttributeValue, NoticeKey};
use failover_policy::verdict::{Guard, GuardCheck, GuardResult, Outcome, Verdict};
use failover_policy::{DomainEvent, EventType, Phase, SiteState};
use serde_json::json;

use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
}

struct World {
    deps: Arc<Deps>,
    ledger: Arc<FakeLedger>,
    log: Arc<FakeNotificationLog>,
    sns: Arc<FakeNotifications>,
    clock: Arc<FixedClock>,
}

/// A site record that went through `epochs` incidents, the last one now in `phase` (every phase
/// on the way entered by `transition`, as the functions do).
fn record(site: &str, epochs: u64, phase: Phase) -> SiteState {
    use Phase::*;
    let mut s = SiteState::new(site);
    for epoch in 1..=epochs {
        s.open_incident(t0(), "alarm").unwrap();
        let path: &[Phase] = if epoch < epochs {
            &[Promoting, Promoted, DnsPinned, Completed]
        } else {
            match phase {
                Suspected => &[],
                Promoting => &[Promoting],
                Promoted => &[Promoting, Promoted],
                DnsPinned => &[Promoting, Promoted, DnsPinned],
                Completed => &[Promoting, Promoted, DnsPinned, Completed],
                Failed => &[Promoting, Failed],
                p => panic!("no path to {p} in this helper"),
            }
        };
        for p in path {
            s.transition(epoch, *p, t0(), "step").unwrap();
        }
    }
    s.version = epochs * 4 + 1;
    s
}

fn world() -> World {
    let ledger = Arc::new(FakeLedger::default());
    // The sites the tests page for, with incidents up to epoch 20 behind them.
    for site in ["orders", "billing"] {
        ledger.put(record(site, 20, Phase::Completed));
    }
    let log = Arc::new(FakeNotificationLog::default());
    let sns = Arc::new(FakeNotifications::default());
    let clock = Arc::new(FixedClock::at(t0()));
    let n = Arc::new(AtomicU64::new(0));
    let deps = Arc::new(Deps {
        ledger: ledger.clone(),
        log: log.clone(),
        channel: sns.clone(),
        clock: clock.clone(),
        token: Arc::new(move || format!("token-{}", n.fetch_add(1, Ordering::SeqCst))),
    });
    World {
        deps,
        ledger,
        log,
        sns,
        clock,
    }
}

fn db(id: &str, region: &str) -> DbRef {
    DbRef {
        id: id.into(),
        region: region.into(),
    }
}

fn domain_event(t: EventType, site: &str, epoch: u64, phase: Phase) -> DomainEvent {
    DomainEvent {
        event_type: t,
        site: site.into(),
        epoch,
        phase,
        engine: "rds-replica".into(),
        occurred_at: t0(),
        primary: Some(db("orders-primary", "us-east-1")),
        candidate: Some(db("orders-replica-1", "us-west-2")),
        rpo_override: None,
        verdict: Verdict {
            site: Some(site.into()),
            outcome: Outcome::FailoverDecided {
                candidate: db("orders-replica-1", "us-west-2"),
            },
            epoch,
            phase,
            summary: "orders-primary down: 3 of 3 sources for 120 s".into(),
            guards: vec![
                GuardCheck::new(Guard::Quorum, GuardResult::Pass, "3 of 3 sources say down")
                    .numbers(3.0, 2.0),
                GuardCheck::new(Guard::Rpo, GuardResult::Pass, "last good lag 1 s")
                    .numbers(1.0, 30.0),
            ],
        },
        timeline: vec![
            TimelineEntry {
                phase: Phase::Suspected,
                at: t0() - chrono::Duration::seconds(300),
                note: "availability alarm".into(),
            },
            TimelineEntry {
                phase: Phase::Promoting,
                at: t0() - chrono::Duration::seconds(180),
                note: "decided".into(),
            },
        ],
    }
}

fn delivery(e: &DomainEvent) -> Value {
    json!({
        "version": "0", "id": "ev-1", "detail-type": e.event_type.detail_type(),
        "source": "rds-failover", "account": "123456789012", "time": t0().to_rfc3339(),
        "region": "us-west-2", "resources": [], "detail": e
    })
}

fn decided(epoch: u64) -> Value {
    delivery(&domain_event(
        EventType::FailoverDecided,
        "orders",
        epoch,
        Phase::Promoting,
    ))
}

#[tokio::test]
async fn one_message_per_site_epoch_and_event_type() {
    let w = world();
    let outcomes: Vec<&str> = {
        let mut v = vec![];
        for _ in 0..3 {
            v.push(handle(&w.deps, decided(3)).await.unwrap().outcome);
        }
        v
    };
    assert_eq!(outcomes, vec!["sent", "duplicate", "duplicate"]);
    assert_eq!(w.sns.count(), 1, "re-deliveries do not page twice");

    // A new epoch, another event type, another site: each is a new fact.
    handle(&w.deps, decided(4)).await.unwrap();
    handle(
        &w.deps,
        delivery(&domain_event(
            EventType::ReplicaPromoted,
            "orders",
            3,
            Phase::Promoted,
        )),
    )
    .await
    .unwrap();
    handle(
        &w.deps,
        delivery(&domain_event(
            EventType::FailoverDecided,
            "billing",
            3,
            Phase::Promoting,
        )),
    )
    .await
    .unwrap();
    assert_eq!(w.sns.count(), 4);
    let key = NoticeKey {
        site: "orders".into(),
        epoch: 3,
        detail_type: "FailoverDecided".into(),
        discriminator: None,
    };
    let claim = w.log.get(&key).unwrap();
    assert_eq!(claim.status, "sent");
    assert_eq!(claim.message_id.as_deref(), Some("msg-1"));
}

#[tokio::test]
async fn concurrent_deliveries_page_once() {
    let w = world();
    let mut tasks = vec![];
    for _ in 0..16 {
        let deps = w.deps.clone();
        tasks.push(tokio::spawn(async move { handle(&deps, decided(7)).await }));
    }
    let mut sent = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) if r.outcome == "sent" => sent += 1,
            Ok(r) => assert_eq!(r.outcome, "duplicate"),
            Err(e) => assert_eq!(Diagnostic::from(e).error_type, "Retryable.InFlight"),
        }
    }
    assert_eq!(sent, 1);
    assert_eq!(w.sns.count(), 1);
}

#[tokio::test]
async fn a_failed_publish_releases_the_claim_so_the_retry_pages() {
    let w = world();
    w.sns.faults.inject("Publish", ErrorKind::Throttled, 1);
    let err = handle(&w.deps, decided(3)).await.unwrap_err();
    assert_eq!(Diagnostic::from(err).error_type, "Retryable.Throttled");
    assert_eq!(w.sns.count(), 0);
    let key = NoticeKey {
        site: "orders".into(),
        epoch: 3,
        detail_type: "FailoverDecided".into(),
        discriminator: None,
    };
    assert_eq!(w.log.get(&key), None, "claim released");
    // EventBridge's retry, immediately: no lease to wait out.
    let r = handle(&w.deps, decided(3)).await.unwrap();
    assert_eq!(r.outcome, "sent");
    assert_eq!(w.sns.count(), 1);

    // A topic that does not exist is not retryable, and leaves no claim behind either.
    w.sns.faults.inject("Publish", ErrorKind::NotFound, 1);
    let err = handle(&w.deps, decided(9)).await.unwrap_err();
    assert_eq!(Diagnostic::from(err).error_type, "Fatal.NotFound");
    assert_eq!(w.log.get(&NoticeKey { epoch: 9, ..key }), None);
}

#[tokio::test]
async fn a_crash_after_claiming_does_not_swallow_the_page() {
    let w = world();
    let e = domain_event(EventType::FailoverFailed, "orders", 3, Phase::Failed);
    // An invocation claimed the key and died before publishing.
    let key = NoticeKey::of(&e);
    let g = w
        .log
        .claim(&key, "dead-invocation", t0(), CLAIM_LEASE)
        .await
        .unwrap();
    assert_eq!(g, Claim::Granted);
    // A delivery within the lease cannot tell a crash from a slow publisher: it backs off.
    w.clock.advance(20);
    let err = handle(&w.deps, delivery(&e)).await.unwrap_err();
    assert_eq!(Diagnostic::from(err).error_type, "Retryable.InFlight");
    assert_eq!(w.sns.count(), 0);
    // Lambda's retry a minute later takes the abandoned claim over and pages.
    w.clock.advance(40);
    let r = handle(&w.deps, delivery(&e)).await.unwrap();
    assert_eq!(r.outcome, "sent");
    assert_eq!(w.sns.count(), 1);
    assert!(w.sns.subjects()[0].contains("FAILOVER FAILED"));
}

#[tokio::test]
async fn a_failed_sent_mark_does_not_fail_a_page_that_went_out() {
    let w = world();
    w.log.faults.inject("UpdateItem", ErrorKind::Unavailable, 1);
    let r = handle(&w.deps, decided(3)).await.unwrap();
    assert_eq!(r.outcome, "sent");
    assert_eq!(w.sns.count(), 1);
}

#[tokio::test]
async fn the_message_fits_sns_and_carries_filterable_attributes() {
    let w = world();
    let long_site = "orders-".repeat(40);
    w.ledger.put(record(&long_site, 12, Phase::DnsPinned));
    let e = domain_event(EventType::DnsPinned, &long_site, 12, Phase::DnsPinned);
    let r = handle(&w.deps, delivery(&e)).await.unwrap();
    assert!(r.subject.len() <= 100, "{} chars", r.subject.len());
    let n = w.sns.published.lock().unwrap()[0].clone();
    assert!(n.subject.len() <= 100 && n.subject.is_ascii() && !n.subject.contains('\n'));
    assert!(n.subject.contains("DNS pinned"), "{}", n.subject);
    let attr = |k: &str| {
        n.attributes
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        attr("site"),
        Some(AttributeValue::String(long_site.clone()))
    );
    assert_eq!(
        attr("phase"),
        Some(AttributeValue::String("dns-pinned".into()))
    );
    assert_eq!(
        attr("severity"),
        Some(AttributeValue::String("warning".into()))
    );
    assert_eq!(attr("epoch"), Some(AttributeValue::Number("12".into())));
    for needle in [
        "quorum: 3 of 3 sources say down (observed 3, limit 2)",
        "TIMELINE",
        "+2m 00s",
        "NEXT STEP",
        "Failback is manual — see docs/runbook.md",
    ] {
        assert!(n.body.contains(needle), "missing `{needle}`:\n{}", n.body);
    }
}

#[tokio::test]
async fn malformed_or_foreign_input_is_bad_input_and_claims_nothing() {
    let w = world();
    let mut forged = decided(3);
    forged["source"] = json!("aws.cloudwatch");
    for bad in [json!({}), json!("x"), forged] {
        let err = handle(&w.deps, bad).await.unwrap_err();
        assert_eq!(Diagnostic::from(err).error_type, "BadInput");
    }
    assert!(w.log.items.lock().unwrap().is_empty());
    assert_eq!(w.sns.count(), 0);
}

#[tokio::test]
async fn ledger_failures_map_to_retryable_or_fatal_without_publishing() {
    let w = world();
    w.log.faults.inject("PutItem", ErrorKind::Throttled, 1);
    let e = handle(&w.deps, decided(3)).await.unwrap_err();
    assert_eq!(Diagnostic::from(e).error_type, "Retryable.Throttled");
    w.log.faults.inject("PutItem", ErrorKind::AccessDenied, 1);
    let e = handle(&w.deps, decided(3)).await.unwrap_err();
    assert_eq!(Diagnostic::from(e).error_type, "Fatal.AccessDenied");
    assert_eq!(w.sns.count(), 0);
}

#[tokio::test]
async fn a_well_formed_event_the_ledger_never_recorded_pages_no_one_and_claims_no_key() {
    let w = world();
    // Site `payments` is in epoch 3, DNS pinned.
    w.ledger.put(record("payments", 3, Phase::DnsPinned));
    let pinned = |epoch, phase| {
        delivery(&domain_event(
            EventType::DnsPinned,
            "payments",
            epoch,
            phase,
        ))
    };
    let forged = [
        (
            pinned(4, Phase::DnsPinned),
            "epoch 4 is past the ledger's epoch 3",
        ),
        (
            pinned(3, Phase::Completed),
            "phase completed is not one the incident entered",
        ),
        (
            delivery(&domain_event(
                EventType::DnsPinned,
                "ghost",
                1,
                Phase::DnsPinned,
            )),
            "no record of site ghost",
        ),
    ];
    for (event, why) in forged {
        let r = handle(&w.deps, event).await.unwrap();
        assert_eq!(r.outcome, "ignored");
        let reason = r.reason.unwrap();
        assert!(reason.contains(why), "{reason}");
    }
    assert!(
        w.log.items.lock().unwrap().is_empty(),
        "no dedupe key claimed"
    );
    assert_eq!(w.sns.count(), 0);
    // The real event for the same key still pages: the forgery used nothing up.
    let r = handle(&w.deps, pinned(3, Phase::DnsPinned)).await.unwrap();
    assert_eq!(r.outcome, "sent");
    assert_eq!(r.reason, None);
    assert_eq!(w.sns.count(), 1);
    // So do earlier phases of the current incident and a late retry of an earlier epoch's page.
    let decided = domain_event(EventType::FailoverDecided, "payments", 3, Phase::Promoting);
    let done = domain_event(
        EventType::FailoverCompleted,
        "payments",
        2,
        Phase::Completed,
    );
    for e in [decided, done] {
        assert_eq!(handle(&w.deps, delivery(&e)).await.unwrap().outcome, "sent");
    }
    assert_eq!(w.sns.count(), 3);
}

#[tokio::test]
async fn an_unreadable_ledger_is_retried_and_claims_nothing() {
    let w = world();
    w.ledger.faults.inject("GetItem", ErrorKind::Throttled, 1);
    let e = handle(&w.deps, decided(3)).await.unwrap_err();
    assert_eq!(Diagnostic::from(e).error_type, "Retryable.Throttled");
    assert!(w.log.items.lock().unwrap().is_empty());
    assert_eq!(w.sns.count(), 0);
    // The retry reads the record and pages.
    assert_eq!(handle(&w.deps, decided(3)).await.unwrap().outcome, "sent");
}
