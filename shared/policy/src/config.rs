//! Typed site configuration, loaded once at cold start.
//!
//! One deployment protects many *sites*; a site is one writer DNS name and the databases behind it.
//! The document is JSON or TOML. Parsing is two-step on purpose: serde gives us the shape, then
//! [`Config::validate`] checks every value a human could get wrong and names the field path
//! (`sites[1].thresholds.quorum`) and what was expected, so a bad deploy fails the cold start with
//! a message an operator can act on instead of failing over on garbage at 3 a.m.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// Why a configuration document was rejected. Always names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("config is not valid {format}: {message}")]
    Syntax {
        format: &'static str,
        message: String,
    },
    #[error("config field `{field}`: {message}")]
    Shape { field: String, message: String },
    #[error("config field `{field}`: expected {expected}, got {got}")]
    Invalid {
        field: String,
        expected: String,
        got: String,
    },
    #[error("config could not be read from {source_name}: {message}")]
    Unreadable {
        source_name: String,
        message: String,
    },
}

pub(crate) fn invalid(
    field: impl Into<String>,
    expected: impl Into<String>,
    got: impl fmt::Display,
) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        expected: expected.into(),
        got: got.to_string(),
    }
}

/// The whole deployment: which account and region it runs in, and the sites it protects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The only AWS account whose events are trusted.
    pub account_id: String,
    /// The region the functions run in (the DR region).
    pub region: String,
    pub sites: Vec<SiteConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub id: String,
    pub engine: Engine,
    /// For RDS and Multi-AZ: the primary DB instance. For Aurora: the writer instance.
    /// For Aurora Global: the primary DB cluster.
    pub primary: DbRef,
    /// Promotion candidates in preference order (instances, or clusters for Aurora Global).
    #[serde(default)]
    pub candidates: Vec<DbRef>,
    pub dns: DnsConfig,
    #[serde(default)]
    pub alarms: Vec<AlarmRef>,
    pub thresholds: Thresholds,
    #[serde(default)]
    pub maintenance_windows: Vec<MaintenanceWindow>,
    pub approval: ApprovalMode,
    #[serde(default)]
    pub canary: Option<CanaryConfig>,
    /// What the tool may do to the old primary after a failover (see [`crate::fence`]). Absent:
    /// nothing in AWS; the old primary is still watched and the divergence still measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<FenceConfig>,
    /// Where and how a new replica of the primary is created after a failover (see
    /// [`crate::reprotect`]). Absent: `reprotect` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprotect: Option<ReprotectConfig>,
}

/// The new replica `reprotect` creates with `CreateDBInstanceReadReplica`: never AWS's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReprotectConfig {
    /// The region the replica goes to (usually the original primary's).
    pub region: String,
    /// The replica's own custom parameter group. A default group (`default.*`) cannot be
    /// modified, so the replica could never be fenced after a later failover: refused.
    pub parameter_group: String,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_group: Option<String>,
    /// The KMS key in `region` (an encrypted source needs one there for a cross-region replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_class: Option<String>,
    /// Re-protect by itself after `complete`, once the region answers.
    #[serde(default)]
    pub auto: bool,
    /// The `BackupRetentionPeriod` (days) set on the source when its automated backups are off
    /// (a replication source needs them); an existing period is never changed.
    #[serde(default = "default_backup_retention_days")]
    pub backup_retention_days: u32,
}

fn default_backup_retention_days() -> u32 {
    7
}

/// How the old primary is fenced after a failover away from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceConfig {
    /// The primary's **own** custom DB parameter group: `read_only` is set to 1 in it
    /// (`ApplyMethod=immediate`). A default group (`default.*`) cannot be modified, and a group
    /// other instances use would fence them too: the parameter step is refused for either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_group: Option<String>,
    /// An administrative login for the SQL steps (confirm `read_only`, end sessions, read the
    /// position). Absent: the canary's user, which usually lacks `PROCESS`/`CONNECTION_ADMIN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_credentials: Option<CredentialsSource>,
    /// Take a DB snapshot of the old primary for reconciliation (default on).
    #[serde(default = "yes")]
    pub snapshot: bool,
    /// Move the old primary into this security group (`sg-...`) once it is fenced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_security_group: Option<String>,
    /// Stop the old primary once it is fenced and snapshotted (RDS refuses while it has read
    /// replicas, and starts it again by itself after seven days).
    #[serde(default)]
    pub stop: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Engine {
    /// RDS MySQL primary with read replica(s), same region or cross-region.
    RdsReplica,
    /// Aurora MySQL cluster: fail over to a reader instance of the same cluster.
    AuroraCluster { cluster_id: String },
    /// Aurora Global Database: promote a secondary cluster in another region.
    AuroraGlobal { global_cluster_id: String },
    /// Multi-AZ DB instance: reboot with forced failover to the standby.
    MultiAz,
}

