//! The DNS port: read the writer record set, change it, and watch the change reach `INSYNC`.
//!
//! Route 53 facts this port and its fake are built around:
//! - the record-change API is global (served from us-east-1); a change is `PENDING` until every
//!   Route 53 name server has it, then `INSYNC` — only then is the new answer authoritative;
//! - a change batch is atomic: every entry applies or none does (`InvalidChangeBatch`);
//! - every accepted batch gets a new change id, even when it changes nothing;
//! - a simple CNAME cannot coexist with any other record of the same name;
//! - `PriorRequestNotComplete` is Route 53's way of saying "slow down" for one zone.
//!
//! The record shapes are the policy's ([`failover_policy::pin`]), so the plan is pure and the
//! adapter only translates.
// Imports and helpers that only the fakes below use are unused when they are compiled out.
#![cfg_attr(
    not(any(test, feature = "test-util")),
    allow(unused_imports, dead_code)
)]

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_route53::types::{
    Change, ChangeBatch, ResourceRecord, ResourceRecordSet, ResourceRecordSetFailover, RrType,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use failover_policy::pin::{
    same_name, ChangeAction, ChangeInfo, ChangeStatus, FailoverRole, RecordChange, RecordQuery,
    RecordSet,
};

use crate::aws::{port_error, AwsClients};
#[cfg(any(test, feature = "test-util"))]
use crate::fakes::Faults;
use crate::ports::{ErrorKind, PortError};
use crate::resolve::Resolve;
use failover_policy::answer::{Answer, AnswerRecord, Served};
use failover_policy::unpin::phases::CheckStatus;

/// Route 53 through the eyes of the dns-pinner.
#[async_trait]
pub trait Dns: Send + Sync {
    /// Every record set of `q`'s name and type (only the one with `q`'s set identifier, when it
    /// names one), whatever its routing policy: both members of a failover pair, so a caller
    /// sees every answer Route 53 could give. Empty when the zone has none.
    async fn record_sets(&self, q: &RecordQuery) -> Result<Vec<RecordSet>, PortError>;
    /// The first of [`Dns::record_sets`], or `None`.
    async fn record_set(&self, q: &RecordQuery) -> Result<Option<RecordSet>, PortError> {
        Ok(self.record_sets(q).await?.into_iter().next())
    }
    /// Submits one atomic change batch; returns the new change (usually `PENDING`).
    async fn change(
        &self,
        zone_id: &str,
        changes: &[RecordChange],
        comment: &str,
    ) -> Result<ChangeInfo, PortError>;
    /// The status of a submitted change (GetChange).
    async fn change_status(&self, change_id: &str) -> Result<ChangeInfo, PortError>;
    /// The hosted zone's authoritative name servers: its delegation set (GetHostedZone).
    async fn name_servers(&self, zone_id: &str) -> Result<Vec<String>, PortError>;
    /// What Route 53's health checkers last reported of `health_check_id`
    /// (GetHealthCheckStatus: one observation per checker, its `StatusReport.Status` starting
    /// `Success` or `Failure`; Route 53 API Reference). A control-plane call (us-east-1).
    async fn health_check_status(&self, health_check_id: &str) -> Result<CheckStatus, PortError>;
}

/// Route 53 answers ids as `/change/C123`; the SDK strips the prefix on input, we store it bare.
pub fn bare_change_id(id: &str) -> &str {
    id.trim_start_matches('/').trim_start_matches("change/")
}

fn matches(r: &RecordSet, q: &RecordQuery) -> bool {
    same_name(&r.name, &q.name)
        && r.record_type.eq_ignore_ascii_case(&q.record_type)
        && (q.set_identifier.is_none() || r.set_identifier == q.set_identifier)
}

// ---------------------------------------------------------------- AWS adapter

/// [`Dns`] over the Route 53 API (a global service: one client, whatever the home region).
pub struct Route53Dns {
    client: aws_sdk_route53::Client,
}

impl Route53Dns {
    pub fn new(clients: &AwsClients) -> Self {
        Self::from_client(clients.route53())
    }

    pub fn from_client(client: aws_sdk_route53::Client) -> Self {
        Self { client }
    }
}

/// The [`ErrorKind`] of Route 53's own error codes, which the cross-service table does not know.
fn route53_kind(code: Option<&str>) -> Option<ErrorKind> {
    Some(match code? {
        "NoSuchHostedZone" | "NoSuchChange" | "NoSuchHealthCheck" => ErrorKind::NotFound,
        // Another change to the same zone is still being processed: back off and retry.
        "PriorRequestNotComplete" => ErrorKind::Throttled,
        // A batch Route 53 rejected is wrong, not transient: retrying sends the same batch.
        "InvalidChangeBatch" | "InvalidInput" => ErrorKind::Other,
        _ => return None,
    })
}

fn route53_error<E>(operation: &'static str, err: &SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut e = port_error(operation, err);
    if let Some(kind) = route53_kind(err.code()) {
        e.kind = kind;
    }
    e
}

fn to_time(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn change_info(
    operation: &'static str,
    info: Option<&aws_sdk_route53::types::ChangeInfo>,
) -> Result<ChangeInfo, PortError> {
    let info = info.ok_or_else(|| {
        PortError::new(ErrorKind::Other, operation, "response without ChangeInfo")
    })?;
    let status = match info.status() {
        aws_sdk_route53::types::ChangeStatus::Insync => ChangeStatus::Insync,
        aws_sdk_route53::types::ChangeStatus::Pending => ChangeStatus::Pending,
        other => {
            return Err(PortError::new(
                ErrorKind::Other,
                operation,
                format!("unknown change status {}", other.as_str()),
            ))
        }
    };
    Ok(ChangeInfo {
        id: bare_change_id(info.id()).to_owned(),
        status,
        submitted_at: to_time(info.submitted_at()),
    })
}

fn from_sdk(r: &ResourceRecordSet) -> RecordSet {
    RecordSet {
        name: r.name().to_owned(),
        record_type: r.r#type().as_str().to_owned(),
        set_identifier: r.set_identifier().map(str::to_owned),
        failover: r.failover().and_then(|f| match f {
            ResourceRecordSetFailover::Primary => Some(FailoverRole::Primary),
            ResourceRecordSetFailover::Secondary => Some(FailoverRole::Secondary),
            _ => None,
        }),
        ttl: r.ttl(),
        values: r
            .resource_records()
            .iter()
            .map(|v| v.value().to_owned())
            .collect(),
        health_check_id: r.health_check_id().map(str::to_owned),
        alias_target: r.alias_target().map(|a| a.dns_name().to_owned()),
    }
}

fn to_sdk(operation: &'static str, r: &RecordSet) -> Result<ResourceRecordSet, PortError> {
    let bad = |e: aws_sdk_route53::error::BuildError| {
        PortError::new(ErrorKind::Other, operation, e.to_string())
    };
    let mut b = ResourceRecordSet::builder()
        .name(&r.name)
        .r#type(RrType::from(r.record_type.as_str()))
        .set_set_identifier(r.set_identifier.clone())
        .set_ttl(r.ttl)
        .set_health_check_id(r.health_check_id.clone());
    if let Some(f) = r.failover {
        b = b.failover(ResourceRecordSetFailover::from(f.as_str()));
    }
    for v in &r.values {
        b = b.resource_records(ResourceRecord::builder().value(v).build().map_err(bad)?);
    }
    b.build().map_err(bad)
}

/// How many record sets to read from the start name: enough for every routing-policy variant of
/// one name (Route 53 lists in name, type, identifier order).
const RECORDS_PER_LOOKUP: i32 = 100;

#[async_trait]
impl Dns for Route53Dns {
    async fn record_sets(&self, q: &RecordQuery) -> Result<Vec<RecordSet>, PortError> {
        const OP: &str = "ListResourceRecordSets";
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(&q.zone_id)
            .start_record_name(&q.name)
            .start_record_type(RrType::from(q.record_type.as_str()))
            .max_items(RECORDS_PER_LOOKUP)
            .send()
            .await
            .map_err(|e| route53_error(OP, &e))?;
        Ok(out
            .resource_record_sets()
            .iter()
            .map(from_sdk)
            .filter(|r| matches(r, q))
            .collect())
    }

    async fn change(
        &self,
        zone_id: &str,
        changes: &[RecordChange],
        comment: &str,
    ) -> Result<ChangeInfo, PortError> {
        const OP: &str = "ChangeResourceRecordSets";
        let bad = |e: aws_sdk_route53::error::BuildError| {
            PortError::new(ErrorKind::Other, OP, e.to_string())
        };
        let mut batch = ChangeBatch::builder().comment(comment);
        for c in changes {
            let action = match c.action {
                ChangeAction::Create => aws_sdk_route53::types::ChangeAction::Create,
                ChangeAction::Upsert => aws_sdk_route53::types::ChangeAction::Upsert,
                ChangeAction::Delete => aws_sdk_route53::types::ChangeAction::Delete,
            };
            batch = batch.changes(
                Change::builder()
                    .action(action)
                    .resource_record_set(to_sdk(OP, &c.record)?)
                    .build()
                    .map_err(bad)?,
            );
        }
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch.build().map_err(bad)?)
            .send()
            .await
            .map_err(|e| route53_error(OP, &e))?;
        change_info(OP, out.change_info())
    }

    async fn change_status(&self, change_id: &str) -> Result<ChangeInfo, PortError> {
        const OP: &str = "GetChange";
        let out = self
            .client
            .get_change()
            .id(bare_change_id(change_id))
            .send()
            .await
            .map_err(|e| route53_error(OP, &e))?;
        change_info(OP, out.change_info())
    }

    async fn name_servers(&self, zone_id: &str) -> Result<Vec<String>, PortError> {
        const OP: &str = "GetHostedZone";
        let out = self
            .client
            .get_hosted_zone()
            .id(zone_id)
            .send()
            .await
            .map_err(|e| route53_error(OP, &e))?;
        Ok(out
            .delegation_set()
            .map(|d| d.name_servers().to_vec())
            .unwrap_or_default())
    }

    async fn health_check_status(&self, health_check_id: &str) -> Result<CheckStatus, PortError> {
        const OP: &str = "GetHealthCheckStatus";
        let out = self
            .client
            .get_health_check_status()
            .health_check_id(health_check_id)
            .send()
            .await
            .map_err(|e| route53_error(OP, &e))?;
        let reports: Vec<&str> = out
            .health_check_observations()
            .iter()
            .filter_map(|o| o.status_report()?.status())
            .collect();
        Ok(CheckStatus {
            checkers: reports.len(),
            success: reports.iter().filter(|s| s.starts_with("Success")).count(),
        })
    }
}

// ---------------------------------------------------------------- fake

struct FakeChange {
    polls_left: u32,
    submitted_at: DateTime<Utc>,
}

#[cfg(any(test, feature = "test-util"))]
/// Route 53 in memory: hosted zones of record sets, atomic change batches validated the way
/// Route 53 validates them, a new change id per accepted batch, and changes that stay `PENDING`
/// for a number of `GetChange` polls (set with [`FakeDns::insync_after_polls`]; `u32::MAX` never
/// syncs) before turning `INSYNC`.
pub struct FakeDns {
    zones: Mutex<HashMap<String, Vec<RecordSet>>>,
    changes: Mutex<HashMap<String, FakeChange>>,
    insync_after: Mutex<u32>,
    next_id: Mutex<u64>,
    pub faults: Faults,
    pub reads: Mutex<usize>,
    /// Every accepted batch, in order.
    pub batches: Mutex<Vec<(String, Vec<RecordChange>)>>,
    pub polls: Mutex<usize>,
    /// Every zone's delegation set (GetHostedZone).
    pub name_servers: Mutex<Vec<String>>,
    /// Health checks Route 53 currently sees as unhealthy (every other one is healthy).
    pub unhealthy: Mutex<HashSet<String>>,
    /// How long a health check takes to follow what it watches ([`FakeDns::health_follows`]):
    /// a `CLOUDWATCH_METRIC` check polls its alarm on its own schedule. Zero by default.
    pub health_lag: Mutex<std::time::Duration>,
    /// Health changes not yet visible: (check, unhealthy, when it turns), in order.
    health_pending: Mutex<Vec<(String, bool, tokio::time::Instant)>>,
    /// Checkers a `GetHealthCheckStatus` answer lists.
    pub checkers: usize,
    /// Name servers that answer what they answered before the last change (not yet caught up,
    /// or a resolver serving a stale copy): the answer they give to every query.
    pub stale: Mutex<HashMap<String, Vec<AnswerRecord>>>,
    /// Every query asked: (server, name, type).
    pub asked: Mutex<Vec<(String, String, String)>>,
}

#[cfg(any(test, feature = "test-util"))]
impl Default for FakeDns {
    fn default() -> Self {
        Self {
            zones: Mutex::default(),
            changes: Mutex::default(),
            insync_after: Mutex::new(2),
            next_id: Mutex::new(0),
            faults: Faults::default(),
            reads: Mutex::default(),
            batches: Mutex::default(),
            polls: Mutex::default(),
            name_servers: Mutex::new(vec![
                "ns-1.awsdns-01.org".into(),
                "ns-2.awsdns-02.com".into(),
            ]),
            unhealthy: Mutex::default(),
            health_lag: Mutex::default(),
            health_pending: Mutex::default(),
            checkers: 16,
            stale: Mutex::default(),
            asked: Mutex::default(),
        }
    }
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}

fn same_record(a: &RecordSet, b: &RecordSet) -> bool {
    same_name(&a.name, &b.name)
        && a.record_type.eq_ignore_ascii_case(&b.record_type)
        && a.set_identifier == b.set_identifier
}

fn invalid(message: String) -> PortError {
    PortError::new(
        ErrorKind::Other,
        "ChangeResourceRecordSets",
        format!("InvalidChangeBatch: {message}"),
    )
}

/// Applies one entry to a working copy of the zone, with Route 53's validation.
fn apply(zone: &mut Vec<RecordSet>, c: &RecordChange) -> Result<(), PortError> {
    let mut r = c.record.clone();
    r.name = fqdn(&r.name);
    let pos = zone.iter().position(|x| same_record(x, &r));
    if r.failover.is_some() && r.set_identifier.is_none() {
        return Err(invalid(format!(
            "failover record {} needs a SetIdentifier",
            r.name
        )));
    }
    if c.action != ChangeAction::Delete {
        if r.alias_target.is_none() && r.values.is_empty() {
            return Err(invalid(format!("{} has no values", r.name)));
        }
        // CNAME exclusivity: a CNAME may not share its name with any other record set, except
        // the other members of its own routing policy group.
        let conflict = zone.iter().any(|x| {
            same_name(&x.name, &r.name)
                && !same_record(x, &r)
                && (x.record_type == "CNAME" || r.record_type == "CNAME")
                && (x.set_identifier.is_none()
                    || r.set_identifier.is_none()
                    || x.record_type != r.record_type)
        });
        if conflict {
            return Err(invalid(format!(
                "RRSet of type {} with DNS name {} is not permitted as it conflicts with other records with the same DNS name in zone",
                r.record_type, r.name
            )));
        }
        if let Some(role) = r.failover {
            let twin = zone.iter().any(|x| {
                same_name(&x.name, &r.name)
                    && x.record_type == r.record_type
                    && x.failover == Some(role)
                    && x.set_identifier != r.set_identifier
            });
            if twin {
                return Err(invalid(format!(
                    "a {} failover record for {} already exists",
                    role.as_str(),
                    r.name
                )));
            }
        }
    }
    match (c.action, pos) {
        (ChangeAction::Create, Some(_)) => Err(invalid(format!(
            "Tried to create resource record set [name='{}', type='{}'] but it already exists",
            r.name, r.record_type
        ))),
        (ChangeAction::Create, None) | (ChangeAction::Upsert, None) => {
            zone.push(r);
            Ok(())
        }
        (ChangeAction::Upsert, Some(i)) => {
            zone[i] = r;
            Ok(())
        }
        (ChangeAction::Delete, Some(i)) if zone[i] == r => {
            zone.remove(i);
            Ok(())
        }
        (ChangeAction::Delete, _) => Err(invalid(format!(
            "Tried to delete resource record set [name='{}', type='{}'] but the values provided do not match the current values",
            r.name, r.record_type
        ))),
    }
}

#[cfg(any(test, feature = "test-util"))]
impl FakeDns {
    pub fn add_zone(&self, zone_id: &str) {
        self.zones
            .lock()
            .unwrap()
            .entry(zone_id.to_owned())
            .or_default();
    }

    /// Puts a record set straight into a zone (test setup), creating the zone if needed.
    pub fn put(&self, zone_id: &str, mut r: RecordSet) {
        r.name = fqdn(&r.name);
        let mut zones = self.zones.lock().unwrap();
        let zone = zones.entry(zone_id.to_owned()).or_default();
        zone.retain(|x| !same_record(x, &r));
        zone.push(r);
    }

    pub fn records(&self, zone_id: &str) -> Vec<RecordSet> {
        self.zones
            .lock()
            .unwrap()
            .get(zone_id)
            .cloned()
            .unwrap_or_default()
    }

    /// How many `GetChange` polls a new change stays `PENDING` for.
    pub fn insync_after_polls(&self, polls: u32) {
        *self.insync_after.lock().unwrap() = polls;
    }

    /// Lets every pending change finish (Route 53 caught up).
    pub fn sync_all(&self) {
        for c in self.changes.lock().unwrap().values_mut() {
            c.polls_left = 0;
        }
    }

    pub fn change_count(&self) -> usize {
        self.batches.lock().unwrap().len()
    }

    /// What a health check watches turned (`unhealthy` or not): the check follows after
    /// `health_lag` (tokio time), a change already on its way is not delayed again.
    pub fn health_follows(&self, health_check: &str, unhealthy: bool) {
        let lag = *self.health_lag.lock().unwrap();
        let mut pending = self.health_pending.lock().unwrap();
        let heading = pending
            .iter()
            .rev()
            .find(|p| p.0 == health_check)
            .map(|p| p.1)
            .unwrap_or_else(|| self.unhealthy.lock().unwrap().contains(health_check));
        if heading == unhealthy {
            return;
        }
        if lag.is_zero() && pending.is_empty() {
            self.set_health(health_check, unhealthy);
            return;
        }
        let at = tokio::time::Instant::now() + lag;
        pending.push((health_check.to_owned(), unhealthy, at));
    }

    fn set_health(&self, health_check: &str, unhealthy: bool) {
        let mut set = self.unhealthy.lock().unwrap();
        if unhealthy {
            set.insert(health_check.to_owned());
        } else {
            set.remove(health_check);
        }
    }

    /// Applies the health changes whose time has come.
    fn settle_health(&self) {
        let mut pending = self.health_pending.lock().unwrap();
        if pending.is_empty() {
            return;
        }
        let now = tokio::time::Instant::now();
        let due = pending.iter().take_while(|p| p.2 <= now).count();
        for (hc, unhealthy, _) in pending.drain(..due) {
            self.set_health(&hc, unhealthy);
        }
    }

    /// The record set a failover-aware Route 53 name server answers with for `name` (CNAME):
    /// a simple record; or of a failover pair the PRIMARY while its health check is healthy (no
    /// health check: always healthy), else the SECONDARY when it is healthy, else the PRIMARY
    /// ("when all records are unhealthy, Route 53 responds with the primary": Route 53 Developer
    /// Guide, "How Amazon Route 53 chooses records when health checking is configured").
    pub fn served(&self, name: &str) -> Option<RecordSet> {
        self.settle_health();
        let zones = self.zones.lock().unwrap();
        let sets: Vec<&RecordSet> = zones
            .values()
            .flatten()
            .filter(|r| same_name(&r.name, name) && r.record_type == "CNAME")
            .collect();
        let healthy = |r: &RecordSet| {
            r.health_check_id
                .as_ref()
                .is_none_or(|h| !self.unhealthy.lock().unwrap().contains(h))
        };
        let role = |f: FailoverRole| sets.iter().find(|r| r.failover == Some(f)).copied();
        let chosen = match (role(FailoverRole::Primary), role(FailoverRole::Secondary)) {
            (Some(p), _) if healthy(p) => Some(p),
            (Some(p), Some(s)) => Some(if healthy(s) { s } else { p }),
            (p, s) => p.or(s).or_else(|| sets.first().copied()),
        };
        chosen.cloned()
    }

    fn zone_not_found(op: &'static str, zone_id: &str) -> PortError {
        PortError::new(
            ErrorKind::NotFound,
            op,
            format!("NoSuchHostedZone: No hosted zone found with ID: {zone_id}"),
        )
    }
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl Dns for FakeDns {
    async fn record_sets(&self, q: &RecordQuery) -> Result<Vec<RecordSet>, PortError> {
        const OP: &str = "ListResourceRecordSets";
        *self.reads.lock().unwrap() += 1;
        self.faults.check(OP)?;
        let zones = self.zones.lock().unwrap();
        let zone = zones
            .get(&q.zone_id)
            .ok_or_else(|| Self::zone_not_found(OP, &q.zone_id))?;
        Ok(zone.iter().filter(|r| matches(r, q)).cloned().collect())
    }

    async fn change(
        &self,
        zone_id: &str,
        changes: &[RecordChange],
        _comment: &str,
    ) -> Result<ChangeInfo, PortError> {
        const OP: &str = "ChangeResourceRecordSets";
        self.faults.check(OP)?;
        if changes.is_empty() {
            return Err(invalid("a change batch needs at least one change".into()));
        }
        let mut zones = self.zones.lock().unwrap();
        let zone = zones
            .get_mut(zone_id)
            .ok_or_else(|| Self::zone_not_found(OP, zone_id))?;
        // All or nothing: validate and apply on a copy, swap it in only if every entry applied.
        let mut working = zone.clone();
        for c in changes {
            apply(&mut working, c)?;
        }
        *zone = working;
        let id = {
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            format!("C{:012}FAKE", *n)
        };
        let polls_left = *self.insync_after.lock().unwrap();
        let submitted_at = Utc::now();
        self.changes.lock().unwrap().insert(
            id.clone(),
            FakeChange {
                polls_left,
                submitted_at,
            },
        );
        self.batches
            .lock()
            .unwrap()
            .push((zone_id.to_owned(), changes.to_vec()));
        Ok(ChangeInfo {
            id,
            status: if polls_left == 0 {
                ChangeStatus::Insync
            } else {
                ChangeStatus::Pending
            },
            submitted_at: Some(submitted_at),
        })
    }

    async fn change_status(&self, change_id: &str) -> Result<ChangeInfo, PortError> {
        const OP: &str = "GetChange";
        *self.polls.lock().unwrap() += 1;
        self.faults.check(OP)?;
        let id = bare_change_id(change_id);
        let mut changes = self.changes.lock().unwrap();
        let c = changes.get_mut(id).ok_or_else(|| {
            PortError::new(
                ErrorKind::NotFound,
                OP,
                format!("NoSuchChange: A change with the specified change ID does not exist: {id}"),
            )
        })?;
        c.polls_left = c.polls_left.saturating_sub(1);
        Ok(ChangeInfo {
            id: id.to_owned(),
            status: if c.polls_left == 0 {
                ChangeStatus::Insync
            } else {
                ChangeStatus::Pending
            },
            submitted_at: Some(c.submitted_at),
        })
    }

    async fn name_servers(&self, zone_id: &str) -> Result<Vec<String>, PortError> {
        const OP: &str = "GetHostedZone";
        self.faults.check(OP)?;
        if !self.zones.lock().unwrap().contains_key(zone_id) {
            return Err(Self::zone_not_found(OP, zone_id));
        }
        Ok(self.name_servers.lock().unwrap().clone())
    }

    /// Every checker reports what the check is now (after `health_lag`): all `Success` while it
    /// is healthy, all `Failure` while not.
    async fn health_check_status(&self, health_check_id: &str) -> Result<CheckStatus, PortError> {
        self.faults.check("GetHealthCheckStatus")?;
        self.settle_health();
        let healthy = !self.unhealthy.lock().unwrap().contains(health_check_id);
        Ok(CheckStatus {
            checkers: self.checkers,
            success: if healthy { self.checkers } else { 0 },
        })
    }
}

#[cfg(any(test, feature = "test-util"))]
/// The zone's name servers as a failover-aware Route 53 name server answers: what
/// [`FakeDns::served`] picks, authoritatively, or a server's [`FakeDns::stale`] answer.
#[async_trait]
impl Resolve for FakeDns {
    async fn ask(&self, server: &str, name: &str, record_type: &str) -> Answer {
        self.asked
            .lock()
            .unwrap()
            .push((server.into(), name.into(), record_type.into()));
        let records = match self.stale.lock().unwrap().get(server) {
            Some(r) => r.clone(),
            None => self
                .served(name)
                .map(|r| {
                    r.values
                        .iter()
                        .map(|v| AnswerRecord {
                            name: fqdn(&r.name),
                            record_type: r.record_type.clone(),
                            value: fqdn(v),
                            ttl: r.ttl.unwrap_or_default().try_into().unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        Answer {
            server: server.into(),
            query_type: record_type.into(),
            outcome: Ok(Served {
                response_code: if records.is_empty() {
                    "NXDomain"
                } else {
                    "NoError"
                }
                .into(),
                authoritative: true,
                records,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cname(name: &str, value: &str) -> RecordSet {
        RecordSet {
            name: name.into(),
            record_type: "CNAME".into(),
            set_identifier: None,
            failover: None,
            ttl: Some(60),
            values: vec![value.into()],
            health_check_id: None,
            alias_target: None,
        }
    }

    fn failover(name: &str, set: &str, role: FailoverRole, value: &str) -> RecordSet {
        RecordSet {
            set_identifier: Some(set.into()),
            failover: Some(role),
            health_check_id: Some(format!("hc-{set}")),
            ..cname(name, value)
        }
    }

    fn q(name: &str, set: Option<&str>) -> RecordQuery {
        RecordQuery {
            zone_id: "Z1".into(),
            name: name.into(),
            record_type: "CNAME".into(),
            set_identifier: set.map(String::from),
        }
    }

    fn upsert(r: RecordSet) -> RecordChange {
        RecordChange {
            action: ChangeAction::Upsert,
            record: r,
        }
    }

    /// The health check follows what it watches `health_lag` late, for `served` and for
    /// GetHealthCheckStatus alike; a change already on its way is not delayed again.
    #[tokio::test]
    async fn a_health_check_follows_its_alarm_after_the_lag() {
        let dns = FakeDns::default();
        dns.put(
            "Z1",
            failover("db.example.com", "p", FailoverRole::Primary, "old"),
        );
        dns.put(
            "Z1",
            failover("db.example.com", "s", FailoverRole::Secondary, "dr"),
        );
        dns.unhealthy.lock().unwrap().insert("hc-p".into());
        *dns.health_lag.lock().unwrap() = std::time::Duration::from_millis(200);
        dns.health_follows("hc-p", false);
        let status = dns.health_check_status("hc-p").await.unwrap();
        assert!(!status.healthy(), "{status:?}");
        assert_eq!(dns.served("db.example.com").unwrap().values, vec!["dr"]);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        dns.health_follows("hc-p", false);
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        let status = dns.health_check_status("hc-p").await.unwrap();
        assert!(
            status.healthy() && status.success == dns.checkers,
            "{status:?}"
        );
        assert_eq!(dns.served("db.example.com").unwrap().values, vec!["old"]);
    }

    #[tokio::test]
    async fn changes_are_pending_until_polled_enough_and_each_gets_a_new_id() {
        let dns = FakeDns::default();
        dns.add_zone("Z1");
        dns.insync_after_polls(3);
        let a = dns
            .change("Z1", &[upsert(cname("db.example.com", "a"))], "")
            .await
            .unwrap();
        assert_eq!(a.status, ChangeStatus::Pending);
        let b = dns
            .change("Z1", &[upsert(cname("db.example.com", "a"))], "")
            .await
            .unwrap();
        assert_ne!(
            a.id, b.id,
            "a new change id per call, even for a no-op batch"
        );
        let mut statuses = vec![];
        for _ in 0..4 {
            statuses.push(dns.change_status(&a.id).await.unwrap().status);
        }
        assert_eq!(
            statuses,
            vec![
                ChangeStatus::Pending,
                ChangeStatus::Pending,
                ChangeStatus::Insync,
                ChangeStatus::Insync
            ]
        );
        let r = dns.record_set(&q("DB.example.com.", None)).await.unwrap();
        assert_eq!(r.unwrap().values, vec!["a"]);
        assert_eq!(
            dns.change_status("/change/NOPE").await.unwrap_err().kind,
            ErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn batches_are_atomic_and_validated_like_route53() {
        let dns = FakeDns::default();
        dns.put(
            "Z1",
            failover("db.example.com", "p", FailoverRole::Primary, "old"),
        );
        dns.put(
            "Z1",
            failover("db.example.com", "s", FailoverRole::Secondary, "dr"),
        );
        // A simple CNAME cannot join a failover pair.
        let e = dns
            .change("Z1", &[upsert(cname("db.example.com", "x"))], "")
            .await
            .unwrap_err();
        assert!(e.message.contains("InvalidChangeBatch"), "{e}");
        // The first entry is valid, the second is not: nothing is applied.
        let batch = [
            upsert(failover(
                "db.example.com",
                "p",
                FailoverRole::Primary,
                "new",
            )),
            RecordChange {
                action: ChangeAction::Create,
                record: failover("db.example.com", "s", FailoverRole::Secondary, "dr"),
            },
        ];
        assert_eq!(
            dns.change("Z1", &batch, "").await.unwrap_err().kind,
            ErrorKind::Other
        );
        let p = dns
            .record_set(&q("db.example.com", Some("p")))
            .await
            .unwrap();
        assert_eq!(
            p.unwrap().values,
            vec!["old"],
            "atomic: the valid half did not apply"
        );
        assert_eq!(dns.change_count(), 0);
        // A second PRIMARY under another identifier is refused.
        assert!(dns
            .change(
                "Z1",
                &[upsert(failover(
                    "db.example.com",
                    "p2",
                    FailoverRole::Primary,
                    "x"
                ))],
                ""
            )
            .await
            .is_err());
        // Unknown zone: NoSuchHostedZone.
        let e = dns
            .record_set(&RecordQuery {
                zone_id: "Z9".into(),
                ..q("a.b", None)
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        // Rewriting the PRIMARY keeps its twin untouched.
        dns.change(
            "Z1",
            &[upsert(failover(
                "db.example.com",
                "p",
                FailoverRole::Primary,
                "new",
            ))],
            "",
        )
        .await
        .unwrap();
        let s = dns
            .record_set(&q("db.example.com", Some("s")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.values, vec!["dr"]);
    }

    #[test]
    fn change_ids_are_stored_bare() {
        assert_eq!(bare_change_id("/change/C123"), "C123");
        assert_eq!(bare_change_id("C123"), "C123");
    }
}
