//! The old primary after a failover: fence it, watch it, measure what it holds that the new
//! primary never received.
//!
//! The failover decision records a [`FenceRecord`] (the intent) beside itself. Promotion never
//! waits for it: the old region may be dark. The evaluator's scheduled tick works on it, one step
//! at a time and in order, until each step's postcondition is **observed** — the API accepting a
//! call is not proof (`read_only` may wait behind a long transaction) — through any number of
//! failures while the old region's APIs are dark. Every change of the fence's state pages once.
//!
//! Steps, each idempotent:
//! 1. `read_only=1` (`ApplyMethod=immediate`) in the old primary's **own** custom parameter group
//!    (a dynamic parameter on RDS MySQL; the master user has no `SUPER`, so it binds it; it
//!    survives reboots and the automatic start after seven days stopped). Observed when
//!    `DescribeDBParameters` shows 1 and the instance reports the group `in-sync`.
//! 2. Over SQL: `@@global.read_only = 1`, then
//! 3. application sessions ended (`CALL mysql.rds_kill(id)`; `KILL` where the engine allows),
//!    observed when the process list shows none left.
//! 4. A DB snapshot (observed `available`), kept for reconciliation.
//! 5. Optional per site: quarantine security group, `StopDBInstance`.
//!
//! Where RDS itself demotes the old writer the steps say "not applicable" and why.
//!
//! Fencing starts only once the promotion is **complete** (a new writer exists): fencing on the
//! decision alone would make a site with no writer if the promoter then aborts because the old
//! primary answered.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Config, DbRef, Engine, SiteConfig};
use crate::events::{DomainEvent, EventType};
use crate::gtid::{Lost, Position, PositionError};
use crate::incident::{Phase, SiteState};
use crate::verdict::{Guard, GuardCheck, GuardResult, Outcome, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    ParameterReadOnly,
    SqlReadOnly,
    EndSessions,
    Snapshot,
    Quarantine,
    Stop,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::ParameterReadOnly,
        Step::SqlReadOnly,
        Step::EndSessions,
        Step::Snapshot,
        Step::Quarantine,
        Step::Stop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::ParameterReadOnly => "read_only=1 in its parameter group",
            Step::SqlReadOnly => "read_only confirmed over SQL",
            Step::EndSessions => "application sessions ended",
            Step::Snapshot => "snapshot for reconciliation",
            Step::Quarantine => "quarantine security group",
            Step::Stop => "stopped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum StepState {
    /// Not yet observed. `last` says what the last attempt saw (an error, "not yet").
    Pending {
        attempts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last: Option<String>,
    },
    /// The postcondition was observed.
    Done { at: DateTime<Utc>, observed: String },
    /// The tool will not do this step; a human must (the reason says what and why).
    Refused { reason: String },
    /// The step means nothing for this site (RDS demotes the old writer itself, or the site did
    /// not ask for it).
    NotApplicable { reason: String },
}

impl StepState {
    fn word(&self) -> &'static str {
        match self {
            StepState::Pending { .. } => "pending",
            StepState::Done { .. } => "done",
            StepState::Refused { .. } => "refused",
            StepState::NotApplicable { .. } => "n/a",
        }
    }
    pub fn is_pending(&self) -> bool {
        matches!(self, StepState::Pending { .. })
    }
    pub fn is_done(&self) -> bool {
        matches!(self, StepState::Done { .. })
    }
    fn pending() -> Self {
        StepState::Pending {
            attempts: 0,
            last: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: Step,
    #[serde(flatten)]
    pub state: StepState,
}

/// The divergence report: what the old primary holds that the new primary never received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    pub at: DateTime<Utc>,
    pub old_position: Position,
    pub new_position: Position,
    pub lost: Lost,
    /// Measured while the old primary was not yet confirmed read-only: the count may still grow.
    pub provisional: bool,
    /// The fence's snapshot, once available: where the lost transactions can be recovered from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
}

/// The fence of one epoch's old primary, recorded with the failover decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceRecord {
    pub epoch: u64,
    pub old_primary: DbRef,
    pub decided_at: DateTime<Utc>,
    /// The replica lag the decision was made on (the RPO guard's words), to set beside the
    /// measured loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_lag: Option<String>,
    /// The old primary's SQL endpoint `host:port` at the decision (the canary's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub steps: Vec<StepRecord>,
    /// The fence state last paged ([`FenceRecord::state_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paged: Option<String>,
    /// The promoted replica's executed position, read at promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_position: Option<Position>,
    /// Since when the old primary has been seen answering and writable (one CRITICAL page per
    /// episode); cleared when it is seen read-only or unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable_since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divergence: Option<Divergence>,
}

fn na_all(reason: &str) -> Vec<StepRecord> {
    Step::ALL
        .iter()
        .map(|&step| StepRecord {
            step,
            state: StepState::NotApplicable {
                reason: reason.into(),
            },
        })
        .collect()
}

/// What each step is for this engine kind and site: pending, or not applicable with the reason.
fn plan(site: &SiteConfig) -> Vec<StepRecord> {
    let not_asked = |what: &str| StepState::NotApplicable {
        reason: format!("the site does not ask for it (fence.{what})"),
    };
    match &site.engine {
        Engine::MultiAz => na_all(
            "Multi-AZ forced failover: RDS makes the old writer the standby, which takes no \
             connections (RDS User Guide, \"Failover process for Amazon RDS\")",
        ),
        Engine::AuroraCluster { .. } => na_all(
            "Aurora cluster failover: Aurora restarts the old writer as a reader of the same \
             cluster (Aurora User Guide, \"Failing over an Aurora DB cluster\")",
        ),
        Engine::AuroraGlobal { .. } => {
            let aurora = "Aurora Global failover: when the old primary's region returns, Aurora \
                          rejoins that cluster as a read-only secondary (Aurora User Guide, \
                          \"Recovering an Amazon Aurora global database from an unplanned outage\")";
            Step::ALL
                .iter()
                .map(|&step| StepRecord {
                    step,
                    state: match step {
                        Step::Snapshot => StepState::Refused {
                            reason: "Aurora takes a system snapshot of the returning old primary \
                                     cluster (rds:unplanned-global-failover-...), which expires \
                                     with its retention period: copy it with \
                                     `aws rds copy-db-cluster-snapshot` to keep it; this tool \
                                     does not copy it yet"
                                .into(),
                        },
                        _ => StepState::NotApplicable {
                            reason: aurora.into(),
                        },
                    },
                })
                .collect()
        }
        Engine::RdsReplica => {
            let f = site.fence.as_ref();
            Step::ALL
                .iter()
                .map(|&step| StepRecord {
                    step,
                    state: match (step, f) {
                        (_, None) => StepState::Refused {
                            reason: "the site has no `fence` section: the tool may not change \
                                     the old primary; fence it by hand"
                                .into(),
                        },
                        (Step::Snapshot, Some(f)) if !f.snapshot => not_asked("snapshot"),
                        (Step::Quarantine, Some(f)) if f.quarantine_security_group.is_none() => {
                            not_asked("quarantine_security_group")
                        }
                        (Step::Stop, Some(f)) if !f.stop => not_asked("stop"),
                        _ => StepState::pending(),
                    },
                })
                .collect()
        }
    }
}

