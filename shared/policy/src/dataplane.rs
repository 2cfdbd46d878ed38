//! The `data-plane-switch` DNS mode: moving traffic without Route 53's control plane.
//!
//! Route 53's API (record changes, and health-check changes including `Inverted`/`Disabled`) is
//! served from us-east-1. What its data plane acts on by itself is a health check's status. A
//! `data-plane-switch` site is a failover pair whose PRIMARY health check is a
//! `CLOUDWATCH_METRIC` check on an alarm, in the DR region, over a metric the tool owns:
//! - the SECONDARY names one candidate, `secondary_candidate` ([`check_secondary_candidate`]);
//!   the switch is only for an epoch that promoted it ([`switch_for`]): any other promotion is
//!   pinned as in `failover-pin`, the switch untouched (it would serve a stale read replica);
//! - failover is one `PutMetricData` of [`SWITCH_TO_SECONDARY`] in the metric's region: the alarm
//!   goes to ALARM, the health check unhealthy, and Route 53 answers with the SECONDARY record,
//!   whose value is the DR candidate's endpoint — no Route 53 API call;
//! - the answer is then checked at the zone's authoritative name servers (the site's
//!   `dns.name_servers`: finding them with GetHostedZone would be a control-plane call);
//! - then, when Route 53's API answers, both records are also pinned as in `failover-pin`.
//!
//! What is reported, and never more than was observed:
//! - switch seen and records pinned in the same invocation: one `dns-pinned` ([`crate::pin::mark_pinned`]),
//!   its note naming both;
//! - switch seen, Route 53's API failing: `dns-pinned` on the switch ([`mark_switched`]), its
//!   `DnsPinned` message saying the records are **not pinned yet**; the pinner keeps continuing
//!   itself (`DnsPinContinued`, [`hand_on_records`]) until `thresholds.pin_deadline_secs`; when the
//!   records are pinned a timeline entry says so ([`records_pinned`]); past the deadline one
//!   `DnsPinDelayed` pages with the manual step (the traffic stays on the switch);
//! - switch not seen: nothing is claimed; the pin goes on exactly as `failover-pin`.
//!
//! Unpin is [`SWITCH_TO_PRIMARY`] put explicitly, never a missing metric: the alarm keeps its
//! state on missing data (`TreatMissingData: ignore`) and the health check its last status
//! (`InsufficientDataHealthStatus: LastKnownStatus`), so a tool that stops publishing changes
//! nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{invalid, ConfigError, DbRef, DnsConfig, SiteConfig};
pub use crate::config::{SwitchMetric, SWITCH_TO_PRIMARY, SWITCH_TO_SECONDARY};
use crate::events::{DomainEvent, EventType};
use crate::incident::{Phase, SiteState, TimelineEntry};
use crate::pin::{self, Fence, HandOn};

/// The region Route 53's control plane is served from. An alarm there is in the blast radius of
/// the very outage the switch exists for (the 7 Dec 2021 us-east-1 event impaired Route 53's API
/// and CloudWatch in us-east-1 together), so the metric may not live there.
pub const ROUTE53_CONTROL_PLANE_REGION: &str = "us-east-1";

/// CloudWatch allows at most 30 dimensions per metric (CloudWatch User Guide, "Dimensions").
const MAX_DIMENSIONS: usize = 30;

/// A site's switch for one epoch, in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchRecord {
    pub epoch: u64,
    /// When the name servers were seen answering `host` after the metric was put; while
    /// `put_only`, when the pinner committed that it was about to put it.
    pub switched_at: DateTime<Utc>,
    pub host: String,
    /// The records are still to be pinned through Route 53's API (false once pinned, or once the
    /// pin deadline passed and a human was paged).
    pub records_pending: bool,
    /// The metric was (maybe) put, the answer not yet seen moving ([`note_switch_put`], committed
    /// BEFORE the `PutMetricData`): the alarm can latch at any moment and move the traffic, so
    /// from then on the epoch is treated like a switch seen for everything that could fail or
    /// abandon it ([`switch_put`]): it never goes `failed`, and `complete` never hands the site
    /// back to the old primary. Absent in records written before this field: seen.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub put_only: bool,
    /// The CNAME values the name servers answered just before the put (what the PRIMARY named):
    /// with [`Self::host`], the answers the switch may legitimately produce ([`third_host`]).
    /// Empty: not asked, or no answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<String>,
    /// The last answer the name servers gave after the put, while it was not the new writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
    /// When the switch was put back to [`SWITCH_TO_PRIMARY`] because the name servers answered a
    /// third host after the put ([`note_wrong_answer`]): the SECONDARY record is wrong, so the
    /// switch is no way to the writer for this epoch ([`switch_put`] no longer counts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub put_back_at: Option<DateTime<Utc>>,
    /// When CloudWatch first acknowledged the datapoint (PutMetricData answered 200). With
    /// `put_only`, the three states: intent (none of these), acknowledged, seen (`!put_only`).
    /// The safety (never `failed`) stays keyed on the intent — a put that timed out may have
    /// landed —, the wording follows what is known ([`unconfirmed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_at: Option<DateTime<Utc>>,
    /// What CloudWatch last answered to a put that was not acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub put_error: Option<String>,
}

