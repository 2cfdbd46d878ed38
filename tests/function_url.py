"""A local Lambda function URL front with `AuthType: AWS_IAM`, on 127.0.0.1: one HTTP server per
URL (the template's `EvaluatorReadUrl` on alias `read`, `EvaluatorOperateUrl` on alias `operate`).

What Lambda does for such a URL, modelled here in its order:

1. The request must be SigV4-signed for service `lambda` in the URL's region ("Control access to
   Lambda function URLs" → "Using the AWS_IAM auth type": callers "must sign each HTTP request
   using AWS Signature Version 4 (SigV4)"). The signature is recomputed with botocore's
   `SigV4Auth` from the caller's secret (the known test credentials below) over the headers the
   request says it signed, and compared; a mismatch, a wrong scope or a timestamp more than 5
   minutes off ("Signature Version 4 signing" → "Elements of an AWS API request signature") is
   403 `InvalidSignatureException`, an unknown access key 403 `UnrecognizedClientException`.
2. The caller's identity policies are evaluated for `lambda:InvokeFunctionUrl` on the alias ARN
   with `lambda:FunctionUrlAuthType = AWS_IAM`, and — for URLs created from October 2025 — also
   `lambda:InvokeFunction` (same page). The policies are read from infra/template.yaml
   (`OperatorReadOnly`, `OperatorActions`), not restated; a denial is 403 `{"Message":
   "Forbidden"}`, as a function URL answers it.
3. The function is invoked on the alias with the payload format 2.0 event ("Invoking Lambda
   function URLs" → "Request payload format"), `requestContext.authorizer.iam` carrying
   `accessKey`, `accountId`, `callerId`, `cognitoIdentity`, `principalOrgId`, `userArn`, `userId`.
4. The answer becomes the HTTP response ("Response payload format"): an object with `statusCode`
   is used as is (headers, body, `isBase64Encoded`); any other JSON is a 200 with it as the body;
   a function error is a 502.

Why not cargo-lambda's emulator for step 3: it invokes by bare function name only (`POST
/2015-03-31/functions/alarm-evaluator:read/invocations` answers "that function doesn't exist as a
binary in your project", and `?Qualifier=` is ignored), so the function would never see the
alias in its invoked ARN — the very thing the evaluator's door judges. Each alias is run here the
way the Lambda service runs a function: the built evaluator binary polling its own Runtime API
(bench/runtime_api.py), whose `Lambda-Runtime-Invoked-Function-Arn` names the alias.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from harness import ROOT, wait_for
from infra import template

sys.path.insert(0, str(ROOT / "bench"))
from runtime_api import FunctionFailed, RuntimeAPI  # noqa: E402

ACCOUNT = "123456789012"
FUNCTION = "alarm-evaluator"
MAX_SKEW = dt.timedelta(minutes=5)
AUTH_RE = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                     r"SignedHeaders=([a-z0-9;\-]+), Signature=([0-9a-f]{64})$")


@dataclass(frozen=True)
class Principal:
    access_key: str
    secret: str
    user_arn: str
    user_id: str
    policies: tuple[str, ...]  # the template's managed policies attached to it


OPERATOR = Principal("AKIAOPERATOR00000001", "operator-secret", f"arn:aws:iam::{ACCOUNT}:user/oncall-operator",
                     "AIDAOPERATOR00000001", ("OperatorActions",))
READER = Principal("AKIAREADONLY00000001", "reader-secret", f"arn:aws:iam::{ACCOUNT}:user/dashboard-reader",
                   "AIDAREADONLY00000001", ("OperatorReadOnly",))
PRINCIPALS = {p.access_key: p for p in (OPERATOR, READER)}


URL_CONTEXT = {"lambda:FunctionUrlAuthType": "AWS_IAM", "lambda:InvokedViaFunctionUrl": "true"}
DIRECT_CONTEXT = {"lambda:InvokedViaFunctionUrl": "false"}


def _condition_met(cond: dict, context: dict[str, str]) -> bool:
    """IAM's condition block: every operator, every key must match ("IAM JSON policy elements:
    Condition" → "The condition block"); a key absent from the request's context fails a
    `StringEquals` or `Bool` test (no `...IfExists` forms are used). An operator not modelled
    here does not match (deny by default, as IAM would for a condition it cannot meet)."""
    for op, tests in cond.items():
        if op not in ("StringEquals", "Bool"):
            return False
        for key, want in tests.items():
            wants = want if isinstance(want, list) else [want]
            got = context.get(key)
            if got is None:
                return False
            if op == "Bool" and got.lower() not in (str(w).lower() for w in wants):
                return False
            if op == "StringEquals" and got not in wants:
                return False
    return True


def allowed(principal: Principal, action: str, alias: str, via_url: bool = True) -> bool:
    """Whether the principal's policies (from the template) allow `action` on the alias's ARN,
    for a request through an AWS_IAM URL (`via_url`: Lambda sets `lambda:FunctionUrlAuthType` and,
    for the InvokeFunction it authorizes on the URL's behalf, `lambda:InvokedViaFunctionUrl` true)
    or a direct `Invoke` (`lambda:InvokedViaFunctionUrl` false). Only the forms the template uses
    are understood: a resource `!Sub "${AlarmEvaluatorFunction.Arn}:<alias>"`, `StringEquals` and
    `Bool` conditions; anything else does not match (deny by default, as IAM)."""
    context = URL_CONTEXT if via_url else DIRECT_CONTEXT
    res = template()["Resources"]
    for policy in principal.policies:
        for s in res[policy]["Properties"]["PolicyDocument"]["Statement"]:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            if s["Effect"] != "Allow" or action not in actions:
                continue
            if not _condition_met(s.get("Condition", {}), context):
                continue
            if any(isinstance(r, dict) and r.get("Fn::Sub") == f"${{AlarmEvaluatorFunction.Arn}}:{alias}"
                   for r in resources):
                return True
    return False


class Refusal(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(body)
        self.status, self.body = status, body


def _invalid_signature(message: str) -> Refusal:
    return Refusal(403, {"Message": message, "Type": "InvalidSignatureException"})


def authenticate(method: str, url: str, headers: dict[str, str], body: bytes, region: str,
                 now: dt.datetime) -> Principal:
    """Step 1: the principal whose secret reproduces the request's signature, or a `Refusal`."""
    auth = headers.get("authorization", "")
    m = AUTH_RE.match(auth)
    if not m:
        raise Refusal(403, {"Message": "Forbidden"})
    key, day, scope_region, service, signed, signature = m.groups()
    principal = PRINCIPALS.get(key)
    if principal is None:
        raise Refusal(403, {"Message": "The security token included in the request is invalid.",
                            "Type": "UnrecognizedClientException"})
    amz_date = headers.get("x-amz-date", "")
    try:
        at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise _invalid_signature("missing or malformed X-Amz-Date") from None
    if day != amz_date[:8] or scope_region != region or service != "lambda":
        raise _invalid_signature(f"Credential should be scoped to a valid region and service: "
                                 f"{day}/{scope_region}/{service}, not {amz_date[:8]}/{region}/lambda")
    if abs(now - at) > MAX_SKEW:
        raise _invalid_signature(f"Signature expired: {amz_date} is not within 5 minutes of the server time")
    names = signed.split(";")
    if "host" not in names or any(n not in headers for n in names):
        raise _invalid_signature("SignedHeaders must include host and name headers the request carries")
    sha = headers.get("x-amz-content-sha256")
    if sha is not None and sha != hashlib.sha256(body).hexdigest():
        raise _invalid_signature("x-amz-content-sha256 does not match the body")
    req = AWSRequest(method=method, url=url, data=body, headers={n: headers[n] for n in names})
    req.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(principal.access_key, principal.secret), "lambda", region)
    canonical = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    if expected != signature:
        raise _invalid_signature("The request signature we calculated does not match the signature you "
                                 "provided. Check your AWS Secret Access Key and signing method.")
    return principal


