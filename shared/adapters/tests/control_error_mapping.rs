//! The promoter's RDS mutations against the real `aws_sdk_rds::Client`, with answers injected by
//! `aws-smithy-mocks`: what each call sends (identifiers, `TargetDBInstanceIdentifier`,
//! `AllowDataLoss`, `ForceFailover`), that each is sent exactly once even when the client's own
//! retry policy would retry, and how RDS's wire errors become [`ErrorKind`]s the promoter acts on
//! (throttled = not applied, retry later; not found / invalid state / access denied = definitive).

use std::sync::{Arc, Mutex};

use aws_sdk_rds::operation::failover_db_cluster::FailoverDbClusterOutput;
use aws_sdk_rds::operation::failover_global_cluster::FailoverGlobalClusterOutput;
use aws_sdk_rds::operation::promote_read_replica::PromoteReadReplicaOutput;
use aws_sdk_rds::operation::reboot_db_instance::RebootDbInstanceOutput;
use aws_sdk_rds::operation::switchover_global_cluster::SwitchoverGlobalClusterOutput;
use aws_sdk_rds::types::{DbCluster, DbInstance, GlobalCluster};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use failover_adapters::control::{DatabaseControl, RdsControl};
use failover_adapters::ports::ErrorKind;
use failover_policy::config::DbRef;

/// A client whose own policy *would* retry (three attempts), to prove mutations are sent once.
fn rds(rules: &[&Rule]) -> aws_sdk_rds::Client {
    mock_client!(
        aws_sdk_rds,
        RuleMode::MatchAny,
        rules.iter().copied(),
        |c| c.retry_config(RetryConfig::standard().with_max_attempts(3))
    )
}

fn rds_error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = format!(
        r#"<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>req-1</RequestId></ErrorResponse>"#
    );
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

fn db(id: &str) -> DbRef {
    DbRef {
        id: id.into(),
        region: "us-west-2".into(),
    }
}

#[tokio::test]
async fn promote_read_replica_sends_the_replica_and_reports_modifying() {
    let seen = Arc::new(Mutex::new(vec![]));
    let rec = seen.clone();
    let rule = mock!(aws_sdk_rds::Client::promote_read_replica)
        .match_requests(move |r| {
            rec.lock()
                .unwrap()
                .push(r.db_instance_identifier().unwrap_or_default().to_owned());
            true
        })
        .then_output(|| {
            PromoteReadReplicaOutput::builder()
                .db_instance(
                    DbInstance::builder()
                        .db_instance_identifier("orders-replica-1")
                        .db_instance_status("modifying")
                        .build(),
                )
                .build()
        });
    let control = RdsControl::from_client(rds(&[&rule]));

    let ack = control
        .promote_read_replica(&db("orders-replica-1"))
        .await
        .unwrap();

    assert_eq!(ack.status.as_deref(), Some("modifying"));
    assert_eq!(*seen.lock().unwrap(), ["orders-replica-1"]);
}

#[tokio::test]
async fn throttling_is_throttled_and_the_mutation_is_not_retried_by_the_sdk() {
    let rule = mock!(aws_sdk_rds::Client::promote_read_replica)
        .then_http_response(|| rds_error(400, "Throttling", "Rate exceeded"));
    let control = RdsControl::from_client(rds(&[&rule]));

    let err = control
        .promote_read_replica(&db("orders-replica-1"))
        .await
        .unwrap_err();

    assert_eq!(err.kind, ErrorKind::Throttled);
    assert_eq!(err.operation, "PromoteReadReplica");
    assert!(err.message.contains("Rate exceeded"), "{}", err.message);
    assert_eq!(
        rule.num_calls(),
        1,
        "a mutation is sent once; the promoter decides about retrying"
    );
}

#[tokio::test]
async fn a_server_error_is_not_retried_either_since_it_may_have_been_applied() {
    let rule = mock!(aws_sdk_rds::Client::reboot_db_instance).then_http_response(|| {
        HttpResponse::new(
            StatusCode::try_from(503).unwrap(),
            SdkBody::from("Service Unavailable"),
        )
    });
    let control = RdsControl::from_client(rds(&[&rule]));

    let err = control
        .reboot_with_failover(&db("inventory-db"))
        .await
        .unwrap_err();

    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert_eq!(
        rule.num_calls(),
        1,
        "a retried forced failover would fail back"
    );
}

