//! What every function's `main.rs` does when its cold-start setup fails.

use lambda_runtime::{run, service_fn, tracing, Diagnostic, Error, LambdaEvent};
use serde_json::Value;

/// Logs the setup error (it names the variable or config field) and answers every invocation
/// with error type `Fatal.Config` and that message, so the first drill or smoke invoke after a
/// bad deploy says exactly what to fix, and nothing runs against a configuration we could not read.
pub async fn serve_setup_error(error: impl std::fmt::Display) -> Result<(), Error> {
    let message = error.to_string();
    tracing::error!(error = %message, "cold start failed: invalid configuration");
    run(service_fn(move |_: LambdaEvent<Value>| {
        let error_message = message.clone();
        async move {
            Err::<Value, _>(Diagnostic {
                error_type: "Fatal.Config".into(),
                error_message,
            })
        }
    }))
    .await
}
