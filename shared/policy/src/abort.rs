//! `abort`: a human abandons an epoch that no database acted on.
//!
//! Allowed while the incident is open and nothing was asked of RDS (suspected, awaiting
//! approval, refused, shadowed, or `promoting` with no promotion recorded: a Lambda killed
//! between the decision and the request), and for a recorded request the evidence shows did not
//! happen: the candidate is `available` and still replicates from the primary at least
//! [`ABORT_AFTER_REQUEST_SECS`] after it was asked. Refused once the candidate was promoted (the
//! epoch then ends through DNS and `complete`, or fails and is resolved).

use crate::config::DbRef;
use crate::decide::{refuse_command, Ctx, Decision};
use crate::events::EventType;
use crate::evidence::Evidence;
use crate::incident::{Phase, SiteState};
use crate::signal::OperatorCommand;
use crate::verdict::{Guard, GuardCheck, GuardResult, Outcome, RefusalReason};

/// How long after a recorded request an unchanged candidate counts as "not promoted": RDS starts
/// a PromoteReadReplica within minutes (the instance goes `modifying`), so a replica still
/// `available` and attached after this long was not acted on.
pub const ABORT_AFTER_REQUEST_SECS: i64 = 600;

pub(crate) fn abort(
    mut cx: Ctx<'_>,
    original: &SiteState,
    cmd: &OperatorCommand,
    ev: Option<&Evidence>,
) -> Decision {
    let by = cmd.by().unwrap_or_else(|| "an operator".into());
    let why = cmd.reason.clone().unwrap_or_default();
    let epoch = cx.st.epoch;
    if cmd.epoch != Some(epoch) || !cx.st.phase.is_open() || cx.st.phase == Phase::DnsPinned {
        let d = format!(
            "nothing to abort: `abort` names epoch {}, the site is {} at epoch {epoch}",
            cmd.epoch.unwrap_or(0),
            cx.st.phase
        );
        return refuse(cx, original, d);
    }
    let requested = cx.st.promotion.clone().filter(|p| p.epoch == epoch);
    if cx.st.phase == Phase::Promoted {
        let d = format!(
            "epoch {epoch} was promoted: it ends by pinning DNS (or failing), not by abort"
        );
        return refuse(cx, original, d);
    }
    let mut resolved = None;
    if let Some(p) = &requested {
        match not_promoted(&cx, ev, &p.candidate, p.requested_at) {
            Ok(seen) => resolved = Some(seen),
            Err(d) => return refuse(cx, original, d),
        }
    }
    let what = match &resolved {
        Some(seen) => format!("the recorded promotion was observed not to have happened ({seen})"),
        None => "no promotion was asked of RDS".to_string(),
    };
    // RDS documents no moment after which a requested promotion can no longer happen, so an
    // aborted request keeps holding automation (`unresolved-promotion`): only a human's
    // `complete` naming this epoch, once the candidate is dealt with, lets a second one go.
    let hold = if resolved.is_some() {
        "; automatic failover stays held until a human sends `complete` naming this epoch once the candidate is fenced off"
    } else {
        ""
    };
    // A forced failover fences the old primary before RDS is asked: aborting it then may leave
    // the site with no writer until a human lifts the fence.
    let unfence = crate::fence::held_note(&cx.st)
        .map(|n| format!("; {n}"))
        .unwrap_or_default();
    let d = format!("epoch {epoch} aborted by {by}: {why}; {what}{hold}{unfence}");
    cx.guard(GuardCheck::new(
        Guard::Command,
        GuardResult::Pass,
        d.clone(),
    ));
    cx.move_to(Phase::Aborted, &d);
    let s = format!("{d}; automation watches the site again");
    let o = Outcome::Watch;
    cx.event(EventType::FailoverAborted, &s, &o);
    cx.finish(original, o, s)
}

fn refuse(mut cx: Ctx<'_>, original: &SiteState, d: String) -> Decision {
    cx.guard(GuardCheck::new(
        Guard::Command,
        GuardResult::Fail,
        d.clone(),
    ));
    refuse_command(cx, original, RefusalReason::NothingToAbort, d)
}

/// The evidence that a recorded request was not acted on, or why it is not proof.
fn not_promoted(
    cx: &Ctx<'_>,
    ev: Option<&Evidence>,
    candidate: &DbRef,
    requested_at: chrono::DateTime<chrono::Utc>,
) -> Result<String, String> {
    let age = (cx.now - requested_at).num_seconds();
    let c = ev.and_then(|e| e.candidates.iter().find(|c| c.db == *candidate));
    let unchanged =
        c.is_some_and(|c| c.status.is_available() && c.replica_of_primary == Some(true));
    if unchanged && age >= ABORT_AFTER_REQUEST_SECS {
        return Ok(format!(
            "{candidate} is available and still replicates from {}, {age} s after the request",
            cx.site.primary
        ));
    }
    let seen = c
        .map(|c| {
            format!(
                "status {}, replica of the primary: {:?}",
                c.status.describe(),
                c.replica_of_primary
            )
        })
        .unwrap_or_else(|| "no evidence of it".into());
    Err(format!(
        "RDS was asked to promote {candidate} {age} s ago and it may still happen ({seen}); \
         abort is allowed once it is seen available and replicating {ABORT_AFTER_REQUEST_SECS} s after the request"
    ))
}