/// The fence intent recorded with a failover decision away from `site.primary`.
pub fn intent(
    site: &SiteConfig,
    epoch: u64,
    decided_lag: Option<String>,
    now: DateTime<Utc>,
) -> FenceRecord {
    FenceRecord {
        epoch,
        old_primary: site.primary.clone(),
        decided_at: now,
        decided_lag,
        endpoint: site.canary.as_ref().map(|c| c.endpoint.clone()),
        steps: plan(site),
        paged: None,
        promoted_position: None,
        writable_since: None,
        snapshot_id: None,
        divergence: None,
    }
}

/// Why the parameter step may not touch `site`'s parameter group, if it may not: none named, a
/// default group (RDS refuses to modify those), or one another site's database also names.
/// Config validation reports the same words ([`warnings`]).
pub fn parameter_group_problem(cfg: &Config, site: &SiteConfig) -> Option<String> {
    let f = site.fence.as_ref()?;
    let Some(g) = f.parameter_group.as_deref() else {
        return Some(format!(
            "{} has no parameter group named (fence.parameter_group): give it its own custom \
             group so the tool can set read_only=1 without affecting others",
            site.primary
        ));
    };
    if g.starts_with("default.") {
        return Some(format!(
            "{} uses the default parameter group `{g}`: RDS does not allow modifying default \
             groups, and the primary cannot be fenced this way without affecting others; give \
             it its own custom group",
            site.primary
        ));
    }
    let others: Vec<&str> = cfg
        .sites
        .iter()
        .filter(|s| s.id != site.id)
        // A parameter group is regional (its ARN names the region): the same name in another
        // region is another group, which read_only=1 here does not touch.
        .filter(|s| s.primary.region == site.primary.region)
        .filter(|s| s.fence.as_ref().and_then(|f| f.parameter_group.as_deref()) == Some(g))
        .map(|s| s.id.as_str())
        .collect();
    (!others.is_empty()).then(|| {
        format!(
            "parameter group `{g}` is shared with site(s) {}: this primary cannot be fenced \
             without affecting others (read_only=1 would stop their writers too); give it its \
             own custom group",
            others.join(", ")
        )
    })
}

/// Configuration warnings about fencing, one per site that the tool cannot fully fence.
pub fn warnings(cfg: &Config) -> Vec<String> {
    cfg.sites
        .iter()
        .filter(|s| matches!(s.engine, Engine::RdsReplica))
        .filter_map(|s| match parameter_group_problem(cfg, s) {
            Some(p) => Some(format!("site {}: {p}", s.id)),
            None if s.fence.is_none() => Some(format!(
                "site {}: no `fence` section: after a failover the tool will watch the old \
                 primary but not fence it",
                s.id
            )),
            None => None,
        })
        .collect()
}

impl FenceRecord {
    /// The step the reconciler works on next: the first one not yet observed. Steps go in
    /// order: ending sessions before `read_only` holds lets them reconnect and write, and a
    /// snapshot of a writable server misses what it takes next.
    pub fn next_step(&self) -> Option<Step> {
        self.steps
            .iter()
            .find(|s| s.state.is_pending())
            .map(|s| s.step)
    }

    pub fn state(&self, step: Step) -> Option<&StepState> {
        self.steps.iter().find(|s| s.step == step).map(|s| &s.state)
    }

    fn set(&mut self, step: Step, state: StepState) {
        if let Some(s) = self.steps.iter_mut().find(|s| s.step == step) {
            s.state = state;
        }
    }

    /// Every step observed, refused or not applicable.
    pub fn finished(&self) -> bool {
        self.next_step().is_none()
    }

    /// The fence's state as one comparable key: it changes exactly when a step changes kind.
    pub fn state_key(&self) -> String {
        self.steps
            .iter()
            .map(|s| format!("{:?}={}", s.step, s.state.word()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One line per step, for messages.
    pub fn describe(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|s| {
                let what = s.step.as_str();
                match &s.state {
                    StepState::Pending { attempts, last } => format!(
                        "pending  {what} ({attempts} attempt(s){})",
                        last.as_deref()
                            .map_or(String::new(), |l| format!("; last: {l}"))
                    ),
                    StepState::Done { at, observed } => {
                        format!("done     {what} at {} ({observed})", at.format("%H:%M:%SZ"))
                    }
                    StepState::Refused { reason } => format!("REFUSED  {what}: {reason}"),
                    StepState::NotApplicable { reason } => format!("n/a      {what}: {reason}"),
                }
            })
            .collect()
    }

    /// One line: where the fence stands.
    pub fn headline(&self) -> String {
        let done = self.steps.iter().filter(|s| s.state.is_done()).count();
        let all_na = self
            .steps
            .iter()
            .all(|s| matches!(s.state, StepState::NotApplicable { .. }));
        if all_na {
            return format!("fence of {} not applicable", self.old_primary);
        }
        match self.next_step() {
            Some(step) => format!(
                "fence of {} in progress ({done} step(s) observed): working on \"{}\"",
                self.old_primary,
                step.as_str()
            ),
            None if self
                .steps
                .iter()
                .any(|s| matches!(s.state, StepState::Refused { .. })) =>
            {
                format!(
                    "fence of {} INCOMPLETE: the tool refused step(s) a human must take",
                    self.old_primary
                )
            }
            None => format!("{} is fenced", self.old_primary),
        }
    }
}

/// What one attempt at a step saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The postcondition holds, as observed (not as acknowledged).
    Observed(String),
    /// Asked, or could not ask yet; the postcondition does not hold yet.
    NotYet(String),
    /// The tool must not do this step (the reason says why and what a human must do).
    Refuse(String),
}

/// Records one attempt at `step`. Attempts at a step that is not pending change nothing.
pub fn record(rec: &FenceRecord, step: Step, attempt: Attempt, now: DateTime<Utc>) -> FenceRecord {
    let mut next = rec.clone();
    let Some(StepState::Pending { attempts, .. }) = rec.state(step).cloned() else {
        return next;
    };
    next.set(
        step,
        match attempt {
            Attempt::Observed(observed) => StepState::Done { at: now, observed },
            Attempt::NotYet(last) => StepState::Pending {
                attempts: attempts + 1,
                last: Some(last),
            },
            Attempt::Refuse(reason) => StepState::Refused { reason },
        },
    );
    next
}

/// Whether the reconciler and watch work on `st`'s fence now: the fence of the current epoch,
/// once its promotion completed (a new writer exists), for as long as the site has not moved on
/// to a new incident.
pub fn active(st: &SiteState) -> Option<&FenceRecord> {
    let f = st.fence.as_ref().filter(|f| f.epoch == st.epoch)?;
    let promoted = st
        .promotion
        .as_ref()
        .is_some_and(|p| p.epoch == st.epoch && p.completed_at.is_some());
    let phase_ok = matches!(
        st.phase,
        Phase::Promoted | Phase::DnsPinned | Phase::Completed | Phase::Failed
    );
    (promoted && phase_ok || before_promotion(st)).then_some(f)
}

/// A human forced the failover of a primary that answers, and RDS has not been asked yet: the
/// fence runs *before* the promotion (the promoter waits for [`fenced_first`]), and the old
/// primary is not "writable again" — it is the writer until it is fenced.
pub fn before_promotion(st: &SiteState) -> bool {
    st.phase == Phase::Promoting
        && st
            .forced
            .as_ref()
            .is_some_and(|f| f.epoch == st.epoch && f.fence_first)
        && st.promotion.as_ref().is_none_or(|p| p.epoch != st.epoch)
}

/// What an epoch that ends with no promotion must say when its forced failover already worked
/// on the old primary's fence: the group may hold `read_only=1`, so the site may have no writer.
/// Counted from the first attempt (a set whose read-back was not yet in sync is a set).
pub fn held_note(st: &SiteState) -> Option<String> {
    if !before_promotion(st) {
        return None;
    }
    let f = st.fence.as_ref().filter(|f| f.epoch == st.epoch)?;
    let touched = match f.state(Step::ParameterReadOnly)? {
        StepState::Done { .. } => true,
        StepState::Pending { attempts, .. } => *attempts > 0,
        _ => false,
    };
    touched.then(|| {
        format!(
            "the old primary {} was being FENCED for this forced failover: its parameter group may \
             hold read_only=1, so it may take no writes — set read_only=0 there to give it writes \
             back, or fail over again",
            f.old_primary
        )
    })
}

/// Whether the promoter may ask RDS to promote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FencedFirst {
    /// No fence is asked before the promotion (the failover was not forced over a live primary).
    NotNeeded,
    /// `read_only=1` in the old primary's parameter group and over SQL, both observed.
    Done(String),
    /// The steps are still being worked on by the tick.
    Waiting(String),
    /// A step was refused: the old primary cannot be fenced by the tool, so a forced failover
    /// over it would make two writers.
    Refused(String),
}