impl Engine {
    pub fn kind(&self) -> &'static str {
        match self {
            Engine::RdsReplica => "rds-replica",
            Engine::AuroraCluster { .. } => "aurora-cluster",
            Engine::AuroraGlobal { .. } => "aurora-global",
            Engine::MultiAz => "multi-az",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbRef {
    pub id: String,
    pub region: String,
}

impl fmt::Display for DbRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.region)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    pub zone_id: String,
    pub name: String,
    pub ttl: u32,
    pub mode: DnsMode,
    /// The name servers the pinner asks what the zone answers before it reports `DnsPinned`
    /// (`host` or `host:port`, port 53 by default). Empty (the default): the hosted zone's own
    /// delegation set, from GetHostedZone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name_servers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DnsMode {
    /// UPSERT a plain CNAME to the new writer.
    Cname,
    /// Rewrite the PRIMARY record of a Route 53 failover pair to the new writer (the pin).
    FailoverPin { primary_set_identifier: String },
    /// A failover pair whose PRIMARY health check is a `CLOUDWATCH_METRIC` check on an alarm in
    /// the DR region over `metric`, a metric the tool owns. Failover is one `PutMetricData` of
    /// [`SWITCH_TO_SECONDARY`] there (Route 53's data plane moves the answer to the SECONDARY, no
    /// Route 53 API call); then, when Route 53's API answers, both records are also pinned as in
    /// `failover-pin` (`crate::dataplane`). The switch is set only when the epoch promoted
    /// `secondary_candidate` (the candidate whose endpoint the SECONDARY record names): any other
    /// promotion is pinned as in `failover-pin`, the switch untouched.
    DataPlaneSwitch {
        primary_set_identifier: String,
        /// The `id` of the site's candidate the SECONDARY record names.
        secondary_candidate: String,
        metric: SwitchMetric,
    },
}

impl DnsMode {
    /// The SetIdentifier of the PRIMARY failover record, in the modes that use a failover pair.
    pub fn primary_set_identifier(&self) -> Option<&str> {
        match self {
            DnsMode::Cname => None,
            DnsMode::FailoverPin {
                primary_set_identifier,
            }
            | DnsMode::DataPlaneSwitch {
                primary_set_identifier,
                ..
            } => Some(primary_set_identifier),
        }
    }

    /// The data-plane switch's metric, in `data-plane-switch` mode.
    pub fn switch_metric(&self) -> Option<&SwitchMetric> {
        match self {
            DnsMode::DataPlaneSwitch { metric, .. } => Some(metric),
            _ => None,
        }
    }

    /// The candidate id the SECONDARY record names, in `data-plane-switch` mode.
    pub fn secondary_candidate(&self) -> Option<&str> {
        match self {
            DnsMode::DataPlaneSwitch {
                secondary_candidate,
                ..
            } => Some(secondary_candidate),
            _ => None,
        }
    }
}

/// The metric value that says "serve the SECONDARY": the alarm's threshold is
/// `GreaterThanOrEqualToThreshold 1`, so 1 is ALARM, the health check unhealthy.
pub const SWITCH_TO_SECONDARY: f64 = 1.0;
/// The metric value that says "serve the PRIMARY again" (unpin). Always sent explicitly: a
/// missing datapoint changes nothing (`TreatMissingData: ignore` keeps the alarm's state, and
/// `InsufficientDataHealthStatus: LastKnownStatus` keeps the health check's).
pub const SWITCH_TO_PRIMARY: f64 = 0.0;

/// The CloudWatch metric a `data-plane-switch` site's alarm watches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchMetric {
    pub namespace: String,
    pub name: String,
    /// The DR region: where the datapoint is put and the alarm lives.
    pub region: String,
    /// The name of the switch alarm over this metric (in `region`; the one the PRIMARY's
    /// `CLOUDWATCH_METRIC` health check watches). `unpin` waits for it to read OK after putting
    /// [`SWITCH_TO_PRIMARY`] before it restores the records (`crate::unpin::follow`).
    pub alarm: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmRef {
    pub name: String,
    pub role: AlarmRole,
    /// Where the alarm lives; defaults to the deployment region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlarmRole {
    /// In ALARM means "the primary looks down": counts toward the quorum.
    Availability,
    /// Replica lag alarm: informational, never a vote that the primary is down.
    Lag,
    /// Anything else the site wants evaluated on (wakes the evaluator, no vote).
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// The outage must be corroborated for this long before a failover is decided.
    pub sustained_secs: u64,
    /// How many independent sources must say "down" (k of n).
    pub quorum: u32,
    /// The largest replica lag (allowed data loss, RPO) at which promotion is automatic.
    pub max_lag_secs: u64,
    /// Deliveries older than this are ignored (EventBridge retries for up to 24 h).
    pub max_event_age_secs: u64,
    /// No automatic failover within this long after the previous one.
    pub cooldown_secs: u64,
    /// A last-known-good replica lag counts for the RPO guard only if it was read at most this
    /// long before the outage began (when the quorum was first met). Default 120 s.
    #[serde(default = "default_lag_sample_age")]
    pub max_lag_sample_age_secs: u64,
    /// An incident whose evidence clears stays open this long, so a flapping voter is one
    /// incident and one message, not a page per flap. Default 300 s.
    #[serde(default = "default_flap_window")]
    pub flap_window_secs: u64,
    /// How long a Multi-AZ primary seen `rebooting`/`failing-over`/`modifying` is left to RDS's
    /// own failover to its standby before the normal rules apply, whether or not the RDS event
    /// arrived (`crate::recovery`). RDS documents 60-120 s for a Multi-AZ failover.
    #[serde(default = "default_managed_recovery_grace_secs")]
    pub managed_recovery_grace_secs: u64,
    /// `approval: auto` with `quorum: 1` lets one voter fail the site over on its own; the site
    /// must say it means that (`crate::vantage::check_site`).
    #[serde(default)]
    pub allow_single_vote: bool,
    /// The promoter asks RDS only for a decision younger than this (EventBridge and Lambda
    /// async delivery may hand it over much later); an older one aborts the epoch.
    #[serde(default = "default_max_decision_age_secs")]
    pub max_decision_age_secs: u64,
    /// How long after the promotion the dns-pinner keeps continuing itself while Route 53 fails
    /// or has not shown the change `INSYNC`; past it the epoch fails and a human is paged.
    #[serde(default = "default_pin_deadline_secs")]
    pub pin_deadline_secs: u64,
    /// data-plane-switch: how old the ledger's last reading of the SECONDARY may be and still
    /// decide the pre-switch check while Route 53's API is dark; older, it counts as NOT checked
    /// (a human may have re-pointed the record since) and the message says how old it is.
    #[serde(default = "default_secondary_reading_max_age_secs")]
    pub secondary_reading_max_age_secs: u64,
}

