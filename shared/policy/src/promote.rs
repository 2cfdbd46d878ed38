//! Carrying out a decided failover: the replica-promoter's rules, with no I/O.
//!
//! The promoter is woken by `FailoverDecided` (and by its own `PromotionContinued`), both
//! at-least-once and possibly hours late, so everything here is shaped around doing the one
//! dangerous thing — the RDS mutation — at most once per epoch, and only for the incident the ledger
//! says is being promoted:
//! - [`admit`] is the fence: the event's epoch must be the ledger's, the ledger must be in
//!   `promoting` (or already `promoted`, which is a finished re-delivery), and the candidate must be
//!   the one the ledger recorded *and* one the site configuration names — a forged or replayed
//!   event never makes the system promote an arbitrary database.
//! - [`preflight`] re-checks what the decision assumed, with what can be seen now: the candidate
//!   exists and replicates from the configured primary, no backup is running, and the RPO (current
//!   lag, else the last good lag from before the outage) — unless the ledger records an explicit
//!   override. It returns the [`PromotionAction`] for the engine kind.
//! - [`request`] writes the [`PromotionRecord`] *before* the mutation is sent, so a crash, a
//!   timeout or a duplicate delivery afterwards finds "requested" and only watches.
//! - [`judge`] decides completion from the topology, never from the API having returned: a read
//!   replica is done when `available` with no replication source, an Aurora cluster when the writer
//!   flag is on the target, a global database when the target cluster is the writer, Multi-AZ when
//!   the instance is `available` again after having been seen rebooting.
//! - [`poll_delay`] is the capped, jittered backoff between polls (1 s doubling to 10 s), with the
//!   randomness passed in so it is testable.
//! - [`promoted`], [`failed`], [`continued`] and [`withdraw`] are the ledger transitions; each
//!   returns the next record (version + 1, events in its outbox) for a compare-and-set commit.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{DbRef, Engine, SiteConfig};
use crate::events::{DomainEvent, EventType};
use crate::evidence::{CanaryResult, DbObservation, Vote};
use crate::incident::{
    DecisionTrigger, Phase, PromotionRecord, SiteState, TimelineEntry, TransitionError,
};
use crate::verdict::{Guard, GuardCheck, GuardResult, Outcome, RefusalReason, Verdict};

// ---------------------------------------------------------------- fence

/// Why an event was not acted on. None of these mutate anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FenceReason {
    /// The event names a site this deployment does not protect.
    UnknownSite,
    /// Only `FailoverDecided` and `PromotionContinued` may start or resume a promotion.
    NotAPromotionEvent,
    /// The event's epoch is not the ledger's: an older (or forged) incident.
    StaleEpoch,
    /// The ledger is not promoting this epoch (refused, failed, already past promotion...).
    WrongPhase,
    /// The candidate is not the one the ledger recorded, or not one the config names.
    ForeignCandidate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fenced {
    pub reason: FenceReason,
    pub detail: String,
}

fn fenced(reason: FenceReason, detail: String) -> Fenced {
    Fenced { reason, detail }
}

/// What a fenced-in event may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Promote `candidate`; `requested` is set when the mutation was already asked for this epoch
    /// (then only watch, never ask again).
    Proceed {
        candidate: DbRef,
        requested: Option<PromotionRecord>,
    },
    /// The epoch's promotion is finished (`promoted`): a re-delivery with nothing left to do.
    AlreadyPromoted,
}

/// Whether the site configuration names `db` as something this site may promote.
pub fn is_configured_candidate(site: &SiteConfig, db: &DbRef) -> bool {
    match site.engine {
        // Multi-AZ fails over to the instance's own standby: the "candidate" is the primary.
        Engine::MultiAz => *db == site.primary,
        _ => site.candidates.contains(db),
    }
}

/// The fence every promoter invocation passes before any AWS call that could change anything.
pub fn admit(
    site: Option<&SiteConfig>,
    event: &DomainEvent,
    state: &SiteState,
) -> Result<Admission, Fenced> {
    let Some(site) = site else {
        return Err(fenced(
            FenceReason::UnknownSite,
            format!("site `{}` is not configured", event.site),
        ));
    };
    if !matches!(
        event.event_type,
        EventType::FailoverDecided | EventType::PromotionContinued
    ) {
        return Err(fenced(
            FenceReason::NotAPromotionEvent,
            format!(
                "{} does not ask for a promotion",
                event.event_type.detail_type()
            ),
        ));
    }
    if event.epoch != state.epoch {
        return Err(fenced(
            FenceReason::StaleEpoch,
            format!(
                "event presents epoch {}, the ledger of site {} is at epoch {}",
                event.epoch, site.id, state.epoch
            ),
        ));
    }
    match state.phase {
        Phase::Promoting => {}
        Phase::Promoted => return Ok(Admission::AlreadyPromoted),
        other => {
            return Err(fenced(
                FenceReason::WrongPhase,
                format!(
                    "epoch {} of site {} is {other}, not promoting",
                    state.epoch, site.id
                ),
            ))
        }
    }
    let Some(candidate) = state.candidate.clone() else {
        return Err(fenced(
            FenceReason::ForeignCandidate,
            format!("the ledger of epoch {} names no candidate", state.epoch),
        ));
    };
    if let Some(asked) = event.candidate.as_ref().filter(|c| **c != candidate) {
        return Err(fenced(
            FenceReason::ForeignCandidate,
            format!("event names {asked}, the ledger decided {candidate}"),
        ));
    }
    if !is_configured_candidate(site, &candidate) {
        return Err(fenced(
            FenceReason::ForeignCandidate,
            format!(
                "{candidate} is not a configured candidate of site {}",
                site.id
            ),
        ));
    }
    let requested = state
        .promotion
        .clone()
        .filter(|p| p.epoch == state.epoch && p.candidate == candidate);
    Ok(Admission::Proceed {
        candidate,
        requested,
    })
}

// ---------------------------------------------------------------- preflight and plan

