"""Open-model load on Locust: arrivals at a rate (``rate`` profile) and a fixed burst of payments
(``burst`` profile), with latencies corrected for coordinated omission.

A closed model (N users, each waiting for its answer) offers less load when the service slows
down, so the slow seconds are under-sampled. Here the load is a schedule of *arrivals*:

- :class:`RateUser` is one Locust user per process whose only task is a scheduler. It computes each
  arrival's due time from ``TARGET_RPS`` / ``RAMP`` or ``RATE_STAGES`` (piecewise-linear rate,
  ``ARRIVALS=constant|poisson``), and at each due time hands ONE task of ``RATE_CLASS`` (picked by
  the class's task weights) to an idle *actor* -- an instance of that user class constructed with
  the environment, ``on_start`` run once, never started as a Locust user -- in a greenlet of its
  own, not waiting for earlier arrivals. There are at most ``MAX_IN_FLIGHT`` actors: when all are
  busy, the arrival is *dropped* (counted). When the scheduler wakes more than 10 ms after an
  arrival was due, the arrival is *late* (counted; it is still sent, and its lag is in its
  corrected latency).
- The due time travels with the operation in a context variable (greenlets have their own
  context), so a request listener records each request twice: its service time (Locust's own
  stats) and its *corrected* latency, counted from when it was due: the first request of an
  operation from the arrival's due time, each later request of the same operation from the end of
  the one before. Corrected >= service, always (the invariant is counted, not assumed).
- A distributed run has one RateUser per worker, each taking ``1/N`` of the rate (N = the master's
  user count, handed to the workers with the spawn message), so the total holds.
- :class:`BurstUser` sends exactly ``TOTAL`` payments with ``CONCURRENCY`` in flight, then the
  run ends (``burst_scenarios.BurstShape``); seed 004's report goes in the summary and on stderr.

Both report through run-end sections (``reporting/sections.py``), shipped from workers like the
steady-state stats (``reporting/steady.py``).
"""

from __future__ import annotations

import atexit
import contextvars
import csv
import importlib
import logging
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from gevent.pool import Group
from locust import User, events, task
from locust.exception import InterruptTaskSet, RescheduleTask, StopUser
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import RequestStats, StatsEntry
from locust.user.users import LOCUST_STATE_STOPPING

import apis
from config import get_settings, parse_rate_stages
from reporting import latency
from reporting.sections import RunContext, Section, register
from reporting.thresholds import ThresholdError, load_operations, register_figures
from reporting.verdict import Kind, Reason, format_value
from users.exercised import runnable

log = logging.getLogger("suite.open_model")
settings = get_settings()

LATE_TOLERANCE_S = 0.010  # a scheduler waking later than this after an arrival was due: late
MAX_IN_FLIGHT_SECONDS = 2.0  # default cap: this many seconds of arrivals at the peak rate
SCHEDULERS_OPTION = "suite_rate_schedulers"  # the master's user count, handed to its workers
BURST_QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))
HISTORY_ROWS = 7200  # per-second rows kept in the summary JSON (the CSV has them all)


# --- the schedule -------------------------------------------------------------------------------


class Schedule:
    """Arrival times of a piecewise-linear rate: ``stages`` [(rate/s, seconds)] each reached
    linearly from the previous rate (the first from 0); the last rate is held afterwards.
    ``count(t)`` is the number of arrivals due by ``t`` s, ``time_of(n)`` its inverse."""

    def __init__(self, stages: list[tuple[float, float]], hold: float | None = None):
        self.parts: list[tuple[float, float, float, float, float]] = []  # t0, d, r0, r1, n0
        t = n = previous = 0.0
        for rate, seconds in stages:
            if seconds > 0:
                self.parts.append((t, seconds, previous, rate, n))
                n += (previous + rate) / 2 * seconds
                t += seconds
            previous = rate
        self.t_end, self.n_end = t, n
        self.final_rate = previous if hold is None else hold
        self.peak = max([self.final_rate, *(r for r, _ in stages)])

    @classmethod
    def from_settings(cls, share: float = 1.0, s=None) -> Schedule:
        s = s or settings
        stages = parse_rate_stages(s.rate_stages) if s.rate_stages else []
        if stages:
            return cls([(r * share, d) for r, d in stages])
        if s.ramp > 0:
            return cls([(s.target_rps * share, s.ramp)])
        return cls([], hold=s.target_rps * share)

    def count(self, t: float) -> float:
        if t <= 0:
            return 0.0
        for t0, d, r0, r1, n0 in self.parts:
            if t < t0 + d:
                tau = t - t0
                return n0 + r0 * tau + (r1 - r0) * tau * tau / (2 * d)
        return self.n_end + self.final_rate * (t - self.t_end)

    def time_of(self, n: float) -> float | None:
        """When the ``n``-th (fractional) arrival is due, or None if the schedule never gets there."""
        for t0, d, r0, r1, n0 in self.parts:
            stage_n = (r0 + r1) / 2 * d
            if n <= n0 + stage_n:
                m, a = max(0.0, n - n0), (r1 - r0) / (2 * d)
                root = math.sqrt(max(0.0, r0 * r0 + 4 * a * m))
                return t0 + (2 * m / (r0 + root) if r0 + root > 0 else 0.0)
        if self.final_rate <= 0:
            return None
        return self.t_end + (n - self.n_end) / self.final_rate


