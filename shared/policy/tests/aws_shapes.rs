//! What AWS really sends, against the parser and the router: the four defects of issue 17, each
//! reproduced from a payload AWS publishes (events/published/, see its SOURCES.md) with only the
//! account, names and times changed to match the example configuration.
//!
//! - an RDS event whose `SourceIdentifier` carries the documented `rds:` prefix reaches the site
//!   that protects the database its ARN names; an identifier that disagrees with the ARN is
//!   refused;
//! - an RDS event without an event id is "unidentified RDS event: no action", recorded, not an
//!   error;
//! - only the timestamp spellings AWS uses are read; `2026-11-20T03: 00: 00.490+0000` is refused
//!   naming the field;
//! - identity comes from the ARN; a payload whose other identity fields disagree with it is
//!   refused, naming both fields, before anything reaches a site.
//!
//! Black-box (the crate's public API), and written so that it compiles against the parser as it
//! was before the fix: each test failed there.

use chrono::{TimeZone, Utc};
use failover_policy::signal::{parse_bytes, SignalKind};
use failover_policy::{decide, needs_evidence, route, Config, Routing, SiteState};
use serde_json::{json, Value};

const EXAMPLE: &str = include_str!("../../../infra/sites.example.json");

fn cfg() -> Config {
    Config::from_document(EXAMPLE).unwrap()
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 3, 1, 0).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// The RDS User Guide's DB instance event ("Overview of events for Amazon RDS"), retargeted to
/// `orders-primary`: account, region, names and times rewritten, nothing else.
fn rds_guide_instance_event() -> Value {
    json!({
      "version": "0",
      "id": "68f6e973-1a0c-d37b-f2f2-94a7f62ffd4e",
      "detail-type": "RDS DB Instance Event",
      "source": "aws.rds",
      "account": "123456789012",
      "time": "2026-11-24T03:00:43Z",
      "region": "us-east-1",
      "resources": ["arn:aws:rds:us-east-1:123456789012:db:orders-primary"],
      "detail": {
        "EventCategories": ["failover"],
        "SourceType": "DB_INSTANCE",
        "SourceArn": "arn:aws:rds:us-east-1:123456789012:db:orders-primary",
        "Date": "2026-11-24T03:00:43.292Z",
        "Message": "A Multi-AZ failover has completed.",
        "SourceIdentifier": "rds:orders-primary",
        "EventID": "RDS-EVENT-0049"
      }
    })
}

/// The Java Lambda library's alarm-action fixture (`cloudwatch_metric_alarm.json`), retargeted
/// to `billing-writer-availability` in us-west-2.
fn alarm_action() -> Value {
    json!({
      "source": "aws.cloudwatch",
      "alarmArn": "arn:aws:cloudwatch:us-west-2:123456789012:alarm:billing-writer-availability",
      "accountId": "123456789012",
      "time": "2026-11-24T03:00:15.490+0000",
      "region": "us-west-2",
      "alarmData": {
        "alarmName": "billing-writer-availability",
        "state": {"value": "ALARM", "reason": "test", "timestamp": "2026-11-24T03:00:15.490+0000"},
        "previousState": {
          "value": "INSUFFICIENT_DATA",
          "reason": "Insufficient Data: 5 datapoints were unknown.",
          "timestamp": "2026-11-24T02:59:29.595+0000"
        },
        "configuration": {"description": "Metric Alarm to test Lambda actions", "metrics": []}
      }
    })
}

fn refused_naming(v: &Value, fields: &[&str]) -> String {
    let err = parse_bytes(&bytes(v)).expect_err("must be refused");
    let text = err.to_string();
    for f in fields {
        assert!(text.contains(&format!("`{f}`")), "{text} should name `{f}`");
    }
    text
}

fn routed_sites(v: &Value) -> Vec<String> {
    let s = parse_bytes(&bytes(v)).unwrap_or_else(|e| panic!("{e}"));
    match route(&cfg(), &s, now()) {
        Routing::Sites(sites) => sites,
        Routing::Ignore(v) => panic!("ignored: {}", v.summary),
    }
}

// ---------------------------------------------------------------- 1. the `rds:` prefix

