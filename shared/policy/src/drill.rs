//! `drill`: a switchover to the DR side and back, measured and recorded — how a team proves its
//! DR works before the day it needs it. No new machinery: each leg is a planned switchover
//! ([`crate::switchover`], RPO 0, rollback before the promotion), recorded with `drill: true` so
//! every message of it says DRILL.
//!
//! ```text
//!  awaiting-approval ──approve──┐            (require-approval sites only)
//!                               ▼
//!  command ──────────────────▶ out ──done──▶ reprotecting ──protected──▶ back ──done──▶ done
//!                               │   (rds-replica: a new replica of the      │
//!                               │    DR writer in the original region)      │
//!                               │   aurora / multi-az: out ──done──▶ back ──┘
//!                               └── leg rolled back ──▶ rolled-back ◀── leg rolled back
//!  any open phase ── a failover decided (a real incident) ──▶ abandoned
//! ```
//!
//! - **out**: a switchover to the chosen DR candidate. Once done the epoch is completed (the
//!   ledger's topology names the DR writer; DNS points at it).
//! - **reprotecting** (rds-replica only: the promoted replica leaves the old primary standalone):
//!   a `reprotect` of the DR writer into the original region, driven by the tick until protected.
//! - **back**: the `failback` machinery for rds-replica (a switchover to the replica in the
//!   original region, then the writer name's recorded shape restored); for Aurora and Multi-AZ a
//!   second switchover straight to the original writer. Started by the tick, only when no
//!   incident is open and automation is not paused.
//! - Each leg's measured RTO (write unavailability, fence start → writes verified on the other
//!   side) and RPO (transactions, must be 0) is copied from the switchover's own
//!   [`crate::switchover::Measured`] into the drill record; ended drills are kept in the ledger's
//!   drill history (the last [`HISTORY`]).
//!
//! Preconditions, refused before any AWS call ([`Refused`]): not paused, no incident or
//! switchover open, no drill in flight, not shadow mode, inside one of the site's maintenance
//! windows (or `outside_window` with a reason), and for rds-replica a `reprotect` section whose
//! region is the original region (the way back). On a `require-approval` site the drill waits
//! for `approve` naming the epoch its out leg will open (as a failover's approval names its
//! epoch); the preconditions are judged again at the approval.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{ApprovalMode, DbRef, Engine, SiteConfig};
use crate::decide::{refuse_command, Ctx, Decision};
use crate::events::{DomainEvent, EventType};
use crate::evidence::Evidence;
use crate::incident::{Phase, SiteState};
use crate::signal::{OperatorAction, OperatorCommand};
use crate::switchover::{SwPhase, SwitchoverRecord};
use crate::verdict::{Guard, GuardCheck, GuardResult, Outcome, RefusalReason, Verdict};

/// How many ended drills the ledger keeps.
pub const HISTORY: usize = 10;

/// An `outside_window` drill was accepted to move writes now, not at any later hour: its back leg
/// may start outside every window only this long after its out leg started.
pub const OUTSIDE_WINDOW_GRACE_SECS: i64 = 4 * 3600;

/// A drill whose way back has not started this long after it was requested ends `abandoned`
/// (eight days: a weekly maintenance window is reached once more before it).
pub const BACK_WAIT_LIMIT_SECS: i64 = 8 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrillPhase {
    AwaitingApproval,
    Out,
    Reprotecting,
    Back,
    Done,
    RolledBack,
    Abandoned,
}

impl DrillPhase {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            DrillPhase::Done | DrillPhase::RolledBack | DrillPhase::Abandoned
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Leg {
    Out,
    Back,
}

/// One leg: a switchover epoch and what it measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegRecord {
    pub leg: Leg,
    pub epoch: u64,
    pub from: DbRef,
    pub to: DbRef,
    /// `done`, `rolled-back`, or `failed` once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Write unavailability, fence start → writes verified on the other side (measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_ms: Option<i64>,
    /// Committed transactions the target had not applied at the promotion (measured; must be 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_transactions: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillRecord {
    /// 1 for the site's first drill.
    pub number: u64,
    pub engine: String,
    /// The writer at the start (where the drill comes back to).
    pub home: DbRef,
    /// The DR candidate the out leg goes to.
    pub target: DbRef,
    pub by: String,
    pub reason: String,
    pub requested_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait_secs: Option<u64>,
    /// Why it runs outside every maintenance window, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_window: Option<String>,
    /// The epoch an `approve` must name (require-approval sites).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve_epoch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// When the out leg started (the command, or its approval): an `outside_window` drill's back
    /// leg may start outside every window until [`OUTSIDE_WINDOW_GRACE_SECS`] after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When the team was paged that the way back is ready but waits (a window, a transient
    /// precondition): paged once, not every tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_wait_paged: Option<DateTime<Utc>>,
    pub phase: DrillPhase,
    #[serde(default)]
    pub legs: Vec<LegRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// How it ended, and where the site was left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl DrillRecord {
    pub fn leg(&self, leg: Leg) -> Option<&LegRecord> {
        self.legs.iter().rev().find(|l| l.leg == leg)
    }
}

