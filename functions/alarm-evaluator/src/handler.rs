//! The evaluator's handler: parse → route → gather evidence → decide → commit → emit.
//!
//! The handler owns only the I/O choreography; every judgement is the policy crate's. The order is
//! what makes it safe under at-least-once delivery:
//! - nothing is read from AWS for input the router rejects (malformed, foreign, forged, stale);
//! - the ledger record is written with compare-and-set *before* any event is emitted, and the
//!   events ride in the record's outbox until the bus confirms them, so a crash between the two
//!   re-emits on the next invocation instead of losing a `FailoverDecided`;
//! - a lost race re-reads the record and decides again, so two concurrent deliveries of the same
//!   alarm produce one decision.
//!
//! Sites are evaluated concurrently, at most [`Fanout::concurrency`] at once, each inside its own
//! [`Fanout::site_budget`]: every site's record is its own (compare-and-set per site), so one
//! site's failure or slowness is that site's verdict — logged with the site, and the invocation's
//! error once every other site has been evaluated (so Lambda's retry and the DLQ alarm still
//! reach a human) — and never stops or delays another site past its budget.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use futures::stream::{self, StreamExt};
use futures::FutureExt;

use chrono::{DateTime, Utc};
use failover_adapters::gather::{gather, Ports};
use failover_adapters::ports::{
    Canary, Clock, DatabaseTopology, ErrorKind, EventBus, Ledger, MetricLines, Metrics, PortError,
};
pub use failover_adapters::settings::Fanout;
use failover_policy::evidence::Evidence;
use failover_policy::topology::{effective, Topology};
use failover_policy::whatif::Observation;
use failover_policy::{
    decide, needs_evidence, parse_signal, route, Config, Routing, Signal, SignalError, SignalKind,
    SiteConfig, SiteState, Verdict,
};
use lambda_runtime::Diagnostic;
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

/// Everything the handler talks to, built once at cold start (and rebuilt, cheaply, with a new
/// configuration when one is taken from the store: `failover_adapters::config_store::Hot`).
#[derive(Clone)]
pub struct Deps {
    pub cfg: Config,
    /// The configuration object's S3 `VersionId`, when it came from S3 (recorded with each decision).
    pub cfg_object_version: Option<String>,
    pub topology: Arc<dyn DatabaseTopology>,
    pub metrics: Arc<dyn Metrics>,
    pub ledger: Arc<dyn Ledger>,
    pub bus: Arc<dyn EventBus>,
    pub canary: Arc<dyn Canary>,
    pub clock: Arc<dyn Clock>,
    /// How many sites are evaluated at once, and each one's time budget.
    pub fanout: Fanout,
    /// The RDS side of the old primary's fence (parameter group, snapshot, stop).
    pub fence: Arc<dyn failover_adapters::fence::FenceControl>,
    /// The SQL side: the old primary's own `read_only`, its sessions, its position.
    pub old_primary: Arc<dyn failover_adapters::fence::OldPrimarySql>,
    /// The re-check at the end of a sustained window (SQS with a delay; `TickOnly` without one).
    pub rechecks: Arc<dyn failover_adapters::recheck::Rechecks>,
    /// Where each tick's Embedded Metric Format lines go (stdout on Lambda).
    pub metric_lines: Arc<dyn MetricLines>,
}

/// How many times a lost compare-and-set is retried with a fresh read before giving up.
const MAX_COMMIT_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum EvaluatorError {
    #[error("bad input: {0}")]
    BadInput(#[from] SignalError),
    #[error("site {site}: {source}")]
    Port { site: String, source: PortError },
    #[error(
        "site {site}: ledger contention: lost {MAX_COMMIT_ATTEMPTS} compare-and-set races in a row"
    )]
    Contention { site: String },
    #[error("site {site}: not evaluated within its {budget:?} budget")]
    Timeout {
        site: String,
        budget: std::time::Duration,
    },
    /// The site's evaluation panicked (a bug): that site's verdict, never the other sites'.
    #[error("site {site}: evaluation panicked: {message}")]
    Panicked { site: String, message: String },
    /// More than one site failed; every other site was evaluated. Listed in configuration order.
    #[error("{} of {total} sites failed: {}", .failed.len(), .failed.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Sites {
        failed: Vec<EvaluatorError>,
        total: usize,
    },
}

