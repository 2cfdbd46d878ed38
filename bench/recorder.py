"""A recording pass-through in front of the emulated AWS endpoint: every request is forwarded
unchanged, and the AWS operation it carries is written down as `service:Operation@region`.

The benchmarks use it once per function, outside the timed runs, to show that a baseline handler
makes the same AWS calls as our function for the same event (the call-parity column of the
report). The operation is read the way AWS itself routes requests:

- JSON protocols (DynamoDB, EventBridge, Secrets Manager): the `X-Amz-Target` header;
- query protocols (RDS, SNS, SQS): the form body's `Action`;
- Smithy RPC v2 CBOR (CloudWatch): the `/service/<S>/operation/<Op>` path;
- Route 53 (REST-XML): method and path (`POST .../rrset` is ChangeResourceRecordSets, ...).

Service and region come from the SigV4 credential scope in `Authorization`.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from cbor_shim import relay  # noqa: E402

ROUTE53 = [
    ("POST", re.compile(r"^/2013-04-01/hostedzone/[^/]+/rrset/?$"), "ChangeResourceRecordSets"),
    ("GET", re.compile(r"^/2013-04-01/hostedzone/[^/]+/rrset"), "ListResourceRecordSets"),
    ("GET", re.compile(r"^/2013-04-01/change/"), "GetChange"),
    ("GET", re.compile(r"^/2013-04-01/hostedzone/[^/]+$"), "GetHostedZone"),
]


def operation(method: str, path: str, headers, body: bytes) -> str:
    """`service:Operation@region` for one AWS API request."""
    scope = re.search(r"Credential=[^/]+/\d+/([^/]+)/([^/]+)/", headers.get("Authorization", ""))
    region, service = (scope.group(1), scope.group(2)) if scope else ("?", "?")
    target = headers.get("X-Amz-Target")
    if target:
        op = target.rsplit(".", 1)[-1]
    elif "/operation/" in path:
        op = path.rsplit("/operation/", 1)[1].split("?")[0]
    elif path.startswith("/2013-04-01/"):
        op = next((name for m, rx, name in ROUTE53 if m == method and rx.search(path.split("?")[0])),
                  f"{method} {path.split('?')[0]}")
    else:
        form = urllib.parse.parse_qs(body.decode(errors="replace")) if body else {}
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        op = (form.get("Action") or query.get("Action") or [f"{method} {path}"])[0]
    return f"{service}:{op}@{region}"


class QuietServer(ThreadingHTTPServer):
    """Daemon handler threads; a client hanging up (a process stopped mid-poll) is not an error.
    A backlog of 128 (socketserver's default of 5 drops the SYNs of a burst of concurrent
    connections, which come back after the client's 1 s retransmission timeout)."""

    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class Recorder:
    """A loopback proxy to `upstream` (http://host:port) that records every call it forwards."""

    def __init__(self, upstream: str):
        u = urllib.parse.urlsplit(upstream)
        self.calls: list[str] = []
        # (operation, sent, answered) on time.perf_counter's clock: the emulator's service time
        # per call, as the client sees it minus nothing but this loopback hop.
        self.timed: list[tuple[str, float, float]] = []
        self._lock = threading.Lock()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                op = operation(self.command, self.path, self.headers, body)
                with rec._lock:
                    rec.calls.append(op)
                sent = time.perf_counter()
                status, rheaders, rbody = relay(self, u.hostname, u.port, self.path, body, timeout=120)
                with rec._lock:
                    rec.timed.append((op, sent, time.perf_counter()))
                self.send_response(status)
                for k, v in rheaders:
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(rbody)))
                self.end_headers()
                self.wfile.write(rbody)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def take(self) -> list[str]:
        """The calls recorded since the last `take`."""
        with self._lock:
            out, self.calls = self.calls, []
        return out

    def take_timed(self) -> list[tuple[str, float, float]]:
        """The (operation, sent, answered) triples recorded since the last `take_timed`."""
        with self._lock:
            out, self.timed = self.timed, []
        return out

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
