//! Ports and adapters for fencing the old primary ([`failover_policy::fence`]).
//!
//! [`FenceControl`] is the RDS API side: the parameter group, the snapshot, the stop. Every call
//! is idempotent on its own (setting `read_only=1` twice, a snapshot with a per-epoch identifier
//! that a retry finds, stopping a stopped instance), and none of them is taken as proof: the
//! reconciler always reads the postcondition back. [`OldPrimarySql`] is the SQL side: the server's
//! own `@@global.read_only`, its sessions, its replication position.
//!
//! AWS behaviour relied on:
//! - `ModifyDBParameterGroup` with `ApplyMethod=immediate` applies a dynamic parameter without a
//!   reboot, and the instance's `DBParameterGroups[].ParameterApplyStatus` reads `applying` and
//!   then `in-sync` (RDS User Guide, "Modifying parameters in a DB parameter group"; `read_only`
//!   is dynamic for RDS for MySQL). Default groups cannot be modified ("You can't modify the
//!   parameter settings of a default parameter group").
//! - `CreateDBSnapshot` answers `DBSnapshotAlreadyExists` for an identifier in use; the snapshot
//!   is usable when `DescribeDBSnapshots` reports `available`.
//! - `StopDBInstance` is refused for an instance with read replicas, and a stopped instance is
//!   started again automatically after seven days (RDS User Guide, "Stopping an Amazon RDS DB
//!   instance temporarily").
//! - On RDS the master user has no `SUPER`/`CONNECTION_ADMIN` over other users' sessions; it ends
//!   them with `CALL mysql.rds_kill(id)` (RDS User Guide, "Ending a session or query"). Where
//!   that procedure does not exist (MariaDB or MySQL outside RDS, in tests), `KILL id`.
// Imports and helpers that only the fakes below use are unused when they are compiled out.
#![cfg_attr(
    not(any(test, feature = "test-util")),
    allow(unused_imports, dead_code)
)]

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use failover_policy::config::{CredentialsSource, DbRef, SiteConfig};
use failover_policy::fence::AttachedGroup;
use failover_policy::gtid::Position;

use crate::aws::{port_error, AwsClients};
use crate::ports::{ErrorKind, PortError};

/// The RDS API side of the fence.
#[async_trait]
pub trait FenceControl: Send + Sync {
    /// The parameter groups attached to `db` (`Ok(None)`: the instance does not exist).
    async fn parameter_groups(&self, db: &DbRef) -> Result<Option<Vec<AttachedGroup>>, PortError>;
    /// `ModifyDBParameterGroup read_only=1 ApplyMethod=immediate` on `group`.
    async fn set_read_only(&self, region: &str, group: &str) -> Result<(), PortError>;
    /// `ModifyDBParameterGroup read_only=0 ApplyMethod=immediate` on `group`: a switchover's
    /// rollback, before any promotion was asked, gives the old primary its writes back.
    async fn set_writable(&self, region: &str, group: &str) -> Result<(), PortError>;
    /// A switchover's rollback gives back `read_only` exactly as the group held it before the
    /// fence: `Some(v)`: `ModifyDBParameterGroup read_only=v ApplyMethod=immediate`; `None` (it
    /// was not set in the group): `ResetDBParameterGroup` of `read_only` alone, back to the
    /// engine default (`{TrueIfReplica}` on RDS for MySQL/MariaDB: 0 on a primary).
    async fn restore_read_only(
        &self,
        region: &str,
        group: &str,
        value: Option<&str>,
    ) -> Result<(), PortError>;
    /// `read_only` as the group holds it (`None`: the engine default, not set in the group).
    async fn read_only_in_group(
        &self,
        region: &str,
        group: &str,
    ) -> Result<Option<String>, PortError>;
    /// `CreateDBSnapshot`; an identifier already in use is success (a retry).
    async fn create_snapshot(&self, db: &DbRef, snapshot_id: &str) -> Result<(), PortError>;
    /// The snapshot's `Status` (`None`: no such snapshot).
    async fn snapshot_status(
        &self,
        region: &str,
        snapshot_id: &str,
    ) -> Result<Option<String>, PortError>;
    /// `StopDBInstance`.
    async fn stop(&self, db: &DbRef) -> Result<(), PortError>;
    /// `VpcSecurityGroups` of `db` as (id, status) (`Ok(None)`: the instance does not exist).
    async fn security_groups(&self, db: &DbRef)
        -> Result<Option<Vec<(String, String)>>, PortError>;
    /// `ModifyDBInstance VpcSecurityGroupIds=[sg] ApplyImmediately=true`: `sg` replaces every
    /// group of `db`.
    async fn quarantine(&self, db: &DbRef, sg: &str) -> Result<(), PortError>;
    /// `reprotect`: the would-be replication source's ARN and `BackupRetentionPeriod`
    /// (`Ok(None)`: no such instance).
    async fn replication_source(&self, db: &DbRef) -> Result<Option<SourceInfo>, PortError>;
    /// `ModifyDBInstance BackupRetentionPeriod=days ApplyImmediately=true`: "the source DB
    /// instance must have automated backups enabled" before it can have a read replica (RDS User
    /// Guide, "Working with DB instance read replicas"; `BackupRetentionPeriod` 0 turns them off).
    async fn enable_backups(&self, db: &DbRef, days: u32) -> Result<(), PortError>;
    /// `CreateDBInstanceReadReplica`, called in the replica's region; an identifier already in
    /// use is success (a resumed step: the tick then reads what it is a replica of).
    async fn create_read_replica(&self, r: &ReplicaRequest) -> Result<(), PortError>;
}