impl EvaluatorError {
    fn error_type(&self) -> String {
        match self {
            // Retrying a malformed event cannot help: the DLQ is where it belongs.
            EvaluatorError::BadInput(_) => "BadInput".into(),
            EvaluatorError::Port { source, .. } if source.kind.is_retryable() => {
                format!("Retryable.{:?}", source.kind)
            }
            EvaluatorError::Port { source, .. } => format!("Fatal.{:?}", source.kind),
            EvaluatorError::Contention { .. } => "Retryable.Contention".into(),
            EvaluatorError::Timeout { .. } => "Retryable.Timeout".into(),
            EvaluatorError::Panicked { .. } => "Fatal.Panic".into(),
            // Retried if retrying can help any of them (the others' re-evaluation is idempotent).
            EvaluatorError::Sites { failed, .. } => {
                let types: Vec<String> = failed.iter().map(|e| e.error_type()).collect();
                types
                    .iter()
                    .find(|t| t.starts_with("Retryable."))
                    .or(types.first())
                    .cloned()
                    .unwrap_or_else(|| "Fatal.Other".into())
            }
        }
    }
}

impl From<EvaluatorError> for Diagnostic {
    fn from(e: EvaluatorError) -> Self {
        Diagnostic {
            error_type: e.error_type(),
            error_message: e.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SignalSummary {
    pub id: String,
    pub kind: &'static str,
    pub delivery: failover_policy::signal::Delivery,
    pub source: String,
}

/// What `cargo lambda invoke` prints: the verdict for each site, with its reasons.
#[derive(Debug, Serialize)]
pub struct Response {
    pub signal: SignalSummary,
    pub verdicts: Vec<Verdict>,
    /// Domain events published by this invocation (detail-types), including re-emitted outbox items.
    pub emitted: Vec<String>,
    /// For a `status` command only: what the evaluator saw for each site just now (the live
    /// votes, each candidate's lag), so `rds-failover status` shows evidence, not the record alone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<SiteEvidence>,
}

/// One site's live evidence, as a `status` command gathered it.
#[derive(Debug, Serialize)]
pub struct SiteEvidence {
    pub site: String,
    pub evidence: Evidence,
    pub tally: failover_policy::evidence::Tally,
    pub quorum: u32,
    pub max_lag_secs: u64,
}

fn summary(s: &Signal) -> SignalSummary {
    let kind = match s.kind {
        SignalKind::Alarm(_) => "alarm",
        SignalKind::Rds(_) => "rds-event",
        SignalKind::Tick => "tick",
        SignalKind::Recheck(_) => "recheck",
        SignalKind::Operator(_) => "operator-command",
    };
    SignalSummary {
        id: s.id.clone(),
        kind,
        delivery: s.delivery,
        source: s.source.clone(),
    }
}

pub async fn handle(deps: &Deps, payload: Value) -> Result<Response, EvaluatorError> {
    let now = deps.clock.now();
    let signal = parse_signal(&payload).inspect_err(|e| warn!(error = %e, "rejected input"))?;
    let mut resp = Response {
        signal: summary(&signal),
        verdicts: vec![],
        emitted: vec![],
        evidence: vec![],
    };
    let is_status = matches!(
        &signal.kind,
        SignalKind::Operator(c) if c.command == failover_policy::signal::OperatorAction::Status
    );
    match route(&deps.cfg, &signal, now) {
        Routing::Ignore(v) => {
            info!(signal_id = %signal.id, outcome = v.outcome.name(), summary = %v.summary, "ignored before any AWS call");
            resp.verdicts.push(v);
        }
        Routing::Sites(ids) => {
            let total = ids.len();
            let mut failed = vec![];
            let tick = matches!(signal.kind, SignalKind::Tick);
            // Sites the configuration no longer names are listed while the others are judged.
            let (results, dropped) = tokio::join!(evaluate_sites(deps, ids, &signal, now), async {
                if tick {
                    watch_dropped_sites(deps, now).await
                } else {
                    vec![]
                }
            });
            let mut known = std::collections::HashMap::new();
            for (id, result, latency) in results {
                if tick {
                    site_metrics(deps, &id, result.as_ref().ok(), latency, now);
                }
                match result {
                    Ok(Evaluated {
                        verdict,
                        emitted,
                        evidence: seen,
                        state,
                    }) => {
                        if let Some(st) = state {
                            known.insert(id.clone(), st);
                        }
                        if let (true, Some(evidence), Some(site)) =
                            (is_status, seen, deps.cfg.site(&id))
                        {
                            resp.evidence.push(SiteEvidence {
                                site: id.clone(),
                                tally: evidence.tally(),
                                quorum: site.thresholds.quorum,
                                max_lag_secs: site.thresholds.max_lag_secs,
                                evidence,
                            });
                        }
                        info!(
                            site = %id,
                            epoch = verdict.epoch,
                            phase = %verdict.phase,
                            outcome = verdict.outcome.name(),
                            signal_id = %signal.id,
                            summary = %verdict.summary,
                            "verdict"
                        );
                        resp.verdicts.push(verdict);
                        resp.emitted.extend(emitted);
                    }
                    Err(e) => {
                        error!(site = %id, signal_id = %signal.id, error = %e, error_type = %e.error_type(), "site not evaluated");
                        failed.push(e);
                    }
                }
            }
            if tick {
                // The old primaries: fence, watch, measure, and switchovers and re-protections,
                // once every site is judged (a fence step's time never delays a decision).
                resp.emitted.extend(fence_steps(deps, now, &known).await);
                resp.emitted.extend(dropped);
                let beat = failover_policy::selfwatch::heartbeat_document(now, total, failed.len());
                write_metrics(deps, &beat);
            }
            match failed.len() {
                0 => {}
                1 => return Err(failed.remove(0)),
                _ => return Err(EvaluatorError::Sites { failed, total }),
            }
        }
    }
    Ok(resp)
}

/// A tick's metric line for one site: what its evaluation left (`None`: it failed), printed
/// as EMF. A document the formatter refuses is logged, never printed half-valid.
fn site_metrics(
    deps: &Deps,
    id: &str,
    evaluated: Option<&Evaluated>,
    latency: Duration,
    now: DateTime<Utc>,
) {
    let Some(site) = deps.cfg.site(id) else {
        return;
    };
    let doc = failover_policy::selfwatch::site_document(&failover_policy::selfwatch::SiteTick {
        site,
        state: evaluated.and_then(|e| e.state.as_ref().map(|(st, _)| st)),
        evidence: evaluated.and_then(|e| e.evidence.as_ref()),
        latency: evaluated.map(|_| latency),
        now,
    });
    write_metrics(deps, &doc);
}

fn write_metrics(deps: &Deps, doc: &failover_policy::emf::Document) {
    match doc.to_line() {
        Ok(line) => deps.metric_lines.write_line(&line),
        Err(e) => warn!(error = %e, "metric line not written"),
    }
}

/// One site's evaluation: its verdict, the events it emitted, the evidence it judged on, and the
/// record as the evaluation left it (`None` when a lost race or a failed write leaves it unknown).
struct Evaluated {
    verdict: Verdict,
    emitted: Vec<String>,
    evidence: Option<Evidence>,
    /// The record and when it was read or written.
    state: Option<(SiteState, Instant)>,
}

/// How old a record the evaluation left may be for the fence step to judge "quiet" on it without
/// reading it again: a promotion completed in between must not wait a tick for its fence.
const KNOWN_STATE_FRESH: Duration = Duration::from_secs(2);

/// Every configured site's fence step, at most `deps.fanout.concurrency` at once.
async fn fence_steps(
    deps: &Deps,
    now: DateTime<Utc>,
    known: &std::collections::HashMap<String, (SiteState, Instant)>,
) -> Vec<String> {
    let sites: Vec<(SiteConfig, Option<SiteState>)> = deps
        .cfg
        .sites
        .iter()
        .map(|site| {
            let fresh = known
                .get(&site.id)
                .filter(|(_, at)| at.elapsed() < KNOWN_STATE_FRESH)
                .map(|(st, _)| st.clone());
            (site.clone(), fresh)
        })
        .collect();
    let steps: Vec<Vec<String>> = stream::iter(sites)
        .map(|(site, fresh)| async move { fence_step(deps, &site, now, fresh.as_ref()).await })
        .buffer_unordered(deps.fanout.concurrency.max(1))
        .collect()
        .await;
    steps.into_iter().flatten().collect()
}

type SiteResult = Result<Evaluated, EvaluatorError>;

/// A tick's second step for one site: the old primary's fence, watch and measurement, a
/// switchover's and a re-protection's next steps, within the site budget (a dark old region's
/// calls must not add up across sites). A step cut off by its budget recorded nothing and is
/// retried at the next tick. `known`: the record as the evaluation just left it (seconds ago) — a
/// site it shows with nothing to fence or drive (most sites, on most ticks) costs no further call.
async fn fence_step(
    deps: &Deps,
    site: &SiteConfig,
    now: DateTime<Utc>,
    known: Option<&SiteState>,
) -> Vec<String> {
    let budget = deps.fanout.site_budget;
    let step = async {
        let quiet = match known {
            Some(st) => quiet(site, st),
            None => deps
                .ledger
                .load(&site.id)
                .await
                .is_ok_and(|st| quiet(site, &st)),
        };
        if quiet {
            return vec![];
        }
        // A switchover records its fence's start before the fence's first call, and goes on from
        // what the fence observed. Each step re-reads what it acts on.
        let mut out = crate::switchover::drive_site(deps, site).await;
        out.extend(crate::fence::reconcile_site(deps, site, now).await);
        out.extend(crate::switchover::drive_site(deps, site).await);
        out.extend(crate::reprotect::drive_site(deps, site).await);
        out
    };
    match tokio::time::timeout(budget, std::panic::AssertUnwindSafe(step).catch_unwind()).await {
        Ok(Ok(out)) => out,
        Ok(Err(panic)) => {
            let message = panic_message(panic.as_ref());
            error!(site = %site.id, %message, "fence step panicked; the other sites' steps go on");
            vec![format!("site {}: fence step panicked: {message}", site.id)]
        }
        Err(_) => {
            warn!(site = %site.id, budget_secs = budget.as_secs(), "fence step cut off by the site budget; retried next tick");
            vec![]
        }
    }
}

/// A panic payload's text (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".into())
}

/// Whether the record shows no fence of its current epoch to work and no switchover to drive.
fn quiet(site: &SiteConfig, st: &SiteState) -> bool {
    failover_policy::fence::active(st).is_none()
        && failover_policy::switchover::drive::driven(site, st).is_none()
        && failover_policy::reprotect::in_flight(st).is_none()
}

/// Every routed site, at most `deps.fanout.concurrency` at once, each within its own budget;
/// the results come back in the router's (configuration) order, each with how long after the
/// start of the evaluation its verdict came (the decision latency, queueing included).
async fn evaluate_sites(
    deps: &Deps,
    ids: Vec<String>,
    signal: &Signal,
    now: DateTime<Utc>,
) -> Vec<(String, SiteResult, Duration)> {
    let budget = deps.fanout.site_budget;
    let started = Instant::now();
    let mut results: Vec<(usize, String, SiteResult, Duration)> =
        stream::iter(ids.into_iter().enumerate())
            .map(|(i, id)| async move {
                let site = deps.cfg.site(&id).expect("router returns configured sites");
                // A panic in one site's evaluation (a bug) is that site's failure: the sites share
                // one task, so without this it would unwind through every other site's verdict.
                let guarded = std::panic::AssertUnwindSafe(evaluate_site(deps, site, signal, now))
                    .catch_unwind();
                let result = match tokio::time::timeout(budget, guarded).await {
                    Err(_) => Err(EvaluatorError::Timeout {
                        site: id.clone(),
                        budget,
                    }),
                    Ok(Err(panic)) => Err(EvaluatorError::Panicked {
                        site: id.clone(),
                        message: panic_message(panic.as_ref()),
                    }),
                    Ok(Ok(r)) => r,
                };
                (i, id, result, started.elapsed())
            })
            .buffer_unordered(deps.fanout.concurrency.max(1))
            .collect()
            .await;
    results.sort_by_key(|(i, _, _, _)| *i);
    results
        .into_iter()
        .map(|(_, id, r, l)| (id, r, l))
        .collect()
}

/// The tick also finds epochs in flight for sites the configuration no longer names (nothing
/// else would ever look at them) and pages once for each. A failure here is logged, never
/// allowed to stop the tick's real work.
async fn watch_dropped_sites(deps: &Deps, now: DateTime<Utc>) -> Vec<String> {
    let records = match deps.ledger.in_flight().await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "could not list the ledger's in-flight epochs");
            return vec![];
        }
    };
    let mut emitted = vec![];
    for st in records {
        let Some(next) = failover_policy::deadline::orphaned(&deps.cfg, &st, now) else {
            continue;
        };
        warn!(site = %st.site, epoch = st.epoch, phase = %st.phase, "in-flight epoch of a site the configuration no longer names");
        match deps.ledger.commit(&next).await {
            Ok(()) => {
                if let Err(e) = flush_outbox(deps, next, &mut emitted).await {
                    warn!(site = %st.site, error = %e, "page left in the outbox");
                }
            }
            Err(e) => warn!(site = %st.site, error = %e, "could not record the page"),
        }
    }
    emitted
}

