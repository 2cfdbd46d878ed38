"""Part 2: orchestration overhead of one failover — total incident time minus the injected AWS-side
waits — our chain vs a reference boto3 pipeline, side by side in one run.

Both run against the same faithful emulator (tests/faithful_moto.py), where a promotion takes
PROMOTION s and a Route 53 change stays PENDING for INSYNC s, and the promoted replica's endpoint
is a real MariaDB server that the emulator makes writable when the promotion completes (so both
writability checks are real SQL round trips and only pass after the promotion).

- ours: the four release binaries, each a process under its own Runtime API (bench/runtime_api.py),
  started and initialised before the clock starts. The clock starts when an operator's failover
  command is handed to the evaluator and stops when the notifier has answered for `DnsPinned`
  (SNS accepted the message). Each domain event is routed as EventBridge would, by
  infra/template.yaml's rules (tests/infra.py `targets`), read off the emulated bus's observer
  queue as soon as the emitting function has answered, and delivered to every target at once.
- baseline: bench/baseline/pipeline.py, one boto3 handler under the same Runtime API and the
  Python runtime loop, also initialised before the clock starts; the clock runs from handing it
  the same operator command to its answer (after its SNS publish).

Runs alternate (ours, baseline, baseline, ours, ...); before each, the account is reset and seeded
identically (untimed).

Usage: python bench/orchestration.py [--runs N] [--promotion-secs P] [--insync-secs I] [--json OUT]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from common import FUNCTIONS, ROOT, FunctionProcess, deploy_settings, median

from harness import MariaDB, MotoServer
from infra import targets
from world import ACCOUNT, HOME_REGION, World, function_env, site_config

SITE = "orders"
WRITER = "db.orders.example.com"
COMMAND = {"command": "failover", "site": SITE, "operator": "bench", "reason": "bench: us-east-1 lost", "force": True}


@dataclass
class Run:
    impl: str
    total_s: float
    injected_s: float
    hops: int  # function invocations on the way (ours) / 1 (baseline)

    @property
    def overhead_s(self) -> float:
        return self.total_s - self.injected_s


class Orchestration:
    def __init__(self, workdir: Path, promotion_secs: float, insync_secs: float):
        self.workdir = workdir
        self.promotion_secs, self.insync_secs = promotion_secs, insync_secs
        self.deploy = deploy_settings()
        self.moto = MotoServer(workdir, promotion_secs=promotion_secs, dns_insync_secs=insync_secs)
        self.canary = MariaDB(workdir, "bench-canary")
        self.new_primary = MariaDB(workdir, "bench-orders-replica-1")

    def __enter__(self) -> "Orchestration":
        self.moto.start()
        self.canary.start()
        self.new_primary.start()
        return self

    def __exit__(self, *exc) -> None:
        self.new_primary.stop()
        self.canary.stop()
        self.moto.stop()

    def account(self) -> tuple[World, str, dict[str, str]]:
        """A freshly reset and seeded account: the writer record on the old primary, the alert
        topic, orders-replica-1 reporting the real MariaDB (read-only, as a replica is) as its
        endpoint; the functions' environment for it."""
        self.moto.reset()
        self.new_primary.sql("SET GLOBAL read_only = 1;")
        world = World(self.moto.endpoint).seed()
        old = world.instance("orders-primary", "us-east-1")["Endpoint"]["Address"]
        zone = world.seed_writer_record(WRITER, old, ttl=300)
        topic = world.seed_topic()
        world.point_endpoint("orders-replica-1", HOME_REGION, f"127.0.0.1:{self.new_primary.port}",
                             admin_socket=self.new_primary.socket)
        now = dt.datetime.now(dt.timezone.utc)
        for r in ("orders-replica-1", "orders-replica-2"):
            world.put_lag(r, 2.0, now - dt.timedelta(seconds=30))
        cfg = site_config(self.canary.port)
        cfg["sites"][0]["dns"]["zone_id"] = zone
        env = function_env(self.moto.endpoint, cfg) | {"TOPIC_ARN": topic}
        return world, zone, env

    def check_failed_over(self, world: World, zone: str, impl: str) -> None:
        """Whatever was timed must have really failed over: replica standalone, DNS moved, a
        message sent."""
        inst = world.instance("orders-replica-1")
        record = world.writer_record(zone, WRITER)
        notes = world.notifications()
        if inst.get("ReadReplicaSourceDBInstanceIdentifier") or record is None or record[0] != "127.0.0.1" or not notes:
            raise AssertionError(f"{impl}: not failed over: source={inst.get('ReadReplicaSourceDBInstanceIdentifier')} "
                                 f"record={record} notifications={len(notes)}")
        if self.new_primary.sql("SELECT @@GLOBAL.read_only;").strip() != "0":
            raise AssertionError(f"{impl}: the new primary is still read-only")

    def ours(self) -> Run:
        world, zone, env = self.account()
        procs = {fn: FunctionProcess(fn, "ours", env, self.deploy[fn], self.workdir / "ours") for fn in FUNCTIONS}
        pool = ThreadPoolExecutor(max_workers=8)
        try:
            for p in procs.values():
                p.spawn()
            for p in procs.values():  # initialised: each has asked for its first event
                if not p.api.polled.wait(60):
                    raise RuntimeError(f"{p.function} did not start\n{p.log_tail()}")
            world.drain_events()
            hops, futures, end = 1, set(), None

            def deliver(fn: str, ev: dict):
                inv, answer = procs[fn].invoke(ev)
                return fn, ev, inv, answer

            def route() -> None:
                for ev in world.drain_events():
                    ev.setdefault("account", ACCOUNT)  # moto's EventBridge drops it (AWS-EMULATION.md)
                    for fn in sorted(targets(ev, "domain")):
                        futures.add(pool.submit(deliver, fn, ev))

            t0 = time.perf_counter()
            _, answer = procs["alarm-evaluator"].invoke(COMMAND)
            if answer["verdicts"][0]["outcome"]["kind"] != "failover-decided":
                raise AssertionError(f"evaluator did not decide: {answer['verdicts'][0]['summary']}")
            route()
            while futures:
                done, futures = wait(futures, timeout=600, return_when=FIRST_COMPLETED)
                if not done:
                    raise TimeoutError("the chain stalled")
                for f in done:
                    fn, ev, inv, answer = f.result()
                    hops += 1
                    if fn == "notifier" and ev["detail-type"] == "DnsPinned":
                        end = inv.answered_at
                    if fn != "notifier" and ev["detail-type"] in ("FailoverFailed",):
                        raise AssertionError(f"the chain failed: {ev}")
                route()
            if end is None:
                raise AssertionError(f"no DnsPinned notification; ledger phase {world.state(SITE)['phase']}")
            self.check_failed_over(world, zone, "ours")
            return Run("ours", end - t0, self.promotion_secs + self.insync_secs, hops)
        except Exception as e:
            tails = "\n".join(f"--- {p.function}\n{p.log_tail(1500)}" for p in procs.values())
            raise RuntimeError(f"ours: {e}\n{tails}") from e
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            for p in procs.values():
                p.stop()

    def baseline(self) -> Run:
        world, zone, env = self.account()
        deploy = self.deploy["replica-promoter"]
        # The pipeline waits for both waiters in one invocation: give it the largest timeout
        # Lambda allows, as such pipelines are deployed.
        deploy = type(deploy)("rds-failover-baseline-pipeline", deploy.memory_mb, 900)
        p = FunctionProcess("pipeline", "baseline", env, deploy, self.workdir / "baseline", module="pipeline")
        try:
            p.spawn()
            if not p.api.polled.wait(60):
                raise RuntimeError(f"the baseline pipeline did not start\n{p.log_tail()}")
            t0 = time.perf_counter()
            inv, answer = p.invoke(COMMAND)
            if answer.get("outcome") != "pinned":
                raise AssertionError(f"baseline answered {answer}")
            self.check_failed_over(world, zone, "baseline")
            return Run("baseline", inv.answered_at - t0, self.promotion_secs + self.insync_secs, 1)
        except Exception as e:
            raise RuntimeError(f"baseline: {e}\n{p.log_tail()}") from e
        finally:
            p.stop()


