//! The AWS adapters against the real SDK client types, with responses injected by
//! `aws-smithy-mocks`: what each adapter sends (names, batches, conditions, item layout) and how
//! each AWS answer — including errors parsed from raw wire responses — becomes a port result or a
//! [`PortError`] of the right [`ErrorKind`]. Retries are disabled so each rule answers one attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_cloudwatch::operation::describe_alarms::{DescribeAlarmsError, DescribeAlarmsOutput};
use aws_sdk_cloudwatch::operation::get_metric_data::{GetMetricDataInput, GetMetricDataOutput};
use aws_sdk_cloudwatch::types::{
    AlarmType, CompositeAlarm, MetricAlarm, MetricDataResult, ScanBy, StateValue,
};
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsInput, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_eventbridge::operation::put_events::{PutEventsInput, PutEventsOutput};
use aws_sdk_eventbridge::types::PutEventsResultEntry;
use aws_sdk_rds::operation::describe_db_clusters::DescribeDBClustersError;
use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
use aws_sdk_rds::operation::describe_global_clusters::DescribeGlobalClustersError;
use aws_sdk_rds::types::{DbCluster, DbClusterMember, DbInstance, Endpoint};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use chrono::{TimeZone, Utc};
use failover_adapters::aws::{
    port_error, AwsClients, CloudWatchMetrics, DynamoLedger, EventBridgeBus, RdsTopology,
    SecretsManagerCredentials,
};
use failover_adapters::ports::{
    ClusterInfo, ClusterMember, Credentials, DatabaseTopology, ErrorKind, EventBus, InstanceInfo,
    LagMetric, Ledger, Metrics,
};
use failover_policy::config::{CredentialsSource, DbRef};
use failover_policy::signal::AlarmState;
use failover_policy::verdict::{Outcome, Verdict};
use failover_policy::{DomainEvent, EventType, Phase, SiteState};

// ---------------------------------------------------------------- helpers

fn rds(rules: &[&Rule]) -> aws_sdk_rds::Client {
    mock_client!(
        aws_sdk_rds,
        RuleMode::MatchAny,
        rules.iter().copied(),
        |c| c.retry_config(RetryConfig::disabled())
    )
}
fn cloudwatch(rules: &[&Rule]) -> aws_sdk_cloudwatch::Client {
    mock_client!(
        aws_sdk_cloudwatch,
        RuleMode::MatchAny,
        rules.iter().copied(),
        |c| c.retry_config(RetryConfig::disabled())
    )
}
fn dynamodb(rules: &[&Rule]) -> aws_sdk_dynamodb::Client {
    mock_client!(
        aws_sdk_dynamodb,
        RuleMode::MatchAny,
        rules.iter().copied(),
        |c| c.retry_config(RetryConfig::disabled())
    )
}
fn eventbridge(rules: &[&Rule]) -> aws_sdk_eventbridge::Client {
    mock_client!(
        aws_sdk_eventbridge,
        RuleMode::MatchAny,
        rules.iter().copied(),
        |c| c.retry_config(RetryConfig::disabled())
    )
}
fn secrets(rules: &[&Rule]) -> aws_sdk_secretsmanager::Client {
    mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::MatchAny,
        rules.iter().copied(),
        |c| c.retry_config(RetryConfig::disabled())
    )
}

/// An RDS (awsQuery) error exactly as the service sends it.
fn rds_error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = format!(
        r#"<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>req-1</RequestId></ErrorResponse>"#
    );
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

fn db(id: &str, region: &str) -> DbRef {
    DbRef {
        id: id.into(),
        region: region.into(),
    }
}

/// Records every request a rule sees, for assertions on what the adapter sent.
fn recorder<T>() -> Arc<Mutex<Vec<T>>> {
    Arc::new(Mutex::new(vec![]))
}

fn event(n: u64) -> DomainEvent {
    DomainEvent {
        event_type: EventType::IncidentSuspected,
        site: "orders".into(),
        epoch: n,
        phase: Phase::Suspected,
        engine: "rds-replica".into(),
        occurred_at: Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap(),
        primary: Some(db("orders-primary", "us-east-1")),
        candidate: None,
        rpo_override: None,
        verdict: Verdict {
            site: Some("orders".into()),
            outcome: Outcome::Suspected,
            epoch: n,
            phase: Phase::Suspected,
            summary: "primary looks down".into(),
            guards: vec![],
        },
        timeline: vec![],
    }
}

// ---------------------------------------------------------------- RDS topology and error mapping

