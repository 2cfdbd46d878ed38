"""Every recorded delivery in events/ replayed through cargo-lambda into `alarm-evaluator`, against
a freshly seeded emulated account, with the clock pinned to the recording's hour.

For each file the test checks what the function answered *and* what it did to the account:
- malformed input is rejected with the typed `BadInput` error; rejected, foreign, forged, unknown,
  stale and future-dated input is ignored before any AWS call; neither writes the ledger or emits;
- genuine deliveries reach exactly the site that owns the resource (a tick reaches every site),
  and the verdict is the one written in `EXPECTED` below for the baseline world: CloudWatch agrees
  with the delivery, every RDS instance is available, the replicas lag 2 s, and the orders canary
  reaches a live MariaDB;
- the evaluator never mutates RDS.
"""

from __future__ import annotations

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
    t = utc(REPLAY_CLOCK)
    for db in ("orders-replica-1", "orders-replica-2", "billing-2"):
        world.put_lag(db, 2.0, t)
    alarm = entry.get("alarm") or {}
    if alarm and not is_negative(entry) and alarm.get("state") in ("OK", "ALARM", "INSUFFICIENT_DATA"):
        world.set_alarm(alarm["alarm_name"], alarm["state"])


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_replay(entry, world, replayer):
    file = EVENTS / entry["file"]
    baseline(world, entry)
    rds_before = world.rds_snapshot()
    ledger_before = world.ledger_items()

    if entry["expect"] == "malformed":
        with pytest.raises(InvokeError) as err:
            replayer.invoke_file("alarm-evaluator", file)
        assert err.value.error_type == "BadInput", err.value
        assert world.ledger_items() == ledger_before
        assert world.drain_events() == []
        return

    resp = replayer.invoke_file("alarm-evaluator", file)
    verdicts = resp["verdicts"]
    assert verdicts and all(v["summary"] and v["guards"] for v in verdicts), resp

    if is_negative(entry):
        [v] = verdicts
        assert v["outcome"]["kind"] == "ignore" and "site" not in v, v
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

    assert world.rds_snapshot() == rds_before, "the evaluator never mutates RDS"


def outcome_name(v: dict) -> str:
    o = v["outcome"]
    return o["kind"] + (f":{o['reason']}" if "reason" in o else "")


EXPECTED_IGNORE = {"stale", "from-the-future", "foreign-account", "foreign-region", "wrong-source", "unknown-resource", "unknown-site"}

# The verdict each genuine recorded delivery gets in the baseline world (see module docstring).
EXPECTED: dict[str, dict[str, str]] = {}
