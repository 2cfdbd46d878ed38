//! The fault matrix (issue 6): one whole incident — evaluate → decide → promote → verify writable
//! → pin DNS → notify — driven through all four functions' handlers over the AWS-faithful fakes,
//! once cleanly and then once per (function, AWS operation, call index, fault).
//!
//! How a case runs:
//! - every port a function is given is wrapped in [`Faulty`], which counts that function's calls
//!   per AWS operation and fails the k-th one with the case's fault, mapped to the `ErrorKind` the
//!   real adapter gives the SDK's error (`aws_error_mapping` / `control_error_mapping` tests):
//!   throttling → `Throttled` (rejected, not applied); 5xx → `Unavailable` (not applied); timeout
//!   → `Timeout` *after the request was applied* (the response was lost: the "maybe applied"
//!   case); access denied → `AccessDenied` on that call *and every later call of that operation by
//!   that function* (an IAM policy does not heal by itself); crash → the call is applied, then the
//!   process dies: every later call of that invocation fails without effect and its result is
//!   discarded;
//! - deliveries are redelivered as AWS does: a failed or crashed invocation is retried by Lambda's
//!   async retries (2, about 1 and 2 minutes later), then dead-lettered; every domain event the
//!   functions publish is routed by the template's rules (FailoverDecided / PromotionContinued →
//!   promoter, ReplicaPromoted / DnsPinContinued → pinner, everything → notifier); the scheduled tick comes every
//!   minute (and flushes any ledger outbox left behind);
//! - after every invocation the invariants are checked: never two promotion mutations (per epoch,
//!   and across epochs: a later epoch must not promote a second writer), the writer DNS record
//!   only ever points at the old primary or at a host a real write check found writable and is
//!   repointed at most once per epoch, the ledger's phases only move along legal edges and its
//!   epoch never goes back, `promoted` only with a verified write, `dns-pinned` only after Route 53
//!   said INSYNC for the last change it accepted, and at most one message per (site, epoch,
//!   phase) — except the documented window of the notifier (SNS accepted the message, the
//!   invocation died before recording it sent), which may page twice and is counted apart.
//!
//! Outcome per case: *converged* (dns-pinned, DNS on the verified new primary, a message for every
//! phase) or *consistent stop* (no invariant broken and a human is told: a FailoverFailed /
//! FailoverRefused / ApprovalRequested message, or a dead-lettered delivery). Anything else fails
//! the test. The figures go to `$RELIABILITY_DIR/fault-matrix.json` (RELIABILITY.md).
//!
//! Run: `cargo test -p replica-promoter --test fault_matrix -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use failover_adapters::control::{
    DatabaseControl, FakeControl, FakeWritability, MutationAck, WritabilityCheck,
};
use failover_adapters::dns::{Dns, FakeDns};
use failover_adapters::fakes::{FakeBus, FakeCanary, FakeLedger, FakeMetrics, FakeTopology};
use failover_adapters::mysql::Writability;
use failover_adapters::notify::{
    Claim, FakeNotificationLog, FakeNotifications, NotificationLog, Notifications,
};
use failover_adapters::ports::{
    Clock, ClusterInfo, ClusterMember, DatabaseTopology, ErrorKind, EventBus, FixedClock,
    GlobalClusterInfo, InstanceInfo, LagMetric, Ledger, Metrics, PortError,
};
use failover_policy::config::{DbRef, SiteConfig};
use failover_policy::evidence::CanaryResult;
use failover_policy::notice::{Notice, NoticeKey};
use failover_policy::pin::{
    ChangeInfo, ChangeStatus, FailoverRole, RecordChange, RecordQuery, RecordSet,
};
use failover_policy::signal::AlarmState;
use failover_policy::{Config, DomainEvent, EventType, Phase, SiteState};
use lambda_runtime::{Context, LambdaEvent};
use replica_promoter::handler::Pacer;
use serde_json::{json, Value};

// ---------------------------------------------------------------- faults

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Func {
    Evaluator,
    Promoter,
    Pinner,
    Notifier,
}

impl Func {
    const ALL: [Func; 4] = [
        Func::Evaluator,
        Func::Promoter,
        Func::Pinner,
        Func::Notifier,
    ];