/// The switch was meant to be put but CloudWatch never acknowledged it: `Some(what it said)`.
pub fn unconfirmed(s: &SwitchRecord) -> Option<String> {
    (s.put_only && s.acked_at.is_none()).then(|| {
        s.put_error
            .clone()
            .unwrap_or_else(|| "no answer to PutMetricData".into())
    })
}

/// What CloudWatch answered to a put of the epoch's switch (`Ok`: 200), into the ledger: the
/// first acknowledgement, or a changed error. `None`: nothing new.
pub fn note_put_answer(
    state: &SiteState,
    event: &DomainEvent,
    answer: Result<(), String>,
    now: DateTime<Utc>,
) -> Option<SiteState> {
    if state.epoch != event.epoch || state.site != event.site {
        return None;
    }
    let s = this_epochs(state)?;
    let mut next = state.clone();
    let r = next.data_plane_switch.as_mut()?;
    match answer {
        Ok(()) if s.acked_at.is_none() => {
            r.acked_at = Some(now);
            r.put_error = None;
        }
        Err(e) if s.acked_at.is_none() && s.put_error.as_deref() != Some(e.as_str()) => {
            r.put_error = Some(e)
        }
        _ => return None,
    }
    next.version = state.version + 1;
    next.updated_at = Some(now);
    Some(next)
}

/// The page's words for a switch CloudWatch never acknowledged.
fn not_confirmed(site: &SiteConfig, s: &SwitchRecord, said: &str) -> String {
    let cmd = site
        .dns
        .mode
        .switch_metric()
        .map(|m| put_metric_command(m, SWITCH_TO_SECONDARY))
        .unwrap_or_default();
    format!(
        "the data-plane switch was NOT confirmed: CloudWatch never acknowledged the datapoint (it said: {said}), so traffic is most likely still on the old primary (a put that timed out may still have landed: the name servers did not answer {} yet); put it by hand: {cmd}, or pin both records to {}",
        s.host, s.host
    )
}

/// What the name servers answered after the switch was put, when it was not the new writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub at: DateTime<Utc>,
    /// Server by server ([`crate::answer::NotVerified::seen`]).
    pub seen: String,
}

/// How the `DnsPinned` of an epoch switched but not pinned ([`mark_switched`]) begins: the mark
/// the notifier reads ([`is_switched_notice`]) so it says what was and was not done.
pub const SWITCHED_NOT_PINNED: &str = "DNS switched (records not pinned yet): ";

/// A `DnsPinned` that announces traffic moved on the data-plane switch with the records not
/// pinned yet (not one that names the records pinned too).
pub fn is_switched_notice(e: &DomainEvent) -> bool {
    e.event_type == EventType::DnsPinned && e.verdict.summary.starts_with(SWITCHED_NOT_PINNED)
}

/// `data-plane-switch` configuration checks; `p` is the site's `dns` field path.
pub fn check_metric(
    p: &str,
    m: &SwitchMetric,
    primary_region: &str,
    dns: &DnsConfig,
) -> Result<(), ConfigError> {
    let f = |name: &str| format!("{p}.mode.metric.{name}");
    if m.namespace.is_empty() || m.namespace.len() > 255 || m.namespace.starts_with("AWS/") {
        return Err(invalid(
            f("namespace"),
            "a custom CloudWatch namespace of 1-255 characters, not starting with `AWS/` (reserved for AWS services), such as `RdsFailover/Switch`",
            format!("`{}`", m.namespace),
        ));
    }
    if m.name.is_empty() || m.name.len() > 255 {
        return Err(invalid(
            f("name"),
            "a CloudWatch metric name (1-255 chars)",
            format!("`{}`", m.name),
        ));
    }
    if m.alarm.is_empty() || m.alarm.len() > 255 {
        return Err(invalid(
            f("alarm"),
            "the name of the switch alarm over this metric, in its region (1-255 chars), such as `rds-failover-orders-serve-secondary`: unpin waits for it to read OK before it restores the records",
            format!("`{}`", m.alarm),
        ));
    }
    crate::config::check_region(&f("region"), &m.region)?;
    if m.region == primary_region {
        return Err(invalid(
            f("region"),
            "the DR region, not the primary's: an alarm in the failed region cannot move traffic away from it",
            format!("`{}`", m.region),
        ));
    }
    if m.region == ROUTE53_CONTROL_PLANE_REGION {
        return Err(invalid(
            f("region"),
            "a region other than us-east-1: Route 53's control plane is served from there, and a us-east-1 outage that takes it down can take the alarm down with it, which is exactly when the switch must work",
            format!("`{}`", m.region),
        ));
    }
    if m.dimensions.len() > MAX_DIMENSIONS {
        return Err(invalid(
            f("dimensions"),
            format!("at most {MAX_DIMENSIONS} dimensions (CloudWatch's limit)"),
            m.dimensions.len(),
        ));
    }
    if let Some((k, v)) = m
        .dimensions
        .iter()
        .find(|(k, v)| k.is_empty() || k.len() > 255 || v.is_empty() || v.len() > 1024)
    {
        return Err(invalid(
            format!("{}.{k}", f("dimensions")),
            "a dimension name of 1-255 and a value of 1-1024 characters",
            format!("`{k}` = `{v}`"),
        ));
    }
    // Every configured name server must answer the new value (`answer::judge` counts each one;
    // one that does not answer is not verified, and the message names it). A single configured
    // server is not refused here (yet): the emulator's DNS tests (tests/test_dns.py) serve the
    // zone from one server on 127.0.0.1. On AWS list all four of the zone's delegation set.
    if dns.name_servers.is_empty() {
        return Err(invalid(
            format!("{p}.name_servers"),
            "the zone's authoritative name servers (the delegation set): in data-plane-switch mode the answer is verified while Route 53's API may be down, so they cannot be looked up with GetHostedZone then",
            "none",
        ));
    }
    Ok(())
}

