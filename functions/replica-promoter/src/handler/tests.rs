//! Handler tests over the AWS-faithful fakes: what is read, written, sent to RDS and emitted, in
//! which order, for every engine kind and under stale, duplicate, continued, refused and failing
//! deliveries. Time is virtual: the pacer's sleeps advance both the Lambda budget and the ledger
//! clock, and the fake topology moves one step per describe, like RDS moves over minutes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeZone, Utc};
use failover_adapters::control::{FakeControl, FakeWritability};
use failover_adapters::fakes::*;
use failover_adapters::mysql::Writability;
use failover_adapters::ports::{
    ClusterInfo, ClusterMember, FixedClock, GlobalClusterInfo, GlobalMember, InstanceInfo,
};
use failover_policy::evidence::{CanaryResult, LagSample};
use failover_policy::incident::{Decision, DecisionTrigger, RpoOverride, TimelineEntry};
use failover_policy::verdict::Outcome;
use failover_policy::{Config, Phase};
use lambda_runtime::Context;
use serde_json::{json, Value};

use super::*;

const EXAMPLE: &str = include_str!("../../../../infra/sites.example.json");
const ACCOUNT: &str = "123456789012";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
}

/// Real-time budget and waits, simulated: each sleep moves the Lambda clock and the ledger clock.
struct FakePacer {
    now: Mutex<SystemTime>,
    clock: Arc<FixedClock>,
    sleeps: Mutex<Vec<Duration>>,
}

#[async_trait]
impl Pacer for FakePacer {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap()
    }
    async fn sleep(&self, d: Duration) {
        *self.now.lock().unwrap() += d;
        self.clock
            .set(self.clock.now() + chrono::Duration::from_std(d).unwrap());
        self.sleeps.lock().unwrap().push(d);
    }
    fn jitter(&self) -> f64 {
        0.5
    }
}

/// A control that notes, at each mutation, whether the ledger already recorded the request.
struct RecordingControl {
    inner: FakeControl,
    ledger: Arc<FakeLedger>,
    recorded_before: Mutex<Vec<bool>>,
}

impl RecordingControl {
    fn note(&self, site: &str) {
        let recorded = self
            .ledger
            .get(site)
            .and_then(|s| s.promotion)
            .is_some_and(|p| p.completed_at.is_none());
        self.recorded_before.lock().unwrap().push(recorded);
    }
}

#[async_trait]
impl DatabaseControl for RecordingControl {
    async fn promote_read_replica(&self, i: &DbRef) -> Result<MutationAck, PortError> {
        self.note("orders");
        self.inner.promote_read_replica(i).await
    }
    async fn failover_db_cluster(
        &self,
        c: &str,
        r: &str,
        t: &str,
    ) -> Result<MutationAck, PortError> {
        self.note("billing");
        self.inner.failover_db_cluster(c, r, t).await
    }
    async fn switchover_global_cluster(
        &self,
        g: &str,
        r: &str,
        t: &str,
    ) -> Result<MutationAck, PortError> {
        self.note("payments");
        self.inner.switchover_global_cluster(g, r, t).await
    }
    async fn failover_global_cluster(
        &self,
        g: &str,
        r: &str,
        t: &str,
        a: bool,
    ) -> Result<MutationAck, PortError> {
        self.note("payments");
        self.inner.failover_global_cluster(g, r, t, a).await
    }
    async fn reboot_with_failover(&self, i: &DbRef) -> Result<MutationAck, PortError> {
        self.note("inventory");
        self.inner.reboot_with_failover(i).await
    }
}

struct World {
    deps: Deps,
    topology: Arc<FakeTopology>,
    metrics: Arc<FakeMetrics>,
    control: Arc<RecordingControl>,
    writability: Arc<FakeWritability>,
    canary: Arc<FakeCanary>,
    ledger: Arc<FakeLedger>,
    bus: Arc<FakeBus>,
    clock: Arc<FixedClock>,
    pacer: Arc<FakePacer>,
}

fn db(id: &str, region: &str) -> DbRef {
    DbRef {
        id: id.into(),
        region: region.into(),
    }
}

fn endpoint(id: &str) -> Option<(String, u16)> {
    Some((
        format!("{id}.cabcdefghijk.us-west-2.rds.amazonaws.com"),
        3306,
    ))
}

/// An Aurora cluster's writer endpoint, spelled as RDS spells it.
fn cluster_endpoint(id: &str) -> Option<(String, u16)> {
    Some((
        format!("{id}.cluster-cabcdefghijk.us-west-2.rds.amazonaws.com"),
        3306,
    ))
}

fn cep(id: &str) -> String {
    let (h, p) = cluster_endpoint(id).unwrap();
    format!("{h}:{p}")
}

fn ep(id: &str) -> String {
    let (h, p) = endpoint(id).unwrap();
    format!("{h}:{p}")
}

