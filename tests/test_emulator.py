"""The faithful emulator (tests/faithful_moto.py) against the documented AWS behaviour.

One moto server for the module, started through the harness with short timings (promotions,
reboots and failovers take PROMOTION s, Route 53 changes stay PENDING for INSYNC s); every test
starts from a reset, freshly seeded account (world.World.seed: the four sites' RDS topology).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import botocore.exceptions
import pytest

from harness import ROOT, MariaDB, MotoServer
from world import HOME_REGION, World

PROMOTION = 1.5
INSYNC = 1.0
EAST = "us-east-1"


@pytest.fixture(scope="module")
def faithful(workdir):
    d = workdir / "faithful-emulator"
    d.mkdir(exist_ok=True)
    server = MotoServer(d, promotion_secs=PROMOTION, dns_insync_secs=INSYNC).start()
    yield server
    server.stop()


@pytest.fixture
def acct(faithful) -> World:
    faithful.reset()
    return World(faithful.endpoint).seed()


def error_of(excinfo) -> tuple[str, str, int]:
    e = excinfo.value.response
    return e["Error"]["Code"], e["Error"]["Message"], e["ResponseMetadata"]["HTTPStatusCode"]


def instance(acct: World, region: str, ident: str) -> dict:
    return acct.client("rds", region).describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]


def watch(read, until, timeout: float = PROMOTION * 4, every: float = 0.1) -> list:
    """Reads state repeatedly until `until(state)`; returns every observation (with its time)."""
    seen, t0 = [], time.monotonic()
    while True:
        state = read()
        seen.append((time.monotonic() - t0, state))
        if until(state):
            return seen
        assert time.monotonic() - t0 < timeout, f"no completion within {timeout}s: {seen[-3:]}"
        time.sleep(every)


def phases(seen, key) -> list:
    out = []
    for _, s in seen:
        v = key(s)
        if not out or out[-1] != v:
            out.append(v)
    return out


# ------------------------------------------------------------------ 1. PromoteReadReplica


def test_promote_cross_region_replica_passes_modifying_rebooting_then_detaches(acct):
    west = acct.client("rds", HOME_REGION)
    primary_arn = instance(acct, EAST, "orders-primary")["DBInstanceArn"]
    replica_arn = instance(acct, HOME_REGION, "orders-replica-1")["DBInstanceArn"]
    assert replica_arn in instance(acct, EAST, "orders-primary")["ReadReplicaDBInstanceIdentifiers"]

    started = time.monotonic()
    answer = west.promote_read_replica(DBInstanceIdentifier="orders-replica-1")["DBInstance"]
    assert answer["DBInstanceStatus"] == "modifying"
    assert answer["ReadReplicaSourceDBInstanceIdentifier"] == primary_arn

    def read():
        # The source first: while the replica is seen in motion, the source read before it must
        # still have listed it.
        p = instance(acct, EAST, "orders-primary")
        r = instance(acct, HOME_REGION, "orders-replica-1")
        return r["DBInstanceStatus"], r.get("ReadReplicaSourceDBInstanceIdentifier"), p["ReadReplicaDBInstanceIdentifiers"]

    seen = watch(read, lambda s: s[0] == "available")
    assert phases(seen, lambda s: s[0]) == ["modifying", "rebooting", "available"]
    assert time.monotonic() - started >= PROMOTION
    # Until the reboot completes the replica still replicates: source kept on both sides.
    for _, (status, source, listed) in seen:
        if status != "available":
            assert source == primary_arn and replica_arn in listed
    _, (status, source, _) = seen[-1]
    listed = instance(acct, EAST, "orders-primary")["ReadReplicaDBInstanceIdentifiers"]
    assert source is None
    assert replica_arn not in listed
    assert listed == [instance(acct, HOME_REGION, "orders-replica-2")["DBInstanceArn"]]
    # The other replica is untouched.
    assert instance(acct, HOME_REGION, "orders-replica-2")["ReadReplicaSourceDBInstanceIdentifier"] == primary_arn

    # Once standalone it is no longer a read replica.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        west.promote_read_replica(DBInstanceIdentifier="orders-replica-1")
    assert error_of(e) == ("InvalidDBInstanceState", "DB Instance is not a read replica.", 400)


def test_promote_same_region_replica_clears_source_by_identifier(acct):
    west = acct.client("rds", HOME_REGION)
    west.create_db_instance_read_replica(
        DBInstanceIdentifier="inventory-replica", SourceDBInstanceIdentifier="inventory-db", DBInstanceClass="db.t3.micro"
    )
    assert instance(acct, HOME_REGION, "inventory-db")["ReadReplicaDBInstanceIdentifiers"] == ["inventory-replica"]
    assert instance(acct, HOME_REGION, "inventory-replica")["ReadReplicaSourceDBInstanceIdentifier"] == "inventory-db"

    west.promote_read_replica(DBInstanceIdentifier="inventory-replica")
    seen = watch(lambda: instance(acct, HOME_REGION, "inventory-replica"), lambda d: d["DBInstanceStatus"] == "available")
    assert phases(seen, lambda d: d["DBInstanceStatus"]) == ["modifying", "rebooting", "available"]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in seen[-1][1]
    assert instance(acct, HOME_REGION, "inventory-db")["ReadReplicaDBInstanceIdentifiers"] == []


def test_promote_rejects_non_replica_and_promotion_in_progress(acct):
    west, east = acct.client("rds", HOME_REGION), acct.client("rds", EAST)
    before = acct.rds_snapshot()
    for client, ident in ((east, "orders-primary"), (west, "inventory-db")):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            client.promote_read_replica(DBInstanceIdentifier=ident)
        assert error_of(e) == ("InvalidDBInstanceState", "DB Instance is not a read replica.", 400)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        west.promote_read_replica(DBInstanceIdentifier="no-such-db")
    assert error_of(e)[0] == "DBInstanceNotFound" and error_of(e)[2] == 404
    assert acct.rds_snapshot() == before

    west.promote_read_replica(DBInstanceIdentifier="orders-replica-2")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        west.promote_read_replica(DBInstanceIdentifier="orders-replica-2")
    code, _, status = error_of(e)
    assert (code, status) == ("InvalidDBInstanceState", 400)
    watch(lambda: instance(acct, HOME_REGION, "orders-replica-2"), lambda d: d["DBInstanceStatus"] == "available")


# ------------------------------------------------------------------ 2. RebootDBInstance ForceFailover


def test_reboot_force_failover_multi_az_reboots_and_swaps_zones(acct):
    west = acct.client("rds", HOME_REGION)
    before = instance(acct, HOME_REGION, "inventory-db")
    assert before["MultiAZ"] is True
    primary_az, secondary_az = before["AvailabilityZone"], before["SecondaryAvailabilityZone"]
    assert primary_az != secondary_az

    answer = west.reboot_db_instance(DBInstanceIdentifier="inventory-db", ForceFailover=True)["DBInstance"]
    assert answer["DBInstanceStatus"] == "rebooting"
    seen = watch(lambda: instance(acct, HOME_REGION, "inventory-db"), lambda d: d["DBInstanceStatus"] == "available")
    assert phases(seen, lambda d: d["DBInstanceStatus"]) == ["rebooting", "available"]
    assert seen[-1][0] >= PROMOTION - 0.2
    after = seen[-1][1]
    assert (after["AvailabilityZone"], after["SecondaryAvailabilityZone"]) == (secondary_az, primary_az)


def test_reboot_force_failover_rejected_unless_multi_az(acct):
    east = acct.client("rds", EAST)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        east.reboot_db_instance(DBInstanceIdentifier="orders-primary", ForceFailover=True)
    code, _, status = error_of(e)
    assert (code, status) == ("InvalidDBInstanceState", 400)
    assert instance(acct, EAST, "orders-primary")["DBInstanceStatus"] == "available"

    # A plain reboot of the same instance is fine: rebooting, then available, same zone.
    az = instance(acct, EAST, "orders-primary")["AvailabilityZone"]
    east.reboot_db_instance(DBInstanceIdentifier="orders-primary")
    seen = watch(lambda: instance(acct, EAST, "orders-primary"), lambda d: d["DBInstanceStatus"] == "available")
    assert phases(seen, lambda d: d["DBInstanceStatus"]) == ["rebooting", "available"]
    assert seen[-1][1]["AvailabilityZone"] == az

    # Rebooting while rebooting is not a valid state.
    east.reboot_db_instance(DBInstanceIdentifier="orders-primary")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        east.reboot_db_instance(DBInstanceIdentifier="orders-primary")
    assert error_of(e)[0] == "InvalidDBInstanceState"


# ------------------------------------------------------------------ 3. FailoverDBCluster


def cluster(acct: World, region: str, ident: str) -> dict:
    return acct.client("rds", region).describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0]


def writer_of(c: dict) -> str:
    return next(m["DBInstanceIdentifier"] for m in c["DBClusterMembers"] if m["IsClusterWriter"])


def test_failover_db_cluster_passes_failing_over_before_writer_moves(acct):
    west = acct.client("rds", HOME_REGION)
    assert writer_of(cluster(acct, HOME_REGION, "billing-cluster")) == "billing-1"

    answer = west.failover_db_cluster(DBClusterIdentifier="billing-cluster", TargetDBInstanceIdentifier="billing-2")["DBCluster"]
    assert answer["Status"] == "failing-over"
    assert writer_of(answer) == "billing-1"

    seen = watch(lambda: cluster(acct, HOME_REGION, "billing-cluster"), lambda c: c["Status"] == "available")
    assert phases(seen, lambda c: (c["Status"], writer_of(c))) == [("failing-over", "billing-1"), ("available", "billing-2")]
    assert seen[-1][0] >= PROMOTION - 0.2

    # Without a target, a reader is chosen: back to billing-1.
    west.failover_db_cluster(DBClusterIdentifier="billing-cluster")
    seen = watch(lambda: cluster(acct, HOME_REGION, "billing-cluster"), lambda c: c["Status"] == "available")
    assert writer_of(seen[-1][1]) == "billing-1"


def test_failover_db_cluster_rejects_non_member_target_and_overlap(acct):
    west = acct.client("rds", HOME_REGION)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        west.failover_db_cluster(DBClusterIdentifier="billing-cluster", TargetDBInstanceIdentifier="orders-replica-1")
    assert error_of(e)[0] == "InvalidDBInstanceState" and error_of(e)[2] == 400
    with pytest.raises(botocore.exceptions.ClientError) as e:
        west.failover_db_cluster(DBClusterIdentifier="billing-cluster", TargetDBInstanceIdentifier="no-such-db")
    assert error_of(e)[0] == "DBInstanceNotFound"
    c = cluster(acct, HOME_REGION, "billing-cluster")
    assert (c["Status"], writer_of(c)) == ("available", "billing-1")

    west.failover_db_cluster(DBClusterIdentifier="billing-cluster", TargetDBInstanceIdentifier="billing-2")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        west.failover_db_cluster(DBClusterIdentifier="billing-cluster", TargetDBInstanceIdentifier="billing-2")
    assert error_of(e)[0] == "InvalidDBClusterStateFault"
    watch(lambda: cluster(acct, HOME_REGION, "billing-cluster"), lambda c: c["Status"] == "available")


# ------------------------------------------------------------------ 4. global clusters


def global_cluster(acct: World, region: str = HOME_REGION) -> dict:
    gcs = acct.client("rds", region).describe_global_clusters(GlobalClusterIdentifier="payments-global")["GlobalClusters"]
    return next(g for g in gcs if g["GlobalClusterIdentifier"] == "payments-global")


def global_writer(g: dict) -> str:
    return next(m["DBClusterArn"] for m in g["GlobalClusterMembers"] if m["IsWriter"])


def arns(acct: World) -> tuple[str, str]:
    return (cluster(acct, EAST, "payments-east")["DBClusterArn"], cluster(acct, HOME_REGION, "payments-west")["DBClusterArn"])


def test_switchover_global_cluster_moves_writer_after_switching_over(acct):
    east_arn, west_arn = arns(acct)
    g = global_cluster(acct)
    assert g["Status"] == "available" and global_writer(g) == east_arn and "FailoverState" not in g

    answer = acct.client("rds", HOME_REGION).switchover_global_cluster(
        GlobalClusterIdentifier="payments-global", TargetDbClusterIdentifier=west_arn
    )["GlobalCluster"]
    expected_state = {"Status": "switching-over", "FromDbClusterArn": east_arn, "ToDbClusterArn": west_arn, "IsDataLossAllowed": False}
    assert answer["Status"] == "switching-over"
    assert answer["FailoverState"] == expected_state

    assert global_cluster(acct, EAST)["FailoverState"] == expected_state  # seen from either Region
    seen = watch(lambda: global_cluster(acct, HOME_REGION), lambda g: g["Status"] == "available")
    assert phases(seen, lambda g: (g["Status"], global_writer(g))) == [("switching-over", east_arn), ("available", west_arn)]
    for _, g in seen[:-1]:
        assert g["FailoverState"] == expected_state
    final = seen[-1][1]
    assert global_cluster(acct, EAST) == final
    assert "FailoverState" not in final
    assert {m["DBClusterArn"]: m["IsWriter"] for m in final["GlobalClusterMembers"]} == {east_arn: False, west_arn: True}
    assert seen[-1][0] >= PROMOTION - 0.2


def test_failover_global_cluster_with_data_loss_by_bare_identifier(acct):
    east_arn, west_arn = arns(acct)
    answer = acct.client("rds", HOME_REGION).failover_global_cluster(
        GlobalClusterIdentifier="payments-global", TargetDbClusterIdentifier="payments-west", AllowDataLoss=True
    )["GlobalCluster"]
    assert answer["Status"] == "failing-over"
    assert answer["FailoverState"] == {"Status": "failing-over", "FromDbClusterArn": east_arn, "ToDbClusterArn": west_arn, "IsDataLossAllowed": True}
    assert global_writer(answer) == east_arn
    seen = watch(lambda: global_cluster(acct), lambda g: g["Status"] == "available")
    assert phases(seen, lambda g: (g["Status"], global_writer(g))) == [("failing-over", east_arn), ("available", west_arn)]
    assert "FailoverState" not in seen[-1][1]

    # And back, with the documented switchover form of FailoverGlobalCluster (Switchover=true).
    acct.client("rds", EAST).failover_global_cluster(
        GlobalClusterIdentifier="payments-global", TargetDbClusterIdentifier=east_arn, Switchover=True
    )
    g = global_cluster(acct)
    assert g["Status"] == "switching-over" and g["FailoverState"]["IsDataLossAllowed"] is False
    seen = watch(lambda: global_cluster(acct), lambda g: g["Status"] == "available")
    assert global_writer(seen[-1][1]) == east_arn


def test_global_failover_rejections(acct):
    east_arn, west_arn = arns(acct)
    billing_arn = cluster(acct, HOME_REGION, "billing-cluster")["DBClusterArn"]
    west = acct.client("rds", HOME_REGION)

    def rejected(call, **kw):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call(**kw)
        return error_of(e)

    # The target must be a secondary member of this global cluster.
    assert rejected(west.switchover_global_cluster, GlobalClusterIdentifier="payments-global", TargetDbClusterIdentifier=east_arn)[::2] == ("InvalidDBClusterStateFault", 400)
    assert rejected(west.failover_global_cluster, GlobalClusterIdentifier="payments-global", TargetDbClusterIdentifier=billing_arn, AllowDataLoss=True)[::2] == ("InvalidGlobalClusterStateFault", 400)
    assert rejected(west.switchover_global_cluster, GlobalClusterIdentifier="payments-global", TargetDbClusterIdentifier="no-such-cluster")[::2] == ("DBClusterNotFoundFault", 404)
    assert rejected(west.switchover_global_cluster, GlobalClusterIdentifier="no-such-global", TargetDbClusterIdentifier=west_arn)[::2] == ("GlobalClusterNotFoundFault", 404)
    # AllowDataLoss and Switchover can't be specified together.
    assert rejected(west.failover_global_cluster, GlobalClusterIdentifier="payments-global", TargetDbClusterIdentifier=west_arn, AllowDataLoss=True, Switchover=True)[::2] == ("InvalidParameterCombination", 400)
    g = global_cluster(acct)
    assert g["Status"] == "available" and global_writer(g) == east_arn and "FailoverState" not in g

    # Neither given: the documented default is a switchover. A second operation meanwhile is refused.
    west.failover_global_cluster(GlobalClusterIdentifier="payments-global", TargetDbClusterIdentifier=west_arn)
    assert global_cluster(acct)["FailoverState"]["IsDataLossAllowed"] is False
    assert rejected(west.failover_global_cluster, GlobalClusterIdentifier="payments-global", TargetDbClusterIdentifier=west_arn, AllowDataLoss=True)[::2] == ("InvalidGlobalClusterStateFault", 400)
    seen = watch(lambda: global_cluster(acct), lambda g: g["Status"] == "available")
    assert global_writer(seen[-1][1]) == west_arn


# ------------------------------------------------------------------ 5. Route 53


@pytest.fixture
def zone(acct):
    r53 = acct.client("route53", EAST)
    zid = r53.create_hosted_zone(Name="db.example.com", CallerReference=str(time.time()))["HostedZone"]["Id"]
    return r53, zid


def rrsets(r53, zid) -> dict:
    out = {}
    for rr in r53.list_resource_record_sets(HostedZoneId=zid)["ResourceRecordSets"]:
        if rr["Type"] in ("SOA", "NS"):
            continue
        out[(rr["Name"], rr["Type"], rr.get("SetIdentifier"))] = rr
    return out


def a_record(name: str, value: str, ttl: int = 60, **extra) -> dict:
    return {"Name": name, "Type": "CNAME", "TTL": ttl, "ResourceRecords": [{"Value": value}], **extra}


def change(r53, zid, *changes):
    return r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": [{"Action": a, "ResourceRecordSet": rr} for a, rr in changes]})["ChangeInfo"]


def test_route53_change_batch_is_atomic_and_delete_must_match(zone):
    r53, zid = zone
    change(r53, zid, ("CREATE", a_record("orders.db.example.com", "orders-primary.east")))
    before = rrsets(r53, zid)

    def rejected(*changes):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            change(r53, zid, *changes)
        code, msg, status = error_of(e)
        assert (code, status) == ("InvalidChangeBatch", 400)
        assert rrsets(r53, zid) == before, "a rejected batch must apply nothing"
        return msg

    # A valid UPSERT in the same batch as an invalid CREATE: nothing is applied.
    msg = rejected(("UPSERT", a_record("billing.db.example.com", "billing.west")),
                   ("CREATE", a_record("orders.db.example.com", "orders-replica-1.west")))
    assert "Tried to create resource record set [name='orders.db.example.com.', type='CNAME'] but it already exists" in msg
    # DELETE of a record that does not exist.
    msg = rejected(("UPSERT", a_record("billing.db.example.com", "billing.west")),
                   ("DELETE", a_record("nothing.db.example.com", "x")))
    assert "Tried to delete resource record set [name='nothing.db.example.com.', type='CNAME'] but it was not found" in msg
    # DELETE with a stale value or TTL, or another set identifier: the current record is not it.
    msg = rejected(("DELETE", a_record("orders.db.example.com", "orders-replica-1.west")))
    assert "Tried to delete resource record set [name='orders.db.example.com.', type='CNAME'] but the values provided do not match the current values" in msg
    rejected(("DELETE", a_record("orders.db.example.com", "orders-primary.east", ttl=300)))
    rejected(("DELETE", a_record("orders.db.example.com", "orders-primary.east", SetIdentifier="x", Weight=1)))
    rejected(("DELETE", {**a_record("orders.db.example.com", "orders-primary.east"), "Type": "TXT"}))

    # Compare-and-swap: DELETE of the exact current record + CREATE of the new one, one batch.
    change(r53, zid, ("DELETE", a_record("orders.db.example.com", "orders-primary.east")),
           ("CREATE", a_record("orders.db.example.com", "orders-replica-1.west")))
    now = rrsets(r53, zid)
    assert now[("orders.db.example.com.", "CNAME", None)]["ResourceRecords"] == [{"Value": "orders-replica-1.west"}]
    # The same swap again is now stale and is refused as a whole.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        change(r53, zid, ("DELETE", a_record("orders.db.example.com", "orders-primary.east")),
               ("CREATE", a_record("orders.db.example.com", "orders-replica-2.west")))
    assert error_of(e)[0] == "InvalidChangeBatch"
    assert rrsets(r53, zid) == now

    # UPSERT keeps working (replace and create).
    change(r53, zid, ("UPSERT", a_record("orders.db.example.com", "orders-replica-2.west", ttl=30)),
           ("UPSERT", a_record("billing.db.example.com", "billing.west")))
    now = rrsets(r53, zid)
    assert now[("orders.db.example.com.", "CNAME", None)]["TTL"] == 30
    assert now[("orders.db.example.com.", "CNAME", None)]["ResourceRecords"] == [{"Value": "orders-replica-2.west"}]
    assert ("billing.db.example.com.", "CNAME", None) in now


def test_route53_each_change_has_its_own_id_pending_until_insync(zone):
    r53, zid = zone
    first = change(r53, zid, ("UPSERT", a_record("orders.db.example.com", "a")))
    t_first = time.monotonic()
    time.sleep(INSYNC / 2)
    second = change(r53, zid, ("UPSERT", a_record("orders.db.example.com", "b")))
    assert first["Id"] != second["Id"] and first["Id"].startswith("/change/")
    assert first["Status"] == second["Status"] == "PENDING"
    assert r53.get_change(Id=first["Id"])["ChangeInfo"]["Status"] == "PENDING"

    t_second = time.monotonic()
    insync_at: dict[str, float] = {}
    while len(insync_at) < 2:
        for name, c in (("first", first), ("second", second)):
            if name not in insync_at and r53.get_change(Id=c["Id"])["ChangeInfo"]["Status"] == "INSYNC":
                insync_at[name] = time.monotonic()
        assert time.monotonic() - t_first < INSYNC * 4, "changes never became INSYNC"
        time.sleep(0.05)
    # Each change is PENDING for its own delay, counted from its own submission.
    assert insync_at["first"] - t_first >= INSYNC - 0.15
    assert insync_at["second"] - t_second >= INSYNC - 0.15
    assert insync_at["first"] < insync_at["second"]
    info = r53.get_change(Id=first["Id"])["ChangeInfo"]
    assert info["Id"] == first["Id"] and info["SubmittedAt"] == first["SubmittedAt"]

    with pytest.raises(botocore.exceptions.ClientError) as e:
        r53.get_change(Id="CNOSUCHCHANGE")
    assert error_of(e)[0] == "NoSuchChange" and error_of(e)[2] == 404


def test_route53_failover_records_preserved_as_given(zone):
    r53, zid = zone
    hc = r53.create_health_check(
        CallerReference=str(time.time()),
        HealthCheckConfig={"Type": "TCP", "IPAddress": "192.0.2.10", "Port": 3306, "RequestInterval": 10, "FailureThreshold": 2},
    )["HealthCheck"]["Id"]
    primary = a_record("orders.db.example.com", "orders-primary.east", SetIdentifier="orders-primary", Failover="PRIMARY", HealthCheckId=hc)
    secondary = a_record("orders.db.example.com", "orders-replica-1.west", SetIdentifier="orders-secondary", Failover="SECONDARY")
    change(r53, zid, ("UPSERT", primary), ("UPSERT", secondary))
    got = rrsets(r53, zid)
    p = got[("orders.db.example.com.", "CNAME", "orders-primary")]
    s = got[("orders.db.example.com.", "CNAME", "orders-secondary")]
    assert (p["Failover"], p["HealthCheckId"], p["TTL"], p["ResourceRecords"]) == ("PRIMARY", hc, 60, [{"Value": "orders-primary.east"}])
    assert (s["Failover"], s.get("HealthCheckId"), s["ResourceRecords"]) == ("SECONDARY", None, [{"Value": "orders-replica-1.west"}])

    # UPSERT of one set identifier leaves the other alone; DELETE must name the right one exactly.
    change(r53, zid, ("UPSERT", {**secondary, "ResourceRecords": [{"Value": "orders-replica-2.west"}]}))
    got = rrsets(r53, zid)
    assert got[("orders.db.example.com.", "CNAME", "orders-primary")] == p
    with pytest.raises(botocore.exceptions.ClientError) as e:
        change(r53, zid, ("DELETE", {k: v for k, v in primary.items() if k != "HealthCheckId"}))
    assert error_of(e)[0] == "InvalidChangeBatch"
    change(r53, zid, ("DELETE", primary))
    assert set(rrsets(r53, zid)) == {("orders.db.example.com.", "CNAME", "orders-secondary")}


# ------------------------------------------------------------------ emulator-only control


def test_an_instance_tagged_with_an_emulator_endpoint_reports_it(acct):
    rds = acct.client("rds", HOME_REGION)
    arn = instance(acct, HOME_REGION, "orders-replica-1")["DBInstanceArn"]
    assert instance(acct, HOME_REGION, "orders-replica-1")["Endpoint"]["Address"].endswith(".rds.amazonaws.com")
    rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "emulator:endpoint", "Value": "127.0.0.1:33061"}])
    assert instance(acct, HOME_REGION, "orders-replica-1")["Endpoint"] == {"Address": "127.0.0.1", "Port": 33061}
    assert instance(acct, HOME_REGION, "orders-replica-2")["Endpoint"]["Address"] != "127.0.0.1"


def test_an_instance_tagged_with_an_emulator_status_reports_it_until_the_tag_is_removed(acct):
    assert instance(acct, "us-east-1", "orders-primary")["DBInstanceStatus"] == "available"
    acct.report_status("orders-primary", "us-east-1", "failed")
    assert instance(acct, "us-east-1", "orders-primary")["DBInstanceStatus"] == "failed"
    assert instance(acct, HOME_REGION, "orders-replica-1")["DBInstanceStatus"] == "available"
    acct.report_status("orders-primary", "us-east-1", None)
    assert instance(acct, "us-east-1", "orders-primary")["DBInstanceStatus"] == "available"


def test_a_completed_promotion_promotes_the_real_database_behind_the_instance(acct, workdir):
    """Two real MariaDB servers replicating (primary -> replica, replica read-only), the replica
    behind orders-replica-1: replication carries rows until the RDS promotion completes, and only
    then is the replica's server standalone and writable."""
    source = MariaDB(workdir, "emu-source", server_id=11, binlog=True).start()
    replica = MariaDB(workdir, "emu-replica", server_id=12).start()
    try:
        replica.replicate_from(source)
        source.sql("CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY); INSERT INTO shop.orders VALUES (1);")
        applied = source.sql("SELECT @@GLOBAL.gtid_binlog_pos;").strip()
        watch(lambda: replica.sql("SELECT @@GLOBAL.gtid_slave_pos;").strip(), lambda pos: pos == applied)
        assert replica.sql("SELECT id FROM shop.orders;").split() == ["1"], "the row replicated"
        assert replica.sql("SELECT @@GLOBAL.read_only;").strip() == "1"

        acct.point_endpoint("orders-replica-1", HOME_REGION, f"127.0.0.1:{replica.port}", admin_socket=replica.socket)
        acct.client("rds", HOME_REGION).promote_read_replica(DBInstanceIdentifier="orders-replica-1")
        assert instance(acct, HOME_REGION, "orders-replica-1")["DBInstanceStatus"] == "modifying"
        # Until the promotion completes, the server still replicates and stays read-only.
        assert replica.replica_status().get("Slave_SQL_Running") == "Yes"
        assert replica.sql("SELECT @@GLOBAL.read_only;").strip() == "1"

        watch(lambda: instance(acct, HOME_REGION, "orders-replica-1")["DBInstanceStatus"], lambda s: s == "available")
        assert replica.replica_status() == {}, "replication stopped and forgotten"
        assert replica.sql("SELECT @@GLOBAL.read_only, @@GLOBAL.innodb_read_only;").split() == ["0", "0"]
        source.sql("INSERT INTO shop.orders VALUES (2);")
        replica.sql("INSERT INTO shop.orders VALUES (3);")  # its own writes, no longer the source's
        assert replica.sql("SELECT id FROM shop.orders ORDER BY id;").split() == ["1", "3"]
        # An untagged instance's promotion touches no database.
        acct.client("rds", HOME_REGION).promote_read_replica(DBInstanceIdentifier="orders-replica-2")
        watch(lambda: instance(acct, HOME_REGION, "orders-replica-2")["DBInstanceStatus"], lambda s: s == "available")
    finally:
        replica.stop()
        source.stop()


