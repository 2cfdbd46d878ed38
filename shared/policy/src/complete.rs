//! `complete` naming the configured primary: a human failed back by hand, and the configuration
//! describes the site again. Accepted only on evidence that the configured primary is a live,
//! standalone writer — a mistaken `complete` must never hand automation back to a dead primary's
//! topology (its replicas would become candidates again).

use crate::decide::{refuse_command, Ctx, Decision};
use crate::events::EventType;
use crate::evidence::{CanaryResult, Evidence};
use crate::incident::{Phase, SiteState};
use crate::signal::OperatorCommand;
use crate::verdict::{Guard, GuardCheck, GuardResult, Outcome, RefusalReason};

/// Whether `complete` names the configured primary as the writer (then [`back_to_configuration`]
/// decides).
pub(crate) fn names_configured(cx: &Ctx<'_>, cmd: &OperatorCommand) -> bool {
    cmd.primary.as_deref() == Some(cx.configured.primary.id.as_str())
}

pub(crate) fn back_to_configuration(
    mut cx: Ctx<'_>,
    original: &SiteState,
    cmd: &OperatorCommand,
    ev: Option<&Evidence>,
) -> Decision {
    let configured = cx.configured.primary.clone();
    let epoch = cmd.epoch.unwrap_or(0);
    let pinned_now = cx.st.phase == Phase::DnsPinned && cx.st.epoch == epoch;
    let ledger_epoch = cx.st.topology.as_ref().map(|t| t.epoch);
    if !pinned_now && ledger_epoch != Some(epoch) {
        let d = format!(
            "nothing to complete: `complete` names epoch {epoch}, the site is {} at epoch {} and the ledger's topology is from epoch {}",
            cx.st.phase,
            cx.st.epoch,
            ledger_epoch.map_or("none".into(), |e| e.to_string())
        );
        return refuse(cx, original, d);
    }
    // data-plane-switch: once the metric was put for this epoch Route 53 answers (or, the alarm
    // latching, will answer) the SECONDARY; handing the site back to the configured primary now
    // would make two writers. Unpin (which sets the switch back) comes after a completion.
    if let Some(s) = crate::dataplane::switch_put(&cx.st).filter(|_| pinned_now) {
        let d = format!(
            "cannot hand epoch {epoch} back to the configuration ({configured}): the data-plane switch was put for it, so Route 53 answers — or at any moment will answer — {}, the promoted writer: two writers. Complete it naming the promoted writer, then fail back and unpin (docs/runbook.md)",
            s.host
        );
        return refuse(cx, original, d);
    }
    if let Err(why) = live_standalone(&cx, ev) {
        let d = format!("cannot hand the site back to the configuration: {configured} {why}");
        return refuse(cx, original, d);
    }
    let by = cmd.by().unwrap_or_else(|| "an operator".into());
    let why = cmd.reason.clone().unwrap_or_default();
    let d = format!(
        "epoch {epoch} completed by {by}: {why}; {configured} is the writer again, the configuration is the topology"
    );
    cx.guard(GuardCheck::new(
        Guard::Command,
        GuardResult::Pass,
        d.clone(),
    ));
    cx.st.topology = None;
    if pinned_now {
        cx.move_to(Phase::Completed, &d);
    }
    let o = Outcome::Completed;
    cx.event(EventType::FailoverCompleted, &d, &o);
    cx.finish(original, o, d)
}

/// The configured primary, as the evidence shows it: `available`, and no replica of the ledger's
/// writer; while the configuration is the topology, the canary must also reach it.
fn live_standalone(cx: &Ctx<'_>, ev: Option<&Evidence>) -> Result<(), String> {
    let ev = ev.ok_or("could not be observed (no evidence gathered)")?;
    let id = &cx.configured.primary.id;
    if cx.site.primary.id == *id {
        if !ev.primary.is_available() {
            return Err(format!("is `{}`, not available", ev.primary.describe()));
        }
        return match &ev.canary {
            CanaryResult::Reachable { .. } => Ok(()),
            c => Err(format!("does not answer the canary ({c:?})")),
        };
    }
    let c = ev
        .candidates
        .iter()
        .find(|c| c.db.id == *id)
        .ok_or("was not observed")?;
    if !c.status.is_available() {
        return Err(format!("is `{}`, not available", c.status.describe()));
    }
    match c.replica_of_primary {
        Some(false) => Ok(()),
        Some(true) => Err(format!("still replicates from {}", cx.site.primary)),
        None => Err("has a replication topology that could not be read".into()),
    }
}

fn refuse(mut cx: Ctx<'_>, original: &SiteState, d: String) -> Decision {
    cx.guard(GuardCheck::new(
        Guard::Command,
        GuardResult::Fail,
        d.clone(),
    ));
    refuse_command(cx, original, RefusalReason::NothingToComplete, d)
}
