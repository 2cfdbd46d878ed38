//! The Route 53, SNS and claim-log adapters against the real SDK client types, with responses
//! injected by `aws-smithy-mocks`: what each adapter sends (the pinned record's identity, the
//! message's subject and typed attributes, the claim's condition and TTL) and how each AWS answer —
//! errors parsed from raw wire responses included — becomes a port result or a [`PortError`] of
//! the right [`ErrorKind`]. Retries are disabled so each rule answers one attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemInput, PutItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_route53::operation::change_resource_record_sets::{
    ChangeResourceRecordSetsInput, ChangeResourceRecordSetsOutput,
};
use aws_sdk_route53::operation::get_change::GetChangeOutput;
use aws_sdk_route53::operation::list_resource_record_sets::{
    ListResourceRecordSetsInput, ListResourceRecordSetsOutput,
};
use aws_sdk_route53::types::{
    ChangeInfo as SdkChangeInfo, ChangeStatus as SdkChangeStatus, ResourceRecord,
    ResourceRecordSet, ResourceRecordSetFailover, RrType,
};
use aws_sdk_sns::operation::publish::{PublishInput, PublishOutput};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use chrono::{TimeZone, Utc};
use failover_adapters::dns::{Dns, Route53Dns};
use failover_adapters::notify::{
    Claim, DynamoNotificationLog, NotificationLog, Notifications, SnsNotifications,
};
use failover_adapters::ports::ErrorKind;
use failover_policy::notice::{AttributeValue as Attr, Notice, NoticeKey};
use failover_policy::pin::{
    ChangeAction, ChangeStatus, FailoverRole, RecordChange, RecordQuery, RecordSet,
};

// ---------------------------------------------------------------- helpers

fn route53(rules: &[&Rule]) -> aws_sdk_route53::Client {
    mock_client!(
        aws_sdk_route53,
        RuleMode::MatchAny,
        rules.iter().copied(),
        |c| c.retry_config(RetryConfig::disabled())
    )
}
fn sns(rules: &[&Rule]) -> aws_sdk_sns::Client {
    mock_client!(
        aws_sdk_sns,
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

/// A Route 53 (restXml) error exactly as the service wraps it.
fn route53_error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = format!(
        r#"<?xml version="1.0"?><ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>req-1</RequestId></ErrorResponse>"#
    );
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

/// An SNS (awsQuery) error.
fn sns_error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = format!(
        r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>req-1</RequestId></ErrorResponse>"#
    );
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

/// A DynamoDB (awsJson 1.0) error.
fn dynamo_error(code: &str, extra: &str) -> HttpResponse {
    let body = format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"The conditional request failed"{extra}}}"#
    );
    HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::from(body))
}

fn query(set: Option<&str>) -> RecordQuery {
    RecordQuery {
        zone_id: "Z0BILLINGEXAMPLE".into(),
        name: "db.billing.example.com".into(),
        record_type: "CNAME".into(),
        set_identifier: set.map(String::from),
    }
}

fn sdk_failover(set: &str, role: ResourceRecordSetFailover, value: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name("db.billing.example.com.")
        .r#type(RrType::Cname)
        .set_identifier(set)
        .failover(role)
        .ttl(60)
        .health_check_id(format!("hc-{set}"))
        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
        .build()
        .unwrap()
}

fn pinned_primary() -> RecordSet {
    RecordSet {
        name: "db.billing.example.com.".into(),
        record_type: "CNAME".into(),
        set_identifier: Some("billing-primary".into()),
        failover: Some(FailoverRole::Primary),
        ttl: Some(30),
        values: vec!["billing-2.x.rds.amazonaws.com".into()],
        health_check_id: Some("hc-billing-primary".into()),
        alias_target: None,
    }
}

fn key() -> NoticeKey {
    NoticeKey {
        site: "orders".into(),
        epoch: 3,
        detail_type: "DnsPinned".into(),
        discriminator: None,
    }
}

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap()
}

// ---------------------------------------------------------------- Route 53