# --- what a run records -------------------------------------------------------------------------

_OP: contextvars.ContextVar[list | None] = contextvars.ContextVar("suite_open_model_op", default=None)


def current_due() -> float | None:
    """perf_counter() time the current greenlet's next request was due (None: not an arrival)."""
    op = _OP.get()
    return op[0] if op else None


COUNTERS = ("expected", "due", "unscheduled", "sent", "dropped", "late", "requests", "corrected_below_service")
COUNTERS += ("schedulers",)


@dataclass
class RateState:
    """This process's rate figures (a master's are folded from its workers' reports)."""

    corrected: RequestStats = field(default_factory=RequestStats)
    counts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    in_flight_peak: int = 0
    lag: dict[float, int] = field(default_factory=dict)  # scheduling lag histogram, ms bucket -> arrivals
    seconds: dict[int, list[int]] = field(default_factory=dict)  # epoch s -> [due, sent, dropped, late]
    window: list[float] = field(default_factory=list)  # wall-clock [start, end] of the schedulers
    caps: list[int] = field(default_factory=list)  # MAX_IN_FLIGHT of each scheduler
    peaks: list[float] = field(default_factory=list)  # peak scheduled rate of each scheduler
    workers: dict[str, dict] = field(default_factory=dict)  # master: each worker's latest counters
    schedulers: list[Any] = field(default_factory=list)  # local RateUsers (their expected counts)

    def reset(self) -> None:
        self.__init__()

    def note_window(self, start: float, end: float | None = None) -> None:
        if not self.window:
            self.window = [start, end or start]
        else:
            self.window[0] = min(self.window[0], start)
            self.window[1] = max(self.window[1], end or start)

    def local_counts(self) -> dict[str, float]:
        counts = dict(self.counts)
        counts["expected"] = sum(s.expected() for s in self.schedulers)
        counts["schedulers"] = len(self.schedulers)
        return counts

    def totals(self) -> dict[str, float]:
        if self.schedulers or not self.workers:
            return self.local_counts()
        out = dict.fromkeys(COUNTERS, 0.0)
        for counts in self.workers.values():
            for key in COUNTERS:
                out[key] += counts.get(key, 0)
        return out

    # worker -> master

    def worker_report(self) -> dict[str, Any] | None:
        if not self.schedulers:
            return None
        for s in self.schedulers:
            s.note_window()
        report = {
            "counts": self.local_counts(),
            "in_flight_peak": self.in_flight_peak,
            "window": list(self.window),
            "caps": list(self.caps),
            "peaks": list(self.peaks),
            "lag": {str(k): v for k, v in self.lag.items()},
            "seconds": {str(k): v for k, v in self.seconds.items()},
            "corrected": {
                "entries": self.corrected.serialize_stats(),
                "total": self.corrected.total.get_stripped_report(),
            },
        }
        self.lag, self.seconds = {}, {}
        self.corrected.errors = {}
        return report

    def merge(self, client_id: str, data: dict[str, Any]) -> None:
        self.workers[client_id] = {
            **(data.get("counts") or {}),
            "caps": list(data.get("caps") or []),
            "peaks": list(data.get("peaks") or []),
        }
        self.in_flight_peak = max(self.in_flight_peak, int(data.get("in_flight_peak", 0)))
        if data.get("window"):
            self.note_window(*data["window"])
        for k, v in (data.get("lag") or {}).items():
            self.lag[float(k)] = self.lag.get(float(k), 0) + v
        for k, row in (data.get("seconds") or {}).items():
            mine = self.second(int(k))
            for i, v in enumerate(row):
                mine[i] += v
        corrected = data.get("corrected") or {}
        for raw in corrected.get("entries", []):
            entry = StatsEntry.unserialize(raw, self.corrected)
            key = (entry.name, entry.method)
            if key not in self.corrected.entries:
                self.corrected.entries[key] = StatsEntry(self.corrected, entry.name, entry.method)
            self.corrected.entries[key].extend(entry)
        if corrected.get("total"):
            self.corrected.total.extend(StatsEntry.unserialize(corrected["total"], self.corrected))

    def all_caps(self) -> list[int]:
        if self.schedulers or not self.workers:
            return list(self.caps)
        return [c for w in self.workers.values() for c in w.get("caps", [])]

    def second(self, epoch_s: int) -> list[int]:
        row = self.seconds.get(epoch_s)
        if row is None:
            row = self.seconds[epoch_s] = [0, 0, 0, 0]
        return row

    def prune(self, keep_s: int = 30) -> None:
        """Per-second counters of the corrected stats only serve "current RPS": keep them small."""
        horizon = int(time.time()) - keep_s
        for entry in [*self.corrected.entries.values(), self.corrected.total]:
            for per_second in (entry.num_reqs_per_sec, entry.num_fail_per_sec):
                for sec in [t for t in per_second if t < horizon]:
                    del per_second[sec]


