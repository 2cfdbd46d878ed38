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
from recorder import Recorder
from world import ACCOUNT, HOME_REGION, World, function_env, site_config, utc

SITE = "orders"
WRITER = "db.orders.example.com"
COMMAND = {"command": "failover", "site": SITE, "operator": "bench", "reason": "bench: us-east-1 lost", "force": True}


@dataclass
class Run:
    impl: str
    total_s: float
    injected_s: float
    hops: int  # function invocations on the way (ours) / 1 (baseline)
    # ours: the stages of the incident, each (name, took s, injected AWS-side wait s), from the
    # ledger, Route 53 and the Runtime API's clocks.
    stages: list[tuple[str, float, float]] | None = None
    # The floor run only: seconds the emulator spent serving the calls on the critical path.
    floor_s: float | None = None
    floor_calls: list[tuple[str, str, float, float]] | None = None  # (function, operation, sent s from t0, service ms)
    # ours: every invocation, (function, event, queued, taken by the function, answered) in s from t0.
    invocations: list[tuple[str, str, float, float, float]] | None = None

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
        endpoint, the primary lost; the functions' environment for it."""
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
        # The primary is lost, as the promoter re-checks before asking RDS (a failover forced over a
        # primary that answers must fence it first): RDS reports it `failed` and its SQL canary gets
        # no answer (a closed port).
        world.report_status("orders-primary", "us-east-1", "failed")
        cfg = site_config(None, others_port=self.canary.port)
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

    def ours(self, floor: bool = False) -> Run:
        """One failover through our chain. `floor`: every function reaches the emulator through its
        own timing proxy (bench/recorder.py), and the run reports the emulator's service time for
        the calls on the critical path instead of being timed for the medians."""
        world, zone, env = self.account()
        recorders = {fn: Recorder(self.moto.endpoint) for fn in FUNCTIONS} if floor else {}
        procs = {fn: FunctionProcess(fn, "ours", env | ({"AWS_ENDPOINT_URL": recorders[fn].endpoint} if floor else {}),
                                     self.deploy[fn], self.workdir / "ours") for fn in FUNCTIONS}
        pool = ThreadPoolExecutor(max_workers=8)
        try:
            for p in procs.values():
                p.spawn()
            for p in procs.values():  # initialised: each has asked for its first event
                if not p.api.polled.wait(60):
                    raise RuntimeError(f"{p.function} did not start\n{p.log_tail()}")
            world.drain_events()
            hops, futures, end, pinned_delivered = 1, set(), None, None

            invocations = []

            def deliver(fn: str, ev: dict):
                inv, answer = procs[fn].invoke(ev)
                invocations.append((fn, ev["detail-type"], inv.queued_at - t0, inv.started_at - t0, inv.answered_at - t0))
                return fn, ev, inv, answer

            def route() -> None:
                nonlocal pinned_delivered
                for ev in world.drain_events():
                    ev.setdefault("account", ACCOUNT)  # moto's EventBridge drops it (AWS-EMULATION.md)
                    for fn in sorted(targets(ev, "domain")):
                        if fn == "notifier" and ev["detail-type"] == "DnsPinned":
                            pinned_delivered = time.perf_counter()
                        futures.add(pool.submit(deliver, fn, ev))

            for r in recorders.values():
                r.take_timed()
            t0_utc, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
            inv, answer = procs["alarm-evaluator"].invoke(COMMAND)
            invocations.append(("alarm-evaluator", "failover command", 0.0, inv.started_at - t0, inv.answered_at - t0))
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
            run = Run("ours", end - t0, self.promotion_secs + self.insync_secs, hops,
                      stages(world, zone, t0_utc, t0_utc + dt.timedelta(seconds=invocations[0][4]),
                             t0_utc + dt.timedelta(seconds=end - t0), self.promotion_secs, self.insync_secs),
                      invocations=sorted(invocations, key=lambda i: i[2]))
            if floor:
                calls = critical_calls({fn: r.take_timed() for fn, r in recorders.items()}, pinned_delivered)
                run.floor_s = busy_secs(calls, t0, end)
                run.floor_calls = [(fn, op, round(a - t0, 4), round((b - a) * 1000, 1)) for fn, op, a, b in calls]
            return run
        except Exception as e:
            tails = "\n".join(f"--- {p.function}\n{p.log_tail(1500)}" for p in procs.values())
            raise RuntimeError(f"ours: {e}\n{tails}") from e
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            for p in procs.values():
                p.stop()
            for r in recorders.values():
                r.stop()

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


