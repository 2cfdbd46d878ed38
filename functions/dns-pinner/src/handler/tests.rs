//! Handler tests over the AWS-faithful fakes (a Route 53 whose changes stay PENDING for a number of
//! polls, a compare-and-set ledger, a bus that fails on demand). Time is tokio's paused clock, so
//! the backoff really sleeps — instantly — and the waits can be measured.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use failover_adapters::dns::FakeDns;
use failover_adapters::fakes::{FakeBus, FakeLedger};
use failover_adapters::ports::{ErrorKind, FixedClock};
use failover_adapters::switch::FakeSwitch;
use failover_policy::config::DbRef;
use failover_policy::incident::{PromotionRecord, TimelineEntry};
use failover_policy::pin::{FailoverRole, RecordQuery, RecordSet};
use failover_policy::verdict::{Guard, GuardCheck, GuardResult, Outcome, Verdict};
use failover_policy::{Config, Phase};
use serde_json::json;

use super::*;

const EXAMPLE: &str = include_str!("../../../../infra/sites.example.json");
const NEW_HOST: &str = "orders-replica-1.cabc.us-west-2.rds.amazonaws.com";
const OLD_HOST: &str = "orders-primary.cabc.us-east-1.rds.amazonaws.com";
const BILLING_NEW: &str = "billing-2.cdef.us-west-2.rds.amazonaws.com";
const BILLING_OLD: &str = "billing-1.cdef.us-west-2.rds.amazonaws.com";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
}

fn db(id: &str) -> DbRef {
    DbRef {
        id: id.into(),
        region: "us-west-2".into(),
    }
}

struct World {
    deps: Deps,
    ledger: Arc<FakeLedger>,
    bus: Arc<FakeBus>,
    dns: Arc<FakeDns>,
    /// The data-plane switch, wired to health check `hc-switch` of `dns`.
    switch: Arc<FakeSwitch>,
}

fn world() -> World {
    let ledger = Arc::new(FakeLedger::default());
    let bus = Arc::new(FakeBus::default());
    let dns = Arc::new(FakeDns::default());
    let switch = Arc::new(FakeSwitch::new(dns.clone(), "hc-switch"));
    let deps = Deps {
        cfg: Config::from_document(EXAMPLE).unwrap(),
        ledger: ledger.clone(),
        bus: bus.clone(),
        dns: dns.clone(),
        resolve: dns.clone(),
        switch: switch.clone(),
        clock: Arc::new(FixedClock::at(t0())),
        jitter: Arc::new(|| 0.5),
    };
    World {
        deps,
        ledger,
        bus,
        dns,
        switch,
    }
}

fn cname(name: &str, value: &str, ttl: i64) -> RecordSet {
    RecordSet {
        name: name.into(),
        record_type: "CNAME".into(),
        set_identifier: None,
        failover: None,
        ttl: Some(ttl),
        values: vec![value.into()],
        health_check_id: None,
        alias_target: None,
    }
}

fn failover(set: &str, role: FailoverRole, value: &str, hc: &str) -> RecordSet {
    RecordSet {
        set_identifier: Some(set.into()),
        failover: Some(role),
        health_check_id: Some(hc.into()),
        ..cname("db.billing.example.com", value, 60)
    }
}

/// The ledger as the replica-promoter leaves it: epoch `epoch` promoted, endpoint recorded.
fn promoted(site: &str, epoch: u64, candidate: &str, endpoint: &str) -> SiteState {
    let mut s = SiteState::new(site);
    s.version = 9;
    s.epoch = epoch;
    s.phase = Phase::Promoted;
    s.candidate = Some(db(candidate));
    s.last_failover_at = Some(t0());
    s.timeline = vec![
        TimelineEntry {
            phase: Phase::Suspected,
            at: t0() - chrono::Duration::seconds(400),
            note: "availability alarm".into(),
        },
        TimelineEntry {
            phase: Phase::Promoting,
            at: t0() - chrono::Duration::seconds(280),
            note: "decided".into(),
        },
        TimelineEntry {
            phase: Phase::Promoted,
            at: t0() - chrono::Duration::seconds(10),
            note: "writable".into(),
        },
    ];
    s.promotion = Some(PromotionRecord {
        epoch,
        candidate: db(candidate),
        action: "PromoteReadReplica".into(),
        requested_at: t0() - chrono::Duration::seconds(270),
        completed_at: Some(t0() - chrono::Duration::seconds(10)),
        endpoint: Some(endpoint.into()),
        writable_verified_at: Some(t0() - chrono::Duration::seconds(10)),
        resolved: None,
    });
    s
}