/// One site, start to end: load its record, flush its outbox, gather evidence, decide, commit,
/// emit. Self-contained: it touches only this site's record, so sites run concurrently.
async fn evaluate_site(
    deps: &Deps,
    site: &SiteConfig,
    signal: &Signal,
    now: DateTime<Utc>,
) -> SiteResult {
    let port_err = |source: PortError| EvaluatorError::Port {
        site: site.id.clone(),
        source,
    };
    let ports = Ports {
        topology: deps.topology.as_ref(),
        metrics: deps.metrics.as_ref(),
        canary: deps.canary.as_ref(),
    };
    // Evidence is gathered for the topology the ledger owns (after a completed failover its
    // primary is the pinned writer, not the configured one); a record that changed topology
    // between the gathering and the decision is gathered for again.
    let mut gathered: Option<(Option<Topology>, Option<Evidence>)> = None;
    let mut emitted = vec![];
    for attempt in 1..=MAX_COMMIT_ATTEMPTS {
        let state = deps.ledger.load(&site.id).await.map_err(port_err)?;
        let loaded = Instant::now();
        let state = match flush_outbox(deps, state, &mut emitted).await {
            Ok(s) => s,
            Err(e) if e.kind == ErrorKind::Conflict => continue,
            Err(e) => return Err(port_err(e)),
        };
        if gathered.as_ref().is_none_or(|(t, _)| *t != state.topology) {
            let ev = if needs_evidence(signal) {
                let live = effective(site, &state);
                let mut ev = gather(&live, &deps.cfg.region, &ports, now).await;
                ev.primary_gtid = switchover_gtid(deps, &live, signal, &state).await;
                ev.read_only_groups = target_groups(deps, &live, signal, &state).await;
                Some(ev)
            } else {
                None
            };
            gathered = Some((state.topology.clone(), ev));
        }
        let evidence = gathered.as_ref().and_then(|(_, e)| e.as_ref());
        let d = decide(site, signal, evidence, &state, now);
        let seen = evidence.cloned();
        let Some(mut next) = d.next else {
            return Ok(Evaluated {
                verdict: d.verdict,
                emitted,
                evidence: seen,
                state: Some((state, loaded)),
            });
        };
        // What this decision was made on, in the record (and so in its audit item): the audit
        // trail then says which configuration each decision used, and `what-if` can decide it again.
        next.observation = Some(Observation {
            at: now,
            signal: signal.clone(),
            evidence: seen.clone(),
            outcome: d.verdict.outcome.clone(),
            phase: d.verdict.phase,
            summary: d.verdict.summary.clone(),
            config_version: Some(deps.cfg.version()),
            config_object_version: deps.cfg_object_version.clone(),
        });
        match deps.ledger.commit(&next).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::Conflict => {
                warn!(site = %site.id, attempt, "lost a compare-and-set race; re-reading");
                continue;
            }
            Err(e) => return Err(port_err(e)),
        }
        // Committed: the events are in the outbox. Emit and clear; a failure here is retried by
        // the next invocation's flush, never lost.
        let state = match flush_outbox(deps, next, &mut emitted).await {
            Ok(st) => arm_recheck(deps, site, signal, st)
                .await
                .map(|st| (st, Instant::now())),
            Err(e) if e.kind == ErrorKind::Conflict => None,
            Err(e) => return Err(port_err(e)),
        };
        return Ok(Evaluated {
            verdict: d.verdict,
            emitted,
            evidence: seen,
            state,
        });
    }
    Err(EvaluatorError::Contention {
        site: site.id.clone(),
    })
}

