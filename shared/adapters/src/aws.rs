//! AWS SDK adapters for the ports: RDS topology, CloudWatch, the DynamoDB ledger, EventBridge and
//! Secrets Manager.
//!
//! Why it is shaped this way:
//! - One [`SdkConfig`] is loaded at cold start. The functions run in the DR region but read the
//!   primary's region too, so RDS and CloudWatch clients are derived from that config per region
//!   and cached; DynamoDB, EventBridge and Secrets Manager live in the home region only.
//! - Timeouts and retries are explicit: in the outage being judged, the primary region's endpoints
//!   tend to hang rather than refuse, and a read that gives up quickly becomes *unknown* evidence
//!   instead of eating the whole invocation.
//! - Every SDK error goes through [`port_error`], so callers reason about one [`ErrorKind`]
//!   vocabulary (retry or not) instead of hundreds of service-specific error types.
//! - Each adapter also has a `from_client` constructor taking a ready-made client, so tests can
//!   drive the real SDK client types through `aws-smithy-mocks`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatch::types::{
    AlarmType, Dimension, Metric, MetricDataQuery, MetricStat, ScanBy,
};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, SecondsFormat, Utc};
use failover_policy::config::{CredentialsSource, DbRef};
use failover_policy::events::EVENT_SOURCE;
use failover_policy::evidence::LagReading;
use failover_policy::signal::AlarmState;
use failover_policy::{DomainEvent, SiteState};

use crate::ports::{
    ClusterInfo, ClusterMember, Credentials, DatabaseTopology, ErrorKind, EventBus,
    GlobalClusterInfo, GlobalMember, InstanceInfo, LagMetric, Ledger, LedgerRead, Metrics,
    PortError,
};

/// Per attempt: long enough for a healthy API call, short enough that three attempts against a
/// blackholed region still leave the evaluator time to decide.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest one AWS call may take, retries included: what a blackholed region costs a read.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_ATTEMPTS: u32 = 3;

// ---------------------------------------------------------------- clients

/// Clients of one service, one per region, built on first use and shared by clones.
struct Regional<C>(Arc<RegionalInner<C>>);

struct RegionalInner<C> {
    build: Box<dyn Fn(&str) -> C + Send + Sync>,
    cache: Mutex<HashMap<String, C>>,
}

impl<C> Clone for Regional<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<C: Clone + Send + Sync + 'static> Regional<C> {
    fn new(build: impl Fn(&str) -> C + Send + Sync + 'static) -> Self {
        Self(Arc::new(RegionalInner {
            build: Box::new(build),
            cache: Mutex::default(),
        }))
    }

    /// Clients derived from the shared configuration with only the region overridden.
    fn derived(sdk: &SdkConfig, build: fn(&SdkConfig, &str) -> C) -> Self {
        let sdk = sdk.clone();
        Self::new(move |region| build(&sdk, region))
    }

    /// The same client whatever the region: a mocked client in tests.
    fn fixed(client: C) -> Self {
        Self::new(move |_| client.clone())
    }

    fn get(&self, region: &str) -> C {
        let mut cache = self.0.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .entry(region.to_owned())
            .or_insert_with(|| (self.0.build)(region))
            .clone()
    }
}

fn rds_in(sdk: &SdkConfig, region: &str) -> aws_sdk_rds::Client {
    let conf = aws_sdk_rds::config::Builder::from(sdk)
        .region(Region::new(region.to_owned()))
        .build();
    aws_sdk_rds::Client::from_conf(conf)
}

fn cloudwatch_in(sdk: &SdkConfig, region: &str) -> aws_sdk_cloudwatch::Client {
    let conf = aws_sdk_cloudwatch::config::Builder::from(sdk)
        .region(Region::new(region.to_owned()))
        .build();
    aws_sdk_cloudwatch::Client::from_conf(conf)
}

