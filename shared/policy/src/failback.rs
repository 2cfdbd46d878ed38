//! `failback`: back to the original region, as one command — a planned switchover (the same
//! epoch machinery as [`crate::switchover`]: fence, capture, catch-up, RPO 0, rollback before the
//! promotion) to the site's replica in its **original** region, and, once that switchover is
//! `done`, the epoch completed (the ledger's topology names the new writer) and the writer name's
//! recorded shape requested back through the unpin path ([`crate::unpin`]: the dns-pinner
//! restores it in one compare-and-set batch, only if its main record names the writer now).
//!
//! Refused, with a typed reason and before anything is fenced ([`Refused`]), unless:
//! - no incident or switchover is open;
//! - the writer is not in the original region already (the configured primary's region);
//! - the ledger's topology has a replica in the original region that is `available`,
//!   replicating from the writer, with its lag within the switchover's start bound — the site is
//!   re-protected there (`reprotect`). A replica elsewhere is not a failback target.

use chrono::{DateTime, Utc};

use crate::config::{DbRef, SiteConfig};
use crate::decide::{refuse_command, Ctx, Decision};
use crate::events::{DomainEvent, EventType};
use crate::evidence::{CandidateEvidence, DbObservation, Evidence};
use crate::incident::{Phase, SiteState};
use crate::signal::OperatorCommand;
use crate::switchover::{SwitchoverRecord, MAX_START_LAG_SECS};
use crate::unpin::UnpinRecord;
use crate::verdict::{Guard, GuardCheck, GuardResult, Outcome, RefusalReason, Verdict};

/// Why a `failback` is refused. Every refusal is made before any AWS call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("site {site} is {phase} at epoch {epoch}: an incident or switchover is open; fail back once it is closed")]
    IncidentOpen {
        site: String,
        phase: Phase,
        epoch: u64,
    },
    #[error("site {site}'s writer {writer} is in its original region {region} already: nothing to fail back")]
    NotFailedOver {
        site: String,
        writer: DbRef,
        region: String,
    },
    #[error("site {site} is not re-protected in its original region {region}: {detail} (run `reprotect` into {region} and wait until it is protected)")]
    NotReprotected {
        site: String,
        region: String,
        detail: String,
    },
    #[error("site {site}'s replicas of {writer} ready for a switchover are in {elsewhere}, not in its original region {region}: a failback goes back to {region} (`reprotect` into it; a move to another region is a `switchover`)")]
    ReplicaElsewhere {
        site: String,
        writer: DbRef,
        region: String,
        elsewhere: String,
    },
}

/// The original region: the configured primary's (the configuration describes the site as
/// deployed; the ledger's topology holds where it runs now).
pub fn original_region(configured: &SiteConfig) -> &str {
    &configured.primary.region
}

fn status(c: &CandidateEvidence) -> &str {
    match &c.status {
        DbObservation::Status { status } => status,
        _ => "unreadable",
    }
}

/// Available, replicating from the writer, lag read and within `bound` seconds.
fn ready(c: &CandidateEvidence, bound: f64) -> bool {
    status(c) == "available"
        && c.replica_of_primary == Some(true)
        && c.lag_secs.is_some_and(|l| l <= bound)
}

fn describe(c: &CandidateEvidence) -> String {
    let from = match c.replica_of_primary {
        Some(true) => "replicating from the writer",
        Some(false) => "not replicating from the writer",
        None => "replication unreadable",
    };
    let lag = c
        .lag_secs
        .map(|l| format!("lag {l} s"))
        .unwrap_or_else(|| "lag unknown".into());
    format!("{} is {}, {from}, {lag}", c.db, status(c))
}

