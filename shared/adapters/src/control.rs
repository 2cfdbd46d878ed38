//! The promoter's two capabilities beyond reading topology: changing which database is the writer
//! ([`DatabaseControl`]) and checking that the new writer accepts writes ([`WritabilityCheck`]).
//!
//! Why it is shaped this way:
//! - One method per RDS mutation, named after the API it sends, so a test can assert exactly which
//!   call was (or was not) made. Each returns the status RDS reported in its answer (a reboot
//!   answers `rebooting`, a promotion `modifying`), which the promoter uses as the first sighting
//!   of the transition.
//! - The SDK adapter sends every mutation **exactly once**: SDK retries are disabled for these
//!   calls. A retried `RebootDBInstance ForceFailover` whose first response was lost would fail
//!   back, and a retried promotion answers `InvalidDBInstanceState` for a promotion that is in fact
//!   under way. The promoter handles throttling (provably not applied) itself and treats timeouts as
//!   "maybe applied": it watches the topology instead of asking again.
//! - [`FakeControl`] shares its state with [`FakeTopology`], so the handler's describes observe
//!   the mutation passing through the same statuses, and failing the same way, as the emulator in
//!   `tests/faithful_moto.py` (and AWS): promotion `modifying` → `rebooting` → `available` with the
//!   replication source cleared; a non-replica or a busy instance is `InvalidDBInstanceState`;
//!   cluster and global failovers move the writer flag only when they finish.
// Imports and helpers that only the fakes below use are unused when they are compiled out.
#![cfg_attr(
    not(any(test, feature = "test-util")),
    allow(unused_imports, dead_code)
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_smithy_types::retry::RetryConfig;
use failover_policy::config::{DbRef, SiteConfig};

use crate::aws::{port_error, AwsClients};
#[cfg(any(test, feature = "test-util"))]
use crate::fakes::{FakeTopology, Faults};
use crate::mysql::{check_writable, Timeouts, Tls, Writability};
use crate::ports::{ClusterMember, Credentials, ErrorKind, PortError};

/// What RDS answered to a mutation: the status of the resource in its response, when it had one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MutationAck {
    pub status: Option<String>,
}

/// The RDS mutations that make a replica the writer. Each call is sent in the resource's region
/// (for global databases: the region of the target cluster, which survives the primary's loss).
#[async_trait]
pub trait DatabaseControl: Send + Sync {
    /// `PromoteReadReplica`: an RDS read replica (same or cross region) becomes standalone.
    async fn promote_read_replica(&self, instance: &DbRef) -> Result<MutationAck, PortError>;
    /// `FailoverDBCluster` with `TargetDBInstanceIdentifier`: an Aurora reader becomes the writer.
    async fn failover_db_cluster(
        &self,
        cluster_id: &str,
        region: &str,
        target_instance: &str,
    ) -> Result<MutationAck, PortError>;
    /// `SwitchoverGlobalCluster`: planned, no data loss; needs a healthy primary.
    async fn switchover_global_cluster(
        &self,
        global_cluster_id: &str,
        region: &str,
        target_cluster_arn: &str,
    ) -> Result<MutationAck, PortError>;
    /// `FailoverGlobalCluster` with `AllowDataLoss`: the unplanned failover of a lost region.
    async fn failover_global_cluster(
        &self,
        global_cluster_id: &str,
        region: &str,
        target_cluster_arn: &str,
        allow_data_loss: bool,
    ) -> Result<MutationAck, PortError>;
    /// `RebootDBInstance` with `ForceFailover=true`: a Multi-AZ instance fails over to its standby.
    async fn reboot_with_failover(&self, instance: &DbRef) -> Result<MutationAck, PortError>;
}

/// Whether the database at `endpoint` (`host:port`) accepts writes, asked as the site's canary
/// user over a real MySQL connection.
#[async_trait]
pub trait WritabilityCheck: Send + Sync {
    /// `ErrorKind::NotFound` when the site has no canary user to ask with.
    async fn check(&self, site: &SiteConfig, endpoint: &str) -> Result<Writability, PortError>;
    /// The promoted server's executed position, recorded at promotion for the divergence report
    /// (`Ok(None)`: GTIDs are off, or no login to ask with).
    async fn position(
        &self,
        site: &SiteConfig,
        endpoint: &str,
    ) -> Result<Option<failover_policy::gtid::Position>, PortError>;
}

