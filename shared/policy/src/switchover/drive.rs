//! The glue between the ledger and the switchover state machine for the evaluator's tick (the
//! rds-replica driver): which record is driven, what the ledger already says happened (the fence
//! steps, the promoter's request and verification, the pin), and the record committed back —
//! with the rollback closing the epoch and carrying its one message.

use chrono::{DateTime, Utc};

use super::{Observation, SwPhase, SwitchoverRecord};
use crate::config::{Engine, SiteConfig};
use crate::events::{DomainEvent, EventType};
use crate::fence::{Step, StepState};
use crate::incident::{Phase, SiteState};
use crate::verdict::{GuardCheck, GuardResult, Outcome, RefusalReason, Verdict};

/// The fence steps a switchover waits for before it captures the position: `read_only=1` in
/// the group and over SQL, and the application sessions ended (none is left holding a
/// transaction across the capture, and the clients reconnect — through DNS, to the new primary
/// once it moves).
pub const FENCE_STEPS: [Step; 3] = [
    Step::ParameterReadOnly,
    Step::SqlReadOnly,
    Step::EndSessions,
];

/// The switchover record the tick drives for this site, if any: the current epoch's, not yet
/// finished. Every engine's: an Aurora or Multi-AZ switchover starts at `promoting` (AWS
/// synchronises and demotes), and the tick takes the promoter's verified writes and the pinner's
/// DNS change into it to `done`, as for an RDS read replica. A record of an engine that runs no
/// fence of ours is only ever driven from the ledger: the fence, capture, wait and undo phases
/// are the RDS read replica's alone.
pub fn driven<'a>(site: &SiteConfig, st: &'a SiteState) -> Option<&'a SwitchoverRecord> {
    st.switchover
        .as_ref()
        .filter(|s| s.epoch == st.epoch && !s.phase.is_terminal())
        .filter(|s| matches!(site.engine, Engine::RdsReplica) || !s.phase.before_promotion())
}

/// Whether the fence step may run before the promotion: `read_only` always (fence first), and
/// ending sessions for a switchover (its capture waits for it).
pub fn runs_before_promotion(st: &SiteState, step: Step) -> bool {
    let switchover = st.switchover.as_ref().filter(|s| s.epoch == st.epoch);
    match step {
        // A switchover's fence waits for the driver to record its start and the `read_only`
        // it found (a rollback restores exactly that, so it must be read before it changes).
        Step::ParameterReadOnly
            if switchover
                .is_some_and(|s| s.phase == SwPhase::Fencing && s.fence_started_at.is_none()) =>
        {
            false
        }
        Step::ParameterReadOnly | Step::SqlReadOnly => true,
        Step::EndSessions => st
            .switchover
            .as_ref()
            .is_some_and(|s| s.epoch == st.epoch && s.phase == SwPhase::Fencing),
        _ => false,
    }
}

/// What the ledger says happened that the record has not taken in yet, and when: the fence
/// steps (worked by the tick's fence reconciler), the promoter's request and write check, the
/// pinner's DNS change, or an epoch that failed. `now` times what the ledger does not time.
pub fn from_ledger(
    st: &SiteState,
    rec: &SwitchoverRecord,
    now: DateTime<Utc>,
) -> Option<(Observation, DateTime<Utc>)> {
    let promotion = st.promotion.as_ref().filter(|p| p.epoch == rec.epoch);
    match rec.phase {
        SwPhase::Fencing => fence_observation(st, rec, now),
        SwPhase::Promoting => promotion
            .map(|p| (Observation::PromotionRequested, p.requested_at))
            .or_else(|| closed_unrequested(st, rec, now)),
        SwPhase::VerifyingWrites => {
            if let Some(at) = promotion.and_then(|p| p.writable_verified_at) {
                return Some((Observation::WritesVerified, at));
            }
            failed(st, rec, now)
        }
        SwPhase::MovingDns => {
            let pinned = st.dns.as_ref().filter(|d| d.epoch == rec.epoch);
            if let Some(at) = pinned.and_then(|d| d.insync_at) {
                return Some((Observation::DnsMoved, at));
            }
            failed(st, rec, now)
        }
        _ => None,
    }
}

/// The epoch failed after the promotion was requested (the promoter or the pinner gave up):
/// the record rolls forward only, and says so once.
fn failed(
    st: &SiteState,
    rec: &SwitchoverRecord,
    now: DateTime<Utc>,
) -> Option<(Observation, DateTime<Utc>)> {
    if st.epoch != rec.epoch || st.phase != Phase::Failed || rec.failure.is_some() {
        return None;
    }
    let why = st
        .timeline
        .last()
        .map(|t| t.note.clone())
        .unwrap_or_else(|| "the epoch failed".into());
    Some((Observation::Failed(why), now))
}

