"""Test helpers: run the real sandbox as a subprocess on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "test_token_123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def card(number: str = "4242424242424242", cvc: str = "123", exp_year: int = 2031, exp_month: int = 12) -> dict:
    return {"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc, "holder_name": "Ada Test"}


def payment_body(amount: int = 1999, currency: str = "USD", merchant: str = "mer_test", **card_kw) -> dict:
    return {
        "amount": amount,
        "currency": currency,
        "merchant_id": merchant,
        "description": "test order",
        "customer": {"id": "cus_1", "email": "ada@example.com", "name": "Ada"},
        "card": card(**card_kw),
    }


class ServedPair:
    """A PaymentService + BankingAPI pair served by one command on free loopback ports (the
    sandbox, or a fake of an API page); stop() is idempotent. Output goes to a file, not a pipe:
    nobody reads it while the services run, and a full pipe would block them."""

    name = "services"

    def __init__(self, payment_port: int | None = None, bank_port: int | None = None, env: dict | None = None):
        self.payment_port = payment_port or free_port()
        self.bank_port = bank_port or free_port()
        self.env = {**os.environ, "AUTH_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log = None

    @property
    def payment_url(self) -> str:
        return f"http://127.0.0.1:{self.payment_port}"

    @property
    def bank_url(self) -> str:
        return f"http://127.0.0.1:{self.bank_port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def output(self) -> str:
        """What the services printed so far."""
        if self.log is None:
            return ""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def health_urls(self) -> list[str]:
        """What must answer before the pair counts as started."""
        return [self.payment_url + "/health", self.bank_url + "/health"]

    def start(self, timeout: float = 20.0):
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed when the object goes away)
        self.proc = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early: {self.output()}")
            try:
                if all(requests.get(url, timeout=0.5).ok for url in self.health_urls()):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become healthy in time")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=5)

    def kill(self) -> None:
        """Hard kill of the whole process group (the target dying)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Sandbox(ServedPair):
    """``python -m sandbox`` with its own data dir."""

    name = "sandbox"

    def __init__(
        self,
        data_dir: Path,
        env: dict | None = None,
        args: list[str] | None = None,
        payment_port: int | None = None,
        bank_port: int | None = None,
    ):
        super().__init__(payment_port, bank_port, env)
        self.data_dir = data_dir
        self.args = args or []

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "sandbox",
            "--payment-port",
            str(self.payment_port),
            "--bank-port",
            str(self.bank_port),
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]

    def set_bank_faults(self, **faults) -> dict:
        r = requests.put(self.bank_url + "/__sandbox/faults", json=faults, headers=AUTH, timeout=5)
        r.raise_for_status()
        return r.json()

    def set_payment_faults(self, **faults) -> dict:
        r = requests.put(self.payment_url + "/__sandbox/faults", json=faults, headers=AUTH, timeout=5)
        r.raise_for_status()
        return r.json()
