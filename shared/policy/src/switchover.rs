//! A planned switchover (RPO 0): the state machine, its preconditions and its rollback rule, with
//! no I/O.
//!
//! A switchover is an epoch like a failover — fenced by the epoch, recorded in the ledger before
//! each dangerous step, resumable after a crash, deduplicated — but the old primary is healthy, so
//! the order is the reverse of a failover's: it is made read-only *first*, and the target is
//! promoted only once it has applied every transaction the old primary committed.
//!
//! For an RDS read replica ([`Engine::RdsReplica`]):
//!
//! ```text
//!   Fencing ──fenced──▶ Capturing ──position──▶ CatchingUp ──applied == captured──▶ Promoting
//!      │                    │                        │                                │
//!      └──── max_wait passed, or a step refused ─────┘                                │ requested
//!                           ▼                                                         ▼
//!                      RollingBack ──old primary writable──▶ RolledBack     VerifyingWrites
//!                                                                                     │ writable
//!                                                                                     ▼
//!                                                                      MovingDns ──▶ Done
//! ```
//!
//! - **Fencing**: `read_only=1` in the old primary's own parameter group, observed in the API and
//!   over SQL, application sessions ended (the fence steps of [`crate::fence`]).
//! - **Capturing**: the old primary's executed position, read once it is read-only. RDS's own
//!   heartbeat writes (`rdsadmin`, which `read_only` does not bind) keep moving the live position,
//!   so the target is compared with this captured one, never with the live one.
//! - **CatchingUp**: wait until the target has applied exactly that (`MASTER_GTID_WAIT`,
//!   `WAIT_FOR_EXECUTED_GTID_SET`, or binlog coordinates), judged by [`caught_up`].
//! - **Promoting** → **VerifyingWrites** → **MovingDns** → **Done**: as a failover.
//!
//! **The rollback rule** ([`may_roll_back`]): before the promotion is requested, any timeout
//! (`max_wait_secs` from the start of the fence) or refused step rolls back — the old primary is
//! given writes again, DNS is untouched, one message says so. Once the promotion is requested the
//! target may be a writer, so the old primary is never made writable again by this tool: the
//! switchover only rolls forward, and a failure there is a failed epoch for a human (two writers
//! are worse than none).
//!
//! Aurora and Multi-AZ sites have no fence/capture/wait of ours: `FailoverDBCluster` with a
//! target, `SwitchoverGlobalCluster` (which itself waits for the secondary to be fully synced)
//! and `RebootDBInstance --force-failover` demote the old writer themselves. Their switchover
//! starts at **Promoting**, through the same command, phases and messages.
//!
//! Everything the handler does next is [`next_action`] of the record alone, so a crash between
//! any two steps resumes from the ledger: the recorded phase says what was observed last.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{DbRef, Engine, SiteConfig};
use crate::gtid::{lost, Position};
use crate::incident::SiteState;
use crate::verdict::{Guard, GuardCheck, GuardResult, RefusalReason};

/// Whether the functions carry out an RDS read replica's switchover: the evaluator's tick drives
/// it (the fence, the capture of the fenced position, the target's catch-up wait and the
/// rollback's `read_only=0`: `alarm-evaluator`'s `switchover` module over [`drive`]), and the
/// promoter holds any promotion a switchover record has not released ([`holds_promotion`]).
pub const CARRIED_OUT_FOR_RDS_REPLICA: bool = true;

/// How long a switchover waits for the fence and the target's catch-up when the command does
/// not say (`max_wait_secs`).
pub const DEFAULT_MAX_WAIT_SECS: u64 = 180;
/// The longest wait a command may ask for: writes are refused for all of it. Below the
/// promoter's pre-check deadline ([`crate::promote::PREFLIGHT_DEADLINE_MINUTES`], 10 minutes),
/// so the switchover's own rollback, not the promoter's give-up, ends a wait that ran out.
pub const MAX_WAIT_LIMIT_SECS: u64 = 540;
/// The target's replica lag, at the command, above which a switchover is refused (a target far
/// behind would keep the site read-only for as long as it takes to catch up).
pub const MAX_START_LAG_SECS: f64 = 5.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwPhase {
    Fencing,
    Capturing,
    CatchingUp,
    Promoting,
    VerifyingWrites,
    MovingDns,
    Done,
    RollingBack,
    RolledBack,
}

