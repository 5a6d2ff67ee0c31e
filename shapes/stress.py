"""Stepped ramp to the breaking point: add STRESS_STEP_USERS every STRESS_STEP_SECONDS until
the error rate or p95 over the last step crosses its limit (the breaking point, recorded in the
summary) or STRESS_MAX_USERS is reached; then hold one step and stop."""

from __future__ import annotations

from typing import Any

from config import get_settings
from reporting.sections import RunContext, Section, register
from shapes import CappedShape

settings = get_settings()


class BreakingPointSection(Section):
    """The stress test's finding, in the summary as ``stress``."""

    name = "stress"
    order = 30

    def __init__(self) -> None:
        self.found: dict[str, Any] | None = None

    def build(self, run: RunContext) -> dict[str, Any] | None:
        return self.found

    def markdown(self, data: dict[str, Any]) -> list[str]:
        return [
            "### Stress: breaking point",
            "",
            f"- {data['breaking_point_users']} users held; the next step broke at {data['at_s']} s "
            f"(error rate {data['error_rate']:.2%}, p95 {data['p95_ms']} ms)",
        ]


SECTION = register(BreakingPointSection())


class StressShape(CappedShape):
    start_users = settings.stress_start_users
    step_users = settings.stress_step_users
    step_seconds = settings.stress_step_seconds
    max_users = settings.stress_max_users or settings.users or 500
    spawn_rate = settings.stress_spawn_rate or settings.spawn_rate or 25
    max_error_rate = settings.stress_max_error_rate
    max_p95_ms = settings.stress_max_p95_ms

    def __init__(self) -> None:
        super().__init__()
        self.broken_at: int | None = None
        self.stop_after: float | None = None
        self.last_step = -1

    def shaped_tick(self):
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
            SECTION.found = {
                "breaking_point_users": self.broken_at,
                "error_rate": round(error_rate, 4),
                "p95_ms": round(p95, 1),
                "at_s": round(self.get_run_time(), 1),
            }