/// The example sites, every one with a canary user (the write check needs one), each site's
/// candidates healthy and replicating, and each primary lost: RDS does not call it `available`
/// (Multi-AZ: RDS still does, as it does for a hung writer) and the SQL canary gets no answer
/// (the fake canary's default). The promoter re-checks exactly that before asking RDS.
fn world() -> World {
    let mut cfg: Value = serde_json::from_str(EXAMPLE).unwrap();
    for i in 1..4 {
        cfg["sites"][i]["canary"] = json!({
            "endpoint": "writer.example.internal:3306", "user": "failover_canary",
            "credentials": {"kind": "env", "var": "CANARY_PASSWORD"}
        });
    }
    let cfg = Config::from_document(&cfg.to_string()).unwrap();

    let topology = Arc::new(FakeTopology::default());
    let inst = |id: &str, src: Option<&str>| InstanceInfo {
        id: id.into(),
        status: "available".into(),
        endpoint: endpoint(id),
        replication_source: src.map(String::from),
        ..Default::default()
    };
    // orders: cross-region read replicas of a us-east-1 primary.
    topology.set_instance(InstanceInfo {
        replicas: vec![
            "arn:aws:rds:us-west-2:123456789012:db:orders-replica-1".into(),
            "arn:aws:rds:us-west-2:123456789012:db:orders-replica-2".into(),
        ],
        ..inst("orders-primary", None)
    });
    let src = "arn:aws:rds:us-east-1:123456789012:db:orders-primary";
    topology.set_instance(inst("orders-replica-1", Some(src)));
    topology.set_instance(inst("orders-replica-2", Some(src)));
    // billing: an Aurora cluster, writer billing-1.
    for id in ["billing-1", "billing-2"] {
        topology.set_instance(InstanceInfo {
            cluster_id: Some("billing-cluster".into()),
            ..inst(id, None)
        });
    }
    topology.clusters.lock().unwrap().insert(
        "billing-cluster".into(),
        ClusterInfo {
            id: "billing-cluster".into(),
            endpoint: cluster_endpoint("billing-cluster"),
            arn: Some("arn:aws:rds:us-west-2:123456789012:cluster:billing-cluster".into()),
            status: "available".into(),
            members: vec![
                ClusterMember {
                    instance_id: "billing-1".into(),
                    is_writer: true,
                },
                ClusterMember {
                    instance_id: "billing-2".into(),
                    is_writer: false,
                },
            ],
        },
    );
    // payments: a global database, primary cluster in us-east-1, secondary in us-west-2.
    let east = "arn:aws:rds:us-east-1:123456789012:cluster:payments-east";
    let west = "arn:aws:rds:us-west-2:123456789012:cluster:payments-west";
    topology.globals.lock().unwrap().insert(
        "payments-global".into(),
        GlobalClusterInfo {
            id: "payments-global".into(),
            status: "available".into(),
            members: vec![
                GlobalMember {
                    cluster_arn: east.into(),
                    is_writer: true,
                },
                GlobalMember {
                    cluster_arn: west.into(),
                    is_writer: false,
                },
            ],
        },
    );
    for (id, arn, member) in [
        ("payments-east", east, "payments-east-1"),
        ("payments-west", west, "payments-west-1"),
    ] {
        topology.clusters.lock().unwrap().insert(
            id.into(),
            ClusterInfo {
                id: id.into(),
                endpoint: cluster_endpoint(id),
                arn: Some(arn.into()),
                status: "available".into(),
                members: vec![ClusterMember {
                    instance_id: member.into(),
                    is_writer: id == "payments-east",
                }],
            },
        );
        topology.set_instance(inst(member, None));
    }
    // inventory: a Multi-AZ instance.
    topology.set_instance(InstanceInfo {
        multi_az: true,
        ..inst("inventory-db", None)
    });
    for primary in ["orders-primary", "billing-1", "payments-east"] {
        topology.set_status(primary, "failed");
    }

    let metrics = Arc::new(FakeMetrics::default());
    metrics.set_lag("orders-replica-1", 2.0);
    metrics.set_lag("billing-2", 0.02);
    metrics.set_lag("payments-west", 1.0);
    let ledger = Arc::new(FakeLedger::default());
    let control = Arc::new(RecordingControl {
        inner: FakeControl::new(topology.clone()),
        ledger: ledger.clone(),
        recorded_before: Mutex::default(),
    });
    let writability = Arc::new(FakeWritability::new(topology.clone()));
    let canary = Arc::new(FakeCanary::default());
    let bus = Arc::new(FakeBus::default());
    let clock = Arc::new(FixedClock::at(t0()));
    let pacer = Arc::new(FakePacer {
        now: Mutex::new(UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
        clock: clock.clone(),
        sleeps: Mutex::default(),
    });
    let deps = Deps {
        cfg,
        topology: topology.clone(),
        metrics: metrics.clone(),
        control: control.clone(),
        writability: writability.clone(),
        canary: canary.clone(),
        ledger: ledger.clone(),
        bus: bus.clone(),
        clock: clock.clone(),
        pacer: pacer.clone(),
        fallback_budget: super::DEFAULT_BUDGET,
    };
    World {
        deps,
        topology,
        metrics,
        control,
        writability,
        canary,
        ledger,
        bus,
        clock,
        pacer,
    }
}

fn candidate_of(site: &str) -> DbRef {
    match site {
        "orders" => db("orders-replica-1", "us-west-2"),
        "billing" => db("billing-2", "us-west-2"),
        "payments" => db("payments-west", "us-west-2"),
        _ => db("inventory-db", "us-west-2"),
    }
}

impl World {
    /// The ledger as the evaluator leaves it after deciding: `promoting` at `epoch`.
    fn decided(&self, site: &str, epoch: u64) -> DomainEvent {
        let mut s = SiteState::new(site);
        s.version = 9;
        s.epoch = epoch;
        s.phase = Phase::Promoting;
        s.candidate = Some(candidate_of(site));
        s.last_failover_at = Some(self.clock.now());
        self.ledger.put(s);
        self.event(site, epoch, EventType::FailoverDecided)
    }

    fn event(&self, site: &str, epoch: u64, t: EventType) -> DomainEvent {
        let cfg = self.deps.cfg.site(site).unwrap();
        DomainEvent {
            event_type: t,
            site: site.into(),
            epoch,
            phase: Phase::Promoting,
            engine: cfg.engine.kind().into(),
            occurred_at: self.clock.now(),
            primary: Some(cfg.primary.clone()),
            candidate: Some(candidate_of(site)),
            rpo_override: None,
            verdict: Verdict {
                site: Some(site.into()),
                outcome: Outcome::FailoverDecided {
                    candidate: candidate_of(site),
                },
                epoch,
                phase: Phase::Promoting,
                summary: "failover decided".into(),
                guards: vec![],
            },
            timeline: vec![],
        }
    }

    fn state(&self, site: &str) -> SiteState {
        self.ledger.get(site).unwrap()
    }

    /// The site's primary answers again: RDS says `available` and the SQL canary gets a reply.
    fn primary_alive(&self, site: &str) {
        let primary = self.deps.cfg.site(site).unwrap().primary.id.clone();
        self.topology.set_status(&primary, "available");
        self.canary
            .set(site, CanaryResult::Reachable { latency_ms: 4 });
    }

    /// The evaluator's record of how the current epoch was decided, `ago_secs` before now.
    fn decided_by(&self, site: &str, trigger: DecisionTrigger, ago_secs: i64) {
        let at = self.clock.now() - chrono::Duration::seconds(ago_secs);
        self.edit(site, |s| {
            s.decision = Some(Decision {
                epoch: s.epoch,
                trigger,
                at,
                by: Some("alice".into()),
                reason: Some("drill".into()),
            })
        });
    }

    fn edit(&self, site: &str, f: impl FnOnce(&mut SiteState)) {
        let mut s = self.state(site);
        f(&mut s);
        self.ledger.put(s);
    }

    /// Invokes with `budget` of Lambda time left, the way EventBridge delivers.
    async fn invoke(&self, e: &DomainEvent, budget: Duration) -> Result<Response, PromoterError> {
        self.invoke_raw(envelope(e), budget).await
    }

    async fn invoke_raw(
        &self,
        payload: Value,
        budget: Duration,
    ) -> Result<Response, PromoterError> {
        let mut ctx = Context::default();
        let deadline = self.pacer.now() + budget;
        ctx.deadline = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        handle(&self.deps, LambdaEvent::new(payload, ctx)).await
    }

    fn mutations(&self) -> Vec<String> {
        self.control.inner.calls.lock().unwrap().clone()
    }
}

/// The envelope `EventBridgeBus::publish` puts on the bus, as a rule delivers it to Lambda.
fn envelope(e: &DomainEvent) -> Value {
    json!({
        "version": "0", "id": format!("evt-{}", e.dedupe_key()),
        "detail-type": e.event_type.detail_type(), "source": "rds-failover",
        "account": ACCOUNT, "time": e.occurred_at.to_rfc3339(), "region": "us-west-2",
        "resources": [], "detail": serde_json::to_value(e).unwrap()
    })
}

const LONG: Duration = Duration::from_secs(300);

fn published(w: &World, t: EventType) -> Vec<DomainEvent> {
    w.bus
        .published
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.event_type == t)
        .cloned()
        .collect()
}