/// Every AWS client the functions use, built once at cold start. Cheap to clone.
#[derive(Clone)]
pub struct AwsClients {
    sdk: SdkConfig,
    rds: Regional<aws_sdk_rds::Client>,
    cloudwatch: Regional<aws_sdk_cloudwatch::Client>,
    dynamodb: aws_sdk_dynamodb::Client,
    eventbridge: aws_sdk_eventbridge::Client,
    secrets_manager: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    /// Loads the standard provider chain (region, credentials, and `AWS_ENDPOINT_URL`, which points
    /// every client at an emulator such as moto) with this project's timeouts and retry budget.
    pub async fn from_env() -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .load()
            .await;
        Self::from_conf(sdk)
    }

    /// Builds the clients from an already loaded configuration (tests, custom setups).
    pub fn from_conf(sdk: SdkConfig) -> Self {
        Self {
            rds: Regional::derived(&sdk, rds_in),
            cloudwatch: Regional::derived(&sdk, cloudwatch_in),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            eventbridge: aws_sdk_eventbridge::Client::new(&sdk),
            secrets_manager: aws_sdk_secretsmanager::Client::new(&sdk),
            sdk,
        }
    }

    pub fn sdk_config(&self) -> &SdkConfig {
        &self.sdk
    }

    /// The RDS client for `region` (built on first use, then cached).
    pub fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        self.rds.get(region)
    }

    /// The CloudWatch client for `region` (built on first use, then cached).
    pub fn cloudwatch(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        self.cloudwatch.get(region)
    }

    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamodb
    }

    pub fn eventbridge(&self) -> &aws_sdk_eventbridge::Client {
        &self.eventbridge
    }

    pub fn secrets_manager(&self) -> &aws_sdk_secretsmanager::Client {
        &self.secrets_manager
    }

    /// Route 53 is a global service (its change API is served from us-east-1): one client from the
    /// shared configuration, whatever the home region.
    pub fn route53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&self.sdk)
    }

    /// SNS in the home region (where the notification topic lives).
    pub fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk)
    }
}

// ---------------------------------------------------------------- errors

/// The [`ErrorKind`] an AWS error code means, across services; `None` for codes with no general
/// meaning (validation errors and the like).
pub fn kind_for_code(code: &str) -> Option<ErrorKind> {
    use ErrorKind::*;
    Some(match code {
        "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "RequestLimitExceeded"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "TooManyRequestsException"
        | "ProvisionedThroughputExceededException"
        | "SlowDown" => Throttled,
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "NotAuthorized"
        | "AuthFailure"
        | "SignatureDoesNotMatch"
        | "InvalidSignatureException"
        | "MissingAuthenticationToken"
        | "IncompleteSignature" => AccessDenied,
        "ConditionalCheckFailedException"
        | "TransactionConflict"
        | "TransactionConflictException" => Conflict,
        "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "InternalFailure"
        | "InternalError"
        | "InternalException"
        | "InternalServerError"
        | "InternalServerErrorException"
        | "InternalServiceError" => Unavailable,
        "RequestTimeout" | "RequestTimeoutException" => Timeout,
        // DBInstanceNotFound, DBClusterNotFoundFault, ResourceNotFoundException, ...
        c if c.contains("NotFound") => NotFound,
        // InvalidDBInstanceState, InvalidDBClusterStateFault, InvalidGlobalClusterStateFault, ...
        c if c.starts_with("Invalid") && c.contains("State") => InvalidState,
        _ => return None,
    })
}

/// Maps any SDK error to a [`PortError`]: the service's error code decides when there is one,
/// otherwise the failure's shape (timeout, no connection, 5xx). The message keeps AWS's own words.
pub fn port_error<E>(operation: &'static str, err: &SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let server_error = |r: &HttpResponse| {
        if r.status().is_server_error() {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Other
        }
    };
    let kind = match err {
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        SdkError::DispatchFailure(f) if f.is_timeout() => ErrorKind::Timeout,
        SdkError::DispatchFailure(f) if f.is_user() => ErrorKind::Other,
        SdkError::DispatchFailure(_) => ErrorKind::Unavailable,
        SdkError::ResponseError(r) => server_error(r.raw()),
        SdkError::ServiceError(s) => err
            .code()
            .and_then(kind_for_code)
            .unwrap_or_else(|| server_error(s.raw())),
        _ => ErrorKind::Other,
    };
    let message = match (err.code(), err.message(), err) {
        (Some(code), Some(msg), _) => format!("{code}: {msg}"),
        (Some(code), None, _) => code.to_owned(),
        // No AWS error code (an HTML 404 from a proxy or emulator, an unparseable body): the
        // status and the parse failure, without dumping the raw response.
        (None, _, SdkError::ServiceError(s)) => format!(
            "HTTP {}: {}",
            s.raw().status().as_u16(),
            DisplayErrorContext(s.err())
        ),
        _ => DisplayErrorContext(err).to_string(),
    };
    PortError::new(kind, operation, message)
}

