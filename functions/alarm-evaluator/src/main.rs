//! alarm-evaluator: setup only. Config and clients are built once per cold start; a bad setting
//! fails here, naming the variable, before any event is handled.

use alarm_evaluator::{handler::handle, setup::deps_from_env};
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let deps = deps_from_env().await?;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handle(&deps, event.payload)
    }))
    .await
}
