//! RDS's own recovery, recognised from the primary's status as well as from its events.
//!
//! A Multi-AZ primary fails over to its synchronous standby by itself when its host, storage or
//! AZ fails; while it does, its status reads `rebooting` (or `failing-over`, `modifying`), its
//! alarms fire and the canary is refused — every sign of an outage. RDS emits "Multi-AZ failover
//! started" (RDS-EVENT-0013/0050) too, but an event can be late, lost or filtered out, so the
//! status alone must also hold a DR failover: racing RDS's failover with a cross-region promotion
//! turns a 60-120 s blip into a regional failover with data loss and a manual failback.
//!
//! The hold lasts `thresholds.managed_recovery_grace_secs` from when the status was first seen
//! (default 180 s: RDS documents that Multi-AZ failovers "typically complete within 60-120
//! seconds", RDS User Guide, "Failover process for Amazon RDS"). A status that lasts longer is not
//! a failover that is going well, and the normal rules apply again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Engine, SiteConfig};
use crate::evidence::{DbObservation, Evidence};
use crate::vantage::Watchlist;
use crate::verdict::{Guard, GuardCheck, GuardResult};

/// DB instance statuses RDS shows while a Multi-AZ instance fails over or restarts by itself
/// (RDS User Guide, "Viewing Amazon RDS DB instance status").
pub const RECOVERING_STATUSES: &[&str] = &["rebooting", "failing-over", "modifying"];

/// Since when the primary has been seen recovering, without interruption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovering {
    pub status: String,
    pub since: DateTime<Utc>,
}

fn is_multi_az(site: &SiteConfig, ev: &Evidence) -> bool {
    site.engine == Engine::MultiAz || ev.primary_multi_az == Some(true)
}

/// Notes, on every evaluation, whether a Multi-AZ primary is in a recovering status, so the hold
/// is measured from the first time it was seen — not from when the quorum was met.
pub fn observe(site: &SiteConfig, ev: &Evidence, watch: &mut Watchlist, now: DateTime<Utc>) {
    let recovering = match &ev.primary {
        DbObservation::Status { status }
            if is_multi_az(site, ev) && RECOVERING_STATUSES.contains(&status.as_str()) =>
        {
            Some(status.clone())
        }
        _ => None,
    };
    match recovering {
        Some(status) => {
            if watch.recovering.is_none() {
                watch.recovering = Some(Recovering { status, since: now });
            } else if let Some(r) = watch.recovering.as_mut() {
                // rebooting -> modifying is one recovery; keep its start, name its latest status.
                r.status = status;
            }
        }
        None => watch.recovering = None,
    }
}

/// The guard that holds a DR failover while RDS is still inside its grace, or `None` when the
/// primary is not recovering by itself (or has been at it longer than the grace).
pub fn hold(site: &SiteConfig, watch: &Watchlist, now: DateTime<Utc>) -> Option<GuardCheck> {
    let r = watch.recovering.as_ref()?;
    let grace = site.thresholds.managed_recovery_grace_secs as i64;
    let elapsed = (now - r.since).num_seconds().max(0);
    (elapsed < grace).then(|| {
        GuardCheck::new(
            Guard::ManagedFailover,
            GuardResult::Fail,
            format!(
                "the Multi-AZ primary {} has been `{}` for {elapsed} s: RDS is most likely \
                 failing over to its standby (60-120 s); not racing it for {grace} s",
                site.primary, r.status
            ),
        )
        .numbers(elapsed as f64, grace as f64)
    })
}

/// What the verdict says when the grace has run out and the normal rules apply.
pub fn expired(site: &SiteConfig, watch: &Watchlist, now: DateTime<Utc>) -> Option<String> {
    let r = watch.recovering.as_ref()?;
    let grace = site.thresholds.managed_recovery_grace_secs;
    Some(format!(
        "the Multi-AZ primary has been `{}` for {} s, longer than the {grace} s grace for RDS's \
         own failover",
        r.status,
        (now - r.since).num_seconds()
    ))
}
