//! The pinner's half of `unpin` (`failover_policy::unpin`): the evaluator recorded the request
//! (`UnpinRequested`); here the records are read, judged against the ledger as it is now, and
//! restored in ONE compare-and-set batch; the change id is recorded before the wait, so a retry
//! waits on the same change; `INSYNC` is recorded with `DnsUnpinned`. Anything that cannot
//! succeed by retrying (the name is not what the pin left, Route 53 refused the batch) records
//! `UnpinFailed` (a page) and changes nothing. A `data-plane-switch` site's switch is set back
//! (`SWITCH_TO_PRIMARY`, explicitly) BEFORE the batch: the pinned records still name the writer
//! then, so the switch moving changes no answer; and the batch waits until the switch alarm reads
//! OK (`unpin::follow`): restored records behind an alarm still in ALARM would serve the
//! SECONDARY, the demoted server. The wait re-puts the 0 before each read, hands itself on
//! (`UnpinContinued`) when the invocation runs out, and past the deadline pages once with the
//! records left pinned. Such a site then restores in two batches (`phases`): the PRIMARY (the
//! SECONDARY kept at the writer), and the SECONDARY only once Route 53 reports the PRIMARY's
//! health check healthy.

use failover_adapters::ports::{ErrorKind, PortError};
use failover_policy::config::SwitchMetric;
use failover_policy::dataplane;
use failover_policy::pace;
use failover_policy::pin::{self, ChangeStatus};
use failover_policy::unpin;
use failover_policy::{DomainEvent, SiteConfig, SiteState};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::handler::{within, Deps, PinError, Response};

mod phases;

const MAX_COMMIT_ATTEMPTS: usize = 5;

pub async fn run(
    deps: &Deps,
    site: &SiteConfig,
    event: &DomainEvent,
    deadline: Instant,
) -> Result<Response, PinError> {
    let mut resp = Response::for_event(event);
    let port = |source: PortError| PinError::Port {
        site: site.id.clone(),
        source,
    };
    let st = deps.ledger.load(&site.id).await.map_err(port)?;
    publish(deps, site, &st, &mut resp).await?;
    let Some(u) = unpin::pending(&st).cloned() else {
        resp.outcome = "ignored";
        resp.detail = "no unpin pending in the ledger (done, failed or never asked)".into();
        return Ok(resp);
    };
    if !unpin::may_continue(&u, event) {
        resp.outcome = "ignored";
        resp.detail = format!(
            "a stale or duplicate {}: the unpin was handed on at {:?}, only that continuation carries it on",
            event.event_type.detail_type(),
            u.continued_at
        );
        return Ok(resp);
    }
    // A data-plane-switch site restores in two phases (`unpin::phases`): the PRIMARY first,
    // the SECONDARY kept at the writer until Route 53 reports the PRIMARY's check healthy.
    let two_phase = unpin::phases::two_phase(site);
    if two_phase && u.change_id.is_none() {
        match phases::primary_first(deps, site, &st, deadline, &mut resp).await? {
            phases::Step::Ready => {}
            phases::Step::Stop(why, code) => return fail(deps, site, &why, code, resp).await,
            phases::Step::HandedOn => return Ok(resp),
        }
    }
    let change_id = match u.change_id.clone() {
        Some(id) => id,
        None => {
            let st = deps.ledger.load(&site.id).await.map_err(port)?;
            let current = within(
                deadline,
                "ListResourceRecordSets",
                deps.dns.record_sets(&pin::query(site)),
            )
            .await
            .map_err(port)?;
            let planned = if two_phase {
                unpin::phases::plan_secondary(site, &st, &current)
            } else {
                unpin::plan(site, &st, &current)
            };
            let changes = match planned {
                Ok(c) => c,
                Err(e) => {
                    return fail(deps, site, &e.to_string(), "Fatal.UnpinRefused", resp).await
                }
            };
            if changes.is_empty() {
                return finish(deps, site, deps.clock.now(), resp).await;
            }
            let comment = format!(
                "rds-failover: unpin {}{} (epoch {})",
                site.id,
                if two_phase {
                    " phase 2, the SECONDARY"
                } else {
                    ""
                },
                u.epoch
            );
            let info = match within(
                deadline,
                "ChangeResourceRecordSets",
                deps.dns.change(&site.dns.zone_id, &changes, &comment),
            )
            .await
            {
                Ok(i) => i,
                Err(e) if e.kind.is_retryable() => return Err(port(e)),
                // A human edit between the read and the change: the batch was refused whole.
                Err(e) => {
                    let why =
                        format!("Route 53 refused the restoring batch, nothing was changed: {e}");
                    return fail(deps, site, &why, "Fatal.UnpinRefused", resp).await;
                }
            };
            resp.changed = true;
            info!(site = %site.id, change_id = %info.id, "unpin: Route 53 change submitted");
            let now = deps.clock.now();
            update(deps, site, |s| unpin::record_change(s, &info.id, now)).await?;
            info.id
        }
    };
    let insync_at = wait_insync(deps, site, &change_id, deadline, &mut resp).await?;
    finish(deps, site, insync_at, resp).await
}

