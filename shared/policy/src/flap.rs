//! Paging on evidence, not on noise.
//!
//! A single down vote opens an incident quietly (the record starts counting), but people are paged
//! "suspected" only once the quorum is met. When the evidence clears, the incident is not closed
//! at once: it stays open for `thresholds.flap_window_secs`, so a flapping voter (a canary that
//! times out every other minute, an alarm on the edge of its threshold) is one incident, not a
//! page per flap. It closes when the window passes with nothing down; if "suspected" was paged,
//! one message says it cleared and what flapped.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::decide::{Ctx, Decision};
use crate::events::EventType;
use crate::evidence::{Evidence, Tally};
use crate::incident::{Phase, SiteState};
use crate::verdict::{IgnoreReason, Outcome};

/// What the current incident has said and seen, for paging decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Noise {
    /// The epoch these facts belong to (a new incident starts afresh).
    pub epoch: u64,
    /// "suspected" was paged for this epoch.
    #[serde(default)]
    pub paged: bool,
    /// Since when nothing has voted down (the flap window runs from here).
    #[serde(default)]
    pub cleared_since: Option<DateTime<Utc>>,
    /// How many times the evidence cleared and came back within the window.
    #[serde(default)]
    pub flaps: u32,
    /// The voters that said down at some point in this incident.
    #[serde(default)]
    pub down_voters: BTreeSet<String>,
    /// The first down vote since the evidence last cleared: when this outage began, for the RPO
    /// guard's sample age. Alarms take minutes to reach ALARM, so the quorum is met well after
    /// the death; the first down vote (usually the canary) is close to it. A flap that cleared
    /// and came back starts a new outage: samples from before an earlier episode bound nothing.
    #[serde(default)]
    pub outage_since: Option<DateTime<Utc>>,
}

/// When the current outage began (see [`Noise::outage_since`]), else the incident's first evidence.
pub fn outage_began(st: &SiteState) -> Option<DateTime<Utc>> {
    let n = (st.noise.epoch == st.epoch).then_some(&st.noise);
    n.and_then(|n| n.outage_since).or(st.first_seen)
}

fn noise(st: &mut SiteState) -> &mut Noise {
    if st.noise.epoch != st.epoch {
        st.noise = Noise {
            epoch: st.epoch,
            ..Noise::default()
        };
    }
    &mut st.noise
}

/// Remembers who said down and, if the evidence had cleared, counts a flap.
pub(crate) fn note_votes(st: &mut SiteState, tally: &Tally, now: DateTime<Utc>) {
    if !st.phase.is_open() || tally.down == 0 {
        return;
    }
    let n = noise(st);
    if n.cleared_since.take().is_some() {
        n.flaps += 1;
        n.outage_since = Some(now);
    }
    n.outage_since.get_or_insert(now);
    for v in tally.voters.iter().filter(|v| v.ends_with("-> down")) {
        let who = v.split(':').next().unwrap_or(v).to_string();
        n.down_voters.insert(who);
    }
}

/// Whether this is the epoch's first "suspected" page (and marks it sent).
pub(crate) fn first_page(st: &mut SiteState) -> bool {
    let n = noise(st);
    !std::mem::replace(&mut n.paged, true)
}

/// Below the quorum: open quietly on a down vote; on clear evidence close only after the window.
pub(crate) fn below_quorum(
    mut cx: Ctx<'_>,
    original: &SiteState,
    ev: &Evidence,
    tally: &Tally,
    k: u32,
) -> Decision {
    let now = cx.now;
    if tally.down == 0 && tally.up == 0 {
        // Every voter is unknown (e.g. the primary's region is unreachable and its metrics went
        // INSUFFICIENT_DATA). Unknown is never healthy: nothing opens, nothing closes.
        let s = "no evidence either way: every voter is unknown; watching".to_string();
        return cx.finish(original, Outcome::Watch, s);
    }
    if tally.down > 0 || ev.any_alarm_firing() {
        if !cx.st.phase.is_open() {
            let _ = cx.st.open_incident(now, "outage evidence below quorum");
        }
        note_votes(&mut cx.st, tally, now);
        let s = format!(
            "suspected: down {}, up {} (a failover needs down >= {k} and down > up); watching",
            tally.down, tally.up
        );
        // Not corroborated, but not refuted either: the missing votes are unknown (a dark region,
        // an IAM error, a metric gone). For a whole window that is worth a human's look, once.
        let window = cx.site.thresholds.sustained_secs as i64;
        let open_for = cx.st.first_seen.map_or(0, |t| (now - t).num_seconds());
        let could_be = tally.down + tally.unknown;
        if could_be >= k && could_be > tally.up && open_for >= window && first_page(&mut cx.st) {
            let unknown: Vec<&str> = tally
                .voters
                .iter()
                .filter(|v| v.ends_with("-> unknown"))
                .map(String::as_str)
                .collect();
            let s = format!(
                "suspected for {open_for} s but not corroborated: {} of {k} votes say down and {} cannot be read ({}); \
                 fix what cannot be read, or decide by hand",
                tally.down,
                tally.unknown,
                unknown.join("; ")
            );
            let o = Outcome::Suspected;
            cx.event(EventType::IncidentSuspected, &s, &o);
            return cx.finish(original, o, s);
        }
        return cx.finish(original, Outcome::Suspected, s);
    }
    if !cx.st.phase.is_open() {
        return cx.finish(
            original,
            Outcome::Ignore {
                reason: IgnoreReason::Healthy,
            },
            "healthy: no voter says the primary is down".into(),
        );
    }
    let window = cx.site.thresholds.flap_window_secs as i64;
    let since = *noise(&mut cx.st).cleared_since.get_or_insert(now);
    let quiet = (now - since).num_seconds();
    if quiet < window {
        let s = format!(
            "evidence cleared {quiet} s ago; incident {} stays open for the {window} s flap window",
            cx.st.epoch
        );
        return cx.finish(original, Outcome::Watch, s);
    }
    let epoch = cx.st.epoch;
    let n = noise(&mut cx.st).clone();
    let what = if n.down_voters.is_empty() {
        String::new()
    } else {
        let voters: Vec<&str> = n.down_voters.iter().map(String::as_str).collect();
        format!(
            "; said down: {}; cleared and came back {} time(s)",
            voters.join(", "),
            n.flaps
        )
    };
    cx.move_to(
        Phase::Aborted,
        &format!("evidence cleared for {quiet} s before a failover was decided{what}"),
    );
    let s = format!(
        "recovered: incident {epoch} closed without failover (evidence clear for {quiet} s){what}"
    );
    let o = Outcome::Watch;
    if n.paged {
        cx.event(EventType::IncidentCleared, &s, &o);
    }
    cx.finish(original, o, s)
}