/// For a `switchover` command on an RDS read replica site: whether the primary replicates by
/// GTID, read over SQL (its position's shape), so the preconditions can refuse binlog-only sites
/// before anything is fenced. `None` for every other signal, or when it could not be read.
async fn switchover_gtid(
    deps: &Deps,
    site: &SiteConfig,
    signal: &Signal,
    st: &SiteState,
) -> Option<bool> {
    use failover_policy::gtid::Position;
    if !switchover_wanted(site, signal, st) {
        return None;
    }
    let ep = site.canary.as_ref()?.endpoint.clone();
    match deps.old_primary.position(site, &ep).await {
        Ok(Some(Position::MysqlGtid(_) | Position::MariadbGtid(_))) => Some(true),
        Ok(Some(Position::Binlog(_)) | None) => Some(false),
        Err(e) => {
            warn!(site = %site.id, error = %e, "switchover: GTID mode not read");
            None
        }
    }
}

/// Whether this signal may start a switchover of an rds-replica site (a `switchover`, `failback`,
/// `drill` or `approve` command, or the tick of a drill whose way back may be ready): only then
/// is the SQL side and the targets' parameter groups read.
fn switchover_wanted(site: &SiteConfig, signal: &Signal, st: &SiteState) -> bool {
    use failover_policy::drill::DrillPhase as D;
    use failover_policy::signal::OperatorAction as A;
    let wanted = match &signal.kind {
        SignalKind::Operator(cmd) => {
            matches!(
                cmd.command,
                A::Switchover | A::Failback | A::Drill | A::Approve
            )
        }
        // A drill whose way back may be ready: the tick may start its back leg.
        SignalKind::Tick => failover_policy::drill::in_flight(st)
            .is_some_and(|d| matches!(d.phase, D::Back | D::Reprotecting)),
        _ => false,
    };
    wanted && matches!(site.engine, failover_policy::config::Engine::RdsReplica)
}

