//! Pinning the writer DNS name to the promoted primary: the pure half of the dns-pinner.
//!
//! Seed 002's lesson is the reason this module exists: a Route 53 failover pair routes back to the
//! PRIMARY record as soon as its health check turns healthy again, so once we have failed over the
//! PRIMARY record itself must be rewritten to the new writer ("pinned"). Otherwise the old primary,
//! coming back with stale data, wins the writes back: split brain.
//!
//! Everything here is a decision, no I/O:
//! - [`fence`]: may this `ReplicaPromoted` delivery act on the ledger record as it is now?
//! - [`plan`]: given the record set Route 53 holds, what to change (nothing, when it already holds
//!   the target: re-deliveries make no second change) — for both [`DnsMode`]s;
//! - [`record_previous`], [`record_change_id`], [`mark_pinned`], [`mark_failed`]: the ledger
//!   mutations, each fenced again so a retry after a lost compare-and-set re-checks the epoch;
//! - [`backoff_delay`]: the capped exponential schedule for polling `GetChange` until `INSYNC`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{DnsMode, SiteConfig};
use crate::events::{DomainEvent, EventType};
use crate::incident::{DnsRecord, Phase, SiteState, TransitionError};

/// The record type the writer name uses: RDS endpoints are host names, so a CNAME.
pub const WRITER_RECORD_TYPE: &str = "CNAME";

/// `Failover` of a Route 53 failover record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FailoverRole {
    Primary,
    Secondary,
}

impl FailoverRole {
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverRole::Primary => "PRIMARY",
            FailoverRole::Secondary => "SECONDARY",
        }
    }
}

/// One Route 53 resource record set, as much of it as the pinner reads and must preserve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSet {
    /// As Route 53 spells it (usually with a trailing dot); compare with [`same_name`].
    pub name: String,
    pub record_type: String,
    #[serde(default)]
    pub set_identifier: Option<String>,
    #[serde(default)]
    pub failover: Option<FailoverRole>,
    #[serde(default)]
    pub ttl: Option<i64>,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub health_check_id: Option<String>,
    /// The DNS name of an alias target, when the record is an alias (which has no values).
    #[serde(default)]
    pub alias_target: Option<String>,
}

/// What to look up: the writer record of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordQuery {
    pub zone_id: String,
    pub name: String,
    pub record_type: String,
    pub set_identifier: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeAction {
    Create,
    Upsert,
    Delete,
}

/// One entry of a Route 53 change batch (a batch is applied atomically, all or nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordChange {
    pub action: ChangeAction,
    pub record: RecordSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeStatus {
    Pending,
    Insync,
}

/// A submitted change as Route 53 reports it (`ChangeInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeInfo {
    pub id: String,
    pub status: ChangeStatus,
    pub submitted_at: Option<DateTime<Utc>>,
}

/// DNS names are case-insensitive and Route 53 answers them fully qualified (`db.example.com.`).
pub fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The host of an endpoint written `host:port` (or a bare host).
pub fn endpoint_host(endpoint: &str) -> Option<String> {
    let host = match endpoint.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() => h,
        _ => endpoint,
    };
    let host = host.trim().trim_end_matches('.');
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    ok.then(|| host.to_ascii_lowercase())
}

// ---------------------------------------------------------------- fence

/// Whether a `ReplicaPromoted` delivery may act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fence {
    /// Epoch and phase match: pin the writer name to this host.
    Pin { host: String },
    /// This epoch is already pinned (a re-delivery): change nothing, emit nothing new.
    AlreadyPinned,
    /// The delivery belongs to another epoch, or the site is not (or no longer) promoted: ignore it.
    Stale { reason: String },
    /// The record says promoted but lacks what pinning needs: a broken invariant a human must see.
    Broken { reason: String },
}

/// Checks a `ReplicaPromoted` event against the ledger record. Never trusts the event for *where*
/// to point DNS: the host comes from the record the promoter committed, for the same epoch and
/// the same candidate the event names.
pub fn fence(state: &SiteState, event: &DomainEvent) -> Fence {
    let stale = |reason: String| Fence::Stale { reason };
    if !matches!(
        event.event_type,
        EventType::ReplicaPromoted | EventType::DnsPinContinued
    ) {
        return stale(format!(
            "event is {}, not ReplicaPromoted or DnsPinContinued",
            event.event_type.detail_type()
        ));
    }
    if event.site != state.site {
        return stale(format!(
            "event is for site {}, record is {}",
            event.site, state.site
        ));
    }
    if event.epoch != state.epoch {
        return stale(format!(
            "event epoch {} but the site is at epoch {} ({})",
            event.epoch, state.epoch, state.phase
        ));
    }
    match state.phase {
        // Switched by the data plane, records still to pin: the chain goes on.
        Phase::DnsPinned if crate::dataplane::records_pending(state) => {}
        Phase::DnsPinned => return Fence::AlreadyPinned,
        Phase::Promoted => {}
        other => {
            return stale(format!(
                "site {} epoch {} is {other}, not promoted",
                state.site, state.epoch
            ))
        }
    }
    // Once the pin is carried by continuations, only the newest link acts: a duplicate or older
    // DnsPinContinued, or a late duplicate ReplicaPromoted, would start a second chain.
    let token = (event.event_type == EventType::DnsPinContinued).then_some(event.occurred_at);
    if state.pin_continued_at != token {
        return stale(match state.pin_continued_at {
            Some(at) => format!(
                "the pin of epoch {} is carried by its continuation of {}; this delivery is not it",
                state.epoch,
                at.to_rfc3339()
            ),
            None => format!(
                "epoch {} was never handed on: this continuation is not one the pinner issued",
                state.epoch
            ),
        });
    }
    let Some(promotion) = state.promotion.as_ref().filter(|p| p.epoch == state.epoch) else {
        return Fence::Broken {
            reason: format!(
                "site {} is promoted at epoch {} but the ledger holds no promotion record for it",
                state.site, state.epoch
            ),
        };
    };
    if let Some(c) = &event.candidate {
        if *c != promotion.candidate {
            return stale(format!(
                "event names candidate {c} but epoch {} promoted {}",
                state.epoch, promotion.candidate
            ));
        }
    }
    match promotion.endpoint.as_deref().map(|e| (e, endpoint_host(e))) {
        Some((_, Some(host))) => Fence::Pin { host },
        Some((raw, None)) => Fence::Broken {
            reason: format!(
                "the promoted endpoint `{raw}` of {} is not a host name",
                promotion.candidate
            ),
        },
        None => Fence::Broken {
            reason: format!(
                "{} is promoted at epoch {} but its endpoint is not recorded",
                promotion.candidate, state.epoch
            ),
        },
    }
}

// ---------------------------------------------------------------- plan

