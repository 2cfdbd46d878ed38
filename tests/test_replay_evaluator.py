"""Every recorded delivery in events/ replayed through cargo-lambda into `alarm-evaluator`, against
a freshly seeded emulated account, with the clock pinned to the recording's hour.

For each file the test checks what the function answered *and* what it did to the account:
- malformed and self-contradicting input (identity fields that disagree with the ARN) is rejected
  with the typed `BadInput` error, naming the fields; rejected, foreign, forged, unknown,
  stale and future-dated input is ignored before any AWS call; neither writes the ledger or emits;
- genuine deliveries reach exactly the site that owns the resource (a tick reaches every site),
  and the verdict is the one written in `EXPECTED` below for the baseline world: CloudWatch agrees
  with the delivery, every RDS instance is available, the replicas lag 2 s, and the orders canary
  reaches a live MariaDB;
- the evaluator never mutates RDS.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from harness import ROOT, InvokeError, LambdaEmulator
from world import function_env, site_config, utc

EVENTS = ROOT / "events"
MANIFEST = json.loads((EVENTS / "MANIFEST.json").read_text())
REPLAY_CLOCK = "2026-11-24T03:05:00Z"
NEGATIVE_MARKERS = ("foreign", "forged", "unknown", "stale", "future", "attacker")
CONFIG = json.loads((ROOT / "infra" / "sites.example.json").read_text())
ALL_SITES = {s["id"] for s in CONFIG["sites"]}


def owning_site(entry: dict) -> set[str]:
    shape = entry["shape"]
    if shape == "scheduled":
        return ALL_SITES
    if "alarm" in entry and entry["alarm"]:
        name = entry["alarm"]["alarm_name"]
        return {s["id"] for s in CONFIG["sites"] if any(a["name"] == name for a in s["alarms"])}
    if "rds" in entry and entry["rds"]:
        rid = entry["rds"]["source_id"]
        owned = set()
        for s in CONFIG["sites"]:
            ids = {s["primary"]["id"], *(c["id"] for c in s["candidates"])}
            ids |= {v for k, v in s["engine"].items() if k.endswith("_id")}
            if rid in ids:
                owned.add(s["id"])
        return owned
    if "operator" in entry and entry["operator"]:
        return {entry["operator"]["site"]}
    raise AssertionError(f"{entry['file']}: manifest entry names no resource")


def is_negative(entry: dict) -> bool:
    return any(m in entry["file"] for m in NEGATIVE_MARKERS)


@pytest.fixture(scope="module")
def replayer(moto, mariadb, workdir):
    d = workdir / "replay"
    d.mkdir(exist_ok=True)
    emu = LambdaEmulator(d).start(function_env(moto.endpoint, site_config(mariadb.port), REPLAY_CLOCK))
    yield emu
    emu.stop()


def baseline(world, entry: dict) -> None:
    """CloudWatch agrees with the delivery being replayed; replicas have recent lag datapoints."""
    t = utc(REPLAY_CLOCK) - dt.timedelta(seconds=60)  # GetMetricData's end time is exclusive
    for db in ("orders-replica-1", "orders-replica-2", "billing-2"):
        world.put_lag(db, LAG_OVERRIDES.get(entry["file"], 2.0), t)
    alarm = entry.get("alarm") or {}
    if alarm and not is_negative(entry) and alarm.get("state") in ("OK", "ALARM", "INSUFFICIENT_DATA"):
        world.set_alarm(alarm["alarm_name"], alarm["state"])


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_replay(entry, world, replayer):
    file = EVENTS / entry["file"]
    baseline(world, entry)
    rds_before = world.rds_snapshot()
    ledger_before = world.ledger_items()

    if entry["expect"] in ("malformed", "refused"):
        with pytest.raises(InvokeError) as err:
            replayer.invoke_file("alarm-evaluator", file)
        for field in entry.get("refused_fields", []):
            assert f"`{field}`" in err.value.message, err.value
        if not is_json(file):
            # Not JSON at all: AWS's Invoke API refuses it before the function runs; the emulator
            # passes it on and the runtime's deserializer names the parse error instead.
            assert "DeserializeError" in err.value.error_type and "line" in err.value.message, err.value
        else:
            assert err.value.error_type == "BadInput", err.value
        assert world.ledger_items() == ledger_before
        assert world.drain_events() == []
        return

    resp = replayer.invoke_file("alarm-evaluator", file)
    verdicts = resp["verdicts"]
    assert verdicts and all(v["summary"] and v["guards"] for v in verdicts), resp

    if is_negative(entry):
        [v] = verdicts
        # Rejected before any AWS call; a stale or future delivery about a known resource still
        # names the site it would have concerned.
        assert v["outcome"]["kind"] == "ignore", v
        assert v["outcome"]["reason"] in EXPECTED_IGNORE, v
        assert world.ledger_items() == [], "rejected input must not write the ledger"
        assert world.drain_events() == [], "rejected input must not emit"
    else:
        assert {v["site"] for v in verdicts} == owning_site(entry)
        got = {v["site"]: outcome_name(v) for v in verdicts}
        want = EXPECTED.get(entry["file"])
        assert want is not None, f"add {entry['file']} to EXPECTED (got {got})"
        assert got == want, "\n".join(f"{v['site']}: {v['summary']}" for v in verdicts)
        emitted = [e["detail-type"] for e in world.drain_events()]
        assert emitted == resp["emitted"], "what the function says it emitted is what reached the bus"
        assert "FailoverDecided" not in emitted or entry["shape"] in ("operator", "eventbridge-operator")
        if entry["file"] in LEDGER_EFFECTS:
            site, holds = LEDGER_EFFECTS[entry["file"]]
            st = world.state(site)
            assert st is not None and holds(st), st

    assert world.rds_snapshot() == rds_before, "the evaluator never mutates RDS"


# Deliveries whose story needs the replicas further behind than the baseline's 2 s.
LAG_OVERRIDES = {"operator-failover-orders-override-rpo.json": 95.0}


def is_json(path) -> bool:
    try:
        json.loads(path.read_bytes())
        return True
    except ValueError:
        return False


def outcome_name(v: dict) -> str:
    o = v["outcome"]
    return o["kind"] + (f":{o['reason']}" if "reason" in o else "")


EXPECTED_IGNORE = {"stale", "from-the-future", "foreign-account", "foreign-region", "wrong-source", "unknown-resource", "unknown-site"}
# What an RDS event without an event id gets (issue 17): recorded, nothing else.
UNIDENTIFIED = "ignore:unidentified"

# The verdict each genuine recorded delivery gets in the baseline world (see module docstring):
# live evidence outvotes a lone alarm or RDS event (one vote opens a suspected incident, never a
# failover); INSUFFICIENT_DATA is unknown, so the other voters decide; lag and composite alarms
# do not vote on the primary's availability; an operator's failover needs no quorum but does need
# bounded lag, and of an RDS primary that answers it is refused without `force`; approve with
# nothing awaiting approval is refused.
EXPECTED: dict[str, dict[str, str]] = {
    "alarm-action-billing-writer-availability-ok-to-alarm.json": {"billing": "suspected"},
    "alarm-action-orders-replica-lag-ok-to-alarm.json": {"orders": "ignore:healthy"},
    "eventbridge-alarm-inventory-db-availability-ok-to-alarm.json": {"inventory": "suspected"},
    "eventbridge-alarm-orders-composite-outage-ok-to-alarm.json": {"orders": "ignore:healthy"},
    "eventbridge-alarm-orders-primary-availability-alarm-to-ok.json": {"orders": "ignore:healthy"},
    "eventbridge-alarm-orders-primary-availability-ok-to-alarm.json": {"orders": "suspected"},
    "eventbridge-alarm-orders-primary-availability-ok-to-insufficient-data.json": {"orders": "ignore:healthy"},
    "eventbridge-alarm-orders-primary-canary-ok-to-alarm.json": {"orders": "suspected"},
    "eventbridge-alarm-payments-primary-availability-ok-to-alarm.json": {"payments": "suspected"},
    "eventbridge-operator-approve-billing.json": {"billing": "refused:nothing-to-approve"},
    # The baseline primary answers (RDS available, the canary reaches it): promoting an RDS
    # replica now would make two writers, so an unforced manual failover is refused.
    "eventbridge-operator-failover-orders.json": {"orders": "refused:primary-alive"},
    "eventbridge-operator-pause-payments.json": {"payments": "paused"},
    "eventbridge-operator-status-orders.json": {"orders": "status"},
    "eventbridge-rds-billing-cluster-failover-completed.json": {"billing": "ignore:healthy"},
    "eventbridge-rds-billing-cluster-failover-failed.json": {"billing": "ignore:healthy"},
    "eventbridge-rds-billing-cluster-failover-started.json": {"billing": "ignore:healthy"},
    "eventbridge-rds-inventory-db-backup-finished.json": {"inventory": "ignore:healthy"},
    "eventbridge-rds-inventory-db-backup-started.json": {"inventory": "ignore:healthy"},
    "eventbridge-rds-inventory-db-multi-az-failover-completed.json": {"inventory": "ignore:healthy"},
    "eventbridge-rds-inventory-db-multi-az-failover-started.json": {"inventory": "ignore:healthy"},
    "eventbridge-rds-inventory-db-multi-az-instance-failover-completed.json": {"inventory": "ignore:healthy"},
    "eventbridge-rds-orders-primary-configuration-change.json": {"orders": "ignore:healthy"},
    "eventbridge-rds-orders-primary-no-event-id.json": {"orders": UNIDENTIFIED},
    "eventbridge-rds-orders-primary-restarted.json": {"orders": "ignore:healthy"},
    "eventbridge-rds-orders-primary-shutdown.json": {"orders": "ignore:healthy"},
    "eventbridge-rds-orders-primary-stopped.json": {"orders": "ignore:healthy"},
    "eventbridge-rds-orders-primary-storage-full-shutdown.json": {"orders": "ignore:healthy"},
    "eventbridge-rds-orders-replica-1-replication-error.json": {"orders": "ignore:healthy"},
    "eventbridge-rds-payments-west-global-failover-completed.json": {"payments": "ignore:healthy"},
    "eventbridge-rds-payments-west-global-failover-failed.json": {"payments": "ignore:healthy"},
    "eventbridge-rds-payments-west-global-switchover-failed.json": {"payments": "ignore:healthy"},
    "eventbridge-rds-payments-west-global-switchover-finished.json": {"payments": "ignore:healthy"},
    "eventbridge-rds-payments-west-global-switchover-started.json": {"payments": "ignore:healthy"},
    "operator-approve-billing.json": {"billing": "refused:nothing-to-approve"},
    "operator-complete-orders.json": {"orders": "refused:nothing-to-complete"},
    "operator-failover-billing.json": {"billing": "failover-decided"},
    "operator-failover-orders-override-rpo.json": {"orders": "refused:primary-alive"},
    "operator-pause-inventory.json": {"inventory": "paused"},
    "operator-resume-inventory.json": {"inventory": "resumed"},
    "operator-status-payments.json": {"payments": "status"},
    "scheduled-evaluator-tick.json": {"orders": "ignore:healthy", "billing": "ignore:healthy", "payments": "ignore:healthy", "inventory": "ignore:healthy"},
    "sns-alarm-orders-composite-outage-ok-to-alarm.json": {"orders": "ignore:healthy"},
    "sns-alarm-orders-primary-canary-alarm-to-ok.json": {"orders": "ignore:healthy"},
    "sns-alarm-orders-primary-canary-ok-to-alarm.json": {"orders": "suspected"},
    "sns-rds-billing-cluster-failover-completed.json": {"billing": "ignore:healthy"},
    "sns-rds-billing-cluster-failover-started.json": {"billing": "ignore:healthy"},
    "sns-rds-inventory-db-multi-az-failover-started.json": {"inventory": "ignore:healthy"},
    "sns-rds-orders-primary-shutdown.json": {"orders": "ignore:healthy"},
}

# What a delivery leaves in the ledger even when the verdict is "healthy": RDS's own failovers
# and backups are remembered so a later outage does not race them or promote mid-backup.
LEDGER_EFFECTS = {
    "eventbridge-rds-inventory-db-backup-started.json": ("inventory", lambda st: st["backups_running"] == ["inventory-db"]),
    "eventbridge-rds-inventory-db-multi-az-failover-started.json": ("inventory", lambda st: st["managed_failover"]["event_id"] == "RDS-EVENT-0013"),
    "sns-rds-inventory-db-multi-az-failover-started.json": ("inventory", lambda st: st["managed_failover"]["source_id"] == "inventory-db"),
    "eventbridge-rds-billing-cluster-failover-started.json": ("billing", lambda st: st["managed_failover"]["event_id"] == "RDS-EVENT-0073"),
    "eventbridge-rds-payments-west-global-switchover-started.json": ("payments", lambda st: st["managed_failover"]["event_id"] == "RDS-EVENT-0181"),
    "operator-pause-inventory.json": ("inventory", lambda st: st["paused"] is not None),
    # Unidentified: remembered (a redelivery is a duplicate), no incident, no backup or failover noted.
    "eventbridge-rds-orders-primary-no-event-id.json": (
        "orders", lambda st: "f46895fb-fd2c-350d-bc22-2fed2e82208b" in st["recent_signals"]
        and st["phase"] == "idle" and not st.get("managed_failover") and not st.get("backups_running")),
}


def test_the_readme_invoke_command_answers_with_the_verdict(world, replayer):
    """`cargo lambda invoke alarm-evaluator --data-file events/<file>`, as the README shows it."""
    resp = replayer.invoke_cli("alarm-evaluator", EVENTS / "scheduled-evaluator-tick.json")
    assert {v["site"] for v in resp["verdicts"]} == ALL_SITES
    assert all(v["guards"] and v["summary"] for v in resp["verdicts"])


# ------------------------------------------------------------------ payloads AWS publishes
#
# events/published/ holds payloads AWS itself publishes (SOURCES.md), each replayed twice: as
# published — nothing in them is configured here, so a typed BadInput or an ignore before any AWS
# call — and retargeted by rewriting only identity fields and times (MANIFEST.json's `set` paths,
# the same ones shared/policy/tests/published_events.rs applies), when it must get the verdict the
# manifest names for the site it now names, in the same baseline world as the recorded events.

PUBLISHED = EVENTS / "published"
PUBLISHED_MANIFEST = json.loads((PUBLISHED / "MANIFEST.json").read_text())


def _set(doc, path: list, value):
    """`value` at `path` (keys, indices, and "$json" to descend into a JSON document in a string)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if head == "$json":
        return json.dumps(_set(json.loads(doc), rest, value))
    doc[head] = _set(doc[head], rest, value)
    return doc


