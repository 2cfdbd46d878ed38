//! The evaluator's `switchover` command: deduplicate, judge the preconditions like a verdict,
//! and record the epoch — the switchover record, the fence intent, the decision — in one
//! compare-and-set write, with `FailoverDecided` in its outbox (the promoter carries it out).

use super::{admit, preconditions, start, Admit, Observed, Request};
use crate::config::{DbRef, Engine};
use crate::decide::{refuse_command, Ctx, Decision};
use crate::events::EventType;
use crate::evidence::{CanaryResult, Evidence};
use crate::incident::{Decision as Decided, DecisionTrigger, Forced, Phase, SiteState};
use crate::signal::OperatorCommand;
use crate::verdict::{Guard, GuardCheck, GuardResult, Outcome, RefusalReason};

/// What the gathered evidence says about the preconditions.
pub fn observed(ev: &Evidence, st: &SiteState, target: &DbRef) -> Observed {
    let c = ev.candidates.iter().find(|c| c.db == *target);
    let (target_status, target_replicating, target_lag_secs) = match c {
        Some(c) => (
            match &c.status {
                crate::evidence::DbObservation::Status { status } => Some(status.clone()),
                _ => None,
            },
            c.replica_of_primary,
            c.lag_secs,
        ),
        // Multi-AZ: the "target" is the primary itself (its standby).
        None => (
            ev.primary.is_available().then(|| "available".to_string()),
            None,
            None,
        ),
    };
    Observed {
        primary_available: ev.primary.is_available(),
        primary_reachable: matches!(ev.canary, CanaryResult::Reachable { .. }),
        target_status,
        target_replicating,
        target_lag_secs,
        backup_running: st.backups_running.contains(&target.id),
        primary_gtid: ev.primary_gtid,
        target_read_only_group: ev.read_only_group_of(&target.id).map(str::to_string),
    }
}

pub(crate) fn switchover(
    cx: Ctx<'_>,
    original: &SiteState,
    cmd: &OperatorCommand,
    ev: Option<&Evidence>,
) -> Decision {
    switchover_as(cx, original, cmd, ev, false, false)
}

