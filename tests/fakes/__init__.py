"""Independent fakes of the API contract, for checking the suite against a second reading of the page."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.helpers import AUTH, ROOT, TOKEN, free_port


class ContractFake:
    """``python -m tests.fakes.contract_fake`` on free loopback ports; stop() is idempotent.

    Same style as ``tests.helpers.Sandbox``: ``start()``, ``stop()``, ``kill()``, ``payment_url``, ``bank_url``.
    ``bug="refund_overdraw"`` plants the racing-refund money bug.
    """

    def __init__(
        self,
        data_dir_unused: Path | None = None,
        bug: str | None = None,
        args: list[str] | None = None,
        payment_port: int | None = None,
        bank_port: int | None = None,
        token: str = TOKEN,
    ):
        self.bug = bug
        self.payment_port = payment_port or free_port()
        self.bank_port = bank_port or free_port()
        self.token = token
        self.args = args or []
        self.proc: subprocess.Popen | None = None
        self.log = None

    @property
    def payment_url(self) -> str:
        return f"http://127.0.0.1:{self.payment_port}"

    @property
    def bank_url(self) -> str:
        return f"http://127.0.0.1:{self.bank_port}"

    def start(self, timeout: float = 15.0) -> ContractFake:
        cmd = [
            sys.executable,
            "-m",
            "tests.fakes.contract_fake",
            "--payment-port",
            str(self.payment_port),
            "--bank-port",
            str(self.bank_port),
            "--token",
            self.token,
            *(["--bug", self.bug] if self.bug else []),
            *self.args,
        ]
        # a file, not a pipe: nobody reads the output while it runs, and a full pipe would block the fake
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed when the object goes away)
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"contract fake exited early: {self.output()}")
            try:
                if (
                    requests.get(self.payment_url + "/health", timeout=0.5).ok
                    and requests.get(self.bank_url + "/health", timeout=0.5).ok
                ):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("contract fake did not become healthy in time")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=5)

    def output(self) -> str:
        """What the fake printed so far (the ``listening`` lines, and any internal errors)."""
        if self.log is None:
            return ""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def kill(self) -> None:
        """Hard kill of the whole process group (the target dying)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def set_bank_faults(self, **faults) -> dict:
        """``latency_ms``, ``jitter_ms``, ``error_rate``, ``timeout_rate`` on the fake bank's ``/v1/*``."""
        r = requests.put(self.bank_url + "/__sandbox/faults", json=faults, headers=AUTH, timeout=5)
        r.raise_for_status()
        return r.json()

    def __enter__(self) -> ContractFake:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
