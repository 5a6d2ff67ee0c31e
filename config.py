"""Suite settings: one pydantic-settings model read from the environment and ``.env``.

A bad value stops the run before any user starts, with one line per bad variable naming the
variable, the value given and what is allowed (exit status 2, no traceback)."""

from __future__ import annotations

import ipaddress
import sys
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CONFIG_ERROR_EXIT = 2
PERSONAS = ("casual", "power", "business")


def _url(value: str) -> str:
    value = value.strip().rstrip("/")
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
        raise ValueError("must be an http:// or https:// URL with a host, e.g. http://localhost:8000")
    return value


Url = Annotated[str, AfterValidator(_url)]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and 127.0.0.0/8 / ::1; False for "" and "*" (Locust's "every interface")."""
    if host == "localhost":
        return True
    try:
        return bool(host) and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bare_token(raw: str) -> str:
    """The token without a leading "Bearer " (both spellings are accepted everywhere)."""
    raw = raw.strip()
    return raw[6:].strip() if raw[:6].lower() == "bearer" and raw[6:7] in ("", " ") else raw


def auth_header(raw: str) -> str:
    return f"Bearer {bare_token(raw)}"


def parse_persona_shares(raw: str) -> dict[str, float]:
    """``casual:60,power:30,business:10`` -> shares summing to 1."""
    shares: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, weight = part.partition(":")
        name = name.strip().lower()
        if not sep or name not in PERSONAS:
            raise ValueError(f"expected name:weight pairs with names from {', '.join(PERSONAS)}")
        try:
            shares[name] = float(weight)
        except ValueError:
            raise ValueError(f"weight of {name} is not a number") from None
        if shares[name] < 0:
            raise ValueError(f"weight of {name} is negative")
    total = sum(shares.values())
    if total <= 0:
        raise ValueError("at least one persona needs a positive weight")
    return {name: shares.get(name, 0.0) / total for name in PERSONAS}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    # Targets
    payment_service_url: Url = Field("http://localhost:8000", description="PaymentService base URL")
    banking_api_url: Url = Field("http://localhost:1080", description="BankingAPI (MockServer) base URL")
    auth_token: SecretStr = Field(
        SecretStr("Bearer test_token_123456789"),
        description="Bearer token for both services ('Bearer ' prefix optional)",
    )
    request_timeout: float = Field(10.0, gt=0, le=300, description="Per-request timeout, seconds")

    # Behaviour
    min_wait_time: int = Field(1000, ge=0, le=3_600_000, description="Minimum wait between tasks, ms")
    max_wait_time: int = Field(5000, ge=0, le=3_600_000, description="Maximum wait between tasks, ms")
    simulate_failures: bool = Field(True, description="Send decline cards and run FailureSimulationUser")
    card_decline_rate: Rate = Field(0.05, description="Share of payments made with decline test cards")
    refund_probability: Rate = Field(0.1, description="Chance a realistic customer refunds a payment")
    persona_shares: str = Field("casual:60,power:30,business:10", description="RealisticTrafficUser personas")
    think_time_scale: float = Field(1.0, ge=0, le=100, description="Multiplier on persona think times")
    validate_responses: bool = Field(True, description="Check response bodies, not only status codes")

    # Test data
    merchant_count: int = Field(10, ge=1, le=100_000, description="Number of test merchants")
    customer_count: int = Field(1000, ge=1, le=100_000_000, description="Number of test customers")
    data_seed: int = Field(42, ge=0, le=2**63 - 1, description="Seed: same seed, same customers/cards")
    id_store_size: int = Field(500, ge=10, le=1_000_000, description="Ids each user keeps for follow-ups")

    @field_validator("persona_shares")
    @classmethod
    def _shares(cls, v: str) -> str:
        parse_persona_shares(v)
        return v

    @model_validator(mode="after")
    def _waits(self) -> Settings:
        if self.min_wait_time > self.max_wait_time:
            raise ValueError(f"MIN_WAIT_TIME ({self.min_wait_time}) must be <= MAX_WAIT_TIME ({self.max_wait_time})")
        if not self.bare_token():
            raise ValueError("AUTH_TOKEN is empty; set the bearer token the services expect")
        return self

    def bare_token(self) -> str:
        return bare_token(self.auth_token.get_secret_value())

    def auth_header(self) -> str:
        return auth_header(self.auth_token.get_secret_value())

    def personas(self) -> dict[str, float]:
        return parse_persona_shares(self.persona_shares)


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per bad variable: name, value given, what is allowed."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        var = loc[0].upper() if loc else "settings"
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        given = err.get("input")
        field = Settings.model_fields.get(loc[0]) if loc else None
        if field is None or isinstance(given, dict):  # cross-field rule: the message names the variables
            lines.append(f"config error: {msg}")
        elif loc[0] == "auth_token":
            lines.append(f"config error: AUTH_TOKEN: {msg}")  # never echo a secret
        else:
            lines.append(f"config error: {var}={given!r}: {msg}")
    return lines


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings, or exit 2 with one clear line per bad variable (no traceback)."""
    try:
        return Settings()
    except ValidationError as exc:
        for line in describe_errors(exc):
            print(line, file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_EXIT) from None
