"""Steady-state statistics: requests logged only once spawning has completed (plus an optional
warm-up), kept in Locust's own ``RequestStats`` so percentiles are computed the same way, and
shipped from workers to the master inside their regular stats reports."""

from __future__ import annotations

import time

from locust.stats import RequestStats, StatsEntry

REPORT_KEY = "suite_steady_stats"


class SteadyStats:
    def __init__(self, warmup_s: float = 0.0):
        # Nothing reads the window's *current* percentiles: no per-second cache copies to keep.
        self.stats = RequestStats(use_response_times_cache=False)
        self.warmup_s = warmup_s
        self.started_at: float | None = None  # wall-clock start of the window (local or worker)
        self.stopped_at: float | None = None
        self._logged = 0

    def begin(self) -> None:
        if self.started_at is None:
            self.started_at = time.time() + self.warmup_s

    def on_request(
        self, request_type: str, name: str, response_time: float, response_length: int, exception: BaseException | None
    ) -> None:
        if self.started_at is None or self.stopped_at is not None or time.time() < self.started_at:
            return
        self.stats.log_request(request_type, name, response_time, response_length)
        if exception is not None:
            self.stats.log_error(request_type, name, exception)
        self._logged += 1
        if self._logged % 5000 == 0:
            self.prune()

    def prune(self, keep_s: int = 30) -> None:
        """Per-second counters only serve "current RPS": drop old seconds, so a long run's
        window costs no more memory than a short one's (the totals live elsewhere)."""
        horizon = int(time.time()) - keep_s
        for entry in [*self.stats.entries.values(), self.stats.total]:
            for per_second in (entry.num_reqs_per_sec, entry.num_fail_per_sec):
                for second in [t for t in per_second if t < horizon]:
                    del per_second[second]

    def end(self) -> None:
        if self.stopped_at is None:
            self.stopped_at = time.time()

    # worker -> master transport, mirroring Locust's own report/extend protocol

    def to_report(self, data: dict) -> None:
        # Serialising clears each entry (Locust's get_stripped_report), as Locust's own worker
        # reports do; the entries dict itself must stay (it creates entries on first use).
        data[REPORT_KEY] = {
            "entries": self.stats.serialize_stats(),
            "total": self.stats.total.get_stripped_report(),
            "started_at": self.started_at,
        }
        self.stats.errors = {}  # the summary's error table comes from Locust's own stats

    def merge_report(self, data: dict) -> None:
        report = data.get(REPORT_KEY)
        if not report:
            return
        if report.get("started_at") and (self.started_at is None or report["started_at"] < self.started_at):
            self.started_at = report["started_at"]
        for raw in report["entries"]:
            entry = StatsEntry.unserialize(raw, self.stats)
            key = (entry.name, entry.method)
            if key not in self.stats.entries:
                self.stats.entries[key] = StatsEntry(self.stats, entry.name, entry.method)
            self.stats.entries[key].extend(entry)
        self.stats.total.extend(StatsEntry.unserialize(report["total"], self.stats))

    @property
    def window_s(self) -> float:
        if self.started_at is None:
            return 0.0
        return max(0.0, (self.stopped_at or time.time()) - self.started_at)