def run(runs: int, workdir: Path, promotion_secs: float, insync_secs: float) -> list[Run]:
    workdir.mkdir(parents=True, exist_ok=True)
    out = []
    with Orchestration(workdir, promotion_secs, insync_secs) as b:
        for i in range(runs):
            for impl in (("ours", "baseline") if i % 2 == 0 else ("baseline", "ours")):
                r = b.ours() if impl == "ours" else b.baseline()
                out.append(r)
                print(f"  incident {i + 1}/{runs} {impl:<8}: total {r.total_s:6.2f} s, "
                      f"overhead {r.overhead_s:6.2f} s", flush=True)
    return out


def summary(runs: list[Run], promotion_secs: float, insync_secs: float) -> dict:
    out = {"promotion_secs": promotion_secs, "insync_secs": insync_secs}
    for impl in ("ours", "baseline"):
        rs = [r for r in runs if r.impl == impl]
        out[impl] = {"total_s": median([r.total_s for r in rs]), "overhead_s": median([r.overhead_s for r in rs]),
                     "totals_s": [r.total_s for r in rs], "invocations": rs[0].hops}
    out["overhead_ratio"] = out["baseline"]["overhead_s"] / out["ours"]["overhead_s"]
    out["total_ratio"] = out["baseline"]["total_s"] / out["ours"]["total_s"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--promotion-secs", type=float, default=8.0)
    ap.add_argument("--insync-secs", type=float, default=3.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = ROOT / ".run" / "bench-orchestration"
    shutil.rmtree(work, ignore_errors=True)
    out = summary(run(args.runs, work, args.promotion_secs, args.insync_secs), args.promotion_secs, args.insync_secs)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    else:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