/// What `reprotect` reads of the source before creating its replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    pub arn: String,
    pub backup_retention_days: u32,
}

/// One `CreateDBInstanceReadReplica`, as the site's `reprotect` section configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRequest {
    /// The source's ARN: a cross-region source is named by ARN (RDS API reference,
    /// CreateDBInstanceReadReplica, `SourceDBInstanceIdentifier`).
    pub source_arn: String,
    pub replica: DbRef,
    pub instance_class: Option<String>,
    pub parameter_group: String,
    pub security_groups: Vec<String>,
    pub subnet_group: Option<String>,
    pub kms_key_id: Option<String>,
}

/// Sessions on the old primary after asking to end them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sessions {
    pub ended: Vec<u64>,
    /// Application sessions still there afterwards (system threads and our own excluded).
    pub left: Vec<u64>,
}

/// The SQL side of the fence, against the old primary's endpoint.
#[async_trait]
pub trait OldPrimarySql: Send + Sync {
    /// `SELECT @@global.read_only`; an error when the server does not answer.
    async fn read_only(&self, site: &SiteConfig, endpoint: &str) -> Result<bool, PortError>;
    /// Ends every application session (not system threads, not our own) and lists what is left.
    async fn end_sessions(&self, site: &SiteConfig, endpoint: &str) -> Result<Sessions, PortError>;
    /// The server's replication position (`@@gtid_executed` on MySQL with GTIDs,
    /// `@@gtid_binlog_state` on MariaDB, else `SHOW MASTER STATUS`); `Ok(None)` when binary
    /// logging is off.
    async fn position(
        &self,
        site: &SiteConfig,
        endpoint: &str,
    ) -> Result<Option<Position>, PortError>;
    /// The transactions in the server's binlog range `from .. to` (GTIDs off). Not every
    /// implementation can count: the default says so with `ErrorKind::NotFound`.
    async fn binlog_transactions(
        &self,
        _site: &SiteConfig,
        _endpoint: &str,
        _from: &failover_policy::gtid::BinlogPos,
        _to: &failover_policy::gtid::BinlogPos,
    ) -> Result<u64, PortError> {
        Err(PortError::new(
            ErrorKind::NotFound,
            "CountBinlogTransactions",
            "this SQL port cannot count binlog transactions",
        ))
    }
    /// A switchover's capture of the fenced primary's executed position
    /// ([`crate::catchup::capture`]).
    async fn capture(&self, site: &SiteConfig, endpoint: &str) -> Result<Position, PortError>;
    /// Waits at most `secs` on the switchover's target at `endpoint` until it applied
    /// `position`, then returns what it reports applied ([`crate::catchup::wait_applied`]).
    async fn wait_applied(
        &self,
        site: &SiteConfig,
        endpoint: &str,
        position: &Position,
        secs: u64,
    ) -> Result<Position, PortError>;
}