async fn assert_promoted(w: &World, site: &str, r: &Response, api: &str, endpoint: &str) {
    assert!(
        matches!(&r.outcome, PromoterOutcome::Promoted { action, endpoint: e, .. } if action == api && e == endpoint),
        "{site}: {:#?}",
        r.outcome
    );
    let st = w.state(site);
    assert_eq!(st.phase, Phase::Promoted);
    let rec = st.promotion.unwrap();
    assert_eq!(rec.action, api);
    assert_eq!(rec.endpoint.as_deref(), Some(endpoint));
    assert!(rec.completed_at.is_some() && rec.writable_verified_at.is_some());
    assert!(
        rec.completed_at.unwrap() > rec.requested_at,
        "took real (virtual) time"
    );
    assert!(st.outbox.is_empty(), "the outbox was flushed");
    assert_eq!(w.bus.types(), ["ReplicaPromoted"]);
    assert_eq!(r.emitted, ["ReplicaPromoted"]);
    assert_eq!(
        *w.control.recorded_before.lock().unwrap(),
        [true],
        "one mutation, sent only after the ledger recorded the request"
    );
    // Writes were verified on the server the recorded endpoint reaches (for Aurora: the writer
    // instance behind the cluster endpoint).
    let checked = w
        .writability
        .checks
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    let reached = |e: &str| w.topology.reached_by(e).map(|i| i.id);
    assert!(
        checked == endpoint
            || (reached(&checked).is_some() && reached(&checked) == reached(endpoint)),
        "{site}: checked {checked}, recorded {endpoint}"
    );
}

// ---------------------------------------------------------------- happy paths per engine kind

#[tokio::test]
async fn rds_read_replica_is_promoted_and_done_only_when_detached_and_writable() {
    let w = world();
    w.topology.kill_region("us-east-1");
    let e = w.decided("orders", 3);

    let r = w.invoke(&e, LONG).await.unwrap();

    assert_promoted(
        &w,
        "orders",
        &r,
        "PromoteReadReplica",
        &ep("orders-replica-1"),
    )
    .await;
    assert_eq!(w.mutations(), ["PromoteReadReplica orders-replica-1"]);
    assert!(
        r.polls >= 5,
        "watched through modifying and rebooting: {}",
        r.polls
    );
    let i = w.topology.instance_now("orders-replica-1").unwrap();
    assert_eq!(
        (i.status.as_str(), i.replication_source),
        ("available", None)
    );
    let v = r.verdict.unwrap();
    assert_eq!(v.epoch, 3);
    assert!(v
        .guards
        .iter()
        .any(|g| g.guard == Guard::Rpo && g.result == GuardResult::Pass));
    // Polls come at gaps proportional to the wait so far (pace.rs; jitter 0.5 = no scaling):
    // 0.5 s in the first seconds, never more than 10 s.
    let sleeps = w.pacer.sleeps.lock().unwrap().clone();
    assert_eq!(sleeps[0], Duration::from_millis(500));
    assert_eq!(sleeps[1], Duration::from_millis(500));
    assert!(sleeps.iter().all(|d| *d <= Duration::from_secs(10)));
}

#[tokio::test]
async fn aurora_cluster_fails_over_to_the_target_and_waits_for_the_writer_flag() {
    let w = world();
    let e = w.decided("billing", 2);

    let r = w.invoke(&e, LONG).await.unwrap();

    // The writer name goes to the cluster's writer endpoint, not billing-2's instance endpoint.
    assert_promoted(
        &w,
        "billing",
        &r,
        "FailoverDBCluster",
        &cep("billing-cluster"),
    )
    .await;
    assert_eq!(
        w.writability
            .checks
            .lock()
            .unwrap()
            .last()
            .map(String::as_str),
        Some(ep("billing-2").as_str()),
        "writes are verified on the instance that was made the writer"
    );
    assert_eq!(
        w.mutations(),
        ["FailoverDBCluster billing-cluster billing-2"]
    );
    let c = w.topology.cluster_now("billing-cluster").unwrap();
    assert!(c
        .members
        .iter()
        .any(|m| m.instance_id == "billing-2" && m.is_writer));
}

/// Issue 14, scenario 2: an Aurora cluster site is failed over and pinned, then Aurora fails
/// over internally on its own (the writer moves back to billing-1): the endpoint the writer name
/// points at still reaches the writer.
#[tokio::test]
async fn scenario_2_after_an_aurora_internal_failover_the_writer_name_still_reaches_the_writer() {
    let w = world();
    let e = w.decided("billing", 2);
    w.invoke(&e, LONG).await.unwrap();
    let st = w.ledger.get("billing").unwrap();
    let target = st.promotion.unwrap().endpoint.unwrap();

    // Aurora-internal failover, which the evaluator does not watch.
    w.topology.update_cluster("billing-cluster", |c| {
        for m in &mut c.members {
            m.is_writer = m.instance_id == "billing-1";
        }
    });

    let site = w.deps.cfg.site("billing").unwrap();
    let reached = w.writability.check(site, &target).await.unwrap();
    assert!(
        reached.is_writable(),
        "{target} reaches a reader after the internal failover: {reached:?}"
    );
}

#[tokio::test]
async fn aurora_global_fails_over_with_data_loss_allowed_when_the_primary_region_is_gone() {
    let w = world();
    w.topology.kill_region("us-east-1");
    let e = w.decided("payments", 5);

    let r = w.invoke(&e, LONG).await.unwrap();

    assert_promoted(
        &w,
        "payments",
        &r,
        "FailoverGlobalCluster",
        &cep("payments-west"),
    )
    .await;
    assert_eq!(
        w.mutations(),
        ["FailoverGlobalCluster payments-global arn:aws:rds:us-west-2:123456789012:cluster:payments-west AllowDataLoss=true"]
    );
}