/// `read_only` as the parameter groups of every would-be switchover target hold it (the live
/// candidates and a `reprotect` replica): an explicit `read_only=1` keeps a promoted replica
/// read-only, so the switchover's preconditions refuse such a target before anything is fenced.
/// A group that cannot be read is left out (logged); the fence's own group checks still apply.
async fn target_groups(
    deps: &Deps,
    site: &SiteConfig,
    signal: &Signal,
    st: &SiteState,
) -> Vec<failover_policy::evidence::GroupReadOnly> {
    if !switchover_wanted(site, signal, st) {
        return vec![];
    }
    let mut targets: Vec<failover_policy::config::DbRef> = site.candidates.clone();
    if let Some(r) = &st.reprotect {
        if !targets.contains(&r.replica) {
            targets.push(r.replica.clone());
        }
    }
    let mut out = vec![];
    for db in targets {
        let groups = match deps.fence.parameter_groups(&db).await {
            Ok(Some(g)) => g,
            Ok(None) => continue,
            Err(e) => {
                warn!(site = %site.id, db = %db, error = %e, "switchover: target's parameter groups not read");
                continue;
            }
        };
        for g in groups {
            match deps.fence.read_only_in_group(&db.region, &g.name).await {
                Ok(v) => out.push(failover_policy::evidence::GroupReadOnly {
                    db: db.id.clone(),
                    group: g.name,
                    read_only: v,
                }),
                Err(e) => {
                    warn!(site = %site.id, group = %g.name, error = %e, "switchover: read_only of a target's group not read")
                }
            }
        }
    }
    out
}