/// Why a promotion was not carried out (or did not finish). Recorded in the ledger's `failure`
/// and in the `FailoverFailed` event's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureReason {
    /// RDS says the candidate does not exist.
    CandidateMissing,
    /// The candidate does not replicate from the configured primary (or has no standby).
    NotAReplica,
    /// The candidate is not `available`.
    CandidateUnavailable,
    /// A backup is running on the candidate: RDS would block the promotion.
    BackupRunning,
    /// The candidate lags more than the RPO and no override is recorded.
    RpoExceeded,
    /// The lag cannot be bounded and no override is recorded.
    LagUnknown,
    /// The topology could not be read (access denied, or unreadable for too long).
    TopologyUnreadable,
    /// RDS rejected the mutation (invalid state, not found, access denied...).
    PromotionRejected,
    /// The candidate went into a failed state, or vanished, while promoting.
    CandidateFailed,
    /// The topology never showed the promotion finished within the time allowed.
    PromotionTimedOut,
    /// The new primary answered but kept `read_only` / `innodb_read_only` on.
    NotWritable,
    /// Writes could not be verified at all (no canary credentials, credentials unreadable).
    WritabilityUnverifiable,
    /// A failover forced over a primary that answers, whose old primary could not be fenced
    /// first (a fence step refused, or not observed within the pre-check deadline).
    NotFencedFirst,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::CandidateMissing => "candidate-missing",
            FailureReason::NotAReplica => "not-a-replica",
            FailureReason::CandidateUnavailable => "candidate-unavailable",
            FailureReason::BackupRunning => "backup-running",
            FailureReason::RpoExceeded => "rpo-exceeded",
            FailureReason::LagUnknown => "lag-unknown",
            FailureReason::TopologyUnreadable => "topology-unreadable",
            FailureReason::PromotionRejected => "promotion-rejected",
            FailureReason::CandidateFailed => "candidate-failed",
            FailureReason::PromotionTimedOut => "promotion-timed-out",
            FailureReason::NotWritable => "not-writable",
            FailureReason::WritabilityUnverifiable => "writability-unverifiable",
            FailureReason::NotFencedFirst => "not-fenced-first",
        }
    }

    /// The closest refusal the verdict vocabulary has; the precise reason is in the summary.
    fn refusal(self) -> RefusalReason {
        match self {
            FailureReason::RpoExceeded => RefusalReason::RpoExceeded,
            FailureReason::LagUnknown => RefusalReason::LagUnknown,
            _ => RefusalReason::NoHealthyCandidate,
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the promoter read about the candidate just before promoting (pure data from the ports).
#[derive(Debug, Clone, PartialEq)]
pub struct Preflight {
    /// The candidate as RDS describes it: the DB instance, or the DB cluster for Aurora Global.
    pub candidate: DbObservation,
    /// The topology shows it replicating from the configured primary: a read replica of it, a
    /// reader of the site's cluster, a secondary of the global cluster whose writer is the
    /// primary, or (Multi-AZ) an instance that has a standby.
    pub replicates_from_primary: bool,
    /// Replica lag as the newest datapoint reads, normalised (`None` when missing or RDS's -1).
    pub lag_now: Option<f64>,
    /// When that datapoint was taken (`None`: at the read). CloudWatch serves a datapoint for
    /// minutes; one older than the outage's freshness bound is not "now".
    pub lag_now_at: Option<DateTime<Utc>>,
    /// The configured primary's status (the primary cluster for Aurora Global): a healthy one lets
    /// a global database switch over without data loss.
    pub primary: DbObservation,
    /// Aurora Global: the candidate cluster's ARN, the target RDS expects.
    pub target_arn: Option<String>,
}

/// One RDS mutation that makes the candidate the writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "api")]
pub enum PromotionAction {
    PromoteReadReplica {
        instance: DbRef,
    },
    #[serde(rename = "FailoverDBCluster")]
    FailoverDbCluster {
        cluster_id: String,
        region: String,
        target_instance: String,
    },
    SwitchoverGlobalCluster {
        global_cluster_id: String,
        region: String,
        target_cluster_arn: String,
    },
    FailoverGlobalCluster {
        global_cluster_id: String,
        region: String,
        target_cluster_arn: String,
        allow_data_loss: bool,
    },
    #[serde(rename = "RebootDBInstance")]
    RebootWithFailover {
        instance: DbRef,
    },
}

impl PromotionAction {
    /// The RDS API name, as recorded in [`PromotionRecord::action`].
    pub fn api_name(&self) -> &'static str {
        match self {
            PromotionAction::PromoteReadReplica { .. } => "PromoteReadReplica",
            PromotionAction::FailoverDbCluster { .. } => "FailoverDBCluster",
            PromotionAction::SwitchoverGlobalCluster { .. } => "SwitchoverGlobalCluster",
            PromotionAction::FailoverGlobalCluster { .. } => "FailoverGlobalCluster",
            PromotionAction::RebootWithFailover { .. } => "RebootDBInstance",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PromotionAction::PromoteReadReplica { instance } => {
                format!("PromoteReadReplica {instance}")
            }
            PromotionAction::FailoverDbCluster {
                cluster_id,
                region,
                target_instance,
            } => format!(
                "FailoverDBCluster {cluster_id} ({region}) TargetDBInstanceIdentifier={target_instance}"
            ),
            PromotionAction::SwitchoverGlobalCluster {
                global_cluster_id,
                region,
                target_cluster_arn,
            } => format!(
                "SwitchoverGlobalCluster {global_cluster_id} (via {region}) target {target_cluster_arn}"
            ),
            PromotionAction::FailoverGlobalCluster {
                global_cluster_id,
                region,
                target_cluster_arn,
                allow_data_loss,
            } => format!(
                "FailoverGlobalCluster {global_cluster_id} (via {region}) target {target_cluster_arn} AllowDataLoss={allow_data_loss}"
            ),
            PromotionAction::RebootWithFailover { instance } => {
                format!("RebootDBInstance {instance} ForceFailover=true")
            }
        }
    }
}

/// The checks passed: what to send, and the guards that explain why it is safe.
#[derive(Debug, Clone, PartialEq)]
pub struct Cleared {
    pub action: PromotionAction,
    pub guards: Vec<GuardCheck>,
}

/// A promotion that must not (or could not) go ahead, with every guard evaluated so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: FailureReason,
    pub detail: String,
    pub guards: Vec<GuardCheck>,
}

/// Re-checks the decision's assumptions against what is visible now and plans the mutation.
pub fn preflight(
    site: &SiteConfig,
    state: &SiteState,
    candidate: &DbRef,
    p: &Preflight,
    now: DateTime<Utc>,
) -> Result<Cleared, Failure> {
    let mut guards = vec![];
    let fail = |guards: Vec<GuardCheck>, reason, detail: String| Failure {
        reason,
        detail,
        guards,
    };
    let candidate_guard =
        |result, detail: String| GuardCheck::new(Guard::Candidate, result, detail);

    if p.candidate == DbObservation::NotFound {
        let d = format!("RDS does not know {candidate}");
        guards.push(candidate_guard(GuardResult::Fail, d.clone()));
        return Err(fail(guards, FailureReason::CandidateMissing, d));
    }
    if !p.replicates_from_primary {
        let d = match site.engine {
            Engine::MultiAz => format!("{candidate} is not Multi-AZ: it has no standby to fail over to"),
            Engine::AuroraCluster { ref cluster_id } => {
                format!("{candidate} is not a reader of cluster {cluster_id}")
            }
            Engine::AuroraGlobal { ref global_cluster_id } => format!(
                "{candidate} is not a secondary of global cluster {global_cluster_id} whose writer is {}",
                site.primary
            ),
            Engine::RdsReplica => format!(
                "{candidate} does not replicate from the configured primary {}",
                site.primary
            ),
        };
        guards.push(candidate_guard(GuardResult::Fail, d.clone()));
        return Err(fail(guards, FailureReason::NotAReplica, d));
    }
    let status = p.candidate.describe();
    let backup_event = state.backups_running.contains(&candidate.id);
    if backup_event || status == "backing-up" {
        let why = if backup_event {
            "an RDS backup-started event was seen and no backup-finished yet"
        } else {
            "its status is backing-up"
        };
        let d =
            format!("a backup is running on {candidate} ({why}); RDS would block the promotion");
        guards.push(candidate_guard(GuardResult::Fail, d.clone()));
        return Err(fail(guards, FailureReason::BackupRunning, d));
    }
    // RDS itself decides whether a Multi-AZ instance can be rebooted; every other promotion needs
    // an available candidate.
    if site.engine != Engine::MultiAz && !p.candidate.is_available() {
        let d = format!("{candidate} is {status}, not available");
        guards.push(candidate_guard(GuardResult::Fail, d.clone()));
        return Err(fail(guards, FailureReason::CandidateUnavailable, d));
    }
    guards.push(candidate_guard(
        GuardResult::Pass,
        format!(
            "{candidate} exists ({status}), replicates from {}, no backup running",
            site.primary
        ),
    ));

    let max = site.thresholds.max_lag_secs as f64;
    let switchover = matches!(site.engine, Engine::AuroraGlobal { .. }) && p.primary.is_available();
    match (&site.engine, switchover) {
        (Engine::MultiAz, _) => guards.push(GuardCheck::new(
            Guard::Rpo,
            GuardResult::NotApplicable,
            "Multi-AZ standby is synchronous: no data loss",
        )),
        (_, true) => guards.push(GuardCheck::new(
            Guard::Rpo,
            GuardResult::NotApplicable,
            format!(
                "primary {} is available: planned switchover, RDS waits for the secondary to catch up",
                site.primary
            ),
        )),
        _ => {
            let reading = p.lag_now.map(|secs| (secs, p.lag_now_at.unwrap_or(now).min(now)));
            let (lag, src) = preflight_lag(site, state, candidate, reading, now);
            let within = lag.is_some_and(|l| l <= max);
            let lag_text = lag.map_or_else(|| "unknown".to_string(), |l| format!("{l} s"));
            let mut g = if within {
                GuardCheck::new(
                    Guard::Rpo,
                    GuardResult::Pass,
                    format!("{candidate} lag {lag_text} ({src}) within the {max} s RPO"),
                )
            } else if let Some(o) = &state.rpo_override {
                GuardCheck::new(
                    Guard::Rpo,
                    GuardResult::Pass,
                    format!(
                        "RPO overridden by {} ({}): {candidate} lag {lag_text} ({src}), RPO {max} s",
                        o.by, o.reason
                    ),
                )
            } else {
                let (reason, result) = match lag {
                    Some(_) => (FailureReason::RpoExceeded, GuardResult::Fail),
                    None => (FailureReason::LagUnknown, GuardResult::Unknown),
                };
                let d = format!(
                    "{candidate} lag {lag_text} ({src}) exceeds the {max} s RPO at promotion time and no override is recorded"
                );
                let mut g = GuardCheck::new(Guard::Rpo, result, d.clone());
                if let Some(l) = lag {
                    g = g.numbers(l, max);
                }
                guards.push(g);
                return Err(fail(guards, reason, d));
            };
            if let Some(l) = lag {
                g = g.numbers(l, max);
            }
            guards.push(g);
        }
    }

    let action = match &site.engine {
        Engine::RdsReplica => PromotionAction::PromoteReadReplica {
            instance: candidate.clone(),
        },
        Engine::AuroraCluster { cluster_id } => PromotionAction::FailoverDbCluster {
            cluster_id: cluster_id.clone(),
            region: candidate.region.clone(),
            target_instance: candidate.id.clone(),
        },
        Engine::AuroraGlobal { global_cluster_id } => {
            let target_cluster_arn = p.target_arn.clone().unwrap_or_else(|| candidate.id.clone());
            if switchover {
                PromotionAction::SwitchoverGlobalCluster {
                    global_cluster_id: global_cluster_id.clone(),
                    region: candidate.region.clone(),
                    target_cluster_arn,
                }
            } else {
                // Reached only when the RPO guard passed or an override is recorded.
                PromotionAction::FailoverGlobalCluster {
                    global_cluster_id: global_cluster_id.clone(),
                    region: candidate.region.clone(),
                    target_cluster_arn,
                    allow_data_loss: true,
                }
            }
        }
        Engine::MultiAz => PromotionAction::RebootWithFailover {
            instance: candidate.clone(),
        },
    };
    Ok(Cleared { action, guards })
}