#[tokio::test]
async fn aurora_global_switches_over_without_loss_when_the_old_primary_is_healthy() {
    let w = world();
    // Lag beyond the 2 s RPO does not matter: a switchover waits for the secondary.
    w.metrics.set_lag("payments-west", 30.0);
    let e = w.decided("payments", 5);
    // A healthy primary is a target only for a planned switchover (or a forced failover).
    w.primary_alive("payments");
    w.decided_by("payments", DecisionTrigger::PlannedSwitchover, 0);

    let r = w.invoke(&e, LONG).await.unwrap();

    assert_promoted(
        &w,
        "payments",
        &r,
        "SwitchoverGlobalCluster",
        &cep("payments-west"),
    )
    .await;
    assert_eq!(w.control.inner.count("FailoverGlobalCluster"), 0);
}

#[tokio::test]
async fn multi_az_reboots_with_failover_and_is_done_when_available_after_rebooting() {
    let w = world();
    let e = w.decided("inventory", 1);

    let r = w.invoke(&e, LONG).await.unwrap();

    assert_promoted(&w, "inventory", &r, "RebootDBInstance", &ep("inventory-db")).await;
    assert_eq!(
        w.mutations(),
        ["RebootDBInstance inventory-db ForceFailover=true"]
    );
}

// ---------------------------------------------------------------- fencing

#[tokio::test]
async fn a_stale_or_foreign_event_mutates_nothing() {
    let w = world();
    let current = w.decided("orders", 4);
    let mut stale = current.clone();
    stale.epoch = 3;
    let mut forged = current.clone();
    forged.candidate = Some(db("attacker-db", "us-west-2"));
    let mut unknown = current.clone();
    unknown.site = "nope".into();

    for (e, reason, reads) in [
        (&stale, FenceReason::StaleEpoch, 1),
        (&forged, FenceReason::ForeignCandidate, 1),
        (&unknown, FenceReason::UnknownSite, 0),
    ] {
        let before = w.ledger.loads.load(std::sync::atomic::Ordering::SeqCst);
        let r = w.invoke(e, LONG).await.unwrap();
        let read = w.ledger.loads.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert_eq!(
            read, reads,
            "{reason:?}: the record is read once, not again for the admission"
        );
        assert!(
            matches!(r.outcome, PromoterOutcome::Fenced { reason: got, .. } if got == reason),
            "{:?}",
            r.outcome
        );
    }
    w.edit("orders", |s| s.phase = Phase::Failed);
    let r = w.invoke(&current, LONG).await.unwrap();
    assert!(matches!(
        r.outcome,
        PromoterOutcome::Fenced {
            reason: FenceReason::WrongPhase,
            ..
        }
    ));

    assert!(w.mutations().is_empty());
    assert_eq!(*w.topology.calls.lock().unwrap(), 0, "not even a read");
    assert_eq!(w.ledger.commit_count(), 0);
    assert!(w.bus.types().is_empty());
}

#[tokio::test]
async fn malformed_input_is_bad_input_before_any_call() {
    let w = world();
    let e = w.decided("orders", 1);
    let mut wrong_source = envelope(&e);
    wrong_source["source"] = json!("rds-failover.operator");
    let mut mismatched = envelope(&e);
    mismatched["detail-type"] = json!("PromotionContinued");
    let mut missing_epoch = envelope(&e);
    missing_epoch["detail"]
        .as_object_mut()
        .unwrap()
        .remove("epoch");
    let mut other_type = envelope(&e);
    other_type["detail-type"] = json!("ReplicaPromoted");
    for bad in [
        json!({}),
        json!([1]),
        wrong_source,
        mismatched,
        missing_epoch.clone(),
        other_type,
    ] {
        let err = w.invoke_raw(bad.clone(), LONG).await.unwrap_err();
        assert_eq!(Diagnostic::from(err).error_type, "BadInput", "{bad}");
    }
    let msg = w
        .invoke_raw(missing_epoch, LONG)
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("epoch"), "{msg}");
    assert_eq!(*w.topology.calls.lock().unwrap(), 0);
    assert_eq!(w.ledger.commit_count(), 0);
}

// ---------------------------------------------------------------- at-least-once delivery

#[tokio::test]
async fn a_redelivered_decision_neither_promotes_again_nor_emits_again() {
    let w = world();
    let e = w.decided("orders", 3);
    w.invoke(&e, LONG).await.unwrap();
    let commits = w.ledger.commit_count();

    let r = w.invoke(&e, LONG).await.unwrap();

    assert_eq!(r.outcome, PromoterOutcome::AlreadyPromoted);
    assert_eq!(w.control.inner.count("PromoteReadReplica"), 1);
    assert_eq!(w.bus.types(), ["ReplicaPromoted"]);
    assert_eq!(w.ledger.commit_count(), commits, "nothing written");
}

/// The topology as a concurrent invocation leaves it: on the first read of the candidate, that
/// other invocation has just recorded the request (by compare-and-set, after this one loaded
/// the ledger) and sent PromoteReadReplica, so RDS already shows the candidate in motion.
struct RacedTopology {
    inner: Arc<FakeTopology>,
    ledger: Arc<FakeLedger>,
    control: Arc<RecordingControl>,
    raced: Mutex<bool>,
}

#[async_trait]
impl DatabaseTopology for RacedTopology {
    async fn instance(&self, db: &DbRef) -> Result<Option<InstanceInfo>, PortError> {
        let first = !std::mem::replace(&mut *self.raced.lock().unwrap(), true);
        if first && db.id == "orders-replica-1" {
            let st = self.ledger.get("orders").unwrap();
            let action = PromotionAction::PromoteReadReplica {
                instance: db.clone(),
            };
            self.ledger.put(promote::request(&st, db, &action, t0()));
            self.control.promote_read_replica(db).await.unwrap();
        }
        self.inner.instance(db).await
    }
    async fn cluster(&self, id: &str, region: &str) -> Result<Option<ClusterInfo>, PortError> {
        self.inner.cluster(id, region).await
    }
    async fn global_cluster(
        &self,
        id: &str,
        region: &str,
    ) -> Result<Option<GlobalClusterInfo>, PortError> {
        self.inner.global_cluster(id, region).await
    }
}