/// Why a `drill` is refused. Every refusal is made before any AWS call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("site {site} is paused by {by}: a drill does not start while automation is paused")]
    Paused { site: String, by: String },
    #[error("site {site} is {phase} at epoch {epoch}: a drill does not start while an incident or switchover is open")]
    IncidentOpen {
        site: String,
        phase: Phase,
        epoch: u64,
    },
    #[error("site {site} has drill {number} in flight ({phase:?}, to {target})")]
    InFlight {
        site: String,
        number: u64,
        phase: DrillPhase,
        target: String,
    },
    #[error("site {site} is outside every maintenance window at {now}: the next one is {window} (opens {next}); or send `outside_window` with a reason")]
    OutsideWindow {
        site: String,
        now: String,
        window: String,
        next: String,
    },
    #[error("site {site} has no maintenance_windows: a drill runs inside one, or send `outside_window` with a reason")]
    NoWindow { site: String },
    #[error(
        "site {site} is in shadow mode: a drill moves the writer, and shadow mode never mutates"
    )]
    Shadow { site: String },
    #[error("site {site}'s writer is {writer}, not in its original region {region}: the site is already on the DR side; a drill starts from home (`failback` first)")]
    NotHome {
        site: String,
        writer: String,
        region: String,
    },
    #[error("site {site}: a drill moves the writer to the DR side, but {target} is in the original region {region}")]
    TargetAtHome {
        site: String,
        target: String,
        region: String,
    },
    #[error("site {site}: an rds-replica drill comes back through a replica in the original region {region}, but {detail}")]
    NoWayBack {
        site: String,
        region: String,
        detail: String,
    },
}

/// The drill in flight, if any.
pub fn in_flight(st: &SiteState) -> Option<&DrillRecord> {
    st.drill.as_ref().filter(|d| !d.phase.is_terminal())
}

/// The preconditions of a drill (at the command and again at its approval).
pub fn check(
    configured: &SiteConfig,
    st: &SiteState,
    outside_window: bool,
    now: DateTime<Utc>,
) -> Result<(), Refused> {
    let site = configured.id.clone();
    if let Some(p) = &st.paused {
        return Err(Refused::Paused {
            site,
            by: p.by.clone(),
        });
    }
    if st.phase.is_open() {
        return Err(Refused::IncidentOpen {
            site,
            phase: st.phase,
            epoch: st.epoch,
        });
    }
    if configured.approval == ApprovalMode::Shadow {
        return Err(Refused::Shadow { site });
    }
    let home = crate::failback::original_region(configured);
    let writer = crate::topology::effective(configured, st).primary.clone();
    if writer.region != home {
        return Err(Refused::NotHome {
            site,
            writer: writer.to_string(),
            region: home.to_string(),
        });
    }
    if !outside_window && configured.in_maintenance(now).is_none() {
        let next = configured
            .maintenance_windows
            .iter()
            .map(|w| (w.next_start(now), w))
            .min_by_key(|(t, _)| *t);
        return Err(match next {
            None => Refused::NoWindow { site },
            Some((t, w)) => Refused::OutsideWindow {
                site,
                now: now.format("%a %H:%M UTC").to_string(),
                window: w.to_string(),
                next: t.format("%a %Y-%m-%d %H:%M UTC").to_string(),
            },
        });
    }
    if matches!(configured.engine, Engine::RdsReplica) {
        let region = crate::failback::original_region(configured).to_string();
        let detail = match &configured.reprotect {
            None => Some("the site has no `reprotect` section".to_string()),
            Some(r) if r.region != region => {
                Some(format!("its `reprotect` section names region {}", r.region))
            }
            Some(_) => None,
        };
        if let Some(detail) = detail {
            return Err(Refused::NoWayBack {
                site,
                region,
                detail,
            });
        }
    }
    Ok(())
}

fn refuse(mut cx: Ctx<'_>, original: &SiteState, e: Refused) -> Decision {
    let d = format!("DRILL refused: {e}");
    cx.guard(GuardCheck::new(
        Guard::Command,
        GuardResult::Fail,
        d.clone(),
    ));
    refuse_command(cx, original, RefusalReason::NotDrillable, d)
}

