//! The answer the evaluator gives, with its explanation.
//!
//! A verdict is never a bare yes/no: it lists every guard that was evaluated — passed, failed,
//! unknown or not applicable — with the numbers it compared, so the person paged at 3 a.m. (and
//! `cargo lambda invoke`) can see *why* the system did or did not fail over.

use serde::{Deserialize, Serialize};

use crate::config::DbRef;
use crate::incident::Phase;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guard {
    EventAge,
    Allowlist,
    Duplicate,
    InFlight,
    ManagedFailover,
    Quorum,
    Sustained,
    Pause,
    MaintenanceWindow,
    Cooldown,
    DeliberateStop,
    Candidate,
    Rpo,
    Approval,
    Shadow,
    Command,
    /// A manual failover of a primary that still answers.
    PrimaryAlive,
    /// An in-flight phase past its deadline.
    Deadline,
    /// The promoter's check that the decision is younger than `max_decision_age_secs`.
    DecisionAge,
    /// The promoter's fresh re-read of the primary (RDS status, SQL canary) before asking RDS.
    PrimaryStillDown,
    /// One step of the old primary's fence (see `crate::fence`).
    Fence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuardResult {
    Pass,
    Fail,
    /// Not enough evidence to say either way (e.g. quorum with unknown voters).
    Unknown,
    NotApplicable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardCheck {
    pub guard: Guard,
    pub result: GuardResult,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub observed: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub limit: Option<f64>,
}

impl GuardCheck {
    pub fn new(guard: Guard, result: GuardResult, detail: impl Into<String>) -> Self {
        Self {
            guard,
            result,
            detail: detail.into(),
            observed: None,
            limit: None,
        }
    }
    pub fn numbers(mut self, observed: f64, limit: f64) -> Self {
        self.observed = Some(observed);
        self.limit = Some(limit);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IgnoreReason {
    Stale,
    FromTheFuture,
    ForeignAccount,
    ForeignRegion,
    WrongSource,
    UnknownResource,
    UnknownSite,
    Duplicate,
    Healthy,
    NotAnOutage,
    /// An RDS event without an event id: nothing can be concluded from it (recorded, no action).
    Unidentified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalReason {
    Paused,
    MaintenanceWindow,
    Cooldown,
    RpoExceeded,
    LagUnknown,
    NoHealthyCandidate,
    DeliberateStop,
    OverrideWithoutReason,
    NothingToApprove,
    StaleApproval,
    AlreadyInFlight,
    /// `complete` for a site whose failover is not pinned, or naming another epoch.
    NothingToComplete,
    /// An earlier epoch asked RDS for a promotion and failed before DNS was pinned: that
    /// candidate may be a writer now, so only a human may decide the next failover.
    UnresolvedPromotion,
    /// A manual failover while the primary answers, without `force`.
    PrimaryAlive,
    /// `abort` of an epoch that cannot be abandoned (RDS was asked, or nothing is in flight).
    NothingToAbort,
    /// The promoter found the decision older than `max_decision_age_secs`: aborted, not promoted.
    StaleDecision,
    /// `switchover`: the primary is not healthy and reachable (a switchover fences a live
    /// primary; an outage is a `failover`).
    PrimaryUnhealthy,
    /// `switchover`: a backup is running on the primary or the target.
    BackupRunning,
    /// `switchover`: the primary cannot be fenced by the tool (no own parameter group).
    NotFenceable,
    /// `switchover`: `max_wait_secs` outside its bounds.
    BadWait,
    /// `switchover` of an RDS read replica whose primary does not replicate by GTID (binlog
    /// coordinates only), or whose GTID mode could not be read: the catch-up wait is on GTIDs,
    /// so it is refused before anything is fenced.
    NoGtid,
    /// `switchover` / `failback` / a drill leg whose target's parameter group holds an explicit
    /// `read_only=1`: promoted, it would stay read-only (no writer), so it is refused before
    /// anything is fenced.
    TargetReadOnly,
    /// `approve` of a drill by the principal who requested it: a drill's approval is a second
    /// person's.
    SelfApproval,
    /// `switchover` of an RDS read replica: this version judges and records it, but does not yet
    /// carry out the capture of the fenced position and the target's catch-up wait, so it is
    /// refused before anything is fenced.
    NotCarriedOut,
    /// A switchover was rolled back before the promotion (the fence was refused, or the target
    /// had not applied the fenced position within `max_wait_secs`): the old primary is given
    /// writes back, DNS is untouched.
    SwitchoverRolledBack,
    /// `unpin` refused before any Route 53 call: nothing recorded, an incident in flight, or the
    /// recorded set would not name the writer (see `crate::unpin::Refused`).
    NothingToUnpin,
    /// `reprotect` refused before any RDS call: no `reprotect` section, an incident in flight,
    /// one already in flight, or the ledger's primary already protected (see
    /// `crate::reprotect::Refused`).
    NotReprotectable,
    /// `failback` refused before anything is fenced: the site is not failed over, an incident
    /// is open, or it is not re-protected in its original region (see
    /// `crate::failback::Refused`).
    NotFailbackable,
    /// `complete` while a `failback` switchover is in flight: the failback completes its epoch
    /// itself once its switchover is done (see `crate::failback::finish`); nothing is changed.
    FailbackInFlight,
    /// `drill` refused before any AWS call: paused, an incident or switchover open, a drill in
    /// flight, outside every maintenance window, shadow mode, or no way back configured (see
    /// `crate::drill::Refused`).
    NotDrillable,
}

/// What the evaluator concluded. Only `FailoverDecided` leads to a mutation of a database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    Ignore {
        reason: IgnoreReason,
    },
    /// Nothing to do now, but something is worth watching (in flight, RDS failing over itself, recovering).
    Watch,
    Suspected,
    FailoverDecided {
        candidate: DbRef,
    },
    AwaitingApproval {
        candidate: DbRef,
    },
    Refused {
        reason: RefusalReason,
    },
    ShadowWouldFailOver {
        candidate: DbRef,
    },
    /// Operator commands that change no incident.
    Paused,
    Resumed,
    Status,
    /// An operator closed a pinned failover (`complete`): automation watches the site again.
    Completed,
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ignore { .. } => "ignore",
            Outcome::Watch => "watch",
            Outcome::Suspected => "suspected",
            Outcome::FailoverDecided { .. } => "failover-decided",
            Outcome::AwaitingApproval { .. } => "awaiting-approval",
            Outcome::Refused { .. } => "refused",
            Outcome::ShadowWouldFailOver { .. } => "shadow-would-fail-over",
            Outcome::Paused => "paused",
            Outcome::Resumed => "resumed",
            Outcome::Status => "status",
            Outcome::Completed => "completed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub site: Option<String>,
    pub outcome: Outcome,
    /// The incident epoch this verdict belongs to (0 = none yet).
    pub epoch: u64,
    /// The site's phase after this verdict.
    pub phase: Phase,
    pub summary: String,
    pub guards: Vec<GuardCheck>,
}

impl Verdict {
    pub fn failed_guards(&self) -> impl Iterator<Item = &GuardCheck> {
        self.guards.iter().filter(|g| g.result == GuardResult::Fail)
    }
}