#[tokio::test]
async fn pre_checks_that_see_a_concurrent_promotion_in_motion_watch_it_instead_of_failing_the_epoch(
) {
    // Seen in the storm suite: a duplicate delivery loaded the ledger before another instance
    // recorded the request, then read the candidate `modifying` (being promoted by that other
    // instance) and failed the epoch `candidate-unavailable` on top of the recorded request.
    let mut w = world();
    w.control.inner.set_polls_per_phase(2);
    let e = w.decided("orders", 3);
    w.deps.topology = Arc::new(RacedTopology {
        inner: w.topology.clone(),
        ledger: w.ledger.clone(),
        control: w.control.clone(),
        raced: Mutex::default(),
    });

    let r = w.invoke(&e, LONG).await.unwrap();

    assert_eq!(
        w.control.inner.count("PromoteReadReplica"),
        1,
        "only the other invocation's"
    );
    assert!(
        matches!(r.outcome, PromoterOutcome::Promoted { .. }),
        "{:?}",
        r.outcome
    );
    let st = w.state("orders");
    assert_eq!(st.phase, Phase::Promoted, "{:?}", st.failure);
    assert!(st.failure.is_none());
    assert!(published(&w, EventType::FailoverFailed).is_empty());
    assert_eq!(w.bus.types(), ["ReplicaPromoted"]);
}

#[tokio::test]
async fn a_continuation_resumes_watching_without_promoting_again() {
    let w = world();
    // Long enough to outlast the invocation at the watch's pace (0.5 s gaps at first).
    w.control.inner.set_polls_per_phase(30);
    let e = w.decided("orders", 3);

    // Little Lambda time left: the promotion is sent, watched a while, then handed on.
    let r = w.invoke(&e, Duration::from_secs(30)).await.unwrap();

    assert!(
        matches!(r.outcome, PromoterOutcome::Continued { .. }),
        "{:?}",
        r.outcome
    );
    assert_eq!(r.emitted, ["PromotionContinued"]);
    let st = w.state("orders");
    assert_eq!(st.phase, Phase::Promoting);
    assert!(st.promotion.as_ref().unwrap().completed_at.is_none());
    assert!(st.outbox.is_empty());
    let cont = published(&w, EventType::PromotionContinued);
    assert_eq!(cont.len(), 1);
    assert_eq!((cont[0].epoch, cont[0].site.as_str()), (3, "orders"));

    // The continuation, delivered as EventBridge delivers it, finishes the job.
    let r = w.invoke(&cont[0], LONG).await.unwrap();

    assert!(
        matches!(r.outcome, PromoterOutcome::Promoted { .. }),
        "{:?}",
        r.outcome
    );
    assert_eq!(
        w.control.inner.count("PromoteReadReplica"),
        1,
        "never re-sent"
    );
    assert_eq!(w.bus.types(), ["PromotionContinued", "ReplicaPromoted"]);
}

#[tokio::test]
async fn multi_az_remembers_the_reboot_it_saw_across_a_continuation() {
    let w = world();
    w.control.inner.set_polls_per_phase(30);
    let e = w.decided("inventory", 1);
    let r = w.invoke(&e, Duration::from_secs(20)).await.unwrap();
    assert!(
        matches!(r.outcome, PromoterOutcome::Continued { .. }),
        "{:?}",
        r.outcome
    );
    assert!(promote::transition_seen(&w.state("inventory")));

    // By the next invocation the reboot has finished: available, and it counts as done only
    // because the ledger remembers having seen `rebooting`.
    w.topology.schedule("inventory-db", Vec::new());
    w.topology.set_status("inventory-db", "available");
    let cont = published(&w, EventType::PromotionContinued).remove(0);
    let r = w.invoke(&cont, LONG).await.unwrap();
    assert!(
        matches!(r.outcome, PromoterOutcome::Promoted { .. }),
        "{:?}",
        r.outcome
    );
    assert_eq!(w.control.inner.count("RebootDBInstance"), 1);
}

#[tokio::test]
async fn a_mutation_with_an_unknown_outcome_is_watched_never_resent_and_finally_fails() {
    let w = world();
    // The call times out: RDS may or may not have acted (here it did not).
    w.control
        .inner
        .faults
        .inject("PromoteReadReplica", ErrorKind::Timeout, 1);
    let e = w.decided("orders", 3);

    let r = w.invoke(&e, Duration::from_secs(60)).await.unwrap();
    assert!(
        matches!(r.outcome, PromoterOutcome::Continued { .. }),
        "{:?}",
        r.outcome
    );
    assert!(
        w.state("orders").promotion.is_some(),
        "the request stays recorded"
    );

    // Later continuations keep watching; past the deadline the epoch fails, still never re-sent.
    w.clock.advance(61 * 60);
    let cont = published(&w, EventType::PromotionContinued).remove(0);
    let r = w.invoke(&cont, LONG).await.unwrap();
    assert!(
        matches!(
            r.outcome,
            PromoterOutcome::Failed {
                reason: FailureReason::PromotionTimedOut,
                ..
            }
        ),
        "{:?}",
        r.outcome
    );
    assert_eq!(
        *w.control.recorded_before.lock().unwrap(),
        [true],
        "one attempt only"
    );
    assert_eq!(w.state("orders").phase, Phase::Failed);
    assert_eq!(published(&w, EventType::FailoverFailed).len(), 1);
}

#[tokio::test]
async fn a_throttled_mutation_is_taken_back_and_retried_by_lambda() {
    let w = world();
    w.control
        .inner
        .faults
        .inject("PromoteReadReplica", ErrorKind::Throttled, 4);
    let e = w.decided("orders", 3);

    let err = w.invoke(&e, LONG).await.unwrap_err();

    assert_eq!(Diagnostic::from(err).error_type, "Retryable.Throttled");
    assert_eq!(
        w.state("orders").promotion,
        None,
        "request withdrawn: RDS did nothing"
    );
    assert!(w.mutations().is_empty());

    let r = w.invoke(&e, LONG).await.unwrap();
    assert!(
        matches!(r.outcome, PromoterOutcome::Promoted { .. }),
        "{:?}",
        r.outcome
    );
    assert_eq!(w.mutations().len(), 1);
}

#[tokio::test]
async fn a_failed_publish_keeps_the_result_in_the_outbox_for_the_next_invocation() {
    let w = world();
    w.bus.faults.inject("PutEvents", ErrorKind::Unavailable, 1);
    let e = w.decided("orders", 3);

    let err = w.invoke(&e, LONG).await.unwrap_err();
    assert_eq!(Diagnostic::from(err).error_type, "Retryable.Unavailable");
    let st = w.state("orders");
    assert_eq!(st.phase, Phase::Promoted, "the result is committed");
    assert_eq!(st.outbox.len(), 1);

    let r = w.invoke(&e, LONG).await.unwrap();
    assert_eq!(r.outcome, PromoterOutcome::AlreadyPromoted);
    assert_eq!(r.emitted, ["ReplicaPromoted"]);
    assert!(w.state("orders").outbox.is_empty());
    assert_eq!(w.control.inner.count("PromoteReadReplica"), 1);
}

