//! The decision: from a signal, the evidence and the site's ledger record to a verdict, the next
//! record and the domain events to emit.
//!
//! Two steps, so that noise costs nothing:
//! 1. [`route`] runs before any AWS call. It rejects stale, future, foreign, forged and unknown
//!    inputs and names the sites a signal concerns. A forged event never causes even a read.
//! 2. [`decide`] runs per site with the evidence the adapters gathered and the record read from
//!    the ledger. It is a pure function of its inputs (time included), so every branch is a
//!    decision-table test.
//!
//! Safety rules encoded here: an outage must be corroborated by a quorum of independent votes for
//! the whole sustained window; unknown evidence never counts as healthy *or* as down; a failover in
//! flight, RDS's own failover in progress, pause, maintenance, cooldown, a deliberate stop, no
//! healthy candidate, and lag beyond the RPO each refuse or hold, and say so with their numbers.

use chrono::{DateTime, Utc};

use crate::config::{ApprovalMode, Config, DbRef, Engine, SiteConfig};
use crate::events::{DomainEvent, EventType};
use crate::evidence::{Evidence, LagSample, ReplicationBreak};
use crate::incident::{ManagedFailover, Pause, Phase, RpoOverride, SiteState};
use crate::signal::{
    OperatorAction, OperatorCommand, RdsMeaning, Signal, SignalKind, SOURCE_CLOUDWATCH,
    SOURCE_OPERATOR, SOURCE_RDS, SOURCE_SCHEDULE,
};
use crate::verdict::{
    Guard, GuardCheck, GuardResult, IgnoreReason, Outcome, RefusalReason, Verdict,
};

/// Clock skew tolerated for timestamps in the future.
pub const MAX_FUTURE_SKEW_SECS: i64 = 300;
/// Ticks older than this are dropped: the next one is a minute away.
pub const MAX_TICK_AGE_SECS: i64 = 300;
/// How long RDS's own failover is given before we consider acting ourselves.
pub const MANAGED_FAILOVER_GRACE_SECS: i64 = 900;

/// Where a signal goes, decided before any AWS call.
#[derive(Debug, Clone, PartialEq)]
pub enum Routing {
    Sites(Vec<String>),
    Ignore(Verdict),
}

fn ignore(site: Option<&str>, reason: IgnoreReason, guard: Guard, detail: String) -> Verdict {
    Verdict {
        site: site.map(String::from),
        outcome: Outcome::Ignore { reason },
        epoch: 0,
        phase: Phase::Idle,
        summary: format!("ignored: {detail}"),
        guards: vec![GuardCheck::new(guard, GuardResult::Fail, detail)],
    }
}

/// Step 1: event age, account/region/source allowlist and resource ownership.
pub fn route(cfg: &Config, signal: &Signal, now: DateTime<Utc>) -> Routing {
    let expected_source = match &signal.kind {
        SignalKind::Alarm(_) => SOURCE_CLOUDWATCH,
        SignalKind::Rds(_) => SOURCE_RDS,
        SignalKind::Tick => SOURCE_SCHEDULE,
        SignalKind::Recheck(_) => crate::signal::SOURCE_RECHECK,
        SignalKind::Operator(_) => SOURCE_OPERATOR,
    };
    if signal.source != expected_source {
        return Routing::Ignore(ignore(
            None,
            IgnoreReason::WrongSource,
            Guard::Allowlist,
            format!(
                "source `{}` may not send this kind of signal (expected `{expected_source}`)",
                signal.source
            ),
        ));
    }
    // Account: every AWS-delivered signal must name ours. Direct operator invokes carry none (the
    // Lambda invoke permission is their authentication).
    if signal.delivery != crate::signal::Delivery::Direct {
        match &signal.account {
            Some(a) if *a == cfg.account_id => {}
            other => {
                return Routing::Ignore(ignore(
                    None,
                    IgnoreReason::ForeignAccount,
                    Guard::Allowlist,
                    format!(
                        "account {} is not the protected account {}",
                        other.as_deref().unwrap_or("(none)"),
                        cfg.account_id
                    ),
                ))
            }
        }
    }
    let sites: Vec<&SiteConfig> = match &signal.kind {
        SignalKind::Alarm(a) => match cfg.sites.iter().find(|s| s.owns_alarm(&a.name)) {
            Some(s) => vec![s],
            None => {
                return Routing::Ignore(ignore(
                    None,
                    IgnoreReason::UnknownResource,
                    Guard::Allowlist,
                    format!("alarm `{}` belongs to no protected site", a.name),
                ))
            }
        },
        SignalKind::Rds(r) => {
            if let Some(arn) = &r.source_arn {
                // arn:aws:rds:REGION:ACCOUNT:db:ID — a mismatching ARN is a forgery or a misroute.
                let parts: Vec<&str> = arn.split(':').collect();
                if parts.len() < 7 || parts[4] != cfg.account_id || parts[6] != r.source_id {
                    return Routing::Ignore(ignore(
                        None,
                        IgnoreReason::UnknownResource,
                        Guard::Allowlist,
                        format!(
                            "source ARN `{arn}` does not match account {} and resource `{}`",
                            cfg.account_id, r.source_id
                        ),
                    ));
                }
            }
            match cfg.sites.iter().find(|s| s.owns_resource(&r.source_id)) {
                Some(s) => vec![s],
                None => {
                    return Routing::Ignore(ignore(
                        None,
                        IgnoreReason::UnknownResource,
                        Guard::Allowlist,
                        format!(
                            "RDS resource `{}` is not protected by any site",
                            r.source_id
                        ),
                    ))
                }
            }
        }
        SignalKind::Tick => cfg.sites.iter().collect(),
        SignalKind::Recheck(r) => match cfg.site(&r.site) {
            Some(s) => vec![s],
            None => {
                return Routing::Ignore(ignore(
                    None,
                    IgnoreReason::UnknownSite,
                    Guard::Allowlist,
                    format!(
                        "re-check for site `{}`, which is not configured (known: {})",
                        r.site,
                        site_list(cfg)
                    ),
                ))
            }
        },
        SignalKind::Operator(c) => match cfg.site(&c.site) {
            Some(s) => vec![s],
            None => {
                return Routing::Ignore(ignore(
                    None,
                    IgnoreReason::UnknownSite,
                    Guard::Command,
                    format!(
                        "site `{}` is not configured (known: {})",
                        c.site,
                        site_list(cfg)
                    ),
                ))
            }
        },
    };
    if let Some(region) = &signal.region {
        let allowed =
            sites.iter().any(|s| s.regions().contains(region.as_str())) || *region == cfg.region;
        if !allowed {
            return Routing::Ignore(ignore(
                sites.first().map(|s| s.id.as_str()),
                IgnoreReason::ForeignRegion,
                Guard::Allowlist,
                format!("region {region} is not a region of the site"),
            ));
        }
    }
    if let Some(t) = signal.time {
        let age = (now - t).num_seconds();
        let max_age = match signal.kind {
            SignalKind::Tick | SignalKind::Recheck(_) => MAX_TICK_AGE_SECS,
            _ => sites
                .iter()
                .map(|s| s.thresholds.max_event_age_secs as i64)
                .min()
                .unwrap_or(MAX_TICK_AGE_SECS),
        };
        if age > max_age {
            let mut v = ignore(
                sites.first().map(|s| s.id.as_str()),
                IgnoreReason::Stale,
                Guard::EventAge,
                format!("event is {age} s old, older than the {max_age} s limit (a late retry)"),
            );
            v.guards[0] = v.guards[0].clone().numbers(age as f64, max_age as f64);
            return Routing::Ignore(v);
        }
        if -age > MAX_FUTURE_SKEW_SECS {
            let mut v = ignore(
                sites.first().map(|s| s.id.as_str()),
                IgnoreReason::FromTheFuture,
                Guard::EventAge,
                format!("event is dated {} s in the future (more than {MAX_FUTURE_SKEW_SECS} s of skew)", -age),
            );
            v.guards[0] = v.guards[0]
                .clone()
                .numbers(age as f64, -(MAX_FUTURE_SKEW_SECS as f64));
            return Routing::Ignore(v);
        }
    }
    Routing::Sites(sites.into_iter().map(|s| s.id.clone()).collect())
}

