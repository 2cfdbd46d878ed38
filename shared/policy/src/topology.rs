//! The live topology the ledger owns.
//!
//! The configuration describes the site as it was deployed: which database is the writer and which
//! replicate from it. After a failover that is no longer true, and a configuration nobody edited
//! must never steer automation back to the old shape: the next outage signal would find the old
//! candidates still replicating from the *dead* primary (eligible on their old lag) and promote
//! one of them — a second writer, with the writer name moved off the live one.
//!
//! So when a pinned failover is completed, the ledger records the pinned writer as the site's
//! primary and every other database the site knows as a *possible* candidate. Automation decides
//! on that topology only: a candidate counts when the topology shows it replicating from the
//! **ledger's** primary (re-protected), so a replica still attached to the dead primary is skipped.
//! The configuration is the initial topology, and it wins again only when it names the same writer
//! (a human edited it to match).
//!
//! Alarms in the configuration watch the configured primary's metrics; they say nothing about the
//! new writer, so they do not vote while the ledger's primary differs from the configured one.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{AlarmRole, DbRef, SiteConfig};
use crate::incident::{Phase, SiteState};

/// The site's topology as the ledger knows it after a completed failover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// The failover epoch that made `primary` the writer.
    pub epoch: u64,
    pub primary: DbRef,
    /// The writer's endpoint `host:port` (the canary probes it).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Every other database the site knows, in preference order. Each is promotable only while
    /// the evidence shows it replicating from `primary`.
    pub candidates: Vec<DbRef>,
    pub at: DateTime<Utc>,
    /// The configuration's primary when the ledger took the topology over. A configuration
    /// edited since (it names another primary) describes the site again and wins.
    #[serde(default)]
    pub configured_primary: Option<DbRef>,
}

/// Why the topology of a pinned epoch could not be taken over by the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotPinned(pub String);

/// The topology a pinned failover of the current epoch leaves: the promoted candidate as the
/// writer (the one DNS was pinned to), everything else the site knows as possible candidates.
pub fn after_pinned_failover(
    site: &SiteConfig,
    st: &SiteState,
    now: DateTime<Utc>,
) -> Result<Topology, NotPinned> {
    if st.phase != Phase::DnsPinned {
        return Err(NotPinned(format!(
            "the site is {} at epoch {}, not dns-pinned",
            st.phase, st.epoch
        )));
    }
    let p = st
        .promotion
        .as_ref()
        .filter(|p| p.epoch == st.epoch && p.completed_at.is_some())
        .ok_or_else(|| {
            NotPinned(format!(
                "the ledger holds no completed promotion for epoch {}",
                st.epoch
            ))
        })?;
    // The answer moved: the records pinned (INSYNC), or — data-plane-switch — the name servers
    // seen answering the new writer on the switch, the records never pinned (the pinner gave up
    // at the deadline or on a fatal answer): without it such a site could never be completed.
    let pinned = st
        .dns
        .as_ref()
        .filter(|d| d.epoch == st.epoch && d.insync_at.is_some())
        .map(|d| d.new_value.clone());
    // A switch put but not seen counts too: the alarm latches, the traffic moves to it.
    let switched = crate::dataplane::switch_put(st)
        .filter(|s| !s.records_pending)
        .map(|s| s.host.clone());
    let moved_to = pinned.or(switched).ok_or_else(|| match crate::dataplane::switch_put(st) {
        Some(s) => NotPinned(format!(
            "traffic is on {} by the data-plane switch and the pinner is still pinning the records of epoch {}: complete once it has pinned them or given up (at thresholds.pin_deadline_secs, paged)",
            s.host, st.epoch
        )),
        None => NotPinned(format!(
            "the ledger holds no in-sync DNS pin for epoch {}",
            st.epoch
        )),
    })?;
    if let Some(host) = p.endpoint.as_deref().and_then(crate::pin::endpoint_host) {
        if !crate::pin::same_name(&host, &moved_to) {
            return Err(NotPinned(format!(
                "DNS was pinned to {moved_to} but the promoted writer {} answers at {host}",
                p.candidate
            )));
        }
    }
    let current = effective(site, st);
    let mut candidates: Vec<DbRef> = std::iter::once(current.primary.clone())
        .chain(current.candidates.iter().cloned())
        .chain(std::iter::once(site.primary.clone()))
        .chain(site.candidates.iter().cloned())
        .filter(|c| *c != p.candidate)
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    candidates.retain(|c| seen.insert(c.id.clone()));
    Ok(Topology {
        epoch: st.epoch,
        primary: p.candidate.clone(),
        endpoint: p.endpoint.clone(),
        candidates,
        at: now,
        configured_primary: Some(site.primary.clone()),
    })
}

/// The site as automation must see it now: the configuration, with the ledger's primary and
/// candidates in place of the configured ones after a completed failover the configuration does
/// not yet describe.
pub fn effective<'a>(site: &'a SiteConfig, st: &SiteState) -> Cow<'a, SiteConfig> {
    let Some(t) = st.topology.as_ref().filter(|t| {
        t.primary != site.primary
            && t.configured_primary
                .as_ref()
                .is_none_or(|c| *c == site.primary)
    }) else {
        return Cow::Borrowed(site);
    };
    let mut s = site.clone();
    s.primary = t.primary.clone();
    s.candidates = t.candidates.clone();
    // The configured availability alarms watch the configured primary's metrics.
    s.alarms.retain(|a| a.role != AlarmRole::Availability);
    s.canary = match (site.canary.clone(), t.endpoint.as_deref()) {
        (Some(mut c), Some(ep)) => {
            c.endpoint = ep.to_string();
            Some(c)
        }
        // No endpoint for the new writer: probing the configured one would vote on the old primary.
        _ => None,
    };
    Cow::Owned(s)
}

/// One line for verdicts: whose topology automation is using.
pub fn describe(site: &SiteConfig, st: &SiteState) -> Option<String> {
    effective(site, st)
        .primary
        .ne(&site.primary)
        .then_some(())?;
    let t = st.topology.as_ref()?;
    Some(format!(
        "topology from the ledger (failover epoch {}): primary {}, the configuration's primary {} is no longer the writer; \
         configured availability alarms watch it and do not vote",
        t.epoch, t.primary, site.primary
    ))
}
