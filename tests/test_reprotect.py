"""Re-protect after a failover (issue 13, scenario 4), through the real chain on the faithful
emulator with real MariaDB: orders-primary (us-east-1) and orders-replica-1 (us-west-2) are two
MariaDB servers with real GTID replication; the failover promotes orders-replica-1's server. The
`reprotect` command then asks for a new replica of it back in us-east-1, whose RDS API is dark.
When the region answers, the emulator's CreateDBInstanceReadReplica (tests/faithful_moto.py,
correction 14) starts a real MariaDB server for the new instance, loaded from a dump of the new
primary's server and replicating from it; the instance is `creating` until it replicates, and its
`ReplicaLag` metric is the real replica's.

Time: the scheduled tick is delivered as often as the test likes (0.5 s apart: the schedule's
minute, compressed); nothing in the re-protection depends on wall-clock time between ticks.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from chain import Chain
from harness import InvokeError, LambdaEmulator, MariaDB, MotoServer, mariadb_binary
from world import HOME_REGION, World, function_env, site_config, tick_event

PROMOTION = 2.0
INSYNC = 1.0
EAST = "us-east-1"
FUNCTIONS = ("alarm-evaluator", "replica-promoter", "dns-pinner", "notifier")
WRITER = "db.orders.example.com"
SOURCE = "orders-replica-1"
REPLICA = "orders-replica-1-rp1"  # `reprotect`'s default name: <primary>-rp<epoch>
RP_GROUP = "orders-east-replica-params"
RP_SUBNETS = "orders-east-subnets"
RP_SG = "sg-0e57a11c"
RP_KMS = "alias/orders-east"
DARK_TICKS = 5


@pytest.fixture(scope="module")
def faithful(workdir):
    d = workdir / "reprotect-emulator"
    d.mkdir(exist_ok=True)
    server = MotoServer(d, promotion_secs=PROMOTION, dns_insync_secs=INSYNC).start()
    yield server
    server.region_outage(None, False)
    server.stop()  # stops the servers the emulator started for the replicas it created


def east_network(world: World) -> None:
    """us-east-1's own parameter group, subnet group and security group for the replica, as the
    site's `reprotect` section names them (a cross-region replica's group must be in its region)."""
    rds, ec2 = world.client("rds", EAST), world.client("ec2", EAST)
    rds.create_db_parameter_group(DBParameterGroupName=RP_GROUP, DBParameterGroupFamily="mysql8.0",
                                  Description="orders' us-east-1 replica: its own, so it can be fenced")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{EAST}{z}")["Subnet"]["SubnetId"]
               for i, z in ((1, "a"), (2, "b"))]
    rds.create_db_subnet_group(DBSubnetGroupName=RP_SUBNETS, DBSubnetGroupDescription="orders in us-east-1",
                               SubnetIds=subnets)


class Site:
    def __init__(self, world, emu, zone, old: MariaDB, new: MariaDB):
        self.world, self.emu, self.zone, self.old, self.new = world, emu, zone, old, new
        self.chain = Chain(world, emu)

    def state(self) -> dict:
        return self.world.state("orders")

    def command(self, cmd: str, **kw) -> dict:
        return self.emu.invoke("alarm-evaluator", {"command": cmd, "site": "orders", **kw})["verdicts"][0]

    def tick(self) -> None:
        self.emu.invoke("alarm-evaluator", tick_event(dt.datetime.now(dt.timezone.utc)))
        self.chain.pump()

    def messages(self) -> list[str]:
        return [e["detail"]["verdict"]["summary"] for e in self.chain.seen if e["detail-type"] == "ReprotectChanged"]

    def phase(self) -> str | None:
        return (self.state().get("reprotect") or {}).get("phase")


@pytest.fixture
def site(faithful, mariadb, workdir, request):
    faithful.reset()
    world = World(faithful.endpoint).seed()
    east_network(world)
    old = MariaDB(workdir, "reprotect-old", server_id=51, binlog=True).start()
    new = MariaDB(workdir, "reprotect-new", server_id=52, binlog=True).start()
    try:
        old.sql("CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(40));"
                "INSERT INTO shop.orders VALUES (1, 'before the failover');")
        new.replicate_from(old)
        new.sql("STOP SLAVE; SET GLOBAL gtid_slave_pos = ''; CHANGE MASTER TO MASTER_USE_GTID=slave_pos; START SLAVE;")
        want = old.sql("SELECT @@GLOBAL.gtid_binlog_pos;").strip()
        deadline = time.monotonic() + 30
        while new.sql("SELECT @@GLOBAL.gtid_slave_pos;").strip() != want:
            assert time.monotonic() < deadline, "the replica never caught up"
            time.sleep(0.1)
        world.point_endpoint("orders-primary", EAST, f"127.0.0.1:{old.port}", admin_socket=old.socket)
        world.point_endpoint(SOURCE, HOME_REGION, f"127.0.0.1:{new.port}", admin_socket=new.socket)
        zone = world.seed_writer_record(WRITER, world.instance("orders-primary", EAST)["Endpoint"]["Address"], ttl=300)
        topic = world.seed_topic()
        cfg = site_config(old.port, others_port=mariadb.port)
        cfg["sites"][0]["dns"]["zone_id"] = zone
        cfg["sites"][0]["reprotect"] = {"region": EAST, "parameter_group": RP_GROUP, "security_groups": [RP_SG],
                                        "subnet_group": RP_SUBNETS, "kms_key_id": RP_KMS}
        env = function_env(faithful.endpoint, cfg) | {"TOPIC_ARN": topic, "RDS_FAILOVER_FALLBACK_BUDGET_SECS": "30"}
        d = workdir / f"chain-{request.node.name}"
        d.mkdir(exist_ok=True)
        emu = LambdaEmulator(d).start(env, functions=FUNCTIONS)
        try:
            warm(emu)
            yield Site(world, emu, zone, old, new)
        finally:
            emu.stop()
    finally:
        faithful.region_outage(None, False)
        new.stop()
        old.stop()


def warm(emu: LambdaEmulator, budget_secs: float = 900) -> None:
    """`cargo lambda watch` builds and starts each function at its first invocation, which on a
    loaded machine can outlast one invoke's timeout: each is asked (a malformed event: a typed
    error, nothing read or changed) until it answers, so the scenario's invokes are the chain's."""
    deadline = time.monotonic() + budget_secs
    for fn in FUNCTIONS:
        while True:
            try:
                emu.invoke(fn, {"warm": True})
                break
            except InvokeError:
                break
            except OSError:
                assert time.monotonic() < deadline, f"{fn} never answered"


def fail_over_with_east_dark(site: Site, faithful) -> None:
    """us-east-1 is lost (its server killed, its API dark); the failover promotes orders-replica-1
    and pins DNS; a human completes the epoch."""
    site.old.kill()
    faithful.region_outage(EAST, True)
    t = dt.datetime.now(dt.timezone.utc)
    for r in ("orders-replica-1", "orders-replica-2"):
        site.world.put_lag(r, 2.0, t - dt.timedelta(seconds=30))
    v = site.command("failover", operator="alice", reason="drill: us-east-1 lost")
    assert v["outcome"]["kind"] == "failover-decided", v["summary"]
    site.chain.pump()
    assert site.chain.types_seen()[-2:] == ["ReplicaPromoted", "DnsPinned"], site.chain.types_seen()
    done = site.command("complete", epoch=1, operator="alice", reason="orders-replica-1 is the primary")
    assert done["outcome"]["kind"] == "completed", done["summary"]
    site.chain.pump()
    assert site.state()["phase"] == "completed"


def replica_server_socket(world: World) -> str:
    """The admin socket of the real server the emulator started for the new instance (its tag)."""
    rds = world.client("rds", EAST)
    arn = world.instance(REPLICA, EAST)["DBInstanceArn"]
    return next(t["Value"] for t in rds.list_tags_for_resource(ResourceName=arn)["TagList"]
                if t["Key"] == "emulator:mysql-socket")


def rows_on(socket: str) -> set[int]:
    out = subprocess.run([mariadb_binary("mariadb"), "--no-defaults", "-uroot", f"--socket={socket}", "-N", "-B", "-e",
                          "SELECT id FROM shop.orders;"], check=True, capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


def test_scenario_4_reprotect_waits_out_a_dark_region_then_a_real_replica_with_the_configured_group(site, faithful):
    fail_over_with_east_dark(site, faithful)
    # The new primary runs without automated backups (a team's choice): a replication source needs them.
    site.world.client("rds").modify_db_instance(DBInstanceIdentifier=SOURCE, BackupRetentionPeriod=0, ApplyImmediately=True)
    assert "UNPROTECTED" in site.command("status")["summary"]

    v = site.command("reprotect", operator="alice", reason="epoch 1 completed: rebuild us-east-1")
    assert "UNPROTECTED" in v["summary"] and RP_GROUP in v["summary"], v["summary"]
    for _ in range(DARK_TICKS):
        site.tick()
    msgs = site.messages()
    assert len(msgs) == 2, ("the command's message, then one for the dark region however many ticks", msgs)
    assert "UNPROTECTED" in msgs[1] and f"{EAST} does not answer" in msgs[1], msgs
    assert site.phase() == "waiting-for-region"
    status = site.command("status")["summary"]
    assert "UNPROTECTED" in status, status

    faithful.region_outage(None, False)
    with pytest.raises(ClientError) as e:
        site.world.instance(REPLICA, EAST)
    assert e.value.response["Error"]["Code"] == "DBInstanceNotFound", "nothing was created while the region was dark"

    statuses = []
    for _ in range(40):
        site.tick()
        try:
            statuses.append(site.world.instance(REPLICA, EAST)["DBInstanceStatus"])
        except ClientError:
            statuses.append(None)
        if site.phase() in ("protected", "failed"):
            break
        time.sleep(0.5)
    assert site.phase() == "protected", (site.state()["reprotect"], statuses, site.messages())
    assert "creating" in statuses, ("the instance is creating until its real replica runs", statuses)

    src = site.world.instance(SOURCE)
    assert src["BackupRetentionPeriod"] == 7, "backups turned on first (the site's default retention)"
    r = site.world.instance(REPLICA, EAST)
    assert [g["DBParameterGroupName"] for g in r["DBParameterGroups"]] == [RP_GROUP], r["DBParameterGroups"]
    assert [g["VpcSecurityGroupId"] for g in r["VpcSecurityGroups"]] == [RP_SG], r["VpcSecurityGroups"]
    assert r["DBSubnetGroup"]["DBSubnetGroupName"] == RP_SUBNETS
    assert r["KmsKeyId"] == RP_KMS
    assert r["ReadReplicaSourceDBInstanceIdentifier"] == src["DBInstanceArn"]
    assert r["Endpoint"]["Port"] not in (site.new.port, site.old.port), "its own server"

    # Real rows written to the new primary arrive on the real replica.
    sock = replica_server_socket(site.world)
    site.new.sql("INSERT INTO shop.orders VALUES (2, 'after the failover'), (3, 'after the reprotect');")
    deadline = time.monotonic() + 15
    while rows_on(sock) != {1, 2, 3}:
        assert time.monotonic() < deadline, f"rows on the replica: {sorted(rows_on(sock))}"
        time.sleep(0.2)
    ro = subprocess.run([mariadb_binary("mariadb"), "--no-defaults", "-uroot", f"--socket={sock}", "-N", "-e",
                         "SELECT @@GLOBAL.read_only;"], check=True, capture_output=True, text=True).stdout.strip()
    assert ro == "1", "a replica is read-only"

    topo = site.state()["topology"]
    assert topo["primary"]["id"] == SOURCE
    assert topo["candidates"][0] == {"id": REPLICA, "region": EAST}, topo
    msgs = site.messages()
    assert "protected again" in msgs[-1], msgs
    status = site.command("status")["summary"]
    assert "UNPROTECTED" not in status, status
    print("\nreprotect messages, as published:\n" + "\n".join(f"--- {m}" for m in msgs))
    print(f"instance statuses seen tick by tick once the region answered: {statuses}")


def test_create_read_replica_refusals_as_rds(faithful):
    """Correction 14's refusals, without the chain: a source with BackupRetentionPeriod 0 is
    InvalidDBInstanceState, an unknown parameter group DBParameterGroupNotFound; nothing created."""
    faithful.reset()
    world = World(faithful.endpoint).seed()
    east_network(world)
    west = world.client("rds")
    arn = world.instance("orders-primary", EAST)["DBInstanceArn"]
    cases = [("nope-params", None, "DBParameterGroupNotFound"), (None, 0, "InvalidDBInstanceState")]
    for group, retention, code in cases:
        if retention is not None:
            world.client("rds", EAST).modify_db_instance(DBInstanceIdentifier="orders-primary",
                                                         BackupRetentionPeriod=retention, ApplyImmediately=True)
        with pytest.raises(ClientError) as e:
            west.create_db_instance_read_replica(DBInstanceIdentifier="refused-replica", SourceDBInstanceIdentifier=arn,
                                                 **({"DBParameterGroupName": group} if group else {}))
        assert e.value.response["Error"]["Code"] == code, e.value.response
        assert not west.describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": ["refused-replica"]}])["DBInstances"]