#[test]
fn an_rds_event_with_the_documented_rds_prefix_reaches_the_protecting_site() {
    let v = rds_guide_instance_event();
    assert_eq!(routed_sites(&v), vec!["orders".to_string()]);
    let s = parse_bytes(&bytes(&v)).unwrap();
    let SignalKind::Rds(r) = s.kind else {
        panic!("{:?}", s.kind)
    };
    assert_eq!(r.source_id, "orders-primary", "identity from the ARN");
    assert_eq!(r.event_id, "RDS-EVENT-0049");
}

#[test]
fn an_rds_identifier_that_disagrees_with_the_arn_is_refused_naming_both() {
    let mut v = rds_guide_instance_event();
    v["detail"]["SourceIdentifier"] = json!("rds:orders-replica-1");
    refused_naming(&v, &["detail.SourceIdentifier", "detail.SourceArn"]);
    // Only the documented prefix is stripped: another prefix is another name.
    let mut v = rds_guide_instance_event();
    v["detail"]["SourceIdentifier"] = json!("aurora:orders-primary");
    refused_naming(&v, &["detail.SourceIdentifier", "detail.SourceArn"]);
    // Over SNS, the Source ID must name what the Source ARN names.
    let sns = sns_rds_message(json!({
        "Event Source": "db-instance",
        "Event Time": "2026-11-24 03:00:45.118",
        "Identifier Link": "https://console.aws.amazon.com/rds/home?region=us-east-1#dbinstance:id=orders-primary",
        "Source ID": "orders-replica-1",
        "Source ARN": "arn:aws:rds:us-east-1:123456789012:db:orders-primary",
        "Event ID": "http://docs.amazonwebservices.com/AmazonRDS/latest/UserGuide/USER_Events.html#RDS-EVENT-0004",
        "Event Message": "DB instance shutdown"
    }));
    refused_naming(&sns, &["Source ID", "Source ARN"]);
}

// ---------------------------------------------------------------- 2. no EventID

/// The Lambda Developer Guide's RDS event ("Using AWS Lambda with Amazon EventBridge"), which has
/// no `EventID`, retargeted to `inventory-db`.
fn lambda_guide_backup_event() -> Value {
    json!({
        "version": "0",
        "id": "fe8d3c65-xmpl-c5c3-2c87-81584709a377",
        "detail-type": "RDS DB Instance Event",
        "source": "aws.rds",
        "account": "123456789012",
        "time": "2026-11-24T03:00:20Z",
        "region": "us-west-2",
        "resources": ["arn:aws:rds:us-west-2:123456789012:db:inventory-db"],
        "detail": {
            "EventCategories": ["backup"],
            "SourceType": "DB_INSTANCE",
            "SourceArn": "arn:aws:rds:us-west-2:123456789012:db:inventory-db",
            "Date": "2026-11-24T03:00:20.112Z",
            "Message": "Finished DB Instance backup",
            "SourceIdentifier": "inventory-db"
        }
    })
}

#[test]
fn an_rds_event_without_an_event_id_is_recorded_as_unidentified_and_not_acted_on() {
    let c = cfg();
    let v = lambda_guide_backup_event();
    let s = parse_bytes(&bytes(&v)).unwrap_or_else(|e| panic!("not an error: {e}"));
    assert!(
        !needs_evidence(&s),
        "no AWS call for an event we cannot read"
    );
    let Routing::Sites(sites) = route(&c, &s, now()) else {
        panic!("the database is protected")
    };
    assert_eq!(sites, vec!["inventory".to_string()]);
    let site = c.site("inventory").unwrap();
    let state = SiteState::new("inventory");
    let d = decide(site, &s, None, &state, now());
    assert_eq!(d.verdict.summary, "unidentified RDS event: no action");
    let outcome = serde_json::to_value(&d.verdict.outcome).unwrap();
    assert_eq!(outcome, json!({"kind": "ignore", "reason": "unidentified"}));
    assert!(d.emit.is_empty());
    let next = d
        .next
        .expect("the delivery is recorded (remembered for dedupe)");
    assert_eq!(next.phase, state.phase, "no incident opened");
    assert_eq!(next.backups_running, state.backups_running);
    // Delivered again: a duplicate, not a second record.
    let again = decide(site, &s, None, &next, now());
    assert!(again.next.is_none());

    // The same over SNS: the Lambda Developer Guide's RDS notification without `Event ID`.
    let sns = sns_rds_message(json!({
        "Event Source": "db-instance",
        "Event Time": "2026-11-24 03:00:20.112",
        "Identifier Link": "https://console.aws.amazon.com/rds/home?region=us-west-2#dbinstance:id=inventory-db",
        "Source ID": "inventory-db",
        "Event Message": "Finished DB Instance backup"
    }));
    let s = parse_bytes(&bytes(&sns)).unwrap_or_else(|e| panic!("not an error: {e}"));
    assert!(!needs_evidence(&s));
    let d = decide(site, &s, None, &state, now());
    assert_eq!(d.verdict.summary, "unidentified RDS event: no action");
}