/// How the wait for the switch alarm to follow the 0 ended.
enum Followed {
    /// The alarm reads OK: restore the records.
    Yes,
    /// CloudWatch refused the datapoint or the read (not retryable): nothing else changed.
    Refused(String),
    /// Past the deadline, the alarm not OK: the records stay pinned.
    Expired(String),
    /// Out of invocation time: `UnpinContinued` committed and published; `resp` says so.
    HandedOn,
}

/// Puts `SWITCH_TO_PRIMARY` and reads the switch alarm until it is OK, paced as the pinner's
/// other waits (`pace::after_error_delay`). The 0 is put again before every read: an "M out of N"
/// alarm needs non-breaching data in its recent periods to return to OK (with `TreatMissingData:
/// ignore`, periods without data keep it in ALARM, and a 0 in the same period as the last 1 is not
/// one: the period's Maximum is 1). Re-putting 0 changes nothing else. The first put is recorded
/// (`switched_back_at`): the deadline counts from it across invocations.
async fn follow_switch(
    deps: &Deps,
    site: &SiteConfig,
    metric: &SwitchMetric,
    deadline: Instant,
    resp: &mut Response,
) -> Result<Followed, PinError> {
    let port = |source: PortError| PinError::Port {
        site: site.id.clone(),
        source,
    };
    let started = Instant::now();
    let mut errors = 0u32;
    loop {
        let mut seen = None;
        // The record as `update` just read or wrote it, when the put went through; read afresh
        // only when it did not (no second GetItem of what was just read).
        let mut read = None;
        match within(
            deadline,
            "PutMetricData",
            deps.switch.put(metric, dataplane::SWITCH_TO_PRIMARY),
        )
        .await
        {
            Ok(()) => {
                resp.changed = true;
                let now = deps.clock.now();
                read = Some(update(deps, site, |s| unpin::record_switched_back(s, now)).await?);
                match within(deadline, "DescribeAlarms", deps.switch.alarm_state(metric)).await {
                    Ok(state) => {
                        errors = 0;
                        seen = Some(state);
                    }
                    Err(e) if e.kind.is_retryable() => {
                        errors += 1;
                        warn!(site = %site.id, error = %e, "unpin: the switch alarm could not be read; trying again");
                    }
                    Err(e) => return Ok(Followed::Refused(format!(
                        "the data-plane switch was set back but its alarm cannot be read ({e}), so the records were not restored (they stay pinned to the writer)"
                    ))),
                }
            }
            Err(e) if e.kind.is_retryable() => {
                errors += 1;
                warn!(site = %site.id, error = %e, "unpin: PutMetricData failed; trying again");
            }
            Err(e) => return Ok(Followed::Refused(format!(
                "CloudWatch refused the datapoint that sets the data-plane switch back, the records were not touched: {e}"
            ))),
        }
        resp.polls += 1;
        let st = match read {
            Some(st) => st,
            None => deps.ledger.load(&site.id).await.map_err(port)?,
        };
        let Some(u) = unpin::pending(&st) else {
            resp.outcome = "ignored";
            resp.detail = "the unpin is no longer pending in the ledger".into();
            return Ok(Followed::HandedOn);
        };
        match unpin::follow(site, u, seen, deps.clock.now()) {
            unpin::Follow::Followed => {
                info!(site = %site.id, alarm = %metric.alarm, "unpin: the switch alarm reads OK");
                return Ok(Followed::Yes);
            }
            unpin::Follow::Expired(why) => return Ok(Followed::Expired(why)),
            unpin::Follow::Wait => {}
        }
        let delay = pace::after_error_delay(started.elapsed(), errors, (deps.jitter)());
        if Instant::now() + delay > deadline {
            let now = deps.clock.now();
            let st = update(deps, site, |s| unpin::hand_on(site, s, seen, now)).await?;
            publish(deps, site, &st, resp).await?;
            info!(site = %site.id, ?seen, "unpin: the switch alarm has not followed yet; handed on (UnpinContinued)");
            resp.outcome = "continued";
            resp.detail = format!(
                "handed on (UnpinContinued): the switch alarm {} reads {}",
                metric.alarm,
                seen.map_or("nothing readable".to_owned(), |a| format!("{a:?}"))
            );
            return Ok(Followed::HandedOn);
        }
        tokio::time::sleep(delay).await;
    }
}

