//! The tick's driver of a re-protection (`failover_policy::reprotect`): one new read replica of
//! the ledger's primary, created with the site's `reprotect` settings.
//!
//! Each step observes what its phase needs (the target region answering, the source's automated
//! backups, the new instance), is fed to [`advance`] and committed by compare-and-set before the
//! next one, so a crash between two steps resumes from the ledger. A state change is one
//! `ReprotectChanged` message; a step that changes nothing writes nothing (a dark region is said
//! once, not once per tick). On `protected` the ledger's topology lists the replica first among
//! the candidates.

use failover_adapters::fence::ReplicaRequest;
use failover_adapters::ports::{LagMetric, PortError};
use failover_policy::reprotect::{self, advance, Observation, ReprotectRecord, RpPhase};
use failover_policy::SiteConfig;
use tracing::{info, warn};

use crate::handler::Deps;

/// How many steps one tick may take (each is one commit).
const STEPS_PER_TICK: usize = 4;

/// Drives `site`'s re-protection, if one is in flight, as far as it goes this tick. Returns the
/// detail-types it published.
pub async fn drive_site(deps: &Deps, site: &SiteConfig) -> Vec<String> {
    let mut emitted = vec![];
    let mut st = match deps.ledger.load(&site.id).await {
        Ok(s) => s,
        Err(e) => {
            warn!(site = %site.id, error = %e, "reprotect: could not read the ledger");
            return emitted;
        }
    };
    for _ in 0..STEPS_PER_TICK {
        let Some(rec) = reprotect::in_flight(&st).cloned() else {
            break;
        };
        let Some(obs) = observe(deps, &rec).await else {
            break;
        };
        let (next_rec, message) = advance(&rec, obs, deps.clock.now());
        if let Some(m) = &message {
            info!(site = %site.id, replica = %rec.replica, message = %m, "reprotect");
        }
        let Some(next) = reprotect::commit(site, &st, next_rec, message, deps.clock.now()) else {
            break;
        };
        if let Err(e) = deps.ledger.commit(&next).await {
            warn!(site = %site.id, error = %e, "reprotect: record not committed; retried next tick");
            break;
        }
        st = match crate::handler::flush_outbox(deps, next, &mut emitted).await {
            Ok(s) => s,
            Err(e) => {
                warn!(site = %site.id, error = %e, "reprotect: message left in the outbox");
                break;
            }
        };
    }
    emitted
}

/// A port error as the state machine sees it: retryable is a dark region (wait), anything else
/// will not fix itself.
fn judged(e: PortError, region: &str) -> Observation {
    if e.kind.is_retryable() {
        Observation::RegionDark(format!("{region}: {e}"))
    } else {
        Observation::Failed(e.to_string())
    }
}

/// What the record's current step observes now; `None`: nothing new to take in this tick.
async fn observe(deps: &Deps, rec: &ReprotectRecord) -> Option<Observation> {
    match rec.phase {
        RpPhase::WaitingForRegion | RpPhase::EnablingBackups => source_backups(deps, rec).await,
        RpPhase::Creating => {
            if !source_settled(deps, rec).await {
                return None;
            }
            Some(create(deps, rec).await)
        }
        RpPhase::CatchingUp => catching_up(deps, rec).await,
        RpPhase::Protected | RpPhase::Failed => None,
    }
}

/// The target region first (a describe of the replica's identifier there), then the source's
/// `BackupRetentionPeriod`; backups off are turned on here (the next look reads them back).
async fn source_backups(deps: &Deps, rec: &ReprotectRecord) -> Option<Observation> {
    if let Err(e) = deps.topology.instance(&rec.replica).await {
        return Some(judged(e, &rec.replica.region));
    }
    let src = match deps.fence.replication_source(&rec.source).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Some(Observation::Failed(format!(
                "the source {} does not exist",
                rec.source
            )))
        }
        Err(e) if e.kind.is_retryable() => {
            warn!(source = %rec.source, error = %e, "reprotect: source not read; retried");
            return None;
        }
        Err(e) => return Some(Observation::Failed(e.to_string())),
    };
    if src.backup_retention_days == 0 && rec.phase == RpPhase::EnablingBackups {
        if !source_settled(deps, rec).await {
            return None;
        }
        let days = rec.config.backup_retention_days;
        if let Err(e) = deps.fence.enable_backups(&rec.source, days).await {
            if !e.kind.is_retryable() {
                return Some(Observation::Failed(e.to_string()));
            }
            warn!(source = %rec.source, error = %e, "reprotect: backups not enabled; retried");
        }
        return None;
    }
    Some(Observation::SourceBackups(src.backup_retention_days))
}

/// Whether the source is `available`: turning backups on starts a backup and the instance is
/// `modifying` / `backing-up` meanwhile, when RDS refuses another modification or a replica
/// (InvalidDBInstanceState) — so the step waits for it instead of failing.
async fn source_settled(deps: &Deps, rec: &ReprotectRecord) -> bool {
    match deps.topology.instance(&rec.source).await {
        Ok(Some(i)) => i.status == "available",
        Ok(None) => true, // `replication_source` / the create step report a missing source
        Err(e) => {
            warn!(source = %rec.source, error = %e, "reprotect: source status not read; retried");
            false
        }
    }
}

async fn create(deps: &Deps, rec: &ReprotectRecord) -> Observation {
    let src = match deps.fence.replication_source(&rec.source).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Observation::Failed(format!("the source {} does not exist", rec.source))
        }
        Err(e) => return judged(e, &rec.source.region),
    };
    let c = &rec.config;
    let req = ReplicaRequest {
        source_arn: src.arn,
        replica: rec.replica.clone(),
        instance_class: c.instance_class.clone(),
        parameter_group: c.parameter_group.clone(),
        security_groups: c.security_groups.clone(),
        subnet_group: c.subnet_group.clone(),
        kms_key_id: c.kms_key_id.clone(),
    };
    match deps.fence.create_read_replica(&req).await {
        Ok(()) => Observation::Created,
        Err(e) => judged(e, &rec.replica.region),
    }
}

/// The new instance: `available`, a replica of the source (by id or ARN), its `ReplicaLag`.
async fn catching_up(deps: &Deps, rec: &ReprotectRecord) -> Option<Observation> {
    let i = match deps.topology.instance(&rec.replica).await {
        Ok(Some(i)) => i,
        Ok(None) => return None,
        Err(e) => return Some(judged(e, &rec.replica.region)),
    };
    let replicating_from_source = i
        .replication_source
        .as_deref()
        .is_some_and(|s| s == rec.source.id || s.ends_with(&format!(":db:{}", rec.source.id)));
    let lag = match deps
        .metrics
        .replica_lag(&rec.replica, LagMetric::RdsReplicaLag, deps.clock.now())
        .await
    {
        Ok(l) => l.map(|l| l.secs).filter(|s| *s >= 0.0),
        Err(_) => None,
    };
    Some(Observation::Replica {
        available: i.status == "available",
        replicating_from_source,
        lag_secs: lag,
    })
}
