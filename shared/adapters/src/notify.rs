//! Telling people: the SNS topic ([`Notifications`]) and the claim log that makes each fact page
//! once ([`NotificationLog`]).
//!
//! EventBridge delivers at least once and Lambda retries failed invocations, so "publish on every
//! delivery" pages twice and "remember, then publish" can lose a page. The notifier therefore
//! *claims* the message's key with a conditional write, publishes, then records it *sent*:
//! - a claim is a lease (`claimed_at` + lease): if the claimer dies between claim and publish, a
//!   later delivery finds the lease expired and takes the claim over — a crash never swallows a
//!   page;
//! - a publish that fails *releases* the claim (only if still ours) and the invocation fails, so
//!   the retry can publish at once;
//! - `sent` is final: every later delivery of the same fact is a duplicate and publishes nothing.
//!
//! The one remaining window — SNS accepted the message and the invocation died before `sent` was
//! written — can page twice after the lease. A duplicate page is the price of never losing one.
//!
//! Claims live in the ledger table beside the site's `STATE` item: `pk = site`,
//! `sk = NOTIFIED#{epoch:012}#{detail-type}`, expiring with the audit items (`expires_at`).
// Imports and helpers that only the fakes below use are unused when they are compiled out.
#![cfg_attr(
    not(any(test, feature = "test-util")),
    allow(unused_imports, dead_code)
)]

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use failover_policy::notice::{Notice, NoticeKey};

use crate::aws::{port_error, AwsClients, AUDIT_RETENTION};
#[cfg(any(test, feature = "test-util"))]
use crate::fakes::Faults;
use crate::ports::{ErrorKind, PortError};

/// The notification channel (an SNS topic fanning out to email, chat and paging).
#[async_trait]
pub trait Notifications: Send + Sync {
    /// Publishes one message; returns the channel's message id.
    async fn publish(&self, notice: &Notice) -> Result<String, PortError>;
}

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller now holds the claim and must publish, then [`NotificationLog::mark_sent`] or
    /// [`NotificationLog::release`].
    Granted,
    /// Already published: a duplicate delivery.
    AlreadySent {
        sent_at: Option<String>,
        message_id: Option<String>,
    },
    /// Another invocation holds a live claim (it is publishing right now, or died less than a
    /// lease ago): try again later.
    Held { claimed_at: Option<DateTime<Utc>> },
}

/// The claim log: one item per notification key, written only conditionally.
#[async_trait]
pub trait NotificationLog: Send + Sync {
    /// Claims `key` with `token` unless it is sent or held by a claim younger than `lease`.
    async fn claim(
        &self,
        key: &NoticeKey,
        token: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Claim, PortError>;
    /// Marks the claim held with `token` as sent (final). `Conflict` if the claim is not ours.
    async fn mark_sent(
        &self,
        key: &NoticeKey,
        token: &str,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PortError>;
    /// Drops the claim held with `token` so a retry can publish; a no-op if it is not ours.
    async fn release(&self, key: &NoticeKey, token: &str) -> Result<(), PortError>;
}

// ---------------------------------------------------------------- SNS

/// [`Notifications`] over SNS Publish to one topic.
pub struct SnsNotifications {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsNotifications {
    pub fn new(clients: &AwsClients, topic_arn: &str) -> Self {
        Self::from_client(clients.sns(), topic_arn)
    }

    pub fn from_client(client: aws_sdk_sns::Client, topic_arn: &str) -> Self {
        Self {
            client,
            topic_arn: topic_arn.to_owned(),
        }
    }
}

/// SNS's own error codes that the cross-service table does not know.
fn sns_kind(code: Option<&str>) -> Option<ErrorKind> {
    Some(match code? {
        "AuthorizationError" | "KMSAccessDenied" | "InvalidSecurity" => ErrorKind::AccessDenied,
        "Throttled" | "KMSThrottling" => ErrorKind::Throttled,
        "KMSDisabled" | "KMSInvalidState" | "KMSOptInRequired" => ErrorKind::InvalidState,
        _ => return None,
    })
}

fn with_kind<E>(
    operation: &'static str,
    err: &SdkError<E, HttpResponse>,
    extra: fn(Option<&str>) -> Option<ErrorKind>,
) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut e = port_error(operation, err);
    if let Some(kind) = extra(err.code()) {
        e.kind = kind;
    }
    e
}

#[async_trait]
impl Notifications for SnsNotifications {
    async fn publish(&self, notice: &Notice) -> Result<String, PortError> {
        const OP: &str = "Publish";
        let mut req = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&notice.subject)
            .message(&notice.body);
        for (name, value) in &notice.attributes {
            let v = MessageAttributeValue::builder()
                .data_type(value.data_type())
                .string_value(value.value())
                .build()
                .map_err(|e| PortError::new(ErrorKind::Other, OP, e.to_string()))?;
            req = req.message_attributes(name, v);
        }
        let out = req.send().await.map_err(|e| with_kind(OP, &e, sns_kind))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}

// ---------------------------------------------------------------- DynamoDB claim log

/// [`NotificationLog`] in the ledger table.
pub struct DynamoNotificationLog {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoNotificationLog {
    pub fn new(clients: &AwsClients, table: &str) -> Self {
        Self::from_client(clients.dynamodb().clone(), table)
    }

    pub fn from_client(client: aws_sdk_dynamodb::Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
        }
    }
}

const CLAIMED: &str = "claimed";
const SENT: &str = "sent";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// What an existing claim item says.
fn claim_of(item: &HashMap<String, AttributeValue>) -> Claim {
    let get_s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    if get_s("status").as_deref() == Some(SENT) {
        return Claim::AlreadySent {
            sent_at: get_s("sent_at"),
            message_id: get_s("message_id"),
        };
    }
    let claimed_at = item
        .get("claimed_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(|t| DateTime::from_timestamp(t, 0));
    Claim::Held { claimed_at }
}

impl DynamoNotificationLog {
    fn key(&self, key: &NoticeKey) -> [(String, AttributeValue); 2] {
        [
            ("pk".to_owned(), s(&key.site)),
            ("sk".to_owned(), s(key.sort_key())),
        ]
    }

    /// Reads the claim item when a conditional write lost without returning it (some emulators).
    async fn current(&self, key: &NoticeKey) -> Result<Claim, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key).into_iter().collect()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("GetItem", &e))?;
        Ok(match out.item() {
            Some(item) => claim_of(item),
            // Released between our write and this read: someone is retrying; so will we.
            None => Claim::Held { claimed_at: None },
        })
    }
}