def url_event(alias_url_id: str, region: str, method: str, path: str, query: str, headers: dict[str, str],
              body: bytes, principal: Principal, source_ip: str, now: dt.datetime) -> dict:
    """Step 3: the payload format 2.0 event Lambda sends for an AWS_IAM URL."""
    ctype = headers.get("content-type", "")
    textual = ctype.startswith("text/") or any(t in ctype for t in ("json", "xml", "javascript"))
    event = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT, "apiId": alias_url_id,
            "authorizer": {"iam": {
                "accessKey": principal.access_key, "accountId": ACCOUNT, "callerId": principal.user_id,
                "cognitoIdentity": None, "principalOrgId": None, "userArn": principal.user_arn,
                "userId": principal.user_id,
            }},
            "domainName": f"{alias_url_id}.lambda-url.{region}.on.aws", "domainPrefix": alias_url_id,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": headers.get("user-agent", "")},
            "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"), "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": body.decode() if textual else base64.b64encode(body).decode(),
        "isBase64Encoded": not textual,
    }
    if query:
        event["queryStringParameters"] = dict(p.split("=", 1) if "=" in p else (p, "") for p in query.split("&"))
    return event


class AliasProcess:
    """The evaluator binary on the alias, polling its own Runtime API (as the Lambda service
    runs a function's execution environment)."""

    def __init__(self, alias: str, env: dict[str, str], log: Path):
        self.api = RuntimeAPI(f"{FUNCTION}:{alias}").start()
        env = {**env, "AWS_LAMBDA_RUNTIME_API": self.api.address, "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
               "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
               "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION}", "AWS_LAMBDA_LOG_STREAM_NAME": alias,
               "PATH": os.environ["PATH"]}
        self.proc = subprocess.Popen([str(ROOT / "target" / "debug" / FUNCTION)], env=env,
                                     stdout=log.open("w"), stderr=subprocess.STDOUT)

    def invoke(self, event: dict) -> dict:
        return self.api.invoke(event, timeout_secs=120).result(150)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.api.stop()


