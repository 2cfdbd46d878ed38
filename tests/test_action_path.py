"""The action path played through the real chain: cargo-lambda's runtime emulator runs all four
functions against the faithful emulator (tests/faithful_moto.py: promotions take PROMOTION s and
pass through modifying/rebooting, Route 53 changes stay PENDING for INSYNC s), and the domain
events are routed between them by infra/template.yaml's own rules (tests/chain.py).

The promoted replica's endpoint, as DescribeDBInstances reports it, is a real MariaDB server, so
the promoter's writability check (`@@read_only`, `@@innodb_read_only`) is a real SQL round trip.
Each test asserts on the emulated account afterwards: RDS topology, the Route 53 record, the
ledger, the messages people received.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from chain import Chain
from harness import LambdaEmulator, MariaDB, MotoServer
from infra import targets
from world import HOME_REGION, World, function_env, site_config

PROMOTION = 5.0
INSYNC = 2.0
# The promoter's poll schedule caps at 10 s (failover_policy::promote::poll_delay).
# The longest gap between two topology polls in the first 6 s of a wait (shared/policy/src/pace.rs:
# 0.5 s, +20 % jitter).
MAX_POLL_GAP = 0.6
FUNCTIONS = ("alarm-evaluator", "replica-promoter", "dns-pinner", "notifier")


class Host:
    """The old primary's address as the SQL canary sees it: a loopback port where nothing listens
    (connection refused: the host is lost) until `come_back()` starts forwarding it to a live
    MariaDB, so the canary gets a server's answer again."""

    def __init__(self, target_port: int):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.target_port, self.server = target_port, None

    def come_back(self) -> None:
        import socket
        import socketserver
        import threading

        target = self.target_port

        class Forward(socketserver.BaseRequestHandler):
            def handle(self):
                up = socket.create_connection(("127.0.0.1", target))

                def pipe(a, b):
                    try:
                        while data := a.recv(65536):
                            b.sendall(data)
                    except OSError:
                        pass
                    finally:
                        for x in (a, b):
                            try:
                                x.shutdown(socket.SHUT_RDWR)
                            except OSError:
                                pass

                t = threading.Thread(target=pipe, args=(up, self.request), daemon=True)
                t.start()
                pipe(self.request, up)
                t.join(5)
                up.close()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Forward)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
WRITER = "db.orders.example.com"


@pytest.fixture(scope="module")
def faithful(workdir):
    d = workdir / "action-path-emulator"
    d.mkdir(exist_ok=True)
    server = MotoServer(d, promotion_secs=PROMOTION, dns_insync_secs=INSYNC).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def new_primary(workdir):
    """The MySQL server behind orders-replica-1's endpoint: the database that gets promoted."""
    db = MariaDB(workdir, "orders-replica-1").start()
    yield db
    db.stop()


@pytest.fixture
def site(faithful, mariadb, new_primary, workdir, request):
    """A freshly seeded account, its writer record, alert topic, and the four functions."""
    faithful.reset()
    world = World(faithful.endpoint).seed()
    new_primary.sql("SET GLOBAL read_only = 0;")
    old = world.instance("orders-primary", "us-east-1")["Endpoint"]["Address"]
    zone = world.seed_writer_record(WRITER, old, ttl=300)
    topic = world.seed_topic()
    world.point_endpoint("orders-replica-1", HOME_REGION, f"127.0.0.1:{new_primary.port}")
    now = dt.datetime.now(dt.timezone.utc)
    for r in ("orders-replica-1", "orders-replica-2"):
        world.put_lag(r, 2.0, now - dt.timedelta(seconds=30))
    # The primary is lost, as the promoter re-checks before asking RDS: its host is gone (RDS
    # reports `failed`) and the SQL canary gets no answer (a closed port).
    world.report_status("orders-primary", "us-east-1", "failed")
    cfg = site_config(None, others_port=mariadb.port)
    host = Host(mariadb.port)
    cfg["sites"][0]["canary"]["endpoint"] = f"127.0.0.1:{host.port}"
    cfg["sites"][0]["dns"]["zone_id"] = zone
    # cargo-lambda's emulator reports no usable deadline; give the promoter and pinner 30 s invocations.
    env = function_env(faithful.endpoint, cfg) | {"TOPIC_ARN": topic, "RDS_FAILOVER_FALLBACK_BUDGET_SECS": "30"}
    d = workdir / f"chain-{request.node.name}"
    d.mkdir(exist_ok=True)
    emu = LambdaEmulator(d).start(env, functions=FUNCTIONS)
    yield Site(world, emu, zone, old, host)
    emu.stop()
    host.stop()