#[async_trait]
impl NotificationLog for DynamoNotificationLog {
    async fn claim(
        &self,
        key: &NoticeKey,
        token: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Claim, PortError> {
        const OP: &str = "PutItem";
        let mut item: HashMap<String, AttributeValue> = self.key(key).into_iter().collect();
        item.extend([
            ("status".to_owned(), s(CLAIMED)),
            ("claim_token".to_owned(), s(token)),
            ("claimed_at".to_owned(), n(now.timestamp())),
            ("epoch".to_owned(), n(key.epoch)),
            ("event_type".to_owned(), s(&key.detail_type)),
            (
                "expires_at".to_owned(),
                n((now + AUDIT_RETENTION).timestamp()),
            ),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR (#st = :claimed AND claimed_at < :stale)",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":claimed", s(CLAIMED))
            .expression_attribute_values(":stale", n((now - lease).timestamp()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Granted),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(c)) => match c.item() {
                    Some(item) => Ok(claim_of(item)),
                    None => self.current(key).await,
                },
                _ => Err(port_error(OP, &e)),
            },
        }
    }

    async fn mark_sent(
        &self,
        key: &NoticeKey,
        token: &str,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key).into_iter().collect()))
            .update_expression("SET #st = :sent, sent_at = :at, message_id = :mid")
            .condition_expression("claim_token = :token")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":sent", s(SENT))
            .expression_attribute_values(":at", s(now.to_rfc3339()))
            .expression_attribute_values(":mid", s(message_id))
            .expression_attribute_values(":token", s(token))
            .send()
            .await
            .map_err(|e| port_error("UpdateItem", &e))?;
        Ok(())
    }

    async fn release(&self, key: &NoticeKey, token: &str) -> Result<(), PortError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key).into_iter().collect()))
            .condition_expression("claim_token = :token AND #st = :claimed")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":claimed", s(CLAIMED))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Not ours any more (taken over after the lease, or already sent): nothing to release.
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(port_error("DeleteItem", &e)),
        }
    }
}

// ---------------------------------------------------------------- fakes

#[cfg(any(test, feature = "test-util"))]
/// An SNS topic in memory: records what was published, fails on demand.
#[derive(Default)]
pub struct FakeNotifications {
    pub published: Mutex<Vec<Notice>>,
    pub faults: Faults,
}

#[cfg(any(test, feature = "test-util"))]
impl FakeNotifications {
    pub fn count(&self) -> usize {
        self.published.lock().unwrap().len()
    }
    pub fn subjects(&self) -> Vec<String> {
        self.published
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.subject.clone())
            .collect()
    }
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl Notifications for FakeNotifications {
    async fn publish(&self, notice: &Notice) -> Result<String, PortError> {
        self.faults.check("Publish")?;
        let mut p = self.published.lock().unwrap();
        p.push(notice.clone());
        Ok(format!("msg-{}", p.len()))
    }
}