/// The login the fence's SQL uses: the fence's own administrative user, else the canary's.
pub fn sql_login(site: &SiteConfig) -> Option<(String, CredentialsSource)> {
    let f = site.fence.as_ref();
    match (
        f.and_then(|f| f.sql_user.clone()),
        f.and_then(|f| f.sql_credentials.clone()),
    ) {
        (Some(u), Some(c)) => Some((u, c)),
        _ => site
            .canary
            .as_ref()
            .map(|c| (c.user.clone(), c.credentials.clone())),
    }
}

// ---------------------------------------------------------------- RDS adapter

/// [`FenceControl`] over the RDS API of each resource's region.
pub struct RdsFence {
    rds: Box<dyn Fn(&str) -> aws_sdk_rds::Client + Send + Sync>,
}

impl RdsFence {
    pub fn new(clients: &AwsClients) -> Self {
        let clients = clients.clone();
        Self {
            rds: Box::new(move |region| clients.rds(region)),
        }
    }

    /// The instance as DescribeDBInstances gives it; `None` when RDS does not know it.
    async fn instance(
        &self,
        db: &DbRef,
    ) -> Result<Option<aws_sdk_rds::types::DbInstance>, PortError> {
        match (self.rds)(&db.region)
            .describe_db_instances()
            .db_instance_identifier(&db.id)
            .send()
            .await
        {
            Ok(o) => Ok(o.db_instances().first().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_instance_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(port_error("DescribeDBInstances", &e)),
        }
    }

    /// `read_only` is dynamic: `immediate` applies it to the running server (RDS User Guide,
    /// "Modifying parameters in a DB parameter group").
    async fn modify_read_only(
        &self,
        region: &str,
        group: &str,
        value: &str,
    ) -> Result<(), PortError> {
        use aws_sdk_rds::types::{ApplyMethod, Parameter};
        let p = Parameter::builder()
            .parameter_name("read_only")
            .parameter_value(value)
            .apply_method(ApplyMethod::Immediate)
            .build();
        (self.rds)(region)
            .modify_db_parameter_group()
            .db_parameter_group_name(group)
            .parameters(p)
            .send()
            .await
            .map_err(|e| port_error("ModifyDBParameterGroup", &e))?;
        Ok(())
    }
}

#[async_trait]
impl FenceControl for RdsFence {
    async fn parameter_groups(&self, db: &DbRef) -> Result<Option<Vec<AttachedGroup>>, PortError> {
        let Some(i) = self.instance(db).await? else {
            return Ok(None);
        };
        Ok(Some(
            i.db_parameter_groups()
                .iter()
                .map(|g| AttachedGroup {
                    name: g.db_parameter_group_name().unwrap_or_default().to_owned(),
                    apply_status: g.parameter_apply_status().unwrap_or_default().to_owned(),
                })
                .collect(),
        ))
    }

    async fn set_read_only(&self, region: &str, group: &str) -> Result<(), PortError> {
        self.modify_read_only(region, group, "1").await
    }

    async fn set_writable(&self, region: &str, group: &str) -> Result<(), PortError> {
        self.modify_read_only(region, group, "0").await
    }

