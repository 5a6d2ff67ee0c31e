"""Run integrity: is this run's measurement itself to be trusted? (generator CPU, workers,
interruptions, exceptions in user code or event handlers). Each problem fails the run as "run
integrity in doubt", exit 5 (``reporting.verdict``)."""

from __future__ import annotations

import time

from locust import log as locust_log
from locust.runners import MasterRunner

from reporting.run import Run


def problems(environment, run: Run) -> list[str]:
    runner, opts = environment.runner, environment.parsed_options
    found = []
    if runner is not None and (runner.cpu_warning_emitted or getattr(runner, "worker_cpu_warning_emitted", False)):
        found.append("load generator CPU saturated (>90 %): latencies include the generator's own queueing")
    if isinstance(runner, MasterRunner):
        expected = getattr(opts, "expect_workers", 1) or 1
        if run.max_workers < expected:
            found.append(f"only {run.max_workers} of {expected} expected workers were connected")
        if run.workers_unreported:
            found.append(
                f"no final stats report from worker(s) {sorted(run.workers_unreported)}: their last requests are"
                " missing from the totals"
            )
        if run.workers_lost:
            found.append(f"{len(run.workers_lost)} worker(s) lost during the run: {sorted(run.workers_lost)}")
    planned = getattr(opts, "run_time", None)
    elapsed = time.time() - run.started_at
    # A LoadTestShape may end early on purpose (stress stops at the breaking point), so only
    # plain runs count here; a shape's run time is a cap.
    if (
        getattr(opts, "headless", False)
        and planned
        and environment.shape_class is None
        and elapsed < planned * 0.95 - 1
    ):
        found.append(f"run ended after {elapsed:.0f} s of the planned {planned} s (interrupted or stopped early)")
    if locust_log.unhandled_greenlet_exception:
        found.append("an event handler or greenlet raised an exception (see the log)")
    if runner is not None and runner.exceptions:
        found.append(f"{len(runner.exceptions)} distinct Python exception(s) in user code (see _exceptions.csv)")
    return found
