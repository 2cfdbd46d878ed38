//! The evaluator's re-check at the end of a sustained window ([`failover_policy::recheck`]): one
//! SQS message with a per-message delay, delivered back to the evaluator by Lambda's event source
//! mapping (infra/template.yaml `RecheckQueue`).
// Imports and helpers that only the fakes below use are unused when they are compiled out.
#![cfg_attr(
    not(any(test, feature = "test-util")),
    allow(unused_imports, dead_code)
)]

use async_trait::async_trait;
use failover_policy::recheck::Arm;
use std::sync::Mutex;

use crate::aws::{port_error, AwsClients};
use crate::ports::PortError;

/// Sends the re-check [`Arm`] describes. A failure is the caller's to log: the scheduled tick is
/// the backstop, so a re-check that could not be armed costs at most a minute.
#[async_trait]
pub trait Rechecks: Send + Sync {
    async fn arm(&self, arm: &Arm) -> Result<(), PortError>;
    /// `false` when no queue is configured: nothing is armed or recorded.
    fn enabled(&self) -> bool {
        true
    }
}

/// `SendMessage` with `DelaySeconds` (SQS API Reference: 0 to 900 seconds; the message is not
/// visible to consumers until the delay has passed).
pub struct SqsRechecks {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsRechecks {
    /// One attempt, two seconds: a re-check is an accelerator (the tick is the backstop), so a
    /// slow SQS must cost the evaluation little, never the site's budget.
    pub fn new(clients: &AwsClients, queue_url: &str) -> Self {
        let conf = aws_sdk_sqs::config::Builder::from(clients.sdk_config())
            .retry_config(aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(1))
            .timeout_config(
                aws_smithy_types::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(1))
                    .operation_timeout(std::time::Duration::from_secs(2))
                    .build(),
            )
            .build();
        Self::from_client(aws_sdk_sqs::Client::from_conf(conf), queue_url)
    }
    pub fn from_client(client: aws_sdk_sqs::Client, queue_url: &str) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl Rechecks for SqsRechecks {
    async fn arm(&self, arm: &Arm) -> Result<(), PortError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(arm.body())
            .delay_seconds(arm.delay_secs as i32)
            .send()
            .await
            .map_err(|e| port_error("SendMessage", &e))?;
        Ok(())
    }
}

/// No queue configured: decisions wait for the scheduled tick (said once at cold start).
pub struct TickOnly;

#[async_trait]
impl Rechecks for TickOnly {
    async fn arm(&self, _arm: &Arm) -> Result<(), PortError> {
        Ok(())
    }
    fn enabled(&self) -> bool {
        false
    }
}

#[cfg(any(test, feature = "test-util"))]
/// Records every re-check armed (tests), with scripted failures and an optional delay before it
/// answers (a slow SQS).
#[derive(Default)]
pub struct RecordedRechecks {
    pub armed: Mutex<Vec<Arm>>,
    pub faults: crate::fakes::Faults,
    pub delay: Mutex<Option<std::time::Duration>>,
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl Rechecks for RecordedRechecks {
    async fn arm(&self, arm: &Arm) -> Result<(), PortError> {
        let delay = *self.delay.lock().unwrap();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        self.faults.check("SendMessage")?;
        self.armed.lock().unwrap().push(arm.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::operation::send_message::{SendMessageError, SendMessageOutput};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use chrono::{TimeZone, Utc};
    use failover_policy::recheck::Armed;

    fn arm() -> Arm {
        let due = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 30).unwrap();
        Arm {
            site: "orders".into(),
            armed: Armed { due, at: due },
            delay_secs: 18,
        }
    }

    #[tokio::test]
    async fn send_message_carries_the_body_and_the_delay() {
        let ok = mock!(aws_sdk_sqs::Client::send_message)
            .match_requests(|r| {
                r.delay_seconds() == Some(18)
                    && r.queue_url() == Some("https://sqs.us-west-2.amazonaws.com/123456789012/q")
                    && r.message_body()
                        .is_some_and(|b| b.contains("\"site\":\"orders\""))
            })
            .then_output(|| SendMessageOutput::builder().message_id("m-1").build());
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&ok]);
        let r =
            SqsRechecks::from_client(client, "https://sqs.us-west-2.amazonaws.com/123456789012/q");
        r.arm(&arm()).await.unwrap();
        assert_eq!(ok.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_refused_send_is_a_port_error_naming_the_operation() {
        let denied = mock!(aws_sdk_sqs::Client::send_message).then_error(|| {
            SendMessageError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not allowed")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&denied]);
        let e = SqsRechecks::from_client(client, "q")
            .arm(&arm())
            .await
            .unwrap_err();
        assert_eq!(e.operation, "SendMessage");
    }
}
