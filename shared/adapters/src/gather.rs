//! Gathering evidence for one site through the ports, concurrently: every read (each alarm region,
//! the primary, each candidate and its lag) is in flight at once, so a blackholed region costs a
//! site one read's bound (the SDK's operation timeout, `crate::aws`), not one per read.
//!
//! This never fails: a read that errors becomes *unknown* evidence (an `Unreadable` status, a
//! `None` alarm state, a missing lag), because the outage we are judging is exactly when AWS APIs
//! in the primary's region stop answering. The policy decides what unknown means.

use chrono::{DateTime, Utc};
use failover_policy::config::{DbRef, Engine, SiteConfig};
use failover_policy::evidence::{
    AlarmEvidence, CanaryResult, CandidateEvidence, DbObservation, Evidence, NO_CANARY,
};
use futures::future::join_all;

use crate::ports::{Canary, DatabaseTopology, LagMetric, Metrics, PortError};

pub struct Ports<'a> {
    pub topology: &'a dyn DatabaseTopology,
    pub metrics: &'a dyn Metrics,
    pub canary: &'a dyn Canary,
}

fn observation<T>(
    r: &Result<Option<T>, PortError>,
    status: impl Fn(&T) -> String,
) -> DbObservation {
    match r {
        Ok(Some(x)) => DbObservation::status(status(x)),
        Ok(None) => DbObservation::NotFound,
        Err(e) => DbObservation::Unreadable {
            error: e.to_string(),
        },
    }
}

/// `ReadReplicaSourceDBInstanceIdentifier` is an id for same-region replicas and an ARN
/// (`arn:aws:rds:REGION:ACCOUNT:db:ID`) for cross-region ones.
pub fn source_names(source: &str, primary: &DbRef) -> bool {
    source == primary.id
        || source
            .rsplit_once(":db:")
            .is_some_and(|(prefix, id)| id == primary.id && prefix.contains(&primary.region))
}

pub async fn gather(
    site: &SiteConfig,
    default_region: &str,
    ports: &Ports<'_>,
    now: DateTime<Utc>,
) -> Evidence {
    let alarms = gather_alarms(site, default_region, ports);
    let dbs = gather_dbs(site, ports, now);
    let canary = async {
        if site.canary.is_some() {
            ports.canary.probe(site).await
        } else {
            CanaryResult::Unknown {
                reason: NO_CANARY.into(),
            }
        }
    };
    let (alarms, (primary, candidates, primary_multi_az), canary) =
        tokio::join!(alarms, dbs, canary);
    Evidence {
        alarms,
        primary,
        candidates,
        canary,
        primary_multi_az,
        vantage_region: Some(default_region.to_string()),
        primary_gtid: None,
        read_only_groups: vec![],
    }
}

async fn gather_alarms(
    site: &SiteConfig,
    default_region: &str,
    ports: &Ports<'_>,
) -> Vec<AlarmEvidence> {
    let mut regions: Vec<&str> = site
        .alarms
        .iter()
        .map(|a| a.region.as_deref().unwrap_or(default_region))
        .collect();
    regions.sort_unstable();
    regions.dedup();
    // Every region is read at once: a blackholed region costs one bounded read, not one per region.
    let reads = join_all(regions.iter().map(|region| async move {
        let names: Vec<String> = site
            .alarms
            .iter()
            .filter(|a| a.region.as_deref().unwrap_or(default_region) == *region)
            .map(|a| a.name.clone())
            .collect();
        (*region, ports.metrics.alarm_states(region, &names).await)
    }))
    .await;
    let mut out = vec![];
    for (region, states) in reads {
        for a in site
            .alarms
            .iter()
            .filter(|a| a.region.as_deref().unwrap_or(default_region) == region)
        {
            let state = states.as_ref().ok().and_then(|m| m.get(&a.name).copied());
            out.push(AlarmEvidence {
                name: a.name.clone(),
                role: a.role,
                state,
            });
        }
    }
    out
}

