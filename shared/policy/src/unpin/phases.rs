//! The two phases of a `data-plane-switch` site's unpin.
//!
//! The switch alarm reading OK is not the PRIMARY's health check reading healthy: Route 53's
//! `CLOUDWATCH_METRIC` check polls the alarm state on its own schedule. While that check is still
//! unhealthy Route 53 answers with the SECONDARY ("How Amazon Route 53 chooses records when
//! health checking is configured", Route 53 Developer Guide) — which, restored as recorded, names
//! the demoted server. So the pinner restores in two compare-and-set batches:
//! 1. [`plan_primary`]: the recorded PRIMARY back, the SECONDARY kept at the writer — the
//!    halfway set ([`halfway`]): whichever member Route 53 answers with, it is the writer;
//! 2. [`plan_secondary`], only once Route 53 reports the PRIMARY's health check healthy
//!    ([`healthy`]): the recorded SECONDARY back.
//!
//! Each phase is recorded in the ledger (`primary_change_id`, `primary_restored_at`), so a Lambda
//! killed between the batches resumes at phase 2 without sending phase 1 again. A check that never
//! turns healthy ends in one page with the SECONDARY left at the writer: safe, every answer is
//! the writer; only the team's recorded SECONDARY value is not back.

use chrono::{DateTime, Utc};

use super::{announce, check, same_sets, Follow, Refused, Restore};
use crate::config::SiteConfig;
use crate::events::EventType;
use crate::incident::SiteState;
use crate::pin::{describe_records, ChangeAction, FailoverRole, RecordChange, RecordSet};

/// Whether `site`'s unpin restores in two phases (a `data-plane-switch` site).
pub fn two_phase(site: &SiteConfig) -> bool {
    site.dns.mode.switch_metric().is_some()
}

/// The recorded PRIMARY's health check: what phase 2 waits for (`None`: none, always served).
pub fn primary_health_check(st: &SiteState) -> Option<String> {
    super::restore_set(st)?
        .records
        .iter()
        .find(|r| r.failover == Some(FailoverRole::Primary))?
        .health_check_id
        .clone()
}

/// Phase 1's target: the recorded PRIMARY, every other member naming the writer.
pub fn halfway(site: &SiteConfig, r: &Restore) -> Result<Vec<RecordSet>, Refused> {
    let at_writer = crate::pin::desired_records(site, &r.records, &r.writer_host).map_err(|e| {
        Refused::NoMainRecord {
            recorded: format!("{} ({e})", describe_records(&r.records)),
        }
    })?;
    Ok(at_writer
        .into_iter()
        .map(|w| match w.failover {
            Some(FailoverRole::Primary) => r
                .records
                .iter()
                .find(|o| o.set_identifier == w.set_identifier)
                .cloned()
                .unwrap_or(w),
            _ => w,
        })
        .collect())
}

/// DELETE everything as read, CREATE the target: one all-or-nothing batch.
fn replace(current: &[RecordSet], target: &[RecordSet]) -> Vec<RecordChange> {
    let delete = current.iter().map(|c| RecordChange {
        action: ChangeAction::Delete,
        record: c.clone(),
    });
    let create = target.iter().map(|c| RecordChange {
        action: ChangeAction::Create,
        record: c.clone(),
    });
    delete.chain(create).collect()
}

/// Phase 1's batch, given what Route 53 holds: empty when it already holds the halfway or the
/// recorded set (a retry after the batch went through); refused unless it holds what the pin left.
pub fn plan_primary(
    site: &SiteConfig,
    st: &SiteState,
    current: &[RecordSet],
) -> Result<Vec<RecordChange>, Refused> {
    let r = check(site, st)?;
    let half = halfway(site, &r)?;
    if same_sets(current, &r.records) || same_sets(current, &half) {
        return Ok(vec![]);
    }
    let pinned = super::as_pinned(site, &r.dns);
    if !same_sets(current, &pinned) {
        return Err(Refused::ChangedConcurrently {
            name: r.dns.name.clone(),
            expected: describe_records(&pinned),
            found: describe_records(current),
        });
    }
    Ok(replace(current, &half))
}

/// Phase 2's batch: empty when the recorded set is back; refused unless Route 53 holds the
/// halfway set phase 1 left.
pub fn plan_secondary(
    site: &SiteConfig,
    st: &SiteState,
    current: &[RecordSet],
) -> Result<Vec<RecordChange>, Refused> {
    let r = check(site, st)?;
    if same_sets(current, &r.records) {
        return Ok(vec![]);
    }
    let half = halfway(site, &r)?;
    if !same_sets(current, &half) {
        return Err(Refused::ChangedConcurrently {
            name: r.dns.name.clone(),
            expected: describe_records(&half),
            found: describe_records(current),
        });
    }
    Ok(replace(current, &r.records))
}

