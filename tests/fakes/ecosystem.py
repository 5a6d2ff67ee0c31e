"""Launcher for the in-memory fake of the ``ecosystem`` dialect (/work/shared/apis/ecosystem.md)."""

from __future__ import annotations

import sys

from tests.helpers import ServedPair


class EcosystemFake(ServedPair):
    """``python -m tests.fakes.ecosystem_fake`` on free loopback ports (see tests.helpers.ServedPair): the
    seed-000 PaymentService and its MockServer BankingAPI stubs. ``bug="refund_beyond_captured"`` plants the
    cumulative over-refund money bug."""

    name = "ecosystem fake"

    def __init__(self, bug: str | None = None, payment_port: int | None = None, bank_port: int | None = None):
        super().__init__(payment_port, bank_port)
        self.bug = bug

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "tests.fakes.ecosystem_fake",
            "--payment-port",
            str(self.payment_port),
            "--bank-port",
            str(self.bank_port),
            *(["--bug", self.bug] if self.bug else []),
        ]
