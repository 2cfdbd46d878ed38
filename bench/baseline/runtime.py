"""A small Python runtime-interface loop for the baseline handlers, doing what AWS's
`awslambdaric` does for the managed Python runtime:

1. import the handler module named by `_HANDLER` (`module.function`) — its module-level code
   (boto3 clients) is the function's init; a failure is reported to `POST /runtime/init/error`;
2. loop: `GET /runtime/invocation/next`, call `handler(event, context)`, and `POST` the JSON answer
   to `/invocation/{id}/response`, or the exception to `/invocation/{id}/error`.

Usage: AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT _HANDLER=evaluator.handler python runtime.py
(the handler module is looked up beside this file).
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import sys
import time
import traceback

PREFIX = "/2018-06-01/runtime"


class Context:
    """The fields of the Python runtime's context object the baseline handlers use."""

    def __init__(self, headers):
        self.aws_request_id = headers["Lambda-Runtime-Aws-Request-Id"]
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self._deadline_ms = int(headers["Lambda-Runtime-Deadline-Ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _post(conn: http.client.HTTPConnection, path: str, payload: dict, error_type: str | None = None) -> None:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if error_type:
        headers["Lambda-Runtime-Function-Error-Type"] = error_type
    conn.request("POST", f"{PREFIX}{path}", body=body, headers=headers)
    conn.getresponse().read()


def _error(e: BaseException) -> dict:
    return {"errorType": type(e).__name__, "errorMessage": str(e),
            "stackTrace": traceback.format_exception(e)}


def main() -> None:
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    module_name, func_name = os.environ["_HANDLER"].rsplit(".", 1)
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
    except Exception as e:  # noqa: BLE001 - every init failure is reported, as awslambdaric does
        _post(conn, "/init/error", _error(e), "Runtime.ImportModuleError")
        raise SystemExit(1)
    while True:
        conn.request("GET", f"{PREFIX}/invocation/next")
        r = conn.getresponse()
        event = json.loads(r.read())
        if r.status != 200:
            raise SystemExit(f"runtime API answered {r.status}")
        ctx = Context(r.headers)
        try:
            answer = handler(event, ctx)
        except Exception as e:  # noqa: BLE001 - reported to the Runtime API, as awslambdaric does
            _post(conn, f"/invocation/{ctx.aws_request_id}/error", _error(e), "Unhandled")
            continue
        _post(conn, f"/invocation/{ctx.aws_request_id}/response", answer)


if __name__ == "__main__":
    main()
