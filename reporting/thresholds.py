"""SLO thresholds: defaults from the seeds, a TOML file, and environment overrides.

File format (``thresholds.toml``)::

    [global]
    p95_ms = 500
    error_rate = 0.01

    [endpoints."POST /payments"]
    p95_ms = 300
    p99_corrected_ms = 500      # counted from when the request was due (open-model profiles)

    [operations."POST /payments"]   # the burst profile's per-operation targets (seed 004)
    p95_ms = 150
    min_rps = 1000
    max_error_rate = 0.001
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reporting.verdict import format_value

# Latency metrics counted from when each request was due (corrected for coordinated omission):
# only the open-model profiles (users/open_model.py) measure them, and register their figures below.
CORRECTED_METRICS = tuple(f"{p}_corrected_ms" for p in ("p50", "p95", "p99", "p999", "max"))
METRICS = ("p50_ms", "p95_ms", "p99_ms", "max_ms", "error_rate", "min_rps", *CORRECTED_METRICS)
# The burst profile's per-operation targets ([operations."NAME"]); seed 004's by default.
OPERATION_METRICS = ("p50_ms", "p95_ms", "p99_ms", "max_ms", "min_rps", "max_error_rate")
# Defaults for "the payment" apply to the request names of plain payments in the run's dialect
# (``payment_names`` of the binding: ``POST /payments`` and ``POST /pay`` for the contract).
PAYMENT = "payment"
OPERATION_DEFAULTS: dict[str, dict[str, float]] = {
    PAYMENT: {"p95_ms": 150, "min_rps": 1000, "max_error_rate": 0.001},
}
# Seed 001: p50 < 100 ms, p95 < 500 ms, errors < 1 %; seed 002: payments p95 <= 300, p99 <= 500.
DEFAULTS: dict[str, dict[str, float]] = {
    "global": {"p50_ms": 100, "p95_ms": 500, "error_rate": 0.01},
    PAYMENT: {"p95_ms": 300, "p99_ms": 500},
}


def _by_payment_names(table: dict[str, dict[str, float]], first_only: bool = False) -> dict[str, dict[str, float]]:
    import apis

    names = apis.current().payment_names[:1] if first_only else apis.current().payment_names
    out = {scope: dict(values) for scope, values in table.items() if scope != PAYMENT}
    for name in names:
        out.setdefault(name, dict(table[PAYMENT]))
    return out


_LATENCY_BASIS = {"basis": "service"}
_FIGURE_SOURCES: list[Callable[[], dict[str, dict[str, float]]]] = []


def use_corrected_defaults() -> None:
    """The default latency limits apply to the corrected latencies (the open-model ``rate``
    profile: its locustfile calls this on import, before the thresholds are loaded)."""
    _LATENCY_BASIS["basis"] = "corrected"


def _defaults() -> dict[str, dict[str, float]]:
    table = _by_payment_names(DEFAULTS)
    if _LATENCY_BASIS["basis"] == "corrected":
        for values in table.values():
            for metric in [m for m in values if m in ("p50_ms", "p95_ms", "p99_ms", "max_ms")]:
                values[metric.removesuffix("_ms") + "_corrected_ms"] = values.pop(metric)
    return table


def register_figures(source: Callable[[], dict[str, dict[str, float]]]) -> None:
    """A source of figures the core summary does not compute ({scope: {metric: value}}, scope
    "global" or an endpoint, each with "requests"): the corrected latencies."""
    if source not in _FIGURE_SOURCES:
        _FIGURE_SOURCES.append(source)


def extra_figures() -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for source in _FIGURE_SOURCES:
        for scope, values in source().items():
            out.setdefault(scope, {}).update(values)
    return out


class ThresholdError(ValueError):
    """A thresholds file or override that cannot be used; the message names it."""


@dataclass
class Threshold:
    scope: str  # "global" or an endpoint name
    metric: str
    limit: float

    def describe(self) -> str:
        """``global error_rate <= 1.00 %``: the limit in the metric's unit (ms, req/s, %)."""
        op = ">=" if self.metric == "min_rps" else "<="
        return f"{self.scope} {self.metric.removesuffix('_ms')} {op} {format_value(self.metric, self.limit)}"


def _check_metrics(scope: str, values: dict, source: str) -> dict[str, float]:
    out = {}
    for metric, value in values.items():
        if metric not in METRICS:
            raise ThresholdError(f"{source}: unknown metric {metric!r} in [{scope}]; allowed: {', '.join(METRICS)}")
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ThresholdError(f"{source}: {scope}.{metric} must be a non-negative number, got {value!r}")
        if metric == "error_rate" and value > 1:
            raise ThresholdError(f"{source}: {scope}.error_rate is a fraction in 0..1, got {value!r}")
        out[metric] = float(value)
    return out


def load_thresholds(path: str | Path | None = None, overrides: dict[str, float] | None = None) -> list[Threshold]:
    """Defaults, then the TOML file at ``path``, then ``overrides`` of the global limits (the
    SLO_* settings: metric -> limit)."""
    table = _defaults()
    if path:
        p = Path(path)
        if not p.is_file():
            raise ThresholdError(f"SLO_FILE={str(path)!r}: no such file")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ThresholdError(f"SLO_FILE={str(path)!r}: not valid TOML ({exc})") from None
        unknown = set(data) - {"global", "endpoints", "operations"}
        if unknown:
            raise ThresholdError(
                f"SLO_FILE={str(path)!r}: unknown section(s) {sorted(unknown)}; "
                'use [global], [endpoints."NAME"] and [operations."NAME"]'
            )
        load_operations(p)  # checked here, so a bad [operations] table stops the run at start
        table["global"].update(_check_metrics("global", data.get("global", {}), str(path)))
        for name, values in data.get("endpoints", {}).items():
            table.setdefault(name, {}).update(_check_metrics(name, values, str(path)))
    for metric, value in (overrides or {}).items():
        table["global"].update(_check_metrics("global", {metric: value}, f"SLO_{metric.upper()}"))
    return [Threshold(scope, metric, limit) for scope, values in table.items() for metric, limit in values.items()]


def load_operations(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """The per-operation targets of a burst: ``[operations."NAME"]`` of the thresholds file, or
    seed 004's defaults when the file has none (``max_error_rate`` a fraction, ``min_rps`` the
    operation's rate over the burst)."""
    data: dict = {}
    if path and Path(path).is_file():
        try:
            data = tomllib.loads(Path(path).read_text()).get("operations", {})
        except tomllib.TOMLDecodeError as exc:
            raise ThresholdError(f"SLO_FILE={str(path)!r}: not valid TOML ({exc})") from None
    if not data:
        return _by_payment_names(OPERATION_DEFAULTS, first_only=True)
    out: dict[str, dict[str, float]] = {}
    for name, values in data.items():
        if not isinstance(values, dict):
            raise ThresholdError(f'{path}: [operations."{name}"] must be a table')
        for metric, value in values.items():
            if metric not in OPERATION_METRICS:
                raise ThresholdError(
                    f"{path}: unknown metric {metric!r} in [operations.{name!r}]; "
                    f"allowed: {', '.join(OPERATION_METRICS)}"
                )
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ThresholdError(f"{path}: operations.{name}.{metric} must be a non-negative number, got {value!r}")
            if metric == "max_error_rate" and value > 1:
                raise ThresholdError(f"{path}: operations.{name}.max_error_rate is a fraction in 0..1, got {value!r}")
        out[name] = {m: float(v) for m, v in values.items()}
    return out
