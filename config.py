"""Suite settings: one pydantic-settings model read from the environment and ``.env``.

A bad value stops the run before any user starts, with one line per bad variable naming the
variable, the value given and what is allowed (exit status 2, no traceback)."""

from __future__ import annotations

import ipaddress
import re
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
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
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?")
SECRETS = {"auth_token", "web_password", "flask_secret_key"}  # never echoed in an error


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


def parse_duration(raw: str) -> int:
    """``90s``, ``5m``, ``1h30m`` or plain seconds -> seconds (the forms Locust's --run-time takes)."""
    text = raw.strip().lower()
    match = _DURATION.fullmatch(text)
    if not text or not match or not any(match.groups()):
        raise ValueError("must be a duration like 90s, 5m or 1h30m")
    h, m, sec = (int(g) if g else 0 for g in match.groups())
    if h * 3600 + m * 60 + sec <= 0:
        raise ValueError("must be longer than 0 s")
    return h * 3600 + m * 60 + sec


def parse_rate_stages(raw: str) -> list[tuple[float, float]]:
    """``100:30s,1000:2m,0:10s`` -> [(rate/s, seconds), ...]: reach each rate linearly over its time
    (the open-model profiles, users/open_model.py). Empty -> []."""
    stages = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        rate, sep, duration = part.partition(":")
        try:
            value = float(rate)
        except ValueError:
            value = -1.0
        if not sep or not value >= 0 or value > 1_000_000:
            raise ValueError("must be rate:duration pairs like 100:30s,1000:2m,0:10s (rate 0..1000000 per second)")
        stages.append((value, float(parse_duration(duration))))
    return stages


def _rate_stages(value: str) -> str:
    parse_rate_stages(value)
    return value.strip()


def _duration(value: str | None) -> str | None:
    if value is None or not str(value).strip():
        return None
    parse_duration(str(value))
    return str(value).strip().lower()


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")


def _host(value: str) -> str:
    value = value.strip()
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.fullmatch(value):
            raise ValueError("must be a host name or an IP address, e.g. 10.0.0.5 or locust-master") from None
    return value


def _bind_host(value: str) -> str:
    return "*" if value.strip() in ("*", "0.0.0.0") else _host(value)


DIALECTS = ("contract", "ecosystem", "baseline")
_MODULE_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def _dialect(value: str) -> str:
    """A built-in dialect, or the dotted path of a module with a ``BINDING`` (apis/base.py)."""
    value = value.strip()
    if value.lower() in DIALECTS:
        return value.lower()
    if not _MODULE_PATH.fullmatch(value):
        raise ValueError(
            f"must be one of {', '.join(DIALECTS)}, or a dotted module path like mycompany.payments_binding"
        )
    import importlib

    try:
        module = importlib.import_module(value)
    except Exception as exc:  # noqa: BLE001 - any import failure is the same bad setting
        raise ValueError(f"cannot import module {value!r} ({type(exc).__name__}: {str(exc)[:80]})") from None
    from apis.base import Binding  # here, not at the top: apis reads the settings too

    if not isinstance(getattr(module, "BINDING", None), Binding):
        raise ValueError(f"module {value!r} has no BINDING (an apis.base.Binding instance)")
    return value


def _optional_url(value: str | None) -> str | None:
    return _url(value) if value and value.strip() else None


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


Duration = Annotated[str | None, AfterValidator(_duration)]
OptionalUrl = Annotated[str | None, AfterValidator(_optional_url)]
Choice = BeforeValidator(_lower)


