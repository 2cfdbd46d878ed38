//! Ports: one small trait per capability the functions need from the world.
//!
//! Each trait has an AWS adapter (`crate::aws`, `crate::mysql`) and an in-memory fake
//! (`crate::fakes`) that behaves like AWS does — conditional writes fail, calls get throttled — so
//! handler tests exercise the same failure paths production sees. Errors are one typed
//! [`PortError`] whose [`ErrorKind`] says whether retrying can help.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use failover_policy::config::{CredentialsSource, DbRef, SiteConfig};
use failover_policy::evidence::{CanaryResult, LagReading};
use failover_policy::signal::AlarmState;
use failover_policy::{DomainEvent, SiteState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Throttling / rate exceeded: retry with backoff.
    Throttled,
    /// 5xx, connection reset, DNS: retry.
    Unavailable,
    /// Client-side timeout: retry.
    Timeout,
    /// The resource does not exist: do not retry.
    NotFound,
    /// IAM said no: do not retry, page a human.
    AccessDenied,
    /// The resource is in a state that forbids the call (e.g. promotion during a backup).
    InvalidState,
    /// A conditional write lost: re-read and decide again.
    Conflict,
    /// Anything else (bad request, unparseable response).
    Other,
}

impl ErrorKind {
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled
                | ErrorKind::Unavailable
                | ErrorKind::Timeout
                | ErrorKind::Conflict
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed ({kind:?}): {message}")]
pub struct PortError {
    pub kind: ErrorKind,
    /// The AWS operation (or port call) that failed, e.g. `DescribeDBInstances`.
    pub operation: &'static str,
    pub message: String,
}

impl PortError {
    pub fn new(kind: ErrorKind, operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            operation,
            message: message.into(),
        }
    }
}

