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
    assert all(r.get("publish_error", "").startswith("PutMetricData failed") for r in resp["rounds"]), resp
    assert values(moto, "orders") == []


@pytest.mark.parametrize("payload", [[1, 2], "probe", 7, None], ids=["array", "string", "number", "null"])
def test_input_that_is_not_an_object_is_refused(witness, payload):
    with pytest.raises(InvokeError) as e:
        witness.invoke("witness", payload)
    assert e.value.error_type == "BadInput", e.value


# ------------------------------------------------------------------ the hostile corpus


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


def test_no_hostile_input_panics_the_witness_or_adds_a_target(moto, witness_one_round):
    """Every hand-written case of events/hostile/ (oversized, deeply nested, trailing bytes, not
    JSON, forged envelopes, ...) delivered to the witness: a typed refusal or one ordinary round
    over exactly the configured sites; never a panic."""
    from hostile import hand_written

    sites = {"orders", "billing", "payments", "inventory"}
    outcomes = {"refused": 0, "probed": 0}
    for case in hand_written():
        try:
            resp = witness_one_round.invoke_raw("witness", case.body)
        except InvokeError as e:
            assert "panicked" not in (e.message + e.error_type).lower(), (case.name, e.message)
            typed = e.error_type == "BadInput" or "DeserializeError" in e.error_type or e.message.startswith("failed to deserialize")
            assert typed, (case.name, e)
            outcomes["refused"] += 1
            continue
        assert {s["site"] for s in resp["rounds"][0]["samples"]} == sites, case.name
        outcomes["probed"] += 1
    log = (witness_one_round.workdir / "cargo-lambda-watch.log").read_text()
    assert "panicked at" not in log
    assert sum(outcomes.values()) == len(hand_written()), outcomes