/// The evaluator's `drill` command.
pub(crate) fn command(
    mut cx: Ctx<'_>,
    original: &SiteState,
    cmd: &OperatorCommand,
    ev: Option<&Evidence>,
) -> Decision {
    let named = cmd.candidate.clone().unwrap_or_default();
    if let Some(d) = in_flight(&cx.st) {
        if d.target.id == named {
            let s = format!(
                "duplicate: DRILL {} of site {} to {} is already {:?} (requested by {})",
                d.number, cx.configured.id, d.target, d.phase, d.by
            );
            cx.guard(GuardCheck::new(
                Guard::Duplicate,
                GuardResult::Fail,
                s.clone(),
            ));
            let cx = Ctx {
                st: original.clone(),
                ..cx
            };
            return cx.finish(original, Outcome::Watch, s);
        }
        let e = Refused::InFlight {
            site: cx.configured.id.clone(),
            number: d.number,
            phase: d.phase,
            target: d.target.to_string(),
        };
        return refuse(cx, original, e);
    }
    if let Err(e) = check(cx.configured, &cx.st, cmd.outside_window, cx.now) {
        return refuse(cx, original, e);
    }
    let Some(target) = cx.site.candidates.iter().find(|c| c.id == named).cloned() else {
        // The switchover's own refusal names the candidates.
        return crate::switchover::command::switchover_as(cx, original, cmd, ev, false, true);
    };
    let home = crate::failback::original_region(cx.configured).to_string();
    if matches!(cx.configured.engine, Engine::RdsReplica) && target.region == home {
        let e = Refused::TargetAtHome {
            site: cx.configured.id.clone(),
            target: target.to_string(),
            region: home,
        };
        return refuse(cx, original, e);
    }
    let by = cmd.by().unwrap_or_else(|| "an operator".into());
    let reason = cmd.reason.clone().unwrap_or_default();
    let rec = DrillRecord {
        number: next_number(&cx.st),
        engine: cx.site.engine.kind().into(),
        home: cx.site.primary.clone(),
        target,
        by: by.clone(),
        reason: reason.clone(),
        requested_at: cx.now,
        max_wait_secs: cmd.max_wait_secs,
        outside_window: cmd.outside_window.then(|| reason.clone()),
        approve_epoch: None,
        approved_by: None,
        started_at: None,
        back_wait_paged: None,
        phase: DrillPhase::Out,
        legs: vec![],
        ended_at: None,
        note: None,
    };
    if cx.configured.approval == ApprovalMode::RequireApproval {
        let epoch = cx.st.epoch + 1;
        let rec = DrillRecord {
            approve_epoch: Some(epoch),
            phase: DrillPhase::AwaitingApproval,
            ..rec
        };
        let s = format!(
            "DRILL {} of site {} ({} → {} and back) awaits approval by someone other than {} (rds-replica: the site is UNPROTECTED from its out leg until re-protected): send {{\"command\":\"approve\",\"site\":\"{}\",\"epoch\":{epoch},\"drill\":{}}}",
            rec.number, cx.configured.id, rec.home, rec.target, rec.by, cx.configured.id, rec.number
        );
        cx.guard(GuardCheck::new(
            Guard::Approval,
            GuardResult::Fail,
            s.clone(),
        ));
        cx.st.drill = Some(rec);
        let o = Outcome::Watch;
        cx.event(EventType::ApprovalRequested, &s, &o);
        return cx.finish(original, o, s);
    }
    start_out(cx, original, rec, ev)
}

/// `approve` of a drill awaiting approval: the preconditions again, then the out leg.
pub(crate) fn approve(
    cx: Ctx<'_>,
    original: &SiteState,
    cmd: &OperatorCommand,
    ev: Option<&Evidence>,
) -> Decision {
    let Some(rec) = cx
        .st
        .drill
        .clone()
        .filter(|d| d.phase == DrillPhase::AwaitingApproval)
    else {
        let d = "no drill awaits approval".to_string();
        return refuse_command(cx, original, RefusalReason::NothingToApprove, d);
    };
    if cmd.drill != Some(rec.number) {
        let d = format!(
            "a drill's approval names the drill: DRILL {} awaits {{\"command\":\"approve\",\"epoch\":{},\"drill\":{}}} (this approval names {}), so an incident's approval is never taken for it",
            rec.number,
            cx.st.epoch + 1,
            rec.number,
            cmd.drill.map(|n| format!("drill {n}")).unwrap_or_else(|| "no drill".into())
        );
        return refuse_command(cx, original, RefusalReason::StaleApproval, d);
    }
    let approver = cmd.by().unwrap_or_else(|| "an operator".into());
    if approver == rec.by {
        let d = format!(
            "DRILL {} was requested by {approver}: its approval is a second person's",
            rec.number
        );
        return refuse_command(cx, original, RefusalReason::SelfApproval, d);
    }
    if cmd.epoch != rec.approve_epoch || rec.approve_epoch != Some(cx.st.epoch + 1) {
        let d = format!(
            "approval names epoch {:?}; DRILL {} opens epoch {} (see `status`)",
            cmd.epoch,
            rec.number,
            cx.st.epoch + 1
        );
        return refuse_command(cx, original, RefusalReason::StaleApproval, d);
    }
    if let Err(e) = check(cx.configured, &cx.st, rec.outside_window.is_some(), cx.now) {
        return refuse(cx, original, e);
    }
    let rec = DrillRecord {
        approved_by: Some(cmd.by().unwrap_or_else(|| "an operator".into())),
        phase: DrillPhase::Out,
        ..rec
    };
    start_out(cx, original, rec, ev)
}

