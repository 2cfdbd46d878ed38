"""Issue 14, what resolvers get, on the emulator: the dns-pinner (cargo-lambda's runtime
emulator, the real Route 53 adapter and hickory-client) pins against the faithful moto, and
verifies the pin by asking a real DNS server on 127.0.0.1 that answers from the emulated zones
with Route 53's failover semantics (tests/emulated_dns.py; health from the emulated CloudWatch
alarm a CLOUDWATCH_METRIC health check watches).

- scenario 5 + 1: failover-pin with the old primary's health check unhealthy (Route 53 answers
  the SECONDARY, which names a reader) → after the pin the DNS server answers the new writer for
  either health state, and `DnsPinned` says what was seen, its TTL and the previous TTL;
- a name server that answers something else → not `DnsPinned`; the pinner says what it saw.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
from dnslib import CNAME, QTYPE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from fault_proxy import FaultProxy, Rule
from harness import ROOT, LambdaEmulator, MotoServer, free_port
from world import HOME_REGION, World, example_config, function_env

INSYNC = 1.0
BILLING_DNS = "db.billing.example.com"
BILLING_OLD = "billing-1.cdef.us-west-2.rds.amazonaws.com"
BILLING_READER = "billing-3.cdef.us-west-2.rds.amazonaws.com"
BILLING_WRITER = "billing-cluster.cluster-cdef.us-west-2.rds.amazonaws.com"
ORDERS_DNS = "db.orders.example.com"
ORDERS_OLD = "orders-primary.cabc.us-east-1.rds.amazonaws.com"
ORDERS_NEW = "orders-replica-1.cabc.us-west-2.rds.amazonaws.com"
HEALTH_ALARM = "billing-old-primary-health"


class StaleNameServer:
    """A name server that still answers what the zone held before the pin (authoritatively)."""

    def __init__(self, name: str, value: str, ttl: int):
        outer = self

        class Stale(BaseResolver):
            def resolve(self, request, handler):
                reply = request.reply()
                reply.header.aa = 1
                if str(request.q.qname).rstrip(".").lower() == outer.name:
                    reply.add_answer(RR(str(request.q.qname), QTYPE.CNAME, ttl=outer.ttl, rdata=CNAME(outer.value)))
                return reply

        self.name, self.value, self.ttl = name, value, ttl
        self.port = free_port()
        quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-data", prefix=False)
        self.server = DNSServer(Stale(), port=self.port, address="127.0.0.1", logger=quiet)
        self.server.start_thread()

    def stop(self) -> None:
        self.server.stop()


def ask(port: int, name: str, qtype: str) -> list[tuple[str, int]]:
    """What the DNS server on 127.0.0.1:`port` answers: (CNAME target, TTL) records."""
    # UDP, as resolvers ask: a lost or late datagram (a loaded machine) is asked again, as they do.
    for attempt in range(3):
        try:
            reply = DNSRecord.parse(DNSRecord.question(name, qtype).send("127.0.0.1", port, timeout=5))
            break
        except TimeoutError:
            if attempt == 2:
                raise
    assert reply.header.aa == 1, reply
    return [(str(r.rdata).rstrip("."), r.ttl) for r in reply.rr if r.rtype == QTYPE.CNAME]


@pytest.fixture(scope="module")
def faithful(workdir):
    d = workdir / "dns-emulator"
    d.mkdir(exist_ok=True)
    server = MotoServer(d, promotion_secs=2.0, dns_insync_secs=INSYNC).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stale():
    s = StaleNameServer(ORDERS_DNS, ORDERS_OLD, 300)
    yield s
    s.stop()


@pytest.fixture
def site(faithful, stale, workdir, request):
    faithful.reset()
    world = World(faithful.endpoint).seed()
    cfg = example_config()
    zones = {"billing": seed_billing_pair(world), "orders": world.seed_writer_record(ORDERS_DNS, ORDERS_OLD, ttl=300)}
    for s in cfg["sites"]:
        if s["id"] in zones:
            s["dns"]["zone_id"] = zones[s["id"]]
        if s["id"] == "orders":
            # orders names its name server explicitly: one that still answers the old primary.
            s["dns"]["name_servers"] = [f"127.0.0.1:{stale.port}"]
    env = function_env(faithful.endpoint, cfg) | {"RDS_FAILOVER_FALLBACK_BUDGET_SECS": "12"}
    d = workdir / f"dns-{request.node.name}"
    d.mkdir(exist_ok=True)
    emu = LambdaEmulator(d).start(env, functions=("dns-pinner",))
    yield world, emu, faithful, zones
    emu.stop()


def seed_billing_pair(world: World) -> str:
    """billing's failover pair: PRIMARY → the old primary, guarded by a CLOUDWATCH_METRIC health
    check on an alarm now in ALARM (the old primary looks down); SECONDARY → a reader."""
    cw = world.client("cloudwatch")
    cw.put_metric_alarm(AlarmName=HEALTH_ALARM, Namespace="rds-failover/test", MetricName="old-primary-down",
                        Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=0,
                        ComparisonOperator="GreaterThanThreshold", TreatMissingData="ignore")
    cw.set_alarm_state(AlarmName=HEALTH_ALARM, StateValue="ALARM", StateReason="the old primary is down")
    r53 = world.client("route53")
    hc = r53.create_health_check(CallerReference=f"hc-{dt.datetime.now().timestamp()}", HealthCheckConfig={
        "Type": "CLOUDWATCH_METRIC", "AlarmIdentifier": {"Region": HOME_REGION, "Name": HEALTH_ALARM},
        "InsufficientDataHealthStatus": "LastKnownStatus"})["HealthCheck"]["Id"]
    zid = r53.create_hosted_zone(Name="billing.example.com.", CallerReference=f"billing-{dt.datetime.now().timestamp()}")[
        "HostedZone"]["Id"].split("/")[-1]
    changes = [{"Action": "CREATE", "ResourceRecordSet": {
        "Name": BILLING_DNS, "Type": "CNAME", "SetIdentifier": ident, "Failover": role, "TTL": 60,
        "ResourceRecords": [{"Value": value}], **({"HealthCheckId": hc} if role == "PRIMARY" else {})}}
        for ident, role, value in (("billing-primary", "PRIMARY", BILLING_OLD), ("billing-secondary", "SECONDARY", BILLING_READER))]
    r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": changes})
    return zid


def promoted(world: World, site: str, candidate: str, endpoint: str, epoch: int = 2) -> dict:
    """GIVEN the promoter's ledger record (epoch promoted, endpoint verified writable); returns the
    ReplicaPromoted it published."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ref = {"id": candidate, "region": HOME_REGION}
    world.put_state(site, {
        "site": site, "version": 7, "epoch": epoch, "phase": "promoted", "candidate": ref,
        "timeline": [{"phase": "promoted", "at": now, "note": f"{candidate} accepts writes"}],
        "promotion": {"epoch": epoch, "candidate": ref, "action": "test", "requested_at": now,
                      "completed_at": now, "endpoint": f"{endpoint}:3306", "writable_verified_at": now},
        "updated_at": now,
    })
    event = json.loads((ROOT / "events" / "domain" / "replica-promoted-orders-epoch-1.json").read_text())
    d = event["detail"]
    d.update(site=site, epoch=epoch, candidate=ref, occurred_at=now)
    d["verdict"].update(site=site, epoch=epoch)
    d["verdict"]["outcome"]["candidate"] = ref
    event["time"] = now[:19] + "Z"
    return event


