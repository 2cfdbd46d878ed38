"""`make demo`: a whole failover on the embedded emulated AWS, told step by step.

Starts the faithful emulator (moto's server with promotion, global failover and Route 53
propagation made faithful: tests/faithful_moto.py) and two real MariaDB servers on 127.0.0.1 with
real replication: the `orders` primary (probed by the SQL canary) and `orders-replica-1`, which
replicates from it read-only. The emulated instance orders-replica-1 reports that server as its
endpoint, and when the emulator completes its promotion it promotes that server too (replication
stopped, read_only off), so the promoter's writability check talks to real MySQL. Replica lag is
published from the real replica's Seconds_Behind_Master. It seeds the example sites, the writer
DNS record and the alert topic, and runs all four functions under cargo-lambda's runtime emulator.

Then it delivers what a real account would: scheduled ticks, the primary's mariadbd killed, its
CloudWatch alarms going to ALARM, ticks until the sustained window has passed; and it routes each
domain event to the functions infra/template.yaml routes it to, as EventBridge would. Every step
prints the verdict with its guards and numbers, what each function did, the DNS record and the
messages people received (read back from an SQS subscription of the topic). It prints the
incident timeline — each stage's duration, the AWS-side waits and what our code added — and
writes it as an SVG chart.

The old primary (issue 12): before the kill, replication is cut (the replica's SQL thread stops) and
rows are committed on the primary only; us-east-1's APIs go dark once the failover is decided. The
fence is retried while the region is dark; the old primary's server comes back writable first (a
pooled client reconnects; CRITICAL page), then its region (read_only=1 set in its own parameter
group and applied by the emulator to the real server, confirmed over SQL within one tick, the pooled
session ended, a snapshot taken), and the divergence report names exactly the transactions the
replica never applied. It prints the fence timeline and that report, and shows DNS stays pinned.
Every process started here is stopped on exit.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chain import Chain  # noqa: E402
from infra import targets  # noqa: E402
from harness import ROOT, InvokeError, LambdaEmulator, MariaDB, MotoServer  # noqa: E402
from timeline import Marks, incident_timeline, render_svg, render_text  # noqa: E402
from world import ACCOUNT, HOME_REGION, LEDGER_TABLE, ORDERS_GROUP, World, alarm_event, function_env, now, site_config, tick_event  # noqa: E402

SUSTAINED = 5
PROMOTION_SECS = 8
INSYNC_SECS = 3
SITE = "orders"
WRITER = "db.orders.example.com"
FUNCTIONS = ("alarm-evaluator", "replica-promoter", "dns-pinner", "notifier")
MARK = {"pass": "ok ", "fail": "NO ", "unknown": "?  ", "not-applicable": "-  "}
EAST = "us-east-1"
LOST_ROWS = 3  # committed on the primary after the replica stopped applying
FENCER, FENCER_PASSWORD, FENCE_PASSWORD_VAR = "fencer", "fencer-pass", "RDS_FAILOVER_FENCE_PASSWORD"
RP_GROUP, RP_SUBNETS, RP_SG, RP_KMS = "orders-east-replica-params", "orders-east-subnets", "sg-0e57a11c", "alias/orders-east"


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
    return v


def route(chain: Chain, t0: float) -> None:
    """EventBridge's part: every domain event on the bus goes to the functions the template's
    rules route it to, and so on until the bus is quiet; each delivery is printed as it is made."""
    while True:
        events = chain.world.drain_events()
        if not events:
            return
        for e in events:
            d = e["detail"]
            cand = f" candidate={d['candidate']['id']}" if d.get("candidate") else ""
            print(f"  [{time.monotonic() - t0:5.1f}s] event on bus: {e['detail-type']} (site={d['site']} epoch={d['epoch']}{cand})")
            e.setdefault("account", ACCOUNT)  # moto's EventBridge drops it (AWS-EMULATION.md)
            chain.seen.append(e)
            for fn in sorted(targets(e, "domain")):
                delivery = chain.deliver(fn, e)
                print(f"  [{time.monotonic() - t0:5.1f}s]   -> {fn:<17} {describe(delivery)}")


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


def utc(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def rds_event(recorded: str) -> dict:
    """A recorded RDS event from events/, as RDS would send it now (fresh id and time)."""
    ev = json.loads((ROOT / "events" / recorded).read_text())
    stamp = dt.datetime.now(dt.timezone.utc)
    ev["id"] = str(uuid.uuid4())
    ev["time"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    ev["detail"]["Date"] = stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return ev


def publish_lag(world: World, replica: MariaDB, cut: bool = False) -> str:
    """CloudWatch ReplicaLag as RDS publishes it: orders-replica-1's from its real server
    (Seconds_Behind_Master; -1 when replication is not running), orders-replica-2 (no server
    behind it in the demo) a steady 2 s. After the replication cut (`cut`) no new datapoint is
    published: RDS publishes ReplicaLag once a minute and the whole incident is inside one, so the
    newest datapoint is the one taken before the cut."""
    if cut:
        return "no new datapoint inside the minute (the newest, from before the cut, says 0 s)"
    sbm = replica.replica_status().get("Seconds_Behind_Master", "NULL")
    lag = float(sbm) if sbm not in ("", "NULL") else -1.0
    world.put_lag("orders-replica-1", lag, now())
    world.put_lag("orders-replica-2", 2.0, now())
    return f"{lag:g} s" if lag >= 0 else "-1 (replication not running)"


def region_dark(moto: MotoServer) -> None:
    moto.region_outage(EAST, True)
    print(f"\n*** {EAST}'s APIs go dark (the emulator answers 503 to every request signed for it) ***")


def fence_tick(label: str, emu: LambdaEmulator, chain: Chain, world: World, t0: float) -> list[dict]:
    """One scheduled tick for the fence: the pages it sent and the fence's steps as the ledger has them."""
    emu.invoke("alarm-evaluator", tick_event(now()))
    chain.pump()
    notes = world.notifications()
    f = (world.state(SITE) or {}).get("fence") or {}
    print(f"\n[{time.monotonic() - t0:5.1f}s] Scheduled tick: {label}")
    for s in f.get("steps", []):
        detail = s.get("observed") or s.get("last") or s.get("reason") or ""
        attempts = f" after {s['attempts']} attempt(s)" if s.get("attempts") else ""
        print(f"    {s['step']:<20} {s['state']:<8}{attempts}  {detail[:110]}")
    for n in notes:
        print(f"  page: {n['Subject']}")
    return notes