// ---------------------------------------------------------------- refusals and failures

async fn assert_failed_without_mutation(
    w: &World,
    site: &str,
    r: &Response,
    reason: FailureReason,
) {
    assert!(
        matches!(&r.outcome, PromoterOutcome::Failed { reason: got, .. } if *got == reason),
        "{:?}",
        r.outcome
    );
    let st = w.state(site);
    assert_eq!(st.phase, Phase::Failed);
    assert!(
        st.failure.as_deref().unwrap().starts_with(reason.as_str()),
        "{:?}",
        st.failure
    );
    assert!(w.mutations().is_empty(), "no RDS mutation");
    assert_eq!(w.bus.types(), ["FailoverFailed"]);
    let failed = published(w, EventType::FailoverFailed).remove(0);
    assert!(
        failed.verdict.summary.contains(&format!("({reason})")),
        "{}",
        failed.verdict.summary
    );
}

#[tokio::test]
async fn a_running_backup_fails_the_epoch_with_its_reason() {
    let w = world();
    let e = w.decided("orders", 3);
    w.edit("orders", |s| {
        s.backups_running.insert("orders-replica-1".into());
    });
    let r = w.invoke(&e, LONG).await.unwrap();
    assert_failed_without_mutation(&w, "orders", &r, FailureReason::BackupRunning).await;

    // The status alone says so too.
    let w = world();
    let e = w.decided("orders", 3);
    w.topology.set_status("orders-replica-1", "backing-up");
    let r = w.invoke(&e, LONG).await.unwrap();
    assert_failed_without_mutation(&w, "orders", &r, FailureReason::BackupRunning).await;
}

#[tokio::test]
async fn lag_beyond_the_rpo_fails_without_an_override_and_promotes_with_one() {
    let w = world();
    let e = w.decided("orders", 3);
    w.metrics.set_lag("orders-replica-1", 45.0);
    let r = w.invoke(&e, LONG).await.unwrap();
    assert_failed_without_mutation(&w, "orders", &r, FailureReason::RpoExceeded).await;
    let g = r
        .verdict
        .unwrap()
        .guards
        .into_iter()
        .find(|g| g.guard == Guard::Rpo)
        .unwrap();
    assert_eq!((g.observed, g.limit), (Some(45.0), Some(30.0)));

    // The metric reads -1 (replication stopped): the last good lag from before the outage counts.
    let w = world();
    let e = w.decided("orders", 3);
    w.metrics.set_lag("orders-replica-1", -1.0);
    w.edit("orders", |s| {
        s.last_good_lag.insert(
            "orders-replica-1".into(),
            LagSample {
                secs: 50.0,
                at: t0(),
                created_at: None,
            },
        );
    });
    let r = w.invoke(&e, LONG).await.unwrap();
    assert_failed_without_mutation(&w, "orders", &r, FailureReason::RpoExceeded).await;

    // An operator's override recorded in the ledger lets the same promotion through.
    let w = world();
    let e = w.decided("orders", 3);
    w.metrics.set_lag("orders-replica-1", 45.0);
    w.edit("orders", |s| {
        s.rpo_override = Some(RpoOverride {
            by: "alice".into(),
            reason: "region lost; accept 45 s of writes".into(),
            at: t0(),
        })
    });
    let r = w.invoke(&e, LONG).await.unwrap();
    assert_promoted(
        &w,
        "orders",
        &r,
        "PromoteReadReplica",
        &ep("orders-replica-1"),
    )
    .await;
    let promoted = published(&w, EventType::ReplicaPromoted).remove(0);
    assert_eq!(promoted.rpo_override.unwrap().by, "alice");
}

#[tokio::test]
async fn a_candidate_that_is_not_a_replica_of_the_primary_is_not_promoted() {
    let w = world();
    let e = w.decided("orders", 3);
    w.topology.update_instance("orders-replica-1", |i| {
        i.replication_source = Some("arn:aws:rds:us-east-1:123456789012:db:some-other-db".into())
    });
    let r = w.invoke(&e, LONG).await.unwrap();
    assert_failed_without_mutation(&w, "orders", &r, FailureReason::NotAReplica).await;
}

#[tokio::test]
async fn rds_rejecting_the_mutation_fails_the_epoch_with_its_words() {
    let w = world();
    w.control
        .inner
        .faults
        .inject("PromoteReadReplica", ErrorKind::InvalidState, 1);
    let e = w.decided("orders", 3);
    let r = w.invoke(&e, LONG).await.unwrap();
    assert!(
        matches!(&r.outcome, PromoterOutcome::Failed { reason: FailureReason::PromotionRejected, detail } if detail.contains("InvalidState")),
        "{:?}",
        r.outcome
    );
    assert_eq!(w.state("orders").phase, Phase::Failed);
    assert_eq!(w.bus.types(), ["FailoverFailed"]);
}

#[tokio::test]
async fn a_promoted_replica_that_stays_read_only_is_never_declared_primary() {
    let w = world();
    let endpoint = ep("orders-replica-1");
    w.writability.answer(
        &endpoint,
        Ok(Writability {
            read_only: true,
            innodb_read_only: false,
        }),
    );
    let e = w.decided("orders", 3);

    let r = w.invoke(&e, LONG).await.unwrap();

    assert!(
        matches!(r.outcome, PromoterOutcome::Continued { .. }),
        "{:?}",
        r.outcome
    );
    assert!(
        matches!(&r.outcome, PromoterOutcome::Continued { detail } if detail.contains("@@read_only = 1")),
        "{:?}",
        r.outcome
    );
    assert_eq!(w.state("orders").phase, Phase::Promoting);
    assert!(published(&w, EventType::ReplicaPromoted).is_empty());
    assert!(
        w.writability.checks.lock().unwrap().len() > 1,
        "asked again while time allowed"
    );

    // Still read-only when the promotion deadline passes: the epoch fails, not-writable.
    w.clock.advance(61 * 60);
    let cont = published(&w, EventType::PromotionContinued).remove(0);
    let r = w.invoke(&cont, LONG).await.unwrap();
    assert!(
        matches!(
            r.outcome,
            PromoterOutcome::Failed {
                reason: FailureReason::NotWritable,
                ..
            }
        ),
        "{:?}",
        r.outcome
    );
    assert!(published(&w, EventType::ReplicaPromoted).is_empty());
    assert_eq!(w.control.inner.count("PromoteReadReplica"), 1);
}