def pinned_message(world: World) -> str:
    for e in world.drain_events():
        if e["detail-type"] == "DnsPinned":
            return e["detail"]["verdict"]["summary"]
    raise AssertionError("no DnsPinned event")


def test_scenario_5_a_failover_pin_is_verified_at_the_zones_dns_server_for_either_health_state(site):
    world, emu, faithful, zones = site
    # GIVEN the old primary's health check is unhealthy: the zone answers with the SECONDARY, a reader.
    assert ask(faithful.dns_port, BILLING_DNS, "A") == [(BILLING_READER, 60)]
    event = promoted(world, "billing", "billing-2", BILLING_WRITER)

    r = emu.invoke("dns-pinner", event)

    assert r["outcome"] == "pinned", r
    # THEN the DNS server answers the cluster's writer endpoint, to A and CNAME queries...
    for qtype in ("A", "CNAME"):
        assert ask(faithful.dns_port, BILLING_DNS, qtype) == [(BILLING_WRITER, 30)]
    # ...and keeps doing so when the old primary's health check turns healthy again (PRIMARY).
    world.client("cloudwatch").set_alarm_state(AlarmName=HEALTH_ALARM, StateValue="OK", StateReason="back")
    assert ask(faithful.dns_port, BILLING_DNS, "A") == [(BILLING_WRITER, 30)]
    msg = pinned_message(world)
    print("DnsPinned:", msg)
    assert f"verified: {BILLING_DNS} CNAME {BILLING_WRITER} TTL 30" in msg, msg
    assert f"127.0.0.1:{faithful.dns_port}" in msg, "the zone's delegation set was asked"
    assert "the previous record's TTL was 60 s" in msg, msg
    assert world.state("billing")["phase"] == "dns-pinned"