// ---------------------------------------------------------------- AWS SDK adapter

enum RdsClients {
    PerRegion(Box<AwsClients>),
    Fixed(aws_sdk_rds::Client),
}

/// [`DatabaseControl`] over the RDS API, with the client of each resource's region.
pub struct RdsControl {
    clients: RdsClients,
}

impl RdsControl {
    pub fn new(clients: &AwsClients) -> Self {
        Self {
            clients: RdsClients::PerRegion(Box::new(clients.clone())),
        }
    }

    /// Uses `client` whatever the region (tests with a mocked client).
    pub fn from_client(client: aws_sdk_rds::Client) -> Self {
        Self {
            clients: RdsClients::Fixed(client),
        }
    }

    fn client(&self, region: &str) -> aws_sdk_rds::Client {
        match &self.clients {
            RdsClients::PerRegion(c) => c.rds(region),
            RdsClients::Fixed(c) => c.clone(),
        }
    }
}

/// Per-call override: a mutation is sent once; see the module docs for why.
fn once() -> aws_sdk_rds::config::Builder {
    aws_sdk_rds::config::Builder::default().retry_config(RetryConfig::disabled())
}

fn ack(status: Option<&str>) -> MutationAck {
    MutationAck {
        status: status.map(str::to_owned),
    }
}

#[async_trait]
impl DatabaseControl for RdsControl {
    async fn promote_read_replica(&self, instance: &DbRef) -> Result<MutationAck, PortError> {
        let out = self
            .client(&instance.region)
            .promote_read_replica()
            .db_instance_identifier(&instance.id)
            .customize()
            .config_override(once())
            .send()
            .await
            .map_err(|e| port_error("PromoteReadReplica", &e))?;
        Ok(ack(out.db_instance().and_then(|i| i.db_instance_status())))
    }

    async fn failover_db_cluster(
        &self,
        cluster_id: &str,
        region: &str,
        target_instance: &str,
    ) -> Result<MutationAck, PortError> {
        let out = self
            .client(region)
            .failover_db_cluster()
            .db_cluster_identifier(cluster_id)
            .target_db_instance_identifier(target_instance)
            .customize()
            .config_override(once())
            .send()
            .await
            .map_err(|e| port_error("FailoverDBCluster", &e))?;
        Ok(ack(out.db_cluster().and_then(|c| c.status())))
    }

    async fn switchover_global_cluster(
        &self,
        global_cluster_id: &str,
        region: &str,
        target_cluster_arn: &str,
    ) -> Result<MutationAck, PortError> {
        let out = self
            .client(region)
            .switchover_global_cluster()
            .global_cluster_identifier(global_cluster_id)
            .target_db_cluster_identifier(target_cluster_arn)
            .customize()
            .config_override(once())
            .send()
            .await
            .map_err(|e| port_error("SwitchoverGlobalCluster", &e))?;
        Ok(ack(out.global_cluster().and_then(|g| g.status())))
    }

    async fn failover_global_cluster(
        &self,
        global_cluster_id: &str,
        region: &str,
        target_cluster_arn: &str,
        allow_data_loss: bool,
    ) -> Result<MutationAck, PortError> {
        let out = self
            .client(region)
            .failover_global_cluster()
            .global_cluster_identifier(global_cluster_id)
            .target_db_cluster_identifier(target_cluster_arn)
            .allow_data_loss(allow_data_loss)
            .customize()
            .config_override(once())
            .send()
            .await
            .map_err(|e| port_error("FailoverGlobalCluster", &e))?;
        Ok(ack(out.global_cluster().and_then(|g| g.status())))
    }

