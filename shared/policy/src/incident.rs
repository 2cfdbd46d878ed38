//! The per-site incident state machine and the ledger record it lives in.
//!
//! One record per site holds the current phase, the **epoch** (a number that only goes up; every
//! incident gets a new one and every later step must present it, so a slow or replayed step from an
//! older incident can never act on a newer one) and the facts the guards need across invocations:
//! when the outage was first seen, the last good replica lag, the pause switch, the last failover.
//!
//! Transitions are validated here, purely; the ledger adapter only makes the write conditional on
//! the record's `version` (optimistic concurrency), so two evaluators racing on the same site cannot
//! both win.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::DbRef;
use crate::events::DomainEvent;
use crate::evidence::LagSample;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Idle,
    Suspected,
    AwaitingApproval,
    Refused,
    Shadowed,
    Promoting,
    Promoted,
    DnsPinned,
    Completed,
    Aborted,
    Failed,
}

impl Phase {
    /// An open incident owns the site: no second incident may start until it closes.
    pub fn is_open(self) -> bool {
        !matches!(
            self,
            Phase::Idle | Phase::Completed | Phase::Aborted | Phase::Failed
        )
    }

    /// A failover is being carried out; the evaluator must not decide anything new.
    pub fn is_in_flight(self) -> bool {
        matches!(self, Phase::Promoting | Phase::Promoted | Phase::DnsPinned)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Suspected => "suspected",
            Phase::AwaitingApproval => "awaiting-approval",
            Phase::Refused => "refused",
            Phase::Shadowed => "shadowed",
            Phase::Promoting => "promoting",
            Phase::Promoted => "promoted",
            Phase::DnsPinned => "dns-pinned",
            Phase::Completed => "completed",
            Phase::Aborted => "aborted",
            Phase::Failed => "failed",
        }
    }

    /// The legal moves. Staying in the same phase is always legal (idempotent re-delivery).
    pub fn can_move_to(self, to: Phase) -> bool {
        use Phase::*;
        if self == to {
            return true;
        }
        match self {
            Idle | Completed | Aborted | Failed => matches!(to, Suspected | Promoting),
            Suspected => matches!(
                to,
                AwaitingApproval | Refused | Shadowed | Promoting | Aborted
            ),
            AwaitingApproval => matches!(to, Promoting | Refused | Aborted),
            Refused => matches!(to, Promoting | AwaitingApproval | Shadowed | Aborted),
            Shadowed => matches!(to, Promoting | Aborted),
            // Aborted: the promoter's re-check before asking RDS found the decision too old or
            // the primary alive again; nothing was asked of RDS.
            Promoting => matches!(to, Promoted | Failed | Aborted),
            Promoted => matches!(to, DnsPinned | Failed),
            DnsPinned => matches!(to, Completed | Failed),
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("illegal transition {from} -> {to}")]
    Illegal { from: Phase, to: Phase },
    #[error("stale epoch: the site is at epoch {current}, the step presented {presented}")]
    StaleEpoch { current: u64, presented: u64 },
    #[error("an incident is already open at epoch {epoch} (phase {phase})")]
    AlreadyOpen { epoch: u64, phase: Phase },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub by: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpoOverride {
    pub by: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub phase: Phase,
    pub at: DateTime<Utc>,
    pub note: String,
}

/// RDS's own failover (Multi-AZ, Aurora cluster, global) seen in progress: we must not race it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedFailover {
    pub event_id: String,
    pub source_id: String,
    pub at: DateTime<Utc>,
}

/// How many recent delivery ids the record remembers for dedupe.
pub const RECENT_SIGNALS: usize = 64;