def test_a_name_server_answering_the_old_primary_is_not_pinned_and_the_pinner_says_what_it_saw(site, stale):
    world, emu, faithful, zones = site
    event = promoted(world, "orders", "orders-replica-1", ORDERS_NEW)

    r = emu.invoke("dns-pinner", event)

    # Route 53 holds the change (INSYNC), but the name server still answers the old primary.
    assert world.writer_record(zones["orders"], ORDERS_DNS) == (ORDERS_NEW, 30)
    assert r["outcome"] == "continued", r
    print("continued:", r["detail"])
    assert f"127.0.0.1:{stale.port} (A): CNAME {ORDERS_OLD}. TTL 300" in r["detail"], r["detail"]
    assert world.state("orders")["phase"] == "promoted", "INSYNC alone is not DnsPinned"
    said = [e for e in world.drain_events() if e["detail-type"] == "DnsPinContinued"]
    assert said and ORDERS_OLD in said[-1]["detail"]["verdict"]["summary"]


# ---------------------------------------------------------------- scenario 4: Route 53's API dark

SWITCH_ALARM = "rds-failover-orders-serve-secondary"
SWITCH_METRIC = {"namespace": "RdsFailover/Switch", "name": "ServeSecondary", "region": HOME_REGION,
                 "alarm": SWITCH_ALARM, "dimensions": {"Site": "orders"}}
# Route 53's API failing: every Route 53 request the pinner makes answers 500 InternalFailure
# (tests/fault_proxy.py); CloudWatch, DynamoDB, EventBridge and the name servers answer.
ROUTE53_DARK = [Rule(op="*", fault="internal", service="route53")]


SWITCH_DIMS = [{"Name": k, "Value": v} for k, v in SWITCH_METRIC["dimensions"].items()]


def put_switch(world: World, value: float) -> None:
    world.client("cloudwatch").put_metric_data(Namespace=SWITCH_METRIC["namespace"], MetricData=[
        {"MetricName": SWITCH_METRIC["name"], "Dimensions": SWITCH_DIMS, "Value": value}])


def switch_alarm_state(world: World) -> str:
    return world.client("cloudwatch").describe_alarms(AlarmNames=[SWITCH_ALARM])["MetricAlarms"][0]["StateValue"]


def seed_switch_pair(world: World, datapoints_to_alarm: int = 1) -> str:
    """orders as the template builds a data-plane-switch site: an alarm in the DR region on the
    tool's metric (1 = ALARM, TreatMissingData ignore), a CLOUDWATCH_METRIC health check on it
    (LastKnownStatus) guarding the PRIMARY (the old primary); the SECONDARY names the DR replica.
    "M out of N" with M = N = `datapoints_to_alarm` periods of 60 s (the template's is 1 of 1).
    The pinner's scenarios keep 1 of 1: the emulator's periods are scaled down
    (harness.MotoServer alarm_period_scale) but the pinner's pace is not, so "2 of 2" would need
    datapoints in two consecutive 1 s periods, which a pinner that polls every few seconds does
    not put (on AWS, 60 s periods, it does: it re-puts 1 on every try, at most 10 s apart). The
    re-put is proven on the fakes (handler/tests/dataplane.rs, an alarm needing two datapoints)."""
    cw = world.client("cloudwatch")
    cw.put_metric_alarm(AlarmName=SWITCH_ALARM, Namespace=SWITCH_METRIC["namespace"],
                        MetricName=SWITCH_METRIC["name"], Dimensions=SWITCH_DIMS, Statistic="Maximum", Period=60,
                        EvaluationPeriods=datapoints_to_alarm, DatapointsToAlarm=datapoints_to_alarm, Threshold=1,
                        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="ignore")
    put_switch(world, 0)
    r53 = world.client("route53")
    hc = r53.create_health_check(CallerReference=f"switch-{dt.datetime.now().timestamp()}", HealthCheckConfig={
        "Type": "CLOUDWATCH_METRIC", "AlarmIdentifier": {"Region": HOME_REGION, "Name": SWITCH_ALARM},
        "InsufficientDataHealthStatus": "LastKnownStatus"})["HealthCheck"]["Id"]
    zid = r53.create_hosted_zone(Name="orders.example.com.", CallerReference=f"orders-{dt.datetime.now().timestamp()}")[
        "HostedZone"]["Id"].split("/")[-1]
    changes = [{"Action": "CREATE", "ResourceRecordSet": {
        "Name": ORDERS_DNS, "Type": "CNAME", "SetIdentifier": ident, "Failover": role, "TTL": 60,
        "ResourceRecords": [{"Value": value}], **({"HealthCheckId": hc} if role == "PRIMARY" else {})}}
        for ident, role, value in (("orders-primary", "PRIMARY", ORDERS_OLD), ("orders-secondary", "SECONDARY", ORDERS_NEW))]
    r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": changes})
    return zid


