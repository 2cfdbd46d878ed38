"""Static checks of infra/template.yaml, and its EventBridge patterns against the recorded events.

- cfn-lint and checkov are clean (every checkov skip carries its justification inline), and so is
  `sam validate --lint`, run as CI runs it: no AWS credentials, no network needed;
- every pattern the template attaches to a function is exercised by the recorded events in
  events/ with moto's EventBridge matcher: positives reach the evaluator, foreign accounts, other
  resources and irrelevant RDS event ids do not;
- the RDS event ids the rule lets through are exactly the ones the policy acts on;
- every asynchronous path has retries, a maximum event age and a dead-letter queue.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from harness import ROOT, VENV_BIN
from infra import FORWARDER, FUNCTION_OF_RESOURCE, TEMPLATE, WITNESS, rules, targets, template

EVENTS = ROOT / "events"
MANIFEST = json.loads((EVENTS / "MANIFEST.json").read_text())
LINT_BIN = ROOT / ".venv-lint" / "bin"
SAM_BIN = ROOT / ".venv-sam" / "bin"


TEMPLATES = [TEMPLATE, FORWARDER, WITNESS]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_is_clean(path):
    out = subprocess.run([str(VENV_BIN / "cfn-lint"), str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_sam_validate_lint_is_clean_without_credentials(path, tmp_path):
    """The SAM CLI (aws-sam-cli from PyPI, in .venv-sam) transforms the template and lints the
    result locally; it needs a region and nothing else (no credentials in this environment)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_DEFAULT_REGION": "us-west-2",
           "SAM_CLI_TELEMETRY": "0"}
    out = subprocess.run([str(SAM_BIN / "sam"), "validate", "--lint", "-t", str(path)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "is a valid SAM Template" in out.stdout + out.stderr, out.stdout + out.stderr


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_checkov_is_clean_and_every_skip_is_justified(path):
    out = subprocess.run(
        [str(LINT_BIN / "checkov"), "-f", str(path), "--framework", "cloudformation", "--compact",
         "--quiet", "--skip-download", "--output", "json"],
        capture_output=True, text=True, timeout=600,
    )
    report = json.loads(out.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0 and not failed, failed
    assert summary["passed"] > 0
    for name, res in template(path)["Resources"].items():
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 20, f"{name}: checkov skip {skip['id']} needs a reason"


def eventbridge_entries():
    for e in MANIFEST:
        if e["shape"] in ("eventbridge-alarm", "eventbridge-rds", "eventbridge-operator"):
            yield e


# Rejected by the pattern itself (never invoke anything), by file.
FILTERED_BY_PATTERN = {
    "eventbridge-alarm-foreign-account.json": "another account",
    "eventbridge-alarm-unknown-alarm-name.json": "an alarm no site owns",
    "eventbridge-rds-unknown-instance.json": "a resource no site owns",
    "eventbridge-rds-orders-primary-configuration-change.json": "an event id the policy does not act on",
    "eventbridge-rds-orders-primary-no-event-id.json": "no event id: the rule passes only the ids the policy acts on",
    "eventbridge-operator-foreign-account.json": "another account",
}


@pytest.mark.parametrize("entry", list(eventbridge_entries()), ids=lambda e: e["file"])
def test_recorded_eventbridge_events_reach_exactly_the_evaluator(entry):
    event = json.loads((EVENTS / entry["file"]).read_text())
    bus = "domain" if entry["shape"] == "eventbridge-operator" else "default"
    got = targets(event, bus)
    if entry["file"] in FILTERED_BY_PATTERN:
        assert got == set(), f"{entry['file']} ({FILTERED_BY_PATTERN[entry['file']]}) must not match: {got}"
    else:
        # Stale, future-dated and forged-ARN deliveries do match: the function's own guards reject them.
        assert got == {"alarm-evaluator"}, (entry["file"], got)


def test_every_pattern_is_exercised_by_a_recorded_event():
    used = set()
    for entry in MANIFEST:
        if entry["expect"] != "signal" or "detail-type" not in (EVENTS / entry["file"]).read_text():
            continue
        event = json.loads((EVENTS / entry["file"]).read_text())
        for r in rules():
            if r.matches(event):
                used.add((r.function, r.name))
    for ev in sorted((EVENTS / "domain").glob("*.json")) if (EVENTS / "domain").exists() else []:
        event = json.loads(ev.read_text())
        for r in rules():
            if r.bus == "domain" and r.matches(event):
                used.add((r.function, r.name))
    assert used == {(r.function, r.name) for r in rules()}, {(r.function, r.name) for r in rules()} - used


def test_the_rds_rule_passes_exactly_the_event_ids_the_policy_acts_on():
    src = (ROOT / "shared" / "policy" / "src" / "signal.rs").read_text()
    table = re.findall(r'\("(RDS-EVENT-\d{4})", RdsMeaning::(\w+)\)', src)
    assert len(table) > 20
    acted_on = {eid for eid, meaning in table if meaning != "Informational"}
    [rds_rule] = [r for r in rules() if r.name == "RdsEvent"]
    assert set(rds_rule.pattern["detail"]["EventID"]) == acted_on


def test_every_async_path_has_retries_max_age_and_a_dead_letter_queue():
    tpl = template()
    functions = {n: r for n, r in tpl["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert len(functions) == 4
    for name, fn in functions.items():
        p = fn["Properties"]
        assert fn["Metadata"]["BuildMethod"] == "rust-cargolambda", name
        assert p["DeadLetterQueue"]["Type"] == "SQS", name
        assert p["EventInvokeConfig"]["MaximumEventAgeInSeconds"] <= 21600, name
        assert isinstance(p["ReservedConcurrentExecutions"], int) and p["Timeout"] <= 900, name
        for ev_name, ev in p["Events"].items():
            props = ev["Properties"]
            if ev["Type"] == "SQS":
                # A polled queue: its own redrive policy is the retry budget and the dead letter.
                queue = tpl["Resources"][props["Queue"]["Fn::GetAtt"][0]]["Properties"]
                assert props["BatchSize"] == 1, (name, ev_name)
                # A burst must leave most of the reserved concurrency to the tick and the alarms.
                assert props["ScalingConfig"]["MaximumConcurrency"] * 2 <= p["ReservedConcurrentExecutions"], (name, ev_name)
                assert queue["RedrivePolicy"]["maxReceiveCount"] >= 5, (name, ev_name)
                assert "deadLetterTargetArn" in queue["RedrivePolicy"], (name, ev_name)
                # Lambda: the visibility timeout at least six times the function's timeout.
                assert queue["VisibilityTimeout"] >= 6 * p["Timeout"], (name, ev_name)
                continue
            assert props["RetryPolicy"]["MaximumEventAgeInSeconds"] > 0, (name, ev_name)
            assert "MaximumRetryAttempts" in props["RetryPolicy"], (name, ev_name)
            assert "Arn" in props["DeadLetterConfig"], (name, ev_name)
    g = tpl["Globals"]["Function"]
    assert g["Runtime"] == "provided.al2023" and g["Architectures"] == ["arm64"]
    tick = functions["AlarmEvaluatorFunction"]["Properties"]["Events"]["Tick"]
    assert tick["Type"] == "Schedule" and tick["Properties"]["Schedule"] == "rate(1 minute)"


def test_every_dead_letter_queue_pages_people_directly():
    """A dead letter means an incident may have stopped half-way, possibly because the notifier
    itself fails: each queue a function or rule dead-letters to has an alarm that publishes to the
    alert topic itself, on the first message."""
    tpl = template()
    res = tpl["Resources"]
    queues = {q["Ref"] if isinstance(q, dict) else q for q in res["DeadLetterQueuePolicy"]["Properties"]["Queues"]}
    assert len(queues) == 4
    watched = {}
    for name, r in res.items():
        if r["Type"] != "AWS::CloudWatch::Alarm" or r["Properties"].get("Namespace") != "AWS/SQS":
            continue
        p = r["Properties"]
        [dim] = p["Dimensions"]
        assert dim["Name"] == "QueueName", name
        watched[dim["Value"]["Fn::GetAtt"][0]] = p
    assert set(watched) == queues
    for q, p in watched.items():
        assert p["MetricName"] == "ApproximateNumberOfMessagesVisible", q
        assert (p["ComparisonOperator"], p["Threshold"], p["EvaluationPeriods"]) == ("GreaterThanThreshold", 0, 1), q
        assert p["AlarmActions"] == [{"Ref": "AlertTopic"}], q


def test_the_ledger_table_is_durable_encrypted_and_expires_audit_items():
    t = template()["Resources"]["LedgerTable"]["Properties"]
    assert t["BillingMode"] == "PAY_PER_REQUEST"
    assert t["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert t["SSESpecification"]["SSEEnabled"] is True
    assert t["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    adapters = (ROOT / "shared" / "adapters" / "src" / "aws.rs").read_text()
    assert '"expires_at"' in adapters, "the TTL attribute is the one the ledger adapter writes"


def deploy_dry_run(function: str) -> dict:
    subprocess.run(["cargo", "build", "--quiet", "-p", function], cwd=ROOT, check=True)
    out = subprocess.run(
        [str(VENV_BIN / "cargo-lambda"), "lambda", "deploy", "--dry", "--output-format", "json",
         "--binary-path", str(ROOT / "target" / "debug" / function), function],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout[out.stdout.index("{"):])


@pytest.mark.parametrize("resource,function", [
    ("AlarmEvaluatorFunction", "alarm-evaluator"),
    ("ReplicaPromoterFunction", "replica-promoter"),
    ("DnsPinnerFunction", "dns-pinner"),
    ("NotifierFunction", "notifier"),
])
def test_cargo_lambda_deploy_of_one_function_matches_the_template(resource, function):
    """`cargo lambda deploy <fn>` works on its own (`--dry`: package and resolve, no AWS call),
    with the crate's [package.metadata.lambda.deploy] agreeing with the SAM template."""
    plan = deploy_dry_run(function)
    props = template()["Resources"][resource]["Properties"]
    cfg = plan["config"]
    assert (cfg["memory"], cfg["timeout"]) == (props["MemorySize"], props["Timeout"]), cfg
    assert cfg["tracing"] == "Active" and cfg["runtime"] == "provided.al2023"
    env = dict(v.split("=", 1) for v in cfg["env_var"] or [])
    assert env.get("LEDGER_TABLE") == "rds-failover-ledger", env
    assert "project=rds-failover" in (plan["tags"] or ""), plan["tags"]


def test_the_primary_region_forwarder_forwards_exactly_what_the_evaluator_listens_to():
    fwd = template(FORWARDER)["Resources"]
    own = {r.name: r.pattern for r in rules() if r.function == "alarm-evaluator" and r.bus == "default"}
    from infra import _resolve, example_parameters
    params = example_parameters()
    assert _resolve(fwd["ForwardAlarmStateChanges"]["Properties"]["EventPattern"], params) == own["AlarmStateChange"]
    assert _resolve(fwd["ForwardRdsEvents"]["Properties"]["EventPattern"], params) == own["RdsEvent"]


@pytest.mark.parametrize("resource,function", [
    ("AlarmEvaluatorFunction", "alarm-evaluator"),
    ("ReplicaPromoterFunction", "replica-promoter"),
    ("DnsPinnerFunction", "dns-pinner"),
    ("NotifierFunction", "notifier"),
])
def test_each_functions_iam_actions_are_exactly_the_sdk_operations_its_adapters_send(resource, function):
    """Derived from the code: the adapters the function's setup.rs builds, and the SDK operations
    (`client.<op>()`, checked against botocore's service models) in those adapters' impl blocks."""
    from infra import function_actions_from_code, function_actions_in_template

    code = function_actions_from_code(function)
    assert code, f"found no SDK operations for {function}"
    assert function_actions_in_template(resource) == code


def test_the_derivation_sees_every_adapter():
    from infra import adapter_operations

    ops = adapter_operations()
    assert {"RdsTopology", "CloudWatchMetrics", "DynamoLedger", "EventBridgeBus", "SecretsManagerCredentials",
            "RdsControl", "Route53Dns", "SnsNotifications", "DynamoNotificationLog"} <= set(ops)
    assert "rds:PromoteReadReplica" in ops["RdsControl"] and "sns:Publish" in ops["SnsNotifications"]
    assert ops["S3ConfigStore"] == {"s3:GetObject"}


def test_the_dashboards_metric_filters_read_fields_the_functions_log():
    """The filters count the evaluator's `verdict` and the notifier's `domain event` log lines
    (JSON logs: fields under `fields`); the field names must be the ones the code logs."""
    res = template()["Resources"]
    evaluator = (ROOT / "functions" / "alarm-evaluator" / "src" / "handler.rs").read_text()
    notifier = (ROOT / "functions" / "notifier" / "src" / "handler.rs").read_text()
    for name, code in (("VerdictMetric", evaluator), ("PhaseMetric", notifier)):
        props = res[name]["Properties"]
        message = re.search(r'\$\.fields\.message = "([^"]+)"', props["FilterPattern"]).group(1)
        assert f'"{message}"' in code, (name, message)
        for dim in props["MetricTransformations"][0]["Dimensions"]:
            field = dim["Value"].removeprefix("$.fields.")
            assert re.search(rf"\b{field}\s*=", code), (name, field)


def test_the_witness_alarms_treat_missing_data_as_missing_on_ten_second_periods():
    """A dark witness must read as unknown (INSUFFICIENT_DATA), never as down: its alarms treat
    missing data as missing; they watch the witness's high-resolution metric on 10 s periods."""
    res = template(WITNESS)["Resources"]
    alarms = {k: r["Properties"] for k, r in res.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(alarms) == {"WitnessAlarm", "DrCanaryAlarm"}
    for name, a in alarms.items():
        assert a["TreatMissingData"] == "missing", name
        assert a["Namespace"] == "rds-failover/Witness" and a["MetricName"] == "PrimaryUp", name
        assert a["Period"] == 10 and a["EvaluationPeriods"] == a["DatapointsToAlarm"] == 3, name
        assert a["ComparisonOperator"] == "LessThanThreshold" and a["Threshold"] == 1, name
    fn = res["WitnessFunction"]["Properties"]
    assert fn["Events"]["EveryMinute"]["Properties"]["Schedule"] == "rate(1 minute)"
    assert fn["Timeout"] < 120, "six rounds 10 s apart fit one scheduled minute"


def test_the_witness_may_do_exactly_what_its_adapters_do():
    from infra import function_actions_from_code, function_actions_in_template

    code = function_actions_from_code("witness")
    assert code == {"cloudwatch:PutMetricData", "secretsmanager:GetSecretValue"}, code
    assert function_actions_in_template("WitnessFunction", WITNESS) == code


def _eval(node, params: dict, partition: str = "aws"):
    """Just enough of CloudFormation's intrinsics (Ref, Sub of pseudo parameters, Join, Split,
    If on the partition conditions) to read the dns-pinner's Route 53 statements."""
    conds = {"InAwsPartition": partition == "aws", "InChinaPartition": partition == "aws-cn"}
    if isinstance(node, list):
        return [_eval(v, params, partition) for v in node]
    if not isinstance(node, dict):
        return node
    [(k, v)] = node.items() if len(node) == 1 else [(None, None)]
    if k == "Ref":
        return params[v]
    if k == "Fn::Sub":
        return v.replace("${AWS::Partition}", partition)
    if k == "Fn::Join":
        return v[0].join(_eval(v[1], params, partition))
    if k == "Fn::Split":
        return _eval(v[1], params, partition).split(v[0])
    if k == "Fn::If":
        return _eval(v[1] if conds[v[0]] else v[2], params, partition)
    return {a: _eval(b, params, partition) for a, b in node.items()}


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_the_pinner_may_change_only_the_sites_writer_names_in_every_sites_zone(partition):
    cfg = json.loads((ROOT / "infra" / "sites.example.json").read_text())
    zones = [s["dns"]["zone_id"] for s in cfg["sites"]]
    names = [s["dns"]["name"] for s in cfg["sites"]]
    assert len(set(zones)) == 4, "the example spreads its sites over four zones"
    params = {"HostedZoneIds": zones, "WriterRecordNames": names,
              "SwitchMetricNamespace": "RdsFailover/Switch"}
    fn = template()["Resources"]["DnsPinnerFunction"]["Properties"]["Policies"][0]["Statement"]
    st = {s["Sid"]: _eval(s, params, partition) for s in fn}
    arns = [f"arn:{partition}:route53:::hostedzone/{z}" for z in zones]
    assert st["WriterRecordRead"]["Resource"] == arns
    change = st["WriterRecordChange"]
    assert change["Action"] == ["route53:ChangeResourceRecordSets"] and change["Resource"] == arns
    assert change["Condition"] == {
        "ForAllValues:StringEquals": {"route53:ChangeResourceRecordSetsNormalizedRecordNames": names}}
    assert not any("route53:ChangeResourceRecordSets" in s.get("Action", []) for sid, s in st.items()
                   if sid != "WriterRecordChange"), "no other statement grants record changes"


def test_the_data_plane_switch_alarm_latches_its_health_check_follows_it_and_the_pinner_may_put_only_its_namespace():
    """data-plane-switch (issue 14): the alarm in this stack's region (deployed in the DR region,
    docs/deploy.md) is ALARM at 1 and keeps its state without data; the health check follows it
    and keeps its last status; the pinner may PutMetricData in the tool's namespace only."""
    res = template()["Resources"]
    alarm, hc = res["ExampleSwitchAlarm"], res["ExampleSwitchHealthCheck"]
    assert alarm["Condition"] == hc["Condition"] == "HasExampleSwitch"
    a = alarm["Properties"]
    assert (a["Threshold"], a["ComparisonOperator"], a["TreatMissingData"]) == (1, "GreaterThanOrEqualToThreshold", "ignore")
    assert a["Namespace"] == {"Ref": "SwitchMetricNamespace"}
    c = hc["Properties"]["HealthCheckConfig"]
    assert c["Type"] == "CLOUDWATCH_METRIC" and c["InsufficientDataHealthStatus"] == "LastKnownStatus"
    assert c["AlarmIdentifier"] == {"Name": {"Ref": "ExampleSwitchAlarm"}, "Region": {"Ref": "AWS::Region"}}
    fn = res["DnsPinnerFunction"]["Properties"]["Policies"][0]["Statement"]
    cw = [s for s in fn if any(x.startswith("cloudwatch:") for x in s["Action"])]
    assert cw == [{"Sid": "DataPlaneSwitch", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": "*",
                   "Condition": {"StringEquals": {"cloudwatch:namespace": {"Ref": "SwitchMetricNamespace"}}}},
                  # unpin reads the switch alarm (named as the template names it) before it restores the records
                  {"Sid": "SwitchAlarmRead", "Effect": "Allow", "Action": ["cloudwatch:DescribeAlarms"],
                   "Resource": {"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:*:${AWS::AccountId}:alarm:rds-failover-*-serve-secondary"}}]
    assert a["AlarmName"] == {"Fn::Sub": "rds-failover-${ExampleSwitchSite}-serve-secondary"}, "matches SwitchAlarmRead"


def _statements(resource: str) -> dict[str, dict]:
    res = template()["Resources"][resource]["Properties"]
    return {s["Sid"]: s for s in res["Policies"][0]["Statement"]}


def _actions(st: dict) -> set[str]:
    a = st["Action"]
    return {a} if isinstance(a, str) else set(a)


def test_only_the_projects_functions_may_put_events_on_the_project_bus():
    """Same-account Allows need no resource policy, so the bus policy must be a Deny for every
    principal but the functions that emit domain events (EventBridge: "Permissions for Amazon
    EventBridge event buses" — identity and resource policies are evaluated together)."""
    res = template()["Resources"]
    [pol] = [r for r in res.values() if r["Type"] == "AWS::Events::EventBusPolicy"]
    p = pol["Properties"]
    assert p["EventBusName"] == {"Ref": "DomainBus"}
    st = p["Statement"]
    assert st["Effect"] == "Deny" and st["Principal"] == "*" and st["Action"] == "events:PutEvents"
    allowed = st["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    emitters = {name for name, r in res.items() if r["Type"] == "AWS::Serverless::Function"
                and any("events:PutEvents" in _actions(s) and s["Resource"] == {"Fn::GetAtt": ["DomainBus", "Arn"]}
                        for s in r["Properties"]["Policies"][0]["Statement"])}
    assert emitters == {"AlarmEvaluatorFunction", "ReplicaPromoterFunction", "DnsPinnerFunction"}
    assert allowed == [{"Fn::GetAtt": [f"{e}Role", "Arn"]} for e in
                       ["AlarmEvaluatorFunction", "ReplicaPromoterFunction", "DnsPinnerFunction"]]


def test_the_notifier_cannot_write_or_delete_a_sites_state_item():
    """IAM has no condition on a sort key (dynamodb:LeadingKeys is the partition key), so the
    notifier's claims live in a table of their own and the ledger is read-only to it."""
    st = _statements("NotifierFunction")
    writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
              "dynamodb:TransactWriteItems", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete", "dynamodb:PartiQLInsert"}
    ledger = {"Fn::GetAtt": ["LedgerTable", "Arn"]}
    on_ledger = [s for s in st.values() if s["Resource"] == ledger or ledger in (s["Resource"] if isinstance(s["Resource"], list) else [])]
    assert on_ledger and all(not (_actions(s) & writes) for s in on_ledger), on_ledger
    assert all(not any(a.endswith("*") for a in _actions(s)) for s in st.values())
    assert st["Dedupe"]["Resource"] == {"Fn::GetAtt": ["NoticeTable", "Arn"]}
    env = template()["Resources"]["NotifierFunction"]["Properties"]["Environment"]["Variables"]
    assert env["NOTICE_TABLE"] == {"Ref": "NoticeTable"}
    table = template()["Resources"]["NoticeTable"]["Properties"]
    assert table["SSESpecification"]["SSEEnabled"] and table["TimeToLiveSpecification"]["Enabled"]


MUTATING_RDS = {"rds:PromoteReadReplica", "rds:FailoverDBCluster", "rds:SwitchoverGlobalCluster",
                "rds:FailoverGlobalCluster", "rds:RebootDBInstance", "rds:CreateDBSnapshot",
                "rds:StopDBInstance", "rds:ModifyDBInstance", "rds:ModifyDBParameterGroup"}


def test_the_promoter_changes_only_candidates_and_the_fence_only_primaries():
    promoter = _statements("ReplicaPromoterFunction")
    for sid, s in promoter.items():
        if _actions(s) & MUTATING_RDS:
            assert s["Resource"] == {"Ref": "CandidateDbArns"}, sid
    assert _actions(promoter["Promote"]) == {"rds:PromoteReadReplica", "rds:FailoverDBCluster",
                                            "rds:SwitchoverGlobalCluster", "rds:FailoverGlobalCluster",
                                            "rds:RebootDBInstance"}
    evaluator = _statements("AlarmEvaluatorFunction")
    for sid, s in evaluator.items():
        mutating = _actions(s) & MUTATING_RDS
        if not mutating:
            continue
        if mutating == {"rds:ModifyDBParameterGroup"}:
            assert s["Resource"] == {"Ref": "FenceParameterGroupArns"}, sid
        elif sid == "FenceSnapshot":  # the fence's own snapshot names, not a database
            assert s["Resource"]["Fn::Sub"].endswith(":snapshot:*-fence-epoch-*"), sid
        else:
            assert s["Resource"] == {"Ref": "PrimaryDbArns"}, sid


def test_operators_read_or_act_through_iam_authenticated_urls_on_two_aliases():
    res = template()["Resources"]
    urls = {n: r["Properties"] for n, r in res.items() if r["Type"] == "AWS::Lambda::Url"}
    assert {u["Qualifier"]: u["AuthType"] for u in urls.values()} == {"read": "AWS_IAM", "operate": "AWS_IAM"}
    aliases = {r["Properties"]["Name"] for r in res.values() if r["Type"] == "AWS::Lambda::Alias"}
    assert aliases == {"read", "operate"}

    def url_resources(policy: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for s in res[policy]["Properties"]["PolicyDocument"]["Statement"]:
            rs = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            for a in _actions(s):
                if a.startswith("lambda:"):
                    out.setdefault(a, set()).update(r["Fn::Sub"].rsplit(":", 1)[1] for r in rs)
        return out

    both = {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    assert url_resources("OperatorReadOnly") == {a: {"read"} for a in both}
    assert url_resources("OperatorActions") == {a: {"read", "operate"} for a in both}
    outputs = template()["Outputs"]
    assert outputs["OperatorReadUrl"]["Value"] == {"Fn::GetAtt": ["EvaluatorReadUrl", "FunctionUrl"]}
    assert outputs["OperatorActionsUrl"]["Value"] == {"Fn::GetAtt": ["EvaluatorOperateUrl", "FunctionUrl"]}


def _alarms(path=TEMPLATE) -> dict[str, dict]:
    return {k: r["Properties"] for k, r in template(path)["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def test_every_function_has_errors_and_throttles_alarms_that_page_the_topic():
    res = template()["Resources"]
    functions = {k for k, r in res.items() if r["Type"] == "AWS::Serverless::Function"}
    assert functions == set(FUNCTION_OF_RESOURCE), functions
    watched: dict[str, set[str]] = {f: set() for f in functions}
    for name, a in _alarms().items():
        if a.get("Namespace") != "AWS/Lambda":
            continue
        dims = {d["Name"]: d["Value"] for d in a["Dimensions"]}
        fn = dims["FunctionName"]["Ref"]
        watched[fn].add(a["MetricName"])
        assert a["Statistic"] == "Sum" and a["Threshold"] == 0 and a["ComparisonOperator"] == "GreaterThanThreshold", name
        assert a["TreatMissingData"] == "notBreaching", f"{name}: no invocations is not an error"
    assert all(m == {"Errors", "Throttles"} for m in watched.values()), watched


def test_every_alarm_of_the_tool_notifies_the_alert_topic_directly():
    """The notifier may be what failed: the tool's own alarms publish to the topic themselves."""
    for name, a in _alarms().items():
        if name.startswith("Example"):
            continue  # the protected site's voters: read by the evaluator, not paging people
        assert a.get("AlarmActions") == [{"Ref": "AlertTopic"}], name
        assert "TreatMissingData" in a, f"{name}: what no data means is chosen, not defaulted"
    for name, a in _alarms(FORWARDER).items():
        assert a.get("AlarmActions") == [{"Ref": "ForwarderAlertTopic"}], name
        assert "TreatMissingData" in a, name


def test_a_missing_heartbeat_is_breaching_over_three_of_three_tick_periods():
    a = _alarms()["HeartbeatAlarm"]
    fn = template()["Resources"]["AlarmEvaluatorFunction"]["Properties"]
    assert fn["Events"]["Tick"]["Properties"]["Schedule"] == "rate(1 minute)" and a["Period"] == 60
    assert a["TreatMissingData"] == "breaching", "a missing heartbeat IS the failure"
    assert (a["Namespace"], a["MetricName"], a.get("Dimensions")) == ("rds-failover", "Heartbeat", None)
    assert a["Statistic"] == "Sum" and a["Threshold"] == 1 and a["ComparisonOperator"] == "LessThanThreshold"
    assert a["EvaluationPeriods"] == a["DatapointsToAlarm"] == 3


SELF_WATCH_ALARMS = ("HeartbeatAlarm", "PhaseOverdueAlarm", "OldPrimaryWritableAlarm", "SitesFailedAlarm")


def _golden_undimensioned_metrics() -> set[str]:
    """The metrics published with the empty dimension set in the EMF lines the evaluator's policy
    crate writes: tests/golden/selfwatch-emf.jsonl holds lines its unit tests produced, and those
    tests fail when the code writes anything else (failover_policy::selfwatch::tests)."""
    names = set()
    for line in (ROOT / "tests" / "golden" / "selfwatch-emf.jsonl").read_text().splitlines():
        doc = json.loads(line)
        for d in doc["_aws"]["CloudWatchMetrics"]:
            if d["Namespace"] == "rds-failover" and [] in d["Dimensions"]:
                names |= {m["Name"] for m in d["Metrics"] if m["Name"] in doc}
    return names


def test_the_self_watch_alarms_watch_metrics_the_evaluator_writes():
    """The names are the EMF members failover_policy::selfwatch writes without dimensions, as
    the golden lines show them (not a name found in the source)."""
    written = _golden_undimensioned_metrics()
    assert {"Heartbeat", "PhaseOverdue", "OldPrimaryWritable", "SitesFailed"} <= written, written
    for name in SELF_WATCH_ALARMS:
        a = _alarms()[name]
        assert a["Namespace"] == "rds-failover" and a["MetricName"] in written, (name, a["MetricName"], written)
        assert a.get("Dimensions") is None, f"{name}: published with an empty dimension set"
    for name in ("PhaseOverdueAlarm", "OldPrimaryWritableAlarm", "SitesFailedAlarm"):
        a = _alarms()[name]
        assert (a["Statistic"], a["Threshold"], a["ComparisonOperator"]) == \
            ("Maximum", 1, "GreaterThanOrEqualToThreshold"), name
        assert a["TreatMissingData"] == "ignore", f"{name}: must not read OK because ticks stopped"
    assert _alarms()["OldPrimaryWritableAlarm"]["AlarmActions"] == [{"Ref": "AlertTopic"}]
    code = (ROOT / "shared" / "policy" / "src" / "selfwatch.rs").read_text()
    body = template()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for metric in ("PhaseCode", "VotesDown", "VotesUnknown", "LagToRpo", "FenceState", "Protected"):
        assert f'{{rds-failover,Site}} MetricName=\\"{metric}\\"' in body, metric
        assert f'"{metric}"' in code, metric


def test_each_forwarder_rule_has_a_failed_invocations_alarm():
    fwd = template(FORWARDER)["Resources"]
    rules_ = {k for k, r in fwd.items() if r["Type"] == "AWS::Events::Rule"}
    watched = {a["Dimensions"][0]["Value"]["Ref"] for a in _alarms(FORWARDER).values()
               if (a["Namespace"], a["MetricName"]) == ("AWS/Events", "FailedInvocations")}
    assert watched == rules_ and rules_, (watched, rules_)


def test_the_config_bucket_is_versioned_private_encrypted_tls_only_and_each_function_reads_one_key():
    """Issue 15: the configuration lives in one object of a versioned bucket; the functions that
    read it may GetObject that key only, and a rejected version's log line becomes an alarm."""
    res = template()["Resources"]
    props = res["ConfigBucket"]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert all(props["PublicAccessBlockConfiguration"][k] for k in
               ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    [tls] = res["ConfigBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    for fn in ("AlarmEvaluatorFunction", "ReplicaPromoterFunction", "DnsPinnerFunction"):
        [read] = [st for p in res[fn]["Properties"]["Policies"] for st in p["Statement"]
                  if "s3:GetObject" in st["Action"]]
        assert read["Action"] == ["s3:GetObject"]
        assert read["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ConfigBucket}/${ConfigObjectKey}"}
    env = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert set(env) >= {"FAILOVER_CONFIG", "FAILOVER_CONFIG_S3", "FAILOVER_CONFIG_REFRESH_SECS"}
    code = (ROOT / "shared" / "adapters" / "src" / "config_store.rs").read_text()
    for fn in ("Evaluator", "Promoter", "Pinner"):
        pattern = res[f"ConfigRejected{fn}Metric"]["Properties"]["FilterPattern"]
        message = re.search(r'\$\.fields\.message = "([^"]+)"', pattern).group(1)
        assert f'"{message}"' in code, message
    assert res["ConfigRejectedAlarm"]["Properties"]["MetricName"] == "ConfigRejected"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_every_alarm_topics_key_lets_cloudwatch_publish(path):
    """CloudWatch alarms publish to an encrypted topic only if the key's policy grants
    cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey*; the AWS-managed alias/aws/sns
    cannot ("Amazon SNS → Encryption at rest → Key management"). Every topic an alarm notifies uses
    a customer-managed key of the same stack, rotated, whose policy grants it."""
    res = template(path)["Resources"]
    topics = {act["Ref"] for a in _alarms(path).values() for act in a.get("AlarmActions", [])}
    for topic in topics:
        key_ref = res[topic]["Properties"].get("KmsMasterKeyId")
        assert isinstance(key_ref, dict) and "Ref" in key_ref, f"{topic}: {key_ref!r} is not this stack's key"
        key = res[key_ref["Ref"]]
        assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True, topic
        grants = set()
        for s in key["Properties"]["KeyPolicy"]["Statement"]:
            services = s.get("Principal", {}).get("Service", [])
            services = services if isinstance(services, list) else [services]
            if s["Effect"] == "Allow" and "cloudwatch.amazonaws.com" in services:
                grants |= set(_actions(s))
        assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= grants, (topic, grants)


def test_each_forwarder_rule_retries_for_minutes_then_dead_letters_to_a_paging_queue():
    """EventBridge's default retry is 24 h / 185 attempts and FailedInvocations counts only
    permanent failures: without a RetryPolicy the forward-failure alarm is silent for a day."""
    fwd = template(FORWARDER)["Resources"]
    rules_ = {k: r for k, r in fwd.items() if r["Type"] == "AWS::Events::Rule"}
    queues = set()
    for name, rule in rules_.items():
        for t in rule["Properties"]["Targets"]:
            rp = t["RetryPolicy"]
            assert rp["MaximumEventAgeInSeconds"] <= 300 and rp["MaximumRetryAttempts"] >= 1, name
            queues.add(t["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0])
    [queue] = queues
    assert fwd[queue]["Type"] == "AWS::SQS::Queue" and "KmsMasterKeyId" in fwd[queue]["Properties"]
    [policy] = [r["Properties"] for r in fwd.values() if r["Type"] == "AWS::SQS::QueuePolicy"]
    [s] = policy["PolicyDocument"]["Statement"]
    assert s["Principal"] == {"Service": "events.amazonaws.com"} and s["Action"] == "sqs:SendMessage"
    assert {a["Fn::GetAtt"][0] for a in s["Condition"]["ArnEquals"]["aws:SourceArn"]} == set(rules_)
    [depth] = [a for a in _alarms(FORWARDER).values() if a["Namespace"] == "AWS/SQS"]
    assert depth["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    assert (depth["MetricName"], depth["Threshold"], depth["ComparisonOperator"]) == \
        ("ApproximateNumberOfMessagesVisible", 0, "GreaterThanThreshold")