/// `secondary_candidate` must be one of the site's candidates: the switch moves traffic to
/// whatever the SECONDARY record names, so the pinner must know whose endpoint that is.
pub fn check_secondary_candidate(
    p: &str,
    id: &str,
    candidates: &[DbRef],
) -> Result<(), ConfigError> {
    if candidates.iter().any(|c| c.id == id) {
        return Ok(());
    }
    let ids: Vec<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
    Err(invalid(
        format!("{p}.mode.secondary_candidate"),
        format!(
            "the id of the site's candidate whose endpoint the SECONDARY record names (one of: {})",
            if ids.is_empty() {
                "none configured".to_owned()
            } else {
                ids.join(", ")
            }
        ),
        format!("`{id}`"),
    ))
}

/// Whether this epoch may move traffic by the switch: `None` outside `data-plane-switch` mode;
/// `Some(Ok(metric))` when the epoch promoted `secondary_candidate` (the SECONDARY names it);
/// `Some(Err(note))` when it promoted another candidate: the switch would send traffic to the
/// SECONDARY, a server that is not the writer, so it is left alone and the records are pinned as
/// in `failover-pin` (`note` says so, for the `DnsPinned` message).
pub fn switch_for<'a>(
    site: &'a SiteConfig,
    state: &SiteState,
) -> Option<Result<&'a SwitchMetric, String>> {
    let metric = site.dns.mode.switch_metric()?;
    let secondary = site.dns.mode.secondary_candidate().unwrap_or_default();
    let promoted = state
        .promotion
        .as_ref()
        .filter(|p| p.epoch == state.epoch)
        .map(|p| &p.candidate);
    let names_secondary =
        promoted.is_some_and(|c| site.candidates.iter().any(|k| k.id == secondary && k == c));
    if names_secondary {
        return Some(Ok(metric));
    }
    let promoted = promoted.map_or_else(|| "no recorded candidate".to_owned(), |c| c.to_string());
    Some(Err(format!(
        "data-plane switch NOT set: epoch {} promoted {promoted}, but the SECONDARY record names {secondary} (dns.mode.secondary_candidate), so the switch would move traffic to a server that is not the writer; the records are pinned as in failover-pin",
        state.epoch
    )))
}

/// The switch of `state`'s epoch, when the name servers were seen answering after it was set:
/// traffic moved, whatever happens to the records after.
pub fn switch_seen(state: &SiteState) -> Option<&SwitchRecord> {
    switch_put(state).filter(|s| !s.put_only)
}

/// The switch of `state`'s epoch once its `PutMetricData` may have been sent (seen or not): the
/// traffic moved or may move at any moment (the alarm latches, `TreatMissingData: ignore`), so
/// nothing may fail the epoch or restore the old topology any more.
pub fn switch_put(state: &SiteState) -> Option<&SwitchRecord> {
    this_epochs(state).filter(|s| s.put_back_at.is_none())
}

/// The switch record of `state`'s epoch, whatever became of it (put back included).
pub fn this_epochs(state: &SiteState) -> Option<&SwitchRecord> {
    state
        .data_plane_switch
        .as_ref()
        .filter(|s| s.epoch == state.epoch)
}