/// The failback's target, judged on the ledger and the gathered evidence (`live`: the site as
/// the ledger's topology describes it; `configured`: as deployed).
pub fn target(
    configured: &SiteConfig,
    live: &SiteConfig,
    st: &SiteState,
    ev: &Evidence,
) -> Result<DbRef, Refused> {
    let site = configured.id.clone();
    if st.phase.is_open() {
        return Err(Refused::IncidentOpen {
            site,
            phase: st.phase,
            epoch: st.epoch,
        });
    }
    let region = original_region(configured).to_string();
    if live.primary.region == region {
        return Err(Refused::NotFailedOver {
            site,
            writer: live.primary.clone(),
            region,
        });
    }
    let bound = MAX_START_LAG_SECS.min(live.thresholds.max_lag_secs as f64);
    let known = |c: &&CandidateEvidence| live.candidates.contains(&c.db);
    let home: Vec<&CandidateEvidence> = ev
        .candidates
        .iter()
        .filter(known)
        .filter(|c| c.db.region == region)
        .collect();
    if let Some(c) = home.iter().find(|c| ready(c, bound)) {
        return Ok(c.db.clone());
    }
    if !home.is_empty() {
        let detail = home
            .iter()
            .map(|c| describe(c))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Refused::NotReprotected {
            site,
            region,
            detail: format!("{detail} (a target must be available, replicating, lag ≤ {bound} s)"),
        });
    }
    let elsewhere: Vec<String> = ev
        .candidates
        .iter()
        .filter(known)
        .filter(|c| ready(c, bound))
        .map(|c| format!("{} ({})", c.db.id, c.db.region))
        .collect();
    if !elsewhere.is_empty() {
        return Err(Refused::ReplicaElsewhere {
            site,
            writer: live.primary.clone(),
            region,
            elsewhere: elsewhere.join(", "),
        });
    }
    Err(Refused::NotReprotected {
        site,
        detail: format!(
            "the ledger's topology has no replica of {} there",
            live.primary
        ),
        region,
    })
}

/// The in-flight failback of the current epoch, if any (a repeated command is its duplicate).
fn in_flight(st: &SiteState) -> Option<&SwitchoverRecord> {
    st.switchover
        .as_ref()
        .filter(|s| s.failback && s.epoch == st.epoch && st.phase.is_open())
}

/// The evaluator's `failback`: judge it, then start the switchover to the original region's
/// replica, recorded as a failback.
pub(crate) fn command(
    mut cx: Ctx<'_>,
    original: &SiteState,
    cmd: &OperatorCommand,
    ev: Option<&Evidence>,
) -> Decision {
    let mut sw = cmd.clone();
    if let Some(rec) = in_flight(&cx.st) {
        // The switchover's own admission answers it as a duplicate.
        sw.candidate = Some(rec.target.id.clone());
        return crate::switchover::command::switchover_as(cx, original, &sw, ev, true, false);
    }
    let Some(ev) = ev else {
        return cx.finish(original, Outcome::Watch, "no evidence gathered".into());
    };
    let target = match target(cx.configured, cx.site, &cx.st, ev) {
        Ok(t) => t,
        Err(e) => {
            let d = e.to_string();
            cx.guard(GuardCheck::new(
                Guard::Candidate,
                GuardResult::Fail,
                d.clone(),
            ));
            return refuse_command(cx, original, RefusalReason::NotFailbackable, d);
        }
    };
    cx.guard(GuardCheck::new(
        Guard::Candidate,
        GuardResult::Pass,
        format!(
            "failback to {target}: re-protected in the original region {} (replicating from {})",
            original_region(cx.configured),
            cx.site.primary
        ),
    ));
    sw.candidate = Some(target.id.clone());
    crate::switchover::command::switchover_as(cx, original, &sw, Some(ev), true, false)
}

/// Why `complete` is refused while a failback is in flight (its epoch is the site's and the
/// site's phase is still open: neither done nor rolled back): the failback completes the epoch
/// itself once the switchover is done, on its own topology, and restores the writer name; a
/// hand-made `complete` in between would write another topology under it.
pub fn complete_refused(st: &SiteState) -> Option<String> {
    let rec = in_flight(st)?;
    Some(format!(
        "cannot complete epoch {}: it is the failback of {} → {} ({} by {}), in flight ({}); the failback completes the epoch itself once its switchover is done, then restores the writer name — nothing to do by hand (roll back: the switchover does so by itself if the target does not catch up)",
        rec.epoch,
        rec.old_primary,
        rec.target,
        rec.reason,
        rec.by,
        rec.phase.as_str()
    ))
}

