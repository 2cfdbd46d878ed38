"""The witness through cargo-lambda against the emulator and real MariaDB: what it publishes into
the DR region's CloudWatch, read back with GetMetricData as the DR-region alarms would read it.

- a primary that answers SQL publishes PrimaryUp 1 every round, one that refuses publishes 0,
  and one whose name does not resolve publishes nothing (unknown: the alarm sees missing data);
- the samples are high-resolution datapoints per Site and Vantage in the DR region only;
- with the DR region unreachable from the witness, the rounds still run and say so, and nothing
  is published (the DR side then reads missing data — unknown, never up);
- input that is not a JSON object is refused as BadInput, and no input can add a target.
"""

from __future__ import annotations

import datetime as dt

import pytest

from harness import InvokeError, LambdaEmulator
from world import function_env, site_config

DR = "us-west-2"
VANTAGE = "us-east-2"


@pytest.fixture(scope="module")
def witness(moto, mariadb, workdir):
    cfg = site_config(mariadb.port)
    for s in cfg["sites"]:
        if s["id"] == "billing":
            s["canary"]["endpoint"] = "127.0.0.1:9"  # its primary refuses connections
        if s["id"] == "payments":
            s["canary"]["endpoint"] = "no-such-primary.invalid:3306"  # does not resolve
    env = function_env(moto.endpoint, cfg) | {
        "WITNESS_VANTAGE": VANTAGE,
        "WITNESS_METRICS_REGION": DR,
        "WITNESS_ROUNDS": "3",
        "WITNESS_INTERVAL_SECS": "1",
        "AWS_REGION": "us-east-2",
        "AWS_DEFAULT_REGION": "us-east-2",
    }
    d = workdir / "witness"
    d.mkdir(exist_ok=True)
    emu = LambdaEmulator(d).start(env, functions=("witness",))
    yield emu
    emu.stop()


def scheduled() -> dict:
    return {"version": "0", "id": "w-1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": dt.datetime.now(dt.timezone.utc).isoformat(),
            "region": VANTAGE, "resources": [], "detail": {}}