// ---------------------------------------------------------------- 3. timestamp dialects

#[test]
fn a_timestamp_with_spaces_inside_is_refused_naming_the_field() {
    let mut v = alarm_action();
    v["time"] = json!("2026-11-24T03: 00: 15.490+0000");
    refused_naming(&v, &["time"]);
    let mut v = alarm_action();
    v["alarmData"]["state"]["timestamp"] = json!("2026-11-24T03: 00: 15.490+0000");
    refused_naming(&v, &["alarmData.state.timestamp"]);
    let mut v = rds_guide_instance_event();
    v["time"] = json!("2026-11-24T03:00:43 Z");
    refused_naming(&v, &["time"]);
    let mut v = rds_guide_instance_event();
    v["detail"]["Date"] = json!("2026-11-24 T03:00:43.292Z");
    refused_naming(&v, &["detail.Date"]);
    let sns = sns_rds_message(json!({
        "Event Source": "db-instance",
        "Event Time": "2026-11-24 03: 00:45.118",
        "Source ID": "orders-primary",
        "Source ARN": "arn:aws:rds:us-east-1:123456789012:db:orders-primary",
        "Event ID": "RDS-EVENT-0004",
        "Event Message": "DB instance shutdown"
    }));
    refused_naming(&sns, &["Event Time"]);
}

#[test]
fn the_timestamp_dialects_aws_uses_are_read() {
    // `+0000` without a colon (CloudWatch), with fractions.
    let s = parse_bytes(&bytes(&alarm_action())).unwrap();
    assert_eq!(
        s.time,
        Some(
            Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 15).unwrap()
                + chrono::Duration::milliseconds(490)
        )
    );
    // `Z` without fractions (EventBridge `time`) and with them (RDS `Date`).
    let s = parse_bytes(&bytes(&rds_guide_instance_event())).unwrap();
    assert_eq!(
        s.time,
        Some(Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 43).unwrap())
    );
    // RDS over SNS: `Event Time` without a zone.
    let sns = sns_rds_message(json!({
        "Event Source": "db-instance",
        "Event Time": "2026-11-24 03:00:45.118",
        "Source ID": "orders-primary",
        "Source ARN": "arn:aws:rds:us-east-1:123456789012:db:orders-primary",
        "Event ID": "RDS-EVENT-0004",
        "Event Message": "DB instance shutdown"
    }));
    assert!(parse_bytes(&bytes(&sns)).is_ok());
    // A colon in the offset is RFC 3339 but not what these producers write.
    let mut v = alarm_action();
    v["time"] = json!("2026-11-24T03:00:15.490+00:00");
    refused_naming(&v, &["time"]);
}

// ---------------------------------------------------------------- 4. identities that disagree

#[test]
fn an_alarm_action_whose_arn_names_another_account_and_region_is_refused() {
    let mut v = alarm_action();
    v["alarmArn"] =
        json!("arn:aws:cloudwatch:eu-west-1:999999999999:alarm:billing-writer-availability");
    refused_naming(&v, &["accountId", "alarmArn"]);
    let mut v = alarm_action();
    v["alarmArn"] =
        json!("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:billing-writer-availability");
    refused_naming(&v, &["region", "alarmArn"]);
}

