"""OpenTelemetry sink: the same metrics over OTLP (any collector, or the Datadog agent's OTLP
intake), configured by OpenTelemetry's own variables, read by its SDK:
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` (default
``http://localhost:4318``), ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_SERVICE_NAME``, ``OTEL_METRICS_EXPORTER`` (otlp, console, none),
``OTEL_METRIC_EXPORT_INTERVAL``.

Builds on Locust's ``--otel``: when Locust has set up its meter provider, the suite's instruments
join it (one exporter, Locust's ``locust.client.duration`` and ``locust.users.count`` alongside);
else the suite makes its own provider. Either way the defaults suit a load test sent to Datadog,
set only where the variable is unset: export every 10 s, delta temporality, and base-2
exponential histograms. Without the last, Locust's histogram (in seconds, default bounds
0, 5, 10, ... 10000) puts every request in its first bucket; the suite's own latency histogram
always gets an exponential aggregation through a view, whatever the exporter prefers.

The suite ships the OTLP/HTTP (protobuf) exporter: it works under gevent as it is (gRPC needs
gevent support initialised first), and both collectors and the Datadog agent (port 4318) take it.

A collector that refuses, never answers or answers slowly never holds the run up: exports during
the run happen in the reader's background greenlet; the ones at the end (before the summary and
the last one after it) share a 1.5 s budget (:mod:`monitoring.guard`); a failed export logs one
warning a minute (the exporter's own retry lines are kept quiet) and its points are counted as
dropped in the summary.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import gevent

from monitoring import METRICS, PREFIX
from monitoring.guard import EndBudget, WarnOncePerInterval

log = logging.getLogger("suite.metrics")

DEFAULTS = {
    "OTEL_METRIC_EXPORT_INTERVAL": "10000",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
    "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": "base2_exponential_bucket_histogram",
}
DURATION = f"{PREFIX}.request.duration"
# Shares of the end budget (monitoring.guard.END_BUDGET_S): each flush before the summary, then the
# last export after it (the one with the verdict), which gets what the flushes left.
FLUSH_SHARE_S = 0.5
CLOSE_SHARE_S = 1.0


def prepare_environment(environ=os.environ) -> None:
    """Before Locust reads them (``--otel``): the defaults above, where unset."""
    for name, value in DEFAULTS.items():
        environ.setdefault(name, value)


def _views() -> list:
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

    # 160 buckets at the best scale that fits the values seen: ~4 % relative error at most.
    return [View(instrument_name=DURATION, aggregation=ExponentialBucketHistogramAggregation(max_size=160))]


def _resource(settings):
    from opentelemetry.sdk.resources import Resource

    detected = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME win
    extra: dict[str, str] = {}
    if str(detected.attributes.get("service.name", "")).startswith("unknown_service"):
        extra["service.name"] = settings.dd_service
    if settings.dd_env and "deployment.environment.name" not in detected.attributes:
        extra["deployment.environment.name"] = settings.dd_env
    return detected.merge(Resource(extra))


def export_timeout_s(environ=os.environ) -> float | None:
    """The OTLP exporter's timeout for one export, retries included: the user's
    ``OTEL_EXPORTER_OTLP_(METRICS_)TIMEOUT`` if set (None: the exporter reads it), else half the
    export interval within 1-10 s, so a dead collector is known (and warned about) before the next
    export is due, not after the SDK's 10 s of retries."""
    if environ.get("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT") or environ.get("OTEL_EXPORTER_OTLP_TIMEOUT"):
        return None
    try:
        interval_s = float(environ.get("OTEL_METRIC_EXPORT_INTERVAL", DEFAULTS["OTEL_METRIC_EXPORT_INTERVAL"])) / 1000
    except ValueError:
        interval_s = 10.0
    return min(10.0, max(1.0, interval_s / 2))


def _exporters() -> list:
    names = {e.strip().lower() for e in os.getenv("OTEL_METRICS_EXPORTER", "otlp").split(",") if e.strip()}
    exporters = []
    if "console" in names:
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        exporters.append(ConsoleMetricExporter())
    if "otlp" in names:
        protocol = os.getenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", os.getenv("OTEL_EXPORTER_OTLP_PROTOCOL", ""))
        if protocol.strip().lower() == "grpc":
            log.warning("metrics: OTLP over gRPC is not installed with the suite; sending OTLP/HTTP (port 4318)")
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporters.append(OTLPMetricExporter(timeout=export_timeout_s()))
    return exporters


# The OTLP exporter's own loggers: a line per retry and per failure (13 lines for one dead
# collector at the end of a short run). Their text is kept as the reason of the suite's one warning.
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.common.http",
)


