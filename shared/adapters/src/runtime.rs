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

/// A runtime layer that screens each invocation's raw bytes before the Lambda runtime
/// deserializes them ([`failover_policy::signal::screen_bytes`]): a payload over the size limit,
/// or one JSON value followed by more bytes — which the runtime would otherwise cut down to its
/// first value — is replaced by `{"rds-failover:refused-input": "<why>"}`, which every handler's
/// parser answers with its typed `BadInput` naming the reason. Everything else passes untouched.
///
/// Every function's `main.rs` runs its handler as
/// `Runtime::new(service_fn(..)).layer(ScreenInput).layer(TracingLayer::new()).run()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScreenInput;

impl<S> lambda_runtime::tower::Layer<S> for ScreenInput {
    type Service = ScreenInputService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ScreenInputService { inner }
    }
}

/// The service [`ScreenInput`] wraps around the runtime's own.
#[derive(Debug, Clone)]
pub struct ScreenInputService<S> {
    inner: S,
}

impl<S> lambda_runtime::Service<lambda_runtime::LambdaInvocation> for ScreenInputService<S>
where
    S: lambda_runtime::Service<lambda_runtime::LambdaInvocation>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: lambda_runtime::LambdaInvocation) -> Self::Future {
        if let Some(refusal) = failover_policy::signal::screen_bytes(&req.body) {
            tracing::warn!(error = %refusal, bytes = req.body.len(), "refused the payload before deserializing it");
            let replacement = serde_json::json!({
                failover_policy::signal::REFUSED_INPUT_KEY: refusal.to_string()
            });
            req.body = serde_json::to_vec(&replacement)
                .expect("a JSON object of one string serializes")
                .into();
        }
        self.inner.call(req)
    }
}
