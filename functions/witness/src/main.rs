//! witness: setup only. A bad setting answers every invocation with error type `Fatal.Config`
//! naming the variable.

use failover_adapters::runtime::ScreenInput;
use lambda_runtime::layers::TracingLayer;
use lambda_runtime::{service_fn, tracing, Error, LambdaEvent, Runtime};
use serde_json::Value;
use witness::{handler::handle, setup::deps_from_env};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    match deps_from_env().await {
        Ok(deps) => {
            Runtime::new(service_fn(|event: LambdaEvent<Value>| {
                handle(&deps, event.payload)
            }))
            .layer(ScreenInput)
            .layer(TracingLayer::new())
            .run()
            .await
        }
        Err(e) => failover_adapters::runtime::serve_setup_error(e).await,
    }
}
