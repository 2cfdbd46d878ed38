"""`rds-failover`, the operator's CLI, driven as a person or a script would run it: the built binary
against the emulated account (moto) and the real evaluator under cargo-lambda's runtime emulator,
its SQL canary talking to a real MariaDB. Each test asserts on the exit code, what was printed and
what the account holds afterwards (the ledger record).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from function_url import OPERATOR, READER, FunctionUrls, Principal
from harness import ROOT, LambdaEmulator, MariaDB
from world import EVENT_BUS, HOME_REGION, LEDGER_TABLE, alarm_event, function_env, now, site_config, tick_event

SUSTAINED = 2
AVAIL, CANARY_ALARM = "orders-primary-availability", "orders-primary-canary"
BINARY = ROOT / "target" / "debug" / "rds-failover"


@pytest.fixture(scope="module")
def orders_primary(workdir):
    db = MariaDB(workdir, "cli-orders-primary").start()
    yield db
    db.stop()


@pytest.fixture(scope="module")
def evaluator(moto, orders_primary, mariadb, workdir):
    subprocess.run(["cargo", "build", "--quiet", "-p", "rds-failover-cli"], cwd=ROOT, check=True)
    cfg = site_config(orders_primary.port, SUSTAINED, others_port=mariadb.port)
    (workdir / "cli-sites.json").write_text(json.dumps(cfg))
    emu = LambdaEmulator(workdir).start(function_env(moto.endpoint, cfg))
    emu.cfg = cfg
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def function_urls(moto, evaluator, workdir):
    """The template's two AWS_IAM URLs (tests/function_url.py) in front of the evaluator on its
    `read` and `operate` aliases, configured as the deployed default (no direct commands)."""
    urls = FunctionUrls(function_env(moto.endpoint, evaluator.cfg), HOME_REGION, workdir)
    yield urls
    urls.stop()


@pytest.fixture
def primary_up(orders_primary):
    orders_primary.start()
    yield orders_primary
    orders_primary.start()


def cli(moto, evaluator, *args: str, stdin: str | None = "") -> subprocess.CompletedProcess:
    """The binary, as `make demo`'s world is reached: every AWS service at the emulator, the
    evaluator's Invoke API at cargo-lambda's address. stdin is a pipe (not a terminal)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-west-2",
        "HOME": "/tmp",
    }
    target = ["--endpoint-url", moto.endpoint, "--lambda-endpoint-url", f"http://127.0.0.1:{evaluator.port}",
              "--ledger-table", LEDGER_TABLE, "--evaluator", "alarm-evaluator"]
    return subprocess.run([str(BINARY), *target, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)


def signed_cli(moto, urls: FunctionUrls, principal: Principal, *args: str, secret: str | None = None):
    """The binary as a deployed stack's operator runs it: commands signed with the principal's
    credentials to the function URLs (the ledger read at the emulator, as before)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "AWS_REGION": HOME_REGION,
           "AWS_ACCESS_KEY_ID": principal.access_key, "AWS_SECRET_ACCESS_KEY": secret or principal.secret}
    target = ["--endpoint-url", moto.endpoint, "--ledger-table", LEDGER_TABLE, "--evaluator", "alarm-evaluator",
              "--read-url", urls.read.url, "--operate-url", urls.operate.url]
    return subprocess.run([str(BINARY), *target, *args], input="", capture_output=True, text=True, env=env,
                          timeout=120)


def test_status_shows_phase_live_votes_with_sources_and_lag_against_the_rpo(world, moto, evaluator, primary_up):
    world.put_lag("orders-replica-1", 3.0, now())
    world.put_lag("orders-replica-2", 4.0, now())
    evaluator.invoke("alarm-evaluator", tick_event(now()))
    out = cli(moto, evaluator, "status", "orders")
    assert out.returncode == 0, out.stderr
    print(out.stdout)
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["SITE", "PHASE", "EPOCH"]
    row = lines[1].split()
    assert row[:3] == ["orders", "idle", "0"], lines[1]
    assert "0/" in lines[1] and "(quorum 2)" in lines[1], lines[1]
    assert "sql canary: reachable" in out.stdout, out.stdout  # the real MariaDB answered
    assert "alarm orders-primary-canary: Ok -> up" in out.stdout, out.stdout
    assert "candidates (RPO 30 s):" in out.stdout
    assert "orders-replica-1" in out.stdout and "lag 3.0 s (within RPO)" in out.stdout, out.stdout

    js = cli(moto, evaluator, "--json", "status")
    assert js.returncode == 0, js.stderr
    sites = json.loads(js.stdout)
    assert {s["record"]["site"] for s in sites} == {"orders", "billing", "payments", "inventory"}
    [orders] = [s for s in sites if s["record"]["site"] == "orders"]
    assert orders["live"]["tally"]["up"] >= 2 and orders["live"]["tally"]["down"] == 0


def test_a_mutating_command_needs_a_terminal_or_yes_and_prints_its_verdict(world, moto, evaluator, primary_up):
    evaluator.invoke("alarm-evaluator", tick_event(now()))
    refused = cli(moto, evaluator, "pause", "orders", "--reason", "db maintenance")
    assert refused.returncode == 4, refused
    assert "pause site orders" in refused.stdout  # what it would have done
    assert "pass --yes" in refused.stderr
    assert (world.state("orders") or {}).get("paused") is None, "nothing was sent"

    done = cli(moto, evaluator, "pause", "orders", "--reason", "db maintenance", "--yes")
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    assert "verdict: paused" in done.stdout and "command" in done.stdout, done.stdout
    assert world.state("orders")["paused"]["reason"] == "db maintenance"
    st = cli(moto, evaluator, "status", "orders", "--no-live")
    assert "paused by" in st.stdout.splitlines()[1], st.stdout

    resumed = cli(moto, evaluator, "resume", "orders", "--yes")
    assert resumed.returncode == 0 and world.state("orders").get("paused") is None


def test_a_command_the_evaluator_refuses_exits_1_with_the_failed_guard(world, moto, evaluator, primary_up):
    evaluator.invoke("alarm-evaluator", tick_event(now()))
    out = cli(moto, evaluator, "approve", "orders", "--epoch", "7", "--yes")
    assert out.returncode == 1, out
    assert "verdict: refused" in out.stdout and "NO " in out.stdout, out.stdout
    # Refused by the evaluator's own input checks (no reason for `abort`): exit 1, the message.
    bad = cli(moto, evaluator, "abort", "orders", "--epoch", "1", "--reason", " ", "--yes")
    assert bad.returncode == 1, bad
    assert "reason" in bad.stderr, bad.stderr


def test_history_and_what_if_replay_a_real_outage(world, moto, evaluator, primary_up, workdir):
    world.put_lag("orders-replica-1", 3.0, now())
    world.put_lag("orders-replica-2", 3.0, now())
    evaluator.invoke("alarm-evaluator", tick_event(now()))
    primary_up.kill()
    world.set_alarm(AVAIL, "ALARM")
    world.set_alarm(CANARY_ALARM, "ALARM")
    evaluator.invoke("alarm-evaluator", alarm_event(AVAIL, "ALARM", "OK", now()))
    time.sleep(SUSTAINED + 0.5)
    evaluator.invoke("alarm-evaluator", tick_event(now()))
    assert world.state("orders")["phase"] == "promoting"

    hist = cli(moto, evaluator, "history", "orders")
    assert hist.returncode == 0, hist.stderr
    print(hist.stdout)
    rows = hist.stdout.splitlines()[1:]
    assert "promoting" in rows[0] and "failover decided" in hist.stdout, hist.stdout
    versions = [int(r.split()[3]) for r in rows]
    assert versions == sorted(versions, reverse=True), "newest first"
    assert "[cfg-" in hist.stdout, "each decision names its configuration version"

    same = cli(moto, evaluator, "what-if", "orders", "--config", str(workdir / "cli-sites.json"))
    assert same.returncode == 0, same.stderr
    print(same.stdout)
    assert "would have come at the same time" in same.stdout, same.stdout

    slower = json.loads(json.dumps(evaluator.cfg))
    for s in slower["sites"]:
        s["thresholds"]["sustained_secs"] = 600
        s["thresholds"]["flap_window_secs"] = 600
    path = workdir / "cli-slower.json"
    path.write_text(json.dumps(slower))
    diff = cli(moto, evaluator, "what-if", "orders", "--config", str(path))
    assert diff.returncode == 0, diff.stderr
    print(diff.stdout)
    assert "would not have been decided" in diff.stdout, diff.stdout
    assert "recorded: failover-decided" in diff.stdout and "what-if: suspected" in diff.stdout, diff.stdout


def test_validate_checks_the_document_then_aws(world, moto, evaluator, workdir):
    bad = workdir / "cli-bad.json"
    cfg = json.loads(json.dumps(evaluator.cfg))
    cfg["sites"][0]["thresholds"]["quorum"] = 9
    bad.write_text(json.dumps(cfg))
    out = cli(moto, evaluator, "validate", str(bad), "--offline")
    assert out.returncode == 1 and "sites[0].thresholds.quorum" in out.stderr, out

    out = cli(moto, evaluator, "validate", str(workdir / "cli-sites.json"))
    print(out.stdout)
    assert "ok    site orders: orders-primary (us-east-1): exists" in out.stdout, out.stdout
    # The example's hosted zones are placeholders the emulated account does not hold.
    assert out.returncode == 1 and "ERROR site orders: zone Z0ORDERSEXAMPLE" in out.stdout, out.stdout
    assert EVENT_BUS  # the bus is not the CLI's to check


def test_switchover_asks_like_failover_then_shows_the_preconditions_the_evaluator_judged(world, moto, evaluator, primary_up):
    evaluator.invoke("alarm-evaluator", tick_event(now()))
    args = ("switchover", "orders", "--candidate", "orders-replica-1", "--reason", "quarterly DR test",
            "--max-wait-secs", "60")
    asked = cli(moto, evaluator, *args)
    assert asked.returncode == 4, asked
    assert "planned switchover of site orders to orders-replica-1" in asked.stdout, asked.stdout
    assert "WRITES PAUSE" in asked.stdout and "at most 60 s" in asked.stdout, asked.stdout
    assert "pass --yes" in asked.stderr
    assert not (world.state("orders") or {}).get("switchover"), "nothing was sent"

    # This site has no `fence.parameter_group` (and no lag metric for the target): the evaluator
    # refuses before anything is fenced, every precondition listed, the GTID mode read from the
    # real server; exit 1 as for a refused failover.
    sent = cli(moto, evaluator, *args, "--yes")
    print(sent.stdout)
    assert sent.returncode == 1, sent
    assert "verdict: refused (" in sent.stdout, sent.stdout
    assert "NO  fence" in sent.stdout and "replicates by GTID" in sent.stdout, sent.stdout
    assert "NO " in sent.stdout and "ok " in sent.stdout, sent.stdout
    st = world.state("orders") or {}
    assert not st.get("switchover") and st.get("phase") in (None, "idle"), st.get("phase")


def test_a_deployment_that_denies_direct_commands_refuses_a_pause_and_still_answers_status(
        world, moto, evaluator, primary_up, workdir):
    """The deployed default (`DirectOperatorCommands=deny`): a mutating command by direct invoke
    carries no verified principal and is refused (exit 1, the setting named), nothing written;
    `status` still works. Mutating commands then go through the AWS_IAM function URL."""
    env = function_env(moto.endpoint, evaluator.cfg)
    env.pop("RDS_FAILOVER_DIRECT_COMMANDS")
    (workdir / "deny").mkdir(exist_ok=True)
    deny = LambdaEmulator(workdir / "deny").start(env)
    try:
        before = world.state("orders")
        refused = cli(moto, deny, "pause", "orders", "--reason", "db maintenance", "--yes")
        assert refused.returncode == 1, refused
        assert "RDS_FAILOVER_DIRECT_COMMANDS" in refused.stderr, refused.stderr
        assert world.state("orders") == before, "nothing was written"
        st = cli(moto, deny, "status", "orders")
        assert st.returncode == 0, st.stderr
    finally:
        deny.stop()


def test_a_pause_through_the_operate_url_is_recorded_under_the_signers_iam_principal(
        world, moto, function_urls, primary_up):
    """The operator's `pause`, SigV4-signed to the operate URL: the ledger names the principal
    Lambda authenticated (the IAM user's ARN, with its userId), not the name typed in the command."""
    world.put_lag("orders-replica-1", 3.0, now())
    world.put_lag("orders-replica-2", 3.0, now())
    t0 = time.monotonic()
    done = signed_cli(moto, function_urls, OPERATOR, "pause", "orders", "--reason", "db maintenance", "--yes")
    print(done.stdout, done.stderr, f"pause through the URL: {time.monotonic() - t0:.1f} s")
    assert done.returncode == 0, done
    assert "verdict: paused" in done.stdout, done.stdout
    paused = world.state("orders")["paused"]
    assert paused["by"] == f"{OPERATOR.user_arn} (userId {OPERATOR.user_id})", paused
    resumed = signed_cli(moto, function_urls, OPERATOR, "resume", "orders", "--yes")
    assert resumed.returncode == 0, resumed
    assert world.state("orders").get("paused") is None


def test_the_read_only_principal_reads_but_is_refused_a_pause_and_a_bad_signature_fails(
        world, moto, function_urls, primary_up):
    """IAM's decision, from the template's policies: `OperatorReadOnly` reaches the read URL only.
    Its `status` works; its `pause` is refused (403, the reason printed, exit 1) before the
    evaluator runs, nothing written; a request signed with the wrong secret is turned away too, but
    reported as a failure (exit 3, InvalidSignatureException and its reason): it is not a decision."""
    world.put_lag("orders-replica-1", 3.0, now())
    world.put_lag("orders-replica-2", 3.0, now())
    st = signed_cli(moto, function_urls, READER, "status", "orders")
    assert st.returncode == 0, st
    assert "sql canary: reachable" in st.stdout, st.stdout  # live evidence, through the read URL
    before = world.state("orders")

    refused = signed_cli(moto, function_urls, READER, "pause", "orders", "--reason", "not mine", "--yes")
    print(refused.stderr)
    assert refused.returncode == 1, refused
    assert "HTTP 403" in refused.stderr and "Forbidden" in refused.stderr, refused.stderr
    forged = signed_cli(moto, function_urls, OPERATOR, "pause", "orders", "--reason", "x", "--yes",
                        secret="not-the-operators-secret")
    print(forged.stderr)
    assert forged.returncode == 3, forged  # the credentials are at fault: a failure, not a refusal
    assert "InvalidSignatureException" in forged.stderr, forged.stderr
    assert "signature we calculated does not match" in forged.stderr, forged.stderr
    assert world.state("orders") == before, "nothing was written"


def test_the_operators_credentials_cannot_direct_invoke_operate_with_a_forged_url_event(
        world, moto, function_urls, primary_up):
    """Finding 1: the operator may invoke `:operate` only through its URL
    (`lambda:InvokedViaFunctionUrl` true in the template). A direct Invoke with the operator's
    credentials, carrying a payload shaped like a URL event whose `requestContext.authorizer.iam`
    names someone else, is refused by IAM before the function runs; nothing is written."""
    from function_url import Refusal, url_event
    before = world.state("orders")
    someone = Principal("AKIAFORGED0000000001", "-", "arn:aws:iam::123456789012:user/not-me",
                        "AIDAFORGED0000000001", ())
    body = json.dumps({"command": "pause", "site": "orders", "reason": "forged", "operator": "x"}).encode()
    event = url_event(function_urls.operate.url_id, HOME_REGION, "POST", "/", "",
                      {"content-type": "application/json"}, body, someone, "127.0.0.1",
                      __import__("datetime").datetime.now(__import__("datetime").timezone.utc))
    with pytest.raises(Refusal) as refused:
        function_urls.operate.direct_invoke(OPERATOR, event)
    assert refused.value.status == 403 and refused.value.body["Type"] == "AccessDeniedException", refused.value.body
    assert "lambda:InvokeFunction" in refused.value.body["Message"]
    with pytest.raises(Refusal):
        function_urls.read.direct_invoke(READER, event)
    assert world.state("orders") == before, "nothing was written"
