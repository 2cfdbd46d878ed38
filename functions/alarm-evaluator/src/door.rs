//! The evaluator's front door: which invocation may carry which signal, and the function-URL
//! response shape. The judgement is the policy's ([`failover_policy::signal::url::admit`]); this
//! module only reads the setting, calls it before anything else, and wraps the answer.
//!
//! A function URL answers the HTTP caller with what the function returns: an object with
//! `statusCode` and `body` is used as the HTTP response, and a function *error* becomes a bare
//! 502 (Lambda Developer Guide, "Invoking Lambda function URLs" → "Response payload format").
//! So a refused or failed command through a URL is returned as a 4xx/5xx response whose body
//! names what was wrong, and the CLI can tell "refused" from "failed".

use failover_policy::signal::url::{admit, Admission};
use failover_policy::{parse_signal, SignalError};
use serde_json::{json, Value};
use tracing::warn;

use crate::handler::{handle, Deps, EvaluatorError};

/// The environment variable that turns on mutating commands without a principal (direct invoke
/// and bus). Off unless it is exactly `allow`.
pub const DIRECT_COMMANDS_VAR: &str = "RDS_FAILOVER_DIRECT_COMMANDS";

pub fn admission_from_env() -> Admission {
    let direct_commands = std::env::var(DIRECT_COMMANDS_VAR).is_ok_and(|v| v.trim() == "allow");
    if direct_commands {
        warn!("{DIRECT_COMMANDS_VAR}=allow: mutating operator commands are accepted by direct invoke and over the bus, recorded under the typed operator name");
    }
    Admission { direct_commands }
}

/// One invocation: admitted (or refused before any AWS call), then handled.
pub async fn invoke(
    deps: &Deps,
    admission: Admission,
    payload: Value,
    invoked_arn: &str,
) -> Result<Value, EvaluatorError> {
    let parsed = parse_signal(&payload);
    let via_url = matches!(&parsed, Ok(s) if s.delivery == failover_policy::signal::Delivery::FunctionUrl)
        || matches!(&parsed, Err(SignalError::Unauthenticated))
        || payload.get("requestContext").is_some() && payload.get("rawPath").is_some();
    let outcome = match parsed.and_then(|s| admit(&s, invoked_arn, admission)) {
        Ok(()) => handle(deps, payload).await,
        Err(e) => {
            warn!(error = %e, invoked_arn, "refused before any AWS call");
            Err(EvaluatorError::BadInput(e))
        }
    };
    if !via_url {
        return outcome.map(|r| serde_json::to_value(r).unwrap_or(Value::Null));
    }
    Ok(match outcome {
        Ok(r) => url_response(200, &serde_json::to_value(r).unwrap_or(Value::Null)),
        Err(e) => {
            let status = match &e {
                EvaluatorError::BadInput(SignalError::Unauthenticated) => 401,
                EvaluatorError::BadInput(SignalError::NotPermitted { .. }) => 403,
                EvaluatorError::BadInput(_) => 400,
                _ => 500,
            };
            url_response(status, &json!({"error": e.to_string()}))
        }
    })
}

fn url_response(status: u16, body: &Value) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
        "isBase64Encoded": false,
    })
}