/// `Ok(None)` for the operation's own "not found" error, which is an answer, not a failure.
fn found<T, E>(
    operation: &'static str,
    result: Result<T, SdkError<E, HttpResponse>>,
    is_not_found: impl Fn(&E) -> bool,
) -> Result<Option<T>, PortError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if e.as_service_error().is_some_and(&is_not_found) => Ok(None),
        Err(e) => Err(port_error(operation, &e)),
    }
}

fn other(operation: &'static str, message: impl Into<String>) -> PortError {
    PortError::new(ErrorKind::Other, operation, message)
}

// ---------------------------------------------------------------- RDS

/// RDS identifiers are case-insensitive. The answer is matched against the asked identifier rather
/// than taken first, because an emulator (moto's DescribeGlobalClusters) may ignore the filter.
fn same_id(answered: Option<&str>, asked: &str) -> bool {
    answered.is_some_and(|a| a.eq_ignore_ascii_case(asked))
}

/// [`DatabaseTopology`] over the RDS Describe* APIs, in each database's own region.
pub struct RdsTopology {
    clients: Regional<aws_sdk_rds::Client>,
}

impl RdsTopology {
    pub fn new(clients: &AwsClients) -> Self {
        Self {
            clients: clients.rds.clone(),
        }
    }

    /// Uses `client` whatever the region (tests with a mocked client).
    pub fn from_client(client: aws_sdk_rds::Client) -> Self {
        Self {
            clients: Regional::fixed(client),
        }
    }
}

#[async_trait]
impl DatabaseTopology for RdsTopology {
    async fn instance(&self, db: &DbRef) -> Result<Option<InstanceInfo>, PortError> {
        let result = self
            .clients
            .get(&db.region)
            .describe_db_instances()
            .db_instance_identifier(&db.id)
            .send()
            .await;
        let out = found("DescribeDBInstances", result, |e| {
            e.is_db_instance_not_found_fault()
        })?;
        Ok(out.and_then(|o| {
            let i = o
                .db_instances()
                .iter()
                .find(|i| same_id(i.db_instance_identifier(), &db.id))?;
            Some(InstanceInfo {
                id: i.db_instance_identifier().unwrap_or(&db.id).to_owned(),
                status: i.db_instance_status().unwrap_or_default().to_owned(),
                endpoint: i.endpoint().and_then(|e| {
                    let port = u16::try_from(e.port()?).ok()?;
                    Some((e.address()?.to_owned(), port))
                }),
                replication_source: i
                    .read_replica_source_db_instance_identifier()
                    .map(str::to_owned),
                replicas: i.read_replica_db_instance_identifiers().to_vec(),
                cluster_id: i.db_cluster_identifier().map(str::to_owned),
                multi_az: i.multi_az().unwrap_or(false),
                // "read replication" is the only StatusType RDS documents for StatusInfos.
                replication_status: i
                    .status_infos()
                    .iter()
                    .find(|s| s.status_type() == Some("read replication"))
                    .and_then(|s| s.status())
                    .map(str::to_owned),
                created_at: i.instance_create_time().and_then(|t| {
                    chrono::DateTime::<chrono::Utc>::from_timestamp(t.secs(), t.subsec_nanos())
                }),
            })
        }))
    }

