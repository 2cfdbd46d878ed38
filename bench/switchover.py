"""Part 6 of `make bench`: the planned switchover's measured RTO and RPO (issue 16, goal 5).

The switchover scenario of tests/test_switchover.py (scenario 1) on the faithful emulator with two
real MariaDB servers in GTID replication: an application keeps writing to the old primary until
the fence refuses it; the evaluator fences (`read_only` through the primary's own parameter
group, confirmed over SQL), captures the position, waits for the target to apply it; the promoter
promotes (2 s injected) and verifies writes; the pinner moves DNS (1 s injected INSYNC).

The figures are the ledger's own (`switchover.measured`): RTO from the fence's start (recorded
before the first ModifyDBParameterGroup) to the promoter's verified writes, and the RPO in
transactions (the captured position against the one the target applied); beside them, fence
start → the tick that took the pinned DNS in, and how many ticks the fence and catch-up took.

What the RTO is not: a deployed stack's. The test ticks every 0.5 s where the schedule ticks every
60 s (each tick past the first that the fence and catch-up need costs up to a minute deployed, the
re-check queue aside), and hands FailoverDecided to the promoter only once the switchover is
promoting (deployed, the promoter may be waiting in its fenced-first re-check, up to 10 s). Clients
that use the writer name also wait for DNS (the fence → DNS figure) and their cached answer's TTL.
Read it as this emulator's write unavailability at the servers, fence to verified writes.

Standalone: python bench/switchover.py [RUNS]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT

TEST = "tests/test_switchover.py::test_scenario_1_writes_until_the_fence_are_all_on_the_new_primary_rpo_0"


def once(workdir: Path) -> dict:
    """One switchover, through pytest (the scenario asserts every committed row is on the new
    primary); returns the ledger's measured figures the test wrote out."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkstemp(suffix=".json", dir=workdir)[1])
    env = os.environ | {"RDS_FAILOVER_SWITCHOVER_FIGURES": str(out)}
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "pytest"), "-q", "-x", "-p", "no:cacheprovider", TEST],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"the switchover scenario failed:\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    return json.loads(out.read_text())


def run(runs: int, workdir: Path) -> dict:
    samples = [once(workdir / f"run-{i}") for i in range(runs)]
    rto = [s["rto_ms"] for s in samples]
    return {"runs": samples, "rto_ms_median": statistics.median(rto), "rto_ms_max": max(rto),
            "rpo_transactions_max": max(s["rpo_transactions"] for s in samples),
            "rows_min": min(s["rows"] for s in samples)}


def section(d: dict | None) -> list[str]:
    if not d:
        return []
    L = ["", "## 6. Planned switchover: RTO and RPO (bench/switchover.py)", "",
         "tests/test_switchover.py scenario 1 on the faithful emulator with two real MariaDB servers in GTID "
         "replication, an application writing until the fence refuses it; promotion 2 s and INSYNC 1 s injected. "
         "RTO and RPO are the ledger's (`switchover.measured`): fence start → verified writes on the new primary; "
         "functions under cargo-lambda's emulator, tick every 0.5 s (deployed: every 60 s, so each tick past "
         "the first that fence and catch-up needed is up to a minute more there); clients of the writer name also "
         "wait for DNS and their cached TTL.", "",
         "| run | RTO ms (fence → writes verified) | fence → DNS move taken in (the tick after the pin), ms | ticks to promoting "
         "| RPO transactions | rows committed before the fence (all on the new primary) |",
         "|---|---|---|---|---|---|"]
    for i, s in enumerate(d["runs"], 1):
        dns = f"{s['fence_to_dns_moved_ms']:,}" if s.get("fence_to_dns_moved_ms") is not None else "—"
        L.append(f"| {i} | {s['rto_ms']:,} | {dns} | {s.get('ticks_to_promoting', '—')} | {s['rpo_transactions']} "
                 f"| {s['rows']} |")
    L += ["", f"Median RTO {d['rto_ms_median']:,.0f} ms (max {d['rto_ms_max']:,} ms); RPO "
              f"{d['rpo_transactions_max']} in every run (must be 0)."]
    return L


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(json.dumps(run(n, ROOT / ".run" / "bench-switchover"), indent=2))