#[tokio::test]
async fn writes_that_cannot_be_verified_fail_the_epoch_instead_of_passing_it() {
    let w = world();
    w.writability.answer(
        &ep("orders-replica-1"),
        Err(PortError::new(
            ErrorKind::AccessDenied,
            "CheckWritable",
            "Access denied for user 'failover_canary'",
        )),
    );
    let e = w.decided("orders", 3);
    let r = w.invoke(&e, LONG).await.unwrap();
    assert!(
        matches!(
            r.outcome,
            PromoterOutcome::Failed {
                reason: FailureReason::WritabilityUnverifiable,
                ..
            }
        ),
        "{:?}",
        r.outcome
    );
    assert!(published(&w, EventType::ReplicaPromoted).is_empty());
}

mod interleavings;
mod switchover;

// ---------------------------------------------------------------- the decision, re-checked

/// What an abort must leave behind: no RDS mutation, the epoch `aborted` with its reason, one
/// `FailoverAborted` for the notifier, and the cooldown as it was.
fn assert_aborted(
    w: &World,
    site: &str,
    r: &Response,
    want: AbortReason,
    cooldown_before: Option<DateTime<Utc>>,
) {
    assert!(
        matches!(&r.outcome, PromoterOutcome::Aborted { reason, .. } if *reason == want),
        "{site}: {:#?}",
        r.outcome
    );
    assert!(
        w.mutations().is_empty(),
        "no RDS mutation: {:?}",
        w.mutations()
    );
    let st = w.state(site);
    assert_eq!(st.phase, Phase::Aborted);
    assert_eq!(st.promotion, None, "nothing was asked of RDS");
    assert_eq!(
        st.last_failover_at, cooldown_before,
        "an abort does not start the cooldown"
    );
    assert_eq!(w.bus.types(), ["FailoverAborted"]);
    let [aborted] = &published(w, EventType::FailoverAborted)[..] else {
        panic!("one FailoverAborted")
    };
    assert!(
        aborted.verdict.summary.contains("was not promoted"),
        "{}",
        aborted.verdict.summary
    );
}

#[tokio::test]
async fn a_decision_an_hour_old_is_aborted_with_no_rds_call_and_people_are_told() {
    for site in ["orders", "billing", "payments", "inventory"] {
        let w = world();
        let e = w.decided(site, 3);
        // Decided an hour ago (the timeline the evaluator wrote); the bus delivers it only now,
        // as the rule's MaximumEventAgeInSeconds (3600) allows. The event itself looks fresh.
        let decided = w.clock.now() - chrono::Duration::seconds(3600);
        w.edit(site, |s| {
            s.last_failover_at = None;
            s.timeline = vec![TimelineEntry {
                phase: Phase::Promoting,
                at: decided,
                note: "failover decided (automatic (approval mode auto))".into(),
            }];
        });

        let r = w.invoke(&e, LONG).await.unwrap();

        assert_aborted(&w, site, &r, AbortReason::DecisionTooOld, None);
        let g = r
            .verdict
            .as_ref()
            .unwrap()
            .guards
            .iter()
            .find(|g| g.guard == Guard::DecisionAge)
            .cloned()
            .unwrap();
        assert_eq!(
            (g.result, g.observed, g.limit),
            (GuardResult::Fail, Some(3600.0), Some(300.0)),
            "{site}"
        );
        assert_eq!(
            *w.canary.probes.lock().unwrap(),
            0,
            "{site}: an old decision is not even re-checked"
        );
    }
}

#[tokio::test]
async fn a_primary_that_answers_again_is_not_failed_over_for_any_engine_kind() {
    for site in ["orders", "billing", "payments", "inventory"] {
        let w = world();
        let e = w.decided(site, 4);
        let before = w.state(site).last_failover_at;
        w.canary
            .set(site, CanaryResult::Reachable { latency_ms: 4 });

        let r = w.invoke(&e, LONG).await.unwrap();

        assert_aborted(&w, site, &r, AbortReason::PrimaryAlive, before);
        let g = r
            .verdict
            .as_ref()
            .unwrap()
            .guards
            .iter()
            .find(|g| g.guard == Guard::PrimaryStillDown)
            .cloned()
            .unwrap();
        assert_eq!(g.result, GuardResult::Fail, "{site}: {}", g.detail);
    }
}

/// RDS keeps reporting a host it lost `available` for minutes (and Aurora Global's primary
/// cluster stays `available` while its writer is unreachable). The decision's quorum already
/// outvoted that status; if the promoter counted it again, every re-decision would be aborted in
/// turn for as long as RDS lags, and the failover never happen.
#[tokio::test]
async fn rds_available_alone_does_not_abort_a_decided_failover() {
    for site in ["orders", "billing", "payments"] {
        let w = world();
        let e = w.decided(site, 4);
        let primary = w.deps.cfg.site(site).unwrap().primary.id.clone();
        w.topology.set_status(&primary, "available");

        let r = w.invoke(&e, LONG).await.unwrap();

        assert!(
            !matches!(r.outcome, PromoterOutcome::Aborted { .. }),
            "{site}: {:#?}",
            r.outcome
        );
        assert_eq!(w.mutations().len(), 1, "{site}: {:?}", w.mutations());
    }
}

#[tokio::test]
async fn a_forced_manual_failover_may_target_a_live_primary_and_a_plain_one_may_not() {
    for (trigger, promotes) in [
        (DecisionTrigger::ManualForced, true),
        (DecisionTrigger::Manual, false),
        (DecisionTrigger::Approved, false),
    ] {
        let w = world();
        let e = w.decided("orders", 2);
        w.primary_alive("orders");
        w.decided_by("orders", trigger, 10);

        let r = w.invoke(&e, LONG).await.unwrap();

        if promotes {
            assert_promoted(
                &w,
                "orders",
                &r,
                "PromoteReadReplica",
                &ep("orders-replica-1"),
            )
            .await;
            let g = r
                .verdict
                .unwrap()
                .guards
                .into_iter()
                .find(|g| g.guard == Guard::PrimaryStillDown)
                .unwrap();
            assert_eq!(g.result, GuardResult::NotApplicable, "{}", g.detail);
        } else {
            assert!(
                matches!(
                    r.outcome,
                    PromoterOutcome::Aborted {
                        reason: AbortReason::PrimaryAlive,
                        ..
                    }
                ),
                "{trigger:?}: {:?}",
                r.outcome
            );
            assert!(w.mutations().is_empty());
        }
    }
}

#[tokio::test]
async fn the_cooldown_starts_when_rds_is_asked_not_when_the_failover_was_decided() {
    let w = world();
    w.topology.kill_region("us-east-1");
    let e = w.decided("orders", 3);
    w.edit("orders", |s| s.last_failover_at = None);
    w.clock.advance(40);

    w.invoke(&e, LONG).await.unwrap();

    let st = w.state("orders");
    let asked = st.promotion.as_ref().unwrap().requested_at;
    assert_eq!(st.last_failover_at, Some(asked));
    assert!(asked >= t0() + chrono::Duration::seconds(40));
}