    async fn cluster(&self, id: &str, region: &str) -> Result<Option<ClusterInfo>, PortError> {
        let result = self
            .clients
            .get(region)
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await;
        let out = found("DescribeDBClusters", result, |e| {
            e.is_db_cluster_not_found_fault()
        })?;
        Ok(out.and_then(|o| {
            let c = o
                .db_clusters()
                .iter()
                .find(|c| same_id(c.db_cluster_identifier(), id))?;
            Some(ClusterInfo {
                id: c.db_cluster_identifier().unwrap_or(id).to_owned(),
                arn: c.db_cluster_arn().map(str::to_owned),
                endpoint: c
                    .endpoint()
                    .map(|h| (h.to_owned(), c.port().unwrap_or(3306) as u16)),
                status: c.status().unwrap_or_default().to_owned(),
                members: c
                    .db_cluster_members()
                    .iter()
                    .map(|m| ClusterMember {
                        instance_id: m.db_instance_identifier().unwrap_or_default().to_owned(),
                        is_writer: m.is_cluster_writer().unwrap_or(false),
                    })
                    .collect(),
            })
        }))
    }

    async fn global_cluster(
        &self,
        id: &str,
        region: &str,
    ) -> Result<Option<GlobalClusterInfo>, PortError> {
        let result = self
            .clients
            .get(region)
            .describe_global_clusters()
            .global_cluster_identifier(id)
            .send()
            .await;
        let out = found("DescribeGlobalClusters", result, |e| {
            e.is_global_cluster_not_found_fault()
        })?;
        Ok(out.and_then(|o| {
            let g = o
                .global_clusters()
                .iter()
                .find(|g| same_id(g.global_cluster_identifier(), id))?;
            Some(GlobalClusterInfo {
                id: g.global_cluster_identifier().unwrap_or(id).to_owned(),
                status: g.status().unwrap_or_default().to_owned(),
                members: g
                    .global_cluster_members()
                    .iter()
                    .map(|m| GlobalMember {
                        cluster_arn: m.db_cluster_arn().unwrap_or_default().to_owned(),
                        is_writer: m.is_writer().unwrap_or(false),
                    })
                    .collect(),
            })
        }))
    }
}

// ---------------------------------------------------------------- CloudWatch

/// DescribeAlarms accepts at most 100 names per call.
const ALARM_NAMES_PER_CALL: usize = 100;
/// How far back a lag datapoint still counts as "now".
const LAG_WINDOW: chrono::Duration = chrono::Duration::minutes(10);
/// RDS publishes replica lag once a minute.
const LAG_PERIOD_SECS: i32 = 60;

/// [`Metrics`] over CloudWatch DescribeAlarms and GetMetricData, in the asked region.
pub struct CloudWatchMetrics {
    clients: Regional<aws_sdk_cloudwatch::Client>,
}

impl CloudWatchMetrics {
    pub fn new(clients: &AwsClients) -> Self {
        Self {
            clients: clients.cloudwatch.clone(),
        }
    }

    /// Uses `client` whatever the region (tests with a mocked client).
    pub fn from_client(client: aws_sdk_cloudwatch::Client) -> Self {
        Self {
            clients: Regional::fixed(client),
        }
    }
}

fn smithy_time(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_millis(t.timestamp_millis())
}