// ---------------------------------------------------------------- the decision, re-checked

/// Why the promoter aborted an epoch before asking RDS. Nothing was mutated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AbortReason {
    /// The decision is older than `thresholds.max_decision_age_secs`: EventBridge and Lambda
    /// async delivery are at-least-once and retried for hours, so a `FailoverDecided` can arrive
    /// long after the evidence it was judged on stopped being true.
    DecisionTooOld,
    /// A fresh read found the primary alive: RDS says it is `available`, or the SQL canary reached
    /// it and it answered. Promoting now would make a second writer.
    PrimaryAlive,
}

impl AbortReason {
    pub fn as_str(self) -> &'static str {
        match self {
            AbortReason::DecisionTooOld => "decision-too-old",
            AbortReason::PrimaryAlive => "primary-alive",
        }
    }

    fn refusal(self) -> RefusalReason {
        match self {
            AbortReason::DecisionTooOld => RefusalReason::StaleDecision,
            AbortReason::PrimaryAlive => RefusalReason::PrimaryAlive,
        }
    }
}

impl std::fmt::Display for AbortReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision the promoter will not carry out, with the guard that says why.
#[derive(Debug, Clone, PartialEq)]
pub struct Abort {
    pub reason: AbortReason,
    pub detail: String,
    pub guard: GuardCheck,
}

/// The current epoch's decision as the ledger recorded it: its trigger, and when it was made.
/// A record without the evaluator's [`Decision`](crate::incident::Decision) (or one of another
/// epoch) is an automatic decision made when the timeline says the epoch entered `promoting`;
/// with no such entry either, when the event says it happened.
pub fn decision_of(state: &SiteState, event: &DomainEvent) -> (DecisionTrigger, DateTime<Utc>) {
    if let Some(d) = state.decision.as_ref().filter(|d| d.epoch == state.epoch) {
        return (d.trigger, d.at);
    }
    let at = state
        .timeline
        .iter()
        .find(|t| t.phase == Phase::Promoting)
        .map_or(event.occurred_at, |t| t.at);
    (DecisionTrigger::Automatic, at)
}

