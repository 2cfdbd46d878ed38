//! `reprotect`: a new replica of the ledger's primary, so the site is protected again after a
//! failover — the pure half (the command, the state machine and its refusals). The evaluator's
//! tick drives it (functions/alarm-evaluator/src/reprotect.rs).
//!
//! ```text
//! waiting-for-region ──region answers──► enabling-backups ──BackupRetentionPeriod > 0──► creating
//!        ▲   │ dark: waits, says so once per state (no retry storm)                        │ created
//!        └───┘                                                                             ▼
//!                                  protected ◄──available, replicating from the primary, lag 0── catching-up
//! ```
//!
//! RDS facts it relies on: a replication source needs automated backups ("the source DB
//! instance must have backups enabled", Working with DB instance read replicas, RDS User Guide),
//! so the new primary's `BackupRetentionPeriod` is raised first when it is 0; the replica is
//! created with the site's own parameter group, security groups, subnet group and KMS key
//! ([`crate::config::ReprotectConfig`]; with none given RDS would use the region's default
//! group, which cannot be modified and so could never be fenced). Once protected, the ledger's
//! [`crate::topology::Topology`] gains the replica as its first candidate — no configuration edit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{DbRef, ReprotectConfig, SiteConfig};
use crate::decide::{refuse_command, Ctx, Decision};
use crate::events::EventType;
use crate::incident::SiteState;
use crate::signal::OperatorCommand;
use crate::topology::Topology;
use crate::verdict::{Guard, GuardCheck, GuardResult, Outcome, RefusalReason};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RpPhase {
    WaitingForRegion,
    EnablingBackups,
    Creating,
    CatchingUp,
    Protected,
    Failed,
}

/// One re-protection, in the ledger: resumable from any step, one in flight per site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReprotectRecord {
    /// Deduplicates a repeated command (the signal id of the command that started it).
    pub request_id: String,
    pub source: DbRef,
    pub replica: DbRef,
    pub config: ReprotectConfig,
    pub phase: RpPhase,
    pub requested_at: DateTime<Utc>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub protected_at: Option<DateTime<Utc>>,
    /// When the replica was created (the catch-up wait's start, for its deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

/// How long a created replica may take to be `available`, replicating and at lag 0 before the
/// re-protection is `failed` (with a page) instead of waiting for ever: 6 hours. RDS builds a
/// cross-region replica from a snapshot of the source and then replays what it missed, which
/// for a large database can take hours; beyond this a human looks (the replica is left as is).
pub const CATCH_UP_DEADLINE_SECS: i64 = 6 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("site {0} has no `reprotect` section: name the region, parameter group, security groups, subnet group and KMS key the replica gets")]
    NotConfigured(String),
    #[error("site {site} is {phase} at epoch {epoch}: re-protect once the incident is completed")]
    MidIncident {
        site: String,
        phase: crate::incident::Phase,
        epoch: u64,
    },
    #[error("site {site} is already protected: {replica} replicates from {primary} (the ledger's primary)")]
    AlreadyProtected {
        site: String,
        replica: String,
        primary: String,
    },
    #[error("a re-protection of site {site} is already in flight ({replica}, {phase:?})")]
    InFlight {
        site: String,
        replica: String,
        phase: RpPhase,
    },
}