class Site:
    def __init__(self, world: World, emu: LambdaEmulator, zone: str, old_target: str, host: Host):
        self.world, self.emu, self.zone, self.old_target, self.host = world, emu, zone, old_target, host
        self.chain = Chain(world, emu)

    def record(self):
        return self.world.writer_record(self.zone, WRITER)

    def state(self):
        return self.world.state("orders")

    def fail_over(self, **extra) -> dict:
        """An operator's failover request, as the runbook gives it: evaluator → FailoverDecided."""
        # RDS publishes replica lag every minute: the replicas' newest datapoint is as fresh as a
        # live replica's, however long the functions' first build took after the fixture (a
        # fresh clone compiles them inside the first test, for longer than GetMetricData's window).
        now = dt.datetime.now(dt.timezone.utc)
        for r in ("orders-replica-1", "orders-replica-2"):
            self.world.put_lag(r, 2.0, now - dt.timedelta(seconds=30))
        cmd = {"command": "failover", "site": "orders", "operator": "alice", "reason": "drill: us-east-1 lost"} | extra
        return self.emu.invoke("alarm-evaluator", cmd)


def age_decision(site: Site, secs: float) -> None:
    """Back-dates the ledger's record of when the current epoch was decided by `secs`: the
    decision sat that long between the evaluator and the promoter (EventBridge retries a delivery
    for up to MaximumEventAgeInSeconds = 3600 s; Lambda's async queue can hold it as long)."""
    st = site.state()
    shift = dt.timedelta(seconds=secs)
    for t in st["timeline"]:
        if t["phase"] == "promoting":
            t["at"] = (dt.datetime.fromisoformat(t["at"].replace("Z", "+00:00")) - shift).isoformat()
    if st.get("decision"):
        st["decision"]["at"] = (dt.datetime.fromisoformat(st["decision"]["at"].replace("Z", "+00:00")) - shift).isoformat()
    site.world.put_state("orders", st)


def subjects(notes: list[dict]) -> list[str]:
    return [n["Subject"] for n in notes]


def by_type(chain: Chain, detail_type: str) -> list[dict]:
    return [e for e in chain.seen if e["detail-type"] == detail_type]


