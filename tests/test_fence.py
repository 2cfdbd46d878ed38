"""The old primary after a failover (issue 12), played through the real chain on the faithful
emulator with real MariaDB: the old primary and orders-replica-1 are two MariaDB servers with real
GTID replication; the emulator applies `read_only` set in orders-primary's own parameter group to
the old primary's server (tests/faithful_moto.py, corrections 7-10), and promotes the replica's
server when its RDS promotion completes.

Time: the evaluator's scheduled tick is delivered as often as the test likes, so "30 minutes
dark" is 30 ticks (one a minute, as infra/template.yaml schedules it) delivered back to back;
nothing in the fence depends on wall-clock time between ticks, only on what each tick observes.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time

import pytest

from chain import Chain
from harness import LambdaEmulator, MariaDB, MotoServer, mariadb_binary
from world import HOME_REGION, ORDERS_GROUP, World, function_env, now, site_config, tick_event

PROMOTION = 2.0
INSYNC = 1.0
EAST = "us-east-1"
FUNCTIONS = ("alarm-evaluator", "replica-promoter", "dns-pinner", "notifier")
WRITER = "db.orders.example.com"
FENCE_PASSWORD_VAR = "RDS_FAILOVER_FENCE_PASSWORD"
FENCER, FENCER_PASSWORD = "fencer", "fencer-pass"
LOST = 5  # transactions committed on the old primary that the replica never applies
DARK_TICKS = 30


@pytest.fixture(scope="module")
def faithful(workdir):
    d = workdir / "fence-emulator"
    d.mkdir(exist_ok=True)
    server = MotoServer(d, promotion_secs=PROMOTION, dns_insync_secs=INSYNC).start()
    yield server
    server.region_outage(None, False)
    server.stop()


class Site:
    def __init__(self, world, emu, zone, old: MariaDB, new: MariaDB):
        self.world, self.emu, self.zone, self.old, self.new = world, emu, zone, old, new
        self.chain = Chain(world, emu)
        self.pages: list[str] = []  # detail-types of the domain events, in order
        self.paged_keys: list[str | None] = [None]  # the fence state the ledger says was paged, per tick

    def state(self) -> dict:
        return self.world.state("orders")

    def record(self):
        return self.world.writer_record(self.zone, WRITER)

    def fail_over(self) -> dict:
        t = dt.datetime.now(dt.timezone.utc)
        for r in ("orders-replica-1", "orders-replica-2"):
            self.world.put_lag(r, 2.0, t - dt.timedelta(seconds=30))
        return self.emu.invoke("alarm-evaluator", {"command": "failover", "site": "orders", "operator": "alice",
                                                   "reason": "drill: us-east-1 lost"})["verdicts"][0]

    def tick(self) -> list[str]:
        """One scheduled tick, and what it emitted routed on (the notifier pages people)."""
        before = len(self.chain.seen)
        self.emu.invoke("alarm-evaluator", tick_event(now()))
        self.chain.pump()
        new = [e["detail-type"] for e in self.chain.seen[before:]]
        self.pages.extend(new)
        self.paged_keys.append((self.state().get("fence") or {}).get("paged"))
        return new


@pytest.fixture
def site(faithful, mariadb, workdir, request):
    faithful.reset()
    world = World(faithful.endpoint).seed()
    old = MariaDB(workdir, "fence-old-primary", server_id=31, binlog=True).start()
    new = MariaDB(workdir, "fence-new-primary", server_id=32, binlog=True).start()
    try:
        old.sql(f"CREATE USER '{FENCER}'@'127.0.0.1' IDENTIFIED BY '{FENCER_PASSWORD}';"
                f"GRANT ALL ON *.* TO '{FENCER}'@'127.0.0.1';"
                "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(40));"
                "INSERT INTO shop.orders VALUES (1, 'replicated');")
        new.replicate_from(old)  # from the current position: the user and table come along below
        new.sql("STOP SLAVE; SET GLOBAL gtid_slave_pos = '';"
                "CHANGE MASTER TO MASTER_USE_GTID=slave_pos; START SLAVE;")
        want = old.sql("SELECT @@GLOBAL.gtid_binlog_pos;").strip()
        deadline = time.monotonic() + 30
        while new.sql("SELECT @@GLOBAL.gtid_slave_pos;").strip() != want:
            assert time.monotonic() < deadline, "the replica never caught up"
            time.sleep(0.1)
        world.point_endpoint("orders-primary", EAST, f"127.0.0.1:{old.port}", admin_socket=old.socket)
        world.point_endpoint("orders-replica-1", HOME_REGION, f"127.0.0.1:{new.port}", admin_socket=new.socket)
        zone = world.seed_writer_record(WRITER, world.instance("orders-primary", EAST)["Endpoint"]["Address"], ttl=300)
        topic = world.seed_topic()
        cfg = site_config(old.port, others_port=mariadb.port)
        cfg["sites"][0]["dns"]["zone_id"] = zone
        cfg["sites"][0]["fence"] = {"parameter_group": ORDERS_GROUP, "sql_user": FENCER,
                                    "sql_credentials": {"kind": "env", "var": FENCE_PASSWORD_VAR}, "snapshot": True}
        if getattr(request, "param", {}).get("shared"):
            # Another site whose primary is in the same region names the same group: fencing one
            # would fence both (a group of that name in another region would be another group).
            payments = next(x for x in cfg["sites"] if x["id"] == "payments")
            assert payments["primary"]["region"] == EAST
            payments["fence"] = {"parameter_group": ORDERS_GROUP}
        env = function_env(faithful.endpoint, cfg) | {"TOPIC_ARN": topic, "RDS_FAILOVER_FALLBACK_BUDGET_SECS": "30",
                                                     FENCE_PASSWORD_VAR: FENCER_PASSWORD}
        d = workdir / f"chain-{request.node.name}"
        d.mkdir(exist_ok=True)
        emu = LambdaEmulator(d).start(env, functions=FUNCTIONS)
        try:
            site = Site(world, emu, zone, old, new)
            site.log = d / "cargo-lambda-watch.log"
            yield site
        finally:
            emu.stop()
    finally:
        faithful.region_outage(None, False)
        new.stop()
        old.stop()


def read_only(db: MariaDB) -> str:
    return db.sql("SELECT @@GLOBAL.read_only;").strip()


def commit_lost_transactions(site: Site) -> list[str]:
    """The replica stops applying; the primary commits LOST transactions, one row each."""
    site.new.sql("STOP SLAVE SQL_THREAD;")
    for i in range(LOST):
        site.old.sql(f"INSERT INTO shop.orders VALUES ({100 + i}, 'never replicated');")
    return site.old.sql("SELECT @@GLOBAL.gtid_binlog_pos;").strip().split(",")


def fail_over_while_east_is_dark(site: Site, faithful) -> None:
    site.old.kill()
    faithful.region_outage(EAST, True)
    v = site.fail_over()
    assert v["outcome"]["kind"] == "failover-decided", v["summary"]
    site.chain.pump()
    assert site.chain.types_seen()[-2:] == ["ReplicaPromoted", "DnsPinned"], site.chain.types_seen()
    assert site.record()[0] == "127.0.0.1"


def fence_changes(site: Site) -> int:
    return sum(p == "FenceChanged" for p in site.pages)


def test_a_region_dark_for_30_minutes_then_back_is_fenced_within_one_tick_and_the_loss_is_counted(site, faithful):
    """Scenarios 1, 2 and 4 in one incident: us-east-1 dark through the failover and for 30 ticks
    after it; its server comes back first (writable: CRITICAL within one tick, the pin stays), then
    its RDS API (read_only applied within one tick, confirmed over SQL); the divergence report
    counts exactly the LOST transactions the replica never applied."""
    commit_lost_transactions(site)
    fail_over_while_east_is_dark(site, faithful)

    for _ in range(DARK_TICKS):
        site.tick()
    param = next(s for s in site.state()["fence"]["steps"] if s["step"] == "parameter-read-only")
    assert param["state"] == "pending" and param["attempts"] >= DARK_TICKS, param
    assert param.get("last"), ("what the last attempt saw", param)
    assert fence_changes(site) == 1, ("one page for the fence while dark, however many ticks", site.pages)
    assert "OldPrimaryWritable" not in site.pages

    # The server is back (its engine restarted; nothing set read_only in its parameter file), the API not yet.
    site.old.start()
    assert read_only(site.old) == "0"
    assert "OldPrimaryWritable" in site.tick(), site.pages[-5:]
    assert site.record()[0] == "127.0.0.1", "the pin stays"
    assert sum(p == "OldPrimaryWritable" for p in site.pages) == 1
    site.tick()
    assert sum(p == "OldPrimaryWritable" for p in site.pages) == 1, "one CRITICAL per episode, not per tick"

    faithful.region_outage(None, False)
    changes_before = fence_changes(site)
    site.tick()
    assert read_only(site.old) == "1", "read_only applied within one tick of the region's return"
    assert site.world.group_value(ORDERS_GROUP, EAST) == "1"
    for _ in range(6):
        steps = {s["step"]: s for s in site.state()["fence"]["steps"]}
        if all(s["state"] != "pending" for s in steps.values()):
            break
        time.sleep(PROMOTION / 2)  # the snapshot is `creating` for PROMOTION s
        site.tick()
    steps = {s["step"]: s for s in site.state()["fence"]["steps"]}
    assert steps["sql-read-only"]["state"] == "done" and "read_only = 1" in steps["sql-read-only"]["observed"], steps
    assert steps["end-sessions"]["state"] == "done", steps
    assert steps["snapshot"]["state"] == "done", steps
    assert site.world.snapshots("orders-primary", EAST)["orders-primary-fence-epoch-1"] == "available"
    # One page per change of the fence's state: as many FenceChanged pages as changes of the
    # state the ledger recorded as paged, tick after tick.
    fence = site.state()["fence"]
    changes = sum(a != b for a, b in zip(site.paged_keys, site.paged_keys[1:]))
    assert fence_changes(site) == changes and fence_changes(site) - changes_before >= 1, (site.pages, site.paged_keys)
    # Writes from the application are refused now (the fencer's own session was ended).
    with pytest.raises(subprocess.CalledProcessError) as e:
        subprocess.run([mariadb_binary("mariadb"), "--no-defaults", "-h127.0.0.1", f"-P{site.old.port}",
                        f"-u{MariaDB.CANARY_USER}", f"-p{MariaDB.CANARY_PASSWORD}", "-e",
                        "INSERT INTO shop.orders VALUES (999, 'after the fence');"],
                       check=True, capture_output=True, text=True)
    assert "read-only" in e.value.stderr or "denied" in e.value.stderr, e.value.stderr

    d = fence["divergence"]
    assert d["lost"]["count"] == LOST and not d["provisional"], d
    assert d["snapshot_id"] == "orders-primary-fence-epoch-1", d
    print("\nfence pages, as published:")
    for e in site.chain.seen:
        if e["detail-type"] in ("FenceChanged", "OldPrimaryWritable", "DivergenceMeasured"):
            print(f"--- {e['detail-type']}\n{e['detail']['verdict']['summary']}")
    assert site.record()[0] == "127.0.0.1", "DNS never moved back"


def steps(site: Site) -> dict:
    return {s["step"]: s for s in site.state()["fence"]["steps"]}


def fail_over_with_the_old_primary_back(site: Site, faithful) -> None:
    """The primary is lost and the failover runs (us-east-1's API dark through it, so nothing is
    fenced yet); then the old primary's server and its region are back, writable."""
    fail_over_while_east_is_dark(site, faithful)
    site.old.start()
    assert read_only(site.old) == "0"