STATE = RateState()


def _figures(entry: StatsEntry, suffix: str = "_ms") -> dict[str, Any]:
    return {"requests": entry.num_requests, **latency.entry_figures(entry, suffix)}


def corrected_figures() -> dict[str, dict[str, Any]]:
    """Threshold figures of the corrected latencies: {"global" | endpoint: {metric: value}}."""
    stats = STATE.corrected
    if not stats.total.num_requests:
        return {}
    out = {"global": _figures(stats.total, "_corrected_ms")}
    for (name, _method), entry in stats.entries.items():
        if entry.num_requests:
            out[name] = _figures(entry, "_corrected_ms")
    return out


register_figures(corrected_figures)


def _on_request(request_type, name, response_time, response_length, exception=None, **_kw) -> None:
    op = _OP.get()
    if op is None:
        return
    now = time.perf_counter()
    corrected = (now - op[0]) * 1000.0
    op[0] = now  # a later request of the same operation was due when this one ended
    if op[1] == "burst":
        BURST.samples.append((name, response_time or 0.0, exception is None))
        return
    STATE.corrected.log_request(request_type, name, corrected, response_length)
    STATE.counts["requests"] += 1
    if response_time is not None and corrected < response_time:
        STATE.counts["corrected_below_service"] += 1
    if STATE.counts["requests"] % 5000 == 0:
        STATE.prune()


events.request.add_listener(_on_request)


# --- actors ------------------------------------------------------------------------------------


def resolve_class(environment, name: str) -> type[User]:
    """The user class an arrival's task comes from: one of the run's locustfiles, else ``users``."""
    available = getattr(environment, "available_user_classes", None) or {}
    cls = available.get(name) or getattr(importlib.import_module("users"), name, None)
    if not (isinstance(cls, type) and issubclass(cls, User)) or getattr(cls, "abstract", False):
        raise ValueError(f"RATE_CLASS={name!r}: no such (non-abstract) user class in the locustfiles or users/")
    tasks = getattr(cls, "tasks", [])
    if not tasks or not all(callable(t) and not isinstance(t, type) for t in tasks):
        raise ValueError(f"RATE_CLASS={name!r}: needs plain @task methods (no TaskSets)")
    binding = apis.current()
    if not runnable(cls, binding):
        raise ValueError(f"RATE_CLASS={name!r}: none of its tasks exists in API_DIALECT={binding.name}")
    return cls


class ActorPool:
    """At most ``cap`` instances of ``cls``, reused last-in first-out (so a few hot actors and their
    keep-alive connections carry a steady load). :meth:`take` never builds one: it hands out a
    slot, and the operation's own greenlet builds the actor (:meth:`actor`), off the scheduler's path."""

    def __init__(self, environment, cls: type[User], cap: int):
        self.environment, self.cls, self.cap = environment, cls, cap
        self.idle: list[User | None] = []
        self.created = 0
        if environment.host:
            cls.host = environment.host  # as Locust's runner does for the classes it starts

    @property
    def busy(self) -> int:
        return self.created - len(self.idle)

    def take(self) -> User | None | bool:
        """An idle actor, True for a new slot (its actor not built yet), or False: cap reached."""
        if self.idle:
            return self.idle.pop()
        if self.created >= self.cap:
            return False
        self.created += 1
        return True

    def build(self) -> User:
        actor = self.cls(self.environment)
        actor._suite_started = False
        return actor

    def prebuild(self, count: int) -> None:
        for _ in range(min(count, self.cap - self.created)):
            self.created += 1
            self.idle.append(self.build())

    def give(self, actor: User) -> None:
        self.idle.append(actor)