def pair_values(world: World, zid: str) -> list[str]:
    sets = world.client("route53").list_resource_record_sets(HostedZoneId=zid)["ResourceRecordSets"]
    return sorted(rs["ResourceRecords"][0]["Value"] for rs in sets if rs["Type"] == "CNAME")


@pytest.fixture
def dark_route53(faithful, workdir, request):
    """orders's failover pair in `request.param` mode, the pinner on the emulator behind the fault
    proxy, Route 53's API failing from the start; the test lifts it (`proxy.clear()`)."""
    faithful.reset()
    world = World(faithful.endpoint).seed()
    zid = seed_switch_pair(world)
    cfg = example_config()
    for s in cfg["sites"]:
        if s["id"] == "orders":
            s["dns"]["zone_id"] = zid
            s["dns"]["name_servers"] = [f"127.0.0.1:{faithful.dns_port}"]
            s["dns"]["mode"] = ({"kind": "failover-pin", "primary_set_identifier": "orders-primary"}
                                if request.param == "failover-pin" else
                                {"kind": "data-plane-switch", "primary_set_identifier": "orders-primary",
                                 "secondary_candidate": "orders-replica-1", "metric": SWITCH_METRIC})
    proxy = FaultProxy(faithful.endpoint).start()
    proxy.set_rules(ROUTE53_DARK)
    env = function_env(proxy.endpoint, cfg) | {"RDS_FAILOVER_FALLBACK_BUDGET_SECS": "8"}
    d = workdir / f"dns-{request.node.name}"
    d.mkdir(exist_ok=True)
    emu = LambdaEmulator(d).start(env, functions=("dns-pinner",))
    try:
        yield world, emu, proxy, zid, faithful.dns_port
    finally:
        emu.stop()
        proxy.stop()


def until_pinned(world: World, emu, seen: list[dict], links: int = 3) -> dict:
    """Route 53 answering again: delivers the newest DnsPinContinued, then each one it hands on
    (an invocation may run out while the change is PENDING), until one is not `continued`."""
    for _ in range(links):
        r = emu.invoke("dns-pinner", next(e for e in reversed(seen) if e["detail-type"] == "DnsPinContinued"))
        if r["outcome"] != "continued":
            return r
        seen += world.drain_events()
    return r


def continue_while_dark(world: World, emu, event: dict, links: int) -> list[dict]:
    """Delivers `event`, then each DnsPinContinued the pinner hands on, `links` invocations in all
    (Route 53 still dark); returns every domain event published."""
    seen = []
    for _ in range(links):
        r = emu.invoke("dns-pinner", event)
        assert r["outcome"] == "continued", r
        seen += world.drain_events()
        event = next(e for e in reversed(seen) if e["detail-type"] == "DnsPinContinued")
    return seen


SLOW_PERIOD = 3.0  # real seconds one 60 s alarm period lasts on slow_alarms' emulator


@pytest.fixture
def slow_alarms(workdir):
    """An emulator of its own whose alarm periods last SLOW_PERIOD s: long enough for a few API
    calls inside one period on a loaded machine."""
    d = workdir / "dns-slow-alarms"
    d.mkdir(exist_ok=True)
    server = MotoServer(d, dns_insync_secs=INSYNC, alarm_period_scale=SLOW_PERIOD / 60).start()
    yield server
    server.stop()


def next_period() -> None:
    """Sleeps until just after the next alarm period of slow_alarms begins."""
    time.sleep(SLOW_PERIOD - time.time() % SLOW_PERIOD + 0.05)