def test_a_long_running_write_delays_read_only_and_the_fence_is_done_only_when_sql_shows_it(site, faithful):
    """Scenario 3 on real MariaDB: the parameter group says read_only=1 and in-sync, but the server's
    `SET GLOBAL read_only` waits behind a running write; the SQL step stays pending (and nothing
    after it runs) until the server itself says 1."""
    commit_lost_transactions(site)
    fail_over_with_the_old_primary_back(site, faithful)
    writer = subprocess.Popen([mariadb_binary("mariadb"), "--no-defaults", "-uroot", f"--socket={site.old.socket}",
                               "-e", "UPDATE shop.orders SET note = CONCAT(note, SLEEP(12)) WHERE id = 1;"],
                              stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        faithful.region_outage(None, False)
        site.tick()
        assert site.world.group_value(ORDERS_GROUP, EAST) == "1"
        seen = []
        for _ in range(3):
            time.sleep(1.5)
            site.tick()
            st = steps(site)
            seen.append((st["parameter-read-only"]["state"], st["sql-read-only"]["state"], read_only(site.old)))
        assert writer.poll() is None, "the write still runs"
        assert seen[-1] == ("done", "pending", "0"), seen
        assert "read_only = 0" in steps(site)["sql-read-only"]["last"], steps(site)["sql-read-only"]
        assert steps(site)["end-sessions"]["state"] == "pending" and steps(site)["end-sessions"]["attempts"] == 0
        assert writer.wait(timeout=30) == 0
        assert read_only(site.old) == "1"
        site.tick()
        assert steps(site)["sql-read-only"]["state"] == "done", steps(site)
    finally:
        if writer.poll() is None:
            writer.kill()


@pytest.mark.parametrize("site", [{"shared": True}], indirect=True)
def test_a_shared_parameter_group_is_flagged_at_validation_and_refused_by_the_fence(site, faithful):
    """Scenario 5: orders' group is also named by the payments site (its primary in us-east-1 too). The cold start's validation
    warns; the fence refuses the parameter step with the reason and never modifies the group; the
    old primary stays writable, and the CRITICAL page says the tool will not set read_only."""
    fail_over_with_the_old_primary_back(site, faithful)
    faithful.region_outage(None, False)
    site.tick()
    site.tick()
    log = site.log.read_text()
    assert "shared with site(s) payments" in log and "cannot be fenced without affecting others" in log
    p = steps(site)["parameter-read-only"]
    assert p["state"] == "refused" and "shared with site(s) payments" in p["reason"], p
    assert site.world.group_value(ORDERS_GROUP, EAST) is None, "ModifyDBParameterGroup never sent"
    assert read_only(site.old) == "0"
    critical = [e for e in site.chain.seen if e["detail-type"] == "OldPrimaryWritable"]
    assert len(critical) == 1, site.pages
    assert "The tool will not set read_only" in critical[0]["detail"]["verdict"]["summary"]
    assert site.record()[0] == "127.0.0.1", "the pin stays"
