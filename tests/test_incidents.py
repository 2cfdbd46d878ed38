"""Incident scenarios end to end (issue 5): a scripted stream of deliveries — CloudWatch alarm state
changes, RDS events, scheduled ticks, operator commands, in the shapes recorded in events/ — goes
through cargo-lambda into the four functions; the domain events they emit are routed between them
by infra/template.yaml's rules (tests/chain.py); AWS is the faithful emulator (promotions and
failovers take PROMOTION s, Route 53 changes stay PENDING for INSYNC s).

Every scenario asserts on what the emulated account holds afterwards — RDS topology, the Route 53
writer record, the ledger — and on the messages people received (read back from an SQS
subscription of the alert topic), including what those messages tell them to do.

The promoted databases' endpoints are a real MariaDB server, so "accepts writes" is a real SQL
round trip; the `orders` primary's canary probes another real MariaDB that the outages kill.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
import time
from pathlib import Path

import pytest

from chain import Chain
from harness import LambdaEmulator, MariaDB, MotoServer
from world import (
    ACCOUNT,
    HOME_REGION,
    World,
    alarm_event,
    function_env,
    iso,
    now,
    site_config,
    tick_event,
)

PROMOTION = 3.0
INSYNC = 1.0
# The sites' sustained window, shortened from minutes so a scenario runs in seconds.
SUSTAINED = 4
FUNCTIONS = ("alarm-evaluator", "replica-promoter", "dns-pinner", "notifier")
EAST = "us-east-1"
EVENTS = Path(__file__).resolve().parent.parent / "events"

ORDERS_DNS, BILLING_DNS, PAYMENTS_DNS = "db.orders.example.com", "db.billing.example.com", "db.payments.example.com"
AVAIL, CANARY_ALARM = "orders-primary-availability", "orders-primary-canary"
BILLING_ALARM, PAYMENTS_ALARM = "billing-writer-availability", "payments-primary-availability"
PAYMENTS_WITNESS = "payments-primary-canary"  # in the DR region, on the witness's canary metric
PAYMENTS_WRITER = "payments-west-1"  # the instance of the secondary cluster that becomes the writer


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def faithful(workdir):
    """One faithful emulator for the module; each scenario resets it."""
    d = workdir / "incidents-emulator"
    d.mkdir(exist_ok=True)
    server = MotoServer(d, promotion_secs=PROMOTION, dns_insync_secs=INSYNC).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def orders_primary(workdir):
    """The real MySQL server behind the orders canary: killed in outages, started again after."""
    db = MariaDB(workdir, "incidents-orders-primary").start()
    yield db
    db.stop()


@pytest.fixture(scope="module")
def promoted_db(workdir):
    """The real MySQL server behind every promotion target's endpoint (writable)."""
    db = MariaDB(workdir, "incidents-new-primary").start()
    yield db
    db.stop()


@pytest.fixture
def launch(faithful, mariadb, orders_primary, promoted_db, workdir, request):
    """`launch(approval={...}, sustained=...)`: a freshly seeded account (the four example sites,
    their writer records, the alert topic) and the four functions running with that config."""
    started: list[LambdaEmulator] = []

    def start(approval: dict[str, str] | None = None, sustained: int = SUSTAINED, lag: float = 2.0,
              concurrency: int = 1, dead_canaries: frozenset[str] = frozenset(), lost: tuple[str, ...] = ()) -> Site:
        """`lost` / `dead_canaries`: sites whose primary is gone for the SQL canary from the start (a closed port)."""
        faithful.region_outage(None, False)
        faithful.reset()
        orders_primary.start()
        promoted_db.sql("SET GLOBAL read_only = 0;")
        world = World(faithful.endpoint).seed()
        topic = world.seed_topic()
        zones = {
            "orders": world.seed_writer_record(ORDERS_DNS, endpoint_host(world, "orders-primary", EAST), ttl=300),
            "billing": world.seed_failover_pair(BILLING_DNS, endpoint_host(world, "billing-1"), endpoint_host(world, "billing-2")),
            "payments": world.seed_writer_record(PAYMENTS_DNS, "payments-east.cluster-cabcdefghijk.us-east-1.rds.amazonaws.com", ttl=300),
        }
        # The secondary cluster of the global database has an instance: after a global failover it
        # is the new primary cluster's writer, the endpoint applications write to.
        world.client("rds").create_db_instance(
            DBInstanceIdentifier=PAYMENTS_WRITER, Engine="aurora-mysql", DBInstanceClass="db.r6g.large",
            DBClusterIdentifier="payments-west",
        )
        target = f"127.0.0.1:{promoted_db.port}"
        for inst in ("orders-replica-1", "billing-2", PAYMENTS_WRITER):
            world.point_endpoint(inst, HOME_REGION, target)
        at = now() - dt.timedelta(seconds=30)
        for r in ("orders-replica-1", "orders-replica-2"):
            world.put_lag(r, lag, at)
        world.put_lag("billing-2", 0.5, at)
        world.put_lag("payments-west", 0.5, at)

        cfg = site_config(orders_primary.port, sustained, others_port=mariadb.port)
        for s in cfg["sites"]:
            if s["id"] in lost:
                s["canary"]["endpoint"] = "127.0.0.1:9"
            if s["id"] in zones:
                s["dns"]["zone_id"] = zones[s["id"]]
            s["approval"] = (approval or {}).get(s["id"], s["approval"])
            if s["approval"] == "auto" and s["thresholds"]["quorum"] == 1:
                # billing decides on one vote in the example (it awaits approval there); put on
                # auto, the site has to say it means that.
                s["thresholds"]["allow_single_vote"] = True
            if s["id"] in dead_canaries:
                # This site's primary is really gone: its SQL port refuses, as the dead writer's would.
                s["canary"]["endpoint"] = "127.0.0.1:9"
        env = function_env(faithful.endpoint, cfg) | {"TOPIC_ARN": topic, "RDS_FAILOVER_FALLBACK_BUDGET_SECS": "30"}
        d = workdir / f"incidents-{request.node.name}-{len(started)}"
        d.mkdir(exist_ok=True)
        emu = LambdaEmulator(d).start(env, functions=FUNCTIONS, concurrency=concurrency)
        started.append(emu)
        return Site(world, emu, zones, faithful)

    yield start
    faithful.region_outage(None, False)
    for emu in started:
        emu.stop()
    orders_primary.start()