fn replica_promoted(site: &str, epoch: u64, candidate: &str) -> Value {
    let e = DomainEvent {
        event_type: EventType::ReplicaPromoted,
        site: site.into(),
        epoch,
        phase: Phase::Promoted,
        engine: "rds-replica".into(),
        occurred_at: t0(),
        primary: Some(DbRef {
            id: "orders-primary".into(),
            region: "us-east-1".into(),
        }),
        candidate: Some(db(candidate)),
        rpo_override: None,
        verdict: Verdict {
            site: Some(site.into()),
            outcome: Outcome::FailoverDecided {
                candidate: db(candidate),
            },
            epoch,
            phase: Phase::Promoted,
            summary: "promoted".into(),
            guards: vec![
                GuardCheck::new(Guard::Quorum, GuardResult::Pass, "2 of 3 down").numbers(2.0, 2.0),
            ],
        },
        timeline: vec![],
    };
    json!({
        "version": "0", "id": format!("ev-{site}-{epoch}"), "detail-type": "ReplicaPromoted",
        "source": "rds-failover", "account": "123456789012", "time": t0().to_rfc3339(),
        "region": "us-west-2", "resources": [], "detail": e
    })
}

fn orders_world() -> World {
    let w = world();
    w.ledger.put(promoted(
        "orders",
        3,
        "orders-replica-1",
        &format!("{NEW_HOST}:3306"),
    ));
    w.dns.put(
        "Z0ORDERSEXAMPLE",
        cname("db.orders.example.com", OLD_HOST, 300),
    );
    w
}

fn later(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

async fn orders_record(w: &World) -> RecordSet {
    w.dns
        .record_set(&RecordQuery {
            zone_id: "Z0ORDERSEXAMPLE".into(),
            name: "db.orders.example.com".into(),
            record_type: "CNAME".into(),
            set_identifier: None,
        })
        .await
        .unwrap()
        .unwrap()
}

/// The newest `DnsPinContinued` on the bus, as the template's rule delivers it to the pinner.
fn continuation(w: &World) -> Value {
    let e = w
        .bus
        .published
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e.event_type == EventType::DnsPinContinued)
        .cloned()
        .expect("a DnsPinContinued was published");
    json!({
        "version": "0", "id": format!("ev-{}-{}", e.dedupe_key(), e.occurred_at.timestamp_millis()),
        "detail-type": "DnsPinContinued", "source": "rds-failover", "account": "123456789012",
        "time": e.occurred_at.to_rfc3339(), "region": "us-west-2", "resources": [], "detail": e
    })
}

fn count(bus: &FakeBus, t: &str) -> usize {
    bus.types().iter().filter(|x| **x == t).count()
}

