//! Operator commands through the evaluator's Lambda function URLs (`AuthType: AWS_IAM`), and
//! which door an invocation may use.
//!
//! Shape: the Lambda Developer Guide, "Invoking Lambda function URLs" → "Request payload format"
//! (payload version 2.0: `rawPath`, `headers`, `requestContext` with `accountId`, `requestId`,
//! `timeEpoch`, `http.method` and, for `AWS_IAM` URLs, `authorizer.iam` with `accessKey`,
//! `accountId`, `callerId`, `userArn`, `userId`; `body`, `isBase64Encoded`). With `AWS_IAM`,
//! Lambda verifies the request's SigV4 signature and evaluates `lambda:InvokeFunctionUrl` (and,
//! for URLs created from October 2025, `lambda:InvokeFunction`) against the caller's policies
//! before the function runs ("Control access to Lambda function URLs"): the `userArn` in the
//! request context is therefore the authenticated principal, and the only identity recorded (with
//! its `userId`/`callerId` beside it: an assumed role's session name is the caller's choice). The
//! `operator` name typed in the body stays on the command as a note, never as the identity.
//!
//! Who may send which command is an IAM decision: the evaluator has two aliases, `read` and
//! `operate`, each with its own URL (infra/template.yaml), and the managed policies grant the
//! read-only operators the `read` URL alone. [`admit`] enforces the other half: the `read` door
//! accepts `status` only, the aliases accept nothing but function-URL requests (a direct invoke of
//! an alias would carry no principal), and a mutating command over direct invoke or the bus is
//! refused unless the deployment explicitly allows it ([`Admission::direct_commands`]).

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    field, Delivery, OperatorAction, OperatorCommand, Signal, SignalError, SignalKind,
    SOURCE_OPERATOR,
};

const SHAPE: &str = "function URL request";

/// The alias whose URL accepts read-only commands.
pub const READ_ALIAS: &str = "read";
/// The alias whose URL accepts every operator command.
pub const OPERATE_ALIAS: &str = "operate";

/// A payload of the function-URL shape (payload format 2.0 always carries these two).
pub(super) fn is_function_url(v: &Value) -> bool {
    v.get("requestContext").is_some() && v.get("rawPath").is_some()
}

pub(super) fn parse(v: &Value) -> Result<Signal, SignalError> {
    let req: LambdaFunctionUrlRequest =
        serde_json::from_value(v.clone()).map_err(|e| field(SHAPE, "requestContext", e))?;
    let cx = &req.request_context;
    // No IAM authorizer context means the URL is not `AWS_IAM` (or the payload was not written by
    // Lambda): there is no authenticated caller to record, so nothing is done.
    let iam = cx.authorizer.as_ref().and_then(|a| a.iam.as_ref());
    let arn = iam
        .and_then(|iam| iam.user_arn.as_deref())
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or(SignalError::Unauthenticated)?;
    let principal = recorded_principal(
        arn,
        iam.and_then(|i| i.user_id.as_deref()),
        iam.and_then(|i| i.caller_id.as_deref()),
    );
    let method = cx.http.method.as_deref().unwrap_or("");
    if method != "POST" {
        return Err(field(
            SHAPE,
            "requestContext.http.method",
            format!("`{method}`: commands are sent with POST"),
        ));
    }
    let request_id = cx
        .request_id
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| field(SHAPE, "requestContext.requestId", "missing"))?;
    let account = cx
        .account_id
        .clone()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| field(SHAPE, "requestContext.accountId", "missing"))?;
    if req.is_base64_encoded {
        return Err(field(
            SHAPE,
            "isBase64Encoded",
            "the body must be a JSON command sent as `Content-Type: application/json`",
        ));
    }
    let body = req
        .body
        .as_deref()
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| field(SHAPE, "body", "missing: the body is the JSON command"))?;
    if let Some(e) = super::screen_bytes(body.as_bytes()) {
        return Err(e);
    }
    let mut cmd: OperatorCommand = serde_json::from_str(body)
        .map_err(|e| field(SHAPE, "body", e))
        .and_then(|c: OperatorCommand| c.validated(SHAPE))?;
    cmd.principal = Some(principal);
    let time = DateTime::<Utc>::from_timestamp_millis(cx.time_epoch)
        .filter(|_| cx.time_epoch > 0)
        .ok_or_else(|| field(SHAPE, "requestContext.timeEpoch", "missing or not a time"))?;
    Ok(Signal {
        id: format!("url:{request_id}"),
        delivery: Delivery::FunctionUrl,
        source: SOURCE_OPERATOR.into(),
        account: Some(account),
        region: None,
        time: Some(time),
        kind: SignalKind::Operator(cmd),
    })
}