/// A switchover to `cmd.candidate`; `failback`: it is a `failback`'s (see [`crate::failback`]),
/// recorded as such so its end completes the epoch and restores the writer name's shape.
pub(crate) fn switchover_as(
    mut cx: Ctx<'_>,
    original: &SiteState,
    cmd: &OperatorCommand,
    ev: Option<&Evidence>,
    failback: bool,
    drill: bool,
) -> Decision {
    let by = cmd.by().unwrap_or_else(|| "an operator".into());
    let named = cmd.candidate.clone().unwrap_or_default();
    let target = match &cx.site.engine {
        Engine::MultiAz => Some(cx.site.primary.clone()).filter(|p| p.id == named),
        _ => cx.site.candidates.iter().find(|c| c.id == named).cloned(),
    };
    let Some(target) = target else {
        let d = format!(
            "`switchover` names {named}, which is not a candidate of site {} (candidates: {})",
            cx.site.id,
            cx.site
                .candidates
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        cx.guard(GuardCheck::new(
            Guard::Candidate,
            GuardResult::Fail,
            d.clone(),
        ));
        return refuse_command(cx, original, RefusalReason::NoHealthyCandidate, d);
    };
    let req = Request {
        target: target.clone(),
        by: by.clone(),
        reason: cmd.reason.clone().unwrap_or_default(),
        max_wait_secs: cmd.max_wait_secs,
        drill,
    };
    match admit(&cx.st, &req) {
        Admit::Start => {}
        Admit::Duplicate(d) => {
            cx.guard(GuardCheck::new(
                Guard::Duplicate,
                GuardResult::Fail,
                d.clone(),
            ));
            // A duplicate changes nothing, not even the dedupe memory.
            let cx = Ctx {
                st: original.clone(),
                ..cx
            };
            return cx.finish(original, Outcome::Watch, format!("duplicate: {d}"));
        }
        Admit::Busy(d) => {
            cx.guard(GuardCheck::new(
                Guard::InFlight,
                GuardResult::Fail,
                d.clone(),
            ));
            return refuse_command(cx, original, RefusalReason::AlreadyInFlight, d);
        }
    }
    if let Some(held) = crate::decide::unpinned_promotion(&cx.st) {
        let d = format!(
            "epoch {}'s promotion of {} was requested and never pinned: resolve it (`complete`) before a switchover",
            held.epoch, held.candidate
        );
        cx.guard(GuardCheck::new(
            Guard::InFlight,
            GuardResult::Fail,
            d.clone(),
        ));
        return refuse_command(cx, original, RefusalReason::UnresolvedPromotion, d);
    }
    let Some(ev) = ev else {
        return cx.finish(original, Outcome::Watch, "no evidence gathered".into());
    };
    let seen = observed(ev, &cx.st, &target);
    match preconditions(cx.site, &cx.st, &req, &seen) {
        Err(r) => {
            for g in r.guards {
                cx.guard(g);
            }
            refuse_command(cx, original, r.reason, r.detail)
        }
        Ok(guards) => {
            for g in guards {
                cx.guard(g);
            }
            if super::runs_fence(&cx.site.engine) && !super::CARRIED_OUT_FOR_RDS_REPLICA {
                let d = format!(
                    "the preconditions hold, but this version does not yet carry out an {} switchover's capture of the fenced position and the target's catch-up wait (RPO 0 could not be guaranteed): nothing was fenced; use `failover` with `force` for a hand-checked move",
                    cx.site.engine.kind()
                );
                cx.guard(GuardCheck::new(
                    Guard::Command,
                    GuardResult::Fail,
                    d.clone(),
                ));
                return refuse_command(cx, original, RefusalReason::NotCarriedOut, d);
            }
            begin(cx, original, req, failback)
        }
    }
}

fn begin(mut cx: Ctx<'_>, original: &SiteState, req: Request, failback: bool) -> Decision {
    let now = cx.now;
    let what = match (req.drill, failback) {
        (true, true) => "DRILL failback",
        (true, false) => "DRILL switchover",
        (false, true) => "failback",
        (false, false) => "switchover",
    };
    let note = format!(
        "planned {what} to {} requested by {}: {}",
        req.target, req.by, req.reason
    );
    if cx.st.open_incident(now, note.clone()).is_err() {
        // admit() said the site is idle; a policy bug changes nothing.
        let d = "the site has an open incident".to_string();
        return refuse_command(cx, original, RefusalReason::AlreadyInFlight, d);
    }
    let epoch = cx.st.epoch;
    cx.st.candidate = Some(req.target.clone());
    cx.st.decision = Some(Decided {
        epoch,
        trigger: DecisionTrigger::PlannedSwitchover,
        at: now,
        by: Some(req.by.clone()),
        reason: Some(req.reason.clone()),
    });
    let mut record = start(cx.site, epoch, &req, now);
    record.failback = failback;
    // The fence intent, as a failover records it (steps "not applicable" where AWS demotes the
    // old writer itself).
    cx.st.fence = Some(crate::fence::intent(
        cx.site,
        epoch,
        Some(if super::runs_fence(&cx.site.engine) {
            "planned switchover: RPO 0 (the target applies the fenced position first)".into()
        } else {
            format!(
                "planned switchover: {} synchronises the target before it switches the writer",
                cx.site.engine.kind()
            )
        }),
        now,
    ));
    if super::runs_fence(&cx.site.engine) {
        // The fence runs before the promotion, as for a failover forced over a live primary:
        // the promoter asks RDS only once `read_only=1` is observed (crate::fence::fenced_first).
        cx.st.forced = Some(Forced {
            epoch,
            by: req.by.clone(),
            reason: format!("planned {what}: {}", req.reason),
            at: now,
            fence_first: true,
        });
    }
    let steps = if super::runs_fence(&cx.site.engine) {
        "fence the primary, capture its position, wait for the target to apply it, promote, verify writes, move DNS"
    } else {
        "the engine's own switchover (AWS synchronises and demotes the old writer), verify writes, move DNS"
    };
    cx.st.switchover = Some(record);
    cx.move_to(Phase::Promoting, &format!("{note}; {steps}"));
    cx.guard(GuardCheck::new(
        Guard::Command,
        GuardResult::Pass,
        format!(
            "{what} of epoch {epoch}: writes pause for at most {} s; rolled back if the target has not caught up by then",
            cx.st.switchover.as_ref().map(|s| s.max_wait_secs).unwrap_or_default()
        ),
    ));
    let s = format!(
        "planned {what} decided: {} → {} ({steps})",
        cx.site.primary, req.target
    );
    let o = Outcome::FailoverDecided {
        candidate: req.target,
    };
    cx.event(EventType::FailoverDecided, &s, &o);
    cx.finish(original, o, s)
}