/// The decision must be younger than `thresholds.max_decision_age_secs` when RDS is asked.
pub fn check_decision_age(
    site: &SiteConfig,
    state: &SiteState,
    event: &DomainEvent,
    now: DateTime<Utc>,
) -> Result<GuardCheck, Abort> {
    let (trigger, decided) = decision_of(state, event);
    // A continuation of this epoch's pre-checks (RDS's API throttled or unreadable, handed on by
    // `PromotionContinued`) is emitted only after the first invocation found the decision young:
    // the age that matters then is the continuation's own, or a pre-check that outlasts
    // `max_decision_age_secs` could never reach its own deadline (`PREFLIGHT_DEADLINE_MINUTES`).
    let continued = event.event_type == crate::events::EventType::PromotionContinued
        && event.epoch == state.epoch
        && state
            .promotion
            .as_ref()
            .is_none_or(|p| p.epoch != state.epoch);
    let at = if continued {
        event.occurred_at.max(decided)
    } else {
        decided
    };
    let age = (now - at).num_seconds();
    let max = site.thresholds.max_decision_age_secs as i64;
    if age > max {
        let detail = format!(
            "the {} decision of epoch {} was made at {} ({age} s ago); the promoter acts only on decisions younger than {max} s (thresholds.max_decision_age_secs)",
            trigger.as_str(),
            state.epoch,
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let guard = GuardCheck::new(Guard::DecisionAge, GuardResult::Fail, detail.clone())
            .numbers(age as f64, max as f64);
        return Err(Abort {
            reason: AbortReason::DecisionTooOld,
            detail,
            guard,
        });
    }
    Ok(GuardCheck::new(
        Guard::DecisionAge,
        GuardResult::Pass,
        format!(
            "the {} decision is {age} s old (at most {max} s)",
            trigger.as_str()
        ),
    )
    .numbers(age as f64, max as f64))
}

/// What the promoter read about the primary just before asking RDS, through the same ports the
/// evaluator uses (pure data).
#[derive(Debug, Clone, PartialEq)]
pub struct PrimaryNow {
    /// The primary's RDS status (the primary cluster for Aurora Global).
    pub status: DbObservation,
    /// The SQL canary from the DR side against the primary.
    pub canary: CanaryResult,
}

/// The primary must still look down: the SQL canary did not reach it and get an answer (RDS's
/// status is reported, not counted: see below). Unknown (unreadable API, no canary) is not "alive": the region
/// that holds the primary is exactly what goes dark. A forced manual failover or a planned
/// switchover may target a live primary; the ledger's decision says which it was.
///
/// Multi-AZ is judged on the canary alone: RDS reboots (fails over) only an instance it reports
/// `available` (RebootDBInstance: "The DB instance must be in the available state"), and that
/// status says nothing about whether the writer serves.
pub fn recheck_primary(
    site: &SiteConfig,
    state: &SiteState,
    event: &DomainEvent,
    p: &PrimaryNow,
) -> Result<GuardCheck, Abort> {
    let (trigger, _) = decision_of(state, event);
    let rds = p.status.describe();
    let canary = match &p.canary {
        CanaryResult::Reachable { latency_ms } => {
            format!("the SQL canary reached it and it answered in {latency_ms} ms")
        }
        CanaryResult::Unreachable { error } => format!("the SQL canary got no answer ({error})"),
        CanaryResult::Unknown { reason } => format!("the SQL canary could not run ({reason})"),
        CanaryResult::Answered { error, .. } => {
            format!("the server answered the SQL canary with an error ({error}): it is alive")
        }
    };
    // RDS's `available` alone does not say the primary came back: the decision's quorum already
    // weighed it (RDS keeps reporting `available` for a host it lost for minutes, and Aurora
    // Global's primary cluster stays `available` while its writer is unreachable). A primary is
    // alive again when a server answers the SQL canary. Multi-AZ is judged the same way.
    let alive = p.canary.vote() == Vote::Up;
    let seen = format!("primary {}: RDS says {rds}; {canary}", site.primary);
    if !alive {
        return Ok(GuardCheck::new(
            Guard::PrimaryStillDown,
            GuardResult::Pass,
            format!("{seen}: still down"),
        ));
    }
    if trigger.may_target_live_primary() {
        return Ok(GuardCheck::new(
            Guard::PrimaryStillDown,
            GuardResult::NotApplicable,
            format!(
                "{seen}: alive, but the decision is {} and may target a live primary",
                trigger.as_str()
            ),
        ));
    }
    let detail = format!(
        "{seen}: it is alive again, so the {} decision of epoch {} no longer holds; promoting now would make a second writer",
        trigger.as_str(),
        state.epoch
    );
    Err(Abort {
        reason: AbortReason::PrimaryAlive,
        guard: GuardCheck::new(Guard::PrimaryStillDown, GuardResult::Fail, detail.clone()),
        detail,
    })
}

// ---------------------------------------------------------------- completion

/// The lag the RPO guard may use at promotion time: the current reading, or a last good one read
/// at most `max_lag_sample_age_secs` before the outage began; nothing for a candidate whose
/// replication is known broken.
fn preflight_lag(
    site: &SiteConfig,
    state: &SiteState,
    candidate: &DbRef,
    lag_now: Option<(f64, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> (Option<f64>, String) {
    if let Some(b) = state.replication_broken.get(&candidate.id) {
        return (
            None,
            format!(
                "replication broken since {} ({})",
                b.at.format("%Y-%m-%dT%H:%M:%SZ"),
                b.why
            ),
        );
    }
    let decided = state
        .timeline
        .iter()
        .find(|t| t.phase == Phase::Promoting)
        .map(|t| t.at);
    let outage = crate::flap::outage_began(state).or(decided).unwrap_or(now);
    let max_age = site.thresholds.max_lag_sample_age_secs as i64;
    // The newest datapoint counts as the lag at promotion only if it is no older than a last good
    // sample may be; an older one says no more than the samples kept before the outage.
    if let Some((l, at)) = lag_now {
        if (outage - at).num_seconds() <= max_age {
            return (
                Some(l),
                format!("now, read {} s ago", (now - at).num_seconds().max(0)),
            );
        }
    }
    let Some(s) = state.last_good_lag.get(&candidate.id) else {
        return (None, "no reading ever".into());
    };
    let before = (outage - s.at).num_seconds().max(0);
    if before <= max_age {
        (
            Some(s.secs),
            format!("last known good, read {before} s before the outage began"),
        )
    } else {
        (None, format!("last reading {} s is {before} s older than the outage: older than the {max_age} s a sample may be", s.secs))
    }
}

/// What one poll saw of the promotion's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// RDS says the instance (or cluster) does not exist.
    Missing,
    /// A DB instance: the promoted read replica, or the rebooted Multi-AZ instance.
    Instance {
        status: String,
        replication_source: Option<String>,
    },
    /// An Aurora cluster: its status, its writer, and the target instance's status.
    Cluster {
        status: String,
        writer: Option<String>,
        target_status: Option<String>,
    },
    /// An Aurora global database: its status and whether the target cluster is now the writer.
    Global {
        status: String,
        target_is_writer: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The topology says the candidate is the writer.
    Done,
    /// Not yet. `transitional` when a status in motion (`modifying`, `rebooting`, `failing-over`...)
    /// was seen: the evidence a Multi-AZ reboot really happened.
    Waiting { detail: String, transitional: bool },
    Failed {
        reason: FailureReason,
        detail: String,
    },
}

fn is_broken(status: &str) -> bool {
    DbObservation::status(status).vote() == Vote::Down
}

/// Judges completion from one topology snapshot. `seen_transition`: a transitional status was seen
/// earlier (this invocation, the mutation's own answer, or the ledger's timeline).
pub fn judge(
    engine: &Engine,
    candidate: &DbRef,
    observed: &Observed,
    seen_transition: bool,
) -> Progress {
    let waiting = |detail: String, status: &str| Progress::Waiting {
        detail,
        transitional: status != "available",
    };
    let broken = |what: String| Progress::Failed {
        reason: FailureReason::CandidateFailed,
        detail: what,
    };
    match (engine, observed) {
        (_, Observed::Missing) => broken(format!("{candidate} vanished while promoting")),
        (_, Observed::Instance { status, .. }) if is_broken(status) => {
            broken(format!("{candidate} went {status} while promoting"))
        }
        (
            Engine::RdsReplica,
            Observed::Instance {
                status,
                replication_source,
            },
        ) => match (status.as_str(), replication_source) {
            ("available", None) => Progress::Done,
            (_, Some(src)) => waiting(
                format!("{candidate} is {status}, still replicating from {src}"),
                status,
            ),
            _ => waiting(
                format!("{candidate} is {status}, replication source cleared"),
                status,
            ),
        },
        (Engine::MultiAz, Observed::Instance { status, .. }) => {
            if status == "available" && seen_transition {
                Progress::Done
            } else if status == "available" {
                waiting(
                    format!("{candidate} is available but has not been seen rebooting yet"),
                    status,
                )
            } else {
                waiting(format!("{candidate} is {status}"), status)
            }
        }
        (
            Engine::AuroraCluster { cluster_id },
            Observed::Cluster {
                status,
                writer,
                target_status,
            },
        ) => {
            if let Some(t) = target_status.as_deref().filter(|t| is_broken(t)) {
                return broken(format!("{candidate} went {t} during the cluster failover"));
            }
            let target_ok = target_status.as_deref() == Some("available");
            let writer_text = writer.as_deref().unwrap_or("none");
            if writer.as_deref() == Some(candidate.id.as_str())
                && status == "available"
                && target_ok
            {
                Progress::Done
            } else {
                waiting(
                    format!(
                        "cluster {cluster_id} is {status}, writer {writer_text}, {} is {}",
                        candidate.id,
                        target_status.as_deref().unwrap_or("unknown")
                    ),
                    status,
                )
            }
        }
        (
            Engine::AuroraGlobal { global_cluster_id },
            Observed::Global {
                status,
                target_is_writer,
            },
        ) => {
            if *target_is_writer && status == "available" {
                Progress::Done
            } else {
                waiting(
                    format!(
                        "global cluster {global_cluster_id} is {status}, {candidate} {} the writer",
                        if *target_is_writer {
                            "is"
                        } else {
                            "is not yet"
                        }
                    ),
                    status,
                )
            }
        }
        (e, o) => Progress::Failed {
            reason: FailureReason::TopologyUnreadable,
            detail: format!("a {} site cannot be judged from {o:?}", e.kind()),
        },
    }
}

/// Whether a global-cluster member ARN is `cluster` (its known ARN, or `...:cluster:<id>` in its
/// region).
pub fn global_member_is(member_arn: &str, cluster: &DbRef, known_arn: Option<&str>) -> bool {
    known_arn == Some(member_arn)
        || member_arn
            .rsplit_once(":cluster:")
            .is_some_and(|(prefix, id)| id == cluster.id && prefix.contains(&cluster.region))
}

// ---------------------------------------------------------------- pacing

/// First poll interval and its cap: promotions take minutes, but each step is seconds apart.
pub const POLL_START: Duration = Duration::from_secs(1);
pub const POLL_CAP: Duration = Duration::from_secs(10);

/// The wait before poll number `attempt` (0-based): `min(cap, start * 2^attempt)`, of which the
/// upper half is jittered by `unit` in [0, 1) ("equal jitter": never near zero, never in lockstep
/// with another poller).
pub fn poll_delay(attempt: u32, unit: f64) -> Duration {
    let base = POLL_START
        .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(POLL_CAP);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    base / 2 + (base / 2).mul_f64(unit)
}

/// How long the topology may take to show a requested promotion finished before the epoch fails
/// (AWS's own figures: replica promotion and global failover take minutes; Multi-AZ and Aurora
/// cluster failovers one to two).
pub fn promotion_deadline(engine: &Engine) -> chrono::Duration {
    match engine {
        Engine::RdsReplica => chrono::Duration::minutes(60),
        Engine::AuroraGlobal { .. } => chrono::Duration::minutes(30),
        Engine::AuroraCluster { .. } | Engine::MultiAz => chrono::Duration::minutes(15),
    }
}

/// How long pre-checks may keep failing on retryable reads (throttling, timeouts) before the epoch
/// fails instead of waiting forever.
pub const PREFLIGHT_DEADLINE_MINUTES: i64 = 10;

/// The time an invocation must keep in hand to finish: the writability check (connect + query
/// timeouts) plus a ledger commit and a publish.
pub fn finish_reserve(site: &SiteConfig) -> Duration {
    let check = site.canary.as_ref().map_or(Duration::ZERO, |c| {
        Duration::from_millis(c.connect_timeout_ms + c.query_timeout_ms)
    });
    Duration::from_secs(10) + check
}

// ---------------------------------------------------------------- ledger transitions

/// Timeline note prefix recording that a transitional status was seen (survives continuations).
const TRANSITION_SEEN: &str = "observed in transition: ";

/// Whether the current epoch's timeline records a transitional status of the promotion target.
pub fn transition_seen(state: &SiteState) -> bool {
    state
        .timeline
        .iter()
        .any(|e| e.phase == Phase::Promoting && e.note.starts_with(TRANSITION_SEEN))
}

/// Records (once per epoch) that the target was seen in a transitional status.
pub fn note_transition(state: &mut SiteState, what: &str, at: DateTime<Utc>) {
    if !transition_seen(state) {
        state.timeline.push(TimelineEntry {
            phase: Phase::Promoting,
            at,
            note: format!("{TRANSITION_SEEN}{what}"),
        });
    }
}

fn bump(mut next: SiteState, now: DateTime<Utc>) -> SiteState {
    next.version += 1;
    next.updated_at = Some(now);
    next
}

fn verdict(
    site: &SiteConfig,
    st: &SiteState,
    outcome: Outcome,
    summary: String,
    guards: Vec<GuardCheck>,
) -> Verdict {
    Verdict {
        site: Some(site.id.clone()),
        outcome,
        epoch: st.epoch,
        phase: st.phase,
        summary,
        guards,
    }
}

fn event(
    site: &SiteConfig,
    st: &SiteState,
    t: EventType,
    v: Verdict,
    now: DateTime<Utc>,
) -> DomainEvent {
    DomainEvent {
        event_type: t,
        site: site.id.clone(),
        epoch: st.epoch,
        phase: st.phase,
        engine: site.engine.kind().into(),
        occurred_at: now,
        primary: Some(site.primary.clone()),
        candidate: st.candidate.clone(),
        rpo_override: st.rpo_override.clone(),
        verdict: v,
        timeline: st.timeline.clone(),
    }
}

/// The outcome the verdict carries while the decision is being carried out (the verdict
/// vocabulary has no "promoted" outcome; the event type and summary say how far it got).
fn carrying_out(candidate: &DbRef) -> Outcome {
    Outcome::FailoverDecided {
        candidate: candidate.clone(),
    }
}

/// Records that `action` is about to be sent for the current epoch: written (compare-and-set)
/// *before* the mutation, so nothing after it can ever send it twice.
pub fn request(
    state: &SiteState,
    candidate: &DbRef,
    action: &PromotionAction,
    now: DateTime<Utc>,
) -> SiteState {
    let mut next = state.clone();
    next.promotion = Some(PromotionRecord {
        epoch: state.epoch,
        candidate: candidate.clone(),
        action: action.api_name().into(),
        requested_at: now,
        completed_at: None,
        endpoint: None,
        writable_verified_at: None,
        resolved: None,
    });
    // The cooldown runs from the moment RDS is asked, never from a decision that stopped short.
    next.last_failover_at = Some(now);
    next.timeline.push(TimelineEntry {
        phase: Phase::Promoting,
        at: now,
        note: format!("requested {}", action.describe()),
    });
    // The cooldown runs from when RDS was asked, not from the decision: a decision that never
    // reached RDS (a failed pre-check, an abort) must not hold off the next failover.
    next.last_failover_at = Some(now);
    bump(next, now)
}

/// Takes back a request RDS provably did not act on (it was throttled), so a retry may send it.
pub fn withdraw(state: &SiteState, why: &str, now: DateTime<Utc>) -> SiteState {
    let mut next = state.clone();
    if let Some(p) = next.promotion.take() {
        next.timeline.push(TimelineEntry {
            phase: Phase::Promoting,
            at: now,
            note: format!("{} not applied ({why}); will be retried", p.action),
        });
    }
    bump(next, now)
}

/// `promoting` → `promoted`: the topology says done and the new primary accepted writes.
/// The `ReplicaPromoted` event rides in the outbox.
pub fn promoted(
    site: &SiteConfig,
    state: &SiteState,
    endpoint: &str,
    guards: Vec<GuardCheck>,
    now: DateTime<Utc>,
) -> Result<(SiteState, DomainEvent), TransitionError> {
    let mut next = state.clone();
    let candidate = next
        .candidate
        .clone()
        .unwrap_or_else(|| site.primary.clone());
    let record = next.promotion.get_or_insert_with(|| PromotionRecord {
        epoch: state.epoch,
        candidate: candidate.clone(),
        action: String::new(),
        requested_at: now,
        completed_at: None,
        endpoint: None,
        writable_verified_at: None,
        resolved: None,
    });
    record.completed_at = Some(now);
    record.endpoint = Some(endpoint.to_string());
    record.writable_verified_at = Some(now);
    let took = (now - record.requested_at).num_seconds();
    let action = record.action.clone();
    next.transition(
        state.epoch,
        Phase::Promoted,
        now,
        format!("{candidate} promoted by {action} in {took} s; accepts writes at {endpoint}"),
    )?;
    let summary = format!(
        "promoted {candidate} ({action}, {took} s); the new primary accepts writes at {endpoint}"
    );
    let v = verdict(site, &next, carrying_out(&candidate), summary, guards);
    let e = event(site, &next, EventType::ReplicaPromoted, v, now);
    next.outbox.push(e.clone());
    Ok((bump(next, now), e))
}

/// `promoting` → `failed` with a typed reason; the `FailoverFailed` event rides in the outbox.
pub fn failed(
    site: &SiteConfig,
    state: &SiteState,
    reason: FailureReason,
    detail: &str,
    guards: Vec<GuardCheck>,
    now: DateTime<Utc>,
) -> Result<(SiteState, DomainEvent), TransitionError> {
    let mut next = state.clone();
    next.failure = Some(format!("{reason}: {detail}"));
    next.transition(
        state.epoch,
        Phase::Failed,
        now,
        format!("promotion failed ({reason}): {detail}"),
    )?;
    let candidate = next
        .candidate
        .as_ref()
        .map_or_else(|| "the candidate".to_string(), ToString::to_string);
    let mut summary = format!(
        "failover failed ({reason}): {detail}. {candidate} was not declared primary; DNS was not moved. A human must decide: fix the cause and send {{\"command\":\"failover\",\"site\":\"{}\"}}, or fail back deliberately.",
        site.id
    );
    if let Some(n) = crate::fence::held_note(state) {
        summary = format!("{summary} NOTE: {n}.");
    }
    let v = verdict(
        site,
        &next,
        Outcome::Refused {
            reason: reason.refusal(),
        },
        summary,
        guards,
    );
    let e = event(site, &next, EventType::FailoverFailed, v, now);
    next.outbox.push(e.clone());
    Ok((bump(next, now), e))
}

/// `promoting` → `aborted` before RDS was asked: the decision was too old, or the primary is
/// alive again. The `FailoverAborted` event rides in the outbox; the notifier pages with why and
/// what to do next. Nothing was mutated, so the cooldown is left as it was.
pub fn aborted(
    site: &SiteConfig,
    state: &SiteState,
    abort: &Abort,
    guards: Vec<GuardCheck>,
    now: DateTime<Utc>,
) -> Result<(SiteState, DomainEvent), TransitionError> {
    let mut next = state.clone();
    next.transition(
        state.epoch,
        Phase::Aborted,
        now,
        format!(
            "aborted before asking RDS ({}): {}",
            abort.reason, abort.detail
        ),
    )?;
    let candidate = next
        .candidate
        .as_ref()
        .map_or_else(|| "the candidate".to_string(), ToString::to_string);
    let then = match abort.reason {
        AbortReason::DecisionTooOld => "The evaluator decides again on fresh evidence at its next evaluation (the one-minute tick) if the outage is still there.",
        AbortReason::PrimaryAlive => "Automation watches the site again; if the primary goes down again a new incident opens.",
    };
    let mut summary = format!(
        "failover aborted ({}): {}. {candidate} was not promoted and DNS was not moved. {then}",
        abort.reason, abort.detail
    );
    if let Some(n) = crate::fence::held_note(state) {
        summary = format!("{summary} NOTE: {n}.");
    }
    let v = verdict(
        site,
        &next,
        Outcome::Refused {
            reason: abort.reason.refusal(),
        },
        summary,
        guards,
    );
    let e = event(site, &next, EventType::FailoverAborted, v, now);
    next.outbox.push(e.clone());
    Ok((bump(next, now), e))
}

/// Still `promoting` when the invocation runs out of time: the `PromotionContinued` event (in the
/// outbox) wakes the next invocation, which resumes watching. `transition` is a transitional status
/// seen by this invocation, kept in the timeline for the Multi-AZ judgement.
pub fn continued(
    site: &SiteConfig,
    state: &SiteState,
    detail: &str,
    transition: Option<&str>,
    guards: Vec<GuardCheck>,
    now: DateTime<Utc>,
) -> (SiteState, DomainEvent) {
    let mut next = state.clone();
    if let Some(t) = transition {
        note_transition(&mut next, t, now);
    }
    let candidate = next
        .candidate
        .clone()
        .unwrap_or_else(|| site.primary.clone());
    let summary = format!("promotion of {candidate} still in progress: {detail}");
    let v = verdict(site, &next, carrying_out(&candidate), summary, guards);
    let e = event(site, &next, EventType::PromotionContinued, v, now);
    next.outbox.push(e.clone());
    (bump(next, now), e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::evidence::LagSample;
    use crate::incident::RpoOverride;
    use chrono::TimeZone;

    const EXAMPLE: &str = include_str!("../../../infra/sites.example.json");

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn cfg() -> Config {
        Config::from_document(EXAMPLE).unwrap()
    }

    fn db(id: &str, region: &str) -> DbRef {
        DbRef {
            id: id.into(),
            region: region.into(),
        }
    }

    fn promoting(site: &str, epoch: u64, candidate: DbRef) -> SiteState {
        let mut s = SiteState::new(site);
        s.version = 7;
        s.epoch = epoch;
        s.phase = Phase::Promoting;
        s.candidate = Some(candidate);
        s
    }

    fn decided(site: &str, epoch: u64, candidate: Option<DbRef>) -> DomainEvent {
        DomainEvent {
            event_type: EventType::FailoverDecided,
            site: site.into(),
            epoch,
            phase: Phase::Promoting,
            engine: "rds-replica".into(),
            occurred_at: t(0),
            primary: None,
            candidate,
            rpo_override: None,
            verdict: Verdict {
                site: Some(site.into()),
                outcome: Outcome::Watch,
                epoch,
                phase: Phase::Promoting,
                summary: String::new(),
                guards: vec![],
            },
            timeline: vec![],
        }
    }

    fn healthy_replica() -> Preflight {
        Preflight {
            candidate: DbObservation::status("available"),
            replicates_from_primary: true,
            lag_now: Some(2.0),
            lag_now_at: None,
            primary: DbObservation::Unreadable {
                error: "timeout".into(),
            },
            target_arn: None,
        }
    }

    #[test]
    fn the_fence_admits_only_the_ledgers_promoting_epoch_and_its_configured_candidate() {
        let cfg = cfg();
        let orders = cfg.site("orders");
        let r1 = db("orders-replica-1", "us-west-2");
        let st = promoting("orders", 3, r1.clone());
        let ok = admit(orders, &decided("orders", 3, Some(r1.clone())), &st).unwrap();
        assert_eq!(
            ok,
            Admission::Proceed {
                candidate: r1.clone(),
                requested: None
            }
        );

        let reason = |site: Option<&SiteConfig>, e: &DomainEvent, s: &SiteState| {
            admit(site, e, s).unwrap_err().reason
        };
        assert_eq!(
            reason(None, &decided("nope", 3, None), &st),
            FenceReason::UnknownSite
        );
        assert_eq!(
            reason(orders, &decided("orders", 2, Some(r1.clone())), &st),
            FenceReason::StaleEpoch
        );
        assert_eq!(
            reason(orders, &decided("orders", 4, Some(r1.clone())), &st),
            FenceReason::StaleEpoch,
            "an epoch from the future is as foreign as an old one"
        );
        for phase in [Phase::Failed, Phase::Refused, Phase::DnsPinned, Phase::Idle] {
            let mut s = st.clone();
            s.phase = phase;
            assert_eq!(
                reason(orders, &decided("orders", 3, Some(r1.clone())), &s),
                FenceReason::WrongPhase,
                "{phase}"
            );
        }
        let forged = db("attacker-db", "us-west-2");
        assert_eq!(
            reason(orders, &decided("orders", 3, Some(forged.clone())), &st),
            FenceReason::ForeignCandidate
        );
        let mut s = st.clone();
        s.candidate = Some(forged.clone());
        assert_eq!(
            reason(orders, &decided("orders", 3, Some(forged)), &s),
            FenceReason::ForeignCandidate,
            "even the ledger cannot name an unconfigured database"
        );
        let mut e = decided("orders", 3, Some(r1.clone()));
        e.event_type = EventType::ReplicaPromoted;
        assert_eq!(reason(orders, &e, &st), FenceReason::NotAPromotionEvent);

        let mut done = st.clone();
        done.phase = Phase::Promoted;
        assert_eq!(
            admit(orders, &decided("orders", 3, None), &done).unwrap(),
            Admission::AlreadyPromoted
        );
    }

    #[test]
    fn a_recorded_request_of_this_epoch_means_watch_only() {
        let cfg = cfg();
        let site = cfg.site("orders").unwrap();
        let r1 = db("orders-replica-1", "us-west-2");
        let st = promoting("orders", 3, r1.clone());
        let action = PromotionAction::PromoteReadReplica {
            instance: r1.clone(),
        };
        let next = request(&st, &r1, &action, t(5));
        assert_eq!(next.version, st.version + 1);
        let rec = next.promotion.clone().unwrap();
        assert_eq!(
            (rec.epoch, rec.action.as_str(), rec.requested_at),
            (3, "PromoteReadReplica", t(5))
        );
        match admit(Some(site), &decided("orders", 3, None), &next).unwrap() {
            Admission::Proceed { requested, .. } => assert_eq!(requested, Some(rec.clone())),
            other => panic!("{other:?}"),
        }
        // A record from an older epoch is not this epoch's request.
        let mut newer = next.clone();
        newer.epoch = 4;
        match admit(Some(site), &decided("orders", 4, None), &newer).unwrap() {
            Admission::Proceed { requested, .. } => assert_eq!(requested, None),
            other => panic!("{other:?}"),
        }
        let back = withdraw(&next, "throttled", t(6));
        assert_eq!(back.promotion, None);
        assert_eq!(back.version, next.version + 1);
    }

    #[test]
    fn preflight_plans_one_action_per_engine_kind() {
        let cfg = cfg();
        let now = t(100);
        // RDS read replica
        let orders = cfg.site("orders").unwrap();
        let r1 = db("orders-replica-1", "us-west-2");
        let c = preflight(
            orders,
            &promoting("orders", 1, r1.clone()),
            &r1,
            &healthy_replica(),
            now,
        )
        .unwrap();
        assert_eq!(
            c.action,
            PromotionAction::PromoteReadReplica {
                instance: r1.clone()
            }
        );
        assert!(c.guards.iter().all(|g| g.result == GuardResult::Pass));
        // Aurora cluster
        let billing = cfg.site("billing").unwrap();
        let b2 = db("billing-2", "us-west-2");
        let c = preflight(
            billing,
            &promoting("billing", 1, b2.clone()),
            &b2,
            &healthy_replica(),
            now,
        )
        .unwrap();
        assert_eq!(
            c.action,
            PromotionAction::FailoverDbCluster {
                cluster_id: "billing-cluster".into(),
                region: "us-west-2".into(),
                target_instance: "billing-2".into()
            }
        );
        // Aurora Global: failover with data loss when the primary is unhealthy (lag within RPO)...
        let payments = cfg.site("payments").unwrap();
        let west = db("payments-west", "us-west-2");
        let arn = "arn:aws:rds:us-west-2:123456789012:cluster:payments-west";
        let mut p = healthy_replica();
        p.lag_now = Some(1.0);
        p.target_arn = Some(arn.into());
        let st = promoting("payments", 1, west.clone());
        let c = preflight(payments, &st, &west, &p, now).unwrap();
        assert_eq!(
            c.action,
            PromotionAction::FailoverGlobalCluster {
                global_cluster_id: "payments-global".into(),
                region: "us-west-2".into(),
                target_cluster_arn: arn.into(),
                allow_data_loss: true
            }
        );
        // ... and a planned switchover, whatever the lag, when the primary is healthy.
        p.primary = DbObservation::status("available");
        p.lag_now = Some(500.0);
        let c = preflight(payments, &st, &west, &p, now).unwrap();
        assert_eq!(
            c.action,
            PromotionAction::SwitchoverGlobalCluster {
                global_cluster_id: "payments-global".into(),
                region: "us-west-2".into(),
                target_cluster_arn: arn.into()
            }
        );
        assert_eq!(
            c.guards
                .iter()
                .find(|g| g.guard == Guard::Rpo)
                .unwrap()
                .result,
            GuardResult::NotApplicable
        );
        // Multi-AZ: reboot with failover, RPO not applicable, lag irrelevant.
        let inventory = cfg.site("inventory").unwrap();
        let inv = db("inventory-db", "us-west-2");
        let mut p = healthy_replica();
        p.lag_now = None;
        let c = preflight(
            inventory,
            &promoting("inventory", 1, inv.clone()),
            &inv,
            &p,
            now,
        )
        .unwrap();
        assert_eq!(
            c.action,
            PromotionAction::RebootWithFailover {
                instance: inv.clone()
            }
        );
    }

    #[test]
    fn preflight_refuses_with_a_typed_reason_and_the_numbers() {
        let cfg = cfg();
        let orders = cfg.site("orders").unwrap();
        let r1 = db("orders-replica-1", "us-west-2");
        let st = promoting("orders", 1, r1.clone());
        let now = t(100);
        let reason_of =
            |st: &SiteState, p: &Preflight| preflight(orders, st, &r1, p, now).unwrap_err().reason;

        let mut p = healthy_replica();
        p.candidate = DbObservation::NotFound;
        assert_eq!(reason_of(&st, &p), FailureReason::CandidateMissing);

        let mut p = healthy_replica();
        p.replicates_from_primary = false;
        assert_eq!(reason_of(&st, &p), FailureReason::NotAReplica);

        let mut p = healthy_replica();
        p.candidate = DbObservation::status("backing-up");
        assert_eq!(reason_of(&st, &p), FailureReason::BackupRunning);
        let mut backing = st.clone();
        backing.backups_running.insert("orders-replica-1".into());
        assert_eq!(
            reason_of(&backing, &healthy_replica()),
            FailureReason::BackupRunning,
            "an RDS backup event counts even while the status still reads available"
        );

        let mut p = healthy_replica();
        p.candidate = DbObservation::status("modifying");
        assert_eq!(reason_of(&st, &p), FailureReason::CandidateUnavailable);

        // RPO: 45 s now against a 30 s RPO.
        let mut p = healthy_replica();
        p.lag_now = Some(45.0);
        let f = preflight(orders, &st, &r1, &p, now).unwrap_err();
        assert_eq!(f.reason, FailureReason::RpoExceeded);
        let g = f.guards.iter().find(|g| g.guard == Guard::Rpo).unwrap();
        assert_eq!((g.observed, g.limit), (Some(45.0), Some(30.0)));

        // A reading CloudWatch still serves but took minutes before the outage is not "now".
        let mut p = healthy_replica();
        p.lag_now = Some(0.4);
        p.lag_now_at = Some(now - chrono::Duration::minutes(9));
        assert_eq!(reason_of(&st, &p), FailureReason::LagUnknown);
        p.lag_now_at = Some(now - chrono::Duration::seconds(30));
        assert!(preflight(orders, &st, &r1, &p, now).is_ok());

        // No reading now (-1 normalised away): the last good lag decides.
        let mut p = healthy_replica();
        p.lag_now = None;
        let mut with_history = st.clone();
        with_history.last_good_lag.insert(
            "orders-replica-1".into(),
            LagSample {
                secs: 40.0,
                at: t(40),
                created_at: None,
            },
        );
        assert_eq!(reason_of(&with_history, &p), FailureReason::RpoExceeded);
        with_history.last_good_lag.insert(
            "orders-replica-1".into(),
            LagSample {
                secs: 12.0,
                at: t(40),
                created_at: None,
            },
        );
        assert!(preflight(orders, &with_history, &r1, &p, now).is_ok());
        assert_eq!(reason_of(&st, &p), FailureReason::LagUnknown);

        // An override recorded in the ledger lets it through, and says so.
        let mut overridden = st.clone();
        overridden.rpo_override = Some(RpoOverride {
            by: "alice".into(),
            reason: "region lost".into(),
            at: t(1),
        });
        let mut p = healthy_replica();
        p.lag_now = Some(45.0);
        let c = preflight(orders, &overridden, &r1, &p, now).unwrap();
        let g = c.guards.iter().find(|g| g.guard == Guard::Rpo).unwrap();
        assert_eq!(g.result, GuardResult::Pass);
        assert!(g.detail.contains("overridden by alice"), "{}", g.detail);

        // Aurora Global with an unhealthy primary and too much lag: no FailoverGlobalCluster.
        let payments = cfg.site("payments").unwrap();
        let west = db("payments-west", "us-west-2");
        let mut p = healthy_replica();
        p.lag_now = Some(3.0);
        let f = preflight(
            payments,
            &promoting("payments", 1, west.clone()),
            &west,
            &p,
            now,
        )
        .unwrap_err();
        assert_eq!(f.reason, FailureReason::RpoExceeded);
    }

    #[test]
    fn completion_is_judged_by_topology_per_engine() {
        let cfg = cfg();
        let orders = &cfg.site("orders").unwrap().engine;
        let r1 = db("orders-replica-1", "us-west-2");
        let inst = |s: &str, src: Option<&str>| Observed::Instance {
            status: s.into(),
            replication_source: src.map(String::from),
        };
        let src = Some("arn:aws:rds:us-east-1:123456789012:db:orders-primary");
        // Available but still replicating: the API returned, the promotion is not done.
        assert!(matches!(
            judge(orders, &r1, &inst("available", src), false),
            Progress::Waiting {
                transitional: false,
                ..
            }
        ));
        assert!(matches!(
            judge(orders, &r1, &inst("modifying", src), false),
            Progress::Waiting {
                transitional: true,
                ..
            }
        ));
        assert!(matches!(
            judge(orders, &r1, &inst("rebooting", None), false),
            Progress::Waiting { .. }
        ));
        assert_eq!(
            judge(orders, &r1, &inst("available", None), false),
            Progress::Done
        );
        assert!(matches!(
            judge(orders, &r1, &inst("failed", None), false),
            Progress::Failed {
                reason: FailureReason::CandidateFailed,
                ..
            }
        ));
        assert!(matches!(
            judge(orders, &r1, &Observed::Missing, false),
            Progress::Failed {
                reason: FailureReason::CandidateFailed,
                ..
            }
        ));

        // Multi-AZ: available only counts after a reboot was seen.
        let multi = &cfg.site("inventory").unwrap().engine;
        let inv = db("inventory-db", "us-west-2");
        assert!(matches!(
            judge(multi, &inv, &inst("available", None), false),
            Progress::Waiting { .. }
        ));
        assert!(matches!(
            judge(multi, &inv, &inst("rebooting", None), false),
            Progress::Waiting {
                transitional: true,
                ..
            }
        ));
        assert_eq!(
            judge(multi, &inv, &inst("available", None), true),
            Progress::Done
        );

        // Aurora cluster: the writer flag must be on the target, and both available.
        let billing = &cfg.site("billing").unwrap().engine;
        let b2 = db("billing-2", "us-west-2");
        let cl = |s: &str, w: &str, ts: &str| Observed::Cluster {
            status: s.into(),
            writer: Some(w.into()),
            target_status: Some(ts.into()),
        };
        assert!(matches!(
            judge(
                billing,
                &b2,
                &cl("failing-over", "billing-1", "available"),
                false
            ),
            Progress::Waiting { .. }
        ));
        assert!(matches!(
            judge(
                billing,
                &b2,
                &cl("available", "billing-1", "available"),
                false
            ),
            Progress::Waiting { .. }
        ));
        assert_eq!(
            judge(
                billing,
                &b2,
                &cl("available", "billing-2", "available"),
                false
            ),
            Progress::Done
        );

        // Global: IsWriter on the target cluster, global status available.
        let payments = &cfg.site("payments").unwrap().engine;
        let west = db("payments-west", "us-west-2");
        let gl = |s: &str, w: bool| Observed::Global {
            status: s.into(),
            target_is_writer: w,
        };
        assert!(matches!(
            judge(payments, &west, &gl("failing-over", true), false),
            Progress::Waiting { .. }
        ));
        assert!(matches!(
            judge(payments, &west, &gl("available", false), false),
            Progress::Waiting { .. }
        ));
        assert_eq!(
            judge(payments, &west, &gl("available", true), false),
            Progress::Done
        );
        assert!(global_member_is(
            "arn:aws:rds:us-west-2:1:cluster:payments-west",
            &west,
            None
        ));
        assert!(!global_member_is(
            "arn:aws:rds:us-east-1:1:cluster:payments-east",
            &west,
            None
        ));
    }

    #[test]
    fn poll_delays_start_near_one_second_double_and_cap_at_ten_with_jitter() {
        let secs = |a, u| poll_delay(a, u).as_secs_f64();
        assert_eq!(secs(0, 0.0), 0.5);
        assert_eq!(secs(0, 1.0), 1.0);
        assert_eq!(secs(1, 0.5), 1.5);
        assert_eq!(secs(3, 1.0), 8.0);
        for a in 4..40 {
            assert!(secs(a, 0.0) >= 5.0 && secs(a, 0.999) <= 10.0, "attempt {a}");
        }
        assert_eq!(secs(100, 1.0), 10.0, "no overflow at large attempts");
        assert_eq!(
            secs(2, f64::NAN),
            2.0,
            "a broken random source is no jitter, not a panic"
        );
        assert_eq!(secs(2, 7.0), 4.0);
        // Monotone in the attempt for a fixed draw.
        for a in 0..10 {
            assert!(secs(a + 1, 0.3) >= secs(a, 0.3));
        }
    }

    #[test]
    fn transitions_are_fenced_and_carry_their_event_in_the_outbox() {
        let cfg = cfg();
        let site = cfg.site("orders").unwrap();
        let r1 = db("orders-replica-1", "us-west-2");
        let st = request(
            &promoting("orders", 2, r1.clone()),
            &r1,
            &PromotionAction::PromoteReadReplica {
                instance: r1.clone(),
            },
            t(0),
        );

        let (c, e) = continued(
            site,
            &st,
            "modifying",
            Some("orders-replica-1 modifying"),
            vec![],
            t(60),
        );
        assert_eq!((c.phase, c.version), (Phase::Promoting, st.version + 1));
        assert_eq!(e.event_type, EventType::PromotionContinued);
        assert_eq!(c.outbox, vec![e.clone()]);
        assert!(transition_seen(&c) && !transition_seen(&st));
        let (c2, _) = continued(site, &c, "rebooting", Some("again"), vec![], t(70));
        assert_eq!(
            c2.timeline.len(),
            c.timeline.len(),
            "the transition is noted once per epoch"
        );

        let (p, e) = promoted(site, &c, "orders-replica-1.x:3306", vec![], t(300)).unwrap();
        assert_eq!(p.phase, Phase::Promoted);
        assert_eq!(e.event_type, EventType::ReplicaPromoted);
        assert_eq!(e.epoch, 2);
        let rec = p.promotion.as_ref().unwrap();
        assert_eq!(rec.completed_at, Some(t(300)));
        assert_eq!(rec.writable_verified_at, Some(t(300)));
        assert_eq!(rec.endpoint.as_deref(), Some("orders-replica-1.x:3306"));
        assert_eq!(rec.requested_at, t(0), "the request time is kept");
        assert!(e.verdict.summary.contains("300 s"), "{}", e.verdict.summary);

        let (f, e) = failed(
            site,
            &c,
            FailureReason::NotWritable,
            "read_only=1",
            vec![],
            t(400),
        )
        .unwrap();
        assert_eq!(f.phase, Phase::Failed);
        assert_eq!(f.failure.as_deref(), Some("not-writable: read_only=1"));
        assert_eq!(e.event_type, EventType::FailoverFailed);
        assert!(
            e.verdict.summary.contains("(not-writable)"),
            "{}",
            e.verdict.summary
        );

        // A record of another phase cannot be moved by the promoter.
        let mut pinned = p.clone();
        pinned.phase = Phase::DnsPinned;
        assert!(promoted(site, &pinned, "x:1", vec![], t(500)).is_err());
        let mut aborted = st.clone();
        aborted.phase = Phase::Aborted;
        assert!(failed(
            site,
            &aborted,
            FailureReason::NotWritable,
            "",
            vec![],
            t(500)
        )
        .is_err());
    }

    // ------------------------------------------------------------ the decision, re-checked

    /// An epoch decided at t(0) (the timeline's `promoting` entry), as the evaluator leaves it.
    fn decided_at_zero(site: &str, candidate: DbRef) -> SiteState {
        let mut s = promoting(site, 3, candidate);
        s.timeline = vec![TimelineEntry {
            phase: Phase::Promoting,
            at: t(0),
            note: "failover decided (automatic (approval mode auto)) to the candidate".into(),
        }];
        s
    }

    #[test]
    fn a_decision_older_than_max_decision_age_is_aborted_by_the_ledgers_clock_not_the_events() {
        let cfg = cfg();
        let site = cfg.site("orders").unwrap();
        assert_eq!(site.thresholds.max_decision_age_secs, 300, "the default");
        let r1 = db("orders-replica-1", "us-west-2");
        let st = decided_at_zero("orders", r1.clone());
        let ev = decided("orders", 3, Some(r1.clone()));

        let ok = check_decision_age(site, &st, &ev, t(300)).unwrap();
        assert_eq!(
            (ok.result, ok.observed, ok.limit),
            (GuardResult::Pass, Some(300.0), Some(300.0))
        );

        // An hour late (the bus rule's MaximumEventAgeInSeconds): aborted, with the numbers.
        let late = check_decision_age(site, &st, &ev, t(3600)).unwrap_err();
        assert_eq!(late.reason, AbortReason::DecisionTooOld);
        assert_eq!(
            (late.guard.guard, late.guard.result),
            (Guard::DecisionAge, GuardResult::Fail)
        );
        assert_eq!(
            (late.guard.observed, late.guard.limit),
            (Some(3600.0), Some(300.0))
        );
        assert!(late.detail.contains("3600 s ago"), "{}", late.detail);

        // A re-sent event with a fresh occurred_at does not make an old decision young.
        let mut fresh = ev.clone();
        fresh.occurred_at = t(3599);
        assert!(check_decision_age(site, &st, &fresh, t(3600)).is_err());

        // A continuation of this epoch's unrequested pre-checks (RDS's API throttled for eight
        // minutes) is judged by its own age: the first invocation found the decision young, and
        // the pre-checks have ten minutes (PREFLIGHT_DEADLINE_MINUTES), not five.
        let mut continued = ev.clone();
        continued.event_type = crate::events::EventType::PromotionContinued;
        continued.occurred_at = t(470);
        assert!(check_decision_age(site, &st, &continued, t(480)).is_ok());
        // ... but a continuation delivered late is as stale as a late decision.
        assert!(check_decision_age(site, &st, &continued, t(470 + 301)).is_err());

        // The evaluator's decision record wins over the timeline; one of another epoch does not.
        let mut recorded = st.clone();
        recorded.decision = Some(crate::incident::Decision {
            epoch: 3,
            trigger: DecisionTrigger::Manual,
            at: t(3500),
            by: Some("alice".into()),
            reason: None,
        });
        assert!(check_decision_age(site, &recorded, &ev, t(3600)).is_ok());
        recorded.decision.as_mut().unwrap().epoch = 2;
        assert!(check_decision_age(site, &recorded, &ev, t(3600)).is_err());
    }

    #[test]
    fn a_primary_that_answers_again_aborts_unless_the_decision_may_target_a_live_primary() {
        let cfg = cfg();
        let orders = cfg.site("orders").unwrap();
        let r1 = db("orders-replica-1", "us-west-2");
        let st = decided_at_zero("orders", r1.clone());
        let ev = decided("orders", 3, Some(r1.clone()));
        let reachable = CanaryResult::Reachable { latency_ms: 3 };
        let refused = CanaryResult::Unreachable {
            error: "connection refused".into(),
        };
        let no_canary = CanaryResult::Unknown {
            reason: "credentials unreadable".into(),
        };
        let unreadable = DbObservation::Unreadable {
            error: "us-east-1 timed out".into(),
        };
        let check =
            |site: &SiteConfig, st: &SiteState, status: DbObservation, canary: CanaryResult| {
                recheck_primary(site, st, &ev, &PrimaryNow { status, canary })
            };

        for (status, canary) in [
            (unreadable.clone(), reachable.clone()),
            (DbObservation::status("failed"), reachable.clone()),
            (DbObservation::status("available"), reachable.clone()),
        ] {
            let a = check(orders, &st, status.clone(), canary.clone()).unwrap_err();
            assert_eq!(a.reason, AbortReason::PrimaryAlive, "{status:?} {canary:?}");
            assert_eq!(
                (a.guard.guard, a.guard.result),
                (Guard::PrimaryStillDown, GuardResult::Fail)
            );
            assert!(a.detail.contains("second writer"), "{}", a.detail);
        }
        // Unknown is not alive: the primary's region going dark is the outage itself. Nor is
        // RDS's `available` alone: the decision's quorum outvoted it (RDS reports a lost host
        // `available` for minutes; Aurora Global's primary cluster stays `available` while its
        // writer is unreachable), and counting it here would abort every re-decision in turn.
        for (status, canary) in [
            (DbObservation::status("available"), refused.clone()),
            (unreadable.clone(), refused.clone()),
            (DbObservation::status("failed"), no_canary.clone()),
            (DbObservation::NotFound, refused.clone()),
            (DbObservation::status("rebooting"), refused.clone()),
        ] {
            let g = check(orders, &st, status.clone(), canary.clone()).unwrap();
            assert_eq!(g.result, GuardResult::Pass, "{status:?} {canary:?}");
        }
        // Only a human's forced failover or a planned switchover may target a live primary.
        for (trigger, ok) in [
            (DecisionTrigger::Automatic, false),
            (DecisionTrigger::Approved, false),
            (DecisionTrigger::Manual, false),
            (DecisionTrigger::ManualForced, true),
            (DecisionTrigger::PlannedSwitchover, true),
        ] {
            let mut s = st.clone();
            s.decision = Some(crate::incident::Decision {
                epoch: 3,
                trigger,
                at: t(0),
                by: None,
                reason: None,
            });
            let r = check(
                orders,
                &s,
                DbObservation::status("available"),
                reachable.clone(),
            );
            assert_eq!(r.is_ok(), ok, "{trigger:?}: {r:?}");
            if ok {
                assert_eq!(r.unwrap().result, GuardResult::NotApplicable);
            }
        }
        // Multi-AZ: RDS reboots only an `available` instance; the canary alone speaks.
        let inventory = cfg.site("inventory").unwrap();
        let st = decided_at_zero("inventory", inventory.primary.clone());
        assert!(check(inventory, &st, DbObservation::status("available"), refused).is_ok());
        assert!(check(
            inventory,
            &st,
            DbObservation::status("available"),
            reachable
        )
        .is_err());
    }

    #[test]
    fn an_aborted_epoch_tells_people_and_leaves_the_cooldown_which_only_a_request_starts() {
        let cfg = cfg();
        let site = cfg.site("orders").unwrap();
        let r1 = db("orders-replica-1", "us-west-2");
        let mut st = decided_at_zero("orders", r1.clone());
        let earlier = t(-90_000);
        st.last_failover_at = Some(earlier);
        let ev = decided("orders", 3, Some(r1.clone()));
        let abort = check_decision_age(site, &st, &ev, t(3600)).unwrap_err();
        let (next, e) = aborted(site, &st, &abort, vec![abort.guard.clone()], t(3600)).unwrap();
        assert_eq!((next.phase, next.version), (Phase::Aborted, st.version + 1));
        assert_eq!(next.promotion, None, "nothing was asked of RDS");
        assert_eq!(
            next.last_failover_at,
            Some(earlier),
            "the cooldown is untouched"
        );
        assert_eq!(e.event_type, EventType::FailoverAborted);
        assert_eq!(next.outbox, vec![e.clone()]);
        assert_eq!(
            e.verdict.outcome,
            Outcome::Refused {
                reason: RefusalReason::StaleDecision
            }
        );
        assert!(
            e.verdict.summary.contains("was not promoted"),
            "{}",
            e.verdict.summary
        );
        // Once RDS was asked, the epoch can no longer be aborted.
        let action = PromotionAction::PromoteReadReplica {
            instance: r1.clone(),
        };
        let asked = request(&st, &r1, &action, t(10));
        assert_eq!(
            asked.last_failover_at,
            Some(t(10)),
            "the cooldown starts when RDS is asked"
        );
        let mut promoted_st = asked.clone();
        promoted_st.phase = Phase::Promoted;
        assert!(aborted(site, &promoted_st, &abort, vec![], t(20)).is_err());
    }
}