#[async_trait]
impl Metrics for CloudWatchMetrics {
    async fn alarm_states(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<HashMap<String, AlarmState>, PortError> {
        const OP: &str = "DescribeAlarms";
        let client = self.clients.get(region);
        let mut states = HashMap::new();
        // No names means no call: DescribeAlarms without AlarmNames would list every alarm.
        for batch in names.chunks(ALARM_NAMES_PER_CALL) {
            let mut pages = client
                .describe_alarms()
                .set_alarm_names(Some(batch.to_vec()))
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| port_error(OP, &e))?;
                let metric = page
                    .metric_alarms()
                    .iter()
                    .map(|a| (a.alarm_name(), a.state_value()));
                let composite = page
                    .composite_alarms()
                    .iter()
                    .map(|a| (a.alarm_name(), a.state_value()));
                for (name, state) in metric.chain(composite) {
                    if let (Some(name), Some(state)) =
                        (name, state.and_then(|s| AlarmState::parse(s.as_str())))
                    {
                        states.insert(name.to_owned(), state);
                    }
                }
            }
        }
        Ok(states)
    }

    async fn replica_lag(
        &self,
        db: &DbRef,
        metric: LagMetric,
        now: DateTime<Utc>,
    ) -> Result<Option<LagReading>, PortError> {
        let (metric_name, dimension, per_second) = match metric {
            LagMetric::RdsReplicaLag => ("ReplicaLag", "DBInstanceIdentifier", 1.0),
            LagMetric::AuroraReplicaLag => ("AuroraReplicaLag", "DBInstanceIdentifier", 1000.0),
            LagMetric::AuroraGlobalLag => (
                "AuroraGlobalDBReplicationLag",
                "DBClusterIdentifier",
                1000.0,
            ),
        };
        let metric = Metric::builder()
            .namespace("AWS/RDS")
            .metric_name(metric_name)
            .dimensions(Dimension::builder().name(dimension).value(&db.id).build())
            .build();
        let query = MetricDataQuery::builder()
            .id("lag")
            .metric_stat(
                MetricStat::builder()
                    .metric(metric)
                    .period(LAG_PERIOD_SECS)
                    .stat("Maximum")
                    .build(),
            )
            .return_data(true)
            .build();
        let out = self
            .clients
            .get(&db.region)
            .get_metric_data()
            .metric_data_queries(query)
            .start_time(smithy_time(now - LAG_WINDOW))
            .end_time(smithy_time(now))
            .scan_by(ScanBy::TimestampDescending)
            .send()
            .await
            .map_err(|e| port_error("GetMetricData", &e))?;
        // Picked by timestamp rather than trusting the scan order (emulators ignore ScanBy).
        let newest = out
            .metric_data_results()
            .iter()
            .flat_map(|r| r.timestamps().iter().zip(r.values()))
            .max_by_key(|(t, _)| **t);
        // A datapoint's timestamp is the start of its period (CloudWatch GetMetricData: each
        // value aggregates the samples in [timestamp, timestamp + period)); the latest sample it
        // can hold was taken by the period's end, never after this read.
        // A negative reading (RDS's -1: replication stopped) is passed through as published; the
        // policy treats it as "no reading" and falls back on the last good one.
        Ok(newest.map(|(t, v)| {
            let start =
                DateTime::<Utc>::from_timestamp_millis(t.to_millis().unwrap_or(0)).unwrap_or(now);
            LagReading {
                secs: if *v < 0.0 { *v } else { v / per_second },
                at: (start + chrono::Duration::seconds(LAG_PERIOD_SECS.into())).min(now),
            }
        }))
    }
}

// ---------------------------------------------------------------- DynamoDB ledger

const STATE_SK: &str = "STATE";
/// The sparse global secondary index of site records in flight (`infra/template.yaml`).
pub const IN_FLIGHT_INDEX: &str = "InFlight";
const IN_FLIGHT: &str = "IN_FLIGHT";
/// Audit items expire on their own (DynamoDB TTL on `expires_at`) after this long.
pub(crate) const AUDIT_RETENTION: chrono::Duration = chrono::Duration::days(90);

/// [`Ledger`] in one DynamoDB table: per site, a `STATE` item written by compare-and-set on its
/// `version`, and an `AUDIT#<version>` item per write (the incident's history, kept 90 days).
///
/// Both go in one TransactWriteItems: the audit trail cannot miss a state, and the SDK fills the
/// transaction's ClientRequestToken once per call, so its own retry of a write whose response was
/// lost is recognised by DynamoDB instead of reported as a lost race.
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(clients: &AwsClients, table: &str) -> Self {
        Self::from_client(clients.dynamodb().clone(), table)
    }

    pub fn from_client(client: aws_sdk_dynamodb::Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
        }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The attributes of a ledger item for `state` (its sort key aside). `version`, `epoch` and
/// `phase` duplicate the JSON so operators can query them and the write can be conditional.
fn ledger_item(
    state: &SiteState,
    sk: String,
    now: DateTime<Utc>,
) -> Result<HashMap<String, AttributeValue>, serde_json::Error> {
    let updated_at = state
        .updated_at
        .unwrap_or(now)
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    let in_flight = sk == STATE_SK && state.phase.is_in_flight();
    let mut item = HashMap::from([
        ("pk".to_owned(), s(&state.site)),
        ("sk".to_owned(), s(sk)),
        ("version".to_owned(), n(state.version)),
        ("epoch".to_owned(), n(state.epoch)),
        ("phase".to_owned(), s(state.phase.as_str())),
        ("state".to_owned(), s(serde_json::to_string(state)?)),
        ("updated_at".to_owned(), s(updated_at)),
    ]);
    // Only a site record in flight has the attribute: the InFlight index is sparse.
    if in_flight {
        item.insert("in_flight".to_owned(), s(IN_FLIGHT));
    }
    Ok(item)
}