#[tokio::test]
async fn the_promoted_replicas_executed_position_is_recorded_in_the_epochs_fence() {
    let w = world();
    w.topology.kill_region("us-east-1");
    let e = w.decided("orders", 3);
    let site = w.deps.cfg.site("orders").unwrap().clone();
    w.edit("orders", |s| {
        s.fence = Some(failover_policy::fence::intent(
            &site,
            3,
            None,
            s.updated_at.unwrap_or_else(chrono::Utc::now),
        ));
    });
    let pos = failover_policy::gtid::Position::MariadbGtid(
        failover_policy::gtid::MariaPos::parse("0-1-100").unwrap(),
    );
    w.writability
        .positions
        .lock()
        .unwrap()
        .insert(ep("orders-replica-1"), pos.clone());
    let r = w.invoke(&e, LONG).await.unwrap();
    assert!(
        matches!(r.outcome, PromoterOutcome::Promoted { .. }),
        "{r:?}"
    );
    let st = w.state("orders");
    assert_eq!(st.phase, Phase::Promoted);
    assert_eq!(st.fence.unwrap().promoted_position, Some(pos));
}

/// GTIDs off: the replica reports the source coordinates it executed only while it replicates
/// (promotion resets them), so they are read before promotion is requested and kept.
#[tokio::test]
async fn with_gtids_off_the_candidates_source_coordinates_are_recorded_before_promotion_resets_them(
) {
    let w = world();
    w.topology.kill_region("us-east-1");
    let e = w.decided("orders", 3);
    let site = w.deps.cfg.site("orders").unwrap().clone();
    w.edit("orders", |s| {
        s.fence = Some(failover_policy::fence::intent(
            &site,
            3,
            None,
            s.updated_at.unwrap_or_else(chrono::Utc::now),
        ));
    });
    let at = failover_policy::gtid::BinlogPos::parse("mysql-bin-changelog.000412:1545").unwrap();
    w.writability
        .source_coordinates
        .lock()
        .unwrap()
        .insert(ep("orders-replica-1"), at.clone());
    let r = w.invoke(&e, LONG).await.unwrap();
    assert!(
        matches!(r.outcome, PromoterOutcome::Promoted { .. }),
        "{r:?}"
    );
    let st = w.state("orders");
    assert_eq!(
        st.fence.unwrap().promoted_position,
        Some(failover_policy::gtid::Position::Binlog(at))
    );
    // What a reading after promotion gets: nothing (replication reset).
    assert_eq!(
        w.writability
            .position(&site, &ep("orders-replica-1"))
            .await
            .unwrap(),
        None
    );
}

// ---------------------------------------------------------------- fence first (issue 11, defect 3)

/// `orders` with a fence the tool may apply (its own parameter group), and epoch `epoch`
/// forced over a primary that answers: the state the evaluator records for such a decision.
fn forced_over_a_live_primary(w: &World, epoch: u64, fence: bool) {
    let mut doc: serde_json::Value =
        serde_json::from_str(include_str!("../../../../infra/sites.example.json")).unwrap();
    if fence {
        doc["sites"][0]["fence"] = serde_json::json!({"parameter_group": "orders-primary-params",
            "sql_user": "admin", "sql_credentials": {"kind": "env", "var": "FENCE_PW"}});
    }
    let cfg = failover_policy::Config::from_document(&doc.to_string()).unwrap();
    let site = cfg.site("orders").unwrap().clone();
    w.primary_alive("orders");
    w.decided_by("orders", DecisionTrigger::ManualForced, 10);
    let now = w.clock.now();
    w.edit("orders", |s| {
        s.forced = Some(failover_policy::incident::Forced {
            epoch,
            by: "alice".into(),
            reason: "move writes now".into(),
            at: now,
            fence_first: true,
        });
        s.fence = Some(failover_policy::fence::intent(&site, epoch, None, now));
    });
}

#[tokio::test]
async fn a_failover_forced_over_a_live_primary_asks_rds_only_once_the_old_primary_is_fenced() {
    use failover_policy::fence::{record, Attempt, Step};
    let w = world();
    let e = w.decided("orders", 2);
    forced_over_a_live_primary(&w, 2, true);

    // The tick has not fenced it yet: nothing is asked of RDS; the promoter waits, then hands on.
    let r = w.invoke(&e, Duration::from_secs(60)).await.unwrap();
    assert!(
        matches!(r.outcome, PromoterOutcome::Continued { .. }),
        "{:?}",
        r.outcome
    );
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());

    // The tick observes read_only=1 in the group and over SQL.
    let now = w.clock.now();
    w.edit("orders", |s| {
        let f = s.fence.clone().unwrap();
        let f = record(
            &f,
            Step::ParameterReadOnly,
            Attempt::Observed("read_only=1".into()),
            now,
        );
        let f = record(
            &f,
            Step::SqlReadOnly,
            Attempt::Observed("@@global.read_only = 1".into()),
            now,
        );
        s.fence = Some(f);
    });
    let cont = published(&w, EventType::PromotionContinued);
    let r = w.invoke(cont.last().unwrap(), LONG).await.unwrap();
    assert!(
        matches!(r.outcome, PromoterOutcome::Promoted { .. }),
        "{:?}",
        r.outcome
    );
    assert_eq!(w.control.inner.count("PromoteReadReplica"), 1);
    assert_eq!(w.bus.types(), ["PromotionContinued", "ReplicaPromoted"]);
    let g = r
        .verdict
        .unwrap()
        .guards
        .into_iter()
        .find(|g| g.guard == Guard::Fence)
        .unwrap();
    assert!(g.detail.contains("fenced first"), "{}", g.detail);
}

#[tokio::test]
async fn a_forced_failover_whose_old_primary_cannot_be_fenced_is_failed_with_no_rds_call() {
    let w = world();
    let e = w.decided("orders", 2);
    forced_over_a_live_primary(&w, 2, false); // the site has no `fence` section

    let r = w.invoke(&e, LONG).await.unwrap();

    assert!(
        matches!(
            &r.outcome,
            PromoterOutcome::Failed {
                reason: FailureReason::NotFencedFirst,
                ..
            }
        ),
        "{:?}",
        r.outcome
    );
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    let st = w.state("orders");
    assert!(
        st.failure
            .as_ref()
            .is_some_and(|f| f.contains("two writers")),
        "{:?}",
        st.failure
    );
}
