"""Test-only locustfile for tests/test_open_model.py: loaded after the rate profile's files
(``-f locustfile.py,rate_scenarios.py,tests/open_model_probe.py``), never by the suite.

It records, in the Locust process, the ground truth the open model's corrected latency is checked
against, and can make the scheduler late or switch the correction off. Its variables are read here
only (tests are not the suite, so they are not fields of ``config.Settings``):

- ``OPEN_MODEL_PROBE_LOG=<path>``: at exit, a JSON file with the scheduler's start, every sent
  arrival's due time, every request of an arrival (arrival number, request number within it, name,
  due, end, service ms, the corrected ms the open model recorded, ok, end_after) and every stall.
  ``end`` is read just before the open model's request listener and ``end_after`` just after it,
  so the listener's own clock reading lies between them even when the OS preempts the process.
  All times are this process's ``time.perf_counter()`` seconds, as the open model keeps them.
- ``OPEN_MODEL_PROBE_STALL=<S>/<P>``: block the whole gevent loop for S s every P s (a real,
  unpatched sleep: the scheduler cannot run, so arrivals due meanwhile are sent late), at most
  ``MAX_STALLS`` times.
- ``OPEN_MODEL_PROBE_PLANT=no-correction``: the planted break. Before the open model's request
  listener runs, the operation's due time is moved to the request's send time, so the corrected
  latency it records equals the service time (the correction switched off). The tests show their
  checks fail with it.
"""

from __future__ import annotations

import contextvars
import json
import os
import time
from pathlib import Path

import gevent
from gevent import monkey
from locust import events, task
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING
from locust.stats import RequestStats

import users.open_model as om
from users.base import PaymentSuiteUser

MAX_STALLS = 60  # bounds the stall loop whatever the run time
LOG_PATH = os.environ.get("OPEN_MODEL_PROBE_LOG", "")
STALL = os.environ.get("OPEN_MODEL_PROBE_STALL", "")
PLANT = os.environ.get("OPEN_MODEL_PROBE_PLANT", "")
if PLANT not in ("", "no-correction"):
    raise SystemExit(f"OPEN_MODEL_PROBE_PLANT={PLANT!r}: allowed values: no-correction (or unset)")

_blocking_sleep = monkey.get_original("time", "sleep")  # Locust patched time.sleep to gevent's
_ARRIVAL: contextvars.ContextVar[list | None] = contextvars.ContextVar("probe_arrival", default=None)
RECORD: dict = {"start": None, "arrivals": [], "requests": [], "stalls": [], "plant": PLANT}
_pending: list = [None, None]  # the request being recorded: [for the corrected latency, for end_after]


class ProbePaymentUser(PaymentSuiteUser):
    """One approved POST /payments per arrival (RATE_CLASS=ProbePaymentUser): one request each."""

    weight = 1

    @task
    def pay(self) -> None:
        self.api.pay(self)


class ProbePayAndLookUpUser(PaymentSuiteUser):
    """A payment, then its lookup (RATE_CLASS=ProbePayAndLookUpUser): two requests per arrival, the
    second due when the first ended."""

    weight = 1

    @task
    def pay_and_look_up(self) -> None:
        payment = self.api.pay(self)
        if payment is not None:
            self.api.lookup(self, payment)


# Every sent arrival's due time, and its number in the greenlet of its operation.
_original_operation = om.RateUser._operation


def _operation(self, actor, due: float) -> None:
    if RECORD["start"] is None:
        RECORD["start"] = self.started_perf
    _ARRIVAL.set([len(RECORD["arrivals"]), 0])
    RECORD["arrivals"].append(due)
    _original_operation(self, actor, due)


om.RateUser._operation = _operation


def _probe(request_type, name, response_time, response_length=0, exception=None, **_kw) -> None:
    """Runs just before the open model's listener: the due time it is about to use, and now."""
    end = time.perf_counter()
    arrival, due = _ARRIVAL.get(), om.current_due()
    if arrival is None or due is None:
        return
    row = [arrival[0], arrival[1], name, due, end, response_time, None, exception is None, None]
    arrival[1] += 1
    RECORD["requests"].append(row)
    _pending[0] = _pending[1] = row


def _probe_after(**_kw) -> None:
    """Runs just after the open model's listener: the latest its clock reading can have been."""
    end_after = time.perf_counter()
    if _pending[1] is not None:
        _pending[1][8] = end_after
        _pending[1] = None


def _no_correction(request_type, name, response_time, response_length=0, exception=None, **kw) -> None:
    op = om._OP.get()
    if op is not None and response_time is not None:
        op[0] = time.perf_counter() - response_time / 1000.0  # "due" when it was sent
    om._on_request(request_type, name, response_time, response_length, exception, **kw)


# What the open model recorded as the request's corrected latency: its own RequestStats call.
_original_log_request = RequestStats.log_request


def _log_request(self, method, name, response_time, content_length):
    if self is om.STATE.corrected and _pending[0] is not None:
        _pending[0][6] = response_time
        _pending[0] = None
    return _original_log_request(self, method, name, response_time, content_length)


RequestStats.log_request = _log_request


@events.init.add_listener
def _bracket_the_open_model(environment, **_kw) -> None:
    """The probe brackets the open model's listener (no other listener between them), and the
    plant, when asked for, takes the listener's place. At init, after every module's own init
    (REQUEST_LOG's moves the open model's listener), and Locust's EventHook has no public insert."""
    handlers = environment.events.request._handlers
    at = handlers.index(om._on_request)
    handlers[at : at + 1] = [_probe, _no_correction if PLANT == "no-correction" else om._on_request, _probe_after]


def _stall_loop(environment, stall_s: float, period_s: float) -> None:
    for _ in range(MAX_STALLS):
        gevent.sleep(max(0.0, period_s - stall_s))
        runner = environment.runner
        if runner is None or runner.state in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP):
            return
        began = time.perf_counter()
        _blocking_sleep(stall_s)
        RECORD["stalls"].append([began, time.perf_counter()])


@events.test_start.add_listener
def _start_stalls(environment, **_kw) -> None:
    if STALL:
        stall_s, _, period_s = STALL.partition("/")
        gevent.spawn(_stall_loop, environment, float(stall_s), float(period_s))


@events.quitting.add_listener
def _write_log(environment, **_kw) -> None:
    if LOG_PATH:
        Path(LOG_PATH).write_text(json.dumps(RECORD))


__all__ = ["ProbePayAndLookUpUser", "ProbePaymentUser"]