fn site_list(cfg: &Config) -> String {
    cfg.sites
        .iter()
        .map(|s| s.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether deciding on this signal needs evidence from AWS (pause/resume do not).
pub fn needs_evidence(signal: &Signal) -> bool {
    // `status` gathers (read-only: the live votes and lags are what an operator asks it for)
    // and changes nothing.
    !matches!(
        &signal.kind,
        SignalKind::Operator(OperatorCommand {
            command: OperatorAction::Pause
                | OperatorAction::Resume
                | OperatorAction::Unpin
                | OperatorAction::Reprotect,
            ..
        }) | SignalKind::Rds(crate::signal::RdsSignal {
            meaning: RdsMeaning::Unidentified,
            ..
        })
    )
}

/// The result of step 2.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The record to write (version already bumped), or `None` when nothing changed.
    pub next: Option<SiteState>,
    /// Events to emit once `next` is committed (also held in `next.outbox` until confirmed).
    pub emit: Vec<DomainEvent>,
}

pub(crate) struct Ctx<'a> {
    pub(crate) site: &'a SiteConfig,
    /// The site as configured (`site` is the live topology the ledger owns).
    pub(crate) configured: &'a SiteConfig,
    pub(crate) now: DateTime<Utc>,
    pub(crate) st: SiteState,
    pub(crate) guards: Vec<GuardCheck>,
    pub(crate) emit: Vec<DomainEvent>,
}

impl Ctx<'_> {
    pub(crate) fn guard(&mut self, g: GuardCheck) {
        self.guards.push(g);
    }

    pub(crate) fn event(&mut self, t: EventType, summary: &str, outcome: &Outcome) {
        let verdict = self.verdict_of(outcome.clone(), summary.to_string());
        self.emit.push(DomainEvent {
            event_type: t,
            site: self.site.id.clone(),
            epoch: self.st.epoch,
            phase: self.st.phase,
            engine: self.site.engine.kind().into(),
            occurred_at: self.now,
            primary: Some(self.site.primary.clone()),
            candidate: self.st.candidate.clone(),
            rpo_override: self.st.rpo_override.clone(),
            verdict,
            timeline: self.st.timeline.clone(),
        });
    }

    pub(crate) fn verdict_of(&self, outcome: Outcome, summary: String) -> Verdict {
        Verdict {
            site: Some(self.site.id.clone()),
            outcome,
            epoch: self.st.epoch,
            phase: self.st.phase,
            summary,
            guards: self.guards.clone(),
        }
    }

    pub(crate) fn move_to(&mut self, to: Phase, note: &str) -> bool {
        let epoch = self.st.epoch;
        // The callers only ask for moves the table allows; an error here is a policy bug, and the
        // safe response to a policy bug is to change nothing.
        self.st
            .transition(epoch, to, self.now, note)
            .unwrap_or(false)
    }

    pub(crate) fn finish(
        mut self,
        original: &SiteState,
        outcome: Outcome,
        summary: String,
    ) -> Decision {
        let verdict = self.verdict_of(outcome, summary);
        let changed = self.st != *original;
        let next = changed.then(|| {
            self.st.version = original.version + 1;
            self.st.updated_at = Some(self.now);
            self.st.outbox.extend(self.emit.iter().cloned());
            self.st
        });
        Decision {
            verdict,
            next,
            emit: self.emit,
        }
    }
}

/// Step 2: decide for one site. `evidence` is `None` only when [`needs_evidence`] said so.
pub fn decide(
    site: &SiteConfig,
    signal: &Signal,
    evidence: Option<&Evidence>,
    state: &SiteState,
    now: DateTime<Utc>,
) -> Decision {
    let mut d = decide_signal(site, signal, evidence, state, now);
    // A real incident decided by this signal wins over a drill in flight (crate::drill::watch).
    if let Some(next) = d.next.as_mut() {
        let before = next.outbox.len();
        crate::drill::watch(site, next, now);
        d.emit.extend(next.outbox[before..].iter().cloned());
    }
    d
}

fn decide_signal(
    site: &SiteConfig,
    signal: &Signal,
    evidence: Option<&Evidence>,
    state: &SiteState,
    now: DateTime<Utc>,
) -> Decision {
    // Automation decides on the topology the ledger owns, never on a stale configuration.
    let effective = crate::topology::effective(site, state);
    let configured = site;
    let site: &SiteConfig = &effective;
    let mut cx = Ctx {
        site,
        configured,
        now,
        st: state.clone(),
        guards: vec![],
        emit: vec![],
    };
    // A direct invoke has no delivery id to deduplicate on: "pause, resume, pause" is three
    // commands, not a duplicate. Operator commands are idempotent by themselves (pause twice is
    // paused; approve names its epoch; a second failover finds the incident in flight).
    let deduplicable = signal.delivery != crate::signal::Delivery::Direct;
    if deduplicable && !cx.st.remember_signal(&signal.id) {
        cx.guard(GuardCheck::new(
            Guard::Duplicate,
            GuardResult::Fail,
            format!("delivery `{}` was already handled", signal.id),
        ));
        let cx = Ctx {
            st: state.clone(),
            ..cx
        };
        return cx.finish(
            state,
            Outcome::Ignore {
                reason: IgnoreReason::Duplicate,
            },
            "ignored: duplicate delivery".into(),
        );
    }
    cx.guard(GuardCheck::new(
        Guard::Duplicate,
        GuardResult::Pass,
        format!("first delivery of `{}`", signal.id),
    ));

    if let SignalKind::Operator(cmd) = &signal.kind {
        return operator(cx, state, cmd, evidence, &signal.id);
    }
    if let SignalKind::Rds(r) = &signal.kind {
        if r.meaning == RdsMeaning::Unidentified {
            // No event id: what happened cannot be told, and guessing from the free-text message
            // could open or hold an incident on a misreading. The delivery is remembered (dedupe,
            // audit trail) and nothing else.
            cx.guard(GuardCheck::new(
                Guard::Allowlist,
                GuardResult::NotApplicable,
                format!(
                    "RDS event about `{}` carries no event id: nothing to conclude",
                    r.source_id
                ),
            ));
            return cx.finish(
                state,
                Outcome::Ignore {
                    reason: IgnoreReason::Unidentified,
                },
                "unidentified RDS event: no action".into(),
            );
        }
        note_rds_event(&mut cx.st, r.meaning, &r.event_id, &r.source_id, now);
    }
    let Some(ev) = evidence else {
        return cx.finish(state, Outcome::Watch, "no evidence gathered".into());
    };
    record_lag(&mut cx.st, ev, now);
    let d = evaluate(cx, state, ev);
    if matches!(signal.kind, SignalKind::Tick) {
        // A drill's back leg is decided only once this tick's own evaluation is done (an outage
        // always wins; crate::drill::after_tick).
        return crate::drill::after_tick(configured, site, state, d, ev, now);
    }
    d
}

fn note_rds_event(
    st: &mut SiteState,
    meaning: RdsMeaning,
    event_id: &str,
    source_id: &str,
    now: DateTime<Utc>,
) {
    match meaning {
        RdsMeaning::BackupStarted => {
            st.backups_running.insert(source_id.to_string());
            st.backup_started_at.insert(source_id.to_string(), now);
        }
        RdsMeaning::BackupFinished => {
            st.backups_running.remove(source_id);
            st.backup_started_at.remove(source_id);
        }
        RdsMeaning::ManagedFailoverStarted => {
            st.managed_failover = Some(ManagedFailover {
                event_id: event_id.into(),
                source_id: source_id.into(),
                at: now,
            });
        }
        RdsMeaning::ManagedFailoverCompleted | RdsMeaning::ManagedFailoverFailed => {
            st.managed_failover = None
        }
        // RDS-EVENT-0045/0057/0062 (replication error, stopped, terminated): whatever lag this
        // replica reported before says nothing about it now. Its samples are dropped and it is
        // ineligible until replication is observed healthy again (RDS-EVENT-0046, or StatusInfos
        // `replicating` with a lag reading).
        // During an open incident it is the source's loss the event reports (see record_lag).
        RdsMeaning::ReplicationError if st.phase.is_open() => {}
        RdsMeaning::ReplicationError => {
            st.last_good_lag.remove(source_id);
            st.replication_broken.insert(
                source_id.to_string(),
                ReplicationBreak {
                    at: now,
                    why: format!("RDS event {event_id}"),
                },
            );
        }
        RdsMeaning::ReplicationResumed => {
            st.replication_broken.remove(source_id);
        }
        _ => {}
    }
}

