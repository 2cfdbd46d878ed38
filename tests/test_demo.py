"""`make demo`, the README's first command, run whole; and the timeline arithmetic it prints."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from harness import ROOT
from timeline import Marks, incident_timeline, render_svg, render_text, totals

T0 = dt.datetime(2026, 11, 25, 8, 0, 0, tzinfo=dt.timezone.utc)


def at(secs: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=secs)


MARKS = Marks(detected=at(0), decided=at(5), promotion_requested=at(6), promotion_completed=at(15),
              writable_verified=at(15.2), dns_submitted=at(15.5), dns_insync=at(19.5), notified=at(20))


def test_each_stage_is_split_into_aws_waits_policy_waits_and_our_time():
    stages = incident_timeline(MARKS, promotion_secs=8, insync_secs=3)
    by = {s.name: s for s in stages}
    assert by["detected -> decided"].policy_wait == 5 and by["detected -> decided"].ours == 0
    assert by["promotion (RDS)"].aws_wait == 8 and by["promotion (RDS)"].ours == pytest.approx(1)
    assert by["DNS propagation (Route 53)"].aws_wait == 3 and by["DNS propagation (Route 53)"].ours == pytest.approx(1)
    t = totals(stages)
    assert t["incident"] == 20 and t["action_path"] == 15
    assert t["aws_wait"] == 11 and t["ours"] == pytest.approx(4)
    assert "our code and hand-offs 4.00s" in render_text(stages)


def test_an_aws_wait_never_exceeds_the_stage_it_belongs_to():
    fast = Marks(**{**MARKS.__dict__, "promotion_completed": at(8), "writable_verified": at(8),
                    "dns_submitted": at(9), "dns_insync": at(10), "notified": at(11)})
    by = {s.name: s for s in incident_timeline(fast, promotion_secs=8, insync_secs=3)}
    assert by["promotion (RDS)"].aws_wait == 2 and by["DNS propagation (Route 53)"].aws_wait == 1


def test_marks_out_of_order_are_refused():
    with pytest.raises(ValueError, match="out of order"):
        incident_timeline(Marks(**{**MARKS.__dict__, "dns_submitted": at(14)}), 8, 3)


def test_the_chart_is_an_svg_with_a_bar_per_stage():
    stages = incident_timeline(MARKS, 8, 3)
    root = ET.fromstring(render_svg(stages, "site <orders> & co"))
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert texts[0] == "site <orders> & co"
    for s in stages:
        assert s.name in texts
    bars = [r for r in root.iter(f"{ns}rect") if r.find(f"{ns}title") is not None]
    # policy (1) + our parts (6 stages with time of ours) + AWS waits (2)
    assert len(bars) == 1 + sum(1 for s in stages if s.ours > 0) + 2


def test_make_demo_fails_over_fences_reprotects_and_fails_back_with_real_replication():
    """The whole demo as a user runs it: exit status 0, the story's key lines (failover, fence and
    divergence, re-protect, failback with rows checked on both sides), the chart, and no process
    left behind (the demo stops every server it started)."""
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "demo.py")], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    text = out.stdout
    assert "rows replicated: 2" in text and "read_only=1" in text
    assert "killed the orders primary's mariadbd" in text
    assert "-> replica-promoter  promoted" in text and "-> dns-pinner        pinned" in text
    assert "replicating from no one, read_only=0" in text, "the emulator promoted the real replica"
    assert "a write to the new primary: ok (3 rows" in text
    assert "action path (decided -> notified)" in text
    assert "still pinned to the new primary" in text
    # The old primary (issue 12): the rows committed after the cut are exactly what the report names.
    import re

    cut = re.search(r"rows committed on the primary only, as transactions ([\d-]+), .*, ([\d-]+) \*\*\*", text)
    assert cut, "the replication cut and its transactions are printed"
    first, last = cut.group(1), cut.group(2)
    assert "OLD PRIMARY IS WRITABLE" in text and "SPLIT BRAIN RISK" in text
    back = re.search(r"the old primary's server now says read_only=(\d)", text)
    assert back and back.group(1) == "1", "read_only applied within one tick of the region's return"
    assert "session was ended by the fence" in text and "Lost connection" in text
    assert "holds 3 transaction(s) the new primary never received" in text
    assert f"lost: domain 0: {first}..{last}" in text, (first, last)
    assert "recover from: DB snapshot `orders-primary-fence-epoch-1`" in text
    # Issue 13: re-protect into us-east-1 (a real replica), rows on both sides, failback with RPO 0.
    assert "the site is protected again: orders-replica-1-rp1 (us-east-1)" in text
    assert "its new replica orders-replica-1-rp1 [1, 2, 3] (read_only=1)" in text
    assert "replicated to orders-replica-1-rp1: [1, 2, 3, 4, 5]" in text
    assert "rows on the restored primary orders-replica-1-rp1: [1, 2, 3, 4, 5]; every row of orders-replica-1 there: yes" in text
    assert "a write to the restored primary: ok (read_only=0, 6 rows); orders-replica-1 now read_only=1" in text
    rto = re.search(r"failback measured \(the ledger's switchover record\): RTO (\d+) ms .*; RPO (\d+) transactions", text)
    assert rto, "the failback's measured RTO and RPO are printed"
    assert int(rto.group(1)) > 0 and rto.group(2) == "0", rto.group(0)
    assert f"write unavailability {rto.group(1)} ms, RPO 0 transactions; the epoch is completed" in text, \
        "the printed RTO is the one the FailoverCompleted message carries (the ledger's)"
    assert "ledger: epoch 2, phase completed; topology primary orders-replica-1-rp1" in text
    assert re.search(r"done in \d+\.\d+s: failed over, fenced, re-protected, failed back", text)
    chart = ROOT / ".run" / "demo" / "incident-timeline.svg"
    assert ET.parse(chart).getroot().tag.endswith("svg")
    left = subprocess.run(["pgrep", "-f", str(ROOT / ".run" / "demo")], capture_output=True, text=True).stdout
    assert not left.strip(), f"processes left running: {left}"