def run_one_task(environment, actor: User, rng: random.Random) -> None:
    """ONE task of the actor's class, picked by weight, with Locust's handling of what it raises."""
    try:
        if not actor._suite_started:
            actor._suite_started = True
            actor.on_start()
        rng.choice(actor.tasks)(actor)
    except (StopUser, RescheduleTask, InterruptTaskSet):
        pass
    except gevent.GreenletExit:
        raise
    except Exception as exc:  # as Locust does for a task: logged, counted in the exceptions table
        log.error("%s in %s: %s", type(exc).__name__, type(actor).__name__, exc)
        environment.events.user_error.fire(user_instance=actor, exception=exc, tb=exc.__traceback__)


# --- the rate profile ----------------------------------------------------------------------------


class RateUser(User):
    """The arrival scheduler: one per process (see the module docstring). Run with ``-u 1`` (or
    one per worker); each takes ``1/users`` of the rate."""

    def wait_time(self) -> float:
        return 0.0

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        users = getattr(opts, SCHEDULERS_OPTION, None) or getattr(opts, "num_users", None) or 1
        self.share = 1.0 / max(1, int(users))
        self.schedule = Schedule.from_settings(self.share)
        cap = settings.max_in_flight and max(1, math.ceil(settings.max_in_flight * self.share))
        self.cap = cap or max(10, math.ceil(self.schedule.peak * MAX_IN_FLIGHT_SECONDS))
        self.pool = ActorPool(self.environment, resolve_class(self.environment, settings.rate_class), self.cap)
        self.pool.prebuild(math.ceil(self.schedule.peak * 0.02) + 4)  # 20 ms of arrivals, built before the clock starts
        self.rng = random.Random()  # which task an arrival runs
        self.arrival_rng = random.Random()  # Poisson gaps
        self.ops = Group()
        self.started_perf: float | None = None
        self.stopped_perf: float | None = None
        self.checked_perf: float | None = None
        self.wall_offset = time.time() - time.perf_counter()
        STATE.schedulers.append(self)
        STATE.caps.append(self.cap)
        STATE.peaks.append(self.schedule.peak)
        run_time = getattr(opts, "run_time", None)
        if settings.rate_stages and run_time and self.schedule.t_end > run_time:
            log.warning(
                "RATE_STAGES last %.0f s but RUN_TIME is %s s: the run ends first (set RUN_TIME)",
                self.schedule.t_end,
                run_time,
            )
        log.info(
            "open model: %.6g arrivals/s at peak (share %.3g of the total), %s arrivals, %s, at most %d in flight",
            self.schedule.peak,
            self.share,
            settings.arrivals,
            settings.rate_class,
            self.cap,
        )

    def expected(self) -> float:
        if self.started_perf is None:
            return 0.0
        end = self.stopped_perf if self.stopped_perf is not None else time.perf_counter()
        return self.schedule.count(end - self.started_perf)

    def note_window(self) -> None:
        if self.started_perf is not None:
            end = self.stopped_perf if self.stopped_perf is not None else time.perf_counter()
            STATE.note_window(self.started_perf + self.wall_offset, end + self.wall_offset)

    def _next_n(self, n: float) -> float:
        return n + (self.arrival_rng.expovariate(1.0) if settings.arrivals == "poisson" else 1.0)

    @task
    def scheduler(self) -> None:
        schedule, counts, pool = self.schedule, STATE.counts, self.pool
        start = self.started_perf = time.perf_counter()
        self.note_window()
        n = self.arrival_rng.expovariate(1.0) if settings.arrivals == "poisson" else 0.0
        due_rel = schedule.time_of(n)
        batch, ended = 0, False
        while True:
            now = time.perf_counter()
            if self._state == LOCUST_STATE_STOPPING:
                break
            self.checked_perf = now  # the schedule is counted up to the last look while running
            if due_rel is None:  # the schedule ended (last rate 0): idle until the run ends
                if not ended:
                    ended = True
                    log.info("open model: the schedule ended (%d arrivals due)", counts["due"])
                gevent.sleep(0.05)
                continue
            due = start + due_rel
            if due > now:
                batch = 0
                gevent.sleep(min(due - now, 0.05))
                continue
            lag = now - due
            row = STATE.second(int(due + self.wall_offset))
            counts["due"] += 1
            row[0] += 1
            if lag > LATE_TOLERANCE_S:
                counts["late"] += 1
                row[3] += 1
            bucket = latency.bucket(lag * 1000.0)
            STATE.lag[bucket] = STATE.lag.get(bucket, 0) + 1
            actor = pool.take()
            if actor is False:
                counts["dropped"] += 1
                row[2] += 1
            else:
                counts["sent"] += 1
                row[1] += 1
                busy = pool.busy
                if busy > STATE.in_flight_peak:
                    STATE.in_flight_peak = busy
                self.ops.spawn(self._operation, actor, due)
            n = self._next_n(n)
            due_rel = schedule.time_of(n)
            batch += 1
            if batch >= 64:  # far behind: let the operations run between batches
                batch = 0
                gevent.sleep(0)
        self.stopped_perf = self.checked_perf
        self.note_window()
        # Arrivals due before the end that the scheduler never got to (it was behind): counted, not sent.
        behind = 0
        while due_rel is not None and start + due_rel <= self.stopped_perf and behind < 10_000_000:
            behind += 1
            n = self._next_n(n)
            due_rel = schedule.time_of(n)
        counts["unscheduled"] += behind
        # Graceful end: the operations in flight finish (bounded by the request timeout).
        self.ops.join(timeout=min(settings.request_timeout, self.environment.stop_timeout or 10.0) + 1)
        self.ops.kill(block=False)
        raise StopUser()

    def _operation(self, actor: User | bool, due: float) -> None:
        _OP.set([due, "rate"])
        if actor is True:
            try:
                actor = self.pool.build()
            except Exception as exc:  # the slot is free again; the error is counted as a task's would be
                self.pool.created -= 1
                log.error("cannot build a %s: %s", self.pool.cls.__name__, exc)
                self.environment.events.user_error.fire(user_instance=self, exception=exc, tb=exc.__traceback__)
                return
        try:
            run_one_task(self.environment, actor, self.rng)
        finally:
            self.pool.give(actor)

    def on_stop(self) -> None:
        if self.stopped_perf is None and self.started_perf is not None:
            self.stopped_perf = self.checked_perf or time.perf_counter()
            self.note_window()
        self.ops.kill(block=False)


