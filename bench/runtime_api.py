"""A minimal AWS Lambda Runtime API server, on 127.0.0.1, for running a function's process the way
the Lambda service does: the process polls for work, answers, and polls again.

Implemented (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html):

- `GET  /2018-06-01/runtime/invocation/next` — blocks until an invocation is queued, then answers
  with the event as the body and the headers `Lambda-Runtime-Aws-Request-Id`,
  `Lambda-Runtime-Deadline-Ms`, `Lambda-Runtime-Invoked-Function-Arn`, `Lambda-Runtime-Trace-Id`;
- `POST /2018-06-01/runtime/invocation/{id}/response` — the function's answer;
- `POST /2018-06-01/runtime/invocation/{id}/error` — the function's error (`errorType`,
  `errorMessage`);
- `POST /2018-06-01/runtime/init/error` — the function could not initialise.

`invoke(payload)` queues an event and returns an `Invocation` that records, on the bench's
monotonic clock, when it was queued, handed to the process, and answered. One server serves one
function (as each Lambda execution environment has its own Runtime API endpoint).
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"
ACCOUNT = "123456789012"
REGION = "us-west-2"


class QuietServer(ThreadingHTTPServer):
    """Daemon handler threads; a client hanging up (a process stopped mid-poll) is not an error.
    A backlog of 128 (socketserver's default of 5 drops the SYNs of a burst of concurrent
    connections, which come back after the client's 1 s retransmission timeout)."""

    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


@dataclass
class Invocation:
    """One event handed to the function, and what became of it."""

    payload: bytes
    timeout_secs: float
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    queued_at: float = 0.0
    started_at: float | None = None
    answered_at: float | None = None
    ok: bool | None = None
    body: bytes = b""
    done: threading.Event = field(default_factory=threading.Event)

    def result(self, timeout: float):
        """The function's JSON answer; raises `FunctionFailed` for an error or init error."""
        if not self.done.wait(timeout):
            raise TimeoutError(f"invocation {self.request_id}: no answer within {timeout}s")
        answer = json.loads(self.body) if self.body else None
        if not self.ok:
            raise FunctionFailed(answer if isinstance(answer, dict) else {"errorMessage": str(answer)})
        return answer


class FunctionFailed(Exception):
    def __init__(self, error: dict):
        super().__init__(f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}")
        self.error = error


class RuntimeAPI:
    """The Runtime API for one function, on a free loopback port (`address` is host:port, the
    value of `AWS_LAMBDA_RUNTIME_API`)."""

    def __init__(self, function_name: str):
        self.function_name = function_name
        self._queue: queue.Queue[Invocation] = queue.Queue()
        self._by_id: dict[str, Invocation] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.init_error: dict | None = None
        # Set at the process's first `GET /next`: its init (cold start) is done.
        self.polled = threading.Event()
        self.first_poll_at: float | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # quiet
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _reply(self, status: int, body: bytes = b"{}", headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != f"{PREFIX}/invocation/next":
                    return self._reply(404, b'{"errorMessage":"not found"}')
                if api.first_poll_at is None:
                    api.first_poll_at = time.perf_counter()
                api.polled.set()
                inv = api._next()
                if inv is None:  # shutting down: the process is being stopped anyway
                    return self._reply(503, b'{"errorMessage":"runtime API closing"}')
                deadline_ms = int((time.time() + inv.timeout_secs) * 1000)
                try:
                    self._reply(200, inv.payload, {
                        "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn":
                            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{api.function_name}",
                        "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]};Sampled=0",
                    })
                    inv.started_at = time.perf_counter()
                except OSError:
                    api._queue.put(inv)  # the poller went away: hand the event to the next one

            def do_POST(self):
                body = self._body()
                now = time.perf_counter()
                if self.path == f"{PREFIX}/init/error":
                    api.init_error = json.loads(body or b"{}")
                    api.polled.set()
                    api._fail_all(body)
                    return self._reply(202, b'{"status":"OK"}')
                parts = self.path[len(PREFIX):].strip("/").split("/")
                if len(parts) != 3 or parts[0] != "invocation" or parts[2] not in ("response", "error"):
                    return self._reply(404, b'{"errorMessage":"not found"}')
                with api._lock:
                    inv = api._by_id.get(parts[1])
                if inv is None or inv.done.is_set():
                    return self._reply(400, b'{"errorMessage":"unknown or answered request id"}')
                inv.answered_at, inv.ok, inv.body = now, parts[2] == "response", body
                inv.done.set()
                self._reply(202, b'{"status":"OK"}')

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "RuntimeAPI":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, payload, timeout_secs: float = 60.0) -> Invocation:
        """Queues one event (a dict, or raw bytes); the next `GET /next` takes it."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        inv = Invocation(body, timeout_secs, queued_at=time.perf_counter())
        with self._lock:
            self._by_id[inv.request_id] = inv
        if self.init_error is not None:
            inv.ok, inv.body = False, json.dumps(self.init_error).encode()
            inv.done.set()
        else:
            self._queue.put(inv)
        return inv

    def _next(self) -> Invocation | None:
        while not self._closing.is_set():
            try:
                return self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
        return None

    def _fail_all(self, body: bytes) -> None:
        with self._lock:
            pending = [i for i in self._by_id.values() if not i.done.is_set()]
        for inv in pending:
            inv.answered_at, inv.ok, inv.body = time.perf_counter(), False, body
            inv.done.set()
