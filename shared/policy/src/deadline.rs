//! Every in-flight phase has a deadline, and the scheduled tick watches it.
//!
//! A Lambda killed between recording the decision and asking RDS, a promotion RDS never finished,
//! a pinner that could not reach Route 53, a candidate dropped from the configuration while its
//! epoch was in flight: each would otherwise hold the site in `promoting`/`promoted` with nobody
//! told. Past its deadline the evaluator pages once per phase with the exact next step.

use chrono::{DateTime, Duration, Utc};

use crate::config::SiteConfig;
use crate::incident::{Phase, SiteState};
use crate::promote::{promotion_deadline, PREFLIGHT_DEADLINE_MINUTES};

/// Slack past the functions' own deadlines before the tick calls a phase stuck (their last
/// attempt and its message come first).
pub const SLACK: Duration = Duration::minutes(5);

/// How long the pinner keeps trying to move DNS after the promotion: the site's
/// `thresholds.pin_deadline_secs` (the pinner's own deadline, the same number).
fn pin_deadline(site: &SiteConfig) -> Duration {
    Duration::seconds(i64::try_from(site.thresholds.pin_deadline_secs).unwrap_or(i64::MAX / 2))
}

fn entered(st: &SiteState, phase: Phase) -> Option<DateTime<Utc>> {
    st.timeline
        .iter()
        .rev()
        .find(|t| t.phase == phase)
        .map(|t| t.at)
}

/// The next step a human must take when the current in-flight phase is past its deadline, or
/// `None` while it is within it.
pub fn overdue(site: &SiteConfig, st: &SiteState, now: DateTime<Utc>) -> Option<String> {
    let epoch = st.epoch;
    let cmd = |c: &str| {
        format!("{{\"command\":\"{c}\",\"site\":\"{}\",\"epoch\":{epoch},\"operator\":\"<you>\",\"reason\":\"...\"}}", site.id)
    };
    if let Some(c) = st.candidate.as_ref() {
        let known = site.primary == *c || site.candidates.contains(c);
        if !known && st.phase != Phase::DnsPinned {
            return Some(format!(
                "the configuration no longer names {c}, the candidate of in-flight epoch {epoch}: \
                 restore it in the configuration so the functions can finish, or check {c} in RDS \
                 and send {}",
                cmd("abort")
            ));
        }
    }
    let promotion = st.promotion.as_ref().filter(|p| p.epoch == epoch);
    match st.phase {
        Phase::Promoting => match promotion {
            None => {
                let since = entered(st, Phase::Promoting)?;
                let due = since + Duration::minutes(PREFLIGHT_DEADLINE_MINUTES) + SLACK;
                (now >= due).then(|| {
                    format!(
                        "the failover was decided at {} and no promotion was ever asked of RDS \
                         (the promoter did not run, or stopped before the request): nothing was \
                         changed; send {} and fail over by hand if still needed",
                        since.format("%H:%M:%SZ"),
                        cmd("abort")
                    )
                })
            }
            Some(p) => {
                let due = p.requested_at + promotion_deadline(&site.engine) + SLACK;
                (now >= due).then(|| {
                    format!(
                        "{} of {} was requested at {} and is not confirmed: look at {} in RDS; if it \
                         is a standalone writer, point {} at it by hand and send {}; if it is still \
                         a replica, send {}",
                        p.action,
                        p.candidate,
                        p.requested_at.format("%H:%M:%SZ"),
                        p.candidate,
                        site.dns.name,
                        cmd("complete"),
                        cmd("abort")
                    )
                })
            }
        },
        Phase::Promoted => {
            let p = promotion?;
            let since = p.completed_at.or_else(|| entered(st, Phase::Promoted))?;
            let due = since + pin_deadline(site) + SLACK;
            // The switch put (maybe not seen): say so — pointing the name by hand is still the
            // step, but the switch must not be set back (the alarm latches, it may move traffic).
            if let Some(sw) = crate::dataplane::switch_put(st) {
                return (now >= due).then(|| {
                    let put = match crate::dataplane::unconfirmed(sw) {
                        Some(said) => format!("the data-plane switch was meant to be put at {} but CloudWatch never acknowledged it ({said})", sw.switched_at.format("%H:%M:%SZ")),
                        None => format!("the data-plane switch was put at {} (traffic may move to {} at any moment: the alarm latches)", sw.switched_at.format("%H:%M:%SZ"), sw.host),
                    };
                    format!(
                        "{} was promoted at {} and accepts writes; {put}, but the name servers were not seen answering {} and the records were never pinned: do NOT set the switch back (metric 0); {}; then send {}",
                        p.candidate,
                        since.format("%H:%M:%SZ"),
                        sw.host,
                        crate::pin::manual_pin_step(site, &sw.host),
                        cmd("complete")
                    )
                });
            }
            (now >= due).then(|| {
                format!(
                    "{} was promoted at {} and accepts writes, but {} was never pinned to it: point \
                     {} at {} by hand (Route 53 console or CLI), then send {}",
                    p.candidate,
                    since.format("%H:%M:%SZ"),
                    site.dns.name,
                    site.dns.name,
                    p.endpoint.as_deref().unwrap_or("its endpoint"),
                    cmd("complete")
                )
            })
        }
        // data-plane-switch: traffic on the switch, the records still to be pinned. The pinner's
        // chain gives them up (and pages) at the pin deadline; past it and the slack with the
        // records still pending, the chain stopped without saying so.
        Phase::DnsPinned if crate::dataplane::records_pending(st) => {
            let since = crate::pin::pin_started_at(st)?;
            let due = since + pin_deadline(site) + SLACK;
            let host =
                crate::dataplane::switch_put(st).map_or("the promoted writer", |s| s.host.as_str());
            (now >= due).then(|| {
                format!(
                    "traffic is on {host} by the data-plane switch, but the failover records were never pinned and the pinner stopped without giving them up: do NOT set the switch back (metric 0); {}; then send {}",
                    crate::pin::manual_pin_step(site, host),
                    cmd("complete")
                )
            })
        }
        _ => None,
    }
}

