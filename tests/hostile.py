"""The hostile-input corpus: the hand-written cases of events/hostile/ plus cases generated, at test
time, by mutating the genuine recorded deliveries of events/ (events/MANIFEST.json) and the
recorded domain events of events/domain/.

Every case is something the functions must refuse: a typed error (`BadInput`, or the runtime's
deserialize error for bytes that are not JSON) or an explicit ignore/fence naming why. Each case
carries, per function it is delivered to, the outcome it must get:

- `Deserialize`: not JSON the runtime can read (truncated, lone surrogate, past the nesting limit);
- `BadInput`: the function's own typed error naming the field;
- `ignore:<reason>`: the evaluator's verdict (`foreign-account`, `stale`, `unknown-resource`, ...);
- `fenced` / `fenced:<reason>`: the replica-promoter's answer; `ignored`: the dns-pinner's.

The generator is deterministic: `generated(seed)` yields the same cases for the same seed. Large
bodies (1 MiB and more) are built here, never committed.

`python tests/hostile.py` prints the case count per family.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
HOSTILE = EVENTS / "hostile"
MANIFEST = json.loads((EVENTS / "MANIFEST.json").read_text())
ACCOUNT = "123456789012"
# The evaluator's pinned clock in the hostile suite: the recorded deliveries' hour.
CLOCK = dt.datetime(2026, 11, 24, 3, 5, tzinfo=dt.timezone.utc)
SEED = 6

EVALUATOR = "alarm-evaluator"
PROMOTER, PINNER, NOTIFIER = "replica-promoter", "dns-pinner", "notifier"
DOMAIN_FUNCTIONS = (PROMOTER, PINNER, NOTIFIER)

# Characters that make an identifier look like, but not be, a configured one.
ODD = [
    "\u0000", "\u202e", "\u200b", "\u200d", "\ufeff", "\u00ad", "\u0301", "\U0001F4A5",
    "\U0001F3F4\u200d\u2620\ufe0f", "\u05d0", "\u0627", "\u2028", "\n", "\t", "\u00a0", "\uffff",
]
# A different letter that renders the same (Cyrillic/Greek homoglyphs of Latin letters).
HOMOGLYPHS = {"o": "\u043e", "a": "\u0430", "e": "\u0435", "i": "\u0456", "p": "\u0440", "c": "\u0441"}
MIB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    body: bytes
    # function -> the outcome it must get
    expect: dict[str, str]
    note: str = ""


def hand_written() -> list[Case]:
    """The files of events/hostile/, with the outcomes written in events/hostile/CASES.json."""
    index = json.loads((HOSTILE / "CASES.json").read_text())
    listed = {c["file"] for c in index}
    on_disk = {p.name for p in HOSTILE.iterdir() if p.name not in ("CASES.json", "README.md")}
    assert listed == on_disk, f"events/hostile/CASES.json and the directory disagree: {listed ^ on_disk}"
    return [
        Case(f"hand/{c['file']}", c["family"], (HOSTILE / c["file"]).read_bytes(), c["expect"], c["note"])
        for c in index
    ]


# ---------------------------------------------------------------------------------- helpers


def _genuine() -> list[tuple[str, dict, dict]]:
    """(file, manifest entry, parsed body) of every recorded delivery the replay test accepts."""
    out = []
    for e in MANIFEST:
        if e["expect"] != "signal" or any(m in e["file"] for m in ("foreign", "forged", "unknown", "stale", "future", "attacker")):
            continue
        out.append((e["file"], e, json.loads((EVENTS / e["file"]).read_text())))
    return out


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _enc(body) -> bytes:
    return json.dumps(body).encode()


def _sns_message(body: dict) -> dict:
    return json.loads(body["Records"][0]["Sns"]["Message"])


def _set_sns_message(body: dict, msg: dict) -> None:
    body["Records"][0]["Sns"]["Message"] = json.dumps(msg)


def _set_time(shape: str, body: dict, t: dt.datetime) -> bool:
    """Re-dates a delivery; False for shapes that carry no time (direct operator commands)."""
    if shape.startswith("eventbridge") or shape == "scheduled":
        body["time"] = _iso(t)
    elif shape == "alarm-action":
        body["time"] = t.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    elif shape.startswith("sns"):
        body["Records"][0]["Sns"]["Timestamp"] = t.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    else:
        return False
    return True


def _arn_breaking(c: str) -> bool:
    """An ASCII control character: an ARN with one in its resource is not an ARN (BadInput
    naming the ARN field); CloudWatch allows any other character in an alarm name."""
    return ord(c) < 0x20 or ord(c) == 0x7F


def _renamed_arn(arn: str, new: str) -> str:
    """The ARN with its last component (alarm name, DB id) replaced by `new`."""
    return arn.rsplit(":", 1)[0] + ":" + new


def _rename(shape: str, body: dict, f, consistent: bool = True) -> str | None:
    """Applies `f` to the identifier that routes the delivery (alarm name, RDS source, site) —
    and, when `consistent`, to every other field that names it (the alarm or resource ARN, the
    envelope's resources, the console link), so the delivery still agrees with itself. Returns
    the answer the renamed delivery must get: the routing guard's ignore (`unknown-resource`,
    `unknown-site`) when consistent, `BadInput` when the name breaks its ARN or when only the
    name changed (the payload then contradicts itself; issue 17); None if the shape has none."""
    new_name = None

    def g(s):
        nonlocal new_name
        new_name = f(s)
        return new_name

    if shape == "eventbridge-alarm":
        body["detail"]["alarmName"] = g(body["detail"]["alarmName"])
        if consistent and body.get("resources"):
            body["resources"] = [_renamed_arn(body["resources"][0], new_name)]
    elif shape == "alarm-action":
        body["alarmData"]["alarmName"] = g(body["alarmData"]["alarmName"])
        if consistent and body.get("alarmArn"):
            body["alarmArn"] = _renamed_arn(body["alarmArn"], new_name)
    elif shape == "sns-alarm":
        m = _sns_message(body)
        m["AlarmName"] = g(m["AlarmName"])
        if consistent and m.get("AlarmArn"):
            m["AlarmArn"] = _renamed_arn(m["AlarmArn"], new_name)
        _set_sns_message(body, m)
    elif shape == "eventbridge-rds":
        d = body["detail"]
        new = g(d["SourceIdentifier"])
        if consistent:
            if d.get("SourceArn"):
                d["SourceArn"] = _renamed_arn(d["SourceArn"], new)
            if body.get("resources"):
                body["resources"] = [_renamed_arn(body["resources"][0], new)]
        d["SourceIdentifier"] = new
    elif shape == "sns-rds":
        m = _sns_message(body)
        new = g(m["Source ID"])
        if consistent:
            if m.get("Source ARN"):
                m["Source ARN"] = _renamed_arn(m["Source ARN"], new)
            if m.get("Identifier Link"):
                m["Identifier Link"] = m["Identifier Link"].rsplit("id=", 1)[0] + "id=" + new
        m["Source ID"] = new
        _set_sns_message(body, m)
    elif shape == "operator":
        body["site"] = f(body["site"])
        return "unknown-site"
    elif shape == "eventbridge-operator":
        body["detail"]["site"] = f(body["detail"]["site"])
        return "unknown-site"
    else:
        return None
    if not consistent or (any(_arn_breaking(c) for c in new_name) and _has_arn(shape, body)):
        return "BadInput"
    return "unknown-resource"


def _answer(reason: str) -> str:
    """The expected evaluator answer for a `_rename` result."""
    return reason if reason == "BadInput" else f"ignore:{reason}"


def _has_arn(shape: str, body: dict) -> bool:
    """Whether the delivery names its subject by ARN (the ARN is then the identity)."""
    if shape == "eventbridge-alarm" or shape == "eventbridge-rds":
        return bool(body.get("resources")) or bool(body["detail"].get("SourceArn"))
    if shape == "scheduled":
        return bool(body.get("resources"))
    if shape == "alarm-action":
        return bool(body.get("alarmArn"))
    if shape == "sns-alarm":
        return bool(_sns_message(body).get("AlarmArn"))
    if shape == "sns-rds":
        return bool(_sns_message(body).get("Source ARN"))
    return False


def _with_account(arn: str, account: str) -> str:
    parts = arn.split(":")
    parts[4] = account
    return ":".join(parts)


def _set_account(shape: str, body: dict, account: str, consistent: bool = True) -> bool:
    """Moves the delivery to another account: the account field and, when `consistent`, the
    account of every ARN that names the subject (else the payload contradicts itself)."""
    if shape.startswith("eventbridge") or shape == "scheduled":
        body["account"] = account
        if consistent and shape in ("eventbridge-alarm", "eventbridge-rds", "scheduled"):
            body["resources"] = [_with_account(r, account) for r in body.get("resources") or []]
            if shape == "eventbridge-rds" and body["detail"].get("SourceArn"):
                body["detail"]["SourceArn"] = _with_account(body["detail"]["SourceArn"], account)
    elif shape == "alarm-action":
        body["accountId"] = account
        if consistent and body.get("alarmArn"):
            body["alarmArn"] = _with_account(body["alarmArn"], account)
    elif shape == "sns-alarm":
        m = _sns_message(body)
        m["AWSAccountId"] = account
        if consistent and m.get("AlarmArn"):
            m["AlarmArn"] = _with_account(m["AlarmArn"], account)
        _set_sns_message(body, m)
    elif shape == "sns-rds":
        m = _sns_message(body)
        # The Source ARN is the only account an RDS notification names (the topic's is where it
        # was published): there is no second field to contradict it.
        if not m.get("Source ARN") or not consistent:
            return False
        parts = m["Source ARN"].split(":")
        parts[4] = account
        m["Source ARN"] = ":".join(parts)
        _set_sns_message(body, m)
    else:
        return False
    return True


def _set_region(shape: str, body: dict, region: str) -> bool:
    """Changes only the region field of a delivery whose ARN names a region (a contradiction)."""
    if shape in ("eventbridge-alarm", "scheduled") and body.get("resources"):
        body["region"] = region
    elif shape == "alarm-action" and body.get("alarmArn"):
        body["region"] = region
    elif shape == "eventbridge-rds" and body["detail"].get("SourceArn", "").split(":")[3:4] not in ([], [""]):
        body["region"] = region
    else:
        return False
    return True


# Spellings of an instant that AWS does not use (issue 17): whitespace inside (as a documentation
# page's typesetting put it into a runtime's fixtures), an RFC 3339 colon offset, no zone, lower
# case, a space before `T`, ten fraction digits, a zone on the RDS notification's zone-less time.
LOOSE_TIMES = [
    "2026-11-24T03: 00: 00.490+0000",
    "2026-11-24T03:00:00+00:00",
    "2026-11-24 T03:00:00Z",
    " 2026-11-24T03:00:00Z",
    "2026-11-24T03:00:00",
    "2026-11-24t03:00:00z",
    "2026-11-24T03:00:00.0000000000Z",
    "2026-11-24 03:00:00.123",
]
LOOSE_RDS_EVENT_TIMES = ["2026-11-24T03:00:00.123Z", "2026-11-24 03: 00:00.123", "2026-11-24 03:00:00.123+0000"]


def _time_fields(shape: str, body: dict) -> list[tuple[str, object]]:
    """(name, setter) for every time field of the delivery the evaluator reads."""
    out = []

    def put(d, k):
        def set_(v, d=d, k=k):
            d[k] = v
        return set_

    if shape.startswith("eventbridge") or shape == "scheduled":
        out.append(("time", put(body, "time")))
        d = body.get("detail") or {}
        if shape == "eventbridge-alarm":
            for k in ("state", "previousState"):
                if k in d:
                    out.append((f"detail.{k}.timestamp", put(d[k], "timestamp")))
        if shape == "eventbridge-rds" and "Date" in d:
            out.append(("detail.Date", put(d, "Date")))
    elif shape == "alarm-action":
        out.append(("time", put(body, "time")))
        for k in ("state", "previousState"):
            if k in body["alarmData"]:
                out.append((f"alarmData.{k}.timestamp", put(body["alarmData"][k], "timestamp")))
    elif shape.startswith("sns"):
        out.append(("Records[0].Sns.Timestamp", put(body["Records"][0]["Sns"], "Timestamp")))
        m = _sns_message(body)
        for k in ("StateChangeTime", "Event Time"):
            if k in m:
                def set_msg(v, k=k):
                    mm = _sns_message(body)
                    mm[k] = v
                    _set_sns_message(body, mm)
                out.append((k, set_msg))
    return out


def _pad(shape: str, body: dict, n: int) -> None:
    """Grows a free-text field of the delivery by `n` characters (the rest stays genuine)."""
    filler = ("x" * 1023 + " ") * (n // 1024 + 1)
    filler = filler[:n]
    if shape == "eventbridge-alarm":
        body["detail"]["state"]["reason"] += filler
    elif shape == "alarm-action":
        body["alarmData"]["state"]["reason"] += filler
    elif shape == "eventbridge-rds":
        body["detail"]["Message"] += filler
    elif shape.startswith("sns"):
        m = _sns_message(body)
        key = "NewStateReason" if "AlarmName" in m else "Event Message"
        m[key] = m.get(key, "") + filler
        _set_sns_message(body, m)
    elif shape == "operator":
        body["reason"] = (body.get("reason") or "drill") + filler
    elif shape == "eventbridge-operator":
        body["detail"]["reason"] = (body["detail"].get("reason") or "drill") + filler
    else:  # scheduled
        body["detail"] = {"note": filler}


def _nest(value, depth: int, rng: random.Random):
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"v": value}
    return value


# Required fields per shape, as paths; the evaluator must answer BadInput when one is missing or
# has the wrong JSON type.
REQUIRED = {
    "eventbridge-alarm": [("id",), ("time",), ("detail", "alarmName"), ("detail", "state"), ("detail", "state", "value")],
    # `detail.EventID` is optional (older documented shapes omit it; issue 17): see the
    # `missing-optional` family. A wrong-typed one is still BadInput (WRONG_TYPE_ONLY).
    "eventbridge-rds": [("id",), ("time",), ("detail", "SourceIdentifier"), ("detail", "SourceType")],
    "eventbridge-operator": [("id",), ("time",), ("detail", "command"), ("detail", "site")],
    "alarm-action": [("time",), ("alarmData", "alarmName"), ("alarmData", "state")],
    "operator": [("command",), ("site",)],
    "scheduled": [("id",), ("time",)],
}
# Optional fields that, when present, must still have their type.
WRONG_TYPE_ONLY = {"eventbridge-rds": [("detail", "EventID"), ("detail", "SourceArn")]}
WRONG_VALUES = [1, -1.5, True, [], {}, ["x"], {"value": "ALARM"}]


def _at(body: dict, path: tuple[str, ...]):
    for k in path[:-1]:
        body = body[k]
    return body, path[-1]


# ---------------------------------------------------------------------------------- generated


def generated(seed: int = SEED) -> list[Case]:
    rng = random.Random(seed)
    cases: list[Case] = []
    add = cases.append
    E = EVALUATOR
    genuine = _genuine()
    seen: dict[str, int] = {}

    for file, entry, body in genuine:
        shape, stem = entry["shape"], file.removesuffix(".json")
        raw = (EVENTS / file).read_bytes()

        # Truncated: cut at random offsets (never a prefix that is still valid JSON).
        for cut in rng.sample(range(1, len(raw) - 1), 1):
            try:
                json.loads(raw[:cut])
                continue
            except ValueError:
                pass
            add(Case(f"gen/truncated/{stem}@{cut}", "truncated", raw[:cut], {E: "Deserialize"}))

        # Replayed days later, and dated in the future.
        days = rng.randint(1, 30)
        b = copy.deepcopy(body)
        if _set_time(shape, b, CLOCK - dt.timedelta(days=days, minutes=rng.randint(0, 59))):
            add(Case(f"gen/stale/{stem}-{days}d", "stale", _enc(b), {E: "ignore:stale"}))
            b = copy.deepcopy(body)
            ahead = rng.choice([dt.timedelta(hours=2), dt.timedelta(days=1), dt.timedelta(days=400)])
            _set_time(shape, b, CLOCK + ahead)
            add(Case(f"gen/future/{stem}+{ahead.days}d{ahead.seconds}s", "future", _enc(b), {E: "ignore:from-the-future"}))

        # Foreign account.
        b = copy.deepcopy(body)
        acct = str(rng.randrange(10**11, 10**12))
        if acct != ACCOUNT and _set_account(shape, b, acct):
            add(Case(f"gen/foreign-account/{stem}-{acct}", "foreign", _enc(b), {E: "ignore:foreign-account"}))

        # Self-contradicting identities (issue 17): one identity field changed, the ARN left as
        # recorded. Refused naming both fields, before any AWS call.
        if _has_arn(shape, body):
            b = copy.deepcopy(body)
            if _set_account(shape, b, acct, consistent=False):
                add(Case(f"gen/contradiction/{stem}-account-{acct}", "contradiction", _enc(b), {E: "BadInput"}))
            b = copy.deepcopy(body)
            if _rename(shape, b, lambda s: s + "-v2", consistent=False):
                add(Case(f"gen/contradiction/{stem}-name", "contradiction", _enc(b), {E: "BadInput"}))
            b = copy.deepcopy(body)
            region = rng.choice(["eu-central-1", "ap-southeast-2", "us-west-1"])
            if _set_region(shape, b, region):
                add(Case(f"gen/contradiction/{stem}-region-{region}", "contradiction", _enc(b), {E: "BadInput"}))

        # Timestamps in spellings AWS does not use, in one of the delivery's time fields.
        fields = _time_fields(shape, body)
        if fields:
            b = copy.deepcopy(body)
            name, _ = rng.choice(fields)
            spelling = rng.choice(LOOSE_RDS_EVENT_TIMES if name == "Event Time" else LOOSE_TIMES)
            dict(_time_fields(shape, b))[name](spelling)
            add(Case(f"gen/time-dialect/{stem}-{name}={spelling.strip()}", "time-dialect", _enc(b), {E: "BadInput"}))

        # RDS identifiers with a prefix: the documented `rds:` changes nothing (a database no site
        # protects stays unknown); any other prefix is another name, which the ARN contradicts.
        if shape == "eventbridge-rds":
            b = copy.deepcopy(body)
            _rename(shape, b, lambda s: "shadow-" + s)
            b["detail"]["SourceIdentifier"] = "rds:" + b["detail"]["SourceIdentifier"]
            add(Case(f"gen/prefix/{stem}-rds-prefix-unprotected", "prefix", _enc(b), {E: "ignore:unknown-resource"}))
            b = copy.deepcopy(body)
            prefix = rng.choice(["RDS:", "aurora:", "rds: ", "rds::", "arn:"])
            b["detail"]["SourceIdentifier"] = prefix + b["detail"]["SourceIdentifier"]
            add(Case(f"gen/prefix/{stem}-{prefix.strip()}", "prefix", _enc(b), {E: "BadInput"}))

        # Optional fields missing (issue 17): an RDS event without its event id is "unidentified",
        # not an error — here about a database no site protects, or replayed late, so it is
        # ignored before any AWS call; an alarm without its previous state is still an alarm.
        if shape in ("eventbridge-rds", "sns-rds"):
            b = copy.deepcopy(body)
            _rename(shape, b, lambda s: s + "-gone")
            if shape == "eventbridge-rds":
                b["detail"].pop("EventID", None)
            else:
                m = _sns_message(b)
                m.pop("Event ID", None)
                _set_sns_message(b, m)
            add(Case(f"gen/missing-optional/{stem}-no-event-id-unprotected", "missing-optional", _enc(b), {E: "ignore:unknown-resource"}))
            b = copy.deepcopy(body)
            if shape == "eventbridge-rds":
                b["detail"].pop("EventID", None)
                b["detail"].pop("SourceArn", None)
            else:
                m = _sns_message(b)
                m.pop("Event ID", None)
                m.pop("Source ARN", None)
                _set_sns_message(b, m)
            _set_time(shape, b, CLOCK - dt.timedelta(days=2))
            add(Case(f"gen/missing-optional/{stem}-no-event-id-no-arn-stale", "missing-optional", _enc(b), {E: "ignore:stale"}))
        if shape in ("eventbridge-alarm", "alarm-action"):
            b = copy.deepcopy(body)
            (b["detail"] if shape == "eventbridge-alarm" else b["alarmData"]).pop("previousState", None)
            _set_time(shape, b, CLOCK - dt.timedelta(days=3))
            add(Case(f"gen/missing-optional/{stem}-no-previous-state-stale", "missing-optional", _enc(b), {E: "ignore:stale"}))

        # Odd unicode, homoglyphs and overlong names in the routing identifier (two of the four
        # kinds per delivery, drawn by the seed).
        kinds = rng.sample(["odd", "homoglyph", "overlong", "surrogate"], 2)
        for i in range(1 if "odd" in kinds else 0):
            ch = rng.choice(ODD)
            b = copy.deepcopy(body)
            where = rng.choice(["prefix", "suffix", "middle"])

            def odd(s, ch=ch, where=where):
                if where == "prefix":
                    return ch + s
                if where == "suffix":
                    return s + ch
                return s[: len(s) // 2] + ch + s[len(s) // 2:]

            reason = _rename(shape, b, odd)
            if reason:
                add(Case(f"gen/unicode/{stem}-{i}-{where}-U+{ord(ch[0]):04X}", "unicode", _enc(b), {E: _answer(reason)}))
        b = copy.deepcopy(body)

        def homoglyph(s):
            letters = [i for i, c in enumerate(s) if c in HOMOGLYPHS]
            i = rng.choice(letters)
            return s[:i] + HOMOGLYPHS[s[i]] + s[i + 1:]

        reason = _rename(shape, b, homoglyph) if "homoglyph" in kinds else None
        if reason:
            add(Case(f"gen/unicode/{stem}-homoglyph", "unicode", _enc(b), {E: _answer(reason)}))
        b = copy.deepcopy(body)
        reason = _rename(shape, b, lambda s: s + "-" + "\U0001F525" * rng.randint(300, 3000)) if "overlong" in kinds else None
        if reason:
            add(Case(f"gen/unicode/{stem}-overlong", "unicode", _enc(b), {E: _answer(reason)}))

        # Escaped lone surrogates anywhere a string is: the runtime cannot decode them.
        if "surrogate" in kinds:
            text = raw.decode()
            quotes = [i for i, c in enumerate(text) if c == '"' and text[i - 1] != "\\"]
            q = rng.choice(quotes[1::2] or quotes)
            sur = rng.choice(["\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\ud83d"])
            add(Case(f"gen/unicode/{stem}-lone-surrogate@{q}", "unicode", (text[:q] + sur + text[q:]).encode(), {E: "Deserialize"}))

        # Wrong types and missing required fields (the first two deliveries of each shape).
        seen[shape] = seen.get(shape, 0) + 1
        for path in REQUIRED.get(shape, []) if seen[shape] <= 2 else []:
            b = copy.deepcopy(body)
            parent, key = _at(b, path)
            del parent[key]
            add(Case(f"gen/missing-field/{stem}-{'.'.join(path)}", "missing-field", _enc(b), {E: "BadInput"}))
            value = rng.choice(WRONG_VALUES)
            b = copy.deepcopy(body)
            parent, key = _at(b, path)
            parent[key] = value
            add(Case(f"gen/wrong-type/{stem}-{'.'.join(path)}={json.dumps(value)}", "wrong-type", _enc(b), {E: "BadInput"}))
        for path in WRONG_TYPE_ONLY.get(shape, []) if seen[shape] <= 2 else []:
            b = copy.deepcopy(body)
            parent, key = _at(b, path)
            if key not in parent:
                continue
            value = rng.choice(WRONG_VALUES)
            parent[key] = value
            add(Case(f"gen/wrong-type/{stem}-{'.'.join(path)}={json.dumps(value)}", "wrong-type", _enc(b), {E: "BadInput"}))

    # Large: 1 MiB and more of otherwise genuine deliveries, one of each shape.
    by_shape: dict[str, tuple[str, dict, dict]] = {}
    for g in genuine:
        by_shape.setdefault(g[1]["shape"], g)
    for shape, (file, _entry, body) in sorted(by_shape.items()):
        for size in (MIB, 3 * MIB):
            b = copy.deepcopy(body)
            _pad(shape, b, size)
            add(Case(f"gen/large/{file.removesuffix('.json')}-{size // MIB}MiB", "large", _enc(b), {E: "BadInput"}))

    # Trailing data: a genuine delivery followed by another one (or by a stray brace). The Lambda
    # runtime reads the first JSON value and drops the rest; the functions must refuse the whole.
    shapes = sorted(by_shape)
    for shape in shapes:
        file, _entry, body = by_shape[shape]
        tail = rng.choice(["}", "]", "\n{", " null", json.dumps(by_shape[rng.choice(shapes)][2])])
        add(Case(f"gen/trailing-data/{file.removesuffix('.json')}+{json.dumps(tail[:8])}", "trailing-data", _enc(body) + tail.encode(), {E: "BadInput"}))

    # Deep nesting: past the runtime's limit anywhere, and under it in a routing field.
    for shape, (file, _entry, body) in sorted(by_shape.items()):
        stem = file.removesuffix(".json")
        for depth in (129, 1000, 50000):
            b = copy.deepcopy(body)
            b["padding"] = "@@NEST@@"
            text = _enc(b).decode().replace('"@@NEST@@"', "[" * depth + "]" * depth)
            add(Case(f"gen/deep-nesting/{stem}-{depth}", "deep-nesting", text.encode(), {E: "Deserialize"}))
        if shape in REQUIRED:
            b = copy.deepcopy(body)
            path = REQUIRED[shape][-1]
            parent, key = _at(b, path)
            parent[key] = _nest(parent[key], rng.randint(60, 110), rng)
            add(Case(f"gen/deep-nesting/{stem}-{'.'.join(path)}", "deep-nesting", _enc(b), {E: "BadInput"}))

    # Forged RDS events naming databases the config does not protect (ARN consistent).
    rds_bases = [g for g in genuine if g[1]["shape"] in ("eventbridge-rds", "sns-rds")]
    for i in range(12):
        file, entry, body = rng.choice(rds_bases)
        b = copy.deepcopy(body)
        name = rng.choice(["analytics", "orders", "billing", "payments", "legacy"]) + "-" + rng.choice(["primary", "db", "replica-9", "cluster-old", "writer"]) + f"-{i}"
        _rename(entry["shape"], b, lambda s, name=name: name)
        add(Case(f"gen/forged-rds/{file.removesuffix('.json')}-{name}", "forged-rds", _enc(b), {E: "ignore:unknown-resource"}))

    # Operator commands for unknown sites, and RPO overrides without a (visible) reason.
    for i in range(10):
        site = rng.choice(["Orders", "orders ", " orders", "orders-eu", "billing2", "*", "", "../orders", "payments;", "inventory\u0000"])
        cmd = rng.choice(["failover", "approve", "pause", "resume", "status"])
        body = {"command": cmd, "site": site, "operator": "mallory", "reason": "hostile suite"}
        if cmd == "approve":
            body["epoch"] = 1  # an approve without its epoch is BadInput before any routing
        want = "BadInput" if not site.strip() else "ignore:unknown-site"
        add(Case(f"gen/operator/unknown-site-{i}-{cmd}", "operator", _enc(body), {E: want}))
    # Flags that are recorded in the ledger need a reason; commands on one incident need its epoch.
    for i, extra in enumerate([{"command": "failover", "force": True}, {"command": "failover", "override_cooldown": True},
                               {"command": "approve"}, {"command": "abort", "reason": "x"}, {"command": "abort", "epoch": 1}]):
        body = {"site": rng.choice(["orders", "billing", "payments", "inventory"]), "operator": "mallory"} | extra
        add(Case(f"gen/operator/needs-reason-or-epoch-{i}", "operator", _enc(body), {E: "BadInput"}))
    for i, reason in enumerate([None, "", " ", "\t", "\n\n", "\u200b", "\u2060", "\ufeff", "\u00a0\u3000", "\u202e\u202c"]):
        body = {"command": "failover", "site": rng.choice(["orders", "billing", "payments", "inventory"]), "operator": "mallory", "override_rpo": True}
        if reason is not None:
            body["reason"] = reason
        add(Case(f"gen/operator/override-no-reason-{i}", "operator", _enc(body), {E: "BadInput"}))

    cases.extend(_domain(rng))
    return cases


def _domain(rng: random.Random) -> list[Case]:
    """Forged and malformed FailoverDecided / PromotionContinued / ReplicaPromoted / DnsPinned."""
    out: list[Case] = []
    all_bad = {f: "BadInput" for f in DOMAIN_FUNCTIONS}
    for path in sorted((EVENTS / "domain").glob("*.json")):
        stem = path.stem
        raw = path.read_bytes()
        body = json.loads(raw)
        dtype = body["detail-type"]
        if dtype not in ("FailoverDecided", "PromotionContinued", "ReplicaPromoted", "DnsPinned"):
            continue
        promotes = dtype in ("FailoverDecided", "PromotionContinued")
        for cut in rng.sample(range(1, len(raw) - 1), 1):
            out.append(Case(f"gen/domain/truncated/{stem}@{cut}", "domain-malformed", raw[:cut], {f: "Deserialize" for f in DOMAIN_FUNCTIONS}))
        for field, values in {
            "epoch": ["1", -1, 1.5, 2**64, None],
            "site": [1, None, ["orders"]],
            "event_type": ["failover-decided", "Promote", 3],
            "occurred_at": ["yesterday", 1795489260, "2026-13-45T99:00:00Z"],
            "phase": ["hacked", 0],
            "verdict": ["ok", None],
        }.items():
            b = copy.deepcopy(body)
            b["detail"][field] = rng.choice(values)
            out.append(Case(f"gen/domain/wrong-type/{stem}-{field}={json.dumps(b['detail'][field])}", "domain-malformed", _enc(b), all_bad))
        for field in rng.sample(["site", "epoch", "event_type", "verdict", "occurred_at", "phase"], 3):
            b = copy.deepcopy(body)
            del b["detail"][field]
            out.append(Case(f"gen/domain/missing-field/{stem}-{field}", "domain-malformed", _enc(b), all_bad))
        for source in rng.sample(["aws.rds", "rds-failover.operator", "rds-failover ", "RDS-FAILOVER", "rds-failover\u200b"], 2):
            b = copy.deepcopy(body)
            b["source"] = source
            out.append(Case(f"gen/domain/forged-source/{stem}-{source.encode('unicode_escape').decode()}", "domain-forged", _enc(b), all_bad))
        other = rng.choice([t for t in ("FailoverDecided", "ReplicaPromoted", "DnsPinned", "FailoverCompleted") if t != dtype])
        b = copy.deepcopy(body)
        b["detail-type"] = other
        out.append(Case(f"gen/domain/mismatched-type/{stem}-as-{other}", "domain-forged", _enc(b), all_bad))
        # Large: past the 256 KiB limit (EventBridge's own) the runtime layer refuses the bytes.
        b = copy.deepcopy(body)
        b["detail"]["site"] = "ghost-" + "x" * MIB
        out.append(Case(f"gen/domain/large/{stem}-1MiB-site", "domain-forged", _enc(b), all_bad))
        b = copy.deepcopy(body)
        b["padding"] = "[" * 5000 + "]" * 5000
        text = _enc(b).decode().replace('"' + b["padding"] + '"', b["padding"])
        out.append(Case(f"gen/domain/deep-nesting/{stem}-5000", "domain-malformed", text.encode(), {f: "Deserialize" for f in DOMAIN_FUNCTIONS}))
        # Forged but well formed: a site, epoch or candidate the ledger never decided. The
        # promoter and the pinner fence these against the ledger. The notifier checks them too
        # (an epoch past the ledger's is `ignored`, tests/test_action_path.py), but an earlier
        # epoch is paged by design, so these random epochs are not delivered to it here.
        for i in range(4):
            b = copy.deepcopy(body)
            d = b["detail"]
            kind = rng.choice(["site", "epoch", "candidate"])
            if kind == "site":
                d["site"] = rng.choice(["ghost", "orders\u202e", "0rders", "ORDERS", "orders\u0000"])
                want_p = "fenced:unknown-site"
            elif kind == "epoch":
                d["epoch"] = rng.choice([0, 2, 17, 999, 2**63])
                want_p = "fenced"
            else:
                d["epoch"] = rng.randint(2, 10**6)
                d["candidate"] = {"id": rng.choice(["attacker-db", "orders-primary", "billing-1"]), "region": rng.choice(["us-west-2", "eu-west-1"])}
                want_p = "fenced"
            out.append(Case(f"gen/domain/forged/{stem}-{kind}-{i}", "domain-forged", _enc(b),
                            {PROMOTER: want_p if promotes else "BadInput", PINNER: "ignored"}))
    return out


def all_cases(seed: int = SEED) -> list[Case]:
    cases = hand_written() + generated(seed)
    names = [c.name for c in cases]
    dupes = {n for n in names if names.count(n) > 1}
    assert not dupes, f"duplicate case names: {sorted(dupes)[:5]}"
    return cases


if __name__ == "__main__":
    from collections import Counter

    cs = all_cases()
    print(f"{len(cs)} inputs, {sum(len(c.expect) for c in cs)} deliveries")
    for fam, n in sorted(Counter(c.family for c in cs).items()):
        print(f"  {fam:18} {n}")