/// Whether an `abort` is the drill's: a drill in flight and either no epoch open or the open
/// epoch is the drill's own leg (a real incident's epoch is aborted as usual).
pub(crate) fn owns_abort(st: &SiteState) -> bool {
    in_flight(st).is_some()
        && (!st.phase.is_open()
            || st
                .switchover
                .as_ref()
                .is_some_and(|s| s.drill && s.epoch == st.epoch))
}

/// `abort` on a site with a drill in flight and no leg mid-switchover (no incident or
/// switchover epoch open): the drill ends `abandoned`, recorded, with where the site is left.
/// Mid-leg it is refused: the leg ends by itself (done, or rolled back before the promotion).
pub(crate) fn abort(mut cx: Ctx<'_>, original: &SiteState, cmd: &OperatorCommand) -> Decision {
    let Some(mut rec) = in_flight(&cx.st).cloned() else {
        let d = "no drill in flight".to_string();
        return refuse_command(cx, original, RefusalReason::NothingToAbort, d);
    };
    if cx.st.phase.is_open() {
        let d = format!(
            "DRILL {} has a leg mid-switchover (epoch {}, {}): wait for the leg to end — done, or rolled back before the promotion if its target does not catch up — then `abort` the drill",
            rec.number, cx.st.epoch, cx.st.phase
        );
        return refuse_command(cx, original, RefusalReason::NothingToAbort, d);
    }
    let named = cmd.epoch;
    if named != Some(cx.st.epoch) && named != rec.approve_epoch {
        let d = format!(
            "`abort` names epoch {}; DRILL {} is at epoch {} (see `status`)",
            named.unwrap_or(0),
            rec.number,
            cx.st.epoch
        );
        return refuse_command(cx, original, RefusalReason::NothingToAbort, d);
    }
    let by = cmd.by().unwrap_or_else(|| "an operator".into());
    let why = cmd.reason.clone().unwrap_or_default();
    let writer = cx.site.primary.clone();
    let back = if writer != rec.home {
        format!(
            "; it is not home ({}): `failback` (rds-replica, once re-protected; UNPROTECTED while no DR replica exists) or a `switchover` to {} brings it back",
            rec.home, rec.home
        )
    } else {
        String::new()
    };
    let s = format!(
        "DRILL {} ABANDONED by {by}: {why}; no further leg starts. The writer is {writer} (DNS points at it){back}",
        rec.number
    );
    end(&mut rec, DrillPhase::Abandoned, s.clone(), cx.now);
    cx.guard(GuardCheck::new(
        Guard::Command,
        GuardResult::Pass,
        s.clone(),
    ));
    let e = event(cx.configured, &cx.st, &rec, s.clone(), cx.now);
    cx.emit.push(e);
    keep(&mut cx.st, rec);
    cx.finish(original, Outcome::Watch, s)
}

/// The site's next drill number (1 for its first).
fn next_number(st: &SiteState) -> u64 {
    let last = st.drills.last().map(|d| d.number).unwrap_or(0);
    last.max(st.drill.as_ref().map(|d| d.number).unwrap_or(0)) + 1
}

/// The switchover command of one leg, as the drill's requester sent it.
fn leg_command(rec: &DrillRecord, leg: Leg, to: &DbRef) -> OperatorCommand {
    let leg = match leg {
        Leg::Out => "out",
        Leg::Back => "back",
    };
    OperatorCommand {
        command: OperatorAction::Switchover,
        site: String::new(),
        reason: Some(format!("DRILL {} {leg} leg: {}", rec.number, rec.reason)),
        operator: Some(rec.by.clone()),
        override_rpo: false,
        epoch: None,
        candidate: Some(to.id.clone()),
        force: false,
        override_cooldown: false,
        primary: None,
        max_wait_secs: rec.max_wait_secs,
        outside_window: false,
        principal: None,
        drill: None,
    }
}

/// The out leg: the switchover machinery's own preconditions and epoch, recorded as a drill.
fn start_out(
    cx: Ctx<'_>,
    original: &SiteState,
    mut rec: DrillRecord,
    ev: Option<&Evidence>,
) -> Decision {
    let cmd = leg_command(&rec, Leg::Out, &rec.target.clone());
    let mut d = crate::switchover::command::switchover_as(cx, original, &cmd, ev, false, true);
    let Some(next) = d.next.as_mut() else {
        return d;
    };
    // Refused by the switchover's preconditions: no drill is recorded (one that awaited
    // approval stays awaiting it: the refusal keeps the record as it was).
    if let Some(sw) = next
        .switchover
        .as_ref()
        .filter(|s| s.drill && s.epoch == next.epoch && next.epoch != original.epoch)
    {
        {
            rec.legs.push(LegRecord {
                leg: Leg::Out,
                epoch: sw.epoch,
                from: sw.old_primary.clone(),
                to: sw.target.clone(),
                outcome: None,
                rto_ms: None,
                rpo_transactions: None,
            });
            rec.phase = DrillPhase::Out;
            rec.started_at = Some(next.updated_at.unwrap_or(rec.requested_at));
            next.drill = Some(rec);
        }
    }
    d
}