impl SwPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            SwPhase::Fencing => "fencing",
            SwPhase::Capturing => "capturing",
            SwPhase::CatchingUp => "catching-up",
            SwPhase::Promoting => "promoting",
            SwPhase::VerifyingWrites => "verifying-writes",
            SwPhase::MovingDns => "moving-dns",
            SwPhase::Done => "done",
            SwPhase::RollingBack => "rolling-back",
            SwPhase::RolledBack => "rolled-back",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, SwPhase::Done | SwPhase::RolledBack)
    }

    /// Before the promotion is asked of AWS: the old primary is still the only possible writer.
    pub fn before_promotion(self) -> bool {
        matches!(
            self,
            SwPhase::Fencing | SwPhase::Capturing | SwPhase::CatchingUp
        )
    }
}

impl std::fmt::Display for SwPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `switchover` (or `drill`) command, as the evaluator parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub target: DbRef,
    pub by: String,
    pub reason: String,
    pub max_wait_secs: Option<u64>,
    pub drill: bool,
}

/// What the evaluator sees at the command, for the preconditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// RDS says the primary is `available`.
    pub primary_available: bool,
    /// The SQL canary reached the primary (and it is writable).
    pub primary_reachable: bool,
    /// The target's RDS status.
    pub target_status: Option<String>,
    /// The topology shows the target replicating from the primary (read replica source,
    /// cluster member, global secondary); `None` when unreadable.
    pub target_replicating: Option<bool>,
    /// The target's replica lag, seconds, when it could be read.
    pub target_lag_secs: Option<f64>,
    /// A backup is running on the primary or the target (RDS blocks promotion during one).
    pub backup_running: bool,
    /// The primary replicates by GTID (`None`: unread).
    pub primary_gtid: Option<bool>,
    /// A parameter group attached to the target that holds an explicit `read_only=1`: the
    /// target would stay read-only after its promotion (see [`crate::evidence::GroupReadOnly`]).
    pub target_read_only_group: Option<String>,
}

/// The preconditions failed: why, and every guard as it was judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub reason: RefusalReason,
    pub detail: String,
    pub guards: Vec<GuardCheck>,
}

