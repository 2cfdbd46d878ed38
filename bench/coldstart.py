"""Part 1: cold start → first response, peak RSS and deployment zip size, per function, our release
binary vs a reference boto3 handler (bench/baseline/), side by side in one run.

Each sample is one fresh process: the event is queued on a fresh Runtime API server
(bench/runtime_api.py), the process is spawned with `AWS_LAMBDA_RUNTIME_API` pointing at it, and
the sample is the time from spawn to the answer arriving at the Runtime API. The process is then
sent SIGTERM and reaped. Before every sample the emulated account is reset and seeded identically
(untimed), so both implementations see the same account; runs are interleaved (ours, baseline,
baseline, ours, ...) so drift in machine load hits both alike.

One untimed run per function and implementation goes through bench/recorder.py first: it warms
the emulator and the page cache, and records the AWS calls each makes, which must be the same
(the parity column).

Usage: python bench/coldstart.py [--runs N] [--json OUT]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import shutil
import sys
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from common import BASELINE, BENCH, FUNCTIONS, RELEASE, ROOT, FunctionProcess, deploy_settings, median, p90
from recorder import Recorder

from harness import MariaDB, MotoServer
from world import World, function_env, site_config

EVENTS = ROOT / "events"

# The representative event of each function, and what a real answer to it looks like.
CASES = {
    "alarm-evaluator": ("scheduled-evaluator-tick.json",
                        "scheduled tick (events/): evidence for all 4 sites, SQL canary, ledger"),
    "replica-promoter": ("domain/failover-decided-orders-epoch-1.json",
                         "FailoverDecided for an epoch the ledger does not hold: fenced"),
    "dns-pinner": ("domain/replica-promoted-orders-epoch-1.json",
                   "ReplicaPromoted for an epoch the ledger does not hold: fenced"),
    "notifier": ("domain/dns-pinned-orders-epoch-1.json",
                 "DnsPinned: claim, SNS publish, mark sent"),
}


def fresh_event(function: str) -> dict:
    """The recorded event, re-stamped with a new id and the current time (as a new delivery)."""
    ev = json.loads((EVENTS / CASES[function][0]).read_text())
    ev["id"] = str(uuid.uuid4())
    ev["time"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ev


def outcome(function: str, impl: str, answer: dict) -> str:
    """What the function answered, normalised; raises if it is not a real answer to the event."""
    if function == "alarm-evaluator":
        kinds = [v["outcome"]["kind"] for v in answer["verdicts"]] if impl == "ours" else [s["verdict"] for s in answer["sites"]]
        if len(kinds) != 4:
            raise AssertionError(f"{impl} evaluator judged {len(kinds)} sites, not 4: {answer}")
        return f"{len(kinds)} sites judged"
    if function in ("replica-promoter", "dns-pinner"):
        o = answer["outcome"]
        kind = o["kind"] if isinstance(o, dict) else o
        if kind not in ("fenced", "ignored"):
            raise AssertionError(f"{impl} {function} answered {answer}")
        return "fenced"
    if answer.get("outcome") != "sent":
        raise AssertionError(f"{impl} notifier answered {answer}")
    return "sent"


@dataclass
class Sample:
    ms: float  # spawn -> answer received
    init_ms: float  # spawn -> first GET /next (the process's init)
    rss_kb: int


@dataclass
class Result:
    function: str
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {"ours": [], "baseline": []})
    calls: dict[str, list[str]] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    zip_bytes: dict[str, int] = field(default_factory=dict)


class ColdStart:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.deploy = deploy_settings()
        self.moto = MotoServer(workdir)
        self.canary = MariaDB(workdir, "bench-canary")
        self.recorder: Recorder | None = None

    def __enter__(self) -> "ColdStart":
        self.moto.start()
        self.canary.start()
        self.recorder = Recorder(self.moto.endpoint)
        return self

    def __exit__(self, *exc) -> None:
        if self.recorder:
            self.recorder.stop()
        self.canary.stop()
        self.moto.stop()

    def account(self, function: str) -> dict[str, str]:
        """A freshly reset and seeded emulated account; the functions' environment for it. For the
        notifier, the ledger knows orders at epoch 1, pinned (it pages only for what was recorded)."""
        self.moto.reset()
        world = World(self.moto.endpoint).seed()
        if function == "notifier":
            world.put_state("orders", {"site": "orders", "version": 7, "epoch": 1, "phase": "dns-pinned",
                                       "timeline": [{"phase": "dns-pinned", "at": "2026-12-01T00:00:00Z",
                                                     "note": "bench: pinned"}]})
        topic = world.seed_topic()
        now = dt.datetime.now(dt.timezone.utc)
        for r in ("orders-replica-1", "orders-replica-2", "billing-2", "payments-west"):
            world.put_lag(r, 2.0, now - dt.timedelta(seconds=30))
        env = function_env(self.moto.endpoint, site_config(self.canary.port)) | {"TOPIC_ARN": topic}
        return env

    def once(self, function: str, impl: str, record: bool = False) -> tuple[Sample, dict]:
        env = self.account(function)
        if record:
            env["AWS_ENDPOINT_URL"] = self.recorder.endpoint
            self.recorder.take()
        proc = FunctionProcess(function, impl, env, self.deploy[function], self.workdir)
        try:
            inv = proc.api.invoke(fresh_event(function), timeout_secs=self.deploy[function].timeout_secs)
            proc.spawn()
            answer = inv.result(self.deploy[function].timeout_secs + 30)
            sample = Sample((inv.answered_at - proc.spawned_at) * 1000,
                            (proc.api.first_poll_at - proc.spawned_at) * 1000, proc.peak_rss_kb())
        except Exception as e:
            raise RuntimeError(f"{impl} {function}: {e}\n{proc.log_tail()}") from e
        finally:
            proc.stop()
        return sample, answer


def zip_size(function: str, impl: str, workdir: Path) -> int:
    """Bytes of the deployment zip: our binary as `bootstrap` (what `cargo lambda build --release`
    packages), or the baseline handler's .py (plus PyMySQL, which the Lambda Python runtime does
    not include, for the handlers that import it; boto3 is in the runtime)."""
    out = workdir / f"{function}-{impl}.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        if impl == "ours":
            info = zipfile.ZipInfo("bootstrap", date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = 0o755 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, (RELEASE / function).read_bytes(), compresslevel=9)
        else:
            src = BENCH / "baseline" / f"{BASELINE[function]}.py"
            z.write(src, src.name)
            if "import pymysql" in src.read_text():
                import pymysql

                pkg = Path(pymysql.__file__).parent
                for f in sorted(pkg.rglob("*.py")):
                    z.write(f, str(Path("pymysql") / f.relative_to(pkg)))
    return out.stat().st_size


def run(runs: int, workdir: Path) -> list[Result]:
    workdir.mkdir(parents=True, exist_ok=True)
    results = {fn: Result(fn) for fn in FUNCTIONS}
    with ColdStart(workdir) as b:
        for fn in FUNCTIONS:
            for impl in ("ours", "baseline"):
                _, answer = b.once(fn, impl, record=True)
                results[fn].calls[impl] = b.recorder.take()
                results[fn].answers[impl] = outcome(fn, impl, answer)
                results[fn].zip_bytes[impl] = zip_size(fn, impl, workdir)
            print(f"  {fn}: parity run done ({len(results[fn].calls['ours'])} AWS calls ours, "
                  f"{len(results[fn].calls['baseline'])} baseline)", flush=True)
        for i in range(runs):
            order = ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours")
            for fn in FUNCTIONS:
                for impl in order:
                    sample, answer = b.once(fn, impl)
                    outcome(fn, impl, answer)
                    results[fn].samples[impl].append(sample)
            print(f"  cold starts: round {i + 1}/{runs} done", flush=True)
    return list(results.values())


def parity(r: Result) -> str:
    ours, base = collections.Counter(r.calls["ours"]), collections.Counter(r.calls["baseline"])
    if ours == base:
        return "same" + (", same order" if r.calls["ours"] == r.calls["baseline"] else "")
    return f"DIFFERENT: ours-only {dict(ours - base)}, baseline-only {dict(base - ours)}"


def summary(results: list[Result]) -> dict:
    out = {}
    for r in results:
        row = {"event": CASES[r.function][1], "parity": parity(r), "calls": r.calls, "answers": r.answers}
        for impl in ("ours", "baseline"):
            ms = [s.ms for s in r.samples[impl]]
            rss = [s.rss_kb for s in r.samples[impl]]
            init = [s.init_ms for s in r.samples[impl]]
            row[impl] = {"median_ms": median(ms), "p90_ms": p90(ms), "samples_ms": ms,
                         "init_median_ms": median(init), "init_p90_ms": p90(init),
                         "peak_rss_kb_median": median(rss), "peak_rss_kb_max": max(rss),
                         "zip_bytes": r.zip_bytes[impl]}
        out[r.function] = row
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = ROOT / ".run" / "bench-coldstart"
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.monotonic()
    out = summary(run(args.runs, work))
    print(json.dumps(out, indent=2) if not args.json else f"cold start: done in {time.monotonic() - t0:.0f}s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0 if all(not v["parity"].startswith("DIFF") for v in out.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