#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeClaim {
    pub status: &'static str,
    pub token: String,
    pub claimed_at: DateTime<Utc>,
    pub message_id: Option<String>,
}

#[cfg(any(test, feature = "test-util"))]
/// The claim log with DynamoDB's conditional-write semantics, keyed like the real table.
#[derive(Default)]
pub struct FakeNotificationLog {
    pub items: Mutex<HashMap<(String, String), FakeClaim>>,
    pub faults: Faults,
}

#[cfg(any(test, feature = "test-util"))]
impl FakeNotificationLog {
    pub fn get(&self, key: &NoticeKey) -> Option<FakeClaim> {
        self.items
            .lock()
            .unwrap()
            .get(&(key.site.clone(), key.sort_key()))
            .cloned()
    }
}

fn conflict(op: &'static str) -> PortError {
    PortError::new(
        ErrorKind::Conflict,
        op,
        "ConditionalCheckFailedException: The conditional request failed",
    )
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl NotificationLog for FakeNotificationLog {
    async fn claim(
        &self,
        key: &NoticeKey,
        token: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Claim, PortError> {
        self.faults.check("PutItem")?;
        let mut items = self.items.lock().unwrap();
        let k = (key.site.clone(), key.sort_key());
        match items.get(&k) {
            Some(c) if c.status == SENT => {
                return Ok(Claim::AlreadySent {
                    sent_at: None,
                    message_id: c.message_id.clone(),
                })
            }
            // The condition compares whole seconds, like the real item's `claimed_at`.
            Some(c) if c.claimed_at.timestamp() >= (now - lease).timestamp() => {
                return Ok(Claim::Held {
                    claimed_at: Some(c.claimed_at),
                })
            }
            _ => {}
        }
        items.insert(
            k,
            FakeClaim {
                status: CLAIMED,
                token: token.to_owned(),
                claimed_at: now,
                message_id: None,
            },
        );
        Ok(Claim::Granted)
    }

    async fn mark_sent(
        &self,
        key: &NoticeKey,
        token: &str,
        message_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        self.faults.check("UpdateItem")?;
        let mut items = self.items.lock().unwrap();
        match items.get_mut(&(key.site.clone(), key.sort_key())) {
            Some(c) if c.token == token => {
                c.status = SENT;
                c.message_id = Some(message_id.to_owned());
                Ok(())
            }
            _ => Err(conflict("UpdateItem")),
        }
    }

    async fn release(&self, key: &NoticeKey, token: &str) -> Result<(), PortError> {
        self.faults.check("DeleteItem")?;
        let mut items = self.items.lock().unwrap();
        let k = (key.site.clone(), key.sort_key());
        if items
            .get(&k)
            .is_some_and(|c| c.token == token && c.status == CLAIMED)
        {
            items.remove(&k);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn key() -> NoticeKey {
        NoticeKey {
            site: "orders".into(),
            epoch: 3,
            detail_type: "DnsPinned".into(),
            discriminator: None,
        }
    }

    #[tokio::test]
    async fn a_claim_is_exclusive_until_released_sent_or_expired() {
        let log = FakeNotificationLog::default();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap();
        let lease = chrono::Duration::seconds(45);
        assert_eq!(
            log.claim(&key(), "a", t0, lease).await.unwrap(),
            Claim::Granted
        );
        assert!(matches!(
            log.claim(&key(), "b", t0 + chrono::Duration::seconds(10), lease)
                .await
                .unwrap(),
            Claim::Held { .. }
        ));
        // Release by a stranger does nothing; by the holder frees the key.
        log.release(&key(), "b").await.unwrap();
        assert_eq!(log.get(&key()).unwrap().token, "a");
        log.release(&key(), "a").await.unwrap();
        assert_eq!(
            log.claim(&key(), "b", t0, lease).await.unwrap(),
            Claim::Granted
        );
        // A crashed holder's claim is taken over after the lease.
        let later = t0 + chrono::Duration::seconds(46);
        assert_eq!(
            log.claim(&key(), "c", later, lease).await.unwrap(),
            Claim::Granted
        );
        assert_eq!(
            log.mark_sent(&key(), "b", "m", later)
                .await
                .unwrap_err()
                .kind,
            ErrorKind::Conflict,
            "the old holder lost it"
        );
        log.mark_sent(&key(), "c", "m1", later).await.unwrap();
        // Sent is final, whatever the lease.
        let much_later = later + chrono::Duration::hours(5);
        assert!(matches!(
            log.claim(&key(), "d", much_later, lease).await.unwrap(),
            Claim::AlreadySent { message_id: Some(m), .. } if m == "m1"
        ));
    }
}