/// The switch of `state`'s epoch put back to 0 after a third host answered ([`note_wrong_answer`]).
pub fn put_back(state: &SiteState) -> Option<&SwitchRecord> {
    this_epochs(state).filter(|s| s.put_back_at.is_some())
}

/// The switch is about to be put: in the ledger BEFORE the `PutMetricData` call, so a fatal
/// answer, a crash or the deadline after it can never mark the epoch `failed` while the alarm may
/// still latch and move the traffic. `None`: already recorded (put or seen), or not promoted.
pub fn note_switch_put(
    state: &SiteState,
    event: &DomainEvent,
    before: &[String],
    now: DateTime<Utc>,
) -> Result<Option<SiteState>, Fence> {
    let host = pin::still_pinnable(state, event)?;
    if state.phase != Phase::Promoted || this_epochs(state).is_some() {
        return Ok(None);
    }
    let mut next = state.clone();
    next.data_plane_switch = Some(SwitchRecord {
        epoch: state.epoch,
        switched_at: now,
        host: host.clone(),
        records_pending: true,
        put_only: true,
        before: before.to_vec(),
        observed: None,
        put_back_at: None,
        acked_at: None,
        put_error: None,
    });
    next.timeline.push(TimelineEntry {
        phase: Phase::Promoted,
        at: now,
        note: format!("data-plane switch being put ({SWITCH_TO_SECONDARY}): from now on traffic may move to {host} at any moment (the alarm latches); the epoch can no longer fail"),
    });
    next.version = state.version + 1;
    next.updated_at = Some(now);
    Ok(Some(next))
}

/// The exact command that puts `value` by hand (the same datapoint the pinner puts).
pub fn put_metric_command(m: &SwitchMetric, value: f64) -> String {
    let dims = if m.dimensions.is_empty() {
        String::new()
    } else {
        let d: Vec<String> = m
            .dimensions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(" --dimensions {}", d.join(","))
    };
    format!(
        "`aws cloudwatch put-metric-data --region {} --namespace {} --metric-name {}{dims} --value {value}`",
        m.region, m.namespace, m.name
    )
}

/// The hosts the name servers answered after the put that are neither the new writer (`s.host`)
/// nor what they answered just before it (`s.before`: the old PRIMARY's value): the SECONDARY
/// names a third host, and the switch moved (or is moving) the writes there. Empty: none, or the
/// answer before the put is unknown (then nothing can be told apart and nothing is claimed).
pub fn third_host(s: &SwitchRecord, after: &[String]) -> Vec<String> {
    if s.before.is_empty() {
        return vec![];
    }
    after
        .iter()
        .filter(|h| !pin::same_name(h, &s.host) && !s.before.iter().any(|b| pin::same_name(b, h)))
        .cloned()
        .collect()
}

/// The answer seen after the put (not the new writer), kept in the ledger so the pages that
/// follow can state it. `None`: nothing new to record.
pub fn note_observed(
    state: &SiteState,
    event: &DomainEvent,
    seen: &str,
    now: DateTime<Utc>,
) -> Option<SiteState> {
    if state.epoch != event.epoch || state.site != event.site {
        return None;
    }
    let s = this_epochs(state)?;
    if s.observed.as_ref().is_some_and(|o| o.seen == seen) {
        return None;
    }
    let mut next = state.clone();
    if let Some(s) = next.data_plane_switch.as_mut() {
        s.observed = Some(Observed {
            at: now,
            seen: seen.to_owned(),
        });
    }
    next.version = state.version + 1;
    next.updated_at = Some(now);
    Some(next)
}

/// How the page sent when a third host answers after the put begins.
pub const WRONG_ANSWER: &str = "CRITICAL: data-plane switch answered a THIRD HOST, put back: ";

