//! The evaluator's re-check queue, as Lambda's SQS event source mapping delivers it.
//!
//! Shape: the Lambda Developer Guide, "Using Lambda with Amazon SQS" (an `SqsEvent`: `Records`,
//! each with `messageId`, `body`, `eventSource` = `aws:sqs`, `eventSourceARN`, `awsRegion`). The
//! mapping is configured with `BatchSize: 1` (infra/template.yaml), so exactly one record is
//! accepted: a batch would make one failing site fail the others' messages too.
//!
//! The body is what [`crate::recheck::Arm::body`] wrote. Identity comes from the queue's ARN
//! (account and region), which must agree with `awsRegion`; the message's own `at` is the signal's
//! time, so the router's age limit refuses a redelivery long after it was meant to arrive.

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;

use super::identity::Arn;
use super::{field, Delivery, RecheckSignal, Signal, SignalError, SignalKind, SOURCE_RECHECK};

const SHAPE: &str = "SQS re-check";

/// An event of Lambda's SQS shape (told apart from SNS by the record's lower-case `eventSource`).
pub(super) fn is_sqs(v: &Value) -> bool {
    v.pointer("/Records/0/eventSource").and_then(Value::as_str) == Some("aws:sqs")
}

pub(super) fn parse(v: &Value) -> Result<Signal, SignalError> {
    let e: SqsEvent = serde_json::from_value(v.clone()).map_err(|e| field(SHAPE, "Records", e))?;
    if e.records.len() != 1 {
        return Err(SignalError::SqsRecordCount(e.records.len()));
    }
    let rec = &e.records[0];
    let id = rec
        .message_id
        .as_deref()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| field(SHAPE, "Records[0].messageId", "missing"))?;
    let arn_text = rec
        .event_source_arn
        .as_deref()
        .ok_or_else(|| field(SHAPE, "Records[0].eventSourceARN", "missing"))?;
    let arn = Arn::parse(arn_text)
        .filter(|a| a.service == "sqs" && !a.region.is_empty())
        .ok_or_else(|| {
            field(
                SHAPE,
                "Records[0].eventSourceARN",
                format!("`{arn_text}` is not an SQS queue ARN"),
            )
        })?;
    if let Some(r) = rec.aws_region.as_deref() {
        if r != arn.region {
            return Err(SignalError::Contradiction {
                shape: SHAPE,
                first: "Records[0].awsRegion".into(),
                second: "Records[0].eventSourceARN".into(),
                detail: format!("{r} vs {}", arn.region),
            });
        }
    }
    let body = rec
        .body
        .as_deref()
        .ok_or_else(|| field(SHAPE, "Records[0].body", "missing"))?;
    let msg: Value = serde_json::from_str(body)
        .map_err(|e| field(SHAPE, "Records[0].body", format!("not JSON ({e})")))?;
    let recheck: RecheckSignal = msg
        .get("recheck")
        .cloned()
        .ok_or_else(|| field(SHAPE, "Records[0].body.recheck", "missing"))
        .and_then(|r| {
            serde_json::from_value(r).map_err(|e| field(SHAPE, "Records[0].body.recheck", e))
        })?;
    if recheck.site.trim().is_empty() {
        return Err(field(SHAPE, "Records[0].body.recheck.site", "empty"));
    }
    // `at` may be up to a second past `due` (the delay is whole seconds, rounded up); neither
    // feeds the window, which the ledger's `quorum_since` alone decides.
    Ok(Signal {
        id: format!("sqs:{id}"),
        delivery: Delivery::Sqs,
        source: SOURCE_RECHECK.into(),
        account: Some(arn.account.to_string()),
        region: Some(arn.region.to_string()),
        time: Some(recheck.at),
        kind: SignalKind::Recheck(recheck),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_signal;
    use serde_json::json;

    fn event(body: &str) -> Value {
        json!({"Records": [{
            "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
            "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183",
                           "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1545082649185"},
            "messageAttributes": {},
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-west-2:123456789012:rds-failover-recheck",
            "awsRegion": "us-west-2"
        }]})
    }

    const BODY: &str =
        r#"{"recheck":{"site":"orders","at":"2026-12-01T10:00:30Z","due":"2026-12-01T10:00:30Z"}}"#;

    #[test]
    fn a_recheck_message_is_a_signal_for_its_site_dated_when_it_was_meant_to_arrive() {
        let s = parse_signal(&event(BODY)).unwrap();
        assert_eq!(s.delivery, Delivery::Sqs);
        assert_eq!(s.source, SOURCE_RECHECK);
        assert_eq!(s.account.as_deref(), Some("123456789012"));
        assert_eq!(s.region.as_deref(), Some("us-west-2"));
        assert_eq!(s.id, "sqs:059f36b4-87a3-44ab-83d2-661975830a7d");
        assert_eq!(s.time.unwrap().to_rfc3339(), "2026-12-01T10:00:30+00:00");
        let SignalKind::Recheck(r) = s.kind else {
            panic!("not a recheck")
        };
        assert_eq!(r.site, "orders");
    }

    #[test]
    fn malformed_recheck_messages_are_typed_errors_naming_the_field() {
        for (body, field_name) in [
            ("not json", "Records[0].body"),
            (r#"{"other":1}"#, "Records[0].body.recheck"),
            (
                r#"{"recheck":{"site":"orders"}}"#,
                "Records[0].body.recheck",
            ),
            (
                r#"{"recheck":{"site":"orders","at":"2026-12-01T10:00:30Z","due":"2026-12-01T10:00:30Z","x":1}}"#,
                "Records[0].body.recheck",
            ),
            (
                r#"{"recheck":{"site":" ","at":"2026-12-01T10:00:30Z","due":"2026-12-01T10:00:30Z"}}"#,
                "Records[0].body.recheck.site",
            ),
        ] {
            match parse_signal(&event(body)) {
                Err(SignalError::Field { field, .. }) => assert_eq!(field, field_name, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_queue_arn_must_be_an_sqs_arn_agreeing_with_the_region() {
        let mut v = event(BODY);
        v["Records"][0]["eventSourceARN"] = json!("arn:aws:sns:us-west-2:123456789012:x");
        assert!(matches!(
            parse_signal(&v),
            Err(SignalError::Field { ref field, .. }) if field == "Records[0].eventSourceARN"
        ));
        let mut v = event(BODY);
        v["Records"][0]["awsRegion"] = json!("us-east-1");
        assert!(matches!(
            parse_signal(&v),
            Err(SignalError::Contradiction { .. })
        ));
    }

    #[test]
    fn a_batch_of_two_is_refused() {
        let mut v = event(BODY);
        let r = v["Records"][0].clone();
        v["Records"].as_array_mut().unwrap().push(r);
        assert!(matches!(
            parse_signal(&v),
            Err(SignalError::SqsRecordCount(2))
        ));
    }
}
