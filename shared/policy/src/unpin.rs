//! `unpin`: the writer name back to the record set the ledger recorded before the pin.
//!
//! The pinner records every record set of the writer name, exactly as Route 53 held them, before
//! it changes anything (`DnsRecord::previous_records`, [`crate::pin::record_previous`]). After a
//! failback (by hand, or by a switchover back) a team wants its original shape again — typically
//! the PRIMARY/SECONDARY failover pair with the PRIMARY's health check. `unpin` restores it in
//! ONE compare-and-set batch: DELETE the records exactly as the pin left them, CREATE the recorded
//! ones. Route 53 applies a batch all or nothing and refuses a DELETE whose values differ from the
//! current ones ("ChangeResourceRecordSets", Route 53 API Reference), so a human edit in between
//! fails the batch loudly instead of being overwritten.
//!
//! Where it runs: the evaluator judges the command against the ledger ([`command`]: the typed
//! refusals below, no AWS call) and records the request with an `UnpinRequested` event; the
//! dns-pinner — the only function allowed to change Route 53 — reads the records, judges them
//! ([`plan`]: the same refusals again, on the ledger as it is then, plus the compare-and-set),
//! changes them, waits for `INSYNC` and records it ([`mark_restored`], `DnsUnpinned`).
//!
//! What is allowed: the recorded set's *main* record — the simple CNAME, or the PRIMARY of a
//! failover pair, the record Route 53 answers while its health check is healthy — must name the
//! server that is the writer now, as the ledger says (the ledger's topology after a completed
//! failover; the configured primary's canary endpoint when the configuration is the topology
//! again). Unpinning while the DR server is the writer would put the old primary — read-only at
//! best, stale and writable at worst — back behind the writer name: exactly the split brain the
//! tool exists to prevent. A SECONDARY naming another server is the team's own recorded design
//! (answered only when the PRIMARY's health check fails) and is restored as it was recorded.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::SiteConfig;
use crate::decide::{refuse_command, Ctx, Decision};
use crate::events::EventType;
use crate::incident::{DnsRecord, SiteState};
use crate::pin::{
    describe_records, endpoint_host, same_name, same_record_set, ChangeAction, FailoverRole,
    RecordChange, RecordSet,
};
use crate::signal::OperatorCommand;
use crate::verdict::{Guard, GuardCheck, GuardResult, Outcome, RefusalReason};

/// An unpin asked for, and how far it got (in the ledger, [`SiteState::unpin`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpinRecord {
    /// The epoch whose pin is undone (the ledger's DNS record's epoch).
    pub epoch: u64,
    pub by: String,
    pub reason: String,
    pub requested_at: DateTime<Utc>,
    /// The Route 53 change, once submitted (a retry waits on it instead of changing again).
    #[serde(default)]
    pub change_id: Option<String>,
    /// When the change was `INSYNC` and the recorded set was back.
    #[serde(default)]
    pub restored_at: Option<DateTime<Utc>>,
    /// Why the pinner could not restore it (nothing was changed, or Route 53 refused the batch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// `data-plane-switch`: when the pinner first put `SWITCH_TO_PRIMARY`; the wait for the alarm
    /// to follow is measured from it ([`follow`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_back_at: Option<DateTime<Utc>>,
    /// When the pinner last handed the wait on to itself (`UnpinContinued`): the token only that
    /// continuation carries, so a stale or duplicated one does not start a second chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continued_at: Option<DateTime<Utc>>,
    /// `data-plane-switch`, phase 1 ([`phases`]): the change that restored the PRIMARY (the
    /// SECONDARY kept at the writer), once submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_change_id: Option<String>,
    /// Phase 1 `INSYNC`: the PRIMARY is back; a retry or continuation resumes at phase 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_restored_at: Option<DateTime<Utc>>,
}

/// The record set `unpin` restores, and the epoch whose pin first changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Original {
    pub epoch: u64,
    pub records: Vec<RecordSet>,
}

/// What a pin of a new epoch keeps as the original shape, given the records it found: the
/// earlier original when the name is still exactly as the previous pin left it (every record
/// naming that pin's target: a failover, then a switchover back), else what it found.
pub fn carry(state: &SiteState, current: &[RecordSet]) -> Original {
    let as_left = state.dns.as_ref().is_some_and(|d| {
        !current.is_empty()
            && current
                .iter()
                .all(|c| c.values.len() == 1 && same_name(&c.values[0], &d.new_value))
    });
    match restore_set(state).filter(|_| as_left) {
        Some(o) => o,
        None => Original {
            epoch: state.epoch,
            records: current.to_vec(),
        },
    }
}