/// The fence-first steps of a forced failover over a primary that answers.
pub fn fenced_first(st: &SiteState) -> FencedFirst {
    if !before_promotion(st) {
        return FencedFirst::NotNeeded;
    }
    let Some(f) = st.fence.as_ref().filter(|f| f.epoch == st.epoch) else {
        return FencedFirst::Refused("no fence intent was recorded with the decision".into());
    };
    // A planned switchover promotes only once the target applied the fenced position.
    match crate::switchover::holds_promotion(st) {
        Some(Ok(wait)) => return FencedFirst::Waiting(wait),
        Some(Err(why)) => return FencedFirst::Refused(why),
        None => {}
    }
    let mut done = vec![];
    for step in [Step::ParameterReadOnly, Step::SqlReadOnly] {
        match f.state(step) {
            Some(StepState::Done { observed, .. }) => {
                done.push(format!("{}: {observed}", step.as_str()))
            }
            Some(StepState::Refused { reason }) | Some(StepState::NotApplicable { reason }) => {
                return FencedFirst::Refused(format!("{}: {reason}", step.as_str()))
            }
            _ => {
                return FencedFirst::Waiting(format!(
                    "waiting for the fence of {} before promoting: {} not yet observed",
                    f.old_primary,
                    step.as_str()
                ))
            }
        }
    }
    FencedFirst::Done(done.join("; "))
}

/// What the tick's probe of the old primary saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// It did not answer (or we could not ask).
    Unreachable(String),
    /// It answered; `read_only` is the server's own answer.
    Answered { read_only: bool },
}

fn event(
    site: &SiteConfig,
    st: &SiteState,
    t: EventType,
    summary: String,
    guards: Vec<GuardCheck>,
    now: DateTime<Utc>,
) -> DomainEvent {
    DomainEvent {
        event_type: t,
        site: site.id.clone(),
        epoch: st.epoch,
        phase: st.phase,
        engine: site.engine.kind().into(),
        occurred_at: now,
        primary: st.fence.as_ref().map(|f| f.old_primary.clone()),
        candidate: st.candidate.clone(),
        rpo_override: st.rpo_override.clone(),
        verdict: Verdict {
            site: Some(site.id.clone()),
            outcome: Outcome::Watch,
            epoch: st.epoch,
            phase: st.phase,
            summary,
            guards,
        },
        timeline: st.timeline.clone(),
    }
}

fn fence_guards(f: &FenceRecord) -> Vec<GuardCheck> {
    f.steps
        .iter()
        .map(|s| {
            let r = match s.state {
                StepState::Done { .. } => GuardResult::Pass,
                StepState::Refused { .. } => GuardResult::Fail,
                StepState::Pending { .. } => GuardResult::Unknown,
                StepState::NotApplicable { .. } => GuardResult::NotApplicable,
            };
            let line = f
                .describe()
                .into_iter()
                .nth(f.steps.iter().position(|x| x.step == s.step).unwrap_or(0))
                .unwrap_or_default();
            GuardCheck::new(Guard::Fence, r, line)
        })
        .collect()
}

/// `st` with `f` as its fence and a `FenceChanged` page in the outbox when the fence's state
/// differs from the one last paged; `None` when nothing changed at all.
pub fn commit(
    site: &SiteConfig,
    st: &SiteState,
    mut f: FenceRecord,
    mut pages: Vec<DomainEvent>,
    now: DateTime<Utc>,
) -> Option<SiteState> {
    let key = f.state_key();
    let changed = f.paged.as_deref() != Some(key.as_str());
    if changed {
        f.paged = Some(key);
        let mut with = st.clone();
        with.fence = Some(f.clone());
        pages.insert(
            0,
            event(
                site,
                &with,
                EventType::FenceChanged,
                f.headline(),
                fence_guards(&f),
                now,
            ),
        );
    }
    if st.fence.as_ref() == Some(&f) && pages.is_empty() {
        return None;
    }
    let mut next = st.clone();
    next.fence = Some(f);
    next.outbox.extend(pages);
    next.version += 1;
    next.updated_at = Some(now);
    Some(next)
}