#[tokio::test(start_paused = true)]
async fn cname_mode_repoints_waits_for_insync_and_pins_once() {
    let w = orders_world();
    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(100),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "pinned", "{r:?}");
    assert!(r.changed);
    assert_eq!(r.polls, 2, "the fake syncs on the second GetChange");
    assert_eq!(r.emitted, vec!["DnsPinned"]);

    let rec = orders_record(&w).await;
    assert_eq!(rec.values, vec![NEW_HOST]);
    assert_eq!(rec.ttl, Some(30), "the site's low TTL");
    assert_eq!(rec.set_identifier, None);
    assert_eq!(w.dns.change_count(), 1);

    let st = w.ledger.get("orders").unwrap();
    assert_eq!((st.phase, st.epoch), (Phase::DnsPinned, 3));
    assert!(st.outbox.is_empty());
    let d = st.dns.unwrap();
    assert_eq!(d.previous_values, vec![OLD_HOST]);
    assert_eq!(d.previous_ttl, Some(300));
    assert_eq!(d.new_value, NEW_HOST);
    assert!(d.change_id.is_some() && d.insync_at.is_some());
    assert_eq!(w.bus.types(), vec!["DnsPinned"]);
    let ev = w.bus.published.lock().unwrap()[0].clone();
    assert_eq!((ev.epoch, ev.phase), (3, Phase::DnsPinned));
    assert!(
        ev.verdict.summary.contains(OLD_HOST),
        "{}",
        ev.verdict.summary
    );
    assert_eq!(
        ev.verdict.guards.len(),
        1,
        "the decision's guards travel on"
    );
}

#[tokio::test(start_paused = true)]
async fn a_change_whose_id_was_lost_is_confirmed_by_a_fresh_change_before_pinning() {
    // Found by the fault matrix: Route 53 applied our change, but its id never reached the
    // ledger (the answer timed out, or the commit of the id was throttled and the invocation
    // failed). The retry finds the record already on the target: it must not call that pinned
    // until Route 53 says INSYNC.
    let w = orders_world();
    let mut st = w.ledger.get("orders").unwrap();
    st.version += 1;
    st.dns = Some(DnsRecord {
        epoch: 3,
        zone_id: "Z0ORDERSEXAMPLE".into(),
        name: "db.orders.example.com".into(),
        record_type: "CNAME".into(),
        set_identifier: None,
        previous_values: vec![OLD_HOST.into()],
        previous_ttl: Some(300),
        new_value: NEW_HOST.into(),
        change_id: None,
        insync_at: None,
        previous_records: None,
    });
    w.ledger.put(st);
    w.dns.put(
        "Z0ORDERSEXAMPLE",
        cname("db.orders.example.com", NEW_HOST, 30),
    );
    w.dns.insync_after_polls(3);
    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(100),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "pinned", "{r:?}");
    assert_eq!(
        w.dns.change_count(),
        1,
        "one no-op UPSERT, for its change id"
    );
    assert_eq!(r.polls, 3, "waited for that change to be INSYNC");
    assert_eq!(orders_record(&w).await.values, vec![NEW_HOST]);
    let d = w.ledger.get("orders").unwrap().dns.unwrap();
    assert!(d.change_id.is_some() && d.insync_at.is_some());
    assert_eq!(d.previous_values, vec![OLD_HOST], "what to restore is kept");
}

/// Billing in failover-record mode, epoch 5 promoted to billing-2: the PRIMARY record still
/// names billing-1, the SECONDARY already names billing-2, each with its own health check.
fn billing_world() -> World {
    let w = world();
    w.ledger.put(promoted(
        "billing",
        5,
        "billing-2",
        &format!("{BILLING_NEW}:3306"),
    ));
    w.dns.put(
        "Z0BILLINGEXAMPLE",
        failover(
            "billing-primary",
            FailoverRole::Primary,
            BILLING_OLD,
            "hc-primary",
        ),
    );
    w.dns.put(
        "Z0BILLINGEXAMPLE",
        failover(
            "billing-secondary",
            FailoverRole::Secondary,
            BILLING_NEW,
            "hc-secondary",
        ),
    );
    w
}

