"""What keeps a metrics sink from holding a run up: a time budget for everything a sink does at the
end of a run, and one warning a minute about a sink that is not taking what it is sent.

A run's end (test stop, the summary, quitting) may flush a sink several times; together those calls
get :data:`END_BUDGET_S` seconds, each at most its own share, enforced with ``gevent.Timeout`` (Locust
runs under gevent: a blocked socket, a lock held by a background export, a retry's back-off sleep
all yield to the hub, so the timeout interrupts them). After one end-of-run call has failed or run
out of time, the rest are skipped: a collector that did not answer a second ago will not now."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent

log = logging.getLogger("suite.metrics")

END_BUDGET_S = 1.5  # all end-of-run sink calls together; the bound is 2 s added to the end
QUIET_S = 60.0  # one "cannot send" warning a minute; the drops are counted in the summary


class WarnOncePerInterval:
    """``warn(text)`` logs at most one warning per ``interval`` seconds; the rest are counted."""

    def __init__(self, interval: float = QUIET_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.last: float | None = None
        self.suppressed = 0

    def warn(self, text: str) -> bool:
        now = self.clock()
        if self.last is not None and now - self.last < self.interval:
            self.suppressed += 1
            return False
        self.last = now
        log.warning("%s (repeats within %.0f s not logged; drops counted in the summary)", text, self.interval)
        return True


class EndBudget:
    """Bounded end-of-run calls. ``run(fn, share)`` calls ``fn(seconds)`` with the time it may take,
    interrupts it when that is spent, and returns ``"ok"``, ``"failed"``, ``"timeout"`` or
    ``"skipped"`` (nothing left of the budget, or an earlier end-of-run call did not succeed)."""

    def __init__(self, total: float = END_BUDGET_S) -> None:
        self.total = total
        self.spent = 0.0
        self.started = False  # the run is ending: exports from now on are end-of-run exports
        self.given_up = False  # an end-of-run call failed or timed out: skip the rest

    @property
    def remaining(self) -> float:
        return max(0.0, self.total - self.spent)

    def allowance(self, share: float) -> float:
        """Seconds the next end-of-run call may take (0: skip it)."""
        if self.given_up:
            return 0.0
        left = min(share, self.remaining)
        return left if left >= 0.05 else 0.0  # too little to open a connection: skip

    def run(self, fn: Callable[[float], object], share: float) -> str:
        self.started = True
        seconds = self.allowance(share)
        if seconds <= 0:
            return "skipped"
        began = time.monotonic()
        try:
            with gevent.Timeout(seconds):
                result = fn(seconds)
            outcome = "failed" if result is False else "ok"
        except gevent.Timeout:
            outcome = "timeout"
        except Exception as exc:  # a sink's error never reaches the run
            log.debug("metrics: end-of-run call failed: %s", exc)
            outcome = "failed"
        finally:
            self.spent += time.monotonic() - began
        if outcome != "ok":
            self.given_up = True
        return outcome