#[tokio::test]
async fn not_found_invalid_state_and_access_denied_are_definitive_kinds() {
    let cases: [(&str, u16, &str, ErrorKind); 6] = [
        ("promote", 404, "DBInstanceNotFound", ErrorKind::NotFound),
        (
            "promote",
            400,
            "InvalidDBInstanceState",
            ErrorKind::InvalidState,
        ),
        (
            "cluster",
            400,
            "InvalidDBClusterStateFault",
            ErrorKind::InvalidState,
        ),
        (
            "cluster",
            404,
            "DBClusterNotFoundFault",
            ErrorKind::NotFound,
        ),
        (
            "global",
            400,
            "InvalidGlobalClusterStateFault",
            ErrorKind::InvalidState,
        ),
        ("global", 403, "AccessDenied", ErrorKind::AccessDenied),
    ];
    for (op, status, code, kind) in cases {
        let promote = mock!(aws_sdk_rds::Client::promote_read_replica)
            .then_http_response(move || rds_error(status, code, "from RDS"));
        let cluster = mock!(aws_sdk_rds::Client::failover_db_cluster)
            .then_http_response(move || rds_error(status, code, "from RDS"));
        let global = mock!(aws_sdk_rds::Client::failover_global_cluster)
            .then_http_response(move || rds_error(status, code, "from RDS"));
        let control = RdsControl::from_client(rds(&[&promote, &cluster, &global]));
        let err = match op {
            "promote" => control.promote_read_replica(&db("orders-replica-1")).await,
            "cluster" => {
                control
                    .failover_db_cluster("billing-cluster", "us-west-2", "billing-2")
                    .await
            }
            _ => {
                control
                    .failover_global_cluster("payments-global", "us-west-2", "arn:x", true)
                    .await
            }
        }
        .unwrap_err();
        assert_eq!(err.kind, kind, "{code}: {err}");
        assert!(!err.kind.is_retryable(), "{code}");
        assert!(err.message.starts_with(code), "{}", err.message);
    }
}

#[tokio::test]
async fn cluster_failover_names_its_target_instance() {
    let seen = Arc::new(Mutex::new(vec![]));
    let rec = seen.clone();
    let rule = mock!(aws_sdk_rds::Client::failover_db_cluster)
        .match_requests(move |r| {
            rec.lock().unwrap().push((
                r.db_cluster_identifier().unwrap_or_default().to_owned(),
                r.target_db_instance_identifier()
                    .unwrap_or_default()
                    .to_owned(),
            ));
            true
        })
        .then_output(|| {
            FailoverDbClusterOutput::builder()
                .db_cluster(DbCluster::builder().status("failing-over").build())
                .build()
        });
    let control = RdsControl::from_client(rds(&[&rule]));

    let ack = control
        .failover_db_cluster("billing-cluster", "us-west-2", "billing-2")
        .await
        .unwrap();

    assert_eq!(ack.status.as_deref(), Some("failing-over"));
    assert_eq!(
        *seen.lock().unwrap(),
        [("billing-cluster".to_string(), "billing-2".to_string())]
    );
}

#[tokio::test]
async fn global_failover_allows_data_loss_and_switchover_does_not_send_it() {
    let arn = "arn:aws:rds:us-west-2:123456789012:cluster:payments-west";
    let failovers = Arc::new(Mutex::new(vec![]));
    let rec = failovers.clone();
    let failover = mock!(aws_sdk_rds::Client::failover_global_cluster)
        .match_requests(move |r| {
            rec.lock().unwrap().push((
                r.global_cluster_identifier().unwrap_or_default().to_owned(),
                r.target_db_cluster_identifier()
                    .unwrap_or_default()
                    .to_owned(),
                r.allow_data_loss(),
                r.switchover(),
            ));
            true
        })
        .then_output(|| {
            FailoverGlobalClusterOutput::builder()
                .global_cluster(GlobalCluster::builder().status("failing-over").build())
                .build()
        });
    let switchovers = Arc::new(Mutex::new(vec![]));
    let rec = switchovers.clone();
    let switchover = mock!(aws_sdk_rds::Client::switchover_global_cluster)
        .match_requests(move |r| {
            rec.lock().unwrap().push(
                r.target_db_cluster_identifier()
                    .unwrap_or_default()
                    .to_owned(),
            );
            true
        })
        .then_output(|| {
            SwitchoverGlobalClusterOutput::builder()
                .global_cluster(GlobalCluster::builder().status("switching-over").build())
                .build()
        });
    let control = RdsControl::from_client(rds(&[&failover, &switchover]));

    let ack = control
        .failover_global_cluster("payments-global", "us-west-2", arn, true)
        .await
        .unwrap();
    assert_eq!(ack.status.as_deref(), Some("failing-over"));
    let ack = control
        .switchover_global_cluster("payments-global", "us-west-2", arn)
        .await
        .unwrap();
    assert_eq!(ack.status.as_deref(), Some("switching-over"));

    assert_eq!(
        *failovers.lock().unwrap(),
        [(
            "payments-global".to_string(),
            arn.to_string(),
            Some(true),
            None
        )],
        "AllowDataLoss without Switchover (the API forbids both)"
    );
    assert_eq!(*switchovers.lock().unwrap(), [arn.to_string()]);
}

#[tokio::test]
async fn reboot_forces_the_failover_and_reports_rebooting() {
    let seen = Arc::new(Mutex::new(vec![]));
    let rec = seen.clone();
    let rule = mock!(aws_sdk_rds::Client::reboot_db_instance)
        .match_requests(move |r| {
            rec.lock().unwrap().push((
                r.db_instance_identifier().unwrap_or_default().to_owned(),
                r.force_failover(),
            ));
            true
        })
        .then_output(|| {
            RebootDbInstanceOutput::builder()
                .db_instance(
                    DbInstance::builder()
                        .db_instance_status("rebooting")
                        .build(),
                )
                .build()
        });
    let control = RdsControl::from_client(rds(&[&rule]));

    let ack = control
        .reboot_with_failover(&db("inventory-db"))
        .await
        .unwrap();

    assert_eq!(ack.status.as_deref(), Some("rebooting"));
    assert_eq!(
        *seen.lock().unwrap(),
        [("inventory-db".to_string(), Some(true))]
    );
}