#[tokio::test(start_paused = true)]
async fn failover_pin_rewrites_the_primary_record_keeping_its_identity() {
    let w = billing_world();
    let r = handle(
        &w.deps,
        replica_promoted("billing", 5, "billing-2"),
        later(100),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "pinned", "{r:?}");
    let records = w.dns.records("Z0BILLINGEXAMPLE");
    let primary = records
        .iter()
        .find(|r| r.set_identifier.as_deref() == Some("billing-primary"))
        .unwrap();
    assert_eq!(
        primary.values,
        vec![BILLING_NEW],
        "the old primary can never win traffic back"
    );
    assert_eq!(primary.failover, Some(FailoverRole::Primary));
    assert_eq!(primary.health_check_id.as_deref(), Some("hc-primary"));
    assert_eq!(primary.ttl, Some(30));
    let secondary = records
        .iter()
        .find(|r| r.set_identifier.as_deref() == Some("billing-secondary"))
        .unwrap();
    assert_eq!(secondary.health_check_id.as_deref(), Some("hc-secondary"));
    assert_eq!(records.len(), 2);
    let d = w.ledger.get("billing").unwrap().dns.unwrap();
    assert_eq!(d.set_identifier.as_deref(), Some("billing-primary"));
    assert_eq!(d.previous_values, vec![BILLING_OLD]);
    assert_eq!(w.bus.types(), vec!["DnsPinned"]);
}

#[tokio::test(start_paused = true)]
async fn a_redelivery_changes_nothing_and_emits_nothing() {
    let w = orders_world();
    let ev = replica_promoted("orders", 3, "orders-replica-1");
    handle(&w.deps, ev.clone(), later(100)).await.unwrap();
    let before = w.ledger.get("orders").unwrap();
    let polls_before = *w.dns.polls.lock().unwrap();
    for _ in 0..3 {
        let r = handle(&w.deps, ev.clone(), later(100)).await.unwrap();
        assert_eq!(r.outcome, "already-pinned");
        assert!(!r.changed && r.emitted.is_empty());
        assert_eq!(r.dns.unwrap().previous_values, vec![OLD_HOST]);
    }
    assert_eq!(
        w.dns.change_count(),
        1,
        "no second ChangeResourceRecordSets"
    );
    assert_eq!(*w.dns.polls.lock().unwrap(), polls_before);
    assert_eq!(count(&w.bus, "DnsPinned"), 1, "no second event");
    assert_eq!(w.ledger.get("orders").unwrap().version, before.version);
}

#[tokio::test(start_paused = true)]
async fn a_record_already_at_the_target_is_not_changed_but_still_pinned() {
    let w = world();
    w.ledger.put(promoted(
        "orders",
        3,
        "orders-replica-1",
        &format!("{NEW_HOST}:3306"),
    ));
    // Someone (or a previous run that crashed before recording anything) already repointed it.
    w.dns.put(
        "Z0ORDERSEXAMPLE",
        cname(
            "db.orders.example.com.",
            &format!("{}.", NEW_HOST.to_uppercase()),
            30,
        ),
    );
    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(100),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "pinned");
    assert!(!r.changed);
    assert_eq!((w.dns.change_count(), r.polls), (0, 0));
    assert_eq!(w.ledger.get("orders").unwrap().phase, Phase::DnsPinned);
    assert_eq!(w.bus.types(), vec!["DnsPinned"]);
}

#[tokio::test(start_paused = true)]
async fn stale_or_unpromoted_events_change_nothing_anywhere() {
    let w = orders_world();
    // The site moved on to epoch 4 (a newer incident): an epoch-3 delivery is stale.
    w.ledger.put(promoted(
        "orders",
        4,
        "orders-replica-2",
        "orders-replica-2.x:3306",
    ));
    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(100),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "ignored");
    assert!(
        r.detail.contains("epoch 3") && r.detail.contains("epoch 4"),
        "{}",
        r.detail
    );

    // Same epoch but not promoted (still promoting, or failed): ignored too.
    for phase in [Phase::Promoting, Phase::Failed, Phase::Completed] {
        let mut s = promoted("orders", 3, "orders-replica-1", "orders-replica-1.x:3306");
        s.phase = phase;
        w.ledger.put(s);
        let r = handle(
            &w.deps,
            replica_promoted("orders", 3, "orders-replica-1"),
            later(100),
        )
        .await
        .unwrap();
        assert_eq!(r.outcome, "ignored", "{phase}");
    }
    // A forged candidate for the right epoch.
    w.ledger.put(promoted(
        "orders",
        3,
        "orders-replica-1",
        "orders-replica-1.x:3306",
    ));
    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "attacker-db"),
        later(100),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "ignored");
    // An unknown site never touches AWS.
    let r = handle(&w.deps, replica_promoted("nosuch", 3, "x"), later(100))
        .await
        .unwrap();
    assert_eq!(r.outcome, "ignored");

    assert_eq!(*w.dns.reads.lock().unwrap(), 0, "no Route 53 call at all");
    assert_eq!(w.dns.change_count(), 0);
    assert_eq!(w.ledger.commit_count(), 0);
    assert!(w.bus.types().is_empty());
    assert_eq!(orders_record(&w).await.values, vec![OLD_HOST]);
}