/// What a healthy tick does about a drill in flight whose way back may be ready.
#[derive(Debug, Clone, PartialEq)]
pub enum BackStep {
    /// Start the back leg to this target.
    Start(DbRef),
    /// Ready, but it waits (outside every window, a transient precondition): page once, saying why.
    Wait(String),
    /// It can never start as things are (a precondition that does not clear by itself, or it
    /// waited past [`BACK_WAIT_LIMIT_SECS`]): the drill ends `abandoned`, saying why.
    Abandon(String),
}

/// Whether a refusal of the back leg clears by itself (lag, a backup, a primary blip): the drill
/// waits. Any other refusal ends it.
fn transient(r: RefusalReason) -> bool {
    matches!(
        r,
        RefusalReason::RpoExceeded
            | RefusalReason::LagUnknown
            | RefusalReason::BackupRunning
            | RefusalReason::PrimaryUnhealthy
            | RefusalReason::NoHealthyCandidate
    )
}

/// The back leg, judged on a tick the evaluation found healthy: a drill whose way back is ready
/// (Aurora/Multi-AZ: its out leg done; rds-replica: its re-protection protected), the site idle
/// and not paused, inside a maintenance window (or within [`OUTSIDE_WINDOW_GRACE_SECS`] of an
/// `outside_window` drill's start), and the switchover's own preconditions passing on this
/// tick's evidence. `None`: nothing to do this tick.
pub fn back_step(
    configured: &SiteConfig,
    live: &SiteConfig,
    st: &SiteState,
    ev: &Evidence,
    now: DateTime<Utc>,
) -> Option<BackStep> {
    let rec = in_flight(st)?;
    if st.phase.is_open() || st.paused.is_some() {
        return None;
    }
    if rec.phase == DrillPhase::Reprotecting {
        if let Some(r) = st
            .reprotect
            .as_ref()
            .filter(|r| r.phase == crate::reprotect::RpPhase::Failed)
        {
            return Some(BackStep::Abandon(format!(
                "its re-protection into {} FAILED ({}): there is no replica to come back through; the site stays on {} (DNS points at it), UNPROTECTED until a `reprotect` succeeds, then `failback`",
                r.replica.region,
                r.note.clone().unwrap_or_default(),
                live.primary
            )));
        }
    }
    let ready = match rec.phase {
        DrillPhase::Back => true,
        DrillPhase::Reprotecting => st
            .reprotect
            .as_ref()
            .is_some_and(|r| r.phase == crate::reprotect::RpPhase::Protected),
        _ => false,
    };
    if !ready {
        return None;
    }
    if (now - rec.requested_at).num_seconds() > BACK_WAIT_LIMIT_SECS {
        return Some(BackStep::Abandon(format!(
            "its back leg has not started {} days after the drill was requested; the site stays on {} (DNS points at it): `failback` (rds-replica) or `switchover` to {} by hand in a window",
            BACK_WAIT_LIMIT_SECS / 86_400,
            live.primary,
            rec.home
        )));
    }
    let granted = rec.outside_window.is_some()
        && rec
            .started_at
            .is_some_and(|t| (now - t).num_seconds() <= OUTSIDE_WINDOW_GRACE_SECS);
    if !granted && configured.in_maintenance(now).is_none() {
        let next = configured
            .maintenance_windows
            .iter()
            .map(|w| (w.next_start(now), w))
            .min_by_key(|(t, _)| *t)
            .map(|(t, w)| format!("{w} (opens {})", t.format("%a %Y-%m-%d %H:%M UTC")))
            .unwrap_or_else(|| "none configured".into());
        return Some(BackStep::Wait(format!(
            "its way back is ready but it is outside every maintenance window: the back leg waits for the next one, {next}; until then the site stays on {}",
            live.primary
        )));
    }
    let to = if matches!(configured.engine, Engine::RdsReplica) {
        match crate::failback::target(configured, live, st, ev) {
            Ok(t) => t,
            Err(e) => {
                return Some(BackStep::Wait(format!(
                    "the back leg cannot start yet: {e}"
                )))
            }
        }
    } else {
        match live
            .candidates
            .iter()
            .chain(std::iter::once(&live.primary))
            .find(|c| **c == rec.home)
        {
            Some(c) => c.clone(),
            None => {
                return Some(BackStep::Abandon(format!(
                    "its home {} is no longer in the site's topology: the site stays on {}",
                    rec.home, live.primary
                )))
            }
        }
    };
    let req = crate::switchover::Request {
        target: to.clone(),
        by: rec.by.clone(),
        reason: rec.reason.clone(),
        max_wait_secs: rec.max_wait_secs,
        drill: true,
    };
    if crate::switchover::admit(st, &req) != crate::switchover::Admit::Start {
        return None;
    }
    let seen = crate::switchover::command::observed(ev, st, &to);
    match crate::switchover::preconditions(live, st, &req, &seen) {
        Ok(_) => Some(BackStep::Start(to)),
        Err(r) if transient(r.reason) => Some(BackStep::Wait(format!(
            "the back leg to {to} waits: {}",
            r.detail
        ))),
        Err(r) => Some(BackStep::Abandon(format!(
            "the back leg to {to} is refused: {}; the site stays on {} (DNS points at it)",
            r.detail, live.primary
        ))),
    }
}