def stages(world: World, zone: str, t0_utc: dt.datetime, decided_utc: dt.datetime, end_utc: dt.datetime,
           promotion_secs: float, insync_secs: float) -> list[tuple[str, float, float]]:
    """The incident's stages from what the account recorded: the ledger's timeline, promotion and
    DNS records, Route 53's SubmittedAt; the command and the notifier's answer from the Runtime
    API. A wait's injected part is the emulator's (promotion, PENDING → INSYNC); the rest is how
    late we noticed it finished."""
    st = world.state(SITE)
    p, d = st["promotion"], st["dns"]
    submitted = world.client("route53").get_change(Id=d["change_id"])["ChangeInfo"]["SubmittedAt"]
    decided = decided_utc  # the evaluator answered: FailoverDecided is on the bus
    pinned = next(utc(e["at"]) for e in st["timeline"] if e["phase"] == "dns-pinned")
    marks = [
        ("command → decided, on the bus (evaluator)", t0_utc, decided, 0.0),
        ("decided → promotion requested (hand-off, promoter pre-checks)", decided, utc(p["requested_at"]), 0.0),
        ("promotion (RDS) → seen complete", utc(p["requested_at"]), utc(p["completed_at"]), promotion_secs),
        ("→ writes verified (SQL)", utc(p["completed_at"]), utc(p["writable_verified_at"]), 0.0),
        ("verified → DNS change submitted (hand-off, record read)", utc(p["writable_verified_at"]), submitted, 0.0),
        ("DNS PENDING → INSYNC seen", submitted, utc(d["insync_at"]), insync_secs),
        ("INSYNC → pinned (answer verified at the name servers)", utc(d["insync_at"]), pinned, 0.0),
        ("pinned → people told (hand-off, notifier)", pinned, end_utc, 0.0),
    ]
    return [(name, (b - a).total_seconds(), min(wait, (b - a).total_seconds())) for name, a, b, wait in marks]


def busy_secs(calls: list[tuple[str, str, float, float]], t0: float, t1: float) -> float:
    """Seconds in [t0, t1] during which at least one of `calls` was being served (concurrent calls
    count once)."""
    spans = sorted((max(a, t0), min(b, t1)) for _, _, a, b in calls if b > t0 and a < t1)
    total, cur_a, cur_b = 0.0, None, None
    for a, b in spans:
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    return total + (cur_b - cur_a if cur_b is not None else 0.0)


def critical_calls(timed: dict[str, list[tuple[str, float, float]]], pinned_delivered: float) -> list:
    """The calls on the critical path a perfect poller would make: everything the evaluator, the
    promoter and the pinner did, and the notifier's calls for `DnsPinned` (those after its delivery);
    of each run of consecutive wait polls (the promotion's DescribeDBInstances, Route 53's
    GetChange), only the last — the one that saw the wait end."""
    out = []
    for fn, calls in timed.items():
        calls = [c for c in calls if fn != "notifier" or c[1] >= pinned_delivered]
        for i, c in enumerate(calls):
            nxt = calls[i + 1][0] if i + 1 < len(calls) else None
            if c[0].split("@")[0] in POLLS and nxt == c[0]:
                continue
            out.append((fn, *c))
    return sorted(out, key=lambda c: c[2])


POLLS = ("rds:DescribeDBInstances", "route53:GetChange")

# The hand-offs on the critical path: (emitting function, its event) → (target, the event it gets).
HOPS = (("alarm-evaluator", "failover command", "replica-promoter", "FailoverDecided"),
        ("replica-promoter", "FailoverDecided", "dns-pinner", "ReplicaPromoted"),
        ("dns-pinner", "ReplicaPromoted", "notifier", "DnsPinned"))


def breakdown(r: Run) -> dict[str, float]:
    """One run's overhead, split: the emulated bus's hand-offs (emitter answered → target handed
    the event: the bench reading the observer queue, which EventBridge does on AWS), how late each
    wait was seen (poll overshoot), and the rest (our code: ledger and SQL round trips, AWS calls,
    the runtime)."""
    inv = {(fn, ev): (q, a) for fn, ev, q, _, a in r.invocations}
    bus = sum(inv[(to, tev)][0] - inv[(frm, fev)][1] for frm, fev, to, tev in HOPS)
    over = {name: took - injected for name, took, injected in r.stages if injected}
    promo = next(v for k, v in over.items() if k.startswith("promotion"))
    dns = next(v for k, v in over.items() if k.startswith("DNS"))
    return {"overhead_s": r.overhead_s, "bus_s": bus, "promotion_seen_late_s": promo, "insync_seen_late_s": dns,
            "rest_s": r.overhead_s - bus - promo - dns}