#[tokio::test(start_paused = true)]
async fn pending_changes_are_polled_with_gaps_proportional_to_the_wait() {
    let w = orders_world();
    w.dns.insync_after_polls(6);
    let start = Instant::now();
    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(100),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "pinned");
    assert_eq!(r.polls, 6);
    // With jitter 0.5 each gap is the time waited so far / 12, at least 0.5 s (pace.rs): in the
    // first 6 s five gaps of 0.5 s — the doubling backoff waited 18.75 s for the same six polls.
    assert_eq!(start.elapsed(), Duration::from_millis(2_500));
}

#[tokio::test(start_paused = true)]
async fn never_insync_is_handed_on_and_the_continuation_waits_on_the_same_change() {
    let w = orders_world();
    w.dns.insync_after_polls(u32::MAX);
    let ev = replica_promoted("orders", 3, "orders-replica-1");
    let start = Instant::now();
    let r = handle(&w.deps, ev.clone(), later(30)).await.unwrap();
    assert!(
        start.elapsed() <= Duration::from_secs(30),
        "stays within the budget"
    );
    assert_eq!(r.outcome, "continued", "{}", r.detail);
    assert!(r.detail.contains("PENDING"), "{}", r.detail);
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::Promoted, "not pinned before INSYNC");
    let change_id = st.dns.as_ref().unwrap().change_id.clone().unwrap();
    assert_eq!(w.bus.types(), vec!["DnsPinContinued"]);

    // The continuation arrives; Route 53 has caught up meanwhile.
    w.dns.sync_all();
    let r = handle(&w.deps, continuation(&w), later(100)).await.unwrap();
    assert_eq!(r.outcome, "pinned");
    assert!(!r.changed, "the record already holds the target");
    assert_eq!(w.dns.change_count(), 1);
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(
        st.dns.as_ref().unwrap().change_id.as_deref(),
        Some(change_id.as_str())
    );
    assert_eq!(
        st.dns.unwrap().previous_values,
        vec![OLD_HOST],
        "not overwritten by the retry"
    );
    assert_eq!(w.bus.types(), vec!["DnsPinContinued", "DnsPinned"]);
}

#[tokio::test(start_paused = true)]
async fn the_previous_record_is_in_the_ledger_before_dns_is_touched() {
    let w = orders_world();
    w.dns
        .faults
        .inject("ChangeResourceRecordSets", ErrorKind::Throttled, 1000);
    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(100),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "continued");
    assert!(r.detail.contains("Throttled"), "{}", r.detail);
    let st = w.ledger.get("orders").unwrap();
    let d = st.dns.unwrap();
    assert_eq!(d.previous_values, vec![OLD_HOST]);
    assert_eq!(d.change_id, None);
    assert_eq!(
        orders_record(&w).await.values,
        vec![OLD_HOST],
        "DNS not changed yet"
    );
    assert_eq!(st.phase, Phase::Promoted);
}

