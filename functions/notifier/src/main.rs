//! notifier: setup only. A bad setting answers every invocation with error type `Fatal.Config`
//! naming the variable.

use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use notifier::{handler::handle, setup::deps_from_env};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    match deps_from_env().await {
        Ok(deps) => {
            run(service_fn(|event: LambdaEvent<Value>| {
                handle(&deps, event.payload)
            }))
            .await
        }
        Err(e) => failover_adapters::runtime::serve_setup_error(e).await,
    }
}