/// A "backup started" whose "finished" never arrived stops excluding a candidate once the
/// candidate is seen `available` this long after it (a lost event must not exclude it forever;
/// should a backup really still run, RDS refuses the promotion and the epoch says so).
pub const BACKUP_EVENT_TTL: chrono::Duration = chrono::Duration::hours(1);

/// Keeps the last good lag of each candidate, and what the topology says of its replication.
fn record_lag(st: &mut SiteState, ev: &Evidence, now: DateTime<Utc>) {
    let outage_now = st.phase.is_open() || ev.tally().down > 0;
    for c in &ev.candidates {
        let id = &c.db.id;
        let recreated =
            |s: &LagSample| matches!((s.created_at, c.created_at), (Some(a), Some(b)) if a != b);
        if st.last_good_lag.get(id).is_some_and(recreated) {
            // Same identifier, another database: nothing known about the old one applies.
            st.last_good_lag.remove(id);
            st.replication_broken.remove(id);
        }
        // A replica whose source just died reports its IO thread in error too: during an open
        // incident that is the outage itself ("source lost"), not a broken replica, and its
        // pre-outage sample stays the best bound there is.
        let source_lost = outage_now && !st.replication_broken.contains_key(id);
        match c.replication.as_deref() {
            Some(r) if crate::evidence::replication_broken(r) && source_lost => {}
            Some(r) if crate::evidence::replication_broken(r) => {
                st.last_good_lag.remove(id);
                st.replication_broken
                    .entry(id.clone())
                    .or_insert_with(|| ReplicationBreak {
                        at: now,
                        why: format!("StatusInfos read replication `{r}`"),
                    });
                continue;
            }
            Some(_) if c.lag_secs.is_some() => {
                st.replication_broken.remove(id);
            }
            _ => {}
        }
        // `backing-up` is the status RDS shows during a backup; a candidate seen `available`
        // again is not being backed up, whatever "backup finished" event was lost.
        match c.status.describe().as_str() {
            "backing-up" => {
                st.backups_running.insert(id.clone());
                st.backup_started_at.entry(id.clone()).or_insert(now);
            }
            "available" => {
                let started = st.backup_started_at.get(id).copied();
                if started.is_none_or(|t| now - t >= BACKUP_EVENT_TTL) {
                    st.backups_running.remove(id);
                    st.backup_started_at.remove(id);
                }
            }
            _ => {}
        }
        if st.replication_broken.contains_key(id) {
            continue;
        }
        if let Some(secs) = c.lag_secs {
            st.last_good_lag.insert(
                id.clone(),
                LagSample {
                    secs,
                    // When the datapoint was taken, not when we read it: CloudWatch serves a
                    // datapoint for minutes, and its age is what the freshness rule judges.
                    at: c.lag_at.map_or(now, |t| t.min(now)),
                    created_at: c.created_at,
                },
            );
        }
    }
}

fn evaluate(mut cx: Ctx<'_>, original: &SiteState, ev: &Evidence) -> Decision {
    let now = cx.now;
    if cx.st.phase.is_in_flight() {
        cx.guard(GuardCheck::new(
            Guard::InFlight,
            GuardResult::Fail,
            format!(
                "failover of epoch {} is in flight (phase {})",
                cx.st.epoch, cx.st.phase
            ),
        ));
        let s = format!(
            "watching: failover epoch {} in progress ({})",
            cx.st.epoch, cx.st.phase
        );
        return watch_deadline(cx, original, s);
    }
    cx.guard(GuardCheck::new(
        Guard::InFlight,
        GuardResult::Pass,
        "no failover in flight",
    ));

    // Every evaluation updates what the voters looked like over time (crate::vantage,
    // crate::recovery); warnings are announced once per episode, not per tick.
    crate::recovery::observe(cx.site, ev, &mut cx.st.watch, now);
    let announce = crate::vantage::note_warnings(cx.site, ev, &mut cx.st.watch, now);
    if !announce.is_empty() {
        cx.event(
            EventType::EvidenceWarning,
            &format!("warning: {}", announce.join("; ")),
            &Outcome::Watch,
        );
    }

    let t = &cx.site.thresholds;
    let tally = ev.tally();
    let k = t.quorum;
    let quorum_met = crate::vantage::quorum_met(&tally, k);
    let voters = tally.voters.join("; ");
    let could_be = tally.down + tally.unknown;
    let qres = if quorum_met {
        GuardResult::Pass
    } else if could_be >= k && could_be > tally.up {
        GuardResult::Unknown
    } else {
        GuardResult::Fail
    };
    let warnings = crate::vantage::current_warnings(cx.site, ev);
    let warned = if warnings.is_empty() {
        String::new()
    } else {
        format!("; warning: {}", warnings.join("; "))
    };
    cx.guard(
        GuardCheck::new(
            Guard::Quorum,
            qres,
            format!(
                "down {}, up {}, unknown {} of {} voters; a failover needs down >= {k} and down > up: {voters}{warned}",
                tally.down,
                tally.up,
                tally.unknown,
                tally.total(),
            ),
        )
        .numbers(tally.down as f64, k as f64),
    );

    if !quorum_met {
        cx.st.quorum_since = None;
        return crate::flap::below_quorum(cx, original, ev, &tally, k);
    }

    open_if_idle(&mut cx, "outage corroborated by quorum");
    crate::flap::note_votes(&mut cx.st, &tally, now);
    let since = *cx.st.quorum_since.get_or_insert(now);
    let elapsed = (now - since).num_seconds().max(0);
    let window = t.sustained_secs as i64;

    if let Some(g) = crate::recovery::hold(cx.site, &cx.st.watch, now) {
        cx.guard(g);
        let s =
            "watching: RDS's own Multi-AZ failover is in progress (seen from status)".to_string();
        let o = Outcome::Watch;
        if crate::flap::first_page(&mut cx.st) {
            cx.event(EventType::IncidentSuspected, &s, &o);
        }
        return cx.finish(original, o, s);
    }
    if let Some(m) = cx.st.managed_failover.clone() {
        if (now - m.at).num_seconds() < MANAGED_FAILOVER_GRACE_SECS {
            cx.guard(
                GuardCheck::new(
                    Guard::ManagedFailover,
                    GuardResult::Fail,
                    format!(
                        "RDS is failing over by itself ({} on {}, {} s ago); not racing it",
                        m.event_id,
                        m.source_id,
                        (now - m.at).num_seconds()
                    ),
                )
                .numbers(
                    (now - m.at).num_seconds() as f64,
                    MANAGED_FAILOVER_GRACE_SECS as f64,
                ),
            );
            let s = "watching: RDS's own failover is in progress".to_string();
            let o = Outcome::Watch;
            if crate::flap::first_page(&mut cx.st) {
                cx.event(EventType::IncidentSuspected, &s, &o);
            }
            return cx.finish(original, o, s);
        }
    }
    cx.guard(GuardCheck::new(
        Guard::ManagedFailover,
        GuardResult::Pass,
        crate::recovery::expired(cx.site, &cx.st.watch, now)
            .unwrap_or_else(|| "no RDS-managed failover in progress".into()),
    ));

    if elapsed < window {
        cx.guard(
            GuardCheck::new(
                Guard::Sustained,
                GuardResult::Fail,
                format!("quorum held for {elapsed} s of the required {window} s"),
            )
            .numbers(elapsed as f64, window as f64),
        );
        let s = format!("suspected: outage corroborated for {elapsed} s of {window} s");
        let o = Outcome::Suspected;
        if crate::flap::first_page(&mut cx.st) {
            cx.event(EventType::IncidentSuspected, &s, &o);
        }
        return cx.finish(original, o, s);
    }
    cx.guard(
        GuardCheck::new(
            Guard::Sustained,
            GuardResult::Pass,
            format!("quorum held for {elapsed} s (required {window} s)"),
        )
        .numbers(elapsed as f64, window as f64),
    );
    if crate::flap::first_page(&mut cx.st) {
        // The window was zero (or met at once): confirmed in the same step it was first paged.
        let o = Outcome::Suspected;
        cx.event(
            EventType::IncidentSuspected,
            "suspected: outage corroborated",
            &o,
        );
    }
    decide_failover(cx, original, ev, Trigger::Automatic)
}