    async fn reboot_with_failover(&self, instance: &DbRef) -> Result<MutationAck, PortError> {
        let out = self
            .client(&instance.region)
            .reboot_db_instance()
            .db_instance_identifier(&instance.id)
            .force_failover(true)
            .customize()
            .config_override(once())
            .send()
            .await
            .map_err(|e| port_error("RebootDBInstance", &e))?;
        Ok(ack(out.db_instance().and_then(|i| i.db_instance_status())))
    }
}

// ---------------------------------------------------------------- MySQL writability adapter

/// [`WritabilityCheck`] over [`check_writable`], with the site's canary user and timeouts.
pub struct MysqlWritability {
    credentials: Arc<dyn Credentials>,
}

impl MysqlWritability {
    pub fn new(credentials: Arc<dyn Credentials>) -> Self {
        Self { credentials }
    }
}

#[async_trait]
impl WritabilityCheck for MysqlWritability {
    async fn check(&self, site: &SiteConfig, endpoint: &str) -> Result<Writability, PortError> {
        let Some(canary) = &site.canary else {
            return Err(PortError::new(
                ErrorKind::NotFound,
                "CheckWritable",
                format!(
                    "site {} has no canary user configured to verify writes with",
                    site.id
                ),
            ));
        };
        let password = self.credentials.password(&canary.credentials).await?;
        let tls = Tls::of(canary);
        check_writable(
            endpoint,
            &canary.user,
            &password,
            Timeouts::of(canary),
            tls.as_ref(),
        )
        .await
    }

    async fn position(
        &self,
        site: &SiteConfig,
        endpoint: &str,
    ) -> Result<Option<failover_policy::gtid::Position>, PortError> {
        let (Some(canary), Some((user, source))) = (&site.canary, crate::fence::sql_login(site))
        else {
            return Ok(None);
        };
        let password = self.credentials.password(&source).await?;
        let tls = Tls::of(canary);
        crate::mysql::read_position_of(
            endpoint,
            &user,
            &password,
            Timeouts::of(canary),
            tls.as_ref(),
            crate::mysql::PositionOf::ExecutedOfSource,
        )
        .await
    }
}

// ---------------------------------------------------------------- fakes

#[cfg(any(test, feature = "test-util"))]
/// [`DatabaseControl`] over a [`FakeTopology`]: a mutation changes what the topology's describes
/// return, over the next describes of its target (`polls_per_phase` each), like RDS does.
pub struct FakeControl {
    topology: Arc<FakeTopology>,
    /// How many describes of the target each intermediate status lasts (at least 1).
    pub polls_per_phase: AtomicUsize,
    pub faults: Faults,
    /// Every mutation that reached "RDS" (after injected faults), e.g. `PromoteReadReplica orders-replica-1`.
    pub calls: Mutex<Vec<String>>,
}

fn invalid(op: &'static str, code: &str, msg: String) -> PortError {
    PortError::new(ErrorKind::InvalidState, op, format!("{code}: {msg}"))
}

fn not_found(op: &'static str, code: &str, what: &str) -> PortError {
    PortError::new(
        ErrorKind::NotFound,
        op,
        format!("{code}: {what} not found."),
    )
}

#[cfg(any(test, feature = "test-util"))]
impl FakeControl {
    pub fn new(topology: Arc<FakeTopology>) -> Self {
        Self {
            topology,
            polls_per_phase: AtomicUsize::new(2),
            faults: Faults::default(),
            calls: Mutex::default(),
        }
    }

