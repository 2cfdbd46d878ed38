"""The issue-6 reliability figures: one table from the per-suite files the suites wrote.

Each suite, when it runs, writes `$RELIABILITY_DIR/<suite>.json` (default `<repo>/.run/reliability/`)
with the counts it observed (see the contract in the module constants below). This script reads
every `*.json` there, prints a Markdown table — one row per suite and a total row — and writes the
same to `$RELIABILITY_DIR/REPORT.md`.

It exits non-zero when any suite reports a panic, a mutation or a wrong action, when an expected
suite wrote no file ("not run"), or when a file does not follow the contract. It never invents a
figure: a suite that did not run is listed as not run, not as zeros.

    RELIABILITY_DIR=.run/reliability .venv/bin/python tests/reliability_report.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The suites `make reliability` runs, in the order the report lists them.
EXPECTED_SUITES = ("hostile-input", "fault-matrix", "interleavings", "dns-interleavings", "emulator-faults", "concurrency", "switches", "witness")
COUNTS = ("cases", "panics", "mutations", "duplicates_collapsed", "faults_injected",
          "convergences", "consistent_stops", "wrong_actions")
# Any of these above zero fails the report.
MUST_BE_ZERO = ("panics", "mutations", "wrong_actions")
HEADERS = ("suite", "cases", "panics", "mutations", "duplicates collapsed", "faults injected",
           "convergences", "consistent stops", "wrong actions")


def reliability_dir() -> Path:
    return Path(os.environ.get("RELIABILITY_DIR") or ROOT / ".run" / "reliability")


def load(directory: Path) -> tuple[dict[str, dict], list[str]]:
    """The suites' figures by suite name, and the problems found reading them."""
    suites: dict[str, dict] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except ValueError as e:
            problems.append(f"{path.name}: not JSON ({e})")
            continue
        if not isinstance(data, dict):
            problems.append(f"{path.name}: expected a JSON object")
            continue
        name = data.get("suite")
        if not isinstance(name, str) or not name:
            problems.append(f"{path.name}: no `suite` name")
            continue
        if path.stem != name:
            problems.append(f"{path.name}: names suite `{name}`; the file should be {name}.json")
        bad = [k for k in COUNTS if not isinstance(data.get(k), int) or isinstance(data.get(k), bool) or data[k] < 0]
        if bad:
            problems.append(f"{path.name}: missing or non-count fields {bad}")
            continue
        if name in suites:
            problems.append(f"{path.name}: suite `{name}` reported twice")
        suites[name] = data
    return suites, problems


def render(suites: dict[str, dict], problems: list[str]) -> tuple[str, bool]:
    """The Markdown report and whether it passes."""
    names = [s for s in EXPECTED_SUITES if s in suites] + sorted(set(suites) - set(EXPECTED_SUITES))
    missing = [s for s in EXPECTED_SUITES if s not in suites]
    lines = ["# Reliability figures", "",
             "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    total = dict.fromkeys(COUNTS, 0)
    for name in names:
        row = suites[name]
        for k in COUNTS:
            total[k] += row[k]
        lines.append(f"| {name} | " + " | ".join(str(row[k]) for k in COUNTS) + " |")
    for name in missing:
        lines.append(f"| {name} | not run |" + " |" * (len(COUNTS) - 1))
    lines.append("| **total** | " + " | ".join(f"**{total[k]}**" for k in COUNTS) + " |")
    lines.append("")
    for name in names:
        note = suites[name].get("notes")
        if note:
            lines.append(f"- `{name}`: {note}")
    failures = [f"{k.replace('_', ' ')}: {total[k]} (must be 0)" for k in MUST_BE_ZERO if total[k] > 0]
    failures += [f"suite `{s}` not run (no {s}.json)" for s in missing]
    failures += problems
    lines.append("")
    if failures:
        lines.append("**FAIL**")
        lines += [f"- {f}" for f in failures]
    else:
        lines.append(f"**PASS**: {total['cases']} cases, no panic, no mutation, no wrong action.")
    return "\n".join(lines) + "\n", not failures


def main() -> int:
    directory = reliability_dir()
    suites, problems = load(directory)
    report, ok = render(suites, problems)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "REPORT.md").write_text(report)
    print(report, end="")
    print(f"(written to {directory / 'REPORT.md'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
