"""The sandbox's own settings: the ``SANDBOX_*`` variables, read from the environment only (no
``.env`` of its own; ``python -m sandbox`` flags override them, see sandbox/cli.py).

A bad value stops the sandbox before it starts, with one line per bad variable naming the variable,
the value given and what is allowed (exit status 2, no traceback), as the suite's settings do.

Variables (field name = the variable without ``SANDBOX_``, lower case; docs/sandbox.md lists them):
SANDBOX_HOST, SANDBOX_PAYMENT_PORT, SANDBOX_BANK_PORT, SANDBOX_BANK_TIMEOUT_S, SANDBOX_KEEP_ALIVE_S,
SANDBOX_DATA_DIR, SANDBOX_BANK_LATENCY_MS, SANDBOX_BANK_JITTER_MS, SANDBOX_BANK_ERROR_RATE,
SANDBOX_BANK_TIMEOUT_RATE, SANDBOX_BANK_HANG_S, SANDBOX_BANK_MALFORMED_RATE, SANDBOX_BANK_SCHEMA_ERROR_RATE,
SANDBOX_BANK_STALL_EVERY_S, SANDBOX_BANK_STALL_S, SANDBOX_AUTH_TTL_S, SANDBOX_BREAK_INVARIANT."""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CONFIG_ERROR_EXIT = 2
ENV_PREFIX = "SANDBOX_"
# The test-only switches that break a money invariant on purpose (sandbox/faults.py, PaymentFaults).
BreakInvariant = Literal["none", "refund_race", "idempotency_off"]
# How long an idle keep-alive connection stays open (uvicorn's default is 5 s). Longer than any think
# time of the suite's users (1-5 s between tasks, casual personas up to 30 s) and than the
# PaymentService's own pool to the bank (aiohttp, 30 s): the client side gives an idle connection up
# first, so a request never goes out on a connection the server is closing at that very moment.
KEEP_ALIVE_S = 75.0

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Port = Annotated[int, Field(ge=1, le=65535)]


class SandboxSettings(BaseSettings):
    """Every ``SANDBOX_*`` variable the sandbox reads. Bounds match what the code accepts (the
    fault fields those of sandbox.faults.BankFaults), so a value that passes here starts."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    # --- Services (python -m sandbox flags win over these)
    host: str = Field("127.0.0.1", description="Interface both services listen on (--host)")
    payment_port: Port = Field(8000, description="PaymentService port (--payment-port)")
    bank_port: Port = Field(1080, description="BankingAPI port (--bank-port)")
    bank_timeout_s: float = Field(3.0, gt=0, description="PaymentService -> bank timeout, seconds (--bank-timeout)")
    keep_alive_s: float = Field(KEEP_ALIVE_S, ge=0, description="Seconds an idle connection is kept (--keep-alive)")
    data_dir: Path = Field(Path(".sandbox-data"), description="Where the SQLite files live (--data-dir)")

    # --- BankingAPI faults at start (sandbox.faults.BankFaults; PUT /__sandbox/faults changes them)
    bank_latency_ms: float = Field(0.0, ge=0, le=60_000, description="Mean added latency of every bank answer")
    bank_jitter_ms: float = Field(0.0, ge=0, le=60_000, description="Uniform +/- jitter around that mean")
    bank_error_rate: Rate = Field(0.0, description="Share of bank requests answered 500")
    bank_timeout_rate: Rate = Field(0.0, description="Share of bank requests that hang, then 500")
    bank_hang_s: float = Field(30.0, ge=0, le=600, description="How long a 'timeout' request hangs")
    bank_malformed_rate: Rate = Field(0.0, description="Share answered with truncated JSON")
    bank_schema_error_rate: Rate = Field(0.0, description="Share answered 2xx with wrong-shape JSON")
    bank_stall_every_s: float = Field(0.0, ge=0, le=3600, description="A periodic stall starts every N s (0: off)")
    bank_stall_s: float = Field(0.0, ge=0, le=600, description="How long each periodic stall lasts")
    auth_ttl_s: float = Field(7 * 24 * 3600.0, ge=0, description="Authorization lifetime, seconds")

    # --- PaymentService (test only)
    break_invariant: BreakInvariant = Field("none", description="Break a money invariant on purpose")

    @model_validator(mode="after")
    def _stall_shorter_than_period(self) -> SandboxSettings:
        if self.bank_stall_every_s and self.bank_stall_s >= self.bank_stall_every_s:
            raise ValueError(
                f"SANDBOX_BANK_STALL_S={self.bank_stall_s:g} must be shorter than "
                f"SANDBOX_BANK_STALL_EVERY_S={self.bank_stall_every_s:g}"
            )
        return self


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per bad variable: name, value given, what is allowed."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        given = err.get("input")
        if not loc or loc[0] not in SandboxSettings.model_fields or isinstance(given, dict):
            lines.append(f"sandbox config error: {msg}")  # cross-field rule: the message names the variables
        else:
            lines.append(f"sandbox config error: {ENV_PREFIX}{loc[0].upper()}={given!r}: {msg}")
    return lines


@lru_cache(maxsize=1)
def get_sandbox_settings() -> SandboxSettings:
    """The settings, or exit 2 with one clear line per bad variable (no traceback)."""
    try:
        return SandboxSettings()
    except ValidationError as exc:
        for line in describe_errors(exc):
            print(line, file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_EXIT) from None
