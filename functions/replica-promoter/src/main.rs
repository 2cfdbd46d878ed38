//! replica-promoter: setup only. Config and clients are built once per cold start; a bad setting
//! answers every invocation with error type `Fatal.Config` and the message naming it.

use failover_adapters::runtime::ScreenInput;
use lambda_runtime::layers::TracingLayer;
use lambda_runtime::{service_fn, tracing, Error, LambdaEvent, Runtime};
use replica_promoter::{handler::handle, setup::deps_from_env};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    match deps_from_env().await {
        Ok(hot) => {
            let hot = &hot;
            Runtime::new(service_fn(move |event: LambdaEvent<Value>| async move {
                // The configuration in force for this invocation (re-checked when due).
                handle(&*hot.get().await, event).await
            }))
            .layer(ScreenInput)
            .layer(TracingLayer::new())
            .run()
            .await
        }
        Err(e) => failover_adapters::runtime::serve_setup_error(e).await,
    }
}
