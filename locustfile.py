"""Payment Service ecosystem load test: the four user classes and suite-wide event hooks.

locust -f locustfile.py                      # web UI on http://127.0.0.1:8089
locust -f locustfile.py --headless -u 20 -r 2 -t 60s --html reports/run.html
"""

from __future__ import annotations

import logging

from locust import events

import locust_fixes  # noqa: F401 - the run-time limit from a fresh clock; an exception in a loop logged once
import money.hooks  # noqa: F401 - the ledger and the end-of-run reconciliation
import monitoring.hooks  # noqa: F401 - live metrics to DogStatsD or OpenTelemetry (METRICS_SINK)
import options  # noqa: F401 - the suite's command-line options
import reporting.hooks  # noqa: F401 - registers the summary, SLO gate and integrity checks
import reporting.latency  # noqa: F401 - the one latency record: Locust's bucketer at 0.1 % relative accuracy
import reporting.memory  # noqa: F401 - bounds Locust's per-second counters and per-endpoint caches
import reporting.progress  # noqa: F401 - the live progress line; Locust's table once at the end (after reporting.hooks)
import reporting.request_log  # noqa: F401 - REQUEST_LOG: one raw line per request (unset: no listener)
import reporting.timeline  # noqa: F401 - per-endpoint percentiles over time for the HTML summary (charts)
import webui.access  # noqa: F401 - the UI stays on loopback unless a login protects it
import webui.slo_tab  # noqa: F401 - live SLO view in the UI
from config import get_settings
from users import BankingAPIUser, FailureSimulationUser, PaymentServiceUser, RealisticTrafficUser

settings = get_settings()  # a bad setting stops here: one line per variable, exit 2

__all__ = ["BankingAPIUser", "FailureSimulationUser", "PaymentServiceUser", "RealisticTrafficUser"]


@events.test_start.add_listener
def announce_targets(environment, **_kwargs) -> None:
    classes = ", ".join(f"{c.__name__}(weight {c.weight})" for c in environment.user_classes)
    logging.info(
        "PaymentService %s | BankingAPI %s | users: %s",
        environment.host or settings.target_url,
        settings.banking_api_url,
        classes,
    )