/// What a human should do now about a writable old primary, given where the fence stands.
fn act_now(site: &SiteConfig, f: &FenceRecord) -> String {
    let db = &f.old_primary;
    let by_hand = format!(
        "set read_only=1 on {db} by hand (its parameter group, ApplyMethod=immediate), or stop \
         it (`aws rds stop-db-instance --db-instance-identifier {} --region {}`; not possible \
         while it has read replicas), or cut its clients off (security group)",
        db.id, db.region
    );
    let step = match f.state(Step::ParameterReadOnly) {
        Some(StepState::Refused { reason }) => {
            format!("The tool will not set read_only ({reason}): {by_hand}.")
        }
        Some(StepState::Pending { .. }) => format!(
            "The fence keeps trying every tick; if read_only is not confirmed at the next tick, {by_hand}."
        ),
        _ => format!(
            "read_only is set in its parameter group but the server is still writable (a long \
             transaction can hold it back): find and end the blocking session, or {by_hand}."
        ),
    };
    format!(
        "{step} Do NOT move {} back: the new primary is the writer; what {db} took since the \
         failover is reported as divergence and must be reconciled by hand.",
        site.dns.name
    )
}

/// The tick's watch: a CRITICAL `OldPrimaryWritable` page the first time in an episode the old
/// primary answers writable. Returns the updated record and any page.
pub fn watch(
    site: &SiteConfig,
    st: &SiteState,
    f: &FenceRecord,
    probe: &Probe,
    now: DateTime<Utc>,
) -> (FenceRecord, Option<DomainEvent>) {
    let mut next = f.clone();
    match probe {
        Probe::Answered { read_only: false } => {
            if f.writable_since.is_some() {
                return (next, None);
            }
            next.writable_since = Some(now);
            let summary = format!(
                "SPLIT BRAIN RISK: the old primary {} answers and is WRITABLE while {} is pinned \
                 to the new primary. {}. {}",
                f.old_primary,
                site.dns.name,
                f.headline(),
                act_now(site, f)
            );
            let e = event(
                site,
                st,
                EventType::OldPrimaryWritable,
                summary,
                fence_guards(f),
                now,
            );
            (next, Some(e))
        }
        _ => {
            next.writable_since = None;
            (next, None)
        }
    }
}

/// The divergence report, measured from the old primary's position against the one recorded at
/// promotion. Pages (`DivergenceMeasured`) the first time, and again whenever the loss changes
/// (a provisional measure of a still-writable server, then the final one). With GTIDs off the
/// positions name a binlog range; `binlog_transactions` is its transaction count as the old
/// primary's `SHOW BINLOG EVENTS` gave it (`None`: not counted).
pub fn measure(
    site: &SiteConfig,
    st: &SiteState,
    f: &FenceRecord,
    old: Position,
    binlog_transactions: Option<u64>,
    now: DateTime<Utc>,
) -> Result<(FenceRecord, Option<DomainEvent>), PositionError> {
    let Some(new) = f.promoted_position.clone() else {
        return Ok((f.clone(), None));
    };
    let lost = crate::gtid::lost(&old, &new)?.counted(binlog_transactions);
    let provisional = !f.state(Step::SqlReadOnly).is_some_and(StepState::is_done);
    let snapshot_id = f
        .state(Step::Snapshot)
        .is_some_and(StepState::is_done)
        .then(|| f.snapshot_id.clone())
        .flatten();
    if f.divergence.as_ref().is_some_and(|d| {
        d.lost == lost && d.provisional == provisional && d.snapshot_id == snapshot_id
    }) {
        return Ok((f.clone(), None));
    }
    let mut next = f.clone();
    next.divergence = Some(Divergence {
        at: now,
        old_position: old,
        new_position: new,
        lost,
        provisional,
        snapshot_id,
    });
    let summary = report(&next).join("\n");
    let e = event(
        site,
        st,
        EventType::DivergenceMeasured,
        summary,
        vec![],
        now,
    );
    Ok((next, Some(e)))
}