/// The epoch closed (aborted by an operator, failed by the promoter's pre-checks or deadline)
/// while the record waited for the promotion, and the ledger holds no promotion record for it:
/// RDS was never asked (the promoter records before it asks, with compare-and-set on an open
/// epoch), so the target is still a replica and the old primary — read-only since the fence —
/// must be given its writes back. Without this the record would wait at `promoting` forever with
/// the site's only writer read-only.
fn closed_unrequested(
    st: &SiteState,
    rec: &SwitchoverRecord,
    now: DateTime<Utc>,
) -> Option<(Observation, DateTime<Utc>)> {
    if st.epoch != rec.epoch || st.phase.is_open() || rec.promotion_requested_at.is_some() {
        return None;
    }
    let why = st
        .timeline
        .last()
        .map(|t| t.note.clone())
        .unwrap_or_else(|| format!("the epoch is {}", st.phase));
    Some((
        Observation::Failed(format!(
            "the epoch ended before RDS was asked to promote: {why}"
        )),
        now,
    ))
}

/// Fenced once every step of [`FENCE_STEPS`] is observed (ending sessions counts as done where
/// the site's plan does not apply it), at the last one's time; refused as soon as one is.
/// Before any of that, the fence's start is `now` — the driver records it before the fence
/// reconciler's first call, so the write unavailability measured is never less than paid.
fn fence_observation(
    st: &SiteState,
    rec: &SwitchoverRecord,
    now: DateTime<Utc>,
) -> Option<(Observation, DateTime<Utc>)> {
    if rec.fence_started_at.is_none() {
        return Some((Observation::FenceAsked, now));
    }
    let f = st.fence.as_ref().filter(|f| f.epoch == rec.epoch)?;
    let mut last = None;
    for step in FENCE_STEPS {
        match f.state(step) {
            Some(StepState::Done { at, .. }) => last = last.max(Some(*at)),
            Some(StepState::NotApplicable { .. }) if step == Step::EndSessions => {}
            Some(StepState::Refused { reason }) | Some(StepState::NotApplicable { reason }) => {
                let why = format!("{}: {reason}", step.as_str());
                return Some((Observation::FenceRefused(why), now));
            }
            _ => return None,
        }
    }
    Some((Observation::Fenced, last.unwrap_or(now)))
}

/// The state to commit with `rec` (`None`: nothing changed). A record that has just started
/// rolling back closes the epoch (`aborted`: the promoter's compare-and-set can no longer
/// request a promotion for it) and carries the one message people get.
pub fn commit(
    site: &SiteConfig,
    st: &SiteState,
    rec: SwitchoverRecord,
    message: Option<String>,
    now: DateTime<Utc>,
) -> Option<SiteState> {
    if st.switchover.as_ref() == Some(&rec) && message.is_none() {
        return None;
    }
    let mut next = st.clone();
    let undone = |p: Option<SwPhase>| matches!(p, Some(SwPhase::RollingBack | SwPhase::RolledBack));
    let rolling_back = undone(Some(rec.phase)) && st.phase == Phase::Promoting;
    next.switchover = Some(rec.clone());
    if rolling_back {
        let why = rec
            .rollback
            .as_ref()
            .map(|r| r.why.clone())
            .unwrap_or_default();
        next.transition(
            rec.epoch,
            Phase::Aborted,
            now,
            format!("{} rolled back before the promotion: {why}", rec.kind()),
        )
        .ok()?;
    }
    // One message on entering the rollback, whether this commit closes the epoch or it was
    // closed already (an operator's abort, the promoter's pre-checks): people must learn that
    // the old primary is being given its writes back.
    // A failback's switchover just done: its second step (the epoch completed, the writer
    // name's recorded shape requested back) is written in this same commit.
    let was_done = st.switchover.as_ref().map(|s| s.phase) == Some(SwPhase::Done);
    if rec.failback && rec.phase == SwPhase::Done && !was_done {
        crate::failback::finish(site, &mut next, &rec, now);
    }
    crate::drill::on_switchover(site, st, &mut next, &rec, now);
    let entering = undone(Some(rec.phase)) && !undone(st.switchover.as_ref().map(|s| s.phase));
    if let Some(summary) = message.filter(|_| entering) {
        next.outbox
            .push(rolled_back_event(site, &next, &rec, summary, now));
    }
    next.version += 1;
    next.updated_at = Some(now);
    Some(next)
}

fn rolled_back_event(
    site: &SiteConfig,
    st: &SiteState,
    rec: &SwitchoverRecord,
    summary: String,
    now: DateTime<Utc>,
) -> DomainEvent {
    let why = rec
        .rollback
        .as_ref()
        .map(|r| r.why.clone())
        .unwrap_or_default();
    DomainEvent {
        event_type: EventType::FailoverAborted,
        site: site.id.clone(),
        epoch: st.epoch,
        phase: st.phase,
        engine: site.engine.kind().into(),
        occurred_at: now,
        primary: Some(rec.old_primary.clone()),
        candidate: Some(rec.target.clone()),
        rpo_override: None,
        verdict: Verdict {
            site: Some(site.id.clone()),
            outcome: Outcome::Refused {
                reason: RefusalReason::SwitchoverRolledBack,
            },
            epoch: st.epoch,
            phase: st.phase,
            summary,
            guards: vec![GuardCheck::new(
                crate::verdict::Guard::Rpo,
                GuardResult::Fail,
                why,
            )],
        },
        timeline: st.timeline.clone(),
    }
}

#[cfg(test)]
mod tests;