/// A third host (`third`) answered after the put (`seen`: what each server answered): the
/// SECONDARY record is provably wrong — it names neither the old primary nor the new writer —,
/// so the switch is put back to 0 (`put_back`: what CloudWatch said to that datapoint) and never
/// put again for the epoch; traffic goes back to what the PRIMARY names (the old primary, which
/// the promotion left behind: writes there fail or wait, they do not split across a third host)
/// until the records are pinned through Route 53's API. One CRITICAL `DnsPinDelayed` at once.
#[allow(clippy::too_many_arguments)]
pub fn note_wrong_answer(
    state: &SiteState,
    event: &DomainEvent,
    metric: &SwitchMetric,
    third: &[String],
    seen: &str,
    put_back: Result<(), String>,
    now: DateTime<Utc>,
) -> Option<SiteState> {
    if state.epoch != event.epoch || state.site != event.site || state.phase != Phase::Promoted {
        return None;
    }
    let s = switch_put(state)?.clone();
    let mut next = state.clone();
    if let Some(r) = next.data_plane_switch.as_mut() {
        r.put_back_at = Some(now);
        r.observed = Some(Observed {
            at: now,
            seen: seen.to_owned(),
        });
    }
    let back = match &put_back {
        Ok(()) => format!(
            "the switch was put back to 0 at {} (CloudWatch accepted it; the pinner puts 0 again on every try, as one 0 in the same minute as the 1 does not move a Maximum alarm)",
            now.to_rfc3339()
        ),
        Err(e) => format!(
            "putting the switch back to 0 FAILED ({e}); the pinner keeps trying; put it back by hand: {}",
            put_metric_command(metric, SWITCH_TO_PRIMARY)
        ),
    };
    let note = format!(
        "{WRONG_ANSWER}after the switch was put the name servers answer {} ({seen}) — neither the old primary ({}) nor the new writer {}: the SECONDARY record is wrong (a human changed it, or dns.mode.secondary_candidate is wrong), so writes may be going to a server that is not the writer; {back}. The records are pinned to {} as in failover-pin when Route 53's API answers; fix the SECONDARY and check what was written to {}",
        third.join(", "),
        s.before.join(", "),
        s.host,
        s.host,
        third.join(", "),
    );
    next.timeline.push(TimelineEntry {
        phase: Phase::Promoted,
        at: now,
        note: note.clone(),
    });
    next.outbox.push(pin::follow_up(
        event,
        &next,
        EventType::DnsPinDelayed,
        note,
        now,
    ));
    next.version = state.version + 1;
    next.updated_at = Some(now);
    Some(next)
}

/// What the name servers last answered after the epoch's switch was put, for a page (empty when
/// nothing but the new writer was seen, or no switch).
pub fn observation(state: &SiteState) -> String {
    let Some(s) = this_epochs(state) else {
        return String::new();
    };
    let back = s
        .put_back_at
        .map(|t| {
            format!(
                " (the switch was put back to 0 at {}: the SECONDARY names a third host)",
                t.to_rfc3339()
            )
        })
        .unwrap_or_default();
    match &s.observed {
        Some(o) => format!(
            "; after the data-plane switch was put the name servers last answered, at {}: {}{back}",
            o.at.to_rfc3339(),
            o.seen
        ),
        None => back,
    }
}

/// What the ledger says about the answer of a switched epoch, for the messages.
fn switch_fact(site: &SiteConfig, s: &SwitchRecord) -> String {
    if let Some(said) = unconfirmed(s) {
        return not_confirmed(site, s, &said);
    }
    if s.put_only {
        format!(
            "the switch metric was put at {} but the name servers were NOT seen answering {} yet: traffic may move there at any moment (the alarm latches)",
            s.switched_at.to_rfc3339(),
            s.host
        )
    } else {
        format!(
            "the name servers answered {} at {}",
            s.host,
            s.switched_at.to_rfc3339()
        )
    }
}

/// Whether epoch `epoch`'s answer moved to the new writer on the data-plane switch, with the
/// failover records not pinned (no `INSYNC` recorded for that epoch).
pub fn moved_by_switch_only(state: &SiteState, epoch: u64) -> bool {
    let switched = state
        .data_plane_switch
        .as_ref()
        .is_some_and(|s| s.epoch == epoch);
    let pinned = state
        .dns
        .as_ref()
        .is_some_and(|d| d.epoch == epoch && d.insync_at.is_some());
    switched && !pinned
}

/// The switch seen at `promoted`: the fact that traffic moved goes into the ledger **before**
/// anything else this invocation does can fail (the records' change, a fatal Route 53 answer, a
/// crash). No phase change and no event: the `DnsPinned` that follows (records pinned, or
/// [`mark_switched`], or [`records_failed`]) says it. `None`: already recorded, or not promoted.
pub fn note_switch_seen(
    state: &SiteState,
    event: &DomainEvent,
    seen: &str,
    now: DateTime<Utc>,
) -> Result<Option<SiteState>, Fence> {
    let host = pin::still_pinnable(state, event)?;
    if state.phase != Phase::Promoted || switch_seen(state).is_some() {
        return Ok(None);
    }
    let mut next = state.clone();
    let was = this_epochs(state);
    next.data_plane_switch = Some(SwitchRecord {
        epoch: state.epoch,
        switched_at: now,
        host: host.clone(),
        records_pending: true,
        put_only: false,
        before: was.map(|s| s.before.clone()).unwrap_or_default(),
        observed: None,
        put_back_at: None,
        acked_at: was.and_then(|s| s.acked_at).or(Some(now)),
        put_error: None,
    });
    next.timeline.push(TimelineEntry {
        phase: Phase::Promoted,
        at: now,
        note: format!("traffic moved to {host} by the data-plane switch ({seen}); the records are not pinned yet"),
    });
    next.version = state.version + 1;
    next.updated_at = Some(now);
    Ok(Some(next))
}