    fn name(self) -> &'static str {
        match self {
            Func::Evaluator => "alarm-evaluator",
            Func::Promoter => "replica-promoter",
            Func::Pinner => "dns-pinner",
            Func::Notifier => "notifier",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fault {
    Throttling,
    ServerError,
    Timeout,
    AccessDenied,
    CrashAfterSuccess,
}

impl Fault {
    const ALL: [Fault; 5] = [
        Fault::Throttling,
        Fault::ServerError,
        Fault::Timeout,
        Fault::AccessDenied,
        Fault::CrashAfterSuccess,
    ];

    /// The error the real adapter returns for this fault (see `port_error` and its tests).
    fn error(self, op: &'static str) -> PortError {
        let (kind, msg) = match self {
            Fault::Throttling => (ErrorKind::Throttled, "ThrottlingException: Rate exceeded"),
            Fault::ServerError => (
                ErrorKind::Unavailable,
                "InternalFailure: HTTP 500 (injected)",
            ),
            Fault::Timeout => (
                ErrorKind::Timeout,
                "operation timeout: the request was sent, no response (injected)",
            ),
            Fault::AccessDenied => (
                ErrorKind::AccessDenied,
                "AccessDeniedException: not authorized to perform this action (injected)",
            ),
            Fault::CrashAfterSuccess => return dead(op),
        };
        PortError::new(kind, op, msg)
    }
}

/// What a dead process's "calls" return: nothing reaches AWS and the result is thrown away.
fn dead(op: &'static str) -> PortError {
    PortError::new(
        ErrorKind::Unavailable,
        op,
        "the process died (injected crash)",
    )
}

#[derive(Debug, Clone, Copy)]
struct Plan {
    func: Func,
    op: &'static str,
    /// 1-based index of the call of `op` by `func` that fails.
    k: usize,
    fault: Fault,
}

/// One function's view of AWS: counts its calls per operation and fires the case's fault.
struct Injector {
    plan: Option<Plan>,
    counts: Mutex<BTreeMap<&'static str, usize>>,
    /// Set when the process "died" in this invocation; reset by the driver per invocation.
    crashed: AtomicBool,
    fired: AtomicUsize,
}

impl Injector {
    fn new(func: Func, plan: Option<Plan>) -> Self {
        Self {
            plan: plan.filter(|p| p.func == func),
            counts: Mutex::default(),
            crashed: AtomicBool::new(false),
            fired: AtomicUsize::new(0),
        }
    }

    async fn call<T, F>(&self, op: &'static str, call: F) -> Result<T, PortError>
    where
        F: Future<Output = Result<T, PortError>>,
    {
        if self.crashed.load(Ordering::SeqCst) {
            return Err(dead(op));
        }
        let n = {
            let mut c = self.counts.lock().unwrap();
            let n = c.entry(op).or_default();
            *n += 1;
            *n
        };
        let hit = self
            .plan
            .filter(|p| p.op == op && (n == p.k || (p.fault == Fault::AccessDenied && n > p.k)));
        let Some(plan) = hit else {
            return call.await;
        };
        self.fired.fetch_add(1, Ordering::SeqCst);
        match plan.fault {
            // Rejected before AWS acted: the request future is dropped unpolled.
            Fault::Throttling | Fault::ServerError | Fault::AccessDenied => {
                Err(plan.fault.error(op))
            }
            // Applied, but the answer never came back.
            Fault::Timeout => {
                let _ = call.await;
                Err(plan.fault.error(op))
            }
            Fault::CrashAfterSuccess => {
                let _ = call.await;
                self.crashed.store(true, Ordering::SeqCst);
                Err(dead(op))
            }
        }
    }

    /// A non-AWS call (the MySQL write check): never faulted, but a dead process makes none.
    fn alive(&self, op: &'static str) -> Result<(), PortError> {
        if self.crashed.load(Ordering::SeqCst) {
            Err(dead(op))
        } else {
            Ok(())
        }
    }
}

/// Every AWS call of a clean run, per function and operation.
type CallCounts = BTreeMap<(Func, &'static str), usize>;

// ---------------------------------------------------------------- fault-injecting ports

/// A port of one function: the shared fake behind that function's injector.
struct Faulty<T: ?Sized> {
    inner: Arc<T>,
    inj: Arc<Injector>,
}

fn faulty<T: ?Sized>(inner: &Arc<T>, inj: &Arc<Injector>) -> Arc<Faulty<T>> {
    Arc::new(Faulty {
        inner: inner.clone(),
        inj: inj.clone(),
    })
}

#[async_trait]
impl Ledger for Faulty<FakeLedger> {
    async fn load(&self, site: &str) -> Result<SiteState, PortError> {
        self.inj.call("GetItem", self.inner.load(site)).await
    }
    async fn commit(&self, next: &SiteState) -> Result<(), PortError> {
        self.inj.call("PutItem", self.inner.commit(next)).await
    }
}

#[async_trait]
impl EventBus for Faulty<FakeBus> {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PortError> {
        self.inj.call("PutEvents", self.inner.publish(events)).await
    }
}

#[async_trait]
impl DatabaseTopology for Faulty<FakeTopology> {
    async fn instance(&self, db: &DbRef) -> Result<Option<InstanceInfo>, PortError> {
        self.inj
            .call("DescribeDBInstances", self.inner.instance(db))
            .await
    }
    async fn cluster(&self, id: &str, region: &str) -> Result<Option<ClusterInfo>, PortError> {
        self.inj
            .call("DescribeDBClusters", self.inner.cluster(id, region))
            .await
    }
    async fn global_cluster(
        &self,
        id: &str,
        region: &str,
    ) -> Result<Option<GlobalClusterInfo>, PortError> {
        self.inj
            .call(
                "DescribeGlobalClusters",
                self.inner.global_cluster(id, region),
            )
            .await
    }
}

#[async_trait]
impl Metrics for Faulty<FakeMetrics> {
    async fn alarm_states(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<std::collections::HashMap<String, AlarmState>, PortError> {
        self.inj
            .call("DescribeAlarms", self.inner.alarm_states(region, names))
            .await
    }
    async fn replica_lag(
        &self,
        db: &DbRef,
        metric: LagMetric,
        now: DateTime<Utc>,
    ) -> Result<Option<failover_policy::evidence::LagReading>, PortError> {
        self.inj
            .call("GetMetricData", self.inner.replica_lag(db, metric, now))
            .await
    }
}

/// Route 53 for the pinner: faulted, and remembering every change Route 53 accepted (even when
/// its answer was lost) and every change the pinner saw `INSYNC`.
struct FaultyDns {
    inner: Arc<FakeDns>,
    inj: Arc<Injector>,
    accepted: Mutex<Vec<String>>,
    insync_seen: Mutex<BTreeSet<String>>,
}

impl FaultyDns {
    /// Whether the last change Route 53 accepted was seen `INSYNC` (true if none was made).
    fn last_change_insync(&self) -> bool {
        self.accepted
            .lock()
            .unwrap()
            .last()
            .is_none_or(|id| self.insync_seen.lock().unwrap().contains(id))
    }
}

#[async_trait]
impl Dns for FaultyDns {
    async fn record_sets(&self, q: &RecordQuery) -> Result<Vec<RecordSet>, PortError> {
        self.inj
            .call("ListResourceRecordSets", self.inner.record_sets(q))
            .await
    }
    async fn change(
        &self,
        zone_id: &str,
        changes: &[RecordChange],
        comment: &str,
    ) -> Result<ChangeInfo, PortError> {
        let send = async {
            let r = self.inner.change(zone_id, changes, comment).await;
            if let Ok(i) = &r {
                self.accepted.lock().unwrap().push(i.id.clone());
                if i.status == ChangeStatus::Insync {
                    self.insync_seen.lock().unwrap().insert(i.id.clone());
                }
            }
            r
        };
        self.inj.call("ChangeResourceRecordSets", send).await
    }
    async fn change_status(&self, change_id: &str) -> Result<ChangeInfo, PortError> {
        let r = self
            .inj
            .call("GetChange", self.inner.change_status(change_id))
            .await;
        if let Ok(i) = &r {
            if i.status == ChangeStatus::Insync {
                self.insync_seen.lock().unwrap().insert(i.id.clone());
            }
        }
        r
    }
    async fn name_servers(&self, zone_id: &str) -> Result<Vec<String>, PortError> {
        self.inj
            .call("GetHostedZone", self.inner.name_servers(zone_id))
            .await
    }
    async fn health_check_status(
        &self,
        id: &str,
    ) -> Result<failover_policy::unpin::phases::CheckStatus, PortError> {
        self.inj
            .call("GetHealthCheckStatus", self.inner.health_check_status(id))
            .await
    }
}

#[async_trait]
impl Notifications for Faulty<FakeNotifications> {
    async fn publish(&self, notice: &Notice) -> Result<String, PortError> {
        self.inj.call("Publish", self.inner.publish(notice)).await
    }
}

#[async_trait]
impl NotificationLog for Faulty<FakeNotificationLog> {
    async fn claim(
        &self,
        key: &NoticeKey,
        token: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Claim, PortError> {
        self.inj
            .call("PutItem", self.inner.claim(key, token, now, lease))
            .await
    }
    async fn mark_sent(
        &self,
        key: &NoticeKey,
        token: &str,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        self.inj
            .call(
                "UpdateItem",
                self.inner.mark_sent(key, token, message_id, now),
            )
            .await
    }
    async fn release(&self, key: &NoticeKey, token: &str) -> Result<(), PortError> {
        self.inj
            .call("DeleteItem", self.inner.release(key, token))
            .await
    }
}

/// The promoter's RDS mutations: faulted, and each one RDS accepted is noted with the ledger's
/// epoch at that moment (the "at most one promotion per epoch" invariant).
struct FaultyControl {
    inner: FakeControl,
    inj: Arc<Injector>,
    ledger: Arc<FakeLedger>,
    site: String,
    accepted: Mutex<Vec<(u64, String)>>,
}

impl FaultyControl {
    async fn send<F>(&self, op: &'static str, call: F) -> Result<MutationAck, PortError>
    where
        F: Future<Output = Result<MutationAck, PortError>>,
    {
        let before = self.inner.calls.lock().unwrap().len();
        let r = self.inj.call(op, call).await;
        let calls = self.inner.calls.lock().unwrap().clone();
        let epoch = self.ledger.get(&self.site).map_or(0, |s| s.epoch);
        for c in &calls[before..] {
            self.accepted.lock().unwrap().push((epoch, c.clone()));
        }
        r
    }
}

#[async_trait]
impl DatabaseControl for FaultyControl {
    async fn promote_read_replica(&self, i: &DbRef) -> Result<MutationAck, PortError> {
        self.send("PromoteReadReplica", self.inner.promote_read_replica(i))
            .await
    }
    async fn failover_db_cluster(
        &self,
        c: &str,
        r: &str,
        t: &str,
    ) -> Result<MutationAck, PortError> {
        self.send("FailoverDBCluster", self.inner.failover_db_cluster(c, r, t))
            .await
    }
    async fn switchover_global_cluster(
        &self,
        g: &str,
        r: &str,
        t: &str,
    ) -> Result<MutationAck, PortError> {
        self.send(
            "SwitchoverGlobalCluster",
            self.inner.switchover_global_cluster(g, r, t),
        )
        .await
    }
    async fn failover_global_cluster(
        &self,
        g: &str,
        r: &str,
        t: &str,
        a: bool,
    ) -> Result<MutationAck, PortError> {
        self.send(
            "FailoverGlobalCluster",
            self.inner.failover_global_cluster(g, r, t, a),
        )
        .await
    }
    async fn reboot_with_failover(&self, i: &DbRef) -> Result<MutationAck, PortError> {
        self.send("RebootDBInstance", self.inner.reboot_with_failover(i))
            .await
    }
}

/// The write check (MySQL, not AWS: not faulted): remembers every host it found writable.
struct ObservedWritability {
    inner: FakeWritability,
    inj: Arc<Injector>,
    writable_hosts: Mutex<BTreeSet<String>>,
}

#[async_trait]
impl WritabilityCheck for ObservedWritability {
    async fn check(&self, site: &SiteConfig, endpoint: &str) -> Result<Writability, PortError> {
        self.inj.alive("CheckWritable")?;
        let r = self.inner.check(site, endpoint).await;
        if matches!(&r, Ok(w) if w.is_writable()) {
            let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
            self.writable_hosts.lock().unwrap().insert(host.to_owned());
        }
        r
    }
    async fn position(
        &self,
        site: &SiteConfig,
        endpoint: &str,
    ) -> Result<Option<failover_policy::gtid::Position>, PortError> {
        self.inj.alive("ReadPosition")?;
        self.inner.position(site, endpoint).await
    }
}

/// Virtual real time for the promoter: each sleep moves its Lambda clock and the shared clock.
struct FakePacer {
    now: Mutex<SystemTime>,
    clock: Arc<FixedClock>,
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
    }
    fn jitter(&self) -> f64 {
        0.5
    }
}

// ---------------------------------------------------------------- scenarios

const ACCOUNT: &str = "123456789012";
const EXAMPLE: &str = include_str!("../../../infra/sites.example.json");

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// `orders`: cross-region RDS read replicas, CNAME mode; the primary's region goes dark.
    ReadReplica,
    /// `billing`: an Aurora cluster, failover-pin mode; the writer instance fails.
    AuroraCluster,
}

impl Scenario {
    const ALL: [Scenario; 2] = [Scenario::ReadReplica, Scenario::AuroraCluster];

    fn site(self) -> &'static str {
        match self {
            Scenario::ReadReplica => "orders",
            Scenario::AuroraCluster => "billing",
        }
    }

    /// The example configuration reduced to this scenario's site, on automatic approval.
    fn config(self) -> Config {
        let mut doc: Value = serde_json::from_str(EXAMPLE).unwrap();
        let sites = doc["sites"].as_array().unwrap().clone();
        let mut site = sites.into_iter().find(|s| s["id"] == self.site()).unwrap();
        site["approval"] = json!("auto");
        // The example's billing site decides on a quorum of 1 (it awaits approval there); on
        // auto that has to be said explicitly.
        site["thresholds"]["allow_single_vote"] = json!(true);
        doc["sites"] = json!([site]);
        Config::from_document(&doc.to_string()).unwrap()
    }

    fn zone(self) -> &'static str {
        match self {
            Scenario::ReadReplica => "Z0ORDERSEXAMPLE",
            Scenario::AuroraCluster => "Z0BILLINGEXAMPLE",
        }
    }

    fn old_host(self) -> String {
        match self {
            Scenario::ReadReplica => host("orders-primary", "us-east-1"),
            Scenario::AuroraCluster => host("billing-1", "us-west-2"),
        }
    }

    /// The writer record the pinner manages.
    fn writer_record(self, dns: &FakeDns) -> Option<RecordSet> {
        dns.records(self.zone()).into_iter().find(|r| match self {
            Scenario::ReadReplica => r.set_identifier.is_none(),
            Scenario::AuroraCluster => r.set_identifier.as_deref() == Some("billing-primary"),
        })
    }

    fn first_alarm(self) -> &'static str {
        match self {
            Scenario::ReadReplica => "orders-primary-availability",
            Scenario::AuroraCluster => "billing-writer-availability",
        }
    }
}

fn host(id: &str, region: &str) -> String {
    format!("{id}.cabcdefghijk.{region}.rds.amazonaws.com")
}

fn instance(id: &str, region: &str, source: Option<&str>) -> InstanceInfo {
    InstanceInfo {
        id: id.into(),
        status: "available".into(),
        endpoint: Some((host(id, region), 3306)),
        replication_source: source.map(String::from),
        ..Default::default()
    }
}

fn cname(name: &str, value: &str) -> RecordSet {
    RecordSet {
        name: name.into(),
        record_type: "CNAME".into(),
        set_identifier: None,
        failover: None,
        ttl: Some(300),
        values: vec![value.into()],
        health_check_id: None,
        alias_target: None,
    }
}

// ---------------------------------------------------------------- the world

#[derive(Debug, Clone)]
struct Delivery {
    func: Func,
    payload: Value,
    /// What makes two deliveries "the same": the signal id or the domain event's dedupe key.
    key: String,
    /// 0 = first delivery; Lambda retries a failed async invocation twice.
    attempt: u32,
}

/// Lambda's async retries after a failed invocation (then the dead-letter queue).
const LAMBDA_RETRIES: u32 = 2;
/// How long each case is watched (virtual time): past the promotion deadline (60 min) plus the
/// longest cooldown (60 min), so a second decision after a failed epoch would be seen.
const OBSERVE: chrono::Duration = chrono::Duration::hours(3);
/// A bound on the ticks of one case.
const MAX_TICKS: usize = 300;
/// Ticks without progress after which the clock skips ahead by [`QUIET_STEP`] seconds per tick.
const QUIET_TICKS: usize = 3;
const QUIET_STEP: i64 = 15 * 60;

struct World {
    scenario: Scenario,
    site: String,
    clock: Arc<FixedClock>,
    topology: Arc<FakeTopology>,
    metrics: Arc<FakeMetrics>,
    canary: Arc<FakeCanary>,
    ledger: Arc<FakeLedger>,
    bus: Arc<FakeBus>,
    dns: Arc<FakeDns>,
    pinner_dns: Arc<FaultyDns>,
    sns: Arc<FakeNotifications>,
    control: Arc<FaultyControl>,
    writability: Arc<ObservedWritability>,
    pacer: Arc<FakePacer>,
    injectors: BTreeMap<Func, Arc<Injector>>,
    evaluator: alarm_evaluator::handler::Deps,
    promoter: replica_promoter::handler::Deps,
    pinner: dns_pinner::handler::Deps,
    notifier: notifier::handler::Deps,
    queue: VecDeque<Delivery>,
    bus_cursor: usize,
    delivered: HashSet<(Func, String)>,
    dead_letters: Vec<(Func, String)>,
    /// DNS repoints (the writer record's value changed) with the ledger epoch at the time.
    repoints: Vec<(u64, String)>,
    stats: CaseStats,
    violations: Vec<String>,
    ticks: usize,
    /// Ledger commits already checked, and the last of them.
    ledger_cursor: usize,
    last_commit: LastCommit,
    /// The first epoch the ledger committed `dns-pinned` for: from then on DNS must never point
    /// at the old primary again.
    pinned_epoch: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct LastCommit {
    epoch: u64,
    phase: Phase,
}

#[derive(Debug, Default, Clone)]
struct CaseStats {
    invocations: usize,
    redeliveries: usize,
    duplicates_collapsed: usize,
    unwanted_mutations: usize,
    documented_duplicate_pages: usize,
}

impl World {
    fn new(scenario: Scenario, plan: Option<Plan>) -> Self {
        let cfg = || scenario.config();
        let clock = Arc::new(FixedClock::at(t0()));
        let topology = Arc::new(FakeTopology::default());
        let metrics = Arc::new(FakeMetrics::default());
        let canary = Arc::new(FakeCanary::default());
        let ledger = Arc::new(FakeLedger::default());
        let bus = Arc::new(FakeBus::default());
        let dns = Arc::new(FakeDns::default());
        let sns = Arc::new(FakeNotifications::default());
        let claims = Arc::new(FakeNotificationLog::default());
        let site = scenario.site().to_string();
        canary.set(&site, CanaryResult::Reachable { latency_ms: 2 });
        match scenario {
            Scenario::ReadReplica => {
                topology.set_instance(InstanceInfo {
                    replicas: vec![
                        format!("arn:aws:rds:us-west-2:{ACCOUNT}:db:orders-replica-1"),
                        format!("arn:aws:rds:us-west-2:{ACCOUNT}:db:orders-replica-2"),
                    ],
                    ..instance("orders-primary", "us-east-1", None)
                });
                let src = format!("arn:aws:rds:us-east-1:{ACCOUNT}:db:orders-primary");
                topology.set_instance(instance("orders-replica-1", "us-west-2", Some(&src)));
                topology.set_instance(instance("orders-replica-2", "us-west-2", Some(&src)));
                for a in [
                    "orders-primary-availability",
                    "orders-primary-canary",
                    "orders-replica-lag",
                    "orders-composite-outage",
                ] {
                    metrics.set_alarm("us-west-2", a, AlarmState::Ok);
                }
                metrics.set_lag("orders-replica-1", 1.0);
                metrics.set_lag("orders-replica-2", 3.0);
                dns.put(
                    scenario.zone(),
                    cname("db.orders.example.com", &scenario.old_host()),
                );
            }
            Scenario::AuroraCluster => {
                for id in ["billing-1", "billing-2"] {
                    topology.set_instance(InstanceInfo {
                        cluster_id: Some("billing-cluster".into()),
                        ..instance(id, "us-west-2", None)
                    });
                }
                topology.clusters.lock().unwrap().insert(
                    "billing-cluster".into(),
                    ClusterInfo {
                        id: "billing-cluster".into(),
                        endpoint: None,
                        arn: Some(format!(
                            "arn:aws:rds:us-west-2:{ACCOUNT}:cluster:billing-cluster"
                        )),
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
                metrics.set_alarm("us-west-2", "billing-writer-availability", AlarmState::Ok);
                metrics.set_lag("billing-2", 0.02);
                for (set, role, value, hc) in [
                    (
                        "billing-primary",
                        FailoverRole::Primary,
                        scenario.old_host(),
                        "hc-billing-primary",
                    ),
                    (
                        "billing-secondary",
                        FailoverRole::Secondary,
                        "billing-dr.example.com".to_string(),
                        "hc-billing-secondary",
                    ),
                ] {
                    dns.put(
                        scenario.zone(),
                        RecordSet {
                            set_identifier: Some(set.into()),
                            failover: Some(role),
                            health_check_id: Some(hc.into()),
                            ttl: Some(60),
                            ..cname("db.billing.example.com", &value)
                        },
                    );
                }
            }
        }
        let injectors: BTreeMap<Func, Arc<Injector>> = Func::ALL
            .into_iter()
            .map(|f| (f, Arc::new(Injector::new(f, plan))))
            .collect();
        let inj = |f: Func| injectors[&f].clone();
        let control = Arc::new(FaultyControl {
            inner: FakeControl::new(topology.clone()),
            inj: inj(Func::Promoter),
            ledger: ledger.clone(),
            site: site.clone(),
            accepted: Mutex::default(),
        });
        let writability = Arc::new(ObservedWritability {
            inner: FakeWritability::new(topology.clone()),
            inj: inj(Func::Promoter),
            writable_hosts: Mutex::default(),
        });
        let pacer = Arc::new(FakePacer {
            now: Mutex::new(UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
            clock: clock.clone(),
        });
        let e = inj(Func::Evaluator);
        let evaluator = alarm_evaluator::handler::Deps {
            cfg: cfg(),
            cfg_object_version: None,
            topology: faulty(&topology, &e),
            metrics: faulty(&metrics, &e),
            ledger: faulty(&ledger, &e),
            bus: faulty(&bus, &e),
            canary: canary.clone(),
            clock: clock.clone(),
            fanout: alarm_evaluator::handler::Fanout::default(),
            fence: Arc::new(failover_adapters::fence::FakeFence::default()),
            old_primary: Arc::new(failover_adapters::fence::FakeOldPrimarySql::default()),
            rechecks: Arc::new(failover_adapters::recheck::RecordedRechecks::default()),
            metric_lines: Arc::new(failover_adapters::fakes::RecordedLines::default()),
        };
        let p = inj(Func::Promoter);
        let promoter = replica_promoter::handler::Deps {
            cfg: cfg(),
            topology: faulty(&topology, &p),
            metrics: faulty(&metrics, &p),
            control: control.clone(),
            writability: writability.clone(),
            canary: canary.clone(),
            ledger: faulty(&ledger, &p),
            bus: faulty(&bus, &p),
            clock: clock.clone(),
            pacer: pacer.clone(),
            fallback_budget: replica_promoter::handler::DEFAULT_BUDGET,
        };
        let d = inj(Func::Pinner);
        let pinner_dns = Arc::new(FaultyDns {
            inner: dns.clone(),
            inj: d.clone(),
            accepted: Mutex::default(),
            insync_seen: Mutex::default(),
        });
        let pinner = dns_pinner::handler::Deps {
            cfg: cfg(),
            ledger: faulty(&ledger, &d),
            bus: faulty(&bus, &d),
            dns: pinner_dns.clone(),
            resolve: dns.clone(),
            switch: Arc::new(failover_adapters::switch::FakeSwitch::new(
                dns.clone(),
                "hc-switch",
            )),
            clock: clock.clone(),
            jitter: Arc::new(|| 0.5),
        };
        let n = inj(Func::Notifier);
        let tokens = Arc::new(AtomicU64::new(0));
        let notifier = notifier::handler::Deps {
            ledger: faulty(&ledger, &n),
            log: faulty(&claims, &n),
            channel: faulty(&sns, &n),
            clock: clock.clone(),
            token: Arc::new(move || format!("token-{}", tokens.fetch_add(1, Ordering::SeqCst))),
        };
        Self {
            scenario,
            site,
            clock,
            topology,
            metrics,
            canary,
            ledger,
            bus,
            dns,
            pinner_dns,
            sns,
            control,
            writability,
            pacer,
            injectors,
            evaluator,
            promoter,
            pinner,
            notifier,
            queue: VecDeque::new(),
            bus_cursor: 0,
            delivered: HashSet::new(),
            dead_letters: vec![],
            repoints: vec![],
            stats: CaseStats::default(),
            violations: vec![],
            ticks: 0,
            ledger_cursor: 0,
            last_commit: LastCommit {
                epoch: 0,
                phase: Phase::Idle,
            },
            pinned_epoch: None,
        }
    }

    /// The primary is lost the way this scenario loses it.
    fn lose_primary(&self) {
        let region = "us-west-2";
        match self.scenario {
            Scenario::ReadReplica => {
                self.topology.kill_region("us-east-1");
                self.metrics
                    .set_alarm(region, "orders-primary-availability", AlarmState::Alarm);
                self.metrics
                    .set_alarm(region, "orders-primary-canary", AlarmState::Alarm);
                self.metrics.set_lag("orders-replica-1", -1.0);
                self.metrics.set_lag("orders-replica-2", -1.0);
            }
            Scenario::AuroraCluster => {
                self.topology.set_status("billing-1", "failed");
                self.metrics
                    .set_alarm(region, "billing-writer-availability", AlarmState::Alarm);
            }
        }
        self.canary.set(
            &self.site,
            CanaryResult::Unreachable {
                error: "connection refused".into(),
            },
        );
    }

    // ------------------------------------------------------------ delivery

    fn enqueue(&mut self, func: Func, payload: Value, key: String) {
        self.queue.push_back(Delivery {
            func,
            payload,
            key,
            attempt: 0,
        });
    }

    /// Routes newly published domain events the way the template's rules do.
    fn route_new_events(&mut self) {
        let new: Vec<DomainEvent> = self.bus.published.lock().unwrap()[self.bus_cursor..].to_vec();
        self.bus_cursor += new.len();
        for e in new {
            let payload = envelope(&e);
            let key = e.dedupe_key();
            match e.event_type {
                EventType::FailoverDecided | EventType::PromotionContinued => {
                    self.enqueue(Func::Promoter, payload.clone(), key.clone())
                }
                EventType::ReplicaPromoted | EventType::DnsPinContinued => {
                    self.enqueue(Func::Pinner, payload.clone(), key.clone())
                }
                _ => {}
            }
            self.enqueue(Func::Notifier, payload, key);
        }
    }

    /// Whether this delivery's effect is already in the world (so a re-run must add nothing),
    /// and a fingerprint of that effect to compare after the invocation.
    fn effect(&self, d: &Delivery) -> (bool, usize) {
        let epoch = self.ledger.get(&self.site).map_or(0, |s| s.epoch);
        match d.func {
            Func::Evaluator => {
                let done = self
                    .ledger
                    .get(&self.site)
                    .is_some_and(|s| s.recent_signals.contains(&d.key));
                (done, phase_changes(&self.ledger.commits.lock().unwrap()))
            }
            Func::Promoter => {
                let n = self.control.accepted.lock().unwrap().len();
                let done = self
                    .control
                    .accepted
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|(e, _)| *e == epoch);
                (done, n)
            }
            Func::Pinner => {
                let done = self.repoints.iter().any(|(e, _)| *e == epoch);
                (done, self.repoints.len())
            }
            Func::Notifier => {
                let n = self
                    .sns
                    .published
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|m| m.key.site == self.site && notice_id(&m.key) == d.key)
                    .count();
                (n > 0, n)
            }
        }
    }

    async fn invoke(&mut self, d: &Delivery) -> Result<(), String> {
        let inj = self.injectors[&d.func].clone();
        inj.crashed.store(false, Ordering::SeqCst);
        let dns_before = self.scenario.writer_record(&self.dns);
        let r: Result<(), String> = match d.func {
            Func::Evaluator => alarm_evaluator::handler::handle(&self.evaluator, d.payload.clone())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Func::Promoter => {
                let mut ctx = Context::default();
                let deadline = self.pacer.now() + Duration::from_secs(300);
                ctx.deadline = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
                replica_promoter::handler::handle(
                    &self.promoter,
                    LambdaEvent::new(d.payload.clone(), ctx),
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
            }
            Func::Pinner => {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(115);
                dns_pinner::handler::handle(&self.pinner, d.payload.clone(), deadline)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Func::Notifier => notifier::handler::handle(&self.notifier, d.payload.clone())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        let dns_after = self.scenario.writer_record(&self.dns);
        if dns_before.map(|r| r.values) != dns_after.as_ref().map(|r| r.values.clone()) {
            let epoch = self.ledger.get(&self.site).map_or(0, |s| s.epoch);
            let to = dns_after.map(|r| r.values.join(",")).unwrap_or_default();
            self.repoints.push((epoch, to));
        }
        if inj.crashed.load(Ordering::SeqCst) {
            return Err("process died".into());
        }
        r
    }

    /// Runs one delivery (and its Lambda retries, queued), then routes what it published and
    /// checks every invariant.
    async fn deliver(&mut self, d: Delivery) {
        if d.attempt > 0 {
            // Lambda's async retries come about one, then two minutes later.
            self.clock.advance(60 * i64::from(d.attempt));
        }
        let redelivery = !self.delivered.insert((d.func, d.key.clone()));
        let (already, before) = self.effect(&d);
        self.stats.invocations += 1;
        let result = self.invoke(&d).await;
        let (_, after) = self.effect(&d);
        if redelivery {
            self.stats.redeliveries += 1;
            if already && after == before {
                self.stats.duplicates_collapsed += 1;
            }
        }
        if result.is_err() {
            if d.attempt < LAMBDA_RETRIES {
                self.queue.push_back(Delivery {
                    attempt: d.attempt + 1,
                    ..d
                });
            } else {
                self.dead_letters.push((d.func, d.key));
            }
        }
        self.route_new_events();
        self.check_invariants();
    }

    async fn pump(&mut self) {
        let mut guard = 0;
        while let Some(d) = self.queue.pop_front() {
            guard += 1;
            assert!(guard < 10_000, "delivery storm: {:?}", d.key);
            self.deliver(d).await;
        }
    }

    async fn signal(&mut self, payload: Value) {
        let key = payload["id"].as_str().unwrap().to_owned();
        self.enqueue(Func::Evaluator, payload, key);
        self.pump().await;
    }

    async fn tick(&mut self) {
        self.ticks += 1;
        let id = format!("tick-{}", self.ticks);
        let p = tick_event(&id, self.clock.now());
        self.signal(p).await;
    }

    /// The whole incident: a healthy tick, the primary lost, its alarm, then the scheduled tick
    /// every minute — for [`OBSERVE`] after the start, long enough for every cooldown to expire
    /// (a failed epoch may be followed by another decision). Once nothing has moved for a few
    /// ticks, the minutes in between are skipped ([`QUIET_STEP`]); the evaluator's windows are
    /// judged on timestamps, so a later decision is still seen.
    ///
    /// Returns the AWS calls made up to the moment the incident first settled in dns-pinned
    /// (what the clean run hands the matrix).
    async fn run(&mut self) -> CallCounts {
        self.tick().await;
        self.lose_primary();
        self.clock.advance(30);
        let a = alarm_event("alarm-1", self.scenario.first_alarm(), self.clock.now());
        self.signal(a).await;
        let end = t0() + OBSERVE;
        let mut at_pinned = None;
        let mut quiet = 0;
        let mut last = self.progress();
        while self.clock.now() < end && self.ticks < MAX_TICKS {
            self.clock
                .advance(if quiet >= QUIET_TICKS { QUIET_STEP } else { 60 });
            self.tick().await;
            let now = self.progress();
            quiet = if now == last { quiet + 1 } else { 0 };
            last = now;
            let pinned = self.ledger.get(&self.site).is_some_and(|s| {
                s.phase == Phase::DnsPinned && s.outbox.is_empty() && self.queue.is_empty()
            });
            if pinned && at_pinned.is_none() {
                at_pinned = Some(self.calls());
            }
        }
        at_pinned.unwrap_or_else(|| self.calls())
    }

    /// What "something moved" means: the ledger's epoch and phase, and the events published.
    fn progress(&self) -> (u64, Phase, usize) {
        let st = self.ledger.get(&self.site);
        (
            st.as_ref().map_or(0, |s| s.epoch),
            st.map_or(Phase::Idle, |s| s.phase),
            self.bus.published.lock().unwrap().len(),
        )
    }

    // ------------------------------------------------------------ invariants

    fn violate(&mut self, what: String) {
        if !self.violations.contains(&what) {
            self.violations.push(what);
        }
    }

    fn check_invariants(&mut self) {
        // 1. At most one promotion mutation per epoch.
        let mut per_epoch: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for (e, c) in self.control.accepted.lock().unwrap().iter() {
            per_epoch.entry(*e).or_default().push(c.clone());
        }
        let mut unwanted = 0;
        for (e, calls) in &per_epoch {
            if calls.len() > 1 {
                self.violate(format!(
                    "epoch {e}: {} promotion mutations: {calls:?}",
                    calls.len()
                ));
            }
        }
        // ... and never two promotions at all: a promotion RDS applied makes a second writer
        // the moment another one is promoted, whichever epoch asks.
        let all: Vec<(u64, String)> = self.control.accepted.lock().unwrap().clone();
        if all.len() > 1 {
            unwanted += all.len() - 1;
            self.violate(format!("{} promotions: {all:?}", all.len()));
        }
        // 2. DNS points only at the old primary or at a host a write check found writable, and
        //    is repointed at most once per epoch.
        let writable = self.writability.writable_hosts.lock().unwrap().clone();
        if let Some(r) = self.scenario.writer_record(&self.dns) {
            for v in &r.values {
                let v = v.trim_end_matches('.');
                if v != self.scenario.old_host() && !writable.contains(v) {
                    self.violate(format!("DNS points at {v}, never verified writable"));
                }
            }
        }
        let mut repoints: BTreeMap<u64, usize> = BTreeMap::new();
        for (e, _) in &self.repoints {
            *repoints.entry(*e).or_default() += 1;
        }
        for (e, n) in repoints {
            if n > 1 {
                unwanted += n - 1;
                self.violate(format!("epoch {e}: DNS repointed {n} times"));
            }
        }
        self.stats.unwanted_mutations = unwanted;
        // 3. The ledger: legal phase moves only, epochs never go back, `promoted` only with a
        //    verified writable endpoint, `dns-pinned` only when Route 53 said INSYNC.
        let commits: Vec<SiteState> =
            self.ledger.commits.lock().unwrap()[self.ledger_cursor..].to_vec();
        self.ledger_cursor += commits.len();
        for c in &commits {
            let prev = self.last_commit;
            if c.epoch < prev.epoch {
                self.violate(format!("epoch went back {} -> {}", prev.epoch, c.epoch));
            } else if c.epoch == prev.epoch {
                if !prev.phase.can_move_to(c.phase) {
                    self.violate(format!(
                        "epoch {}: phase skipped {} -> {}",
                        c.epoch, prev.phase, c.phase
                    ));
                }
            } else if prev.phase.is_open()
                || !matches!(c.phase, Phase::Suspected | Phase::Promoting)
            {
                self.violate(format!(
                    "epoch {} opened from {} at epoch {} into {}",
                    c.epoch, prev.phase, prev.epoch, c.phase
                ));
            }
            if c.phase == Phase::Promoted && prev.phase != Phase::Promoted {
                let verified = c.promotion.as_ref().is_some_and(|p| {
                    p.epoch == c.epoch
                        && p.writable_verified_at.is_some()
                        && p.endpoint.as_deref().is_some_and(|e| {
                            writable.contains(e.rsplit_once(':').map_or(e, |(h, _)| h))
                        })
                });
                if !verified {
                    self.violate(format!(
                        "epoch {}: promoted without a verified write",
                        c.epoch
                    ));
                }
            }
            if c.phase == Phase::DnsPinned
                && prev.phase != Phase::DnsPinned
                && (c.dns.as_ref().is_none_or(|d| d.insync_at.is_none())
                    || !self.pinner_dns.last_change_insync())
            {
                self.violate(format!(
                    "epoch {}: dns-pinned before Route 53 said INSYNC (changes {:?}, seen INSYNC {:?})",
                    c.epoch,
                    self.pinner_dns.accepted.lock().unwrap(),
                    self.pinner_dns.insync_seen.lock().unwrap()
                ));
            }
            self.last_commit = LastCommit {
                epoch: c.epoch,
                phase: c.phase,
            };
            if c.phase == Phase::DnsPinned && self.pinned_epoch.is_none() {
                self.pinned_epoch = Some(c.epoch);
            }
        }
        // 3b. Once pinned, the writer name never points at the old primary again (the pin is
        //     what keeps a returning old primary from winning writes back: seed 002).
        if let (Some(e), Some(r)) = (self.pinned_epoch, self.scenario.writer_record(&self.dns)) {
            let old = self.scenario.old_host();
            if r.values.iter().any(|v| v.trim_end_matches('.') == old) {
                self.violate(format!(
                    "DNS points at the old primary {old} after epoch {e} was pinned"
                ));
            }
        }
        // 4. At most one message per (site, epoch, phase); the notifier's documented window (SNS
        //    accepted, the invocation died before recording it) may page twice.
        let mut pages: BTreeMap<String, usize> = BTreeMap::new();
        for m in self.sns.published.lock().unwrap().iter() {
            *pages.entry(notice_id(&m.key)).or_default() += 1;
        }
        let window = self.injectors[&Func::Notifier].plan.is_some_and(|p| {
            p.op == "Publish" && matches!(p.fault, Fault::Timeout | Fault::CrashAfterSuccess)
        });
        let mut documented = 0;
        for (k, n) in pages {
            if n > 1 {
                if window && n == 2 {
                    documented += 1;
                } else {
                    self.violate(format!("{k}: {n} messages"));
                }
            }
        }
        self.stats.documented_duplicate_pages = documented;
    }

    // ------------------------------------------------------------ outcome

    fn notified(&self, epoch: u64) -> BTreeSet<String> {
        self.sns
            .published
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.key.epoch == epoch)
            .map(|m| m.key.detail_type.clone())
            .collect()
    }

    fn outcome(&self) -> Outcome {
        if !self.violations.is_empty() {
            return Outcome::WrongAction(self.violations.clone());
        }
        let st = self
            .ledger
            .get(&self.site)
            .unwrap_or_else(|| SiteState::new(&self.site));
        // The incident as it ends: its last epoch (an earlier one can only have failed, and was
        // judged by the same invariants and told by its FailoverFailed message).
        let epoch = st.epoch;
        let notified = self.notified(epoch);
        let published: BTreeSet<String> = self
            .bus
            .published
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.epoch == epoch)
            .map(|e| e.event_type.detail_type().to_owned())
            .collect();
        // DNS on the endpoint this epoch promoted and verified writable.
        let promoted_host = st
            .promotion
            .as_ref()
            .filter(|p| p.epoch == epoch && p.writable_verified_at.is_some())
            .and_then(|p| p.endpoint.clone())
            .map(|e| e.rsplit_once(':').map_or(e.clone(), |(h, _)| h.to_owned()));
        let dns_on_new = self.scenario.writer_record(&self.dns).is_some_and(|r| {
            r.values
                .iter()
                .any(|v| Some(v.trim_end_matches('.')) == promoted_host.as_deref())
        });
        let every_phase = [
            "IncidentSuspected",
            "FailoverDecided",
            "ReplicaPromoted",
            "DnsPinned",
        ]
        .iter()
        .all(|t| notified.contains(*t));
        if st.phase == Phase::DnsPinned
            && dns_on_new
            && every_phase
            && published.is_subset(&notified)
        {
            return Outcome::Converged { epoch };
        }
        let notified: BTreeSet<String> = (1..=epoch).flat_map(|e| self.notified(e)).collect();
        // An incident left open at `suspected` (the quorum can never be met: e.g. the alarms
        // cannot be read) was told by its IncidentSuspected message, and nothing was done.
        let open_suspected = (st.phase == Phase::Suspected)
            .then_some("IncidentSuspected")
            .filter(|t| self.notified(epoch).contains(*t));
        // Told with the next step: a message whose body says what to do (the notifier's NEXT
        // STEPS). A dead-lettered delivery tells nobody by itself: it counts only when the
        // template's alarm on that function's dead-letter queue pages the alert topic with a next
        // step; a dead letter nothing pages about fails the case, whatever else was sent.
        if let Some((f, k)) = self
            .dead_letters
            .iter()
            .find(|(f, _)| !dead_letters_page_with_next_step(*f))
        {
            return Outcome::Silent(format!(
                "dead-lettered {} delivery {k} and no alarm pages about it",
                f.name()
            ));
        }
        let told: Vec<String> = [
            "FailoverFailed",
            "FailoverRefused",
            "ApprovalRequested",
            "FailoverAborted",
            "DnsPinDelayed",
        ]
        .into_iter()
        .filter(|t| notified.contains(*t))
        .chain(open_suspected)
        .map(|t| format!("{t} message"))
        .chain(
            self.dead_letters
                .iter()
                .map(|(f, k)| format!("{DEAD_LETTER_PAGE} ({} delivery {k})", f.name())),
        )
        .collect();
        if told.is_empty() {
            return Outcome::Silent(format!(
                "epoch {} phase {}, DNS on new primary: {dns_on_new}, notified {notified:?}, published {published:?}",
                st.epoch, st.phase
            ));
        }
        Outcome::Stopped(format!(
            "epoch {} phase {}; told by {}",
            st.epoch,
            st.phase,
            told.join(", ")
        ))
    }

    fn calls(&self) -> CallCounts {
        let mut out = CallCounts::new();
        for (f, inj) in &self.injectors {
            for (op, n) in inj.counts.lock().unwrap().iter() {
                out.insert((*f, op), *n);
            }
        }
        out
    }

    fn fired(&self) -> usize {
        self.injectors
            .values()
            .map(|i| i.fired.load(Ordering::SeqCst))
            .sum()
    }
}

fn phase_changes(commits: &[SiteState]) -> usize {
    commits
        .windows(2)
        .filter(|w| (w[0].epoch, w[0].phase) != (w[1].epoch, w[1].phase))
        .count()
}

/// The notice's identity as the domain event's dedupe key (`site#epoch#type`).
fn notice_id(k: &NoticeKey) -> String {
    format!("{}#{}#{}", k.site, k.epoch, k.detail_type)
}

/// How a stop told by nothing but a dead-letter alarm names its teller.
const DEAD_LETTER_PAGE: &str = "dead-letter alarm";

const TEMPLATE: &str = include_str!("../../../infra/template.yaml");

/// Whether `infra/template.yaml` has an alarm on `f`'s dead-letter queue that pages the alert
/// topic on the first message and whose description gives the next step.
fn dead_letters_page_with_next_step(f: Func) -> bool {
    dead_letter_alarm_in(TEMPLATE, f)
}

fn dead_letter_alarm_in(template: &str, f: Func) -> bool {
    let prefix = match f {
        Func::Evaluator => "Evaluator",
        Func::Promoter => "Promoter",
        Func::Pinner => "Pinner",
        Func::Notifier => "Notifier",
    };
    let Some(start) = template.find(&format!("\n  {prefix}DLQAlarm:\n")) else {
        return false;
    };
    let rest = &template[start + 1..];
    let block = &rest[..rest.find("\n\n").unwrap_or(rest.len())];
    block.contains(&format!("Value: !GetAtt {prefix}DLQ.QueueName"))
        && block.contains("Threshold: 0")
        && block.contains("AlarmActions: [!Ref AlertTopic]")
        && block
            .lines()
            .any(|l| l.trim_start().starts_with("AlarmDescription:") && l.contains("Next step:"))
}

#[derive(Debug, Clone)]
enum Outcome {
    /// dns-pinned at `epoch` (> 1 when an earlier epoch failed first and a human was told).
    Converged {
        epoch: u64,
    },
    Stopped(String),
    Silent(String),
    WrongAction(Vec<String>),
}

fn envelope(e: &DomainEvent) -> Value {
    json!({
        "version": "0", "id": format!("evt-{}", e.dedupe_key()),
        "detail-type": e.event_type.detail_type(), "source": "rds-failover",
        "account": ACCOUNT, "time": e.occurred_at.to_rfc3339(), "region": "us-west-2",
        "resources": [], "detail": serde_json::to_value(e).unwrap()
    })
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

fn alarm_event(id: &str, name: &str, time: DateTime<Utc>) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
        "account": ACCOUNT, "time": aws_time(time), "region": "us-west-2",
        "resources": [format!("arn:aws:cloudwatch:us-west-2:{ACCOUNT}:alarm:{name}")],
        "detail": {
            "alarmName": name,
            "state": {"value": "ALARM", "reason": "fault matrix", "timestamp": alarm_time(time)},
            "previousState": {"value": "OK", "reason": "fault matrix", "timestamp": alarm_time(time)},
            "configuration": {"metrics": []}
        }
    })
}

fn tick_event(id: &str, time: DateTime<Utc>) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
        "account": ACCOUNT, "time": aws_time(time), "region": "us-west-2",
        "resources": [format!("arn:aws:events:us-west-2:{ACCOUNT}:rule/rds-failover-tick")], "detail": {}
    })
}