/// Whether a `switchover` may start, judged and shown like a failover's verdict: every guard is
/// listed, passed or failed, with its numbers. Incidents in flight and duplicates are judged by
/// [`admit`] before this.
pub fn preconditions(
    site: &SiteConfig,
    st: &SiteState,
    req: &Request,
    seen: &Observed,
) -> Result<Vec<GuardCheck>, Refused> {
    let mut guards = vec![];
    let mut first: Option<(RefusalReason, String)> = None;
    let mut check = |guard, ok: bool, why: RefusalReason, detail: String| {
        let result = if ok {
            GuardResult::Pass
        } else {
            GuardResult::Fail
        };
        guards.push(GuardCheck::new(guard, result, detail.clone()));
        if !ok && first.is_none() {
            first = Some((why, detail));
        }
    };
    let paused = st.paused.as_ref();
    check(
        Guard::Pause,
        paused.is_none(),
        RefusalReason::Paused,
        match paused {
            Some(p) => format!("automation is paused by {}: {}", p.by, p.reason),
            None => "automation is not paused".into(),
        },
    );
    let named = crate::promote::is_configured_candidate(site, &req.target)
        || matches!(site.engine, Engine::MultiAz);
    check(
        Guard::Candidate,
        named,
        RefusalReason::NoHealthyCandidate,
        if named {
            format!("{} is a candidate of site {}", req.target, site.id)
        } else {
            format!(
                "{} is not a candidate of site {} (see `status` for the live topology)",
                req.target, site.id
            )
        },
    );
    let healthy = seen.primary_available && seen.primary_reachable;
    check(
        Guard::PrimaryAlive,
        healthy,
        RefusalReason::PrimaryUnhealthy,
        if healthy {
            format!(
                "the primary {} is available and answers over SQL",
                site.primary
            )
        } else {
            format!(
                "a switchover needs a healthy primary it can fence: {} is {} and {} over SQL (use `failover` for an outage)",
                site.primary,
                if seen.primary_available { "available" } else { "not available" },
                if seen.primary_reachable { "answers" } else { "does not answer" },
            )
        },
    );
    let status = seen.target_status.as_deref().unwrap_or("unreadable");
    let replicating = status == "available"
        && (matches!(site.engine, Engine::MultiAz) || seen.target_replicating == Some(true));
    let from = match seen.target_replicating {
        Some(true) => "replicates from",
        Some(false) => "does not replicate from",
        None => "cannot be seen replicating from",
    };
    check(
        Guard::Candidate,
        replicating,
        RefusalReason::NoHealthyCandidate,
        if matches!(site.engine, Engine::MultiAz) {
            format!("{} is {status} (its standby takes over)", req.target)
        } else {
            format!("{} is {status} and {from} {}", req.target, site.primary.id)
        },
    );
    if matches!(site.engine, Engine::RdsReplica) {
        let bound = MAX_START_LAG_SECS.min(site.thresholds.max_lag_secs as f64);
        let (lag_ok, lag_text) = match seen.target_lag_secs {
            Some(l) => (l <= bound, format!("{l} s")),
            None => (false, "unknown".to_string()),
        };
        let mut g = GuardCheck::new(
            Guard::Rpo,
            if lag_ok {
                GuardResult::Pass
            } else {
                GuardResult::Fail
            },
            format!(
                "{} lags {lag_text}; a switchover starts within {bound} s",
                req.target
            ),
        );
        if let Some(l) = seen.target_lag_secs {
            g = g.numbers(l, bound);
        }
        if !lag_ok && first.is_none() {
            let why = if seen.target_lag_secs.is_some() {
                RefusalReason::RpoExceeded
            } else {
                RefusalReason::LagUnknown
            };
            first = Some((why, g.detail.clone()));
        }
        guards.push(g);
    } else {
        guards.push(GuardCheck::new(
            Guard::Rpo,
            GuardResult::NotApplicable,
            format!(
                "{}: AWS synchronises the target itself before it switches the writer",
                site.engine.kind()
            ),
        ));
    }
    let mut check = |guard, ok: bool, why: RefusalReason, detail: String| {
        guards.push(GuardCheck::new(
            guard,
            if ok {
                GuardResult::Pass
            } else {
                GuardResult::Fail
            },
            detail.clone(),
        ));
        if !ok && first.is_none() {
            first = Some((why, detail));
        }
    };
    let backup = seen.backup_running
        || st.backups_running.contains(&req.target.id)
        || st.backups_running.contains(&site.primary.id);
    check(
        Guard::Candidate,
        !backup,
        RefusalReason::BackupRunning,
        if backup {
            "a backup is running on the primary or the target: RDS blocks promotion until it ends"
                .into()
        } else {
            "no backup running".into()
        },
    );
    if matches!(site.engine, Engine::RdsReplica) {
        let fenceable = site
            .fence
            .as_ref()
            .is_some_and(|f| f.parameter_group.is_some());
        check(
            Guard::Fence,
            fenceable,
            RefusalReason::NotFenceable,
            if fenceable {
                format!(
                    "{} can be fenced through its own parameter group",
                    site.primary
                )
            } else {
                format!(
                    "{} cannot be fenced by the tool (the site's `fence.parameter_group` is not set): a switchover without a fence would make two writers",
                    site.primary
                )
            },
        );
    }
    if matches!(site.engine, Engine::RdsReplica) {
        let (ok, detail) = match seen.primary_gtid {
            Some(true) => (true, format!("{} replicates by GTID: the target's catch-up is waited on GTIDs", site.primary)),
            Some(false) => (false, format!(
                "{} replicates by binlog coordinates only (GTIDs off): this version waits for the target on GTIDs, so a switchover is refused before anything is fenced (enable gtid_mode, or use `failover` with `force` for a hand-checked move)",
                site.primary
            )),
            None => (false, format!(
                "{}'s GTID mode could not be read over SQL: a switchover is refused before anything is fenced rather than guess",
                site.primary
            )),
        };
        check(Guard::Rpo, ok, RefusalReason::NoGtid, detail);
        let (ok, detail) = match &seen.target_read_only_group {
            Some(g) => (false, format!(
                "{}'s parameter group `{g}` holds an explicit read_only=1 (it was fenced with it, or shares the old primary's fence group): an explicit value applies whatever the role, so {} would stay read-only after its promotion and the site would have no writer; set read_only back to the engine default in `{g}` (ResetDBParameterGroup) or give {} its own group, then retry",
                req.target, req.target, req.target
            )),
            None => (true, format!(
                "{}'s parameter groups hold no explicit read_only=1: it takes writes once promoted",
                req.target
            )),
        };
        check(Guard::Fence, ok, RefusalReason::TargetReadOnly, detail);
    }
    let wait = req.max_wait_secs.unwrap_or(DEFAULT_MAX_WAIT_SECS);
    check(
        Guard::Command,
        (1..=MAX_WAIT_LIMIT_SECS).contains(&wait),
        RefusalReason::BadWait,
        format!("writes pause for at most {wait} s (max_wait_secs, 1..={MAX_WAIT_LIMIT_SECS})"),
    );
    match first {
        None => Ok(guards),
        Some((reason, detail)) => Err(Refused {
            reason,
            detail,
            guards,
        }),
    }
}