/// What to look up in Route 53 for this site: every record set of the writer name and type (no
/// set identifier), so a failover pair is read whole — both PRIMARY and SECONDARY.
pub fn query(site: &SiteConfig) -> RecordQuery {
    RecordQuery {
        zone_id: site.dns.zone_id.clone(),
        name: site.dns.name.clone(),
        record_type: WRITER_RECORD_TYPE.into(),
        set_identifier: None,
    }
}

/// The change to make, or why it cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Every record set of the writer name as it must be when pinned.
    pub desired: Vec<RecordSet>,
    /// One atomic batch; empty: Route 53 already holds the target — no ChangeResourceRecordSets.
    pub changes: Vec<RecordChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no {record_type} record `{name}` with SetIdentifier `{set_identifier}` in zone {zone_id}: failover-pin mode needs the PRIMARY failover record to exist")]
    NoPrimaryRecord {
        zone_id: String,
        name: String,
        record_type: String,
        set_identifier: String,
    },
    #[error("record `{name}` SetIdentifier `{set_identifier}` is {found}, not a PRIMARY failover record")]
    NotPrimary {
        name: String,
        set_identifier: String,
        found: String,
    },
    #[error("record `{name}` SetIdentifier `{set_identifier}` is not a failover record; failover-pin mode manages a PRIMARY/SECONDARY pair only")]
    NotFailover {
        name: String,
        set_identifier: String,
    },
    #[error(
        "record `{name}` is an alias to {target}; only CNAME records with values can be pinned"
    )]
    Alias { name: String, target: String },
    #[error("record `{name}` uses a routing policy (SetIdentifier `{set_identifier}`); cname mode manages a simple CNAME — configure failover-pin mode")]
    RoutingPolicyInCnameMode {
        name: String,
        set_identifier: String,
    },
    #[error("record `{name}` was changed by someone else after the pinner recorded it: it held {expected}, it now holds {found}. Nothing was overwritten; a human decides which is right")]
    ChangedConcurrently {
        name: String,
        expected: String,
        found: String,
    },
}

