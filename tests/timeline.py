"""An incident's timeline, read back from what the emulated account recorded, and its chart.

`incident_timeline` turns the marks of one failover — when the outage was first signalled, and
what the ledger, RDS, Route 53 and SNS recorded afterwards — into stages, each split into the
AWS-side wait (the emulator's injected promotion time and Route 53 propagation time, which a real
account would impose too) and the time our own code added on top. `render_svg` draws it as a
self-contained SVG a person can glance at; `render_text` prints it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Stage:
    name: str
    start: dt.datetime
    end: dt.datetime
    # Seconds of the stage spent waiting on AWS (injected by the emulator), on policy (the
    # sustained window, a deliberate wait), and the rest: our code.
    aws_wait: float = 0.0
    policy_wait: float = 0.0
    note: str = ""

    @property
    def secs(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def ours(self) -> float:
        return max(0.0, self.secs - self.aws_wait - self.policy_wait)


@dataclass(frozen=True)
class Marks:
    """The instants of one incident, all UTC."""

    detected: dt.datetime  # the first outage signal was delivered to the evaluator
    decided: dt.datetime  # ledger: phase decided
    promotion_requested: dt.datetime  # ledger: promotion.requested_at
    promotion_completed: dt.datetime  # ledger: promotion.completed_at (topology says promoted)
    writable_verified: dt.datetime  # ledger: promotion.writable_verified_at
    dns_submitted: dt.datetime  # Route 53: GetChange(change_id).SubmittedAt
    dns_insync: dt.datetime  # ledger: dns.insync_at
    notified: dt.datetime  # SNS: the DnsPinned message's Timestamp


def incident_timeline(m: Marks, promotion_secs: float, insync_secs: float) -> list[Stage]:
    """The stages of one incident. `promotion_secs`/`insync_secs` are the AWS-side waits the
    emulator injected; a stage's own remainder is the time our code (and the hand-offs between
    functions) added."""
    order = [m.detected, m.decided, m.promotion_requested, m.promotion_completed, m.writable_verified,
             m.dns_submitted, m.dns_insync, m.notified]
    if any(b < a for a, b in zip(order, order[1:])):
        raise ValueError(f"the incident's marks are out of order: {m}")
    window = (m.decided - m.detected).total_seconds()
    return [
        Stage("detected -> decided", m.detected, m.decided, policy_wait=window,
              note="sustained window, quorum, RPO (policy, deliberate)"),
        Stage("decided -> promotion requested", m.decided, m.promotion_requested,
              note="event bus hand-off, fencing, pre-checks"),
        Stage("promotion (RDS)", m.promotion_requested, m.promotion_completed,
              aws_wait=min(promotion_secs, (m.promotion_completed - m.promotion_requested).total_seconds()),
              note="RDS promotes; we poll topology with capped backoff"),
        Stage("writes verified (SQL)", m.promotion_completed, m.writable_verified,
              note="@@read_only / @@innodb_read_only over MySQL"),
        Stage("verified -> DNS change submitted", m.writable_verified, m.dns_submitted,
              note="event bus hand-off, fencing, record read"),
        Stage("DNS propagation (Route 53)", m.dns_submitted, m.dns_insync,
              aws_wait=min(insync_secs, (m.dns_insync - m.dns_submitted).total_seconds()),
              note="PENDING -> INSYNC; we poll GetChange"),
        Stage("in sync -> people notified", m.dns_insync, m.notified,
              note="event bus hand-off, dedupe claim, SNS publish"),
    ]


def totals(stages: list[Stage]) -> dict[str, float]:
    """Whole incident, and the action path (decided -> notified) split into AWS waits and ours."""
    action = stages[1:]
    return {
        "incident": (stages[-1].end - stages[0].start).total_seconds(),
        "action_path": (action[-1].end - action[0].start).total_seconds(),
        "aws_wait": sum(s.aws_wait for s in action),
        "ours": sum(s.ours for s in action),
        "policy_wait": sum(s.policy_wait for s in stages),
    }


def render_text(stages: list[Stage]) -> str:
    t0 = stages[0].start
    lines = [f"  {'stage':<34} {'from':>7} {'took':>7} {'AWS wait':>9} {'policy':>7} {'ours':>7}"]
    for s in stages:
        lines.append(
            f"  {s.name:<34} {(s.start - t0).total_seconds():6.2f}s {s.secs:6.2f}s {s.aws_wait:8.2f}s "
            f"{s.policy_wait:6.2f}s {s.ours:6.2f}s"
        )
    t = totals(stages)
    lines.append(
        f"  action path (decided -> notified): {t['action_path']:.2f}s = AWS-side waits {t['aws_wait']:.2f}s "
        f"+ our code and hand-offs {t['ours']:.2f}s"
    )
    return "\n".join(lines)


COLOURS = {"aws": "#9aa5b1", "policy": "#f0b429", "ours": "#2680c2"}


def render_svg(stages: list[Stage], title: str) -> str:
    """A horizontal bar per stage on a seconds axis from detection; each bar is split into
    policy wait (amber), AWS-side wait (grey) and our code (blue), labelled with its numbers."""
    t0 = stages[0].start
    end = max((s.end - t0).total_seconds() for s in stages)
    left, label_w, right, row_h, top = 10, 250, 260, 34, 58
    plot_w = 560
    scale = plot_w / max(end, 1e-9)
    width = left + label_w + plot_w + right
    height = top + row_h * len(stages) + 70
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    t = totals(stages)
    out.append(
        f'<text x="{left}" y="42" fill="#333">incident {t["incident"]:.1f} s; action path {t["action_path"]:.1f} s '
        f'= AWS-side waits {t["aws_wait"]:.1f} s + our code and hand-offs {t["ours"]:.1f} s</text>'
    )
    x0 = left + label_w
    for i, s in enumerate(stages):
        y = top + i * row_h
        out.append(f'<text x="{left}" y="{y + 17}">{escape(s.name)}</text>')
        x = x0 + (s.start - t0).total_seconds() * scale
        for kind, secs in (("policy", s.policy_wait), ("aws", s.aws_wait), ("ours", s.ours)):
            if secs <= 0:
                continue
            w = max(secs * scale, 1.0)
            out.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="18" fill="{COLOURS[kind]}">'
                       f'<title>{escape(s.name)}: {kind} {secs:.2f} s</title></rect>')
            x += w
        parts = [f"{s.secs:.2f} s"]
        if s.policy_wait:
            parts.append(f"policy {s.policy_wait:.2f}")
        if s.aws_wait:
            parts.append(f"AWS {s.aws_wait:.2f}")
        parts.append(f"ours {s.ours:.2f}")
        out.append(f'<text x="{x + 6:.1f}" y="{y + 17}" fill="#333">{escape(" · ".join(parts))}</text>')
    axis_y = top + row_h * len(stages) + 8
    out.append(f'<line x1="{x0}" y1="{axis_y}" x2="{x0 + plot_w}" y2="{axis_y}" stroke="#333"/>')
    step = 5 if end <= 60 else 10
    for sec in range(0, int(end) + 1, step):
        x = x0 + sec * scale
        out.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 5}" stroke="#333"/>')
        out.append(f'<text x="{x:.1f}" y="{axis_y + 18}" text-anchor="middle">{sec}s</text>')
    ly = axis_y + 40
    for i, (kind, label) in enumerate((("policy", "policy wait (sustained window)"),
                                       ("aws", "AWS-side wait (injected by the emulator)"),
                                       ("ours", "our code and hand-offs"))):
        lx = left + i * 290
        out.append(f'<rect x="{lx}" y="{ly - 11}" width="14" height="14" fill="{COLOURS[kind]}"/>')
        out.append(f'<text x="{lx + 20}" y="{ly}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
