"""`make demo`: a whole failover on the embedded emulated AWS, told step by step.

Starts the faithful emulator (moto's server with promotion, global failover and Route 53
propagation made faithful: tests/faithful_moto.py) and two real MariaDB servers on 127.0.0.1 —
the `orders` primary (probed by the SQL canary) and `orders-replica-1` (the database that gets
promoted; the promoter checks over SQL that it accepts writes) — seeds the example sites, the
writer DNS record and the alert topic, and runs all four functions under cargo-lambda's runtime
emulator. Then it delivers what a real account would: scheduled ticks, the primary's mariadbd
killed, its CloudWatch alarms going to ALARM, ticks until the sustained window has passed; and it
routes each domain event to the functions infra/template.yaml routes it to, as EventBridge would.
Every step prints the verdict with its guards and numbers, what each function did, the DNS record,
and the messages people received. Every process started here is stopped on exit.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chain import Chain  # noqa: E402
from harness import ROOT, LambdaEmulator, MariaDB, MotoServer  # noqa: E402
from world import HOME_REGION, World, alarm_event, function_env, now, site_config, tick_event  # noqa: E402

SUSTAINED = 5
PROMOTION_SECS = 8
INSYNC_SECS = 3
SITE = "orders"
WRITER = "db.orders.example.com"
FUNCTIONS = ("alarm-evaluator", "replica-promoter", "dns-pinner", "notifier")
BACKLOG: list[dict] = []
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
    BACKLOG.extend(events)  # taken off the bus to be shown; routed to the functions later
    for e in events:
        d = e["detail"]
        cand = f" candidate={d['candidate']['id']}" if d.get("candidate") else ""
        print(f"  event on bus: {e['detail-type']} (site={d['site']} epoch={d['epoch']}{cand})")
    return v


def describe(d) -> str:
    if d.error:
        return f"error {d.error.error_type}: {d.error.message}"
    r = d.response
    if d.function == "replica-promoter":
        o = r["outcome"]
        return f"{o['kind']}: {r['verdict']['summary'] if r.get('verdict') else o}  (polls: {r['polls']})"
    if d.function == "dns-pinner":
        return f"{r['outcome']}: {r['detail']}  (GetChange polls: {r['polls']})"
    if d.function == "notifier":
        return f"{r['outcome']}: \"{r['subject']}\""
    return str(r)


def main() -> int:
    work = ROOT / ".run" / "demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    moto = MotoServer(work, promotion_secs=PROMOTION_SECS, dns_insync_secs=INSYNC_SECS)
    primary = MariaDB(work, "orders-primary")
    replica = MariaDB(work, "orders-replica-1")
    emu = LambdaEmulator(work)
    try:
        t0 = time.monotonic()
        moto.start()
        primary.start()
        replica.start()
        print(f"emulated AWS (faithful moto) on {moto.endpoint}: promotions take {PROMOTION_SECS}s, "
              f"Route 53 changes are PENDING for {INSYNC_SECS}s")
        print(f"orders primary's MariaDB on 127.0.0.1:{primary.port}; orders-replica-1's on 127.0.0.1:{replica.port}")
        world = World(moto.endpoint).seed()
        old = world.instance("orders-primary", "us-east-1")["Endpoint"]["Address"]
        zone = world.seed_writer_record(WRITER, old, ttl=300)
        topic = world.seed_topic()
        world.point_endpoint("orders-replica-1", HOME_REGION, f"127.0.0.1:{replica.port}")
        for r in ("orders-replica-1", "orders-replica-2"):
            world.put_lag(r, 2.0, now())
        cfg = site_config(primary.port, SUSTAINED, others_port=replica.port)
        cfg["sites"][0]["dns"]["zone_id"] = zone
        env = function_env(moto.endpoint, cfg) | {"TOPIC_ARN": topic, "RDS_FAILOVER_FALLBACK_BUDGET_SECS": "60"}
        emu.start(env, functions=FUNCTIONS)
        print(f"four functions under `cargo lambda watch` on 127.0.0.1:{emu.port}; sustained window {SUSTAINED}s, quorum 2 of 4")
        print(f"{WRITER} -> {world.writer_record(zone, WRITER)}")

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

        decided_at = time.monotonic()
        late = alarm_event("orders-primary-canary", "ALARM", "OK", now())
        show("Late delivery: orders-primary-canary OK -> ALARM", emu.invoke("alarm-evaluator", late), world, t0)
        show("The same delivery again (at-least-once)", emu.invoke("alarm-evaluator", late), world, t0)

        # The events show() took off the bus (IncidentSuspected, FailoverDecided) are routed now.
        print("\n--- EventBridge routes the domain events by infra/template.yaml's rules ---")
        chain = Chain(world, emu)
        for ev in BACKLOG:
            chain.deliver_routed(ev)
        chain.pump()
        for d in chain.deliveries:
            print(f"  {d.event['detail-type']:<19} -> {d.function:<17} {describe(d)}")
        print(f"\n[{time.monotonic() - t0:5.1f}s] promoted and pinned {time.monotonic() - decided_at:.1f}s after the decision")

        inst = world.instance("orders-replica-1")
        print(f"RDS: orders-replica-1 is {inst['DBInstanceStatus']}, replication source: "
              f"{inst.get('ReadReplicaSourceDBInstanceIdentifier') or 'none (standalone primary)'}")
        print(f"DNS: {WRITER} -> {world.writer_record(zone, WRITER)}  (was {old})")
        st = world.state(SITE)
        print(f"ledger: epoch {st['epoch']}, phase {st['phase']}; previous record kept for failback: {st['dns']['previous_values']}")
        print("timeline:")
        start = None
        for entry in st["timeline"]:
            at = entry["at"]
            start = start or at
            print(f"  {at}  {entry['phase']:<11} {entry['note']}")
        notes = world.notifications()
        print(f"\npeople received {len(notes)} messages:")
        for n in notes:
            print(f"  {n['Subject']}")
        pinned = [n for n in notes if "pinned" in n["Subject"].lower()]
        if pinned:
            print("\nthe last one in full:\n")
            print("    " + pinned[-1]["Message"].replace("\n", "\n    "))
        primary.start()
        world.set_alarm("orders-primary-availability", "OK")
        world.set_alarm("orders-primary-canary", "OK")
        print(f"\n*** the old primary's mariadbd is back (pid {primary.proc.pid}) and its alarms are OK ***")
        show("Scheduled tick, old primary healthy again", emu.invoke("alarm-evaluator", tick_event(now())), world, t0)
        print(f"DNS: {WRITER} -> {world.writer_record(zone, WRITER)}: still pinned; failback is a planned, manual step")
        show("Operator: status", emu.invoke("alarm-evaluator", {"command": "status", "site": SITE}), world, t0)
        ok = world.state(SITE)["phase"] == "dns-pinned" and world.writer_record(zone, WRITER)[0] == "127.0.0.1"
        print("\n(the site stays pinned — automation stands down for it — until an operator has made the")
        print(" configuration name the new primary and closes the failover with the `complete` command,")
        print(' e.g. {"command":"complete","site":"orders","epoch":1,"operator":"...","reason":"..."}: docs/runbook.md)')
        print(f"\ndone in {time.monotonic() - t0:.1f}s: " + ("failed over, writes verified, DNS pinned." if ok else "the failover did not complete"))
        return 0 if ok else 1
    finally:
        emu.stop()
        replica.stop()
        primary.stop()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