/// The divergence report as printed: count, ranges, the lag the decision was made on, where to
/// recover the transactions from.
pub fn report(f: &FenceRecord) -> Vec<String> {
    let Some(d) = &f.divergence else {
        return vec![format!("divergence of {} not measured yet", f.old_primary)];
    };
    let count = match (d.lost.count, &d.old_position) {
        (Some(n), Position::Binlog(_)) => {
            format!("{n} transaction(s) (counted in its binlog; GTIDs are off)")
        }
        (Some(n), _) => format!("{n} transaction(s)"),
        (None, _) => "a binlog range (GTIDs are off: count it with mysqlbinlog)".into(),
    };
    let mut out = vec![format!(
        "DIVERGENCE (measured RPO){}: {} holds {count} the new primary never received",
        if d.provisional {
            " — PROVISIONAL, the old primary is not confirmed read-only and may take more"
        } else {
            ""
        },
        f.old_primary
    )];
    out.extend(d.lost.ranges.iter().map(|r| format!("  lost: {r}")));
    out.push(format!("  old primary at:       {}", d.old_position));
    out.push(format!("  promoted replica had: {}", d.new_position));
    out.push(format!(
        "  decided on: {}",
        f.decided_lag.as_deref().unwrap_or("no lag recorded")
    ));
    if !d.lost.is_none() {
        out.push(format!(
            "  recover from: {}",
            match &d.snapshot_id {
                Some(id) =>
                    format!("DB snapshot `{id}` of {} (and its binlog while retained)", f.old_primary),
                None => format!(
                    "{} itself (no snapshot yet): keep it, and read its binlog from the positions above",
                    f.old_primary
                ),
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gtid::{GtidSet, MariaPos};
    use crate::incident::PromotionRecord;
    use chrono::TimeZone;

    const EXAMPLE: &str = include_str!("../../../infra/sites.example.json");

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    /// The example configuration with `fence` sections set per site id.
    fn cfg_with(fences: &[(&str, serde_json::Value)]) -> Config {
        let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        for s in v["sites"].as_array_mut().unwrap() {
            if let Some((_, f)) = fences.iter().find(|(id, _)| s["id"] == *id) {
                s["fence"] = f.clone();
            }
        }
        Config::from_document(&v.to_string()).unwrap()
    }

    fn orders(fence: serde_json::Value) -> SiteConfig {
        cfg_with(&[("orders", fence)])
            .site("orders")
            .unwrap()
            .clone()
    }

    fn own_group() -> serde_json::Value {
        serde_json::json!({"parameter_group": "orders-primary-params", "sql_user": "admin",
            "sql_credentials": {"kind": "env", "var": "FENCE_PW"}})
    }

    /// A pinned site whose promotion completed, with the fence recorded at the decision.
    fn pinned(site: &SiteConfig) -> SiteState {
        let mut st = SiteState::new(&site.id);
        st.epoch = 4;
        st.phase = Phase::DnsPinned;
        st.version = 9;
        st.promotion = Some(PromotionRecord {
            epoch: 4,
            candidate: site.candidates[0].clone(),
            action: "PromoteReadReplica".into(),
            requested_at: t(0),
            completed_at: Some(t(300)),
            endpoint: Some("replica:3306".into()),
            writable_verified_at: Some(t(300)),
            resolved: None,
        });
        st.fence = Some(intent(site, 4, Some("lag 2 s (current)".into()), t(0)));
        st
    }

    /// Issue 11, defect 3: a failover forced over a primary that answers promotes only once the
    /// old primary is fenced — read_only=1 in its own parameter group *and* over SQL — and the
    /// tick works the steps before the promotion (and does not call the live writer "writable
    /// again"); a step the tool may not do fails it.
    #[test]
    fn a_failover_forced_over_a_live_primary_waits_for_the_fence_first() {
        let site = orders(own_group());
        let mut st = SiteState::new("orders");
        st.epoch = 4;
        st.phase = Phase::Promoting;
        st.fence = Some(intent(&site, 4, None, t(0)));
        assert_eq!(fenced_first(&st), FencedFirst::NotNeeded, "not forced");
        assert!(
            active(&st).is_none(),
            "no promotion yet, not forced: nothing to fence"
        );

        st.forced = Some(crate::incident::Forced {
            epoch: 4,
            by: "alice".into(),
            reason: "move writes now".into(),
            at: t(0),
            fence_first: true,
        });
        assert!(before_promotion(&st) && active(&st).is_some());
        assert_eq!(held_note(&st), None, "nothing touched yet");
        assert!(
            matches!(fenced_first(&st), FencedFirst::Waiting(w) if w.contains("read-only-in-parameter-group") || w.contains("not yet observed"))
        );

        let f = st.fence.clone().unwrap();
        let f = record(
            &f,
            Step::ParameterReadOnly,
            Attempt::Observed("group read_only=1".into()),
            t(60),
        );
        st.fence = Some(f.clone());
        assert!(
            matches!(fenced_first(&st), FencedFirst::Waiting(_)),
            "SQL not yet confirmed"
        );
        // An epoch that ends now, with no promotion, must say the old primary may be read-only.
        assert!(held_note(&st).is_some_and(|n| n.contains("read_only=1")));
        let f = record(
            &f,
            Step::SqlReadOnly,
            Attempt::Observed("@@global.read_only = 1".into()),
            t(120),
        );
        st.fence = Some(f);
        assert!(
            matches!(fenced_first(&st), FencedFirst::Done(d) if d.contains("@@global.read_only = 1"))
        );

        // The site may not be fenced by the tool: refused, never "go ahead".
        let bare = cfg_with(&[]).site("orders").unwrap().clone();
        st.fence = Some(intent(&bare, 4, None, t(0)));
        assert!(
            matches!(fenced_first(&st), FencedFirst::Refused(r) if r.contains("no `fence` section"))
        );

        // Forced over a primary that did not answer: no fence first (its region may be dark).
        st.forced.as_mut().unwrap().fence_first = false;
        assert_eq!(fenced_first(&st), FencedFirst::NotNeeded);
        // Once RDS was asked, the wait is over whatever the flag says.
        st.forced.as_mut().unwrap().fence_first = true;
        st.promotion = pinned(&site).promotion;
        assert_eq!(fenced_first(&st), FencedFirst::NotNeeded);
    }

    fn states(f: &FenceRecord) -> Vec<&'static str> {
        f.steps.iter().map(|s| s.state.word()).collect()
    }

    #[test]
    fn where_rds_demotes_the_old_writer_every_step_says_not_applicable_and_why() {
        let cfg = cfg_with(&[]);
        for id in ["inventory", "billing"] {
            let f = intent(cfg.site(id).unwrap(), 1, None, t(0));
            assert_eq!(states(&f), vec!["n/a"; 6], "{id}");
            assert!(f.finished());
            assert!(f.headline().contains("not applicable"), "{id}");
            assert!(
                f.describe()[0].contains("RDS makes the old writer the standby")
                    || f.describe()[0].contains("reader of the same cluster"),
                "{id}: {:?}",
                f.describe()
            );
        }
        // Aurora Global: Aurora fences the returning cluster; its snapshot is for a human to keep.
        let g = intent(cfg.site("payments").unwrap(), 1, None, t(0));
        assert_eq!(
            states(&g),
            vec!["n/a", "n/a", "n/a", "refused", "n/a", "n/a"]
        );
        assert!(g.describe()[3].contains("copy-db-cluster-snapshot"));
    }

    #[test]
    fn an_rds_primary_is_fenced_only_as_far_as_its_site_allows() {
        let none = intent(&cfg_with(&[]).sites[0], 1, None, t(0));
        assert_eq!(states(&none), vec!["refused"; 6]);
        assert!(none.describe()[0].contains("no `fence` section"));
        let f = intent(&orders(own_group()), 1, None, t(0));
        assert_eq!(
            states(&f),
            vec!["pending", "pending", "pending", "pending", "n/a", "n/a"]
        );
        let all = orders(serde_json::json!({"parameter_group": "p", "stop": true,
            "quarantine_security_group": "sg-0123abcd", "snapshot": false}));
        assert_eq!(
            states(&intent(&all, 1, None, t(0))),
            vec!["pending", "pending", "pending", "n/a", "pending", "pending"]
        );
    }

    #[test]
    fn a_same_named_group_in_another_region_is_another_group_and_does_not_refuse_the_fence() {
        let dbr = |id: &str, region: &str| DbRef {
            id: id.into(),
            region: region.into(),
        };
        let old = dbr("orders-primary", "us-east-1");
        let attached = [AttachedGroup {
            name: "orders-primary-params".into(),
            apply_status: "in-sync".into(),
        }];
        let cross = dbr("orders-replica-1", "us-west-2");
        assert_eq!(
            shared_with_new_primary("orders-primary-params", &old, &cross, &attached),
            Ok(()),
            "us-west-2's group of that name is not the one ModifyDBParameterGroup in us-east-1 changes"
        );
        let same = dbr("orders-replica-2", "us-east-1");
        let why = shared_with_new_primary("orders-primary-params", &old, &same, &attached)
            .expect_err("a same-region replica on the group would be made read-only too");
        assert!(why.contains("same parameter group"), "{why}");
    }

    #[test]
    fn quarantine_is_observed_only_with_the_quarantine_group_alone_and_active() {
        let db = DbRef {
            id: "orders-primary".into(),
            region: "us-east-1".into(),
        };
        let g = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let app = g(&[("sg-app", "active")]);
        assert!(needs_quarantine("sg-q", &app));
        assert!(matches!(
            judge_quarantine("sg-q", &db, &app),
            Attempt::NotYet(_)
        ));
        let both = g(&[("sg-app", "removing"), ("sg-q", "adding")]);
        assert!(needs_quarantine("sg-q", &both));
        assert!(matches!(
            judge_quarantine("sg-q", &db, &both),
            Attempt::NotYet(_)
        ));
        let adding = g(&[("sg-q", "adding")]);
        assert!(
            !needs_quarantine("sg-q", &adding),
            "asked already: do not ask again"
        );
        assert!(matches!(
            judge_quarantine("sg-q", &db, &adding),
            Attempt::NotYet(_)
        ));
        assert!(matches!(
            judge_quarantine("sg-q", &db, &g(&[("sg-q", "active")])),
            Attempt::Observed(_)
        ));
    }

    #[test]
    fn a_stopped_old_primary_started_again_is_stopped_again() {
        let site = orders(serde_json::json!({"parameter_group": "p", "stop": true}));
        let mut f = intent(&site, 1, None, t(0));
        // Not stopped yet: nothing to reopen.
        assert!(reopen_stop(&f, "available").is_none());
        f = record(&f, Step::Stop, Attempt::Observed("stopped".into()), t(1));
        assert!(reopen_stop(&f, "stopped").is_none());
        assert!(reopen_stop(&f, "stopping").is_none());
        for status in ["starting", "available"] {
            let again = reopen_stop(&f, status).unwrap();
            assert!(again.state(Step::Stop).unwrap().is_pending(), "{status}");
            assert_ne!(
                again.state_key(),
                f.state_key(),
                "a change of state: it pages"
            );
        }
    }

    #[test]
    fn steps_go_in_order_and_each_is_done_only_when_observed() {
        let site = orders(own_group());
        let mut f = intent(&site, 1, None, t(0));
        assert_eq!(f.next_step(), Some(Step::ParameterReadOnly));
        f = record(
            &f,
            Step::ParameterReadOnly,
            Attempt::NotYet("applying".into()),
            t(1),
        );
        assert_eq!(f.next_step(), Some(Step::ParameterReadOnly));
        f = record(
            &f,
            Step::ParameterReadOnly,
            Attempt::Observed("in-sync".into()),
            t(2),
        );
        assert_eq!(f.next_step(), Some(Step::SqlReadOnly));
        // Scenario 3: a long transaction holds read_only back; the fence does not move on.
        for i in 0..5 {
            f = record(
                &f,
                Step::SqlReadOnly,
                Attempt::NotYet(
                    "@@global.read_only = 0 (waiting behind a long transaction)".into(),
                ),
                t(60 * i),
            );
            assert_eq!(f.next_step(), Some(Step::SqlReadOnly));
        }
        assert_eq!(
            f.state(Step::SqlReadOnly),
            Some(&StepState::Pending {
                attempts: 5,
                last: Some("@@global.read_only = 0 (waiting behind a long transaction)".into())
            })
        );
        assert!(f.state(Step::EndSessions).unwrap().is_pending());
        f = record(
            &f,
            Step::SqlReadOnly,
            Attempt::Observed("@@global.read_only = 1".into()),
            t(400),
        );
        assert_eq!(f.next_step(), Some(Step::EndSessions));
        // An attempt at a step that is not pending changes nothing.
        let again = record(
            &f,
            Step::SqlReadOnly,
            Attempt::NotYet("late".into()),
            t(500),
        );
        assert_eq!(again, f);
        f = record(
            &f,
            Step::EndSessions,
            Attempt::Refuse("no grants".into()),
            t(401),
        );
        f = record(
            &f,
            Step::Snapshot,
            Attempt::Observed("available".into()),
            t(402),
        );
        assert!(f.finished());
        assert!(f.headline().contains("INCOMPLETE"), "{}", f.headline());
    }

    #[test]
    fn the_fence_works_only_after_the_promotion_completed_and_for_its_own_epoch() {
        let site = orders(own_group());
        let st = pinned(&site);
        assert!(active(&st).is_some());
        let mut deciding = st.clone();
        deciding.phase = Phase::Promoting;
        deciding.promotion.as_mut().unwrap().completed_at = None;
        assert!(
            active(&deciding).is_none(),
            "an abort must not leave a fenced live primary"
        );
        let mut failed_after = st.clone();
        failed_after.phase = Phase::Failed;
        assert!(
            active(&failed_after).is_some(),
            "a new writer exists: fence the old one"
        );
        let mut newer = st.clone();
        newer.epoch = 5;
        assert!(active(&newer).is_none());
    }

    #[test]
    fn a_dark_region_for_thirty_minutes_pages_once_then_once_per_change() {
        let site = orders(own_group());
        let mut st = pinned(&site);
        let mut pages = vec![];
        for minute in 0..30 {
            let f = active(&st).unwrap().clone();
            let step = f.next_step().unwrap();
            let f = record(
                &f,
                step,
                Attempt::NotYet("DescribeDBInstances: unreachable".into()),
                t(60 * minute),
            );
            if let Some(next) = commit(&site, &st, f, vec![], t(60 * minute)) {
                pages.extend(next.outbox.iter().map(|e| e.event_type));
                st = next;
                st.outbox.clear();
            }
        }
        assert_eq!(
            pages,
            vec![EventType::FenceChanged],
            "the plan pages once, retries do not"
        );
        let f = active(&st).unwrap();
        assert!(matches!(
            f.state(Step::ParameterReadOnly),
            Some(StepState::Pending { attempts: 30, .. })
        ));
        // The region returns: one page for the step observed.
        let f = record(
            f,
            Step::ParameterReadOnly,
            Attempt::Observed("in-sync".into()),
            t(1800),
        );
        let next = commit(&site, &st, f, vec![], t(1800)).unwrap();
        assert_eq!(next.outbox.len(), 1);
        assert!(next.outbox[0]
            .verdict
            .summary
            .contains("working on \"read_only confirmed over SQL\""));
        assert_eq!(next.version, st.version + 1);
        // Nothing changed: nothing to commit.
        let mut quiet = next.clone();
        quiet.outbox.clear();
        assert!(commit(&site, &quiet, quiet.fence.clone().unwrap(), vec![], t(1860)).is_none());
    }

    #[test]
    fn a_writable_old_primary_pages_critical_once_per_episode_and_says_what_to_do() {
        let site = orders(own_group());
        let st = pinned(&site);
        let f = active(&st).unwrap().clone();
        let writable = Probe::Answered { read_only: false };
        let (f1, e) = watch(&site, &st, &f, &writable, t(600));
        let e = e.expect("critical page");
        assert_eq!(e.event_type, EventType::OldPrimaryWritable);
        assert_eq!(e.event_type.severity(), "critical");
        let s = &e.verdict.summary;
        assert!(s.contains("WRITABLE") && s.contains("Do NOT move"), "{s}");
        assert!(
            s.contains("fence of orders-primary (us-east-1) in progress"),
            "{s}"
        );
        let (f2, again) = watch(&site, &st, &f1, &writable, t(660));
        assert!(again.is_none(), "once per episode");
        let (f3, _) = watch(
            &site,
            &st,
            &f2,
            &Probe::Answered { read_only: true },
            t(720),
        );
        assert!(f3.writable_since.is_none());
        assert!(
            watch(&site, &st, &f3, &writable, t(780)).1.is_some(),
            "a new episode pages"
        );
        let (_, dark) = watch(
            &site,
            &st,
            &f,
            &Probe::Unreachable("timeout".into()),
            t(600),
        );
        assert!(dark.is_none());
    }

    #[test]
    fn a_shared_or_default_parameter_group_is_flagged_and_the_step_refuses_saying_why() {
        let shared = serde_json::json!({"parameter_group": "shared-params"});
        // payments' primary is in us-east-1 as orders' is: one group; billing's is in us-west-2,
        // where a group of that name is another group.
        let cfg = cfg_with(&[
            ("orders", shared.clone()),
            ("payments", shared.clone()),
            ("billing", shared),
        ]);
        let p = parameter_group_problem(&cfg, cfg.site("orders").unwrap()).unwrap();
        assert!(
            p.contains("shared with site(s) payments") && p.contains("without affecting others"),
            "{p}"
        );
        assert!(!p.contains("billing"), "{p}");
        assert_eq!(
            parameter_group_problem(&cfg, cfg.site("billing").unwrap()),
            None,
            "billing's us-west-2 group shares only a name"
        );
        assert!(warnings(&cfg)
            .iter()
            .any(|w| w.starts_with("site orders: parameter group `shared-params` is shared")));
        let cfg = cfg_with(&[(
            "orders",
            serde_json::json!({"parameter_group": "default.mysql8.0"}),
        )]);
        let p = parameter_group_problem(&cfg, cfg.site("orders").unwrap()).unwrap();
        assert!(p.contains("default parameter group"), "{p}");
        let cfg = cfg_with(&[("orders", serde_json::json!({}))]);
        assert!(parameter_group_problem(&cfg, cfg.site("orders").unwrap())
            .unwrap()
            .contains("no parameter group named"));
        let cfg = cfg_with(&[("orders", own_group())]);
        assert_eq!(
            parameter_group_problem(&cfg, cfg.site("orders").unwrap()),
            None
        );
        assert!(warnings(&cfg).is_empty());
        assert_eq!(
            warnings(&cfg_with(&[])).len(),
            1,
            "orders has no fence section"
        );
    }

    #[test]
    fn with_gtids_off_the_report_names_the_binlog_range_and_its_counted_transactions() {
        use crate::gtid::BinlogPos;
        let site = orders(own_group());
        let mut st = pinned(&site);
        let f = st.fence.as_mut().unwrap();
        let b = |s: &str| Position::Binlog(BinlogPos::parse(s).unwrap());
        f.promoted_position = Some(b("mysql-bin.000007:1545"));
        let f = f.clone();
        let (f1, e) = measure(&site, &st, &f, b("mysql-bin.000008:620"), Some(4), t(900)).unwrap();
        assert!(e.is_some());
        let lines = report(&f1);
        assert!(lines[0].ends_with("holds 4 transaction(s) (counted in its binlog; GTIDs are off) the new primary never received"), "{lines:?}");
        assert_eq!(
            lines[1],
            "  lost: mysql-bin.000007:1545 .. mysql-bin.000008:620"
        );
        // Not counted (the old primary refused SHOW BINLOG EVENTS): the range alone, said so.
        let (f2, e) = measure(&site, &st, &f, b("mysql-bin.000008:620"), None, t(900)).unwrap();
        assert!(e.is_some());
        assert!(
            report(&f2)[0].contains("a binlog range (GTIDs are off"),
            "{:?}",
            report(&f2)
        );
    }

    #[test]
    fn the_divergence_report_counts_names_and_places_what_was_lost() {
        let site = orders(own_group());
        let mut st = pinned(&site);
        let f = st.fence.as_mut().unwrap();
        f.promoted_position = Some(Position::MariadbGtid(MariaPos::parse("0-1-100").unwrap()));
        let f = f.clone();
        let old = Position::MariadbGtid(MariaPos::parse("0-1-105").unwrap());
        // Not yet confirmed read-only: provisional.
        let (f1, e) = measure(&site, &st, &f, old.clone(), None, t(900)).unwrap();
        let e = e.unwrap();
        assert_eq!(e.event_type, EventType::DivergenceMeasured);
        assert!(
            e.verdict.summary.contains("PROVISIONAL"),
            "{}",
            e.verdict.summary
        );
        assert_eq!(f1.divergence.as_ref().unwrap().lost.count, Some(5));
        assert!(
            measure(&site, &st, &f1, old.clone(), None, t(960))
                .unwrap()
                .1
                .is_none(),
            "unchanged: no page"
        );
        // Confirmed read-only and snapshotted: the final report.
        let mut f2 = record(
            &f1,
            Step::ParameterReadOnly,
            Attempt::Observed("in-sync".into()),
            t(961),
        );
        f2 = record(
            &f2,
            Step::SqlReadOnly,
            Attempt::Observed("read_only=1".into()),
            t(962),
        );
        f2 = record(
            &f2,
            Step::EndSessions,
            Attempt::Observed("0 left".into()),
            t(963),
        );
        f2 = record(
            &f2,
            Step::Snapshot,
            Attempt::Observed("available".into()),
            t(964),
        );
        f2.snapshot_id = Some("orders-primary-fence-e4".into());
        let (f3, e) = measure(&site, &st, &f2, old, None, t(970)).unwrap();
        let lines = report(&f3);
        assert!(e.is_some());
        assert_eq!(lines[0], "DIVERGENCE (measured RPO): orders-primary (us-east-1) holds 5 transaction(s) the new primary never received");
        assert_eq!(lines[1], "  lost: domain 0: 0-1-101..0-1-105");
        assert!(
            lines.iter().any(|l| l == "  decided on: lag 2 s (current)"),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("DB snapshot `orders-primary-fence-e4`")),
            "{lines:?}"
        );
        // A position of another kind is a typed error, never a guess.
        let mysql = Position::MysqlGtid(
            GtidSet::parse("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5").unwrap(),
        );
        assert!(measure(&site, &st, &f3, mysql, None, t(980)).is_err());
        // Without a recorded promotion position there is nothing to measure against.
        let mut bare = f3.clone();
        bare.promoted_position = None;
        bare.divergence = None;
        assert!(measure(
            &site,
            &st,
            &bare,
            Position::MariadbGtid(MariaPos::default()),
            None,
            t(990)
        )
        .unwrap()
        .1
        .is_none());
    }

    #[test]
    fn the_fence_survives_the_ledger() {
        let site = orders(own_group());
        let st = pinned(&site);
        let j = serde_json::to_string(&st).unwrap();
        assert_eq!(serde_json::from_str::<SiteState>(&j).unwrap(), st);
    }
}

/// Records the promoted replica's executed position in the epoch's fence: what the divergence
/// report measures the old primary against. Called just before promotion is requested (with
/// GTIDs off that is the last moment the replica still reports the source coordinates it
/// executed) and again once it is promoted; a later reading replaces an earlier one, `None`
/// (unreadable, or coordinates reset by promotion) keeps it. A reading taken before promotion
/// can only be behind the replica's final one, so the range measured from it over-counts what
/// was lost (transactions applied after the reading), never under-counts. Nothing recorded: no
/// report can be computed, and the report says so by its absence.
pub fn note_promoted_position(st: &mut SiteState, position: Option<Position>) {
    let epoch = st.epoch;
    if let (Some(f), Some(p)) = (st.fence.as_mut().filter(|f| f.epoch == epoch), position) {
        f.promoted_position = Some(p);
    }
}

/// One DB parameter group attached to the old primary, as `DescribeDBInstances` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedGroup {
    pub name: String,
    /// `ParameterApplyStatus`: `in-sync`, `applying` or `pending-reboot`.
    pub apply_status: String,
}

/// Whether the parameter step may touch `configured` on an instance with `attached` groups:
/// only the group the site names, only while the instance uses it.
pub fn may_modify(configured: &str, db: &DbRef, attached: &[AttachedGroup]) -> Result<(), String> {
    if attached.iter().any(|g| g.name == configured) {
        return Ok(());
    }
    let names: Vec<&str> = attached.iter().map(|g| g.name.as_str()).collect();
    Err(format!(
        "{db} uses parameter group(s) [{}], not the configured `{configured}`: the tool modifies \
         only the group the site names as the primary's own; fix fence.parameter_group or set \
         read_only=1 by hand",
        names.join(", ")
    ))
}

/// The new primary must not use the group: RDS replicas commonly share their source's group, and
/// `read_only=1` set in it would make the new writer read-only too.
///
/// Only a group in the old primary's own region can be that group: a DB parameter group is a
/// regional resource (its ARN is `arn:aws:rds:<region>:<account>:pg:<name>`, "Amazon Resource
/// Names (ARNs) in Amazon RDS"; ModifyDBParameterGroup acts in the region it is sent to), so a
/// cross-region replica's group of the same name — what infrastructure-as-code makes in every
/// region — is another group, and refusing the fence for it would leave the old primary unfenced.
pub fn shared_with_new_primary(
    configured: &str,
    old_primary: &DbRef,
    new_primary: &DbRef,
    its_groups: &[AttachedGroup],
) -> Result<(), String> {
    if old_primary.region != new_primary.region {
        return Ok(());
    }
    if its_groups.iter().any(|g| g.name == configured) {
        return Err(format!(
            "the new primary {new_primary} uses the same parameter group `{configured}`: \
             read_only=1 there would stop the new writer too; give the old primary its own group, \
             or set read_only=1 on it by hand another way"
        ));
    }
    Ok(())
}

/// Whether the tick probes the old primary: not where every step is not applicable (Multi-AZ,
/// Aurora cluster): there the endpoint follows the writer, so it would answer as the new one.
pub fn watched(f: &FenceRecord) -> bool {
    !f.steps
        .iter()
        .all(|s| matches!(s.state, StepState::NotApplicable { .. }))
}

/// The parameter step's postcondition: the group holds `read_only=1` and the instance reports
/// it `in-sync` (RDS applied it; `applying` is not yet).
pub fn judge_parameter(
    configured: &str,
    value: Option<&str>,
    attached: &[AttachedGroup],
) -> Attempt {
    let status = attached
        .iter()
        .find(|g| g.name == configured)
        .map(|g| g.apply_status.as_str());
    match (value, status) {
        (Some("1"), Some("in-sync")) => Attempt::Observed(format!(
            "`{configured}` read_only=1, in-sync on the instance"
        )),
        (v, st) => Attempt::NotYet(format!(
            "`{configured}` read_only={}, instance reports {}",
            v.unwrap_or("(default)"),
            st.unwrap_or("the group not attached")
        )),
    }
}

/// The snapshot the fence takes of `f`'s old primary: one per epoch, so a retry finds it.
pub fn snapshot_id(f: &FenceRecord) -> String {
    format!("{}-fence-epoch-{}", f.old_primary.id, f.epoch)
}

/// The quarantine step's postcondition, as `DescribeDBInstances` reports the old primary's
/// `VpcSecurityGroups` (id, status): the site's quarantine group alone, `active`.
/// `ModifyDBInstance VpcSecurityGroupIds` replaces the whole list (RDS API Reference,
/// ModifyDBInstance), so any other group still listed means not yet.
pub fn judge_quarantine(sg: &str, db: &DbRef, groups: &[(String, String)]) -> Attempt {
    match groups {
        [(id, status)] if id == sg && status == "active" => {
            Attempt::Observed(format!("{db} is in security group {sg} alone (active)"))
        }
        _ => Attempt::NotYet(format!(
            "{db} security groups: {}",
            groups
                .iter()
                .map(|(id, st)| format!("{id} ({st})"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Whether the quarantine step must (still) ask RDS: the list is not the quarantine group alone.
pub fn needs_quarantine(sg: &str, groups: &[(String, String)]) -> bool {
    !matches!(groups, [(id, _)] if id == sg)
}

/// RDS starts a stopped instance again after seven days (RDS User Guide, "Stopping an Amazon RDS
/// DB instance temporarily"). A stop the fence observed, and the instance seen in any other state
/// than stopping/stopped: the stop step is pending again (a state change, so it pages), and the
/// reconciler stops it again. `None`: nothing to reopen.
pub fn reopen_stop(f: &FenceRecord, status: &str) -> Option<FenceRecord> {
    let stopped = matches!(f.state(Step::Stop), Some(StepState::Done { .. }));
    if !stopped || matches!(status, "stopped" | "stopping") {
        return None;
    }
    let mut next = f.clone();
    next.set(
        Step::Stop,
        StepState::Pending {
            attempts: 0,
            last: Some(format!(
                "{} was started again (status {status}; RDS starts a stopped instance after \
                 7 days): stopping it again",
                f.old_primary
            )),
        },
    );
    Some(next)
}

/// `StopDBInstance` is refused by RDS while the instance has read replicas (RDS User Guide,
/// "Stopping an Amazon RDS DB instance temporarily": "You can't stop a DB instance that has a read
/// replica, or that is a read replica").
pub fn may_stop(db: &DbRef, replicas: &[String]) -> Result<(), String> {
    if replicas.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{db} still has read replica(s) {}: RDS does not stop an instance with read replicas; \
         it stays up, fenced by read_only. Detach or delete them, then stop it by hand (RDS starts \
         a stopped instance again after seven days: stop it again, or delete it once reconciled)",
        replicas.join(", ")
    ))
}