    /// The mutations sent so far with this API name.
    pub fn count(&self, api: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.split(' ').next() == Some(api))
            .count()
    }

    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    /// Makes each intermediate status last `n` describes (slower promotions).
    pub fn set_polls_per_phase(&self, n: usize) {
        self.polls_per_phase.store(n, Ordering::Relaxed);
    }

    fn hold<T: Clone + Send + 'static>(&self, what: T) -> impl Iterator<Item = T> {
        std::iter::repeat_n(what, self.polls_per_phase.load(Ordering::Relaxed).max(1))
    }

    fn start_global(
        &self,
        op: &'static str,
        global_cluster_id: &str,
        target_cluster_arn: &str,
        status: &'static str,
    ) -> Result<MutationAck, PortError> {
        let t = &self.topology;
        let g = t
            .global(global_cluster_id)
            .ok_or_else(|| not_found(op, "GlobalClusterNotFoundFault", global_cluster_id))?;
        if g.status != "available" {
            return Err(invalid(
                op,
                "InvalidGlobalClusterStateFault",
                format!(
                    "Global cluster {global_cluster_id} is in state {}; a switchover or failover is already in progress.",
                    g.status
                ),
            ));
        }
        let Some(target) = g
            .members
            .iter()
            .find(|m| m.cluster_arn == target_cluster_arn)
        else {
            return Err(invalid(
                op,
                "InvalidGlobalClusterStateFault",
                format!("DB cluster {target_cluster_arn} is not a member of global cluster {global_cluster_id}."),
            ));
        };
        if target.is_writer {
            return Err(invalid(
                op,
                "InvalidDBClusterStateFault",
                format!("DB cluster {target_cluster_arn} is already the primary cluster."),
            ));
        }
        let id = global_cluster_id.to_owned();
        t.update_global(&id, |g| g.status = status.into());
        let target = target_cluster_arn.to_owned();
        let steps = self
            .hold(id.clone())
            .map(|id| -> crate::fakes::Step {
                Box::new(move |t: &FakeTopology| t.update_global(&id, |g| g.status = status.into()))
            })
            .chain(std::iter::once::<crate::fakes::Step>(Box::new(
                move |t: &FakeTopology| {
                    t.update_global(&id, |g| {
                        for m in &mut g.members {
                            m.is_writer = m.cluster_arn == target;
                        }
                        g.status = "available".into();
                    });
                    // The promoted cluster's primary instance is now the global writer's writer.
                    t.update_cluster_by_arn(&target, |c| {
                        if !c.members.iter().any(|m| m.is_writer) {
                            if let Some(first) = c.members.first_mut() {
                                first.is_writer = true;
                            }
                        }
                    });
                },
            )));
        t.schedule(global_cluster_id, steps);
        Ok(ack(Some(status)))
    }
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl DatabaseControl for FakeControl {
    async fn promote_read_replica(&self, instance: &DbRef) -> Result<MutationAck, PortError> {
        const OP: &str = "PromoteReadReplica";
        self.faults.check(OP)?;
        let t = &self.topology;
        let i = t
            .instance_now(&instance.id)
            .ok_or_else(|| not_found(OP, "DBInstanceNotFound", &instance.id))?;
        if t.in_motion(&instance.id) {
            return Err(invalid(
                OP,
                "InvalidDBInstanceState",
                format!(
                    "DB Instance {} is already being promoted (status {}).",
                    i.id, i.status
                ),
            ));
        }
        let Some(source) = i.replication_source.clone() else {
            return Err(invalid(
                OP,
                "InvalidDBInstanceState",
                "DB Instance is not a read replica.".into(),
            ));
        };
        if i.status != "available" {
            return Err(invalid(
                OP,
                "InvalidDBInstanceState",
                format!(
                    "DB Instance {} is not in available state (status {}).",
                    i.id, i.status
                ),
            ));
        }
        self.record(format!("{OP} {}", instance.id));
        let id = instance.id.clone();
        t.set_status(&id, "modifying");
        let set = |status: &'static str, id: String| -> crate::fakes::Step {
            Box::new(move |t: &FakeTopology| t.set_status(&id, status))
        };
        let finish: crate::fakes::Step = {
            let id = id.clone();
            Box::new(move |t: &FakeTopology| {
                t.detach_replica(&id, &source);
                t.set_status(&id, "available");
            })
        };
        let steps: Vec<crate::fakes::Step> = self
            .hold(id.clone())
            .map(|id| set("modifying", id))
            .chain(self.hold(id.clone()).map(|id| set("rebooting", id)))
            .chain(std::iter::once(finish))
            .collect();
        t.schedule(&id, steps);
        Ok(ack(Some("modifying")))
    }

    async fn failover_db_cluster(
        &self,
        cluster_id: &str,
        _region: &str,
        target_instance: &str,
    ) -> Result<MutationAck, PortError> {
        const OP: &str = "FailoverDBCluster";
        self.faults.check(OP)?;
        let t = &self.topology;
        let c = t
            .cluster_now(cluster_id)
            .ok_or_else(|| not_found(OP, "DBClusterNotFoundFault", cluster_id))?;
        if c.status != "available" {
            return Err(invalid(
                OP,
                "InvalidDBClusterStateFault",
                format!(
                    "DB cluster {cluster_id} is not in available state (status {}).",
                    c.status
                ),
            ));
        }
        if !c.members.iter().any(|m| m.instance_id == target_instance) {
            return Err(invalid(
                OP,
                "InvalidDBInstanceState",
                format!(
                    "DB instance {target_instance} is not a member of DB cluster {cluster_id}."
                ),
            ));
        }
        self.record(format!("{OP} {cluster_id} {target_instance}"));
        t.set_status(cluster_id, "failing-over");
        let target = target_instance.to_owned();
        let id = cluster_id.to_owned();
        let steps = self
            .hold(id.clone())
            .map(|id| -> crate::fakes::Step {
                Box::new(move |t: &FakeTopology| t.set_status(&id, "failing-over"))
            })
            .chain(std::iter::once::<crate::fakes::Step>(Box::new(
                move |t: &FakeTopology| {
                    t.update_cluster(&id, |c| {
                        for ClusterMember {
                            instance_id,
                            is_writer,
                        } in &mut c.members
                        {
                            *is_writer = *instance_id == target;
                        }
                        c.status = "available".into();
                    });
                },
            )));
        t.schedule(cluster_id, steps);
        Ok(ack(Some("failing-over")))
    }

    async fn switchover_global_cluster(
        &self,
        global_cluster_id: &str,
        _region: &str,
        target_cluster_arn: &str,
    ) -> Result<MutationAck, PortError> {
        const OP: &str = "SwitchoverGlobalCluster";
        self.faults.check(OP)?;
        let r = self.start_global(OP, global_cluster_id, target_cluster_arn, "switching-over");
        if r.is_ok() {
            self.record(format!("{OP} {global_cluster_id} {target_cluster_arn}"));
        }
        r
    }

    async fn failover_global_cluster(
        &self,
        global_cluster_id: &str,
        _region: &str,
        target_cluster_arn: &str,
        allow_data_loss: bool,
    ) -> Result<MutationAck, PortError> {
        const OP: &str = "FailoverGlobalCluster";
        self.faults.check(OP)?;
        let status = if allow_data_loss {
            "failing-over"
        } else {
            "switching-over"
        };
        let r = self.start_global(OP, global_cluster_id, target_cluster_arn, status);
        if r.is_ok() {
            self.record(format!(
                "{OP} {global_cluster_id} {target_cluster_arn} AllowDataLoss={allow_data_loss}"
            ));
        }
        r
    }

    async fn reboot_with_failover(&self, instance: &DbRef) -> Result<MutationAck, PortError> {
        const OP: &str = "RebootDBInstance";
        self.faults.check(OP)?;
        let t = &self.topology;
        let i = t
            .instance_now(&instance.id)
            .ok_or_else(|| not_found(OP, "DBInstanceNotFound", &instance.id))?;
        if i.status != "available" {
            return Err(invalid(
                OP,
                "InvalidDBInstanceState",
                format!(
                    "DB Instance {} is not in available state (status {}).",
                    i.id, i.status
                ),
            ));
        }
        if !i.multi_az {
            return Err(invalid(
                OP,
                "InvalidDBInstanceState",
                format!(
                    "Cannot reboot DB Instance {} with force failover: the instance is not configured for Multi-AZ.",
                    i.id
                ),
            ));
        }
        self.record(format!("{OP} {} ForceFailover=true", instance.id));
        let id = instance.id.clone();
        t.set_status(&id, "rebooting");
        let steps: Vec<crate::fakes::Step> = self
            .hold(id.clone())
            .map(|id| -> crate::fakes::Step {
                Box::new(move |t: &FakeTopology| t.set_status(&id, "rebooting"))
            })
            .chain(std::iter::once::<crate::fakes::Step>(Box::new(
                move |t: &FakeTopology| t.set_status(&id, "available"),
            )))
            .collect();
        t.schedule(&instance.id, steps);
        Ok(ack(Some("rebooting")))
    }
}