def endpoint_host(world: World, instance: str, region: str = HOME_REGION) -> str:
    return world.instance(instance, region)["Endpoint"]["Address"]



class Site:
    """The emulated account, the running functions and the chain that routes between them."""

    def __init__(self, world: World, emu: LambdaEmulator, zones: dict[str, str], server: MotoServer):
        self.world, self.emu, self.zones, self.server = world, emu, zones, server
        self.chain = Chain(world, emu)
        self.notes: list[dict] = []

    # ------------------------------------------------------------------ deliveries
    def evaluate(self, event: dict, site: str = "orders") -> dict:
        """One delivery to the evaluator; the verdict for `site`."""
        resp = self.emu.invoke("alarm-evaluator", event)
        [v] = [v for v in resp["verdicts"] if v.get("site") == site]
        return v

    def command(self, **cmd) -> dict:
        resp = self.emu.invoke("alarm-evaluator", cmd)
        [v] = resp["verdicts"]
        return v

    def alarm(self, name: str, state: str, previous: str, at: dt.datetime | None = None) -> dict:
        """The alarm really changes state in CloudWatch, then EventBridge delivers the change."""
        self.world.set_alarm(name, state)
        return unique(alarm_event(name, state, previous, at or now()))

    def ticks_past_window(self, site: str, window: float = SUSTAINED) -> list[dict]:
        """Scheduled ticks, one a second, until the verdict is no longer `suspected`; their verdicts.

        The evaluator measures the window from when *it* first saw the outage corroborated, which
        on a loaded machine can be a few seconds after the test's first tick, so the ticks go on
        past the window (up to 30 s more) rather than stopping at it by the test's own clock."""
        out, end = [], time.monotonic() + window + 30.0
        while True:
            out.append(self.evaluate(tick(), site))
            if time.monotonic() >= end or out[-1]["outcome"]["kind"] not in {"suspected"}:
                return out
            time.sleep(1.0)

    def pump(self) -> None:
        """Routes every domain event on the bus (and what it causes) to its functions."""
        self.chain.pump()
        errors = [(d.function, d.event["detail-type"], str(d.error)) for d in self.chain.deliveries if d.error]
        assert not errors, errors

    # ------------------------------------------------------------------ observations
    def state(self, site: str = "orders") -> dict:
        return self.world.state(site)

    def messages(self) -> list[dict]:
        """Every message people received so far (accumulated across reads of the subscription)."""
        self.notes += self.world.notifications()
        return self.notes

    def message_types(self, site: str | None = None) -> list[str]:
        return [attr(n, "event_type") for n in self.messages() if site is None or attr(n, "site") == site]

    def message(self, event_type: str) -> dict:
        [n] = [n for n in self.messages() if attr(n, "event_type") == event_type]
        return n

    def record(self, site: str = "orders") -> tuple[str, int] | None:
        return self.world.writer_record(self.zones[site], {"orders": ORDERS_DNS, "payments": PAYMENTS_DNS}[site])

    def failover_records(self) -> dict[str, tuple[str, int]]:
        sets = self.world.client("route53").list_resource_record_sets(HostedZoneId=self.zones["billing"])["ResourceRecordSets"]
        return {rs["SetIdentifier"]: (rs["ResourceRecords"][0]["Value"], rs["TTL"]) for rs in sets if rs.get("SetIdentifier")}

    def snapshot(self) -> tuple:
        """Everything a failover would mutate: RDS instances, clusters and global cluster, DNS.
        The old primaries' statuses are the harness's (a lost host reports `failed`), never the
        tool's: they are left out; their replication topology is kept."""
        rds = self.world.client("rds")
        clusters = {c["DBClusterIdentifier"]: (c["Status"], tuple(sorted((m["DBInstanceIdentifier"], m["IsClusterWriter"]) for m in c["DBClusterMembers"])))
                    for c in rds.describe_db_clusters()["DBClusters"]}
        instances = {i: (None if i in ("orders-primary", "billing-1") else st, src)
                     for i, (st, src) in self.world.rds_snapshot().items()}
        return (instances, clusters, global_writer(self.world), self.record("orders"),
                self.record("payments"), self.failover_records())


_deliveries = iter(range(1, 1 << 30))


def unique(event: dict) -> dict:
    """A distinct delivery: world's builders derive the id from a whole-second time stamp, and two
    deliveries within one second are distinct events, not a re-delivery."""
    event["id"] = f"{event['id']}-{next(_deliveries)}"
    return event