/// The set `unpin` restores: the carried original, or (records written before it existed) the
/// last pin's previous records.
fn restore_set(st: &SiteState) -> Option<Original> {
    st.original_dns.clone().or_else(|| {
        let d = st.dns.as_ref()?;
        Some(Original {
            epoch: d.epoch,
            records: d.previous_records.clone()?,
        })
    })
}

/// Why an unpin is refused. Every refusal is made before any Route 53 mutation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("nothing to restore: the ledger holds no record set from before a pin of site {site}")]
    NothingRecorded { site: String },
    #[error("nothing to restore: the writer name {name} did not exist before epoch {epoch} pinned it; delete it by hand if that is meant")]
    NameDidNotExist { name: String, epoch: u64 },
    #[error("site {site} is {phase} at epoch {epoch}: an incident or switchover is in flight; unpin once it is completed")]
    MidIncident {
        site: String,
        phase: crate::incident::Phase,
        epoch: u64,
    },
    #[error("the ledger does not say where the writer answers (no topology endpoint, no canary endpoint): unpin cannot check the recorded set against it")]
    WriterUnknown,
    #[error("restoring would point {name} at {target}, but the writer now is {writer} at {writer_host}: the recorded set is for a failback that has not happened (switch over back first)")]
    NotTheWriter {
        name: String,
        target: String,
        writer: String,
        writer_host: String,
    },
    #[error("the recorded set has no main record (no simple CNAME, no PRIMARY failover record): {recorded}")]
    NoMainRecord { recorded: String },
    #[error("the writer name {name} is not what the pin left: expected {expected}, Route 53 holds {found}. Nothing was changed; a human decides which is right")]
    ChangedConcurrently {
        name: String,
        expected: String,
        found: String,
    },
}

/// What an unpin would restore, judged on the ledger alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restore {
    pub dns: DnsRecord,
    pub records: Vec<RecordSet>,
    pub writer_host: String,
}

/// The host the writer answers at, as the ledger says: the topology's endpoint after a completed
/// failover, the configured canary endpoint when the configuration is the topology (or names
/// another primary since).
pub fn writer_host(site: &SiteConfig, st: &SiteState) -> Option<(String, String)> {
    // The ledger's topology, while automation uses it (an edited configuration naming another
    // primary wins, as in `topology::effective`).
    let live = crate::topology::effective(site, st).primary.clone();
    match st.topology.as_ref().filter(|t| t.primary == live) {
        Some(t) => {
            let host = endpoint_host(t.endpoint.as_deref()?)?;
            Some((t.primary.to_string(), host))
        }
        None => {
            let host = endpoint_host(&site.canary.as_ref()?.endpoint)?;
            Some((site.primary.to_string(), host))
        }
    }
}

/// The record Route 53 answers with while nothing is unhealthy: the simple CNAME, or the PRIMARY.
fn main_record(records: &[RecordSet]) -> Option<&RecordSet> {
    records
        .iter()
        .find(|r| r.failover == Some(FailoverRole::Primary))
        .or_else(|| records.iter().find(|r| r.set_identifier.is_none()))
}

/// Every ledger check: something recorded, no incident in flight, the main record names the writer.
pub fn check(site: &SiteConfig, st: &SiteState) -> Result<Restore, Refused> {
    if st.phase.is_open() {
        return Err(Refused::MidIncident {
            site: site.id.clone(),
            phase: st.phase,
            epoch: st.epoch,
        });
    }
    let dns = st.dns.clone().ok_or_else(|| Refused::NothingRecorded {
        site: site.id.clone(),
    })?;
    let original = restore_set(st).ok_or_else(|| Refused::NothingRecorded {
        site: site.id.clone(),
    })?;
    let records = original.records;
    if records.is_empty() {
        return Err(Refused::NameDidNotExist {
            name: dns.name.clone(),
            epoch: original.epoch,
        });
    }
    let main = main_record(&records).ok_or_else(|| Refused::NoMainRecord {
        recorded: describe_records(&records),
    })?;
    let (writer, host) = writer_host(site, st).ok_or(Refused::WriterUnknown)?;
    let target = main
        .alias_target
        .clone()
        .or_else(|| main.values.first().cloned())
        .unwrap_or_default();
    if main.values.len() != 1 || !same_name(&target, &host) {
        return Err(Refused::NotTheWriter {
            name: dns.name.clone(),
            target,
            writer,
            writer_host: host,
        });
    }
    Ok(Restore {
        dns,
        records,
        writer_host: host,
    })
}