#[cfg(any(test, feature = "test-util"))]
/// [`WritabilityCheck`] answering like MySQL on the fake topology: the instance whose endpoint is
/// asked is read-only while it replicates (RDS replicas run with `read_only=1`) and, in an Aurora
/// cluster, unless it is the writer (`innodb_read_only=1` on readers). An unknown endpoint refuses
/// the connection. `answers` overrides by endpoint.
pub struct FakeWritability {
    topology: Arc<FakeTopology>,
    pub answers: Mutex<HashMap<String, Result<Writability, PortError>>>,
    /// Endpoints asked, in order.
    pub checks: Mutex<Vec<String>>,
    /// Endpoint → the position it reports.
    pub positions: Mutex<HashMap<String, failover_policy::gtid::Position>>,
    /// Endpoint → the source coordinates it executed (GTIDs off): reported, like
    /// `SHOW SLAVE STATUS`, only while the instance still replicates — promotion resets them.
    pub source_coordinates: Mutex<HashMap<String, failover_policy::gtid::BinlogPos>>,
}

#[cfg(any(test, feature = "test-util"))]
impl FakeWritability {
    pub fn new(topology: Arc<FakeTopology>) -> Self {
        Self {
            topology,
            answers: Mutex::default(),
            checks: Mutex::default(),
            positions: Mutex::default(),
            source_coordinates: Mutex::default(),
        }
    }