def test_an_m_of_n_switch_alarm_needs_m_periods_and_the_health_check_follows_only_the_alarm(slow_alarms):
    """Correction 13 (faithful_moto): the emulated alarm evaluates "M out of N" periods as
    CloudWatch does, and Route 53's CLOUDWATCH_METRIC health check follows the alarm, not the
    datapoint."""
    world = World(slow_alarms.endpoint).seed()
    seed_switch_pair(world, datapoints_to_alarm=2)
    port = slow_alarms.dns_port
    # ONE datapoint of 1 with DatapointsToAlarm 2: the alarm stays OK, the PRIMARY is answered.
    next_period()
    put_switch(world, 1)
    assert switch_alarm_state(world) == "OK"
    assert ask(port, ORDERS_DNS, "A") == [(ORDERS_OLD, 60)], "the health check moved without the alarm"
    # A second 1 in the next period: 2 of the last 2 breach, ALARM, the SECONDARY is answered.
    next_period()
    put_switch(world, 1)
    assert switch_alarm_state(world) == "ALARM"
    assert ask(port, ORDERS_DNS, "A") == [(ORDERS_NEW, 60)]
    # A 0 in the same period as a 1: the period's Maximum is still 1, the alarm stays in ALARM (why
    # unpin waits for the alarm to read OK before it restores the records).
    put_switch(world, 0)
    assert switch_alarm_state(world) == "ALARM"
    assert ask(port, ORDERS_DNS, "A") == [(ORDERS_NEW, 60)]
    # A 0 in the next period: only 1 of the last 2 breaches, back to OK and the PRIMARY.
    next_period()
    put_switch(world, 0)
    assert switch_alarm_state(world) == "OK"
    assert ask(port, ORDERS_DNS, "A") == [(ORDERS_OLD, 60)]


@pytest.mark.parametrize("dark_route53", ["data-plane-switch"], indirect=True)
def test_scenario_4_data_plane_switch_moves_traffic_while_route53_is_dark_then_pins_the_records(dark_route53):
    world, emu, proxy, zid, port = dark_route53
    assert ask(port, ORDERS_DNS, "A") == [(ORDERS_OLD, 60)]
    event = promoted(world, "orders", "orders-replica-1", ORDERS_NEW)

    seen = continue_while_dark(world, emu, event, links=2)

    # THEN with Route 53's API dark, the zone's name server answers the new primary (the SECONDARY,
    # its PRIMARY's health check unhealthy because the tool's alarm in the DR region is in ALARM).
    assert ask(port, ORDERS_DNS, "A") == [(ORDERS_NEW, 60)]
    alarm = world.client("cloudwatch").describe_alarms(AlarmNames=[SWITCH_ALARM])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM", alarm
    assert world.state("orders")["phase"] == "dns-pinned"
    [pinned] = [e["detail"]["verdict"]["summary"] for e in seen if e["detail-type"] == "DnsPinned"]
    print("DnsPinned (Route 53 dark):", pinned)
    assert "the records are NOT pinned yet" in pinned and "InternalFailure" in pinned, pinned
    assert f"verified: {ORDERS_DNS} CNAME {ORDERS_NEW} TTL 60" in pinned, pinned

    # WHEN Route 53's API answers again, the next link pins both records too.
    proxy.clear()
    assert pair_values(world, zid) == sorted([ORDERS_OLD, ORDERS_NEW]), "nothing changed while dark"
    r = until_pinned(world, emu, seen)
    assert r["outcome"] == "pinned", r
    print("records:", r["detail"])
    assert r["detail"].startswith("records pinned too"), r["detail"]
    assert pair_values(world, zid) == [ORDERS_NEW, ORDERS_NEW]
    assert not [e for e in world.drain_events() if e["detail-type"] == "DnsPinned"], "one DnsPinned per epoch"
    assert world.state("orders")["data_plane_switch"]["records_pending"] is False


