"""What reporting records while a run goes on: when it started, the peak of users, which workers
came and went, the steady-state window and the thresholds in force. Reporting's own state; other
packages read it through :func:`live_window` and :func:`thresholds`, never write it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gevent
from locust.runners import STATE_MISSING, MasterRunner

from reporting.steady import SteadyStats
from reporting.thresholds import Threshold


@dataclass
class Run:
    steady: SteadyStats = field(default_factory=SteadyStats)
    thresholds: list[Threshold] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    peak_users: int = 0
    workers_lost: set[str] = field(default_factory=set)
    max_workers: int = 0
    worker_requests: dict[str, int] = field(default_factory=dict)
    worker_reported_at: dict[str, float] = field(default_factory=dict)  # master: last report per worker
    worker_users: dict[str, int] = field(default_factory=dict)  # master: users running in that report
    stopping_at: float | None = None  # master: when the last stop began (monotonic)
    workers_unreported: list[str] = field(default_factory=list)  # no final report after the stop
    summary_written: bool = False
    recording_steady: bool = False  # the request listener feeding the steady window is attached

    def note_workers(self, runner: MasterRunner) -> None:
        present = [c for c in runner.clients.all if c.state != STATE_MISSING]
        self.max_workers = max(self.max_workers, len(present))
        self.workers_lost.update(c.id for c in runner.clients.all if c.state == STATE_MISSING)

    def add_worker_requests(self, client_id: str, data: dict) -> None:
        total = data.get("stats_total") or {}
        self.worker_requests[client_id] = self.worker_requests.get(client_id, 0) + int(total.get("num_requests", 0))
        self.worker_reported_at[client_id] = time.monotonic()
        self.worker_users[client_id] = int(data.get("user_count", -1))

    def await_final_reports(self, since: float, timeout: float) -> list[str]:
        """Master: wait until every worker that reported during the run (and is not lost) has sent
        its final report: one made after the stop began (``since``, monotonic) with no user left
        running, so it holds the worker's last requests. Up to ``timeout`` seconds. Returns the
        workers whose final report did not come."""
        deadline = time.monotonic() + timeout

        def final(worker: str) -> bool:
            return self.worker_reported_at[worker] > since and self.worker_users.get(worker) == 0

        while True:
            silent = [w for w in self.worker_reported_at if not final(w) and w not in self.workers_lost]
            if not silent or time.monotonic() >= deadline:
                return silent
            gevent.sleep(0.2)


RUN = Run()


def live_window(environment):
    """(stats, window seconds or None, label): the steady-state window once it has requests,
    else the whole run so far. What the UI's SLO tab shows."""
    steady = RUN.steady
    if steady.stats.total.num_requests > 0:
        return steady.stats, steady.window_s, f"steady state, {steady.window_s:.0f} s"
    return environment.stats, max(time.time() - RUN.started_at, 1e-9), "whole run (ramping up)"


def thresholds() -> list[Threshold]:
    return list(RUN.thresholds)