/// How the summary of the page sent when the pinner stops trying to pin the records of a switched
/// epoch begins ([`records_failed`], and [`hand_on_records`] past the deadline).
pub const RECORDS_GIVEN_UP: &str = "CRITICAL: records NOT pinned, the pinner stopped: ";

/// A fatal Route 53 answer (the records changed by a human — the compare-and-set refused —,
/// access denied, a record the configuration does not describe) after the switch was seen: the
/// traffic IS on the new primary, so the epoch is `dns-pinned` (on the switch, never `failed`:
/// failed would tell people and the evaluator the answer did not move), the records are given up
/// on, and one `DnsPinDelayed` pages with what a human must do. `None`: no switch seen for the
/// epoch (the caller fails the epoch as in `failover-pin`), or the epoch moved on.
pub fn records_failed(
    state: &SiteState,
    event: &DomainEvent,
    site: &SiteConfig,
    reason: &str,
    now: DateTime<Utc>,
) -> Option<SiteState> {
    let seen = switch_put(state)?.clone();
    if state.epoch != event.epoch || state.site != event.site {
        return None;
    }
    let mut next = match state.phase {
        Phase::Promoted => {
            mark_switched(state, event, site, &switch_fact(site, &seen), reason, now).ok()??
        }
        Phase::DnsPinned if seen.records_pending => state.clone(),
        _ => return None,
    };
    if let Some(s) = next.data_plane_switch.as_mut() {
        s.records_pending = false;
    }
    let note = format!(
        "{RECORDS_GIVEN_UP}{}{}, but Route 53 refused the records' change and retrying cannot fix it: {reason}. A human must act (fix the permission, or look at who edited the records and why) and then: {}; {}. {}",
        traffic_on(site, &seen),
        observation(state),
        pin::manual_pin_step(site, &seen.host),
        complete_step(state),
        if unconfirmed(&seen).is_some() {
            "Until then nothing moved the answer that CloudWatch confirmed."
        } else {
            "Until then the answer rests on the switch alone: do NOT set it back (metric 0)."
        }
    );
    next.timeline.push(TimelineEntry {
        phase: Phase::DnsPinned,
        at: now,
        note: note.clone(),
    });
    next.version = state.version + 1;
    next.updated_at = Some(now);
    next.outbox.push(pin::follow_up(
        event,
        &next,
        EventType::DnsPinDelayed,
        note,
        now,
    ));
    Some(next)
}

/// Where the traffic is, for a page: on the switch, or — put, not seen — about to be.
fn traffic_on(site: &SiteConfig, s: &SwitchRecord) -> String {
    if let Some(said) = unconfirmed(s) {
        return not_confirmed(site, s, &said);
    }
    if s.put_only {
        format!(
            "traffic MAY MOVE AT ANY MOMENT to the new primary {} via the data-plane switch (the metric was put at {}; the name servers did not answer it yet; the alarm latches, so it will not move back by itself)",
            s.host,
            s.switched_at.to_rfc3339()
        )
    } else {
        format!(
            "traffic is on the new primary {} via the data-plane switch",
            s.host
        )
    }
}

/// How a human closes an epoch whose records the pinner gave up on.
fn complete_step(state: &SiteState) -> String {
    format!(
        "the incident closes with {{\"command\":\"complete\",\"site\":\"{}\",\"epoch\":{},\"reason\":\"...\"}} (accepted with the records not pinned; it says so)",
        state.site, state.epoch
    )
}

/// The switch is set and seen, but the records of `state`'s epoch are not pinned yet.
pub fn records_pending(state: &SiteState) -> bool {
    state.phase == Phase::DnsPinned
        && state
            .data_plane_switch
            .as_ref()
            .is_some_and(|s| s.epoch == state.epoch && s.records_pending)
}

