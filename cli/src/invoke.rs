//! The evaluator, sent one operator command: signed to its function URL when the target has URLs
//! (a deployed stack: [`crate::url`]), else by the Lambda Invoke API (the local world, whose
//! evaluator is deployed with `RDS_FAILOVER_DIRECT_COMMANDS=allow`).

use aws_sdk_lambda::primitives::Blob;
use failover_policy::signal::OperatorCommand;
use serde_json::Value;

use crate::target::Target;
use crate::{aws_error, CliError};

/// The evaluator's answer, or [`CliError::Refused`] when it refused the input itself (`BadInput`:
/// a malformed command, a missing reason) and [`CliError::Aws`] when it failed.
pub async fn evaluator(target: &Target, cmd: &OperatorCommand) -> Result<Value, CliError> {
    if let Some(urls) = &target.urls {
        return crate::url::send(&target.sdk, urls, cmd).await;
    }
    let payload = serde_json::to_vec(cmd).expect("a command serialises");
    let out = target
        .lambda()
        .invoke()
        .function_name(&target.evaluator)
        .payload(Blob::new(payload))
        .send()
        .await;
    // AWS answers a function's error with 200 and `X-Amz-Function-Error` (Lambda API Reference,
    // Invoke: "FunctionError"); cargo-lambda's emulator answers it with an HTTP error status and
    // the same JSON body. Either way the function's `errorType`/`errorMessage` is what counts.
    let (body, function_error) = match out {
        Ok(out) => (
            out.payload()
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default(),
            out.function_error().map(str::to_string),
        ),
        Err(e) => {
            let body = e
                .raw_response()
                .and_then(|r| r.body().bytes())
                .map(<[u8]>::to_vec)
                .filter(|b| {
                    serde_json::from_slice::<Value>(b).is_ok_and(|v| v["errorType"].is_string())
                });
            match body {
                Some(b) => (b, Some("Unhandled".to_string())),
                None => return Err(aws_error(format!("invoke {}", target.evaluator), e)),
            }
        }
    };
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(kind) = function_error.as_deref() {
        let error_type = answer["errorType"].as_str().unwrap_or(kind).to_string();
        let message = answer["errorMessage"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let text = format!("evaluator {error_type}: {message}");
        return Err(if error_type == "BadInput" {
            CliError::Refused(text)
        } else {
            CliError::Aws {
                what: format!("invoke {}", target.evaluator),
                error: text,
            }
        });
    }
    Ok(answer)
}