/// The ledger record for one site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteState {
    pub site: String,
    /// Bumped on every write; the ledger's compare-and-set token. 0 = never written.
    pub version: u64,
    /// Incident number; bumped when an incident opens. 0 = never had one.
    pub epoch: u64,
    pub phase: Phase,
    /// When the current incident's first outage evidence was seen.
    #[serde(default)]
    pub first_seen: Option<DateTime<Utc>>,
    /// Since when the quorum has been met without interruption (the sustained window).
    #[serde(default)]
    pub quorum_since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub candidate: Option<DbRef>,
    #[serde(default)]
    pub last_good_lag: BTreeMap<String, LagSample>,
    #[serde(default)]
    pub paused: Option<Pause>,
    #[serde(default)]
    pub last_failover_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub rpo_override: Option<RpoOverride>,
    #[serde(default)]
    pub managed_failover: Option<ManagedFailover>,
    /// Candidates an RDS "backup started" event was seen for, and not yet "finished".
    #[serde(default)]
    pub backups_running: BTreeSet<String>,
    /// When each running backup was first seen (event or `backing-up` status).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backup_started_at: BTreeMap<String, DateTime<Utc>>,
    #[serde(default)]
    pub recent_signals: VecDeque<String>,
    /// The current incident's timeline (cleared when a new incident opens).
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
    /// Transactional outbox: events committed with this record but not yet confirmed emitted.
    #[serde(default)]
    pub outbox: Vec<DomainEvent>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// The promotion of the current epoch: what was asked of RDS and when, so a continuation or a
    /// re-delivery resumes watching instead of asking twice.
    #[serde(default)]
    pub promotion: Option<PromotionRecord>,
    /// The writer DNS record as it was before this epoch pinned it (for failback and unpin).
    #[serde(default)]
    pub dns: Option<DnsRecord>,
    /// Why the current epoch failed, when it did.
    #[serde(default)]
    pub failure: Option<String>,
    /// The live topology after a completed failover (the configuration is only the initial one):
    /// see [`crate::topology`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<crate::topology::Topology>,
    /// Candidates whose replication is known broken (an RDS replication-error event, or a
    /// `StatusInfos` status other than `replicating`), until it is observed healthy again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replication_broken: BTreeMap<String, crate::evidence::ReplicationBreak>,
    /// A manual failover forced while the primary answered: who, why, for which epoch. The
    /// promoter does not re-check that such a primary is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced: Option<Forced>,
    /// The in-flight phase whose deadline has been paged (phase, epoch), so it pages once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overdue: Option<(Phase, u64)>,
    /// What the current incident paged and saw (see [`crate::flap`]).
    #[serde(default)]
    pub noise: crate::flap::Noise,
    /// What the voters looked like across evaluations: warnings in progress (announced once per
    /// episode) and since when RDS has been seen recovering by itself (`crate::vantage`,
    /// `crate::recovery`).
    #[serde(default, skip_serializing_if = "crate::vantage::Watchlist::is_empty")]
    pub watch: crate::vantage::Watchlist,
    /// How and when the current epoch's failover was decided, written by the evaluator with the
    /// decision. The promoter re-checks against it before asking RDS: the decision's age, and
    /// whether the primary may be alive (only a forced manual failover or a planned switchover).
    /// Absent (records written before it existed): treated as an automatic decision made when the
    /// timeline says the epoch entered `promoting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// When the dns-pinner last handed the pin on to itself (`DnsPinContinued`): the token only
    /// the newest link of that chain presents, so a duplicate delivery of a continuation, or of
    /// the `ReplicaPromoted` that started it, cannot start a second chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_continued_at: Option<DateTime<Utc>>,
    /// A `data-plane-switch` site's switch for this epoch: set, and whether the records are still
    /// to be pinned through Route 53's API (`crate::dataplane`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_plane_switch: Option<crate::dataplane::SwitchRecord>,
    /// `data-plane-switch`: the SECONDARY record's value as last read before a switch
    /// (`crate::secondary`): what decides when Route 53's API is dark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_reading: Option<crate::secondary::SecondaryReading>,
    /// The epoch whose switch was refused because the SECONDARY named another host (paged once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_refused: Option<u64>,
    /// The old primary's fence and divergence report for the epoch that failed over away from
    /// it, recorded with the decision (see [`crate::fence`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<crate::fence::FenceRecord>,
    /// The re-check the evaluator armed for the end of the current sustained window (see
    /// [`crate::recheck`]), so it is armed once per window, not once per evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recheck: Option<crate::recheck::Armed>,
    /// What the evaluator's last decision was made on (signal, evidence, time, outcome, the
    /// configuration's version), written with the record so the audit trail can be re-decided
    /// under another configuration (`rds-failover what-if`, [`crate::whatif`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<crate::whatif::Observation>,
    /// The planned switchover of the current epoch, when it is one (see [`crate::switchover`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switchover: Option<crate::switchover::SwitchoverRecord>,
    /// An `unpin` asked for and how far it got (see [`crate::unpin`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpin: Option<crate::unpin::UnpinRecord>,
    /// The writer name's shape before the first of a run of pins (a failover, then a switchover
    /// back): what `unpin` restores. Carried over by a pin that finds the name as the previous
    /// pin left it (see [`crate::unpin::carry`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_dns: Option<crate::unpin::Original>,
    /// A re-protection in flight or done (see [`crate::reprotect`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprotect: Option<crate::reprotect::ReprotectRecord>,
    /// The drill in flight, or the last one (see [`crate::drill`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<crate::drill::DrillRecord>,
    /// The last [`crate::drill::HISTORY`] drills that ended, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drills: Vec<crate::drill::DrillRecord>,
}