class Settings(BaseSettings):
    """Every variable the suite reads. Grouped by what they steer; the variable is the field name
    in upper case (``.env.example`` documents each one)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    # --- Targets
    payment_service_url: Url = Field("http://localhost:8000", description="PaymentService base URL")
    banking_api_url: Url = Field("http://localhost:1080", description="BankingAPI (MockServer) base URL")
    locust_host: OptionalUrl = Field(None, description="Overrides PAYMENT_SERVICE_URL (as --host does)")
    auth_token: SecretStr = Field(
        SecretStr("Bearer test_token_123456789"),
        description="Bearer token for both services ('Bearer ' prefix optional)",
    )
    request_timeout: float = Field(10.0, gt=0, le=300, description="Per-request timeout, seconds")
    api_dialect: Annotated[str, AfterValidator(_dialect)] = Field(
        "contract", description="API the targets speak: contract, ecosystem, baseline or a module path (apis/)"
    )

    # --- Behaviour
    min_wait_time: int = Field(1000, ge=0, le=3_600_000, description="Minimum wait between tasks, ms")
    max_wait_time: int = Field(5000, ge=0, le=3_600_000, description="Maximum wait between tasks, ms")
    simulate_failures: bool = Field(True, description="Send decline cards and run FailureSimulationUser")
    card_decline_rate: Rate = Field(0.05, description="Share of payments made with decline test cards")
    refund_probability: Rate = Field(0.1, description="Chance a realistic customer refunds a payment")
    persona_shares: str = Field("casual:60,power:30,business:10", description="RealisticTrafficUser personas")
    think_time_scale: float = Field(1.0, ge=0, le=100, description="Multiplier on persona think times")
    validate_responses: bool = Field(True, description="Check response bodies, not only status codes")

    # --- Test data
    merchant_count: int = Field(10, ge=1, le=100_000, description="Number of test merchants")
    customer_count: int = Field(1000, ge=1, le=100_000_000, description="Number of test customers")
    data_seed: int = Field(42, ge=0, le=2**63 - 1, description="Seed: same seed, same customers/cards")
    id_store_size: int = Field(500, ge=10, le=1_000_000, description="Ids each user keeps for follow-ups")

    # --- Runner overrides (scripts/run_tests.sh); unset means the profile's own value
    users: int | None = Field(None, ge=1, le=1_000_000, description="Concurrent users")
    spawn_rate: float | None = Field(None, gt=0, le=100_000, description="Users started per second")
    run_time: Duration = Field(None, description="Run time, e.g. 90s, 5m, 1h30m (caps shaped profiles)")
    workers: int = Field(2, ge=1, le=99, description="Local worker processes of the distributed profile")
    report_dir: str = Field("reports", min_length=1, description="Where reports are written")
    dry_run: bool = Field(False, description="Print the Locust command instead of running it")
    locust_table: bool = Field(False, description="Locust's request table every 2 s instead of the progress line")
    allow_remote_target: bool = Field(False, description="Heavy profiles may load a non-loopback host")
    master_host: Annotated[str, AfterValidator(_host)] = Field(
        "127.0.0.1", description="Master a `run_tests.sh worker` connects to (host name or IP)"
    )
    master_port: int = Field(5557, ge=1, le=65535, description="Master's port (master and worker commands)")
    master_bind_host: Annotated[str, AfterValidator(_bind_host)] = Field(
        "*", description="Interface `run_tests.sh master` listens on for workers (* = all)"
    )
    expect_workers: int | None = Field(
        None, ge=1, le=10_000, description="Workers the master waits for (default WORKERS)"
    )

    # --- Money
    reconcile: Annotated[Literal["auto", "on", "off"], Choice] = Field(
        "auto", description="End-of-run money checks: auto (sandbox read back, elsewhere client view), on, off"
    )

    # --- Race scenarios (profile race)
    race_width: int = Field(10, ge=2, le=200, description="Concurrent requests per race round")

    # --- Stress (profile stress, shapes/stress.py); unset maxima follow USERS / SPAWN_RATE
    stress_start_users: int = Field(10, ge=1, le=1_000_000, description="Users of the first step")
    stress_step_users: int = Field(25, ge=1, le=1_000_000, description="Users added per step")
    stress_step_seconds: float = Field(30.0, gt=0, le=86_400, description="Seconds per step")
    stress_max_users: int | None = Field(None, ge=1, le=1_000_000, description="Last step (default USERS or 500)")
    stress_spawn_rate: float | None = Field(None, gt=0, le=100_000, description="Spawn rate (default SPAWN_RATE)")
    stress_max_error_rate: Rate = Field(0.05, description="Error rate over a step that marks the breaking point")
    stress_max_p95_ms: float = Field(2000.0, gt=0, le=600_000, description="p95 over a step that marks it")

    # --- Spike (profile spike, shapes/spike.py)
    spike_base_users: int = Field(10, ge=1, le=1_000_000, description="Users before and after the spike")
    spike_peak_users: int | None = Field(None, ge=1, le=1_000_000, description="Users in the spike (default USERS)")
    spike_stage_seconds: float = Field(60.0, gt=0, le=86_400, description="Seconds per stage")

    # --- Open model (profiles rate, burst): arrivals at a rate, not users (users/open_model.py)
    target_rps: float = Field(100.0, gt=0, le=1_000_000, description="Operations started per second, whole run")
    rate_stages: Annotated[str, AfterValidator(_rate_stages)] = Field(
        "", description="Rate stages rate:duration,... reached linearly (overrides TARGET_RPS/RAMP)"
    )
    ramp: float = Field(0.0, ge=0, le=86_400, description="Seconds to ramp from 0 to TARGET_RPS")
    arrivals: Annotated[Literal["constant", "poisson"], Choice] = Field(
        "constant", description="Arrival spacing: constant or poisson"
    )
    max_in_flight: int = Field(0, ge=0, le=1_000_000, description="Cap on operations in flight (0: 2 s of arrivals)")
    rate_class: str = Field(
        "PaymentServiceUser", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="User class whose tasks arrive"
    )
    total: int = Field(1000, ge=1, le=1_000_000, description="Payments a burst sends")
    concurrency: int = Field(100, ge=1, le=100_000, description="Payments a burst keeps in flight")

    # --- SLO thresholds (reporting/thresholds.py); unset keeps the seeds' defaults
    slo_file: str | None = Field(None, description="Thresholds TOML file")
    slo_p50_ms: float | None = Field(None, ge=0, description="Global p50 limit, ms")
    slo_p95_ms: float | None = Field(None, ge=0, description="Global p95 limit, ms")
    slo_p99_ms: float | None = Field(None, ge=0, description="Global p99 limit, ms")
    slo_max_ms: float | None = Field(None, ge=0, description="Global max limit, ms")
    slo_error_rate: float | None = Field(None, ge=0, le=1, description="Global error-rate limit (fraction)")
    slo_min_rps: float | None = Field(None, ge=0, description="Global minimum requests per second")

    # --- Raw request log (reporting/request_log.py): the ground truth the summary is checked against
    request_log: str = Field("", description="File for one line per request (workers: <file>.worker<N>); empty: off")

    # --- Web UI
    web_host: str = Field("127.0.0.1", min_length=1, description="Interface the UI listens on")
    web_port: int = Field(8089, ge=1, le=65535, description="UI port")
    web_username: str | None = Field(None, description="UI login (required off loopback)")
    web_password: SecretStr | None = Field(None, description="UI password (required off loopback)")
    web_ui_allow_unauthenticated: bool = Field(False, description="Serve the UI off loopback without a login")
    flask_secret_key: SecretStr | None = Field(None, description="Session key of the UI login (default random)")

    # --- Metrics to dashboards (monitoring/): Datadog's conventional variables; OpenTelemetry's own
    # OTEL_* variables are read by its SDK
    metrics_sink: Annotated[Literal["none", "dogstatsd", "otel"], Choice] = Field(
        "none", description="Where live metrics go: none, dogstatsd (Datadog agent), otel (OTLP)"
    )
    dd_agent_host: str = Field("localhost", min_length=1, description="DogStatsD host (Datadog agent)")
    dd_dogstatsd_port: int = Field(8125, ge=1, le=65535, description="DogStatsD UDP port")
    dd_env: str | None = Field(None, description="Datadog env tag")
    dd_service: str = Field("payment-load-suite", min_length=1, description="Datadog service tag")
    dd_tags: str = Field("", description="Extra tags, comma-separated key:value")

    @field_validator("dd_tags")
    @classmethod
    def _dd_tags(cls, v: str) -> str:
        bad = [t for t in (p.strip() for p in v.split(",")) if t and (":" not in t or t.startswith(":"))]
        if bad:
            raise ValueError(f"tags must be comma-separated key:value pairs (bad: {', '.join(bad[:3])})")
        return v

    @field_validator("persona_shares")
    @classmethod
    def _shares(cls, v: str) -> str:
        parse_persona_shares(v)
        return v

    @field_validator("slo_file")
    @classmethod
    def _slo_file(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if not Path(v).is_file():
            raise ValueError("no such file (a thresholds TOML file, see thresholds.example.toml)")
        return v

    @field_validator("request_log")
    @classmethod
    def _request_log(cls, v: str) -> str:
        v = v.strip()
        if not v:
            return ""
        if Path(v).is_dir():
            raise ValueError("is a folder; name a file, e.g. reports/requests.tsv")
        problem = check_report_dir(str(Path(v).parent))
        if problem:
            raise ValueError(f"its folder {problem}; name a file in a writable folder")
        return v

    @field_validator(
        "users",
        "spawn_rate",
        "expect_workers",
        "stress_max_users",
        "stress_spawn_rate",
        "spike_peak_users",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator(
        "slo_p50_ms", "slo_p95_ms", "slo_p99_ms", "slo_max_ms", "slo_error_rate", "slo_min_rps", mode="before"
    )
    @classmethod
    def _blank_slo_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

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

    @property
    def target_url(self) -> str:
        """The PaymentService this run loads: LOCUST_HOST when set, else PAYMENT_SERVICE_URL."""
        return self.locust_host or self.payment_service_url

    @property
    def run_time_s(self) -> int | None:
        return parse_duration(self.run_time) if self.run_time else None

    def slo_overrides(self) -> dict[str, float]:
        """Global thresholds set through SLO_* variables: metric -> limit."""
        names = ("p50_ms", "p95_ms", "p99_ms", "max_ms", "error_rate", "min_rps")
        return {m: getattr(self, f"slo_{m}") for m in names if getattr(self, f"slo_{m}") is not None}

    def web_credentials(self) -> tuple[str, str] | None:
        password = self.web_password.get_secret_value() if self.web_password else ""
        return (self.web_username, password) if self.web_username and password else None


def check_report_dir(path: str) -> str | None:
    """None when the report folder exists or can be created, and a file can be written in it;
    else the reason. (Creates the folder: the run is about to write there.)"""
    try:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        return f"cannot create or write there ({exc.strerror or exc})"
    return None


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
        elif loc[0] in SECRETS:
            lines.append(f"config error: {var}: {msg}")  # never echo a secret
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