@pytest.mark.parametrize("dark_route53", ["failover-pin"], indirect=True)
def test_scenario_4_failover_pin_keeps_going_while_route53_is_dark_and_pins_when_it_answers(dark_route53):
    world, emu, proxy, zid, port = dark_route53
    event = promoted(world, "orders", "orders-replica-1", ORDERS_NEW)

    seen = continue_while_dark(world, emu, event, links=2)

    assert ask(port, ORDERS_DNS, "A") == [(ORDERS_OLD, 60)], "no data-plane switch: traffic stays"
    assert world.state("orders")["phase"] == "promoted"
    assert not [e for e in seen if e["detail-type"] == "DnsPinned"]
    proxy.clear()
    r = until_pinned(world, emu, seen)
    assert r["outcome"] == "pinned", r
    assert pair_values(world, zid) == [ORDERS_NEW, ORDERS_NEW]
    assert ask(port, ORDERS_DNS, "A") == [(ORDERS_NEW, 30)]
    assert world.state("orders")["phase"] == "dns-pinned"


@pytest.fixture
def site_and_evaluator(faithful, workdir):
    faithful.reset()
    world = World(faithful.endpoint).seed()
    cfg = example_config()
    zone = seed_billing_pair(world)
    for s in cfg["sites"]:
        if s["id"] == "billing":
            s["dns"]["zone_id"] = zone
    env = function_env(faithful.endpoint, cfg) | {"RDS_FAILOVER_FALLBACK_BUDGET_SECS": "12"}
    d = workdir / "dns-unpin"
    d.mkdir(exist_ok=True)
    emu = LambdaEmulator(d).start(env, functions=("alarm-evaluator", "dns-pinner"))
    yield world, emu, faithful
    emu.stop()


def unpin(emu, world) -> dict:
    return emu.invoke("alarm-evaluator", {"command": "unpin", "site": "billing", "operator": "alice",
                                          "reason": "failed back to billing-1"})["verdicts"][0]


def test_unpin_after_failback_restores_the_recorded_failover_pair_as_the_dns_server_answers(site_and_evaluator):
    world, emu, faithful = site_and_evaluator
    # GIVEN a failover-pin to the cluster's writer (both members rewritten)...
    r = emu.invoke("dns-pinner", promoted(world, "billing", "billing-2", BILLING_WRITER))
    assert r["outcome"] == "pinned", r
    assert ask(faithful.dns_port, BILLING_DNS, "A") == [(BILLING_WRITER, 30)]
    world.drain_events()
    # ...while the pinned writer is the writer, unpin is refused: the recorded PRIMARY is billing-1.
    st = world.state("billing")
    st.update(phase="completed", version=st["version"] + 1, topology={
        "epoch": 2, "primary": {"id": "billing-2", "region": HOME_REGION}, "endpoint": f"{BILLING_WRITER}:3306",
        "candidates": [], "at": st["updated_at"]})
    world.put_state("billing", st)
    v = unpin(emu, world)
    print("refused:", v["summary"])
    assert v["outcome"] == {"kind": "refused", "reason": "nothing-to-unpin"}, v
    assert BILLING_OLD in v["summary"] and "billing-2" in v["summary"], v["summary"]
    assert world.drain_events() == [] and ask(faithful.dns_port, BILLING_DNS, "A") == [(BILLING_WRITER, 30)]
    # WHEN the team has failed back by hand (billing-1 the writer, as the ledger says) and unpins...
    st = world.state("billing")
    st.update(version=st["version"] + 1, topology=st["topology"] | {
        "primary": {"id": "billing-1", "region": HOME_REGION}, "endpoint": f"{BILLING_OLD}:3306"})
    world.put_state("billing", st)
    v = unpin(emu, world)
    assert v["outcome"] == {"kind": "watch"}, v
    [requested] = [e for e in world.drain_events() if e["detail-type"] == "UnpinRequested"]
    r = emu.invoke("dns-pinner", requested)
    # THEN the zone holds the recorded pair again: PRIMARY (billing-1, health-checked) while its
    # check is healthy, SECONDARY (the reader) while it is not, each with its recorded TTL.
    assert r["outcome"] == "unpinned", r
    print("unpinned:", r["detail"])
    assert ask(faithful.dns_port, BILLING_DNS, "A") == [(BILLING_READER, 60)]
    world.client("cloudwatch").set_alarm_state(AlarmName=HEALTH_ALARM, StateValue="OK", StateReason="back")
    assert ask(faithful.dns_port, BILLING_DNS, "A") == [(BILLING_OLD, 60)]
    said = [e["detail"]["verdict"]["summary"] for e in world.drain_events() if e["detail-type"] == "DnsUnpinned"]
    assert said and BILLING_OLD in said[0] and BILLING_READER in said[0], said
    assert world.state("billing")["unpin"]["restored_at"]
