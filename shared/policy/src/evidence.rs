//! What the evaluator saw when it looked: alarm states, RDS status, replica lag, the SQL canary.
//!
//! Evidence is plain data gathered by the adapters and judged here. The rules that matter:
//! `INSUFFICIENT_DATA` and a failed read are *unknown*, never healthy; a replica lag of -1 (what
//! RDS reports when replication has stopped — exactly when the primary is gone) is "no reading",
//! so the last known good value is used instead.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{AlarmRole, DbRef};
use crate::signal::AlarmState;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub alarms: Vec<AlarmEvidence>,
    pub primary: DbObservation,
    pub candidates: Vec<CandidateEvidence>,
    pub canary: CanaryResult,
    /// Whether DescribeDBInstances says the primary is a Multi-AZ deployment (`None`: unread, or
    /// not an instance). A Multi-AZ primary that is `rebooting` is most likely RDS failing over to
    /// its standby, which the policy gives time before racing it (`crate::recovery`).
    #[serde(default)]
    pub primary_multi_az: Option<bool>,
    /// The region this evidence was gathered from (the deployment's, where the canary runs and
    /// where alarms without a `region` live). Lets the policy tell the DR side's view from the
    /// witness's (`crate::vantage`).
    #[serde(default)]
    pub vantage_region: Option<String>,
    /// Whether the primary replicates by GTID (MySQL `gtid_mode=ON`, MariaDB's GTIDs), read over
    /// SQL for a `switchover` command only (`None`: not read, or unreadable). A switchover waits
    /// for the target on GTIDs; binlog coordinates are not supported, and are refused up front.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_gtid: Option<bool>,
    /// `read_only` as the parameter groups attached to a switchover's possible targets hold it
    /// (the candidates and a `reprotect` replica), read for the `switchover`, `failback`, `drill`
    /// and `approve` commands and a drill's ticks only. An explicit `read_only=1` stays in force
    /// after `PromoteReadReplica` (see [`GroupReadOnly`]), so a switchover to such a target is
    /// refused before anything is fenced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_only_groups: Vec<GroupReadOnly>,
}

/// One parameter group attached to a would-be switchover target, and `read_only` as the group
/// holds it. RDS: "`read_only` ... default `{TrueIfReplica}`" — only that default formula follows
/// the instance's role; a value set explicitly in the group applies to the instance whatever its
/// role (RDS User Guide, "Parameters for MySQL" / "Working with parameter groups": a parameter set
/// in a custom DB parameter group overrides the engine default). A promoted replica whose group
/// holds `read_only=1` therefore stays read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupReadOnly {
    /// The instance the group is attached to.
    pub db: String,
    pub group: String,
    /// `read_only` set in the group (`None`: not set, the engine default applies).
    pub read_only: Option<String>,
}

impl Evidence {
    /// The group attached to `db` that holds an explicit `read_only=1`, if any.
    pub fn read_only_group_of(&self, db: &str) -> Option<&str> {
        self.read_only_groups
            .iter()
            .find(|g| g.db == db && matches!(g.read_only.as_deref(), Some("1") | Some("ON")))
            .map(|g| g.group.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmEvidence {
    pub name: String,
    pub role: AlarmRole,
    /// `None` when the alarm could not be read (missing, API error): unknown.
    pub state: Option<AlarmState>,
}

/// One database's status as the RDS API reported it, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DbObservation {
    /// The RDS status string, e.g. `available`, `rebooting`, `failed`.
    Status { status: String },
    /// The API said the resource does not exist. This votes *unknown*: a typo in the site
    /// config, or an identifier the DR-side credentials cannot see, must never be enough to
    /// fail over. A primary that really vanished also trips its availability alarm and canary.
    NotFound,
    /// The API could not be reached or refused us (throttled, timed out, region down).
    Unreadable { error: String },
}

/// What one piece of evidence says about the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vote {
    Up,
    Down,
    Unknown,
}

/// RDS statuses in which the database cannot serve and will not by itself (DescribeDBInstances
/// "DB instance status" table). Transitional statuses (rebooting, modifying, backing-up, ...) are
/// unknown: a maintenance reboot must not look like an outage.
const DOWN_STATUSES: &[&str] = &[
    "failed",
    "inaccessible-encryption-credentials",
    "inaccessible-encryption-credentials-recoverable",
    "incompatible-network",
    "incompatible-option-group",
    "incompatible-parameters",
    "incompatible-restore",
    "insufficient-capacity",
    "restore-error",
    "storage-full",
    "stopped",
    "stopping",
    "deleting",
    "deleted",
];

/// Statuses someone chose (a stop): real unavailability, but not a reason to fail over on our own.
pub const DELIBERATE_STATUSES: &[&str] = &["stopped", "stopping"];

impl DbObservation {
    pub fn status(s: impl Into<String>) -> Self {
        Self::Status { status: s.into() }
    }