/// `x.rds.amazonaws.com (PRIMARY, TTL 60, health check hc-1)` per record set, for messages;
/// `absent` for none.
pub fn describe_records(records: &[RecordSet]) -> String {
    if records.is_empty() {
        return "absent".into();
    }
    records
        .iter()
        .map(|r| {
            let mut notes: Vec<String> = vec![];
            notes.extend(r.failover.map(|f| f.as_str().to_owned()));
            notes.extend(r.ttl.map(|t| format!("TTL {t}")));
            notes.extend(
                r.health_check_id
                    .as_ref()
                    .map(|h| format!("health check {h}")),
            );
            let what = match &r.alias_target {
                Some(a) => format!("alias {a}"),
                None => r.values.join(", "),
            };
            format!("{what} ({})", notes.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn identity(a: &RecordSet, b: &RecordSet) -> bool {
    same_name(&a.name, &b.name)
        && a.record_type.eq_ignore_ascii_case(&b.record_type)
        && a.set_identifier == b.set_identifier
}

/// The same record set, spelled as Route 53 may spell it (trailing dot, case of the name).
pub fn same_record_set(a: &RecordSet, b: &RecordSet) -> bool {
    identity(a, b)
        && a.failover == b.failover
        && a.ttl == b.ttl
        && a.health_check_id == b.health_check_id
        && a.alias_target == b.alias_target
        && a.values.len() == b.values.len()
        && a.values.iter().zip(&b.values).all(|(x, y)| same_name(x, y))
}

fn holds(current: &RecordSet, host: &str, ttl: i64) -> bool {
    current.values.len() == 1 && same_name(&current.values[0], host) && current.ttl == Some(ttl)
}

/// The record sets the writer name must consist of when pinned, given what Route 53 holds.
///
/// - cname mode: one simple CNAME `name → host` with the site's TTL.
/// - failover-pin mode: **both** members of the failover pair rewritten to `host` with the site's
///   TTL, each keeping its name, SetIdentifier, `Failover` role and HealthCheckId. Route 53
///   answers with the PRIMARY while its health check is healthy and with the SECONDARY otherwise
///   ("Active-passive failover", Route 53 Developer Guide, dns-failover-types.html): the PRIMARY's
///   check still watches the *old* primary, so only a SECONDARY that also names the new writer
///   makes every answer Route 53 can give the new writer, whatever the old primary's health does.
///   Rewriting both (rather than swapping the PRIMARY's health check for one the tool controls)
///   keeps it to one record change, with no health-check API call and no new health check to own.
pub fn desired_records(
    site: &SiteConfig,
    current: &[RecordSet],
    host: &str,
) -> Result<Vec<RecordSet>, PlanError> {
    let ttl = i64::from(site.dns.ttl);
    if let Some(c) = current.iter().find(|c| c.alias_target.is_some()) {
        return Err(PlanError::Alias {
            name: c.name.clone(),
            target: c.alias_target.clone().unwrap_or_default(),
        });
    }
    match &site.dns.mode {
        DnsMode::Cname => {
            if let Some(set_identifier) = current.iter().find_map(|c| c.set_identifier.clone()) {
                return Err(PlanError::RoutingPolicyInCnameMode {
                    name: site.dns.name.clone(),
                    set_identifier,
                });
            }
            Ok(vec![RecordSet {
                name: site.dns.name.clone(),
                record_type: WRITER_RECORD_TYPE.into(),
                set_identifier: None,
                failover: None,
                ttl: Some(ttl),
                values: vec![host.to_owned()],
                health_check_id: None,
                alias_target: None,
            }])
        }
        DnsMode::FailoverPin {
            primary_set_identifier,
        }
        | DnsMode::DataPlaneSwitch {
            primary_set_identifier,
            ..
        } => {
            let primary = current
                .iter()
                .find(|c| c.set_identifier.as_deref() == Some(primary_set_identifier.as_str()))
                .ok_or_else(|| PlanError::NoPrimaryRecord {
                    zone_id: site.dns.zone_id.clone(),
                    name: site.dns.name.clone(),
                    record_type: WRITER_RECORD_TYPE.into(),
                    set_identifier: primary_set_identifier.clone(),
                })?;
            if primary.failover != Some(FailoverRole::Primary) {
                return Err(PlanError::NotPrimary {
                    name: primary.name.clone(),
                    set_identifier: primary_set_identifier.clone(),
                    found: primary
                        .failover
                        .map(|f| format!("a {} failover record", f.as_str()))
                        .unwrap_or_else(|| "not a failover record".into()),
                });
            }
            current
                .iter()
                .map(|c| match c.failover {
                    Some(_) => Ok(RecordSet {
                        ttl: Some(ttl),
                        values: vec![host.to_owned()],
                        ..c.clone()
                    }),
                    None => Err(PlanError::NotFailover {
                        name: c.name.clone(),
                        set_identifier: c.set_identifier.clone().unwrap_or_default(),
                    }),
                })
                .collect()
        }
    }
}

/// The compare-and-set that points `site`'s writer name at `host`: for every record set that does
/// not already hold the target, DELETE it exactly as read and CREATE it as desired, all in one
/// batch. Route 53 applies a batch all or nothing, refuses a DELETE whose values do not match the
/// current ones and a CREATE of a record that exists (`InvalidChangeBatch`; API reference,
/// ChangeResourceRecordSets: "Change batches are considered transactional changes"; DELETE: "you
/// must specify all the same values"), so a human edit between the read and the change fails the
/// batch instead of being overwritten.
///
/// `recorded`: this epoch's ledger DNS record, when an earlier attempt wrote one, with the record
/// sets as they were before the first change (not checked for a ledger record older than that
/// field). A record set that is neither what was recorded, nor the target, nor an earlier target
/// of this epoch was changed by someone else since: [`PlanError::ChangedConcurrently`], no change.
pub fn plan(
    site: &SiteConfig,
    current: &[RecordSet],
    recorded: Option<&DnsRecord>,
    host: &str,
) -> Result<Plan, PlanError> {
    let ttl = i64::from(site.dns.ttl);
    let desired = match desired_records(site, current, host) {
        Ok(d) => d,
        // Already answering with the target in the other shape (a simple CNAME where failover-pin
        // is configured, a failover pair in cname mode — a human pinned by hand, or the mode was
        // changed): every answer Route 53 can give is the target, so nothing is changed.
        Err(e) if other_shape_holding(current, host) && !matches!(e, PlanError::Alias { .. }) => {
            return Ok(Plan {
                desired: current.to_vec(),
                changes: vec![],
            })
        }
        Err(e) => return Err(e),
    };
    let recorded = recorded.and_then(|d| Some((d.previous_records.as_deref()?, &d.new_value)));
    if let Some((expected, ours)) = recorded {
        // Acceptable: what was recorded, or a record already naming the target or an earlier
        // target of this same epoch, whatever its TTL (a human who pinned by hand meant that).
        let names = |c: &RecordSet, h: &str| c.values.len() == 1 && same_name(&c.values[0], h);
        let moved = current
            .iter()
            .filter(|c| !names(c, host) && !names(c, ours))
            .any(|c| !expected.iter().any(|e| same_record_set(e, c)))
            || (current.is_empty() && !expected.is_empty());
        if moved {
            return Err(PlanError::ChangedConcurrently {
                name: site.dns.name.clone(),
                expected: describe_records(expected),
                found: describe_records(current),
            });
        }
    }
    let mut changes = vec![];
    for d in &desired {
        match current.iter().find(|c| identity(c, d)) {
            Some(c) if holds(c, host, ttl) => {}
            Some(c) => {
                changes.push(RecordChange {
                    action: ChangeAction::Delete,
                    record: c.clone(),
                });
                changes.push(RecordChange {
                    action: ChangeAction::Create,
                    record: d.clone(),
                });
            }
            None => changes.push(RecordChange {
                action: ChangeAction::Create,
                record: d.clone(),
            }),
        }
    }
    Ok(Plan { desired, changes })
}

/// Every record set of the name names `host` and none is an alias: whatever the routing policy
/// picks, the answer is `host`.
fn other_shape_holding(current: &[RecordSet], host: &str) -> bool {
    !current.is_empty()
        && current.iter().all(|c| {
            c.alias_target.is_none() && c.values.len() == 1 && same_name(&c.values[0], host)
        })
}

/// When the writer name already answers `host` in a shape other than the site's `dns.mode`
/// configures: how the ledger records it (`None` when the shape is the configured one).
pub fn other_shape_note(site: &SiteConfig, current: &[RecordSet], host: &str) -> Option<String> {
    if !other_shape_holding(current, host) || desired_records(site, current, host).is_ok() {
        return None;
    }
    let found = if current.iter().any(|c| c.failover.is_some()) {
        "a failover pair"
    } else if current.iter().any(|c| c.set_identifier.is_some()) {
        "records with a routing policy"
    } else {
        "a simple CNAME"
    };
    let configured = match &site.dns.mode {
        DnsMode::Cname => "a simple CNAME (dns.mode cname)".to_string(),
        DnsMode::FailoverPin {
            primary_set_identifier,
        }
        | DnsMode::DataPlaneSwitch {
            primary_set_identifier,
            ..
        } => {
            format!("the failover pair of PRIMARY {primary_set_identifier} (dns.mode failover-pin)")
        }
    };
    Some(format!(
        "the name already answered {host} as {found}, not {configured}: treated as pinned, left as it is; "
    ))
}

/// A batch that changes nothing but still gets a change id, guarded like [`plan`]'s: DELETE each
/// desired record set as it is and CREATE it again. Used to learn when an earlier change of ours,
/// whose id was lost, is `INSYNC` (Route 53 applies one zone's changes in order).
pub fn confirming_batch(current: &[RecordSet]) -> Vec<RecordChange> {
    current
        .iter()
        .flat_map(|c| {
            [ChangeAction::Delete, ChangeAction::Create].map(|action| RecordChange {
                action,
                record: c.clone(),
            })
        })
        .collect()
}

// ---------------------------------------------------------------- ledger mutations

/// The fence again, for a mutation about to be committed: the record may have moved since it was
/// first read (another delivery, a newer epoch), so every write re-checks it.
pub(crate) fn still_pinnable(state: &SiteState, event: &DomainEvent) -> Result<String, Fence> {
    match fence(state, event) {
        Fence::Pin { host } => Ok(host),
        other => Err(other),
    }
}

/// Records the record set as it was before this epoch changed it — **before** DNS is changed, so
/// failback and unpin always know what to restore. `None` when nothing needs writing (already
/// recorded for this epoch and target: the previous values are never overwritten by a re-delivery
/// that finds the record already pinned).
pub fn record_previous(
    state: &SiteState,
    event: &DomainEvent,
    site: &SiteConfig,
    current: &[RecordSet],
    host: &str,
    now: DateTime<Utc>,
) -> Result<Option<SiteState>, Fence> {
    still_pinnable(state, event)?;
    let mut next = state.clone();
    match &mut next.dns {
        Some(d) if d.epoch == state.epoch => {
            if same_name(&d.new_value, host) {
                return Ok(None);
            }
            // Same epoch, new target (the endpoint was corrected): the *original* previous values
            // stay; the change id belonged to the old target.
            d.new_value = host.to_owned();
            d.change_id = None;
            d.insync_at = None;
        }
        _ => {
            // The record applications were answered with while the old primary was healthy: the
            // PRIMARY of a failover pair, or the simple CNAME.
            let set_identifier = match &site.dns.mode {
                DnsMode::Cname => None,
                DnsMode::FailoverPin {
                    primary_set_identifier,
                }
                | DnsMode::DataPlaneSwitch {
                    primary_set_identifier,
                    ..
                } => Some(primary_set_identifier.clone()),
            };
            let main = current.iter().find(|c| c.set_identifier == set_identifier);
            next.original_dns = Some(crate::unpin::carry(state, current));
            next.dns = Some(DnsRecord {
                epoch: state.epoch,
                zone_id: site.dns.zone_id.clone(),
                name: site.dns.name.clone(),
                record_type: WRITER_RECORD_TYPE.into(),
                set_identifier,
                previous_values: main.map(|c| c.values.clone()).unwrap_or_default(),
                previous_ttl: main.and_then(|c| c.ttl),
                new_value: host.to_owned(),
                change_id: None,
                insync_at: None,
                previous_records: Some(current.to_vec()),
            })
        }
    }
    next.version = state.version + 1;
    next.updated_at = Some(now);
    Ok(Some(next))
}

/// Remembers the submitted change so a retry after a timeout waits for the same change.
pub fn record_change_id(
    state: &SiteState,
    event: &DomainEvent,
    change_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<SiteState>, Fence> {
    still_pinnable(state, event)?;
    let mut next = state.clone();
    let Some(d) = next.dns.as_mut().filter(|d| d.epoch == state.epoch) else {
        return Err(Fence::Broken {
            reason: "the previous record set was not recorded before the change".into(),
        });
    };
    if d.change_id.as_deref() == Some(change_id) {
        return Ok(None);
    }
    d.change_id = Some(change_id.to_owned());
    next.version = state.version + 1;
    next.updated_at = Some(now);
    Ok(Some(next))
}

/// How long between two instants, for people: `42s`, `3m 05s`, `1h 02m`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Promoted → DnsPinned, with the `DnsPinned` event in the outbox. The event carries the verdict
/// that caused the failover (its guards and numbers), with a summary saying what DNS now answers.
pub fn mark_pinned(
    state: &SiteState,
    event: &DomainEvent,
    insync_at: DateTime<Utc>,
    verified: &str,
    now: DateTime<Utc>,
) -> Result<Option<SiteState>, Fence> {
    let host = still_pinnable(state, event)?;
    let mut next = state.clone();
    let d = next
        .dns
        .as_mut()
        .filter(|d| d.epoch == state.epoch)
        .ok_or_else(|| Fence::Broken {
            reason: "the previous record set was not recorded before pinning".into(),
        })?;
    d.insync_at = Some(insync_at);
    // A failover pair pinned: both members name `host` now. The SECONDARY reading the next
    // epoch's pre-switch check may fall back on is what the pin wrote (never an older value the
    // pin replaced). Unpin restores the SECONDARY and must set the reading to what it restored.
    let pair = d.previous_records.as_ref().is_some_and(|r| {
        r.iter()
            .any(|r| r.failover == Some(FailoverRole::Secondary))
    });
    if pair {
        next.secondary_reading = Some(crate::secondary::SecondaryReading {
            values: vec![host.clone()],
            at: now,
            epoch: state.epoch,
        });
    }
    let d = next
        .dns
        .as_mut()
        .filter(|d| d.epoch == state.epoch)
        .expect("checked above");
    let was = if d.previous_values.is_empty() {
        "absent".to_string()
    } else {
        d.previous_values.join(", ")
    };
    let waited = d
        .change_id
        .as_ref()
        .map(|id| format!("change {id} INSYNC"))
        .unwrap_or_else(|| "already held the target; no change needed".into());
    let set = match &d.previous_records {
        Some(records) if records.iter().any(|r| r.failover.is_some()) => {
            let members: Vec<String> = records
                .iter()
                .filter_map(|r| {
                    Some(format!(
                        "{} SetIdentifier {}",
                        r.failover?.as_str(),
                        r.set_identifier.as_deref()?
                    ))
                })
                .collect();
            format!(
                " ({}: every answer Route 53 can give)",
                members.join(" and ")
            )
        }
        _ => d
            .set_identifier
            .as_ref()
            .map(|s| format!(" (PRIMARY, SetIdentifier {s})"))
            .unwrap_or_default(),
    };
    let cached = d
        .previous_ttl
        .map(|t| format!("; the previous record's TTL was {t} s: resolvers may keep the old answer that long"))
        .unwrap_or_default();
    let note = format!(
        "{} {}{set} -> {host} (was {was}); {waited}; {verified}{cached}",
        d.name, d.record_type
    );
    if crate::dataplane::records_pending(state) {
        crate::dataplane::records_pinned(&mut next, &note, now);
        next.version = state.version + 1;
        next.updated_at = Some(now);
        return Ok(Some(next));
    }
    next.transition(state.epoch, Phase::DnsPinned, now, note.clone())
        .map_err(|e| fence_of(e, state))?;
    // The switch seen earlier in this invocation (recorded before the records were touched):
    // nothing is pending any more.
    if let Some(s) = next
        .data_plane_switch
        .as_mut()
        .filter(|s| s.epoch == state.epoch)
    {
        s.records_pending = false;
    }
    next.version = state.version + 1;
    next.updated_at = Some(now);
    next.outbox.push(follow_up(
        event,
        &next,
        EventType::DnsPinned,
        format!("DNS pinned: {note}. Failback is manual — see docs/runbook.md."),
        now,
    ));
    Ok(Some(next))
}

// ---------------------------------------------------------------- continuing

/// How long after the promotion the pin has been waiting when people are paged again
/// (`DnsPinDelayed`); `thresholds.pin_deadline_secs` is the last step (the epoch fails).
pub const PIN_ESCALATIONS_SECS: [i64; 2] = [5 * 60, 15 * 60];

const DELAYED_NOTE: &str = "DNS pin delayed past ";

/// When the pin's clock started: the promotion's completion (verified writable), as the ledger
/// recorded it; the timeline's `promoted` entry for records without it.
pub fn pin_started_at(state: &SiteState) -> Option<DateTime<Utc>> {
    state
        .promotion
        .as_ref()
        .filter(|p| p.epoch == state.epoch)
        .and_then(|p| p.completed_at)
        .or_else(|| {
            state
                .timeline
                .iter()
                .find(|t| t.phase == Phase::Promoted)
                .map(|t| t.at)
        })
}

/// The exact record change a human makes when the pinner gives up.
pub fn manual_pin_step(site: &SiteConfig, host: &str) -> String {
    let d = &site.dns;
    let how = match &d.mode {
        DnsMode::Cname => format!("UPSERT {} CNAME {host} TTL {}", d.name, d.ttl),
        DnsMode::FailoverPin {
            primary_set_identifier,
        }
        | DnsMode::DataPlaneSwitch {
            primary_set_identifier,
            ..
        } => format!(
            "UPSERT both failover records of {} (the PRIMARY, SetIdentifier {primary_set_identifier}, and the SECONDARY, each keeping its HealthCheckId) to CNAME {host} TTL {}, in one change batch",
            d.name, d.ttl
        ),
    };
    format!(
        "{how} in hosted zone {} (aws route53 change-resource-record-sets; docs/runbook.md, \"Repoint DNS by hand\")",
        d.zone_id
    )
}

/// What the pinner does when an invocation's time runs out before the pin is done.
#[derive(Debug, Clone, PartialEq)]
pub enum HandOn {
    /// Hand the pin on: the next record, with `DnsPinContinued` (and, at an escalation step,
    /// `DnsPinDelayed`) in its outbox.
    Continue(SiteState),
    /// Past `thresholds.pin_deadline_secs`: the epoch fails (`FailoverFailed`) with the next step.
    Expired(SiteState),
    /// `data-plane-switch`, traffic already on the switch: past the pin deadline the records are
    /// given up on (`DnsPinDelayed` pages with the manual step); the epoch stays `dns-pinned`.
    RecordsAbandoned(SiteState),
}

/// Out of Lambda time, not yet pinned (`why`: the last Route 53 answer): continue, page at an
/// escalation step, or — past the site's pin deadline — fail the epoch with the exact next step.
pub fn hand_on(
    site: &SiteConfig,
    state: &SiteState,
    event: &DomainEvent,
    why: &str,
    now: DateTime<Utc>,
) -> Result<HandOn, Fence> {
    if crate::dataplane::records_pending(state) {
        return crate::dataplane::hand_on_records(site, state, event, why, now);
    }
    let host = still_pinnable(state, event)?;
    let started = pin_started_at(state).unwrap_or(now);
    let waited = (now - started).num_seconds();
    let deadline = site.thresholds.pin_deadline_secs as i64;
    if waited >= deadline {
        let reason = format!(
            "not pinned within thresholds.pin_deadline_secs ({}) of the promotion (waited {}); last answer: {why}{}. Next step: {}",
            human_duration(deadline),
            human_duration(waited),
            crate::dataplane::observation(state),
            manual_pin_step(site, &host)
        );
        // data-plane-switch: the metric was put (the answer maybe not seen moving yet): the alarm
        // may latch at any moment, so the epoch is never failed — the records are given up on,
        // the epoch `dns-pinned` on the switch, and a CRITICAL page says traffic may move.
        if crate::dataplane::switch_put(state).is_some() {
            return crate::dataplane::records_failed(state, event, site, &reason, now)
                .map(HandOn::RecordsAbandoned)
                .ok_or_else(|| Fence::Stale {
                    reason: "the epoch moved on".into(),
                });
        }
        return mark_failed(state, event, &reason, now)
            .map(HandOn::Expired)
            .ok_or_else(|| Fence::Stale {
                reason: "the epoch moved on".into(),
            });
    }
    let mut next = state.clone();
    next.version = state.version + 1;
    next.updated_at = Some(now);
    next.pin_continued_at = Some(now);
    if let Some(s) = unpaged_step(state, waited, deadline) {
        let note = format!(
            "{DELAYED_NOTE}{}: waited {} for Route 53 ({why}); continuing until {} after the promotion",
            human_duration(s),
            human_duration(waited),
            human_duration(deadline)
        );
        next.timeline.push(crate::incident::TimelineEntry {
            phase: Phase::Promoted,
            at: now,
            note: note.clone(),
        });
        next.outbox.push(follow_up(
            event,
            &next,
            EventType::DnsPinDelayed,
            format!(
                "{note}. {} was promoted and accepts writes, but the writer name may still resolve to the old primary. If Route 53 does not recover soon: {}",
                host,
                manual_pin_step(site, &host)
            ),
            now,
        ));
    }
    next.outbox.push(follow_up(
        event,
        &next,
        EventType::DnsPinContinued,
        format!(
            "pinning to {host} still in progress after {} ({why}); the pinner continues until {} after the promotion",
            human_duration(waited),
            human_duration(deadline)
        ),
        now,
    ));
    Ok(HandOn::Continue(next))
}

/// The escalation step due at `waited` and not paged yet for the epoch.
fn unpaged_step(state: &SiteState, waited: i64, deadline: i64) -> Option<i64> {
    let paged = |s: i64| {
        state.timeline.iter().any(|t| {
            t.phase == Phase::Promoted
                && t.note
                    .starts_with(&format!("{DELAYED_NOTE}{}", human_duration(s)))
        })
    };
    PIN_ESCALATIONS_SECS
        .iter()
        .copied()
        .filter(|s| *s < deadline && waited >= *s)
        .max()
        .filter(|s| !paged(*s))
}

/// Whether [`hand_on`] now would page people (an escalation step not paged yet, or the pin
/// deadline): the pinner then asks the name servers again first, so a page about a wrong answer
/// states what they answer now, not what they answered a while ago.
pub fn pages_now(site: &SiteConfig, state: &SiteState, now: DateTime<Utc>) -> bool {
    let waited = (now - pin_started_at(state).unwrap_or(now)).num_seconds();
    let deadline = site.thresholds.pin_deadline_secs as i64;
    waited >= deadline
        || (!crate::dataplane::records_pending(state)
            && unpaged_step(state, waited, deadline).is_some())
}

/// Promoted → Failed with a `FailoverFailed` event: the database was promoted but the writer name
/// could not be moved. A human must act (the notifier pages), so this is never silent.
pub fn mark_failed(
    state: &SiteState,
    event: &DomainEvent,
    reason: &str,
    now: DateTime<Utc>,
) -> Option<SiteState> {
    if state.epoch != event.epoch || state.phase != Phase::Promoted || state.site != event.site {
        return None;
    }
    // The data-plane switch was put for this epoch: traffic moved or may move at any moment, so
    // `failed` would be a lie (`dataplane::records_failed` is the way out instead).
    if crate::dataplane::switch_put(state).is_some() {
        return None;
    }
    let mut next = state.clone();
    let note = format!("DNS not pinned: {reason}");
    next.transition(state.epoch, Phase::Failed, now, note.clone())
        .ok()?;
    next.failure = Some(note.clone());
    next.version = state.version + 1;
    next.updated_at = Some(now);
    next.outbox.push(follow_up(
        event,
        &next,
        EventType::FailoverFailed,
        format!(
            "{note}. The replica WAS promoted; applications may still resolve {} to the old primary. Repoint DNS by hand — see docs/runbook.md.",
            state.dns.as_ref().map(|d| d.name.as_str()).unwrap_or("the writer name")
        ),
        now,
    ));
    Some(next)
}

fn fence_of(e: TransitionError, state: &SiteState) -> Fence {
    Fence::Stale {
        reason: format!("site {}: {e}", state.site),
    }
}

pub(crate) fn follow_up(
    cause: &DomainEvent,
    next: &SiteState,
    event_type: EventType,
    summary: String,
    now: DateTime<Utc>,
) -> DomainEvent {
    let mut verdict = cause.verdict.clone();
    verdict.phase = next.phase;
    verdict.epoch = next.epoch;
    verdict.summary = summary;
    DomainEvent {
        event_type,
        site: next.site.clone(),
        epoch: next.epoch,
        phase: next.phase,
        engine: cause.engine.clone(),
        occurred_at: now,
        primary: cause.primary.clone(),
        candidate: cause.candidate.clone().or_else(|| next.candidate.clone()),
        rpo_override: cause.rpo_override.clone(),
        verdict,
        timeline: next.timeline.clone(),
    }
}

// ---------------------------------------------------------------- backoff

/// First wait between two `GetChange` polls.
pub const BACKOFF_START: Duration = crate::promote::POLL_START;
/// Longest wait between two polls: Route 53 usually syncs within 60 s; never sleep past a change.
pub const BACKOFF_CAP: Duration = crate::promote::POLL_CAP;

/// The wait before poll number `attempt + 1` (0-based): exponential from [`BACKOFF_START`] (1 s),
/// capped at [`BACKOFF_CAP`] (10 s), with "equal jitter" — half the step fixed, half scaled by
/// `jitter` in `[0, 1)` — so concurrent pollers do not run in lockstep and no wait collapses to
/// zero. The same schedule the replica-promoter polls RDS with ([`crate::promote::poll_delay`]).
pub fn backoff_delay(attempt: u32, jitter: f64) -> Duration {
    crate::promote::poll_delay(attempt, jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, DbRef};
    use crate::incident::PromotionRecord;
    use crate::verdict::{Guard, GuardCheck, GuardResult, Outcome, Verdict};
    use chrono::TimeZone;

    const EXAMPLE: &str = include_str!("../../../infra/sites.example.json");

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    fn site(id: &str) -> SiteConfig {
        Config::from_document(EXAMPLE)
            .unwrap()
            .site(id)
            .unwrap()
            .clone()
    }

    fn db(id: &str) -> DbRef {
        DbRef {
            id: id.into(),
            region: "us-west-2".into(),
        }
    }

    fn promoted(site: &str, epoch: u64, endpoint: Option<&str>) -> SiteState {
        let mut s = SiteState::new(site);
        s.version = 7;
        s.epoch = epoch;
        s.phase = Phase::Promoted;
        s.candidate = Some(db("r1"));
        s.promotion = Some(PromotionRecord {
            epoch,
            candidate: db("r1"),
            action: "PromoteReadReplica".into(),
            requested_at: t(0),
            completed_at: Some(t(300)),
            endpoint: endpoint.map(String::from),
            writable_verified_at: Some(t(301)),
            resolved: None,
        });
        s
    }

    fn event(site: &str, epoch: u64) -> DomainEvent {
        DomainEvent {
            event_type: EventType::ReplicaPromoted,
            site: site.into(),
            epoch,
            phase: Phase::Promoted,
            engine: "rds-replica".into(),
            occurred_at: t(301),
            primary: Some(db("p")),
            candidate: Some(db("r1")),
            rpo_override: None,
            verdict: Verdict {
                site: Some(site.into()),
                outcome: Outcome::FailoverDecided {
                    candidate: db("r1"),
                },
                epoch,
                phase: Phase::Promoting,
                summary: "decided".into(),
                guards: vec![
                    GuardCheck::new(Guard::Quorum, GuardResult::Pass, "2 of 3 down")
                        .numbers(2.0, 2.0),
                ],
            },
            timeline: vec![],
        }
    }

    fn cname(name: &str, value: &str, ttl: i64) -> RecordSet {
        RecordSet {
            name: name.into(),
            record_type: "CNAME".into(),
            set_identifier: None,
            failover: None,
            ttl: Some(ttl),
            values: vec![value.into()],
            health_check_id: None,
            alias_target: None,
        }
    }

    #[test]
    fn endpoint_host_strips_the_port_and_rejects_garbage() {
        assert_eq!(
            endpoint_host("r1.abc.us-west-2.rds.amazonaws.com:3306").as_deref(),
            Some("r1.abc.us-west-2.rds.amazonaws.com")
        );
        assert_eq!(
            endpoint_host("Host.Example.com.").as_deref(),
            Some("host.example.com")
        );
        assert_eq!(endpoint_host(":3306"), None);
        assert_eq!(endpoint_host("bad host:3306"), None);
        assert_eq!(endpoint_host(""), None);
    }

    #[test]
    fn fence_accepts_only_the_current_promoted_epoch() {
        let ev = event("orders", 3);
        let host = "r1.abc.rds.amazonaws.com";
        let st = promoted("orders", 3, Some("r1.abc.rds.amazonaws.com:3306"));
        assert_eq!(fence(&st, &ev), Fence::Pin { host: host.into() });

        let mut pinned = st.clone();
        pinned.phase = Phase::DnsPinned;
        assert_eq!(fence(&pinned, &ev), Fence::AlreadyPinned);

        let newer = promoted("orders", 4, Some("x:1"));
        assert!(
            matches!(fence(&newer, &ev), Fence::Stale { reason } if reason.contains("epoch 3") && reason.contains("epoch 4"))
        );

        for phase in [
            Phase::Promoting,
            Phase::Failed,
            Phase::Completed,
            Phase::Idle,
        ] {
            let mut s = st.clone();
            s.phase = phase;
            assert!(matches!(fence(&s, &ev), Fence::Stale { .. }), "{phase}");
        }

        let mut other_candidate = ev.clone();
        other_candidate.candidate = Some(db("r2"));
        assert!(
            matches!(fence(&st, &other_candidate), Fence::Stale { reason } if reason.contains("r2"))
        );

        let mut wrong_type = ev.clone();
        wrong_type.event_type = EventType::DnsPinned;
        assert!(matches!(fence(&st, &wrong_type), Fence::Stale { .. }));

        assert!(matches!(
            fence(&promoted("orders", 3, None), &ev),
            Fence::Broken { .. }
        ));
        assert!(matches!(
            fence(&promoted("orders", 3, Some("no such:host")), &ev),
            Fence::Broken { .. }
        ));
        let mut no_promotion = st.clone();
        no_promotion.promotion = None;
        assert!(matches!(fence(&no_promotion, &ev), Fence::Broken { .. }));
    }

    #[test]
    fn cname_mode_swaps_the_cname_by_compare_and_set_unless_it_already_holds_the_target() {
        let s = site("orders");
        let q = query(&s);
        assert_eq!((q.record_type.as_str(), q.set_identifier), ("CNAME", None));
        let old = cname(
            "db.orders.example.com.",
            "orders-primary.x.rds.amazonaws.com",
            300,
        );
        let p = plan(
            &s,
            std::slice::from_ref(&old),
            None,
            "r1.x.rds.amazonaws.com",
        )
        .unwrap();
        // DELETE exactly what was read, CREATE the new one: Route 53 refuses the DELETE if the
        // record moved in between.
        assert_eq!(
            p.changes
                .iter()
                .map(|c| (c.action, c.record.values[0].as_str(), c.record.ttl))
                .collect::<Vec<_>>(),
            vec![
                (
                    ChangeAction::Delete,
                    "orders-primary.x.rds.amazonaws.com",
                    Some(300)
                ),
                (ChangeAction::Create, "r1.x.rds.amazonaws.com", Some(30)),
            ]
        );
        // Absent record: a CREATE, which fails if someone creates it first.
        let absent = plan(&s, &[], None, "r1.x").unwrap();
        assert_eq!(absent.changes.len(), 1);
        assert_eq!(absent.changes[0].action, ChangeAction::Create);
        // Already the target (Route 53 spells it with a trailing dot, any case): no call.
        let done = cname("db.orders.example.com.", "R1.x.rds.amazonaws.com.", 30);
        assert!(plan(&s, &[done], None, "r1.x.rds.amazonaws.com")
            .unwrap()
            .changes
            .is_empty());
        // Right value, wrong TTL: the TTL still has to come down.
        let ttl = cname("db.orders.example.com.", "r1.x.rds.amazonaws.com", 300);
        assert_eq!(
            plan(&s, &[ttl], None, "r1.x.rds.amazonaws.com")
                .unwrap()
                .changes
                .len(),
            2
        );
        // A record with a routing policy is not ours to flatten.
        let mut weighted = old.clone();
        weighted.set_identifier = Some("w1".into());
        assert!(matches!(
            plan(&s, &[weighted], None, "r1.x"),
            Err(PlanError::RoutingPolicyInCnameMode { .. })
        ));
    }

    fn pair() -> Vec<RecordSet> {
        let primary = RecordSet {
            name: "db.billing.example.com.".into(),
            record_type: "CNAME".into(),
            set_identifier: Some("billing-primary".into()),
            failover: Some(FailoverRole::Primary),
            ttl: Some(60),
            values: vec!["billing-1.x.rds.amazonaws.com".into()],
            health_check_id: Some("hc-123".into()),
            alias_target: None,
        };
        let secondary = RecordSet {
            set_identifier: Some("billing-secondary".into()),
            failover: Some(FailoverRole::Secondary),
            values: vec!["billing-3.x.rds.amazonaws.com".into()],
            health_check_id: None,
            ..primary.clone()
        };
        vec![primary, secondary]
    }

    #[test]
    fn a_name_already_answering_the_target_in_the_other_shape_is_done_and_said_so() {
        let host = "billing-2.x.rds.amazonaws.com";
        // failover-pin configured, but a human already replaced the pair with a simple CNAME.
        let failover_site = site("billing");
        let simple = [cname("db.billing.example.com.", host, 60)];
        let p = plan(&failover_site, &simple, None, host).unwrap();
        assert!(p.changes.is_empty(), "{p:?}");
        let note = other_shape_note(&failover_site, &simple, host).unwrap();
        assert!(
            note.contains("as a simple CNAME, not the failover pair of PRIMARY billing-primary"),
            "{note}"
        );
        // cname configured, the name is a failover pair whose both members name the target.
        let cname_site = site("orders");
        let mut both = pair();
        for r in &mut both {
            r.values = vec![host.into()];
        }
        assert!(plan(&cname_site, &both, None, host)
            .unwrap()
            .changes
            .is_empty());
        assert!(other_shape_note(&cname_site, &both, host)
            .unwrap()
            .contains("as a failover pair"));
        // Only when *every* answer is the target: a pair whose SECONDARY names another host is
        // still refused in cname mode, and the configured shape gets no note.
        let mut half = both.clone();
        half[1].values = vec!["billing-3.x.rds.amazonaws.com".into()];
        assert!(matches!(
            plan(&cname_site, &half, None, host),
            Err(PlanError::RoutingPolicyInCnameMode { .. })
        ));
        assert_eq!(other_shape_note(&failover_site, &both, host), None);
    }

    #[test]
    fn failover_pin_rewrites_both_members_of_the_pair_keeping_their_identity() {
        let s = site("billing");
        assert_eq!(query(&s).set_identifier, None, "the whole pair is read");
        let current = pair();
        let p = plan(&s, &current, None, "billing-2.x.rds.amazonaws.com").unwrap();
        assert_eq!(p.desired.len(), 2);
        for (d, c) in p.desired.iter().zip(&current) {
            assert_eq!(d.values, vec!["billing-2.x.rds.amazonaws.com"]);
            assert_eq!(d.ttl, Some(30));
            assert_eq!(
                (&d.set_identifier, d.failover, &d.health_check_id, &d.name),
                (&c.set_identifier, c.failover, &c.health_check_id, &c.name)
            );
        }
        let deleted: Vec<&RecordSet> = p
            .changes
            .iter()
            .filter(|c| c.action == ChangeAction::Delete)
            .map(|c| &c.record)
            .collect();
        assert_eq!(
            deleted,
            current.iter().collect::<Vec<_>>(),
            "exactly as read"
        );
        assert_eq!(
            p.changes.len(),
            4,
            "one batch: DELETE+CREATE for each member"
        );

        assert!(matches!(
            plan(&s, &[], None, "h"),
            Err(PlanError::NoPrimaryRecord { set_identifier, .. }) if set_identifier == "billing-primary"
        ));
        let mut secondary = current.clone();
        secondary[0].failover = Some(FailoverRole::Secondary);
        assert!(matches!(
            plan(&s, &secondary, None, "h"),
            Err(PlanError::NotPrimary { .. })
        ));
        let mut weighted = current.clone();
        weighted[1].failover = None;
        assert!(matches!(
            plan(&s, &weighted, None, "h"),
            Err(PlanError::NotFailover { .. })
        ));
        let mut alias = current.clone();
        alias[0].alias_target = Some("lb.example.com".into());
        assert!(matches!(
            plan(&s, &alias, None, "h"),
            Err(PlanError::Alias { .. })
        ));
        let pinned = p.desired.clone();
        assert!(plan(&s, &pinned, None, "billing-2.x.rds.amazonaws.com")
            .unwrap()
            .changes
            .is_empty());
        // Half pinned (the PRIMARY only, as this tool used to leave it): the SECONDARY still moves.
        let mut half = current.clone();
        half[0] = pinned[0].clone();
        let p = plan(&s, &half, None, "billing-2.x.rds.amazonaws.com").unwrap();
        assert_eq!(p.changes.len(), 2);
        assert!(p
            .changes
            .iter()
            .all(|c| c.record.failover == Some(FailoverRole::Secondary)));
    }

    #[test]
    fn a_record_changed_since_it_was_recorded_is_never_overwritten() {
        let s = site("billing");
        let ev = {
            let mut e = event("billing", 3);
            e.candidate = Some(db("r1"));
            e
        };
        let st = promoted("billing", 3, Some("billing-2.x:3306"));
        let host = "billing-2.x";
        let st = record_previous(&st, &ev, &s, &pair(), host, t(400))
            .unwrap()
            .unwrap();
        let d = st.dns.as_ref().unwrap();
        assert_eq!(d.previous_records.as_deref(), Some(&pair()[..]));
        assert_eq!(
            d.previous_values,
            vec!["billing-1.x.rds.amazonaws.com"],
            "the PRIMARY's"
        );
        // As recorded, or already the target: fine.
        assert!(plan(&s, &pair(), Some(d), host).is_ok());
        // A human pinned the PRIMARY by hand (TTL 60, as the runbook's example): the rest follows.
        let mut by_hand = pair();
        by_hand[0].values = vec![host.into()];
        let p = plan(&s, &by_hand, Some(d), host).unwrap();
        assert_eq!(
            p.changes.len(),
            4,
            "the TTL comes down and the SECONDARY moves"
        );
        // A human repointed the SECONDARY meanwhile: no change, a message saying what is there.
        let mut edited = pair();
        edited[1].values = vec!["hand.x".into()];
        let e = plan(&s, &edited, Some(d), host).unwrap_err();
        assert!(matches!(e, PlanError::ChangedConcurrently { .. }));
        let m = e.to_string();
        assert!(
            m.contains("hand.x") && m.contains("billing-3.x.rds.amazonaws.com"),
            "{m}"
        );
        // Someone deleted it.
        assert!(matches!(
            plan(&s, &[], Some(d), host),
            Err(PlanError::NoPrimaryRecord { .. })
        ));
        // A ledger record from before previous_records existed: Route 53's DELETE is the guard.
        let mut legacy = d.clone();
        legacy.previous_records = None;
        assert!(plan(&s, &edited, Some(&legacy), host).is_ok());
    }

    #[test]
    fn previous_values_are_recorded_once_and_never_overwritten_by_a_redelivery() {
        let s = site("orders");
        let ev = event("orders", 3);
        let st = promoted("orders", 3, Some("r1.x:3306"));
        let old = cname("db.orders.example.com.", "orders-primary.x", 300);
        let next = record_previous(&st, &ev, &s, std::slice::from_ref(&old), "r1.x", t(400))
            .unwrap()
            .unwrap();
        assert_eq!(next.version, 8);
        let d = next.dns.clone().unwrap();
        assert_eq!(
            (d.epoch, d.previous_values.clone(), d.previous_ttl),
            (3, vec!["orders-primary.x".to_string()], Some(300))
        );
        assert_eq!(d.new_value, "r1.x");

        // A re-delivery finds DNS already changed: the ledger keeps the original previous values.
        let pinned_now = cname("db.orders.example.com.", "r1.x", 30);
        assert_eq!(
            record_previous(&next, &ev, &s, &[pinned_now], "r1.x", t(401)).unwrap(),
            None
        );
        // A record from an older epoch is replaced.
        let mut older = st.clone();
        older.dns = Some(DnsRecord {
            epoch: 2,
            ..d.clone()
        });
        let n = record_previous(&older, &ev, &s, std::slice::from_ref(&old), "r1.x", t(400))
            .unwrap()
            .unwrap();
        assert_eq!(n.dns.unwrap().epoch, 3);
        // A stale event writes nothing.
        assert!(record_previous(
            &st,
            &event("orders", 2),
            &s,
            std::slice::from_ref(&old),
            "r1.x",
            t(400)
        )
        .is_err());
    }

    #[test]
    fn pinning_moves_the_phase_and_fills_the_outbox_once() {
        let s = site("orders");
        let ev = event("orders", 3);
        let st = promoted("orders", 3, Some("r1.x:3306"));
        let old = cname("db.orders.example.com.", "orders-primary.x", 300);
        let st = record_previous(&st, &ev, &s, std::slice::from_ref(&old), "r1.x", t(400))
            .unwrap()
            .unwrap();
        let st = record_change_id(&st, &ev, "C1", t(401)).unwrap().unwrap();
        assert_eq!(record_change_id(&st, &ev, "C1", t(402)).unwrap(), None);
        let pinned = mark_pinned(&st, &ev, t(420), "verified: seen CNAME r1.x TTL 30", t(421))
            .unwrap()
            .unwrap();
        assert_eq!(pinned.phase, Phase::DnsPinned);
        assert_eq!(pinned.dns.as_ref().unwrap().insync_at, Some(t(420)));
        assert_eq!(pinned.outbox.len(), 1);
        let e = &pinned.outbox[0];
        assert_eq!(
            (e.event_type, e.epoch, e.phase),
            (EventType::DnsPinned, 3, Phase::DnsPinned)
        );
        assert!(
            e.verdict.summary.contains("orders-primary.x")
                && e.verdict.summary.contains("C1")
                && e.verdict
                    .summary
                    .contains("verified: seen CNAME r1.x TTL 30")
                && e.verdict
                    .summary
                    .contains("previous record's TTL was 300 s"),
            "{}",
            e.verdict.summary
        );
        assert_eq!(
            e.verdict.guards, ev.verdict.guards,
            "the decision's reasons travel on"
        );
        assert_eq!(pinned.timeline.last().unwrap().phase, Phase::DnsPinned);
        // Pinned is final for this delivery: nothing further to write.
        assert_eq!(
            mark_pinned(&pinned, &ev, t(430), "v", t(431)),
            Err(Fence::AlreadyPinned)
        );
    }

    #[test]
    fn failure_is_recorded_only_for_the_current_promoted_epoch() {
        let ev = event("orders", 3);
        let st = promoted("orders", 3, Some("r1.x:3306"));
        let f = mark_failed(&st, &ev, "AccessDenied", t(500)).unwrap();
        assert_eq!(f.phase, Phase::Failed);
        assert!(f.failure.as_deref().unwrap().contains("AccessDenied"));
        assert_eq!(f.outbox[0].event_type, EventType::FailoverFailed);
        assert!(mark_failed(&st, &event("orders", 2), "x", t(500)).is_none());
        assert!(mark_failed(&f, &ev, "x", t(501)).is_none());
    }

    #[test]
    fn backoff_doubles_from_one_second_caps_at_ten_and_jitters_within_the_step() {
        let lo: Vec<u64> = (0..7)
            .map(|a| backoff_delay(a, 0.0).as_millis() as u64)
            .collect();
        let hi: Vec<u64> = (0..7)
            .map(|a| backoff_delay(a, 0.999_999).as_millis() as u64)
            .collect();
        assert_eq!(lo, vec![500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(hi, vec![999, 1999, 3999, 7999, 9999, 9999, 9999]);
        assert_eq!(backoff_delay(u32::MAX, 0.5), Duration::from_millis(7500));
        assert!(backoff_delay(3, 7.0) <= BACKOFF_CAP, "jitter is clamped");
        assert_eq!(backoff_delay(0, f64::NAN), Duration::from_millis(500));
    }

    #[test]
    fn durations_read_like_a_human_wrote_them() {
        assert_eq!(human_duration(42), "42s");
        assert_eq!(human_duration(185), "3m 05s");
        assert_eq!(human_duration(3720), "1h 02m");
        assert_eq!(human_duration(-5), "0s");
    }
}
