"""Launcher for the fake of the ``baseline`` dialect (tests/fakes/baseline_fake.py)."""

from __future__ import annotations

import sys

from tests.helpers import ServedPair


class BaselineFake(ServedPair):
    """``python -m tests.fakes.baseline_fake`` on a free loopback port (see tests.helpers.ServedPair).
    The baseline service has no bank: both ports are the same, so ``bank_url == payment_url``.
    ``bug="echo_other_amount"`` plants the echoed-amount money bug; ``chaos_rate`` injects 500s."""

    name = "baseline fake"

    def __init__(self, bug: str | None = None, port: int | None = None, chaos_rate: float = 0.0):
        super().__init__(port, port)
        self.bank_port = self.payment_port
        self.bug, self.chaos_rate = bug, chaos_rate

    @property
    def port(self) -> int:
        return self.payment_port

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "tests.fakes.baseline_fake",
            "--port",
            str(self.payment_port),
            "--chaos-rate",
            str(self.chaos_rate),
            *(["--bug", self.bug] if self.bug else []),
        ]