// ---------------------------------------------------------------- the matrix

struct CaseResult {
    world_stats: CaseStats,
    fired: usize,
    outcome: Outcome,
}

/// Runs one case on its own deterministic runtime (paused tokio time for the pinner's waits).
fn run_case(
    scenario: Scenario,
    plan: Option<Plan>,
) -> std::thread::Result<(CaseResult, CallCounts)> {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let mut w = World::new(scenario, plan);
            let calls = w.run().await;
            let r = CaseResult {
                world_stats: w.stats.clone(),
                fired: w.fired(),
                outcome: w.outcome(),
            };
            (r, calls)
        })
    }))
}

#[derive(Debug, Default, serde::Serialize)]
struct Figures {
    suite: &'static str,
    cases: usize,
    panics: usize,
    mutations: usize,
    duplicates_collapsed: usize,
    faults_injected: usize,
    convergences: usize,
    consistent_stops: usize,
    wrong_actions: usize,
    notes: String,
}

fn describe(plan: &Plan) -> String {
    format!(
        "{} {}#{} {:?}",
        plan.func.name(),
        plan.op,
        plan.k,
        plan.fault
    )
}

#[test]
fn every_fault_on_every_aws_call_converges_or_stops_consistently() {
    let mut f = Figures {
        suite: "fault-matrix",
        ..Figures::default()
    };
    let mut failures: Vec<String> = vec![];
    let mut documented_pages = 0;
    let mut stops_by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut operations = 0;
    let mut converged_after_failure = 0;
    let mut suspected_only = 0;
    let mut dead_letter_only = 0;
    for scenario in Scenario::ALL {
        // The clean run: it converges, and it lists every AWS call each function makes.
        let (clean, calls) = run_case(scenario, None).expect("the clean run does not panic");
        assert!(
            matches!(clean.outcome, Outcome::Converged { epoch: 1 }),
            "{scenario:?}: the clean run must converge: {:?}",
            clean.outcome
        );
        operations += calls.len();
        for ((func, op), n) in &calls {
            for k in 1..=*n {
                for fault in Fault::ALL {
                    let plan = Plan {
                        func: *func,
                        op,
                        k,
                        fault,
                    };
                    let case = format!("{scenario:?} {}", describe(&plan));
                    if std::env::var("FAULT_MATRIX_ONLY").is_ok_and(|only| !case.contains(&only)) {
                        continue;
                    }
                    f.cases += 1;
                    let started = std::time::Instant::now();
                    let ran = run_case(scenario, Some(plan));
                    if std::env::var_os("FAULT_MATRIX_VERBOSE").is_some() {
                        eprintln!("case {case}: {:?}", started.elapsed());
                    }
                    let Ok((r, _)) = ran else {
                        f.panics += 1;
                        failures.push(format!("{case}: PANIC"));
                        continue;
                    };
                    f.faults_injected += r.fired;
                    f.duplicates_collapsed += r.world_stats.duplicates_collapsed;
                    f.mutations += r.world_stats.unwanted_mutations;
                    documented_pages += r.world_stats.documented_duplicate_pages;
                    assert!(r.fired > 0, "{case}: the fault never fired");
                    match r.outcome {
                        Outcome::Converged { epoch } => {
                            f.convergences += 1;
                            if epoch > 1 {
                                converged_after_failure += 1;
                            }
                        }
                        Outcome::Stopped(why) => {
                            f.consistent_stops += 1;
                            if why.ends_with("told by IncidentSuspected message") {
                                suspected_only += 1;
                            }
                            let tellers = why.split("; told by ").nth(1).unwrap_or("");
                            if tellers.split(", ").all(|t| t.starts_with(DEAD_LETTER_PAGE)) {
                                dead_letter_only += 1;
                            }
                            let kind = why.split("; told by ").next().unwrap_or("").to_owned();
                            *stops_by_kind
                                .entry(format!("{} {:?} -> {kind}", func.name(), fault))
                                .or_default() += 1;
                            if std::env::var_os("FAULT_MATRIX_VERBOSE").is_some() {
                                eprintln!("stop: {case}: {why}");
                            }
                        }
                        Outcome::Silent(why) => {
                            failures.push(format!("{case}: stalled and nobody was told: {why}"))
                        }
                        Outcome::WrongAction(v) => {
                            f.wrong_actions += 1;
                            failures.push(format!("{case}: WRONG ACTION: {v:?}"));
                        }
                    }
                }
            }
        }
    }
    f.notes = format!(
        "a case = one incident (RDS read replica and Aurora cluster) over the fakes with one fault \
         (throttling, 5xx, timeout-after-apply, persistent access denied, crash after the call) on \
         one AWS call (by function, operation and call index; {operations} operations) then AWS \
         redelivery; a stop counts only when a human was told with the next step (a FailoverFailed / Refused / \
         Aborted / ApprovalRequested / DnsPinDelayed message, or the dead-letter queue's alarm, which pages the topic \
         with a next step: {dead_letter_only} stops were told by that alarm alone); a dead letter nothing pages \
         about, or a site left in a phase with nobody told, fails the case; after a pin DNS never points at the \
         old primary again; {suspected_only} stops left open at suspected (evidence unreadable); {converged_after_failure} converged in a later epoch after a failed one; {documented_pages} documented duplicate pages (notifier crash after SNS accepted)"
    );
    failover_adapters::figures::write_reliability_figures("fault-matrix", &f);
    eprintln!("{}", serde_json::to_string_pretty(&f).unwrap());
    for (k, n) in &stops_by_kind {
        eprintln!("consistent stop x{n}: {k}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        f.cases,
        failures.join("\n")
    );
    assert_eq!(f.panics, 0);
    assert_eq!(f.wrong_actions, 0);
    assert_eq!(f.mutations, 0);
    assert_eq!(f.cases, f.convergences + f.consistent_stops);
}

/// The matrix's own judges can fail: DNS back on the old primary after a pin is a wrong action;
/// a site left promoting with nobody told is a failure; a dead letter counts as telling a human
/// only through an alarm that pages the topic with a next step.
#[test]
fn the_matrix_judges_what_it_claims_to() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut w = World::new(Scenario::ReadReplica, None);
        w.run().await;
        assert!(
            matches!(w.outcome(), Outcome::Converged { epoch: 1 }),
            "{:?}",
            w.outcome()
        );
        // The old primary's record comes back after the pin (what a health-check-driven
        // failover pair does when the old primary turns healthy and the pin was not made).
        w.dns.put(
            Scenario::ReadReplica.zone(),
            cname("db.orders.example.com", &Scenario::ReadReplica.old_host()),
        );
        w.check_invariants();
        match w.outcome() {
            Outcome::WrongAction(v) => assert!(v[0].contains("old primary"), "{v:?}"),
            other => panic!("DNS back on the old primary must be a wrong action: {other:?}"),
        }

        // A site left promoting, nothing sent, nothing dead-lettered: nobody was told.
        let mut w = World::new(Scenario::ReadReplica, None);
        let mut st = SiteState::new("orders");
        st.version = 1;
        st.epoch = 1;
        st.phase = Phase::Promoting;
        w.ledger.put(st);
        assert!(
            matches!(w.outcome(), Outcome::Silent(_)),
            "{:?}",
            w.outcome()
        );
        // Its FailoverDecided dead-lettered at the promoter: told only by the queue's alarm.
        w.dead_letters
            .push((Func::Promoter, "orders#1#FailoverDecided".into()));
        match w.outcome() {
            Outcome::Stopped(why) => assert!(why.contains(DEAD_LETTER_PAGE), "{why}"),
            other => panic!("{other:?}"),
        }
    });
    for f in Func::ALL {
        assert!(
            dead_letter_alarm_in(TEMPLATE, f),
            "{f:?}: the template's dead-letter alarm"
        );
    }
    let silent = TEMPLATE.replace("AlarmActions: [!Ref AlertTopic]", "AlarmActions: []");
    let vague = TEMPLATE.replace("Next step:", "See:");
    for t in [silent, vague] {
        assert!(Func::ALL.into_iter().all(|f| !dead_letter_alarm_in(&t, f)));
    }
}