def tick() -> dict:
    return unique(tick_event(now()))


def attr(note: dict, name: str) -> str:
    return note["MessageAttributes"][name]["Value"]


def guard(v: dict, name: str) -> dict:
    [g] = [g for g in v["guards"] if g["guard"] == name]
    return g


def global_cluster(world: World) -> dict:
    [g] = world.client("rds").describe_global_clusters(GlobalClusterIdentifier="payments-global")["GlobalClusters"]
    return g


def global_writer(world: World) -> str:
    [w] = [m["DBClusterArn"].rsplit(":", 1)[-1] for m in global_cluster(world)["GlobalClusterMembers"] if m["IsWriter"]]
    return w


def cluster_writer(world: World, cluster: str) -> str:
    [c] = world.client("rds").describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"]
    [w] = [m["DBInstanceIdentifier"] for m in c["DBClusterMembers"] if m["IsClusterWriter"]]
    return w


def recorded(name: str, at: dt.datetime, delivery_id: str | None = None) -> dict:
    """A recorded delivery from events/, re-stamped to `at` (the scenarios run on the real clock)."""
    ev = json.loads((EVENTS / name).read_text())
    ev["id"] = delivery_id or f"{ev['id']}-{int(at.timestamp() * 1000)}"
    ev["time"] = iso(at)
    if "Date" in ev.get("detail", {}):
        ev["detail"]["Date"] = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return ev


def command_in(body: str, command: str) -> dict:
    """The operator command a message tells people to send (the JSON after `invoke alarm-evaluator
    with`), parsed: the message must carry a command that works as written."""
    for m in re.finditer(r"invoke alarm-evaluator with (\{[^\n]*?\})(?=\s|$)", body):
        cmd = json.loads(m.group(1))
        if cmd["command"] == command:
            return cmd
    raise AssertionError(f"the message names no `{command}` command:\n{body}")


def outage(site: Site, db: MariaDB, host_lost: bool = True) -> dict:
    """The orders primary really is down: its SQL port is closed and both availability alarms go
    to ALARM; with `host_lost` its host is gone too, so RDS reports it `failed` (what the
    promoter re-checks before asking RDS). Returns the first alarm delivery (for replays)."""
    db.kill()
    if host_lost:
        site.world.report_status("orders-primary", EAST, "failed")
    first = site.alarm(AVAIL, "ALARM", "OK")
    site.alarm(CANARY_ALARM, "ALARM", "OK")
    return first


def assert_full_failover(site: Site, candidate: str = "orders-replica-1") -> None:
    """The orders failover carried out: promoted, verified writable, DNS pinned, people told."""
    promoted = site.world.instance(candidate)
    assert promoted["DBInstanceStatus"] == "available" and not promoted.get("ReadReplicaSourceDBInstanceIdentifier")
    assert site.world.instance("orders-replica-2").get("ReadReplicaSourceDBInstanceIdentifier"), "only the chosen candidate"
    assert site.record() == ("127.0.0.1", 30)
    st = site.state()
    assert st["phase"] == "dns-pinned", st["phase"]
    assert st["promotion"]["candidate"]["id"] == candidate and st["promotion"]["action"] == "PromoteReadReplica"
    assert st["promotion"]["writable_verified_at"] and st["dns"]["insync_at"]


# ---------------------------------------------------------------------------------- scenarios


def test_true_outage_fails_over_on_signals_alone(launch, orders_primary):
    site = launch()
    before = site.snapshot()
    first = outage(site, orders_primary)
    v = site.evaluate(first)
    assert v["outcome"]["kind"] == "suspected" and guard(v, "sustained")["result"] == "fail", v["summary"]
    q = guard(v, "quorum")
    assert q["result"] == "pass" and q["observed"] == 4 and "unreachable" in q["detail"], q["detail"]
    assert site.snapshot() == before, "suspecting mutates nothing"

    verdicts = site.ticks_past_window("orders")
    assert all(x["outcome"]["kind"] == "suspected" for x in verdicts[:-1])
    decided = verdicts[-1]
    assert decided["outcome"] == {"kind": "failover-decided", "candidate": {"id": "orders-replica-1", "region": HOME_REGION}}, decided["summary"]
    assert guard(decided, "sustained")["observed"] >= SUSTAINED and guard(decided, "approval")["detail"].startswith("automatic")

    site.pump()
    assert site.chain.types_seen() == ["IncidentSuspected", "FailoverDecided", "ReplicaPromoted", "DnsPinned"], site.chain.types_seen()
    assert_full_failover(site)
    assert site.state()["epoch"] == 1 and not site.state().get("rpo_override")

    assert sorted(site.message_types()) == sorted(["IncidentSuspected", "FailoverDecided", "ReplicaPromoted", "DnsPinned"])
    for n in site.messages():
        assert attr(n, "site") == "orders" and attr(n, "epoch") == "1" and len(n["Subject"]) <= 99
    decided_msg = site.message("FailoverDecided")
    assert "FAILING OVER to orders-replica-1" in decided_msg["Subject"]
    assert "[PASS   ] quorum" in decided_msg["Message"] and "sql canary: unreachable" in decided_msg["Message"]
    pinned = site.message("DnsPinned")["Message"]
    assert ORDERS_DNS in pinned and "failback" in pinned.lower()