#[tokio::test(start_paused = true)]
async fn unpinnable_dns_fails_the_epoch_loudly() {
    // The hosted zone does not exist: NoSuchHostedZone will not go away by retrying.
    let w = world();
    w.ledger.put(promoted(
        "orders",
        3,
        "orders-replica-1",
        &format!("{NEW_HOST}:3306"),
    ));
    let err = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(100),
    )
    .await
    .unwrap_err();
    let d = Diagnostic::from(err);
    assert_eq!(d.error_type, "Fatal.NotFound");
    assert!(
        d.error_message.contains("NoSuchHostedZone"),
        "{}",
        d.error_message
    );
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::Failed);
    assert!(st.failure.unwrap().contains("NoSuchHostedZone"));
    assert_eq!(w.bus.types(), vec!["FailoverFailed"]);

    // failover-pin mode without the PRIMARY record the config names.
    let w = world();
    w.ledger.put(promoted(
        "billing",
        5,
        "billing-2",
        &format!("{BILLING_NEW}:3306"),
    ));
    w.dns.add_zone("Z0BILLINGEXAMPLE");
    let err = handle(
        &w.deps,
        replica_promoted("billing", 5, "billing-2"),
        later(100),
    )
    .await
    .unwrap_err();
    let d = Diagnostic::from(err);
    assert_eq!(d.error_type, "Fatal.RecordNotPinnable");
    assert!(
        d.error_message.contains("billing-primary"),
        "{}",
        d.error_message
    );
    assert_eq!(w.dns.change_count(), 0);
    assert_eq!(w.bus.types(), vec!["FailoverFailed"]);
}

#[tokio::test(start_paused = true)]
async fn a_lost_publish_is_re_emitted_by_the_next_delivery_exactly_once() {
    let w = orders_world();
    w.bus.faults.inject("PutEvents", ErrorKind::Unavailable, 1);
    let ev = replica_promoted("orders", 3, "orders-replica-1");
    let err = handle(&w.deps, ev.clone(), later(100)).await.unwrap_err();
    assert_eq!(Diagnostic::from(err).error_type, "Retryable.Unavailable");
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::DnsPinned, "the pin is durable");
    assert_eq!(st.outbox.len(), 1, "and its event waits in the outbox");

    let r = handle(&w.deps, ev.clone(), later(100)).await.unwrap();
    assert_eq!(r.outcome, "already-pinned");
    assert_eq!(r.emitted, vec!["DnsPinned"]);
    assert!(w.ledger.get("orders").unwrap().outbox.is_empty());
    handle(&w.deps, ev, later(100)).await.unwrap();
    assert_eq!(count(&w.bus, "DnsPinned"), 1);
    assert_eq!(w.dns.change_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn lost_races_with_the_evaluator_are_retried_on_a_fresh_read() {
    let w = orders_world();
    // Two commits lose to a concurrent writer (the evaluator recording a tick).
    w.ledger.faults.inject("PutItem", ErrorKind::Conflict, 2);
    let r = handle(
        &w.deps,
        replica_promoted("orders", 3, "orders-replica-1"),
        later(100),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, "pinned");
    assert_eq!(w.dns.change_count(), 1);
}

#[tokio::test]
async fn malformed_input_is_bad_input_with_no_aws_call() {
    let w = orders_world();
    for bad in [
        json!([1]),
        json!({"detail-type": "ReplicaPromoted", "source": "rds-failover", "detail": {}}),
        json!({"detail-type": "ReplicaPromoted", "source": "someone-else", "detail": {}}),
    ] {
        let err = handle(&w.deps, bad.clone(), later(10)).await.unwrap_err();
        assert_eq!(Diagnostic::from(err).error_type, "BadInput", "{bad}");
    }
    assert_eq!(*w.dns.reads.lock().unwrap(), 0);
    assert_eq!(w.ledger.commit_count(), 0);
}

mod answers;
mod compare_and_set;
mod dataplane;
mod interleavings;
mod review2;
mod unpin;

// ---------------------------------------------------------------- continuing itself

/// The ledger's clock moving with tokio's paused clock, so the pin deadline (ledger time) and
/// the invocation budget (tokio time) pass together.
struct TokioClock {
    base: DateTime<Utc>,
    start: Instant,
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.base + chrono::Duration::from_std(self.start.elapsed()).unwrap()
    }
}