/// The record sets as the last pin left them: every set it found, naming its target.
fn as_pinned(site: &SiteConfig, dns: &DnsRecord) -> Vec<RecordSet> {
    let before = dns.previous_records.clone().unwrap_or_default();
    match crate::pin::desired_records(site, &before, &dns.new_value) {
        Ok(d) => d,
        Err(_) => before,
    }
}

pub(crate) fn same_sets(a: &[RecordSet], b: &[RecordSet]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| same_record_set(x, y)))
}

/// The one batch that restores the recorded set, given what Route 53 holds now (the pinner's
/// half): empty when it already holds the recorded set. Refused when the ledger checks fail, or
/// when the name holds neither what the pin left nor the recorded set.
pub fn plan(
    site: &SiteConfig,
    st: &SiteState,
    current: &[RecordSet],
) -> Result<Vec<RecordChange>, Refused> {
    let r = check(site, st)?;
    if same_sets(current, &r.records) {
        return Ok(vec![]);
    }
    let pinned = as_pinned(site, &r.dns);
    if !same_sets(current, &pinned) {
        return Err(Refused::ChangedConcurrently {
            name: r.dns.name.clone(),
            expected: describe_records(&pinned),
            found: describe_records(current),
        });
    }
    let delete = current.iter().map(|c| RecordChange {
        action: ChangeAction::Delete,
        record: c.clone(),
    });
    let create = r.records.iter().map(|c| RecordChange {
        action: ChangeAction::Create,
        record: c.clone(),
    });
    Ok(delete.chain(create).collect())
}

/// The evaluator's half: judge `unpin` on the ledger and record the request (`UnpinRequested`,
/// which the dns-pinner carries out). A repeated command while one is pending changes nothing.
pub(crate) fn command(mut cx: Ctx<'_>, original: &SiteState, cmd: &OperatorCommand) -> Decision {
    let r = match check(cx.configured, &cx.st) {
        Ok(r) => r,
        Err(e) => {
            let d = e.to_string();
            cx.guard(GuardCheck::new(
                Guard::Command,
                GuardResult::Fail,
                d.clone(),
            ));
            return refuse_command(cx, original, RefusalReason::NothingToUnpin, d);
        }
    };
    let by = cmd.operator.clone().unwrap_or_else(|| "an operator".into());
    let why = cmd.reason.clone().unwrap_or_default();
    let what = describe_records(&r.records);
    let pending =
        cx.st.unpin.as_ref().is_some_and(|u| {
            u.epoch == r.dns.epoch && u.restored_at.is_none() && u.failed.is_none()
        });
    let d = if pending {
        format!(
            "unpin of {} already requested; the dns-pinner is restoring {what}",
            r.dns.name
        )
    } else {
        format!(
            "unpin requested by {by}: {why}; the dns-pinner restores {} to {what} (recorded before epoch {} pinned it; {} is the writer)",
            r.dns.name, r.dns.epoch, r.writer_host
        )
    };
    cx.guard(GuardCheck::new(
        Guard::Command,
        GuardResult::Pass,
        d.clone(),
    ));
    if !pending {
        cx.st.unpin = Some(UnpinRecord {
            epoch: r.dns.epoch,
            by,
            reason: why,
            requested_at: cx.now,
            change_id: None,
            restored_at: None,
            failed: None,
            switched_back_at: None,
            continued_at: None,
            primary_change_id: None,
            primary_restored_at: None,
        });
        cx.event(EventType::UnpinRequested, &d, &Outcome::Watch);
    }
    cx.finish(original, Outcome::Watch, d)
}

/// The pending request the pinner should carry out, if any.
pub fn pending(st: &SiteState) -> Option<&UnpinRecord> {
    st.unpin
        .as_ref()
        .filter(|u| u.restored_at.is_none() && u.failed.is_none())
}

