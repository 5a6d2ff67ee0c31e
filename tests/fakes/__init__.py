"""Independent fakes of the API contract, for checking the suite against a second reading of the page."""

from __future__ import annotations

import sys
from pathlib import Path

import requests

from tests.helpers import AUTH, TOKEN, ServedPair


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