/// The second step of a failback, when its switchover has just reached `done` (the driver's
/// commit, `next` holding the done record): the epoch is completed on the ledger's topology
/// (the pinned target is the writer) and the writer name's recorded shape is requested back
/// (`UnpinRequested`, which the dns-pinner carries out) — or the message says why it stays
/// pinned. Every step is written in the one commit of the `done` record.
pub fn finish(site: &SiteConfig, next: &mut SiteState, rec: &SwitchoverRecord, now: DateTime<Utc>) {
    let m = rec.measured.as_ref();
    let head = format!(
        "{}failback switchover of site writer {} → {} done: write unavailability {} ms, RPO {} transactions",
        if rec.drill { "DRILL " } else { "" },
        rec.old_primary,
        rec.target,
        m.map(|m| m.rto_ms).unwrap_or_default(),
        m.and_then(|m| m.rpo_transactions)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "unmeasured (engine-managed)".into())
    );
    let topo = match crate::topology::after_pinned_failover(site, next, now) {
        Ok(t) => t,
        Err(crate::topology::NotPinned(why)) => {
            let s = format!(
                "{head}; the epoch is NOT completed ({why}): `complete` it by hand, then `unpin`"
            );
            next.outbox
                .push(event(site, next, rec, EventType::FailoverCompleted, s, now));
            return;
        }
    };
    next.topology = Some(topo);
    let note = format!("failback completed: {} is the writer", rec.target);
    if next
        .transition(rec.epoch, Phase::Completed, now, note)
        .is_err()
    {
        return;
    }
    let (kind, dns) = match crate::unpin::check(site, next) {
        Ok(r) => {
            next.unpin = Some(UnpinRecord {
                epoch: r.dns.epoch,
                by: rec.by.clone(),
                reason: format!("failback: {}", rec.reason),
                requested_at: now,
                change_id: None,
                restored_at: None,
                failed: None,
                switched_back_at: None,
                continued_at: None,
                primary_change_id: None,
                primary_restored_at: None,
            });
            let s = format!(
                "failback: the dns-pinner restores {} to {} (recorded before epoch {} pinned it; {} is the writer)",
                r.dns.name,
                crate::pin::describe_records(&r.records),
                r.dns.epoch,
                r.writer_host
            );
            (Some(s.clone()), s)
        }
        Err(e) => (None, format!("failback: the writer name stays pinned: {e}")),
    };
    let s = format!("{head}; the epoch is completed; {dns}");
    next.outbox
        .push(event(site, next, rec, EventType::FailoverCompleted, s, now));
    if let Some(s) = kind {
        next.outbox
            .push(event(site, next, rec, EventType::UnpinRequested, s, now));
    }
}

fn event(
    site: &SiteConfig,
    st: &SiteState,
    rec: &SwitchoverRecord,
    event_type: EventType,
    summary: String,
    now: DateTime<Utc>,
) -> DomainEvent {
    let outcome = match event_type {
        EventType::FailoverCompleted => Outcome::Completed,
        _ => Outcome::Watch,
    };
    DomainEvent {
        event_type,
        site: site.id.clone(),
        epoch: rec.epoch,
        phase: st.phase,
        engine: site.engine.kind().into(),
        occurred_at: now,
        primary: Some(rec.target.clone()),
        candidate: Some(rec.target.clone()),
        rpo_override: None,
        verdict: Verdict {
            site: Some(site.id.clone()),
            epoch: rec.epoch,
            phase: st.phase,
            outcome,
            summary: summary.clone(),
            guards: vec![GuardCheck::new(Guard::Command, GuardResult::Pass, summary)],
        },
        timeline: st.timeline.clone(),
    }
}

#[cfg(test)]
mod tests;
