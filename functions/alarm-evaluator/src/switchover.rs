//! The tick's driver of an RDS read replica's planned switchover (`failover_policy::switchover`).
//!
//! Every step is the policy's [`next_action`] of the record the ledger holds, observed, fed to
//! [`advance`] and committed (compare-and-set) before the next one, so a crash between any two
//! steps resumes from the ledger at the next tick. Per site and tick it runs before the fence
//! reconciler (to record the fence's start before its first call) and after it (to take in the
//! fence and go on: capture → catch-up wait → release the promotion to the promoter). The
//! promotion, its write check and the DNS move stay the promoter's and the pinner's; the
//! driver only takes their ledger entries into the record, which measures the switchover's RTO
//! from their own timestamps. A rollback closes the epoch first, then gives the old primary
//! writes back (`read_only=0` in its group, observed over SQL): DNS is never touched.

use chrono::{DateTime, Utc};
use failover_adapters::ports::PortError;
use failover_policy::gtid::Position;
use failover_policy::switchover::{
    self, drive, next_action, Action, BeforeFence, Observation, SwPhase, SwitchoverRecord,
};
use failover_policy::{SiteConfig, SiteState};
use tracing::{info, warn};

use crate::handler::Deps;

/// How many steps one tick may take (each is one commit).
const STEPS_PER_TICK: usize = 8;
/// The longest one catch-up wait holds the tick, well inside the 25 s site budget with the fence
/// steps and the capture (the next tick waits again, within the time the record has left).
const WAIT_PER_TICK_SECS: u64 = 10;

/// Drives `site`'s switchover, if one is in flight, as far as it goes this tick. Returns the
/// detail-types it published.
pub async fn drive_site(deps: &Deps, site: &SiteConfig) -> Vec<String> {
    let mut emitted = vec![];
    let mut st = match deps.ledger.load(&site.id).await {
        Ok(s) => s,
        Err(e) => {
            warn!(site = %site.id, error = %e, "switchover: could not read the ledger");
            return emitted;
        }
    };
    for _ in 0..STEPS_PER_TICK {
        let Some(rec) = drive::driven(site, &st).cloned() else {
            break;
        };
        let Some((obs, at)) = observe(deps, site, &st, &rec).await else {
            break;
        };
        let adv = match switchover::advance(&rec, obs, at) {
            Ok(a) => a,
            Err(e) => {
                warn!(site = %site.id, error = %e, "switchover: observation not applied");
                break;
            }
        };
        if let Some(m) = &adv.message {
            info!(site = %site.id, epoch = rec.epoch, message = %m, "switchover");
        }
        let Some(next) = drive::commit(site, &st, adv.record, adv.message, deps.clock.now()) else {
            break;
        };
        if let Err(e) = deps.ledger.commit(&next).await {
            warn!(site = %site.id, error = %e, "switchover: record not committed; retried next tick");
            break;
        }
        st = match crate::handler::flush_outbox(deps, next, &mut emitted).await {
            Ok(s) => s,
            Err(e) => {
                warn!(site = %site.id, error = %e, "switchover: message left in the outbox");
                break;
            }
        };
    }
    emitted
}

/// What the next step observes: the ledger first (the other functions' work), else the
/// record's own action. `None`: nothing to do for the driver now.
async fn observe(
    deps: &Deps,
    site: &SiteConfig,
    st: &SiteState,
    rec: &SwitchoverRecord,
) -> Option<(Observation, DateTime<Utc>)> {
    let now = deps.clock.now();
    match drive::from_ledger(st, rec, now) {
        // Before the fence's first call: read what a rollback must give back.
        Some((Observation::FenceAsked, _)) => {
            return Some((before_fence(deps, site, st, rec).await, deps.clock.now()))
        }
        Some(seen) => return Some(seen),
        None => {}
    }
    let obs = match next_action(rec, now) {
        // The fence reconciler works the steps; the tick judges the deadline.
        Action::Fence => Observation::Tick,
        Action::CapturePosition => capture(deps, site, st).await,
        Action::WaitForTarget { position, secs } => wait(deps, site, rec, &position, secs).await,
        Action::UndoFence => undo_fence(deps, site, st, rec).await,
        // The promoter's and the pinner's: taken in from the ledger above.
        Action::Promote | Action::VerifyWrites | Action::MoveDns | Action::Finished => return None,
    };
    Some((obs, deps.clock.now()))
}

fn old_primary_endpoint(st: &SiteState) -> Option<String> {
    st.fence.as_ref().and_then(|f| f.endpoint.clone())
}

/// A port error that will not fix itself within the wait rolls back at once; anything else
/// (a timeout, a dark moment) waits for the deadline.
fn judged(e: PortError) -> Observation {
    if e.kind.is_retryable() {
        Observation::Tick
    } else {
        Observation::Failed(e.to_string())
    }
}

async fn capture(deps: &Deps, site: &SiteConfig, st: &SiteState) -> Observation {
    let Some(ep) = old_primary_endpoint(st) else {
        return Observation::Failed("no SQL endpoint (canary) for the old primary".into());
    };
    match deps.old_primary.capture(site, &ep).await {
        Ok(p) => Observation::Captured(p),
        Err(e) => judged(e),
    }
}