/// What a `switchover` command meets in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Nothing in flight: start a new epoch.
    Start,
    /// The same switchover (same target) is already in flight: a duplicate, nothing to do.
    Duplicate(String),
    /// Something else owns the site (another switchover, a failover, an open incident).
    Busy(String),
}

/// Deduplication: one switchover per site at a time; a repeated command is answered with the
/// one in flight.
pub fn admit(st: &SiteState, req: &Request) -> Admit {
    // A rolled-back epoch is closed, but its old primary may not have its writes back yet: a new
    // epoch would drop that undo.
    if let Some(sw) = st
        .switchover
        .as_ref()
        .filter(|s| s.epoch == st.epoch && s.phase == SwPhase::RollingBack)
    {
        return Admit::Busy(format!(
            "the {} of epoch {} was rolled back and {} is not yet seen writable again (read_only=0); wait for it",
            sw.kind(),
            sw.epoch,
            sw.old_primary
        ));
    }
    // A closed epoch's record is history, whatever phase it last recorded.
    if !st.phase.is_open() {
        return Admit::Start;
    }
    match st.switchover.as_ref().filter(|s| s.epoch == st.epoch) {
        Some(sw) if sw.target == req.target && sw.drill == req.drill => Admit::Duplicate(format!(
            "the {} of epoch {} to {} is already {} (requested by {})",
            sw.kind(),
            sw.epoch,
            sw.target,
            sw.phase,
            sw.by
        )),
        Some(sw) => Admit::Busy(format!(
            "the {} of epoch {} to {} is in flight ({}); wait for it to finish",
            sw.kind(),
            sw.epoch,
            sw.target,
            sw.phase
        )),
        None => Admit::Busy(format!(
            "epoch {} is {}: a switchover does not start while an incident is open",
            st.epoch, st.phase
        )),
    }
}