class _LastMessage(logging.Filter):
    """Swallows the exporter's log lines, keeping the recent ones for the failure's reason."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.texts = [*self.texts[-4:], record.getMessage()]
        return False


def _quiet_exporter_logs() -> _LastMessage:
    for name in _EXPORTER_LOGGERS:
        for f in logging.getLogger(name).filters:
            if isinstance(f, _LastMessage):
                return f
    keeper = _LastMessage()
    for name in _EXPORTER_LOGGERS:
        logging.getLogger(name).addFilter(keeper)
    return keeper


def _reason(texts: list[str]) -> str:
    """The useful end of the exporter's messages ("[Errno 111] Connection refused")."""
    for marker in ("[Errno", "Read timed out", "timed out", "code:"):
        for text in texts:
            if marker in text:
                return text[text.index(marker) :].split(")")[0].rstrip("\"'. ")[:120]
    return texts[-1][:120] if texts else "no answer"


class _ExportLedger:
    """What the exports of one backend did, for the run summary, and the one warning a minute."""

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self.counts = dict.fromkeys(
            ("exports_ok", "exports_failed", "exports_skipped", "points_sent", "points_dropped"), 0
        )
        self.budget = EndBudget()
        self.warner = WarnOncePerInterval()
        self.in_flight: dict[int, int] = {}  # export number -> points (an export in progress)
        self.exports = 0

    def begin(self, points: int) -> int:
        self.exports += 1
        self.in_flight[self.exports] = points
        return self.exports

    def done(self, number: int, ok: bool, reason: str = "") -> None:
        points = self.in_flight.pop(number, None)
        if points is None:  # abandoned at the end of the run: counted already
            return
        if ok:
            self.counts["exports_ok"] += 1
            self.counts["points_sent"] += points
        else:
            self.failed(points, reason)

    def failed(self, points: int, reason: str) -> None:
        self.counts["exports_failed"] += 1
        self.counts["points_dropped"] += points
        if self.budget.started:
            self.budget.given_up = True
        self.warner.warn(f"metrics: OTLP export to {self.destination} failed ({reason}); the run goes on")

    def skipped(self, points: int) -> None:
        self.counts["exports_skipped"] += 1
        self.counts["points_dropped"] += points

    def abandon_in_flight(self, reason: str) -> None:
        """The end of the run stops waiting: exports still in progress count as failed now."""
        for number in list(self.in_flight):
            self.failed(self.in_flight.pop(number), reason)


class _Guarded:
    """Wraps an exporter: each export's result goes to the ledger; at the end of a run an export
    gets only what is left of the end budget (:mod:`monitoring.guard`), or is skipped."""

    def __init__(self, inner, ledger: _ExportLedger) -> None:
        from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

        last_message = _quiet_exporter_logs()
        budget = ledger.budget

        class Exporter(MetricExporter):
            def __init__(self) -> None:
                super().__init__(inner._preferred_temporality, inner._preferred_aggregation)

            def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
                points = sum(
                    len(m.data.data_points)
                    for rm in metrics_data.resource_metrics
                    for sm in rm.scope_metrics
                    for m in sm.metrics
                )
                seconds = None  # during the run: the exporter's own timeout (a background greenlet)
                if budget.started:
                    seconds = budget.remaining if not budget.given_up else 0.0
                    if seconds < 0.05:
                        ledger.skipped(points)
                        return MetricExportResult.FAILURE
                number = ledger.begin(points)
                last_message.texts = []
                timer = gevent.Timeout(seconds)
                try:
                    with timer:
                        result = inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
                except gevent.Timeout as exc:
                    # ours, or the end budget's around the whole flush (same greenlet): counted
                    # either way, and the budget's goes on up to it
                    ledger.done(number, False, "no answer in time at the end of the run")
                    if exc is not timer:
                        raise
                    return MetricExportResult.FAILURE
                except Exception as exc:  # an exporter error never reaches the run
                    ledger.done(number, False, str(exc)[:120])
                    return MetricExportResult.FAILURE
                ok = result == MetricExportResult.SUCCESS
                ledger.done(number, ok, _reason(last_message.texts))
                return result

            def force_flush(self, timeout_millis: float = 10_000) -> bool:
                return inner.force_flush(timeout_millis)

            def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
                inner.shutdown(timeout_millis=timeout_millis)

        self.exporter = Exporter()


class _Tags:
    """One attribute set, hashed by identity (the collector caches one per tag combination)."""

    __slots__ = ("attrs", "key")

    def __init__(self, attrs: dict[str, str]) -> None:
        self.attrs = attrs
        self.key = tuple(sorted(attrs.items()))


