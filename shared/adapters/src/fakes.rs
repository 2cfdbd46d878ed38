//! In-memory fakes of every port, with the semantics of the AWS service they stand for.
//!
//! They are not mocks that return canned answers: the ledger enforces compare-and-set exactly like
//! the DynamoDB adapter's condition expression (so lost races are real), and every fake can be told
//! to fail its next calls with a given [`ErrorKind`] (throttling, 5xx, access denied...) to test
//! the handlers' error paths. Each fake counts its calls so tests can assert "no AWS mutation".

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use failover_policy::config::{CredentialsSource, DbRef, SiteConfig};
use failover_policy::evidence::CanaryResult;
use failover_policy::signal::AlarmState;
use failover_policy::{DomainEvent, SiteState};

use crate::ports::*;

/// Scripted failures: the next calls to an operation fail with these kinds, in order.
#[derive(Default)]
pub struct Faults(Mutex<HashMap<&'static str, VecDeque<ErrorKind>>>);

impl Faults {
    pub fn inject(&self, operation: &'static str, kind: ErrorKind, times: usize) {
        let mut g = self.0.lock().unwrap();
        let q = g.entry(operation).or_default();
        q.extend(std::iter::repeat_n(kind, times));
    }
    /// Drops every scripted failure still pending (the service recovered).
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
    pub fn check(&self, operation: &'static str) -> Result<(), PortError> {
        let mut g = self.0.lock().unwrap();
        match g.get_mut(operation).and_then(|q| q.pop_front()) {
            Some(kind) => Err(PortError::new(
                kind,
                operation,
                format!("injected {kind:?}"),
            )),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------- ledger

/// DynamoDB-like ledger: one item per site, writes conditional on the stored version.
#[derive(Default)]
pub struct FakeLedger {
    items: Mutex<HashMap<String, SiteState>>,
    pub faults: Faults,
    /// Sites whose every read fails with this kind (one site's record unreadable, others fine).
    pub failing_sites: Mutex<HashMap<String, ErrorKind>>,
    pub commits: Mutex<Vec<SiteState>>,
    /// Sites whose every read panics (a bug in one site's path, for the handlers' isolation).
    pub panicking_sites: Mutex<std::collections::HashSet<String>>,
    /// Every `load` (GetItem), counted: a handler's reads are part of what it costs.
    pub loads: std::sync::atomic::AtomicUsize,
}

impl FakeLedger {
    pub fn put(&self, s: SiteState) {
        self.items.lock().unwrap().insert(s.site.clone(), s);
    }
    pub fn get(&self, site: &str) -> Option<SiteState> {
        self.items.lock().unwrap().get(site).cloned()
    }
    pub fn commit_count(&self) -> usize {
        self.commits.lock().unwrap().len()
    }
}

#[async_trait]
impl Ledger for FakeLedger {
    async fn load(&self, site: &str) -> Result<SiteState, PortError> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.faults.check("GetItem")?;
        if self.panicking_sites.lock().unwrap().contains(site) {
            panic!("injected panic reading {site}");
        }
        if let Some(kind) = self.failing_sites.lock().unwrap().get(site).copied() {
            return Err(PortError::new(
                kind,
                "GetItem",
                format!("injected {kind:?} for {site}"),
            ));
        }
        Ok(self.get(site).unwrap_or_else(|| SiteState::new(site)))
    }

    async fn commit(&self, next: &SiteState) -> Result<(), PortError> {
        self.faults.check("PutItem")?;
        let mut items = self.items.lock().unwrap();
        let stored = items.get(&next.site).map(|s| s.version);
        let expected = next.version.checked_sub(1);
        let ok = match (stored, expected) {
            (None, Some(0)) => true,
            (Some(v), Some(e)) => v == e,
            _ => false,
        };
        if !ok {
            return Err(PortError::new(
                ErrorKind::Conflict,
                "PutItem",
                format!("ConditionalCheckFailed: stored version {stored:?}, write expected {expected:?}"),
            ));
        }
        items.insert(next.site.clone(), next.clone());
        self.commits.lock().unwrap().push(next.clone());
        Ok(())
    }

    async fn in_flight(&self) -> Result<Vec<SiteState>, PortError> {
        self.faults.check("Scan")?;
        let items = self.items.lock().unwrap();
        Ok(items
            .values()
            .filter(|s| s.phase.is_in_flight())
            .cloned()
            .collect())
    }
}

// ---------------------------------------------------------------- bus

#[derive(Default)]
pub struct FakeBus {
    pub published: Mutex<Vec<DomainEvent>>,
    pub faults: Faults,
}

impl FakeBus {
    pub fn types(&self) -> Vec<&'static str> {
        self.published
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.event_type.detail_type())
            .collect()
    }
}

#[async_trait]
impl EventBus for FakeBus {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PortError> {
        self.faults.check("PutEvents")?;
        self.published
            .lock()
            .unwrap()
            .extend(events.iter().cloned());
        Ok(())
    }
}

// ---------------------------------------------------------------- topology

/// One step of a mutation in motion, applied to the topology when its target is next described.
pub type Step = Box<dyn FnOnce(&FakeTopology) + Send>;

/// RDS topology keyed by identifier. Instances, clusters and global clusters are set by the test.
///
/// Mutations in motion (see `crate::control::FakeControl`) are queued per identifier with
/// [`FakeTopology::schedule`]: each describe of that identifier applies the next step first, so a
/// promotion is observed passing through its statuses over successive polls, as on RDS.
#[derive(Default)]
pub struct FakeTopology {
    pub instances: Mutex<HashMap<String, InstanceInfo>>,
    pub clusters: Mutex<HashMap<String, ClusterInfo>>,
    pub globals: Mutex<HashMap<String, GlobalClusterInfo>>,
    /// Regions whose API is "down" (every call times out), as in a regional outage.
    pub dead_regions: Mutex<Vec<String>>,
    /// Regions whose API is blackholed: a call waits, then times out (`Some(wait)`: the SDK's
    /// operation timeout, as `crate::aws` configures it) or never answers (`None`: a call no
    /// client timeout bounds). Tests using it run on tokio's paused clock.
    pub blackholed: Mutex<HashMap<String, Option<std::time::Duration>>>,
    pub faults: Faults,
    pub calls: Mutex<usize>,
    progress: Mutex<HashMap<String, VecDeque<Step>>>,
}

impl FakeTopology {
    pub fn set_instance(&self, i: InstanceInfo) {
        self.instances.lock().unwrap().insert(i.id.clone(), i);
    }
    pub fn set_status(&self, id: &str, status: &str) {
        if let Some(i) = self.instances.lock().unwrap().get_mut(id) {
            i.status = status.into();
        }
        if let Some(c) = self.clusters.lock().unwrap().get_mut(id) {
            c.status = status.into();
        }
    }
    pub fn remove_instance(&self, id: &str) {
        self.instances.lock().unwrap().remove(id);
    }
    pub fn kill_region(&self, region: &str) {
        self.dead_regions.lock().unwrap().push(region.into());
    }
    /// Queues the steps of a mutation of `id`, replacing any queued before.
    pub fn schedule(&self, id: &str, steps: impl IntoIterator<Item = Step>) {
        self.progress
            .lock()
            .unwrap()
            .insert(id.to_owned(), steps.into_iter().collect());
    }
    /// Whether a mutation of `id` still has steps to show.
    pub fn in_motion(&self, id: &str) -> bool {
        self.progress
            .lock()
            .unwrap()
            .get(id)
            .is_some_and(|q| !q.is_empty())
    }
    /// Applies the next queued step of `id`, if any (outside the queue's lock: steps lock the maps).
    fn advance(&self, id: &str) {
        let step = self
            .progress
            .lock()
            .unwrap()
            .get_mut(id)
            .and_then(VecDeque::pop_front);
        if let Some(step) = step {
            step(self);
        }
    }
    /// The instance as stored, without a describe (no call counted, no step applied).
    pub fn instance_now(&self, id: &str) -> Option<InstanceInfo> {
        self.instances.lock().unwrap().get(id).cloned()
    }
    pub fn cluster_now(&self, id: &str) -> Option<ClusterInfo> {
        self.clusters.lock().unwrap().get(id).cloned()
    }
    pub fn global(&self, id: &str) -> Option<GlobalClusterInfo> {
        self.globals.lock().unwrap().get(id).cloned()
    }
    pub fn instance_by_endpoint(&self, endpoint: &str) -> Option<InstanceInfo> {
        self.instances
            .lock()
            .unwrap()
            .values()
            .find(|i| {
                i.endpoint
                    .as_ref()
                    .is_some_and(|(h, p)| format!("{h}:{p}") == endpoint)
            })
            .cloned()
    }
    /// What a connection to `endpoint` reaches: the instance with that endpoint, or — for an
    /// Aurora cluster (writer) endpoint — the cluster's current writer instance, as Aurora's
    /// cluster endpoint "connects to the current primary DB instance for the DB cluster" (Aurora
    /// User Guide, "Types of Aurora endpoints").
    pub fn reached_by(&self, endpoint: &str) -> Option<InstanceInfo> {
        if let Some(i) = self.instance_by_endpoint(endpoint) {
            return Some(i);
        }
        let writer = self
            .clusters
            .lock()
            .unwrap()
            .values()
            .find(|c| {
                c.endpoint
                    .as_ref()
                    .is_some_and(|(h, p)| format!("{h}:{p}") == endpoint)
            })
            .and_then(|c| c.members.iter().find(|m| m.is_writer).cloned())?;
        self.instance_now(&writer.instance_id)
    }
    pub fn update_instance(&self, id: &str, f: impl FnOnce(&mut InstanceInfo)) {
        if let Some(i) = self.instances.lock().unwrap().get_mut(id) {
            f(i);
        }
    }
    pub fn update_cluster(&self, id: &str, f: impl FnOnce(&mut ClusterInfo)) {
        if let Some(c) = self.clusters.lock().unwrap().get_mut(id) {
            f(c);
        }
    }
    pub fn update_cluster_by_arn(&self, arn: &str, f: impl FnOnce(&mut ClusterInfo)) {
        if let Some(c) = self
            .clusters
            .lock()
            .unwrap()
            .values_mut()
            .find(|c| c.arn.as_deref() == Some(arn))
        {
            f(c);
        }
    }
    pub fn update_global(&self, id: &str, f: impl FnOnce(&mut GlobalClusterInfo)) {
        if let Some(g) = self.globals.lock().unwrap().get_mut(id) {
            f(g);
        }
    }
    /// A promoted replica leaves its source: no replication source, and the source (named by id
    /// or, cross-region, by ARN) no longer lists it.
    pub fn detach_replica(&self, id: &str, source: &str) {
        let source_id = source.rsplit_once(":db:").map_or(source, |(_, id)| id);
        let mut g = self.instances.lock().unwrap();
        if let Some(i) = g.get_mut(id) {
            i.replication_source = None;
        }
        if let Some(src) = g.get_mut(source_id) {
            src.replicas
                .retain(|r| r != id && !r.ends_with(&format!(":db:{id}")));
        }
    }
    /// Blackholes `region` (see [`FakeTopology::blackholed`]).
    pub fn blackhole_region(&self, region: &str, answer_after: Option<std::time::Duration>) {
        self.blackholed
            .lock()
            .unwrap()
            .insert(region.into(), answer_after);
    }
    async fn enter(&self, op: &'static str, region: &str) -> Result<(), PortError> {
        let hole = self.blackholed.lock().unwrap().get(region).copied();
        match hole {
            Some(Some(wait)) => {
                tokio::time::sleep(wait).await;
                return Err(PortError::new(
                    ErrorKind::Timeout,
                    op,
                    format!("{region} endpoint did not answer within {wait:?}"),
                ));
            }
            Some(None) => std::future::pending::<()>().await,
            None => {}
        }
        self.enter_now(op, region)
    }
    fn enter_now(&self, op: &'static str, region: &str) -> Result<(), PortError> {
        *self.calls.lock().unwrap() += 1;
        self.faults.check(op)?;
        if self
            .dead_regions
            .lock()
            .unwrap()
            .iter()
            .any(|r| r == region)
        {
            return Err(PortError::new(
                ErrorKind::Timeout,
                op,
                format!("{region} endpoint timed out"),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl DatabaseTopology for FakeTopology {
    async fn instance(&self, db: &DbRef) -> Result<Option<InstanceInfo>, PortError> {
        self.enter("DescribeDBInstances", &db.region).await?;
        self.advance(&db.id);
        Ok(self.instances.lock().unwrap().get(&db.id).cloned())
    }
    async fn cluster(&self, id: &str, region: &str) -> Result<Option<ClusterInfo>, PortError> {
        self.enter("DescribeDBClusters", region).await?;
        self.advance(id);
        Ok(self.clusters.lock().unwrap().get(id).cloned())
    }
    async fn global_cluster(
        &self,
        id: &str,
        region: &str,
    ) -> Result<Option<GlobalClusterInfo>, PortError> {
        self.enter("DescribeGlobalClusters", region).await?;
        self.advance(id);
        Ok(self.globals.lock().unwrap().get(id).cloned())
    }
}

// ---------------------------------------------------------------- metrics

#[derive(Default)]
pub struct FakeMetrics {
    /// (region, alarm name) -> state. Alarms absent here are unknown to CloudWatch.
    pub alarms: Mutex<HashMap<(String, String), AlarmState>>,
    /// candidate id -> latest published lag in seconds (may be -1, like RDS).
    pub lag: Mutex<HashMap<String, f64>>,
    /// candidate id -> when its datapoint was taken (absent: at the read, a live metric).
    pub lag_taken: Mutex<HashMap<String, DateTime<Utc>>>,
    pub dead_regions: Mutex<Vec<String>>,
    pub faults: Faults,
}

impl FakeMetrics {
    pub fn set_alarm(&self, region: &str, name: &str, state: AlarmState) {
        self.alarms
            .lock()
            .unwrap()
            .insert((region.into(), name.into()), state);
    }
    pub fn set_lag(&self, id: &str, secs: f64) {
        self.lag.lock().unwrap().insert(id.into(), secs);
    }
    pub fn clear_lag(&self, id: &str) {
        self.lag.lock().unwrap().remove(id);
    }
}

#[async_trait]
impl Metrics for FakeMetrics {
    async fn alarm_states(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<HashMap<String, AlarmState>, PortError> {
        self.faults.check("DescribeAlarms")?;
        if self
            .dead_regions
            .lock()
            .unwrap()
            .iter()
            .any(|r| r == region)
        {
            return Err(PortError::new(
                ErrorKind::Timeout,
                "DescribeAlarms",
                format!("{region} endpoint timed out"),
            ));
        }
        let g = self.alarms.lock().unwrap();
        Ok(names
            .iter()
            .filter_map(|n| {
                g.get(&(region.to_string(), n.clone()))
                    .map(|s| (n.clone(), *s))
            })
            .collect())
    }
    async fn replica_lag(
        &self,
        db: &DbRef,
        _metric: LagMetric,
        now: DateTime<Utc>,
    ) -> Result<Option<failover_policy::evidence::LagReading>, PortError> {
        self.faults.check("GetMetricData")?;
        let at = self.lag_taken.lock().unwrap().get(&db.id).copied();
        Ok(self.lag.lock().unwrap().get(&db.id).map(|&secs| {
            failover_policy::evidence::LagReading {
                secs,
                at: at.unwrap_or(now),
            }
        }))
    }
}

// ---------------------------------------------------------------- canary and credentials

/// The canary's answer per site; sites not set answer `Unreachable` (connection refused).
#[derive(Default)]
pub struct FakeCanary {
    pub results: Mutex<HashMap<String, CanaryResult>>,
    pub probes: Mutex<usize>,
}

impl FakeCanary {
    pub fn set(&self, site: &str, r: CanaryResult) {
        self.results.lock().unwrap().insert(site.into(), r);
    }
}

#[async_trait]
impl Canary for FakeCanary {
    async fn probe(&self, site: &SiteConfig) -> CanaryResult {
        *self.probes.lock().unwrap() += 1;
        self.results
            .lock()
            .unwrap()
            .get(&site.id)
            .cloned()
            .unwrap_or(CanaryResult::Unreachable {
                error: "connection refused".into(),
            })
    }
}

#[derive(Default)]
pub struct FakeCredentials {
    pub secrets: Mutex<HashMap<String, String>>,
}

#[async_trait]
impl Credentials for FakeCredentials {
    async fn password(&self, source: &CredentialsSource) -> Result<String, PortError> {
        let key = match source {
            CredentialsSource::SecretsManager { secret_id } => secret_id.clone(),
            CredentialsSource::Env { var } => var.clone(),
        };
        self.secrets
            .lock()
            .unwrap()
            .get(&key)
            .cloned()
            .ok_or_else(|| {
                PortError::new(
                    ErrorKind::NotFound,
                    "GetSecretValue",
                    format!("secret {key} not found"),
                )
            })
    }
}

/// Records every metric line, in order (the handler tests read what a tick wrote).
#[derive(Default)]
pub struct RecordedLines(Mutex<Vec<String>>);

impl RecordedLines {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().expect("lines lock").clone()
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("lines lock"))
    }
}

impl MetricLines for RecordedLines {
    fn write_line(&self, line: &str) {
        self.0.lock().expect("lines lock").push(line.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ledger_compare_and_set_has_exactly_one_winner() {
        // GIVEN a site record at version 3
        let ledger = FakeLedger::default();
        let mut s = SiteState::new("orders");
        s.version = 3;
        ledger.put(s.clone());
        // WHEN two writers both read version 3 and write version 4
        let mut a = s.clone();
        a.version = 4;
        a.epoch = 1;
        let mut b = s.clone();
        b.version = 4;
        b.epoch = 99;
        // THEN the first wins and the second gets a Conflict
        ledger.commit(&a).await.unwrap();
        let err = ledger.commit(&b).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(ledger.get("orders").unwrap().epoch, 1);
    }

    #[tokio::test]
    async fn ledger_first_write_requires_absence() {
        let ledger = FakeLedger::default();
        let mut s = SiteState::new("orders");
        s.version = 1;
        ledger.commit(&s).await.unwrap();
        assert_eq!(
            ledger.commit(&s).await.unwrap_err().kind,
            ErrorKind::Conflict,
            "a second creator loses"
        );
    }

    #[tokio::test]
    async fn injected_faults_fire_in_order_then_clear() {
        let bus = FakeBus::default();
        bus.faults.inject("PutEvents", ErrorKind::Throttled, 2);
        assert_eq!(
            bus.publish(&[]).await.unwrap_err().kind,
            ErrorKind::Throttled
        );
        assert_eq!(
            bus.publish(&[]).await.unwrap_err().kind,
            ErrorKind::Throttled
        );
        assert!(bus.publish(&[]).await.is_ok());
    }
}