def goals(o: dict) -> list[tuple[str, str, bool]]:
    """Issue 16 goal 2: (goal, figure, met)."""
    ours = o["ours"]["overhead_s"]
    figure = f"{ours:.2f} s"
    if ours > 1.0:
        # What stands in the way, from this run's own figures: the parts that are not our code.
        b, floor = o["ours"]["breakdown"], o["floor"]["aws_service_s"]
        figure += (f"; in the way: the emulated bus's hand-offs {b['bus_s']:.2f} s (EventBridge's part on AWS) "
                   f"and the emulator's own service time for the {o['floor']['calls']} calls on the critical path "
                   f"{floor:.2f} s (medians of parts and a separate proxied run: they do not add exactly, and the "
                   f"floor's wait-ending polls are also inside the waits seen late, "
                   f"{b['promotion_seen_late_s'] + b['insync_seen_late_s']:.2f} s). Not tried: handing on within "
                   f"one invocation instead of over the bus where that is safe, fewer calls on the critical path, "
                   f"polls aimed at the expected completion")
    return [("orchestration overhead ≤ 1 s (median)", figure, ours <= 1.0)]


def run(runs: int, workdir: Path, promotion_secs: float, insync_secs: float, ours_only: bool = False) -> list[Run]:
    workdir.mkdir(parents=True, exist_ok=True)
    out = []
    with Orchestration(workdir, promotion_secs, insync_secs) as b:
        for i in range(runs):
            order = ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours")
            for impl in order if not ours_only else ("ours",):
                r = b.ours() if impl == "ours" else b.baseline()
                out.append(r)
                print(f"  incident {i + 1}/{runs} {impl:<8}: total {r.total_s:6.2f} s, "
                      f"overhead {r.overhead_s:6.2f} s", flush=True)
        # One more of ours, through timing proxies: the emulator's own service time on the critical
        # path (the floor under our overhead). Not in the medians: the proxies add a loopback hop.
        f = b.ours(floor=True)
        out.append(Run("floor", f.total_s, f.injected_s, f.hops, f.stages, f.floor_s, f.floor_calls, f.invocations))
        print(f"  floor run: emulator service time on the critical path {f.floor_s:.3f} s "
              f"over {len(f.floor_calls)} calls (total {f.total_s:.2f} s through the proxies)", flush=True)
    return out


def summary(runs: list[Run], promotion_secs: float, insync_secs: float) -> dict:
    out = {"promotion_secs": promotion_secs, "insync_secs": insync_secs}
    for impl in ("ours", "baseline"):
        rs = [r for r in runs if r.impl == impl]  # the floor run is not one of them
        out[impl] = {"total_s": median([r.total_s for r in rs]), "overhead_s": median([r.overhead_s for r in rs]),
                     "totals_s": [r.total_s for r in rs], "invocations": rs[0].hops}
    ours = [r for r in runs if r.impl == "ours"]
    names = [n for n, _, _ in ours[0].stages]
    out["ours"]["stages"] = [
        {"stage": n, "took_s": median([r.stages[i][1] for r in ours]),
         "injected_s": median([r.stages[i][2] for r in ours]),
         "ours_s": median([r.stages[i][1] - r.stages[i][2] for r in ours])}
        for i, n in enumerate(names)]
    parts = [breakdown(r) for r in ours]
    out["ours"]["breakdown"] = {k: median([p[k] for p in parts]) for k in parts[0]}
    floor = next(r for r in runs if r.impl == "floor")
    out["floor"] = {"aws_service_s": floor.floor_s, "calls": len(floor.floor_calls),
                    "per_call": floor.floor_calls,
                    "proxied_total_s": floor.total_s}
    out["overhead_ratio"] = out["baseline"]["overhead_s"] / out["ours"]["overhead_s"]
    out["total_ratio"] = out["baseline"]["total_s"] / out["ours"]["total_s"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--promotion-secs", type=float, default=8.0)
    ap.add_argument("--insync-secs", type=float, default=3.0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--ours-only", action="store_true", help="skip the baseline (a quick look at ours; no ratio)")
    args = ap.parse_args()
    work = ROOT / ".run" / "bench-orchestration"
    shutil.rmtree(work, ignore_errors=True)
    runs = run(args.runs, work, args.promotion_secs, args.insync_secs, args.ours_only)
    if args.ours_only:
        for r in runs:
            print(f"{r.impl}: total {r.total_s:.2f} s overhead {r.overhead_s:.2f} s floor {r.floor_s}")
            for fn, ev, q, st, a in r.invocations or []:
                print(f"    {fn:<16} {ev:<18} queued {q:7.3f}  taken {st:7.3f}  answered {a:7.3f}")
            for fn, op, at, ms in r.floor_calls or []:
                print(f"    {at:8.3f} s  {fn:<16} {op:<48} {ms:7.1f} ms")
            for name, took, injected in r.stages:
                print(f"    {name:<62} {took:6.3f} s (injected {injected:.1f} s, ours {took - injected:6.3f} s)")
        return 0
    out = summary(runs, args.promotion_secs, args.insync_secs)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    else:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