def test_a_flapping_alarm_never_fails_over(launch):
    site = launch(sustained=6)
    before = site.snapshot()
    start, kinds = time.monotonic(), []
    # Both availability alarms flap together (quorum met while they are in ALARM), each ALARM
    # spell shorter than the window, for longer than the window in all.
    while time.monotonic() - start < 6 + 3:
        a = site.alarm(AVAIL, "ALARM", "OK")
        site.alarm(CANARY_ALARM, "ALARM", "OK")
        kinds.append(site.evaluate(a)["outcome"]["kind"])
        kinds.append(site.evaluate(tick())["outcome"]["kind"])
        site.alarm(CANARY_ALARM, "OK", "ALARM")
        kinds.append(site.evaluate(site.alarm(AVAIL, "OK", "ALARM"))["outcome"]["kind"])
        time.sleep(0.5)
    # Quiet for the flap window (scaled to the window): the one incident closes with one message.
    time.sleep(6 + 0.5)
    kinds.append(site.evaluate(tick())["outcome"]["kind"])
    kinds.append(site.evaluate(tick())["outcome"]["kind"])
    assert "failover-decided" not in kinds and kinds[-2:] == ["watch", "ignore"], kinds
    assert kinds.count("suspected") >= 3, kinds

    site.pump()
    types = site.chain.types_seen()
    # RDS says available and the canary answers: two alarms never outvote them (down 2, up 2), so
    # the flaps are one quiet incident below the quorum, and nobody is paged for noise.
    assert types == [], types
    assert site.snapshot() == before, "no RDS or DNS mutation"
    st = site.state()
    assert st["epoch"] == 1 and st["phase"] == "aborted" and not st.get("promotion") and not st.get("quorum_since")
    assert site.message_types() == []


def test_a_maintenance_reboot_is_not_an_outage(launch, orders_primary):
    window = 8
    site = launch(sustained=window)
    before = site.snapshot()
    # A reboot: RDS shows `rebooting` for PROMOTION s, the server is really down meanwhile, the
    # alarms fire, RDS sends "shutdown" then "restarted" (RDS-EVENT-0004, RDS-EVENT-0006).
    site.world.client("rds", EAST).reboot_db_instance(DBInstanceIdentifier="orders-primary")
    rebooted_at = time.monotonic()
    assert site.world.instance("orders-primary", EAST)["DBInstanceStatus"] == "rebooting"
    orders_primary.kill()
    site.evaluate(recorded("eventbridge-rds-orders-primary-shutdown.json", now()))
    v = site.evaluate(outage(site, orders_primary, host_lost=False))
    assert v["outcome"]["kind"] == "suspected", v["summary"]
    v = site.evaluate(tick())
    assert v["outcome"]["kind"] == "suspected", v["summary"]
    time.sleep(max(0.0, PROMOTION + 0.3 - (time.monotonic() - rebooted_at)))

    assert site.world.instance("orders-primary", EAST)["DBInstanceStatus"] == "available"
    orders_primary.start()
    site.world.set_alarm(CANARY_ALARM, "OK")
    site.evaluate(site.alarm(AVAIL, "OK", "ALARM"))
    v = site.evaluate(recorded("eventbridge-rds-orders-primary-restarted.json", now()))
    cleared_at = time.monotonic()
    assert site.state()["phase"] == "suspected", v["summary"]  # held for the flap window
    time.sleep(max(0.0, window + 1 - (time.monotonic() - rebooted_at), window + 0.5 - (time.monotonic() - cleared_at)))
    v = site.evaluate(tick())
    assert site.state()["phase"] == "aborted", v["summary"]
    v = site.evaluate(tick())
    assert v["outcome"] == {"kind": "ignore", "reason": "healthy"}, v["summary"]

    site.pump()
    assert site.chain.types_seen() == ["IncidentSuspected", "IncidentCleared"], site.chain.types_seen()
    assert site.snapshot() == before
    cleared = site.message("IncidentCleared")
    assert "incident cleared" in cleared["Subject"] and "Nothing was promoted" in cleared["Message"]


def test_lag_beyond_the_rpo_asks_a_human_and_the_override_it_names_proceeds(launch, orders_primary):
    site = launch(lag=120.0)
    before = site.snapshot()
    site.evaluate(outage(site, orders_primary))
    refused = site.ticks_past_window("orders")[-1]
    assert refused["outcome"] == {"kind": "refused", "reason": "rpo-exceeded"}, refused["summary"]
    rpo = guard(refused, "rpo")
    assert rpo["observed"] == 120 and rpo["limit"] == 30
    site.pump()
    assert site.chain.types_seen() == ["IncidentSuspected", "FailoverRefused"]
    assert site.snapshot() == before and site.state()["phase"] == "refused"

    msg = site.message("FailoverRefused")
    assert "REFUSED (rpo)" in msg["Subject"], msg["Subject"]
    body = msg["Message"]
    assert "[FAIL   ] rpo" in body and "(observed 120, limit 30)" in body, body
    override = command_in(body, "failover")
    assert override == {"command": "failover", "site": "orders", "override_rpo": True, "reason": "<why>", "operator": "<you>"}

    # A human reads it and sends exactly that command, filled in.
    cmd = override | {"reason": "us-east-1 lost; accept two minutes of writes", "operator": "alice"}
    v = site.command(**cmd)
    assert v["outcome"]["kind"] == "failover-decided" and "RPO overridden by alice" in guard(v, "rpo")["detail"], v["summary"]
    site.pump()
    assert site.chain.types_seen()[-3:] == ["FailoverDecided", "ReplicaPromoted", "DnsPinned"], site.chain.types_seen()
    assert_full_failover(site)
    assert site.state()["rpo_override"]["by"] == "alice"
    assert "RPO OVERRIDE by alice" in site.message("FailoverDecided")["Message"]
    assert "RPO overridden by alice" in site.message("ReplicaPromoted")["Message"]


