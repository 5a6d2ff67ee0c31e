"""Live metrics to dashboards: DogStatsD (Datadog agent) or OpenTelemetry (OTLP), chosen by
``METRICS_SINK=none|dogstatsd|otel``. ``monitoring.hooks`` wires it into Locust; with the default
``none`` nothing is attached and a request costs nothing extra.

:data:`METRICS` is the catalogue of every metric family the suite emits, with its type and tags;
``monitoring/datadog-dashboard.json`` charts them (a test checks both directions), except the
ones listed in :data:`NOT_CHARTED`."""

from __future__ import annotations

PREFIX = "payment_suite"

# name -> (type, unit, tags beyond the common ones, what it is)
# Common tags on every metric: profile, run_id, dialect, role (local|master|worker), worker
# (workers only), service, env (DD_ENV) and DD_TAGS.
METRICS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    f"{PREFIX}.request.duration": (
        "distribution",
        "ms",
        ("endpoint", "method", "status_class", "user_class"),
        "Latency of each request (Locust's response time)",
    ),
    f"{PREFIX}.requests": (
        "count",
        "request",
        ("endpoint", "method", "status_class", "user_class"),
        "Requests made (equals Locust's request count)",
    ),
    f"{PREFIX}.request.errors": (
        "count",
        "request",
        ("endpoint", "method", "category", "user_class"),
        "Failed requests by the suite's failure category (equals Locust's failure count)",
    ),
    f"{PREFIX}.payments": (
        "count",
        "payment",
        ("outcome", "currency", "decline_code"),
        "Payments by outcome: approved, declined (with decline_code), rejected (fraud), failed, unknown",
    ),
    f"{PREFIX}.payments.volume": ("count", "minor unit", ("currency",), "Approved payment amounts, minor units"),
    f"{PREFIX}.authorizations": (
        "count",
        "authorization",
        ("outcome", "currency", "decline_code"),
        "Bank authorizations by outcome",
    ),
    f"{PREFIX}.captures": ("count", "capture", ("outcome",), "Captures by outcome"),
    f"{PREFIX}.refunds": ("count", "refund", ("kind", "outcome", "currency"), "Refunds (payment and bank) by outcome"),
    f"{PREFIX}.refunds.volume": (
        "count",
        "minor unit",
        ("kind", "currency"),
        "Succeeded refund amounts, minor units",
    ),
    f"{PREFIX}.money.mismatches": (
        "count",
        "mismatch",
        ("check",),
        "Reconciliation mismatches found at the end of the run, by check",
    ),
    f"{PREFIX}.users": ("gauge", "user", ("user_class",), "Running users (master or local process)"),
    f"{PREFIX}.rps": ("gauge", "request/s", (), "Current requests per second (master or local process)"),
    f"{PREFIX}.generator.cpu_percent": ("gauge", "percent", (), "CPU of each generator process"),
    f"{PREFIX}.generator.memory_rss": ("gauge", "byte", (), "Resident memory of each generator process"),
    f"{PREFIX}.runs": ("count", "run", ("phase", "verdict"), "Run starts and ends (with the verdict)"),
    f"{PREFIX}.thresholds.breached": ("count", "threshold", (), "SLO thresholds breached at the end of a run"),
}

# Emitted but deliberately left off the dashboard (run starts and ends are events as well).
NOT_CHARTED = frozenset({f"{PREFIX}.runs"})