/// A failover an operator forced past the live-primary guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forced {
    pub epoch: u64,
    pub by: String,
    pub reason: String,
    pub at: DateTime<Utc>,
    /// The primary answered when the failover was forced (an RDS read replica site): the
    /// promoter asks RDS only once the old primary is fenced — `read_only=1` through its own
    /// parameter group, confirmed over SQL ([`crate::fence::fenced_first`]).
    #[serde(default)]
    pub fence_first: bool,
}

/// What started the current epoch's failover. Only a human's explicit word lets the promoter
/// act while the primary looks alive; everything else must find it still down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionTrigger {
    /// The quorum held for the sustained window (approval mode `auto`).
    #[default]
    Automatic,
    /// A human approved an automatic decision (`approve`).
    Approved,
    /// A human's `failover` command, without `force`.
    Manual,
    /// A human's `failover` with `force: true` and a reason: may target a live primary.
    ManualForced,
    /// A planned switchover: the primary is expected to be alive.
    PlannedSwitchover,
}

impl DecisionTrigger {
    /// Whether the failover may go ahead although the primary answers.
    pub fn may_target_live_primary(self) -> bool {
        matches!(
            self,
            DecisionTrigger::ManualForced | DecisionTrigger::PlannedSwitchover
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DecisionTrigger::Automatic => "automatic",
            DecisionTrigger::Approved => "approved",
            DecisionTrigger::Manual => "manual",
            DecisionTrigger::ManualForced => "manual-forced",
            DecisionTrigger::PlannedSwitchover => "planned-switchover",
        }
    }
}

/// The evaluator's record of one epoch's decision to fail over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub epoch: u64,
    pub trigger: DecisionTrigger,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the replica-promoter asked RDS to do for one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionRecord {
    pub epoch: u64,
    pub candidate: crate::config::DbRef,
    /// The RDS action, e.g. `PromoteReadReplica`, `FailoverDBCluster`, `FailoverGlobalCluster`.
    pub action: String,
    pub requested_at: DateTime<Utc>,
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// The new primary's endpoint `host:port`, once known.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub writable_verified_at: Option<DateTime<Utc>>,
    /// A human's word that this promotion is dealt with (`complete` naming its epoch after the
    /// epoch failed unpinned): it no longer holds automation back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Box<Resolution>>,
}

/// Who declared an unpinned promotion dealt with, why and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub by: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// A Route 53 record set as the dns-pinner found it, and what it set it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub epoch: u64,
    pub zone_id: String,
    pub name: String,
    pub record_type: String,
    #[serde(default)]
    pub set_identifier: Option<String>,
    /// The previous values (empty if the record did not exist).
    pub previous_values: Vec<String>,
    #[serde(default)]
    pub previous_ttl: Option<i64>,
    pub new_value: String,
    #[serde(default)]
    pub change_id: Option<String>,
    #[serde(default)]
    pub insync_at: Option<DateTime<Utc>>,
    /// Every record set of the writer name and type as it was before this epoch changed it (both
    /// members of a failover pair), exactly as Route 53 held them: the change deletes precisely
    /// these (a compare-and-set Route 53 enforces) and failback knows what to restore. `Some(vec![])`:
    /// the name did not exist. `None`: a record written before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_records: Option<Vec<crate::pin::RecordSet>>,
}

impl SiteState {
    pub fn new(site: impl Into<String>) -> Self {
        Self {
            site: site.into(),
            version: 0,
            epoch: 0,
            phase: Phase::Idle,
            first_seen: None,
            quorum_since: None,
            candidate: None,
            last_good_lag: BTreeMap::new(),
            paused: None,
            last_failover_at: None,
            rpo_override: None,
            managed_failover: None,
            backups_running: BTreeSet::new(),
            backup_started_at: BTreeMap::new(),
            recent_signals: VecDeque::new(),
            timeline: vec![],
            outbox: vec![],
            updated_at: None,
            promotion: None,
            dns: None,
            failure: None,
            topology: None,
            replication_broken: BTreeMap::new(),
            forced: None,
            overdue: None,
            noise: crate::flap::Noise::default(),
            watch: Default::default(),
            decision: None,
            pin_continued_at: None,
            data_plane_switch: None,
            secondary_reading: None,
            switch_refused: None,
            fence: None,
            recheck: None,
            observation: None,
            switchover: None,
            unpin: None,
            original_dns: None,
            reprotect: None,
            drill: None,
            drills: vec![],
        }
    }

    /// Opens a new incident: a fresh epoch, a fresh timeline.
    pub fn open_incident(
        &mut self,
        at: DateTime<Utc>,
        note: impl Into<String>,
    ) -> Result<u64, TransitionError> {
        if self.phase.is_open() {
            return Err(TransitionError::AlreadyOpen {
                epoch: self.epoch,
                phase: self.phase,
            });
        }
        self.epoch += 1;
        self.phase = Phase::Suspected;
        self.first_seen = Some(at);
        self.quorum_since = None;
        self.candidate = None;
        self.rpo_override = None;
        self.timeline = vec![TimelineEntry {
            phase: Phase::Suspected,
            at,
            note: note.into(),
        }];
        Ok(self.epoch)
    }