class FunctionUrl:
    """One AWS_IAM function URL on one alias."""

    def __init__(self, alias: str, region: str, env: dict[str, str], workdir: Path):
        self.alias, self.region = alias, region
        self.url_id = f"local{alias}"
        self.function = AliasProcess(alias, env, workdir / f"function-url-{alias}.log")
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                status, headers, out = front.handle(self.command, self.path, self.headers, body,
                                                    self.client_address[0])
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_PUT = do_DELETE = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, method: str, target: str, raw_headers, body: bytes, source_ip: str):
        now = dt.datetime.now(dt.timezone.utc)
        headers: dict[str, str] = {}
        for k, v in raw_headers.items():  # repeated headers are comma-joined in the event
            k = k.lower()
            headers[k] = f"{headers[k]},{v}" if k in headers else v
        path, _, query = target.partition("?")
        json_type = {"content-type": "application/json"}
        try:
            principal = authenticate(method, f"http://{headers.get('host', '')}{target}", headers, body,
                                     self.region, now)
            if not all(allowed(principal, a, self.alias)
                       for a in ("lambda:InvokeFunctionUrl", "lambda:InvokeFunction")):
                raise Refusal(403, {"Message": "Forbidden"})
        except Refusal as r:
            return r.status, {**json_type, "x-amzn-ErrorType": r.body.get("Type", "AccessDeniedException")}, \
                json.dumps(r.body).encode()
        event = url_event(self.url_id, self.region, method, path, query, headers, body, principal, source_ip, now)
        try:
            answer = self.function.invoke(event)
        except FunctionFailed:
            return 502, json_type, b'{"Message":"Internal Server Error"}'
        if isinstance(answer, dict) and "statusCode" in answer:
            out = answer.get("body") or ""
            out = base64.b64decode(out) if answer.get("isBase64Encoded") else out.encode()
            return int(answer["statusCode"]), dict(answer.get("headers") or {}), out
        return 200, json_type, json.dumps(answer).encode()

    def direct_invoke(self, principal: Principal, event: dict):
        """A direct `lambda:Invoke` of this alias with the principal's credentials (no URL): IAM
        evaluates `lambda:InvokeFunction` with `lambda:InvokedViaFunctionUrl` false, and only an
        allowed call reaches the function — whatever the event claims about its caller."""
        if not allowed(principal, "lambda:InvokeFunction", self.alias, via_url=False):
            raise Refusal(403, {"Message": f"User: {principal.user_arn} is not authorized to perform: "
                                           f"lambda:InvokeFunction on resource: {FUNCTION}:{self.alias}",
                                "Type": "AccessDeniedException"})
        return self.function.invoke(event)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.function.stop()


class FunctionUrls:
    """The template's two URLs, started together; `read.url` and `operate.url`."""

    def __init__(self, env: dict[str, str], region: str, workdir: Path):
        env = dict(env)
        env.pop("RDS_FAILOVER_DIRECT_COMMANDS", None)  # the deployed default: URLs only
        self.read = FunctionUrl("read", region, env, workdir)
        self.operate = FunctionUrl("operate", region, env, workdir)
        for f in (self.read, self.operate):
            wait_for(lambda f=f: f.function.api.polled.is_set() or f.function.proc.poll() is not None, 60,
                     f"evaluator on alias {f.alias}", f.function.proc, workdir / f"function-url-{f.alias}.log")
            if f.function.api.init_error:
                raise RuntimeError(f"evaluator on {f.alias} failed to start: {f.function.api.init_error}")

    def stop(self) -> None:
        self.read.stop()
        self.operate.stop()