class OtelBackend:
    """Cheap on the hot path: counters are tallied in a dict and reported by observable counters
    when the reader collects (cumulative; exported as delta where that is preferred); only the
    latency histogram records each value in the SDK, with the few per-request attributes. The
    common tags (profile, run id, role, worker, dialect, DD_TAGS) are resource attributes of the
    suite's own provider; joined to Locust's ``--otel`` provider they are metric attributes."""

    name = "otel"

    def __init__(self, settings, readers: list | None = None) -> None:
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider

        self.settings = settings
        self._readers = readers
        current = metrics.get_meter_provider()
        self.provider = current if readers is None and isinstance(current, MeterProvider) else None
        self.owned = self.provider is None
        self.destination = (
            "Locust's --otel meter provider"
            if not self.owned
            else os.getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", os.getenv("OTEL_EXPORTER_OTLP_ENDPOINT", ""))
            or "http://localhost:4318"
        )
        self.ledger = _ExportLedger(self.destination)
        self.meter = None
        self._dd_tags = dict(t.strip().split(":", 1) for t in settings.dd_tags.split(",") if t.strip() and ":" in t)
        self.constant: dict[str, str] = dict(self._dd_tags)
        self._attr_constant: dict[str, str] = {}
        self._instruments: dict[str, Any] = {}
        self._tallies: dict[str, dict[_Tags, float]] = {}

    def _start(self) -> None:
        """The provider, made on first use: by then the common tags are final (a worker learns
        the run id and profile from the master's spawn message)."""
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource

        if self.provider is None:
            readers = self._readers
            if readers is None:
                guarded = [_Guarded(e, self.ledger).exporter for e in _exporters()]
                readers = [PeriodicExportingMetricReader(e) for e in guarded]
            resource = _resource(self.settings).merge(Resource(self.constant))
            # no exit handler: its shutdown would export again, unbounded, after the run's own
            self.provider = MeterProvider(
                metric_readers=readers, resource=resource, views=_views(), shutdown_on_exit=False
            )
        else:
            self._attr_constant = dict(self.constant)
        self.meter = self.provider.get_meter("payment_suite")

    def _instrument(self, metric: str):
        inst = self._instruments.get(metric)
        if inst is None:
            kind, unit, _tags, description = METRICS.get(metric, ("count", "", (), ""))
            unit = {"ms": "ms", "byte": "By", "percent": "%"}.get(unit, "{" + unit.replace(" ", "_") + "}")
            if kind == "count":
                tally = self._tallies[metric] = {}
                inst = self.meter.create_observable_counter(
                    metric, callbacks=[_observe(tally)], unit=unit, description=description
                )
            else:
                create = self.meter.create_histogram if kind == "distribution" else self.meter.create_gauge
                inst = create(metric, unit=unit, description=description)
            self._instruments[metric] = inst
        return inst

    def tags(self, values: dict[str, str]) -> _Tags:
        if self.meter is None:
            self._start()
        return _Tags({**self._attr_constant, **values})

    def set_constant_tags(self, values: dict[str, str]) -> None:
        self.constant = {**self._dd_tags, **values}
        if self.meter is not None and not self.owned:
            self._attr_constant = dict(self.constant)

    def distribution(self, metric: str, value: float, tags: _Tags) -> None:
        self._instrument(metric).record(value, tags.attrs)

    def count(self, metric: str, value: float, tags: _Tags) -> None:
        tally = self._tallies.get(metric)
        if tally is None:
            self._instrument(metric)
            tally = self._tallies[metric]
        tally[tags] = tally.get(tags, 0) + value

    def gauge(self, metric: str, value: float, tags: _Tags) -> None:
        self._instrument(metric).set(value, tags.attrs)

    def event(self, title: str, text: str, alert_type: str, tags: Any) -> None:
        # OTLP metrics have no events: a log line (exported as an OTel log with Locust's --otel),
        # and the payment_suite.runs counter carries the phase and verdict.
        log.info("%s | %s", title, text.replace("\n", " | "))

    def stats(self) -> dict[str, Any]:
        return dict(self.ledger.counts)

    def flush(self) -> None:
        """Export now (before the summary), within the end-of-run budget."""
        if self.provider is not None:
            provider = self.provider
            self._bounded(lambda seconds: provider.force_flush(timeout_millis=seconds * 1000), FLUSH_SHARE_S)

    def close(self) -> None:
        """The last export (after the summary: the end event's counters), within what is left of the budget."""
        if self.provider is None:
            return
        provider = self.provider
        if self.owned:
            self._bounded(lambda seconds: provider.shutdown(timeout_millis=seconds * 1000), CLOSE_SHARE_S)
        else:
            self._bounded(lambda seconds: provider.force_flush(timeout_millis=seconds * 1000), CLOSE_SHARE_S)

    def _bounded(self, call, share: float) -> None:
        outcome = self.ledger.budget.run(call, share)
        if outcome == "timeout":  # e.g. waiting on a background export to a silent collector
            self.ledger.abandon_in_flight("no answer in time at the end of the run")


def _observe(tally: dict[_Tags, float]):
    def callback(_options):
        from opentelemetry.metrics import Observation

        merged: dict[tuple, float] = {}
        for tags, value in list(tally.items()):
            merged[tags.key] = merged.get(tags.key, 0) + value
        return [Observation(value, dict(key)) for key, value in merged.items()]

    return callback