    pub fn answer(&self, endpoint: &str, r: Result<Writability, PortError>) {
        self.answers.lock().unwrap().insert(endpoint.into(), r);
    }
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl WritabilityCheck for FakeWritability {
    async fn check(&self, site: &SiteConfig, endpoint: &str) -> Result<Writability, PortError> {
        const OP: &str = "CheckWritable";
        self.checks.lock().unwrap().push(endpoint.into());
        if site.canary.is_none() {
            return Err(PortError::new(
                ErrorKind::NotFound,
                OP,
                format!("site {} has no canary user configured", site.id),
            ));
        }
        if let Some(r) = self.answers.lock().unwrap().get(endpoint) {
            return r.clone();
        }
        let Some(i) = self.topology.reached_by(endpoint) else {
            return Err(PortError::new(
                ErrorKind::Unavailable,
                OP,
                format!("{endpoint}: Connection refused"),
            ));
        };
        let reader_of_cluster = i
            .cluster_id
            .as_deref()
            .and_then(|c| self.topology.cluster_now(c))
            .is_some_and(|c| {
                c.members
                    .iter()
                    .any(|m| m.instance_id == i.id && !m.is_writer)
            });
        Ok(Writability {
            read_only: i.replication_source.is_some(),
            innodb_read_only: reader_of_cluster,
        })
    }

    async fn position(
        &self,
        _site: &SiteConfig,
        endpoint: &str,
    ) -> Result<Option<failover_policy::gtid::Position>, PortError> {
        if let Some(p) = self.positions.lock().unwrap().get(endpoint) {
            return Ok(Some(p.clone()));
        }
        let replicating = self
            .topology
            .reached_by(endpoint)
            .is_some_and(|i| i.replication_source.is_some());
        Ok(replicating
            .then(|| {
                self.source_coordinates
                    .lock()
                    .unwrap()
                    .get(endpoint)
                    .cloned()
            })
            .flatten()
            .map(failover_policy::gtid::Position::Binlog))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{
        ClusterInfo, DatabaseTopology, GlobalClusterInfo, GlobalMember, InstanceInfo,
    };

    fn db(id: &str) -> DbRef {
        DbRef {
            id: id.into(),
            region: "us-west-2".into(),
        }
    }

    fn replica_world() -> (Arc<FakeTopology>, FakeControl) {
        let t = Arc::new(FakeTopology::default());
        t.set_instance(InstanceInfo {
            id: "orders-primary".into(),
            status: "available".into(),
            replicas: vec!["orders-replica-1".into()],
            ..Default::default()
        });
        t.set_instance(InstanceInfo {
            id: "orders-replica-1".into(),
            status: "available".into(),
            endpoint: Some(("orders-replica-1.x".into(), 3306)),
            replication_source: Some("orders-primary".into()),
            ..Default::default()
        });
        let c = FakeControl::new(t.clone());
        (t, c)
    }

    async fn statuses(t: &FakeTopology, id: &str, n: usize) -> Vec<(String, bool)> {
        let mut out = vec![];
        for _ in 0..n {
            let i = t.instance(&db(id)).await.unwrap().unwrap();
            out.push((i.status, i.replication_source.is_some()));
        }
        out
    }

    #[tokio::test]
    async fn promotion_passes_through_modifying_and_rebooting_then_detaches() {
        // GIVEN a replica of orders-primary
        let (t, c) = replica_world();
        // WHEN it is promoted
        let ack = c
            .promote_read_replica(&db("orders-replica-1"))
            .await
            .unwrap();
        // THEN RDS answers modifying, and describes walk the statuses before it is standalone
        assert_eq!(ack.status.as_deref(), Some("modifying"));
        let s = |x: &str, r: bool| (x.to_string(), r);
        assert_eq!(
            statuses(&t, "orders-replica-1", 6).await,
            [
                s("modifying", true),
                s("modifying", true),
                s("rebooting", true),
                s("rebooting", true),
                s("available", false),
                s("available", false),
            ]
        );
        let primary = t.instance(&db("orders-primary")).await.unwrap().unwrap();
        assert!(primary.replicas.is_empty(), "the source no longer lists it");
        assert_eq!(c.count("PromoteReadReplica"), 1);
    }

    #[tokio::test]
    async fn promotion_is_rejected_like_rds_rejects_it() {
        let (t, c) = replica_world();
        // A non-replica.
        let e = c
            .promote_read_replica(&db("orders-primary"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidState);
        assert!(e.message.contains("not a read replica"), "{e}");
        // A missing instance.
        let e = c.promote_read_replica(&db("ghost")).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        // A replica being backed up.
        t.set_status("orders-replica-1", "backing-up");
        let e = c
            .promote_read_replica(&db("orders-replica-1"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidState);
        // A second promotion while the first is under way.
        t.set_status("orders-replica-1", "available");
        c.promote_read_replica(&db("orders-replica-1"))
            .await
            .unwrap();
        let e = c
            .promote_read_replica(&db("orders-replica-1"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidState);
        // Throttled calls never reach RDS.
        c.faults
            .inject("PromoteReadReplica", ErrorKind::Throttled, 1);
        let e = c
            .promote_read_replica(&db("orders-replica-1"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert_eq!(
            c.count("PromoteReadReplica"),
            1,
            "only the accepted call counts"
        );
    }

    #[tokio::test]
    async fn cluster_failover_moves_the_writer_flag_only_when_done() {
        let t = Arc::new(FakeTopology::default());
        t.clusters.lock().unwrap().insert(
            "billing-cluster".into(),
            ClusterInfo {
                id: "billing-cluster".into(),
                endpoint: None,
                arn: None,
                status: "available".into(),
                members: vec![
                    ClusterMember {
                        instance_id: "billing-1".into(),
                        is_writer: true,
                    },
                    ClusterMember {
                        instance_id: "billing-2".into(),
                        is_writer: false,
                    },
                ],
            },
        );
        let c = FakeControl::new(t.clone());
        assert_eq!(
            c.failover_db_cluster("billing-cluster", "us-west-2", "nope")
                .await
                .unwrap_err()
                .kind,
            ErrorKind::InvalidState
        );
        c.failover_db_cluster("billing-cluster", "us-west-2", "billing-2")
            .await
            .unwrap();
        let writer = |c: &ClusterInfo| {
            c.members
                .iter()
                .find(|m| m.is_writer)
                .map(|m| m.instance_id.clone())
        };
        let mut seen = vec![];
        for _ in 0..4 {
            let cl = t
                .cluster("billing-cluster", "us-west-2")
                .await
                .unwrap()
                .unwrap();
            seen.push((cl.status.clone(), writer(&cl).unwrap()));
        }
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            seen,
            [
                s("failing-over", "billing-1"),
                s("failing-over", "billing-1"),
                s("available", "billing-2"),
                s("available", "billing-2")
            ]
        );
    }

    #[tokio::test]
    async fn global_failover_moves_is_writer_and_rejects_the_writer_as_target() {
        let t = Arc::new(FakeTopology::default());
        let east = "arn:aws:rds:us-east-1:1:cluster:payments-east";
        let west = "arn:aws:rds:us-west-2:1:cluster:payments-west";
        t.globals.lock().unwrap().insert(
            "payments-global".into(),
            GlobalClusterInfo {
                id: "payments-global".into(),
                status: "available".into(),
                members: vec![
                    GlobalMember {
                        cluster_arn: east.into(),
                        is_writer: true,
                    },
                    GlobalMember {
                        cluster_arn: west.into(),
                        is_writer: false,
                    },
                ],
            },
        );
        let c = FakeControl::new(t.clone());
        let e = c
            .failover_global_cluster("payments-global", "us-west-2", east, true)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidState);
        let ack = c
            .failover_global_cluster("payments-global", "us-west-2", west, true)
            .await
            .unwrap();
        assert_eq!(ack.status.as_deref(), Some("failing-over"));
        let e = c
            .switchover_global_cluster("payments-global", "us-west-2", west)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidState, "one operation at a time");
        let mut writers = vec![];
        for _ in 0..3 {
            let g = t
                .global_cluster("payments-global", "us-west-2")
                .await
                .unwrap()
                .unwrap();
            let w = g
                .members
                .iter()
                .find(|m| m.is_writer)
                .unwrap()
                .cluster_arn
                .clone();
            writers.push((g.status, w));
        }
        assert_eq!(writers[0], ("failing-over".to_string(), east.to_string()));
        assert_eq!(writers[2], ("available".to_string(), west.to_string()));
    }

    #[tokio::test]
    async fn reboot_with_failover_needs_multi_az_and_shows_rebooting() {
        let t = Arc::new(FakeTopology::default());
        t.set_instance(InstanceInfo {
            id: "single".into(),
            status: "available".into(),
            ..Default::default()
        });
        t.set_instance(InstanceInfo {
            id: "inventory-db".into(),
            status: "available".into(),
            multi_az: true,
            ..Default::default()
        });
        let c = FakeControl::new(t.clone());
        assert_eq!(
            c.reboot_with_failover(&db("single"))
                .await
                .unwrap_err()
                .kind,
            ErrorKind::InvalidState
        );
        let ack = c.reboot_with_failover(&db("inventory-db")).await.unwrap();
        assert_eq!(ack.status.as_deref(), Some("rebooting"));
        let got: Vec<String> = statuses(&t, "inventory-db", 3)
            .await
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(got, ["rebooting", "rebooting", "available"]);
    }

    #[tokio::test]
    async fn fake_writability_follows_the_topology() {
        let (t, c) = replica_world();
        let site = failover_policy::Config::from_document(include_str!(
            "../../../infra/sites.example.json"
        ))
        .unwrap()
        .site("orders")
        .unwrap()
        .clone();
        let w = FakeWritability::new(t.clone());
        let before = w.check(&site, "orders-replica-1.x:3306").await.unwrap();
        assert!(!before.is_writable(), "a replica runs read_only");
        c.promote_read_replica(&db("orders-replica-1"))
            .await
            .unwrap();
        let _ = statuses(&t, "orders-replica-1", 5).await;
        assert!(w
            .check(&site, "orders-replica-1.x:3306")
            .await
            .unwrap()
            .is_writable());
        assert_eq!(
            w.check(&site, "elsewhere:3306").await.unwrap_err().kind,
            ErrorKind::Unavailable
        );
    }
}