async fn gather_dbs(
    site: &SiteConfig,
    ports: &Ports<'_>,
    now: DateTime<Utc>,
) -> (DbObservation, Vec<CandidateEvidence>, Option<bool>) {
    let topo = ports.topology;
    match &site.engine {
        Engine::RdsReplica | Engine::MultiAz => {
            let reads = join_all(site.candidates.iter().map(|c| async move {
                tokio::join!(
                    topo.instance(c),
                    ports.metrics.replica_lag(c, LagMetric::RdsReplicaLag, now)
                )
            }));
            let (primary, reads) = tokio::join!(topo.instance(&site.primary), reads);
            let mut cands = vec![];
            for (c, (info, lag)) in site.candidates.iter().zip(reads) {
                let replica_of_primary = match &info {
                    Ok(Some(i)) => Some(
                        i.replication_source
                            .as_deref()
                            .is_some_and(|s| source_names(s, &site.primary)),
                    ),
                    _ => None,
                };
                let (replication, created_at) = match &info {
                    Ok(Some(i)) => (i.replication_status.clone(), i.created_at),
                    _ => (None, None),
                };
                let (lag_secs, lag_at) = CandidateEvidence::lag_fields(lag.ok().flatten());
                cands.push(CandidateEvidence {
                    db: c.clone(),
                    status: observation(&info, |i| i.status.clone()),
                    replica_of_primary,
                    lag_secs,
                    lag_at,
                    replication,
                    created_at,
                });
            }
            let multi_az = primary
                .as_ref()
                .ok()
                .and_then(|i| i.as_ref().map(|i| i.multi_az));
            (observation(&primary, |i| i.status.clone()), cands, multi_az)
        }
        Engine::AuroraCluster { cluster_id } => {
            let reads = join_all(site.candidates.iter().map(|c| async move {
                tokio::join!(
                    topo.instance(c),
                    ports
                        .metrics
                        .replica_lag(c, LagMetric::AuroraReplicaLag, now)
                )
            }));
            let (primary, cluster, reads) = tokio::join!(
                topo.instance(&site.primary),
                topo.cluster(cluster_id, &site.primary.region),
                reads
            );
            let mut cands = vec![];
            for (c, (info, lag)) in site.candidates.iter().zip(reads) {
                let replica_of_primary = match &cluster {
                    Ok(Some(cl)) => Some(
                        cl.members
                            .iter()
                            .any(|m| m.instance_id == c.id && !m.is_writer),
                    ),
                    _ => None,
                };
                let (lag_secs, lag_at) = CandidateEvidence::lag_fields(lag.ok().flatten());
                cands.push(CandidateEvidence {
                    db: c.clone(),
                    status: observation(&info, |i| i.status.clone()),
                    replica_of_primary,
                    lag_secs,
                    lag_at,
                    replication: None,
                    created_at: None,
                });
            }
            (observation(&primary, |i| i.status.clone()), cands, None)
        }
        Engine::AuroraGlobal { global_cluster_id } => {
            let reads = join_all(site.candidates.iter().map(|c| async move {
                tokio::join!(
                    topo.cluster(&c.id, &c.region),
                    topo.global_cluster(global_cluster_id, &c.region),
                    ports
                        .metrics
                        .replica_lag(c, LagMetric::AuroraGlobalLag, now),
                )
            }));
            let (primary, reads) =
                tokio::join!(topo.cluster(&site.primary.id, &site.primary.region), reads);
            let mut cands = vec![];
            for (c, (info, global, lag)) in site.candidates.iter().zip(reads) {
                let replica_of_primary = match (&global, &info) {
                    (Ok(Some(g)), Ok(Some(ci))) => {
                        let names = |m: &crate::ports::GlobalMember, id: &str| {
                            m.cluster_arn.ends_with(&format!(":cluster:{id}"))
                        };
                        let cand_secondary = g.members.iter().any(|m| {
                            !m.is_writer
                                && (names(m, &c.id)
                                    || ci.arn.as_deref() == Some(m.cluster_arn.as_str()))
                        });
                        let primary_writer = g
                            .members
                            .iter()
                            .any(|m| m.is_writer && names(m, &site.primary.id));
                        Some(cand_secondary && primary_writer)
                    }
                    _ => None,
                };
                let (lag_secs, lag_at) = CandidateEvidence::lag_fields(lag.ok().flatten());
                cands.push(CandidateEvidence {
                    db: c.clone(),
                    status: observation(&info, |i| i.status.clone()),
                    replica_of_primary,
                    lag_secs,
                    lag_at,
                    replication: None,
                    created_at: None,
                });
            }
            (observation(&primary, |i| i.status.clone()), cands, None)
        }
    }
}