#[tokio::test]
async fn describe_instance_fills_every_field_from_the_response() {
    let seen = recorder::<String>();
    let rec = seen.clone();
    let rule = mock!(aws_sdk_rds::Client::describe_db_instances)
        .match_requests(move |r| {
            rec.lock()
                .unwrap()
                .push(r.db_instance_identifier().unwrap_or_default().to_owned());
            true
        })
        .then_output(|| {
            DescribeDbInstancesOutput::builder()
                .db_instances(
                    DbInstance::builder()
                        .db_instance_identifier("orders-replica-1")
                        .db_instance_status("available")
                        .endpoint(
                            Endpoint::builder()
                                .address("orders-replica-1.x.rds.amazonaws.com")
                                .port(3306)
                                .build(),
                        )
                        .read_replica_source_db_instance_identifier(
                            "arn:aws:rds:us-east-1:123456789012:db:orders-primary",
                        )
                        .read_replica_db_instance_identifiers("orders-replica-1-child")
                        .multi_az(true)
                        // RDS API reference, DBInstanceStatusInfo: StatusType "read replication",
                        // Status one of replicating, replication degraded, error, stopped, terminated.
                        .status_infos(
                            aws_sdk_rds::types::DbInstanceStatusInfo::builder()
                                .status_type("read replication")
                                .status("error")
                                .normal(false)
                                .message("Error 1062 on the SQL thread")
                                .build(),
                        )
                        .instance_create_time(aws_smithy_types::DateTime::from_secs(1_764_000_000))
                        .build(),
                )
                .build()
        });
    let topo = RdsTopology::from_client(rds(&[&rule]));

    let info = topo
        .instance(&db("orders-replica-1", "us-west-2"))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        info,
        InstanceInfo {
            id: "orders-replica-1".into(),
            status: "available".into(),
            endpoint: Some(("orders-replica-1.x.rds.amazonaws.com".into(), 3306)),
            replication_source: Some("arn:aws:rds:us-east-1:123456789012:db:orders-primary".into()),
            replicas: vec!["orders-replica-1-child".into()],
            cluster_id: None,
            multi_az: true,
            replication_status: Some("error".into()),
            created_at: chrono::DateTime::from_timestamp(1_764_000_000, 0),
        }
    );
    assert_eq!(*seen.lock().unwrap(), ["orders-replica-1"]);
}

#[tokio::test]
async fn not_found_faults_are_none_not_errors() {
    // The instance case goes through the wire format: the SDK must parse the awsQuery error.
    let instance = mock!(aws_sdk_rds::Client::describe_db_instances).then_http_response(|| {
        rds_error(
            404,
            "DBInstanceNotFound",
            "DBInstance orders-primary not found.",
        )
    });
    let cluster = mock!(aws_sdk_rds::Client::describe_db_clusters).then_error(|| {
        DescribeDBClustersError::DbClusterNotFoundFault(
            aws_sdk_rds::types::error::DbClusterNotFoundFault::builder().build(),
        )
    });
    let global = mock!(aws_sdk_rds::Client::describe_global_clusters).then_error(|| {
        DescribeGlobalClustersError::GlobalClusterNotFoundFault(
            aws_sdk_rds::types::error::GlobalClusterNotFoundFault::builder().build(),
        )
    });
    let topo = RdsTopology::from_client(rds(&[&instance, &cluster, &global]));

    assert_eq!(
        topo.instance(&db("orders-primary", "us-east-1")).await,
        Ok(None)
    );
    assert_eq!(topo.cluster("billing-cluster", "us-west-2").await, Ok(None));
    assert_eq!(
        topo.global_cluster("payments-global", "us-west-2").await,
        Ok(None)
    );
    assert_eq!(instance.num_calls(), 1);
}

