//! Phase 1 of a `data-plane-switch` site's unpin (`failover_policy::unpin::phases`): the switch
//! set back, the recorded PRIMARY restored with the SECONDARY kept at the writer, `INSYNC`
//! recorded; then the wait for Route 53 to report the PRIMARY's health check healthy
//! (`GetHealthCheckStatus`), paced, handed on across invocations (`UnpinContinued`) and ended by
//! one page at the deadline with the SECONDARY left at the writer. Phase 2 is the caller's batch.

use failover_policy::pace;
use failover_policy::unpin::{self, phases};
use failover_policy::{SiteConfig, SiteState};
use tokio::time::Instant;
use tracing::{info, warn};

use super::{follow_switch, publish, update, wait_insync, Followed};
use crate::handler::{within, Deps, PinError, Response};

/// How phase 1 and the health wait ended.
pub(super) enum Step {
    /// The PRIMARY is back and its health check is healthy: phase 2 may restore the SECONDARY.
    Ready,
    /// Not done and not retryable: the reason and the error type (the caller pages once).
    Stop(String, &'static str),
    /// Handed on (`UnpinContinued` published) or no longer pending: `resp` says which.
    HandedOn,
}

/// Phase 1 (unless the ledger records it done), then the health wait.
pub(super) async fn primary_first(
    deps: &Deps,
    site: &SiteConfig,
    st: &SiteState,
    deadline: Instant,
    resp: &mut Response,
) -> Result<Step, PinError> {
    let port = |source| PinError::Port {
        site: site.id.clone(),
        source,
    };
    let Some(u) = unpin::pending(st).cloned() else {
        return Ok(Step::HandedOn);
    };
    if u.primary_restored_at.is_none() {
        let change_id = match u.primary_change_id.clone() {
            Some(id) => Some(id),
            None => match restore_primary(deps, site, st, deadline, resp).await? {
                Ok(id) => id,
                Err(step) => return Ok(step),
            },
        };
        let at = match change_id {
            Some(id) => wait_insync(deps, site, &id, deadline, resp).await?,
            None => deps.clock.now(),
        };
        update(deps, site, |s| phases::record_primary_restored(site, s, at)).await?;
        info!(site = %site.id, "unpin: phase 1 INSYNC, the PRIMARY is restored, the SECONDARY still names the writer");
    }
    let st = deps.ledger.load(&site.id).await.map_err(port)?;
    let Some(hc) = phases::primary_health_check(&st) else {
        return Ok(Step::Ready);
    };
    match follow_health(deps, site, &hc, deadline, resp).await? {
        Followed::Yes => Ok(Step::Ready),
        Followed::Refused(why) => Ok(Step::Stop(why, "Fatal.UnpinHealthRefused")),
        Followed::Expired(why) => Ok(Step::Stop(why, "Fatal.UnpinHealthDeadline")),
        Followed::HandedOn => Ok(Step::HandedOn),
    }
}

/// Reads the records, plans phase 1, sets the switch back and waits for its alarm, then submits
/// the batch and records its change id. `Ok(None)`: nothing to change (already done).
async fn restore_primary(
    deps: &Deps,
    site: &SiteConfig,
    st: &SiteState,
    deadline: Instant,
    resp: &mut Response,
) -> Result<Result<Option<String>, Step>, PinError> {
    let port = |source| PinError::Port {
        site: site.id.clone(),
        source,
    };
    let current = within(
        deadline,
        "ListResourceRecordSets",
        deps.dns.record_sets(&failover_policy::pin::query(site)),
    )
    .await
    .map_err(port)?;
    let changes = match phases::plan_primary(site, st, &current) {
        Ok(c) => c,
        Err(e) => return Ok(Err(Step::Stop(e.to_string(), "Fatal.UnpinRefused"))),
    };
    // The switch back first (the pinned records name one server, so no answer changes), and
    // the batch only once its alarm reads OK.
    if let Some(metric) = site.dns.mode.switch_metric() {
        match follow_switch(deps, site, metric, deadline, resp).await? {
            Followed::Yes => {}
            Followed::Refused(why) => return Ok(Err(Step::Stop(why, "Fatal.UnpinSwitchRefused"))),
            Followed::Expired(why) => return Ok(Err(Step::Stop(why, "Fatal.UnpinSwitchDeadline"))),
            Followed::HandedOn => return Ok(Err(Step::HandedOn)),
        }
    }
    if changes.is_empty() {
        return Ok(Ok(None));
    }
    let epoch = st.unpin.as_ref().map_or(st.epoch, |u| u.epoch);
    let comment = format!(
        "rds-failover: unpin {} phase 1, the PRIMARY (epoch {epoch})",
        site.id
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
        Err(e) => {
            let why = format!(
                "Route 53 refused the batch restoring the PRIMARY, nothing was changed: {e}"
            );
            return Ok(Err(Step::Stop(why, "Fatal.UnpinRefused")));
        }
    };
    resp.changed = true;
    info!(site = %site.id, change_id = %info.id, "unpin: phase 1 (the PRIMARY) submitted");
    let now = deps.clock.now();
    update(deps, site, |s| {
        phases::record_primary_change(s, &info.id, now)
    })
    .await?;
    Ok(Ok(Some(info.id)))
}

/// Reads the PRIMARY's health-check status until a majority of Route 53's checkers report
/// `Success`, paced as the pinner's other waits; hands itself on when the invocation runs out.
async fn follow_health(
    deps: &Deps,
    site: &SiteConfig,
    hc: &str,
    deadline: Instant,
    resp: &mut Response,
) -> Result<Followed, PinError> {
    let port = |source| PinError::Port {
        site: site.id.clone(),
        source,
    };
    let started = Instant::now();
    let mut errors = 0u32;
    loop {
        let mut seen = None;
        match within(
            deadline,
            "GetHealthCheckStatus",
            deps.dns.health_check_status(hc),
        )
        .await
        {
            Ok(s) => {
                errors = 0;
                seen = Some(s);
            }
            Err(e) if e.kind.is_retryable() => {
                errors += 1;
                warn!(site = %site.id, error = %e, "unpin: GetHealthCheckStatus failed; trying again");
            }
            Err(e) => return Ok(Followed::Refused(format!(
                "the PRIMARY record is restored but Route 53 does not report its health check {hc} ({e}); the SECONDARY was NOT restored and stays at the writer (safe: every answer is the writer)"
            ))),
        }
        resp.polls += 1;
        let st = deps.ledger.load(&site.id).await.map_err(port)?;
        let Some(u) = unpin::pending(&st) else {
            resp.outcome = "ignored";
            resp.detail = "the unpin is no longer pending in the ledger".into();
            return Ok(Followed::HandedOn);
        };
        match phases::healthy(site, u, hc, seen, deps.clock.now()) {
            unpin::Follow::Followed => {
                info!(site = %site.id, health_check = %hc, "unpin: Route 53 reports the PRIMARY's health check healthy");
                return Ok(Followed::Yes);
            }
            unpin::Follow::Expired(why) => return Ok(Followed::Expired(why)),
            unpin::Follow::Wait => {}
        }
        let delay = pace::after_error_delay(started.elapsed(), errors, (deps.jitter)());
        if Instant::now() + delay > deadline {
            let now = deps.clock.now();
            let st = update(deps, site, |s| phases::hand_on(site, s, hc, seen, now)).await?;
            publish(deps, site, &st, resp).await?;
            resp.outcome = "continued";
            resp.detail = format!(
                "handed on (UnpinContinued): the PRIMARY is restored, its health check {hc} is not healthy yet ({seen:?}); the SECONDARY stays at the writer"
            );
            return Ok(Followed::HandedOn);
        }
        tokio::time::sleep(delay).await;
    }
}