    async fn restore_read_only(
        &self,
        region: &str,
        group: &str,
        value: Option<&str>,
    ) -> Result<(), PortError> {
        use aws_sdk_rds::types::{ApplyMethod, Parameter};
        if let Some(v) = value {
            return self.modify_read_only(region, group, v).await;
        }
        // ResetDBParameterGroup: "To reset specific parameters, provide a list of ...
        // ParameterName and ApplyMethod" (RDS API Reference); `read_only` is dynamic.
        let p = Parameter::builder()
            .parameter_name("read_only")
            .apply_method(ApplyMethod::Immediate)
            .build();
        (self.rds)(region)
            .reset_db_parameter_group()
            .db_parameter_group_name(group)
            .reset_all_parameters(false)
            .parameters(p)
            .send()
            .await
            .map_err(|e| port_error("ResetDBParameterGroup", &e))?;
        Ok(())
    }

    async fn read_only_in_group(
        &self,
        region: &str,
        group: &str,
    ) -> Result<Option<String>, PortError> {
        let out = (self.rds)(region)
            .describe_db_parameters()
            .db_parameter_group_name(group)
            .source("user")
            .send()
            .await
            .map_err(|e| port_error("DescribeDBParameters", &e))?;
        Ok(out
            .parameters()
            .iter()
            .find(|p| p.parameter_name() == Some("read_only"))
            .and_then(|p| p.parameter_value().map(str::to_owned)))
    }

    async fn create_snapshot(&self, db: &DbRef, snapshot_id: &str) -> Result<(), PortError> {
        match (self.rds)(&db.region)
            .create_db_snapshot()
            .db_instance_identifier(&db.id)
            .db_snapshot_identifier(snapshot_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_snapshot_already_exists_fault()) =>
            {
                Ok(())
            }
            Err(e) => Err(port_error("CreateDBSnapshot", &e)),
        }
    }

    async fn snapshot_status(
        &self,
        region: &str,
        snapshot_id: &str,
    ) -> Result<Option<String>, PortError> {
        match (self.rds)(region)
            .describe_db_snapshots()
            .db_snapshot_identifier(snapshot_id)
            .send()
            .await
        {
            Ok(o) => Ok(o
                .db_snapshots()
                .first()
                .and_then(|s| s.status().map(str::to_owned))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_snapshot_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(port_error("DescribeDBSnapshots", &e)),
        }
    }

    async fn stop(&self, db: &DbRef) -> Result<(), PortError> {
        (self.rds)(&db.region)
            .stop_db_instance()
            .db_instance_identifier(&db.id)
            .send()
            .await
            .map_err(|e| port_error("StopDBInstance", &e))?;
        Ok(())
    }

    async fn security_groups(
        &self,
        db: &DbRef,
    ) -> Result<Option<Vec<(String, String)>>, PortError> {
        let out = self.instance(db).await?;
        Ok(out.map(|i| {
            i.vpc_security_groups()
                .iter()
                .map(|g| {
                    (
                        g.vpc_security_group_id().unwrap_or_default().to_owned(),
                        g.status().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        }))
    }

    async fn quarantine(&self, db: &DbRef, sg: &str) -> Result<(), PortError> {
        (self.rds)(&db.region)
            .modify_db_instance()
            .db_instance_identifier(&db.id)
            .vpc_security_group_ids(sg)
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| port_error("ModifyDBInstance", &e))?;
        Ok(())
    }

    async fn replication_source(&self, db: &DbRef) -> Result<Option<SourceInfo>, PortError> {
        let out = self.instance(db).await?;
        Ok(out.map(|i| SourceInfo {
            arn: i.db_instance_arn().unwrap_or_default().to_owned(),
            backup_retention_days: i.backup_retention_period().unwrap_or(0).max(0) as u32,
        }))
    }

    async fn enable_backups(&self, db: &DbRef, days: u32) -> Result<(), PortError> {
        (self.rds)(&db.region)
            .modify_db_instance()
            .db_instance_identifier(&db.id)
            .backup_retention_period(days as i32)
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| port_error("ModifyDBInstance", &e))?;
        Ok(())
    }

    /// Called in the replica's region with the source named by its ARN ("if the source DB
    /// instance is in a different AWS Region from the read replica, specify a valid DB instance
    /// ARN", RDS API reference, CreateDBInstanceReadReplica). The Rust SDK has no `SourceRegion`
    /// member (boto3 and the CLI add it to presign), and no `PreSignedUrl` is sent: it "applies
    /// only to AWS GovCloud (US) Regions and China AWS Regions. It's ignored in other AWS
    /// Regions" (same page) — so this does not support those partitions.
    async fn create_read_replica(&self, r: &ReplicaRequest) -> Result<(), PortError> {
        let req = (self.rds)(&r.replica.region)
            .create_db_instance_read_replica()
            .db_instance_identifier(&r.replica.id)
            .source_db_instance_identifier(&r.source_arn)
            .db_parameter_group_name(&r.parameter_group)
            .set_vpc_security_group_ids(
                (!r.security_groups.is_empty()).then(|| r.security_groups.clone()),
            )
            .set_db_subnet_group_name(r.subnet_group.clone())
            .set_kms_key_id(r.kms_key_id.clone())
            .set_db_instance_class(r.instance_class.clone());
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_instance_already_exists_fault()) =>
            {
                Ok(())
            }
            Err(e) => Err(port_error("CreateDBInstanceReadReplica", &e)),
        }
    }
}

