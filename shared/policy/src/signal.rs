//! Every trigger shape a real account delivers, normalised into one [`Signal`].
//!
//! The evaluator is woken by many envelopes: EventBridge alarm state changes (metric and composite),
//! the payload an alarm's own Lambda action sends, SNS notifications of alarms and RDS events (whose
//! `Message` is a JSON *string*), EventBridge RDS instance/cluster events, the scheduled tick, and
//! operator commands (direct invoke or via EventBridge). The policy must not care which envelope
//! carried the news, so all of them become a `Signal`; the envelope survives only as [`Delivery`]
//! (for the audit trail) and as the account/region/source the allowlist guard checks.
//!
//! Parsing is strict where it matters for safety and lenient only where AWS itself varies:
//! - identity comes from the ARN where the payload has one, and every other field that names the
//!   account, region or resource must agree with it ([`identity`]); the documented `rds:` prefix
//!   of an RDS `SourceIdentifier` is the one spelling difference accepted;
//! - times are read in the spellings AWS uses and no other ([`time`]);
//! - optional fields AWS's own documented payloads omit (an RDS event's `EventID`, `SourceArn`)
//!   may be absent: an RDS event without an event id is [`RdsMeaning::Unidentified`], recorded
//!   and not acted on, never an error that would send a harmless event to the dead-letter queue.
//!
//! A malformed or self-contradicting input is a typed [`SignalError`] naming the field(s), never a
//! guess. `events/published/` holds payloads AWS itself publishes, replayed against this parser.

mod identity;
mod sqs;
mod time;
pub mod url;

use aws_lambda_events::event::cloudwatch_alarms::{
    CloudWatchAlarm, CloudWatchAlarmData, CloudWatchAlarmStateValue,
};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sns::SnsEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use identity::{agree, console_link_parts, contradiction, strip_rds_prefix, Arn};
pub use time::{parse_aws_time, TimeDialect};

/// Source names the allowlist accepts, one per legitimate producer.
pub const SOURCE_CLOUDWATCH: &str = "aws.cloudwatch";
pub const SOURCE_RDS: &str = "aws.rds";
pub const SOURCE_SCHEDULE: &str = "aws.events";
pub const SOURCE_OPERATOR: &str = "rds-failover.operator";
/// The evaluator's own re-check at the end of a sustained window, through its SQS queue
/// ([`crate::recheck`]).
pub const SOURCE_RECHECK: &str = "rds-failover.recheck";

/// Inputs larger than this are refused before parsing (no real trigger comes close).
pub const MAX_INPUT_BYTES: usize = 256 * 1024;

/// The key of the object the functions' runtime layer
/// (`failover_adapters::runtime::ScreenInput`) hands the handler in place of a payload it refused
/// as raw bytes; its value is the refusal's message. See [`screen_bytes`].
pub const REFUSED_INPUT_KEY: &str = "rds-failover:refused-input";

