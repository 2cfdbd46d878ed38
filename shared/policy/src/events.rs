//! Domain events: how one function tells the next (and the notifier) what happened.
//!
//! Each event is put on the project's EventBridge bus with source [`EVENT_SOURCE`] and the
//! detail-type named by [`EventType`]; rules in `infra/` route them. The detail always carries the
//! site, the epoch (the fencing token the next step must present) and the verdict that caused it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::DbRef;
use crate::incident::{Phase, RpoOverride, TimelineEntry};
use crate::verdict::Verdict;

pub const EVENT_SOURCE: &str = "rds-failover";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    IncidentSuspected,
    FailoverDecided,
    ApprovalRequested,
    FailoverRefused,
    ShadowFailover,
    IncidentCleared,
    AutomationPaused,
    AutomationResumed,
    /// The replica-promoter ran low on Lambda time while RDS was still promoting: it hands the
    /// watch on to its next invocation (same epoch; it never re-issues the RDS mutation).
    PromotionContinued,
    /// The epoch was aborted with no RDS mutation, and people are told why: the promoter's
    /// re-check found the decision older than `thresholds.max_decision_age_secs` or the primary
    /// alive again, or a human sent `abort`.
    FailoverAborted,
    ReplicaPromoted,
    /// The dns-pinner ran low on Lambda time before Route 53 answered or showed the change
    /// `INSYNC`: it hands the pin on to its next invocation (same epoch, same change id), until
    /// `thresholds.pin_deadline_secs` after the promotion.
    DnsPinContinued,
    /// The pin has been waiting past an escalation step (5 min, 15 min): people are paged with
    /// how long and why; the pinner keeps going.
    DnsPinDelayed,
    DnsPinned,
    FailoverCompleted,
    FailoverFailed,
    /// An in-flight phase passed its deadline: a human must act (the message names the step).
    PhaseOverdue,
    /// A voter is not telling the truth about the primary, once per episode: the canary is
    /// answered with an error (it needs fixing), a voter went dark, or the DR side lost sight of a
    /// primary another vantage still reaches. Decides nothing by itself.
    EvidenceWarning,
    /// The old primary's fence changed state (a step observed, refused, or first planned).
    FenceChanged,
    /// The old primary answers and is writable while the site is failed over: split-brain risk.
    OldPrimaryWritable,
    /// What the old primary holds that the new primary never received, measured.
    DivergenceMeasured,
    /// An operator's `unpin` was accepted: the dns-pinner restores the recorded record set.
    UnpinRequested,
    /// The dns-pinner handed an unpin on to itself: a `data-plane-switch` site's alarm has not
    /// followed the switch set back yet, the records stay pinned meanwhile.
    UnpinContinued,
    /// The writer name holds the record set recorded before the pin again (`INSYNC`).
    DnsUnpinned,
    /// The dns-pinner could not restore it (the name is not what the pin left, or Route 53
    /// refused the batch): nothing was overwritten, a human decides.
    UnpinFailed,
    /// A re-protection changed state (requested, waiting for a dark region, backups turned on,
    /// created, protected, failed): one per change, never one per tick.
    ReprotectChanged,
}

impl EventType {
    /// The EventBridge `detail-type`.
    pub fn detail_type(self) -> &'static str {
        match self {
            EventType::IncidentSuspected => "IncidentSuspected",
            EventType::FailoverDecided => "FailoverDecided",
            EventType::ApprovalRequested => "ApprovalRequested",
            EventType::FailoverRefused => "FailoverRefused",
            EventType::ShadowFailover => "ShadowFailover",
            EventType::IncidentCleared => "IncidentCleared",
            EventType::AutomationPaused => "AutomationPaused",
            EventType::AutomationResumed => "AutomationResumed",
            EventType::PromotionContinued => "PromotionContinued",
            EventType::FailoverAborted => "FailoverAborted",
            EventType::ReplicaPromoted => "ReplicaPromoted",
            EventType::DnsPinContinued => "DnsPinContinued",
            EventType::DnsPinDelayed => "DnsPinDelayed",
            EventType::DnsPinned => "DnsPinned",
            EventType::FailoverCompleted => "FailoverCompleted",
            EventType::FailoverFailed => "FailoverFailed",
            EventType::PhaseOverdue => "PhaseOverdue",
            EventType::EvidenceWarning => "EvidenceWarning",
            EventType::FenceChanged => "FenceChanged",
            EventType::OldPrimaryWritable => "OldPrimaryWritable",
            EventType::DivergenceMeasured => "DivergenceMeasured",
            EventType::UnpinRequested => "UnpinRequested",
            EventType::UnpinContinued => "UnpinContinued",
            EventType::DnsUnpinned => "DnsUnpinned",
            EventType::UnpinFailed => "UnpinFailed",
            EventType::ReprotectChanged => "ReprotectChanged",
        }
    }

    pub fn severity(self) -> &'static str {
        match self {
            EventType::FailoverDecided
            | EventType::PhaseOverdue
            | EventType::FailoverFailed
            | EventType::FailoverRefused
            | EventType::ApprovalRequested
            | EventType::DnsPinDelayed
            | EventType::OldPrimaryWritable
            | EventType::DivergenceMeasured
            | EventType::UnpinFailed => "critical",
            EventType::IncidentSuspected
            | EventType::FailoverAborted
            | EventType::ReplicaPromoted
            | EventType::DnsPinned
            | EventType::AutomationPaused
            | EventType::EvidenceWarning
            | EventType::FenceChanged
            | EventType::DnsUnpinned
            | EventType::ReprotectChanged => "warning",
            _ => "info",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainEvent {
    pub event_type: EventType,
    pub site: String,
    pub epoch: u64,
    pub phase: Phase,
    pub engine: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub primary: Option<DbRef>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub candidate: Option<DbRef>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rpo_override: Option<RpoOverride>,
    pub verdict: Verdict,
    pub timeline: Vec<TimelineEntry>,
}

impl DomainEvent {
    /// Idempotency key downstream: one (site, epoch, type) is one fact, however often delivered.
    pub fn dedupe_key(&self) -> String {
        format!(
            "{}#{}#{}",
            self.site,
            self.epoch,
            self.event_type.detail_type()
        )
    }
}