/// Remembers the submitted change, so a retry waits on it instead of changing again.
pub fn record_change(st: &SiteState, change_id: &str, now: DateTime<Utc>) -> Option<SiteState> {
    let mut next = st.clone();
    let u = next
        .unpin
        .as_mut()
        .filter(|u| u.restored_at.is_none() && u.failed.is_none())?;
    if u.change_id.as_deref() == Some(change_id) {
        return None;
    }
    u.change_id = Some(change_id.to_owned());
    next.version = st.version + 1;
    next.updated_at = Some(now);
    Some(next)
}

/// What the wait for a `data-plane-switch` site's alarm to follow the 0 decides ([`follow`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Follow {
    /// The alarm reads OK: the PRIMARY's health check follows it, the records may be restored.
    Followed,
    /// Not yet, and the deadline has not passed: put the 0 again and look again.
    Wait,
    /// Past the deadline: stop, page (`UnpinFailed`), the records stay pinned; the reason.
    Expired(String),
}

/// Restoring the records is safe only once the PRIMARY's health check is healthy again: Route 53
/// answers the SECONDARY of the restored pair — after a failback the demoted, read-only server —
/// while it is not. The check follows the alarm, and the alarm follows the 0 only after its
/// "M out of N" periods (CloudWatch User Guide, "Evaluating an alarm": minutes). So after the 0
/// the pinner reads the alarm until it is OK, up to `thresholds.pin_deadline_secs` after the
/// first 0 (`switched_back_at`; the request's time while no 0 was accepted yet, so a CloudWatch
/// that never answers ends the wait too).
/// `alarm` is what the read answered (`None`: it could not be read, which is not OK either).
pub fn follow(
    site: &SiteConfig,
    u: &UnpinRecord,
    alarm: Option<crate::signal::AlarmState>,
    now: DateTime<Utc>,
) -> Follow {
    if alarm == Some(crate::signal::AlarmState::Ok) {
        return Follow::Followed;
    }
    let since = u.switched_back_at.unwrap_or(u.requested_at);
    let limit = site.thresholds.pin_deadline_secs as i64;
    let waited = (now - since).num_seconds();
    if waited < limit {
        return Follow::Wait;
    }
    let alarm_name = site
        .dns
        .mode
        .switch_metric()
        .map(|m| format!("{} in {}", m.alarm, m.region))
        .unwrap_or_default();
    Follow::Expired(format!(
        "the data-plane switch was set back ({} put, first accepted or asked at {}) but its alarm {alarm_name} still reads {} after {waited} s (thresholds.pin_deadline_secs {limit}); the records were NOT restored and stay pinned to the writer (restored now, Route 53 would answer the SECONDARY: the demoted server); find why the alarm does not follow, then unpin again",
        crate::config::SWITCH_TO_PRIMARY,
        since.to_rfc3339(),
        describe_alarm(alarm),
    ))
}

fn describe_alarm(alarm: Option<crate::signal::AlarmState>) -> String {
    alarm.map_or_else(|| "nothing readable".to_owned(), |a| format!("{a:?}"))
}

/// The first `SWITCH_TO_PRIMARY` put: recorded once, the wait's deadline counts from it.
pub fn record_switched_back(st: &SiteState, now: DateTime<Utc>) -> Option<SiteState> {
    let mut next = st.clone();
    let u = next.unpin.as_mut().filter(|u| {
        u.restored_at.is_none() && u.failed.is_none() && u.switched_back_at.is_none()
    })?;
    u.switched_back_at = Some(now);
    next.version = st.version + 1;
    next.updated_at = Some(now);
    Some(next)
}

/// Whether `event` may carry the pending unpin on: the `UnpinRequested` itself (no continuation
/// yet), or the newest `UnpinContinued` (its time is the recorded token).
pub fn may_continue(u: &UnpinRecord, event: &crate::events::DomainEvent) -> bool {
    match event.event_type {
        EventType::UnpinContinued => u.continued_at == Some(event.occurred_at),
        _ => u.continued_at.is_none(),
    }
}