/// The codes of a cancelled transaction, one per item. DynamoDB returns them as
/// `CancellationReasons`; older emulators only in the message (`... [ConditionalCheckFailed, None]`).
fn cancellation_codes(
    e: &aws_sdk_dynamodb::types::error::TransactionCanceledException,
) -> Vec<String> {
    if !e.cancellation_reasons().is_empty() {
        return e
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None").to_owned())
            .collect();
    }
    let listed = e
        .message()
        .and_then(|m| m.rsplit_once('['))
        .and_then(|(_, rest)| rest.split_once(']'));
    listed
        .map(|(list, _)| list.split(',').map(|c| c.trim().to_owned()).collect())
        .unwrap_or_default()
}

fn commit_error(err: &SdkError<TransactWriteItemsError, HttpResponse>) -> PortError {
    const OP: &str = "TransactWriteItems";
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        err.as_service_error()
    else {
        return port_error(OP, err);
    };
    let codes = cancellation_codes(cancelled);
    let kind = match codes.first().map(String::as_str) {
        // Item 0 is the STATE put: its version condition failed, so another writer won.
        Some("ConditionalCheckFailed") => ErrorKind::Conflict,
        _ if codes.iter().any(|c| c == "TransactionConflict") => ErrorKind::Conflict,
        _ if codes.iter().any(|c| {
            matches!(
                c.as_str(),
                "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded"
            )
        }) =>
        {
            ErrorKind::Throttled
        }
        _ => ErrorKind::Other,
    };
    let message = cancelled.message().unwrap_or("transaction cancelled");
    PortError::new(
        kind,
        OP,
        format!(
            "TransactionCanceledException: {message} (reasons: [{}])",
            codes.join(", ")
        ),
    )
}

/// A site record from its `STATE` item as GetItem returned it (none: the unwritten record).
fn state_of_item(
    site: &str,
    item: Option<&HashMap<String, AttributeValue>>,
) -> Result<SiteState, PortError> {
    const OP: &str = "GetItem";
    let Some(item) = item else {
        return Ok(SiteState::new(site));
    };
    let json = item
        .get("state")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| {
            other(
                OP,
                format!("ledger item of site {site} has no string attribute `state`"),
            )
        })?;
    let mut state: SiteState = serde_json::from_str(json).map_err(|e| {
        other(
            OP,
            format!("ledger item of site {site}: `state` is not a site record: {e}"),
        )
    })?;
    // The attribute is what the next write's condition compares, so it is the version that
    // counts; a record whose JSON disagreed would otherwise lose every race forever.
    if let Some(v) = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
    {
        state.version = v;
    }
    Ok(state)
}

/// [`LedgerRead`] over the same table: GetItem on a site's `STATE` item, nothing else (the
/// notifier checks events against it, and links no write of a site record).
pub struct DynamoLedgerReader {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLedgerReader {
    pub fn new(clients: &AwsClients, table: &str) -> Self {
        Self {
            client: clients.dynamodb().clone(),
            table: table.to_owned(),
        }
    }
}

#[async_trait]
impl LedgerRead for DynamoLedgerReader {
    async fn read(&self, site: &str) -> Result<SiteState, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(site))
            .key("sk", s(STATE_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("GetItem", &e))?;
        state_of_item(site, out.item())
    }
}

#[async_trait]
impl Ledger for DynamoLedger {
    async fn load(&self, site: &str) -> Result<SiteState, PortError> {
        const OP: &str = "GetItem";
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(site))
            .key("sk", s(STATE_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(OP, &e))?;
        state_of_item(site, out.item())
    }