// ---------------------------------------------------------------- fakes

#[cfg(any(test, feature = "test-util"))]
/// An in-memory [`FenceControl`] with RDS's semantics: a dark region answers `Unavailable` to
/// everything; `read_only=1` reads `applying` for `applying_polls` looks and then `in-sync`; a
/// default group refuses modification; a snapshot is `creating` once, then `available`.
#[derive(Default)]
pub struct FakeFence {
    pub state: Mutex<FakeFenceState>,
}

#[cfg(any(test, feature = "test-util"))]
#[derive(Default)]
pub struct FakeFenceState {
    pub dark_regions: Vec<String>,
    /// Instance id → attached groups.
    pub groups: HashMap<String, Vec<AttachedGroup>>,
    /// Group → read_only value set in it.
    pub values: HashMap<String, String>,
    pub applying_polls: u32,
    /// Snapshot id → looks until available.
    pub snapshots: HashMap<String, u32>,
    pub stopped: Vec<String>,
    /// Instance id → its VPC security groups (id, status); `ModifyDBInstance` replaces them with
    /// the new list, `adding` for one look, then `active`.
    pub security_groups: HashMap<String, Vec<(String, String)>>,
    /// Every mutation, in order (`ModifyDBParameterGroup <group>`, ...).
    pub calls: Vec<String>,
    /// Groups whose `read_only` was reset to the engine default (0 on a primary).
    pub reset: Vec<String>,
    /// Instance id → (ARN, `BackupRetentionPeriod`) of a would-be replication source.
    pub sources: HashMap<String, (String, u32)>,
    /// Every `CreateDBInstanceReadReplica` RDS accepted (a repeated identifier is not one).
    pub replicas_created: Vec<ReplicaRequest>,
}

