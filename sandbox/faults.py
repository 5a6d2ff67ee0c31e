"""MockServer-style fault injection for the sandbox: latency, errors, hangs, broken bodies,
and (PaymentService only) switches that deliberately break a money invariant so the suite's
reconciliation can be shown to catch it."""

from __future__ import annotations

import asyncio
import random
import time

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from sandbox.common import ApiError
from sandbox.settings import BreakInvariant, get_sandbox_settings

Rate = Field(default=0.0, ge=0.0, le=1.0)


class BankFaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0, le=60_000, description="Mean added latency")
    jitter_ms: float = Field(default=0.0, ge=0, le=60_000, description="Uniform +/- jitter around the mean")
    error_rate: float = Rate
    timeout_rate: float = Rate
    hang_s: float = Field(default=30.0, ge=0, le=600, description="How long a 'timeout' request hangs")
    malformed_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="Share answered with truncated JSON")
    schema_error_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="Share answered with wrong-shape JSON")
    stall_every_s: float = Field(default=0.0, ge=0, le=3600, description="A periodic stall starts every N s (0: off)")
    stall_s: float = Field(default=0.0, ge=0, le=600, description="How long each periodic stall lasts")
    # When the faults were set: the first stall starts stall_every_s after it.
    _epoch: float = PrivateAttr(default_factory=time.monotonic)

    @model_validator(mode="after")
    def _stall_shorter_than_period(self) -> BankFaults:
        if self.stall_every_s and self.stall_s >= self.stall_every_s:
            raise ValueError("stall_s must be shorter than stall_every_s")
        return self

    def stall_left(self, now: float | None = None) -> float:
        """Seconds until the current periodic stall ends (0 outside a stall): the bank hangs
        stall_s at the end of every stall_every_s period, then answers everything held."""
        if not self.stall_every_s or not self.stall_s:
            return 0.0
        phase = ((time.monotonic() if now is None else now) - self._epoch) % self.stall_every_s
        start = self.stall_every_s - self.stall_s
        return self.stall_every_s - phase if phase >= start else 0.0

    @classmethod
    def from_env(cls) -> BankFaults:
        """The faults at start, from the SANDBOX_BANK_* variables (sandbox/settings.py)."""
        env = get_sandbox_settings()
        return cls(
            latency_ms=env.bank_latency_ms,
            jitter_ms=env.bank_jitter_ms,
            error_rate=env.bank_error_rate,
            timeout_rate=env.bank_timeout_rate,
            hang_s=env.bank_hang_s,
            malformed_rate=env.bank_malformed_rate,
            schema_error_rate=env.bank_schema_error_rate,
            stall_every_s=env.bank_stall_every_s,
            stall_s=env.bank_stall_s,
        )


class MalformedFault(Exception):
    """Raised to answer with a truncated JSON body (a proxy cutting the response)."""


class SchemaFault(Exception):
    """Raised to answer 2xx with well-formed JSON of the wrong shape (a broken deploy)."""


async def apply_bank_faults(faults: BankFaults, rng: random.Random) -> None:
    stall = faults.stall_left()
    if stall > 0:
        await asyncio.sleep(stall)
    if faults.latency_ms or faults.jitter_ms:
        delay = faults.latency_ms + rng.uniform(-faults.jitter_ms, faults.jitter_ms)
        if delay > 0:
            await asyncio.sleep(delay / 1000.0)
    roll = rng.random()
    if roll < faults.timeout_rate:
        await asyncio.sleep(faults.hang_s)
        raise ApiError(500, "processing_error", "Injected fault: bank hung")
    roll -= faults.timeout_rate
    if roll < faults.error_rate:
        raise ApiError(500, "processing_error", "Injected fault: bank error")
    roll -= faults.error_rate
    if roll < faults.malformed_rate:
        raise MalformedFault
    roll -= faults.malformed_rate
    if roll < faults.schema_error_rate:
        raise SchemaFault


class PaymentFaults(BaseModel):
    """Test-only switches that break an invariant on purpose; all off by default."""

    model_config = ConfigDict(extra="forbid")

    break_invariant: BreakInvariant = "none"

    @classmethod
    def from_env(cls) -> PaymentFaults:
        """The switch at start, from SANDBOX_BREAK_INVARIANT (sandbox/settings.py)."""
        return cls(break_invariant=get_sandbox_settings().break_invariant)
