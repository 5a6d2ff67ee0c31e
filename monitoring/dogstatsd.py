"""DogStatsD sink: Datadog's own client (the ``datadog`` package) over UDP to the agent.

Non-blocking by construction: UDP never waits for a receiver, the socket is non-blocking
(``socket_timeout=0``), and the client buffers lines into packets (``disable_buffering=False``)
and aggregates counts and gauges (``disable_aggregation=False``), flushing every 0.3 s from its
own flush thread (a greenlet under Locust). An absent agent costs the same as a present one: the
packets go nowhere. Latency is a *distribution* (``|d``): the agent forwards every value and
Datadog merges them across hosts and workers, so percentiles stay right in distributed runs.

The client's own telemetry metrics are never sent (they would be metric names the dashboard does
not know); its counters of packets sent and dropped are still kept, for the run summary."""

from __future__ import annotations

import logging
import time
from typing import Any

from datadog.dogstatsd.base import DogStatsd

from monitoring.guard import QUIET_S, EndBudget

log = logging.getLogger("suite.metrics")
_NEVER = 10**9  # seconds: the client's telemetry flush interval, i.e. never flushed


class _OncePerInterval(logging.Filter):
    """The client logs every failed send (no agent listening: ECONNREFUSED on each flush). Let one
    through per interval; the drops are counted in the run summary all the same."""

    def __init__(self) -> None:
        super().__init__()
        self.last = -QUIET_S

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        now = time.monotonic()
        if now - self.last < QUIET_S:
            return False
        self.last = now
        record.msg = f"{record.msg} (repeats within {QUIET_S:.0f} s not logged; drops counted in the summary)"
        return True


def constant_tags(settings) -> list[str]:
    """service, env and DD_TAGS from the settings model (so ``.env`` counts too)."""
    tags = [f"service:{settings.dd_service}"]
    if settings.dd_env:
        tags.append(f"env:{settings.dd_env}")
    tags += [t.strip() for t in settings.dd_tags.split(",") if t.strip()]
    return tags


class DogStatsdBackend:
    name = "dogstatsd"

    def __init__(self, settings) -> None:
        self.host, self.port = settings.dd_agent_host, settings.dd_dogstatsd_port
        client_log = logging.getLogger("datadog.dogstatsd")
        if not any(isinstance(f, _OncePerInterval) for f in client_log.filters):
            client_log.addFilter(_OncePerInterval())
        self.base_tags = constant_tags(settings)
        self.client = DogStatsd(
            host=self.host,
            port=self.port,
            disable_buffering=False,
            disable_aggregation=False,
            disable_telemetry=False,  # counters kept for the summary ...
            telemetry_min_flush_interval=_NEVER,  # ... but never sent as metrics
            socket_timeout=0,
            origin_detection_enabled=False,
            track_instance=False,
        )
        # The client also reads DD_ENV/DD_SERVICE/DD_VERSION/DATADOG_TAGS from the environment:
        # keep each tag once, the settings' value first.
        self._env_tags = [t for t in self.client.constant_tags if t.split(":", 1)[0] not in ("service", "env")]
        self.client.constant_tags = _unique(self.base_tags + self._env_tags)
        self.samples = 0
        self.events = 0
        self.budget = EndBudget()

    @property
    def destination(self) -> str:
        return f"udp://{self.host}:{self.port}"

    def tags(self, values: dict[str, str]) -> list[str]:
        return [f"{k}:{v}" for k, v in values.items()]

    def set_constant_tags(self, values: dict[str, str]) -> None:
        self.client.constant_tags = _unique([f"{k}:{v}" for k, v in values.items()] + self.base_tags + self._env_tags)

    def distribution(self, metric: str, value: float, tags: Any) -> None:
        self.client.distribution(metric, value, tags)

    def count(self, metric: str, value: float, tags: Any) -> None:
        self.client.increment(metric, value, tags)

    def gauge(self, metric: str, value: float, tags: Any) -> None:
        self.client.gauge(metric, value, tags)

    def event(self, title: str, text: str, alert_type: str, tags: Any) -> None:
        self.events += 1
        try:
            self.client.event(title, text, alert_type=alert_type, source_type_name="locust", tags=tags)
        except ValueError as exc:  # over 8 KB: never the case for ours, never fatal either
            log.warning("metrics: event not sent: %s", exc)

    def stats(self) -> dict[str, Any]:
        c = self.client
        return {
            "packets_sent": c.packets_sent,
            "bytes_sent": c.bytes_sent,
            "packets_dropped": c.packets_dropped,
            "bytes_dropped": c.bytes_dropped,
        }

    def flush(self) -> None:
        # UDP on a non-blocking socket cannot wait for the agent; the budget still bounds a slow
        # name lookup of DD_AGENT_HOST (the client resolves it when it opens its socket).
        self.budget.run(lambda _s: self._flush_now(), 0.5)

    def _flush_now(self) -> None:
        self.client.flush_aggregated_metrics()
        self.client.flush_buffered_metrics()

    def close(self) -> None:
        # stop() drains the client's sender and flushes once more; its timeout is not a strict
        # bound (the client's own words), the budget's gevent timeout is.
        self.budget.run(lambda seconds: self.client.stop(timeout=seconds), 1.0)


def _unique(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))