/// What the Lambda runtime's own deserializer lets through but no function may act on: more than
/// [`MAX_INPUT_BYTES`], or one JSON value followed by more bytes (the runtime reads the first
/// value and silently drops the rest, so `{..pause..}{..failover..}` would run the pause alone).
/// `None` for everything else, including bytes that are not JSON at all: the runtime refuses those
/// itself, naming the parse error.
pub fn screen_bytes(bytes: &[u8]) -> Option<SignalError> {
    use serde::de::{Deserialize as _, IgnoredAny};
    if bytes.len() > MAX_INPUT_BYTES {
        return Some(SignalError::TooLarge(bytes.len()));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    if IgnoredAny::deserialize(&mut de).is_ok() {
        if let Err(e) = de.end() {
            return Some(SignalError::TrailingData(e.to_string()));
        }
    }
    None
}

/// The refusal the runtime layer put in place of the payload, if it did (see [`screen_bytes`]).
pub fn refused_input(v: &Value) -> Option<String> {
    let refusal = v.as_object()?.get(REFUSED_INPUT_KEY)?;
    Some(
        refusal
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| refusal.to_string()),
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// The producer's id for this delivery (EventBridge id, SNS MessageId, ...): the dedupe key.
    pub id: String,
    pub delivery: Delivery,
    pub source: String,
    pub account: Option<String>,
    pub region: Option<String>,
    /// When the producer says it happened. `None` only for direct operator invokes.
    pub time: Option<DateTime<Utc>>,
    pub kind: SignalKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    EventBridge,
    AlarmAction,
    Sns,
    /// An SQS message through Lambda's event source mapping (the evaluator's re-check queue).
    Sqs,
    Direct,
    /// An operator command through one of the evaluator's `AWS_IAM` function URLs: the command
    /// carries the authenticated principal ([`url`]).
    FunctionUrl,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SignalKind {
    Alarm(AlarmSignal),
    Rds(RdsSignal),
    Tick,
    /// The evaluator's own re-check of one site, armed for the end of its sustained window.
    Recheck(RecheckSignal),
    Operator(OperatorCommand),
}

/// What a re-check message carries: the site, the instant it was meant to arrive (the signal's
/// time, so a redelivery hours late is refused as stale like any other signal) and the end of the
/// sustained window it was armed for (later than `at` when the window is longer than SQS's
/// 900-second maximum delay, so the evaluator re-arms it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecheckSignal {
    pub site: String,
    pub at: DateTime<Utc>,
    pub due: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    /// Unknown, never healthy: a dead instance stops publishing metrics.
    InsufficientData,
}

impl AlarmState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "OK" => Some(Self::Ok),
            "ALARM" => Some(Self::Alarm),
            "INSUFFICIENT_DATA" => Some(Self::InsufficientData),
            _ => None,
        }
    }
    fn from_lib(v: &CloudWatchAlarmStateValue) -> Self {
        match v {
            CloudWatchAlarmStateValue::Ok => Self::Ok,
            CloudWatchAlarmStateValue::Alarm => Self::Alarm,
            _ => Self::InsufficientData,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmSignal {
    pub name: String,
    pub arn: Option<String>,
    pub state: AlarmState,
    pub previous: Option<AlarmState>,
    pub composite: bool,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RdsSourceType {
    Instance,
    Cluster,
    GlobalCluster,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RdsSignal {
    pub source_type: RdsSourceType,
    /// The DB instance, cluster or global cluster id: from the source ARN when the event has one
    /// (the identifier, without its documented `rds:` prefix, agrees with it or the event is
    /// refused).
    pub source_id: String,
    pub source_arn: Option<String>,
    /// `RDS-EVENT-NNNN`; empty when the event carried none (then `meaning` is
    /// [`RdsMeaning::Unidentified`]). A `String`, not an `Option`, so the decision tables that
    /// build signals by hand stay as they are.
    pub event_id: String,
    pub message: String,
    pub meaning: RdsMeaning,
}

/// What an RDS event tells the evaluator. Only the outage meanings can open an incident; the rest
/// wake the evaluator (so it re-reads the evidence) or are recorded for the humans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RdsMeaning {
    /// Shutdown, failure, storage-full shutdown, error while restarting.
    Outage,
    /// A deliberate stop by someone: not an outage to fail over from.
    Stopped,
    /// Restarted / started: the instance is coming back (e.g. a maintenance reboot).
    Restarted,
    /// RDS or Aurora is already failing over on its own (Multi-AZ, cluster, global).
    ManagedFailoverStarted,
    ManagedFailoverCompleted,
    ManagedFailoverFailed,
    BackupStarted,
    BackupFinished,
    ReplicationError,
    ReplicationResumed,
    Informational,
    /// The event carries no event id (`EventID` / `Event ID`), as older documented shapes do:
    /// what happened cannot be told, so nothing is done; the delivery is recorded.
    Unidentified,
}

/// Known RDS/Aurora event ids (Amazon RDS User Guide "Amazon RDS event categories and event
/// messages", Aurora User Guide "Amazon Aurora event categories and event messages").
const RDS_EVENTS: &[(&str, RdsMeaning)] = &[
    ("RDS-EVENT-0001", RdsMeaning::BackupStarted),
    ("RDS-EVENT-0002", RdsMeaning::BackupFinished),
    ("RDS-EVENT-0004", RdsMeaning::Outage),
    ("RDS-EVENT-0006", RdsMeaning::Restarted),
    ("RDS-EVENT-0013", RdsMeaning::ManagedFailoverStarted),
    ("RDS-EVENT-0015", RdsMeaning::ManagedFailoverCompleted),
    ("RDS-EVENT-0022", RdsMeaning::Outage),
    ("RDS-EVENT-0031", RdsMeaning::Outage),
    ("RDS-EVENT-0034", RdsMeaning::ManagedFailoverFailed),
    ("RDS-EVENT-0045", RdsMeaning::ReplicationError),
    ("RDS-EVENT-0046", RdsMeaning::ReplicationResumed),
    ("RDS-EVENT-0049", RdsMeaning::ManagedFailoverCompleted),
    ("RDS-EVENT-0050", RdsMeaning::ManagedFailoverStarted),
    ("RDS-EVENT-0051", RdsMeaning::ManagedFailoverCompleted),
    ("RDS-EVENT-0057", RdsMeaning::ReplicationError),
    ("RDS-EVENT-0062", RdsMeaning::ReplicationError),
    ("RDS-EVENT-0069", RdsMeaning::ManagedFailoverFailed),
    ("RDS-EVENT-0070", RdsMeaning::ManagedFailoverStarted),
    ("RDS-EVENT-0071", RdsMeaning::ManagedFailoverCompleted),
    ("RDS-EVENT-0072", RdsMeaning::ManagedFailoverStarted),
    ("RDS-EVENT-0073", RdsMeaning::ManagedFailoverStarted),
    ("RDS-EVENT-0087", RdsMeaning::Stopped),
    ("RDS-EVENT-0088", RdsMeaning::Restarted),
    ("RDS-EVENT-0221", RdsMeaning::Outage),
    // Aurora Global Database (category global-failover), recorded on the member DB clusters:
    // 0181-0187 are the steps of a global switchover (started, old primary shut down, waiting
    // for sync, new primary promoted, completed, "no longer the primary", failed); 0238/0239 are
    // a global failover completed/failed; 0240/0241 the resynchronisation that follows it. AWS
    // documents no "global failover started" event: the status `failing-over` shows that.
    ("RDS-EVENT-0181", RdsMeaning::ManagedFailoverStarted),
    ("RDS-EVENT-0182", RdsMeaning::Informational),
    ("RDS-EVENT-0183", RdsMeaning::Informational),
    ("RDS-EVENT-0184", RdsMeaning::Informational),
    ("RDS-EVENT-0185", RdsMeaning::ManagedFailoverCompleted),
    ("RDS-EVENT-0186", RdsMeaning::Informational),
    ("RDS-EVENT-0187", RdsMeaning::ManagedFailoverFailed),
    ("RDS-EVENT-0238", RdsMeaning::ManagedFailoverCompleted),
    ("RDS-EVENT-0239", RdsMeaning::ManagedFailoverFailed),
    ("RDS-EVENT-0240", RdsMeaning::Informational),
    ("RDS-EVENT-0241", RdsMeaning::Informational),
];

pub fn rds_meaning(event_id: &str) -> RdsMeaning {
    RDS_EVENTS
        .iter()
        .find(|(id, _)| *id == event_id)
        .map(|(_, m)| *m)
        .unwrap_or(RdsMeaning::Informational)
}

/// An operator's instruction, by direct invoke or through EventBridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorCommand {
    pub command: OperatorAction,
    pub site: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub operator: Option<String>,
    /// Promote even if the replica lags more than the site's RPO. Requires a reason.
    #[serde(default)]
    pub override_rpo: bool,
    /// For `approve`: the epoch being approved, so a stale approval cannot approve a newer incident.
    #[serde(default)]
    pub epoch: Option<u64>,
    /// For `failover` with `override_rpo`: the candidate to promote (required for one that never
    /// reported a lag reading).
    #[serde(default)]
    pub candidate: Option<String>,
    /// For `failover`: proceed although the primary answers (votes up). Two writers follow unless
    /// the old primary is fenced; requires a reason, and is recorded.
    #[serde(default)]
    pub force: bool,
    /// For `failover`/`approve`: proceed inside the cooldown after the previous failover.
    /// Requires a reason, and is recorded.
    #[serde(default)]
    pub override_cooldown: bool,
    /// For `complete`: the database that is the writer now, when it is not the one DNS was
    /// pinned to (failed back by hand: the configured primary). Defaults to the pinned writer.
    #[serde(default)]
    pub primary: Option<String>,
    /// For `switchover`: how long writes may be refused while the target catches up (seconds,
    /// default [`crate::switchover::DEFAULT_MAX_WAIT_SECS`]); past it, the switchover rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait_secs: Option<u64>,
    /// For `drill`: run it outside every maintenance window of the site (needs a `reason`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outside_window: bool,
    /// The IAM principal that sent the command through a function URL, from the request context
    /// Lambda wrote after verifying the signature ([`url`]): its ARN, then its `userId` (and
    /// `callerId` when different) in parentheses. Never accepted from a body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// For `approve`: the number of the drill it approves. A drill's approval names the drill, so
    /// a real incident's approval is never taken for a drill's, nor a drill's for an incident's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<u64>,
}

impl OperatorCommand {
    /// Who sent the command, as recorded: the authenticated principal when the command came
    /// through a function URL, else the typed `operator` name (direct invoke or bus, allowed only
    /// by [`url::Admission::direct_commands`]).
    pub fn by(&self) -> Option<String> {
        self.principal.clone().or_else(|| self.operator.clone())
    }

    /// Checks what the types cannot: an empty site, or an RPO override with no reason (accepting
    /// data loss must always say why, for the timeline and the post-incident review).
    fn validated(self, shape: &'static str) -> Result<Self, SignalError> {
        if self.principal.is_some() {
            return Err(SignalError::Field {
                shape,
                field: "principal".into(),
                detail: "the sender's principal is taken from the function URL's IAM request context, never from the command".into(),
            });
        }
        if self.site.trim().is_empty() {
            return Err(SignalError::Field {
                shape,
                field: "site".into(),
                detail: "expected a configured site id, got an empty string".into(),
            });
        }
        let has_reason = self.reason.as_deref().is_some_and(has_visible_text);
        if self.command == OperatorAction::Complete && (self.epoch.is_none() || !has_reason) {
            return Err(SignalError::Field {
                shape,
                field: if self.epoch.is_none() {
                    "epoch"
                } else {
                    "reason"
                }
                .into(),
                detail:
                    "`complete` closes one failover: it needs the incident's `epoch` and a `reason`"
                        .into(),
            });
        }
        if self.command == OperatorAction::Drill
            && (self
                .candidate
                .as_deref()
                .is_none_or(|c| c.trim().is_empty())
                || !has_reason)
        {
            return Err(SignalError::Field {
                shape,
                field: if has_reason { "candidate" } else { "reason" }.into(),
                detail: "`drill` switches the writer to the DR side and back: it needs the DR `candidate` and a `reason`".into(),
            });
        }
        if self.outside_window && self.command != OperatorAction::Drill {
            return Err(SignalError::Field {
                shape,
                field: "outside_window".into(),
                detail: format!(
                    "`outside_window` belongs to `drill`, not `{}`",
                    self.command.as_str()
                ),
            });
        }
        if self.command == OperatorAction::Switchover
            && (self
                .candidate
                .as_deref()
                .is_none_or(|c| c.trim().is_empty())
                || !has_reason)
        {
            return Err(SignalError::Field {
                shape,
                field: if has_reason { "candidate" } else { "reason" }.into(),
                detail: "`switchover` moves the writer on purpose: it needs the target `candidate` and a `reason`".into(),
            });
        }
        let waits = matches!(
            self.command,
            OperatorAction::Switchover | OperatorAction::Failback | OperatorAction::Drill
        );
        if self.max_wait_secs.is_some() && !waits {
            return Err(SignalError::Field {
                shape,
                field: "max_wait_secs".into(),
                detail: format!(
                    "`max_wait_secs` belongs to `switchover` and `failback`, not `{}`",
                    self.command.as_str()
                ),
            });
        }
        if self.drill.is_some() && self.command != OperatorAction::Approve {
            return Err(SignalError::Field {
                shape,
                field: "drill".into(),
                detail: format!(
                    "`drill` (a drill's number) belongs to `approve`, not `{}`",
                    self.command.as_str()
                ),
            });
        }
        let needs_epoch = matches!(
            self.command,
            OperatorAction::Approve | OperatorAction::Abort
        );
        if needs_epoch && self.epoch.is_none() {
            return Err(SignalError::Field {
                shape,
                field: "epoch".into(),
                detail: format!(
                    "`{}` acts on one incident: name its `epoch` (see `status`)",
                    self.command.as_str()
                ),
            });
        }
        let flag = if self.force {
            Some("force")
        } else if self.override_cooldown {
            Some("override_cooldown")
        } else if self.command == OperatorAction::Abort {
            Some("abort")
        } else if self.command == OperatorAction::Unpin {
            Some("unpin")
        } else if self.command == OperatorAction::Reprotect {
            Some("reprotect")
        } else if self.command == OperatorAction::Failback {
            Some("failback")
        } else {
            None
        };
        if let Some(flag) = flag.filter(|_| !has_reason) {
            return Err(SignalError::Field {
                shape,
                field: "reason".into(),
                detail: format!("`{flag}` is recorded in the ledger and needs a non-empty reason"),
            });
        }
        if self.override_rpo && !has_reason {
            return Err(SignalError::Field {
                shape,
                field: "reason".into(),
                detail: "`override_rpo: true` accepts data loss and needs a non-empty reason"
                    .into(),
            });
        }
        Ok(self)
    }
}

/// Whether a free-text field says anything a person can read: at least one character that is
/// not whitespace, a control character or a default-ignorable code point (zero-width spaces and
/// joiners, bidi controls, soft hyphen, variation selectors, BOM), which render as nothing.
fn has_visible_text(s: &str) -> bool {
    s.chars().any(|c| {
        !c.is_whitespace()
            && !c.is_control()
            && !matches!(c,
                '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
                | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}'
                | '\u{E0000}'..='\u{E0FFF}')
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperatorAction {
    Failover,
    Approve,
    Pause,
    Resume,
    Status,
    /// Close a pinned failover; the ledger then owns the new topology.
    Complete,
    /// Abandon an epoch whose promotion was never asked of RDS (or is observed not to have
    /// happened), so the site is not held in `promoting` until its deadline.
    Abort,
    /// A planned switchover (RPO 0) to a named candidate: see [`crate::switchover`].
    Switchover,
    /// The writer name back to the record set recorded before the pin: see [`crate::unpin`].
    Unpin,
    /// A new replica of the ledger's primary after a failover: see [`crate::reprotect`].
    Reprotect,
    /// A switchover back to the original region once it is re-protected there, then the writer
    /// name back to its recorded shape: see [`crate::failback`].
    Failback,
    /// A switchover to the DR side and back, measured and recorded: see [`crate::drill`].
    Drill,
}

impl OperatorAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failover => "failover",
            Self::Approve => "approve",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Status => "status",
            Self::Complete => "complete",
            Self::Abort => "abort",
            Self::Switchover => "switchover",
            Self::Unpin => "unpin",
            Self::Reprotect => "reprotect",
            Self::Failback => "failback",
            Self::Drill => "drill",
        }
    }
}

/// Why an input is not a trigger we understand. Every variant names what was wrong.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SignalError {
    #[error("input is not valid JSON: {0}")]
    NotJson(String),
    #[error("input is {0} bytes, larger than the {MAX_INPUT_BYTES}-byte limit for a trigger")]
    TooLarge(usize),
    #[error("input is one JSON value followed by more bytes ({0}); refusing to act on part of it")]
    TrailingData(String),
    /// The runtime layer refused the raw payload; the message says why.
    #[error("{0}")]
    Refused(String),
    #[error("input is a JSON {0}, expected an object")]
    NotAnObject(&'static str),
    #[error("input matches no known trigger shape (EventBridge event, SNS notification, SQS re-check, alarm action, operator command)")]
    UnknownShape,
    #[error("{shape}: field `{field}` is missing or malformed: {detail}")]
    Field {
        shape: &'static str,
        field: String,
        detail: String,
    },
    #[error("EventBridge detail-type `{detail_type}` from `{source_name}` is not a trigger this function handles")]
    UnsupportedDetailType {
        detail_type: String,
        source_name: String,
    },
    /// Two fields of one payload name different things (the alarm name and the alarm ARN, the
    /// envelope's account and the resource ARN's, ...): a forgery or a misroute, refused.
    #[error("{shape}: fields `{first}` and `{second}` disagree ({detail}); refusing a payload that contradicts itself")]
    Contradiction {
        shape: &'static str,
        first: String,
        second: String,
        detail: String,
    },
    #[error("SNS notification carries {0} records, expected exactly 1")]
    SnsRecordCount(usize),
    #[error("SQS batch carries {0} records, expected exactly 1 (the event source mapping's BatchSize is 1)")]
    SqsRecordCount(usize),
    #[error("SNS message is neither a CloudWatch alarm nor an RDS event notification: {0}")]
    UnknownSnsMessage(String),
    /// A function-URL request without the IAM authorizer context (`requestContext.authorizer.iam.userArn`).
    #[error("function URL request carries no IAM principal (requestContext.authorizer.iam.userArn): the URL must use AuthType AWS_IAM; refusing an unauthenticated command")]
    Unauthenticated,
    /// The command may not come through this door ([`url::admit`]).
    #[error("not permitted through `{door}`: {detail}")]
    NotPermitted { door: String, detail: String },
}

fn field(shape: &'static str, field: &str, detail: impl ToString) -> SignalError {
    SignalError::Field {
        shape,
        field: field.to_string(),
        detail: detail.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Parses raw bytes (what `cargo lambda invoke` and the Lambda runtime hand us).
pub fn parse_bytes(bytes: &[u8]) -> Result<Signal, SignalError> {
    if let Some(e) = screen_bytes(bytes) {
        return Err(e);
    }
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| SignalError::NotJson(e.to_string()))?;
    parse_signal(&v)
}

/// Normalises one delivered payload into a [`Signal`].
pub fn parse_signal(v: &Value) -> Result<Signal, SignalError> {
    let obj = v
        .as_object()
        .ok_or_else(|| SignalError::NotAnObject(type_name(v)))?;
    if let Some(refusal) = refused_input(v) {
        return Err(SignalError::Refused(refusal));
    }
    if url::is_function_url(v) {
        return url::parse(v);
    }
    if obj.contains_key("Records") {
        if sqs::is_sqs(v) {
            return sqs::parse(v);
        }
        return parse_sns(v);
    }
    if obj.contains_key("detail-type") {
        return parse_eventbridge(v);
    }
    if obj.contains_key("alarmData") {
        return parse_alarm_action(v);
    }
    if obj.contains_key("command") {
        let cmd: OperatorCommand = serde_json::from_value::<OperatorCommand>(v.clone())
            .map_err(|e| field("operator command", "command", e))?
            .validated("operator command")?;
        return Ok(Signal {
            id: format!(
                "operator:{}:{}",
                cmd.site,
                serde_json::to_string(&cmd.command).unwrap_or_default()
            ),
            delivery: Delivery::Direct,
            source: SOURCE_OPERATOR.into(),
            account: None,
            region: None,
            time: None,
            kind: SignalKind::Operator(cmd),
        });
    }
    Err(SignalError::UnknownShape)
}

/// The instant `value` holds, spelled in `dialect` (see [`time`]); `Ok(None)` when an optional
/// field is absent or null.
fn time_field(
    shape: &'static str,
    name: &str,
    value: Option<&Value>,
    dialect: TimeDialect,
    required: bool,
) -> Result<Option<DateTime<Utc>>, SignalError> {
    match value {
        None | Some(Value::Null) if !required => Ok(None),
        None => Err(field(shape, name, "missing")),
        Some(Value::String(s)) => parse_aws_time(s, dialect)
            .map(Some)
            .ok_or_else(|| field(shape, name, format!("`{s}` is not {}", dialect.describe()))),
        Some(other) => Err(field(
            shape,
            name,
            format!(
                "expected {}, got a JSON {}",
                dialect.describe(),
                type_name(other)
            ),
        )),
    }
}

/// A time field that must be present.
fn required_time(
    shape: &'static str,
    name: &str,
    value: Option<&Value>,
    dialect: TimeDialect,
) -> Result<DateTime<Utc>, SignalError> {
    time_field(shape, name, value, dialect, true)?.ok_or_else(|| field(shape, name, "missing"))
}

/// Checks the alarm-state timestamps of an alarm detail (`state`, `previousState`), which the
/// library type would parse with chrono's relaxed reader.
fn check_state_times(shape: &'static str, prefix: &str, data: &Value) -> Result<(), SignalError> {
    for key in ["state", "previousState"] {
        if let Some(state) = data.get(key) {
            time_field(
                shape,
                &format!("{prefix}{key}.timestamp"),
                state.get("timestamp"),
                TimeDialect::Zoned,
                false,
            )?;
        }
    }
    Ok(())
}

fn parse_alarm_action(v: &Value) -> Result<Signal, SignalError> {
    const SHAPE: &str = "alarm action payload";
    let time = required_time(SHAPE, "time", v.get("time"), TimeDialect::Zoned)?;
    if let Some(data) = v.get("alarmData") {
        check_state_times(SHAPE, "alarmData.", data)?;
    }
    let a: CloudWatchAlarm<Value, Value> =
        serde_json::from_value(v.clone()).map_err(|e| field(SHAPE, "alarmData", e))?;
    let composite = a.alarm_data.configuration.get("alarmRule").is_some();
    let alarm = alarm_from_data(SHAPE, &a.alarm_data, a.alarm_arn.clone(), composite)?;
    let (account, region) = alarm_identity(
        SHAPE,
        ("alarmArn", a.alarm_arn.as_deref()),
        ("alarmData.alarmName", &alarm.name),
        ("accountId", a.account_id.as_deref()),
        Some(("region", a.region.as_deref())),
    )?;
    Ok(Signal {
        id: format!("alarm-action:{}:{}", alarm.name, time.to_rfc3339()),
        delivery: Delivery::AlarmAction,
        source: a.source.clone().unwrap_or_else(|| SOURCE_CLOUDWATCH.into()),
        account,
        region,
        time: Some(time),
        kind: SignalKind::Alarm(alarm),
    })
}

/// The account and region an alarm payload is about: its alarm ARN's where it has one (and then
/// the name, account and region fields must say the same), else the fields'.
fn alarm_identity(
    shape: &'static str,
    (arn_field, arn): (&str, Option<&str>),
    (name_field, name): (&str, &str),
    (account_field, account): (&str, Option<&str>),
    region: Option<(&str, Option<&str>)>,
) -> Result<(Option<String>, Option<String>), SignalError> {
    let Some(raw) = arn else {
        return Ok((
            account.map(String::from),
            region.and_then(|(_, r)| r).map(String::from),
        ));
    };
    let not_alarm = || {
        field(
            shape,
            arn_field,
            format!("`{raw}` is not a CloudWatch alarm ARN (arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME)"),
        )
    };
    let parsed = Arn::parse(raw).ok_or_else(not_alarm)?;
    let arn_name = parsed.alarm_name().ok_or_else(not_alarm)?;
    agree(
        shape,
        name_field,
        Some(name),
        arn_field,
        arn_name,
        "the alarm",
    )?;
    agree(
        shape,
        account_field,
        account,
        arn_field,
        parsed.account,
        "account",
    )?;
    if let Some((region_field, region)) = region {
        agree(
            shape,
            region_field,
            region,
            arn_field,
            parsed.region,
            "region",
        )?;
    }
    Ok((Some(parsed.account.into()), Some(parsed.region.into())))
}

fn alarm_from_data(
    shape: &'static str,
    d: &CloudWatchAlarmData<Value, Value>,
    arn: Option<String>,
    composite: bool,
) -> Result<AlarmSignal, SignalError> {
    if d.alarm_name.is_empty() {
        return Err(field(shape, "alarmName", "empty"));
    }
    let state = d
        .state
        .as_ref()
        .ok_or_else(|| field(shape, "state", "missing"))?;
    Ok(AlarmSignal {
        name: d.alarm_name.clone(),
        arn,
        state: AlarmState::from_lib(&state.value),
        previous: d
            .previous_state
            .as_ref()
            .map(|s| AlarmState::from_lib(&s.value)),
        composite,
        reason: state.reason.clone(),
    })
}

fn parse_eventbridge(v: &Value) -> Result<Signal, SignalError> {
    const SHAPE: &str = "EventBridge event";
    let time = required_time(SHAPE, "time", v.get("time"), TimeDialect::Zoned)?;
    let e: EventBridgeEvent<Value> =
        serde_json::from_value(v.clone()).map_err(|e| field(SHAPE, "envelope", e))?;
    let id =
        e.id.clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| field(SHAPE, "id", "missing"))?;
    let resources = e.resources.clone().unwrap_or_default();
    let mut account = e.account.clone();
    let mut region = e.region.clone();
    let kind = match (e.source.as_str(), e.detail_type.as_str()) {
        (SOURCE_CLOUDWATCH, "CloudWatch Alarm State Change") => {
            const S: &str = "CloudWatch Alarm State Change";
            // The lib type's state value is lenient (unknown -> default OK); a wrong state must be an
            // error here, so the value is checked by hand first.
            check_state_values(S, &e.detail)?;
            check_state_times(S, "detail.", &e.detail)?;
            let d: CloudWatchAlarmData<Value, Value> =
                serde_json::from_value(e.detail.clone()).map_err(|err| field(S, "detail", err))?;
            let composite = d.configuration.get("alarmRule").is_some();
            // "Alarm events and EventBridge" (CloudWatch User Guide): `resources` holds the
            // alarm's ARN, alone.
            let arn = match resources.as_slice() {
                [] => None,
                [one] => Some(one.clone()),
                more => {
                    return Err(field(
                        S,
                        "resources",
                        format!("expected the alarm's ARN alone, got {} entries", more.len()),
                    ))
                }
            };
            let alarm = alarm_from_data(S, &d, arn.clone(), composite)?;
            (account, region) = alarm_identity(
                S,
                ("resources[0]", arn.as_deref()),
                ("detail.alarmName", &alarm.name),
                ("account", e.account.as_deref()),
                Some(("region", e.region.as_deref())),
            )?;
            SignalKind::Alarm(alarm)
        }
        (SOURCE_RDS, "RDS DB Instance Event" | "RDS DB Cluster Event") => {
            let (rds, arn) = rds_from_detail(&e.detail, &resources)?;
            if let Some(arn) = arn {
                const S: &str = "RDS event";
                agree(
                    S,
                    "account",
                    e.account.as_deref(),
                    "detail.SourceArn",
                    arn.account,
                    "account",
                )?;
                if !arn.region.is_empty() {
                    agree(
                        S,
                        "region",
                        e.region.as_deref(),
                        "detail.SourceArn",
                        arn.region,
                        "region",
                    )?;
                    region = region.or_else(|| Some(arn.region.into()));
                }
                account = account.or_else(|| Some(arn.account.into()));
            }
            SignalKind::Rds(rds)
        }
        (SOURCE_SCHEDULE, "Scheduled Event") => {
            // The rule's ARN (`arn:aws:events:REGION:ACCOUNT:rule/NAME`, "Amazon EventBridge
            // scheduled events") names the account and region too.
            for (i, raw) in resources.iter().enumerate() {
                let name = format!("resources[{i}]");
                let arn = Arn::parse(raw)
                    .filter(|a| a.service == "events")
                    .ok_or_else(|| {
                        field(
                            "Scheduled Event",
                            &name,
                            format!("`{raw}` is not an EventBridge rule ARN"),
                        )
                    })?;
                agree(
                    "Scheduled Event",
                    "account",
                    e.account.as_deref(),
                    &name,
                    arn.account,
                    "account",
                )?;
                agree(
                    "Scheduled Event",
                    "region",
                    e.region.as_deref(),
                    &name,
                    arn.region,
                    "region",
                )?;
            }
            SignalKind::Tick
        }
        (SOURCE_OPERATOR, "Operator Command") => SignalKind::Operator(
            serde_json::from_value::<OperatorCommand>(e.detail.clone())
                .map_err(|err| field("Operator Command", "detail", err))?
                .validated("Operator Command")?,
        ),
        (src, dt) => {
            return Err(SignalError::UnsupportedDetailType {
                detail_type: dt.to_string(),
                source_name: src.to_string(),
            })
        }
    };
    Ok(Signal {
        id,
        delivery: Delivery::EventBridge,
        source: e.source.clone(),
        account,
        region,
        time: Some(time),
        kind,
    })
}

fn check_state_values(shape: &'static str, detail: &Value) -> Result<(), SignalError> {
    for key in ["state", "previousState"] {
        match detail.get(key) {
            None if key == "previousState" => {}
            None => return Err(field(shape, "detail.state", "missing")),
            Some(s) => {
                let value = s.get("value").and_then(Value::as_str).unwrap_or("");
                if AlarmState::parse(value).is_none() {
                    return Err(field(
                        shape,
                        &format!("detail.{key}.value"),
                        format!("expected OK, ALARM or INSUFFICIENT_DATA, got `{value}`"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The detail of an EventBridge RDS event. `EventID` is optional: the RDS User Guide's examples
/// before 2021 and the Lambda Developer Guide's ("Using AWS Lambda with Amazon EventBridge")
/// carry none; `SourceArn` is optional too (the ARN in `resources` stands in for it).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RdsDetail {
    #[serde(default)]
    source_type: Option<String>,
    #[serde(default)]
    source_arn: Option<String>,
    source_identifier: String,
    #[serde(rename = "EventID", default)]
    event_id: Option<String>,
    #[serde(default)]
    message: String,
}

fn source_type(s: &str) -> Option<RdsSourceType> {
    match s {
        "DB_INSTANCE" | "db-instance" => Some(RdsSourceType::Instance),
        "CLUSTER" | "DB_CLUSTER" | "db-cluster" => Some(RdsSourceType::Cluster),
        "GLOBAL_CLUSTER" | "db-global-cluster" | "global-cluster" => {
            Some(RdsSourceType::GlobalCluster)
        }
        _ => None,
    }
}

/// The resource an RDS event is about: its ARN's kind and id when it has an ARN — the identifier
/// (without the documented `rds:` prefix) and the source type must name the same — else the
/// identifier's.
fn rds_identity<'a>(
    shape: &'static str,
    (id_field, raw_id): (&str, &str),
    (type_field, kind): (&str, RdsSourceType),
    arn: Option<(&str, &'a str)>,
) -> Result<(String, Option<Arn<'a>>), SignalError> {
    let id = strip_rds_prefix(raw_id);
    if id.is_empty() {
        return Err(field(shape, id_field, "empty"));
    }
    let Some((arn_field, raw)) = arn else {
        return Ok((id.to_string(), None));
    };
    let parsed = Arn::parse(raw);
    let Some((arn_kind, arn_id)) = parsed.and_then(|a| a.rds_resource()) else {
        return Err(field(
            shape,
            arn_field,
            format!("`{raw}` is not the ARN of an RDS DB instance, cluster or global cluster"),
        ));
    };
    if arn_kind != kind {
        return Err(contradiction(
            shape,
            type_field,
            arn_field,
            format!("{type_field} says {kind:?}, {arn_field} names a {arn_kind:?} (`{raw}`)"),
        ));
    }
    agree(shape, id_field, Some(id), arn_field, arn_id, "the resource")?;
    Ok((arn_id.to_string(), parsed))
}

fn rds_from_detail<'a>(
    detail: &'a Value,
    resources: &'a [String],
) -> Result<(RdsSignal, Option<Arn<'a>>), SignalError> {
    const S: &str = "RDS event";
    let d: RdsDetail = serde_json::from_value(detail.clone()).map_err(|e| field(S, "detail", e))?;
    time_field(
        S,
        "detail.Date",
        detail.get("Date"),
        TimeDialect::Zoned,
        false,
    )?;
    let event_id = match d.event_id.as_deref() {
        None => None,
        Some(raw) => Some(normalise_event_id(raw).ok_or_else(|| {
            field(
                S,
                "detail.EventID",
                format!("`{raw}` is not RDS-EVENT-NNNN"),
            )
        })?),
    };
    let st_text = d.source_type.unwrap_or_default();
    let source_type = source_type(&st_text)
        .ok_or_else(|| field(S, "detail.SourceType", format!("unknown `{st_text}`")))?;
    // Identity: `detail.SourceArn`, else the envelope's one resource; when both are present the
    // envelope must list the SourceArn.
    let raw_arn = detail.get("SourceArn").and_then(Value::as_str);
    if let Some(arn) = raw_arn {
        if !resources.is_empty() && !resources.iter().any(|r| r == arn) {
            return Err(contradiction(
                S,
                "resources",
                "detail.SourceArn",
                format!("resources {resources:?} do not list `{arn}`"),
            ));
        }
    }
    let arn = match (raw_arn, resources) {
        (Some(a), _) => Some(("detail.SourceArn", a)),
        (None, [one]) => Some(("resources[0]", one.as_str())),
        (None, _) => None,
    };
    let (source_id, parsed) = rds_identity(
        S,
        ("detail.SourceIdentifier", &d.source_identifier),
        ("detail.SourceType", source_type),
        arn,
    )?;
    let (event_id, meaning) = match event_id {
        Some(id) => {
            let meaning = rds_meaning(&id);
            (id, meaning)
        }
        None => (String::new(), RdsMeaning::Unidentified),
    };
    Ok((
        RdsSignal {
            source_type,
            source_id,
            source_arn: d.source_arn.or_else(|| arn.map(|(_, a)| a.to_string())),
            meaning,
            event_id,
            message: d.message,
        },
        parsed,
    ))
}

/// Accepts `RDS-EVENT-0004` or the docs URL SNS notifications carry (`...#RDS-EVENT-0004`).
fn normalise_event_id(raw: &str) -> Option<String> {
    let tail = raw.rsplit('#').next()?;
    let digits = tail.strip_prefix("RDS-EVENT-")?;
    (!digits.is_empty() && digits.len() <= 6 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| tail.to_string())
}

fn parse_sns(v: &Value) -> Result<Signal, SignalError> {
    const SHAPE: &str = "SNS notification";
    let e: SnsEvent = serde_json::from_value(v.clone()).map_err(|e| field(SHAPE, "Records", e))?;
    if e.records.len() != 1 {
        return Err(SignalError::SnsRecordCount(e.records.len()));
    }
    let time = required_time(
        SHAPE,
        "Records[0].Sns.Timestamp",
        v.pointer("/Records/0/Sns/Timestamp"),
        TimeDialect::Zoned,
    )?;
    let rec = &e.records[0];
    if rec.event_source != "aws:sns" {
        return Err(field(
            SHAPE,
            "Records[0].EventSource",
            format!("expected aws:sns, got `{}`", rec.event_source),
        ));
    }
    let sns = &rec.sns;
    // arn:aws:sns:REGION:ACCOUNT:topic — the topic is where the notification was published, not
    // what it is about: it is used only when the message names no account or region itself.
    let arn: Vec<&str> = sns.topic_arn.split(':').collect();
    let (topic_region, topic_account) = if arn.len() >= 6 {
        (Some(arn[3].to_string()), Some(arn[4].to_string()))
    } else {
        (None, None)
    };
    let msg: Value = serde_json::from_str(&sns.message)
        .map_err(|err| SignalError::UnknownSnsMessage(format!("Message is not JSON ({err})")))?;
    let (kind, source, account, region) = if msg.get("AlarmName").is_some() {
        const S: &str = "SNS alarm notification";
        let alarm = sns_alarm(&msg)?;
        time_field(
            S,
            "Message.StateChangeTime",
            msg.get("StateChangeTime"),
            TimeDialect::Zoned,
            false,
        )?;
        // `Region` is the region's display name ("US East (N. Virginia)"), not its code: the
        // alarm ARN's region is compared instead.
        let (account, region) = alarm_identity(
            S,
            ("Message.AlarmArn", alarm.arn.as_deref()),
            ("Message.AlarmName", &alarm.name),
            (
                "Message.AWSAccountId",
                msg.get("AWSAccountId").and_then(Value::as_str),
            ),
            None,
        )?;
        (
            SignalKind::Alarm(alarm),
            SOURCE_CLOUDWATCH,
            account.or(topic_account),
            region.or(topic_region),
        )
    } else if msg.get("Event ID").is_some() || msg.get("Source ID").is_some() {
        let (rds, arn) = sns_rds(&msg)?;
        // The RDS message names no account; the source ARN does (arn:aws:rds:REGION:ACCOUNT:...).
        let arn_account = arn.map(|a| a.account.to_string());
        let arn_region = arn.map(|a| a.region.to_string()).filter(|r| !r.is_empty());
        (
            SignalKind::Rds(rds),
            SOURCE_RDS,
            arn_account.or(topic_account),
            arn_region.or(topic_region),
        )
    } else {
        return Err(SignalError::UnknownSnsMessage(
            "no AlarmName and no `Event ID`".into(),
        ));
    };
    Ok(Signal {
        id: sns.message_id.clone(),
        delivery: Delivery::Sns,
        source: source.into(),
        account,
        region,
        time: Some(time),
        kind,
    })
}

fn sns_alarm(m: &Value) -> Result<AlarmSignal, SignalError> {
    const S: &str = "SNS alarm notification";
    let s = |k: &str| m.get(k).and_then(Value::as_str);
    let name = s("AlarmName")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| field(S, "AlarmName", "missing"))?;
    let new = s("NewStateValue").ok_or_else(|| field(S, "NewStateValue", "missing"))?;
    let state =
        AlarmState::parse(new).ok_or_else(|| field(S, "NewStateValue", format!("`{new}`")))?;
    let previous = match s("OldStateValue") {
        Some(o) => {
            Some(AlarmState::parse(o).ok_or_else(|| field(S, "OldStateValue", format!("`{o}`")))?)
        }
        None => None,
    };
    // Composite alarm notifications carry AlarmRule instead of Trigger.
    let composite = m.get("AlarmRule").is_some();
    Ok(AlarmSignal {
        name: name.into(),
        arn: s("AlarmArn").map(String::from),
        state,
        previous,
        composite,
        reason: s("NewStateReason").unwrap_or_default().into(),
    })
}

fn sns_rds(m: &Value) -> Result<(RdsSignal, Option<Arn<'_>>), SignalError> {
    const S: &str = "SNS RDS event notification";
    let s = |k: &str| m.get(k).and_then(Value::as_str);
    let string = |k: &str| -> Result<Option<&str>, SignalError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(x)) => Ok(Some(x)),
            Some(other) => Err(field(
                S,
                k,
                format!("expected a string, got a JSON {}", type_name(other)),
            )),
        }
    };
    // `Event ID` is optional for the same reason `EventID` is (see [`RdsDetail`]).
    let event_id = match string("Event ID")? {
        None => None,
        Some(raw) => Some(
            normalise_event_id(raw)
                .ok_or_else(|| field(S, "Event ID", format!("`{raw}` names no RDS-EVENT-NNNN")))?,
        ),
    };
    time_field(
        S,
        "Event Time",
        m.get("Event Time"),
        TimeDialect::RdsNotification,
        false,
    )?;
    let st = s("Event Source").unwrap_or("");
    let source_type =
        source_type(st).ok_or_else(|| field(S, "Event Source", format!("unknown `{st}`")))?;
    let raw_id = string("Source ID")?
        .filter(|x| !x.is_empty())
        .ok_or_else(|| field(S, "Source ID", "missing"))?;
    let source_arn = string("Source ARN")?;
    let (source_id, arn) = rds_identity(
        S,
        ("Source ID", raw_id),
        ("Event Source", source_type),
        source_arn.map(|a| ("Source ARN", a)),
    )?;
    // The console link names the resource too; the parts it spells must agree.
    if let Some(link) = string("Identifier Link")? {
        let (link_region, link_id) = console_link_parts(link);
        agree(
            S,
            "Identifier Link",
            link_id,
            "Source ID",
            &source_id,
            "the resource",
        )?;
        if let Some(arn) = arn.filter(|a| !a.region.is_empty()) {
            agree(
                S,
                "Identifier Link",
                link_region,
                "Source ARN",
                arn.region,
                "region",
            )?;
        }
    }
    let (event_id, meaning) = match event_id {
        Some(id) => {
            let meaning = rds_meaning(&id);
            (id, meaning)
        }
        None => (String::new(), RdsMeaning::Unidentified),
    };
    Ok((
        RdsSignal {
            source_type,
            source_id,
            source_arn: source_arn.map(String::from),
            meaning,
            event_id,
            message: s("Event Message").unwrap_or_default().into(),
        },
        arn,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_ids_normalise_from_docs_urls() {
        assert_eq!(
            normalise_event_id("http://docs.amazonwebservices.com/AmazonRDS/latest/UserGuide/USER_Events.html#RDS-EVENT-0004").as_deref(),
            Some("RDS-EVENT-0004")
        );
        assert_eq!(
            normalise_event_id("RDS-EVENT-0221").as_deref(),
            Some("RDS-EVENT-0221")
        );
        assert_eq!(normalise_event_id("RDS-EVENT-"), None);
        assert_eq!(normalise_event_id("EVENT-0004"), None);
    }

    #[test]
    fn non_objects_and_unknown_shapes_are_typed_errors() {
        assert_eq!(
            parse_signal(&json!([1])),
            Err(SignalError::NotAnObject("array"))
        );
        assert_eq!(
            parse_signal(&json!("x")),
            Err(SignalError::NotAnObject("string"))
        );
        assert_eq!(parse_signal(&json!({})), Err(SignalError::UnknownShape));
        assert!(matches!(
            parse_bytes(b"{\"a\":"),
            Err(SignalError::NotJson(_))
        ));
        let big = vec![b' '; MAX_INPUT_BYTES + 1];
        assert_eq!(
            parse_bytes(&big),
            Err(SignalError::TooLarge(MAX_INPUT_BYTES + 1))
        );
    }

    #[test]
    fn trailing_bytes_and_oversize_input_are_refused_before_parsing() {
        let pause = br#"{"command": "pause", "site": "orders", "reason": "x"}"#;
        assert!(screen_bytes(pause).is_none());
        assert!(
            screen_bytes(b"{\"a\":").is_none(),
            "not JSON: the runtime names that error"
        );
        let mut two = pause.to_vec();
        two.extend_from_slice(br#"{"command": "failover", "site": "orders"}"#);
        let e = screen_bytes(&two).unwrap();
        assert!(matches!(e, SignalError::TrailingData(_)), "{e}");
        assert!(matches!(
            parse_bytes(&two),
            Err(SignalError::TrailingData(_))
        ));
        let refused = json!({ REFUSED_INPUT_KEY: e.to_string() });
        assert_eq!(
            parse_signal(&refused),
            Err(SignalError::Refused(e.to_string()))
        );
    }

    #[test]
    fn operator_commands_reject_unknown_fields_and_actions() {
        assert!(parse_signal(&json!({"command": "nuke", "site": "orders"})).is_err());
        assert!(
            parse_signal(&json!({"command": "pause", "site": "orders", "force": true})).is_err()
        );
        assert!(parse_signal(
            &json!({"command": "failover", "site": "orders", "override_rpo": "yes"})
        )
        .is_err());
        let s =
            parse_signal(&json!({"command": "pause", "site": "orders", "reason": "region event"}))
                .unwrap();
        assert_eq!(s.delivery, Delivery::Direct);
    }

    #[test]
    fn global_database_events_mean_what_the_aurora_event_table_says() {
        assert_eq!(
            rds_meaning("RDS-EVENT-0181"),
            RdsMeaning::ManagedFailoverStarted
        );
        assert_eq!(
            rds_meaning("RDS-EVENT-0185"),
            RdsMeaning::ManagedFailoverCompleted
        );
        assert_eq!(
            rds_meaning("RDS-EVENT-0187"),
            RdsMeaning::ManagedFailoverFailed
        );
        assert_eq!(
            rds_meaning("RDS-EVENT-0238"),
            RdsMeaning::ManagedFailoverCompleted
        );
        assert_eq!(
            rds_meaning("RDS-EVENT-0239"),
            RdsMeaning::ManagedFailoverFailed
        );
        assert_eq!(rds_meaning("RDS-EVENT-0240"), RdsMeaning::Informational);
        assert_eq!(rds_meaning("RDS-EVENT-9999"), RdsMeaning::Informational);
    }

    #[test]
    fn an_rpo_override_without_a_reason_is_bad_input_naming_the_field() {
        for reason in [
            json!(null),
            json!(""),
            json!("   "),
            json!("\u{200b}\u{200b}"),
            json!("\u{202e}\u{2066}\u{00ad}"),
            json!("\u{feff}\t\u{0000}"),
        ] {
            let err = parse_signal(
                &json!({"command": "failover", "site": "orders", "override_rpo": true, "reason": reason}),
            )
            .unwrap_err();
            assert!(err.to_string().contains("`reason`"), "{err}");
        }
        let wrapped = json!({
            "version": "0", "id": "1", "detail-type": "Operator Command", "source": SOURCE_OPERATOR,
            "account": "123456789012", "time": "2026-11-24T03:00:00Z", "region": "us-west-2",
            "resources": [], "detail": {"command": "failover", "site": "orders", "override_rpo": true}
        });
        assert!(parse_signal(&wrapped)
            .unwrap_err()
            .to_string()
            .contains("`reason`"));
        assert!(parse_signal(
            &json!({"command": "failover", "site": "orders", "override_rpo": true, "reason": "INC-1 \u{200b}"})
        )
        .is_ok());
        assert!(parse_signal(&json!({"command": "status", "site": ""})).is_err());
        let e = parse_signal(&json!({"command": "complete", "site": "orders", "reason": "done"}));
        assert!(e.unwrap_err().to_string().contains("`epoch`"));
        let e = parse_signal(&json!({"command": "complete", "site": "orders", "epoch": 3}));
        assert!(e.unwrap_err().to_string().contains("`reason`"));
    }
}
