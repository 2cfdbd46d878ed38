"""`make demo`: one incident on the embedded emulated AWS, told step by step.

Starts moto's server (emulated AWS) and a real MariaDB server (the `orders` primary's SQL
endpoint, probed by the canary) on 127.0.0.1, seeds the example sites, runs `alarm-evaluator`
under cargo-lambda's runtime emulator, and delivers what a real account would: scheduled ticks,
then — after the primary's mariadbd is killed — its CloudWatch alarms going to ALARM. Every step
prints the verdict with the guards and the numbers they compared, the ledger phase, and the domain
events that reached the EventBridge bus. Every process started here is stopped on exit.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, LambdaEmulator, MariaDB, MotoServer  # noqa: E402
from world import World, alarm_event, function_env, now, site_config, tick_event  # noqa: E402

SUSTAINED = 5
SITE = "orders"
MARK = {"pass": "ok ", "fail": "NO ", "unknown": "?  ", "not-applicable": "-  "}


def show(step: str, resp: dict, world: World, t0: float) -> dict:
    [v] = [v for v in resp["verdicts"] if v.get("site") in (SITE, None)]
    outcome = v["outcome"]["kind"] + (f" ({v['outcome']['reason']})" if "reason" in v["outcome"] else "")
    if "candidate" in v["outcome"]:
        outcome += f" -> {v['outcome']['candidate']['id']} ({v['outcome']['candidate']['region']})"
    st = world.state(SITE) or {"phase": "idle", "epoch": 0}
    print(f"\n[{time.monotonic() - t0:5.1f}s] {step}")
    print(f"  verdict: {outcome}   epoch {v['epoch']}   ledger phase: {st['phase']}")
    print(f"  why:     {v['summary']}")
    for g in v["guards"]:
        nums = f"  [{g['observed']:g} vs {g['limit']:g}]" if "observed" in g else ""
        print(f"    {MARK.get(g['result'], g['result'])} {g['guard']:<18} {g['detail']}{nums}")
    events = world.drain_events()
    for e in events:
        d = e["detail"]
        cand = f" candidate={d['candidate']['id']}" if d.get("candidate") else ""
        print(f"  event on bus: {e['detail-type']} (site={d['site']} epoch={d['epoch']}{cand})")
    return v


def main() -> int:
    work = ROOT / ".run" / "demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    moto = MotoServer(work)
    primary = MariaDB(work, "orders-primary")
    emu = LambdaEmulator(work)
    try:
        t0 = time.monotonic()
        moto.start()
        primary.start()
        print(f"emulated AWS (moto) on {moto.endpoint}; orders primary's MariaDB on 127.0.0.1:{primary.port}")
        world = World(moto.endpoint).seed()
        for r in ("orders-replica-1", "orders-replica-2"):
            world.put_lag(r, 2.0, now())
        emu.start(function_env(moto.endpoint, site_config(primary.port, SUSTAINED)))
        print(f"alarm-evaluator under `cargo lambda watch` on 127.0.0.1:{emu.port}; sustained window {SUSTAINED}s, quorum 2 of 4")

        show("Scheduled tick, all healthy", emu.invoke("alarm-evaluator", tick_event(now())), world, t0)

        primary.kill()
        print(f"\n*** killed the orders primary's mariadbd (pid {primary.proc.pid}); its port is closed ***")
        world.set_alarm("orders-primary-availability", "ALARM")
        world.set_alarm("orders-primary-canary", "ALARM")
        show(
            "CloudWatch: orders-primary-availability OK -> ALARM (EventBridge)",
            emu.invoke("alarm-evaluator", alarm_event("orders-primary-availability", "ALARM", "OK", now())),
            world, t0,
        )
        deadline = time.monotonic() + SUSTAINED + 10
        while time.monotonic() < deadline:
            time.sleep(2)
            for r in ("orders-replica-1", "orders-replica-2"):
                world.put_lag(r, 2.0, now())
            v = show("Scheduled tick", emu.invoke("alarm-evaluator", tick_event(now())), world, t0)
            if v["outcome"]["kind"] == "failover-decided":
                break
        else:
            print("\nno failover was decided: something is wrong", file=sys.stderr)
            return 1

        late = alarm_event("orders-primary-canary", "ALARM", "OK", now())
        show("Late delivery: orders-primary-canary OK -> ALARM", emu.invoke("alarm-evaluator", late), world, t0)
        show("The same delivery again (at-least-once)", emu.invoke("alarm-evaluator", late), world, t0)
        show("Operator: status", emu.invoke("alarm-evaluator", {"command": "status", "site": SITE}), world, t0)
        st = world.state(SITE)
        print("\nledger timeline for orders:")
        for entry in st["timeline"]:
            print(f"  {entry}")
        print(f"\ndone in {time.monotonic() - t0:.1f}s: one failover decided (epoch {st['epoch']}), no database touched by the evaluator.")
        print("The promoter, DNS pinner and notifier that act on FailoverDecided come with the action-path issue.")
        return 0
    finally:
        emu.stop()
        primary.stop()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