#[tokio::test]
async fn an_answer_about_another_identifier_is_not_found() {
    // moto's DescribeGlobalClusters ignores GlobalClusterIdentifier and lists every global cluster.
    let rule = mock!(aws_sdk_rds::Client::describe_global_clusters).then_output(|| {
        aws_sdk_rds::operation::describe_global_clusters::DescribeGlobalClustersOutput::builder()
            .global_clusters(
                aws_sdk_rds::types::GlobalCluster::builder()
                    .global_cluster_identifier("payments-global")
                    .status("available")
                    .global_cluster_members(
                        aws_sdk_rds::types::GlobalClusterMember::builder()
                            .db_cluster_arn(
                                "arn:aws:rds:us-east-1:123456789012:cluster:payments-east",
                            )
                            .is_writer(true)
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let topo = RdsTopology::from_client(rds(&[&rule]));

    assert_eq!(
        topo.global_cluster("other-global", "us-west-2").await,
        Ok(None)
    );
    let g = topo
        .global_cluster("Payments-Global", "us-west-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (g.id.as_str(), g.members.len(), g.members[0].is_writer),
        ("payments-global", 1, true),
        "identifiers are case-insensitive"
    );
}

#[tokio::test]
async fn throttling_is_throttled_and_keeps_the_aws_message() {
    let rule = mock!(aws_sdk_rds::Client::describe_db_clusters)
        .then_http_response(|| rds_error(400, "Throttling", "Rate exceeded"));
    let topo = RdsTopology::from_client(rds(&[&rule]));

    let err = topo
        .cluster("billing-cluster", "us-west-2")
        .await
        .unwrap_err();

    assert_eq!(err.kind, ErrorKind::Throttled);
    assert_eq!(err.operation, "DescribeDBClusters");
    assert!(
        err.message.contains("Throttling") && err.message.contains("Rate exceeded"),
        "{}",
        err.message
    );
    assert!(err.kind.is_retryable());
}

#[tokio::test]
async fn access_denied_is_access_denied_and_not_retryable() {
    let rule = mock!(aws_sdk_rds::Client::describe_db_instances).then_http_response(|| {
        rds_error(403, "AccessDenied", "User: arn:aws:sts::123456789012:assumed-role/evaluator is not authorized to perform: rds:DescribeDBInstances")
    });
    let topo = RdsTopology::from_client(rds(&[&rule]));

    let err = topo
        .instance(&db("orders-primary", "us-east-1"))
        .await
        .unwrap_err();

    assert_eq!(err.kind, ErrorKind::AccessDenied);
    assert!(err.message.contains("not authorized"), "{}", err.message);
    assert!(!err.kind.is_retryable());
}

#[tokio::test]
async fn invalid_state_from_a_mutating_call_is_invalid_state() {
    // The promoter's calls share the mapping; promotion during a backup answers this.
    let rule = mock!(aws_sdk_rds::Client::promote_read_replica).then_http_response(|| {
        rds_error(
            400,
            "InvalidDBInstanceState",
            "DB Instance is not in an available state.",
        )
    });
    let client = rds(&[&rule]);

    let err = client
        .promote_read_replica()
        .db_instance_identifier("orders-replica-1")
        .send()
        .await
        .unwrap_err();
    let mapped = port_error("PromoteReadReplica", &err);

    assert_eq!(mapped.kind, ErrorKind::InvalidState);
    assert!(
        mapped
            .message
            .starts_with("InvalidDBInstanceState: DB Instance is not"),
        "{}",
        mapped.message
    );
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retryable_kinds() {
    let rule = mock!(aws_sdk_rds::Client::describe_db_instances).then_http_response(|| {
        HttpResponse::new(
            StatusCode::try_from(503).unwrap(),
            SdkBody::from("Service Unavailable"),
        )
    });
    let topo = RdsTopology::from_client(rds(&[&rule]));
    let err = topo
        .instance(&db("orders-primary", "us-east-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");

    let timeout: SdkError<
        aws_sdk_rds::operation::describe_db_instances::DescribeDBInstancesError,
        HttpResponse,
    > = SdkError::timeout_error(
        "operation timeout (all attempts including retries) occurred after 15s",
    );
    assert_eq!(
        port_error("DescribeDBInstances", &timeout).kind,
        ErrorKind::Timeout
    );
}

#[tokio::test]
async fn cluster_members_and_writer_flags_are_read() {
    let rule = mock!(aws_sdk_rds::Client::describe_db_clusters).then_output(|| {
        aws_sdk_rds::operation::describe_db_clusters::DescribeDbClustersOutput::builder()
            .db_clusters(
                DbCluster::builder()
                    .db_cluster_identifier("billing-cluster")
                    .db_cluster_arn("arn:aws:rds:us-west-2:123456789012:cluster:billing-cluster")
                    .endpoint("billing-cluster.cluster-c1.us-west-2.rds.amazonaws.com")
                    .port(3306)
                    .status("available")
                    .db_cluster_members(
                        DbClusterMember::builder()
                            .db_instance_identifier("billing-1")
                            .is_cluster_writer(true)
                            .build(),
                    )
                    .db_cluster_members(
                        DbClusterMember::builder()
                            .db_instance_identifier("billing-2")
                            .is_cluster_writer(false)
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let topo = RdsTopology::from_client(rds(&[&rule]));

    let c = topo
        .cluster("billing-cluster", "us-west-2")
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        c,
        ClusterInfo {
            id: "billing-cluster".into(),
            endpoint: Some((
                "billing-cluster.cluster-c1.us-west-2.rds.amazonaws.com".into(),
                3306
            )),
            arn: Some("arn:aws:rds:us-west-2:123456789012:cluster:billing-cluster".into()),
            status: "available".into(),
            members: vec![
                ClusterMember {
                    instance_id: "billing-1".into(),
                    is_writer: true
                },
                ClusterMember {
                    instance_id: "billing-2".into(),
                    is_writer: false
                },
            ],
        }
    );
}

// ---------------------------------------------------------------- CloudWatch

#[tokio::test]
async fn alarm_states_batch_by_100_follow_next_token_and_read_composites() {
    let seen = recorder::<aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsInput>();
    let rec = seen.clone();
    // Answers with every requested alarm except `missing`, half per page when asked for many.
    let rule = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .match_requests(move |r| {
            rec.lock().unwrap().push(r.clone());
            true
        })
        .then_compute_output(|r| {
            let names: Vec<&String> = r.alarm_names().iter().filter(|n| *n != "missing").collect();
            let half = names.len() / 2;
            let (page, next) = match r.next_token() {
                None if names.len() > 50 => (&names[..half], Some("page-2")),
                None => (&names[..], None),
                Some(_) => (&names[half..], None),
            };
            let mut out = DescribeAlarmsOutput::builder().set_next_token(next.map(String::from));
            for name in page {
                let state = if name.ends_with("-down") {
                    StateValue::Alarm
                } else {
                    StateValue::Ok
                };
                out = if name.starts_with("composite-") {
                    out.composite_alarms(
                        CompositeAlarm::builder()
                            .alarm_name(*name)
                            .state_value(state)
                            .build(),
                    )
                } else {
                    out.metric_alarms(
                        MetricAlarm::builder()
                            .alarm_name(*name)
                            .state_value(state)
                            .build(),
                    )
                };
            }
            out.build()
        });
    let metrics = CloudWatchMetrics::from_client(cloudwatch(&[&rule]));
    let mut names: Vec<String> = (0..148).map(|i| format!("alarm-{i}")).collect();
    names.extend(["composite-outage-down".into(), "missing".into()]);

    let states = metrics.alarm_states("us-east-1", &names).await.unwrap();

    assert_eq!(
        states.len(),
        149,
        "every alarm CloudWatch knows, across batches and pages"
    );
    assert_eq!(states["alarm-0"], AlarmState::Ok);
    assert_eq!(states["alarm-147"], AlarmState::Ok);
    assert_eq!(states["composite-outage-down"], AlarmState::Alarm);
    assert!(!states.contains_key("missing"));
    let seen = seen.lock().unwrap().clone();
    let sizes: Vec<(usize, Option<&str>)> = seen
        .iter()
        .map(|r| (r.alarm_names().len(), r.next_token()))
        .collect();
    assert_eq!(sizes, [(100, None), (100, Some("page-2")), (50, None)]);
    assert!(seen
        .iter()
        .all(|r| r.alarm_types() == [AlarmType::MetricAlarm, AlarmType::CompositeAlarm]));

    // No names, no call: DescribeAlarms without names would list the whole account.
    assert!(metrics
        .alarm_states("us-east-1", &[])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(rule.num_calls(), 3);
}

/// The data-plane switch's alarm read (unpin waits for it): one DescribeAlarms naming exactly the
/// configured alarm, metric alarms only, in the metric's region; an alarm CloudWatch does not know
/// is NotFound (not OK).
#[tokio::test]
async fn the_switch_alarm_is_read_by_name_and_a_missing_one_is_not_found() {
    use failover_adapters::switch::{CloudWatchSwitch, MetricSwitch};
    let seen = recorder::<aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsInput>();
    let rec = seen.clone();
    let rule = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .match_requests(move |r| {
            rec.lock().unwrap().push(r.clone());
            true
        })
        .then_compute_output(|r| {
            let mut out = DescribeAlarmsOutput::builder();
            for name in r.alarm_names().iter().filter(|n| *n != "gone") {
                out = out.metric_alarms(
                    MetricAlarm::builder()
                        .alarm_name(name)
                        .state_value(StateValue::Alarm)
                        .build(),
                );
            }
            out.build()
        });
    let switch = CloudWatchSwitch::from_client("us-west-2", cloudwatch(&[&rule]));
    let mut metric = failover_policy::config::SwitchMetric {
        namespace: "RdsFailover/Switch".into(),
        name: "ServeSecondary".into(),
        region: "us-west-2".into(),
        alarm: "rds-failover-orders-serve-secondary".into(),
        dimensions: Default::default(),
    };

    assert_eq!(
        switch.alarm_state(&metric).await.unwrap(),
        AlarmState::Alarm
    );
    let sent = seen.lock().unwrap().clone();
    assert_eq!(
        sent[0].alarm_names(),
        ["rds-failover-orders-serve-secondary"]
    );
    assert_eq!(sent[0].alarm_types(), [AlarmType::MetricAlarm]);

    metric.alarm = "gone".into();
    let err = switch.alarm_state(&metric).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(
        err.message.contains("gone") && err.message.contains("us-west-2"),
        "{}",
        err.message
    );

    metric.region = "eu-west-1".into();
    let err = switch.alarm_state(&metric).await.unwrap_err();
    assert!(
        err.message.contains("no CloudWatch client for eu-west-1"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn alarm_read_access_denied_is_access_denied() {
    let rule = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_error(|| {
        DescribeAlarmsError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("not authorized to perform cloudwatch:DescribeAlarms")
                .build(),
        )
    });
    let metrics = CloudWatchMetrics::from_client(cloudwatch(&[&rule]));

    let err = metrics
        .alarm_states("us-east-1", &["a".into()])
        .await
        .unwrap_err();

    assert_eq!(
        (err.kind, err.operation),
        (ErrorKind::AccessDenied, "DescribeAlarms")
    );
    assert!(
        err.message.contains("cloudwatch:DescribeAlarms"),
        "{}",
        err.message
    );
}

fn lag_rule(seen: Arc<Mutex<Vec<GetMetricDataInput>>>, points: Vec<(i64, f64)>) -> Rule {
    mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(move |r| {
            seen.lock().unwrap().push(r.clone());
            true
        })
        .then_compute_output(move |_| {
            let mut result = MetricDataResult::builder().id("lag");
            for (t, v) in &points {
                result = result
                    .timestamps(aws_smithy_types::DateTime::from_secs(*t))
                    .values(*v);
            }
            GetMetricDataOutput::builder()
                .metric_data_results(result.build())
                .build()
        })
}

#[tokio::test]
async fn replica_lag_is_the_newest_datapoint_and_milliseconds_become_seconds() {
    let now = Utc.with_ymd_and_hms(2026, 11, 24, 3, 10, 0).unwrap();
    let t = now.timestamp();
    let seen = recorder();
    // Deliberately out of order: the newest (t-60) is in the middle.
    let rule = lag_rule(
        seen.clone(),
        vec![(t - 180, 9000.0), (t - 60, 2500.0), (t - 120, 7000.0)],
    );
    let metrics = CloudWatchMetrics::from_client(cloudwatch(&[&rule]));

    let lag = metrics
        .replica_lag(
            &db("billing-2", "us-west-2"),
            LagMetric::AuroraReplicaLag,
            now,
        )
        .await
        .unwrap();

    // The newest datapoint's period is [t-60, t): taken by t at the latest, not "whenever read".
    assert_eq!(
        lag,
        Some(failover_policy::evidence::LagReading { secs: 2.5, at: now })
    );
    let seen = seen.lock().unwrap();
    let q = &seen[0].metric_data_queries()[0];
    let stat = q.metric_stat().unwrap();
    let metric = stat.metric().unwrap();
    assert_eq!(
        (metric.namespace(), metric.metric_name()),
        (Some("AWS/RDS"), Some("AuroraReplicaLag"))
    );
    let dim = &metric.dimensions()[0];
    assert_eq!(
        (dim.name(), dim.value()),
        (Some("DBInstanceIdentifier"), Some("billing-2"))
    );
    assert_eq!((stat.period(), stat.stat()), (Some(60), Some("Maximum")));
    assert_eq!(seen[0].end_time().unwrap().secs(), t);
    assert_eq!(seen[0].start_time().unwrap().secs(), t - 600);
    assert_eq!(seen[0].scan_by(), Some(&ScanBy::TimestampDescending));
}

#[tokio::test]
async fn replica_lag_keeps_minus_one_and_is_none_without_datapoints() {
    let now = Utc.with_ymd_and_hms(2026, 11, 24, 3, 10, 0).unwrap();
    let seen = recorder();
    let stopped = lag_rule(seen.clone(), vec![(now.timestamp() - 60, -1.0)]);
    let metrics = CloudWatchMetrics::from_client(cloudwatch(&[&stopped]));
    assert_eq!(
        metrics
            .replica_lag(
                &db("orders-replica-1", "us-west-2"),
                LagMetric::RdsReplicaLag,
                now
            )
            .await,
        Ok(Some(failover_policy::evidence::LagReading {
            secs: -1.0,
            at: now
        }))
    );

    let global = lag_rule(seen.clone(), vec![]);
    let metrics = CloudWatchMetrics::from_client(cloudwatch(&[&global]));
    assert_eq!(
        metrics
            .replica_lag(
                &db("payments-west", "us-west-2"),
                LagMetric::AuroraGlobalLag,
                now
            )
            .await,
        Ok(None)
    );
    let seen = seen.lock().unwrap();
    let metric = seen[1].metric_data_queries()[0]
        .metric_stat()
        .unwrap()
        .metric()
        .unwrap();
    assert_eq!(metric.metric_name(), Some("AuroraGlobalDBReplicationLag"));
    assert_eq!(metric.dimensions()[0].name(), Some("DBClusterIdentifier"));
}

// ---------------------------------------------------------------- DynamoDB ledger

fn state_at(version: u64) -> SiteState {
    let mut s = SiteState::new("orders");
    s.version = version;
    s.epoch = 2;
    s.phase = Phase::Suspected;
    s.first_seen = Some(Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap());
    s.updated_at = Some(Utc.with_ymd_and_hms(2026, 11, 24, 3, 1, 0).unwrap());
    s
}

fn attr<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> &'a str {
    match &item[k] {
        AttributeValue::S(v) | AttributeValue::N(v) => v,
        other => panic!("{k}: unexpected {other:?}"),
    }
}

#[tokio::test]
async fn commit_writes_state_and_audit_items_with_compare_and_set_conditions() {
    let seen = recorder::<TransactWriteItemsInput>();
    let rec = seen.clone();
    let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .match_requests(move |r| {
            rec.lock().unwrap().push(r.clone());
            true
        })
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let ledger = DynamoLedger::from_client(dynamodb(&[&rule]), "rds-failover-ledger");

    ledger.commit(&state_at(1)).await.unwrap();
    ledger.commit(&state_at(5)).await.unwrap();

    let seen = seen.lock().unwrap();
    let first: Vec<_> = seen[0]
        .transact_items()
        .iter()
        .map(|t| t.put().unwrap())
        .collect();
    assert_eq!(
        first[0].condition_expression(),
        Some("attribute_not_exists(pk)"),
        "version 1 creates the record"
    );
    assert!(first[0].expression_attribute_values().is_none());

    let puts: Vec<_> = seen[1]
        .transact_items()
        .iter()
        .map(|t| t.put().unwrap())
        .collect();
    assert_eq!(puts.len(), 2);
    let (state, audit) = (puts[0], puts[1]);
    assert!(puts.iter().all(|p| p.table_name() == "rds-failover-ledger"));
    assert_eq!(state.condition_expression(), Some("version = :prev"));
    assert_eq!(
        state.expression_attribute_values().unwrap()[":prev"],
        AttributeValue::N("4".into())
    );
    let item = state.item();
    assert_eq!(
        [
            attr(item, "pk"),
            attr(item, "sk"),
            attr(item, "version"),
            attr(item, "epoch"),
            attr(item, "phase"),
            attr(item, "updated_at")
        ],
        [
            "orders",
            "STATE",
            "5",
            "2",
            "suspected",
            "2026-11-24T03:01:00Z"
        ]
    );
    assert_eq!(
        serde_json::from_str::<SiteState>(attr(item, "state")).unwrap(),
        state_at(5)
    );
    assert!(
        !item.contains_key("expires_at"),
        "the live record never expires"
    );

    assert_eq!(
        audit.condition_expression(),
        Some("attribute_not_exists(pk)")
    );
    let a = audit.item();
    assert_eq!(
        (attr(a, "pk"), attr(a, "sk"), attr(a, "phase")),
        ("orders", "AUDIT#000000000005", "suspected")
    );
    assert_eq!(attr(a, "state"), attr(item, "state"));
    let expires: i64 = attr(a, "expires_at").parse().unwrap();
    let in_90_days = (Utc::now() + chrono::Duration::days(90)).timestamp();
    assert!(
        (in_90_days - 60..=in_90_days).contains(&expires),
        "TTL 90 days from now, got {expires}"
    );
}

#[tokio::test]
async fn commit_cancelled_by_the_version_condition_is_a_conflict() {
    // The wire answer of DynamoDB when item 0's condition fails.
    let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items).then_http_response(|| {
        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [ConditionalCheckFailed, None]","CancellationReasons":[{"Code":"ConditionalCheckFailed","Message":"The conditional request failed"},{"Code":"None"}]}"#;
        HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::from(body))
    });
    let ledger = DynamoLedger::from_client(dynamodb(&[&rule]), "rds-failover-ledger");

    let err = ledger.commit(&state_at(5)).await.unwrap_err();

    assert_eq!(
        (err.kind, err.operation),
        (ErrorKind::Conflict, "TransactWriteItems")
    );
    assert!(
        err.message.contains("ConditionalCheckFailed"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn commit_cancelled_for_another_reason_is_not_a_conflict() {
    let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items).then_http_response(|| {
        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [ThrottlingError, None]","CancellationReasons":[{"Code":"ThrottlingError"},{"Code":"None"}]}"#;
        HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::from(body))
    });
    let ledger = DynamoLedger::from_client(dynamodb(&[&rule]), "rds-failover-ledger");

    assert_eq!(
        ledger.commit(&state_at(5)).await.unwrap_err().kind,
        ErrorKind::Throttled
    );
    assert_eq!(
        ledger.commit(&state_at(0)).await.unwrap_err().kind,
        ErrorKind::Other,
        "version 0 is never written"
    );
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn load_reads_the_state_json_and_absent_is_a_fresh_record() {
    let stored = state_at(7);
    let json = serde_json::to_string(&stored).unwrap();
    let present = mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(|r| {
            r.key().unwrap()["pk"] == AttributeValue::S("orders".into())
                && r.key().unwrap()["sk"] == AttributeValue::S("STATE".into())
                && r.consistent_read() == Some(true)
        })
        .then_output(move || {
            GetItemOutput::builder()
                .item("pk", AttributeValue::S("orders".into()))
                .item("sk", AttributeValue::S("STATE".into()))
                .item("version", AttributeValue::N("7".into()))
                .item("state", AttributeValue::S(json.clone()))
                .build()
        });
    let absent =
        mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| GetItemOutput::builder().build());
    let ledger = DynamoLedger::from_client(dynamodb(&[&present, &absent]), "rds-failover-ledger");

    assert_eq!(ledger.load("orders").await.unwrap(), stored);
    assert_eq!(
        ledger.load("billing").await.unwrap(),
        SiteState::new("billing")
    );
    assert_eq!((present.num_calls(), absent.num_calls()), (1, 1));
}

// ---------------------------------------------------------------- EventBridge

#[tokio::test]
async fn events_go_out_in_batches_of_ten_with_source_type_and_json_detail() {
    let seen = recorder::<PutEventsInput>();
    let rec = seen.clone();
    let rule = mock!(aws_sdk_eventbridge::Client::put_events)
        .match_requests(move |r| {
            rec.lock().unwrap().push(r.clone());
            true
        })
        .then_compute_output(|r| {
            let mut out = PutEventsOutput::builder().failed_entry_count(0);
            for i in 0..r.entries().len() {
                out = out.entries(
                    PutEventsResultEntry::builder()
                        .event_id(format!("id-{i}"))
                        .build(),
                );
            }
            out.build()
        });
    let bus = EventBridgeBus::from_client(eventbridge(&[&rule]), "rds-failover");
    let events: Vec<DomainEvent> = (1..=23).map(event).collect();

    bus.publish(&events).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|r| r.entries().len()).collect::<Vec<_>>(),
        [10, 10, 3]
    );
    let e = &seen[2].entries()[2];
    assert_eq!(
        (e.source(), e.detail_type(), e.event_bus_name()),
        (
            Some("rds-failover"),
            Some("IncidentSuspected"),
            Some("rds-failover")
        )
    );
    assert!(e.resources().is_empty());
    assert_eq!(
        serde_json::from_str::<DomainEvent>(e.detail().unwrap()).unwrap(),
        events[22]
    );

    bus.publish(&[]).await.unwrap();
    assert_eq!(rule.num_calls(), 3, "nothing to publish, no call");
}

#[tokio::test]
async fn a_partially_failed_put_events_is_an_error_naming_the_failed_events() {
    let rule = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
        PutEventsOutput::builder()
            .failed_entry_count(1)
            .entries(PutEventsResultEntry::builder().event_id("ok-1").build())
            .entries(
                PutEventsResultEntry::builder()
                    .error_code("ThrottlingException")
                    .error_message("Rate exceeded")
                    .build(),
            )
            .build()
    });
    let bus = EventBridgeBus::from_client(eventbridge(&[&rule]), "rds-failover");

    let err = bus.publish(&[event(1), event(2)]).await.unwrap_err();

    assert_eq!(
        (err.kind, err.operation),
        (ErrorKind::Throttled, "PutEvents")
    );
    assert!(
        err.message
            .contains("orders#2#IncidentSuspected: ThrottlingException Rate exceeded"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("orders#1#"), "{}", err.message);
}

// ---------------------------------------------------------------- Secrets Manager and env

#[tokio::test]
async fn passwords_come_from_rds_json_secrets_raw_secrets_or_the_environment() {
    let json = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .match_requests(|r| r.secret_id() == Some("rds-failover/orders/canary"))
        .then_output(|| {
            GetSecretValueOutput::builder()
                .secret_string(r#"{"username":"failover_canary","password":"s3cret"}"#)
                .build()
        });
    let raw = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .match_requests(|r| r.secret_id() == Some("raw"))
        .then_output(|| {
            GetSecretValueOutput::builder()
                .secret_string("plain")
                .build()
        });
    // Through the wire format (awsJson1.1): the code comes from `__type`.
    let missing = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_http_response(|| {
        let body = r#"{"__type":"ResourceNotFoundException","Message":"Secrets Manager can't find the specified secret."}"#;
        HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::from(body))
    });
    let creds = SecretsManagerCredentials::from_client(secrets(&[&json, &raw, &missing]));
    let sm = |id: &str| CredentialsSource::SecretsManager {
        secret_id: id.into(),
    };

    assert_eq!(
        creds
            .password(&sm("rds-failover/orders/canary"))
            .await
            .unwrap(),
        "s3cret"
    );
    assert_eq!(creds.password(&sm("raw")).await.unwrap(), "plain");
    let err = creds.password(&sm("nope")).await.unwrap_err();
    assert_eq!(
        (err.kind, err.operation),
        (ErrorKind::NotFound, "GetSecretValue")
    );
    assert!(err.message.contains("can't find"), "{}", err.message);

    std::env::set_var("AWS_ERROR_MAPPING_TEST_PW", "from-env");
    assert_eq!(
        creds
            .password(&CredentialsSource::Env {
                var: "AWS_ERROR_MAPPING_TEST_PW".into()
            })
            .await
            .unwrap(),
        "from-env"
    );
    let err = creds
        .password(&CredentialsSource::Env {
            var: "AWS_ERROR_MAPPING_TEST_UNSET".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(
        err.message.contains("AWS_ERROR_MAPPING_TEST_UNSET"),
        "{}",
        err.message
    );
}

// ---------------------------------------------------------------- regional clients

#[tokio::test]
async fn regional_clients_override_only_the_region() {
    let sdk = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-west-2"))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let clients = AwsClients::from_conf(sdk);

    assert_eq!(
        clients
            .rds("us-east-1")
            .config()
            .region()
            .map(|r| r.as_ref()),
        Some("us-east-1")
    );
    assert_eq!(
        clients
            .cloudwatch("eu-west-1")
            .config()
            .region()
            .map(|r| r.as_ref()),
        Some("eu-west-1")
    );
    assert_eq!(
        clients
            .rds("us-west-2")
            .config()
            .region()
            .map(|r| r.as_ref()),
        Some("us-west-2")
    );
    assert_eq!(
        clients.dynamodb().config().region().map(|r| r.as_ref()),
        Some("us-west-2"),
        "home region"
    );
}

#[tokio::test]
async fn only_a_site_record_in_flight_carries_the_sparse_index_key_and_the_query_follows_every_page(
) {
    use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
    // The write: the STATE item of an in-flight record has `in_flight`; not in flight, and the
    // audit item, do not (a Put replaces the item, so leaving flight drops it from the index).
    let seen = recorder::<TransactWriteItemsInput>();
    let rec = seen.clone();
    let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .match_requests(move |r| {
            rec.lock().unwrap().push(r.clone());
            true
        })
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let ledger = DynamoLedger::from_client(dynamodb(&[&rule]), "rds-failover-ledger");
    let mut flying = state_at(5);
    flying.phase = Phase::Promoted;
    ledger.commit(&flying).await.unwrap();
    ledger.commit(&state_at(7)).await.unwrap();
    let (a, b) = {
        let seen = seen.lock().unwrap();
        let puts = |i: usize| -> Vec<_> {
            seen[i]
                .transact_items()
                .iter()
                .map(|t| t.put().unwrap().item().clone())
                .collect()
        };
        (puts(0), puts(1))
    };
    assert_eq!(
        a[0].get("in_flight"),
        Some(&AttributeValue::S("IN_FLIGHT".into()))
    );
    assert!(
        !a[1].contains_key("in_flight"),
        "the audit item is not indexed"
    );
    assert!(
        !b[0].contains_key("in_flight"),
        "suspected is not in flight"
    );

    // The read: a Query of the InFlight index, page after page.
    let asked = recorder::<QueryInput>();
    let rec = asked.clone();
    let item = |site: &str| {
        let mut s = state_at(3);
        s.site = site.into();
        s.phase = Phase::Promoting;
        HashMap::from([(
            "state".to_string(),
            AttributeValue::S(serde_json::to_string(&s).unwrap()),
        )])
    };
    let (p1, p2) = (item("legacy"), item("orders"));
    let first = mock!(aws_sdk_dynamodb::Client::query)
        .match_requests(move |r| {
            rec.lock().unwrap().push(r.clone());
            r.exclusive_start_key().is_none()
        })
        .then_output(move || {
            QueryOutput::builder()
                .items(p1.clone())
                .last_evaluated_key("pk", AttributeValue::S("legacy".into()))
                .build()
        });
    let second = mock!(aws_sdk_dynamodb::Client::query)
        .match_requests(|r| r.exclusive_start_key().is_some())
        .then_output(move || QueryOutput::builder().items(p2.clone()).build());
    let ledger = DynamoLedger::from_client(dynamodb(&[&first, &second]), "rds-failover-ledger");
    let found: Vec<String> = ledger
        .in_flight()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.site)
        .collect();
    assert_eq!(found, ["legacy", "orders"]);
    let q = &asked.lock().unwrap()[0];
    assert_eq!(q.index_name(), Some("InFlight"));
    assert_eq!(q.key_condition_expression(), Some("in_flight = :yes"));
}