/// `promoted` → `dns-pinned` on the switch: the name servers answer `host`, the records are not
/// pinned (`why`: what Route 53's API last said). Its `DnsPinned` says exactly that.
pub fn mark_switched(
    state: &SiteState,
    event: &DomainEvent,
    site: &SiteConfig,
    verified: &str,
    why: &str,
    now: DateTime<Utc>,
) -> Result<Option<SiteState>, Fence> {
    let host = pin::still_pinnable(state, event)?;
    if state.phase != Phase::Promoted {
        return Ok(None);
    }
    let metric = match switch_for(site, state) {
        Some(Ok(m)) => m,
        Some(Err(note)) => return Err(Fence::Broken { reason: note }),
        None => {
            return Err(Fence::Broken {
                reason: "a data-plane switch for a site not in data-plane-switch mode".into(),
            })
        }
    };
    let mut next = state.clone();
    let note = format!(
        "{} -> {host} by the data-plane switch: {}/{} = {SWITCH_TO_SECONDARY} in {} (the PRIMARY's health check follows its alarm, Route 53 answers with the SECONDARY); {verified}; the records are NOT pinned yet (Route 53's API: {why}): the pinner keeps trying until {} after the promotion",
        site.dns.name,
        metric.namespace,
        metric.name,
        metric.region,
        pin::human_duration(site.thresholds.pin_deadline_secs as i64),
    );
    next.transition(state.epoch, Phase::DnsPinned, now, note.clone())
        .map_err(|e| Fence::Stale {
            reason: e.to_string(),
        })?;
    let was = switch_put(state);
    next.data_plane_switch = Some(SwitchRecord {
        epoch: state.epoch,
        switched_at: was.map_or(now, |s| s.switched_at),
        host,
        records_pending: true,
        put_only: was.is_some_and(|s| s.put_only),
        before: was.map(|s| s.before.clone()).unwrap_or_default(),
        observed: was.and_then(|s| s.observed.clone()),
        put_back_at: None,
        acked_at: was.and_then(|s| s.acked_at),
        put_error: was.and_then(|s| s.put_error.clone()),
    });
    next.version = state.version + 1;
    next.updated_at = Some(now);
    next.outbox.push(pin::follow_up(
        event,
        &next,
        EventType::DnsPinned,
        format!("{SWITCHED_NOT_PINNED}{note}. Failback is manual — see docs/runbook.md."),
        now,
    ));
    Ok(Some(next))
}

/// The records are pinned after the switch: a timeline entry (no second `DnsPinned`: one per
/// epoch), the switch no longer pending.
pub fn records_pinned(next: &mut SiteState, note: &str, now: DateTime<Utc>) {
    if let Some(s) = next.data_plane_switch.as_mut() {
        s.records_pending = false;
    }
    next.timeline.push(TimelineEntry {
        phase: Phase::DnsPinned,
        at: now,
        note: format!("records pinned too (belt and braces after the data-plane switch): {note}"),
    });
}

/// Out of time while the records are pending: continue (`DnsPinContinued`), or past the pin
/// deadline stop and page once (`DnsPinDelayed`) with the manual step; the epoch stays
/// `dns-pinned`, the traffic on the switch.
pub fn hand_on_records(
    site: &SiteConfig,
    state: &SiteState,
    event: &DomainEvent,
    why: &str,
    now: DateTime<Utc>,
) -> Result<HandOn, Fence> {
    let host = pin::still_pinnable(state, event)?;
    let started = pin::pin_started_at(state).unwrap_or(now);
    let waited = (now - started).num_seconds();
    let deadline = site.thresholds.pin_deadline_secs as i64;
    let mut next = state.clone();
    next.version = state.version + 1;
    next.updated_at = Some(now);
    if waited >= deadline {
        if let Some(s) = next.data_plane_switch.as_mut() {
            s.records_pending = false;
        }
        let note = format!(
            "{RECORDS_GIVEN_UP}records not pinned within thresholds.pin_deadline_secs ({}) of the promotion (waited {}; last answer: {why}{}); {}. Next step: {}; {}",
            pin::human_duration(deadline),
            pin::human_duration(waited),
            observation(state),
            switch_put(state).filter(|s| s.put_only).map_or_else(|| "the traffic is held by the data-plane switch".to_owned(), |s| traffic_on(site, s)),
            pin::manual_pin_step(site, &host),
            complete_step(state)
        );
        next.timeline.push(TimelineEntry {
            phase: Phase::DnsPinned,
            at: now,
            note: note.clone(),
        });
        next.outbox.push(pin::follow_up(
            event,
            &next,
            EventType::DnsPinDelayed,
            note,
            now,
        ));
        return Ok(HandOn::RecordsAbandoned(next));
    }
    next.pin_continued_at = Some(now);
    next.outbox.push(pin::follow_up(
        event,
        &next,
        EventType::DnsPinContinued,
        format!(
            "traffic is on the data-plane switch ({host}); pinning the records still in progress after {} ({why}); the pinner continues until {} after the promotion",
            pin::human_duration(waited),
            pin::human_duration(deadline)
        ),
        now,
    ));
    Ok(HandOn::Continue(next))
}

#[cfg(test)]
mod tests {
    use super::switch_for;
    use crate::config::Config;
    use crate::incident::SiteState;

    const EXAMPLE: &str = include_str!("../../../infra/sites.example.json");

    /// The example's first site in data-plane-switch mode, its primary moved to us-east-2 so that
    /// us-east-1 is rejected by its own rule.
    fn err(metric_region: &str, name_servers: &[&str]) -> Option<String> {
        err_with(metric_region, name_servers, "orders-replica-1")
    }

