"""Part 5 of `make bench`: the decision at the window's end (issue 16, goal 1).

Three read-replica sites on the emulator, the same but for their sustained window: 30, 60 and
120 s. Our release evaluator runs under the bench's Runtime API (bench/runtime_api.py) with what a
deployed stack delivers to it, each on its own thread:

- the scheduled tick, every 60 s at a random phase (EventBridge's `rate(1 minute)`);
- Lambda's SQS event source mapping for the re-check queue (`World.rechecks`, BatchSize 1), polling
  continuously as the mapping does;
- the alarm state changes, as EventBridge delivers them.

The three sites' primaries share one real MariaDB (their SQL canary's target). A healthy tick first
records the replicas' lag; then the primary dies (SIGKILL) and every site's two availability
alarms go to ALARM, delivered at once. Measured per site, on the evaluator's own clock (the
ledger): the quorum met (`quorum_since`) → the `FailoverDecided` the evaluator answered with, and
how far past the window's end that came. The same run is made twice: with the re-check queue, and
without it (`RECHECK_QUEUE_URL` empty: the tick alone, as before issue 16).

Death → decision adds the alarms' own detection time before the quorum: with the witness's 10 s
cadence, its alarm (infra/witness.yaml `WitnessAlarm`) needs `DatapointsToAlarm` periods of
`Period` at 0, after the first failed probe (up to one cadence after the death) and before the next
evaluation (up to one period) — read from the template, added to the measured figure, and labelled
as modelled: the emulator has no alarm evaluation of its own.

Standalone: python bench/detection.py
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import sys
import threading
import time
import uuid
from pathlib import Path

from common import ROOT, FunctionProcess, deploy_settings
from fanout import seed

from harness import MariaDB, MotoServer
from world import ACCOUNT, CANARY_PASSWORD_VAR, HOME_REGION, World, example_config, function_env

WINDOWS = (30, 60, 120)
GOAL_PAST_WINDOW_S = 5.0
TICK_SECS = 60
WITNESS_CADENCE_S = 10


def site_id(window: int) -> str:
    return f"w{window:03d}"


def config(canary_port: int) -> dict:
    base = example_config()
    template = next(s for s in base["sites"] if s["id"] == "orders")
    sites = []
    for i, w in enumerate(WINDOWS):
        sid = site_id(w)
        s = copy.deepcopy(template)
        s["id"] = sid
        s["primary"] = {"id": f"{sid}-primary", "region": "us-east-1"}
        s["candidates"] = [{"id": f"{sid}-replica", "region": HOME_REGION}]
        s["dns"]["zone_id"] = f"Z{i:03d}EXAMPLE"
        s["dns"]["name"] = f"db.{sid}.example.com"
        s["alarms"] = [{"name": f"{sid}-availability", "region": "us-east-1", "role": "availability"},
                       {"name": f"{sid}-availability-dr", "role": "availability"}]
        s["canary"]["endpoint"] = f"127.0.0.1:{canary_port}"
        s["canary"]["credentials"] = {"kind": "env", "var": CANARY_PASSWORD_VAR}
        s["canary"]["connect_timeout_ms"] = 1000
        s["canary"]["query_timeout_ms"] = 1000
        s["canary"].pop("tls", None)
        s["maintenance_windows"] = []
        s["thresholds"]["sustained_secs"] = w
        sites.append(s)
    return {"account_id": base["account_id"], "region": base["region"], "sites": sites}


def stamp(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def tick_event() -> dict:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": stamp(dt.datetime.now(dt.timezone.utc)), "region": HOME_REGION,
            "resources": [f"arn:aws:events:{HOME_REGION}:{ACCOUNT}:rule/rds-failover-evaluator-tick"], "detail": {}}


def alarm_event(name: str, region: str) -> dict:
    t = dt.datetime.now(dt.timezone.utc)
    ts = t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch", "account": ACCOUNT, "time": stamp(t), "region": region,
            "resources": [f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:{name}"],
            "detail": {"alarmName": name, "state": {"value": "ALARM", "reason": "bench", "timestamp": ts},
                       "previousState": {"value": "OK", "reason": "bench", "timestamp": ts},
                       "configuration": {"metrics": []}}}


def witness_detection_s() -> dict:
    """The witness alarm's detection time, from infra/witness.yaml (see the module's docstring)."""
    from infra import template

    alarm = template(ROOT / "infra" / "witness.yaml")["Resources"]["WitnessAlarm"]["Properties"]
    period, n = int(alarm["Period"]), int(alarm["DatapointsToAlarm"])
    return {"period_s": period, "datapoints": n, "cadence_s": WITNESS_CADENCE_S,
            "best_s": period * n, "worst_s": WITNESS_CADENCE_S + period * n + period,
            "mean_s": WITNESS_CADENCE_S / 2 + period * n + period / 2}


class Drive:
    """The deliveries a deployed stack would make to one evaluator process, serialised through its
    one Runtime API (one execution environment)."""

    def __init__(self, proc: FunctionProcess, world: World, rechecks: bool):
        self.proc, self.world, self.rechecks = proc, world, rechecks
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.decided: dict[str, dict] = {}
        self.deliveries: list[tuple[str, float]] = []

    def deliver(self, kind: str, event: dict) -> None:
        with self.lock:
            _, answer = self.proc.invoke(event)
            at = dt.datetime.now(dt.timezone.utc)
        self.deliveries.append((kind, time.monotonic()))
        for v in answer.get("verdicts", []):
            if v.get("outcome", {}).get("kind") == "failover-decided" and v["site"] not in self.decided:
                self.decided[v["site"]] = {"at": at, "by": kind}

    def ticker(self, phase_s: float) -> None:
        if self.stop.wait(phase_s):
            return
        while not self.stop.is_set():
            self.deliver("tick", tick_event())
            self.stop.wait(TICK_SECS)

    def mapping(self) -> None:
        while not self.stop.is_set():
            for ev in self.world.rechecks(wait_secs=1):
                self.deliver("recheck", ev)


def one_mode(rechecks: bool, moto: MotoServer, db: MariaDB, workdir: Path, rng: random.Random) -> dict:
    moto.reset()
    db.start()
    world = World(moto.endpoint)
    cfg = config(db.port)
    seed(world, cfg)
    env = function_env(moto.endpoint, cfg)
    if not rechecks:
        env["RECHECK_QUEUE_URL"] = ""
    proc = FunctionProcess("alarm-evaluator", "ours", env, deploy_settings()["alarm-evaluator"], workdir).spawn()
    drive = Drive(proc, world, rechecks)
    threads = []
    try:
        if not proc.api.polled.wait(60):
            raise RuntimeError(f"alarm-evaluator did not start\n{proc.log_tail()}")
        now = dt.datetime.now(dt.timezone.utc)
        for s in cfg["sites"]:
            world.put_lag(s["candidates"][0]["id"], 2.0, now - dt.timedelta(seconds=20))
        drive.deliver("tick", tick_event())  # healthy: the last good lag is recorded
        if drive.decided:
            raise RuntimeError(f"decided while healthy: {drive.decided}")
        phase = rng.uniform(0, TICK_SECS)
        threads = [threading.Thread(target=drive.ticker, args=(phase,), daemon=True)]
        if rechecks:
            threads.append(threading.Thread(target=drive.mapping, daemon=True))
        # The death: the primary's server is killed, every availability alarm fires.
        db.kill()
        for s in cfg["sites"]:
            for a in s["alarms"]:
                region = a.get("region", HOME_REGION)
                world.client("cloudwatch", region).set_alarm_state(AlarmName=a["name"], StateValue="ALARM", StateReason="bench")
        for t in threads:
            t.start()
        for s in cfg["sites"]:
            drive.deliver("alarm", alarm_event(s["alarms"][1]["name"], HOME_REGION))
        deadline = time.monotonic() + max(WINDOWS) + TICK_SECS + 30
        while len(drive.decided) < len(WINDOWS) and time.monotonic() < deadline:
            time.sleep(0.2)
        drive.stop.set()
        out = {"rechecks": rechecks, "tick_phase_s": phase, "sites": {}}
        for s in cfg["sites"]:
            w = s["thresholds"]["sustained_secs"]
            st = world.state(s["id"]) or {}
            since = st.get("quorum_since") or next(
                (e["at"] for e in st.get("timeline", []) if "quorum" in json.dumps(e)), None)
            d = drive.decided.get(s["id"])
            if not since or not d:
                out["sites"][s["id"]] = {"window_s": w, "decided": False, "phase": st.get("phase")}
                continue
            q = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
            out["sites"][s["id"]] = {"window_s": w, "decided": True, "by": d["by"],
                                     "quorum_to_decision_s": (d["at"] - q).total_seconds(),
                                     "past_window_s": (d["at"] - q).total_seconds() - w}
        return out
    finally:
        drive.stop.set()
        for t in threads:
            t.join(5)
        proc.stop()


def run(workdir: Path, seed_value: int | None = None) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed_value)
    moto = MotoServer(workdir).start()
    db = MariaDB(workdir, "detection-primary").start()
    try:
        modes = {"recheck": one_mode(True, moto, db, workdir, rng), "tick_only": one_mode(False, moto, db, workdir, rng)}
    finally:
        db.stop()
        moto.stop()
    return {"windows": list(WINDOWS), "goal_past_window_s": GOAL_PAST_WINDOW_S, "tick_secs": TICK_SECS,
            "witness": witness_detection_s(), **modes}


def goals(r: dict) -> list[tuple[str, str, bool]]:
    out = []
    for w in r["windows"]:
        s = r["recheck"]["sites"][site_id(w)]
        if not s["decided"]:
            out.append((f"window {w} s: decided ≤ {r['goal_past_window_s']:g} s past it", "not decided", False))
            continue
        out.append((f"window {w} s: decided ≤ {r['goal_past_window_s']:g} s past it",
                    f"{s['past_window_s']:.2f} s past (by the {s['by']})", s["past_window_s"] <= r["goal_past_window_s"]))
    return out


def main() -> int:
    r = run(ROOT / ".run" / "bench-detection")
    print(json.dumps(r, indent=2, default=str))
    for goal, figure, ok in goals(r):
        print(f"{'met' if ok else 'NOT MET'}: {goal}: {figure}")
    return 0 if all(ok for *_, ok in goals(r)) else 1


if __name__ == "__main__":
    sys.exit(main())