/// Whether the promoter may ask AWS to promote for this epoch, as far as a switchover is
/// concerned: `None` when the epoch is no switchover (or one already past its catch-up);
/// `Some(Err)` when it rolled back; `Some(Ok(why))` while it must still wait.
pub fn holds_promotion(st: &SiteState) -> Option<Result<String, String>> {
    let sw = st.switchover.as_ref().filter(|s| s.epoch == st.epoch)?;
    match sw.phase {
        p if p.before_promotion() => Some(Ok(format!(
            "{} to {} is {p}: the target has not applied the fenced position yet",
            sw.kind(),
            sw.target
        ))),
        SwPhase::RollingBack | SwPhase::RolledBack => Some(Err(format!(
            "{} to {} was rolled back: {}",
            sw.kind(),
            sw.target,
            sw.rollback.as_ref().map(|r| r.why.as_str()).unwrap_or("")
        ))),
        _ => None,
    }
}

/// Why a switchover was rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    pub at: DateTime<Utc>,
    pub why: String,
    /// When the old primary was observed writable again (`read_only=0` over SQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable_again_at: Option<DateTime<Utc>>,
}

/// The old primary's `read_only` as it was before the fence, read by the driver before the
/// fence's first call: a rollback gives back exactly this (not a blanket `read_only=0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeforeFence {
    /// `read_only` as the old primary's own parameter group held it (`None`: not set in the
    /// group, the engine default — given back by resetting the parameter, not by setting `0`).
    pub group_read_only: Option<String>,
    /// `@@global.read_only` as the server answered.
    pub server_read_only: bool,
}

/// The measured cost of a switchover: recorded in the ledger (and, for a drill, its report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measured {
    /// Write unavailability: from the start of the fence to writes verified on the target.
    pub rto_ms: i64,
    /// Transactions the old primary had committed (captured) that the target had not applied at
    /// the promotion. 0 by construction of [`caught_up`]; measured, not assumed.
    pub rpo_transactions: Option<u64>,
}

/// The ledger's record of one switchover (one epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverRecord {
    pub epoch: u64,
    pub engine: String,
    pub old_primary: DbRef,
    pub target: DbRef,
    pub by: String,
    pub reason: String,
    #[serde(default)]
    pub drill: bool,
    /// A `failback`: once done, the epoch is completed and the writer name's recorded shape is
    /// restored (see [`crate::failback`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failback: bool,
    pub max_wait_secs: u64,
    pub requested_at: DateTime<Utc>,
    pub phase: SwPhase,
    /// When the fence was first asked for (writes stop being accepted from then on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_started_at: Option<DateTime<Utc>>,
    /// `read_only` before the fence (what a rollback restores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_fence: Option<BeforeFence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_at: Option<DateTime<Utc>>,
    /// The old primary's executed position once read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<Position>,
    /// The target's applied position last read, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Position>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caught_up_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_requested_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes_verified_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_moved_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// A failure after the promotion was requested (never rolled back: see the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<Measured>,
}

/// Whether this engine kind's switchover runs our fence, capture and catch-up wait (only an RDS
/// read replica: the others are synchronised and demoted by AWS itself).
pub fn runs_fence(engine: &Engine) -> bool {
    matches!(engine, Engine::RdsReplica)
}

/// The record a `switchover` command starts at `epoch` (the preconditions passed).
pub fn start(site: &SiteConfig, epoch: u64, req: &Request, now: DateTime<Utc>) -> SwitchoverRecord {
    SwitchoverRecord {
        epoch,
        engine: site.engine.kind().into(),
        old_primary: site.primary.clone(),
        target: req.target.clone(),
        by: req.by.clone(),
        reason: req.reason.clone(),
        drill: req.drill,
        failback: false,
        max_wait_secs: req.max_wait_secs.unwrap_or(DEFAULT_MAX_WAIT_SECS),
        requested_at: now,
        phase: if runs_fence(&site.engine) {
            SwPhase::Fencing
        } else {
            SwPhase::Promoting
        },
        fence_started_at: None,
        before_fence: None,
        fenced_at: None,
        captured: None,
        applied: None,
        caught_up_at: None,
        promotion_requested_at: None,
        writes_verified_at: None,
        dns_moved_at: None,
        rollback: None,
        failure: None,
        measured: None,
    }
}

