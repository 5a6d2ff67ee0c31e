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
"""

from __future__ import annotations

import logging
import os
from typing import Any

from monitoring import METRICS, PREFIX

log = logging.getLogger("suite.metrics")

DEFAULTS = {
    "OTEL_METRIC_EXPORT_INTERVAL": "10000",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
    "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": "base2_exponential_bucket_histogram",
}
DURATION = f"{PREFIX}.request.duration"


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

        exporters.append(OTLPMetricExporter())
    return exporters


class _Counting:
    """Wraps an exporter to count export results for the run summary."""

    def __init__(self, inner, stats: dict[str, int]) -> None:
        from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

        class Exporter(MetricExporter):
            def __init__(self) -> None:
                super().__init__(inner._preferred_temporality, inner._preferred_aggregation)

            def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
                try:
                    result = inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
                except Exception as exc:  # an exporter error never reaches the run
                    log.debug("metrics: OTLP export failed: %s", exc)
                    result = MetricExportResult.FAILURE
                points = sum(
                    len(m.data.data_points)
                    for rm in metrics_data.resource_metrics
                    for sm in rm.scope_metrics
                    for m in sm.metrics
                )
                key = "exports_ok" if result == MetricExportResult.SUCCESS else "exports_failed"
                stats[key] += 1
                stats["points_sent" if key == "exports_ok" else "points_dropped"] += points
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
        self.counts = {"exports_ok": 0, "exports_failed": 0, "points_sent": 0, "points_dropped": 0}
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
                readers = [PeriodicExportingMetricReader(_Counting(e, self.counts).exporter) for e in _exporters()]
            resource = _resource(self.settings).merge(Resource(self.constant))
            self.provider = MeterProvider(metric_readers=readers, resource=resource, views=_views())
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
        return dict(self.counts)

    def flush(self) -> None:
        if self.provider is not None:
            self.provider.force_flush(timeout_millis=5000)

    def close(self) -> None:
        if self.provider is None:
            return
        if self.owned:
            self.provider.shutdown(timeout_millis=5000)  # collects and exports one last time
        else:
            self.provider.force_flush(timeout_millis=5000)


def _observe(tally: dict[_Tags, float]):
    def callback(_options):
        from opentelemetry.metrics import Observation

        merged: dict[tuple, float] = {}
        for tags, value in list(tally.items()):
            merged[tags.key] = merged.get(tags.key, 0) + value
        return [Observation(value, dict(key)) for key, value in merged.items()]

    return callback