/// Seven days: a reading older than a week says little about a record humans may edit.
pub const DEFAULT_SECONDARY_READING_MAX_AGE_SECS: u64 = 7 * 86_400;

fn default_secondary_reading_max_age_secs() -> u64 {
    DEFAULT_SECONDARY_READING_MAX_AGE_SECS
}

fn default_flap_window() -> u64 {
    300
}

fn default_lag_sample_age() -> u64 {
    120
}

/// RDS: "Failovers, as defined by the interval between the detection of the failure on the
/// primary and the resumption of transactions on the standby, typically complete within 60-120
/// seconds" (RDS User Guide, Multi-AZ DB instance deployments, "Failover process for Amazon
/// RDS"). 180 s leaves a minute of margin over the documented upper bound.
pub const DEFAULT_MANAGED_RECOVERY_GRACE_SECS: u64 = 180;

fn default_managed_recovery_grace_secs() -> u64 {
    DEFAULT_MANAGED_RECOVERY_GRACE_SECS
}

/// Five minutes: a `FailoverDecided` normally reaches the promoter within seconds; one that took
/// longer was judged on evidence too old to promote on.
pub const DEFAULT_MAX_DECISION_AGE_SECS: u64 = 300;
/// One hour, what the runbook promises for repointing DNS automatically.
pub const DEFAULT_PIN_DEADLINE_SECS: u64 = 3600;

fn default_max_decision_age_secs() -> u64 {
    DEFAULT_MAX_DECISION_AGE_SECS
}
fn default_pin_deadline_secs() -> u64 {
    DEFAULT_PIN_DEADLINE_SECS
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalMode {
    Auto,
    RequireApproval,
    /// Decide and tell people what would have happened; never mutate.
    Shadow,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// `host:port` of the primary as seen from the DR side.
    pub endpoint: String,
    pub user: String,
    #[serde(default = "default_canary_db")]
    pub database: String,
    pub credentials: CredentialsSource,
    #[serde(default = "default_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub query_timeout_ms: u64,
    /// TLS to the primary (and to the promoted replica, for the writability check), verifying
    /// the server's certificate and name against `ca_bundle` only. Absent: plain TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<CanaryTls>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryTls {
    /// A PEM file of the CA certificates to trust; the default is the RDS CA bundle packaged
    /// with the functions (`rds-ca/global-bundle.pem`, see docs/deploy.md). Public web roots are
    /// never trusted for a database connection.
    #[serde(default = "default_ca_bundle")]
    pub ca_bundle: String,
}

/// Where the packaged RDS CA bundle sits, relative to the function's working directory
/// (`/var/task` on Lambda).
pub const DEFAULT_CA_BUNDLE: &str = "rds-ca/global-bundle.pem";

fn default_ca_bundle() -> String {
    DEFAULT_CA_BUNDLE.into()
}

fn default_canary_db() -> String {
    "mysql".into()
}
fn default_timeout_ms() -> u64 {
    2000
}

impl CanaryConfig {
    /// Splits `endpoint` into host and port; validated at load so this cannot fail later.
    pub fn host_port(&self) -> (String, u16) {
        split_endpoint(&self.endpoint).expect("validated at load")
    }
}

fn split_endpoint(endpoint: &str) -> Option<(String, u16)> {
    let (host, port) = endpoint.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if host.is_empty() || port == 0 {
        return None;
    }
    Some((host.to_string(), port))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CredentialsSource {
    /// A Secrets Manager secret holding `{"password": "..."}` (the RDS-managed secret shape).
    SecretsManager { secret_id: String },
    /// An environment variable of the function holding the password (local runs and drills).
    Env { var: String },
}

/// A weekly window in UTC, written the way RDS writes maintenance windows: `ddd:hh:mm-ddd:hh:mm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceWindow {
    /// Minutes since Monday 00:00 UTC.
    start: u32,
    end: u32,
    text_start: (u8, u8, u8),
    text_end: (u8, u8, u8),
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const WEEK_MINUTES: u32 = 7 * 24 * 60;

impl MaintenanceWindow {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or("a window like `sun:03:00-sun:04:00` (ddd:hh:mm-ddd:hh:mm, UTC)")?;
        let pa = parse_point(a)?;
        let pb = parse_point(b)?;
        let start = minutes(pa);
        let end = minutes(pb);
        if start == end {
            return Err("a window whose start differs from its end".into());
        }
        Ok(Self {
            start,
            end,
            text_start: pa,
            text_end: pb,
        })
    }

    /// The first instant at or after `t` (to the minute) when the window opens.
    pub fn next_start(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let m = t.weekday().num_days_from_monday() * 24 * 60 + t.hour() * 60 + t.minute();
        let ahead = (self.start + WEEK_MINUTES - m) % WEEK_MINUTES;
        let base = t
            - chrono::Duration::seconds(t.second() as i64)
            - chrono::Duration::nanoseconds(t.nanosecond() as i64);
        base + chrono::Duration::minutes(ahead as i64)
    }

    /// Whether `t` falls inside the window; windows may wrap around the end of the week.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let m = t.weekday().num_days_from_monday() * 24 * 60 + t.hour() * 60 + t.minute();
        if self.start < self.end {
            m >= self.start && m < self.end
        } else {
            m >= self.start || m < self.end
        }
    }
}