/// An in-flight phase past its deadline pages once, with the next step.
fn watch_deadline(mut cx: Ctx<'_>, original: &SiteState, s: String) -> Decision {
    let Some(step) = crate::deadline::overdue(cx.site, &cx.st, cx.now) else {
        return cx.finish(original, Outcome::Watch, s);
    };
    let key = (cx.st.phase, cx.st.epoch);
    cx.guard(GuardCheck::new(
        Guard::Deadline,
        GuardResult::Fail,
        step.clone(),
    ));
    let s = format!(
        "stuck: epoch {} in {} past its deadline: {step}",
        key.1, key.0
    );
    let o = Outcome::Watch;
    if cx.st.overdue != Some(key) {
        cx.st.overdue = Some(key);
        cx.event(EventType::PhaseOverdue, &s, &o);
    }
    cx.finish(original, o, s)
}

fn open_if_idle(cx: &mut Ctx<'_>, note: &str) -> bool {
    if cx.st.phase.is_open() {
        return false;
    }
    cx.st.open_incident(cx.now, note).is_ok()
}

#[derive(Clone, Copy, PartialEq)]
enum Trigger<'a> {
    Automatic,
    Approved(&'a OperatorCommand),
    Manual(&'a OperatorCommand),
}

fn decide_failover(
    mut cx: Ctx<'_>,
    original: &SiteState,
    ev: &Evidence,
    trigger: Trigger<'_>,
) -> Decision {
    let now = cx.now;
    let site = cx.site;
    let manual = !matches!(trigger, Trigger::Automatic);
    // The first failing guard names the refusal; every guard is still evaluated and explained.
    let mut refusal: Option<(RefusalReason, String)> = None;
    let refuse = |r: RefusalReason, why: String, refusal: &mut Option<(RefusalReason, String)>| {
        if refusal.is_none() {
            *refusal = Some((r, why));
        }
    };

    match &cx.st.paused {
        Some(p) => {
            let d = format!(
                "automation paused by {} at {}: {}",
                p.by,
                p.at.format("%Y-%m-%dT%H:%M:%SZ"),
                p.reason
            );
            cx.guard(GuardCheck::new(Guard::Pause, GuardResult::Fail, d.clone()));
            refuse(RefusalReason::Paused, d, &mut refusal);
        }
        None => cx.guard(GuardCheck::new(
            Guard::Pause,
            GuardResult::Pass,
            "automation not paused",
        )),
    }

    match site.in_maintenance(now) {
        Some(w) if !manual => {
            let d = format!("inside maintenance window {w} (UTC): outages here are expected");
            cx.guard(GuardCheck::new(
                Guard::MaintenanceWindow,
                GuardResult::Fail,
                d.clone(),
            ));
            refuse(RefusalReason::MaintenanceWindow, d, &mut refusal);
        }
        Some(w) => cx.guard(GuardCheck::new(
            Guard::MaintenanceWindow,
            GuardResult::NotApplicable,
            format!("inside {w}, but an operator asked"),
        )),
        None => cx.guard(GuardCheck::new(
            Guard::MaintenanceWindow,
            GuardResult::Pass,
            "outside every maintenance window",
        )),
    }

    // A promotion an earlier epoch requested and never saw pinned (the epoch failed after the
    // request: the watch gave up, the write check or DNS failed) may have made its candidate a
    // writer. Promoting another candidate automatically would make two writers; only a human may
    // decide (a manual `failover`, once the first one is dealt with).
    match unresolved_promotion(&cx.st) {
        Some(d) if !manual => {
            cx.guard(GuardCheck::new(
                Guard::Candidate,
                GuardResult::Fail,
                d.clone(),
            ));
            refuse(RefusalReason::UnresolvedPromotion, d, &mut refusal);
        }
        Some(d) => cx.guard(GuardCheck::new(
            Guard::Candidate,
            GuardResult::NotApplicable,
            format!("{d}; an operator asked"),
        )),
        None => {}
    }

    let cooldown = site.thresholds.cooldown_secs as i64;
    let cooldown_override = match trigger {
        Trigger::Manual(c) | Trigger::Approved(c) if c.override_cooldown => Some(c),
        _ => None,
    };
    match cx.st.last_failover_at {
        Some(last) if (now - last).num_seconds() < cooldown && cooldown_override.is_some() => {
            let c = cooldown_override.expect("checked");
            let since = (now - last).num_seconds();
            cx.guard(
                GuardCheck::new(
                    Guard::Cooldown,
                    GuardResult::NotApplicable,
                    format!(
                        "last failover {since} s ago (cooldown {cooldown} s), overridden by {}: {}",
                        c.by().as_deref().unwrap_or("an operator"),
                        c.reason.as_deref().unwrap_or_default()
                    ),
                )
                .numbers(since as f64, cooldown as f64),
            );
        }
        Some(last) if (now - last).num_seconds() < cooldown => {
            let since = (now - last).num_seconds();
            let d = format!("last failover {since} s ago, cooldown is {cooldown} s");
            cx.guard(
                GuardCheck::new(Guard::Cooldown, GuardResult::Fail, d.clone())
                    .numbers(since as f64, cooldown as f64),
            );
            refuse(RefusalReason::Cooldown, d, &mut refusal);
        }
        Some(last) => {
            let since = (now - last).num_seconds();
            cx.guard(
                GuardCheck::new(
                    Guard::Cooldown,
                    GuardResult::Pass,
                    format!("last failover {since} s ago"),
                )
                .numbers(since as f64, cooldown as f64),
            )
        }
        None => cx.guard(GuardCheck::new(
            Guard::Cooldown,
            GuardResult::Pass,
            "no previous failover",
        )),
    }

    if ev.primary.is_deliberately_stopped() && !manual {
        let d = format!(
            "the primary is `{}`: someone stopped it; a human must decide",
            ev.primary.describe()
        );
        cx.guard(GuardCheck::new(
            Guard::DeliberateStop,
            GuardResult::Fail,
            d.clone(),
        ));
        refuse(RefusalReason::DeliberateStop, d, &mut refusal);
    } else {
        cx.guard(GuardCheck::new(
            Guard::DeliberateStop,
            GuardResult::Pass,
            format!("primary status: {}", ev.primary.describe()),
        ));
    }

    let override_cmd = match trigger {
        Trigger::Manual(c) if c.override_rpo => Some(c),
        _ => None,
    };
    let chosen = match select_candidate(&mut cx, ev, override_cmd) {
        Ok(c) => Some(c),
        Err((r, d)) => {
            refuse(r, d, &mut refusal);
            None
        }
    };

    if let Some((reason, why)) = refusal {
        let changed = cx.move_to(Phase::Refused, &why);
        let s = format!("refused: {why}");
        let o = Outcome::Refused { reason };
        if changed {
            cx.event(EventType::FailoverRefused, &s, &o);
        }
        return cx.finish(original, o, s);
    }
    let candidate = chosen.expect("no refusal means a candidate was chosen");

    let mode = site.approval;
    match (mode, trigger) {
        (ApprovalMode::Shadow, _) => {
            cx.guard(GuardCheck::new(
                Guard::Shadow,
                GuardResult::Fail,
                "shadow mode: deciding only, never mutating",
            ));
            cx.st.candidate = Some(candidate.clone());
            let changed = cx.move_to(Phase::Shadowed, &format!("would promote {candidate}"));
            let s = format!("shadow: would fail over to {candidate}");
            let o = Outcome::ShadowWouldFailOver { candidate };
            if changed {
                cx.event(EventType::ShadowFailover, &s, &o);
            }
            cx.finish(original, o, s)
        }
        (ApprovalMode::RequireApproval, Trigger::Automatic) => {
            cx.guard(GuardCheck::new(Guard::Approval, GuardResult::Fail, format!("site requires approval: send {{\"command\":\"approve\",\"site\":\"{}\",\"epoch\":{}}}", site.id, cx.st.epoch)));
            cx.st.candidate = Some(candidate.clone());
            let changed = cx.move_to(
                Phase::AwaitingApproval,
                &format!("waiting for approval to promote {candidate}"),
            );
            let s = format!("awaiting approval to fail over to {candidate}");
            let o = Outcome::AwaitingApproval { candidate };
            if changed {
                cx.event(EventType::ApprovalRequested, &s, &o);
            }
            cx.finish(original, o, s)
        }
        (_, t) => {
            let who = match t {
                Trigger::Automatic => "automatic (approval mode auto)".to_string(),
                Trigger::Approved(c) => {
                    format!("approved by {}", c.by().as_deref().unwrap_or("an operator"))
                }
                Trigger::Manual(c) => format!(
                    "requested by {}",
                    c.by().as_deref().unwrap_or("an operator")
                ),
            };
            cx.guard(GuardCheck::new(
                Guard::Approval,
                GuardResult::Pass,
                who.clone(),
            ));
            cx.guard(GuardCheck::new(
                Guard::Shadow,
                GuardResult::Pass,
                "not in shadow mode",
            ));
            // The cooldown starts when RDS is asked (promote::request), not here: a decision
            // whose pre-check fails never touched a database.
            cx.st.candidate = Some(candidate.clone());
            // What the promoter re-checks before asking RDS: the decision's age, and whether it
            // may target a primary that answers (only a human's forced failover).
            use crate::incident::{Decision as Decided, DecisionTrigger};
            let (trigger, human) = match t {
                Trigger::Automatic => (DecisionTrigger::Automatic, None),
                Trigger::Approved(c) => (DecisionTrigger::Approved, Some(c)),
                Trigger::Manual(c) if c.force => (DecisionTrigger::ManualForced, Some(c)),
                Trigger::Manual(c) => (DecisionTrigger::Manual, Some(c)),
            };
            cx.st.decision = Some(Decided {
                epoch: cx.st.epoch,
                trigger,
                at: now,
                by: human.and_then(|c| c.by()),
                reason: human.and_then(|c| c.reason.clone()),
            });
            // The old primary's fence is recorded with the decision; the tick works on it once
            // the promotion is complete (crate::fence).
            let lag = cx
                .guards
                .iter()
                .find(|g| g.guard == Guard::Rpo)
                .map(|g| g.detail.clone());
            cx.st.fence = Some(crate::fence::intent(cx.site, cx.st.epoch, lag, now));
            cx.move_to(
                Phase::Promoting,
                &format!("failover decided ({who}) to {candidate}"),
            );
            let s = format!("failover decided: promote {candidate} ({who})");
            let o = Outcome::FailoverDecided { candidate };
            cx.event(EventType::FailoverDecided, &s, &o);
            cx.finish(original, o, s)
        }
    }
}

/// One eligible candidate's lag as the RPO guard may use it.
#[derive(Clone)]
struct Lag {
    db: DbRef,
    /// A reading that bounds the data loss: the current one, or a last good one read at most
    /// `max_lag_sample_age_secs` before the outage began.
    fresh: Option<f64>,
    /// With an override only: the largest loss a stale reading allows (its value plus its age at
    /// the outage's start, since replication may have stopped right after it was read).
    bound: Option<f64>,
    src: String,
}

fn lag_of(cx: &Ctx<'_>, e: &crate::evidence::CandidateEvidence) -> Lag {
    let db = e.db.clone();
    let outage = crate::flap::outage_began(&cx.st).unwrap_or(cx.now);
    let max_age = cx.site.thresholds.max_lag_sample_age_secs as i64;
    if let Some(l) = e.lag_secs {
        // CloudWatch serves a datapoint for minutes: the newest one is "current" only if it was
        // taken no longer before the outage than a last good sample may be. An older one is
        // judged below as the sample it is (it was recorded with its own time).
        let taken = e.lag_at.map_or(cx.now, |t| t.min(cx.now));
        if (outage - taken).num_seconds() <= max_age {
            let src = match e.lag_at {
                Some(_) => format!("current, taken {} s ago", (cx.now - taken).num_seconds()),
                None => "current".into(),
            };
            return Lag {
                db,
                fresh: Some(l),
                bound: Some(l),
                src,
            };
        }
    }
    let Some(s) = cx.st.last_good_lag.get(&e.db.id) else {
        return Lag {
            db,
            fresh: None,
            bound: None,
            src: "no reading ever".into(),
        };
    };
    let before = (outage - s.at).num_seconds().max(0);
    if before <= max_age {
        let src = format!("last known good, read {before} s before the outage began");
        return Lag {
            db,
            fresh: Some(s.secs),
            bound: Some(s.secs),
            src,
        };
    }
    let src = format!(
        "last reading {} s at {}, {before} s before the outage began: older than the {max_age} s a sample may be",
        s.secs,
        s.at.format("%Y-%m-%dT%H:%M:%SZ")
    );
    Lag {
        db,
        fresh: None,
        bound: Some(s.secs + before as f64),
        src,
    }
}

/// Picks the first candidate in preference order that is available, replicates from the primary,
/// is not being backed up, and lags no more than the RPO (current reading, else last known good).
fn select_candidate(
    cx: &mut Ctx<'_>,
    ev: &Evidence,
    override_cmd: Option<&OperatorCommand>,
) -> Result<DbRef, (RefusalReason, String)> {
    let site = cx.site;
    let max = site.thresholds.max_lag_secs as f64;
    if site.engine == Engine::MultiAz {
        cx.guard(GuardCheck::new(
            Guard::Candidate,
            GuardResult::Pass,
            format!(
                "{}: reboot with failover to its synchronous standby",
                site.primary
            ),
        ));
        cx.guard(GuardCheck::new(
            Guard::Rpo,
            GuardResult::NotApplicable,
            "Multi-AZ standby is synchronous: no data loss",
        ));
        return Ok(site.primary.clone());
    }
    let mut eligible: Vec<Lag> = vec![];
    let mut skipped: Vec<String> = vec![];
    for c in &site.candidates {
        let Some(e) = ev.candidates.iter().find(|e| e.db.id == c.id) else {
            skipped.push(format!("{c}: no evidence gathered"));
            continue;
        };
        if !e.status.is_available() {
            skipped.push(format!("{c}: status {}", e.status.describe()));
            continue;
        }
        if e.replica_of_primary != Some(true) {
            let why = match e.replica_of_primary {
                Some(false) => format!("does not replicate from the primary {}", site.primary),
                _ => "replication topology unreadable".to_string(),
            };
            skipped.push(format!("{c}: {why}"));
            continue;
        }
        if cx.st.backups_running.contains(&c.id) {
            skipped.push(format!(
                "{c}: a backup is running (promotion would be blocked)"
            ));
            continue;
        }
        if let Some(b) = cx.st.replication_broken.get(&c.id) {
            skipped.push(format!(
                "{c}: replication broken since {} ({}); ineligible until it is seen replicating",
                b.at.format("%Y-%m-%dT%H:%M:%SZ"),
                b.why
            ));
            continue;
        }
        eligible.push(lag_of(cx, e));
    }
    if eligible.is_empty() {
        let d = format!("no promotable candidate: {}", skipped.join("; "));
        return Err(no_candidate(cx, d, GuardResult::NotApplicable));
    }
    let skipped_note = if skipped.is_empty() {
        String::new()
    } else {
        format!(" (skipped: {})", skipped.join("; "))
    };
    let primary = site.primary.clone();
    let pass_candidate = |cx: &mut Ctx<'_>, c: &DbRef| {
        cx.guard(GuardCheck::new(
            Guard::Candidate,
            GuardResult::Pass,
            format!("{c} is available and replicates from {primary}{skipped_note}"),
        ))
    };
    if let Some(l) = eligible.iter().find(|l| l.fresh.is_some_and(|v| v <= max)) {
        let lag = l.fresh.expect("filtered");
        pass_candidate(cx, &l.db);
        cx.guard(
            GuardCheck::new(
                Guard::Rpo,
                GuardResult::Pass,
                format!("{} lag {lag} s ({}) within the {max} s RPO", l.db, l.src),
            )
            .numbers(lag, max),
        );
        return Ok(l.db.clone());
    }
    if let Some(cmd) = override_cmd {
        return overridden(cx, cmd, &eligible, max, pass_candidate);
    }
    // Refused: name the first candidate in preference order, and why its lag does not do.
    let l = eligible[0].clone();
    pass_candidate(cx, &l.db);
    let how = format!("to accept the data loss send {{\"command\":\"failover\",\"site\":\"{}\",\"override_rpo\":true,\"reason\":\"...\"}}", site.id);
    match l.fresh {
        Some(v) => {
            let d = format!(
                "{} lags {v} s ({}), more than the {max} s RPO; {how}",
                l.db, l.src
            );
            cx.guard(GuardCheck::new(Guard::Rpo, GuardResult::Fail, d.clone()).numbers(v, max));
            Err((RefusalReason::RpoExceeded, d))
        }
        None => {
            let d = format!(
                "{} lag unknown ({}): cannot bound the data loss; {how}",
                l.db, l.src
            );
            cx.guard(GuardCheck::new(Guard::Rpo, GuardResult::Unknown, d.clone()));
            Err((RefusalReason::LagUnknown, d))
        }
    }
}