/// Whether the target has applied exactly what the old primary committed before its fence:
/// nothing in `captured` is missing from `applied`. Positions of different shapes, or a binlog
/// position on another file, are not comparable: not caught up (the wait times out and rolls
/// back rather than guessing).
pub fn caught_up(captured: &Position, applied: &Position) -> bool {
    lost(captured, applied).is_ok_and(|l| l.is_none())
}

/// What the handler must do next for this record. A function of the record alone, so a crash
/// between two steps resumes where the ledger says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Work the fence steps (parameter group `read_only=1`, SQL confirm, end sessions).
    Fence,
    /// Read the old primary's executed position.
    CapturePosition,
    /// Wait (at most `secs`) until the target has applied `position`.
    WaitForTarget { position: Position, secs: u64 },
    /// Record the request, then ask AWS once (the promoter's [`crate::promote::request`]).
    Promote,
    /// Watch the promotion and confirm `read_only=0` on the target over SQL.
    VerifyWrites,
    /// Point the writer name at the target (the dns-pinner).
    MoveDns,
    /// Give the old primary writes back (`read_only=0` in its group), confirm it over SQL.
    UndoFence,
    /// Nothing left to do.
    Finished,
}

pub fn next_action(rec: &SwitchoverRecord, now: DateTime<Utc>) -> Action {
    match rec.phase {
        SwPhase::Fencing => Action::Fence,
        SwPhase::Capturing => Action::CapturePosition,
        SwPhase::CatchingUp => match &rec.captured {
            Some(position) => Action::WaitForTarget {
                position: position.clone(),
                secs: remaining(rec, now).num_seconds().max(0) as u64,
            },
            // A record that says "catching up" without a captured position cannot be trusted
            // to be caught up: capture again (idempotent: the old primary is read-only).
            None => Action::CapturePosition,
        },
        SwPhase::Promoting => Action::Promote,
        SwPhase::VerifyingWrites => Action::VerifyWrites,
        SwPhase::MovingDns => Action::MoveDns,
        SwPhase::RollingBack => Action::UndoFence,
        SwPhase::Done | SwPhase::RolledBack => Action::Finished,
    }
}

/// The time left of `max_wait_secs`, counted from the start of the fence (writes are refused
/// from then on), or from the request when the fence has not started.
pub fn remaining(rec: &SwitchoverRecord, now: DateTime<Utc>) -> Duration {
    let from = rec.fence_started_at.unwrap_or(rec.requested_at);
    from + Duration::seconds(rec.max_wait_secs as i64) - now
}

/// The rollback rule: only before the promotion is requested. After it, the target may be a
/// writer and the old primary must never be given writes back by this tool.
pub fn may_roll_back(rec: &SwitchoverRecord) -> bool {
    rec.phase.before_promotion() && rec.promotion_requested_at.is_none()
}

/// What one step of the handler observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The fence was asked for (the first parameter-group call was sent).
    FenceAsked,
    /// The fence is about to be asked for, and `read_only` before it was read (the driver's
    /// first step: what a rollback gives back).
    BeforeFence(BeforeFence),
    /// `read_only=1` observed in the group and over SQL; sessions ended.
    Fenced,
    /// A fence step was refused, or could not be done by the tool.
    FenceRefused(String),
    /// The old primary's executed position, read while it is read-only.
    Captured(Position),
    /// The target's applied position now.
    Applied(Position),
    /// The promotion was recorded and sent (or AWS was asked).
    PromotionRequested,
    /// The promotion finished and `read_only=0` was observed on the target.
    WritesVerified,
    /// The writer name points at the target.
    DnsMoved,
    /// The old primary was observed writable again (rollback done).
    WritableAgain,
    /// A step failed in a way that will not fix itself (AWS rejected the promotion...).
    Failed(String),
    /// Nothing new: only time passed (judges the timeout).
    Tick,
}