/// A healthy tick's drill step (see [`back_step`]), after the tick's own evaluation `d` — an
/// outage always wins: a tick that saw any down vote, or left an incident open, does nothing
/// here.
pub(crate) fn after_tick(
    configured: &SiteConfig,
    live: &SiteConfig,
    original: &SiteState,
    d: Decision,
    ev: &Evidence,
    now: DateTime<Utc>,
) -> Decision {
    let st = d.next.clone().unwrap_or_else(|| original.clone());
    if st.phase.is_open() || ev.tally().down > 0 {
        return d;
    }
    let Some(step) = back_step(configured, live, &st, ev, now) else {
        return d;
    };
    let mut next = st;
    let Some(mut drill) = in_flight(&next).cloned() else {
        return d;
    };
    let summary = match step {
        BackStep::Start(to) => {
            let cx = Ctx {
                site: live,
                configured,
                now,
                st: next.clone(),
                guards: d.verdict.guards.clone(),
                emit: vec![],
            };
            let mut started = start_back(cx, original, to, ev);
            let ok = started.next.as_ref().is_some_and(|n| {
                n.switchover
                    .as_ref()
                    .is_some_and(|s| s.drill && s.epoch == n.epoch && n.epoch != original.epoch)
            });
            if ok {
                let mut emit = d.emit;
                emit.append(&mut started.emit);
                started.emit = emit;
                return started;
            }
            let s = format!(
                "DRILL {} ABANDONED: the back leg was refused ({}); the site stays on {} (DNS points at it)",
                drill.number, started.verdict.summary, live.primary
            );
            end(&mut drill, DrillPhase::Abandoned, s.clone(), now);
            s
        }
        BackStep::Wait(why) => {
            if drill.back_wait_paged.is_some() {
                return d;
            }
            drill.back_wait_paged = Some(now);
            format!("DRILL {} waits: {why}", drill.number)
        }
        BackStep::Abandon(why) => {
            let s = format!("DRILL {} ABANDONED: {why}", drill.number);
            end(&mut drill, DrillPhase::Abandoned, s.clone(), now);
            s
        }
    };
    let e = event(configured, &next, &drill, summary.clone(), now);
    next.outbox.push(e.clone());
    keep(&mut next, drill);
    next.version = original.version + 1;
    next.updated_at = Some(now);
    let mut emit = d.emit;
    emit.push(e);
    let mut verdict = d.verdict;
    verdict.summary = format!("{}; {summary}", verdict.summary);
    Decision {
        verdict,
        next: Some(next),
        emit,
    }
}

/// The tick's drill step once [`back_step`] said where: the back leg's switchover epoch
/// (recorded as a failback for rds-replica, so its end restores the writer name's shape).
pub(crate) fn start_back(cx: Ctx<'_>, original: &SiteState, to: DbRef, ev: &Evidence) -> Decision {
    let Some(mut rec) = in_flight(&cx.st).cloned() else {
        return cx.finish(original, Outcome::Watch, "no drill in flight".into());
    };
    let rds = matches!(cx.configured.engine, Engine::RdsReplica);
    let cmd = leg_command(&rec, Leg::Back, &to);
    let mut d = crate::switchover::command::switchover_as(cx, original, &cmd, Some(ev), rds, true);
    let Some(next) = d.next.as_mut() else {
        return d;
    };
    let Some(sw) = next
        .switchover
        .clone()
        .filter(|s| s.drill && s.epoch == next.epoch && next.epoch != original.epoch)
    else {
        return d;
    };
    rec.phase = DrillPhase::Back;
    rec.legs.push(LegRecord {
        leg: Leg::Back,
        epoch: sw.epoch,
        from: sw.old_primary.clone(),
        to: sw.target.clone(),
        outcome: None,
        rto_ms: None,
        rpo_transactions: None,
    });
    next.drill = Some(rec);
    d
}

fn rto_text(ms: Option<i64>) -> String {
    ms.map(|ms| format!("{ms} ms"))
        .unwrap_or_else(|| "unmeasured".into())
}

