//! The tick's per-site fence reconciler and watch of the old primary.
//!
//! [`reconcile_site`] is one self-contained step per site per tick: load the record; if its
//! epoch's fence is active ([`fence::active`]: the promotion is complete), work on the fence's
//! steps in order until one is not yet observed, probe the old primary over SQL, measure the
//! divergence when it answers, and commit the record (compare-and-set) with any pages in its
//! outbox. Every failure is an attempt recorded on the step and retried at the next tick; none
//! of them fails the tick, and nothing here ever moves DNS.

use chrono::{DateTime, Utc};
use failover_adapters::ports::{ErrorKind, PortError};
use failover_policy::config::DbRef;
use failover_policy::fence::{self, Attempt, FenceRecord, Probe, Step};
use failover_policy::gtid::Position;
use failover_policy::SiteConfig;
use tracing::{info, warn};

use crate::handler::Deps;

/// How many steps one tick may complete (each waits on AWS or SQL within its own timeouts).
const STEPS_PER_TICK: usize = 6;

/// Works on `site`'s fence for one tick. Returns the detail-types it published.
pub async fn reconcile_site(deps: &Deps, site: &SiteConfig, now: DateTime<Utc>) -> Vec<String> {
    let st = match deps.ledger.load(&site.id).await {
        Ok(s) => s,
        Err(e) => {
            warn!(site = %site.id, error = %e, "fence: could not read the ledger");
            return vec![];
        }
    };
    let Some(mut f) = fence::active(&st).cloned() else {
        return vec![];
    };
    // Before a forced promotion (fence first) the new primary-to-be is the decided candidate.
    let new_primary = st
        .promotion
        .as_ref()
        .filter(|p| p.epoch == st.epoch)
        .map(|p| p.candidate.clone())
        .or_else(|| st.candidate.clone());
    if let Some(again) = restarted(deps, site, &f).await {
        f = again;
    }
    for _ in 0..STEPS_PER_TICK {
        let Some(step) = f.next_step() else { break };
        // Before a forced promotion only read_only is the promotion's precondition (and, for a
        // switchover, ending sessions before its capture): snapshots and stops wait until the
        // new writer exists and DNS moves.
        if fence::before_promotion(&st)
            && !failover_policy::switchover::drive::runs_before_promotion(&st, step)
        {
            break;
        }
        let attempt = attempt(deps, site, &mut f, step, new_primary.as_ref()).await;
        let observed = matches!(attempt, Attempt::Observed(_));
        info!(site = %site.id, step = ?step, attempt = ?attempt, "fence step");
        f = fence::record(&f, step, attempt, now);
        if !observed {
            break;
        }
    }
    let mut pages = vec![];
    if fence::before_promotion(&st) {
        // Fence first: the old primary is still the writer; nothing to watch or measure yet.
        return commit_fence(deps, site, &st, f, pages, now).await;
    }
    let probe = match f.endpoint.as_deref() {
        // Multi-AZ / Aurora cluster: the endpoint now reaches the new writer; nothing to watch.
        _ if !fence::watched(&f) => Probe::Unreachable("not watched for this engine kind".into()),
        None => Probe::Unreachable("no SQL endpoint for the old primary (canary)".into()),
        Some(ep) => match deps.old_primary.read_only(site, ep).await {
            Ok(read_only) => Probe::Answered { read_only },
            Err(e) => Probe::Unreachable(e.to_string()),
        },
    };
    let (watched, page) = fence::watch(site, &st, &f, &probe, now);
    f = watched;
    pages.extend(page);
    if let (Probe::Answered { .. }, Some(ep)) = (&probe, f.endpoint.clone()) {
        match deps.old_primary.position(site, &ep).await {
            Ok(Some(pos)) => match fence::measure(
                site,
                &st,
                &f,
                pos.clone(),
                count_binlog(deps, site, &ep, &f, &pos).await,
                now,
            ) {
                Ok((measured, page)) => {
                    f = measured;
                    pages.extend(page);
                }
                Err(e) => warn!(site = %site.id, error = %e, "fence: divergence not computable"),
            },
            Ok(None) => {}
            Err(e) => {
                warn!(site = %site.id, error = %e, "fence: could not read the old primary's position")
            }
        }
    }
    commit_fence(deps, site, &st, f, pages, now).await
}

/// A stop the fence observed, undone by RDS (it starts a stopped instance after seven days): the
/// stop step pending again. Asked only once the stop was observed.
async fn restarted(deps: &Deps, site: &SiteConfig, f: &FenceRecord) -> Option<FenceRecord> {
    // A human who wants the old primary up (to reconcile) sets `stop: false`.
    let wanted = site.fence.as_ref().is_some_and(|x| x.stop);
    if !wanted || !matches!(f.state(Step::Stop), Some(fence::StepState::Done { .. })) {
        return None;
    }
    match deps.topology.instance(&f.old_primary).await {
        Ok(Some(i)) => fence::reopen_stop(f, &i.status),
        Ok(None) => None,
        Err(e) => {
            warn!(db = %f.old_primary, error = %e, "fence: could not read the stopped old primary");
            None
        }
    }
}