/// A transition the machine does not allow (the record is unchanged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("switchover of epoch {epoch} is {phase}: {what} does not apply")]
pub struct Illegal {
    pub epoch: u64,
    pub phase: SwPhase,
    pub what: String,
}

/// What [`advance`] did: the next record, and the one message to send when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advanced {
    pub record: SwitchoverRecord,
    pub message: Option<String>,
}

fn roll_back(mut rec: SwitchoverRecord, why: String, now: DateTime<Utc>) -> Advanced {
    // An engine that runs no fence of ours (Aurora, Multi-AZ) had nothing made read-only by
    // this tool: there is nothing to give back, and the record is rolled back at once.
    let fenced_by_us = rec.engine == Engine::RdsReplica.kind();
    let undo = if fenced_by_us {
        format!(
            "{} is being given writes back (its read_only as it was before the fence)",
            rec.old_primary
        )
    } else {
        format!(
            "AWS was never asked to switch the writer: {} stays the writer",
            rec.old_primary
        )
    };
    let message = format!(
        "{} of {} to {} ROLLED BACK before the promotion: {why}; {undo}, DNS was not touched",
        rec.kind(),
        rec.old_primary,
        rec.target,
    );
    rec.phase = if fenced_by_us {
        SwPhase::RollingBack
    } else {
        SwPhase::RolledBack
    };
    rec.rollback = Some(Rollback {
        at: now,
        why,
        writable_again_at: (!fenced_by_us).then_some(now),
    });
    Advanced {
        record: rec,
        message: Some(message),
    }
}

impl SwitchoverRecord {
    /// "switchover" or "drill", for every message.
    pub fn kind(&self) -> &'static str {
        if self.drill {
            "DRILL switchover"
        } else if self.failback {
            "failback switchover"
        } else {
            "switchover"
        }
    }
}

