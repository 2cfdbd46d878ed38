//! alarm-evaluator: setup only. Config and clients are built once per cold start.
//!
//! A bad setting is logged at cold start, naming the variable or config field, and every
//! invocation then fails with error type `Fatal.Config` and that same message — so the first
//! drill or smoke invoke after a bad deploy says exactly what to fix, and nothing is evaluated
//! against a configuration we could not read.

use alarm_evaluator::{door, setup::deps_from_env};
use failover_adapters::runtime::ScreenInput;
use lambda_runtime::layers::TracingLayer;
use lambda_runtime::{service_fn, tracing, Error, LambdaEvent, Runtime};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    match deps_from_env().await {
        Ok(hot) => {
            let admission = door::admission_from_env();
            let hot = &hot;
            Runtime::new(service_fn(move |event: LambdaEvent<Value>| async move {
                // The configuration in force for this invocation (re-checked when due).
                let deps = hot.get().await;
                door::invoke(
                    &deps,
                    admission,
                    event.payload,
                    &event.context.invoked_function_arn,
                )
                .await
            }))
            .layer(ScreenInput)
            .layer(TracingLayer::new())
            .run()
            .await
        }
        Err(e) => failover_adapters::runtime::serve_setup_error(e).await,
    }
}
