"""Locust wiring of the metrics sinks (imported by ``locustfile.py``).

``METRICS_SINK=none`` (the default) attaches nothing: no listener, no greenlet, no import of a
metrics library. Otherwise:

- local run: requests, money, gauges and the run's start/end events, all from this process;
- distributed run: each worker sends its own requests and money (tagged ``worker:<index>``) and
  its CPU/memory; the master sends only what is its own: users, RPS, its CPU/memory and the
  events. The master fires no request events for the workers' requests and folds their ledger
  records without re-recording them, so nothing is counted twice.

The run id tag is the master's (or the local process's) and reaches the workers with Locust's
spawn message, like the suite's other options. A sink that cannot start logs one warning and the
run goes on without metrics."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from locust import events
from locust.runners import MasterRunner, WorkerRunner

import options
from config import get_settings
from money.ledger import LEDGER
from monitoring.collector import Collector
from reporting.sections import RunContext, Section, register

log = logging.getLogger("suite.metrics")
RUN_ID_OPTION = "suite_metrics_run_id"  # set on the master's options, read by the workers

SINK = get_settings().metrics_sink
COLLECTOR: Collector | None = None

if SINK == "otel":
    from monitoring import otel

    otel.prepare_environment()  # before Locust's --otel reads OpenTelemetry's variables


def make_backend(sink: str, settings):
    if sink == "dogstatsd":
        from monitoring.dogstatsd import DogStatsdBackend

        return DogStatsdBackend(settings)
    if sink == "otel":
        from monitoring.otel import OtelBackend

        return OtelBackend(settings)
    raise ValueError(f"unknown metrics sink {sink!r}")


def _role(runner) -> str:
    if isinstance(runner, MasterRunner):
        return "master"
    if isinstance(runner, WorkerRunner):
        return "worker"
    return "local"


def _constants(environment, role: str) -> dict[str, str]:
    from users.base import RUN_ID

    opts = environment.parsed_options
    run_id = (getattr(opts, RUN_ID_OPTION, None) if role == "worker" else None) or RUN_ID
    values = {"profile": str(getattr(opts, "profile_name", None) or "adhoc"), "run_id": str(run_id)}
    if role == "worker":
        values["worker"] = str(getattr(environment.runner, "worker_index", 0))
    return values


@events.init.add_listener
def on_init(environment, **_kwargs) -> None:
    global COLLECTOR
    if SINK == "none" or COLLECTOR is not None:
        return
    try:
        backend = make_backend(SINK, get_settings())
    except Exception as exc:  # metrics never stop a load test
        log.warning("metrics: %s sink not started (%s); the run goes on without metrics", SINK, exc)
        return
    role = _role(environment.runner)
    COLLECTOR = Collector(backend)
    COLLECTOR.configure(role, _constants(environment, role))
    if role == "master" and environment.parsed_options is not None:
        setattr(environment.parsed_options, RUN_ID_OPTION, COLLECTOR.constant["run_id"])
    if role != "master":
        environment.events.request.add_listener(COLLECTOR.on_request)
        LEDGER.listeners.append(COLLECTOR.on_money)
    log.info("metrics: %s -> %s (run id %s)", SINK, getattr(backend, "destination", "?"), COLLECTOR.constant["run_id"])


@events.test_start.add_listener
def on_test_start(environment, **_kwargs) -> None:
    if COLLECTOR is None:
        return
    try:
        COLLECTOR.ended = False
        if COLLECTOR.role == "worker":
            # the master's profile and run id arrived with the spawn message
            COLLECTOR.configure("worker", _constants(environment, "worker"))
        else:
            opts = environment.parsed_options
            COLLECTOR.run_started(COLLECTOR.constant["profile"], getattr(opts, "num_users", None))
        COLLECTOR.start_gauges(environment.runner)
    except Exception as exc:  # metrics never break a run
        log.warning("metrics: start failed: %s", exc)


@events.test_stop.add_listener
def on_test_stop(environment, **_kwargs) -> None:
    if COLLECTOR is None:
        return
    try:
        COLLECTOR.send_gauges(environment.runner)
        COLLECTOR.backend.flush()
    except Exception as exc:
        log.warning("metrics: flush failed: %s", exc)


# Locust fires ``quitting`` in reverse order of registration: registered at import, before
# reporting.hooks (locustfile.py imports this module first), this runs after the summary is
# written, so the end event carries the verdict (tests/test_metrics.py checks it does).
@events.quitting.add_listener
def on_quitting(environment, **_kwargs) -> None:
    if COLLECTOR is None or COLLECTOR.ended:
        return
    try:
        if COLLECTOR.role != "worker":
            COLLECTOR.run_ended(COLLECTOR.constant["profile"], _summary(environment))
    except Exception as exc:
        log.warning("metrics: end event failed: %s", exc)
    COLLECTOR.close(environment.runner)


def _summary(environment) -> dict | None:
    folder = options.report_dir(environment)
    profile = getattr(environment.parsed_options, "profile_name", None)
    path = Path(folder) / f"{profile}-summary.json" if folder and profile else None
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path and path.is_file() else None
    except (OSError, ValueError):
        return None


class MetricsSection(Section):
    """Where the metrics went and how many packets (DogStatsD) or points (OTLP) were sent or
    dropped, per process. Never fails a run."""

    name = "metrics"
    order = 90

    def __init__(self) -> None:
        self.workers: dict[str, dict[str, Any]] = {}

    def prepare(self, run: RunContext) -> None:
        if COLLECTOR is not None:
            try:
                COLLECTOR.backend.flush()
            except Exception as exc:
                log.debug("metrics: flush failed: %s", exc)

    def build(self, run: RunContext) -> dict[str, Any] | None:
        if COLLECTOR is None:
            return None
        backend = COLLECTOR.backend
        own = {"role": COLLECTOR.role, "requests": COLLECTOR.requests, **backend.stats()}
        return {
            "sink": backend.name,
            "destination": getattr(backend, "destination", ""),
            "run_id": COLLECTOR.constant.get("run_id"),
            "processes": [own, *self.workers.values()],
            "note": "sent before the end event; the end event and last gauges follow the summary",
        }

    def markdown(self, data: dict[str, Any]) -> list[str]:
        lines = [f"### Metrics: {data['sink']} -> {data['destination']} (run id `{data['run_id']}`)", ""]
        for p in data["processes"]:
            figures = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in p.items() if k != "role")
            lines.append(f"- {p['role']}: {figures}")
        return lines

    def worker_report(self) -> dict[str, Any] | None:
        if COLLECTOR is None:
            return None
        return {
            "role": f"worker {COLLECTOR.constant.get('worker', '?')}",
            "requests": COLLECTOR.requests,
            **COLLECTOR.backend.stats(),
        }

    def merge_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        self.workers[client_id] = data  # cumulative figures: the latest report replaces the last


SECTION = register(MetricsSection())