fn parse_point(s: &str) -> Result<(u8, u8, u8), String> {
    let parts: Vec<&str> = s.split(':').collect();
    let err = || format!("`ddd:hh:mm` with ddd in mon..sun, got `{s}`");
    if parts.len() != 3 {
        return Err(err());
    }
    let day = DAYS
        .iter()
        .position(|d| d.eq_ignore_ascii_case(parts[0]))
        .ok_or_else(err)? as u8;
    let h: u8 = parts[1].parse().map_err(|_| err())?;
    let m: u8 = parts[2].parse().map_err(|_| err())?;
    if h > 23 || m > 59 || parts[1].len() != 2 || parts[2].len() != 2 {
        return Err(err());
    }
    Ok((day, h, m))
}

fn minutes((d, h, m): (u8, u8, u8)) -> u32 {
    (d as u32 * 24 * 60 + h as u32 * 60 + m as u32) % WEEK_MINUTES
}

impl fmt::Display for MaintenanceWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d1, h1, m1) = self.text_start;
        let (d2, h2, m2) = self.text_end;
        write!(
            f,
            "{}:{h1:02}:{m1:02}-{}:{h2:02}:{m2:02}",
            DAYS[d1 as usize], DAYS[d2 as usize]
        )
    }
}

impl Serialize for MaintenanceWindow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MaintenanceWindow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        MaintenanceWindow::parse(&s).map_err(|e| serde::de::Error::custom(format!("expected {e}")))
    }
}

const MAX_SITES: usize = 256;

