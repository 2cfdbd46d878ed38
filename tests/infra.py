"""infra/template.yaml as the one source of truth for event routing.

`rules(params)` reads every EventBridge rule the template attaches to a function (SAM
`EventBridgeRule` events), resolves its `!Ref`s with deployment parameters, and returns the
patterns. The infra tests match recorded events against them, and the offline chain driver routes
domain events to the next function with the same patterns, using moto's EventBridge pattern
matcher (`moto.events.models.EventPattern`, the code moto's PutEvents runs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cfnlint.decode import decode
from moto.events.models import EventPattern

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
FORWARDER = ROOT / "infra" / "forwarder.yaml"
WITNESS = ROOT / "infra" / "witness.yaml"

FUNCTION_OF_RESOURCE = {
    "AlarmEvaluatorFunction": "alarm-evaluator",
    "ReplicaPromoterFunction": "replica-promoter",
    "DnsPinnerFunction": "dns-pinner",
    "NotifierFunction": "notifier",
}


@dataclass(frozen=True)
class Rule:
    function: str
    name: str
    bus: str  # "default" or "domain"
    pattern: dict

    def matches(self, event: dict) -> bool:
        return EventPattern.load(json.dumps(self.pattern)).matches_event(event)


def template(path: Path = TEMPLATE) -> dict:
    tpl, problems = decode(str(path))
    assert not problems, problems
    return tpl


def example_parameters(account: str = "123456789012") -> dict:
    """Parameters a user of infra/sites.example.json would deploy with."""
    cfg = json.loads((ROOT / "infra" / "sites.example.json").read_text())
    alarms, ids = [], []
    for s in cfg["sites"]:
        alarms += [a["name"] for a in s["alarms"]]
        ids += [s["primary"]["id"], *(c["id"] for c in s["candidates"])]
        ids += [v for k, v in s["engine"].items() if k.endswith("_id")]
    return {"AWS::AccountId": account, "ProtectedAlarmNames": alarms, "ProtectedResourceIds": sorted(set(ids))}


def _resolve(node, params: dict):
    if isinstance(node, dict):
        if set(node) == {"Ref"}:
            return params[node["Ref"]]
        return {k: _resolve(v, params) for k, v in node.items()}
    if isinstance(node, list):
        out = []
        for v in node:
            r = _resolve(v, params)
            out += r if isinstance(v, dict) and isinstance(r, list) else [r]
        return out
    return node


def rules(params: dict | None = None) -> list[Rule]:
    params = params or example_parameters()
    out = []
    for res_name, res in template()["Resources"].items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        for ev_name, ev in res["Properties"].get("Events", {}).items():
            if ev["Type"] != "EventBridgeRule":
                continue
            props = ev["Properties"]
            bus = "domain" if props.get("EventBusName") == {"Ref": "DomainBus"} else "default"
            out.append(Rule(FUNCTION_OF_RESOURCE[res_name], ev_name, bus, _resolve(props["Pattern"], params)))
    return out


def targets(event: dict, bus: str, params: dict | None = None) -> set[str]:
    """The functions EventBridge would invoke for `event` put on `bus`."""
    return {r.function for r in rules(params) if r.bus == bus and r.matches(event)}


# ------------------------------------------------------------------ IAM derived from the code

ADAPTER_SOURCES = [ROOT / "shared" / "adapters" / "src" / f for f in ("aws.rs", "config_store.rs", "control.rs", "dns.rs", "fence.rs", "notify.rs", "recheck.rs", "switch.rs", "witness.rs")]
# Crate name in `aws_sdk_<crate>` -> (botocore service model, IAM action prefix).
SDK_SERVICES = {
    "rds": ("rds", "rds"), "cloudwatch": ("cloudwatch", "cloudwatch"), "dynamodb": ("dynamodb", "dynamodb"),
    "eventbridge": ("events", "events"), "secretsmanager": ("secretsmanager", "secretsmanager"),
    "route53": ("route53", "route53"), "sns": ("sns", "sns"), "sqs": ("sqs", "sqs"), "s3": ("s3", "s3"),
}


def _block(text: str, start: int) -> str:
    """The brace-balanced block that opens at or after `start`."""
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j + 1]
    raise ValueError("unbalanced")


def adapter_operations() -> dict[str, set[str]]:
    """For every AWS adapter struct: the IAM actions of the SDK operations its code sends, found
    as `client.<operation>()` calls in its impl blocks and checked against botocore's model."""
    import re

    import botocore.session

    session = botocore.session.get_session()
    ops = {}
    for crate, (model, _) in SDK_SERVICES.items():
        names = session.get_service_model(model).operation_names
        from botocore import xform_name
        ops[crate] = {xform_name(n): n for n in names}
    out: dict[str, set[str]] = {}
    for src in ADAPTER_SOURCES:
        text = src.read_text()
        for m in re.finditer(r"^pub struct (\w+) \{", text, re.M):
            name, body = m.group(1), _block(text, m.start())
            crates = set(re.findall(r"aws_sdk_(\w+)::Client", body)) | ({"rds"} if "RdsClients" in body else set())
            if len(crates) != 1:  # not an adapter (e.g. AwsClients, the client factory)
                continue
            [crate] = crates
            calls = set()
            for im in re.finditer(rf"^impl(?:<[^>]*>)? (?:\w+ for )?{name} \{{", text, re.M):
                calls |= set(re.findall(r"\.(\w+)\(\)", _block(text, im.start())))
            prefix = SDK_SERVICES[crate][1]
            out[name] = {f"{prefix}:{ops[crate][c]}" for c in calls if c in ops[crate]}
    return out


def function_actions_from_code(function: str) -> set[str]:
    """The IAM actions a function's adapters need: the adapters its setup.rs builds."""
    import re

    setup = (ROOT / "functions" / function / "src" / "setup.rs").read_text()
    adapters = adapter_operations()
    used = set(re.findall(r"\b(\w+)::new\(", setup)) & set(adapters)
    return set().union(*(adapters[a] for a in used)) if used else set()


def function_actions_in_template(resource: str, path: Path = TEMPLATE) -> set[str]:
    actions = set()
    for policy in template(path)["Resources"][resource]["Properties"].get("Policies", []):
        for st in policy.get("Statement", []):
            a = st["Action"]
            actions |= set(a if isinstance(a, list) else [a])
    # KMS is how AWS encrypts the ledger/topic/queues, not an SDK call of ours.
    return {a for a in actions if not a.startswith("kms:")}