def values(moto, site: str, region: str = DR, metric: str = "PrimaryUp") -> list[float]:
    import boto3

    cw = boto3.client("cloudwatch", region_name=region, endpoint_url=moto.moto_endpoint,
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    end = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    out = cw.get_metric_data(
        MetricDataQueries=[{
            "Id": "m", "ReturnData": True,
            "MetricStat": {"Metric": {"Namespace": "rds-failover/Witness", "MetricName": metric,
                                      "Dimensions": [{"Name": "Site", "Value": site},
                                                     {"Name": "Vantage", "Value": VANTAGE}]},
                           "Period": 1, "Stat": "Maximum"},
        }],
        StartTime=end - dt.timedelta(minutes=10), EndTime=end,
    )
    return sorted(out["MetricDataResults"][0]["Values"])


def test_the_witness_publishes_up_down_or_nothing_into_the_dr_region(moto, witness):
    moto.reset()
    resp = witness.invoke("witness", scheduled())
    assert resp["vantage"] == VANTAGE and resp["metrics_region"] == DR
    assert len(resp["rounds"]) == 3 and all("publish_error" not in r for r in resp["rounds"]), resp
    by_site = {s["site"]: s for s in resp["rounds"][0]["samples"]}
    assert by_site["orders"]["up"] == 1.0 and by_site["orders"]["sql"]["kind"] == "reachable"
    assert by_site["billing"]["up"] == 0.0 and by_site["billing"]["sql"]["kind"] == "unreachable"
    assert by_site["payments"]["up"] is None and by_site["payments"]["sql"]["kind"] == "unknown"
    assert "name resolution failed" in by_site["payments"]["sql"]["reason"]

    assert values(moto, "orders") == [1.0, 1.0, 1.0]
    assert values(moto, "billing") == [0.0, 0.0, 0.0]
    assert values(moto, "payments") == [], "unknown publishes nothing"
    assert values(moto, "orders", region=VANTAGE) == [], "only into the DR region"


def test_a_dark_dr_region_costs_the_samples_not_the_rounds(moto, witness):
    moto.reset()
    moto.region_outage(DR, True)
    try:
        resp = witness.invoke("witness", scheduled())
    finally:
        moto.region_outage(None, False)
    assert len(resp["rounds"]) == 3
    assert all(r.get("publish_error", "").startswith("PutMetricData") for r in resp["rounds"]), resp
    assert values(moto, "orders") == []


@pytest.mark.parametrize("payload", [[1, 2], "probe", 7, None], ids=["array", "string", "number", "null"])
def test_input_that_is_not_an_object_is_refused(witness, payload):
    with pytest.raises(InvokeError) as e:
        witness.invoke("witness", payload)
    assert e.value.error_type == "BadInput", e.value


# ------------------------------------------------------------------ the hostile corpus and faults
#
# The witness's inputs are its scheduled event (whatever reaches its function) and the answers of
# the services it calls. Both suites below write their figures to `$RELIABILITY_DIR/witness.json`
# (the `witness` row of `make reliability-report`): a case is one hostile delivery, or one round
# with a fault injected on PutMetricData; a mutation is any metric published other than a configured
# site's sample into the DR region; a wrong action is an answer other than the one the case must get.

SITES = ("orders", "billing", "payments", "inventory")
REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1")
WITNESS_FIGURES: dict = {"cases": 0, "panics": 0, "mutations": 0, "wrong_actions": 0, "faults_injected": 0,
                         "convergences": 0, "consistent_stops": 0, "outcomes": {}}


@pytest.fixture(scope="module")
def witness_one_round(moto, mariadb, workdir):
    env = function_env(moto.endpoint, site_config(mariadb.port)) | {
        "WITNESS_VANTAGE": VANTAGE, "WITNESS_METRICS_REGION": DR, "WITNESS_ROUNDS": "1",
        "AWS_REGION": "us-east-2", "AWS_DEFAULT_REGION": "us-east-2",
    }
    d = workdir / "witness-hostile"
    d.mkdir(exist_ok=True)
    emu = LambdaEmulator(d).start(env, functions=("witness",))
    yield emu
    emu.stop()
    write_witness_figures()


def write_witness_figures() -> None:
    import json
    import os

    from harness import ROOT

    f = WITNESS_FIGURES
    if not f["cases"]:
        return
    d = os.environ.get("RELIABILITY_DIR") or str(ROOT / ".run" / "reliability")
    os.makedirs(d, exist_ok=True)
    figures = {k: f[k] for k in ("cases", "panics", "mutations", "faults_injected", "convergences",
                                 "consistent_stops", "wrong_actions")} | {
        "suite": "witness", "duplicates_collapsed": 0,
        "notes": "a case = one hostile delivery to the witness, or one PutMetricData fault in a round; answers: "
                 + ", ".join(f"{k} {v}" for k, v in sorted(f["outcomes"].items())),
    }
    with open(os.path.join(d, "witness.json"), "w") as fh:
        json.dump(figures, fh, indent=2)
        fh.write("\n")


def published(moto) -> list[tuple[str, str, tuple]]:
    """Every metric the emulated account holds, in every region the tests use."""
    import boto3

    out = []
    for region in REGIONS:
        cw = boto3.client("cloudwatch", region_name=region, endpoint_url=moto.moto_endpoint,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        for m in cw.list_metrics()["Metrics"]:
            dims = tuple(sorted((d["Name"], d["Value"]) for d in m.get("Dimensions", [])))
            out.append((region, f"{m['Namespace']}/{m['MetricName']}", dims))
    return out


def foreign(metrics) -> list:
    """Metrics that are not a configured site's witness sample in the DR region."""
    ok_dims = {(("Site", s), ("Vantage", VANTAGE)) for s in SITES}
    return [m for m in metrics if not (m[0] == DR and m[1].startswith("rds-failover/Witness/") and m[2] in ok_dims)]


TRIGGER_LIMIT = 262_144  # shared/adapters/src/runtime.rs: an EventBridge event is at most 256 KB


def expected_answer(case) -> str:
    """What the witness must answer. Its input passes the functions' shared guard
    (shared/adapters/src/runtime.rs): more than a trigger's 256 KB, or one JSON value followed by
    more bytes, is BadInput; bytes no function can read as JSON are the runtime's deserialize error;
    JSON that is not an object is BadInput; anything else is one round over the configured sites."""
    import json

    if len(case.body) > TRIGGER_LIMIT:
        return "BadInput"
    try:
        text = case.body.decode("utf-8")
        value, end = json.JSONDecoder().raw_decode(text.lstrip())
    except (ValueError, RecursionError):
        return "Deserialize"
    if text.lstrip()[end:].strip():
        return "BadInput"
    if case.expect and all(v == "Deserialize" for v in case.expect.values()):
        return "Deserialize"
    return "probed" if isinstance(value, dict) else "BadInput"


def witness_answer(emu, body: bytes) -> tuple[str, dict | None, str]:
    try:
        resp = emu.invoke_raw("witness", body)
    except InvokeError as e:
        typed = "DeserializeError" in e.error_type or e.message.startswith("failed to deserialize")
        return ("Deserialize" if typed else e.error_type), None, e.message + e.error_type
    return "probed", resp, ""


def test_no_hostile_input_panics_the_witness_mutates_or_adds_a_target(moto, witness_one_round):
    """Every case of the hostile corpus (events/hostile/ and the deliveries generated from the
    recorded ones: oversized, deeply nested, trailing bytes, not JSON, forged envelopes, ...)
    delivered to the witness: the answer the case must get (a typed refusal, or one ordinary round
    over exactly the configured sites), nothing published but those sites' samples into the DR
    region, never a panic."""
    from hostile import all_cases

    moto.reset()
    log = witness_one_round.workdir / "cargo-lambda-watch.log"
    f = WITNESS_FIGURES
    bad: list[str] = []
    for case in all_cases():
        f["cases"] += 1
        want = expected_answer(case)
        got, resp, err = witness_answer(witness_one_round, case.body)
        f["outcomes"][got] = f["outcomes"].get(got, 0) + 1
        panicked = "panicked" in err.lower() or witness_one_round.proc.poll() is not None
        wrong = got != want or (resp is not None and tuple(s["site"] for s in resp["rounds"][0]["samples"]) != SITES)
        f["panics"] += panicked
        f["wrong_actions"] += wrong
        if panicked or wrong:
            bad.append(f"{case.name}: answered {got}, must be {want} {err[:200]}")
    strays = foreign(published(moto))
    f["mutations"] += len(strays)
    assert "panicked at" not in log.read_text()
    assert not bad, bad[:10]
    assert not strays, strays[:10]
    assert f["outcomes"].get("probed", 0) > 0 and f["outcomes"].get("Deserialize", 0) > 0 and f["outcomes"].get("BadInput", 0) > 0, f


@pytest.fixture(scope="module")
def witness_via_proxy(moto, mariadb, workdir):
    """The witness with every AWS call through the fault proxy: two rounds 1 s apart."""
    from fault_proxy import FaultProxy

    proxy = FaultProxy(moto.endpoint).start()
    env = function_env(proxy.endpoint, site_config(mariadb.port)) | {
        "WITNESS_VANTAGE": VANTAGE, "WITNESS_METRICS_REGION": DR, "WITNESS_ROUNDS": "2",
        "WITNESS_INTERVAL_SECS": "1", "AWS_REGION": "us-east-2", "AWS_DEFAULT_REGION": "us-east-2",
    }
    d = workdir / "witness-faults"
    d.mkdir(exist_ok=True)
    emu = LambdaEmulator(d).start(env, functions=("witness",))
    yield emu, proxy
    emu.stop()
    proxy.stop()
    write_witness_figures()


@pytest.mark.parametrize("fault", ["throttle", "internal", "denied", "timeout", "drop"])
def test_a_failing_put_metric_data_costs_the_samples_never_the_rounds(moto, witness_via_proxy, fault):
    """PutMetricData answered with `fault` for a whole invocation (the SDK's retries included): both
    rounds still run in their slots and each says its samples were not published; what CloudWatch
    stored is only configured samples (a `drop` or a late `timeout` was applied although the
    witness saw it fail: that is a sample, not a stray). Once the fault clears, the next invocation
    publishes every round again."""
    from fault_proxy import Rule

    emu, proxy = witness_via_proxy
    moto.reset()
    proxy.reset_log()
    proxy.set_rules([Rule(op="PutMetricData", fault=fault)])
    try:
        rounds = emu.invoke("witness", scheduled())["rounds"]
    finally:
        proxy.clear()
    faults = proxy.faults_injected()
    healed = emu.invoke("witness", scheduled())["rounds"]

    f = WITNESS_FIGURES
    f["cases"] += 1
    f["faults_injected"] += faults
    f["outcomes"][f"fault:{fault}"] = f["outcomes"].get(f"fault:{fault}", 0) + 1
    costed = len(rounds) == 2 and all(r.get("publish_error") for r in rounds)
    recovered = len(healed) == 2 and not any(r.get("publish_error") for r in healed)
    strays = foreign(published(moto))
    f["convergences"] += costed and recovered
    f["wrong_actions"] += not (costed and recovered)
    f["mutations"] += len(strays)
    assert faults >= 2, f"the fault was not injected ({faults})"
    assert costed, rounds
    assert recovered, healed
    assert not strays, strays
    stored = values(moto, "orders")
    if fault in ("throttle", "internal", "denied"):
        assert stored == [1.0, 1.0], f"only the healed rounds' samples: {stored}"
    else:
        assert len(stored) >= 2 and set(stored) == {1.0}, stored
