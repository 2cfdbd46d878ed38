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
        Ok(deps) => {
            Runtime::new(service_fn(|event: LambdaEvent<Value>| handle(&deps, event)))
                .layer(ScreenInput)
                .layer(TracingLayer::new())
                .run()
                .await
        }
        Err(e) => failover_adapters::runtime::serve_setup_error(e).await,
    }
}
