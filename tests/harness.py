"""Real parts the offline tests and the demo run against, each started on 127.0.0.1 and stopped by
its process id:

- `MotoServer`: moto's server, the emulated AWS account (RDS, CloudWatch, DynamoDB, EventBridge,
  SQS, Secrets Manager);
- `MariaDB`: a real MariaDB server in a throw-away data directory, for the SQL canary;
- `LambdaEmulator`: cargo-lambda's runtime emulator (`cargo lambda watch`) serving the workspace's
  functions, invoked with `cargo lambda invoke` exactly as a user does.

Nothing here decides anything: the functions under test do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{tail}")
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what}: not ready after {timeout}s\n{tail}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop_group(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """Stops a process started with start_new_session=True, and everything it spawned."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)


class MotoServer:
    """The faithful emulator (moto's server, corrected by `faithful_moto.py`) on a free loopback port,
    behind `cbor_shim.py` on another.

    Clients use `endpoint` (the shim): it passes every request through to moto, except CloudWatch
    calls in the Smithy RPC v2 CBOR protocol the current Rust SDK speaks, which moto does not
    (getmoto/moto#9195); those it translates. `moto_endpoint` is moto itself.
    """

    def __init__(self, workdir: Path, promotion_secs: float = 3.0, dns_insync_secs: float = 2.0,
                 alarm_period_scale: float = 1 / 60):
        self.workdir = workdir
        # An alarm's Period of P seconds lasts P × this real seconds on the emulator (a 60 s period:
        # 1 s), so an "M out of N" alarm moves in seconds, as it moves in minutes on AWS.
        self.alarm_period_scale = alarm_period_scale
        # Timing knobs of the faithful launcher (tests/faithful_moto.py): how long promotions,
        # reboots and failovers take, and how long a Route 53 change stays PENDING.
        self.promotion_secs = promotion_secs
        self.dns_insync_secs = dns_insync_secs
        self.port = 0
        self.moto_port = 0
        # The emulated zones' authoritative DNS server (tests/emulated_dns.py), which every zone's
        # delegation set names: the dns-pinner verifies its pins against it.
        self.dns_port = 0
        self.proc: subprocess.Popen | None = None
        self.shim: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def moto_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    def start(self, port: int | None = None) -> "MotoServer":
        self.moto_port = free_port()
        self.dns_port = free_port()
        log = self.workdir / "moto.log"
        # moto's server with the corrections of tests/faithful_moto.py (promotion topology and
        # timing, global failover, Route 53 change batches and propagation).
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "python"), str(ROOT / "tests" / "faithful_moto.py"), "-H", "127.0.0.1",
             "-p", str(self.moto_port), "--promotion-secs", str(self.promotion_secs),
             "--dns-insync-secs", str(self.dns_insync_secs), "--dns-port", str(self.dns_port),
             "--alarm-period-scale", str(self.alarm_period_scale)],
            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for(lambda: port_open(self.moto_port), 30, "moto server", self.proc, log)
        wait_for(lambda: port_open(self.dns_port), 30, "emulated DNS server", self.proc, log)
        self.port = port or free_port()
        shim_log = self.workdir / "cbor-shim.log"
        self.shim = subprocess.Popen(
            [str(VENV_BIN / "python"), str(ROOT / "tests" / "cbor_shim.py"), str(self.port), self.moto_endpoint],
            stdout=shim_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for(lambda: port_open(self.port), 30, "CloudWatch CBOR shim", self.shim, shim_log)
        return self

    def reset(self) -> None:
        """Forgets every emulated resource (moto's documented reset API)."""
        req = urllib.request.Request(f"{self.moto_endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def region_outage(self, region: str | None, down: bool) -> None:
        """Emulator-only: every request signed for `region` answers 503 while it is down (the
        shim's control, see cbor_shim.py). `region_outage(None, False)` lifts every outage."""
        body = json.dumps({"region": region, "down": down}).encode()
        req = urllib.request.Request(f"{self.endpoint}/emulator/region-outage", data=body, method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self) -> None:
        stop_group(self.shim)
        stop_group(self.proc)


def mariadb_binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"{name} not found: run `make setup` (installs MariaDB from apt)")


class MariaDB:
    """A real MariaDB server in a temporary data directory, TCP on a free loopback port.

    root has no password and is only reachable through the server's own socket file; `canary`
    (password `canary-pass`) is what the functions use over TCP.
    """

    CANARY_USER = "failover_canary"
    CANARY_PASSWORD = "canary-pass"

    REPL_USER = "failover_repl"
    REPL_PASSWORD = "repl-pass"

    def __init__(self, workdir: Path, name: str = "mariadb", server_id: int = 1, binlog: bool = False):
        """`binlog=True` makes it a replication source (binary log on, row format, and what it
        applies as a replica logged too, as on an RDS replica with backups on, so its
        `gtid_binlog_state` is its executed position); every server of one replication topology
        needs its own `server_id`."""
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.server_id = server_id
        self.binlog = binlog

    @property
    def socket(self) -> str:
        return str(self.dir / "mysqld.sock")

    def start(self) -> "MariaDB":
        """Starts the server; after `kill()` it starts again on the same port with the same data.
        A no-op while it is running."""
        if self.proc and self.proc.poll() is None:
            return self
        data = self.dir / "data"
        if not data.exists():
            subprocess.run(
                [mariadb_binary("mariadb-install-db"), "--no-defaults", f"--datadir={data}",
                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                check=True, capture_output=True,
            )
        self.port = self.port or free_port()
        log = self.dir / "mariadbd.log"
        # The instance's parameter group as RDS starts the engine with it: an option file the
        # faithful emulator writes when the group is modified (faithful_moto._write_parameter_file),
        # read at every start, so a `read_only=1` set while the server was down holds when it returns.
        params = self.dir / "rds-parameter-group.cnf"
        if not params.exists():
            params.write_text("[mysqld]\n")
        cmd = [
            mariadb_binary("mariadbd"), f"--defaults-file={params}", f"--datadir={data}", f"--socket={self.socket}",
            f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.dir / 'mysqld.pid'}",
            f"--log-error={log}", "--innodb-buffer-pool-size=32M", f"--server-id={self.server_id}",
            *([f"--log-bin={self.dir / 'binlog'}", "--binlog-format=ROW", "--log-slave-updates"] if self.binlog else ["--skip-log-bin"]),
        ]
        if os.getuid() == 0:
            cmd.append("--user=root")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: port_open(self.port) and Path(self.socket).exists(), 60, "mariadbd", self.proc, log)
        # The harness's own users are not transactions of the database: kept out of the binary
        # log, so a restarted old primary's position holds only what was written to it.
        self.sql(
            "SET SESSION sql_log_bin = 0;"
            f"CREATE USER IF NOT EXISTS '{self.CANARY_USER}'@'127.0.0.1' IDENTIFIED BY '{self.CANARY_PASSWORD}';"
            f"CREATE USER IF NOT EXISTS '{self.CANARY_USER}'@'localhost' IDENTIFIED BY '{self.CANARY_PASSWORD}';"
            f"GRANT SELECT ON mysql.* TO '{self.CANARY_USER}'@'127.0.0.1';"
            f"GRANT SELECT ON mysql.* TO '{self.CANARY_USER}'@'localhost';"
        )
        return self

    def replicate_from(self, source: "MariaDB") -> "MariaDB":
        """Real MariaDB replication, source -> this server, as an RDS read replica has it: a
        replication user on the source, GTID-based replication starting at the source's current
        position, and this server read-only (`read_only=ON`, which RDS sets on every replica)."""
        if not source.binlog:
            raise ValueError(f"{source.dir.name} has no binary log: start it with binlog=True")
        source.sql(
            f"CREATE USER IF NOT EXISTS '{self.REPL_USER}'@'127.0.0.1' IDENTIFIED BY '{self.REPL_PASSWORD}';"
            f"GRANT REPLICATION SLAVE ON *.* TO '{self.REPL_USER}'@'127.0.0.1';"
        )
        pos = source.sql("SELECT @@GLOBAL.gtid_binlog_pos;").strip()
        self.sql(
            "STOP SLAVE; RESET SLAVE ALL;"
            f"SET GLOBAL gtid_slave_pos = '{pos}';"
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={source.port}, "
            f"MASTER_USER='{self.REPL_USER}', MASTER_PASSWORD='{self.REPL_PASSWORD}', "
            "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;"
            "START SLAVE; SET GLOBAL read_only = ON;"
        )
        wait_for(lambda: self.replica_status().get("Slave_IO_Running") == "Yes", 30, "replication IO thread")
        return self

    def replica_status(self) -> dict[str, str]:
        """`SHOW SLAVE STATUS` as a dict; empty when this server replicates from no one."""
        out = subprocess.run(
            [mariadb_binary("mariadb"), "--no-defaults", "-uroot", f"--socket={self.socket}", "-E", "-e", "SHOW SLAVE STATUS"],
            check=True, capture_output=True, text=True,
        ).stdout
        status = {}
        for line in out.splitlines():
            key, sep, value = line.strip().partition(": ")
            if sep:
                status[key] = value
        return status

    def sql(self, statements: str) -> str:
        out = subprocess.run(
            [mariadb_binary("mariadb"), "--no-defaults", "-uroot", f"--socket={self.socket}", "-N", "-B", "-e", statements],
            check=True, capture_output=True, text=True,
        )
        return out.stdout

    def kill(self) -> None:
        """The outage: the server process dies (SIGKILL), the port closes."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_group(self.proc, timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


class InvokeError(Exception):
    def __init__(self, error_type: str, message: str):
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


class LambdaEmulator:
    """`cargo lambda watch` serving the workspace's functions with a fixed environment.

    The environment is read by a function at its cold start; `restart(env)` starts a fresh emulator
    so a new configuration (or pinned clock) takes effect.
    """

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def start(self, env: dict[str, str], functions: tuple[str, ...] = ("alarm-evaluator",),
              concurrency: int = 1) -> "LambdaEmulator":
        """`concurrency`: how many instances of one function the emulator may run at once
        (`cargo lambda watch --concurrency`; its default, 1, serves one invocation at a time)."""
        # Pre-build so the emulator's first invocation does not include a compile.
        subprocess.run(["cargo", "build", "--quiet", *sum((["-p", f] for f in functions), [])], cwd=ROOT, check=True)
        env = dict(env)
        if "FAILOVER_CONFIG" in env:
            # A JSON document does not survive dotenv quoting unchanged; hand it over as a file.
            cfg = self.workdir / "sites.json"
            cfg.write_text(env.pop("FAILOVER_CONFIG"))
            env["FAILOVER_CONFIG_PATH"] = str(cfg)
        env_file = self.workdir / "function.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.port = free_port()
        log = self.workdir / "cargo-lambda-watch.log"
        proc_env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
        self.proc = subprocess.Popen(
            ["cargo", "lambda", "watch", "--ignore-changes", "--invoke-address", "127.0.0.1",
             "--invoke-port", str(self.port), "--env-file", str(env_file), "--concurrency", str(concurrency)],
            cwd=ROOT, env=proc_env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for(lambda: port_open(self.port), 120, "cargo lambda watch", self.proc, log)
        return self

    def restart(self, env: dict[str, str]) -> "LambdaEmulator":
        self.stop()
        return self.start(env)

    def invoke_file(self, function: str, path: Path) -> dict:
        """Invokes with the file's bytes exactly as recorded (malformed ones included)."""
        return self.invoke_raw(function, path.read_bytes())

    def invoke(self, function: str, payload) -> dict:
        return self.invoke_raw(function, json.dumps(payload).encode())

    def invoke_raw(self, function: str, body: bytes) -> dict:
        """The Lambda Invoke API (`POST /2015-03-31/functions/<name>/invocations`) as the emulator
        serves it: the function's JSON answer, or `InvokeError` carrying the function's error type
        and message when it reports a failure (`X-Amz-Function-Error`)."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/2015-03-31/functions/{function}/invocations",
            data=body, method="POST", headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=180) as r:
                status, failed, text = r.status, r.headers.get("X-Amz-Function-Error"), r.read()
        except urllib.error.HTTPError as e:
            status, failed, text = e.code, e.headers.get("X-Amz-Function-Error") or "HTTP", e.read()
        answer = json.loads(text) if text else None
        if failed or status >= 300:
            answer = answer if isinstance(answer, dict) else {}
            raise InvokeError(answer.get("errorType", f"HTTP {status}"), answer.get("errorMessage", text.decode(errors="replace")))
        return answer

    def invoke_cli(self, function: str, data_file: Path) -> dict:
        """`cargo lambda invoke <function> --data-file <file>`, the command the README documents."""
        proc_env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
        out = subprocess.run(
            ["cargo", "lambda", "invoke", function, "--invoke-address", "127.0.0.1", "--invoke-port", str(self.port),
             "--output-format", "json", "--data-file", str(data_file)],
            cwd=ROOT, env=proc_env, capture_output=True, text=True, timeout=180,
        )
        if out.returncode != 0:
            raise InvokeError("CLI", out.stdout + out.stderr)
        return json.loads(out.stdout)

    def stop(self) -> None:
        stop_group(self.proc)