/// A site record in flight whose site the configuration no longer names: no function can finish
/// its epoch (each looks the site up in the configuration first), so it pages once with the next
/// step. Returns the record to commit (version bumped, the page in its outbox), or `None`.
pub fn orphaned(cfg: &crate::Config, st: &SiteState, now: DateTime<Utc>) -> Option<SiteState> {
    use crate::events::{DomainEvent, EventType};
    use crate::verdict::{Guard, GuardCheck, GuardResult, Outcome, Verdict};
    let key = (st.phase, st.epoch);
    if !st.phase.is_in_flight() || cfg.site(&st.site).is_some() || st.overdue == Some(key) {
        return None;
    }
    let step = format!(
        "the configuration no longer names site {}, whose epoch {} is {}: no function will finish it. \
         Restore the site in the configuration (and redeploy) so the failover can finish or be \
         completed; the ledger record keeps its candidate ({}) and the previous DNS record",
        st.site,
        st.epoch,
        st.phase,
        st.candidate.as_ref().map_or("none".into(), |c| c.to_string())
    );
    let summary = format!(
        "stuck: site {} was dropped from the configuration while in flight",
        st.site
    );
    let mut next = st.clone();
    next.overdue = Some(key);
    next.version = st.version + 1;
    next.updated_at = Some(now);
    next.outbox.push(DomainEvent {
        event_type: EventType::PhaseOverdue,
        site: st.site.clone(),
        epoch: st.epoch,
        phase: st.phase,
        engine: "unknown (site not configured)".into(),
        occurred_at: now,
        primary: None,
        candidate: st.candidate.clone(),
        rpo_override: st.rpo_override.clone(),
        verdict: Verdict {
            site: Some(st.site.clone()),
            outcome: Outcome::Watch,
            epoch: st.epoch,
            phase: st.phase,
            summary,
            guards: vec![GuardCheck::new(Guard::Deadline, GuardResult::Fail, step)],
        },
        timeline: st.timeline.clone(),
    });
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DbRef;
    use crate::incident::PromotionRecord;
    use chrono::TimeZone;

    /// The tick calls an unpinned promotion stuck at the site's own pin deadline (plus the
    /// slack), not at a fixed hour: a site that gives the pinner 10 minutes is paged at 15, one
    /// that gives it a day is not paged before the pinner has given up.
    #[test]
    fn an_unpinned_promotion_is_overdue_at_the_sites_own_pin_deadline() {
        let cfg = crate::Config::from_document(include_str!("../../../infra/sites.example.json"))
            .unwrap();
        let mut site = cfg.site("orders").unwrap().clone();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 14, 0, 0).unwrap();
        let r1 = DbRef {
            id: "orders-replica-1".into(),
            region: "us-west-2".into(),
        };
        let mut st = SiteState::new("orders");
        st.epoch = 1;
        st.candidate = Some(r1.clone());
        st.transition(1, Phase::Promoting, t0, "decided").unwrap();
        st.transition(1, Phase::Promoted, t0, "promoted").unwrap();
        st.promotion = Some(PromotionRecord {
            epoch: 1,
            candidate: r1,
            action: "PromoteReadReplica".into(),
            requested_at: t0,
            completed_at: Some(t0),
            endpoint: None,
            writable_verified_at: None,
            resolved: None,
        });
        for (secs, paged_at) in [(600, 15), (3600, 65), (86_400, 24 * 60 + 5)] {
            site.thresholds.pin_deadline_secs = secs;
            let at = |m: i64| t0 + Duration::minutes(m);
            assert!(overdue(&site, &st, at(paged_at - 1)).is_none(), "{secs}");
            let why = overdue(&site, &st, at(paged_at)).expect("overdue");
            assert!(why.contains("never pinned"), "{why}");
        }

        // data-plane-switch, still `promoted` with the switch put (finding 8): the page says it.
        site.thresholds.pin_deadline_secs = 600;
        let put = crate::dataplane::SwitchRecord {
            epoch: 1,
            switched_at: t0,
            host: "orders-replica-1.x.us-west-2.rds.amazonaws.com".into(),
            records_pending: true,
            put_only: true,
            before: vec![],
            observed: None,
            put_back_at: None,
            acked_at: Some(t0),
            put_error: None,
        };
        st.data_plane_switch = Some(put.clone());
        let why = overdue(&site, &st, t0 + Duration::minutes(15)).expect("overdue");
        assert!(
            why.contains("the data-plane switch was put at")
                && why.contains("do NOT set the switch back")
                && !why.contains("by hand (Route 53 console or CLI)"),
            "{why}"
        );
        st.data_plane_switch = Some(crate::dataplane::SwitchRecord {
            acked_at: None,
            put_error: Some("AccessDenied".into()),
            ..put
        });
        let why = overdue(&site, &st, t0 + Duration::minutes(15)).expect("overdue");
        assert!(
            why.contains("CloudWatch never acknowledged it (AccessDenied)"),
            "{why}"
        );

        // data-plane-switch: on the switch, the records still pending past the same deadline.
        st.transition(1, Phase::DnsPinned, t0, "switched").unwrap();
        st.data_plane_switch = Some(crate::dataplane::SwitchRecord {
            epoch: 1,
            switched_at: t0,
            host: "orders-replica-1.x.us-west-2.rds.amazonaws.com".into(),
            records_pending: true,
            put_only: false,
            before: vec![],
            observed: None,
            put_back_at: None,
            acked_at: None,
            put_error: None,
        });
        let at = |m: i64| t0 + Duration::minutes(m);
        assert!(overdue(&site, &st, at(14)).is_none());
        let why = overdue(&site, &st, at(15)).expect("records pending past the deadline");
        assert!(
            why.contains("never pinned")
                && why.contains("do NOT set the switch back")
                && why.contains("UPSERT db.orders.example.com"),
            "{why}"
        );
        st.data_plane_switch.as_mut().unwrap().records_pending = false;
        assert!(
            overdue(&site, &st, at(60)).is_none(),
            "given up (and paged) by the pinner"
        );
    }
}
