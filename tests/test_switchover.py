"""The planned switchover of an RDS read replica site (issue 13), played through the real chain on
the faithful emulator with real MariaDB: orders-primary and orders-replica-1 are two MariaDB
servers with real GTID replication; the emulator applies `read_only` set in orders-primary's own
parameter group to the old primary's server (tests/faithful_moto.py), and promotes the replica's
server when its RDS promotion completes.

The evaluator's tick and the chain's deliveries run one after the other (the chain is
synchronous): the command records the epoch and puts FailoverDecided on the bus; a tick fences,
captures the fenced position and waits for the target; then the bus is pumped (the promoter,
released, promotes; the pinner moves DNS); a last tick takes the promotion and the pin into the
switchover record. The RTO printed is the ledger's: from the fence's start (recorded before the
first ModifyDBParameterGroup) to the promoter's verified writes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from chain import Chain
from harness import InvokeError, LambdaEmulator, MariaDB, MotoServer, mariadb_binary
from world import HOME_REGION, ORDERS_GROUP, World, function_env, site_config, tick_event

PROMOTION = 2.0
INSYNC = 1.0
EAST = "us-east-1"
FUNCTIONS = ("alarm-evaluator", "replica-promoter", "dns-pinner", "notifier")
WRITER = "db.orders.example.com"
FENCE_PASSWORD_VAR = "RDS_FAILOVER_FENCE_PASSWORD"
FENCER, FENCER_PASSWORD = "fencer", "fencer-pass"
APP, APP_PASSWORD = "app", "app-pass"  # no SUPER / READ_ONLY ADMIN: read_only binds it


@pytest.fixture(scope="module")
def faithful(workdir):
    d = workdir / "switchover-emulator"
    d.mkdir(exist_ok=True)
    server = MotoServer(d, promotion_secs=PROMOTION, dns_insync_secs=INSYNC).start()
    yield server
    server.stop()


class Site:
    def __init__(self, world, emu, zone, old: MariaDB, new: MariaDB):
        self.world, self.emu, self.zone, self.old, self.new = world, emu, zone, old, new
        self.chain = Chain(world, emu)

    def state(self) -> dict:
        return self.world.state("orders")

    def record(self):
        return self.world.writer_record(self.zone, WRITER)

    def switchover(self, max_wait: int) -> dict:
        t = dt.datetime.now(dt.timezone.utc)
        for r in ("orders-replica-1", "orders-replica-2"):
            self.world.put_lag(r, 0.0, t - dt.timedelta(seconds=30))
        return self.emu.invoke("alarm-evaluator", {
            "command": "switchover", "site": "orders", "candidate": "orders-replica-1", "operator": "alice",
            "reason": "planned move to us-west-2", "max_wait_secs": max_wait})["verdicts"][0]

    ticks = 0  # ticks sent so far (bench part 6 reports how many the fence and catch-up took)

    def tick(self) -> dict:
        self.ticks += 1
        return self.emu.invoke("alarm-evaluator", tick_event(dt.datetime.now(dt.timezone.utc)))

    def sw(self) -> dict:
        return self.state()["switchover"]

    def tick_while(self, phases: tuple[str, ...], ticks: int = 20) -> dict:
        """Ticks (0.5 s apart: the schedule's minute, compressed) while the switchover is in one
        of `phases` — RDS reads the group `applying` before `in-sync`, and read_only can wait
        behind a running write, so the fence can take more than one tick."""
        for _ in range(ticks):
            self.tick()
            sw = self.sw()
            if sw["phase"] not in phases:
                return sw
            time.sleep(0.5)
        raise AssertionError(f"still {sw['phase']} after {ticks} ticks: {sw}; fence {self.state()['fence']['steps']}")


@pytest.fixture
def site(faithful, mariadb, workdir, request):
    faithful.reset()
    world = World(faithful.endpoint).seed()
    old = MariaDB(workdir, "switchover-old", server_id=41, binlog=True).start()
    new = MariaDB(workdir, "switchover-new", server_id=42, binlog=True).start()
    try:
        old.sql(f"CREATE USER '{FENCER}'@'127.0.0.1' IDENTIFIED BY '{FENCER_PASSWORD}';"
                f"GRANT ALL ON *.* TO '{FENCER}'@'127.0.0.1';"
                f"CREATE USER '{APP}'@'127.0.0.1' IDENTIFIED BY '{APP_PASSWORD}';"
                "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(40));"
                f"GRANT INSERT, SELECT ON shop.* TO '{APP}'@'127.0.0.1';"
                "INSERT INTO shop.orders VALUES (1, 'replicated');")
        new.replicate_from(old)
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
                                    "sql_credentials": {"kind": "env", "var": FENCE_PASSWORD_VAR}}
        env = function_env(faithful.endpoint, cfg) | {"TOPIC_ARN": topic, "RDS_FAILOVER_FALLBACK_BUDGET_SECS": "30",
                                                     FENCE_PASSWORD_VAR: FENCER_PASSWORD}
        d = workdir / f"chain-{request.node.name}"
        d.mkdir(exist_ok=True)
        emu = LambdaEmulator(d).start(env, functions=FUNCTIONS)
        for fn in FUNCTIONS[1:]:
            # `cargo lambda watch` builds and starts each function at its first invocation; warm
            # them (a malformed event: a typed error, nothing read or changed) so that the RTO
            # measured below is the chain's, not the emulator's compile time.
            try:
                emu.invoke(fn, {"warm": True})
            except InvokeError:
                pass
        try:
            yield Site(world, emu, zone, old, new)
        finally:
            emu.stop()
    finally:
        new.stop()
        old.stop()


def app_insert(db: MariaDB, row: int) -> bool:
    """One application write in its own connection; whether the server committed it."""
    r = subprocess.run([mariadb_binary("mariadb"), "--no-defaults", "-h127.0.0.1", f"-P{db.port}",
                        f"-u{APP}", f"-p{APP_PASSWORD}", "-e",
                        f"INSERT INTO shop.orders VALUES ({row}, 'app');"], capture_output=True, text=True)
    return r.returncode == 0


def rows(db: MariaDB) -> set[int]:
    return {int(x) for x in db.sql("SELECT id FROM shop.orders;").split()}


def test_scenario_1_writes_until_the_fence_are_all_on_the_new_primary_rpo_0(site):
    committed: list[int] = []
    stop = threading.Event()

    def writer():
        row = 1000
        while not stop.is_set():
            row += 1
            if app_insert(site.old, row):
                committed.append(row)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        while len(committed) < 20:
            time.sleep(0.05)
        v = site.switchover(max_wait=60)
        assert v["outcome"]["kind"] == "failover-decided", v["summary"]
        assert site.sw()["phase"] == "fencing"
        ticks_before = site.ticks
        sw = site.tick_while(("fencing", "capturing", "catching-up"))
        ticks = site.ticks - ticks_before
        assert sw["phase"] == "promoting", sw
        refused_after = len(committed)
        time.sleep(0.5)
        assert len(committed) == refused_after, "no write commits on the fenced old primary"
    finally:
        stop.set()
        t.join()
    assert site.old.sql("SELECT @@GLOBAL.read_only;").strip() == "1"
    site.chain.pump()
    assert "ReplicaPromoted" in site.chain.types_seen() and "DnsPinned" in site.chain.types_seen(), site.chain.types_seen()
    site.tick()
    sw = site.sw()
    assert sw["phase"] == "done", sw
    on_new = rows(site.new)
    missing = sorted(set(committed) - on_new)
    assert not missing, f"committed on the old primary, not on the new one: {missing}"
    assert sw["measured"]["rpo_transactions"] == 0, sw
    assert site.new.sql("SELECT @@GLOBAL.read_only;").strip() == "0"
    assert site.record()[0] == "127.0.0.1"
    assert len(committed) > 20
    figures = os.environ.get("RDS_FAILOVER_SWITCHOVER_FIGURES")
    if figures:  # bench/switchover.py (make bench part 6) reads the ledger's figures from here
        at = lambda k: dt.datetime.fromisoformat(sw[k].replace("Z", "+00:00"))  # noqa: E731
        Path(figures).write_text(json.dumps({
            "rto_ms": sw["measured"]["rto_ms"], "rpo_transactions": sw["measured"]["rpo_transactions"],
            "rows": len(committed), "ticks_to_promoting": ticks,
            "fence_to_dns_moved_ms": round((at("dns_moved_at") - at("fence_started_at")).total_seconds() * 1000)
            if sw.get("dns_moved_at") else None}))
    print(f"\nswitchover measured (ledger): RTO {sw['measured']['rto_ms']} ms from the fence's start "
          f"({sw['fence_started_at']}) to verified writes ({sw['writes_verified_at']}); RPO "
          f"{sw['measured']['rpo_transactions']} transactions; {len(committed)} rows committed before the fence, "
          f"all on the new primary; captured {sw['captured']}; fenced {sw['fenced_at']}, caught up "
          f"{sw['caught_up_at']}, promotion requested {sw['promotion_requested_at']}")


def test_scenario_2_a_lagging_target_past_max_wait_rolls_back_old_primary_writable_dns_untouched(site):
    site.new.sql("STOP SLAVE SQL_THREAD;")
    for i in range(5):
        assert app_insert(site.old, 2000 + i)
    before_dns = site.record()
    v = site.switchover(max_wait=3)
    assert v["outcome"]["kind"] == "failover-decided", v["summary"]
    seen_before = len(site.chain.seen)
    sw = site.tick_while(("fencing", "capturing", "catching-up"))
    assert sw["phase"] in ("rolling-back", "rolled-back"), sw
    assert site.state()["phase"] == "aborted"
    sw = site.tick_while(("rolling-back",))
    assert sw["phase"] == "rolled-back", sw
    assert "not caught up" in sw["rollback"]["why"], sw
    site.chain.pump()
    after = [e["detail-type"] for e in site.chain.seen[seen_before:]]
    assert after.count("FailoverAborted") == 1, after
    assert "ReplicaPromoted" not in after and "DnsPinned" not in after and "FailoverFailed" not in after, after
    assert site.old.sql("SELECT @@GLOBAL.read_only;").strip() == "0"
    # The group did not set read_only before the fence: the rollback resets it (engine default,
    # 0 on a primary) rather than leaving a `read_only=0` the team never set.
    assert site.world.group_value(ORDERS_GROUP, EAST) is None
    assert site.sw()["before_fence"] == {"group_read_only": None, "server_read_only": False}, site.sw()
    assert app_insert(site.old, 3000), "the old primary takes writes again"
    assert site.record() == before_dns, "DNS untouched"
    assert site.new.sql("SELECT @@GLOBAL.read_only;").strip() == "1", "the target was never promoted"
    aborted = next(e for e in site.chain.seen[seen_before:] if e["detail-type"] == "FailoverAborted")
    print(f"\nrolled back: {aborted['detail']['verdict']['summary']}")
