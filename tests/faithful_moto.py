"""moto's server with the behaviours the failover functions depend on made faithful to AWS.

Usage:
    python tests/faithful_moto.py -H 127.0.0.1 -p PORT [--promotion-secs 3] [--dns-insync-secs 2]
        [--alarm-period-scale 1]

moto 5.2 is imported in-process and some of its backend model methods are replaced before its
server starts (see /work/shared/AWS-EMULATION.md for what plain moto gets wrong). Every
correction cites the AWS documentation it follows. Time-based transitions are lazy: an operation
records when it started, and its observable state is computed from the clock whenever the
emulated account is read or changed (no background threads). `POST /moto-api/reset` keeps
working: pending operations are stored on moto's own model objects, which a reset discards.

Corrections:
  1. PromoteReadReplica      modifying -> rebooting -> available over --promotion-secs; rejects
                             non-replicas and replicas already being promoted; detaches the
                             replica from its source (same- or cross-region) when it completes;
                             the server stays read_only when its group holds read_only=1.
  2. RebootDBInstance        ForceFailover only for Multi-AZ; `rebooting` for --promotion-secs;
                             the primary and secondary Availability Zones swap.
  3. FailoverDBCluster       target must be a member; cluster `failing-over` for
                             --promotion-secs before the writer flag moves.
  4. Switchover/FailoverGlobalCluster   implemented (moto answers 500): FailoverState while in
                             progress, writer moves to the target after --promotion-secs.
  5. Route 53 ChangeResourceRecordSets  atomic batches, exact-match DELETE, a new change id per
                             call, GetChange PENDING until --dns-insync-secs have passed.
  6. DynamoDB                serializable: a TransactWriteItems is isolated from every other
                             read and write (moto checks and applies its items one by one and,
                             on a failed condition, restores a copy of the whole table taken
                             before it started, erasing writes that landed meanwhile).
  7. ModifyDBParameterGroup  default groups refused; a dynamic `read_only` with
                             ApplyMethod=immediate reaches the real server behind every
                             instance using the group (`SET GLOBAL`, in the background: it waits
                             behind running writes) and, through an option file the server reads
                             at start, survives its restart; instances read ParameterApplyStatus
                             `applying` then `in-sync`. A cross-region read replica gets its
                             region's default group, not its source's.
  8. CreateDBSnapshot        `creating` for --promotion-secs, then `available`.
  9. StopDBInstance          refused (InvalidDBInstanceState) while the instance has read replicas
                             or is one; `stopping`, then `stopped`.
 10. A region dark, then back: the CBOR shim's `/emulator/region-outage` control (cbor_shim.py),
                             every request signed for the region answers 503.
 11. Route 53 health checks  CreateHealthCheck keeps AlarmIdentifier and
                             InsufficientDataHealthStatus (moto drops them), for the DNS server.
 13. PutMetricData → alarms  moto stores datapoints but never evaluates an alarm; here each
                             datapoint of a metric re-evaluates the alarms on exactly that metric
                             (namespace, name, dimensions) as CloudWatch does, "M out of N": the
                             datapoints are grouped into the alarm's Periods, each period's
                             Statistic compared with the threshold; ALARM when DatapointsToAlarm
                             (M) of the last EvaluationPeriods (N) periods breach, OK when too few
                             can, missing periods keep the state (the tool's switch alarm uses
                             TreatMissingData `ignore`). Emulator knob --alarm-period-scale: a
                             Period of P seconds lasts P × scale real seconds (default 1: real
                             minutes; the tests use 1/60, a 60 s period lasting 1 s).
 14. CreateDBInstanceReadReplica of a source backed by a real server (issue 13, re-protect):
                             refused when the source's BackupRetentionPeriod is 0
                             (InvalidDBInstanceState) or the named parameter group does not
                             exist in the replica's region (DBParameterGroupNotFound); the new
                             instance keeps the requested DBParameterGroupName,
                             VpcSecurityGroupIds, DBSubnetGroupName and KmsKeyId, never the
                             source's emulator tags; a REAL MariaDB server is started for it,
                             loaded from a consistent dump of the source's server and set up as
                             its GTID replica; the instance is `creating` until that replication
                             runs, then `available`, and its `ReplicaLag` metric is the real
                             replica's Seconds_Behind_Master (-1 while replication is not
                             running), published every second.
 12. DNS (--dns-port)        an authoritative DNS server on 127.0.0.1 answering from the emulated
                             zones with Route 53's failover semantics (tests/emulated_dns.py).
                             Emulator-only deviation: every zone's delegation set lists it as
                             `127.0.0.1:PORT` (Route 53 lists four ns-*.awsdns-* names, port 53),
                             so a pinner asking GetHostedZone for its name servers finds it.

Emulator-only controls (tags no real account has): `emulator:endpoint` = host:port makes
DescribeDBInstances report that endpoint; `emulator:mysql-socket` = a local MariaDB's admin
socket makes a completed promotion (or cluster failover to that instance) promote that server;
`emulator:status` = a status makes DescribeDBInstances report it (a primary whose host is lost).
"""

from __future__ import annotations

import argparse
import copy
import functools
import inspect
import os
import sys
import threading
import time
import uuid
from typing import Any

# Timing knobs (seconds). Set from the command line in main(); importable for in-process use.
SETTINGS = {"promotion_secs": 3.0, "dns_insync_secs": 2.0, "alarm_period_scale": 1.0}

# moto's server is threaded; every patched read or write of the emulated topology holds this.
_LOCK = threading.RLock()


def _now() -> float:
    return time.monotonic()


# =============================================================================================
# RDS
# =============================================================================================

