//! Issue 15: operator commands through the AWS_IAM function URLs. The principal Lambda wrote into
//! the request context is the identity recorded; the read URL takes `status` only; a URL request
//! without an IAM authorizer, a direct invoke of an alias, and a mutating direct command (unless
//! the deployment allows it) are refused before any AWS call.

use super::*;
use crate::door::invoke;
use failover_policy::signal::url::Admission;

const FN: &str = "arn:aws:lambda:us-west-2:123456789012:function:rds-failover-alarm-evaluator";
const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

fn url_request(body: Value, principal: Option<&str>) -> Value {
    let mut cx = json!({
        "accountId": "123456789012", "apiId": "abc", "domainName": "abc.lambda-url.us-west-2.on.aws",
        "domainPrefix": "abc", "requestId": "req-1", "routeKey": "$default", "stage": "$default",
        "time": "24/Nov/2026:10:00:00 +0000", "timeEpoch": t0().timestamp_millis(),
        "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"}
    });
    if let Some(p) = principal {
        cx["authorizer"] = json!({"iam": {"accessKey": "AKIA", "accountId": "123456789012",
            "callerId": "AIDA", "userArn": p, "userId": "AIDA"}});
    }
    json!({"version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": {"content-type": "application/json"}, "requestContext": cx,
        "body": body.to_string(), "isBase64Encoded": false})
}

fn pause() -> Value {
    json!({"command": "pause", "site": "orders", "reason": "maintenance", "operator": "root"})
}

fn status_of(resp: &Value) -> u64 {
    resp["statusCode"].as_u64().unwrap_or_default()
}

#[tokio::test]
async fn a_pause_through_the_operate_url_is_recorded_under_the_iam_principal() {
    let w = world();
    let resp = invoke(
        &w.deps,
        Admission::default(),
        url_request(pause(), Some(ALICE)),
        &format!("{FN}:operate"),
    )
    .await
    .unwrap();
    assert_eq!(status_of(&resp), 200, "{resp}");
    let paused = w.ledger.get("orders").unwrap().paused.unwrap();
    assert_eq!(
        paused.by,
        format!("{ALICE} (userId AIDA)"),
        "the typed `operator: root` is not the identity; the userId is beside the ARN"
    );
    let body: Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
    assert!(
        body["verdicts"][0]["summary"]
            .as_str()
            .unwrap()
            .contains(ALICE),
        "{body}"
    );
}

#[tokio::test]
async fn the_read_url_answers_status_and_refuses_a_pause_without_touching_anything() {
    let w = world();
    let read = format!("{FN}:read");
    let status = json!({"command": "status", "site": "orders"});
    let ok = invoke(
        &w.deps,
        Admission::default(),
        url_request(status, Some(ALICE)),
        &read,
    )
    .await
    .unwrap();
    assert_eq!(status_of(&ok), 200, "{ok}");
    let refused = invoke(
        &w.deps,
        Admission::default(),
        url_request(pause(), Some(ALICE)),
        &read,
    )
    .await
    .unwrap();
    assert_eq!(status_of(&refused), 403, "{refused}");
    assert!(
        refused["body"]
            .as_str()
            .unwrap()
            .contains("read-only URL accepts `status`"),
        "{refused}"
    );
    assert_eq!(w.ledger.commit_count(), 0);
    assert!(w.ledger.get("orders").is_none_or(|s| s.paused.is_none()));
    assert!(w.bus.types().is_empty());
}

#[tokio::test]
async fn unauthenticated_or_unadmitted_commands_are_refused_before_any_aws_call() {
    let w = world();
    let operate = format!("{FN}:operate");
    let anon = invoke(
        &w.deps,
        Admission::default(),
        url_request(pause(), None),
        &operate,
    )
    .await
    .unwrap();
    assert_eq!(status_of(&anon), 401, "{anon}");
    // A direct invoke of an alias carries no principal.
    let e = invoke(
        &w.deps,
        Admission {
            direct_commands: true,
        },
        pause(),
        &operate,
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("serves its function URL only"),
        "{e}"
    );
    // A mutating direct command is refused by default, accepted when the deployment allows it.
    let e = invoke(&w.deps, Admission::default(), pause(), FN)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("RDS_FAILOVER_DIRECT_COMMANDS"),
        "{e}"
    );
    assert_eq!(w.ledger.commit_count(), 0);
    assert!(w.bus.types().is_empty());
    invoke(
        &w.deps,
        Admission {
            direct_commands: true,
        },
        pause(),
        FN,
    )
    .await
    .unwrap();
    assert_eq!(w.ledger.get("orders").unwrap().paused.unwrap().by, "root");
}
