"""SLO thresholds: defaults from the seeds, a TOML file, and environment overrides.

File format (``thresholds.toml``)::

    [global]
    p95_ms = 500
    error_rate = 0.01

    [endpoints."POST /payments"]
    p95_ms = 300
    p99_ms = 500
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

METRICS = ("p50_ms", "p95_ms", "p99_ms", "max_ms", "error_rate", "min_rps")
# Seed 001: p50 < 100 ms, p95 < 500 ms, errors < 1 %; seed 002: payments p95 <= 300, p99 <= 500.
DEFAULTS: dict[str, dict[str, float]] = {
    "global": {"p50_ms": 100, "p95_ms": 500, "error_rate": 0.01},
    "POST /payments": {"p95_ms": 300, "p99_ms": 500},
    "POST /pay": {"p95_ms": 300, "p99_ms": 500},
}


class ThresholdError(ValueError):
    """A thresholds file or override that cannot be used; the message names it."""


@dataclass
class Threshold:
    scope: str  # "global" or an endpoint name
    metric: str
    limit: float

    def describe(self) -> str:
        unit = " ms" if self.metric.endswith("_ms") else (" req/s" if self.metric == "min_rps" else "")
        op = ">=" if self.metric == "min_rps" else "<="
        limit = f"{self.limit:.2%}" if self.metric == "error_rate" else f"{self.limit:g}{unit}"
        return f"{self.scope} {self.metric.removesuffix('_ms')} {op} {limit}"


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
    table = {scope: dict(values) for scope, values in DEFAULTS.items()}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ThresholdError(f"SLO_FILE={str(path)!r}: no such file")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ThresholdError(f"SLO_FILE={str(path)!r}: not valid TOML ({exc})") from None
        unknown = set(data) - {"global", "endpoints"}
        if unknown:
            raise ThresholdError(
                f'SLO_FILE={str(path)!r}: unknown section(s) {sorted(unknown)}; use [global] and [endpoints."NAME"]'
            )
        table["global"].update(_check_metrics("global", data.get("global", {}), str(path)))
        for name, values in data.get("endpoints", {}).items():
            table.setdefault(name, {}).update(_check_metrics(name, values, str(path)))
    for metric, value in (overrides or {}).items():
        table["global"].update(_check_metrics("global", {metric: value}, f"SLO_{metric.upper()}"))
    return [Threshold(scope, metric, limit) for scope, values in table.items() for metric, limit in values.items()]
