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