def retargeted(entry: dict) -> bytes:
    doc = json.loads((PUBLISHED / entry["file"]).read_bytes())
    for path, value in entry["retarget"]["set"]:
        doc = _set(doc, path, value)
    return json.dumps(doc).encode()


def _refused_or_ignored(world, replayer, body: bytes, want: str, ledger_before) -> None:
    if want == "BadInput":
        with pytest.raises(InvokeError) as err:
            replayer.invoke_raw("alarm-evaluator", body)
        assert err.value.error_type == "BadInput", err.value
    else:
        resp = replayer.invoke_raw("alarm-evaluator", body)
        [v] = resp["verdicts"]
        assert outcome_name(v) == want, v["summary"]
        assert v["guards"], v
    assert world.ledger_items() == ledger_before, "refused or ignored input must not write the ledger"
    assert world.drain_events() == [], "refused or ignored input must not emit"


@pytest.mark.parametrize("entry", PUBLISHED_MANIFEST, ids=[e["file"] for e in PUBLISHED_MANIFEST])
def test_published(entry, world, replayer):
    rds_before = world.rds_snapshot()
    _refused_or_ignored(world, replayer, (PUBLISHED / entry["file"]).read_bytes(), entry["as_published"], world.ledger_items())

    r = entry["retarget"]
    body = retargeted(entry)
    if r["expect"] == "malformed":
        _refused_or_ignored(world, replayer, body, "BadInput", world.ledger_items())
    else:
        baseline(world, {"file": entry["file"], "alarm": r.get("alarm")})
        resp = replayer.invoke_raw("alarm-evaluator", body)
        got = {v["site"]: outcome_name(v) for v in resp["verdicts"]}
        assert got == r["verdict"], "\n".join(f"{v['site']}: {v['summary']}" for v in resp["verdicts"])
        emitted = [e["detail-type"] for e in world.drain_events()]
        assert emitted == resp["emitted"]
        assert "FailoverDecided" not in emitted
        if UNIDENTIFIED in r["verdict"].values():
            [site] = r["verdict"]
            st = world.state(site)
            assert st is not None and st["phase"] == "idle" and st["recent_signals"], st
    assert world.rds_snapshot() == rds_before, "the evaluator never mutates RDS"
