"""A front for moto's server that speaks the protocol the current AWS SDK for Rust uses for
CloudWatch: Smithy RPC v2 CBOR (`POST /service/GraniteServiceVersion20100801/operation/<Op>`,
`smithy-protocol: rpc-v2-cbor`, CBOR bodies, timestamps as tag 1 epoch seconds). moto 5.2 does
not implement that protocol (getmoto/moto#9195) but serves CloudWatch over its JSON protocol, so
this shim decodes the CBOR request, makes the same call through boto3 against moto, and encodes
moto's answer (or its error, as `__type` + `message`) back to CBOR. Every other request is passed
through to moto unchanged.

Emulator-only control (no AWS behaviour): `POST /emulator/region-outage` with a JSON body
`{"region": "us-east-1", "down": true}` makes every signed request for that Region answer
`503 ServiceUnavailable` until it is set `"down": false` (a regional outage as the DR side sees
it: the Region's APIs stop answering). `{"down": false}` without a region lifts every outage.

Reference: https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html

Usage: python tests/cbor_shim.py <listen-port> <moto-endpoint>
"""

from __future__ import annotations

import http.client
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.exceptions
import cbor2
from botocore import xform_name

PREFIX = "/service/GraniteServiceVersion20100801/operation/"
OUTAGE_PATH = "/emulator/region-outage"


def relay(request: BaseHTTPRequestHandler, host: str, port: int, path: str, body: bytes,
          timeout: float = 60) -> tuple[int, list[tuple[str, str]], bytes]:
    """Sends the request `request` is serving (its method and headers, `path`, `body`) to
    host:port and returns the answer's status, headers and body. http.client, not urllib: urllib
    labels a body without Content-Type as a form, which moto then parses as one (boto3 sends
    Route 53's XML bodies without the header); the body goes through byte for byte."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length", "connection")}
    if body or request.command in ("POST", "PUT"):
        headers["Content-Length"] = str(len(body))
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(request.command, path, body=body or None, headers=headers)
        r = conn.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        conn.close()


class Shim(BaseHTTPRequestHandler):
    moto = ""
    moto_host = "127.0.0.1"
    moto_port = 0
    protocol_version = "HTTP/1.1"
    # Regions whose APIs are down (the emulator-only outage control).
    down_regions: set[str] = set()

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def do_GET(self):
        if not self._region_down():
            self._forward()

    def do_DELETE(self):
        if not self._region_down():
            self._forward()

    def do_PUT(self):
        if not self._region_down():
            self._forward()

    def do_POST(self):
        if self.path == OUTAGE_PATH:
            self._set_outage()
        elif self._region_down():
            return
        elif self.path.startswith(PREFIX):
            self._cbor(self.path[len(PREFIX):])
        else:
            self._forward()

    def _set_outage(self):
        order = json.loads(self._body() or b"{}")
        if order.get("down"):
            Shim.down_regions.add(order["region"])
        elif order.get("region"):
            Shim.down_regions.discard(order["region"])
        else:
            Shim.down_regions.clear()
        self._reply(200, "application/json", json.dumps({"down": sorted(Shim.down_regions)}).encode())

    def _region_down(self) -> bool:
        """Answers 503 for a request signed for a Region that is down; True when it did."""
        auth = self.headers.get("Authorization", "")
        if not Shim.down_regions or "Credential=" not in auth or region_of(auth) not in Shim.down_regions:
            return False
        self._body()
        body = (b"<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code>"
                b"<Message>emulated regional outage</Message></Error></ErrorResponse>")
        self._reply(503, "text/xml", body)
        return True

    def _reply(self, status: int, content_type: str, body: bytes):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _forward(self):
        status, rheaders, rbody = relay(self, self.moto_host, self.moto_port, self.path, self._body())
        self.send_response(status)
        for k, v in rheaders:
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(rbody)))
        self.end_headers()
        self.wfile.write(rbody)

    def _cbor(self, operation: str):
        raw = self._body()
        params = cbor2.loads(raw) if raw else {}
        region = region_of(self.headers.get("Authorization", ""))
        client = boto3.client("cloudwatch", region_name=region, endpoint_url=self.moto,
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        try:
            out = getattr(client, xform_name(operation))(**(params or {}))
            out.pop("ResponseMetadata", None)
            status, body = 200, out
        except botocore.exceptions.ClientError as e:
            err = e.response.get("Error", {})
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
            body = {"__type": err.get("Code", "InternalFailure"), "message": err.get("Message", "")}
        except (botocore.exceptions.ParamValidationError, TypeError) as e:
            status, body = 400, {"__type": "ValidationError", "message": str(e)}
        data = cbor2.dumps(body, datetime_as_timestamp=True, timezone=None)
        self.send_response(status)
        self.send_header("smithy-protocol", "rpc-v2-cbor")
        self.send_header("Content-Type", "application/cbor")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def region_of(authorization: str) -> str:
    # SigV4: Credential=AKID/20261124/us-west-2/monitoring/aws4_request
    try:
        return authorization.split("Credential=")[1].split("/")[2]
    except IndexError:
        return "us-east-1"


def main() -> None:
    port, moto = int(sys.argv[1]), sys.argv[2]
    Shim.moto = moto.rstrip("/")
    u = urllib.parse.urlsplit(Shim.moto)
    Shim.moto_host, Shim.moto_port = u.hostname, u.port
    Server(("127.0.0.1", port), Shim).serve_forever()


class Server(ThreadingHTTPServer):
    """Every AWS call of the functions passes here. socketserver listens with a backlog of 5: a
    function that opens a dozen connections at once (the evaluator reads every site's evidence
    concurrently, one client per service and region) overflows it, Linux drops the extra SYNs and
    the client retransmits them after its initial 1 s RTO — a one-second stall no AWS endpoint
    imposes. moto's own server (werkzeug) listens with 128; so does this."""

    request_queue_size = 128
    daemon_threads = True


if __name__ == "__main__":
    main()
