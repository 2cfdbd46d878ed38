"""moto's server with the behaviours the failover functions depend on made faithful to AWS.

Usage:
    python tests/faithful_moto.py -H 127.0.0.1 -p PORT [--promotion-secs 3] [--dns-insync-secs 2]

moto 5.2 is imported in-process and some of its backend model methods are replaced before its
server starts (see /work/shared/AWS-EMULATION.md for what plain moto gets wrong). Every
correction cites the AWS documentation it follows. Time-based transitions are lazy: an operation
records when it started, and its observable state is computed from the clock whenever the
emulated account is read or changed (no background threads). `POST /moto-api/reset` keeps
working: pending operations are stored on moto's own model objects, which a reset discards.

Corrections:
  1. PromoteReadReplica      modifying -> rebooting -> available over --promotion-secs; rejects
                             non-replicas and replicas already being promoted; detaches the
                             replica from its source (same- or cross-region) when it completes.
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

  7. Route 53 health checks   CreateHealthCheck keeps AlarmIdentifier and
                             InsufficientDataHealthStatus (moto drops them), for the DNS server.
  8. DNS (--dns-port)        an authoritative DNS server on 127.0.0.1 answering from the emulated
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
SETTINGS = {"promotion_secs": 3.0, "dns_insync_secs": 2.0}

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


def _promote_database(db) -> None:
    """Emulator-only control, not an AWS behaviour: when an instance tagged `emulator:mysql-socket`
    = the admin socket of a real local MariaDB becomes a primary (its promotion completes, or a
    cluster failover makes it the writer), that server is promoted too, as RDS does to the
    database it runs: replication stopped and forgotten, `read_only` off. A failure is logged and
    leaves the server as it was, so the promoter's writability check sees the truth."""
    import shutil
    import subprocess

    sock = next((t["Value"] for t in getattr(db, "tags", None) or [] if t.get("Key") == DATABASE_TAG), None)
    if not sock:
        return
    client = next((c for c in (shutil.which("mariadb"), "/usr/bin/mariadb") if c and os.access(c, os.X_OK)), None)
    try:
        subprocess.run(
            [client or "mariadb", "--no-defaults", "-uroot", f"--socket={sock}", "-e",
             "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF;"],
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


def _serve_dns(port: int) -> None:
    """The zones' authoritative DNS server on 127.0.0.1:`port`, and delegation sets naming it."""
    import emulated_dns
    from moto.route53 import models as m

    original = m.DelegationSet.__init__

    def init(self, caller_reference, name_servers, delegation_set_id):
        original(self, caller_reference, name_servers or [f"127.0.0.1:{port}"], delegation_set_id)

    m.DelegationSet.__init__ = init
    emulated_dns.start(port, _LOCK)


def install(promotion_secs: float | None = None, dns_insync_secs: float | None = None) -> None:
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
    _patch_health_checks()
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
    args = parser.parse_args(argv)
    install(args.promotion_secs, args.dns_insync_secs)
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
