//! The promoter's handler: parse → fence → re-check → record → mutate once → watch → verify
//! writes → commit → emit.
//!
//! The handler owns the I/O choreography; every judgement is `failover_policy::promote`'s. The
//! order is what makes it safe under at-least-once, hours-late delivery:
//! - malformed input is `BadInput` before any AWS call; an unknown site, a stale or foreign epoch,
//!   a phase other than `promoting` or a candidate the config does not name is a typed `fenced`
//!   answer (not an error: Lambda must not retry it) with no AWS mutation;
//! - before RDS is asked, the decision must be younger than `thresholds.max_decision_age_secs`
//!   and a fresh read of the primary (RDS status, SQL canary) must find it still down, unless the
//!   ledger says a human forced the failover or planned a switchover; otherwise the epoch is
//!   aborted (`FailoverAborted`) with no RDS call;
//! - the [`PromotionRecord`](failover_policy::incident::PromotionRecord) is committed by
//!   compare-and-set *before* the RDS mutation is sent, and a record that says "requested" means
//!   watch only: a crash, a timeout, a duplicate delivery or a continuation never sends it twice;
//! - completion is judged from the topology, then a real MySQL connection must see
//!   `read_only = 0` and `innodb_read_only = 0` before `promoted` is committed;
//! - results ride in the ledger record's outbox and are published after the commit, so a failed
//!   publish is re-sent by the next invocation (of any function) instead of being lost;
//! - when the Lambda deadline gets close, a `PromotionContinued` event (also via the outbox) hands
//!   the watch to the next invocation.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use failover_adapters::control::{DatabaseControl, MutationAck, WritabilityCheck};
use failover_adapters::gather::source_names;
use failover_adapters::ports::{
    Canary, Clock, DatabaseTopology, ErrorKind, EventBus, LagMetric, Ledger, Metrics, PortError,
};
use failover_policy::config::{DbRef, Engine};
use failover_policy::events::EVENT_SOURCE;
use failover_policy::evidence::{CandidateEvidence, DbObservation};
use failover_policy::pace;
use failover_policy::promote::{
    self, Abort, AbortReason, Admission, FailureReason, FenceReason, Fenced, Observed, Preflight,
    PrimaryNow, Progress, PromotionAction,
};
use failover_policy::verdict::{Guard, GuardCheck, GuardResult};
use failover_policy::{Config, DomainEvent, EventType, SiteConfig, SiteState, Verdict};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

/// Real time for the invocation's budget, waiting between polls, and the jitter draw — injected
/// so tests run a ten-minute promotion in microseconds and deterministically.
#[async_trait]
pub trait Pacer: Send + Sync {
    fn now(&self) -> SystemTime;
    async fn sleep(&self, d: Duration);
    /// A uniform draw in [0, 1).
    fn jitter(&self) -> f64;
}

/// Everything the handler talks to, built once at cold start.
#[derive(Clone)]
pub struct Deps {
    pub cfg: Config,
    pub topology: Arc<dyn DatabaseTopology>,
    pub metrics: Arc<dyn Metrics>,
    pub control: Arc<dyn DatabaseControl>,
    pub writability: Arc<dyn WritabilityCheck>,
    /// The SQL canary against the primary: re-checked, with its RDS status, before RDS is asked.
    pub canary: Arc<dyn Canary>,
    pub ledger: Arc<dyn Ledger>,
    pub bus: Arc<dyn EventBus>,
    /// The time recorded in the ledger and events (pinned in replays).
    pub clock: Arc<dyn Clock>,
    pub pacer: Arc<dyn Pacer>,
    /// The budget assumed when the runtime reports no usable deadline (none, or one already past
    /// at the start: local runtime emulators); AWS always gives the real one.
    pub fallback_budget: Duration,
}

/// How many times a lost compare-and-set is retried with a fresh read before giving up.
const MAX_COMMIT_ATTEMPTS: usize = 5;
/// Throttled mutations (provably not applied) are re-sent this many times within an invocation.
const MUTATION_THROTTLE_RETRIES: u32 = 3;
/// The fallback budget when `RDS_FAILOVER_FALLBACK_BUDGET_SECS` is not set.
pub const DEFAULT_BUDGET: Duration = failover_adapters::settings::DEFAULT_FALLBACK_BUDGET;

#[derive(Debug, thiserror::Error)]
pub enum PromoterError {
    #[error("bad input: {0}")]
    BadInput(String),
    #[error("site {site}: {source}")]
    Port { site: String, source: PortError },
    #[error(
        "site {site}: ledger contention: lost {MAX_COMMIT_ATTEMPTS} compare-and-set races in a row"
    )]
    Contention { site: String },
}

impl PromoterError {
    pub fn error_type(&self) -> String {
        match self {
            PromoterError::BadInput(_) => "BadInput".into(),
            PromoterError::Port { source, .. } if source.kind.is_retryable() => {
                format!("Retryable.{:?}", source.kind)
            }
            PromoterError::Port { source, .. } => format!("Fatal.{:?}", source.kind),
            PromoterError::Contention { .. } => "Retryable.Contention".into(),
        }
    }
}

impl From<PromoterError> for Diagnostic {
    fn from(e: PromoterError) -> Self {
        Diagnostic {
            error_type: e.error_type(),
            error_message: e.to_string(),
        }
    }
}

/// What this invocation did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PromoterOutcome {
    /// The candidate is the writer and accepted writes; `ReplicaPromoted` was committed.
    Promoted {
        candidate: DbRef,
        action: String,
        endpoint: String,
    },
    /// The epoch failed; `FailoverFailed` was committed.
    Failed {
        reason: FailureReason,
        detail: String,
    },
    /// Still promoting; `PromotionContinued` was committed for the next invocation.
    Continued { detail: String },
    /// The re-check before asking RDS found the decision too old or the primary alive:
    /// `FailoverAborted` was committed; nothing was asked of RDS.
    Aborted { reason: AbortReason, detail: String },
    /// Not acted on: no AWS mutation.
    Fenced { reason: FenceReason, detail: String },
    /// The epoch is already promoted: a re-delivery with nothing to do.
    AlreadyPromoted,
}

