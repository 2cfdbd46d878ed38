"""What the benchmarks share: the functions' deploy settings (from infra/template.yaml), the
environment a Lambda execution environment gives a function, and `FunctionProcess` — one function's
process (our release binary, or a baseline handler under bench/baseline/runtime.py) served by its
own Runtime API (bench/runtime_api.py).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(BENCH))

from runtime_api import RuntimeAPI  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")
RELEASE = ROOT / "target" / "release"
RUNTIME_LOOP = BENCH / "baseline" / "runtime.py"
FUNCTIONS = ("alarm-evaluator", "replica-promoter", "dns-pinner", "notifier")
RESOURCE = {
    "alarm-evaluator": "AlarmEvaluatorFunction",
    "replica-promoter": "ReplicaPromoterFunction",
    "dns-pinner": "DnsPinnerFunction",
    "notifier": "NotifierFunction",
}
# Baseline handler module (bench/baseline/<module>.py) of each function.
BASELINE = {
    "alarm-evaluator": "evaluator",
    "replica-promoter": "promoter",
    "dns-pinner": "pinner",
    "notifier": "notifier",
}


@dataclass(frozen=True)
class Deploy:
    name: str  # FunctionName in the template
    memory_mb: int
    timeout_secs: int


def deploy_settings() -> dict[str, Deploy]:
    """FunctionName, MemorySize and Timeout of each function, as infra/template.yaml deploys it."""
    from infra import template

    res = template()["Resources"]
    out = {}
    for fn, r in RESOURCE.items():
        p = res[r]["Properties"]
        out[fn] = Deploy(p["FunctionName"], int(p["MemorySize"]), int(p["Timeout"]))
    return out


def lambda_env(deploy: Deploy, runtime_api: str, home: Path, extra: dict[str, str]) -> dict[str, str]:
    """The environment of a Lambda execution environment (the variables the Rust runtime and
    awslambdaric read), plus the function's own `extra`. Nothing is inherited from the bench's
    environment except PATH; HOME is an empty directory, so neither SDK finds a profile file."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": deploy.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(deploy.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{deploy.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        **extra,
    }


def command(function: str, impl: str) -> list[str]:
    """How the process is started: our release binary, or the baseline handler under the Python
    runtime loop (the handler module is passed in `_HANDLER`, see `baseline_env`)."""
    if impl == "ours":
        return [str(RELEASE / function)]
    return [PYTHON, str(RUNTIME_LOOP)]


def handler_env(function: str, impl: str, module: str | None = None) -> dict[str, str]:
    return {} if impl == "ours" else {"_HANDLER": f"{module or BASELINE[function]}.handler"}


def peak_rss_kb(pid: int) -> int:
    """VmHWM, the peak resident set of the process's current program (kernel's per-mm high-water
    mark). Not `ru_maxrss` from wait4: Linux carries the spawning process's RSS over an exec into
    the child's ru_maxrss, so a child of the bench (a Python process with boto3 loaded) would
    report the bench's size, not its own."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


class FunctionProcess:
    """One function's process under its own Runtime API."""

    def __init__(self, function: str, impl: str, env: dict[str, str], deploy: Deploy, workdir: Path,
                 module: str | None = None):
        self.function, self.impl, self.deploy = function, impl, deploy
        self.api = RuntimeAPI(deploy.name).start()
        home = workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        self.env = lambda_env(deploy, self.api.address, home, env | handler_env(function, impl, module))
        self.cmd = command(function, impl)
        self.log_path = workdir / f"{function}-{impl}.log"
        self.proc: subprocess.Popen | None = None
        self.spawned_at = 0.0
        self.rusage = None

    def spawn(self) -> "FunctionProcess":
        log = self.log_path.open("ab")
        self.spawned_at = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=BENCH)
        log.close()
        return self

    def invoke(self, payload, timeout: float | None = None):
        """Hands the function one event and waits for its answer (raises FunctionFailed)."""
        inv = self.api.invoke(payload, timeout_secs=self.deploy.timeout_secs)
        return inv, inv.result(timeout or self.deploy.timeout_secs + 30)

    def peak_rss_kb(self) -> int:
        return peak_rss_kb(self.proc.pid)

    def stop(self) -> None:
        """SIGTERM (as Lambda does at shutdown), then reaps the process with wait4."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
                    if pid:
                        self.proc.returncode, self.rusage = os.waitstatus_to_exitcode(status), ru
                        break
                    time.sleep(0.01)
                else:
                    os.kill(self.proc.pid, signal.SIGKILL)
                    _, status, self.rusage = os.wait4(self.proc.pid, 0)
                    self.proc.returncode = os.waitstatus_to_exitcode(status)
            except ProcessLookupError:
                pass
        self.api.stop()

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def p90(xs: list[float]) -> float:
    """Nearest-rank 90th percentile."""
    s = sorted(xs)
    return s[max(0, -(-9 * len(s) // 10) - 1)]
