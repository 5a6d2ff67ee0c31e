"""Fakes of the API pages (the contract, ecosystem, baseline), each written from its page alone, for
checking the suite against a second reading; ``run_against`` runs a profile against one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests

from tests.fakes.baseline import BaselineFake
from tests.fakes.ecosystem import EcosystemFake
from tests.helpers import AUTH, TOKEN, ServedPair

__all__ = ["BaselineFake", "ContractFake", "EcosystemFake", "run_against"]


def run_against(
    fake: ServedPair, tmp_path: Path, profile: str, dialect: str = "contract", seconds: str = "8s", **extra: str
) -> tuple[subprocess.CompletedProcess, dict]:
    """``run_tests.sh <profile>`` against a fake, reconciling (a fake is not the sandbox, so it is
    asked for), short waits; returns the run and its summary JSON."""
    from tests.test_runner import run

    env = {
        "API_DIALECT": dialect,
        "PAYMENT_SERVICE_URL": fake.payment_url,
        "BANKING_API_URL": fake.bank_url,
        "REPORT_DIR": str(tmp_path / "reports"),
        "RECONCILE": "on",
        "RUN_TIME": seconds,
        "MIN_WAIT_TIME": "0",
        "MAX_WAIT_TIME": "50",
        "THINK_TIME_SCALE": "0.01",
        **extra,
    }
    r = run(profile, env=env, timeout=240)
    return r, json.loads((tmp_path / "reports" / f"{profile}-summary.json").read_text())


class ContractFake(ServedPair):
    """``python -m tests.fakes.contract_fake`` on free loopback ports (see tests.helpers.ServedPair).
    ``bug="refund_overdraw"`` plants the racing-refund money bug."""

    name = "contract fake"

    def __init__(
        self,
        data_dir_unused: Path | None = None,
        bug: str | None = None,
        args: list[str] | None = None,
        payment_port: int | None = None,
        bank_port: int | None = None,
        token: str = TOKEN,
    ):
        super().__init__(payment_port, bank_port)
        self.bug, self.token, self.args = bug, token, args or []

    def command(self) -> list[str]:
        return [
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

    def set_bank_faults(self, **faults) -> dict:
        """``latency_ms``, ``jitter_ms``, ``error_rate``, ``timeout_rate`` on the fake bank's ``/v1/*``."""
        r = requests.put(self.bank_url + "/__sandbox/faults", json=faults, headers=AUTH, timeout=5)
        r.raise_for_status()
        return r.json()