impl PromoterOutcome {
    pub fn name(&self) -> &'static str {
        match self {
            PromoterOutcome::Promoted { .. } => "promoted",
            PromoterOutcome::Failed { .. } => "failed",
            PromoterOutcome::Continued { .. } => "continued",
            PromoterOutcome::Aborted { .. } => "aborted",
            PromoterOutcome::Fenced { .. } => "fenced",
            PromoterOutcome::AlreadyPromoted => "already-promoted",
        }
    }
}

/// What `cargo lambda invoke` prints.
#[derive(Debug, Serialize)]
pub struct Response {
    pub site: String,
    pub epoch: u64,
    /// The detail-type that woke this invocation.
    pub trigger: &'static str,
    pub outcome: PromoterOutcome,
    /// The verdict of the event this invocation committed, with its guards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Topology snapshots taken while watching.
    pub polls: u32,
    /// Detail-types published by this invocation (including re-sent outbox items).
    pub emitted: Vec<String>,
}

/// Parses the EventBridge delivery: source `rds-failover`, detail-type `FailoverDecided` or
/// `PromotionContinued`, detail = the [`DomainEvent`] of that type.
pub fn parse(payload: Value) -> Result<DomainEvent, PromoterError> {
    if let Some(refusal) = failover_policy::signal::refused_input(&payload) {
        return Err(PromoterError::BadInput(refusal));
    }
    let envelope: EventBridgeEvent<Value> = serde_json::from_value(payload).map_err(|e| {
        PromoterError::BadInput(format!(
            "expected an EventBridge event with detail-type and detail: {e}"
        ))
    })?;
    if envelope.source != EVENT_SOURCE {
        return Err(PromoterError::BadInput(format!(
            "source `{}` is not `{EVENT_SOURCE}`",
            envelope.source
        )));
    }
    let expected = match envelope.detail_type.as_str() {
        "FailoverDecided" => EventType::FailoverDecided,
        "PromotionContinued" => EventType::PromotionContinued,
        other => {
            return Err(PromoterError::BadInput(format!(
                "detail-type `{other}` is not FailoverDecided or PromotionContinued"
            )))
        }
    };
    let event: DomainEvent = serde_path_to_error::deserialize(envelope.detail)
        .map_err(|e| PromoterError::BadInput(format!("detail.{}: {}", e.path(), e.inner())))?;
    if event.event_type != expected {
        return Err(PromoterError::BadInput(format!(
            "detail-type {} carries a {} detail",
            expected.detail_type(),
            event.event_type.detail_type()
        )));
    }
    Ok(event)
}

pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Response, PromoterError> {
    let started = deps.pacer.now();
    let deadline = started
        + failover_adapters::settings::remaining_budget(
            event.context.deadline,
            started,
            deps.fallback_budget,
        );
    let budget_ms = deadline
        .duration_since(started)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    info!(budget_ms, "invocation budget");
    let domain = parse(event.payload).inspect_err(|e| warn!(error = %e, "rejected input"))?;
    let trigger = domain.event_type.detail_type();
    let mut resp = Response {
        site: domain.site.clone(),
        epoch: domain.epoch,
        trigger,
        outcome: PromoterOutcome::AlreadyPromoted,
        verdict: None,
        polls: 0,
        emitted: vec![],
    };
    let Some(site) = deps.cfg.site(&domain.site) else {
        let f = promote::admit(None, &domain, &SiteState::new(&domain.site))
            .expect_err("an unknown site is always fenced");
        resp.outcome = fenced_outcome(f);
        info!(site = %domain.site, epoch = domain.epoch, outcome = "fenced", "unknown site: nothing read, nothing changed");
        return Ok(resp);
    };
    // The promoter judges the decision against the topology the ledger owns (after a completed
    // failover, the pinned writer is the primary and the configured one a possible candidate).
    let state = deps
        .ledger
        .load(&site.id)
        .await
        .map_err(|source| PromoterError::Port {
            site: site.id.clone(),
            source,
        })?;
    let live = failover_policy::topology::effective(site, &state);
    let site: &SiteConfig = &live;
    let mut run = Run {
        deps,
        site,
        event: domain,
        deadline,
        polls: 0,
        emitted: vec![],
        verdict: None,
    };
    // The record just read for the topology is the first attempt's too: a second read would only
    // add a round trip before a fenced or duplicate event is dropped.
    let outcome = run.run(state).await?;
    info!(
        site = %site.id,
        epoch = run.event.epoch,
        trigger,
        outcome = outcome.name(),
        polls = run.polls,
        "promoter finished"
    );
    resp.outcome = outcome;
    resp.polls = run.polls;
    resp.emitted = run.emitted;
    resp.verdict = run.verdict;
    Ok(resp)
}

fn fenced_outcome(f: Fenced) -> PromoterOutcome {
    PromoterOutcome::Fenced {
        reason: f.reason,
        detail: f.detail,
    }
}

/// One topology snapshot of the promotion target, with the new writer's endpoint when known.
struct Snapshot {
    observed: Observed,
    /// The new writer instance's endpoint: where writability is checked.
    endpoint: Option<String>,
    /// Where the writer name must point, when not at that instance: an Aurora cluster's writer
    /// endpoint, which follows the writer through a later Aurora-internal failover by itself (an
    /// instance endpoint would then name a reader, with nobody looking).
    writer_endpoint: Option<String>,
}