impl Config {
    /// Parses a JSON (starts with `{`) or TOML document, then validates every field.
    pub fn from_document(text: &str) -> Result<Self, ConfigError> {
        let trimmed = text.trim_start();
        // serde_path_to_error keeps the path of the field that failed (`sites[0].approval`), so
        // shape errors name their field just like value errors do.
        let cfg: Config = if trimmed.starts_with('{') {
            let de = &mut serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                if e.inner().is_syntax() || e.inner().is_eof() {
                    ConfigError::Syntax {
                        format: "JSON",
                        message: e.into_inner().to_string(),
                    }
                } else {
                    shape_error("JSON", e.path().to_string(), e.into_inner().to_string())
                }
            })?
        } else {
            let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Syntax {
                format: "TOML",
                message: e.to_string(),
            })?;
            serde_path_to_error::deserialize(de).map_err(|e| {
                shape_error("TOML", e.path().to_string(), e.into_inner().to_string())
            })?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The configuration's version as the audit trail names it: `cfg-` and 16 hex digits of a
    /// 64-bit FNV-1a digest of its canonical JSON (the same document, however spelled, JSON or
    /// TOML, has the same version; any change of a value gives another).
    pub fn version(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        let digest = canonical.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("cfg-{digest:016x}")
    }

    pub fn site(&self, id: &str) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| s.id == id)
    }

    /// Every check a typo could defeat. Returns the first problem, naming its field path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "account_id",
                "a 12-digit AWS account id",
                format!("`{}`", self.account_id),
            ));
        }
        check_region("region", &self.region)?;
        if self.sites.is_empty() {
            return Err(invalid("sites", "at least one site", "an empty list"));
        }
        if self.sites.len() > MAX_SITES {
            return Err(invalid(
                "sites",
                format!("at most {MAX_SITES} sites"),
                self.sites.len(),
            ));
        }
        let mut ids = BTreeSet::new();
        let mut alarm_owner = std::collections::BTreeMap::new();
        let mut resource_owner = std::collections::BTreeMap::new();
        for (i, site) in self.sites.iter().enumerate() {
            let p = format!("sites[{i}]");
            site.validate(&p)?;
            crate::vantage::check_site(site, &self.region, &p)?;
            if !ids.insert(site.id.as_str()) {
                return Err(invalid(
                    format!("{p}.id"),
                    "a site id used by one site only",
                    format!("duplicate `{}`", site.id),
                ));
            }
            for (j, a) in site.alarms.iter().enumerate() {
                if let Some(other) = alarm_owner.insert(a.name.as_str(), site.id.as_str()) {
                    return Err(invalid(
                        format!("{p}.alarms[{j}].name"),
                        "an alarm that belongs to one site only",
                        format!("`{}` also belongs to site `{other}`", a.name),
                    ));
                }
            }
            for r in site.resource_ids() {
                if let Some(other) = resource_owner.insert(r.to_string(), site.id.as_str()) {
                    if other != site.id {
                        return Err(invalid(
                            p.clone(),
                            "databases that belong to one site only",
                            format!("`{r}` also belongs to site `{other}`"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn shape_error(format: &'static str, path: String, message: String) -> ConfigError {
    if path.is_empty() || path == "." {
        ConfigError::Syntax { format, message }
    } else {
        ConfigError::Shape {
            field: path,
            message,
        }
    }
}

pub(crate) fn check_region(field: &str, r: &str) -> Result<(), ConfigError> {
    // e.g. us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1
    let parts: Vec<&str> = r.split('-').collect();
    let ok = parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "an AWS region such as `us-west-2`",
            format!("`{r}`"),
        ))
    }
}

fn check_identifier(field: &str, id: &str) -> Result<(), ConfigError> {
    // RDS identifiers: 1-63 letters, digits or hyphens, starting with a letter, no trailing or double hyphen.
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--");
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "an RDS identifier (letters, digits, hyphens; starts with a letter; at most 63)",
            format!("`{id}`"),
        ))
    }
}

impl SiteConfig {
    fn validate(&self, p: &str) -> Result<(), ConfigError> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            return Err(invalid(
                format!("{p}.id"),
                "1-64 letters, digits, `-` or `_`",
                format!("`{}`", self.id),
            ));
        }
        check_identifier(&format!("{p}.primary.id"), &self.primary.id)?;
        check_region(&format!("{p}.primary.region"), &self.primary.region)?;
        if let Some(sg) = self
            .fence
            .as_ref()
            .and_then(|f| f.quarantine_security_group.as_deref())
        {
            // A VPC security group id: `sg-` and 8 or 17 hex digits (EC2 resource ids).
            let hex = sg.strip_prefix("sg-").unwrap_or("");
            let ok = matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(invalid(
                    format!("{p}.fence.quarantine_security_group"),
                    "a VPC security group id (`sg-` and 8 or 17 hex digits)",
                    format!("`{sg}`"),
                ));
            }
        }
        if let Some(r) = &self.reprotect {
            check_region(&format!("{p}.reprotect.region"), &r.region)?;
            if r.parameter_group.trim().is_empty() || r.parameter_group.starts_with("default.") {
                return Err(invalid(
                    format!("{p}.reprotect.parameter_group"),
                    "the replica's own custom DB parameter group (a `default.*` group cannot be modified, so the replica could not be fenced later)",
                    format!("`{}`", r.parameter_group),
                ));
            }
            // The fence sets read_only=1 in its group and nothing resets it but a rollback; an
            // explicit value applies whatever the role, so a replica created with the fence's
            // group would stay read-only once promoted (the way back would have no writer).
            let fence_group = self
                .fence
                .as_ref()
                .and_then(|f| f.parameter_group.as_deref());
            if fence_group == Some(r.parameter_group.as_str()) && r.region == self.primary.region {
                return Err(invalid(
                    format!("{p}.reprotect.parameter_group"),
                    "a group other than the site's fence group (fence.parameter_group in the same region): the fence sets read_only=1 there, and an explicit read_only=1 keeps the replica read-only after its promotion",
                    format!("`{}`", r.parameter_group),
                ));
            }
            for (i, sg) in r.security_groups.iter().enumerate() {
                let hex = sg.strip_prefix("sg-").unwrap_or("");
                if !(matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())) {
                    return Err(invalid(
                        format!("{p}.reprotect.security_groups[{i}]"),
                        "a VPC security group id (`sg-` and 8 or 17 hex digits)",
                        format!("`{sg}`"),
                    ));
                }
            }
            if !(1..=35).contains(&r.backup_retention_days) {
                return Err(invalid(
                    format!("{p}.reprotect.backup_retention_days"),
                    "1 to 35 days (RDS's BackupRetentionPeriod range; 0 would turn backups off)",
                    r.backup_retention_days.to_string(),
                ));
            }
        }
        let mut seen = BTreeSet::from([self.primary.id.as_str()]);
        for (i, c) in self.candidates.iter().enumerate() {
            check_identifier(&format!("{p}.candidates[{i}].id"), &c.id)?;
            check_region(&format!("{p}.candidates[{i}].region"), &c.region)?;
            if !seen.insert(c.id.as_str()) {
                return Err(invalid(
                    format!("{p}.candidates[{i}].id"),
                    "a candidate distinct from the primary and the other candidates",
                    format!("`{}`", c.id),
                ));
            }
        }
        match &self.engine {
            Engine::RdsReplica | Engine::AuroraCluster { .. } | Engine::AuroraGlobal { .. }
                if self.candidates.is_empty() =>
            {
                return Err(invalid(
                    format!("{p}.candidates"),
                    format!(
                        "at least one promotion candidate for engine `{}`",
                        self.engine.kind()
                    ),
                    "an empty list",
                ));
            }
            Engine::MultiAz if !self.candidates.is_empty() => {
                return Err(invalid(
                    format!("{p}.candidates"),
                    "no candidates for engine `multi-az` (the standby is not addressable)",
                    format!("{} candidate(s)", self.candidates.len()),
                ));
            }
            Engine::AuroraCluster { cluster_id } => {
                check_identifier(&format!("{p}.engine.cluster_id"), cluster_id)?;
                if let Some((i, c)) = self
                    .candidates
                    .iter()
                    .enumerate()
                    .find(|(_, c)| c.region != self.primary.region)
                {
                    return Err(invalid(
                        format!("{p}.candidates[{i}].region"),
                        format!("the cluster's region `{}` (Aurora cluster failover stays in one region)", self.primary.region),
                        format!("`{}`", c.region),
                    ));
                }
            }
            Engine::AuroraGlobal { global_cluster_id } => {
                check_identifier(&format!("{p}.engine.global_cluster_id"), global_cluster_id)?;
                if let Some((i, c)) = self
                    .candidates
                    .iter()
                    .enumerate()
                    .find(|(_, c)| c.region == self.primary.region)
                {
                    return Err(invalid(
                        format!("{p}.candidates[{i}].region"),
                        "a secondary cluster in a region other than the primary's",
                        format!("`{}`", c.region),
                    ));
                }
            }
            _ => {}
        }
        let d = &self.dns;
        let zone_ok = !d.zone_id.is_empty()
            && d.zone_id.len() <= 32
            && d.zone_id.chars().all(|c| c.is_ascii_alphanumeric());
        if !zone_ok {
            return Err(invalid(
                format!("{p}.dns.zone_id"),
                "a Route 53 hosted zone id such as `Z0123456789ABC`",
                format!("`{}`", d.zone_id),
            ));
        }
        let name = d.name.trim_end_matches('.');
        let name_ok = name.contains('.')
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !name_ok {
            return Err(invalid(
                format!("{p}.dns.name"),
                "a fully qualified DNS name such as `db.example.com`",
                format!("`{}`", d.name),
            ));
        }
        if !(1..=86_400).contains(&d.ttl) {
            return Err(invalid(
                format!("{p}.dns.ttl"),
                "a TTL between 1 and 86400 seconds (keep it low, e.g. 30)",
                d.ttl,
            ));
        }
        if let Some(primary_set_identifier) = d.mode.primary_set_identifier() {
            if primary_set_identifier.is_empty() || primary_set_identifier.len() > 128 {
                return Err(invalid(
                    format!("{p}.dns.mode.primary_set_identifier"),
                    "the SetIdentifier of the PRIMARY failover record (1-128 chars)",
                    "an empty string",
                ));
            }
        }
        if let Some(m) = d.mode.switch_metric() {
            crate::dataplane::check_metric(&format!("{p}.dns"), m, &self.primary.region, d)?;
        }
        if let Some(c) = d.mode.secondary_candidate() {
            crate::dataplane::check_secondary_candidate(&format!("{p}.dns"), c, &self.candidates)?;
        }
        for (i, ns) in d.name_servers.iter().enumerate() {
            if crate::answer::server_address(ns).is_none() {
                return Err(invalid(
                    format!("{p}.dns.name_servers[{i}]"),
                    "a name server as `host` or `host:port` (such as `ns-1.awsdns-01.org` or `192.0.2.53:53`)",
                    format!("`{ns}`"),
                ));
            }
        }
        for (i, a) in self.alarms.iter().enumerate() {
            if a.name.is_empty() || a.name.len() > 255 {
                return Err(invalid(
                    format!("{p}.alarms[{i}].name"),
                    "a CloudWatch alarm name (1-255 chars)",
                    format!("`{}`", a.name),
                ));
            }
            if let Some(r) = &a.region {
                check_region(&format!("{p}.alarms[{i}].region"), r)?;
            }
        }
        let t = &self.thresholds;
        let voters =
            self.availability_alarms().count() as u32 + 1 + u32::from(self.canary.is_some());
        if t.quorum == 0 || t.quorum > voters {
            return Err(invalid(
                format!("{p}.thresholds.quorum"),
                format!("between 1 and {voters} (availability alarms + RDS status + canary for this site)"),
                t.quorum,
            ));
        }
        if t.sustained_secs > 86_400 {
            return Err(invalid(
                format!("{p}.thresholds.sustained_secs"),
                "at most 86400 seconds",
                t.sustained_secs,
            ));
        }
        if !(60..=86_400).contains(&t.max_event_age_secs) {
            return Err(invalid(
                format!("{p}.thresholds.max_event_age_secs"),
                "between 60 and 86400 seconds",
                t.max_event_age_secs,
            ));
        }
        if t.max_event_age_secs < t.sustained_secs {
            return Err(invalid(
                format!("{p}.thresholds.max_event_age_secs"),
                format!("at least sustained_secs ({})", t.sustained_secs),
                t.max_event_age_secs,
            ));
        }
        if t.max_lag_secs > 86_400 {
            return Err(invalid(
                format!("{p}.thresholds.max_lag_secs"),
                "at most 86400 seconds",
                t.max_lag_secs,
            ));
        }
        if t.managed_recovery_grace_secs > 3_600 {
            return Err(invalid(
                format!("{p}.thresholds.managed_recovery_grace_secs"),
                "at most 3600 seconds (RDS documents 60-120 s for a Multi-AZ failover)",
                t.managed_recovery_grace_secs,
            ));
        }
        if t.cooldown_secs > 30 * 86_400 {
            return Err(invalid(
                format!("{p}.thresholds.cooldown_secs"),
                "at most 30 days",
                t.cooldown_secs,
            ));
        }
        // At least 30 s: the decision must be able to reach the promoter; at most an hour: past
        // that the evidence it was judged on says nothing about now.
        if !(30..=3600).contains(&t.max_decision_age_secs) {
            return Err(invalid(
                format!("{p}.thresholds.max_decision_age_secs"),
                "between 30 and 3600 seconds",
                t.max_decision_age_secs,
            ));
        }
        // At least 5 min (the first escalation), at most a day.
        if !(300..=86_400).contains(&t.pin_deadline_secs) {
            return Err(invalid(
                format!("{p}.thresholds.pin_deadline_secs"),
                "between 300 and 86400 seconds",
                t.pin_deadline_secs,
            ));
        }
        if !(3600..=90 * 86_400).contains(&t.secondary_reading_max_age_secs) {
            return Err(invalid(
                format!("{p}.thresholds.secondary_reading_max_age_secs"),
                "between 3600 seconds (an hour) and 7776000 (90 days)",
                t.secondary_reading_max_age_secs,
            ));
        }
        let Some(c) = &self.canary else {
            // The promoter verifies over MySQL, with these credentials, that the new primary
            // accepts writes before DNS moves; without them no failover of this site could finish.
            return Err(invalid(
                format!("{p}.canary"),
                "a canary section (endpoint, user, credentials): the SQL canary votes on the \
                 primary's health and its credentials verify the promoted replica accepts writes",
                "nothing",
            ));
        };
        {
            if split_endpoint(&c.endpoint).is_none() {
                return Err(invalid(
                    format!("{p}.canary.endpoint"),
                    "`host:port` with a port in 1..65535",
                    format!("`{}`", c.endpoint),
                ));
            }
            if c.user.is_empty() {
                return Err(invalid(
                    format!("{p}.canary.user"),
                    "a MySQL user name",
                    "an empty string",
                ));
            }
            for (f, v) in [
                ("connect_timeout_ms", c.connect_timeout_ms),
                ("query_timeout_ms", c.query_timeout_ms),
            ] {
                if !(50..=30_000).contains(&v) {
                    return Err(invalid(
                        format!("{p}.canary.{f}"),
                        "between 50 and 30000 ms",
                        v,
                    ));
                }
            }
            if let Some(tls) = &c.tls {
                if tls.ca_bundle.trim().is_empty() {
                    return Err(invalid(
                        format!("{p}.canary.tls.ca_bundle"),
                        "a path to a PEM file of CA certificates (default: the packaged RDS CA bundle)",
                        "an empty string",
                    ));
                }
            }
            match &c.credentials {
                CredentialsSource::SecretsManager { secret_id } if secret_id.is_empty() => {
                    return Err(invalid(
                        format!("{p}.canary.credentials.secret_id"),
                        "a Secrets Manager secret id or ARN",
                        "an empty string",
                    ));
                }
                CredentialsSource::Env { var } if var.is_empty() => {
                    return Err(invalid(
                        format!("{p}.canary.credentials.var"),
                        "an environment variable name",
                        "an empty string",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn availability_alarms(&self) -> impl Iterator<Item = &AlarmRef> {
        self.alarms
            .iter()
            .filter(|a| a.role == AlarmRole::Availability)
    }

    pub fn owns_alarm(&self, name: &str) -> bool {
        self.alarms.iter().any(|a| a.name == name)
    }

    /// Every RDS identifier (instance, cluster, global cluster) this site may act on or hear from.
    pub fn resource_ids(&self) -> Vec<&str> {
        let mut ids = vec![self.primary.id.as_str()];
        ids.extend(self.candidates.iter().map(|c| c.id.as_str()));
        match &self.engine {
            Engine::AuroraCluster { cluster_id } => ids.push(cluster_id),
            Engine::AuroraGlobal { global_cluster_id } => ids.push(global_cluster_id),
            _ => {}
        }
        ids
    }

    pub fn owns_resource(&self, id: &str) -> bool {
        self.resource_ids().contains(&id)
    }

    /// Regions events about this site may legitimately come from.
    pub fn regions(&self) -> BTreeSet<&str> {
        let mut r = BTreeSet::from([self.primary.region.as_str()]);
        r.extend(self.candidates.iter().map(|c| c.region.as_str()));
        r
    }

    pub fn in_maintenance(&self, now: DateTime<Utc>) -> Option<&MaintenanceWindow> {
        self.maintenance_windows.iter().find(|w| w.contains(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const EXAMPLE: &str = include_str!("../../../infra/sites.example.json");

    fn example() -> serde_json::Value {
        serde_json::from_str(EXAMPLE).unwrap()
    }

    fn err_of(v: serde_json::Value) -> ConfigError {
        Config::from_document(&v.to_string()).unwrap_err()
    }

    #[test]
    fn example_config_loads_every_engine_kind() {
        let cfg = Config::from_document(EXAMPLE).unwrap();
        let kinds: Vec<_> = cfg.sites.iter().map(|s| s.engine.kind()).collect();
        assert_eq!(
            kinds,
            ["rds-replica", "aurora-cluster", "aurora-global", "multi-az"]
        );
        assert_eq!(
            cfg.site("orders")
                .unwrap()
                .canary
                .as_ref()
                .unwrap()
                .host_port()
                .1,
            3306
        );
    }

    #[test]
    fn a_quarantine_group_must_be_a_security_group_id() {
        for bad in ["sg-quarantine", "sg-0123", "0123abcd", "sg-0123abcdz"] {
            let mut v = example();
            v["sites"][0]["fence"] = serde_json::json!({"quarantine_security_group": bad});
            let e = err_of(v).to_string();
            assert!(
                e.contains("sites[0].fence.quarantine_security_group"),
                "{bad}: {e}"
            );
        }
        for good in ["sg-0123abcd", "sg-0a1b2c3d4e5f60718"] {
            let mut v = example();
            v["sites"][0]["fence"] = serde_json::json!({"quarantine_security_group": good});
            Config::from_document(&v.to_string()).unwrap();
        }
    }

    #[test]
    fn toml_documents_load_too() {
        let v = example();
        let toml_text = toml::to_string(&v).unwrap();
        let cfg = Config::from_document(&toml_text).unwrap();
        assert_eq!(cfg, Config::from_document(EXAMPLE).unwrap());
    }

    #[test]
    fn every_invalid_value_names_its_field() {
        type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("account_id", Box::new(|v| v["account_id"] = "12345".into())),
            ("region", Box::new(|v| v["region"] = "moon-1".into())),
            ("sites", Box::new(|v| v["sites"] = serde_json::json!([]))),
            (
                "sites[0].id",
                Box::new(|v| v["sites"][0]["id"] = "has space".into()),
            ),
            (
                "sites[1].id",
                Box::new(|v| v["sites"][1]["id"] = "orders".into()),
            ),
            (
                "sites[0].primary.id",
                Box::new(|v| v["sites"][0]["primary"]["id"] = "1bad".into()),
            ),
            (
                "sites[0].candidates[0].region",
                Box::new(|v| v["sites"][0]["candidates"][0]["region"] = "".into()),
            ),
            (
                "sites[0].candidates[1].id",
                Box::new(|v| v["sites"][0]["candidates"][1]["id"] = "orders-primary".into()),
            ),
            (
                "sites[0].candidates",
                Box::new(|v| v["sites"][0]["candidates"] = serde_json::json!([])),
            ),
            (
                "sites[3].candidates",
                Box::new(|v| {
                    v["sites"][3]["candidates"] =
                        serde_json::json!([{"id":"x","region":"us-west-2"}])
                }),
            ),
            (
                "sites[1].candidates[0].region",
                Box::new(|v| v["sites"][1]["candidates"][0]["region"] = "eu-west-1".into()),
            ),
            (
                "sites[2].candidates[0].region",
                Box::new(|v| v["sites"][2]["candidates"][0]["region"] = "us-east-1".into()),
            ),
            (
                "sites[0].dns.zone_id",
                Box::new(|v| v["sites"][0]["dns"]["zone_id"] = "not a zone".into()),
            ),
            (
                "sites[0].dns.name",
                Box::new(|v| v["sites"][0]["dns"]["name"] = "localhost".into()),
            ),
            (
                "sites[0].dns.ttl",
                Box::new(|v| v["sites"][0]["dns"]["ttl"] = 0.into()),
            ),
            (
                "sites[1].dns.mode.primary_set_identifier",
                Box::new(|v| v["sites"][1]["dns"]["mode"]["primary_set_identifier"] = "".into()),
            ),
            (
                "sites[0].dns.name_servers[1]",
                Box::new(|v| {
                    v["sites"][0]["dns"]["name_servers"] =
                        serde_json::json!(["127.0.0.1:5353", "ns 1:53"])
                }),
            ),
            (
                "sites[0].thresholds.quorum",
                Box::new(|v| v["sites"][0]["thresholds"]["quorum"] = 5.into()),
            ),
            (
                "sites[0].thresholds.quorum",
                Box::new(|v| v["sites"][0]["thresholds"]["quorum"] = 0.into()),
            ),
            (
                "sites[0].thresholds.max_event_age_secs",
                Box::new(|v| v["sites"][0]["thresholds"]["max_event_age_secs"] = 30.into()),
            ),
            (
                "sites[0].thresholds.max_decision_age_secs",
                Box::new(|v| v["sites"][0]["thresholds"]["max_decision_age_secs"] = 5.into()),
            ),
            (
                "sites[0].thresholds.max_decision_age_secs",
                Box::new(|v| v["sites"][0]["thresholds"]["max_decision_age_secs"] = 7200.into()),
            ),
            (
                "sites[1].thresholds.pin_deadline_secs",
                Box::new(|v| v["sites"][1]["thresholds"]["pin_deadline_secs"] = 60.into()),
            ),
            (
                "sites[0].canary.endpoint",
                Box::new(|v| v["sites"][0]["canary"]["endpoint"] = "nohost".into()),
            ),
            (
                "sites[0].canary.connect_timeout_ms",
                Box::new(|v| v["sites"][0]["canary"]["connect_timeout_ms"] = 0.into()),
            ),
            (
                "sites[1].alarms[0].name",
                Box::new(|v| v["sites"][1]["alarms"][0]["name"] = "orders-primary-canary".into()),
            ),
            (
                "sites[2].canary",
                Box::new(|v| {
                    v["sites"][2].as_object_mut().unwrap().remove("canary");
                }),
            ),
        ];
        for (field, mutate) in cases {
            let mut v = example();
            mutate(&mut v);
            match err_of(v) {
                ConfigError::Invalid {
                    field: f, expected, ..
                } => {
                    assert_eq!(f, field, "wrong field named");
                    assert!(!expected.is_empty());
                }
                other => panic!("{field}: expected an Invalid error, got {other}"),
            }
        }
    }

    #[test]
    fn shape_errors_name_the_field_and_the_expectation() {
        let shape = |v: serde_json::Value| match err_of(v.clone()) {
            ConfigError::Shape { field, message } => {
                // TOML documents name the same field.
                let t = Config::from_document(&toml::to_string(&v).unwrap()).unwrap_err();
                assert!(
                    matches!(&t, ConfigError::Shape { field: f, .. } if *f == field),
                    "TOML: {t}"
                );
                (field, message)
            }
            other => panic!("expected a Shape error, got {other}"),
        };
        let mut v = example();
        v["sites"][0]["approval"] = "yolo".into();
        let (field, msg) = shape(v);
        assert_eq!(field, "sites[0].approval");
        assert!(
            msg.contains("yolo") && msg.contains("require-approval"),
            "{msg}"
        );

        let mut v = example();
        v["sites"][0]["maintenance_windows"] = serde_json::json!(["sunday 3am"]);
        let (field, msg) = shape(v);
        assert_eq!(field, "sites[0].maintenance_windows[0]");
        assert!(msg.contains("ddd:hh:mm"), "{msg}");

        let mut v = example();
        v["sites"][0]["thresholds"]["quorom"] = 2.into();
        let (field, msg) = shape(v);
        assert!(field.starts_with("sites[0].thresholds"), "{field}");
        assert!(msg.contains("quorom"), "{msg}");

        let mut v = example();
        v["sites"][2]["dns"]["ttl"] = "thirty".into();
        assert_eq!(shape(v).0, "sites[2].dns.ttl");

        assert!(matches!(
            Config::from_document("{ not json"),
            Err(ConfigError::Syntax { format: "JSON", .. })
        ));
        assert!(matches!(
            Config::from_document("= nope"),
            Err(ConfigError::Syntax { format: "TOML", .. })
        ));
    }

    #[test]
    fn maintenance_windows_are_weekly_utc_and_may_wrap() {
        let w = MaintenanceWindow::parse("sat:22:00-sun:02:00").unwrap();
        // 2026-11-28 is a Saturday.
        assert!(w.contains(Utc.with_ymd_and_hms(2026, 11, 28, 23, 0, 0).unwrap()));
        assert!(w.contains(Utc.with_ymd_and_hms(2026, 11, 29, 1, 59, 0).unwrap()));
        assert!(!w.contains(Utc.with_ymd_and_hms(2026, 11, 29, 2, 0, 0).unwrap()));
        let wrap = MaintenanceWindow::parse("sun:23:00-mon:01:00").unwrap();
        assert!(wrap.contains(Utc.with_ymd_and_hms(2026, 11, 30, 0, 30, 0).unwrap()));
        assert!(wrap.contains(Utc.with_ymd_and_hms(2026, 11, 29, 23, 30, 0).unwrap()));
        assert!(!wrap.contains(Utc.with_ymd_and_hms(2026, 11, 30, 1, 30, 0).unwrap()));
        assert_eq!(w.to_string(), "sat:22:00-sun:02:00");
        assert!(MaintenanceWindow::parse("sun:25:00-sun:26:00").is_err());
        assert!(MaintenanceWindow::parse("sun:03:00-sun:03:00").is_err());
    }
}