async fn finish(
    deps: &Deps,
    site: &SiteConfig,
    insync_at: chrono::DateTime<chrono::Utc>,
    mut resp: Response,
) -> Result<Response, PinError> {
    let now = deps.clock.now();
    let st = update(deps, site, |s| {
        unpin::mark_restored(site, s, insync_at, now)
    })
    .await?;
    publish(deps, site, &st, &mut resp).await?;
    resp.outcome = "unpinned";
    resp.detail = st
        .outbox
        .last()
        .map(|e| e.verdict.summary.clone())
        .unwrap_or_else(|| "unpinned".into());
    resp.dns = st.dns.clone();
    Ok(resp)
}

async fn fail(
    deps: &Deps,
    site: &SiteConfig,
    why: &str,
    error_type: &str,
    mut resp: Response,
) -> Result<Response, PinError> {
    warn!(site = %site.id, reason = %why, "unpin not done");
    let now = deps.clock.now();
    let st = update(deps, site, |s| unpin::mark_failed(site, s, why, now)).await?;
    publish(deps, site, &st, &mut resp).await?;
    Err(PinError::Failed {
        site: site.id.clone(),
        epoch: st.epoch,
        error_type: error_type.into(),
        reason: why.into(),
    })
}

async fn wait_insync(
    deps: &Deps,
    site: &SiteConfig,
    change_id: &str,
    deadline: Instant,
    resp: &mut Response,
) -> Result<chrono::DateTime<chrono::Utc>, PinError> {
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        resp.polls += 1;
        match within(deadline, "GetChange", deps.dns.change_status(change_id)).await {
            Ok(i) if i.status == ChangeStatus::Insync => return Ok(deps.clock.now()),
            Ok(_) => {}
            Err(e) if e.kind.is_retryable() => {
                warn!(site = %site.id, error = %e, "GetChange failed; polling on")
            }
            Err(e) => {
                return Err(PinError::Port {
                    site: site.id.clone(),
                    source: e,
                })
            }
        }
        let delay = pin::backoff_delay(attempt, (deps.jitter)());
        attempt += 1;
        if Instant::now() + delay > deadline {
            return Err(PinError::NotInSync {
                site: site.id.clone(),
                change_id: change_id.to_owned(),
                waited_secs: started.elapsed().as_secs(),
            });
        }
        tokio::time::sleep(delay).await;
    }
}

/// Load, apply, compare-and-set; a lost race re-reads. `f` returning `None`: nothing to write.
async fn update(
    deps: &Deps,
    site: &SiteConfig,
    f: impl Fn(&SiteState) -> Option<SiteState>,
) -> Result<SiteState, PinError> {
    let port = |source: PortError| PinError::Port {
        site: site.id.clone(),
        source,
    };
    for attempt in 1..=MAX_COMMIT_ATTEMPTS {
        let st = deps.ledger.load(&site.id).await.map_err(port)?;
        let Some(next) = f(&st) else { return Ok(st) };
        match deps.ledger.commit(&next).await {
            Ok(()) => return Ok(next),
            Err(e) if e.kind == ErrorKind::Conflict => {
                warn!(site = %site.id, attempt, "unpin: lost a compare-and-set race; re-reading")
            }
            Err(e) => return Err(port(e)),
        }
    }
    Err(PinError::Contention {
        site: site.id.clone(),
    })
}

/// Publishes the record's outbox, then clears exactly those events (consumers dedupe a re-send).
async fn publish(
    deps: &Deps,
    site: &SiteConfig,
    st: &SiteState,
    resp: &mut Response,
) -> Result<(), PinError> {
    if st.outbox.is_empty() {
        return Ok(());
    }
    deps.bus
        .publish(&st.outbox)
        .await
        .map_err(|source| PinError::Port {
            site: site.id.clone(),
            source,
        })?;
    resp.emitted.extend(
        st.outbox
            .iter()
            .map(|e| e.event_type.detail_type().to_string()),
    );
    let sent: Vec<String> = st.outbox.iter().map(|e| e.dedupe_key()).collect();
    let now = deps.clock.now();
    let cleared = update(deps, site, |s| {
        let mut next = s.clone();
        next.outbox.retain(|e| !sent.contains(&e.dedupe_key()));
        (next.outbox.len() != s.outbox.len()).then(|| {
            next.version = s.version + 1;
            next.updated_at = Some(now);
            next
        })
    })
    .await;
    if let Err(e) = cleared {
        warn!(site = %site.id, error = %e, "published the outbox but could not clear it");
    }
    Ok(())
}