    /// Moves the current incident to `to`, fenced by `epoch`. Same phase is a no-op (Ok(false)).
    pub fn transition(
        &mut self,
        epoch: u64,
        to: Phase,
        at: DateTime<Utc>,
        note: impl Into<String>,
    ) -> Result<bool, TransitionError> {
        if epoch != self.epoch {
            return Err(TransitionError::StaleEpoch {
                current: self.epoch,
                presented: epoch,
            });
        }
        if !self.phase.can_move_to(to) {
            return Err(TransitionError::Illegal {
                from: self.phase,
                to,
            });
        }
        if self.phase == to {
            return Ok(false);
        }
        self.phase = to;
        self.timeline.push(TimelineEntry {
            phase: to,
            at,
            note: note.into(),
        });
        if !to.is_open() {
            self.first_seen = None;
            self.quorum_since = None;
        }
        Ok(true)
    }

    /// Remembers a delivery id; returns false when it was already seen (a duplicate).
    pub fn remember_signal(&mut self, id: &str) -> bool {
        if self.recent_signals.iter().any(|s| s == id) {
            return false;
        }
        self.recent_signals.push_back(id.to_string());
        while self.recent_signals.len() > RECENT_SIGNALS {
            self.recent_signals.pop_front();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn every_phase_pair_is_either_legal_or_a_typed_error() {
        use Phase::*;
        let all = [
            Idle,
            Suspected,
            AwaitingApproval,
            Refused,
            Shadowed,
            Promoting,
            Promoted,
            DnsPinned,
            Completed,
            Aborted,
            Failed,
        ];
        let legal: BTreeSet<(Phase, Phase)> = [
            (Idle, Suspected),
            (Idle, Promoting),
            (Completed, Suspected),
            (Completed, Promoting),
            (Aborted, Suspected),
            (Aborted, Promoting),
            (Failed, Suspected),
            (Failed, Promoting),
            (Suspected, AwaitingApproval),
            (Suspected, Refused),
            (Suspected, Shadowed),
            (Suspected, Promoting),
            (Suspected, Aborted),
            (AwaitingApproval, Promoting),
            (AwaitingApproval, Refused),
            (AwaitingApproval, Aborted),
            (Refused, Promoting),
            (Refused, AwaitingApproval),
            (Refused, Shadowed),
            (Refused, Aborted),
            (Shadowed, Promoting),
            (Shadowed, Aborted),
            (Promoting, Promoted),
            (Promoting, Failed),
            (Promoting, Aborted),
            (Promoted, DnsPinned),
            (Promoted, Failed),
            (DnsPinned, Completed),
            (DnsPinned, Failed),
        ]
        .into_iter()
        .collect();
        for from in all {
            for to in all {
                let expected = from == to || legal.contains(&(from, to));
                assert_eq!(from.can_move_to(to), expected, "{from} -> {to}");
                let mut s = SiteState::new("x");
                s.phase = from;
                s.epoch = 3;
                let r = s.transition(3, to, t(0), "");
                if expected {
                    assert!(r.is_ok());
                } else {
                    assert_eq!(r, Err(TransitionError::Illegal { from, to }));
                }
            }
        }
    }

    #[test]
    fn epochs_only_go_up_and_fence_every_step() {
        let mut s = SiteState::new("orders");
        assert_eq!(s.open_incident(t(0), "alarm").unwrap(), 1);
        assert!(matches!(
            s.open_incident(t(1), "again"),
            Err(TransitionError::AlreadyOpen { epoch: 1, .. })
        ));
        s.transition(1, Phase::Aborted, t(2), "recovered").unwrap();
        assert_eq!(s.open_incident(t(3), "alarm").unwrap(), 2);
        assert_eq!(
            s.transition(1, Phase::Promoting, t(4), ""),
            Err(TransitionError::StaleEpoch {
                current: 2,
                presented: 1
            })
        );
        assert_eq!(s.transition(2, Phase::Promoting, t(4), "decided"), Ok(true));
        assert_eq!(
            s.transition(2, Phase::Promoting, t(5), "dup"),
            Ok(false),
            "same phase is idempotent"
        );
        assert_eq!(s.timeline.len(), 2);
    }

    #[test]
    fn recent_signals_dedupe_and_stay_bounded() {
        let mut s = SiteState::new("orders");
        assert!(s.remember_signal("a"));
        assert!(!s.remember_signal("a"));
        for i in 0..200 {
            s.remember_signal(&i.to_string());
        }
        assert_eq!(s.recent_signals.len(), RECENT_SIGNALS);
    }
}