/// Route 53's API down (every call answers 503, as ChangeResourceRecordSets does when its
/// us-east-1 control plane is impaired) until `until`, then the fake behind it.
struct Route53Outage {
    inner: Arc<FakeDns>,
    until: Option<Instant>,
    calls: std::sync::Mutex<usize>,
}

impl Route53Outage {
    fn check(&self, op: &'static str) -> Result<(), PortError> {
        *self.calls.lock().unwrap() += 1;
        match self.until {
            Some(t) if Instant::now() >= t => Ok(()),
            _ => Err(PortError::new(
                ErrorKind::Unavailable,
                op,
                "503 Service Unavailable",
            )),
        }
    }
}

#[async_trait::async_trait]
impl Dns for Route53Outage {
    async fn record_sets(&self, q: &RecordQuery) -> Result<Vec<RecordSet>, PortError> {
        self.check("ListResourceRecordSets")?;
        self.inner.record_sets(q).await
    }
    async fn change(
        &self,
        zone_id: &str,
        changes: &[pin::RecordChange],
        comment: &str,
    ) -> Result<pin::ChangeInfo, PortError> {
        self.check("ChangeResourceRecordSets")?;
        self.inner.change(zone_id, changes, comment).await
    }
    async fn change_status(&self, change_id: &str) -> Result<pin::ChangeInfo, PortError> {
        self.check("GetChange")?;
        self.inner.change_status(change_id).await
    }
    async fn name_servers(&self, zone_id: &str) -> Result<Vec<String>, PortError> {
        self.check("GetHostedZone")?;
        self.inner.name_servers(zone_id).await
    }
    async fn health_check_status(
        &self,
        id: &str,
    ) -> Result<failover_policy::unpin::phases::CheckStatus, PortError> {
        self.check("GetHealthCheckStatus")?;
        self.inner.health_check_status(id).await
    }
}

/// The orders world with Route 53 down for `outage` (None: for good) and the ledger on tokio's
/// clock.
fn route53_down(outage: Option<Duration>) -> World {
    let mut w = orders_world();
    let start = Instant::now();
    w.deps.clock = Arc::new(TokioClock { base: t0(), start });
    w.deps.dns = Arc::new(Route53Outage {
        inner: w.dns.clone(),
        until: outage.map(|d| start + d),
        calls: std::sync::Mutex::default(),
    });
    w
}

/// Lambda's budget per invocation: the template's Timeout (120 s).
const INVOCATION: u64 = 120;

/// Delivers ReplicaPromoted, then every DnsPinContinued the pinner hands on, as the template's
/// rule routes it, until an invocation ends otherwise. Returns the invocations and the last answer.
async fn run_chain(w: &World, max: usize) -> (usize, Result<Response, PinError>) {
    let mut ev = replica_promoted("orders", 3, "orders-replica-1");
    for n in 1..=max {
        let r = handle(&w.deps, ev.clone(), later(INVOCATION)).await;
        match &r {
            Ok(resp) if resp.outcome == "continued" => ev = continuation(w),
            _ => return (n, r),
        }
    }
    panic!("still continuing after {max} invocations");
}