/// Starts one, or says why not. A command with the in-flight record's request id is `Ok` with
/// that record (a duplicate delivery), never a second replica.
pub fn start(
    site: &SiteConfig,
    st: &SiteState,
    request_id: &str,
    replica_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ReprotectRecord, Refused> {
    if let Some(r) = st.reprotect.as_ref().filter(|r| !is_done(r.phase)) {
        if r.request_id == request_id {
            return Ok(r.clone());
        }
        return Err(Refused::InFlight {
            site: site.id.clone(),
            replica: r.replica.to_string(),
            phase: r.phase,
        });
    }
    if st.phase.is_open() {
        return Err(Refused::MidIncident {
            site: site.id.clone(),
            phase: st.phase,
            epoch: st.epoch,
        });
    }
    let config = site
        .reprotect
        .clone()
        .ok_or_else(|| Refused::NotConfigured(site.id.clone()))?;
    let source = crate::topology::effective(site, st).primary.clone();
    if let Some(r) = st
        .reprotect
        .as_ref()
        .filter(|r| r.phase == RpPhase::Protected && r.source == source)
    {
        return Err(Refused::AlreadyProtected {
            site: site.id.clone(),
            replica: r.replica.to_string(),
            primary: source.to_string(),
        });
    }
    let id = replica_id
        .map(String::from)
        .unwrap_or_else(|| format!("{}-rp{}", source.id, st.epoch));
    Ok(ReprotectRecord {
        request_id: request_id.into(),
        replica: DbRef {
            id: id.chars().take(63).collect(),
            region: config.region.clone(),
        },
        source,
        config,
        phase: RpPhase::WaitingForRegion,
        requested_at: now,
        note: None,
        protected_at: None,
        created_at: None,
    })
}

/// The evaluator's arm for `reprotect`: judged on the ledger, recorded in it (the tick then
/// drives it). Refused with no ledger write and no AWS call; the same command delivered again
/// (same request id) changes nothing.
pub(crate) fn command(
    mut cx: Ctx<'_>,
    original: &SiteState,
    cmd: &OperatorCommand,
    request_id: &str,
) -> Decision {
    let rec = match start(cx.configured, &cx.st, request_id, None, cx.now) {
        Ok(r) => r,
        Err(e) => {
            let d = e.to_string();
            cx.guard(GuardCheck::new(
                Guard::Command,
                GuardResult::Fail,
                d.clone(),
            ));
            return refuse_command(cx, original, RefusalReason::NotReprotectable, d);
        }
    };
    let again = cx.st.reprotect.as_ref() == Some(&rec);
    let by = cmd.operator.clone().unwrap_or_else(|| "an operator".into());
    let why = cmd.reason.clone().unwrap_or_default();
    let d = if again {
        format!(
            "re-protection of {} already in flight ({})",
            rec.source, rec.replica
        )
    } else {
        format!(
            "re-protection requested by {by}: {why}; the tick creates {} from {} with parameter group {} (the site is UNPROTECTED until it replicates with lag 0)",
            rec.replica, rec.source, rec.config.parameter_group
        )
    };
    cx.guard(GuardCheck::new(
        Guard::Command,
        GuardResult::Pass,
        d.clone(),
    ));
    if !again {
        cx.st.reprotect = Some(rec);
        cx.event(EventType::ReprotectChanged, &d, &Outcome::Watch);
    }
    cx.finish(original, Outcome::Watch, d)
}

/// The re-protection the tick still has to drive, if any.
pub fn in_flight(st: &SiteState) -> Option<&ReprotectRecord> {
    st.reprotect.as_ref().filter(|r| !is_done(r.phase))
}

fn is_done(p: RpPhase) -> bool {
    matches!(p, RpPhase::Protected | RpPhase::Failed)
}

/// What one tick observed for the record's current step.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The target region's RDS API did not answer (a dark region): wait.
    RegionDark(String),
    /// The source's `BackupRetentionPeriod` as read now.
    SourceBackups(u32),
    /// `CreateDBInstanceReadReplica` accepted, or the replica already exists (a resumed step).
    Created,
    /// The replica as described now.
    Replica {
        available: bool,
        replicating_from_source: bool,
        lag_secs: Option<f64>,
    },
    /// Something retrying cannot fix (access denied, a refused request).
    Failed(String),
}

/// The next record and, when the state or its reason changed, one message for people.
pub fn advance(
    rec: &ReprotectRecord,
    obs: Observation,
    now: DateTime<Utc>,
) -> (ReprotectRecord, Option<String>) {
    let mut next = rec.clone();
    let say = |n: &mut ReprotectRecord, phase: RpPhase, note: String| {
        let changed = n.phase != phase || n.note.as_deref() != Some(note.as_str());
        n.phase = phase;
        n.note = Some(note.clone());
        changed.then_some(note)
    };
    let r = &rec.replica;
    let msg = match (rec.phase, obs) {
        (p, _) if is_done(p) => None,
        (_, Observation::Failed(why)) => say(&mut next, RpPhase::Failed, format!(
            "re-protection of {} FAILED: {why}; the site is still UNPROTECTED", rec.source
        )),
        (RpPhase::WaitingForRegion | RpPhase::EnablingBackups | RpPhase::Creating, Observation::RegionDark(why)) => {
            say(&mut next, RpPhase::WaitingForRegion, format!(
                "the site is UNPROTECTED: {} does not answer ({why}); {r} is created once it does", r.region
            ))
        }
        (RpPhase::WaitingForRegion | RpPhase::EnablingBackups, Observation::SourceBackups(0)) => {
            say(&mut next, RpPhase::EnablingBackups, format!(
                "the site is UNPROTECTED: turning on automated backups on {} (a replication source needs them)", rec.source
            ))
        }
        (RpPhase::WaitingForRegion | RpPhase::EnablingBackups, Observation::SourceBackups(_)) => {
            say(&mut next, RpPhase::Creating, format!(
                "the site is UNPROTECTED: creating {r} from {} with parameter group {}", rec.source, rec.config.parameter_group
            ))
        }
        (RpPhase::Creating, Observation::Created) => {
            next.created_at = Some(now);
            say(&mut next, RpPhase::CatchingUp, format!(
                "the site is UNPROTECTED until {r} is available and replicating with lag 0"
            ))
        }
        (RpPhase::CatchingUp, Observation::Replica { available: true, replicating_from_source: true, lag_secs: Some(l) }) if l <= 0.0 => {
            next.protected_at = Some(now);
            say(&mut next, RpPhase::Protected, format!(
                "the site is protected again: {r} replicates from {} with lag 0 and is a candidate", rec.source
            ))
        }
        (RpPhase::CatchingUp, obs) => {
            // A record written before `created_at` existed starts its deadline now.
            let since = *next.created_at.get_or_insert(now);
            if (now - since).num_seconds() > CATCH_UP_DEADLINE_SECS {
                say(&mut next, RpPhase::Failed, format!(
                    "re-protection of {} FAILED: {r} was created at {since} but is not available, replicating from it \
                     with lag 0 after {} h (last seen: {}); the site is still UNPROTECTED. The replica is left as is: \
                     look at it in {} (its status, ReplicaLag, RDS events), then delete it or `reprotect` again",
                    rec.source, CATCH_UP_DEADLINE_SECS / 3600, seen(&obs), r.region
                ))
            } else {
                None
            }
        }
        // Anything else: the step is not done yet; ask again next tick, saying nothing new.
        _ => None,
    };
    (next, msg)
}

