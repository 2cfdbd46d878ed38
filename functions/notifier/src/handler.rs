//! The notifier's handler: parse → check against the ledger → compose → claim → publish → mark
//! sent.
//!
//! **Check** first: the event's site, epoch and phase must agree with the site's ledger record
//! ([`failover_policy::provenance`]). Anyone who may put events on the bus can send a well-formed
//! domain event; one the ledger never recorded is ignored (logged, `outcome: ignored`) before it
//! claims a dedupe key, so it can neither page people with the sender's text nor use up the key
//! of the real page.
//!
//! Exactly one message per (site, epoch, event type), under at-least-once delivery:
//! - **claim** the message's key with a conditional write in the ledger table
//!   (`NOTIFIED#{epoch:012}#{detail-type}`). A key already *sent* is a duplicate: nothing is
//!   published. A key *held* by a live claim means another invocation is publishing it right now:
//!   this one fails `Retryable.InFlight`, and its retry finds it sent (or the claim abandoned);
//! - **publish** to SNS;
//! - **mark sent** (conditional on still holding the claim).
//!
//! Why claim-then-publish and not publish-then-record: recording first is what stops a second
//! page, but a bare "recorded" flag written before publishing would lose the page if the publish
//! then failed or the invocation died. So the record is a *claim* with a lease, and it only
//! becomes final (`sent`) after SNS accepted the message:
//! - the publish fails → the claim is released and the invocation fails (Retryable for throttling
//!   and 5xx, Fatal for a missing topic or IAM), so EventBridge's retry can publish at once;
//! - the invocation dies after claiming → the claim expires after [`CLAIM_LEASE`] and the Lambda
//!   retry of the same event takes it over and publishes;
//! - it dies after SNS accepted but before `sent` is written → the retry publishes again: the one
//!   case that pages twice. A duplicate page is acceptable; a lost one is not.

use std::sync::Arc;

use failover_adapters::notify::{Claim, NotificationLog, Notifications};
use failover_adapters::ports::{Clock, LedgerRead, PortError};
use failover_policy::notice::{compose, parse_domain_event};
use failover_policy::provenance;
use lambda_runtime::Diagnostic;
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

/// Longer than the function's timeout (30 s), so a live invocation's claim is never taken over,
/// and shorter than Lambda's first async retry (about a minute), so the retry of a crashed
/// invocation finds the claim expired and publishes.
pub const CLAIM_LEASE: chrono::Duration = chrono::Duration::seconds(45);

/// Everything the handler talks to, built once at cold start.
pub struct Deps {
    /// Read only: the site's record, to check an event against (`GetItem` on its `STATE` item).
    pub ledger: Arc<dyn LedgerRead>,
    pub log: Arc<dyn NotificationLog>,
    pub channel: Arc<dyn Notifications>,
    pub clock: Arc<dyn Clock>,
    /// A fresh, unguessable claim token per invocation.
    pub token: Arc<dyn Fn() -> String + Send + Sync>,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("bad input: {0}")]
    BadInput(String),
    #[error("{key}: {source}")]
    Port { key: String, source: PortError },
    #[error(
        "{key}: another invocation is publishing this message (claimed {claimed_at}); retry later"
    )]
    InFlight { key: String, claimed_at: String },
}

impl NotifyError {
    fn error_type(&self) -> String {
        match self {
            NotifyError::BadInput(_) => "BadInput".into(),
            NotifyError::Port { source, .. } if source.kind.is_retryable() => {
                format!("Retryable.{:?}", source.kind)
            }
            NotifyError::Port { source, .. } => format!("Fatal.{:?}", source.kind),
            NotifyError::InFlight { .. } => "Retryable.InFlight".into(),
        }
    }
}

impl From<NotifyError> for Diagnostic {
    fn from(e: NotifyError) -> Self {
        Diagnostic {
            error_type: e.error_type(),
            error_message: e.to_string(),
        }
    }
}

/// What `cargo lambda invoke` prints.
#[derive(Debug, Serialize)]
pub struct Response {
    /// `site#NOTIFIED#...`: the message's dedupe key.
    pub key: String,
    /// `sent`, `duplicate`, or `ignored` (the event disagrees with the ledger).
    pub outcome: &'static str,
    pub subject: String,
    pub message_id: Option<String>,
    /// Why an `ignored` event was not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

pub async fn handle(deps: &Deps, payload: Value) -> Result<Response, NotifyError> {
    let event = parse_domain_event(&payload)
        .map_err(NotifyError::BadInput)
        .inspect_err(|e| warn!(error = %e, "rejected input"))?;
    let now = deps.clock.now();
    let notice = compose(&event, now);
    let key = format!("{}#{}", notice.key.site, notice.key.sort_key());
    let port = |source: PortError| NotifyError::Port {
        key: key.clone(),
        source,
    };
    let record = deps.ledger.read(&event.site).await.map_err(port)?;
    if let Err(why) = provenance::check(&event, &record) {
        warn!(%key, reason = %why, "domain event disagrees with the ledger: ignored, nothing claimed");
        return Ok(Response {
            key,
            outcome: "ignored",
            subject: notice.subject,
            message_id: None,
            reason: Some(why.to_string()),
        });
    }
    // One log line per event that agrees with the ledger, with its phase: the template's metric
    // filter counts these (a forgery is not counted as an incident phase).
    info!(
        site = %event.site,
        epoch = event.epoch,
        phase = %event.phase,
        event_type = event.event_type.detail_type(),
        "domain event"
    );
    let token = (deps.token)();
    match deps
        .log
        .claim(&notice.key, &token, now, CLAIM_LEASE)
        .await
        .map_err(port)?
    {
        Claim::Granted => {}
        Claim::AlreadySent { message_id, .. } => {
            info!(%key, "duplicate delivery: already notified");
            return Ok(Response {
                key,
                outcome: "duplicate",
                subject: notice.subject,
                message_id,
                reason: None,
            });
        }
        Claim::Held { claimed_at } => {
            return Err(NotifyError::InFlight {
                key: key.clone(),
                claimed_at: claimed_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "just now".into()),
            })
        }
    }
    let message_id = match deps.channel.publish(&notice).await {
        Ok(id) => id,
        Err(e) => {
            // Give the claim back so the retry can publish without waiting out the lease. If even
            // that fails, the lease expires on its own: the page is late, never lost.
            if let Err(r) = deps.log.release(&notice.key, &token).await {
                warn!(%key, error = %r, "could not release the claim; it expires after the lease");
            }
            error!(%key, error = %e, "SNS publish failed; claim released");
            return Err(port(e));
        }
    };
    if let Err(e) = deps
        .log
        .mark_sent(&notice.key, &token, &message_id, deps.clock.now())
        .await
    {
        // The page went out; only its record did not. Failing now would page again on retry.
        warn!(%key, %message_id, error = %e, "published, but could not mark the claim sent");
    }
    info!(%key, %message_id, subject = %notice.subject, "notified");
    Ok(Response {
        key,
        outcome: "sent",
        subject: notice.subject,
        message_id: Some(message_id),
        reason: None,
    })
}

#[cfg(test)]
mod tests;