#[tokio::test(start_paused = true)]
async fn route53_down_for_thirty_minutes_is_outlasted_by_continuations_and_pins_when_it_answers() {
    let w = route53_down(Some(Duration::from_secs(30 * 60)));
    let start = Instant::now();

    let (invocations, r) = run_chain(&w, 200).await;

    let r = r.unwrap();
    assert_eq!(r.outcome, "pinned", "{}", r.detail);
    assert!(start.elapsed() >= Duration::from_secs(30 * 60));
    assert!(
        invocations >= 15,
        "30 min of 120 s invocations: {invocations}"
    );
    assert_eq!(
        count(&w.bus, "DnsPinContinued"),
        invocations - 1,
        "one link per invocation"
    );
    assert_eq!(count(&w.bus, "FailoverFailed"), 0);
    assert_eq!(
        w.dns.change_count(),
        1,
        "one change, once Route 53 answered"
    );
    assert_eq!(orders_record(&w).await.values, vec![NEW_HOST]);
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::DnsPinned);
    // People were paged at 5 and 15 minutes, each once, with how long and why.
    let delayed: Vec<DomainEvent> = w
        .bus
        .published
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.event_type == EventType::DnsPinDelayed)
        .cloned()
        .collect();
    assert_eq!(delayed.len(), 2, "{:?}", w.bus.types());
    assert!(
        delayed[0].verdict.summary.contains("delayed past 5m 00s"),
        "{}",
        delayed[0].verdict.summary
    );
    assert!(
        delayed[1].verdict.summary.contains("delayed past 15m 00s"),
        "{}",
        delayed[1].verdict.summary
    );
    assert!(
        delayed[1].verdict.summary.contains("503"),
        "{}",
        delayed[1].verdict.summary
    );
    let keys: std::collections::BTreeSet<String> = delayed
        .iter()
        .map(|e| failover_policy::notice::NoticeKey::of(e).sort_key())
        .collect();
    assert_eq!(keys.len(), 2, "each escalation pages on its own");
}

#[tokio::test(start_paused = true)]
async fn past_the_pin_deadline_the_epoch_fails_with_the_exact_next_step() {
    let w = route53_down(None);
    let start = Instant::now();

    let (_, r) = run_chain(&w, 200).await;

    let err = r.unwrap_err();
    assert_eq!(Diagnostic::from(err).error_type, "Fatal.PinDeadline");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(3600) && waited < Duration::from_secs(3600 + 2 * INVOCATION),
        "the default pin_deadline_secs, not Lambda's two retries: {waited:?}"
    );
    let st = w.ledger.get("orders").unwrap();
    assert_eq!(st.phase, Phase::Failed);
    assert_eq!(
        orders_record(&w).await.values,
        vec![OLD_HOST],
        "DNS untouched"
    );
    let [failed] = &w
        .bus
        .published
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.event_type == EventType::FailoverFailed)
        .cloned()
        .collect::<Vec<_>>()[..]
    else {
        panic!("one FailoverFailed: {:?}", w.bus.types())
    };
    let s = &failed.verdict.summary;
    assert!(
        s.contains(&format!(
            "UPSERT db.orders.example.com CNAME {NEW_HOST} TTL 30 in hosted zone Z0ORDERSEXAMPLE"
        )),
        "{s}"
    );
    assert!(s.contains("pin_deadline_secs"), "{s}");
    assert_eq!(count(&w.bus, "DnsPinDelayed"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_continuation_or_a_late_replica_promoted_starts_no_second_chain() {
    let w = route53_down(Some(Duration::from_secs(10 * 60)));
    let first = replica_promoted("orders", 3, "orders-replica-1");
    let r = handle(&w.deps, first.clone(), later(INVOCATION))
        .await
        .unwrap();
    assert_eq!(r.outcome, "continued");
    let link = continuation(&w);
    let r = handle(&w.deps, link.clone(), later(INVOCATION))
        .await
        .unwrap();
    assert_eq!(r.outcome, "continued");
    let published = w.bus.types().len();

    // EventBridge delivers the older link again, and the ReplicaPromoted that started it.
    for again in [link, first] {
        let r = handle(&w.deps, again, later(INVOCATION)).await.unwrap();
        assert_eq!(r.outcome, "ignored", "{}", r.detail);
        assert!(
            r.detail.contains("carried by its continuation"),
            "{}",
            r.detail
        );
    }
    assert_eq!(w.bus.types().len(), published, "no second chain");

    // The newest link carries on and pins.
    let mut ev = continuation(&w);
    loop {
        let r = handle(&w.deps, ev, later(INVOCATION)).await.unwrap();
        if r.outcome != "continued" {
            assert_eq!(r.outcome, "pinned");
            break;
        }
        ev = continuation(&w);
    }
    assert_eq!(w.dns.change_count(), 1);
}