# ---------------------------------------------------------------------------------------- DynamoDB


def test_dynamodb_transactions_are_serializable_under_concurrent_compare_and_set(acct):
    """The ledger's write — a TransactWriteItems putting the state item (condition: version = the
    one read) and that version's audit item (condition: attribute_not_exists) — from 16 writers at
    once. As in AWS: each version has exactly one winner, no committed write is lost, and a loser's
    cancellation names the state item's condition (never [None, ConditionalCheckFailed], which plain
    moto returns when it interleaves two transactions)."""
    from concurrent.futures import ThreadPoolExecutor

    ddb = acct.client("dynamodb")
    ddb.create_table(TableName="cas", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
    ddb.put_item(TableName="cas", Item={"pk": {"S": "site"}, "sk": {"S": "STATE"}, "version": {"N": "0"}})
    # Other sites' history, as a ledger table has: moto copies the whole table per transaction.
    for i in range(0, 300, 25):
        ddb.batch_write_item(RequestItems={"cas": [
            {"PutRequest": {"Item": {"pk": {"S": "other"}, "sk": {"S": f"AUDIT#{j:012}"}, "state": {"S": "x" * 200}}}}
            for j in range(i, i + 25)]})
    import boto3

    clients = [boto3.client("dynamodb", region_name=HOME_REGION, endpoint_url=acct.endpoint,
                            aws_access_key_id="testing", aws_secret_access_key="testing") for _ in range(16)]

    def writer(c) -> tuple[int, list[list[str]]]:
        won, lost = 0, []
        for _ in range(12):
            v = int(c.get_item(TableName="cas", Key={"pk": {"S": "site"}, "sk": {"S": "STATE"}},
                               ConsistentRead=True)["Item"]["version"]["N"])
            try:
                c.transact_write_items(TransactItems=[
                    {"Put": {"TableName": "cas", "Item": {"pk": {"S": "site"}, "sk": {"S": "STATE"}, "version": {"N": str(v + 1)}},
                             "ConditionExpression": "version = :prev", "ExpressionAttributeValues": {":prev": {"N": str(v)}}}},
                    {"Put": {"TableName": "cas", "Item": {"pk": {"S": "site"}, "sk": {"S": f"AUDIT#{v + 1:012}"}},
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                ])
                won += 1
            except botocore.exceptions.ClientError as e:
                assert e.response["Error"]["Code"] == "TransactionCanceledException", e.response["Error"]
                lost.append([r.get("Code", "None") for r in e.response.get("CancellationReasons", [])])
        return won, lost

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(writer, clients))
    won = sum(w for w, _ in results)
    lost = [r for _, ls in results for r in ls]
    state = ddb.get_item(TableName="cas", Key={"pk": {"S": "site"}, "sk": {"S": "STATE"}}, ConsistentRead=True)["Item"]
    audits = ddb.query(TableName="cas", KeyConditionExpression="pk = :p AND begins_with(sk, :a)",
                       ExpressionAttributeValues={":p": {"S": "site"}, ":a": {"S": "AUDIT#"}})["Count"]
    assert lost, "the writers really raced"
    assert int(state["version"]["N"]) == won == audits, (state, won, audits)
    assert all(r and r[0] == "ConditionalCheckFailed" for r in lost), [r for r in lost if not r or r[0] != "ConditionalCheckFailed"][:5]


# ------------------------------------------------------------------- what the fence relies on (issue 12)


def modify_read_only(acct: World, group: str, value: str = "1", method: str = "immediate"):
    return acct.client("rds", EAST).modify_db_parameter_group(
        DBParameterGroupName=group,
        Parameters=[{"ParameterName": "read_only", "ParameterValue": value, "ApplyMethod": method}],
    )


def global_read_only(db: MariaDB) -> str:
    return db.sql("SELECT @@GLOBAL.read_only;").strip()


def test_read_only_set_in_the_primarys_own_group_reaches_its_real_server_and_survives_a_restart(acct, workdir):
    """ModifyDBParameterGroup read_only=1 ApplyMethod=immediate on orders-primary's own group: the
    instance reads `applying` then `in-sync`, the real server behind it becomes read-only, and it
    comes back read-only after its engine is killed and started again. A default group is refused."""
    from world import ORDERS_GROUP

    server = MariaDB(workdir, "emu-fenced", server_id=21, binlog=True).start()
    try:
        acct.point_endpoint("orders-primary", EAST, f"127.0.0.1:{server.port}", admin_socket=server.socket)
        assert acct.parameter_group("orders-primary", EAST) == (ORDERS_GROUP, "in-sync")
        assert global_read_only(server) == "0" and acct.group_value(ORDERS_GROUP, EAST) is None
        modify_read_only(acct, ORDERS_GROUP)
        assert acct.group_value(ORDERS_GROUP, EAST) == "1"
        seen = watch(lambda: acct.parameter_group("orders-primary", EAST)[1], lambda s: s == "in-sync")
        assert seen[0][1] == "applying", seen
        watch(lambda: global_read_only(server), lambda v: v == "1")
        server.kill()
        server.start()
        assert global_read_only(server) == "1", "the group's value holds when the engine starts again"
        # Setting it back to 0 applies too (a human giving the old primary its writes back).
        modify_read_only(acct, ORDERS_GROUP, "0")
        watch(lambda: global_read_only(server), lambda v: v == "0")

        # The cross-region replicas were given their region's default group, which cannot be modified.
        group, _ = acct.parameter_group("orders-replica-1", HOME_REGION)
        assert group.startswith("default."), group
        with pytest.raises(botocore.exceptions.ClientError) as e:
            acct.client("rds", HOME_REGION).modify_db_parameter_group(
                DBParameterGroupName=group,
                Parameters=[{"ParameterName": "read_only", "ParameterValue": "1", "ApplyMethod": "immediate"}])
        assert error_of(e)[0] == "InvalidParameterValue" and "Default parameter groups" in error_of(e)[1]
    finally:
        server.stop()


def test_read_only_applied_immediately_waits_behind_a_long_running_write_on_the_server(acct, workdir):
    """The API answers and reads `in-sync` while the server is still writable: `SET GLOBAL read_only`
    waits for the running write to finish, as MySQL and MariaDB do."""
    import subprocess

    from harness import mariadb_binary
    from world import ORDERS_GROUP

    server = MariaDB(workdir, "emu-busy", server_id=22, binlog=True).start()
    try:
        acct.point_endpoint("orders-primary", EAST, f"127.0.0.1:{server.port}", admin_socket=server.socket)
        server.sql("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (1);")
        writer = subprocess.Popen([mariadb_binary("mariadb"), "--no-defaults", "-uroot", f"--socket={server.socket}",
                                   "-e", "UPDATE shop.t SET id = id + SLEEP(4);"], stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            modify_read_only(acct, ORDERS_GROUP)
            watch(lambda: acct.parameter_group("orders-primary", EAST)[1], lambda s: s == "in-sync")
            assert writer.poll() is None and global_read_only(server) == "0", "in-sync, yet the server still takes writes"
            watch(lambda: global_read_only(server), lambda v: v == "1", timeout=15)
            assert writer.wait(timeout=10) == 0
        finally:
            if writer.poll() is None:
                writer.kill()
    finally:
        server.stop()


def test_a_db_snapshot_is_creating_before_it_is_available_and_its_identifier_is_taken(acct):
    rds = acct.client("rds", EAST)
    rds.create_db_snapshot(DBInstanceIdentifier="orders-primary", DBSnapshotIdentifier="orders-fence-1")
    seen = watch(lambda: acct.snapshots("orders-primary", EAST)["orders-fence-1"], lambda s: s == "available")
    assert seen[0][1] == "creating", seen
    with pytest.raises(botocore.exceptions.ClientError) as e:
        rds.create_db_snapshot(DBInstanceIdentifier="orders-primary", DBSnapshotIdentifier="orders-fence-1")
    assert error_of(e)[0] == "DBSnapshotAlreadyExists"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        rds.create_db_snapshot(DBInstanceIdentifier="no-such-db", DBSnapshotIdentifier="x-1")
    assert error_of(e)[0] == "DBInstanceNotFound"


def test_stop_db_instance_is_refused_while_it_has_read_replicas_or_is_one(acct):
    rds_east, rds_west = acct.client("rds", EAST), acct.client("rds", HOME_REGION)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        rds_east.stop_db_instance(DBInstanceIdentifier="orders-primary")
    code, msg, status = error_of(e)
    assert (code, status) == ("InvalidDBInstanceState", 400) and "read replicas" in msg, msg
    with pytest.raises(botocore.exceptions.ClientError) as e:
        rds_west.stop_db_instance(DBInstanceIdentifier="orders-replica-1")
    assert error_of(e)[0] == "InvalidDBInstanceState"
    assert instance(acct, EAST, "orders-primary")["DBInstanceStatus"] == "available"
    # Once its replicas are promoted away it can be stopped: stopping, then stopped.
    for r in ("orders-replica-1", "orders-replica-2"):
        rds_west.promote_read_replica(DBInstanceIdentifier=r)
    for r in ("orders-replica-1", "orders-replica-2"):
        watch(lambda: instance(acct, HOME_REGION, r)["DBInstanceStatus"], lambda s: s == "available")
    assert instance(acct, EAST, "orders-primary").get("ReadReplicaDBInstanceIdentifiers") == []
    rds_east.stop_db_instance(DBInstanceIdentifier="orders-primary")
    seen = watch(lambda: instance(acct, EAST, "orders-primary")["DBInstanceStatus"], lambda s: s == "stopped")
    assert seen[0][1] == "stopping", seen


def test_a_dark_region_answers_nothing_until_it_is_back(acct, faithful):
    from world import ORDERS_GROUP

    faithful.region_outage(EAST, True)
    try:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            modify_read_only(acct, ORDERS_GROUP)
        assert error_of(e)[2] == 503
        assert acct.instance("orders-replica-1")["DBInstanceStatus"] == "available", "the DR region still answers"
    finally:
        faithful.region_outage(None, False)
    assert acct.group_value(ORDERS_GROUP, EAST) is None, "nothing was applied while dark"
    modify_read_only(acct, ORDERS_GROUP)
    assert acct.group_value(ORDERS_GROUP, EAST) == "1"


# ------------------------------------------------------------------ configuration at scale (issue 15)


def hundred_sites() -> dict:
    """100 real-looking sites: 25 of each of the example's four (RDS replica, Aurora cluster,
    Aurora global, Multi-AZ), every name made its own (instances, clusters, alarms, secrets,
    writer names, one hosted zone per site)."""
    example = json.loads((ROOT / "infra" / "sites.example.json").read_text())
    sites = []
    for n in range(25):
        for base in example["sites"]:
            new = f"{base['id']}-{n:02d}"
            text = json.dumps(base).replace(base["id"], new).replace(base["id"].upper(), new.replace("-", "").upper())
            sites.append(json.loads(text))
    return {**example, "sites": sites}


def test_a_hundred_sites_load_from_versioned_s3_through_the_real_adapter_and_a_bad_version_leaves_the_first(
        faithful, workdir):
    faithful.reset()
    s3 = World(faithful.endpoint).client("s3")
    bucket, key = "acme-rds-failover-config", "sites.json"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": HOME_REGION})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    good = hundred_sites()
    assert len({s["id"] for s in good["sites"]}) == 100 and len({s["dns"]["zone_id"] for s in good["sites"]}) == 100
    body = json.dumps(good, indent=2)
    assert len(body) > 4096 * 20, len(body)  # far past Lambda's 4 KB of environment
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    # The typo a bad update carries: a site pasted twice under the same id.
    bad = json.loads(body)
    bad["sites"][57]["id"] = bad["sites"][3]["id"]
    bad_path = workdir / "sites-bad.json"
    bad_path.write_text(json.dumps(bad, indent=2))
    env = {**os.environ, "AWS_ENDPOINT_URL": faithful.endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": HOME_REGION,
           "FAILOVER_CONFIG_S3": f"s3://{bucket}/{key}", "RDS_FAILOVER_BAD_CONFIG": str(bad_path)}
    started = time.monotonic()
    run = subprocess.run(
        ["cargo", "test", "--quiet", "-p", "failover-adapters", "--test", "s3_config_emulator", "--",
         "--ignored", "--nocapture"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    [line] = [ln for ln in run.stdout.splitlines() if ln.startswith("S3CONFIG ")]
    seen = json.loads(line.removeprefix("S3CONFIG "))
    print(f"100-site document {len(body)} bytes; {seen} (cargo test {time.monotonic() - started:.1f} s)")
    versions = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    assert [v["VersionId"] for v in sorted(versions, key=lambda v: not v["IsLatest"])] == [seen["v2"], seen["v1"]]