/// With GTIDs off, the lost binlog range's transactions as the old primary's binlog counts them;
/// read again only when the old primary's position moved since the last report.
async fn count_binlog(
    deps: &Deps,
    site: &SiteConfig,
    ep: &str,
    f: &fence::FenceRecord,
    old: &Position,
) -> Option<u64> {
    let (Some(Position::Binlog(from)), Position::Binlog(to)) = (&f.promoted_position, old) else {
        return None;
    };
    if let Some(d) = f.divergence.as_ref().filter(|d| &d.old_position == old) {
        return d.lost.count;
    }
    match deps
        .old_primary
        .binlog_transactions(site, ep, from, to)
        .await
    {
        Ok(n) => Some(n),
        Err(e) => {
            warn!(site = %site.id, error = %e, "fence: could not count the lost binlog range's transactions");
            None
        }
    }
}

async fn commit_fence(
    deps: &Deps,
    site: &SiteConfig,
    st: &failover_policy::SiteState,
    f: fence::FenceRecord,
    pages: Vec<failover_policy::DomainEvent>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let Some(next) = fence::commit(site, st, f, pages, now) else {
        return vec![];
    };
    if let Err(e) = deps.ledger.commit(&next).await {
        // A lost race (another tick, a function of the failover) is redone at the next tick.
        warn!(site = %site.id, error = %e, "fence: record not committed; retried next tick");
        return vec![];
    }
    let mut emitted = vec![];
    if let Err(e) = crate::handler::flush_outbox(deps, next, &mut emitted).await {
        warn!(site = %site.id, error = %e, "fence: pages left in the outbox");
    }
    emitted
}

/// A port error as an attempt: grants and missing logins are for a human; anything else
/// (a dark region, a timeout) is retried.
fn failed(e: PortError) -> Attempt {
    match e.kind {
        ErrorKind::AccessDenied => Attempt::Refuse(format!(
            "{e}: grant the fence's IAM role or SQL user what it needs, or do this step by hand"
        )),
        _ => Attempt::NotYet(e.to_string()),
    }
}

async fn attempt(
    deps: &Deps,
    site: &SiteConfig,
    f: &mut FenceRecord,
    step: Step,
    new_primary: Option<&DbRef>,
) -> Attempt {
    let ep = f.endpoint.clone();
    let sql_endpoint = || {
        ep.clone().ok_or_else(|| {
            Attempt::Refuse("no SQL endpoint (canary) is configured for the old primary".into())
        })
    };
    match step {
        Step::ParameterReadOnly => parameter(deps, site, f, new_primary).await,
        Step::SqlReadOnly => match sql_endpoint() {
            Err(a) => a,
            Ok(ep) => match deps.old_primary.read_only(site, &ep).await {
                Ok(true) => Attempt::Observed(format!("{ep}: @@global.read_only = 1")),
                Ok(false) => Attempt::NotYet(format!(
                    "{ep}: @@global.read_only = 0 (the setting can wait behind a long transaction)"
                )),
                Err(e) if e.kind == ErrorKind::NotFound => Attempt::Refuse(e.to_string()),
                Err(e) => failed(e),
            },
        },
        Step::EndSessions => match sql_endpoint() {
            Err(a) => a,
            Ok(ep) => match deps.old_primary.end_sessions(site, &ep).await {
                Ok(s) => sessions_ended(&s),
                Err(e) if e.kind == ErrorKind::NotFound => Attempt::Refuse(e.to_string()),
                Err(e) => failed(e),
            },
        },
        Step::Snapshot => snapshot(deps, f).await,
        Step::Quarantine => quarantine(deps, site, f).await,
        Step::Stop => stop(deps, f).await,
    }
}

/// Every session the kill pass found is gone: done. Sessions that connected since (pooled
/// clients that DNS still sends here) are reported, not waited for: the step runs after
/// `read_only=1` was confirmed over SQL, which binds them, and waiting for them to stop
/// reconnecting would never end while the old primary answers.
fn sessions_ended(s: &failover_adapters::fence::Sessions) -> Attempt {
    let lingering: Vec<u64> = s
        .left
        .iter()
        .copied()
        .filter(|id| s.ended.contains(id))
        .collect();
    if !lingering.is_empty() {
        return Attempt::NotYet(format!("ended but still there: {lingering:?}"));
    }
    let again = s.left.len();
    Attempt::Observed(if again == 0 {
        format!(
            "ended {} session(s) {:?}; none left",
            s.ended.len(),
            s.ended
        )
    } else {
        format!(
            "ended {} session(s) {:?}; {again} new one(s) since {:?}, held by read_only",
            s.ended.len(),
            s.ended,
            s.left
        )
    })
}