/// `host:port` of an Aurora cluster's writer endpoint, as DescribeDBClusters reports it.
fn cluster_endpoint(c: &failover_adapters::ports::ClusterInfo) -> Option<String> {
    c.endpoint.as_ref().map(|(h, p)| format!("{h}:{p}"))
}

/// Why the watch has not finished yet (decides the failure reason when time runs out).
enum Blocked {
    Topology,
    ReadOnly,
    CheckFailed,
}

enum Commit {
    Written,
    Stopped(PromoterOutcome),
}

struct Run<'a> {
    deps: &'a Deps,
    site: &'a SiteConfig,
    event: DomainEvent,
    deadline: SystemTime,
    polls: u32,
    emitted: Vec<String>,
    verdict: Option<Verdict>,
}

impl Run<'_> {
    fn port(&self, source: PortError) -> PromoterError {
        PromoterError::Port {
            site: self.site.id.clone(),
            source,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.deps.clock.now()
    }

    /// Whether waiting `d` still leaves the time to verify, commit and publish.
    fn has_time_for(&self, d: Duration) -> bool {
        let left = self
            .deadline
            .duration_since(self.deps.pacer.now())
            .unwrap_or(Duration::ZERO);
        left >= d + promote::finish_reserve(self.site)
    }

    async fn load(&mut self) -> Result<SiteState, PromoterError> {
        let state = self
            .deps
            .ledger
            .load(&self.site.id)
            .await
            .map_err(|e| self.port(e))?;
        self.flush(state).await
    }

    /// Publishes the record's outbox, then clears it by compare-and-set. A lost race leaves the
    /// events for the next flush (consumers dedupe on site#epoch#type).
    async fn flush(&mut self, mut state: SiteState) -> Result<SiteState, PromoterError> {
        if state.outbox.is_empty() {
            return Ok(state);
        }
        self.deps
            .bus
            .publish(&state.outbox)
            .await
            .map_err(|e| self.port(e))?;
        self.emitted.extend(
            state
                .outbox
                .iter()
                .map(|e| e.event_type.detail_type().to_string()),
        );
        state.outbox.clear();
        state.version += 1;
        match self.deps.ledger.commit(&state).await {
            Ok(()) => Ok(state),
            Err(e) if e.kind == ErrorKind::Conflict => self
                .deps
                .ledger
                .load(&self.site.id)
                .await
                .map_err(|e| self.port(e)),
            Err(e) => Err(self.port(e)),
        }
    }

    async fn run(&mut self, first: SiteState) -> Result<PromoterOutcome, PromoterError> {
        let mut first = Some(first);
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            let state = match first.take() {
                Some(read) => self.flush(read).await?,
                None => self.load().await?,
            };
            let (candidate, requested) = match promote::admit(Some(self.site), &self.event, &state)
            {
                Err(f) => return Ok(fenced_outcome(f)),
                Ok(Admission::AlreadyPromoted) => return Ok(PromoterOutcome::AlreadyPromoted),
                Ok(Admission::Proceed {
                    candidate,
                    requested,
                }) => (candidate, requested),
            };
            let fence = GuardCheck::new(
                Guard::InFlight,
                GuardResult::Pass,
                format!(
                    "epoch {} of site {} is promoting {candidate}, as the event says",
                    state.epoch, self.site.id
                ),
            );
            if requested.is_some() {
                // Asked before (a crash, a continuation, a duplicate): watch, never ask again.
                return self.watch(state, &candidate, vec![fence], None).await;
            }
            match self.start(state, &candidate, fence).await? {
                Some(outcome) => return Ok(outcome),
                None => continue, // lost the race to record the request: re-read and re-fence
            }
        }
        Err(PromoterError::Contention {
            site: self.site.id.clone(),
        })
    }

    /// Re-checks, records the request, sends the mutation once. `None` = lost the race to record.
    async fn start(
        &mut self,
        state: SiteState,
        candidate: &DbRef,
        fence: GuardCheck,
    ) -> Result<Option<PromoterOutcome>, PromoterError> {
        let mut guards = vec![fence];
        // The decision may have reached us late (EventBridge and Lambda async delivery are
        // at-least-once and retried for up to an hour here): before RDS is asked, the decision
        // must be young and the primary, read afresh, still down.
        match promote::check_decision_age(self.site, &state, &self.event, self.now()) {
            Ok(g) => guards.push(g),
            Err(a) => return self.abort_unrequested(state, a, guards).await,
        }
        let primary = self.read_primary().await;
        match promote::recheck_primary(self.site, &state, &self.event, &primary) {
            Ok(g) => guards.push(g),
            Err(a) => return self.abort_unrequested(state, a, guards).await,
        }
        let (_, decided_at) = promote::decision_of(&state, &self.event);
        let state = match self.fenced_first(state, decided_at, &mut guards).await? {
            Ok(s) => s,
            Err(done) => return Ok(done),
        };
        let mut attempt = 0;
        let (pre, source_endpoint) = loop {
            match self.read_preflight(candidate).await {
                Ok(p) => break p,
                Err(e) if e.kind.is_retryable() => {
                    let stuck = self.now() - decided_at
                        > chrono::Duration::minutes(promote::PREFLIGHT_DEADLINE_MINUTES);
                    if stuck {
                        return self
                            .fail_unrequested(
                                state,
                                FailureReason::TopologyUnreadable,
                                &e.to_string(),
                                guards,
                            )
                            .await;
                    }
                    let d = promote::poll_delay(attempt, self.deps.pacer.jitter());
                    attempt += 1;
                    if !self.has_time_for(d) {
                        let detail = format!("pre-checks waiting for a readable topology: {e}");
                        return self.hand_on(state, &detail, None, guards).await.map(Some);
                    }
                    self.deps.pacer.sleep(d).await;
                }
                Err(e) => {
                    return self
                        .fail_unrequested(
                            state,
                            FailureReason::TopologyUnreadable,
                            &e.to_string(),
                            guards,
                        )
                        .await
                }
            }
        };
        if attempt > 0 {
            // The pre-checks waited (RDS's API unreadable for a while): the primary read above is
            // as old as that wait. Read it again just before the request, so a primary that came
            // back meanwhile is not promoted over.
            let primary = self.read_primary().await;
            if let Err(a) = promote::recheck_primary(self.site, &state, &self.event, &primary) {
                return self.abort_unrequested(state, a, guards).await;
            }
        }
        let now = self.now();
        let cleared = match promote::preflight(self.site, &state, candidate, &pre, now) {
            Ok(c) => c,
            Err(f) => {
                guards.extend(f.guards);
                return self
                    .fail_unrequested(state, f.reason, &f.detail, guards)
                    .await;
            }
        };
        guards.extend(cleared.guards);
        let action = cleared.action;

        let mut requested = promote::request(&state, candidate, &action, now);
        if let Some(ep) = &source_endpoint {
            failover_policy::fence::note_promoted_position(
                &mut requested,
                self.position_before_promotion(ep).await,
            );
        }
        match self.deps.ledger.commit(&requested).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::Conflict => return Ok(None),
            Err(e) => return Err(self.port(e)),
        }
        info!(site = %self.site.id, epoch = state.epoch, action = action.api_name(), "promotion requested in the ledger; sending it");

        let mut attempt = 0;
        let ack = loop {
            match self.send(&action).await {
                Ok(ack) => break ack,
                Err(e) if e.kind == ErrorKind::Throttled && attempt < MUTATION_THROTTLE_RETRIES => {
                    let d = promote::poll_delay(attempt, self.deps.pacer.jitter());
                    attempt += 1;
                    self.deps.pacer.sleep(d).await;
                }
                Err(e) if e.kind == ErrorKind::Throttled => {
                    // Throttled requests are rejected before RDS acts: take the request back so
                    // Lambda's retry of this invocation may send it.
                    let why = e.message.clone();
                    let now = self.now();
                    return match self
                        .commit_with(requested, |s| Ok(promote::withdraw(s, &why, now)))
                        .await?
                    {
                        Commit::Written => Err(self.port(e)),
                        Commit::Stopped(o) => Ok(Some(o)),
                    };
                }
                Err(e) if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Unavailable) => {
                    // Maybe applied: never re-send; the topology will tell.
                    warn!(site = %self.site.id, error = %e, "mutation outcome unknown; watching the topology");
                    break MutationAck::default();
                }
                Err(e) => {
                    let detail = format!("RDS rejected {}: {e}", action.describe());
                    guards.push(GuardCheck::new(
                        Guard::Candidate,
                        GuardResult::Fail,
                        detail.clone(),
                    ));
                    return self
                        .fail(requested, FailureReason::PromotionRejected, &detail, guards)
                        .await
                        .map(Some);
                }
            }
        };
        let seen = ack
            .status
            .filter(|s| s != "available")
            .map(|s| format!("{} answered {s}", action.api_name()));
        self.watch(requested, candidate, guards, seen)
            .await
            .map(Some)
    }

    async fn send(&self, action: &PromotionAction) -> Result<MutationAck, PortError> {
        let c = &self.deps.control;
        match action {
            PromotionAction::PromoteReadReplica { instance } => {
                c.promote_read_replica(instance).await
            }
            PromotionAction::FailoverDbCluster {
                cluster_id,
                region,
                target_instance,
            } => {
                c.failover_db_cluster(cluster_id, region, target_instance)
                    .await
            }
            PromotionAction::SwitchoverGlobalCluster {
                global_cluster_id,
                region,
                target_cluster_arn,
            } => {
                c.switchover_global_cluster(global_cluster_id, region, target_cluster_arn)
                    .await
            }
            PromotionAction::FailoverGlobalCluster {
                global_cluster_id,
                region,
                target_cluster_arn,
                allow_data_loss,
            } => {
                c.failover_global_cluster(
                    global_cluster_id,
                    region,
                    target_cluster_arn,
                    *allow_data_loss,
                )
                .await
            }
            PromotionAction::RebootWithFailover { instance } => {
                c.reboot_with_failover(instance).await
            }
        }
    }

    /// The primary as RDS and the SQL canary see it now, concurrently. A failed read is unknown
    /// evidence (the primary's region going dark is the outage itself), never "alive".
    async fn read_primary(&self) -> PrimaryNow {
        let site = self.site;
        let topo = &self.deps.topology;
        let status = async {
            let r = match &site.engine {
                Engine::AuroraGlobal { .. } => topo
                    .cluster(&site.primary.id, &site.primary.region)
                    .await
                    .map(|c| c.map(|c| c.status)),
                _ => topo
                    .instance(&site.primary)
                    .await
                    .map(|i| i.map(|i| i.status)),
            };
            match r {
                Ok(Some(s)) => DbObservation::status(s),
                Ok(None) => DbObservation::NotFound,
                Err(e) => DbObservation::Unreadable {
                    error: e.to_string(),
                },
            }
        };
        let (status, canary) = tokio::join!(status, self.deps.canary.probe(site));
        PrimaryNow { status, canary }
    }

    /// A failover forced over a primary that answers: RDS is asked only once the old primary is
    /// fenced (`read_only=1` in its own parameter group, confirmed over SQL — the evaluator's tick
    /// works the steps). Waits within the invocation, re-reading the ledger, then hands on; a
    /// refused step, or no fence within the pre-check deadline, fails the epoch with nothing
    /// asked of RDS.
    async fn fenced_first(
        &mut self,
        mut state: SiteState,
        decided_at: chrono::DateTime<chrono::Utc>,
        guards: &mut Vec<GuardCheck>,
    ) -> Result<Result<SiteState, Option<PromoterOutcome>>, PromoterError> {
        use failover_policy::fence::{fenced_first, FencedFirst};
        const RECHECK: Duration = Duration::from_secs(10);
        let epoch = state.epoch;
        loop {
            let why = match fenced_first(&state) {
                FencedFirst::NotNeeded => return Ok(Ok(state)),
                FencedFirst::Done(seen) => {
                    guards.push(GuardCheck::new(
                        Guard::Fence,
                        GuardResult::Pass,
                        format!("the old primary was fenced first: {seen}"),
                    ));
                    return Ok(Ok(state));
                }
                FencedFirst::Refused(why) => {
                    let detail = format!(
                        "the failover was forced over a primary that answers, and it cannot be fenced first ({why}): promoting now would make two writers; fence it by hand (read_only=1) and fail over again"
                    );
                    return self
                        .fail_unrequested(
                            state,
                            FailureReason::NotFencedFirst,
                            &detail,
                            guards.clone(),
                        )
                        .await
                        .map(Err);
                }
                FencedFirst::Waiting(why) => why,
            };
            let stuck = self.now() - decided_at
                > chrono::Duration::minutes(promote::PREFLIGHT_DEADLINE_MINUTES);
            if stuck {
                let detail = format!(
                    "{why}, after {} minutes: nothing was asked of RDS; the old primary may be read-only already — check it before failing over again",
                    promote::PREFLIGHT_DEADLINE_MINUTES
                );
                return self
                    .fail_unrequested(
                        state,
                        FailureReason::NotFencedFirst,
                        &detail,
                        guards.clone(),
                    )
                    .await
                    .map(Err);
            }
            if !self.has_time_for(RECHECK) {
                return self
                    .hand_on(state, &why, None, guards.clone())
                    .await
                    .map(|o| Err(Some(o)));
            }
            info!(site = %self.site.id, epoch = state.epoch, %why, "fence first");
            self.deps.pacer.sleep(RECHECK).await;
            state = self.load().await?;
            // A human's abort, or any other writer of the record, ends this wait: the caller
            // re-admits the epoch from the ledger as it stands (`None`: lost the race).
            if state.epoch != epoch || state.phase != failover_policy::Phase::Promoting {
                return Ok(Err(None));
            }
        }
    }

    /// Aborts the epoch for what the re-check saw, on the very state it was judged against (like
    /// `fail_unrequested`: a lost race means another invocation may have asked RDS meanwhile, so
    /// re-read and re-fence). `None` = re-read.
    async fn abort_unrequested(
        &mut self,
        state: SiteState,
        abort: Abort,
        mut guards: Vec<GuardCheck>,
    ) -> Result<Option<PromoterOutcome>, PromoterError> {
        guards.push(abort.guard.clone());
        let (next, event) = match promote::aborted(self.site, &state, &abort, guards, self.now()) {
            Ok(x) => x,
            Err(e) => {
                return Ok(Some(PromoterOutcome::Fenced {
                    reason: FenceReason::WrongPhase,
                    detail: e.to_string(),
                }))
            }
        };
        match self.deps.ledger.commit(&next).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::Conflict => return Ok(None),
            Err(e) => return Err(self.port(e)),
        }
        warn!(site = %self.site.id, epoch = state.epoch, reason = abort.reason.as_str(), detail = %abort.detail, "failover aborted before asking RDS");
        self.verdict = Some(event.verdict);
        self.flush(next).await?;
        Ok(Some(PromoterOutcome::Aborted {
            reason: abort.reason,
            detail: abort.detail,
        }))
    }

    /// Reads what the pre-checks judge. Errors reading the candidate or its topology are returned
    /// (retryable ones are retried); a lag that cannot be read is `None` (the last good lag is used).
    /// The candidate's executed position just before promotion is requested, for the divergence
    /// report: with GTIDs off, promotion resets the source coordinates this reads. Best effort
    /// (bounded by the canary's timeouts): it never holds the promotion back.
    async fn position_before_promotion(
        &self,
        endpoint: &str,
    ) -> Option<failover_policy::gtid::Position> {
        match self.deps.writability.position(self.site, endpoint).await {
            Ok(p) => p,
            Err(e) => {
                warn!(site = %self.site.id, error = %e, "could not read the candidate's position before promotion");
                None
            }
        }
    }

    /// Reads what the pre-checks judge, and (read replicas) the candidate's SQL endpoint.
    async fn read_preflight(
        &self,
        candidate: &DbRef,
    ) -> Result<(Preflight, Option<String>), PortError> {
        let topo = &self.deps.topology;
        let site = self.site;
        let lag = |metric| async move {
            let raw = self
                .deps
                .metrics
                .replica_lag(candidate, metric, self.now())
                .await
                .ok()
                .flatten();
            CandidateEvidence::lag_fields(raw)
        };
        let status = |s: &str| DbObservation::status(s);
        let not_read = || DbObservation::Unreadable {
            error: "not needed for this engine".into(),
        };
        let mut endpoint = None;
        let pre = match &site.engine {
            Engine::RdsReplica => {
                let i = topo.instance(candidate).await?;
                endpoint = i
                    .as_ref()
                    .and_then(|i| i.endpoint.as_ref())
                    .map(|(h, p)| format!("{h}:{p}"));
                let rds_lag = lag(LagMetric::RdsReplicaLag).await;
                Preflight {
                    candidate: i
                        .as_ref()
                        .map_or(DbObservation::NotFound, |i| status(&i.status)),
                    replicates_from_primary: i
                        .as_ref()
                        .and_then(|i| i.replication_source.as_deref())
                        .is_some_and(|s| source_names(s, &site.primary)),
                    lag_now: rds_lag.0,
                    lag_now_at: rds_lag.1,
                    primary: not_read(),
                    target_arn: None,
                }
            }
            Engine::MultiAz => {
                let i = topo.instance(candidate).await?;
                Preflight {
                    candidate: i
                        .as_ref()
                        .map_or(DbObservation::NotFound, |i| status(&i.status)),
                    replicates_from_primary: i.as_ref().is_some_and(|i| i.multi_az),
                    lag_now: None,
                    lag_now_at: None,
                    primary: not_read(),
                    target_arn: None,
                }
            }
            Engine::AuroraCluster { cluster_id } => {
                let i = topo.instance(candidate).await?;
                let c = topo.cluster(cluster_id, &candidate.region).await?;
                let aurora_lag = lag(LagMetric::AuroraReplicaLag).await;
                Preflight {
                    candidate: i
                        .as_ref()
                        .map_or(DbObservation::NotFound, |i| status(&i.status)),
                    replicates_from_primary: c.as_ref().is_some_and(|c| {
                        c.members
                            .iter()
                            .any(|m| m.instance_id == candidate.id && !m.is_writer)
                    }),
                    lag_now: aurora_lag.0,
                    lag_now_at: aurora_lag.1,
                    primary: not_read(),
                    target_arn: None,
                }
            }
            Engine::AuroraGlobal { global_cluster_id } => {
                let c = topo.cluster(&candidate.id, &candidate.region).await?;
                let g = topo
                    .global_cluster(global_cluster_id, &candidate.region)
                    .await?;
                let known = c.as_ref().and_then(|c| c.arn.as_deref());
                let target = g.as_ref().and_then(|g| {
                    g.members
                        .iter()
                        .find(|m| promote::global_member_is(&m.cluster_arn, candidate, known))
                });
                let primary_writes = g.as_ref().is_some_and(|g| {
                    g.members.iter().any(|m| {
                        m.is_writer
                            && promote::global_member_is(&m.cluster_arn, &site.primary, None)
                    })
                });
                let global_lag = lag(LagMetric::AuroraGlobalLag).await;
                let primary = match topo.cluster(&site.primary.id, &site.primary.region).await {
                    Ok(Some(p)) => status(&p.status),
                    Ok(None) => DbObservation::NotFound,
                    Err(e) => DbObservation::Unreadable {
                        error: e.to_string(),
                    },
                };
                Preflight {
                    candidate: c
                        .as_ref()
                        .map_or(DbObservation::NotFound, |c| status(&c.status)),
                    replicates_from_primary: target.is_some_and(|m| !m.is_writer) && primary_writes,
                    lag_now: global_lag.0,
                    lag_now_at: global_lag.1,
                    primary,
                    target_arn: target
                        .map(|m| m.cluster_arn.clone())
                        .or_else(|| known.map(str::to_owned)),
                }
            }
        };
        Ok((pre, endpoint))
    }

    /// One snapshot of the promotion target, per engine kind.
    async fn observe(&self, candidate: &DbRef) -> Result<Snapshot, PortError> {
        let topo = &self.deps.topology;
        let endpoint_of = |i: &failover_adapters::ports::InstanceInfo| {
            i.endpoint.as_ref().map(|(h, p)| format!("{h}:{p}"))
        };
        Ok(match &self.site.engine {
            Engine::RdsReplica | Engine::MultiAz => match topo.instance(candidate).await? {
                None => Snapshot {
                    observed: Observed::Missing,
                    endpoint: None,
                    writer_endpoint: None,
                },
                Some(i) => Snapshot {
                    endpoint: endpoint_of(&i),
                    writer_endpoint: None,
                    observed: Observed::Instance {
                        status: i.status,
                        replication_source: i.replication_source,
                    },
                },
            },
            Engine::AuroraCluster { cluster_id } => {
                let c = topo.cluster(cluster_id, &candidate.region).await?;
                let i = topo.instance(candidate).await?;
                match (c, i) {
                    (Some(c), i) => Snapshot {
                        endpoint: i.as_ref().and_then(endpoint_of),
                        writer_endpoint: cluster_endpoint(&c),
                        observed: Observed::Cluster {
                            writer: c
                                .members
                                .iter()
                                .find(|m| m.is_writer)
                                .map(|m| m.instance_id.clone()),
                            status: c.status,
                            target_status: i.map(|i| i.status),
                        },
                    },
                    (None, _) => Snapshot {
                        observed: Observed::Missing,
                        endpoint: None,
                        writer_endpoint: None,
                    },
                }
            }
            Engine::AuroraGlobal { global_cluster_id } => {
                let Some(g) = topo
                    .global_cluster(global_cluster_id, &candidate.region)
                    .await?
                else {
                    return Ok(Snapshot {
                        observed: Observed::Missing,
                        endpoint: None,
                        writer_endpoint: None,
                    });
                };
                let c = topo.cluster(&candidate.id, &candidate.region).await?;
                let known = c.as_ref().and_then(|c| c.arn.as_deref());
                let target_is_writer = g.members.iter().any(|m| {
                    m.is_writer && promote::global_member_is(&m.cluster_arn, candidate, known)
                });
                // The new primary cluster's writer instance is what applications will write to.
                let mut endpoint = None;
                if let Some(w) = c
                    .as_ref()
                    .filter(|_| target_is_writer)
                    .and_then(|c| c.members.iter().find(|m| m.is_writer))
                {
                    let writer = DbRef {
                        id: w.instance_id.clone(),
                        region: candidate.region.clone(),
                    };
                    endpoint = topo.instance(&writer).await?.as_ref().and_then(endpoint_of);
                }
                Snapshot {
                    observed: Observed::Global {
                        status: g.status,
                        target_is_writer,
                    },
                    endpoint,
                    // The promoted secondary cluster's own writer endpoint.
                    writer_endpoint: c
                        .as_ref()
                        .filter(|_| target_is_writer)
                        .and_then(cluster_endpoint),
                }
            }
        })
    }

    /// Polls the topology (gaps proportional to the wait so far: [`pace::wait_poll_delay`]) until
    /// the promotion is done and the new primary accepts writes, it fails, its deadline passes, or
    /// this invocation's time runs low.
    async fn watch(
        &mut self,
        state: SiteState,
        candidate: &DbRef,
        mut guards: Vec<GuardCheck>,
        mut newly_seen: Option<String>,
    ) -> Result<PromoterOutcome, PromoterError> {
        let engine = &self.site.engine;
        let record = state
            .promotion
            .clone()
            .expect("watch is only entered with this epoch's promotion recorded");
        let give_up_at = record.requested_at + promote::promotion_deadline(engine);
        let mut seen = newly_seen.is_some() || promote::transition_seen(&state);
        // Polls in a row that failed (throttled, unavailable): they back off (pace.rs).
        let mut errors = 0u32;
        // Every poll says what is still missing; the last one names the failure at the deadline.
        let mut blocked: Blocked;
        let mut last: String;
        loop {
            self.polls += 1;
            let observed = self.observe(candidate).await;
            if observed.is_ok() {
                errors = 0;
            }
            match observed {
                Ok(snap) => match promote::judge(engine, candidate, &snap.observed, seen) {
                    Progress::Done => match snap.endpoint {
                        None => {
                            blocked = Blocked::Topology;
                            last = format!("{candidate} is the writer but reports no endpoint yet");
                        }
                        Some(endpoint) => {
                            match self.deps.writability.check(self.site, &endpoint).await {
                                Ok(w) if w.is_writable() => {
                                    guards.push(GuardCheck::new(
                                        Guard::Candidate,
                                        GuardResult::Pass,
                                        format!("{endpoint} accepts writes: @@read_only = 0, @@innodb_read_only = 0"),
                                    ));
                                    let target =
                                        snap.writer_endpoint.as_deref().unwrap_or(&endpoint);
                                    return self
                                        .finish(state, &record.action, candidate, target, guards)
                                        .await;
                                }
                                Ok(w) => {
                                    blocked = Blocked::ReadOnly;
                                    last = format!(
                                        "{endpoint} does not accept writes yet: @@read_only = {}, @@innodb_read_only = {}",
                                        u8::from(w.read_only),
                                        u8::from(w.innodb_read_only)
                                    );
                                }
                                Err(e)
                                    if matches!(
                                        e.kind,
                                        ErrorKind::NotFound | ErrorKind::AccessDenied
                                    ) =>
                                {
                                    let detail = format!(
                                        "cannot verify that {endpoint} accepts writes: {e}"
                                    );
                                    guards.push(GuardCheck::new(
                                        Guard::Candidate,
                                        GuardResult::Unknown,
                                        detail.clone(),
                                    ));
                                    return self
                                        .fail(
                                            state,
                                            FailureReason::WritabilityUnverifiable,
                                            &detail,
                                            guards,
                                        )
                                        .await;
                                }
                                Err(e) => {
                                    blocked = Blocked::CheckFailed;
                                    last = format!("write check of {endpoint} failed: {e}");
                                }
                            }
                        }
                    },
                    Progress::Waiting {
                        detail,
                        transitional,
                    } => {
                        if transitional && !seen {
                            seen = true;
                            newly_seen = Some(detail.clone());
                        }
                        blocked = Blocked::Topology;
                        last = detail;
                    }
                    Progress::Failed { reason, detail } => {
                        guards.push(GuardCheck::new(
                            Guard::Candidate,
                            GuardResult::Fail,
                            detail.clone(),
                        ));
                        return self.fail(state, reason, &detail, guards).await;
                    }
                },
                Err(e) if e.kind.is_retryable() => {
                    errors += 1;
                    blocked = Blocked::Topology;
                    last = format!("topology unreadable: {e}");
                }
                Err(e) => {
                    let detail = format!("cannot watch the promotion: {e}");
                    return self
                        .fail(state, FailureReason::TopologyUnreadable, &detail, guards)
                        .await;
                }
            }
            if self.now() > give_up_at {
                let reason = match blocked {
                    Blocked::Topology => FailureReason::PromotionTimedOut,
                    Blocked::ReadOnly => FailureReason::NotWritable,
                    Blocked::CheckFailed => FailureReason::WritabilityUnverifiable,
                };
                let detail = format!(
                    "{} requested at {} not finished within {} min: {last}",
                    record.action,
                    record.requested_at.to_rfc3339(),
                    promote::promotion_deadline(engine).num_minutes()
                );
                guards.push(GuardCheck::new(
                    Guard::Candidate,
                    GuardResult::Fail,
                    detail.clone(),
                ));
                return self.fail(state, reason, &detail, guards).await;
            }
            // The next look is proportional to how long RDS has been at it (pace.rs): a
            // promotion finishing now is seen within a twelfth of its duration, not up to half.
            let waited = (self.now() - record.requested_at)
                .to_std()
                .unwrap_or_default();
            let d = pace::after_error_delay(waited, errors, self.deps.pacer.jitter());
            if !self.has_time_for(d) {
                return self
                    .hand_on(state, &last, newly_seen.as_deref(), guards)
                    .await;
            }
            self.deps.pacer.sleep(d).await;
        }
    }

    /// Commits `f(state)` by compare-and-set; a lost race re-reads, re-fences and re-applies.
    async fn commit_with(
        &mut self,
        mut state: SiteState,
        mut f: impl FnMut(&SiteState) -> Result<SiteState, failover_policy::TransitionError>,
    ) -> Result<Commit, PromoterError> {
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            let next = match f(&state) {
                Ok(n) => n,
                Err(e) => {
                    return Ok(Commit::Stopped(PromoterOutcome::Fenced {
                        reason: FenceReason::WrongPhase,
                        detail: e.to_string(),
                    }))
                }
            };
            match self.deps.ledger.commit(&next).await {
                Ok(()) => {
                    self.flush(next).await?;
                    return Ok(Commit::Written);
                }
                Err(e) if e.kind == ErrorKind::Conflict => {
                    state = self.load().await?;
                    match promote::admit(Some(self.site), &self.event, &state) {
                        Ok(Admission::Proceed { .. }) => continue,
                        Ok(Admission::AlreadyPromoted) => {
                            return Ok(Commit::Stopped(PromoterOutcome::AlreadyPromoted))
                        }
                        Err(f) => return Ok(Commit::Stopped(fenced_outcome(f))),
                    }
                }
                Err(e) => return Err(self.port(e)),
            }
        }
        Err(PromoterError::Contention {
            site: self.site.id.clone(),
        })
    }

    async fn finish(
        &mut self,
        state: SiteState,
        action: &str,
        candidate: &DbRef,
        endpoint: &str,
        guards: Vec<GuardCheck>,
    ) -> Result<PromoterOutcome, PromoterError> {
        let (site, now) = (self.site, self.now());
        // The promoted server's executed position, for the divergence report: read before DNS
        // moves (few clients write to it yet). Best effort: it never holds the promotion back.
        let position = match self.deps.writability.position(site, endpoint).await {
            Ok(p) => p,
            Err(e) => {
                warn!(site = %site.id, error = %e, "could not read the promoted replica's position");
                None
            }
        };
        let mut verdict = None;
        let committed = self
            .commit_with(state, |s| {
                promote::promoted(site, s, endpoint, guards.clone(), now).map(|(mut n, e)| {
                    verdict = Some(e.verdict);
                    failover_policy::fence::note_promoted_position(&mut n, position.clone());
                    n
                })
            })
            .await;
        self.verdict = verdict;
        Ok(match committed? {
            Commit::Written => PromoterOutcome::Promoted {
                candidate: candidate.clone(),
                action: action.to_owned(),
                endpoint: endpoint.to_owned(),
            },
            Commit::Stopped(o) => o,
        })
    }

    async fn fail(
        &mut self,
        state: SiteState,
        reason: FailureReason,
        detail: &str,
        guards: Vec<GuardCheck>,
    ) -> Result<PromoterOutcome, PromoterError> {
        warn!(site = %self.site.id, epoch = state.epoch, reason = reason.as_str(), detail, "promotion failed");
        let (site, now) = (self.site, self.now());
        let mut verdict = None;
        let committed = self
            .commit_with(state, |s| {
                promote::failed(site, s, reason, detail, guards.clone(), now).map(|(n, e)| {
                    verdict = Some(e.verdict);
                    n
                })
            })
            .await;
        self.verdict = verdict;
        Ok(match committed? {
            Commit::Written => PromoterOutcome::Failed {
                reason,
                detail: detail.to_owned(),
            },
            Commit::Stopped(o) => o,
        })
    }

    /// Fails the epoch for what the pre-checks saw, on the very state they were judged against.
    /// Unlike `fail`, a lost race is not re-applied to the newer state: a concurrent invocation
    /// may have recorded and sent the promotion meanwhile (the candidate then reads `rebooting`,
    /// `modifying`, or no longer a replica, because *it is being promoted*), so the pre-checks'
    /// verdict is void. `None` = re-read and re-fence (`run` then watches that promotion).
    async fn fail_unrequested(
        &mut self,
        state: SiteState,
        reason: FailureReason,
        detail: &str,
        guards: Vec<GuardCheck>,
    ) -> Result<Option<PromoterOutcome>, PromoterError> {
        let (next, event) =
            match promote::failed(self.site, &state, reason, detail, guards, self.now()) {
                Ok(x) => x,
                Err(e) => {
                    return Ok(Some(PromoterOutcome::Fenced {
                        reason: FenceReason::WrongPhase,
                        detail: e.to_string(),
                    }))
                }
            };
        match self.deps.ledger.commit(&next).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::Conflict => {
                info!(site = %self.site.id, reason = reason.as_str(), "pre-checks failed on a state that changed meanwhile; re-reading");
                return Ok(None);
            }
            Err(e) => return Err(self.port(e)),
        }
        warn!(site = %self.site.id, epoch = state.epoch, reason = reason.as_str(), detail, "promotion failed before it was requested");
        self.verdict = Some(event.verdict);
        self.flush(next).await?;
        Ok(Some(PromoterOutcome::Failed {
            reason,
            detail: detail.to_owned(),
        }))
    }

    /// Out of time: hand the watch to the next invocation.
    async fn hand_on(
        &mut self,
        state: SiteState,
        detail: &str,
        seen: Option<&str>,
        guards: Vec<GuardCheck>,
    ) -> Result<PromoterOutcome, PromoterError> {
        let (site, now) = (self.site, self.now());
        let mut verdict = None;
        let committed = self
            .commit_with(state, |s| {
                let (n, e) = promote::continued(site, s, detail, seen, guards.clone(), now);
                verdict = Some(e.verdict);
                Ok(n)
            })
            .await;
        self.verdict = verdict;
        Ok(match committed? {
            Commit::Written => PromoterOutcome::Continued {
                detail: detail.to_owned(),
            },
            Commit::Stopped(o) => o,
        })
    }
}

#[cfg(test)]
mod tests;