/// The identity recorded for a URL command: the `userArn`, with the `userId` (and the
/// `callerId` when it differs) beside it. For an assumed role the ARN's last part is the session
/// name, which the caller chooses (`sts:AssumeRole`'s `RoleSessionName`); the `userId` starts
/// with the role's unique id (`AROA…`), which IAM assigns, so the record names the role even when
/// the session name is misleading.
fn recorded_principal(arn: &str, user_id: Option<&str>, caller_id: Option<&str>) -> String {
    let clean = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    match (clean(user_id), clean(caller_id)) {
        (Some(u), Some(c)) if c != u => format!("{arn} (userId {u}, callerId {c})"),
        (Some(u), _) => format!("{arn} (userId {u})"),
        (None, Some(c)) => format!("{arn} (callerId {c})"),
        (None, None) => arn.to_string(),
    }
}

/// The deployment's choice for operator commands that carry no authenticated principal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Admission {
    /// Accept mutating commands by direct `lambda:Invoke` of the unqualified function and over
    /// the bus (where the sender is whoever may invoke or `PutEvents`; the typed `operator` is
    /// the only name recorded). Default off; the local emulated world turns it on.
    pub direct_commands: bool,
}

/// Whether this invocation may carry this signal, judged from the invoked function ARN's
/// qualifier (`…:function:NAME:QUALIFIER`). A typed refusal names the door and the command; the
/// handler makes no AWS call for it.
pub fn admit(signal: &Signal, invoked_arn: &str, admission: Admission) -> Result<(), SignalError> {
    let qualifier = invoked_arn.split(':').nth(7).filter(|q| !q.is_empty());
    let command = match &signal.kind {
        SignalKind::Operator(c) => Some(c.command),
        _ => None,
    };
    let refuse = |detail: String| {
        Err(SignalError::NotPermitted {
            door: qualifier.unwrap_or("(unqualified)").to_string(),
            detail,
        })
    };
    match (signal.delivery, qualifier) {
        (Delivery::FunctionUrl, Some(READ_ALIAS)) => match command {
            Some(OperatorAction::Status) => Ok(()),
            Some(c) => refuse(format!(
                "`{}` changes the site; the read-only URL accepts `status` (use the operate URL, which needs the OperatorActions policy)",
                c.as_str()
            )),
            None => refuse("not an operator command".into()),
        },
        (Delivery::FunctionUrl, Some(OPERATE_ALIAS)) => Ok(()),
        (Delivery::FunctionUrl, q) => refuse(format!(
            "a function-URL request reached qualifier {}; only the `{READ_ALIAS}` and `{OPERATE_ALIAS}` aliases have URLs",
            q.unwrap_or("(none)")
        )),
        (_, Some(q @ (READ_ALIAS | OPERATE_ALIAS))) => refuse(format!(
            "the `{q}` alias serves its function URL only; a direct invoke of it carries no authenticated principal"
        )),
        _ => match command {
            None | Some(OperatorAction::Status) => Ok(()),
            Some(_) if admission.direct_commands => Ok(()),
            Some(c) => refuse(format!(
                "`{}` by direct invoke or over the bus carries no authenticated principal; send it through the operate function URL (`rds-failover {}`), or set RDS_FAILOVER_DIRECT_COMMANDS=allow",
                c.as_str(),
                c.as_str()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::parse_signal;
    use serde_json::json;

    const ARN: &str = "arn:aws:iam::123456789012:user/alice";
    const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:evaluator";

    fn request(body: Value, authorizer: Option<Value>) -> Value {
        let mut cx = json!({
            "accountId": "123456789012", "apiId": "abc", "domainName": "abc.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc", "requestId": "req-1", "routeKey": "$default", "stage": "$default",
            "time": "01/Dec/2026:20:00:00 +0000", "timeEpoch": 1_796_155_200_000_i64,
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"}
        });
        if let Some(a) = authorizer {
            cx["authorizer"] = a;
        }
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
            "headers": {"content-type": "application/json"}, "requestContext": cx,
            "body": body.to_string(), "isBase64Encoded": false
        })
    }

    fn iam(arn: &str) -> Value {
        json!({"iam": {"accessKey": "AKIA", "accountId": "123456789012", "callerId": "AIDA", "userArn": arn, "userId": "AIDA"}})
    }

    #[test]
    fn the_principal_comes_from_the_request_context_not_the_body() {
        let s = parse_signal(&request(
            json!({"command": "pause", "site": "orders", "reason": "r", "operator": "root"}),
            Some(iam(ARN)),
        ))
        .unwrap();
        assert_eq!(s.delivery, Delivery::FunctionUrl);
        assert_eq!(s.id, "url:req-1");
        assert_eq!(s.account.as_deref(), Some("123456789012"));
        let SignalKind::Operator(c) = &s.kind else {
            panic!("{s:?}")
        };
        assert_eq!(c.by().unwrap(), format!("{ARN} (userId AIDA)"));
        assert_eq!(c.operator.as_deref(), Some("root"));
    }

    #[test]
    fn an_assumed_roles_record_carries_the_role_id_beside_the_caller_chosen_session_name() {
        let arn = "arn:aws:sts::123456789012:assumed-role/oncall/alice";
        let cx = json!({"iam": {"accessKey": "ASIA", "accountId": "123456789012",
            "callerId": "AROAEXAMPLEROLEID:alice", "userArn": arn, "userId": "AROAEXAMPLEROLEID:alice"}});
        let s = parse_signal(&request(
            json!({"command": "pause", "site": "orders"}),
            Some(cx),
        ))
        .unwrap();
        let SignalKind::Operator(c) = &s.kind else {
            panic!("{s:?}")
        };
        assert_eq!(
            c.by().unwrap(),
            format!("{arn} (userId AROAEXAMPLEROLEID:alice)")
        );
        assert_eq!(
            recorded_principal(arn, Some("AROAX:a"), Some("AIDAY")),
            format!("{arn} (userId AROAX:a, callerId AIDAY)")
        );
        assert_eq!(recorded_principal(arn, Some(" "), None), arn);
    }

    #[test]
    fn a_request_without_an_iam_authorizer_is_refused() {
        for auth in [None, Some(json!({})), Some(iam(""))] {
            let r = parse_signal(&request(
                json!({"command": "pause", "site": "orders"}),
                auth,
            ));
            assert_eq!(r, Err(SignalError::Unauthenticated));
        }
    }

    #[test]
    fn a_body_cannot_name_its_own_principal() {
        let body = json!({"command": "pause", "site": "orders", "principal": ARN});
        let direct = parse_signal(&body).unwrap_err().to_string();
        assert!(direct.contains("principal"), "{direct}");
        let url = parse_signal(&request(body, Some(iam("arn:aws:iam::1:user/x")))).unwrap_err();
        assert!(url.to_string().contains("principal"), "{url}");
    }

    #[test]
    fn the_read_door_takes_status_only_and_aliases_take_urls_only() {
        let url = |cmd: Value| parse_signal(&request(cmd, Some(iam(ARN)))).unwrap();
        let status = url(json!({"command": "status", "site": "orders"}));
        let pause = url(json!({"command": "pause", "site": "orders"}));
        let off = Admission::default();
        assert!(admit(&status, &format!("{FN}:read"), off).is_ok());
        assert!(admit(&pause, &format!("{FN}:operate"), off).is_ok());
        let e = admit(&pause, &format!("{FN}:read"), off).unwrap_err();
        assert!(
            matches!(&e, SignalError::NotPermitted { door, .. } if door == "read"),
            "{e}"
        );
        assert!(admit(&pause, FN, off).is_err(), "a URL request on no alias");

        let direct = parse_signal(&json!({"command": "pause", "site": "orders"})).unwrap();
        let direct_status = parse_signal(&json!({"command": "status", "site": "orders"})).unwrap();
        assert!(admit(&direct, FN, off).is_err(), "default off");
        assert!(admit(&direct_status, FN, off).is_ok());
        let on = Admission {
            direct_commands: true,
        };
        assert!(admit(&direct, FN, on).is_ok());
        assert!(admit(&direct, &format!("{FN}:operate"), on).is_err());
        assert!(admit(&direct_status, &format!("{FN}:read"), on).is_err());
    }

    #[test]
    fn malformed_requests_name_the_field() {
        let mut r = request(
            json!({"command": "pause", "site": "orders"}),
            Some(iam(ARN)),
        );
        r["requestContext"]["http"]["method"] = json!("GET");
        assert!(parse_signal(&r)
            .unwrap_err()
            .to_string()
            .contains("http.method"));
        let mut r = request(
            json!({"command": "pause", "site": "orders"}),
            Some(iam(ARN)),
        );
        r["body"] = json!("");
        assert!(parse_signal(&r).unwrap_err().to_string().contains("body"));
        let mut r = request(
            json!({"command": "pause", "site": "orders"}),
            Some(iam(ARN)),
        );
        r["isBase64Encoded"] = json!(true);
        assert!(parse_signal(&r)
            .unwrap_err()
            .to_string()
            .contains("isBase64Encoded"));
    }
}