#[cfg(any(test, feature = "test-util"))]
impl FakeFence {
    fn dark(&self, region: &str, op: &'static str) -> Result<(), PortError> {
        if self
            .state
            .lock()
            .unwrap()
            .dark_regions
            .iter()
            .any(|r| r == region)
        {
            return Err(PortError::new(
                ErrorKind::Unavailable,
                op,
                format!("rds.{region}.amazonaws.com: connection timed out"),
            ));
        }
        Ok(())
    }
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl FenceControl for FakeFence {
    async fn replication_source(&self, db: &DbRef) -> Result<Option<SourceInfo>, PortError> {
        self.dark(&db.region, "DescribeDBInstances")?;
        let s = self.state.lock().unwrap();
        Ok(s.sources.get(&db.id).map(|(arn, days)| SourceInfo {
            arn: arn.clone(),
            backup_retention_days: *days,
        }))
    }

    async fn enable_backups(&self, db: &DbRef, days: u32) -> Result<(), PortError> {
        self.dark(&db.region, "ModifyDBInstance")?;
        let mut s = self.state.lock().unwrap();
        s.calls.push(format!(
            "ModifyDBInstance {} BackupRetentionPeriod={days}",
            db.id
        ));
        match s.sources.get_mut(&db.id) {
            Some(src) => src.1 = days,
            None => {
                return Err(PortError::new(
                    ErrorKind::NotFound,
                    "ModifyDBInstance",
                    format!("DBInstanceNotFound: {}", db.id),
                ))
            }
        }
        Ok(())
    }

    /// RDS refuses a source without automated backups (InvalidDBInstanceState) and answers
    /// DBInstanceAlreadyExists for an identifier in use (success here: a resumed step).
    async fn create_read_replica(&self, r: &ReplicaRequest) -> Result<(), PortError> {
        self.dark(&r.replica.region, "CreateDBInstanceReadReplica")?;
        let mut s = self.state.lock().unwrap();
        let backups = s
            .sources
            .values()
            .find(|(arn, _)| *arn == r.source_arn)
            .map(|(_, d)| *d);
        match backups {
            None => {
                return Err(PortError::new(
                    ErrorKind::NotFound,
                    "CreateDBInstanceReadReplica",
                    format!("DBInstanceNotFound: {}", r.source_arn),
                ))
            }
            Some(0) => {
                return Err(PortError::new(
                    ErrorKind::Other,
                    "CreateDBInstanceReadReplica",
                    "InvalidDBInstanceState: automated backups are not enabled on the source",
                ))
            }
            Some(_) => {}
        }
        if s.replicas_created.iter().any(|c| c.replica == r.replica) {
            return Ok(());
        }
        s.calls
            .push(format!("CreateDBInstanceReadReplica {}", r.replica.id));
        // `DBParameterGroupName` is the new instance's group (CreateDBInstanceReadReplica).
        s.groups.insert(
            r.replica.id.clone(),
            vec![AttachedGroup {
                name: r.parameter_group.clone(),
                apply_status: "in-sync".into(),
            }],
        );
        s.replicas_created.push(r.clone());
        Ok(())
    }

    async fn parameter_groups(&self, db: &DbRef) -> Result<Option<Vec<AttachedGroup>>, PortError> {
        self.dark(&db.region, "DescribeDBInstances")?;
        let mut s = self.state.lock().unwrap();
        let settle = s.applying_polls == 0;
        if !settle {
            s.applying_polls -= 1;
        }
        let values = s.values.clone();
        Ok(s.groups.get_mut(&db.id).map(|gs| {
            for g in gs.iter_mut() {
                if values.contains_key(&g.name) {
                    g.apply_status = if settle { "in-sync" } else { "applying" }.into();
                }
            }
            gs.clone()
        }))
    }

    async fn set_read_only(&self, region: &str, group: &str) -> Result<(), PortError> {
        self.dark(region, "ModifyDBParameterGroup")?;
        if group.starts_with("default.") {
            return Err(PortError::new(
                ErrorKind::Other,
                "ModifyDBParameterGroup",
                "InvalidParameterValue: cannot modify a default parameter group",
            ));
        }
        let mut s = self.state.lock().unwrap();
        s.calls.push(format!("ModifyDBParameterGroup {group}"));
        s.values.insert(group.into(), "1".into());
        Ok(())
    }

    async fn set_writable(&self, region: &str, group: &str) -> Result<(), PortError> {
        self.dark(region, "ModifyDBParameterGroup")?;
        let mut s = self.state.lock().unwrap();
        s.calls
            .push(format!("ModifyDBParameterGroup {group} read_only=0"));
        s.values.insert(group.into(), "0".into());
        Ok(())
    }

    async fn restore_read_only(
        &self,
        region: &str,
        group: &str,
        value: Option<&str>,
    ) -> Result<(), PortError> {
        self.dark(region, "ModifyDBParameterGroup")?;
        let mut s = self.state.lock().unwrap();
        match value {
            Some(v) => {
                s.calls
                    .push(format!("ModifyDBParameterGroup {group} read_only={v}"));
                s.values.insert(group.into(), v.into());
            }
            None => {
                s.calls
                    .push(format!("ResetDBParameterGroup {group} read_only"));
                s.values.remove(group);
                s.reset.push(group.into());
            }
        }
        Ok(())
    }

    async fn read_only_in_group(
        &self,
        region: &str,
        group: &str,
    ) -> Result<Option<String>, PortError> {
        self.dark(region, "DescribeDBParameters")?;
        Ok(self.state.lock().unwrap().values.get(group).cloned())
    }

    async fn create_snapshot(&self, db: &DbRef, snapshot_id: &str) -> Result<(), PortError> {
        self.dark(&db.region, "CreateDBSnapshot")?;
        let mut s = self.state.lock().unwrap();
        s.calls.push(format!("CreateDBSnapshot {snapshot_id}"));
        s.snapshots.entry(snapshot_id.into()).or_insert(1);
        Ok(())
    }

    async fn snapshot_status(
        &self,
        region: &str,
        snapshot_id: &str,
    ) -> Result<Option<String>, PortError> {
        self.dark(region, "DescribeDBSnapshots")?;
        let mut s = self.state.lock().unwrap();
        Ok(s.snapshots.get_mut(snapshot_id).map(|n| {
            if *n == 0 {
                "available".into()
            } else {
                *n -= 1;
                "creating".into()
            }
        }))
    }

    async fn stop(&self, db: &DbRef) -> Result<(), PortError> {
        self.dark(&db.region, "StopDBInstance")?;
        let mut s = self.state.lock().unwrap();
        s.calls.push(format!("StopDBInstance {}", db.id));
        s.stopped.push(db.id.clone());
        Ok(())
    }

    async fn security_groups(
        &self,
        db: &DbRef,
    ) -> Result<Option<Vec<(String, String)>>, PortError> {
        self.dark(&db.region, "DescribeDBInstances")?;
        let mut s = self.state.lock().unwrap();
        let Some(groups) = s.security_groups.get_mut(&db.id) else {
            return Ok(None);
        };
        let seen = groups.clone();
        for g in groups.iter_mut() {
            g.1 = "active".into();
        }
        Ok(Some(seen))
    }

    async fn quarantine(&self, db: &DbRef, sg: &str) -> Result<(), PortError> {
        self.dark(&db.region, "ModifyDBInstance")?;
        let mut s = self.state.lock().unwrap();
        s.calls.push(format!(
            "ModifyDBInstance {} VpcSecurityGroupIds={sg}",
            db.id
        ));
        s.security_groups
            .insert(db.id.clone(), vec![(sg.to_owned(), "adding".into())]);
        Ok(())
    }
}

#[cfg(any(test, feature = "test-util"))]
/// An in-memory old primary's SQL side: unreachable, or answering with its `read_only`, sessions
/// that end when asked (unless `sticky`), and a position.
#[derive(Default)]
pub struct FakeOldPrimarySql {
    pub state: Mutex<FakeSqlState>,
}

#[cfg(any(test, feature = "test-util"))]
#[derive(Default)]
pub struct FakeSqlState {
    pub reachable: bool,
    pub read_only: bool,
    /// Looks at `read_only` that still read 0 after it was set (a long transaction holds it).
    pub read_only_delay: u32,
    pub sessions: Vec<u64>,
    /// Sessions that connect again as soon as theirs is ended (pooled clients that DNS still
    /// sends to the old primary): listed as left after each kill pass.
    pub reconnecting: Vec<u64>,
    pub position: Option<Position>,
    /// With GTIDs off: binlog range (`from .. to`, as `file:pos`) → the transactions its
    /// `SHOW BINLOG EVENTS` holds; a range not listed cannot be read (purged).
    pub binlog: HashMap<String, u64>,
    /// Ranges counted, in order.
    pub binlog_reads: Vec<String>,
    /// What a switchover's target reports applied (its wait returns at once).
    pub target_applied: Option<Position>,
    /// The parameter group whose `read_only` the server applies (as RDS applies a dynamic
    /// parameter to the running server), in that fake RDS.
    pub follows: Option<(std::sync::Arc<FakeFence>, String)>,
}

#[cfg(any(test, feature = "test-util"))]
impl FakeOldPrimarySql {
    fn up(&self, op: &'static str, endpoint: &str) -> Result<(), PortError> {
        if self.state.lock().unwrap().reachable {
            Ok(())
        } else {
            Err(PortError::new(
                ErrorKind::Unavailable,
                op,
                format!("{endpoint}: Connection refused"),
            ))
        }
    }
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl OldPrimarySql for FakeOldPrimarySql {
    async fn read_only(&self, _site: &SiteConfig, endpoint: &str) -> Result<bool, PortError> {
        self.up("SelectReadOnly", endpoint)?;
        let mut s = self.state.lock().unwrap();
        let held = s.follows.as_ref().map(|(rds, group)| {
            let r = rds.state.lock().unwrap();
            (r.values.get(group).cloned(), r.reset.contains(group))
        });
        // The server holds what its group says once the group says anything; a reset gives the
        // engine default, `{TrueIfReplica}`: writable on a primary.
        match held {
            Some((Some(v), _)) if v == "1" => s.read_only = true,
            Some((Some(v), _)) if v == "0" => s.read_only = false,
            Some((None, true)) => s.read_only = false,
            _ => {}
        }
        if s.read_only && s.read_only_delay > 0 {
            s.read_only_delay -= 1;
            return Ok(false);
        }
        Ok(s.read_only)
    }

    async fn end_sessions(
        &self,
        _site: &SiteConfig,
        endpoint: &str,
    ) -> Result<Sessions, PortError> {
        self.up("EndSessions", endpoint)?;
        let mut s = self.state.lock().unwrap();
        let ended = std::mem::take(&mut s.sessions);
        s.sessions = s.reconnecting.clone();
        Ok(Sessions {
            ended,
            left: s.reconnecting.clone(),
        })
    }

    async fn position(
        &self,
        _site: &SiteConfig,
        endpoint: &str,
    ) -> Result<Option<Position>, PortError> {
        self.up("ReadPosition", endpoint)?;
        Ok(self.state.lock().unwrap().position.clone())
    }

    async fn binlog_transactions(
        &self,
        _site: &SiteConfig,
        endpoint: &str,
        from: &failover_policy::gtid::BinlogPos,
        to: &failover_policy::gtid::BinlogPos,
    ) -> Result<u64, PortError> {
        const OP: &str = "CountBinlogTransactions";
        self.up(OP, endpoint)?;
        let range = format!("{from} .. {to}");
        let mut s = self.state.lock().unwrap();
        s.binlog_reads.push(range.clone());
        s.binlog.get(&range).copied().ok_or_else(|| {
            PortError::new(
                ErrorKind::NotFound,
                OP,
                format!("{endpoint}: could not find a binlog file of {range} (purged)"),
            )
        })
    }

    async fn capture(&self, _site: &SiteConfig, endpoint: &str) -> Result<Position, PortError> {
        self.up("CapturePosition", endpoint)?;
        self.state
            .lock()
            .unwrap()
            .position
            .clone()
            .ok_or_else(|| PortError::new(ErrorKind::Other, "CapturePosition", "no GTID position"))
    }

    async fn wait_applied(
        &self,
        _site: &SiteConfig,
        endpoint: &str,
        _position: &Position,
        _secs: u64,
    ) -> Result<Position, PortError> {
        self.state
            .lock()
            .unwrap()
            .target_applied
            .clone()
            .ok_or_else(|| {
                PortError::new(
                    ErrorKind::Unavailable,
                    "WaitForPosition",
                    format!("{endpoint}: Connection refused"),
                )
            })
    }
}