async fn wait(
    deps: &Deps,
    site: &SiteConfig,
    rec: &SwitchoverRecord,
    position: &Position,
    secs: u64,
) -> Observation {
    let ep = match deps.topology.instance(&rec.target).await {
        Ok(Some(i)) => i.endpoint.map(|(h, p)| format!("{h}:{p}")),
        Ok(None) => None,
        Err(e) => return judged(e),
    };
    let Some(ep) = ep else {
        return Observation::Tick;
    };
    let secs = secs.clamp(1, WAIT_PER_TICK_SECS);
    match deps
        .old_primary
        .wait_applied(site, &ep, position, secs)
        .await
    {
        Ok(p) => Observation::Applied(p),
        Err(e) => judged(e),
    }
}

/// `read_only` in the old primary's group and on its server, before the fence changes them
/// (the fence waits for this record: `drive::runs_before_promotion`). Unreadable: retried at
/// the next tick, within the deadline.
async fn before_fence(
    deps: &Deps,
    site: &SiteConfig,
    st: &SiteState,
    rec: &SwitchoverRecord,
) -> Observation {
    let Some(group) = site.fence.as_ref().and_then(|f| f.parameter_group.clone()) else {
        return Observation::Failed("the site has no fence.parameter_group".into());
    };
    let group_read_only = match deps
        .fence
        // The writer's region as the switchover recorded it (after a failover, and for a
        // failback, not the configured primary's).
        .read_only_in_group(&rec.old_primary.region, &group)
        .await
    {
        Ok(v) => v,
        Err(e) => {
            warn!(site = %site.id, error = %e, "switchover: read_only in the group not read before the fence; retried");
            return Observation::Tick;
        }
    };
    let Some(ep) = old_primary_endpoint(st) else {
        return Observation::Failed("no SQL endpoint (canary) for the old primary".into());
    };
    match deps.old_primary.read_only(site, &ep).await {
        Ok(server_read_only) => Observation::BeforeFence(BeforeFence {
            group_read_only,
            server_read_only,
        }),
        Err(e) => judged(e),
    }
}

/// Whether the ledger, read now, still gives the site to `rec`'s epoch and its rollback: the
/// compare before (and after) the one AWS call that could make the old primary writable. A
/// rollback that lands after a newer epoch (a failover) took the site must never give writes
/// back.
async fn still_owned(deps: &Deps, site: &SiteConfig, rec: &SwitchoverRecord) -> Option<bool> {
    match deps.ledger.load(&site.id).await {
        Ok(now) => Some(
            now.epoch == rec.epoch
                && now
                    .switchover
                    .as_ref()
                    .is_some_and(|s| s.epoch == rec.epoch && s.phase == SwPhase::RollingBack),
        ),
        Err(e) => {
            warn!(site = %site.id, error = %e, "switchover rollback: ledger not read; retried");
            None
        }
    }
}

/// The old primary's `read_only` given back as it was before the fence (its group's value, or
/// the parameter reset when the group did not set it; records without it: `read_only=0`), then
/// read back in the group and over SQL — only while the ledger still gives the site to this
/// epoch's rollback. If a newer epoch took the site while the call was in flight, the fence is
/// put back at once (`read_only=1`): that epoch's, not ours, decides who writes.
pub(crate) async fn undo_fence(
    deps: &Deps,
    site: &SiteConfig,
    st: &SiteState,
    rec: &SwitchoverRecord,
) -> Observation {
    if rec.before_fence.is_none() && rec.fence_started_at.is_none() {
        // The fence never started (it waits for the value it replaces to be recorded): nothing
        // of ours to give back, and nothing to change.
        return Observation::WritableAgain;
    }
    let Some(group) = site.fence.as_ref().and_then(|f| f.parameter_group.clone()) else {
        return Observation::Tick;
    };
    let (want_group, want_server) = match &rec.before_fence {
        Some(b) => (b.group_read_only.clone(), b.server_read_only),
        None => (Some("0".to_string()), false),
    };
    let region = &rec.old_primary.region;
    match deps.fence.read_only_in_group(region, &group).await {
        Ok(v) if v == want_group => {}
        Ok(_) => {
            if still_owned(deps, site, rec).await != Some(true) {
                warn!(site = %site.id, epoch = rec.epoch, "switchover rollback: the site is no longer this epoch's; nothing given back");
                return Observation::Tick;
            }
            if let Err(e) = deps
                .fence
                .restore_read_only(region, &group, want_group.as_deref())
                .await
            {
                warn!(site = %site.id, error = %e, "switchover rollback: read_only not restored; retried");
                return Observation::Tick;
            }
            if still_owned(deps, site, rec).await == Some(false) {
                warn!(site = %site.id, epoch = rec.epoch, "switchover rollback: a newer epoch took the site during the restore; fencing again");
                if let Err(e) = deps.fence.set_read_only(region, &group).await {
                    warn!(site = %site.id, error = %e, "switchover rollback: read_only=1 not put back");
                }
                return Observation::Tick;
            }
        }
        Err(e) => {
            warn!(site = %site.id, error = %e, "switchover rollback: group unreadable; retried");
            return Observation::Tick;
        }
    }
    let Some(ep) = old_primary_endpoint(st) else {
        return Observation::Tick;
    };
    match deps.old_primary.read_only(site, &ep).await {
        Ok(v) if v == want_server => Observation::WritableAgain,
        Ok(_) => Observation::Tick,
        Err(e) => {
            warn!(site = %site.id, error = %e, "switchover rollback: old primary not read; retried");
            Observation::Tick
        }
    }
}
