"""Stepped ramp to the breaking point: add STRESS_STEP_USERS every STRESS_STEP_SECONDS until
the error rate or p95 over the last step crosses its limit (the breaking point, recorded in the
summary) or STRESS_MAX_USERS is reached; then hold one step and stop."""

from __future__ import annotations

import os

from locust import LoadTestShape


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


class StressShape(LoadTestShape):
    start_users = int(_env("STRESS_START_USERS", 10))
    step_users = int(_env("STRESS_STEP_USERS", 25))
    step_seconds = _env("STRESS_STEP_SECONDS", 30)
    max_users = int(_env("STRESS_MAX_USERS", os.environ.get("USERS", 500)))
    spawn_rate = _env("STRESS_SPAWN_RATE", os.environ.get("SPAWN_RATE", 25))
    max_error_rate = _env("STRESS_MAX_ERROR_RATE", 0.05)
    max_p95_ms = _env("STRESS_MAX_P95_MS", 2000)

    def __init__(self) -> None:
        super().__init__()
        self.broken_at: int | None = None
        self.stop_after: float | None = None
        self.last_step = -1

    def tick(self):
        run_time = self.get_run_time()
        step = int(run_time // self.step_seconds)
        users = min(self.start_users + step * self.step_users, self.max_users)
        if step != self.last_step and step > 0:
            self.last_step = step
            self._check_step(users)
        if self.stop_after is not None and run_time >= self.stop_after:
            return None
        if self.broken_at is None and users >= self.max_users and self.stop_after is None:
            self.stop_after = run_time + self.step_seconds  # hold the top step once, then stop
        return (self.broken_at or users), self.spawn_rate

    def _check_step(self, users: int) -> None:
        if self.broken_at is not None or self.runner is None:
            return
        total = self.runner.stats.total
        rps = total.current_rps or 0.0
        error_rate = (total.current_fail_per_sec or 0.0) / rps if rps else 0.0
        p95 = total.get_current_response_time_percentile(0.95) or 0.0
        if error_rate > self.max_error_rate or p95 > self.max_p95_ms:
            self.broken_at = max(self.start_users, users - self.step_users)
            self.stop_after = self.get_run_time() + self.step_seconds
            _record(
                {
                    "breaking_point_users": self.broken_at,
                    "error_rate": round(error_rate, 4),
                    "p95_ms": round(p95, 1),
                    "at_s": round(self.get_run_time(), 1),
                }
            )


def _record(found: dict) -> None:
    from reporting.hooks import STATE

    STATE.extra_sections["stress"] = found