def fence_the_old_primary(emu, chain, world, moto, primary: MariaDB, t0: float) -> bool:
    """The old primary after the pin: fenced while its region is dark (retried), back writable
    (CRITICAL), its region back (read_only within one tick, sessions ended, snapshot), and the
    divergence report."""
    import subprocess

    from harness import mariadb_binary

    print("\n--- the old primary: fence, watch, divergence (issue 12) ---")
    pages = fence_tick(f"{EAST} dark, the old primary down", emu, chain, world, t0)
    primary.start()
    # A pooled application connection that reconnects as soon as the server is back.
    client = subprocess.Popen([mariadb_binary("mariadb"), "--no-defaults", "-h127.0.0.1", f"-P{primary.port}",
                               f"-u{MariaDB.CANARY_USER}", f"-p{MariaDB.CANARY_PASSWORD}", "-e", "SELECT SLEEP(300);"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    print(f"\n*** the old primary's mariadbd is back (read_only={primary.sql('SELECT @@GLOBAL.read_only;').strip()}), "
          f"{EAST}'s API still dark; a pooled client reconnects to it ***")
    notes = fence_tick("the old primary answers, its region's API does not", emu, chain, world, t0)
    pages += notes
    critical = [n for n in notes if "WRITABLE" in n["Message"]]
    if critical:
        what = next((line.strip() for line in critical[0]["Message"].splitlines() if "SPLIT BRAIN" in line), "")
        print("\n    " + what[:600])
    moto.region_outage(None, False)
    world.report_status("orders-primary", EAST, None)
    print(f"\n*** {EAST}'s APIs are back ***")
    returned = time.monotonic()
    pages += fence_tick(f"{EAST} back", emu, chain, world, t0)
    print(f"  the old primary's server now says read_only={primary.sql('SELECT @@GLOBAL.read_only;').strip()} "
          f"({time.monotonic() - returned:.1f}s after the region's return)")
    for _ in range(12):
        f = world.state(SITE)["fence"]
        if all(s["state"] != "pending" for s in f["steps"]):
            break
        time.sleep(2)
        pages += fence_tick("the fence goes on", emu, chain, world, t0)
    try:
        client.wait(timeout=10)
        print(f"\nthe pooled client's session was ended by the fence: {client.stderr.read().strip()}")
    except subprocess.TimeoutExpired:
        client.kill()
        print("\nthe pooled client's session was NOT ended", file=sys.stderr)
        return False
    f = world.state(SITE)["fence"]
    print("\nfence timeline (from the ledger):")
    print(f"  {f['decided_at']}  intent recorded with the failover decision (lag decided on: {f.get('decided_lag')})")
    for s in sorted((s for s in f["steps"] if s.get("at")), key=lambda s: s["at"]):
        print(f"  {s['at']}  {s['step']:<20} {s['observed']}")
    for s in f["steps"]:
        if not s.get("at"):
            print(f"  {'':<30}  {s['step']:<20} {s['state']}: {s.get('reason') or s.get('last') or ''}")
    d = f.get("divergence") or {}
    if d.get("lost", {}).get("count") != LOST_ROWS:
        print(f"\nthe divergence measured {d.get('lost')}, not the {LOST_ROWS} transactions written", file=sys.stderr)
        return False
    reports = [n for n in pages if "DIVERGENCE" in n["Message"]]
    print("\nthe divergence report, as people received it:\n")
    if reports:
        body = reports[-1]["Message"].split("\nWHY (")[0]
        print("    " + body.replace("\n", "\n    "))
    return bool(reports)


def rows_of(socket: str) -> list[int]:
    """The order ids a real server holds, read over its admin socket."""
    import subprocess

    from harness import mariadb_binary

    out = subprocess.run([mariadb_binary("mariadb"), "--no-defaults", "-uroot", f"--socket={socket}", "-N", "-B", "-e",
                          "SELECT id FROM shop.orders ORDER BY id;"], check=True, capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def sql_on(socket: str, statements: str) -> str:
    import subprocess

    from harness import mariadb_binary

    return subprocess.run([mariadb_binary("mariadb"), "--no-defaults", "-uroot", f"--socket={socket}", "-N", "-B", "-e",
                           statements], check=True, capture_output=True, text=True).stdout.strip()


def east_network(world: World) -> None:
    """us-east-1's own parameter group, subnet group and security group for the re-protect replica,
    as the site's `reprotect` section names them (a cross-region replica's group is in its region);
    and orders-replica-1's own group in us-west-2 under the site's fence group name, so that the
    failback can fence it (docs/runbook.md section 9)."""
    rds, ec2 = world.client("rds", EAST), world.client("ec2", EAST)
    rds.create_db_parameter_group(DBParameterGroupName=RP_GROUP, DBParameterGroupFamily="mysql8.0",
                                  Description="orders' us-east-1 replica: its own, so it can be fenced")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{EAST}{z}")["Subnet"]["SubnetId"]
               for i, z in ((1, "a"), (2, "b"))]
    rds.create_db_subnet_group(DBSubnetGroupName=RP_SUBNETS, DBSubnetGroupDescription="orders in us-east-1",
                               SubnetIds=subnets)
    west = world.client("rds", HOME_REGION)
    west.create_db_parameter_group(DBParameterGroupName=ORDERS_GROUP, DBParameterGroupFamily="mysql8.0",
                                   Description="orders' us-west-2 writer-to-be: its own, so a failback can fence it")
    west.modify_db_instance(DBInstanceIdentifier="orders-replica-1", DBParameterGroupName=ORDERS_GROUP,
                            ApplyImmediately=True)


def tick_until(emu, chain, world, done, what: str, t0: float, ticks: int = 60, pause: float = 0.5,
               pump: bool = True) -> bool:
    """Scheduled ticks (`pause` apart: the schedule's minute, compressed) until `done()`, the bus
    pumped after each unless `pump` is false (a switchover's fence and catch-up are the tick's: the
    promoter, delivered meanwhile, would wait out its budget for them); printed once, at the end."""
    start = time.monotonic()
    for n in range(1, ticks + 1):
        emu.invoke("alarm-evaluator", tick_event(now()))
        if pump:
            chain.pump()
        if done():
            print(f"  [{time.monotonic() - t0:5.1f}s] {what}: after {n} tick(s), {time.monotonic() - start:.1f}s")
            return True
        time.sleep(pause)
    print(f"\n{what}: not reached after {ticks} ticks", file=sys.stderr)
    return False


def reprotect_and_fail_back(emu, chain, world, replica: MariaDB, zone: str, recorded: str, t0: float) -> bool:
    """The rest of the incident's life (issue 13): `complete`, `reprotect` into us-east-1 (a real
    MariaDB replica of the new primary, created by the emulator), rows checked on it, then
    `failback` — a switchover back, RPO 0 — and every row checked on the restored primary."""
    print("\n--- re-protect and fail back (issue 13) ---")
    v = show("Operator: complete epoch 1", emu.invoke("alarm-evaluator", {
        "command": "complete", "site": SITE, "epoch": 1, "operator": "alice",
        "reason": "orders-replica-1 is the primary"}), world, t0)
    chain.pump()
    if v["outcome"]["kind"] != "completed":
        print("\nthe failover could not be completed", file=sys.stderr)
        return False
    v = show("Operator: reprotect into us-east-1", emu.invoke("alarm-evaluator", {
        "command": "reprotect", "site": SITE, "operator": "alice", "reason": "epoch 1 completed: rebuild us-east-1"}),
        world, t0)
    rp = lambda: (world.state(SITE).get("reprotect") or {})  # noqa: E731
    if not tick_until(emu, chain, world, lambda: rp().get("phase") in ("protected", "failed"),
                      "re-protect settled", t0, ticks=120):
        return False
    rec = rp()
    if rec["phase"] != "protected":
        print(f"\nre-protect failed: {rec}", file=sys.stderr)
        return False
    rid = rec["replica"]["id"]
    inst = world.instance(rid, EAST)
    sock = next(t["Value"] for t in world.client("rds", EAST).list_tags_for_resource(
        ResourceName=inst["DBInstanceArn"])["TagList"] if t["Key"] == "emulator:mysql-socket")
    print(f"  RDS: {rid} ({EAST}) is {inst['DBInstanceStatus']}, parameter group "
          f"{inst['DBParameterGroups'][0]['DBParameterGroupName']}, replicating from "
          f"{inst['ReadReplicaSourceDBInstanceIdentifier'].split(':')[-1]}")
    for s in [e["detail"]["verdict"]["summary"] for e in chain.seen if e["detail-type"] == "ReprotectChanged"]:
        print(f"  message: {s[:160]}")
    primary_rows = [int(x) for x in replica.sql("SELECT id FROM shop.orders ORDER BY id;").split()]
    if not wait_rows(sock, primary_rows):
        return False
    print(f"  rows: new primary orders-replica-1 {primary_rows}; its new replica {rid} {rows_of(sock)} "
          f"(read_only={sql_on(sock, 'SELECT @@GLOBAL.read_only;')})")

    replica.sql("INSERT INTO shop.orders VALUES (4, 'written while re-protected'), (5, 'the last before the failback');")
    written = [int(x) for x in replica.sql("SELECT id FROM shop.orders ORDER BY id;").split()]
    if not wait_rows(sock, written):
        return False
    print(f"  two rows written on orders-replica-1, replicated to {rid}: {rows_of(sock)}")

    for r in ("orders-replica-1", "orders-replica-2"):  # their newest ReplicaLag datapoints
        world.put_lag(r, 0.0, now())
    v = show("Operator: failback", emu.invoke("alarm-evaluator", {
        "command": "failback", "site": SITE, "operator": "alice", "reason": "us-east-1 is back: go home",
        "max_wait_secs": 60}), world, t0)
    if v["outcome"]["kind"] != "failover-decided":
        print("\nthe failback was refused", file=sys.stderr)
        return False
    sw = lambda: world.state(SITE)["switchover"]  # noqa: E731
    # As tests/test_switchover.py drives it: the ticks fence, capture and wait for the target; then
    # the bus (the promoter, released, promotes; the pinner moves DNS); then a tick takes it in.
    if not tick_until(emu, chain, world, lambda: sw()["phase"] not in ("fencing", "capturing", "catching-up"),
                      f"failback fenced orders-replica-1, {world.state(SITE)['switchover']['target']['id']} caught up",
                      t0, ticks=40, pump=False):
        return False
    print(f"  switchover phase: {sw()['phase']}; captured position {sw().get('captured')}")
    route(chain, t0)
    if not tick_until(emu, chain, world, lambda: sw()["phase"] in ("done", "rolled-back", "failed"),
                      "failback switchover settled", t0, ticks=20):
        return False
    s = sw()
    if s["phase"] != "done":
        print(f"\nthe failback did not complete: {s}", file=sys.stderr)
        return False
    chain.pump()
    restored = rows_of(sock)
    missing = sorted(set(written) - set(restored))
    print(f"  rows on the restored primary {rid}: {restored}; every row of orders-replica-1 there: "
          f"{'yes' if not missing else f'NO, missing {missing}'}")
    if missing:
        return False
    sql_on(sock, "INSERT INTO shop.orders VALUES (6, 'written after the failback');")
    print(f"  a write to the restored primary: ok (read_only={sql_on(sock, 'SELECT @@GLOBAL.read_only;')}, "
          f"{len(rows_of(sock))} rows); orders-replica-1 now read_only="
          f"{replica.sql('SELECT @@GLOBAL.read_only;').strip()}")
    m = s["measured"]
    print(f"\nfailback measured (the ledger's switchover record): RTO {m['rto_ms']} ms of write unavailability, "
          f"from the fence's start ({s['fence_started_at']}) to verified writes ({s['writes_verified_at']}); "
          f"RPO {m['rpo_transactions']} transactions")
    for e in chain.seen:
        if e["detail-type"] in ("FailoverCompleted", "UnpinRequested", "DnsUnpinned") and e["detail"]["epoch"] == s["epoch"]:
            print(f"  {e['detail-type']}: {e['detail']['verdict']['summary']}")
    print(f"DNS: {WRITER} -> {world.writer_record(zone, WRITER)}  (recorded before the failover: ({recorded!r}, 300))")
    st = world.state(SITE)
    print(f"ledger: epoch {st['epoch']}, phase {st['phase']}; topology primary {st['topology']['primary']['id']}")
    return m["rpo_transactions"] == 0 and st["phase"] == "completed"


def wait_rows(sock: str, want: list[int], secs: float = 20) -> bool:
    deadline = time.monotonic() + secs
    while rows_of(sock) != want:
        if time.monotonic() > deadline:
            print(f"\nrows on the replica {rows_of(sock)}, not {want}", file=sys.stderr)
            return False
        time.sleep(0.2)
    return True


def main() -> int:
    work = ROOT / ".run" / "demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    moto = MotoServer(work, promotion_secs=PROMOTION_SECS, dns_insync_secs=INSYNC_SECS)
    primary = MariaDB(work, "orders-primary", server_id=1, binlog=True)
    replica = MariaDB(work, "orders-replica-1", server_id=2, binlog=True)
    emu = LambdaEmulator(work)
    try:
        t0 = time.monotonic()
        moto.start()
        primary.start()
        replica.start()
        for db in (primary, replica):  # the fence's administrative login (the RDS master user's part)
            db.sql(f"SET SESSION sql_log_bin = 0; CREATE USER '{FENCER}'@'127.0.0.1' IDENTIFIED BY '{FENCER_PASSWORD}';"
                   f"GRANT ALL ON *.* TO '{FENCER}'@'127.0.0.1';")
        replica.replicate_from(primary)
        primary.sql("CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40));"
                    "INSERT INTO shop.orders VALUES (1, 'teapot'), (2, 'kettle');")
        applied = primary.sql("SELECT @@GLOBAL.gtid_binlog_pos;").strip()
        deadline = time.monotonic() + 30
        while replica.sql("SELECT @@GLOBAL.gtid_slave_pos;").strip() != applied and time.monotonic() < deadline:
            time.sleep(0.1)
        print(f"emulated AWS (faithful moto) on {moto.endpoint}: promotions take {PROMOTION_SECS}s, "
              f"Route 53 changes are PENDING for {INSYNC_SECS}s")
        print(f"MariaDB: orders primary on 127.0.0.1:{primary.port} -> replicating to orders-replica-1 on "
              f"127.0.0.1:{replica.port} (read_only={replica.sql('SELECT @@GLOBAL.read_only;').strip()}, "
              f"rows replicated: {replica.sql('SELECT COUNT(*) FROM shop.orders;').strip()})")
        world = World(moto.endpoint).seed()
        old = world.instance("orders-primary", "us-east-1")["Endpoint"]["Address"]
        zone = world.seed_writer_record(WRITER, old, ttl=300)
        topic = world.seed_topic()
        world.point_endpoint("orders-replica-1", HOME_REGION, f"127.0.0.1:{replica.port}", admin_socket=replica.socket)
        # orders-primary's own parameter group reaches the real primary: read_only set in it is applied there.
        world.point_endpoint("orders-primary", EAST, f"127.0.0.1:{primary.port}", admin_socket=primary.socket)
        print(f"replica lag published to CloudWatch: orders-replica-1 {publish_lag(world, replica)}")
        cfg = site_config(primary.port, SUSTAINED, others_port=replica.port)
        cfg["sites"][0]["dns"]["zone_id"] = zone
        cfg["sites"][0]["fence"] = {"parameter_group": ORDERS_GROUP, "sql_user": FENCER,
                                    "sql_credentials": {"kind": "env", "var": FENCE_PASSWORD_VAR}}
        cfg["sites"][0]["reprotect"] = {"region": EAST, "parameter_group": RP_GROUP, "security_groups": [RP_SG],
                                        "subnet_group": RP_SUBNETS, "kms_key_id": RP_KMS}
        east_network(world)
        env = function_env(moto.endpoint, cfg) | {"TOPIC_ARN": topic, "RDS_FAILOVER_FALLBACK_BUDGET_SECS": "60",
                                                  FENCE_PASSWORD_VAR: FENCER_PASSWORD}
        emu.start(env, functions=FUNCTIONS)
        warmed = time.monotonic()
        for fn in FUNCTIONS:
            # `cargo lambda watch` builds and starts each function at its first invocation (on a
            # loaded machine, or after a source change, longer than one invoke's timeout): a
            # malformed event (a typed error, nothing read or changed) is sent until it answers,
            # so that the incident's figures below are the chain's, not the emulator's start-up.
            while True:
                try:
                    emu.invoke(fn, {"warm": True})
                    break
                except InvokeError:
                    break
                except OSError:
                    if time.monotonic() - warmed > 900:
                        raise
        print(f"functions started in {time.monotonic() - warmed:.1f}s")
        print(f"four functions under `cargo lambda watch` on 127.0.0.1:{emu.port}; sustained window {SUSTAINED}s, quorum 2 of 4")
        print(f"{WRITER} -> {world.writer_record(zone, WRITER)}")

        chain = Chain(world, emu)
        show("Scheduled tick, all healthy", emu.invoke("alarm-evaluator", tick_event(now())), world, t0)
        route(chain, t0)

        # Replication is cut: the replica stops applying, the primary goes on committing.
        replica.sql("STOP SLAVE SQL_THREAD;")
        lost = []
        for i in range(LOST_ROWS):
            primary.sql(f"INSERT INTO shop.orders VALUES ({10 + i}, 'never reaches the replica');")
            lost.append(primary.sql("SELECT @@GLOBAL.gtid_binlog_pos;").strip())
        print(f"\n*** replication cut (the replica's SQL thread stopped); {LOST_ROWS} rows committed on the primary "
              f"only, as transactions {', '.join(lost)} ***")
        primary.kill()
        # Its host is lost with it: RDS reports the instance `failed` (the promoter re-checks that
        # the primary is still down, over RDS and the SQL canary, before it asks RDS to promote).
        world.report_status("orders-primary", "us-east-1", "failed")
        print(f"\n*** killed the orders primary's mariadbd (pid {primary.proc.pid}); its port is closed, RDS reports it failed ***")
        world.set_alarm("orders-primary-availability", "ALARM")
        world.set_alarm("orders-primary-canary", "ALARM")
        detected = dt.datetime.now(dt.timezone.utc)
        show(
            "CloudWatch: orders-primary-availability OK -> ALARM (EventBridge)",
            emu.invoke("alarm-evaluator", alarm_event("orders-primary-availability", "ALARM", "OK", now())),
            world, t0,
        )
        route(chain, t0)
        v = show(
            "RDS: orders-primary \"DB instance shutdown.\" (RDS-EVENT-0004, forwarded from us-east-1)",
            emu.invoke("alarm-evaluator", rds_event("eventbridge-rds-orders-primary-shutdown.json")), world, t0,
        )
        # On a loaded machine the sustained window can pass before this delivery: then it decides.
        decided = v["outcome"]["kind"] == "failover-decided"
        if decided:
            decided_at = time.monotonic()
            region_dark(moto)
            print("\n--- EventBridge routes the domain events by infra/template.yaml's rules ---")
        route(chain, t0)
        deadline = time.monotonic() + SUSTAINED + 10
        while not decided and time.monotonic() < deadline:
            time.sleep(2)
            lag = publish_lag(world, replica, cut=True)
            v = show(f"Scheduled tick (orders-replica-1 lag published: {lag})",
                     emu.invoke("alarm-evaluator", tick_event(now())), world, t0)
            decided = v["outcome"]["kind"] == "failover-decided"
            if decided:
                decided_at = time.monotonic()
                region_dark(moto)
                print("\n--- EventBridge routes the domain events by infra/template.yaml's rules ---")
            route(chain, t0)
        if not decided:
            print("\nno failover was decided: something is wrong", file=sys.stderr)
            return 1
        print(f"\n[{time.monotonic() - t0:5.1f}s] promoted and pinned {time.monotonic() - decided_at:.1f}s after the decision")

        late = alarm_event("orders-primary-canary", "ALARM", "OK", now())
        show("Late delivery: orders-primary-canary OK -> ALARM", emu.invoke("alarm-evaluator", late), world, t0)
        show("The same delivery again (at-least-once)", emu.invoke("alarm-evaluator", late), world, t0)
        if world.drain_events():
            print("\na late or duplicate delivery emitted an event", file=sys.stderr)
            return 1

        inst = world.instance("orders-replica-1")
        print(f"\nRDS: orders-replica-1 is {inst['DBInstanceStatus']}, replication source: "
              f"{inst.get('ReadReplicaSourceDBInstanceIdentifier') or 'none (standalone primary)'}")
        print(f"MariaDB behind it: replicating from {replica.replica_status().get('Master_Port') or 'no one'}, "
              f"read_only={replica.sql('SELECT @@GLOBAL.read_only;').strip()}")
        replica.sql("INSERT INTO shop.orders VALUES (3, 'written after the failover');")
        print(f"  a write to the new primary: ok ({replica.sql('SELECT COUNT(*) FROM shop.orders;').strip()} rows in shop.orders)")
        print(f"DNS: {WRITER} -> {world.writer_record(zone, WRITER)}  (was {old})")
        st = world.state(SITE)
        print(f"ledger: epoch {st['epoch']}, phase {st['phase']}; previous record kept for failback: {st['dns']['previous_values']}")
        print("ledger timeline:")
        for entry in st["timeline"]:
            print(f"  {entry['at']}  {entry['phase']:<11} {entry['note']}")
        notes = world.notifications()
        print(f"\npeople received {len(notes)} messages (read back from an SQS subscription of the topic):")
        for n in notes:
            print(f"  {n['Timestamp']}  {n['Subject']}")
        pinned = [n for n in notes if n["MessageAttributes"].get("phase", {}).get("Value") == "dns-pinned"
                  or "pinned" in n["Subject"].lower()]
        if not pinned:
            print("\nno message told people DNS was pinned", file=sys.stderr)
            return 1
        print("\nthe last one in full:\n")
        print("    " + pinned[-1]["Message"].replace("\n", "\n    "))

        p, d = st["promotion"], st["dns"]
        change = world.client("route53").get_change(Id=d["change_id"])["ChangeInfo"]
        marks = Marks(
            detected=detected, decided=next(utc(e["at"]) for e in st["timeline"] if e["phase"] == "promoting"),
            promotion_requested=utc(p["requested_at"]), promotion_completed=utc(p["completed_at"]),
            writable_verified=utc(p["writable_verified_at"]), dns_submitted=change["SubmittedAt"],
            dns_insync=utc(d["insync_at"]), notified=utc(pinned[-1]["Timestamp"]),
        )
        stages = incident_timeline(marks, PROMOTION_SECS, INSYNC_SECS)
        print("\nincident timeline (from the ledger, RDS, Route 53 and SNS records):")
        print(render_text(stages))
        chart = work / "incident-timeline.svg"
        chart.write_text(render_svg(stages, f"rds-failover: site {SITE}, epoch {st['epoch']} (make demo)"))
        print(f"  chart: {chart.relative_to(ROOT)}")

        if not fence_the_old_primary(emu, chain, world, moto, primary, t0):
            return 1
        world.set_alarm("orders-primary-availability", "OK")
        world.set_alarm("orders-primary-canary", "OK")
        print("\n*** the old primary's alarms are OK again ***")
        show("Scheduled tick, old primary healthy again", emu.invoke("alarm-evaluator", tick_event(now())), world, t0)
        print(f"DNS: {WRITER} -> {world.writer_record(zone, WRITER)}: still pinned to the new primary; the old one"
              " takes no writes through the writer name. Failback is a planned, manual step.")
        show("Operator: status", emu.invoke("alarm-evaluator", {"command": "status", "site": SITE}), world, t0)
        if not (world.state(SITE)["phase"] == "dns-pinned" and world.writer_record(zone, WRITER)[0] == "127.0.0.1"):
            print("\nthe failover did not stay pinned", file=sys.stderr)
            return 1
        print("\n(the site stays pinned — automation stands down for it — until an operator closes the failover")
        print(" with the `complete` command: docs/runbook.md section 9a)")
        if not reprotect_and_fail_back(emu, chain, world, replica, zone, old, t0):
            return 1
        cli_status(moto, emu)
        print(f"\ndone in {time.monotonic() - t0:.1f}s: failed over, fenced, re-protected, failed back; "
              "every row checked on both sides.")
        return 0
    finally:
        emu.stop()
        replica.stop()
        primary.stop()
        moto.stop()


def cli_status(moto: MotoServer, emu: LambdaEmulator) -> None:
    """The operator's view of the demo world: `rds-failover status`, as printed (issue 15)."""
    import subprocess

    subprocess.run(["cargo", "build", "--quiet", "-p", "rds-failover-cli"], cwd=ROOT, check=True)
    cmd = [str(ROOT / "target" / "debug" / "rds-failover"), "--endpoint-url", moto.endpoint,
           "--lambda-endpoint-url", f"http://127.0.0.1:{emu.port}", "--ledger-table", LEDGER_TABLE,
           "--evaluator", "alarm-evaluator", "status"]
    env = {"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": HOME_REGION, "HOME": "/tmp"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    print("\n$ rds-failover --endpoint-url ... status")
    print(out.stdout + out.stderr, end="")


if __name__ == "__main__":
    sys.exit(main())