fn seen(obs: &Observation) -> String {
    match obs {
        Observation::Replica {
            available,
            replicating_from_source,
            lag_secs,
        } => format!(
            "{}, {}, lag {}",
            if *available {
                "available"
            } else {
                "not available"
            },
            if *replicating_from_source {
                "replicating from the source"
            } else {
                "not replicating from the source"
            },
            lag_secs.map_or("unknown".into(), |l| format!("{l} s"))
        ),
        other => format!("{other:?}"),
    }
}

/// The record to write after one driven step: `rec` in the ledger, the topology gaining the
/// replica once it is protected, and `message` (a state change) in the outbox as one
/// `ReprotectChanged`. `None`: nothing changed, nothing to write.
pub fn commit(
    site: &SiteConfig,
    st: &SiteState,
    rec: ReprotectRecord,
    message: Option<String>,
    now: DateTime<Utc>,
) -> Option<SiteState> {
    if st.reprotect.as_ref() == Some(&rec) && message.is_none() {
        return None;
    }
    let mut next = st.clone();
    if let Some(t) = protected_topology(site, st, &rec, now) {
        next.topology = Some(t);
    }
    next.reprotect = Some(rec.clone());
    if let Some(summary) = message {
        let result = if rec.phase == RpPhase::Failed {
            GuardResult::Fail
        } else {
            GuardResult::Pass
        };
        next.outbox.push(crate::events::DomainEvent {
            event_type: EventType::ReprotectChanged,
            site: site.id.clone(),
            epoch: st.epoch,
            phase: st.phase,
            engine: site.engine.kind().into(),
            occurred_at: now,
            primary: Some(rec.source.clone()),
            candidate: Some(rec.replica.clone()),
            rpo_override: None,
            verdict: crate::verdict::Verdict {
                site: Some(site.id.clone()),
                epoch: st.epoch,
                phase: st.phase,
                outcome: Outcome::Watch,
                summary: summary.clone(),
                guards: vec![GuardCheck::new(Guard::Command, result, summary)],
            },
            timeline: vec![],
        });
    }
    next.version = st.version + 1;
    next.updated_at = Some(now);
    Some(next)
}

/// The ledger's topology once `rec` is protected: the replica first among the candidates.
pub fn protected_topology(
    site: &SiteConfig,
    st: &SiteState,
    rec: &ReprotectRecord,
    now: DateTime<Utc>,
) -> Option<Topology> {
    if rec.phase != RpPhase::Protected {
        return None;
    }
    let mut t = st.topology.clone().unwrap_or_else(|| Topology {
        epoch: st.epoch,
        primary: site.primary.clone(),
        endpoint: None,
        candidates: site.candidates.clone(),
        at: now,
        configured_primary: Some(site.primary.clone()),
    });
    t.candidates.retain(|c| c.id != rec.replica.id);
    t.candidates.insert(0, rec.replica.clone());
    Some(t)
}

/// What status and every message says while the ledger's primary has no re-protection done.
pub fn unprotected(st: &SiteState) -> Option<String> {
    let t = st.topology.as_ref()?;
    let done = st
        .reprotect
        .as_ref()
        .is_some_and(|r| r.phase == RpPhase::Protected && r.source == t.primary);
    (!done).then(|| {
        format!(
            "UNPROTECTED: {} has no replica the ledger counts; `reprotect` creates one",
            t.primary
        )
    })
}

#[cfg(test)]
mod tests;