/// The refusal when no candidate can be promoted: the candidate guard fails with `d`, and the
/// RPO guard has nothing to measure (`rpo`: not applicable, or unknown under an override).
fn no_candidate(cx: &mut Ctx<'_>, d: String, rpo: GuardResult) -> (RefusalReason, String) {
    cx.guard(GuardCheck::new(
        Guard::Candidate,
        GuardResult::Fail,
        d.clone(),
    ));
    cx.guard(GuardCheck::new(Guard::Rpo, rpo, "no candidate to measure"));
    (RefusalReason::NoHealthyCandidate, d)
}

/// An operator accepted the data loss: the candidate they named, else the eligible one that
/// loses least by what is known of it. One with no reading ever is taken only when named.
fn overridden(
    cx: &mut Ctx<'_>,
    cmd: &OperatorCommand,
    eligible: &[Lag],
    max: f64,
    pass_candidate: impl Fn(&mut Ctx<'_>, &DbRef),
) -> Result<DbRef, (RefusalReason, String)> {
    let chosen = match cmd.candidate.as_deref() {
        Some(id) => eligible.iter().find(|l| l.db.id == id).ok_or_else(|| {
            let names: Vec<String> = eligible.iter().map(|l| l.db.id.clone()).collect();
            format!("the operator named candidate `{id}`, which is not promotable now (promotable: {})", names.join(", "))
        }),
        None => eligible
            .iter()
            .filter(|l| l.bound.is_some())
            .min_by(|a, b| a.bound.partial_cmp(&b.bound).unwrap_or(std::cmp::Ordering::Equal))
            .ok_or_else(|| {
                "no promotable candidate has ever reported a lag reading; name the one to promote with `candidate`".to_string()
            }),
    };
    let l = match chosen {
        Ok(l) => l.clone(),
        Err(d) => return Err(no_candidate(cx, d, GuardResult::Unknown)),
    };
    let by = cmd.by().unwrap_or_else(|| "an operator".into());
    let reason = cmd.reason.clone().unwrap_or_default();
    cx.st.rpo_override = Some(RpoOverride {
        by: by.clone(),
        reason: reason.clone(),
        at: cx.now,
    });
    pass_candidate(cx, &l.db);
    let lag_text = match (l.fresh, l.bound) {
        (Some(v), _) => format!("{v} s"),
        (None, Some(b)) => format!("up to {b} s"),
        (None, None) => "unknown".into(),
    };
    let named = if cmd.candidate.is_some() {
        "named by the operator"
    } else {
        "the least data loss known"
    };
    let mut g = GuardCheck::new(
        Guard::Rpo,
        GuardResult::Pass,
        format!(
            "RPO overridden by {by} ({reason}): {} ({named}) lag {lag_text} ({}), RPO {max} s",
            l.db, l.src
        ),
    );
    if let Some(v) = l.fresh.or(l.bound) {
        g = g.numbers(v, max);
    }
    cx.guard(g);
    Ok(l.db)
}

fn operator(
    mut cx: Ctx<'_>,
    original: &SiteState,
    cmd: &OperatorCommand,
    ev: Option<&Evidence>,
    signal_id: &str,
) -> Decision {
    let now = cx.now;
    let by = cmd.by().unwrap_or_else(|| "an operator".into());
    let reason = cmd.reason.clone().filter(|r| !r.trim().is_empty());
    match cmd.command {
        OperatorAction::Status => {
            let paused = cx
                .st
                .paused
                .as_ref()
                .map(|p| format!("; paused by {}: {}", p.by, p.reason))
                .unwrap_or_default();
            let protection = crate::reprotect::unprotected(&cx.st)
                .map(|u| format!("; {u}"))
                .unwrap_or_default();
            let s = format!(
                "site {} is {} at epoch {}{paused}{protection}",
                cx.site.id, cx.st.phase, cx.st.epoch
            );
            cx.guard(GuardCheck::new(
                Guard::Command,
                GuardResult::Pass,
                "status: read only",
            ));
            // A status query changes nothing, not even the dedupe memory.
            let cx = Ctx {
                st: original.clone(),
                ..cx
            };
            cx.finish(original, Outcome::Status, s)
        }
        OperatorAction::Pause => {
            if cx.st.paused.is_some() {
                cx.guard(GuardCheck::new(
                    Guard::Command,
                    GuardResult::Pass,
                    "already paused",
                ));
                let s = "already paused".to_string();
                return cx.finish(original, Outcome::Paused, s);
            }
            let why = reason.unwrap_or_else(|| "no reason given".into());
            cx.st.paused = Some(Pause {
                by: by.clone(),
                reason: why.clone(),
                at: now,
            });
            cx.guard(GuardCheck::new(
                Guard::Command,
                GuardResult::Pass,
                format!("paused by {by}: {why}"),
            ));
            let s = format!("automation paused by {by}: {why}");
            let o = Outcome::Paused;
            cx.event(EventType::AutomationPaused, &s, &o);
            cx.finish(original, o, s)
        }
        OperatorAction::Resume => {
            if cx.st.paused.is_none() {
                cx.guard(GuardCheck::new(
                    Guard::Command,
                    GuardResult::Pass,
                    "was not paused",
                ));
                return cx.finish(original, Outcome::Resumed, "not paused".into());
            }
            cx.st.paused = None;
            cx.guard(GuardCheck::new(
                Guard::Command,
                GuardResult::Pass,
                format!("resumed by {by}"),
            ));
            let s = format!("automation resumed by {by}");
            let o = Outcome::Resumed;
            cx.event(EventType::AutomationResumed, &s, &o);
            cx.finish(original, o, s)
        }
        OperatorAction::Complete => {
            if let Some(d) = crate::failback::complete_refused(&cx.st) {
                cx.guard(GuardCheck::new(
                    Guard::Command,
                    GuardResult::Fail,
                    d.clone(),
                ));
                return refuse_command(cx, original, RefusalReason::FailbackInFlight, d);
            }
            if crate::complete::names_configured(&cx, cmd) {
                return crate::complete::back_to_configuration(cx, original, cmd, ev);
            }
            // A failed epoch whose promotion was requested but never pinned holds automation
            // (`unresolved-promotion`) until a human has dealt with its candidate — pinned DNS to
            // it by hand, or fenced it off — and says so here, naming that epoch.
            let named = cmd.epoch.unwrap_or(0);
            let settled = |st: &SiteState| {
                (st.epoch == named && st.phase == Phase::Failed)
                    || (st.epoch > named && !st.phase.is_in_flight())
            };
            if unpinned_promotion(&cx.st).is_some_and(|p| p.epoch == named) && settled(&cx.st) {
                let why = reason.unwrap_or_default();
                let p = cx.st.promotion.as_mut().expect("checked above");
                p.resolved = Some(Box::new(crate::incident::Resolution {
                    by: by.to_string(),
                    reason: why.to_string(),
                    at: cx.now,
                }));
                let d = format!(
                    "the promotion epoch {named} requested ({} of {}) resolved by {by}: {why}",
                    p.action, p.candidate
                );
                cx.guard(GuardCheck::new(Guard::Command, GuardResult::Pass, d));
                let s = format!(
                    "epoch {named}'s unpinned promotion resolved by {by}; it no longer holds automation for the site"
                );
                let o = Outcome::Completed;
                cx.event(EventType::FailoverCompleted, &s, &o);
                return cx.finish(original, o, s);
            }
            // After a failover the site stays pinned, and the evaluator decides nothing new for
            // it, until a human closes the incident here, naming its epoch. The ledger then owns
            // the topology (the pinned writer is the primary), so no configuration edit is needed.
            let epoch = cx.st.epoch;
            if cx.st.phase != Phase::DnsPinned || cmd.epoch != Some(epoch) {
                let d = format!(
                    "nothing to complete: `complete` names epoch {}, the site is {} at epoch {epoch} \
                     (only a pinned failover, or a failed epoch's unpinned promotion, can be completed)",
                    cmd.epoch.unwrap_or(0),
                    cx.st.phase
                );
                cx.guard(GuardCheck::new(
                    Guard::Command,
                    GuardResult::Fail,
                    d.clone(),
                ));
                return refuse_command(cx, original, RefusalReason::NothingToComplete, d);
            }
            let named_primary = cmd.primary.as_deref();
            let topo = match crate::topology::after_pinned_failover(cx.configured, &cx.st, now) {
                Ok(t) if named_primary.is_some_and(|id| id != t.primary.id) => {
                    let d = format!(
                        "cannot complete epoch {epoch}: `primary` names {}, but DNS was pinned to {} and the configuration names {}; \
                         automation would not point at the pinned writer",
                        named_primary.unwrap_or_default(),
                        t.primary,
                        cx.site.primary
                    );
                    cx.guard(GuardCheck::new(
                        Guard::Command,
                        GuardResult::Fail,
                        d.clone(),
                    ));
                    return refuse_command(cx, original, RefusalReason::NothingToComplete, d);
                }
                Ok(t) => t,
                Err(crate::topology::NotPinned(why)) => {
                    let d = format!(
                        "cannot complete epoch {epoch}: {why}; automation would not point at the pinned writer"
                    );
                    cx.guard(GuardCheck::new(
                        Guard::Command,
                        GuardResult::Fail,
                        d.clone(),
                    ));
                    return refuse_command(cx, original, RefusalReason::NothingToComplete, d);
                }
            };
            let why = reason.unwrap_or_default();
            cx.guard(GuardCheck::new(
                Guard::Command,
                GuardResult::Pass,
                format!("failover of epoch {epoch} completed by {by}: {why}"),
            ));
            let others: Vec<String> = topo.candidates.iter().map(|c| c.to_string()).collect();
            // Never a completion that claims records that were not pinned.
            let records = if crate::dataplane::moved_by_switch_only(&cx.st, epoch) {
                let sw = crate::dataplane::switch_put(&cx.st);
                let host = sw.map(|s| s.host.clone()).unwrap_or_default();
                match sw.and_then(crate::dataplane::unconfirmed) {
                    Some(said) => format!(
                        "; the failover records are NOT pinned and the data-plane switch was NOT confirmed (CloudWatch never acknowledged its datapoint: {said}): the answer may still be the old primary. Put the switch by hand ({}) or pin the records by hand: {}",
                        cx.configured.dns.mode.switch_metric().map(|m| crate::dataplane::put_metric_command(m, crate::dataplane::SWITCH_TO_SECONDARY)).unwrap_or_default(),
                        crate::pin::manual_pin_step(cx.configured, &host)
                    ),
                    None => format!(
                    "; the failover records are NOT pinned: the answer rests on the data-plane switch alone (metric at 1). Do NOT set the switch back (metric 0, or unpin) before the records are pinned: Route 53 would answer the PRIMARY, the old primary. Pin them by hand: {}",
                    crate::pin::manual_pin_step(cx.configured, &host)
                ),
                }
            } else {
                String::new()
            };
            let topo_note = format!(
                "the ledger now owns the topology: primary {}; promotable only once they replicate from it: {}{records}",
                topo.primary,
                if others.is_empty() { "none".to_string() } else { others.join(", ") }
            );
            cx.guard(GuardCheck::new(
                Guard::Candidate,
                GuardResult::Pass,
                topo_note.clone(),
            ));
            cx.st.topology = Some(topo);
            let live = crate::topology::effective(cx.configured, &cx.st);
            let voters =
                1 + u32::from(live.canary.is_some()) + live.availability_alarms().count() as u32;
            let k = live.thresholds.quorum;
            let topo_note = if voters < k {
                format!(
                    "{topo_note}; only {voters} voter(s) watch the new primary (RDS status, canary) and the quorum is {k}: \
                     automation cannot fail it over until the configuration names it with its own alarms"
                )
            } else {
                topo_note
            };
            cx.move_to(
                Phase::Completed,
                &format!("completed by {by}: {why}; {topo_note}"),
            );
            let s = format!(
                "failover of epoch {epoch} completed by {by}; automation watches the site again, on the ledger's topology{records}"
            );
            let o = Outcome::Completed;
            cx.event(EventType::FailoverCompleted, &s, &o);
            cx.finish(original, o, s)
        }
        OperatorAction::Approve => {
            let drill_waits = crate::drill::in_flight(&cx.st)
                .is_some_and(|d| d.phase == crate::drill::DrillPhase::AwaitingApproval);
            if cx.st.phase != Phase::AwaitingApproval && drill_waits {
                return crate::drill::approve(cx, original, cmd, ev);
            }
            if let Some(n) = cmd.drill.filter(|_| cx.st.phase == Phase::AwaitingApproval) {
                let d = format!(
                    "this approval names drill {n}, but what awaits approval is a real incident's failover, epoch {}: approve it without `drill`",
                    cx.st.epoch
                );
                return refuse_command(cx, original, RefusalReason::StaleApproval, d);
            }
            if cx.st.phase != Phase::AwaitingApproval {
                let d = format!(
                    "nothing awaits approval: site is {} at epoch {}",
                    cx.st.phase, cx.st.epoch
                );
                cx.guard(GuardCheck::new(
                    Guard::Command,
                    GuardResult::Fail,
                    d.clone(),
                ));
                return refuse_command(cx, original, RefusalReason::NothingToApprove, d);
            }
            if let Some(e) = cmd.epoch.filter(|e| *e != cx.st.epoch) {
                let d = format!(
                    "approval names epoch {e}, the incident awaiting approval is epoch {}",
                    cx.st.epoch
                );
                cx.guard(GuardCheck::new(
                    Guard::Command,
                    GuardResult::Fail,
                    d.clone(),
                ));
                return refuse_command(cx, original, RefusalReason::StaleApproval, d);
            }
            cx.guard(GuardCheck::new(
                Guard::Command,
                GuardResult::Pass,
                format!("approval of epoch {} by {by}", cx.st.epoch),
            ));
            match ev {
                Some(ev) => decide_failover(cx, original, ev, Trigger::Approved(cmd)),
                None => cx.finish(original, Outcome::Watch, "no evidence gathered".into()),
            }
        }
        OperatorAction::Failover => {
            if cmd.override_rpo && reason.is_none() {
                let d =
                    "override_rpo needs a reason: it accepts data loss and is recorded".to_string();
                cx.guard(GuardCheck::new(
                    Guard::Command,
                    GuardResult::Fail,
                    d.clone(),
                ));
                return refuse_command(cx, original, RefusalReason::OverrideWithoutReason, d);
            }
            if cx.st.phase.is_in_flight() {
                let d = format!(
                    "failover epoch {} already in flight ({})",
                    cx.st.epoch, cx.st.phase
                );
                cx.guard(GuardCheck::new(
                    Guard::InFlight,
                    GuardResult::Fail,
                    d.clone(),
                ));
                return refuse_command(cx, original, RefusalReason::AlreadyInFlight, d);
            }
            let mut fence_first = false;
            if let Some(ev) = ev {
                match primary_may_be_replaced(&mut cx, ev, cmd, &by) {
                    // Fence first only when a server answered the SQL canary: then its SQL side
                    // can confirm read_only. A primary that "answers" only by RDS's status may be
                    // a lost host, and waiting on it would block the failover.
                    Ok(live) => fence_first = live && ev.canary.vote() == crate::evidence::Vote::Up,
                    Err(d) => return refuse_command(cx, original, RefusalReason::PrimaryAlive, d),
                }
            }
            cx.guard(GuardCheck::new(
                Guard::Command,
                GuardResult::Pass,
                format!("manual failover requested by {by}"),
            ));
            if !cx.st.phase.is_open() {
                let note = format!(
                    "manual failover requested by {by}: {}",
                    reason.as_deref().unwrap_or("no reason given")
                );
                let _ = cx.st.open_incident(now, note);
            }
            if cmd.force {
                cx.st.forced = Some(crate::incident::Forced {
                    epoch: cx.st.epoch,
                    by: by.clone(),
                    reason: reason.clone().unwrap_or_default(),
                    at: now,
                    fence_first,
                });
            }
            match ev {
                Some(ev) => decide_failover(cx, original, ev, Trigger::Manual(cmd)),
                None => cx.finish(original, Outcome::Watch, "no evidence gathered".into()),
            }
        }
        OperatorAction::Abort if crate::drill::owns_abort(&cx.st) => {
            crate::drill::abort(cx, original, cmd)
        }
        OperatorAction::Abort => crate::abort::abort(cx, original, cmd, ev),
        OperatorAction::Switchover => crate::switchover::command::switchover(cx, original, cmd, ev),
        OperatorAction::Unpin => crate::unpin::command(cx, original, cmd),
        OperatorAction::Reprotect => crate::reprotect::command(cx, original, cmd, signal_id),
        OperatorAction::Failback => crate::failback::command(cx, original, cmd, ev),
        OperatorAction::Drill => crate::drill::command(cx, original, cmd, ev),
    }
}

/// Whether the primary answers: the canary reached it, or every voter that could be read says up.
pub(crate) fn primary_answers(ev: &Evidence, quorum: u32) -> bool {
    // RDS saying `available` counts too, unless the outage is corroborated (the quorum holds:
    // RDS's status lags a lost host): with the canary cut off by a cross-region partition the
    // primary is still a writer its own region's clients reach.
    let t = ev.tally();
    let corroborated = crate::vantage::quorum_met(&t, quorum);
    matches!(ev.canary, crate::evidence::CanaryResult::Reachable { .. })
        || (ev.primary.is_available() && !corroborated)
        || (t.up > 0 && t.down == 0)
}

/// A manual failover of a primary that answers makes two writers at once: refused, unless the
/// operator says `force` (with a reason, recorded in the ledger). `Ok(true)`: forced over a
/// primary that answers, so it must be fenced before RDS is asked.
fn primary_may_be_replaced(
    cx: &mut Ctx<'_>,
    ev: &Evidence,
    cmd: &OperatorCommand,
    by: &str,
) -> Result<bool, String> {
    let t = ev.tally();
    // Only a promoted RDS read replica leaves the old primary writable: Aurora's cluster failover
    // and global switchover demote the old writer themselves, and a Multi-AZ reboot fails over
    // the one instance (FailoverDBCluster, SwitchoverGlobalCluster, RebootDBInstance ForceFailover).
    if cx.site.engine != Engine::RdsReplica || !primary_answers(ev, cx.site.thresholds.quorum) {
        cx.guard(GuardCheck::new(
            Guard::PrimaryAlive,
            GuardResult::Pass,
            format!("the primary does not answer ({} down, {} up)", t.down, t.up),
        ));
        return Ok(false);
    }
    if cmd.force {
        cx.guard(GuardCheck::new(
            Guard::PrimaryAlive,
            GuardResult::NotApplicable,
            format!(
                "the primary answers ({} down, {} up), but {by} forced the failover: {}; \
                 it is fenced first (read_only=1 through its own parameter group, confirmed over \
                 SQL) and only then is RDS asked to promote",
                t.down,
                t.up,
                cmd.reason.as_deref().unwrap_or_default()
            ),
        ));
        return Ok(true);
    }
    let d = format!(
        "{} answers ({} down, {} up: {}): promoting a replica now makes two writers; for a planned move use a \
         switchover, or send {{\"command\":\"failover\",\"site\":\"{}\",\"force\":true,\"reason\":\"...\"}} \
         after fencing it",
        cx.site.primary,
        t.down,
        t.up,
        t.voters.join("; "),
        cx.site.id
    );
    cx.guard(GuardCheck::new(
        Guard::PrimaryAlive,
        GuardResult::Fail,
        d.clone(),
    ));
    Err(d)
}

/// How an `unresolved-promotion` hold's candidate line ends (the notifier keys its next step on it).
pub(crate) const TWO_WRITERS: &str = "a second automatic promotion could make two writers";

/// The promotion an epoch requested that never got DNS pinned and no human has resolved.
pub(crate) fn unpinned_promotion(st: &SiteState) -> Option<&crate::incident::PromotionRecord> {
    let p = st.promotion.as_ref().filter(|p| p.resolved.is_none())?;
    let pinned = st
        .dns
        .as_ref()
        .is_some_and(|d| d.epoch == p.epoch && d.insync_at.is_some());
    // data-plane-switch: the answer moved to the promoted writer on the switch (the name servers
    // were seen answering it), the records maybe never pinned: not an unpinned promotion.
    // Only once the pinner is done with it (records pinned, given up, or failed for good, all at
    // `dns-pinned`): a switch noted by a run that died at `promoted` still holds.
    let switched = st
        .data_plane_switch
        .as_ref()
        .is_some_and(|s| s.epoch == p.epoch && !s.records_pending);
    (!pinned && !switched).then_some(p)
}

/// The promotion of an earlier epoch that was requested (sent to RDS, or maybe sent) and never
/// pinned in DNS, as the hold's reason. A pinned epoch only closes through a human's `complete`,
/// and so does an unpinned one (`promotion.resolved`); a withdrawn request (throttled: provably
/// not applied) leaves no record.
fn unresolved_promotion(st: &SiteState) -> Option<String> {
    let p = unpinned_promotion(st).filter(|p| p.epoch < st.epoch)?;
    let how = if p.completed_at.is_some() {
        "was promoted"
    } else {
        "may have been promoted"
    };
    Some(format!(
        "epoch {} requested {} of {} at {} and failed before DNS was pinned: {} {how}; {TWO_WRITERS}",
        p.epoch,
        p.action,
        p.candidate,
        p.requested_at.format("%Y-%m-%dT%H:%M:%SZ"),
        p.candidate
    ))
}

/// A command that cannot be carried out changes nothing (no ledger write) and says why.
pub(crate) fn refuse_command(
    cx: Ctx<'_>,
    original: &SiteState,
    reason: RefusalReason,
    why: String,
) -> Decision {
    let cx = Ctx {
        st: original.clone(),
        emit: vec![],
        ..cx
    };
    cx.finish(
        original,
        Outcome::Refused { reason },
        format!("refused: {why}"),
    )
}