def _patch_rds() -> None:
    from moto.rds import models as m
    from moto.rds import responses as r
    from moto.core.responses import ActionResult
    from moto.rds.exceptions import (
        DBClusterNotFoundError,
        DBInstanceNotFoundError,
        InvalidParameterCombination,
        RDSClientError,
    )

    rds_backends = m.rds_backends

    def invalid_instance_state(msg: str) -> RDSClientError:
        # Wire code of InvalidDBInstanceStateFault is "InvalidDBInstanceState" (HTTP 400).
        return RDSClientError("InvalidDBInstanceState", msg)

    def invalid_cluster_state(msg: str) -> RDSClientError:
        return RDSClientError("InvalidDBClusterStateFault", msg)

    def invalid_global_state(msg: str) -> RDSClientError:
        return RDSClientError("InvalidGlobalClusterStateFault", msg)

    def all_backends():
        for account in list(rds_backends.values()):
            for backend in list(account.values()):
                yield backend

    def lookup_instance(ref: str, default_backend) -> Any:
        """An instance by identifier (in default_backend's region) or by ARN (any region)."""
        if ref.startswith("arn:"):
            parts = ref.split(":")
            region, account, ident = parts[3], parts[4], parts[-1]
            if account in rds_backends and region in rds_backends[account].keys():
                return rds_backends[account][region].databases.get(ident)
            return None
        return default_backend.databases.get(ref)

    # ------------------------------------------------------------------ lazy transitions
    def settle() -> None:
        """Advances every operation in progress to where the clock says it is."""
        now = _now()
        for backend in all_backends():
            for db in list(backend.databases.values()):
                op = db.__dict__.get("_fm_op")
                if op:
                    _advance_instance(db, op, now)
            for cluster in list(backend.clusters.values()):
                op = cluster.__dict__.get("_fm_op")
                if op:
                    _advance_cluster(cluster, op, now)
            for gc in list(backend.global_clusters.values()):
                op = gc.__dict__.get("_fm_op")
                if op:
                    _advance_global(gc, op, now)

    def _advance_instance(db, op, now) -> None:
        elapsed = now - op["start"]
        if op["kind"] == "promote":
            # RDS User Guide, "Promoting a read replica to be a standalone DB instance"
            # (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReadRepl.Promote.html):
            # the replica is modified, then rebooted, and only then is it a standalone instance;
            # until the reboot it keeps replicating from its source.
            if elapsed < op["secs"] / 2:
                db.status = "modifying"
            elif elapsed < op["secs"]:
                db.status = "rebooting"
            else:
                _finish_promotion(db)
                db.status = "available"
                db.__dict__.pop("_fm_op", None)
        elif op["kind"] == "reboot":
            # https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_RebootInstance.html:
            # "the DB instance status is set to rebooting"; with ForceFailover the standby in the
            # other Availability Zone becomes the primary.
            if elapsed < op["secs"]:
                db.status = "rebooting"
            else:
                if op.get("failover"):
                    primary, secondary = db.availability_zone, _secondary_az(db)
                    db.availability_zone = secondary
                    db.__dict__["_fm_secondary_az"] = primary
                    db.__dict__["_fm_failovers"] = db.__dict__.get("_fm_failovers", 0) + 1
                db.status = "available"
                db.__dict__.pop("_fm_op", None)

    def _finish_promotion(db) -> None:
        source_ref = db.source_db_instance_identifier
        if source_ref:
            source = lookup_instance(source_ref, db.backend)
            if source is not None:
                for ref in (db.db_instance_identifier, db.db_instance_arn):
                    while ref in source.replicas:
                        source.replicas.remove(ref)
        db.is_replica = False
        db.source_db_instance_identifier = None
        _promote_database(db)

    def _advance_cluster(cluster, op, now) -> None:
        if now - op["start"] < op["secs"]:
            cluster.status = "failing-over"
            return
        target = op["target"]
        if target.db_instance_identifier in cluster.backend.databases:
            cluster.failover(target)
            _promote_database(target)
        cluster.status = "available"
        cluster.__dict__.pop("_fm_op", None)

    def _advance_global(gc, op, now) -> None:
        if now - op["start"] < op["secs"]:
            gc.status = op["status"]
            return
        # API_FailoverState.html: the state object is empty once the operation has finished;
        # the target is then the primary (IsWriter) cluster of the global database.
        op["from"].is_writer = False
        op["to"].is_writer = True
        gc.failover_state = None
        gc.status = "available"
        gc.__dict__.pop("_fm_op", None)

    # ------------------------------------------------------------------ settle around every call
    def locked(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _LOCK:
                settle()
                return fn(*args, **kwargs)
        return wrapper

    # ------------------------------------------------------------------ 1. PromoteReadReplica
    def promote_read_replica(self, db_kwargs: dict[str, Any]):
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_PromoteReadReplica.html
        # DBInstanceIdentifier "Must match the identifier of an existing read replica DB
        # instance"; errors DBInstanceNotFound (404), InvalidDBInstanceState (400).
        database_id = db_kwargs["db_instance_identifier"]
        database = self.databases.get(database_id)
        if database is None:
            raise DBInstanceNotFoundError(database_id)
        op = database.__dict__.get("_fm_op")
        if op and op["kind"] == "promote":
            raise invalid_instance_state(
                f"DB Instance {database.db_instance_identifier} is already being promoted "
                f"(status {database.status})."
            )
        if not database.is_replica:
            raise invalid_instance_state("DB Instance is not a read replica.")
        if database.status != "available":
            raise invalid_instance_state(
                f"DB Instance {database.db_instance_identifier} is not in available state "
                f"(status {database.status})."
            )
        kwargs = {k: v for k, v in dict(db_kwargs).items() if k != "db_instance_identifier"}
        database.update(**kwargs)
        # User Guide (USER_ReadRepl.Promote.html): the replica reboots before it becomes
        # available as a standalone instance; until then it still reports its source.
        database.__dict__["_fm_op"] = {"kind": "promote", "start": _now(), "secs": SETTINGS["promotion_secs"]}
        database.status = "modifying"
        return database

    # ------------------------------------------------------------------ 2. RebootDBInstance
    def reboot_db_instance(self, db_instance_identifier: str, force_failover: bool | None = None):
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RebootDBInstance.html
        # ForceFailover: "You can't enable force failover if the instance isn't configured for
        # Multi-AZ." InvalidDBInstanceState: "The DB instance isn't in a valid state."
        database = self.describe_db_instances(db_instance_identifier)[0]
        if database.status != "available":
            raise invalid_instance_state(
                f"DB Instance {database.db_instance_identifier} is not in available state "
                f"(status {database.status})."
            )
        if force_failover and not database.multi_az:
            raise invalid_instance_state(
                f"Cannot reboot DB Instance {database.db_instance_identifier} with force failover: "
                "the instance is not configured for Multi-AZ."
            )
        database.__dict__["_fm_op"] = {
            "kind": "reboot", "start": _now(), "secs": SETTINGS["promotion_secs"],
            "failover": bool(force_failover),
        }
        database.status = "rebooting"
        return database

    def _secondary_az(db) -> str:
        az = db.__dict__.get("_fm_secondary_az")
        if az:
            return az
        region = db.region
        primary = db.availability_zone or f"{region}a"
        return f"{region}b" if primary != f"{region}b" else f"{region}a"

    def secondary_availability_zone(self):
        # DBInstance.SecondaryAvailabilityZone: "If present, specifies the name of the secondary
        # Availability Zone for a DB instance with multi-AZ support." (API_DBInstance.html)
        return _secondary_az(self) if self.multi_az else None

    m.DBInstance.secondary_availability_zone = property(secondary_availability_zone)

    def reboot_db_instance_response(self):
        db_instance_identifier = self.params.get("DBInstanceIdentifier")
        force_failover = self.params.get("ForceFailover")
        database = self.backend.reboot_db_instance(db_instance_identifier, force_failover=force_failover)
        return ActionResult({"DBInstance": database})

    r.RDSResponse.reboot_db_instance = reboot_db_instance_response

    # ------------------------------------------------------------------ 3. FailoverDBCluster
    original_failover_db_cluster = m.RDSBackend.failover_db_cluster

    def failover_db_cluster(self, db_cluster_identifier: str, target_db_instance_identifier: str | None = None):
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_FailoverDBCluster.html
        # TargetDBInstanceIdentifier: "the DB instance identifier for an Aurora Replica ... in
        # the DB cluster". DB cluster status `failing-over`: "A failover from the primary
        # instance to an Aurora Replica is being performed" (Aurora User Guide, "Viewing DB
        # cluster status", https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/accessing-monitoring.html);
        # the writer changes when the failover completes.
        if db_cluster_identifier not in self.clusters:
            raise DBClusterNotFoundError(
                db_cluster_identifier,
                f"The source cluster could not be found or cannot be accessed: {db_cluster_identifier}",
            )
        cluster = self.clusters[db_cluster_identifier]
        if cluster.__dict__.get("_fm_op"):
            raise invalid_cluster_state(
                f"DB cluster {cluster.db_cluster_identifier} is already failing over."
            )
        if cluster.status != "available":
            raise invalid_cluster_state(
                f"DB cluster {cluster.db_cluster_identifier} is not in available state (status {cluster.status})."
            )
        if target_db_instance_identifier is not None:
            target = self.databases.get(target_db_instance_identifier)
            if target is None:
                raise DBInstanceNotFoundError(target_db_instance_identifier)
            if getattr(target, "db_cluster_identifier", None) != cluster.db_cluster_identifier:
                raise invalid_instance_state(
                    f"DB instance {target_db_instance_identifier} is not a member of DB cluster "
                    f"{cluster.db_cluster_identifier}."
                )
        # moto's own checks (at least two members, target available, pick a reader when no target
        # is given) run against a scratch copy of the writer flags, which are then put back: the
        # move becomes visible only when the failover completes.
        flags = {i.db_instance_identifier: i.is_cluster_writer for i in cluster.members}
        original_failover_db_cluster(self, db_cluster_identifier, target_db_instance_identifier)
        target = cluster.writer
        for inst in cluster._members:
            inst.is_cluster_writer = flags.get(inst.db_instance_identifier, False)
        cluster.__dict__["_fm_op"] = {"start": _now(), "secs": SETTINGS["promotion_secs"], "target": target}
        cluster.status = "failing-over"
        return cluster

    # ------------------------------------------------------------------ 4. global clusters
    def resolve_global(global_cluster_identifier: str):
        # Global clusters are not regional; moto keeps them in the us-east-1 backend.
        ident = global_cluster_identifier
        if ident.startswith("arn:"):
            ident = ident.split(":")[-1]
        for backend in all_backends():
            gc = backend.global_clusters.get(ident)
            if gc is not None:
                return gc
        raise RDSClientError("GlobalClusterNotFoundFault", f"Global cluster {global_cluster_identifier} not found.")

    def resolve_cluster(ref: str, request_backend):
        # "Use the Amazon Resource Name (ARN) for the identifier so that Aurora can locate the
        # cluster in its Amazon Web Services Region" — a bare identifier is looked up in the
        # Region the request was sent to.
        if ref.startswith("arn:"):
            parts = ref.split(":")
            region, account, ident = parts[3], parts[4], parts[-1]
            backend = rds_backends[account][region] if account in rds_backends and region in rds_backends[account].keys() else None
            cluster = backend.clusters.get(ident) if backend is not None else None
        else:
            cluster = request_backend.clusters.get(ref)
        if cluster is None:
            raise DBClusterNotFoundError(ref, f"DBCluster {ref} not found.")
        return cluster

    def start_global_operation(gc, target, allow_data_loss: bool):
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_FailoverGlobalCluster.html
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_SwitchoverGlobalCluster.html
        # TargetDbClusterIdentifier: "The identifier of the secondary Aurora DB cluster" to
        # promote. Errors: InvalidGlobalClusterStateFault, InvalidDBClusterStateFault (400),
        # GlobalClusterNotFoundFault, DBClusterNotFoundFault (404).
        if gc.__dict__.get("_fm_op") or gc.status != "available":
            raise invalid_global_state(
                f"Global cluster {gc.global_cluster_identifier} is in state {gc.status}; "
                "a switchover or failover is already in progress."
            )
        if target not in gc.members:
            raise invalid_global_state(
                f"DB cluster {target.db_cluster_arn} is not a member of global cluster "
                f"{gc.global_cluster_identifier}."
            )
        writer = next((c for c in gc.members if c.is_writer), None)
        if target is writer:
            raise invalid_cluster_state(
                f"DB cluster {target.db_cluster_arn} is already the primary cluster of global cluster "
                f"{gc.global_cluster_identifier}; the target must be a secondary cluster."
            )
        if writer is None:
            raise invalid_global_state(f"Global cluster {gc.global_cluster_identifier} has no primary cluster.")
        status = "failing-over" if allow_data_loss else "switching-over"
        # API_FailoverState.html: Status, FromDbClusterArn (being demoted), ToDbClusterArn (being
        # promoted), IsDataLossAllowed (true: failover, false: switchover).
        gc.failover_state = {
            "Status": status,
            "FromDbClusterArn": writer.db_cluster_arn,
            "ToDbClusterArn": target.db_cluster_arn,
            "IsDataLossAllowed": bool(allow_data_loss),
        }
        gc.status = status
        gc.__dict__["_fm_op"] = {
            "start": _now(), "secs": SETTINGS["promotion_secs"], "status": status,
            "from": writer, "to": target,
        }
        return gc

    def failover_global_cluster(self, global_cluster_identifier, target_db_cluster_identifier,
                                allow_data_loss=None, switchover=None, request_backend=None):
        # API_FailoverGlobalCluster.html: "Failing over - Specify the AllowDataLoss parameter and
        # don't specify the Switchover parameter. Switching over - Specify the Switchover
        # parameter or omit it, but don't specify the AllowDataLoss parameter." Each "Can't be
        # specified together with" the other.
        if allow_data_loss is not None and switchover is not None:
            raise InvalidParameterCombination(
                "AllowDataLoss and Switchover can't be specified together."
            )
        gc = resolve_global(global_cluster_identifier)
        target = resolve_cluster(target_db_cluster_identifier, request_backend or self)
        return start_global_operation(gc, target, allow_data_loss=bool(allow_data_loss))

    def switchover_global_cluster(self, global_cluster_identifier, target_db_cluster_identifier,
                                  request_backend=None):
        gc = resolve_global(global_cluster_identifier)
        target = resolve_cluster(target_db_cluster_identifier, request_backend or self)
        return start_global_operation(gc, target, allow_data_loss=False)

    m.GlobalCluster.failover_state = None  # class default; set per instance while in progress

    def failover_global_cluster_response(self):
        gc = self.global_backend.failover_global_cluster(
            self.params.get("GlobalClusterIdentifier"),
            self.params.get("TargetDbClusterIdentifier"),
            allow_data_loss=self.params.get("AllowDataLoss"),
            switchover=self.params.get("Switchover"),
            request_backend=self.backend,
        )
        return ActionResult({"GlobalCluster": gc})

    def switchover_global_cluster_response(self):
        gc = self.global_backend.switchover_global_cluster(
            self.params.get("GlobalClusterIdentifier"),
            self.params.get("TargetDbClusterIdentifier"),
            request_backend=self.backend,
        )
        return ActionResult({"GlobalCluster": gc})

    r.RDSResponse.failover_global_cluster = failover_global_cluster_response
    r.RDSResponse.switchover_global_cluster = switchover_global_cluster_response

    # A replica is a copy.copy of its source in moto: never inherit the source's operation.
    original_create_replica = m.RDSBackend.create_db_instance_read_replica

    def create_db_instance_read_replica(self, db_kwargs):
        replica = original_create_replica(self, db_kwargs)
        for k in ("_fm_op", "_fm_secondary_az", "_fm_failovers"):
            replica.__dict__.pop(k, None)
        replica.status = "available"
        return replica

    m.RDSBackend.promote_read_replica = promote_read_replica
    m.RDSBackend.reboot_db_instance = reboot_db_instance
    m.RDSBackend.failover_db_cluster = failover_db_cluster
    m.RDSBackend.failover_global_cluster = failover_global_cluster
    m.RDSBackend.switchover_global_cluster = switchover_global_cluster
    m.RDSBackend.create_db_instance_read_replica = create_db_instance_read_replica

    # Every public backend method first settles the clock-driven transitions, under one lock.
    for name, fn in list(vars(m.RDSBackend).items()):
        if inspect.isfunction(fn) and not name.startswith("_"):
            setattr(m.RDSBackend, name, locked(fn))


# =============================================================================================
# DynamoDB
# =============================================================================================

_DDB_LOCK = threading.RLock()


def _patch_dynamodb() -> None:
    """6. Transactions isolated from every other operation.

    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html
    ("Isolation levels for DynamoDB transactions"): TransactWriteItems is *serializable* with
    respect to PutItem, UpdateItem, DeleteItem, GetItem and other transactions, and "the actions
    are completed atomically so that either all of them succeed or none of them succeeds".
    moto's server is threaded and its transact_write_items checks and applies item by item, then
    on a failed condition restores a deep copy of each table taken before it began: under
    concurrent writers a transaction can see another's half-applied write (a cancellation with
    reasons [None, ConditionalCheckFailed] that AWS never returns for a version-guarded pair), and
    its rollback can erase a write that committed in between. One lock around every public
    backend operation makes each call, transactions included, one serial step.
    """
    from moto.dynamodb import models as m

    def serial(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _DDB_LOCK:
                return fn(*args, **kwargs)
        return wrapper

    for name, fn in list(vars(m.DynamoDBBackend).items()):
        if inspect.isfunction(fn) and not name.startswith("_"):
            setattr(m.DynamoDBBackend, name, serial(fn))


# =============================================================================================
# Route 53
# =============================================================================================

def _patch_route53() -> None:
    from moto.core.responses import ActionResult
    from moto.route53 import models as m
    from moto.route53 import responses as r
    from moto.route53.exceptions import DnsNameInvalidForZone, InvalidActionValue, Route53ClientError
    from moto.route53.utils import validate_domain_name

    class InvalidChangeBatchError(Route53ClientError):
        def __init__(self, messages: list[str]):
            # Route 53 reports every invalid change of the batch in one InvalidChangeBatch error.
            super().__init__("InvalidChangeBatch", messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]")

    def norm_name(name: str) -> str:
        name = name if name.endswith(".") else name + "."
        return name.lower()

    def key_of(rrset: dict[str, Any] | Any) -> tuple:
        if isinstance(rrset, dict):
            return (norm_name(rrset["Name"]), rrset.get("Type"), rrset.get("SetIdentifier"))
        return (norm_name(rrset.name), rrset.type, rrset.set_identifier)

    def describe(rrset: dict[str, Any]) -> str:
        s = f"[name='{norm_name(rrset['Name'])}', type='{rrset.get('Type')}'"
        if rrset.get("SetIdentifier") is not None:
            s += f", set-identifier='{rrset['SetIdentifier']}'"
        return s + "]"

    def _s(v):
        return None if v is None else str(v).lower()

    def comparable_request(rr: dict[str, Any]) -> dict[str, Any]:
        alias = rr.get("AliasTarget")
        return {
            "ttl": None if rr.get("TTL") is None else int(rr["TTL"]),
            "values": sorted(x["Value"] if isinstance(x, dict) else x for x in (rr.get("ResourceRecords") or [])),
            "alias": None if not alias else (alias.get("HostedZoneId"), norm_name(alias.get("DNSName", "")), _s(alias.get("EvaluateTargetHealth"))),
            "weight": None if rr.get("Weight") is None else int(rr["Weight"]),
            "region": rr.get("Region"),
            "failover": rr.get("Failover"),
            "health_check_id": rr.get("HealthCheckId"),
            "geo": rr.get("GeoLocation") or None,
            "multi_value": _s(rr.get("MultiValueAnswer")),
        }

    def comparable_stored(rs) -> dict[str, Any]:
        alias = rs.alias_target
        return {
            "ttl": None if rs.ttl in (None, 0, "") and not rs.records else (None if rs.ttl is None else int(rs.ttl)),
            "values": sorted(rs.records or []),
            "alias": None if not alias else (alias.get("HostedZoneId"), norm_name(alias.get("DNSName", "")), _s(alias.get("EvaluateTargetHealth"))),
            "weight": None if rs.weight is None else int(rs.weight),
            "region": rs.region,
            "failover": rs.failover,
            "health_check_id": rs.health_check_id,
            "geo": rs.geo_location or None,
            "multi_value": _s(rs.multi_value_answer),
        }

    def change_resource_record_sets(self, zoneid: str, change_list: list[dict[str, Any]], comment: str | None = None):
        # https://docs.aws.amazon.com/Route53/latest/APIReference/API_ChangeResourceRecordSets.html
        # "Change batches are considered transactional changes. Route 53 validates the changes
        # in the request and then either makes all or none of the changes in the change batch
        # request." CREATE: "fails if a resource record set already exists"; DELETE: "you must
        # specify all the same values that are in the current resource record set".
        # Errors are InvalidChangeBatch (400) and nothing is applied.
        with _LOCK:
            zone = self.get_hosted_zone(zoneid)
            working = list(zone.rrsets)  # changes apply, in order, to a working copy
            errors: list[str] = []
            for change in change_list:
                action = change.get("Action")
                if action not in ("CREATE", "UPSERT", "DELETE"):
                    raise InvalidActionValue(action)
                rr = copy.deepcopy(change["ResourceRecordSet"])
                validate_domain_name(rr["Name"], code="InvalidChangeBatch")
                if not norm_name(rr["Name"]).rstrip(".").endswith(zone.name.lower().rstrip(".")):
                    raise DnsNameInvalidForZone(name=rr["Name"], zone_name=zone.name)
                if not rr["Name"].endswith("."):
                    rr["Name"] += "."
                key = key_of(rr)
                idx = next((i for i, cur in enumerate(working) if key_of(cur) == key), None)
                if action == "CREATE":
                    if idx is not None:
                        errors.append(f"Tried to create resource record set {describe(rr)} but it already exists")
                        continue
                elif action == "DELETE":
                    if idx is None:
                        errors.append(f"Tried to delete resource record set {describe(rr)} but it was not found")
                        continue
                    if comparable_request(rr) != comparable_stored(working[idx]):
                        errors.append(
                            f"Tried to delete resource record set {describe(rr)} but the values provided "
                            "do not match the current values"
                        )
                        continue
                    del working[idx]
                    continue
                # CREATE or UPSERT: the record set as given (failover/weighted/latency routing
                # fields, SetIdentifier and HealthCheckId included) becomes the current one.
                if "ResourceRecords" in rr:
                    rr["ResourceRecords"] = [x["Value"] for x in rr["ResourceRecords"]]
                new = m.RecordSet(rr)
                if idx is None:
                    working.append(new)
                else:
                    working[idx] = new
            if errors:
                raise InvalidChangeBatchError(errors)
            zone.rrsets = working
            for change in change_list:
                zone.rr_changes.append(copy.deepcopy(change))
            # API_GetChange.html: each change has its own Id and is PENDING until it has
            # propagated to all Route 53 DNS servers, then INSYNC.
            change_id = "C" + uuid.uuid4().hex[:20].upper()
            info = {"Id": change_id, "SubmittedAt": time.time(), "Mono": _now(), "Comment": comment}
            changes = self.__dict__.setdefault("_fm_changes", {})
            changes[change_id] = info
            return info

    def change_info(info: dict[str, Any]) -> dict[str, Any]:
        import datetime as dt

        insync = _now() - info["Mono"] >= SETTINGS["dns_insync_secs"]
        out = {
            "Id": f"/change/{info['Id']}",
            "Status": "INSYNC" if insync else "PENDING",
            "SubmittedAt": dt.datetime.fromtimestamp(info["SubmittedAt"], dt.timezone.utc),
        }
        if info.get("Comment"):
            out["Comment"] = info["Comment"]
        return out

    def get_change(self, change_id: str) -> dict[str, Any]:
        # https://docs.aws.amazon.com/Route53/latest/APIReference/API_GetChange.html
        # Status PENDING: "not yet propagated to all Amazon Route 53 DNS servers"; INSYNC: "all
        # Amazon Route 53 DNS servers". Unknown id: NoSuchChange (404).
        from urllib.parse import unquote

        ident = unquote(change_id or "").split("/")[-1]  # "C123" or "/change/C123"
        info = self.__dict__.get("_fm_changes", {}).get(ident)
        if info is None:
            raise Route53ClientError("NoSuchChange", f"A change with the specified change ID does not exist: {change_id}")
        return change_info(info)

    from moto.route53.exceptions import InvalidChangeBatch as QuotaExceeded

    def change_resource_record_sets_response(self):
        zoneid = self._get_param("HostedZoneId")
        change_list = self._get_param("ChangeBatch.Changes")
        comment = self._get_param("ChangeBatch.Comment")
        # moto's quota check, kept: "A request cannot contain more than 1,000 ResourceRecord
        # elements. When the value of the Action element is UPSERT, each ResourceRecord element
        # is counted twice." (Route 53 Developer Guide, DNSLimitations.html)
        count = 0
        for value in change_list:
            records = value["ResourceRecordSet"].get("ResourceRecords") or []
            count += len(records) * (2 if value["Action"] == "UPSERT" else 1)
        if count > 1000:
            raise QuotaExceeded
        info = self.backend.change_resource_record_sets(zoneid, change_list, comment=comment)
        return ActionResult({"ChangeInfo": change_info(info)})

    def get_change_response(self):
        return ActionResult({"ChangeInfo": self.backend.get_change(self._get_param("Id"))})

    m.Route53Backend.change_resource_record_sets = change_resource_record_sets
    m.Route53Backend.get_change = get_change
    r.Route53.change_resource_record_sets = change_resource_record_sets_response
    r.Route53.get_change = get_change_response


ENDPOINT_TAG = "emulator:endpoint"
STATUS_TAG = "emulator:status"


DATABASE_TAG = "emulator:mysql-socket"


def _explicit_read_only(db) -> str | None:
    """`read_only` as the instance's own DB parameter group holds it (`None`: not set there — the
    engine default `{TrueIfReplica}` applies)."""
    name = getattr(db, "db_parameter_group_name", None) or ""
    groups = getattr(getattr(db, "backend", None), "db_parameter_groups", None) or {}
    group = groups.get(name.lower()) or groups.get(name)
    param = (getattr(group, "parameters", None) or {}).get("read_only") if group is not None else None
    value = param.get("ParameterValue") if param else None
    return None if value is None else str(value)


def _promote_database(db) -> None:
    """Emulator-only control, not an AWS behaviour: when an instance tagged `emulator:mysql-socket`
    = the admin socket of a real local MariaDB becomes a primary (its promotion completes, or a
    cluster failover makes it the writer), that server is promoted too, as RDS does to the
    database it runs: replication stopped and forgotten, `read_only` off — unless the instance's
    own parameter group holds an explicit `read_only=1`. On RDS for MySQL/MariaDB the default of
    `read_only` is the formula `{TrueIfReplica}` (RDS User Guide, "Working with MySQL read
    replicas": read replicas are read-only through that default), and only that formula follows the
    instance's role; a value set in the instance's custom DB parameter group applies to the
    instance whatever its role (RDS User Guide, "Working with parameter groups": the parameter
    values of the group attached to an instance are the instance's configuration). So a replica
    promoted with a group holding `read_only=1` stays read-only, and the promoter's writability
    check sees it. A failure is logged and leaves the server as it was, so the promoter's
    writability check sees the truth."""
    import shutil
    import subprocess

    sock = next((t["Value"] for t in getattr(db, "tags", None) or [] if t.get("Key") == DATABASE_TAG), None)
    if not sock:
        return
    client = next((c for c in (shutil.which("mariadb"), "/usr/bin/mariadb") if c and os.access(c, os.X_OK)), None)
    try:
        subprocess.run(
            [client or "mariadb", "--no-defaults", "-uroot", f"--socket={sock}", "-e",
             "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = "
             + ("ON;" if _explicit_read_only(db) in ("1", "ON", "on", "true", "TRUE") else "OFF;")],
            check=True, capture_output=True, text=True, timeout=20,
        )
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", "") or e
        print(f"faithful_moto: promoting the database behind {db.db_instance_identifier} failed: {detail}", file=sys.stderr)


def _patch_endpoints() -> None:
    """Emulator-only control, not an AWS behaviour: an instance tagged `emulator:endpoint` =
    `host:port` reports that endpoint in DescribeDBInstances, so a function that connects to the
    endpoint RDS reports (the promoter's writability check) reaches a real local MySQL server.
    Untagged instances keep moto's made-up `<id>.aaaaaaaaaa.<region>.rds.amazonaws.com`."""
    from moto.rds import models as m

    original = m.DBInstance.endpoint

    def endpoint(self):
        for t in getattr(self, "tags", None) or []:
            if t.get("Key") == ENDPOINT_TAG:
                host, port = t["Value"].rsplit(":", 1)
                return {"Address": host, "Port": int(port)}
        return original.fget(self)

    m.DBInstance.endpoint = property(endpoint)

    # An instance tagged `emulator:status` reports that DBInstanceStatus: the harness's way to
    # model a primary whose host is lost (RDS says `failed`), which moto cannot otherwise show.
    # Every assignment moto and the corrections above make still lands underneath; removing the
    # tag shows it again.
    def get_status(self):
        for t in getattr(self, "tags", None) or []:
            if t.get("Key") == STATUS_TAG:
                return t["Value"]
        return self.__dict__.get("_fm_status", "available")

    def set_status(self, value):
        self.__dict__["_fm_status"] = value

    m.DBInstance.status = property(get_status, set_status)



# =============================================================================================
# RDS: what fencing an old primary relies on (issue 12)
# =============================================================================================

PARAMETER_FILE = "rds-parameter-group.cnf"


def _server_socket(db) -> str | None:
    return next((t["Value"] for t in getattr(db, "tags", None) or [] if t.get("Key") == DATABASE_TAG), None)


def _mariadb_client() -> str:
    import shutil

    return next((c for c in (shutil.which("mariadb"), "/usr/bin/mariadb") if c and os.access(c, os.X_OK)), "mariadb")


def _write_parameter_file(sock: str, values: dict[str, str]) -> None:
    """The group's values where the server behind the instance reads them when it (re)starts:
    an option file beside its socket (tests/harness.py starts mariadbd with `--defaults-file` =
    this file). RDS starts the engine of an instance with its parameter group's values, so a
    setting survives a reboot, a crash of the engine and the 7-day auto-start (RDS User Guide,
    "Working with parameter groups": "a DB parameter group acts as a container for engine
    configuration values that are applied to one or more DB instances")."""
    path = os.path.join(os.path.dirname(sock), PARAMETER_FILE)
    lines = ["[mysqld]"] + [f"{k}={v}" for k, v in sorted(values.items())]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def _apply_to_server(db, name: str, value: str) -> None:
    """`SET GLOBAL <name> = <value>` on the real server behind `db`, in the background: RDS
    applies a dynamic parameter with ApplyMethod=immediate to the running engine asynchronously,
    and the API call does not wait for it. On MySQL/MariaDB `SET GLOBAL read_only = 1` waits for
    running transactions and table locks to end (MySQL Reference Manual, `read_only`: "If you
    attempt to enable read_only while other clients hold explicit table locks or have pending
    transactions, the attempt blocks until the locks are released and the transactions end"), so
    the server can still be writable after the API answered. A server that is down is not
    touched here; it reads the option file when it starts."""
    import subprocess

    sock = _server_socket(db)
    if not sock or not os.path.exists(sock):
        return

    def run() -> None:
        try:
            subprocess.run(
                [_mariadb_client(), "--no-defaults", "-uroot", f"--socket={sock}", "-e",
                 f"SET GLOBAL {name} = {int(value)};"],
                check=True, capture_output=True, text=True, timeout=3600,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            detail = getattr(e, "stderr", "") or e
            print(f"faithful_moto: applying {name}={value} to the server behind "
                  f"{db.db_instance_identifier} failed: {detail}", file=sys.stderr)

    t = threading.Thread(target=run, name=f"apply-{name}-{db.db_instance_identifier}", daemon=True)
    t.start()
    # An unobstructed change is in effect by the time the call answers, as "applied immediately"
    # reads; one held back by a running write is left to finish in the background.
    t.join(0.5)


def _patch_fence_rds() -> None:
    """7-10: parameter groups applied to the engine, snapshots that take time, StopDBInstance's
    refusals. Separate from `_patch_rds` (other corrections patch the same backend)."""
    from moto.rds import models as m
    from moto.rds.exceptions import DBInstanceNotFoundError, RDSClientError

    # Parameters the emulator applies to a real server (the only ones the fence sets).
    dynamic = {"read_only"}

    def group_values(group) -> dict[str, str]:
        return {n: str(p.get("ParameterValue")) for n, p in group.parameters.items()
                if n in dynamic and p.get("ParameterValue") is not None}

    # ------------------------------------------------------------------ 7. ModifyDBParameterGroup
    original_modify = m.RDSBackend.modify_db_parameter_group

    def modify_db_parameter_group(self, db_parameter_group_name, db_parameter_group_parameters):
        # https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_WorkingWithParamGroups.Modifying.html
        # "You can't modify the parameter settings of a default DB parameter group."
        # "When you change a dynamic parameter ... the change is applied immediately" with
        # ApplyMethod=immediate; static ones (and pending-reboot) wait for a reboot. `read_only`
        # is dynamic on RDS for MySQL. The change applies to "all DB instances that are
        # associated with the DB parameter group"; each reports ParameterApplyStatus
        # `applying` and then `in-sync` (API_DBParameterGroupStatus.html).
        params = list(db_parameter_group_parameters)
        with _LOCK:
            name = (db_parameter_group_name or "").lower()
            if name.startswith("default."):
                raise RDSClientError(
                    "InvalidParameterValue",
                    f"Default parameter groups cannot be modified: {db_parameter_group_name}",
                )
            for p in params:
                method = p.get("ApplyMethod")
                if method not in ("immediate", "pending-reboot"):
                    raise RDSClientError(
                        "InvalidParameterValue",
                        f"ApplyMethod of {p.get('ParameterName')} must be immediate or pending-reboot, not {method!r}",
                    )
            group = original_modify(self, db_parameter_group_name, params)
            users = [db for db in self.databases.values() if (db.db_parameter_group_name or "").lower() == name]
            values = group_values(group)
            for db in users:
                sock = _server_socket(db)
                if sock:
                    _write_parameter_file(sock, values)
                for p in params:
                    if p["ParameterName"] in dynamic and p.get("ApplyMethod") == "immediate":
                        db.__dict__["_fm_applying_until"] = _now() + min(SETTINGS["promotion_secs"], 1.0)
                        _apply_to_server(db, p["ParameterName"], str(p.get("ParameterValue")))
            return group

    def db_parameter_group_status_list(self):
        # DBInstance.DBParameterGroups[]: DBParameterGroupName, ParameterApplyStatus
        # (API_DBParameterGroupStatus.html); `applying` while an immediate change is applied.
        applying = _now() < self.__dict__.get("_fm_applying_until", 0.0)
        return [{"DBParameterGroupName": g.name, "ParameterApplyStatus": "applying" if applying else "in-sync"}
                for g in self.db_parameter_groups()]

    m.DBInstance.db_parameter_group_status_list = property(db_parameter_group_status_list)

    # ------------------------------------------------------------------ 7b. ResetDBParameterGroup
    # moto has no ResetDBParameterGroup. https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ResetDBParameterGroup.html:
    # "To reset specific parameters, provide a list of the following: ParameterName and
    # ApplyMethod"; the parameter goes back to the engine default (it is no longer a `user`
    # value in DescribeDBParameters). Default groups cannot be modified (as 7). The engine
    # default of `read_only` on RDS for MySQL/MariaDB is `{TrueIfReplica}`: 0 on an instance that
    # is no read replica, 1 on one that is; a dynamic parameter reset with ApplyMethod=immediate is
    # applied to the running server as a modification is.
    from moto.rds import responses as rr

    def reset_db_parameter_group(self, name, reset_all, params):
        with _LOCK:
            key = (name or "").lower()
            if key.startswith("default."):
                raise RDSClientError("InvalidParameterValue", f"Default parameter groups cannot be modified: {name}")
            group = self.db_parameter_groups.get(key) or self.db_parameter_groups.get(name)
            if group is None:
                raise RDSClientError("DBParameterGroupNotFound", f"DBParameterGroup not found: {name}")
            names = list(group.parameters) if reset_all else [p.get("ParameterName") for p in params]
            for n in names:
                group.parameters.pop(n, None)
            values = group_values(group)
            for db in [d for d in self.databases.values() if (d.db_parameter_group_name or "").lower() == key]:
                sock = _server_socket(db)
                if sock:
                    _write_parameter_file(sock, values)
                if "read_only" in names:
                    db.__dict__["_fm_applying_until"] = _now() + min(SETTINGS["promotion_secs"], 1.0)
                    _apply_to_server(db, "read_only", "1" if db.source_db_instance_identifier else "0")
            return group

    def reset_db_parameter_group_response(self):
        params = [p.original_dict() for p in self.params.get("Parameters", [])]
        reset_all = str(self.params.get("ResetAllParameters", "false")).lower() == "true"
        group = self.backend.reset_db_parameter_group(self.params.get("DBParameterGroupName"), reset_all, params)
        from moto.core.responses import ActionResult
        return ActionResult({"DBParameterGroupName": group.name})

    m.RDSBackend.reset_db_parameter_group = reset_db_parameter_group
    rr.RDSResponse.reset_db_parameter_group = reset_db_parameter_group_response

    # A cross-Region read replica does not inherit its source's parameter group.
    original_create_replica = m.RDSBackend.create_db_instance_read_replica

    def create_db_instance_read_replica(self, db_kwargs):
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstanceReadReplica.html
        # DBParameterGroupName: "If you don't specify a value ... then Amazon RDS uses the
        # DBParameterGroup of the source DB instance for a same Region read replica, or the
        # default DBParameterGroup for the specified DB engine for a cross-Region read replica."
        replica = original_create_replica(self, db_kwargs)
        with _LOCK:
            if not db_kwargs.get("db_parameter_group_name"):
                group = replica.db_parameter_group_name
                if group and group not in self.db_parameter_groups:
                    replica.db_parameter_group_name = None
            replica.__dict__.pop("_fm_applying_until", None)
        return replica

    # ------------------------------------------------------------------ 8. CreateDBSnapshot
    original_create_snapshot = m.RDSBackend.create_db_snapshot

    def create_db_snapshot(self, db_instance_identifier, db_snapshot_identifier, *args, **kwargs):
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBSnapshot.html
        # errors DBInstanceNotFound, DBSnapshotAlreadyExists, InvalidDBInstanceState ("The DB
        # instance isn't in a valid state"); API_DBSnapshot.html: Status `creating` until the
        # snapshot is `available`. moto makes it available at once.
        with _LOCK:
            db = self.databases.get(db_instance_identifier)
            if db is None:
                raise DBInstanceNotFoundError(db_instance_identifier)
            if db.status not in ("available", "stopped") and db_snapshot_identifier not in self.database_snapshots:
                raise RDSClientError(
                    "InvalidDBInstanceState",
                    f"DB Instance {db_instance_identifier} is not in a valid state for a snapshot (status {db.status}).",
                )
            snap = original_create_snapshot(self, db_instance_identifier, db_snapshot_identifier, *args, **kwargs)
            snap.__dict__["_fm_ready_at"] = _now() + SETTINGS["promotion_secs"]
            return snap

    def get_snapshot_status(self):
        ready = self.__dict__.get("_fm_ready_at")
        if ready is not None and _now() < ready:
            return "creating"
        return self.__dict__.get("_fm_snap_status", "available")

    def set_snapshot_status(self, value):
        self.__dict__["_fm_snap_status"] = value

    m.DBSnapshot.status = property(get_snapshot_status, set_snapshot_status)

    # ------------------------------------------------------------------ 9. StopDBInstance
    original_stop = m.RDSBackend.stop_db_instance

    def stop_db_instance(self, db_instance_identifier, db_snapshot_identifier=None):
        # https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_StopInstance.html
        # (Limitations): "You can't stop a DB instance that has a read replica, or that is a read
        # replica." API_StopDBInstance.html: InvalidDBInstanceState (400). The instance is
        # `stopping`, then `stopped`; RDS starts it again by itself after seven days ("If you
        # don't manually start your DB instance after it is stopped for seven consecutive days,
        # RDS automatically starts your DB instance").
        with _LOCK:
            db = self.databases.get(db_instance_identifier)
            if db is None:
                raise DBInstanceNotFoundError(db_instance_identifier)
            if db.replicas:
                raise RDSClientError(
                    "InvalidDBInstanceState",
                    f"Cannot stop DB instance {db_instance_identifier}: it has read replicas "
                    f"({', '.join(r.split(':')[-1] for r in db.replicas)}).",
                )
            if db.is_replica:
                raise RDSClientError(
                    "InvalidDBInstanceState",
                    f"Cannot stop DB instance {db_instance_identifier}: it is a read replica.",
                )
            original_stop(self, db_instance_identifier, db_snapshot_identifier)
            db.__dict__["_fm_stopped_at"] = _now() + SETTINGS["promotion_secs"]
            db.status = "stopping"
            return db

    m.RDSBackend.modify_db_parameter_group = modify_db_parameter_group
    m.RDSBackend.create_db_instance_read_replica = create_db_instance_read_replica
    m.RDSBackend.create_db_snapshot = create_db_snapshot
    m.RDSBackend.stop_db_instance = stop_db_instance

    # `stopping` becomes `stopped` once --promotion-secs have passed (lazily, like the others).
    status = m.DBInstance.status

    def get_status(self):
        until = self.__dict__.get("_fm_stopped_at")
        if until is not None and _now() >= until:
            self.__dict__.pop("_fm_stopped_at", None)
            if status.fget(self) == "stopping":
                status.fset(self, "stopped")
        return status.fget(self)

    m.DBInstance.status = property(get_status, status.fset)
# =============================================================================================
# RDS: CreateDBInstanceReadReplica backed by a real MariaDB replica (issue 13, re-protect)
# =============================================================================================

# Where the servers of replicas created through the API keep their data directories (one
# temporary directory per emulator process, removed at its exit with the servers in it).
_REPLICA_SERVERS: list[Any] = []
_REPLICA_DIR: list[str] = []
_REPLICA_SERVER_IDS = iter(range(1000, 1_000_000))


def _replica_dir() -> str:
    import atexit
    import shutil
    import tempfile

    if not _REPLICA_DIR:
        _REPLICA_DIR.append(tempfile.mkdtemp(prefix="faithful-moto-replicas-"))

        def stop_all() -> None:
            for server in list(_REPLICA_SERVERS):
                try:
                    server.stop()
                except Exception as e:  # noqa: BLE001 - at exit, report and go on with the others
                    print(f"faithful_moto: stopping {server.dir}: {e}", file=sys.stderr)
            shutil.rmtree(_REPLICA_DIR[0], ignore_errors=True)

        atexit.register(stop_all)
    return _REPLICA_DIR[0]


def _tag(db, key: str) -> str | None:
    return next((t["Value"] for t in getattr(db, "tags", None) or [] if t.get("Key") == key), None)


def _build_real_replica(replica, source_sock: str, source_port: int) -> None:
    """Starts a MariaDB server for `replica`, loads it from a consistent dump of the source's
    server taken with its GTID position (`mariadb-dump --single-transaction --gtid
    --master-data`), points it at the source with GTID replication (MASTER_USE_GTID=slave_pos,
    as tests/harness.py `MariaDB.replicate_from` wires the world's replicas) and read-only (RDS
    sets `read_only=ON` on every replica), then — once both replication threads run — tags the
    instance with the server's endpoint and socket and makes it `available`. On any failure the
    instance is `failed` and the reason is logged."""
    import re
    import subprocess

    from harness import MariaDB, mariadb_binary, wait_for

    ident = replica.db_instance_identifier
    server = None
    try:
        server = MariaDB(__import__("pathlib").Path(_replica_dir()), f"rds-{ident}",
                         server_id=next(_REPLICA_SERVER_IDS), binlog=True)
        _REPLICA_SERVERS.append(server)
        server.start()
        user, password = MariaDB.REPL_USER, MariaDB.REPL_PASSWORD
        # The replication user on the source is the service's, not a transaction of the database.
        subprocess.run([mariadb_binary("mariadb"), "--no-defaults", "-uroot", f"--socket={source_sock}", "-e",
                        "SET SESSION sql_log_bin = 0;"
                        f"CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' IDENTIFIED BY '{password}';"
                        f"GRANT REPLICATION SLAVE ON *.* TO '{user}'@'127.0.0.1';"],
                       check=True, capture_output=True, text=True, timeout=60)
        dump = subprocess.run(
            [mariadb_binary("mariadb-dump"), "--no-defaults", "-uroot", f"--socket={source_sock}",
             "--all-databases", "--single-transaction", "--gtid", "--master-data=2", "--flush-privileges",
             "--ignore-table=mysql.gtid_slave_pos"],
            check=True, capture_output=True, text=True, timeout=600,
        ).stdout
        found = re.search(r"SET GLOBAL gtid_slave_pos\s*=\s*'([^']*)'", dump)
        if found is None:
            raise RuntimeError("the source's dump carries no GTID position")
        # Loaded outside the replica's own binary log: its executed position is the source's.
        subprocess.run([mariadb_binary("mariadb"), "--no-defaults", "-uroot", f"--socket={server.socket}"],
                       input="SET SESSION sql_log_bin = 0;\n" + dump, check=True, capture_output=True, text=True,
                       timeout=600)
        server.sql(
            "STOP SLAVE; RESET SLAVE ALL;"
            f"SET GLOBAL gtid_slave_pos = '{found.group(1)}';"
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={source_port}, "
            f"MASTER_USER='{user}', MASTER_PASSWORD='{password}', "
            "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;"
            "START SLAVE; SET GLOBAL read_only = ON;"
        )
        wait_for(lambda: (lambda s: s.get("Slave_IO_Running") == "Yes" and s.get("Slave_SQL_Running") == "Yes")(
            server.replica_status()), 60, f"replication of {ident}")
    except Exception as e:  # noqa: BLE001 - the instance says `failed`, as RDS would
        detail = getattr(e, "stderr", "") or e
        print(f"faithful_moto: creating the server behind {ident} failed: {detail}", file=sys.stderr)
        with _LOCK:
            replica.status = "failed"
        return
    with _LOCK:
        if replica.backend.databases.get(ident) is not replica:
            return  # deleted (or the account reset) meanwhile; stopped at exit
        replica.tags = [t for t in replica.tags if t.get("Key") not in (ENDPOINT_TAG, DATABASE_TAG)] + [
            {"Key": ENDPOINT_TAG, "Value": f"127.0.0.1:{server.port}"},
            {"Key": DATABASE_TAG, "Value": server.socket},
        ]
        replica.status = "available"
    threading.Thread(target=_publish_replica_lag, args=(replica, server), name=f"lag-{ident}", daemon=True).start()


def _publish_replica_lag(replica, server) -> None:
    """RDS's `ReplicaLag` metric for the replica (AWS/RDS, DBInstanceIdentifier; "the amount of
    time a read replica DB instance lags behind the source DB instance", RDS User Guide, "Amazon
    CloudWatch metrics for Amazon RDS"; for MySQL/MariaDB it is the engine's Seconds_Behind_Master,
    and -1 when replication is not active — "Monitoring read replication"), read from the real
    server once a second while the instance exists and is a replica."""
    import boto3

    region = replica.backend.region_name
    cw = boto3.client("cloudwatch", region_name=region, endpoint_url=f"http://127.0.0.1:{os.environ['MOTO_PORT']}",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    ident = replica.db_instance_identifier
    while True:
        with _LOCK:
            if replica.backend.databases.get(ident) is not replica or not replica.is_replica:
                return
        try:
            status = server.replica_status()
            behind = status.get("Seconds_Behind_Master", "NULL")
            running = status.get("Slave_IO_Running") == "Yes" and status.get("Slave_SQL_Running") == "Yes"
            lag = float(behind) if running and behind not in ("", "NULL") else -1.0
            cw.put_metric_data(Namespace="AWS/RDS", MetricData=[{
                "MetricName": "ReplicaLag", "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": ident}],
                "Value": lag, "Unit": "Seconds"}])
        except Exception as e:  # noqa: BLE001 - a server gone (stopped at exit) ends the metric
            print(f"faithful_moto: ReplicaLag of {ident} not published: {e}", file=sys.stderr)
            if server.proc is None or server.proc.poll() is not None:
                return
        time.sleep(1.0)


def _patch_reprotect_rds() -> None:
    """14: CreateDBInstanceReadReplica's refusals and settings, and a real replica behind it."""
    from moto.rds import models as m
    from moto.rds.exceptions import DBInstanceNotFoundError, RDSClientError

    previous = m.RDSBackend.create_db_instance_read_replica

    def create_db_instance_read_replica(self, db_kwargs):
        # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstanceReadReplica.html
        # SourceDBInstanceIdentifier: "The source DB instance must have backup retention
        # enabled"; "If the source DB instance is in a different AWS Region from the read
        # replica, specify a valid DB instance ARN." Errors: DBInstanceNotFound (404),
        # DBParameterGroupNotFound (404, "DBParameterGroupName doesn't refer to an existing DB
        # parameter group"), InvalidDBInstanceState (400). DBParameterGroupName: for a
        # cross-Region replica "The specified DB parameter group must be in the same AWS Region
        # in which the read replica is created" (the call is made in that region).
        with _LOCK:
            ref = db_kwargs.get("source_db_instance_identifier") or ""
            source = None
            if ref.startswith("arn:"):
                parts = ref.split(":")
                if len(parts) > 6 and parts[4] in m.rds_backends and parts[3] in m.rds_backends[parts[4]].keys():
                    source = m.rds_backends[parts[4]][parts[3]].databases.get(parts[-1])
            else:
                source = self.databases.get(ref)
            if source is None:
                raise DBInstanceNotFoundError(ref)
            if not int(source.backup_retention_period or 0):
                raise RDSClientError(
                    "InvalidDBInstanceState",
                    f"Automated backups are not enabled for the source DB instance {source.db_instance_identifier} "
                    "(BackupRetentionPeriod 0): a read replica needs backup retention on its source.",
                )
            group = db_kwargs.get("db_parameter_group_name")
            if group and not group.lower().startswith("default.") and group not in self.db_parameter_groups \
                    and group.lower() not in self.db_parameter_groups:
                raise RDSClientError("DBParameterGroupNotFound", f"DBParameterGroup not found: {group}")
            source_sock, source_endpoint = _tag(source, DATABASE_TAG), _tag(source, ENDPOINT_TAG)
            # moto sets the replica's `backend` (its region) after the other members, so a
            # DBSubnetGroupName was looked up in the source's region: the destination's first.
            replica = previous(self, {"backend": self, **db_kwargs})
            # moto's replica is a copy.copy of its source: its tag list is the source's own list.
            # The emulator's tags belong to the source's server, never to the new instance.
            replica.tags = [dict(t) for t in (replica.tags or []) if not str(t.get("Key", "")).startswith("emulator:")]
            for k in ("_fm_stopped_at", "_fm_applying_until"):
                replica.__dict__.pop(k, None)
            if source_sock and source_endpoint and os.path.exists(source_sock):
                # API_DBInstance.html DBInstanceStatus; "creating" until the replica runs.
                replica.status = "creating"
                port = int(source_endpoint.rsplit(":", 1)[1])
                threading.Thread(target=_build_real_replica, args=(replica, source_sock, port),
                                 name=f"create-{replica.db_instance_identifier}", daemon=True).start()
            return replica

    m.RDSBackend.create_db_instance_read_replica = create_db_instance_read_replica


def _patch_health_checks() -> None:
    """CreateHealthCheck keeps AlarmIdentifier and InsufficientDataHealthStatus of a
    CLOUDWATCH_METRIC check (Route 53 API reference, HealthCheckConfig), which moto 5.2 drops."""
    from moto.route53 import responses as r

    original = r.Route53.create_health_check

    def create_health_check(self):
        config = self._get_param("HealthCheckConfig") or {}
        with _LOCK:
            before = set(self.backend.health_checks)
            result = original(self)
            for hc_id in set(self.backend.health_checks) - before:
                hc = self.backend.health_checks[hc_id]
                hc.fm_alarm = config.get("AlarmIdentifier")
                hc.fm_insufficient = config.get("InsufficientDataHealthStatus")
        return result

    r.Route53.create_health_check = create_health_check


def _patch_alarm_evaluation() -> None:
    """Each PutMetricData datapoint re-evaluates the alarms on that metric, which moto never does.

    CloudWatch User Guide, "Using Amazon CloudWatch alarms" → "Evaluating an alarm": Period is "the
    length of time to use to evaluate the metric ... to create each individual data point for an
    alarm"; Evaluation Periods "the number of the most recent periods, or data points, to evaluate
    when determining alarm state"; Datapoints to Alarm "the number of data points within the
    Evaluation Periods that must be breaching to cause the alarm to go to the ALARM state" ("M out
    of N"). "Configuring how CloudWatch alarms treat missing data": with `ignore` "the current
    alarm state is maintained". So here: every datapoint is kept per alarm, bucketed into the
    alarm's periods by when it arrives (the tool's datapoints carry the time they are sent; a
    Period lasts Period × --alarm-period-scale real seconds); each of the last N periods that has
    data gets the alarm's Statistic of its values and breaches or not; ALARM when at least M
    breach, OK when the periods that do not breach leave fewer than M that could, else (too many
    periods missing to decide) the state is kept, as `ignore` does. That OK rule is on the safe
    side of CloudWatch's (which evaluates the periods it has): the emulated alarm never leaves
    ALARM earlier than AWS would, so a test cannot pass on an unpin that restores too early. Evaluation happens when a
    datapoint arrives (lazy: with `ignore`, only data changes the state). Route 53's
    CLOUDWATCH_METRIC health check then follows the alarm (tests/emulated_dns.py)."""
    from moto.cloudwatch import models as m

    crossed = {
        "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
        "GreaterThanThreshold": lambda v, t: v > t,
        "LessThanThreshold": lambda v, t: v < t,
        "LessThanOrEqualToThreshold": lambda v, t: v <= t,
    }
    statistic = {
        "Maximum": max, "Minimum": min, "Sum": sum, "SampleCount": len,
        "Average": lambda vs: sum(vs) / len(vs),
    }
    original = m.CloudWatchBackend.put_metric_data

    def dims_of(items) -> dict[str, str]:
        out = {}
        for d in items or []:
            name = d["Name"] if isinstance(d, dict) else d.name
            value = d.get("Value") if isinstance(d, dict) else d.value
            out[name] = value
        return out

    def evaluate(alarm, op, now: float) -> tuple[str, str] | None:
        period = float(alarm.period or 60) * SETTINGS["alarm_period_scale"]
        n = int(alarm.evaluation_periods or 1)
        m_of_n = int(alarm.datapoints_to_alarm or n)
        current = int(now // period)
        stat = statistic.get(alarm.statistic or "Maximum", max)
        buckets: dict[int, list[float]] = {}
        for at, v in alarm.__dict__.get("_fm_points", []):
            b = int(at // period)
            if current - n < b <= current:
                buckets.setdefault(b, []).append(v)
        values = [stat(vs) for _, vs in sorted(buckets.items())]
        breaching = sum(1 for v in values if op(v, float(alarm.threshold)))
        clear = len(values) - breaching
        detail = f"{breaching} of the last {n} periods breaching ({len(values)} with data, {m_of_n} to alarm): {values}"
        if breaching >= m_of_n:
            return "ALARM", detail
        if n - clear < m_of_n:
            return "OK", detail
        return None  # too many periods missing to decide: `ignore` keeps the state

    def put_metric_data(self, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        with _LOCK:
            original(self, namespace, metric_data)
            now = time.time()
            for datum in metric_data:
                values = [datum["Value"]] if datum.get("Value") is not None else datum.get("Values") or []
                for value in (float(v) for v in values):
                    for alarm in self.alarms.values():
                        op = crossed.get(alarm.comparison_operator)
                        same = (alarm.namespace == namespace and alarm.metric_name == datum["MetricName"]
                                and dims_of(alarm.dimensions) == dims_of(datum.get("Dimensions")))
                        if not same or op is None:
                            continue
                        points = alarm.__dict__.setdefault("_fm_points", [])
                        points.append((now, value))
                        keep = float(alarm.period or 60) * SETTINGS["alarm_period_scale"] * (int(alarm.evaluation_periods or 1) + 1)
                        points[:] = [(at, v) for at, v in points if at > now - keep]
                        judged = evaluate(alarm, op, now)
                        if judged and judged[0] != alarm.state_value:
                            alarm.update_state(f"Threshold Crossed: {judged[1]}", "{}", judged[0])

    m.CloudWatchBackend.put_metric_data = put_metric_data


def _serve_dns(port: int) -> None:
    """The zones' authoritative DNS server on 127.0.0.1:`port`, and delegation sets naming it."""
    import emulated_dns
    from moto.route53 import models as m

    original = m.DelegationSet.__init__

    def init(self, caller_reference, name_servers, delegation_set_id):
        original(self, caller_reference, name_servers or [f"127.0.0.1:{port}"], delegation_set_id)

    m.DelegationSet.__init__ = init
    emulated_dns.start(port, _LOCK)


def install(promotion_secs: float | None = None, dns_insync_secs: float | None = None,
            alarm_period_scale: float | None = None) -> None:
    if alarm_period_scale is not None:
        SETTINGS["alarm_period_scale"] = float(alarm_period_scale)
    if promotion_secs is not None:
        SETTINGS["promotion_secs"] = float(promotion_secs)
    if dns_insync_secs is not None:
        SETTINGS["dns_insync_secs"] = float(dns_insync_secs)
    if getattr(install, "done", False):
        return
    _patch_rds()
    _patch_route53()
    _patch_dynamodb()
    _patch_endpoints()
    _patch_fence_rds()  # after _patch_endpoints: it wraps the status property
    _patch_reprotect_rds()  # after _patch_fence_rds: it wraps its CreateDBInstanceReadReplica
    _patch_health_checks()
    _patch_alarm_evaluation()
    install.done = True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument("--promotion-secs", type=float, default=3.0,
                        help="duration of promotions, reboots and (global) failovers (default 3)")
    parser.add_argument("--dns-insync-secs", type=float, default=2.0,
                        help="how long a Route 53 change stays PENDING before INSYNC (default 2)")
    parser.add_argument("--dns-port", type=int, default=0,
                        help="serve the zones over DNS on 127.0.0.1:PORT, UDP and TCP (default: off)")
    parser.add_argument("--alarm-period-scale", type=float, default=1.0,
                        help="an alarm Period of P seconds lasts P x SCALE real seconds (default 1)")
    args = parser.parse_args(argv)
    install(args.promotion_secs, args.dns_insync_secs, args.alarm_period_scale)
    if args.dns_port:
        _serve_dns(args.dns_port)

    import signal

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    # As moto's own `moto_server` does (moto/server.py).
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main(sys.argv[1:])