/// How long arming a re-check may take: it is an accelerator, never worth a site's budget.
const RECHECK_SEND_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// Arms the re-check for the end of the sustained window when the committed record `st` has one
/// open (or is crossing one), and records it with a second compare-and-set write. Best effort and
/// after the observation is committed: a slow or failing SQS never delays or loses the
/// observation (the window's start); a lost race or failed send only means the next evaluation
/// arms it (a duplicate message only makes the evaluator look twice), and the tick decides anyway.
/// The delay is counted from now, after the evidence was gathered, not from the invocation's start.
/// Returns the record as it now is in the ledger (with the re-check, once recorded); `None` when
/// recording it failed (a lost race proves a newer record exists).
async fn arm_recheck(
    deps: &Deps,
    site: &SiteConfig,
    signal: &Signal,
    st: SiteState,
) -> Option<SiteState> {
    if !deps.rechecks.enabled() {
        return Some(st);
    }
    let now = deps.clock.now();
    let Some(arm) = failover_policy::recheck::plan(site, signal, &st, now) else {
        return Some(st);
    };
    match tokio::time::timeout(RECHECK_SEND_BUDGET, deps.rechecks.arm(&arm)).await {
        Ok(Ok(())) => {
            info!(site = %site.id, due = %arm.armed.due, delay_secs = arm.delay_secs, "re-check armed for the end of the sustained window");
            let mut armed = st.clone();
            armed.recheck = Some(arm.armed);
            armed.version += 1;
            match deps.ledger.commit(&armed).await {
                Ok(()) => return Some(armed),
                Err(e) => {
                    warn!(site = %site.id, error = %e, "re-check armed but not recorded; the next evaluation may arm another");
                    return None;
                }
            }
        }
        Ok(Err(e)) => {
            warn!(site = %site.id, error = %e, "re-check not armed; the scheduled tick will decide")
        }
        Err(_) => {
            warn!(site = %site.id, budget_secs = RECHECK_SEND_BUDGET.as_secs(), "re-check not armed in time; the scheduled tick will decide")
        }
    }
    Some(st)
}

/// Publishes events left in the record's outbox, then clears it with a compare-and-set write.
pub(crate) async fn flush_outbox(
    deps: &Deps,
    mut state: SiteState,
    emitted: &mut Vec<String>,
) -> Result<SiteState, PortError> {
    if state.outbox.is_empty() {
        return Ok(state);
    }
    deps.bus.publish(&state.outbox).await?;
    emitted.extend(
        state
            .outbox
            .iter()
            .map(|e| e.event_type.detail_type().to_string()),
    );
    state.outbox.clear();
    state.version += 1;
    deps.ledger.commit(&state).await?;
    Ok(state)
}

#[cfg(test)]
mod tests;