    async fn in_flight(&self) -> Result<Vec<SiteState>, PortError> {
        const OP: &str = "Query";
        // The STATE item of a site in flight carries `in_flight` (see `ledger_item`): the sparse
        // index IN_FLIGHT_INDEX holds exactly those items (DynamoDB Developer Guide, "Take
        // advantage of sparse indexes"), so this reads a handful of items, not the audit trail.
        // GSI reads are eventually consistent: a record a moment old is good enough to page on.
        let mut out = vec![];
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(IN_FLIGHT_INDEX)
                .key_condition_expression("in_flight = :yes")
                .expression_attribute_values(":yes", s(IN_FLIGHT))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_error(OP, &e))?;
            for item in page.items() {
                let Some(json) = item.get("state").and_then(|v| v.as_s().ok()) else {
                    continue;
                };
                let st = serde_json::from_str::<SiteState>(json).map_err(|e| {
                    other(
                        OP,
                        format!("a ledger item's `state` is not a site record: {e}"),
                    )
                })?;
                out.push(st);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    async fn commit(&self, next: &SiteState) -> Result<(), PortError> {
        const OP: &str = "TransactWriteItems";
        let Some(prev) = next.version.checked_sub(1) else {
            return Err(other(
                OP,
                format!(
                    "site {}: version 0 is the unwritten record and cannot be committed",
                    next.site
                ),
            ));
        };
        let now = Utc::now();
        let encode = |e: serde_json::Error| {
            other(
                OP,
                format!("site {}: cannot encode the record: {e}", next.site),
            )
        };
        let state_item = ledger_item(next, STATE_SK.to_owned(), now).map_err(encode)?;
        let mut audit_item =
            ledger_item(next, format!("AUDIT#{:012}", next.version), now).map_err(encode)?;
        audit_item.insert(
            "expires_at".to_owned(),
            n((now + AUDIT_RETENTION).timestamp()),
        );

        let state_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(state_item));
        let state_put = if prev == 0 {
            state_put.condition_expression("attribute_not_exists(pk)")
        } else {
            state_put
                .condition_expression("version = :prev")
                .expression_attribute_values(":prev", n(prev))
        };
        // Conditional too, so replaying the same version never rewrites its history.
        let audit_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(audit_item))
            .condition_expression("attribute_not_exists(pk)");
        let build = |p: aws_sdk_dynamodb::types::builders::PutBuilder| {
            p.build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|e| other(OP, e.to_string()))
        };
        self.client
            .transact_write_items()
            .transact_items(build(state_put)?)
            .transact_items(build(audit_put)?)
            .send()
            .await
            .map_err(|e| commit_error(&e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------- EventBridge

/// PutEvents accepts at most 10 entries per call.
const EVENTS_PER_CALL: usize = 10;

/// [`EventBus`] over EventBridge PutEvents on the project's bus.
pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeBus {
    pub fn new(clients: &AwsClients, bus: &str) -> Self {
        Self::from_client(clients.eventbridge().clone(), bus)
    }

    pub fn from_client(client: aws_sdk_eventbridge::Client, bus: &str) -> Self {
        Self {
            client,
            bus: bus.to_owned(),
        }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    /// PutEvents is not atomic: when some entries fail the others are delivered anyway. The whole
    /// call is reported as failed so the caller keeps the events in its outbox and re-sends them;
    /// consumers dedupe on [`DomainEvent::dedupe_key`].
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PortError> {
        const OP: &str = "PutEvents";
        for batch in events.chunks(EVENTS_PER_CALL) {
            let entries = batch
                .iter()
                .map(|e| {
                    let detail = serde_json::to_string(e).map_err(|err| {
                        other(OP, format!("cannot encode {}: {err}", e.dedupe_key()))
                    })?;
                    Ok(PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(EVENT_SOURCE)
                        .detail_type(e.event_type.detail_type())
                        .detail(detail)
                        .build())
                })
                .collect::<Result<Vec<_>, PortError>>()?;
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| port_error(OP, &e))?;
            if out.failed_entry_count() == 0 {
                continue;
            }
            // Result entries are in request order; a failed one carries an error code.
            let failed: Vec<(&DomainEvent, &str, &str)> = batch
                .iter()
                .zip(out.entries())
                .filter_map(|(e, r)| {
                    Some((e, r.error_code()?, r.error_message().unwrap_or_default()))
                })
                .collect();
            let kind = failed
                .first()
                .and_then(|(_, code, _)| kind_for_code(code))
                .unwrap_or(ErrorKind::Other);
            let detail: Vec<String> = failed
                .iter()
                .map(|(e, code, msg)| format!("{}: {code} {msg}", e.dedupe_key()))
                .collect();
            return Err(PortError::new(
                kind,
                OP,
                format!(
                    "{} of {} entries failed: {}",
                    out.failed_entry_count(),
                    batch.len(),
                    detail.join("; ")
                ),
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- credentials

/// [`Credentials`] from Secrets Manager (home region) or the function's environment.
pub struct SecretsManagerCredentials {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerCredentials {
    pub fn new(clients: &AwsClients) -> Self {
        Self::from_client(clients.secrets_manager().clone())
    }

    pub fn from_client(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }
}

/// RDS-managed secrets are JSON objects with `password` (and `username`, ...); a hand-made secret
/// may be the bare password. Errors never quote the secret.
fn password_from_secret(secret: &str) -> Result<String, &'static str> {
    match serde_json::from_str::<serde_json::Value>(secret) {
        Ok(serde_json::Value::Object(fields)) => match fields.get("password") {
            Some(serde_json::Value::String(p)) => Ok(p.clone()),
            _ => Err("a JSON object without a string `password` field"),
        },
        _ => Ok(secret.to_owned()),
    }
}

#[async_trait]
impl Credentials for SecretsManagerCredentials {
    async fn password(&self, source: &CredentialsSource) -> Result<String, PortError> {
        match source {
            CredentialsSource::Env { var } => std::env::var(var).map_err(|_| {
                PortError::new(
                    ErrorKind::NotFound,
                    "ReadEnv",
                    format!("environment variable {var} is not set"),
                )
            }),
            CredentialsSource::SecretsManager { secret_id } => {
                const OP: &str = "GetSecretValue";
                let out = self
                    .client
                    .get_secret_value()
                    .secret_id(secret_id)
                    .send()
                    .await
                    .map_err(|e| port_error(OP, &e))?;
                let secret = out
                    .secret_string()
                    .ok_or_else(|| other(OP, format!("secret {secret_id} has no SecretString (binary secrets are not supported)")))?;
                password_from_secret(secret)
                    .map_err(|why| other(OP, format!("secret {secret_id} is {why}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_kinds() {
        let cases = [
            ("Throttling", ErrorKind::Throttled),
            ("ThrottlingException", ErrorKind::Throttled),
            (
                "ProvisionedThroughputExceededException",
                ErrorKind::Throttled,
            ),
            ("DBInstanceNotFound", ErrorKind::NotFound),
            ("GlobalClusterNotFoundFault", ErrorKind::NotFound),
            ("ResourceNotFoundException", ErrorKind::NotFound),
            ("AccessDeniedException", ErrorKind::AccessDenied),
            ("InvalidClientTokenId", ErrorKind::AccessDenied),
            ("ExpiredToken", ErrorKind::AccessDenied),
            ("InvalidDBInstanceState", ErrorKind::InvalidState),
            ("InvalidDBClusterStateFault", ErrorKind::InvalidState),
            ("ConditionalCheckFailedException", ErrorKind::Conflict),
            ("InternalFailure", ErrorKind::Unavailable),
            ("ServiceUnavailable", ErrorKind::Unavailable),
        ];
        for (code, kind) in cases {
            assert_eq!(kind_for_code(code), Some(kind), "{code}");
        }
        assert_eq!(kind_for_code("InvalidParameterValue"), None);
        assert_eq!(kind_for_code("ValidationException"), None);
    }

    #[test]
    fn secrets_are_rds_json_or_raw() {
        assert_eq!(
            password_from_secret(r#"{"username":"u","password":"p@ss"}"#).unwrap(),
            "p@ss"
        );
        assert_eq!(
            password_from_secret("plain-password").unwrap(),
            "plain-password"
        );
        assert_eq!(
            password_from_secret("12345").unwrap(),
            "12345",
            "a numeric password is not a JSON number"
        );
        let err = password_from_secret(r#"{"username":"u","pass":"leak-me"}"#).unwrap_err();
        assert!(!err.contains("leak-me"));
    }
}