fn rpo_text(n: Option<u64>) -> String {
    n.map(|n| n.to_string())
        .unwrap_or_else(|| "unmeasured (engine-managed)".into())
}

/// A drill leg's switchover record as the driver commits it (`next`: the state being committed,
/// `rec` the switchover record in it): the leg's outcome and measurements go into the drill
/// record; a done out leg completes its epoch and starts the way back; a rolled-back leg ends the
/// drill. Written in the switchover's own commit.
pub fn on_switchover(
    site: &SiteConfig,
    prev: &SiteState,
    next: &mut SiteState,
    rec: &SwitchoverRecord,
    now: DateTime<Utc>,
) {
    if !rec.drill {
        return;
    }
    let Some(mut drill) = in_flight(next).cloned() else {
        return;
    };
    let Some(leg) = drill.legs.iter_mut().rev().find(|l| l.epoch == rec.epoch) else {
        return;
    };
    if leg.outcome.is_some() {
        return;
    }
    let was = prev.switchover.as_ref().filter(|s| s.epoch == rec.epoch);
    let failed_now = rec.failure.is_some() && was.is_none_or(|s| s.failure.is_none());
    let outcome = match rec.phase {
        SwPhase::Done => "done",
        SwPhase::RollingBack | SwPhase::RolledBack => "rolled-back",
        _ if failed_now => "failed",
        _ => return,
    };
    leg.outcome = Some(outcome.into());
    leg.rto_ms = rec.measured.as_ref().map(|m| m.rto_ms);
    leg.rpo_transactions = rec.measured.as_ref().and_then(|m| m.rpo_transactions);
    let which = leg.leg;
    let head = format!(
        "DRILL {} {} leg {} → {} {outcome}",
        drill.number,
        if which == Leg::Out { "out" } else { "back" },
        leg.from,
        leg.to
    );
    let measured = leg.rto_ms.map(|rto| {
        format!(
            "RTO {rto} ms (write unavailability), RPO {} transactions",
            rpo_text(leg.rpo_transactions)
        )
    });
    let summary = match (outcome, which) {
        ("done", Leg::Out) => {
            if let Err(e) = complete_epoch(site, next, rec, now) {
                let s = not_completed(rec, &e);
                end(&mut drill, DrillPhase::Abandoned, s.clone(), now);
                s
            } else if matches!(site.engine, Engine::RdsReplica) {
                let id = format!("drill-{}", drill.number);
                match crate::reprotect::start(site, next, &id, None, now) {
                    Ok(r) => {
                        let s = format!(
                            "the site is UNPROTECTED (no replica in another region) while re-protecting into {} ({} of {}), then the back leg in a maintenance window",
                            r.replica.region, r.replica.id, r.source
                        );
                        next.reprotect = Some(r);
                        drill.phase = DrillPhase::Reprotecting;
                        s
                    }
                    Err(e) => {
                        let s = format!("the way back could not start: {e}; the site stays on {} (DNS points at it): `reprotect` and `failback` by hand", rec.target);
                        end(&mut drill, DrillPhase::Abandoned, s.clone(), now);
                        s
                    }
                }
            } else {
                drill.phase = DrillPhase::Back;
                format!("the back leg to {} starts at the next tick", drill.home)
            }
        }
        ("done", Leg::Back) => 'back: {
            if !rec.failback {
                if let Err(e) = complete_epoch(site, next, rec, now) {
                    let s = not_completed(rec, &e);
                    end(&mut drill, DrillPhase::Abandoned, s.clone(), now);
                    break 'back s;
                }
            }
            let out = drill.leg(Leg::Out).cloned();
            let s = format!(
                "the drill is done: the writer is {} again; out leg RTO {} RPO {}, back leg RTO {} RPO {}{}",
                rec.target,
                rto_text(out.as_ref().and_then(|l| l.rto_ms)),
                rpo_text(out.and_then(|l| l.rpo_transactions)),
                rto_text(rec.measured.as_ref().map(|m| m.rto_ms)),
                rpo_text(rec.measured.as_ref().and_then(|m| m.rpo_transactions)),
                if rec.failback {
                    format!(
                        "; {} is a new instance, and the DR side has NO replica: the site is UNPROTECTED until you `reprotect` into the DR region (change `reprotect.region` first); {} and the old primary are left fenced (see the runbook, §10c)",
                        rec.target, rec.old_primary
                    )
                } else {
                    String::new()
                },
            );
            end(&mut drill, DrillPhase::Done, s.clone(), now);
            s
        }
        ("rolled-back", Leg::Out) => {
            let s = format!(
                "the drill is ROLLED BACK: the site stays on {} (given its writes back), DNS untouched, nothing moved to {}",
                rec.old_primary, rec.target
            );
            end(&mut drill, DrillPhase::RolledBack, s.clone(), now);
            s
        }
        ("rolled-back", Leg::Back) => {
            let s = format!(
                "the drill is ROLLED BACK on its way back: the site stays on the DR side, {} (given its writes back; DNS still points at it); `failback` when ready",
                rec.old_primary
            );
            end(&mut drill, DrillPhase::RolledBack, s.clone(), now);
            s
        }
        _ => {
            let s = format!(
                "the drill is ABANDONED: {}; finish by hand (see the switchover's message)",
                rec.failure.clone().unwrap_or_default()
            );
            end(&mut drill, DrillPhase::Abandoned, s.clone(), now);
            s
        }
    };
    let summary = match measured {
        Some(m) => format!("{head}: {m}; {summary}"),
        None => format!("{head}; {summary}"),
    };
    next.outbox.push(event(site, next, &drill, summary, now));
    keep(next, drill);
}