    pub fn vote(&self) -> Vote {
        match self {
            Self::Status { status } if status == "available" => Vote::Up,
            Self::Status { status } if DOWN_STATUSES.contains(&status.as_str()) => Vote::Down,
            Self::Status { .. } => Vote::Unknown,
            Self::NotFound => Vote::Unknown,
            Self::Unreadable { .. } => Vote::Unknown,
        }
    }

    pub fn is_available(&self) -> bool {
        matches!(self, Self::Status { status } if status == "available")
    }

    pub fn is_deliberately_stopped(&self) -> bool {
        matches!(self, Self::Status { status } if DELIBERATE_STATUSES.contains(&status.as_str()))
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Status { status } => status.clone(),
            Self::NotFound => "not found".into(),
            Self::Unreadable { error } => format!("unreadable ({error})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateEvidence {
    pub db: DbRef,
    pub status: DbObservation,
    /// Whether the topology shows this candidate replicating from the configured primary
    /// (read replica source, cluster member, global secondary). `None` when unreadable.
    pub replica_of_primary: Option<bool>,
    /// Replica lag in seconds as the newest datapoint reads; `None` when missing or -1.
    pub lag_secs: Option<f64>,
    /// When that datapoint was taken (the end of its period); `None`: at the read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_at: Option<DateTime<Utc>>,
    /// RDS's `StatusInfos` read-replication status (`replicating`, `error`, `stopped`, ...);
    /// `None` when RDS reported none or the topology was unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<String>,
    /// When RDS says the instance was created: a re-created replica with the same id is another
    /// database, and the samples kept for the old one say nothing about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

impl CandidateEvidence {
    /// Normalises a raw metric value: negative (RDS's -1 for "replication stopped"), NaN or
    /// infinite readings are no reading at all.
    pub fn lag_from_metric(raw: Option<f64>) -> Option<f64> {
        raw.filter(|v| v.is_finite() && *v >= 0.0)
    }

    /// A published reading as the evidence keeps it: the normalised value and when it was taken
    /// (both `None` when there is no usable reading).
    pub fn lag_fields(raw: Option<LagReading>) -> (Option<f64>, Option<DateTime<Utc>>) {
        match raw.and_then(|r| Self::lag_from_metric(Some(r.secs)).map(|s| (s, r.at))) {
            Some((secs, at)) => (Some(secs), Some(at)),
            None => (None, None),
        }
    }
}

/// One replica-lag datapoint as CloudWatch published it: the value in seconds (RDS's -1 kept)
/// and the latest time the datapoint can describe (the end of its one-minute period, never
/// after the read). A datapoint minutes old is not "now": the RPO guards judge it by `at`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LagReading {
    pub secs: f64,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CanaryResult {
    /// Connected and ran the canary query.
    Reachable { latency_ms: u64 },
    /// The server answered the connection with an error of its own: access denied (1044, 1045,
    /// 1698), too many connections (1040), host blocked (1129), unknown database (1049), secure
    /// transport required (3159), or a TLS certificate we do not trust. Only a live server can say
    /// any of that, so this votes *up* — and the canary itself needs fixing (`crate::vantage`).
    Answered {
        /// The MySQL error number, when the server sent one (a certificate problem has none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<u16>,
        error: String,
    },
    /// Refused, reset, timed out or unroutable: the primary does not answer from the DR side.
    Unreachable { error: String },
    /// No canary configured, or its credentials could not be read: no vote.
    Unknown { reason: String },
}

impl CanaryResult {
    pub fn vote(&self) -> Vote {
        match self {
            Self::Reachable { .. } | Self::Answered { .. } => Vote::Up,
            Self::Unreachable { .. } => Vote::Down,
            Self::Unknown { .. } => Vote::Unknown,
        }
    }
}

impl AlarmEvidence {
    /// Only availability alarms vote; ALARM is down, OK is up, INSUFFICIENT_DATA or unread is unknown.
    pub fn vote(&self) -> Option<Vote> {
        if self.role != AlarmRole::Availability {
            return None;
        }
        Some(match self.state {
            Some(AlarmState::Alarm) => Vote::Down,
            Some(AlarmState::Ok) => Vote::Up,
            Some(AlarmState::InsufficientData) | None => Vote::Unknown,
        })
    }
}

/// The tally of independent votes on "is the primary down?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub down: u32,
    pub up: u32,
    pub unknown: u32,
    /// One line per voter, e.g. `alarm orders-primary-availability: ALARM -> down`.
    pub voters: Vec<String>,
}

impl Tally {
    pub fn total(&self) -> u32 {
        self.down + self.up + self.unknown
    }
}

impl Evidence {
    pub fn tally(&self) -> Tally {
        let mut t = Tally {
            down: 0,
            up: 0,
            unknown: 0,
            voters: vec![],
        };
        let mut add = |who: String, v: Vote| {
            match v {
                Vote::Down => t.down += 1,
                Vote::Up => t.up += 1,
                Vote::Unknown => t.unknown += 1,
            }
            t.voters.push(format!("{who} -> {}", vote_word(v)));
        };
        for a in &self.alarms {
            if let Some(v) = a.vote() {
                let s = a
                    .state
                    .map(|s| format!("{s:?}"))
                    .unwrap_or_else(|| "unreadable".into());
                add(format!("alarm {}: {s}", a.name), v);
            }
        }
        add(
            format!("rds status of primary: {}", self.primary.describe()),
            self.primary.vote(),
        );
        match &self.canary {
            CanaryResult::Unknown { reason } if reason == NO_CANARY => {}
            c => add(format!("sql canary: {}", canary_word(c)), c.vote()),
        }
        t
    }

    /// Any availability alarm of the site currently in ALARM.
    pub fn any_alarm_firing(&self) -> bool {
        self.alarms
            .iter()
            .any(|a| a.state == Some(AlarmState::Alarm) && a.role == AlarmRole::Availability)
    }
}

/// The reason string adapters use when the site has no canary configured (no vote at all).
pub const NO_CANARY: &str = "no canary configured";

pub(crate) fn vote_word(v: Vote) -> &'static str {
    match v {
        Vote::Up => "up",
        Vote::Down => "down",
        Vote::Unknown => "unknown",
    }
}

pub(crate) fn canary_word(c: &CanaryResult) -> String {
    match c {
        CanaryResult::Reachable { latency_ms } => format!("reachable in {latency_ms} ms"),
        CanaryResult::Answered { error, .. } => {
            format!("answered with an error, so the server is alive ({error})")
        }
        CanaryResult::Unreachable { error } => format!("unreachable ({error})"),
        CanaryResult::Unknown { reason } => format!("unknown ({reason})"),
    }
}

/// A lag reading kept in the ledger so it survives the outage that makes the metric read -1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LagSample {
    pub secs: f64,
    pub at: DateTime<Utc>,
    /// The `InstanceCreateTime` of the database the sample was read from, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

/// Why a candidate's replication is known to be broken, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationBreak {
    pub at: DateTime<Utc>,
    pub why: String,
}

/// `StatusInfos` read-replication statuses that prove the SQL/IO threads are not applying.
pub fn replication_broken(status: &str) -> bool {
    status != "replicating"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insufficient_data_and_unreadable_are_unknown_never_up() {
        for state in [Some(AlarmState::InsufficientData), None] {
            let a = AlarmEvidence {
                name: "a".into(),
                role: AlarmRole::Availability,
                state,
            };
            assert_eq!(a.vote(), Some(Vote::Unknown));
        }
        let lag = AlarmEvidence {
            name: "l".into(),
            role: AlarmRole::Lag,
            state: Some(AlarmState::Alarm),
        };
        assert_eq!(lag.vote(), None, "lag alarms never vote on the primary");
        assert_eq!(
            DbObservation::Unreadable {
                error: "timeout".into()
            }
            .vote(),
            Vote::Unknown
        );
        assert_eq!(DbObservation::status("rebooting").vote(), Vote::Unknown);
        assert_eq!(DbObservation::status("backing-up").vote(), Vote::Unknown);
        assert_eq!(DbObservation::status("failed").vote(), Vote::Down);
        assert_eq!(DbObservation::NotFound.vote(), Vote::Unknown);
        assert_eq!(DbObservation::status("available").vote(), Vote::Up);
    }

    #[test]
    fn minus_one_lag_is_no_reading() {
        assert_eq!(CandidateEvidence::lag_from_metric(Some(-1.0)), None);
        assert_eq!(CandidateEvidence::lag_from_metric(Some(f64::NAN)), None);
        assert_eq!(CandidateEvidence::lag_from_metric(None), None);
        assert_eq!(CandidateEvidence::lag_from_metric(Some(0.0)), Some(0.0));
    }
}