/// Out of time in this invocation while the alarm has not followed: the wait is handed on
/// (`UnpinContinued` in the outbox, its time the new token).
pub fn hand_on(
    site: &SiteConfig,
    st: &SiteState,
    alarm: Option<crate::signal::AlarmState>,
    now: DateTime<Utc>,
) -> Option<SiteState> {
    let mut next = st.clone();
    let u = next
        .unpin
        .as_mut()
        .filter(|u| u.restored_at.is_none() && u.failed.is_none())?;
    u.continued_at = Some(now);
    let since = u.switched_back_at.unwrap_or(u.requested_at);
    let summary = format!(
        "unpin of {}: the data-plane switch is set back but its alarm still reads {} ({} s since the first {}); the records stay pinned to the writer until it reads OK (deadline thresholds.pin_deadline_secs {} s)",
        site.dns.name,
        describe_alarm(alarm),
        (now - since).num_seconds(),
        crate::config::SWITCH_TO_PRIMARY,
        site.thresholds.pin_deadline_secs,
    );
    Some(announce(
        site,
        st,
        next,
        EventType::UnpinContinued,
        summary,
        now,
    ))
}

/// The recorded set is back and `INSYNC`: recorded, with `DnsUnpinned` in the outbox.
pub fn mark_restored(
    site: &SiteConfig,
    st: &SiteState,
    insync_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<SiteState> {
    let mut next = st.clone();
    let u = next
        .unpin
        .as_mut()
        .filter(|u| u.restored_at.is_none() && u.failed.is_none())?;
    u.restored_at = Some(insync_at);
    let (by, reason) = (u.by.clone(), u.reason.clone());
    let original = restore_set(st);
    // The SECONDARY as restored is the last reading the next epoch may trust when Route 53 is
    // dark ([`crate::secondary::judge`]); left alone, the reading would still name the writer the
    // pin wrote, while the record names the team's SECONDARY again.
    if let Some(o) = &original {
        next.secondary_reading = Some(crate::secondary::SecondaryReading {
            values: crate::secondary::secondary_values(&o.records),
            at: insync_at,
            epoch: st.epoch,
        });
    }
    let restored = original
        .map(|o| describe_records(&o.records))
        .unwrap_or_default();
    // The pinner sets a data-plane switch back before it restores the records.
    let switch = site
        .dns
        .mode
        .switch_metric()
        .map(|m| {
            format!(
                "; the data-plane switch set back first: {}/{} = {} in {}, and its alarm {} read OK; then the PRIMARY was restored with the SECONDARY kept at the writer, and the SECONDARY only once Route 53 reported the PRIMARY's health check healthy",
                m.namespace,
                m.name,
                crate::config::SWITCH_TO_PRIMARY,
                m.region,
                m.alarm
            )
        })
        .unwrap_or_default();
    let summary = format!(
        "{} restored to the record set recorded before the pin: {restored}{switch} (unpin by {by}: {reason})",
        site.dns.name
    );
    Some(announce(
        site,
        st,
        next,
        EventType::DnsUnpinned,
        summary,
        now,
    ))
}

/// The pinner could not restore the set: recorded, with `UnpinFailed` (pages) in the outbox.
pub fn mark_failed(
    site: &SiteConfig,
    st: &SiteState,
    why: &str,
    now: DateTime<Utc>,
) -> Option<SiteState> {
    let mut next = st.clone();
    let u = next
        .unpin
        .as_mut()
        .filter(|u| u.restored_at.is_none() && u.failed.is_none())?;
    u.failed = Some(why.to_owned());
    let summary = format!(
        "unpin of {} NOT done: {why}; the writer name is as it was",
        site.dns.name
    );
    Some(announce(
        site,
        st,
        next,
        EventType::UnpinFailed,
        summary,
        now,
    ))
}

fn announce(
    site: &SiteConfig,
    st: &SiteState,
    mut next: SiteState,
    event_type: EventType,
    summary: String,
    now: DateTime<Utc>,
) -> SiteState {
    let result = match event_type {
        EventType::UnpinFailed => GuardResult::Fail,
        _ => GuardResult::Pass,
    };
    let verdict = crate::verdict::Verdict {
        site: Some(site.id.clone()),
        epoch: st.epoch,
        phase: st.phase,
        outcome: Outcome::Watch,
        summary: summary.clone(),
        guards: vec![GuardCheck::new(Guard::Command, result, summary)],
    };
    next.outbox.push(crate::events::DomainEvent {
        event_type,
        site: site.id.clone(),
        epoch: st.epoch,
        phase: st.phase,
        engine: site.engine.kind().into(),
        occurred_at: now,
        primary: Some(site.primary.clone()),
        candidate: None,
        rpo_override: None,
        verdict,
        timeline: vec![],
    });
    next.version = st.version + 1;
    next.updated_at = Some(now);
    next
}

pub mod phases;

#[cfg(test)]
mod tests;