/// The done leg's epoch completed (the ledger's topology names the new writer); `Err`: why not.
fn complete_epoch(
    site: &SiteConfig,
    next: &mut SiteState,
    rec: &SwitchoverRecord,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let topo = crate::topology::after_pinned_failover(site, next, now).map_err(|e| e.0)?;
    next.topology = Some(topo);
    let note = format!("DRILL leg completed: {} is the writer", rec.target);
    match next.transition(rec.epoch, Phase::Completed, now, note) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// A done leg whose epoch could not be completed: the drill ends, saying where the site is.
fn not_completed(rec: &SwitchoverRecord, e: &str) -> String {
    format!(
        "the drill is ABANDONED: the leg is done ({} is the writer, DNS points at it) but its epoch {} could not be completed ({e}); send `complete` naming epoch {} once checked, then `reprotect` / `failback` by hand",
        rec.target, rec.epoch, rec.epoch
    )
}

fn end(drill: &mut DrillRecord, phase: DrillPhase, note: String, now: DateTime<Utc>) {
    drill.phase = phase;
    drill.ended_at = Some(now);
    drill.note = Some(note);
}

/// The drill written back; an ended one also goes into the history (the last [`HISTORY`]).
fn keep(st: &mut SiteState, drill: DrillRecord) {
    if drill.phase.is_terminal() {
        st.drills.retain(|d| d.number != drill.number);
        st.drills.push(drill.clone());
        let extra = st.drills.len().saturating_sub(HISTORY);
        st.drills.drain(..extra);
    }
    st.drill = Some(drill);
}

/// After any decision: a real incident — a failover decided, or awaiting approval, for an epoch
/// that is no drill leg — wins over a drill in flight: the drill is abandoned, with a message.
pub fn watch(site: &SiteConfig, next: &mut SiteState, now: DateTime<Utc>) {
    let Some(mut drill) = in_flight(next).cloned() else {
        return;
    };
    let drill_leg = next
        .switchover
        .as_ref()
        .is_some_and(|s| s.drill && s.epoch == next.epoch);
    let real = matches!(
        next.phase,
        Phase::Promoting | Phase::AwaitingApproval | Phase::Promoted | Phase::DnsPinned
    ) && !drill_leg;
    if !real {
        return;
    }
    let s = format!(
        "DRILL {} ABANDONED: a real incident (epoch {}, {}) wins; the drill starts no further leg. The site is where the incident leaves it (the drill had {} legs done)",
        drill.number,
        next.epoch,
        next.phase,
        drill.legs.iter().filter(|l| l.outcome.as_deref() == Some("done")).count()
    );
    end(&mut drill, DrillPhase::Abandoned, s.clone(), now);
    next.outbox.push(event(site, next, &drill, s, now));
    keep(next, drill);
}

fn event(
    site: &SiteConfig,
    st: &SiteState,
    drill: &DrillRecord,
    summary: String,
    now: DateTime<Utc>,
) -> DomainEvent {
    let outcome = match drill.phase {
        DrillPhase::Done => Outcome::Completed,
        DrillPhase::RolledBack | DrillPhase::Abandoned => Outcome::Refused {
            reason: RefusalReason::NotDrillable,
        },
        _ => Outcome::Watch,
    };
    let event_type = match drill.phase {
        DrillPhase::RolledBack | DrillPhase::Abandoned => EventType::FailoverAborted,
        _ => EventType::FailoverCompleted,
    };
    DomainEvent {
        event_type,
        site: site.id.clone(),
        epoch: st.epoch,
        phase: st.phase,
        engine: site.engine.kind().into(),
        occurred_at: now,
        primary: Some(drill.home.clone()),
        candidate: Some(drill.target.clone()),
        rpo_override: None,
        verdict: Verdict {
            site: Some(site.id.clone()),
            epoch: st.epoch,
            phase: st.phase,
            outcome,
            summary: summary.clone(),
            guards: vec![GuardCheck::new(Guard::Command, GuardResult::Pass, summary)],
        },
        timeline: vec![],
    }
}

#[cfg(test)]
mod tests;
