//! dns-pinner: setup only. Config and clients are built once per cold start; a bad setting answers
//! every invocation with error type `Fatal.Config` naming the variable or config field.

use dns_pinner::{handler, setup::deps_from_env};
use failover_adapters::runtime::ScreenInput;
use lambda_runtime::layers::TracingLayer;
use lambda_runtime::{service_fn, tracing, Error, LambdaEvent, Runtime};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let setup = deps_from_env().await.and_then(|deps| {
        let fallback = failover_adapters::settings::fallback_budget_from_env()?;
        Ok((deps, fallback))
    });
    match setup {
        Ok((hot, fallback)) => {
            let hot = &hot;
            Runtime::new(service_fn(move |event: LambdaEvent<Value>| async move {
                let deadline = handler::wait_deadline(event.context.deadline, fallback);
                // The configuration in force for this invocation (re-checked when due).
                handler::handle(&*hot.get().await, event.payload, deadline).await
            }))
            .layer(ScreenInput)
            .layer(TracingLayer::new())
            .run()
            .await
        }
        Err(e) => failover_adapters::runtime::serve_setup_error(e).await,
    }
}