def test_paused_site_mutates_nothing_and_says_so(launch, orders_primary):
    site = launch()
    before = site.snapshot()
    p = site.command(command="pause", site="orders", operator="bob", reason="us-east-1 regional event: riding it out")
    assert p["outcome"]["kind"] == "paused"

    site.evaluate(outage(site, orders_primary))
    refused = site.ticks_past_window("orders")[-1]
    assert refused["outcome"] == {"kind": "refused", "reason": "paused"}, refused["summary"]
    manual = site.command(command="failover", site="orders", operator="alice", reason="drill")
    assert manual["outcome"] == {"kind": "refused", "reason": "paused"}, manual["summary"]
    assert "bob" in guard(manual, "pause")["detail"]
    site.pump()
    assert "FailoverDecided" not in site.chain.types_seen(), site.chain.types_seen()
    time.sleep(PROMOTION)
    assert site.snapshot() == before, "paused: nothing mutated"
    assert site.state()["phase"] == "refused" and site.state()["paused"]["by"] == "bob"

    paused = site.message("AutomationPaused")
    assert "PAUSED" in paused["Subject"] and "riding it out" in paused["Message"]
    assert command_in(paused["Message"], "resume") == {"command": "resume", "site": "orders", "operator": "<you>"}
    msg = site.message("FailoverRefused")
    assert "REFUSED (pause)" in msg["Subject"], msg["Subject"]
    assert "automation paused by bob" in msg["Message"] and "riding it out" in msg["Message"]
    # The way out it names is the one that works here: resume (an RPO override would be refused).
    assert command_in(msg["Message"], "resume") == {"command": "resume", "site": "orders", "operator": "<you>"}, msg["Message"]
    assert '"override_rpo":true' not in msg["Message"], msg["Message"]
    assert sorted(site.message_types()) == ["AutomationPaused", "FailoverRefused", "IncidentSuspected"]