/// The state machine's one step. Repeated observations are idempotent (at-least-once delivery
/// and crash-resume re-observe); observations that do not apply to the phase are [`Illegal`].
pub fn advance(
    rec: &SwitchoverRecord,
    obs: Observation,
    now: DateTime<Utc>,
) -> Result<Advanced, Illegal> {
    use Observation as O;
    use SwPhase as P;
    let same = |r: &SwitchoverRecord| {
        Ok(Advanced {
            record: r.clone(),
            message: None,
        })
    };
    let illegal = |what: &str| {
        Err(Illegal {
            epoch: rec.epoch,
            phase: rec.phase,
            what: what.into(),
        })
    };
    let mut next = rec.clone();
    if rec.phase.is_terminal() {
        return same(rec);
    }
    // Before the promotion, every observation first judges the deadline: writes are refused
    // for at most `max_wait_secs`.
    if may_roll_back(rec) && remaining(rec, now) <= Duration::zero() && obs != O::PromotionRequested
    {
        // A late "caught up" does not beat the deadline: it was promised to the operator.
        let why = format!(
            "not caught up within max_wait_secs {} ({} then)",
            rec.max_wait_secs, rec.phase
        );
        return Ok(roll_back(next, why, now));
    }
    match (rec.phase, obs) {
        (_, O::Tick) => same(rec),
        (P::Fencing, O::FenceAsked) => {
            next.fence_started_at.get_or_insert(now);
            same(&next)
        }
        (P::Fencing, O::BeforeFence(b)) => {
            next.fence_started_at.get_or_insert(now);
            next.before_fence.get_or_insert(b);
            same(&next)
        }
        (P::Fencing, O::Fenced) => {
            // The fence's start was not observed: count write unavailability from the request
            // (conservative: never a smaller RTO than the one paid).
            next.fence_started_at.get_or_insert(rec.requested_at);
            next.fenced_at = Some(now);
            next.phase = P::Capturing;
            same(&next)
        }
        (P::Fencing | P::Capturing | P::CatchingUp, O::FenceRefused(why)) => Ok(roll_back(
            next,
            format!("the fence was refused: {why}"),
            now,
        )),
        (P::Capturing | P::CatchingUp, O::Fenced) => same(rec),
        (P::Capturing, O::Captured(p)) => {
            next.captured = Some(p);
            next.phase = P::CatchingUp;
            same(&next)
        }
        // A second capture after a crash changes nothing: the first one is what the operator's
        // transactions were judged against (the old primary was read-only already).
        (P::CatchingUp, O::Captured(_)) => same(rec),
        (P::CatchingUp, O::Applied(p)) => {
            let done = rec.captured.as_ref().is_some_and(|c| caught_up(c, &p));
            next.applied = Some(p);
            if done {
                next.caught_up_at = Some(now);
                next.phase = P::Promoting;
            }
            same(&next)
        }
        (P::Fencing | P::Capturing | P::CatchingUp, O::Failed(why)) => {
            Ok(roll_back(next, why, now))
        }
        (P::Promoting, O::PromotionRequested) => {
            next.promotion_requested_at.get_or_insert(now);
            next.phase = P::VerifyingWrites;
            same(&next)
        }
        (P::VerifyingWrites, O::PromotionRequested) => same(rec),
        (P::VerifyingWrites, O::WritesVerified) => {
            next.writes_verified_at = Some(now);
            next.measured = Some(measure(&next, now));
            next.phase = P::MovingDns;
            same(&next)
        }
        (P::MovingDns, O::WritesVerified) => same(rec),
        (P::MovingDns, O::DnsMoved) => {
            next.dns_moved_at = Some(now);
            next.phase = P::Done;
            let m = next.measured.as_ref();
            let message = format!(
                "{} of site writer {} → {} done: write unavailability {} ms, RPO {} transactions",
                next.kind(),
                next.old_primary,
                next.target,
                m.map(|m| m.rto_ms).unwrap_or_default(),
                m.and_then(|m| m.rpo_transactions)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "unmeasured (engine-managed)".into())
            );
            Ok(Advanced {
                record: next,
                message: Some(message),
            })
        }
        // The epoch closed before the promotion was requested (see `drive::closed_unrequested`):
        // RDS was never asked, so rolling back cannot make two writers.
        (P::Promoting, O::Failed(why)) if rec.promotion_requested_at.is_none() => {
            Ok(roll_back(next, why, now))
        }
        (P::Promoting | P::VerifyingWrites | P::MovingDns, O::Failed(why)) => {
            // Roll forward only: the target may be a writer already.
            next.failure = Some(why.clone());
            let message = format!(
                "{} to {} FAILED after the promotion was requested: {why}; the old primary {} stays read-only (never two writers) — finish by hand: check {} and point DNS at it",
                next.kind(),
                next.target,
                next.old_primary,
                next.target
            );
            Ok(Advanced {
                record: next,
                message: Some(message),
            })
        }
        (P::RollingBack, O::WritableAgain) => {
            if let Some(r) = next.rollback.as_mut() {
                r.writable_again_at = Some(now);
            }
            next.phase = P::RolledBack;
            same(&next)
        }
        (P::RollingBack, _) => same(rec),
        (_, other) => illegal(&format!("{other:?}")),
    }
}

/// RTO (fence start → writes verified) and RPO (captured minus applied) as measured.
fn measure(rec: &SwitchoverRecord, now: DateTime<Utc>) -> Measured {
    let from = rec.fence_started_at.unwrap_or(rec.requested_at);
    // Binlog coordinates count bytes, not transactions: 0 when caught up, else unknown.
    let rpo = match (&rec.captured, &rec.applied) {
        (Some(c), Some(a)) => lost(c, a)
            .ok()
            .and_then(|l| l.count.or(l.is_none().then_some(0))),
        _ => None,
    };
    Measured {
        rto_ms: (now - from).num_milliseconds(),
        rpo_transactions: rpo,
    }
}

pub(crate) mod command;
pub mod drive;

#[cfg(test)]
mod tests;
