"""Running the suite against the calibration target: the target process, one run of the suite's
runner (``scripts/run_tests.sh``) in each mode, and the figures read back from its summary JSON and
its raw request log. Loopback only; each run is bounded by its RUN_TIME (or TOTAL) and a timeout.
Importing this module does not import Locust (tests import it in the pytest process)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.calibration.distributions import FIGURES, figures_of
from bench.common import free_port

ROOT = Path(__file__).resolve().parents[2]
RUNNER = str(ROOT / "scripts" / "run_tests.sh")
PY = sys.executable
PAYMENT_NAMES = ("POST /payments", "POST /pay")  # the contract binding's payment rows
# the closed model: the suite's own payment task; the open model: the bench's payments-only class
CLOSED_ARGS = ["PaymentServiceUser", "--tags", "payments"]
OPEN_FILES = ["-f", "locustfile.py,rate_scenarios.py,bench/open_model_locustfile.py"]
LABELS = [label for label, _ in FIGURES]


def tolerance(truth: float) -> float:
    """The issue's tolerance: 1 % or 2 ms, whichever is larger."""
    return max(0.01 * abs(truth), 2.0)


def suite_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without any of the suite's settings (a developer's shell or .env must not
    change the run), plus ``extra``."""
    from config import Settings  # pydantic only, no Locust

    names = {n.upper() for n in Settings.model_fields} | {"LOCUST_HOST"}
    clean = {k: v for k, v in os.environ.items() if k.upper() not in names}
    return {**clean, "PYTHONUNBUFFERED": "1", **extra}


class Target:
    """``python -m bench.calibration.target`` on a free loopback port; stop() is idempotent."""

    def __init__(self, spec: str, max_seconds: float = 900.0):
        self.spec, self.max_seconds = spec, max_seconds
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed with the object)
        self.url = ""

    def start(self, timeout: float = 20.0) -> Target:
        cmd = [PY, "-m", "bench.calibration.target", "--dist", self.spec, "--max-seconds", str(self.max_seconds)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.output())
            if found:
                self.url = found.group(1)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"calibration target did not start: {self.output()[-500:]}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/__calibration", timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self) -> Target:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Mode:
    """One way of running the suite: ``closed``, ``rate``, ``distributed`` (the rate profile on a
    master and 2 workers) or ``burst``, with its load settings."""

    name: str
    users: int = 10  # closed model
    rate: float = 50.0  # rate, distributed (arrivals/s, all workers together)
    seconds: int = 15  # closed, rate, distributed
    total: int = 500  # burst
    concurrency: int = 50  # burst

    @property
    def profile(self) -> str:
        return {"closed": "smoke", "rate": "rate", "distributed": "rate", "burst": "burst"}[self.name]

    def env(self) -> dict[str, str]:
        if self.name == "closed":
            return {"USERS": str(self.users), "SPAWN_RATE": str(self.users), "RUN_TIME": f"{self.seconds}s"}
        if self.name == "burst":
            return {"TOTAL": str(self.total), "CONCURRENCY": str(self.concurrency), "RUN_TIME": "5m"}
        env = {"TARGET_RPS": f"{self.rate:g}", "RUN_TIME": f"{self.seconds}s", "RATE_CLASS": "PaymentOnlyUser"}
        if self.name == "distributed":
            env.update(USERS="2", SPAWN_RATE="2", WORKERS="2", EXPECT_WORKERS="2", MASTER_BIND_HOST="127.0.0.1")
        return env

    def args(self) -> list[str]:
        if self.name == "closed":
            return CLOSED_ARGS
        return [] if self.name == "burst" else OPEN_FILES

    def timeout(self) -> int:
        return 300 if self.name == "burst" else self.seconds + 120


@dataclass
class Run:
    """What one run of the suite reported, and what the target served."""

    mode: str
    command: str
    exit_code: int
    stderr_tail: str
    summary: dict[str, Any]
    served: dict[str, Any]
    log_rows: list[dict[str, str]] = field(default_factory=list)
    log_files: list[str] = field(default_factory=list)

    def figures(self, which: str) -> dict[str, float | None]:
        """``service`` (the summary's totals), ``corrected`` (open model) or ``burst``."""
        if which == "service":
            row = self.summary.get("totals") or {}
        elif which == "corrected":
            row = ((self.summary.get("open_model") or {}).get("total") or {}).get("corrected") or {}
        else:
            row = self.summary.get("burst") or {}
        return {label: row.get(f"{label}_ms") for label in LABELS}

    def payments(self) -> int:
        rows = self.summary.get("endpoints") or []
        return sum(r["requests"] for r in rows if r.get("name") in PAYMENT_NAMES)

    def log_figures(self, column: str) -> dict[str, float | None] | None:
        """Exact figures of the raw log's payment lines (``service_ms`` or ``corrected_ms``)."""
        if not self.log_rows:
            return None
        values = sorted(float(r[column]) for r in self.log_rows if r["endpoint"] in PAYMENT_NAMES and r[column])
        return figures_of(values) if values else None


def read_request_log(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    """Every line of ``path`` and ``path.worker*`` (the format of reporting/request_log.py), read
    here without the suite's reader: an independent account of what was sent."""
    files = sorted(p for p in path.parent.glob(path.name + "*") if p == path or ".worker" in p.name)
    rows: list[dict[str, str]] = []
    for f in files:
        lines = f.read_text().splitlines()
        if not lines:
            continue
        header = lines[0].split("\t")
        rows += [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:] if line.count("\t") >= 8]
    return rows, [str(f) for f in files]


def _wait(proc: subprocess.Popen, timeout: float, workers: list[subprocess.Popen]) -> int:
    """The runner's exit status; interrupted (it writes its reports) past ``timeout``, or when a
    worker has died (the master would wait minutes for it)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline or any(w.poll() not in (None, 0) for w in workers):
            proc.send_signal(signal.SIGINT)
            try:
                return proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait(timeout=5)
        time.sleep(0.2)
    return proc.returncode


def run_suite(target: Target, mode: Mode, out: Path, extra_env: dict[str, str] | None = None) -> Run:
    """One run of the suite's runner in ``mode`` against ``target``; reports under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    request_log = out / "requests.tsv"
    env = suite_env(
        {
            "PAYMENT_SERVICE_URL": target.url,
            "BANKING_API_URL": target.url,
            "REPORT_DIR": str(out),
            "RECONCILE": "off",
            "SIMULATE_FAILURES": "false",
            "MIN_WAIT_TIME": "0",
            "MAX_WAIT_TIME": "0",
            "REQUEST_LOG": str(request_log),
            **mode.env(),
            **(extra_env or {}),
        }
    )
    workers: list[subprocess.Popen] = []
    if mode.name == "distributed":
        env["MASTER_PORT"] = str(free_port())  # no fixed port: runs beside anything
        cmd = [RUNNER, "master", mode.profile, *mode.args()]
        # Plain Locust workers: `run_tests.sh worker` checks RATE_CLASS against the profile's own
        # locustfiles, without the bench's extra one.
        wcmd = [PY, "-m", "locust", *mode.args(), "--worker", "--master-host", "127.0.0.1"]
        wcmd += ["--master-port", env["MASTER_PORT"]]
        for i in range(2):
            log = open(out / f"worker-{i + 1}.log", "w")  # noqa: SIM115 (closed when the worker ends)
            workers.append(subprocess.Popen(wcmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True))
    else:
        cmd = [RUNNER, mode.profile, *mode.args()]
    with open(out / "runner.log", "w+") as err_file:
        try:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err_file, text=True)
            rc = _wait(proc, mode.timeout(), workers)
        finally:
            for w in workers:
                try:
                    w.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    w.kill()
                    w.wait(timeout=5)
        err_file.seek(0)
        err = err_file.read()
    shown = {k: v for k, v in env.items() if k in {*mode.env(), "RECONCILE", "SIMULATE_FAILURES", "REQUEST_LOG"}}
    command = " ".join([*(f"{k}={v}" for k, v in sorted(shown.items())), "scripts/run_tests.sh", *cmd[1:]])
    if workers:
        command += " + 2 x " + " ".join(["locust", *wcmd[3:]])
    summary_path = out / f"{mode.profile}-summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    rows, files = read_request_log(request_log)
    return Run(mode.name, command, rc, err[-3000:], summary, target.state(), rows, files)
