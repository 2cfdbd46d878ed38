"""`make bench`: the benchmarks in one run, and the report.

1. cold start → first response, peak RSS and zip size per function (bench/coldstart.py);
2. orchestration overhead of one failover (bench/orchestration.py);
3. policy throughput (`cargo bench -p failover-policy --bench verdicts`, criterion);
4. one tick over many sites, healthy and with one region blackholed (bench/fanout.py);
5. the decision at the sustained window's end, with and without the re-check (bench/detection.py);
6. the planned switchover's RTO and RPO on real MariaDB, from the ledger (bench/switchover.py).

Part 3 runs first, on a machine otherwise as quiet as the bench can make it; then 1 and 2, each
measuring ours and the baseline side by side, interleaved. Writes bench-results/report.md (the
table, with the method beside the figures), bench-results/results.json (every sample) and
prints the report.

Knobs (environment): BENCH_RUNS (cold starts per function and implementation, default 10),
BENCH_INCIDENTS (failovers per implementation, default 3), BENCH_PROMOTION_SECS (default 8),
BENCH_INSYNC_SECS (default 3), BENCH_SITES (sites in part 4, default 100).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import coldstart  # noqa: E402
import detection  # noqa: E402
import switchover  # noqa: E402
import fanout  # noqa: E402
import orchestration  # noqa: E402
from common import FUNCTIONS, ROOT  # noqa: E402

OUT = ROOT / "bench-results"
CRITERION = ROOT / "target" / "criterion" / "policy"


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    import boto3

    dirty = "+uncommitted changes" if sh("git", "status", "--porcelain") else ""
    return (f"{cpu}, {os.cpu_count()} cores ({platform.machine()}), load average at start "
            f"{os.getloadavg()[0]:.2f}; {sh('rustc', '--version')}; Python {platform.python_version()}, "
            f"boto3 {boto3.__version__}; commit {sh('git', 'rev-parse', '--short', 'HEAD')}{dirty}")


def policy_bench() -> dict:
    """Runs criterion and reads its estimates."""
    log = OUT / "policy-bench.txt"
    with log.open("w") as f:
        subprocess.run(["cargo", "bench", "-p", "failover-policy", "--bench", "verdicts", "--", "--noplot"],
                       cwd=ROOT, check=True, stdout=f, stderr=subprocess.STDOUT)
    return criterion_estimates()


def criterion_estimates() -> dict:
    """Criterion's estimate of the time per iteration, as its `time:` line prints it (the slope of
    the linear-sampling regression, else the mean), with its 95 % interval, from
    target/criterion/policy/*/new/estimates.json."""
    out = {}
    for bench in sorted(CRITERION.iterdir()):
        meta, est = bench / "new" / "benchmark.json", bench / "new" / "estimates.json"
        if not (meta.exists() and est.exists()):
            continue
        name = json.loads(meta.read_text())["function_id"]
        estimates = json.loads(est.read_text())
        e = estimates.get("slope") or estimates["mean"]
        out[name] = {"mean_ns": e["point_estimate"], "ci_ns": [e["confidence_interval"]["lower_bound"],
                                                                e["confidence_interval"]["upper_bound"]]}
    return out


def ms(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def mib(kb: float) -> str:
    return f"{kb / 1024:.1f}"


def kib(b: int) -> str:
    return f"{b / 1024:,.0f}"


def fanout_section(f: dict | None) -> list[str]:
    if not f:
        return []
    h, d = f["healthy"], f["blackholed"]
    L = ["", f"## 4. One tick over {f['sites']} sites", "",
         f"Our release evaluator, warm, one scheduled tick over {f['sites']} read-replica sites (primaries "
         f"round robin in {', '.join(f['regions'])}; replicas and the functions in us-west-2), every AWS "
         "call through tests/fault_proxy.py; then the same tick with every request signed for "
         f"{f['dark_region']} held and never answered (blackhole). Sites at most "
         f"EVALUATOR_SITE_CONCURRENCY at once (default), each within its {f['site_budget_s']} s budget.", "",
         "| tick | handed → answer s | sites with a verdict | sites failed |", "|---|---|---|---|",
         f"| healthy | {h['tick_s']:.2f} | {h['verdicts']} of {f['sites']} | {0 if not h['error'] else 'error'} |",
         f"| {f['dark_region']} blackholed ({d['requests_blackholed']} requests held) | {d['tick_s']:.2f} "
         f"| {d['other_sites_judged']} of {d['other_sites']} other-region + {d['dark_sites_judged']} of "
         f"{d['dark_sites']} dark-region (on unknown evidence) | {len(d['other_sites_failed']) + len(d['dark_sites_failed'])} |",
         "", "Goals:", ""]
    for goal, figure, ok in fanout.goals(f):
        L.append(f"- {'met' if ok else '**not met**'}: {goal}: {figure}")
    return L


def cold_goals(cold: dict) -> list[tuple[str, str, bool]]:
    """The evaluator's first tick ≥ 5× faster than the baseline's; every function's peak RSS ≤ ¼ of
    the baseline's."""
    ev = cold["alarm-evaluator"]
    tick = ev["baseline"]["median_ms"] / ev["ours"]["median_ms"]
    rss = {fn: r["baseline"]["peak_rss_kb_median"] / r["ours"]["peak_rss_kb_median"] for fn, r in cold.items()}
    return [("the evaluator's first tick ≥ 5× faster than the baseline's (cold start → answer, median)",
             f"{tick:.1f}×", tick >= 5.0),
            ("every function's peak RSS ≤ ¼ of the baseline's",
             ", ".join(f"{fn} {x:.1f}×" for fn, x in rss.items()), all(x >= 4.0 for x in rss.values()))]


def orchestration_breakdown(orch: dict) -> list[str]:
    """Where our overhead goes: the incident's stages (median of our runs), the split of the
    overhead, the emulator's own service time on the critical path (the floor), goal 2."""
    o, f = orch["ours"], orch["floor"]
    b = o["breakdown"]
    L = ["Where ours goes (median per stage of our runs; a stage's injected part is the emulator's wait):", "",
         "| stage | took s | injected s | ours s |", "|---|---|---|---|"]
    for st in o["stages"]:
        L.append(f"| {st['stage']} | {st['took_s']:.3f} | {st['injected_s']:g} | {st['ours_s']:.3f} |")
    L += ["", f"Overhead {b['overhead_s']:.2f} s (median); its parts, each the median over our runs (so they need "
          f"not add up to the median total): emulated bus hand-offs {b['bus_s']:.2f} s (3 hops: the bench "
          f"reading the observer queue and handing the event on, EventBridge's part on AWS); the promotion seen "
          f"{b['promotion_seen_late_s']:.2f} s late (with the SQL writability check, timed with it); INSYNC seen {b['insync_seen_late_s']:.2f} s late; the rest "
          f"{b['rest_s']:.2f} s (our code: ledger, AWS and SQL round trips, the runtime). "
          f"The floor under the rest: one more of our failovers with every function behind a timing proxy "
          f"(bench/recorder.py, not in the medians) spent **{f['aws_service_s']:.2f} s** in the emulator's own "
          f"service time on the critical path ({f['calls']} calls; of each run of wait polls only the one that saw "
          "the wait end counts).", "", "Goal:", ""]
    for goal, figure, ok in orchestration.goals(orch):
        L.append(f"- {'met' if ok else '**not met**'}: {goal}: {figure}")
    L.append("")
    return L


def detection_section(d: dict | None) -> list[str]:
    if not d:
        return []
    w = d["witness"]
    L = ["", "## 5. The decision at the window's end", "",
         f"Three read-replica sites with sustained windows of {', '.join(str(x) for x in d['windows'])} s; our "
         "release evaluator fed as a stack feeds it: the scheduled tick every "
         f"{d['tick_secs']} s at a random phase, the re-check queue through an emulated SQS event source "
         "mapping, the alarm state changes. The primary's MariaDB is killed and the alarms fire; measured on "
         "the ledger's clock, quorum met → `FailoverDecided`. Run twice: with the re-check queue, and "
         "with the tick alone (`RECHECK_QUEUE_URL` empty, as before).", "",
         "| window s | with re-check: quorum → decision s (past the window) | decided by "
         "| tick only: quorum → decision s (past the window) | death → decision s, with re-check (modelled detection + measured) |",
         "|---|---|---|---|---|"]
    for win in d["windows"]:
        sid = detection.site_id(win)
        r, t = d["recheck"]["sites"][sid], d["tick_only"]["sites"][sid]
        fmt = (lambda s: f"{s['quorum_to_decision_s']:.2f} ({s['past_window_s']:+.2f})" if s["decided"] else "not decided")
        death = (f"{w['best_s']:g}–{w['worst_s']:g} + {r['quorum_to_decision_s']:.2f}" if r["decided"] else "—")
        L.append(f"| {win} | {fmt(r)} | {r.get('by', '—')} | {fmt(t)} | {death} |")
    L += ["", f"Tick phase: {d['recheck']['tick_phase_s']:.1f} s (re-check run), {d['tick_only']['tick_phase_s']:.1f} s "
          f"(tick-only run) after the alarms. Detection before the quorum, modelled from infra/witness.yaml: "
          f"a probe every {w['cadence_s']} s, {w['datapoints']} periods of {w['period_s']} s at 0, then the next "
          f"evaluation: {w['best_s']:g}–{w['worst_s']:g} s (mean {w['mean_s']:g} s).", "", "Goals:", ""]
    for goal, figure, ok in detection.goals(d):
        L.append(f"- {'met' if ok else '**not met**'}: {goal}: {figure}")
    return L


def report(when: str, env: str, cold: dict, orch: dict, policy: dict, runs: int, incidents: int,
           fan: dict | None = None, det: dict | None = None, sw: dict | None = None) -> str:
    L = [f"# rds-failover benchmarks — {when}", "",
         f"Machine: {env}.", "",
         "Every ratio is baseline ÷ ours, from figures measured side by side in this one run "
         "(interleaved, same machine, same emulated account). Method: docs/bench.md.", "",
         "## 1. Cold start → first response, peak RSS, deployment zip", "",
         f"Release binary (ours) vs a reference boto3 handler making the same AWS calls "
         f"(bench/baseline/), each a fresh process under a local Lambda Runtime API; {runs} cold "
         "starts each, spawn → answer received; peak RSS = VmHWM; zip = `bootstrap` (host "
         "x86_64 build; deployed target is arm64) vs handler .py (+ PyMySQL where imported; "
         "boto3 is in the Lambda Python runtime).", "",
         "| function (event) | cold start → answer, ms: ours median / p90 | boto3 median / p90 | ratio "
         "| init only (spawn → first poll), median ms: ours / boto3 | peak RSS MiB: ours / boto3 | RSS ratio "
         "| zip KiB: ours / boto3 | AWS calls ours vs boto3 (parity) |",
         "|---|---|---|---|---|---|---|---|---|"]
    for fn in FUNCTIONS:
        r = cold[fn]
        o, b = r["ours"], r["baseline"]
        L.append(
            f"| {fn} ({r['event']}) | {ms(o['median_ms'])} / {ms(o['p90_ms'])} | {ms(b['median_ms'])} / {ms(b['p90_ms'])} "
            f"| {b['median_ms'] / o['median_ms']:.1f}× | {ms(o['init_median_ms'])} / {ms(b['init_median_ms'])} "
            f"| {mib(o['peak_rss_kb_median'])} / {mib(b['peak_rss_kb_median'])} "
            f"| {b['peak_rss_kb_median'] / o['peak_rss_kb_median']:.1f}× | {kib(o['zip_bytes'])} / {kib(b['zip_bytes'])} "
            f"| {len(r['calls']['ours'])} vs {len(r['calls']['baseline'])}: {r['parity']} |")
    L += ["", "Goals (issue 16, goal 4):", ""]
    for goal, figure, ok in cold_goals(cold):
        L.append(f"- {'met' if ok else '**not met**'}: {goal}: {figure}")
    o, b = orch["ours"], orch["baseline"]
    inj = orch["promotion_secs"] + orch["insync_secs"]
    L += ["", "## 2. Orchestration overhead of one failover", "",
          f"Operator failover command → people told DNS is pinned, on the faithful emulator with "
          f"injected AWS-side waits: promotion {orch['promotion_secs']:g} s, Route 53 PENDING→INSYNC "
          f"{orch['insync_secs']:g} s (the same for both). Median of {incidents} failovers each; "
          "overhead = total − injected waits.", "",
          "| implementation | total s | injected waits s | overhead s | runs (total s) |", "|---|---|---|---|---|",
          f"| ours: 4 release binaries chained by infra/template.yaml's rules ({o['invocations']} invocations) "
          f"| {o['total_s']:.2f} | {inj:g} | {o['overhead_s']:.2f} | {', '.join(f'{t:.2f}' for t in o['totals_s'])} |",
          f"| baseline: one boto3 pipeline with boto3's standard waiters "
          f"| {b['total_s']:.2f} | {inj:g} | {b['overhead_s']:.2f} | {', '.join(f'{t:.2f}' for t in b['totals_s'])} |",
          "", f"Overhead ratio (baseline ÷ ours): **{orch['overhead_ratio']:.1f}×**; total time ratio "
          f"{orch['total_ratio']:.1f}×. The boto3 waiters poll every 30 s; ours poll each wait with gaps "
          "proportional to the time waited so far (a twelfth, 0.5–10 s, ±20 % jitter: "
          "shared/policy/src/pace.rs), for both the promotion and DNS.", ""]
    L += orchestration_breakdown(orch)
    L += ["## 3. Policy throughput (criterion, one core)", "",
          "| bench | time per verdict | verdicts/s | 95 % interval |", "|---|---|---|---|"]
    for name, p in policy.items():
        L.append(f"| {name} | {p['mean_ns'] / 1000:.2f} µs | {1e9 / p['mean_ns']:,.0f} "
                 f"| {p['ci_ns'][0] / 1000:.2f}–{p['ci_ns'][1] / 1000:.2f} µs |")
    names = list(policy)
    full = next((n for n in names if n.startswith("parse")), None)
    dec = next((n for n in names if n.startswith("decide")), None)
    if full and dec:
        L += ["", f"parse+route+decide ÷ decide: {policy[full]['mean_ns'] / policy[dec]['mean_ns']:.1f}× in time per verdict."]
    L += fanout_section(fan)
    L += detection_section(det)
    L += switchover.section(sw)
    return "\n".join(L) + "\n"


def render() -> int:
    """`python bench/run.py --render`: rewrites report.md from results.json (no measuring)."""
    r = json.loads((OUT / "results.json").read_text())
    text = report(r["when"], r["machine"], r["cold_start"], r["orchestration"], r["policy"], r["runs"], r["incidents"],
                  r.get("fanout"), r.get("detection"), r.get("switchover"))
    (OUT / "report.md").write_text(text)
    print(text)
    return 0


def main() -> int:
    if "--render" in sys.argv[1:]:
        return render()
    runs = int(os.environ.get("BENCH_RUNS", "10"))
    incidents = int(os.environ.get("BENCH_INCIDENTS", "3"))
    promotion = float(os.environ.get("BENCH_PROMOTION_SECS", "8"))
    insync = float(os.environ.get("BENCH_INSYNC_SECS", "3"))
    OUT.mkdir(exist_ok=True)
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    env = machine()
    t0 = time.monotonic()
    print("bench: building the release binaries (cargo build --release)", flush=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", *sum((["-p", f] for f in FUNCTIONS), [])], cwd=ROOT, check=True)
    print("bench 3/6 first: policy throughput (cargo bench, criterion)", flush=True)
    policy = policy_bench()
    print(f"bench 1/6: cold starts ({runs} per function and implementation)", flush=True)
    cold = coldstart.summary(coldstart.run(runs, ROOT / ".run" / "bench-coldstart"))
    print(f"bench 2/6: orchestration overhead ({incidents} failovers per implementation)", flush=True)
    orch = orchestration.summary(orchestration.run(incidents, ROOT / ".run" / "bench-orchestration", promotion, insync),
                                 promotion, insync)
    sites = int(os.environ.get("BENCH_SITES", "100"))
    print(f"bench 4/6: one tick over {sites} sites, healthy and with {fanout.DARK} blackholed", flush=True)
    fan = fanout.run(sites, ROOT / ".run" / "bench-fanout")
    print("bench 5/6: the decision at the window's end (windows 30, 60, 120 s; with and without the re-check)", flush=True)
    det = json.loads(json.dumps(detection.run(ROOT / ".run" / "bench-detection"), default=str))
    switchovers = int(os.environ.get("BENCH_SWITCHOVERS", "3"))
    print(f"bench 6/6: the planned switchover's RTO and RPO ({switchovers} switchovers on real MariaDB)", flush=True)
    sw = switchover.run(switchovers, ROOT / ".run" / "bench-switchover")
    text = report(when, env, cold, orch, policy, runs, incidents, fan, det, sw)
    (OUT / "report.md").write_text(text)
    (OUT / "results.json").write_text(json.dumps({"when": when, "machine": env, "runs": runs, "incidents": incidents,
                                                  "cold_start": cold, "orchestration": orch, "policy": policy,
                                                  "fanout": fan, "detection": det, "switchover": sw}, indent=2))
    print(f"\n{text}\n(bench took {time.monotonic() - t0:.0f} s; written to bench-results/report.md and results.json)")
    bad = [fn for fn, r in cold.items() if r["parity"].startswith("DIFF")]
    if bad:
        print(f"bench: the baseline's AWS calls differ from ours for {bad}: the comparison is not like for like", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