    fn err_with(metric_region: &str, name_servers: &[&str], secondary: &str) -> Option<String> {
        let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        let s = &mut v["sites"][0];
        s["primary"]["region"] = "us-east-2".into();
        s["dns"]["name_servers"] = serde_json::json!(name_servers);
        s["dns"]["mode"] = serde_json::json!({
            "kind": "data-plane-switch", "primary_set_identifier": "primary",
            "secondary_candidate": secondary,
            "metric": {"namespace": "RdsFailover/Switch", "name": "ServeSecondary",
                       "region": metric_region, "alarm": "rds-failover-orders-serve-secondary",
                       "dimensions": {"Site": "orders"}}});
        Config::from_document(&v.to_string())
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn a_metric_in_the_dr_region_with_name_servers_is_accepted() {
        assert_eq!(err("us-west-2", &["ns-1.awsdns-01.org"]), None);
    }

    #[test]
    fn the_metric_region_may_be_neither_the_primarys_nor_us_east_1() {
        let e = err("us-east-2", &["ns-1.awsdns-01.org"]).unwrap();
        assert!(
            e.contains("sites[0].dns.mode.metric.region") && e.contains("not the primary's"),
            "{e}"
        );
        let e = err("us-east-1", &["ns-1.awsdns-01.org"]).unwrap();
        assert!(
            e.contains("sites[0].dns.mode.metric.region") && e.contains("control plane"),
            "{e}"
        );
    }

    #[test]
    fn the_switch_alarm_is_named_because_unpin_waits_for_it() {
        let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        let s = &mut v["sites"][0];
        s["primary"]["region"] = "us-east-2".into();
        s["dns"]["name_servers"] = serde_json::json!(["ns-1.awsdns-01.org"]);
        let mode = |alarm: serde_json::Value| {
            let mut m = serde_json::json!({
                "kind": "data-plane-switch", "primary_set_identifier": "primary",
                "secondary_candidate": "orders-replica-1",
                "metric": {"namespace": "RdsFailover/Switch", "name": "ServeSecondary",
                           "region": "us-west-2"}});
            if !alarm.is_null() {
                m["metric"]["alarm"] = alarm;
            }
            m
        };
        s["dns"]["mode"] = mode(serde_json::json!(""));
        let e = Config::from_document(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sites[0].dns.mode.metric.alarm") && e.contains("unpin waits"),
            "{e}"
        );
        v["sites"][0]["dns"]["mode"] = mode(serde_json::Value::Null);
        let e = Config::from_document(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(e.contains("alarm"), "a missing alarm name is refused: {e}");
    }

    #[test]
    fn name_servers_are_required_because_get_hosted_zone_is_the_control_plane() {
        let e = err("us-west-2", &[]).unwrap();
        assert!(e.contains("sites[0].dns.name_servers"), "{e}");
    }

    #[test]
    fn the_secondary_candidate_must_be_one_of_the_sites_candidates() {
        assert_eq!(
            err_with("us-west-2", &["ns-1.awsdns-01.org"], "orders-replica-2"),
            None
        );
        let e = err_with("us-west-2", &["ns-1.awsdns-01.org"], "orders-primary").unwrap();
        assert!(
            e.contains("sites[0].dns.mode.secondary_candidate")
                && e.contains("`orders-primary`")
                && e.contains("orders-replica-1, orders-replica-2"),
            "{e}"
        );
    }

    #[test]
    fn the_switch_is_for_the_secondary_candidate_only() {
        let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        let s = &mut v["sites"][0];
        s["primary"]["region"] = "us-east-2".into();
        s["dns"]["name_servers"] = serde_json::json!(["ns-1.awsdns-01.org"]);
        s["dns"]["mode"] = serde_json::json!({
            "kind": "data-plane-switch", "primary_set_identifier": "primary",
            "secondary_candidate": "orders-replica-1",
            "metric": {"namespace": "RdsFailover/Switch", "name": "ServeSecondary",
                       "region": "us-west-2", "alarm": "rds-failover-orders-serve-secondary"}});
        let cfg = Config::from_document(&v.to_string()).unwrap();
        let site = &cfg.sites[0];
        let promoted = |id: &str| {
            let mut st = SiteState::new(&site.id);
            st.epoch = 3;
            st.promotion = Some(crate::incident::PromotionRecord {
                epoch: 3,
                candidate: site.candidates.iter().find(|c| c.id == id).unwrap().clone(),
                action: "PromoteReadReplica".into(),
                requested_at: chrono::Utc::now(),
                completed_at: None,
                endpoint: None,
                writable_verified_at: None,
                resolved: None,
            });
            st
        };
        assert!(matches!(
            switch_for(site, &promoted("orders-replica-1")),
            Some(Ok(_))
        ));
        let Some(Err(note)) = switch_for(site, &promoted("orders-replica-2")) else {
            panic!("replica-2 is not what the SECONDARY names")
        };
        assert!(
            note.contains("NOT set")
                && note.contains("orders-replica-2")
                && note.contains("failover-pin"),
            "{note}"
        );
    }
}