#[tokio::test]
async fn record_lookup_finds_the_primary_of_a_failover_pair() {
    let seen = Arc::new(Mutex::new(vec![]));
    let rec = seen.clone();
    let rule = mock!(aws_sdk_route53::Client::list_resource_record_sets)
        .match_requests(move |r: &ListResourceRecordSetsInput| {
            rec.lock().unwrap().push((
                r.hosted_zone_id().unwrap_or_default().to_owned(),
                r.start_record_name().unwrap_or_default().to_owned(),
                r.start_record_type().map(|t| t.as_str().to_owned()),
            ));
            true
        })
        .then_output(|| {
            ListResourceRecordSetsOutput::builder()
                .resource_record_sets(sdk_failover(
                    "billing-primary",
                    ResourceRecordSetFailover::Primary,
                    "billing-1.x.rds.amazonaws.com",
                ))
                .resource_record_sets(sdk_failover(
                    "billing-secondary",
                    ResourceRecordSetFailover::Secondary,
                    "billing-2.x.rds.amazonaws.com",
                ))
                .is_truncated(false)
                .max_items(100)
                .build()
                .unwrap()
        });
    let dns = Route53Dns::from_client(route53(&[&rule]));

    let p = dns
        .record_set(&query(Some("billing-primary")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.failover, Some(FailoverRole::Primary));
    assert_eq!(p.health_check_id.as_deref(), Some("hc-billing-primary"));
    assert_eq!(p.values, vec!["billing-1.x.rds.amazonaws.com"]);
    assert_eq!(p.ttl, Some(60));
    let s = dns
        .record_set(&query(Some("billing-secondary")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.failover, Some(FailoverRole::Secondary));
    assert_eq!(dns.record_set(&query(Some("nope"))).await.unwrap(), None);
    assert_eq!(
        seen.lock().unwrap()[0],
        (
            "Z0BILLINGEXAMPLE".to_string(),
            "db.billing.example.com".to_string(),
            Some("CNAME".to_string())
        )
    );
}

#[tokio::test]
async fn the_pin_is_sent_as_an_upsert_keeping_identifier_role_and_health_check() {
    let seen: Arc<Mutex<Vec<ChangeResourceRecordSetsInput>>> = Arc::new(Mutex::new(vec![]));
    let rec = seen.clone();
    let rule = mock!(aws_sdk_route53::Client::change_resource_record_sets)
        .match_requests(move |r| {
            rec.lock().unwrap().push(r.clone());
            true
        })
        .then_output(|| {
            ChangeResourceRecordSetsOutput::builder()
                .change_info(
                    SdkChangeInfo::builder()
                        .id("/change/C0123456789ABC")
                        .status(SdkChangeStatus::Pending)
                        .submitted_at(aws_smithy_types::DateTime::from_secs(1_795_000_000))
                        .build()
                        .unwrap(),
                )
                .build()
        });
    let dns = Route53Dns::from_client(route53(&[&rule]));

    let info = dns
        .change(
            "Z0BILLINGEXAMPLE",
            &[RecordChange {
                action: ChangeAction::Upsert,
                record: pinned_primary(),
            }],
            "rds-failover: pin billing epoch 5",
        )
        .await
        .unwrap();
    assert_eq!(
        info.id, "C0123456789ABC",
        "stored without the /change/ prefix"
    );
    assert_eq!(info.status, ChangeStatus::Pending);
    assert_eq!(info.submitted_at.unwrap().timestamp(), 1_795_000_000);

    let input = seen.lock().unwrap()[0].clone();
    assert_eq!(input.hosted_zone_id(), Some("Z0BILLINGEXAMPLE"));
    let batch = input.change_batch().unwrap();
    assert_eq!(batch.comment(), Some("rds-failover: pin billing epoch 5"));
    let change = &batch.changes()[0];
    assert_eq!(
        change.action(),
        &aws_sdk_route53::types::ChangeAction::Upsert
    );
    let r = change.resource_record_set().unwrap();
    assert_eq!(r.set_identifier(), Some("billing-primary"));
    assert_eq!(r.failover(), Some(&ResourceRecordSetFailover::Primary));
    assert_eq!(r.health_check_id(), Some("hc-billing-primary"));
    assert_eq!(r.ttl(), Some(30));
    assert_eq!(
        r.resource_records()[0].value(),
        "billing-2.x.rds.amazonaws.com"
    );
}

#[tokio::test]
async fn change_status_reports_insync() {
    let rule = mock!(aws_sdk_route53::Client::get_change).then_output(|| {
        GetChangeOutput::builder()
            .change_info(
                SdkChangeInfo::builder()
                    .id("/change/C1")
                    .status(SdkChangeStatus::Insync)
                    .submitted_at(aws_smithy_types::DateTime::from_secs(1_795_000_000))
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let dns = Route53Dns::from_client(route53(&[&rule]));
    let info = dns.change_status("/change/C1").await.unwrap();
    assert_eq!(
        (info.id.as_str(), info.status),
        ("C1", ChangeStatus::Insync)
    );
}

#[tokio::test]
async fn route53_errors_map_to_kinds() {
    let cases: Vec<(HttpResponse, ErrorKind, &str)> = vec![
        (
            route53_error(400, "Throttling", "Rate exceeded"),
            ErrorKind::Throttled,
            "Rate exceeded",
        ),
        (
            route53_error(400, "PriorRequestNotComplete", "The request was rejected because Route 53 was still processing a prior request."),
            ErrorKind::Throttled,
            "prior request",
        ),
        (
            route53_error(404, "NoSuchHostedZone", "No hosted zone found with ID: Z0BILLINGEXAMPLE"),
            ErrorKind::NotFound,
            "NoSuchHostedZone",
        ),
        (
            route53_error(400, "InvalidChangeBatch", "RRSet of type CNAME with DNS name db.billing.example.com. is not permitted as it conflicts with other records with the same DNS name in zone billing.example.com."),
            ErrorKind::Other,
            "conflicts",
        ),
        (
            route53_error(403, "AccessDenied", "User: arn:aws:sts::123456789012:assumed-role/pinner is not authorized to perform: route53:ChangeResourceRecordSets"),
            ErrorKind::AccessDenied,
            "not authorized",
        ),
        (
            route53_error(500, "InternalFailure", "internal"),
            ErrorKind::Unavailable,
            "internal",
        ),
    ];
    for (resp, kind, needle) in cases {
        let resp = Arc::new(Mutex::new(Some(resp)));
        let take = resp.clone();
        let rule = mock!(aws_sdk_route53::Client::change_resource_record_sets)
            .then_http_response(move || take.lock().unwrap().take().unwrap());
        let dns = Route53Dns::from_client(route53(&[&rule]));
        let err = dns
            .change(
                "Z0BILLINGEXAMPLE",
                &[RecordChange {
                    action: ChangeAction::Upsert,
                    record: pinned_primary(),
                }],
                "",
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, kind, "{err}");
        assert_eq!(err.operation, "ChangeResourceRecordSets");
        assert!(
            err.message.to_lowercase().contains(&needle.to_lowercase()),
            "{}",
            err.message
        );
        assert_eq!(
            err.kind.is_retryable(),
            matches!(kind, ErrorKind::Throttled | ErrorKind::Unavailable)
        );
    }

    // Route 53 sends InvalidChangeBatch unwrapped, too: whatever the SDK makes of it, it must not
    // be mistaken for something a retry could fix.
    let rule = mock!(aws_sdk_route53::Client::change_resource_record_sets).then_http_response(|| {
        HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(r#"<?xml version="1.0"?><InvalidChangeBatch xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Messages><Message>Tried to create resource record set but it already exists</Message></Messages><RequestId>r</RequestId></InvalidChangeBatch>"#),
        )
    });
    let dns = Route53Dns::from_client(route53(&[&rule]));
    let err = dns
        .change(
            "Z0BILLINGEXAMPLE",
            &[RecordChange {
                action: ChangeAction::Create,
                record: pinned_primary(),
            }],
            "",
        )
        .await
        .unwrap_err();
    assert!(!err.kind.is_retryable(), "{err}");

    // Reads: throttled and missing zone.
    let rule = mock!(aws_sdk_route53::Client::list_resource_record_sets)
        .then_http_response(|| route53_error(404, "NoSuchHostedZone", "No hosted zone found"));
    let dns = Route53Dns::from_client(route53(&[&rule]));
    let err = dns.record_set(&query(None)).await.unwrap_err();
    assert_eq!(
        (err.kind, err.operation),
        (ErrorKind::NotFound, "ListResourceRecordSets")
    );
    let rule = mock!(aws_sdk_route53::Client::get_change).then_http_response(|| {
        route53_error(
            404,
            "NoSuchChange",
            "A change with the specified change ID does not exist.",
        )
    });
    let dns = Route53Dns::from_client(route53(&[&rule]));
    assert_eq!(
        dns.change_status("C9").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
}

// ---------------------------------------------------------------- SNS

fn notice() -> Notice {
    Notice {
        key: key(),
        subject: "[WARNING] orders e3: DNS pinned to orders-replica-1; failback is manual".into(),
        body: "WHAT HAPPENED\n  ...".into(),
        attributes: vec![
            ("site".into(), Attr::String("orders".into())),
            ("epoch".into(), Attr::Number("3".into())),
        ],
    }
}

#[tokio::test]
async fn publish_sends_subject_body_and_typed_attributes() {
    let seen: Arc<Mutex<Vec<PublishInput>>> = Arc::new(Mutex::new(vec![]));
    let rec = seen.clone();
    let rule = mock!(aws_sdk_sns::Client::publish)
        .match_requests(move |r| {
            rec.lock().unwrap().push(r.clone());
            true
        })
        .then_output(|| PublishOutput::builder().message_id("m-1").build());
    let ch = SnsNotifications::from_client(
        sns(&[&rule]),
        "arn:aws:sns:us-west-2:123456789012:rds-failover",
    );
    assert_eq!(ch.publish(&notice()).await.unwrap(), "m-1");
    let input = seen.lock().unwrap()[0].clone();
    assert_eq!(
        input.topic_arn(),
        Some("arn:aws:sns:us-west-2:123456789012:rds-failover")
    );
    assert_eq!(input.subject(), Some(notice().subject.as_str()));
    assert_eq!(input.message(), Some("WHAT HAPPENED\n  ..."));
    let attrs = input.message_attributes().unwrap();
    assert_eq!(attrs["site"].data_type(), "String");
    assert_eq!(attrs["site"].string_value(), Some("orders"));
    assert_eq!(attrs["epoch"].data_type(), "Number");
    assert_eq!(attrs["epoch"].string_value(), Some("3"));
}

#[tokio::test]
async fn sns_errors_map_to_kinds() {
    let cases = [
        (
            sns_error(404, "NotFound", "Topic does not exist"),
            ErrorKind::NotFound,
        ),
        (
            sns_error(
                403,
                "AuthorizationError",
                "User is not authorized to perform: SNS:Publish",
            ),
            ErrorKind::AccessDenied,
        ),
        (
            sns_error(400, "Throttled", "Rate exceeded"),
            ErrorKind::Throttled,
        ),
        (
            sns_error(400, "Throttling", "Rate exceeded"),
            ErrorKind::Throttled,
        ),
        (
            sns_error(400, "InvalidParameter", "Subject too long"),
            ErrorKind::Other,
        ),
        (
            sns_error(500, "InternalError", "oops"),
            ErrorKind::Unavailable,
        ),
    ];
    for (resp, kind) in cases {
        let resp = Arc::new(Mutex::new(Some(resp)));
        let rule = mock!(aws_sdk_sns::Client::publish)
            .then_http_response(move || resp.lock().unwrap().take().unwrap());
        let ch =
            SnsNotifications::from_client(sns(&[&rule]), "arn:aws:sns:us-west-2:123456789012:t");
        let err = ch.publish(&notice()).await.unwrap_err();
        assert_eq!((err.kind, err.operation), (kind, "Publish"), "{err}");
    }
}

// ---------------------------------------------------------------- claim log (DynamoDB)

#[tokio::test]
async fn a_claim_is_a_conditional_put_with_a_lease_and_the_audit_ttl() {
    let seen: Arc<Mutex<Vec<PutItemInput>>> = Arc::new(Mutex::new(vec![]));
    let rec = seen.clone();
    let rule = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(move |r| {
            rec.lock().unwrap().push(r.clone());
            true
        })
        .then_output(|| PutItemOutput::builder().build());
    let log = DynamoNotificationLog::from_client(dynamodb(&[&rule]), "rds-failover-ledger");
    let claim = log
        .claim(&key(), "tok", t0(), chrono::Duration::seconds(45))
        .await
        .unwrap();
    assert_eq!(claim, Claim::Granted);
    let input = seen.lock().unwrap()[0].clone();
    assert_eq!(input.table_name(), Some("rds-failover-ledger"));
    let item = input.item().unwrap();
    assert_eq!(item["pk"], AttributeValue::S("orders".into()));
    assert_eq!(
        item["sk"],
        AttributeValue::S("NOTIFIED#000000000003#DnsPinned".into())
    );
    assert_eq!(item["claim_token"], AttributeValue::S("tok".into()));
    let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    assert_eq!(expires, (t0() + chrono::Duration::days(90)).timestamp());
    let cond = input.condition_expression().unwrap();
    assert!(cond.contains("attribute_not_exists(pk)"), "{cond}");
    let values = input.expression_attribute_values().unwrap();
    assert_eq!(
        values[":stale"],
        AttributeValue::N((t0().timestamp() - 45).to_string())
    );
}

#[tokio::test]
async fn a_lost_claim_says_whether_it_was_sent_or_is_held() {
    let sent = mock!(aws_sdk_dynamodb::Client::put_item).then_http_response(|| {
        dynamo_error(
            "ConditionalCheckFailedException",
            r#","Item":{"pk":{"S":"orders"},"status":{"S":"sent"},"message_id":{"S":"m-9"}}"#,
        )
    });
    let log = DynamoNotificationLog::from_client(dynamodb(&[&sent]), "t-1");
    let c = log
        .claim(&key(), "tok", t0(), chrono::Duration::seconds(45))
        .await
        .unwrap();
    assert!(matches!(c, Claim::AlreadySent { message_id: Some(m), .. } if m == "m-9"));

    let held = mock!(aws_sdk_dynamodb::Client::put_item).then_http_response(move || {
        dynamo_error(
            "ConditionalCheckFailedException",
            &format!(
                r#","Item":{{"pk":{{"S":"orders"}},"status":{{"S":"claimed"}},"claimed_at":{{"N":"{}"}}}}"#,
                t0().timestamp()
            ),
        )
    });
    let log = DynamoNotificationLog::from_client(dynamodb(&[&held]), "t-1");
    let c = log
        .claim(&key(), "tok", t0(), chrono::Duration::seconds(45))
        .await
        .unwrap();
    assert_eq!(
        c,
        Claim::Held {
            claimed_at: Some(t0())
        }
    );

    // An emulator that does not return the old item: the adapter reads it.
    let bare = mock!(aws_sdk_dynamodb::Client::put_item)
        .then_http_response(|| dynamo_error("ConditionalCheckFailedException", ""));
    let get = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
        GetItemOutput::builder()
            .set_item(Some(HashMap::from([(
                "status".to_string(),
                AttributeValue::S("sent".into()),
            )])))
            .build()
    });
    let log = DynamoNotificationLog::from_client(dynamodb(&[&bare, &get]), "t-1");
    let c = log
        .claim(&key(), "tok", t0(), chrono::Duration::seconds(45))
        .await
        .unwrap();
    assert!(matches!(c, Claim::AlreadySent { .. }), "{c:?}");
    assert_eq!(get.num_calls(), 1);
}

#[tokio::test]
async fn claim_log_errors_map_to_kinds() {
    let throttled = mock!(aws_sdk_dynamodb::Client::put_item)
        .then_http_response(|| dynamo_error("ProvisionedThroughputExceededException", ""));
    let log = DynamoNotificationLog::from_client(dynamodb(&[&throttled]), "t-1");
    let err = log
        .claim(&key(), "tok", t0(), chrono::Duration::seconds(45))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Throttled);

    let missing = mock!(aws_sdk_dynamodb::Client::put_item)
        .then_http_response(|| dynamo_error("ResourceNotFoundException", ""));
    let log = DynamoNotificationLog::from_client(dynamodb(&[&missing]), "t-1");
    let err = log
        .claim(&key(), "tok", t0(), chrono::Duration::seconds(45))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);

    // Marking sent a claim that is no longer ours is a Conflict.
    let lost = mock!(aws_sdk_dynamodb::Client::update_item)
        .then_http_response(|| dynamo_error("ConditionalCheckFailedException", ""));
    let log = DynamoNotificationLog::from_client(dynamodb(&[&lost]), "t-1");
    let err = log.mark_sent(&key(), "tok", "m-1", t0()).await.unwrap_err();
    assert_eq!(
        (err.kind, err.operation),
        (ErrorKind::Conflict, "UpdateItem")
    );

    // Releasing a claim that is no longer ours is not an error; other failures are.
    let not_ours = mock!(aws_sdk_dynamodb::Client::delete_item)
        .then_http_response(|| dynamo_error("ConditionalCheckFailedException", ""));
    let log = DynamoNotificationLog::from_client(dynamodb(&[&not_ours]), "t-1");
    assert_eq!(log.release(&key(), "tok").await, Ok(()));
    let denied = mock!(aws_sdk_dynamodb::Client::delete_item)
        .then_http_response(|| dynamo_error("AccessDeniedException", ""));
    let log = DynamoNotificationLog::from_client(dynamodb(&[&denied]), "t-1");
    assert_eq!(
        log.release(&key(), "tok").await.unwrap_err().kind,
        ErrorKind::AccessDenied
    );
    let ok = mock!(aws_sdk_dynamodb::Client::delete_item)
        .then_output(|| DeleteItemOutput::builder().build());
    let log = DynamoNotificationLog::from_client(dynamodb(&[&ok]), "t-1");
    assert_eq!(log.release(&key(), "tok").await, Ok(()));
}

/// GetHealthCheckStatus: the checkers' reports counted (`Success...` / `Failure...`, the
/// `StatusReport.Status` text of the Route 53 API Reference); healthy only on a majority; a
/// health check that does not exist is `NotFound`, never "healthy".
#[tokio::test]
async fn health_check_status_counts_the_checkers_reports() {
    use aws_sdk_route53::operation::get_health_check_status::{
        GetHealthCheckStatusInput, GetHealthCheckStatusOutput,
    };
    use aws_sdk_route53::types::{HealthCheckObservation, StatusReport};
    let report = |s: &str| {
        HealthCheckObservation::builder()
            .status_report(StatusReport::builder().status(s).build())
            .build()
    };
    let ok = mock!(aws_sdk_route53::Client::get_health_check_status)
        .match_requests(|r: &GetHealthCheckStatusInput| r.health_check_id() == Some("hc-1"))
        .then_output(move || {
            GetHealthCheckStatusOutput::builder()
                .health_check_observations(report("Success: HTTP Status Code 200, OK"))
                .health_check_observations(report("Success: HTTP Status Code 200, OK"))
                .health_check_observations(report("Failure: Connection timed out."))
                .build()
                .unwrap()
        });
    let missing = mock!(aws_sdk_route53::Client::get_health_check_status)
        .match_requests(|r: &GetHealthCheckStatusInput| r.health_check_id() == Some("hc-gone"))
        .then_http_response(|| {
            route53_error(
                404,
                "NoSuchHealthCheck",
                "No health check exists with the specified ID",
            )
        });
    let dns = Route53Dns::from_client(route53(&[&ok, &missing]));
    let s = dns.health_check_status("hc-1").await.unwrap();
    assert_eq!((s.success, s.checkers, s.healthy()), (2, 3, true));
    let e = dns.health_check_status("hc-gone").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
}