async fn parameter(
    deps: &Deps,
    site: &SiteConfig,
    f: &FenceRecord,
    new_primary: Option<&DbRef>,
) -> Attempt {
    if let Some(p) = fence::parameter_group_problem(&deps.cfg, site) {
        return Attempt::Refuse(p);
    }
    let group = site
        .fence
        .as_ref()
        .and_then(|x| x.parameter_group.clone())
        .expect("checked by parameter_group_problem");
    let db = &f.old_primary;
    let attached = match deps.fence.parameter_groups(db).await {
        Ok(Some(g)) => g,
        Ok(None) => return Attempt::NotYet(format!("{db} not found by DescribeDBInstances")),
        Err(e) => return failed(e),
    };
    if let Err(why) = fence::may_modify(&group, db, &attached) {
        return Attempt::Refuse(why);
    }
    // Never the new writer's group: asked every attempt, and not touched while unanswered.
    let Some(new) = new_primary else {
        return Attempt::NotYet("the new primary is not recorded".into());
    };
    match deps.fence.parameter_groups(new).await {
        Ok(Some(g)) => {
            if let Err(why) = fence::shared_with_new_primary(&group, db, new, &g) {
                return Attempt::Refuse(why);
            }
        }
        Ok(None) => {}
        Err(e) => return failed(e),
    }
    let value = match deps.fence.read_only_in_group(&db.region, &group).await {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    if value.as_deref() != Some("1") {
        if let Err(e) = deps.fence.set_read_only(&db.region, &group).await {
            return failed(e);
        }
    }
    // The postcondition is read back, never assumed from the call's answer.
    let value = match deps.fence.read_only_in_group(&db.region, &group).await {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    match deps.fence.parameter_groups(db).await {
        Ok(Some(attached)) => fence::judge_parameter(&group, value.as_deref(), &attached),
        Ok(None) => Attempt::NotYet(format!("{db} not found by DescribeDBInstances")),
        Err(e) => failed(e),
    }
}

async fn snapshot(deps: &Deps, f: &mut FenceRecord) -> Attempt {
    let id = fence::snapshot_id(f);
    let db = f.old_primary.clone();
    match deps.fence.snapshot_status(&db.region, &id).await {
        Ok(Some(s)) if s == "available" => {
            f.snapshot_id = Some(id.clone());
            Attempt::Observed(format!("DB snapshot `{id}` available"))
        }
        Ok(Some(s)) => Attempt::NotYet(format!("DB snapshot `{id}` is {s}")),
        Ok(None) => match deps.fence.create_snapshot(&db, &id).await {
            Ok(()) => {
                f.snapshot_id = Some(id.clone());
                Attempt::NotYet(format!("CreateDBSnapshot `{id}` requested"))
            }
            Err(e) => failed(e),
        },
        Err(e) => failed(e),
    }
}

async fn quarantine(deps: &Deps, site: &SiteConfig, f: &FenceRecord) -> Attempt {
    let Some(sg) = site
        .fence
        .as_ref()
        .and_then(|x| x.quarantine_security_group.clone())
    else {
        return Attempt::Refuse("no quarantine_security_group configured".into());
    };
    let db = &f.old_primary;
    let groups = match deps.fence.security_groups(db).await {
        Ok(Some(g)) => g,
        Ok(None) => return Attempt::NotYet(format!("{db} not found by DescribeDBInstances")),
        Err(e) => return failed(e),
    };
    if fence::needs_quarantine(&sg, &groups) {
        if let Err(e) = deps.fence.quarantine(db, &sg).await {
            return failed(e);
        }
    }
    // The postcondition is read back, never assumed from the call's answer.
    match deps.fence.security_groups(db).await {
        Ok(Some(g)) => fence::judge_quarantine(&sg, db, &g),
        Ok(None) => Attempt::NotYet(format!("{db} not found by DescribeDBInstances")),
        Err(e) => failed(e),
    }
}

async fn stop(deps: &Deps, f: &FenceRecord) -> Attempt {
    let db = &f.old_primary;
    let info = match deps.topology.instance(db).await {
        Ok(Some(i)) => i,
        Ok(None) => return Attempt::NotYet(format!("{db} not found")),
        Err(e) => return failed(e),
    };
    if info.status == "stopped" {
        return Attempt::Observed(format!(
            "{db} is stopped (RDS starts it again after 7 days; read_only=1 holds when it does)"
        ));
    }
    if info.status == "stopping" {
        return Attempt::NotYet(format!("{db} is stopping"));
    }
    if let Err(why) = fence::may_stop(db, &info.replicas) {
        return Attempt::Refuse(why);
    }
    match deps.fence.stop(db).await {
        Ok(()) => Attempt::NotYet(format!("StopDBInstance sent; {db} is {}", info.status)),
        Err(e) if e.kind == ErrorKind::InvalidState => Attempt::NotYet(e.to_string()),
        Err(e) => failed(e),
    }
}