def test_a_storm_of_duplicate_and_late_deliveries_fails_over_exactly_once(launch, orders_primary):
    site = launch(concurrency=3)  # concurrent deliveries run in concurrent function instances
    first = outage(site, orders_primary)
    stale = alarm_event(AVAIL, "ALARM", "OK", now() - dt.timedelta(hours=1))
    old_ok = alarm_event(AVAIL, "OK", "ALARM", now() - dt.timedelta(minutes=30))
    kinds = [site.evaluate(first)["outcome"]["kind"]]
    for _ in range(5):
        kinds.append(site.evaluate(first)["outcome"].get("reason"))
    assert kinds == ["suspected"] + ["duplicate"] * 5, kinds
    for late in (stale, old_ok, recorded("eventbridge-rds-orders-primary-shutdown-stale.json", now() - dt.timedelta(hours=2))):
        v = site.evaluate(late)
        assert v["outcome"] == {"kind": "ignore", "reason": "stale"}, v["summary"]
    decided = site.ticks_past_window("orders")[-1]
    assert decided["outcome"]["kind"] == "failover-decided"
    # The same alarm and tick again, after the decision: no second decision.
    again_tick = tick()
    for ev in (first, again_tick, again_tick, site.alarm(CANARY_ALARM, "ALARM", "OK")):
        assert site.evaluate(ev)["outcome"]["kind"] in {"ignore", "watch"}

    # EventBridge delivers FailoverDecided twice at once, and again while the promotion runs.
    drained = site.world.drain_events()
    [ev] = [e for e in drained if e["detail-type"] == "FailoverDecided"]
    ev["account"] = ACCOUNT
    answers: list = []
    threads = [threading.Thread(target=lambda: answers.append(site.chain.deliver("replica-promoter", copy.deepcopy(ev))))
               for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    answers.append(site.chain.deliver("replica-promoter", copy.deepcopy(ev)))
    for t in threads:
        t.join()
    assert not [a.error for a in answers if a.error], [str(a.error) for a in answers]
    outcomes = sorted(a.response["outcome"]["kind"] for a in answers)
    assert outcomes.count("promoted") == 1 and set(outcomes) <= {"promoted", "already-promoted"}, outcomes
    requested = site.state()["promotion"]["requested_at"]

    # The rest of the chain runs (the drained events reach the notifier, ReplicaPromoted the
    # pinner), then every domain event of the epoch is delivered twice more to every function the
    # template routes it to.
    for e in drained:
        e["account"] = ACCOUNT
        site.chain.seen.append(e)
        site.chain.deliver("notifier", copy.deepcopy(e))
    site.pump()
    change = site.state()["dns"]["change_id"]
    for again in list(site.chain.seen) * 2:
        for d in site.chain.deliver_routed(copy.deepcopy(again)):
            assert d.error is None, (d.function, str(d.error))
    site.pump()

    counts = {t: site.chain.types_seen().count(t) for t in set(site.chain.types_seen())}
    assert site.world.drain_events() == []
    assert_full_failover(site)
    st = site.state()
    assert st["epoch"] == 1 and st["promotion"]["requested_at"] == requested and st["dns"]["change_id"] == change
    requests = [t["note"] for t in st["timeline"] if t["note"].startswith("requested ")]
    assert len(requests) == 1, st["timeline"]
    types = site.message_types()
    assert sorted(types) == sorted(["IncidentSuspected", "FailoverDecided", "ReplicaPromoted", "DnsPinned"]), (types, counts)


def test_require_approval_waits_then_the_approve_command_fails_over(launch, orders_primary):
    site = launch(approval={"orders": "require-approval"})
    before = site.snapshot()
    site.evaluate(outage(site, orders_primary))
    waiting = site.ticks_past_window("orders")[-1]
    assert waiting["outcome"]["kind"] == "awaiting-approval", waiting["summary"]
    assert waiting["outcome"]["candidate"]["id"] == "orders-replica-1"
    for _ in range(2):  # more ticks: still waiting, no second request
        assert site.evaluate(tick())["outcome"]["kind"] == "awaiting-approval"
    site.pump()
    assert site.chain.types_seen() == ["IncidentSuspected", "ApprovalRequested"]
    time.sleep(PROMOTION)
    assert site.snapshot() == before, "awaiting approval: nothing mutated"
    assert site.state()["phase"] == "awaiting-approval"

    msg = site.message("ApprovalRequested")
    assert "APPROVAL NEEDED to fail over to orders-replica-1" in msg["Subject"]
    approve = command_in(msg["Message"], "approve")
    assert approve == {"command": "approve", "site": "orders", "epoch": 1, "operator": "<you>"}
    stale = site.command(**(approve | {"epoch": 2, "operator": "carol"}))
    assert stale["outcome"] == {"kind": "refused", "reason": "stale-approval"}

    v = site.command(**(approve | {"operator": "carol"}))
    assert v["outcome"]["kind"] == "failover-decided" and "approved by carol" in guard(v, "approval")["detail"], v["summary"]
    site.pump()
    assert site.chain.types_seen()[-3:] == ["FailoverDecided", "ReplicaPromoted", "DnsPinned"], site.chain.types_seen()
    assert_full_failover(site)
    assert sorted(site.message_types()) == sorted(["IncidentSuspected", "ApprovalRequested", "FailoverDecided", "ReplicaPromoted", "DnsPinned"])


def test_shadow_mode_says_what_it_would_have_done_and_mutates_nothing(launch, orders_primary):
    site = launch(approval={"orders": "shadow"})
    before = site.snapshot()
    site.evaluate(outage(site, orders_primary))
    v = site.ticks_past_window("orders")[-1]
    assert v["outcome"] == {"kind": "shadow-would-fail-over", "candidate": {"id": "orders-replica-1", "region": HOME_REGION}}, v["summary"]
    assert "would fail over to orders-replica-1" in v["summary"], v["summary"]
    assert guard(v, "quorum")["result"] == "pass" and guard(v, "rpo")["result"] == "pass"
    site.pump()
    assert site.chain.types_seen() == ["IncidentSuspected", "ShadowFailover"], site.chain.types_seen()
    time.sleep(PROMOTION)
    assert site.snapshot() == before, "shadow: nothing mutated"
    assert site.state()["phase"] == "shadowed"
    msg = site.message("ShadowFailover")
    assert "shadow mode: would fail over to orders-replica-1" in msg["Subject"]
    assert "orders-replica-1 was not promoted; DNS untouched" in msg["Message"]


def cluster_endpoint(world: World, cluster: str, region: str = HOME_REGION) -> str:
    [c] = world.client("rds", region).describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"]
    return c["Endpoint"]


def test_aurora_cluster_failover_moves_the_writer_and_pins_both_failover_records(launch):
    """Issue 14, scenarios 1 and 2 on the emulator: the SECONDARY names a reader (Route 53 answers
    with it while the PRIMARY's health check, which watches the old writer, is unhealthy); after the
    pin both records name the cluster's writer endpoint, which still names it after an
    Aurora-internal failover the evaluator does not watch."""
    # The writer is really down: its alarm fires and its SQL port refuses (RDS still says
    # available, which is one up vote against two down).
    site = launch(approval={"billing": "auto"}, lost=("billing",))
    site.world.report_status("billing-1", HOME_REGION, "failed")  # the writer's host is lost
    assert cluster_writer(site.world, "billing-cluster") == "billing-1"
    reader = "billing-ro.cluster-ro-cabcdefghijk.us-west-2.rds.amazonaws.com"
    r53 = site.world.client("route53")
    [sec] = [rs for rs in r53.list_resource_record_sets(HostedZoneId=site.zones["billing"])["ResourceRecordSets"]
             if rs.get("SetIdentifier") == "billing-secondary"]
    r53.change_resource_record_sets(HostedZoneId=site.zones["billing"], ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": {**sec, "ResourceRecords": [{"Value": reader}]}}]})
    writer_endpoint = cluster_endpoint(site.world, "billing-cluster")
    v = site.evaluate(site.alarm(BILLING_ALARM, "ALARM", "OK"), "billing")
    assert v["outcome"]["kind"] == "suspected", v["summary"]
    decided = site.ticks_past_window("billing")[-1]
    assert decided["outcome"] == {"kind": "failover-decided", "candidate": {"id": "billing-2", "region": HOME_REGION}}, decided["summary"]
    site.pump()
    assert site.chain.types_seen() == ["IncidentSuspected", "FailoverDecided", "ReplicaPromoted", "DnsPinned"], site.chain.types_seen()

    assert cluster_writer(site.world, "billing-cluster") == "billing-2"
    st = site.state("billing")
    assert st["phase"] == "dns-pinned" and st["promotion"]["action"] == "FailoverDBCluster"
    # Writes were verified on billing-2 itself (its endpoint is the real MariaDB); the writer name
    # goes to the cluster's writer endpoint.
    assert st["promotion"]["endpoint"] == f"{writer_endpoint}:3306" and st["promotion"]["writable_verified_at"]
    records = site.failover_records()
    assert records == {"billing-primary": (writer_endpoint, 30), "billing-secondary": (writer_endpoint, 30)}, records
    assert {p["SetIdentifier"]: p.get("HealthCheckId") for p in r53.list_resource_record_sets(
        HostedZoneId=site.zones["billing"])["ResourceRecordSets"] if p.get("SetIdentifier")} == {
        "billing-primary": None, "billing-secondary": None}, "identity kept"
    assert sorted(st["dns"]["previous_records"][i]["values"][0] for i in range(2)) == sorted(
        [endpoint_host(site.world, "billing-1"), reader]), st["dns"]
    # Aurora fails over internally (back to billing-1): the name still names the cluster's writer
    # endpoint, which RDS keeps pointing at whichever instance is the writer.
    site.world.report_status("billing-1", HOME_REGION, None)  # its host is back, as a reader
    site.world.client("rds").failover_db_cluster(DBClusterIdentifier="billing-cluster", TargetDBInstanceIdentifier="billing-1")
    deadline = time.monotonic() + PROMOTION * 4
    while cluster_writer(site.world, "billing-cluster") != "billing-1" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster_writer(site.world, "billing-cluster") == "billing-1"
    assert cluster_endpoint(site.world, "billing-cluster") == writer_endpoint
    assert site.failover_records()["billing-primary"][0] == writer_endpoint
    # What applications get: the zone's name server (tests/emulated_dns.py) answers the cluster's
    # writer endpoint, for either health state of the PRIMARY's check.
    from dnslib import QTYPE, DNSRecord
    reply = DNSRecord.parse(DNSRecord.question("db.billing.example.com", "A").send(
        "127.0.0.1", site.server.dns_port, timeout=3))
    assert [str(r.rdata).rstrip(".") for r in reply.rr if r.rtype == QTYPE.CNAME] == [writer_endpoint], reply
    # The evaluator does not think the pinned site is broken after Aurora moved its writer.
    after = site.evaluate(tick(), "billing")
    print("evaluator after the internal failover:", after["outcome"], after["summary"])
    assert after["outcome"]["kind"] not in ("suspected", "failover-decided"), after
    assert site.state("billing")["phase"] == "dns-pinned", "no new incident, nothing failed"
    assert site.record("orders")[1] == 300, "other sites untouched"
    assert sorted(site.message_types("billing")) == sorted(["IncidentSuspected", "FailoverDecided", "ReplicaPromoted", "DnsPinned"])
    assert "billing-2" in site.message("DnsPinned")["Subject"]


def test_aurora_global_switchover_when_the_old_primary_is_healthy(launch):
    site = launch(approval={"payments": "auto"})
    assert global_writer(site.world) == "payments-east"
    v = site.command(command="failover", site="payments", operator="dana", reason="planned: move writes to us-west-2")
    assert v["outcome"] == {"kind": "failover-decided", "candidate": {"id": "payments-west", "region": HOME_REGION}}, v["summary"]
    # The primary is healthy: the promoter goes ahead only for a decision that may target a live
    # primary. Until the evaluator records it for `failover` with `force: true` (issue 11, item
    # 3), the ledger says so the way the evaluator will.
    st = site.state("payments")
    st["decision"] = {"epoch": st["epoch"], "trigger": "manual-forced", "at": iso(now()), "by": "dana",
                      "reason": "planned: move writes to us-west-2"}
    site.world.put_state("payments", st)
    site.pump()
    assert site.chain.types_seen() == ["FailoverDecided", "ReplicaPromoted", "DnsPinned"], site.chain.types_seen()
    [promoter] = [d for d in site.chain.deliveries if d.function == "replica-promoter"]
    assert promoter.response["outcome"]["action"] == "SwitchoverGlobalCluster", promoter.response
    assert "planned switchover" in guard(promoter.response["verdict"], "rpo")["detail"]

    assert global_writer(site.world) == "payments-west" and global_cluster(site.world)["Status"] == "available"
    st = site.state("payments")
    assert st["phase"] == "dns-pinned" and st["promotion"]["action"] == "SwitchoverGlobalCluster"
    assert any(t["note"].startswith("requested SwitchoverGlobalCluster payments-global") for t in st["timeline"]), st["timeline"]
    # The promoted secondary cluster's writer endpoint, not its writer instance's.
    assert site.record("payments") == (cluster_endpoint(site.world, "payments-west"), 15)
    assert sorted(site.message_types("payments")) == sorted(["FailoverDecided", "ReplicaPromoted", "DnsPinned"])


def test_aurora_global_failover_with_data_loss_only_by_the_rpo_guard_or_its_override(launch, faithful):
    site = launch(approval={"payments": "auto"}, lost=("payments",))
    at = now() - dt.timedelta(seconds=5)
    site.world.put_lag("payments-west", 10.0, at)  # 10 s behind; the RPO is 2 s
    before = site.snapshot()
    # us-east-1 is lost: its APIs (and the alarm that lives there) stop answering; the witness
    # in a third region loses the primary too, so its alarm in the DR region fires.
    faithful.region_outage(EAST, True)
    v = site.evaluate(site.alarm(PAYMENTS_WITNESS, "ALARM", "OK"), "payments")
    assert "unreadable" in guard(v, "quorum")["detail"], guard(v, "quorum")
    refused = site.ticks_past_window("payments")[-1]
    assert refused["outcome"] == {"kind": "refused", "reason": "rpo-exceeded"}, refused["summary"]
    site.pump()
    assert site.chain.types_seen() == ["IncidentSuspected", "FailoverRefused"]
    assert global_writer(site.world) == "payments-east" and site.record("payments") == before[4]

    override = command_in(site.message("FailoverRefused")["Message"], "failover")
    v = site.command(**(override | {"operator": "erin", "reason": "us-east-1 down; accept 10 s of payments"}))
    assert v["outcome"]["kind"] == "failover-decided", v["summary"]
    site.pump()
    assert site.chain.types_seen()[-3:] == ["FailoverDecided", "ReplicaPromoted", "DnsPinned"], site.chain.types_seen()
    [promoter] = [d for d in site.chain.deliveries if d.function == "replica-promoter"]
    assert promoter.response["outcome"]["action"] == "FailoverGlobalCluster", promoter.response
    rpo = guard(promoter.response["verdict"], "rpo")
    assert rpo["result"] == "pass" and "RPO overridden by erin" in rpo["detail"], rpo

    assert global_writer(site.world) == "payments-west"
    st = site.state("payments")
    assert st["promotion"]["action"] == "FailoverGlobalCluster" and st["rpo_override"]["by"] == "erin"
    assert any(t["note"].startswith("requested FailoverGlobalCluster") and t["note"].endswith("AllowDataLoss=true")
               for t in st["timeline"]), st["timeline"]
    # The promoted secondary cluster's writer endpoint, not its writer instance's.
    assert site.record("payments") == (cluster_endpoint(site.world, "payments-west"), 15)
    assert "RPO OVERRIDE by erin" in site.message("FailoverDecided")["Message"]
    faithful.region_outage(None, False)
    assert global_cluster(site.world)["GlobalClusterMembers"]  # the outage lifted, the account reads again


def test_aurora_global_failover_within_the_rpo_needs_no_override(launch, faithful):
    # payments-west lags 0.5 s; the RPO is 2 s. us-east-1 is lost, seen from the DR side and the witness.
    site = launch(approval={"payments": "auto"}, lost=("payments",))  # payments-west lags 0.5 s; the RPO is 2 s
    faithful.region_outage(EAST, True)
    site.evaluate(site.alarm(PAYMENTS_WITNESS, "ALARM", "OK"), "payments")
    decided = site.ticks_past_window("payments")[-1]
    assert decided["outcome"] == {"kind": "failover-decided", "candidate": {"id": "payments-west", "region": HOME_REGION}}, decided["summary"]
    site.pump()
    assert site.chain.types_seen() == ["IncidentSuspected", "FailoverDecided", "ReplicaPromoted", "DnsPinned"], site.chain.types_seen()
    [promoter] = [d for d in site.chain.deliveries if d.function == "replica-promoter"]
    assert promoter.response["outcome"]["action"] == "FailoverGlobalCluster", promoter.response
    rpo = guard(promoter.response["verdict"], "rpo")
    assert rpo["result"] == "pass" and rpo["observed"] == 0.5 and rpo["limit"] == 2, rpo
    st = site.state("payments")
    assert not st.get("rpo_override") and global_writer(site.world) == "payments-west"
    assert any(t["note"].endswith("AllowDataLoss=true") for t in st["timeline"]), st["timeline"]
    # The promoted secondary cluster's writer endpoint, not its writer instance's.
    assert site.record("payments") == (cluster_endpoint(site.world, "payments-west"), 15)


def test_the_loss_of_the_primarys_whole_region_is_decided_from_outside_it(launch, faithful, orders_primary):
    """us-east-1 is lost: the primary's endpoint answers nobody, its CloudWatch and RDS API are dark
    (the emulator answers 503 for every request signed for it). Only voters outside the region are
    left: the DR-side canary, and the witness's alarm in us-west-2. One decision, within the
    sustained window plus one evaluation of the witness's alarm firing."""
    site = launch()
    orders_primary.kill()
    faithful.region_outage(EAST, True)
    v = site.evaluate(site.alarm(CANARY_ALARM, "ALARM", "OK"))
    fired = time.monotonic()
    assert v["outcome"]["kind"] == "suspected", v["summary"]
    q = guard(v, "quorum")
    assert q["result"] == "pass" and q["detail"].startswith("down 2, up 0, unknown 2"), q["detail"]
    assert "unreadable" in q["detail"]
    verdicts = site.ticks_past_window("orders")
    decided = verdicts[-1]
    assert decided["outcome"] == {"kind": "failover-decided", "candidate": {"id": "orders-replica-1", "region": HOME_REGION}}, decided["summary"]
    assert sum(x["outcome"]["kind"] == "failover-decided" for x in verdicts) == 1
    took = time.monotonic() - fired
    print(f"region lost: decided {took:.1f} s after the witness's alarm fired (window {SUSTAINED} s, ticks 1 s apart)")
    # The window plus one evaluation (1 s ticks here), with room for a loaded machine's invocations.
    assert took <= SUSTAINED + 10, took
    faithful.region_outage(None, False)
