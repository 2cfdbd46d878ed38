"""A fault-injecting HTTP proxy for the offline chain: it sits on 127.0.0.1 between the functions
(their `AWS_ENDPOINT_URL`) and the emulator's endpoint (`MotoServer.endpoint`, the CBOR shim),
forwards every request unchanged, logs what it saw, and — by rules set through a control call —
answers a matching request with a fault instead, the way that service would encode it.

A request's operation is read from what the SDK sends: the `X-Amz-Target` header (JSON protocol:
DynamoDB, EventBridge), the `Action=` form field (query protocol: RDS, SNS), the CBOR operation
path (CloudWatch), or the REST path (Route 53: `POST /2013-04-01/hostedzone/<id>/rrset` is
`ChangeResourceRecordSets`). The service is the SigV4 credential scope's.

Faults (`Rule.fault`):
- `throttle`: 400 `Throttling` (query / REST-XML; SNS's own code is `Throttled`), or
  `ThrottlingException` (JSON) — provably not applied;
- `internal`: 500 `InternalFailure` (`InternalServerError` for JSON, `InternalError` for SNS) —
  not applied;
- `denied`: 403 `AccessDenied` (SNS `AuthorizationError`; JSON `AccessDeniedException`, 400 as
  DynamoDB sends it) — not applied;
- `timeout`: the request is held `hold` seconds (longer than the SDK's 5 s attempt timeout,
  shared/adapters/src/aws.rs), so the caller gives up; then it is forwarded anyway (applied late,
  the case a caller that timed out must assume) and the connection is reset;
- `drop`: crash-after-success: the request IS forwarded (the mutation happens), then the
  connection is reset instead of carrying the answer;
- `blackhole`: the request is held `hold` seconds and never forwarded, then the connection is
  reset: an endpoint that accepts and never answers, as a region's API does in a regional outage
  (`Rule(op="*", fault="blackhole", region="us-east-1", hold=...)`: every request signed for
  that region; the SDK's attempt timeout gives up first).

`op="*"` matches every operation; `region` (the SigV4 credential scope's) narrows a rule to one
region's requests.

Zone aliases (`FaultProxy.aliases`, alias → hosted zone id): a Route 53 path naming an alias is
forwarded with the zone's current id, so functions configured once with a fixed alias keep
working after the emulator is reset and the zone re-created under a new id.

Control: in-process (`FaultProxy.set_rules`, `.clear`, `.log`) or over HTTP:
`POST /fault-proxy/rules` with `[{"op": "PromoteReadReplica", "fault": "drop", "times": 1}]`,
`GET /fault-proxy/log`. Emulator-only, no AWS behaviour.

Usage (standalone): python tests/fault_proxy.py <listen-port> <upstream-endpoint>
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cbor_shim import relay

FAULTS = ("throttle", "internal", "denied", "timeout", "drop")
# Not one call's fault but an endpoint's (tests/test_storm.py's matrix is over FAULTS only).
OUTAGES = ("blackhole",)
CONTROL = "/fault-proxy/"
CBOR_PREFIX = "/service/GraniteServiceVersion20100801/operation/"


@dataclass
class Rule:
    """Answer requests whose operation is `op` (and service is `service`, when given) with `fault`,
    for the next `times` matching requests (None: until cleared)."""

    op: str
    fault: str
    times: int | None = None
    service: str | None = None
    hold: float = 6.5
    region: str | None = None
    hits: int = 0

    def __post_init__(self):
        if self.fault not in FAULTS + OUTAGES:
            raise ValueError(f"unknown fault {self.fault!r}; one of {FAULTS + OUTAGES}")

    def matches(self, op: str, service: str, region: str = "") -> bool:
        return (self.op in (op, "*") and (self.service is None or self.service == service)
                and (self.region is None or self.region == region)
                and (self.times is None or self.hits < self.times))


@dataclass
class Seen:
    """One request as the proxy saw it. `forwarded`: it reached the emulator; `status`: what the
    emulator answered (None when not forwarded); `fault`: what the caller got instead, if anything."""

    t: float
    service: str
    op: str
    method: str
    path: str
    body: bytes
    forwarded: bool = False
    status: int | None = None
    fault: str | None = None
    answer: bytes = b""

    @property
    def applied(self) -> bool:
        """The emulator accepted it (2xx), whatever the caller saw."""
        return self.forwarded and self.status is not None and 200 <= self.status < 300


@dataclass
class FaultProxy:
    upstream: str
    port: int = 0
    rules: list[Rule] = field(default_factory=list)
    log: list[Seen] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ control
    def set_rules(self, rules: list[Rule | dict]) -> None:
        with self._lock:
            self.rules = [r if isinstance(r, Rule) else Rule(**r) for r in rules]

    def clear(self) -> None:
        self.set_rules([])

    def reset_log(self) -> None:
        with self._lock:
            self.log = []

    def seen(self, op: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.log if s.op == op]

    def faults_injected(self) -> int:
        with self._lock:
            return sum(1 for s in self.log if s.fault)

    def _take(self, op: str, service: str, region: str = "") -> Rule | None:
        with self._lock:
            for r in self.rules:
                if r.matches(op, service, region):
                    r.hits += 1
                    return r
        return None

    def _record(self, s: Seen) -> None:
        with self._lock:
            self.log.append(s)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FaultProxy":
        u = urllib.parse.urlparse(self.upstream)
        proxy = self

        class Handler(_Handler):
            owner = proxy
            up_host, up_port = u.hostname, u.port

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def region_of(headers) -> str:
    """The region a request is signed for (its SigV4 credential scope), or ""."""
    auth = headers.get("Authorization", "")
    if "Credential=" not in auth:
        return ""
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
    return scope[2] if len(scope) > 2 else ""


def operation_of(method: str, path: str, headers, body: bytes) -> tuple[str, str]:
    """(service, operation) of a request as the AWS SDK sends it."""
    auth = headers.get("Authorization", "")
    service = ""
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        service = scope[3] if len(scope) > 3 else ""
    target = headers.get("X-Amz-Target")
    if target:
        return service, target.rsplit(".", 1)[-1]
    if path.startswith(CBOR_PREFIX):
        return service, path[len(CBOR_PREFIX):]
    if body and b"Action=" in body:
        form = urllib.parse.parse_qs(body.decode(errors="replace"))
        if form.get("Action"):
            return service, form["Action"][0]
    p = path.split("?", 1)[0]
    if p.startswith("/2013-04-01/"):
        if p.endswith("/rrset") or p.endswith("/rrset/"):
            return service or "route53", "ChangeResourceRecordSets" if method == "POST" else "ListResourceRecordSets"
        if "/change/" in p:
            return service or "route53", "GetChange"
        return service or "route53", f"{method} {p}"
    query = urllib.parse.parse_qs(urllib.parse.urlparse(path).query)
    if query.get("Action"):
        return service, query["Action"][0]
    return service, f"{method} {p}"


def fault_response(fault: str, service: str, headers, op: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of `fault` as `service` encodes it."""
    rid = str(uuid.uuid4())
    if headers.get("X-Amz-Target"):  # JSON protocol (DynamoDB, EventBridge)
        status, code, msg = {
            "throttle": (400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."),
            "internal": (500, "InternalServerError", "Internal server error"),
            "denied": (400, "AccessDeniedException", f"User is not authorized to perform: {op}"),
        }[fault]
        body = json.dumps({"__type": f"com.amazonaws.{service or 'aws'}#{code}", "message": msg}).encode()
        return status, headers.get("Content-Type") or "application/x-amz-json-1.0", body
    if headers.get("smithy-protocol") == "rpc-v2-cbor":
        import cbor2

        status, code = {"throttle": (400, "Throttling"), "internal": (500, "InternalFailure"),
                        "denied": (403, "AccessDenied")}[fault]
        return status, "application/cbor", cbor2.dumps({"__type": code, "message": f"injected {fault}"})
    sns = service == "sns"
    status, code, kind, msg = {
        "throttle": (400, "Throttled" if sns else "Throttling", "Sender", "Rate exceeded"),
        "internal": (500, "InternalError" if sns else "InternalFailure", "Receiver", "An internal error occurred."),
        "denied": (403, "AuthorizationError" if sns else "AccessDenied", "Sender",
                   f"User is not authorized to perform: {op}"),
    }[fault]
    body = (f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{msg}</Message></Error>"
            f"<RequestId>{rid}</RequestId></ErrorResponse>").encode()
    return status, "text/xml", body


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    up_host: str = "127.0.0.1"
    up_port: int = 0
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _reply(self, status: int, content_type: str, body: bytes, extra: list[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        """Closes the connection with a TCP reset (SO_LINGER 0): the caller sees no answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    def _handle(self):
        body = self._body()
        if self.path.startswith(CONTROL):
            return self._control(body)
        service, op = operation_of(self.command, self.path, self.headers, body)
        seen = Seen(time.time(), service, op, self.command, self.path, body)
        rule = self.owner._take(op, service, region_of(self.headers))
        if rule and rule.fault == "blackhole":
            seen.fault = "blackhole"
            self.owner._record(seen)
            time.sleep(rule.hold)
            return self._reset()
        if rule and rule.fault in ("throttle", "internal", "denied"):
            seen.fault = rule.fault
            self.owner._record(seen)
            return self._reply(*fault_response(rule.fault, service, self.headers, op))
        if rule and rule.fault == "timeout":
            # The caller gives up first; the request still reaches the service late, as a slow
            # network delivers it, and its answer goes nowhere.
            seen.fault = "timeout"
            self.owner._record(seen)
            time.sleep(rule.hold)
            try:
                seen.status = self._forward(body)[0]
                seen.forwarded = True
            except OSError:
                pass
            return self._reset()
        try:
            status, rheaders, rbody = self._forward(body)
        except OSError as e:
            seen.fault = None
            self.owner._record(seen)
            return self._reply(502, "text/plain", f"fault proxy: upstream failed: {e}".encode())
        seen.forwarded, seen.status, seen.answer = True, status, rbody
        if rule and rule.fault == "drop":
            seen.fault = "drop"
            self.owner._record(seen)
            return self._reset()
        self.owner._record(seen)
        extra = [(k, v) for k, v in rheaders
                 if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date", "content-type")]
        ctype = next((v for k, v in rheaders if k.lower() == "content-type"), "application/octet-stream")
        self._reply(status, ctype, rbody, extra)

    def _forward(self, body: bytes):
        path = self.path
        for alias, zone in self.owner.aliases.items():
            path = path.replace(f"/hostedzone/{alias}", f"/hostedzone/{zone}")
        return relay(self, self.up_host, self.up_port, path, body)

    def _control(self, body: bytes):
        if self.path == CONTROL + "rules" and self.command == "POST":
            self.owner.set_rules(json.loads(body or b"[]"))
            return self._reply(200, "application/json", b"{}")
        if self.path == CONTROL + "log":
            with self.owner._lock:
                out = [{"t": s.t, "service": s.service, "op": s.op, "forwarded": s.forwarded, "status": s.status,
                        "fault": s.fault} for s in self.owner.log]
            return self._reply(200, "application/json", json.dumps(out).encode())
        return self._reply(404, "text/plain", b"unknown control path")


def main(argv: list[str]) -> None:
    proxy = FaultProxy(argv[2], port=int(argv[1])).start()
    print(f"fault proxy on {proxy.endpoint} -> {proxy.upstream}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        proxy.stop()


class _Server(ThreadingHTTPServer):
    """The backlog is read by listen() in the constructor, so it must be a class attribute (set on
    the instance afterwards it changes nothing): with socketserver's default of 5, a dozen
    concurrent connections overflow it and the dropped SYNs come back after the client's 1 s
    retransmission timeout, a stall no AWS endpoint imposes."""

    request_queue_size = 256
    daemon_threads = True



if __name__ == "__main__":
    main(sys.argv)