/// What Route 53's health-check status says of the PRIMARY's check (`GetHealthCheckStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckStatus {
    /// Checkers that reported.
    pub checkers: usize,
    /// Of them, those whose last report is `Success`.
    pub success: usize,
}

impl CheckStatus {
    /// Healthy when a majority of the checkers report `Success` (stricter than Route 53's own
    /// threshold for endpoint checks, more than 18 %: never early). No report is not healthy.
    pub fn healthy(&self) -> bool {
        self.checkers > 0 && 2 * self.success > self.checkers
    }
}

fn describe(status: Option<CheckStatus>) -> String {
    status.map_or("nothing readable".to_owned(), |s| {
        format!("{} of {} checkers reporting Success", s.success, s.checkers)
    })
}

/// Phase 2 may start once the check is healthy; the wait lasts `thresholds.pin_deadline_secs`
/// from phase 1's `INSYNC` (the request's time if that was never recorded).
pub fn healthy(
    site: &SiteConfig,
    u: &super::UnpinRecord,
    health_check: &str,
    status: Option<CheckStatus>,
    now: DateTime<Utc>,
) -> Follow {
    if status.is_some_and(|s| s.healthy()) {
        return Follow::Followed;
    }
    let since = u.primary_restored_at.unwrap_or(u.requested_at);
    let limit = site.thresholds.pin_deadline_secs as i64;
    let waited = (now - since).num_seconds();
    if waited < limit {
        return Follow::Wait;
    }
    Follow::Expired(format!(
        "the PRIMARY record is restored (since {}) but Route 53 reports its health check {health_check} with {} after {waited} s (thresholds.pin_deadline_secs {limit}); the SECONDARY was NOT restored and stays at the writer (safe: every answer Route 53 can give is the writer; restored now, an unhealthy check would serve the recorded SECONDARY, the demoted server); find why the check is not healthy, then unpin again",
        since.to_rfc3339(),
        describe(status),
    ))
}

/// Remembers phase 1's submitted change, so a retry waits on it instead of changing again.
pub fn record_primary_change(
    st: &SiteState,
    change_id: &str,
    now: DateTime<Utc>,
) -> Option<SiteState> {
    let mut next = st.clone();
    let u = next
        .unpin
        .as_mut()
        .filter(|u| u.restored_at.is_none() && u.failed.is_none())?;
    if u.primary_change_id.as_deref() == Some(change_id) {
        return None;
    }
    u.primary_change_id = Some(change_id.to_owned());
    next.version = st.version + 1;
    next.updated_at = Some(now);
    Some(next)
}

/// Phase 1 is `INSYNC` (or there was nothing to change): from now on, phase 2. The SECONDARY
/// now names the writer (the halfway set), and that is the reading the next epoch must judge by
/// with Route 53 dark — if phase 2 never comes (the health check never reads healthy), a reading
/// left at the previous pin's host would let a later switch send writes to this writer's server
/// after it is fenced.
pub fn record_primary_restored(
    site: &SiteConfig,
    st: &SiteState,
    at: DateTime<Utc>,
) -> Option<SiteState> {
    let mut next = st.clone();
    let u = next.unpin.as_mut().filter(|u| {
        u.restored_at.is_none() && u.failed.is_none() && u.primary_restored_at.is_none()
    })?;
    u.primary_restored_at = Some(at);
    if let Some((_, host)) = super::writer_host(site, st) {
        next.secondary_reading = Some(crate::secondary::SecondaryReading {
            values: vec![host],
            at,
            epoch: st.epoch,
        });
    }
    next.version = st.version + 1;
    next.updated_at = Some(at);
    Some(next)
}

/// Out of time while the check is not healthy: handed on (`UnpinContinued`, its time the token).
pub fn hand_on(
    site: &SiteConfig,
    st: &SiteState,
    health_check: &str,
    status: Option<CheckStatus>,
    now: DateTime<Utc>,
) -> Option<SiteState> {
    let mut next = st.clone();
    let u = next
        .unpin
        .as_mut()
        .filter(|u| u.restored_at.is_none() && u.failed.is_none())?;
    u.continued_at = Some(now);
    let since = u.primary_restored_at.unwrap_or(u.requested_at);
    let summary = format!(
        "unpin of {}: the PRIMARY record is restored, its health check {health_check} reports {} ({} s since); the SECONDARY stays at the writer until Route 53 reports the check healthy (deadline thresholds.pin_deadline_secs {} s)",
        site.dns.name,
        describe(status),
        (now - since).num_seconds(),
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