def test_a_decided_failover_promotes_verifies_writes_pins_dns_and_tells_people(site: Site):
    rds_before = site.world.instance("orders-replica-1")
    assert rds_before.get("ReadReplicaSourceDBInstanceIdentifier")
    v = site.fail_over()["verdicts"][0]
    assert v["outcome"]["kind"] == "failover-decided", v["summary"]

    site.chain.pump()
    assert site.chain.types_seen() == ["FailoverDecided", "ReplicaPromoted", "DnsPinned"], (
        site.chain.types_seen(), [(d.function, d.response or str(d.error)) for d in site.chain.deliveries])
    errors = [(d.function, d.error) for d in site.chain.deliveries if d.error]
    assert not errors, errors

    # RDS: a standalone, available instance; the old primary no longer lists it.
    promoted = site.world.instance("orders-replica-1")
    assert promoted["DBInstanceStatus"] == "available"
    assert not promoted.get("ReadReplicaSourceDBInstanceIdentifier")
    assert "orders-replica-1" not in str(site.world.instance("orders-primary", "us-east-1").get("ReadReplicaDBInstanceIdentifiers"))
    assert site.world.instance("orders-replica-2").get("ReadReplicaSourceDBInstanceIdentifier"), "only the chosen candidate"

    # Route 53: the writer name points at the promoted instance's endpoint, with the site's TTL.
    assert site.record() == ("127.0.0.1", 30)

    # Ledger: the phases, the promotion and the previous record (for failback) are recorded.
    st = site.state()
    assert st["epoch"] == 1 and st["phase"] == "dns-pinned", st["phase"]
    p = st["promotion"]
    assert p["candidate"]["id"] == "orders-replica-1" and p["action"] == "PromoteReadReplica"
    assert p["completed_at"] and p["writable_verified_at"] and p["endpoint"].startswith("127.0.0.1:")
    assert st["dns"]["previous_values"] == [site.old_target] and st["dns"]["insync_at"]
    assert [t["phase"] for t in st["timeline"]][-3:] == ["promoting", "promoted", "dns-pinned"]

    # People: one message per phase, subjects within SNS's 100 characters, filterable attributes.
    notes = site.world.notifications()
    assert len(notes) == 3, subjects(notes)
    for n in notes:
        assert 0 < len(n["Subject"]) <= 100
        attrs = {k: v["Value"] for k, v in n["MessageAttributes"].items()}
        assert attrs["site"] == "orders" and attrs["epoch"] == "1" and attrs["severity"] and attrs["phase"]
    body = next(n["Message"] for n in notes if "DnsPinned" in json.dumps(n["MessageAttributes"]) or "pinned" in n["Subject"].lower())
    assert "runbook" in body.lower() and WRITER in body

    # Pinned means automation stands down for the site until a human closes the failover.
    tick = {"version": "0", "id": "after-pin", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": HOME_REGION, "resources": [], "detail": {}}
    [v] = [v for v in site.emu.invoke("alarm-evaluator", tick)["verdicts"] if v["site"] == "orders"]
    assert v["outcome"]["kind"] == "watch" and site.state()["phase"] == "dns-pinned", v["summary"]
    done = site.emu.invoke("alarm-evaluator", {"command": "complete", "site": "orders", "epoch": 1, "operator": "alice",
                                               "reason": "config names orders-replica-1 as primary"})
    assert done["verdicts"][0]["outcome"]["kind"] == "completed", done
    site.chain.pump()
    assert site.chain.types_seen()[-1] == "FailoverCompleted" and site.state()["phase"] == "completed"
    # The tick after the pin paged the old primary's fence (issue 12): the example site has no
    # `fence` section, so every step is refused and a human is told to fence it by hand.
    notes = site.world.notifications()
    assert len(notes) == 2, subjects(notes)
    assert any("fence changed" in n["Subject"] and "INCOMPLETE" in n["Message"] for n in notes), subjects(notes)
    assert site.record() == ("127.0.0.1", 30), "completing changes no DNS"

    # The ledger now owns the topology (issue 11, defect 2): the configuration was not edited and
    # still names orders-primary as the primary, orders-replica-2 as its replica. Even a human's
    # forced, RPO-overriding failover naming orders-replica-2 is refused: it replicates from the
    # dead orders-primary, not from the writer DNS points at. Nothing in RDS changes.
    topo = site.state()["topology"]
    assert topo["primary"]["id"] == "orders-replica-1" and topo["endpoint"].startswith("127.0.0.1:"), topo
    again = site.fail_over(override_rpo=True, override_cooldown=True, candidate="orders-replica-2", force=True,
                           reason="second failover by hand")["verdicts"][0]
    assert again["outcome"] == {"kind": "refused", "reason": "no-healthy-candidate"}, again["summary"]
    assert "does not replicate from the primary orders-replica-1" in again["summary"], again["summary"]
    site.chain.pump()
    assert site.world.instance("orders-replica-2").get("ReadReplicaSourceDBInstanceIdentifier"), "untouched"


def test_a_promotion_taking_n_seconds_is_detected_within_one_poll_gap(site: Site):
    site.fail_over()
    site.chain.pump()
    p = site.state()["promotion"]
    requested = dt.datetime.fromisoformat(p["requested_at"].replace("Z", "+00:00"))
    completed = dt.datetime.fromisoformat(p["completed_at"].replace("Z", "+00:00"))
    took = (completed - requested).total_seconds()
    # The emulator completes the promotion PROMOTION s after the request; the promoter must
    # notice no earlier (topology, not the API's answer) and no later than one poll gap (plus the
    # emulator's and the ledger's own time).
    assert PROMOTION <= took <= PROMOTION + MAX_POLL_GAP + 1.5, took


def test_dns_is_never_changed_before_the_new_primary_is_verified_writable(site: Site, new_primary: MariaDB):
    new_primary.sql("SET GLOBAL read_only = 1;")
    site.fail_over()
    # The promoter watches the promotion complete in RDS, finds the server read-only, and hands
    # the watch on (PromotionContinued) when its invocation's time runs low: no ReplicaPromoted.
    site.chain.pump(max_rounds=1, settle=False)
    assert "ReplicaPromoted" not in site.chain.types_seen(), site.chain.types_seen()
    assert site.world.instance("orders-replica-1")["DBInstanceStatus"] == "available"
    assert site.record() == (site.old_target, 300), "DNS moved before writes were verified"
    assert site.state()["phase"] == "promoting" and not site.state()["promotion"].get("writable_verified_at")

    new_primary.sql("SET GLOBAL read_only = 0;")
    site.chain.pump()
    assert site.chain.types_seen()[-2:] == ["ReplicaPromoted", "DnsPinned"], site.chain.types_seen()
    st = site.state()
    pinned_at = dt.datetime.fromisoformat(st["dns"]["insync_at"].replace("Z", "+00:00"))
    verified_at = dt.datetime.fromisoformat(st["promotion"]["writable_verified_at"].replace("Z", "+00:00"))
    assert verified_at < pinned_at
    assert site.record() == ("127.0.0.1", 30)


def test_redelivering_every_event_of_an_epoch_changes_nothing_and_pages_no_one_twice(site: Site):
    site.fail_over()
    site.chain.pump()
    first = site.world.notifications()
    version, rds, record = site.state()["version"], site.world.rds_snapshot(), site.record()
    for ev in list(site.chain.seen):
        for d in [site.chain.deliver(fn, ev) for fn in ("replica-promoter", "dns-pinner", "notifier")
                  if fn == "notifier" or ev["detail-type"] in {"replica-promoter": ["FailoverDecided"], "dns-pinner": ["ReplicaPromoted"]}[fn]]:
            assert d.error is None, (d.function, d.error)
    assert site.world.drain_events() == [], "no new domain events"
    assert site.world.notifications() == [], "no second page"
    assert (site.state()["version"], site.world.rds_snapshot(), site.record()) == (version, rds, record)
    assert len(first) == 3


def test_a_stale_epoch_changes_nothing_anywhere(site: Site):
    site.fail_over()
    site.chain.pump()
    site.world.notifications()
    version, rds, record = site.state()["version"], site.world.rds_snapshot(), site.record()
    [decided] = by_type(site.chain, "FailoverDecided")
    [promoted] = by_type(site.chain, "ReplicaPromoted")
    for fn, ev in (("replica-promoter", decided), ("dns-pinner", promoted)):
        stale = json.loads(json.dumps(ev))
        stale["id"] = f"stale-{fn}"
        stale["detail"]["epoch"] = 0
        d = site.chain.deliver(fn, stale)
        assert d.error is None, d.error  # fenced is an answer, not an error Lambda would retry
        assert "fenced" in json.dumps(d.response) or d.response.get("outcome") == "ignored", d.response
    assert site.world.drain_events() == []
    assert (site.state()["version"], site.world.rds_snapshot(), site.record()) == (version, rds, record)
    time.sleep(INSYNC)  # nothing pending either
    assert site.record() == record


DOMAIN = Path(__file__).resolve().parent.parent / "events" / "domain"


def recorded(name: str) -> dict:
    return json.loads((DOMAIN / f"{name}.json").read_text())


def test_recorded_domain_events_replayed_through_the_functions_the_template_routes_them_to(site: Site):
    """Every file in events/domain/ (recorded from a chain run), replayed through cargo-lambda."""
    files = sorted(DOMAIN.glob("*.json"))
    assert len(files) >= 6
    for f in files:
        ev = json.loads(f.read_text())
        want = {"notifier"} | {"FailoverDecided": {"replica-promoter"}, "PromotionContinued": {"replica-promoter"},
                               "ReplicaPromoted": {"dns-pinner"}, "DnsPinContinued": {"dns-pinner"}}.get(ev["detail-type"], set())
        assert targets(ev, "domain") == want, f.name

    # The ledger at epoch 1, promoting orders-replica-1: what the recorded FailoverDecided says.
    site.fail_over()
    site.world.drain_events()
    site.world.notifications()

    d = site.chain.deliver("replica-promoter", recorded("failover-decided-orders-epoch-1"))
    assert d.error is None and d.response["outcome"]["kind"] == "promoted", d.response or d.error
    assert not site.world.instance("orders-replica-1").get("ReadReplicaSourceDBInstanceIdentifier")
    assert site.state()["phase"] == "promoted"
    assert [e["detail-type"] for e in site.world.drain_events()] == ["ReplicaPromoted"]

    rds = site.world.rds_snapshot()
    d = site.chain.deliver("replica-promoter", recorded("promotion-continued-orders-epoch-1"))
    assert d.error is None and d.response["outcome"]["kind"] == "already-promoted", d.response or d.error
    assert site.world.rds_snapshot() == rds and site.world.drain_events() == []

    assert site.record() == (site.old_target, 300)
    d = site.chain.deliver("dns-pinner", recorded("replica-promoted-orders-epoch-1"))
    assert d.error is None and d.response["outcome"] == "pinned", d.response or d.error
    assert site.record() == ("127.0.0.1", 30) and site.state()["phase"] == "dns-pinned"
    assert [e["detail-type"] for e in site.world.drain_events()] == ["DnsPinned"]

    # The notifier pages only for what the ledger recorded: the recorded billing and payments
    # events were taken from runs where those sites' records said so; give them those records.
    base = site.state()
    for name, epoch, phase, timeline in (
        ("billing", 1, "refused", [("suspected", "outage evidence"), ("refused", "RPO guard failed")]),
        ("payments", 0, "idle", []),
    ):
        site.world.put_state(name, base | {
            "site": name, "version": 2, "epoch": epoch, "phase": phase, "candidate": None,
            "decision": None, "fence": None, "outbox": [],
            "timeline": [{"phase": p, "at": "2026-11-24T03:00:00Z", "note": n} for p, n in timeline],
        })
    # The notifier: one message per recorded event; the same delivery again sends nothing.
    for f in files:
        ev = json.loads(f.read_text())
        first = site.chain.deliver("notifier", ev)
        assert first.error is None and first.response["outcome"] == "sent", (f.name, first.response or first.error)
        assert site.chain.deliver("notifier", ev).response["outcome"] == "duplicate", f.name
    notes = site.world.notifications()
    assert len(notes) == len(files)
    for n in notes:
        assert 0 < len(n["Subject"]) <= 100 and "\n" not in n["Subject"]
        attrs = {k: v["Value"] for k, v in n["MessageAttributes"].items()}
        assert {"site", "phase", "severity", "epoch"} <= set(attrs), attrs
        assert "runbook" in n["Message"].lower() or "next" in n["Message"].lower()


def test_a_manual_failover_of_a_primary_that_answers_is_refused_and_mutates_nothing(site: Site):
    """Issue 11, defect 3, on the emulator chain: the primary is up (RDS available, the real
    MariaDB canary may not even answer). Without `force` the command is refused before anything is asked of
    RDS; the message names the switchover and `force`."""
    site.world.report_status("orders-primary", "us-east-1", None)  # the fixture's lost host is back
    before = site.world.instance("orders-replica-1")
    v = site.emu.invoke("alarm-evaluator", {"command": "failover", "site": "orders", "operator": "alice", "reason": "looks slow"})["verdicts"][0]
    assert v["outcome"] == {"kind": "refused", "reason": "primary-alive"}, v["summary"]
    assert "two writers" in v["summary"] and '"force":true' in v["summary"], v["summary"]
    site.chain.pump()
    assert "FailoverDecided" not in site.chain.types_seen()
    after = site.world.instance("orders-replica-1")
    assert after.get("ReadReplicaSourceDBInstanceIdentifier") == before.get("ReadReplicaSourceDBInstanceIdentifier")
    assert (site.state() or {}).get("phase") in (None, "idle"), site.state()


def assert_aborted_without_rds(site: Site, rds_before: dict, record_before, reason: str) -> dict:
    """The epoch aborted before RDS was asked: no PromoteReadReplica (the replica still replicates
    and no promotion was recorded), DNS untouched, and people told why with the next step."""
    assert site.chain.types_seen() == ["FailoverDecided", "FailoverAborted"], site.chain.types_seen()
    [promoter] = [d for d in site.chain.deliveries if d.function == "replica-promoter"]
    assert promoter.error is None and promoter.response["outcome"]["kind"] == "aborted", promoter.response or promoter.error
    assert promoter.response["outcome"]["reason"] == reason, promoter.response
    assert site.world.rds_snapshot() == rds_before, "RDS was not asked to promote anything"
    assert site.world.instance("orders-replica-1").get("ReadReplicaSourceDBInstanceIdentifier")
    assert site.record() == record_before, "DNS untouched"
    st = site.state()
    assert st["phase"] == "aborted" and not st.get("promotion"), st["phase"]
    [note] = [n for n in site.world.notifications() if n["MessageAttributes"]["event_type"]["Value"] == "FailoverAborted"]
    assert "ABORTED" in note["Subject"] and "NEXT" in note["Message"].upper(), note
    return note


def test_a_decision_an_hour_old_is_aborted_with_no_promote_call(site: Site):
    rds_before, record_before = site.world.rds_snapshot(), site.record()
    v = site.fail_over()["verdicts"][0]
    assert v["outcome"]["kind"] == "failover-decided", v["summary"]
    age_decision(site, 3600)

    site.chain.pump()

    note = assert_aborted_without_rds(site, rds_before, record_before, "decision-too-old")
    assert "max_decision_age_secs" in note["Message"], note["Message"]


def test_a_primary_back_up_when_the_decision_arrives_is_not_failed_over(site: Site):
    rds_before, record_before = site.world.rds_snapshot(), site.record()
    v = site.fail_over()["verdicts"][0]
    assert v["outcome"]["kind"] == "failover-decided", v["summary"]
    # Between the decision and its delivery the primary's host comes back: it answers SQL again
    # (RDS's `available` alone would not do: the decision's quorum already outvoted it).
    site.host.come_back()

    site.chain.pump()

    note = assert_aborted_without_rds(site, rds_before, record_before, "primary-alive")
    assert "second writer" in note["Message"], note["Message"]


def test_a_well_formed_forged_dns_pinned_for_an_epoch_the_ledger_does_not_hold_pages_no_one(site: Site):
    """Issue 15: anyone who may put events on the bus can send a well-formed domain event. One for
    an epoch the ledger never reached is ignored before it claims a dedupe key: no SNS message, no
    NOTIFIED item; the real DnsPinned of the epoch the ledger holds still pages."""
    site.fail_over()
    site.chain.pump()
    site.world.notifications()
    assert site.state()["epoch"] == 1 and site.state()["phase"] == "dns-pinned"
    [real] = by_type(site.chain, "DnsPinned")
    forged = json.loads(json.dumps(real))
    forged["id"] = "forged-dns-pinned"
    forged["detail"]["epoch"] = forged["detail"]["verdict"]["epoch"] = 2
    forged["detail"]["verdict"]["summary"] = "all clear, go home"

    def notified() -> list[str]:
        return sorted(i["sk"]["S"] for i in site.world.ledger_items() if i["sk"]["S"].startswith("NOTIFIED#"))

    claims = notified()
    d = site.chain.deliver("notifier", forged)
    assert d.error is None, d.error  # ignored is an answer, not an error Lambda would retry
    assert d.response["outcome"] == "ignored", d.response
    assert "epoch 2 is past the ledger's epoch 1" in d.response["reason"], d.response
    assert site.world.notifications() == [], "no page for the forgery"
    assert notified() == claims, "no dedupe key claimed"
    assert not any(k.startswith("NOTIFIED#000000000002#") for k in notified())
    # The genuine event of the epoch the ledger holds was paged (once) and is still a duplicate.
    assert "NOTIFIED#000000000001#DnsPinned" in claims
    assert site.chain.deliver("notifier", real).response["outcome"] == "duplicate"