def _limit(data: dict[str, Any]) -> str | None:
    """Which side held the rate back: the target (in-flight cap) or the generator (scheduler)."""
    due = data["due"] or 1
    reasons = []
    if data["dropped"] / due > 0.01:
        reasons.append(
            f"the target: {data['dropped']} arrivals found MAX_IN_FLIGHT ({sum(data['max_in_flight'])}) "
            f"operations in flight (the target answers slower than arrivals come)"
        )
    behind = data["unscheduled"]
    if data["late"] / due > 0.01 or data["cpu_warning"] or behind > 0.01 * data["scheduled"]:
        parts = [f"{data['late']} late arrivals", f"scheduling lag p99 {data['lag_ms']['p99']} ms"]
        if behind:
            parts.append(f"{behind} arrivals due but never reached by the scheduler")
        if data["cpu_warning"]:
            parts.append("runner CPU warning (>90 %)")
        reasons.append(f"the generator's CPU: {', '.join(parts)}")
    return "; ".join(reasons) or None


class RateSection(Section):
    """Arrivals due/sent/dropped/late, achieved vs target rate, both latencies per endpoint."""

    name = "open_model"
    order = 20

    def build(self, run: RunContext) -> dict[str, Any] | None:
        for s in STATE.schedulers:
            s.note_window()
        counts = STATE.totals()
        if not counts["schedulers"] and not STATE.workers:
            return None
        runner = run.environment.runner
        window_s = max(1e-9, (STATE.window[1] - STATE.window[0]) if STATE.window else 0.0)
        expected, sent, due = counts["expected"], int(counts["sent"]), int(counts["due"])
        scheduled = due + int(counts["unscheduled"])  # the arrivals the schedule drew for the window
        data: dict[str, Any] = {
            "target_rps": settings.target_rps,
            "rate_stages": settings.rate_stages or None,
            "ramp_s": settings.ramp,
            "arrivals": settings.arrivals,
            "rate_class": settings.rate_class,
            "schedulers": int(counts["schedulers"]) or len(STATE.workers),
            "max_in_flight": STATE.all_caps(),
            "window_s": round(window_s, 2),
            "expected": round(expected, 1),
            "scheduled": scheduled,
            "due": due,
            "unscheduled": int(counts["unscheduled"]),
            "sent": sent,
            "dropped": int(counts["dropped"]),
            "late": int(counts["late"]),
            "dropped_share": round(counts["dropped"] / due, 6) if due else 0.0,
            "late_share": round(counts["late"] / due, 6) if due else 0.0,
            "scheduled_rps": round(scheduled / window_s, 2),
            "achieved_rps": round(sent / window_s, 2),
            "achieved_ratio": round(sent / scheduled, 4) if scheduled else None,
            "in_flight_peak": STATE.in_flight_peak,
            "lag_ms": {
                "p50": _round(latency.percentile(STATE.lag, 0.5)),
                "p99": _round(latency.percentile(STATE.lag, 0.99)),
                "max": _round(max(STATE.lag)) if STATE.lag else None,
            },
            "requests_timed": int(counts["requests"]),
            "corrected_below_service": int(counts["corrected_below_service"]),
            "cpu_warning": bool(
                runner is not None
                and (runner.cpu_warning_emitted or getattr(runner, "worker_cpu_warning_emitted", False))
            ),
        }
        service = run.environment.stats
        rows = []
        for (name, method), entry in sorted(service.entries.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            fixed = STATE.corrected.entries.get((name, method))
            rows.append(
                {
                    "name": name,
                    "method": method,
                    "requests": entry.num_requests,
                    "service": _figures(entry),
                    "corrected": _figures(fixed) if fixed is not None else None,
                }
            )
        data["endpoints"] = rows
        data["total"] = {"service": _figures(service.total), "corrected": _figures(STATE.corrected.total)}
        # the percentile chart draws these beside the service curves (summary["percentile_curves"])
        corrected_curves = {"total": latency.curve(STATE.corrected.total)}
        for (name, _method), entry in sorted(STATE.corrected.entries.items()):
            corrected_curves.setdefault(name, latency.curve(entry))
        data["corrected_curves"] = corrected_curves
        first = min(STATE.seconds) if STATE.seconds else 0
        history = [
            {"t": sec - first, "epoch": sec, "target": r[0], "sent": r[1], "dropped": r[2], "late": r[3]}
            for sec, r in sorted(STATE.seconds.items())
        ]
        data["per_second"] = history[:HISTORY_ROWS]
        steady = [h["sent"] for h in history[1:-1]]  # whole seconds only
        data["per_second_sent"] = (
            {"min": min(steady), "max": max(steady), "mean": round(sum(steady) / len(steady), 1)} if steady else None
        )
        csv_path = run.report_dir / f"{run.profile}_open_model_history.csv"
        try:
            run.report_dir.mkdir(parents=True, exist_ok=True)
            with csv_path.open("w", newline="") as fh:
                out = csv.writer(fh)
                out.writerow(["Timestamp", "Second", "Target arrivals", "Sent", "Dropped", "Late"])
                for h in history:
                    out.writerow([h["epoch"], h["t"], h["target"], h["sent"], h["dropped"], h["late"]])
            data["history_csv"] = str(csv_path)
        except OSError as exc:
            log.warning("cannot write %s: %s", csv_path, exc)
        data["limit"] = _limit(data)
        print_at_exit(self, data)
        return data

    def verdict(self, data: dict[str, Any]) -> list[Reason]:
        reasons = []
        ratio = data.get("achieved_ratio")
        if ratio is not None and data["scheduled"] >= 1 and ratio < 0.95:
            reasons.append(
                Reason(
                    Kind.INTEGRITY,
                    f"integrity (open model): achieved {data['achieved_rps']:g}/s is {ratio:.1%} of the scheduled "
                    f"{data['scheduled_rps']:g}/s (under 95 %); limit: {data['limit'] or 'unknown'}",
                )
            )
        if data["due"] and data["dropped_share"] > 0.01:
            reasons.append(
                Reason(
                    Kind.INTEGRITY,
                    f"integrity (open model): {data['dropped']} of {data['due']} arrivals dropped "
                    f"({data['dropped_share']:.1%}, over 1 %); limit: {data['limit'] or 'the in-flight cap'}",
                )
            )
        return reasons

    def markdown(self, data: dict[str, Any]) -> list[str]:
        ratio = data.get("achieved_ratio")
        lines = [
            "### Open model: arrivals at a rate",
            "",
            (f"- stages {data['rate_stages']}" if data.get("rate_stages") else f"- target {data['target_rps']:g}/s")
            + f", {data['arrivals']} arrivals of {data['rate_class']} tasks, {data['schedulers']} scheduler(s), "
            f"at most {sum(data['max_in_flight'])} in flight",
            f"- achieved {data['achieved_rps']:g}/s of {data['scheduled_rps']:g}/s scheduled"
            + (f" ({ratio:.1%})" if ratio is not None else "")
            + f" over {data['window_s']:.0f} s; per second sent "
            + (
                f"min {data['per_second_sent']['min']}, mean {data['per_second_sent']['mean']}, "
                f"max {data['per_second_sent']['max']}"
                if data.get("per_second_sent")
                else "n/a"
            ),
            f"- arrivals: {data['scheduled']} scheduled, {data['sent']} sent, "
            f"**{data['dropped']} dropped** (in-flight cap), "
            f"**{data['late']} late** (scheduler > {LATE_TOLERANCE_S * 1000:.0f} ms behind); "
            f"{data['unscheduled']} never reached; peak in flight {data['in_flight_peak']}",
            f"- scheduling lag p50 {data['lag_ms']['p50']} ms, p99 {data['lag_ms']['p99']} ms, "
            f"max {data['lag_ms']['max']} ms",
        ]
        if data.get("limit"):
            lines.append(f"- limit: {data['limit']}")
        if data.get("history_csv"):
            lines.append(f"- per second: {Path(data['history_csv']).name}")
        lines += [
            "",
            "Latency per endpoint, ms: service time (as Locust measures it) / corrected "
            "(counted from when the request was due)",
            "",
            "| endpoint | requests | p50 | p95 | p99 | p99.9 | max |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]

        def pair(row: dict, key: str) -> str:
            a = row["service"].get(key + "_ms")
            b = (row.get("corrected") or {}).get(key + "_ms")
            return f"{'–' if a is None else f'{a:g}'} / {'–' if b is None else f'{b:g}'}"

        keys = ("p50", "p95", "p99", "p999", "max")
        for row in [*data["endpoints"], {"name": "**total**", **data["total"], "requests": None}]:
            requests = row["requests"] if row["requests"] is not None else data["total"]["service"]["requests"]
            lines.append(f"| {row['name']} | {requests} | " + " | ".join(pair(row, k) for k in keys) + " |")
        return lines

    def worker_report(self) -> dict[str, Any] | None:
        return STATE.worker_report()

    def merge_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        STATE.merge(client_id, data)


RATE_SECTION = register(RateSection())


_AT_EXIT: dict[str, tuple[Section, dict]] = {}


def _print_sections() -> None:
    for section, data in _AT_EXIT.values():
        print("\n" + "\n".join(section.markdown(data)), file=sys.stderr, flush=True)


def print_at_exit(section: Section, data: dict[str, Any]) -> None:
    """The section's report on stderr when the process ends: after Locust's own final tables
    (which it prints after the summary is built), so it is the last thing a run shows."""
    if not _AT_EXIT:
        atexit.register(_print_sections)
    _AT_EXIT[section.name] = (section, data)


# --- the burst profile ---------------------------------------------------------------------------


@dataclass
class BurstState:
    total: int = 0
    concurrency: int = 0
    claimed: int = 0
    samples: list = field(default_factory=list)  # (request name, service ms, ok)
    started: float | None = None
    ended: float | None = None
    done: bool = False

    def claim(self) -> bool:
        if self.claimed >= self.total:
            return False
        self.claimed += 1
        return True


BURST = BurstState()


class BurstUser(User):
    """Exactly TOTAL payments with CONCURRENCY in flight, then the run ends (seed 004)."""

    def wait_time(self) -> float:
        return 0.0

    @task
    def burst(self) -> None:
        if BURST.started is not None:  # one burst per run
            raise StopUser()
        cls = resolve_class(self.environment, "PaymentServiceUser")
        BURST.total, BURST.concurrency = settings.total, settings.concurrency
        pool = ActorPool(self.environment, cls, BURST.concurrency)
        pool.prebuild(min(BURST.concurrency, BURST.total))
        actors = list(pool.idle)

        def sender(actor) -> None:
            while BURST.claim():
                _OP.set([time.perf_counter(), "burst"])
                try:
                    actor.api.pay(actor)
                except gevent.GreenletExit:
                    raise
                except Exception as exc:
                    self.environment.events.user_error.fire(user_instance=actor, exception=exc, tb=exc.__traceback__)

        log.info("burst: %d payments, %d in flight", BURST.total, BURST.concurrency)
        group = Group()
        BURST.started = time.perf_counter()
        for actor in actors:
            group.spawn(sender, actor)
        group.join()
        BURST.ended = time.perf_counter()
        BURST.done = True
        raise StopUser()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _burst_figures(samples: list, duration: float) -> dict[str, Any]:
    times = sorted(t for _, t, _ in samples)
    ok = sum(1 for _, _, good in samples if good)
    n = len(samples)
    return {
        "requests": n,
        "succeeded": ok,
        "failed": n - ok,
        "success_rate": round(ok / n, 6) if n else None,
        "error_rate": round((n - ok) / n, 6) if n else None,
        "rps": round(n / duration, 2) if duration > 0 else None,
        "min_ms": round(times[0], 2) if times else None,
        "avg_ms": round(sum(times) / n, 2) if n else None,
        "max_ms": round(times[-1], 2) if times else None,
        **{f"{label}_ms": _round(latency.exact_percentile(times, q)) for label, q in BURST_QUANTILES},
    }


def _check(metric: str, limit: float, fig: dict) -> tuple[float | None, bool | None]:
    actual = {"min_rps": fig["rps"], "max_error_rate": fig["error_rate"]}.get(metric, fig.get(metric))
    if actual is None:
        return None, None
    return actual, (actual >= limit if metric == "min_rps" else actual <= limit)


class BurstSection(Section):
    """Seed 004's report of a burst: success rate, duration, rate, latencies, errors, targets."""

    name = "burst"
    order = 21

    def build(self, run: RunContext) -> dict[str, Any] | None:
        if BURST.started is None:
            return None
        end = BURST.ended or time.perf_counter()
        duration = max(1e-9, end - BURST.started)
        opts = run.environment.parsed_options
        path = getattr(opts, "slo_file", "") or run.settings.slo_file
        try:
            targets = load_operations(path)
        except ThresholdError as exc:
            targets, problem = {}, str(exc)
        else:
            problem = None
        by_op: dict[str, list] = {}
        for sample in BURST.samples:
            by_op.setdefault(sample[0], []).append(sample)
        operations = []
        for name, limits in targets.items():
            fig = _burst_figures(by_op.get(name, []), duration)
            for metric, limit in limits.items():
                actual, passed = _check(metric, limit, fig)
                operations.append(
                    {"operation": name, "metric": metric, "limit": limit, "actual": actual, "pass": passed}
                )
        names = apis.current().payment_names
        payments = [s for s in BURST.samples if s[0] in names]
        data = {
            "total": BURST.total,
            "concurrency": BURST.concurrency,
            "operations_sent": BURST.claimed,
            "payments_sent": len(payments),
            "complete": BURST.done and BURST.claimed == BURST.total,
            "duration_s": round(duration, 3),
            **_burst_figures(BURST.samples, duration),
            "errors_by_category": {k: v for k, v in run.summary.get("errors_by_category", {}).items() if v},
            "targets": operations,
            "targets_problem": problem,
        }
        print_at_exit(self, data)
        return data

    def verdict(self, data: dict[str, Any]) -> list[Reason]:
        reasons = []
        if not data["complete"]:
            reasons.append(
                Reason(Kind.INTEGRITY, f"burst incomplete: {data['operations_sent']} of {data['total']} payments sent")
            )
        for t in data["targets"]:
            if t["pass"] is False:
                limit, actual = format_value(t["metric"], t["limit"]), format_value(t["metric"], t["actual"])
                op = "min" if t["metric"] == "min_rps" else "max"
                reasons.append(
                    Reason(
                        Kind.THRESHOLD,
                        f"burst target breached: {t['operation']} {t['metric']} ({op} {limit}; actual {actual},"
                        " burst send window)",
                    )
                )
        if data.get("targets_problem"):
            reasons.append(Reason(Kind.THRESHOLD, f"burst targets: {data['targets_problem']}"))
        return reasons

    def markdown(self, data: dict[str, Any]) -> list[str]:
        def fmt(v: Any) -> str:
            return "–" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))

        lines = [
            f"### Burst: {data['total']} payments, {data['concurrency']} concurrent (seed 004)",
            "",
            f"- sent: {data['payments_sent']} payments ({'complete' if data['complete'] else 'INCOMPLETE'})",
            f"- success rate: {fmt(None if data['success_rate'] is None else round(data['success_rate'] * 100, 2))} % "
            f"({data['succeeded']} ok, {data['failed']} failed)",
            f"- duration: {data['duration_s']:.2f} s; requests/s: {fmt(data['rps'])}",
            f"- latency ms: min {fmt(data['min_ms'])}, avg {fmt(data['avg_ms'])}, max {fmt(data['max_ms'])}; "
            f"p50 {fmt(data['p50_ms'])}, p90 {fmt(data['p90_ms'])}, p95 {fmt(data['p95_ms'])}, "
            f"p99 {fmt(data['p99_ms'])}",
            "- errors by category: " + (", ".join(f"{k} {v}" for k, v in data["errors_by_category"].items()) or "none"),
            "",
            "| operation | target | actual | result |",
            "|---|---|---:|---|",
        ]
        for t in data["targets"]:
            op = ">=" if t["metric"] == "min_rps" else "<="
            result = "n/a" if t["pass"] is None else ("pass" if t["pass"] else "**FAIL**")
            lines.append(f"| {t['operation']} | {t['metric']} {op} {t['limit']:g} | {fmt(t['actual'])} | {result} |")
        return lines


BURST_SECTION = register(BurstSection())


# --- wiring ---------------------------------------------------------------------------------------


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    opts = environment.parsed_options
    if RateUser in (environment.user_classes or []):
        try:  # a RATE_CLASS that cannot run stops the run before any load, like a bad setting
            resolve_class(environment, settings.rate_class)
        except ValueError as exc:
            print(f"config error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    if isinstance(environment.runner, MasterRunner) and opts is not None:
        # Custom options travel to the workers with each spawn message: each scheduler's share.
        setattr(opts, SCHEDULERS_OPTION, getattr(opts, "num_users", None) or 1)


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    if not isinstance(environment.runner, WorkerRunner) or not STATE.schedulers:
        STATE.reset()