/// One RDS DB instance as DescribeDBInstances reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceInfo {
    pub id: String,
    pub status: String,
    pub endpoint: Option<(String, u16)>,
    /// `ReadReplicaSourceDBInstanceIdentifier` (an id, or an ARN for cross-region replicas).
    pub replication_source: Option<String>,
    pub replicas: Vec<String>,
    pub cluster_id: Option<String>,
    pub multi_az: bool,
    /// `StatusInfos` entry of type `read replication`: `replicating`, `replication degraded`,
    /// `error`, `stopped` or `terminated` (RDS API reference, DBInstanceStatusInfo). `None` when
    /// RDS reports none (not a replica).
    pub replication_status: Option<String>,
    /// `InstanceCreateTime`: tells a re-created replica with the same identifier from the old one.
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterMember {
    pub instance_id: String,
    pub is_writer: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterInfo {
    pub id: String,
    pub arn: Option<String>,
    /// The cluster (writer) endpoint, `Endpoint` and `Port` of DescribeDBClusters: "connects to
    /// the current primary DB instance for the DB cluster" and follows the writer through an
    /// Aurora failover (Aurora User Guide, "Types of Aurora endpoints").
    pub endpoint: Option<(String, u16)>,
    pub status: String,
    pub members: Vec<ClusterMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalMember {
    pub cluster_arn: String,
    pub is_writer: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalClusterInfo {
    pub id: String,
    pub status: String,
    pub members: Vec<GlobalMember>,
}

/// Read-only view of RDS topology. `Ok(None)` means the API said "not found".
#[async_trait]
pub trait DatabaseTopology: Send + Sync {
    async fn instance(&self, db: &DbRef) -> Result<Option<InstanceInfo>, PortError>;
    async fn cluster(&self, id: &str, region: &str) -> Result<Option<ClusterInfo>, PortError>;
    async fn global_cluster(
        &self,
        id: &str,
        region: &str,
    ) -> Result<Option<GlobalClusterInfo>, PortError>;
}

/// Which replica-lag metric a candidate publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagMetric {
    /// `AWS/RDS ReplicaLag` (seconds), dimension DBInstanceIdentifier.
    RdsReplicaLag,
    /// `AWS/RDS AuroraReplicaLag` (milliseconds), dimension DBInstanceIdentifier.
    AuroraReplicaLag,
    /// `AWS/RDS AuroraGlobalDBReplicationLag` (milliseconds), dimension DBClusterIdentifier.
    AuroraGlobalLag,
}

/// CloudWatch: alarm states and replica lag.
#[async_trait]
pub trait Metrics: Send + Sync {
    /// Current state of each named alarm in `region`; names CloudWatch does not know are absent.
    async fn alarm_states(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<HashMap<String, AlarmState>, PortError>;
    /// The most recent lag datapoint within the last few minutes, as published (may be -1), with
    /// when it was taken; `None` when there is no datapoint.
    async fn replica_lag(
        &self,
        db: &DbRef,
        metric: LagMetric,
        now: DateTime<Utc>,
    ) -> Result<Option<LagReading>, PortError>;
}

/// The incident ledger: one record per site, written only by compare-and-set on `version`.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// The site's record, or a fresh `SiteState::new(site)` (version 0) if none was ever written.
    async fn load(&self, site: &str) -> Result<SiteState, PortError>;
    /// Writes `next` only if the stored version is `next.version - 1` (absent when that is 0).
    /// A lost race is `ErrorKind::Conflict`.
    async fn commit(&self, next: &SiteState) -> Result<(), PortError>;
    /// Every site record whose phase is in flight (promoting, promoted, dns-pinned), whether or
    /// not the configuration still names the site: a site dropped from the configuration while a
    /// failover was in flight must still reach a human.
    async fn in_flight(&self) -> Result<Vec<SiteState>, PortError> {
        Ok(vec![])
    }
}

/// The domain-event bus (EventBridge).
/// The ledger, read only: a site's record and nothing else. For a function that checks what it is
/// told against the ledger but never writes a site record (the notifier): its adapter links no
/// write, so its role needs none. Every [`Ledger`] reads this way too.
#[async_trait]
pub trait LedgerRead: Send + Sync {
    /// The site's record, or a fresh `SiteState::new(site)` (version 0) if none was ever written.
    async fn read(&self, site: &str) -> Result<SiteState, PortError>;
}

#[async_trait]
impl<L: Ledger + ?Sized> LedgerRead for L {
    async fn read(&self, site: &str) -> Result<SiteState, PortError> {
        self.load(site).await
    }
}

#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PortError>;
}

/// Where canary and writability-check passwords come from.
#[async_trait]
pub trait Credentials: Send + Sync {
    async fn password(&self, source: &CredentialsSource) -> Result<String, PortError>;
}

/// The SQL canary run from the DR side against the primary. Never errors: every failure is a
/// result (`Unreachable` when the database does not answer, `Unknown` when we could not even try).
#[async_trait]
pub trait Canary: Send + Sync {
    async fn probe(&self, site: &SiteConfig) -> CanaryResult;
}

/// Where the evaluator's Embedded Metric Format lines go. CloudWatch Logs extracts metrics only
/// from a log event that is exactly one JSON object ("Specification: Embedded metric format"),
/// so a line goes out as it is given, never through the tracing subscriber (whose JSON format
/// wraps every message in its own object).
pub trait MetricLines: Send + Sync {
    fn write_line(&self, line: &str);
}

/// Standard output, one line per write: on Lambda's `provided.al2023` runtime stdout is the
/// function's log stream, each newline-terminated line one log event; Lambda does not re-encode
/// a line that already is JSON (Lambda Developer Guide, "Configuring JSON and plain text log
/// formats"). The lock keeps the line whole beside tracing's writes (the same `Stdout`).
pub struct StdoutLines;

impl MetricLines for StdoutLines {
    fn write_line(&self, line: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        // A metric line that cannot be written is lost, never the tick's work.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
}

/// Time, injected so the policy's windows are testable and replays can pin the clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock stopped at one instant (replays of recorded events, tests).
pub struct FixedClock(pub std::sync::Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn at(t: DateTime<Utc>) -> Self {
        Self(std::sync::Mutex::new(t))
    }
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = t;
    }
    pub fn advance(&self, secs: i64) {
        let mut g = self.0.lock().expect("clock lock");
        *g += chrono::Duration::seconds(secs);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

/// One answer of [`ConfigStore::fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFetch {
    /// The stored document still has the ETag asked about (S3: 304 Not Modified).
    NotModified,
    Document {
        body: String,
        etag: String,
        /// The object's version (S3 `VersionId`; none in an unversioned bucket).
        version_id: Option<String>,
    },
}

/// Where the site configuration document lives when it is not in the environment.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    /// The current document, or [`ConfigFetch::NotModified`] when its ETag is `if_none_match`.
    async fn fetch(&self, if_none_match: Option<&str>) -> Result<ConfigFetch, PortError>;
}