#[test]
fn an_alarm_name_that_differs_from_the_name_in_the_arn_is_refused() {
    // As the Java library's composite fixture has it: alarmArn `SuppressionDemo.Main`, alarmName
    // `CompositeDemo.Main` — retargeted so that alarmName names a protected alarm.
    let mut v = alarm_action();
    v["alarmArn"] = json!("arn:aws:cloudwatch:us-west-2:123456789012:alarm:SuppressionDemo.Main");
    refused_naming(&v, &["alarmData.alarmName", "alarmArn"]);
    // EventBridge: the alarm's ARN in `resources` names another alarm.
    let eb = json!({
        "version": "0", "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
        "account": "123456789012", "time": "2026-11-24T03:00:40Z", "region": "us-east-1",
        "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh"],
        "detail": {
            "alarmName": "orders-primary-availability",
            "configuration": {"metrics": []},
            "state": {"reason": "r", "timestamp": "2026-11-24T03:00:40.989+0000", "value": "ALARM"}
        }
    });
    refused_naming(&eb, &["detail.alarmName", "resources[0]"]);
    let mut eb2 = eb.clone();
    eb2["resources"] =
        json!(["arn:aws:cloudwatch:us-east-1:999999999999:alarm:orders-primary-availability"]);
    refused_naming(&eb2, &["account", "resources[0]"]);
    // SNS: AlarmName against AlarmArn, AWSAccountId against AlarmArn.
    let sns = sns_alarm_message(json!({
        "AlarmName": "orders-primary-canary",
        "AWSAccountId": "123456789012",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed",
        "StateChangeTime": "2026-11-24T03:00:27.123+0000",
        "Region": "US East (N. Virginia)",
        "AlarmArn": "arn:aws:cloudwatch:us-east-1:210987654321:alarm:orders-primary-canary",
        "OldStateValue": "OK"
    }));
    refused_naming(&sns, &["Message.AWSAccountId", "Message.AlarmArn"]);
}

#[test]
fn an_rds_event_whose_envelope_disagrees_with_its_arn_is_refused() {
    let mut v = rds_guide_instance_event();
    v["detail"]["SourceArn"] = json!("arn:aws:rds:us-east-1:999999999999:db:orders-primary");
    v["resources"] = json!(["arn:aws:rds:us-east-1:999999999999:db:orders-primary"]);
    refused_naming(&v, &["account", "detail.SourceArn"]);
    let mut v = rds_guide_instance_event();
    v["resources"] = json!(["arn:aws:rds:us-east-1:123456789012:db:orders-replica-1"]);
    refused_naming(&v, &["resources", "detail.SourceArn"]);
    let mut v = rds_guide_instance_event();
    v["detail"]["SourceType"] = json!("CLUSTER");
    refused_naming(&v, &["detail.SourceType", "detail.SourceArn"]);
}

fn sns_envelope(topic: &str, message: Value) -> Value {
    json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": format!("{topic}:21be56ed-a058-49f5-8c98-aedd2564c486"),
        "Sns": {
            "Type": "Notification",
            "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
            "TopicArn": topic,
            "Subject": "RDS Notification Message",
            "Message": message.to_string(),
            "Timestamp": "2026-11-24T03:00:46.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertUrl": "EXAMPLE",
            "UnsubscribeUrl": "EXAMPLE",
            "MessageAttributes": {}
        }
    }]})
}

fn sns_rds_message(message: Value) -> Value {
    sns_envelope(
        "arn:aws:sns:us-east-1:123456789012:rds-failover-rds-events",
        message,
    )
}

fn sns_alarm_message(message: Value) -> Value {
    sns_envelope(
        "arn:aws:sns:us-east-1:123456789012:rds-failover-alarms",
        message,
    )
}

#[test]
fn a_scheduled_event_whose_rule_arn_names_another_region_is_refused() {
    // The Lambda Developer Guide's scheduled event, retargeted to the DR region but for its
    // rule's ARN.
    let tick = json!({
        "version": "0", "account": "123456789012", "region": "us-west-2", "detail": {},
        "detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-24T03:00:45Z",
        "id": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c",
        "resources": ["arn:aws:events:us-east-2:123456789012:rule/my-schedule"]
    });
    refused_naming(&tick, &["region", "resources[0]"]);
    let mut ok = tick.clone();
    ok["resources"] = json!(["arn:aws:events:us-west-2:123456789012:rule/my-schedule"]);
    assert_eq!(routed_sites(&ok).len(), 4, "a tick reaches every site");
}
