"""reporting/memory.py: Locust's per-second counters stay bounded on long runs, while every figure
(current RPS and failures per second, totals, the JSON's per-second counts) stays the same.

Runs in subprocesses: Locust must monkey-patch before anything imports ssl, and the test session
has already imported it. Time is simulated (``time.time`` patched), so an hour takes a second."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

CLOCK = """
import time
T0 = 1_700_000_000
clock = [float(T0)]
time.time = lambda: clock[0]
"""

AN_HOUR = (
    CLOCK
    + """
from locust.stats import RequestStats
from reporting.memory import KEEP_S, PRUNE_INTERVAL_S, PerSecondSpill, drop_entry_response_time_caches

NAMES = [f"/endpoint/{i}" for i in range(12)]
INTERVAL = int(PRUNE_INTERVAL_S)
plain, pruned = RequestStats(), RequestStats()  # today's behaviour, and with the spill
spill = PerSecondSpill()

def per_second_keys(stats):
    return sum(len(e.num_reqs_per_sec) + len(e.num_fail_per_sec) for e in [*stats.entries.values(), stats.total])

def pairs():
    yield plain.total, pruned.total
    for key, entry in plain.entries.items():
        yield entry, pruned.entries[key]

bound = 2 * (len(NAMES) + 1) * (KEEP_S + INTERVAL + 2)
for s in range(3600):
    for k in range(1 + s % 7):  # uneven load: 1..7 requests a second
        clock[0] = T0 + s + k / 10
        name = NAMES[(s * 7 + k) % len(NAMES)]
        for stats in (plain, pruned):
            stats.log_request("POST", name, 5 + k + (s * 13) % 97, 100)
            if (s + k) % 13 == 0:
                stats.log_error("POST", name, "boom")
    if s % INTERVAL == INTERVAL - 1:
        spill.prune(pruned)
        drop_entry_response_time_caches(pruned)
        assert per_second_keys(pruned) <= bound, (s, per_second_keys(pruned), bound)
        assert all(e.response_times_cache is None for e in pruned.entries.values())
        for p in (0.5, 0.95, 0.99):  # the total's "current" percentiles (UI, charts) keep their cache
            current = [stats.total.get_current_response_time_percentile(p) for stats in (plain, pruned)]
            assert current[0] == current[1], (s, p, current)
        for a, b in pairs():
            assert (a.current_rps, a.current_fail_per_sec) == (b.current_rps, b.current_fail_per_sec), (s, a.name)
            assert a.current_rps > 0 or a.name != "Aggregated"

assert per_second_keys(plain) > 3600, per_second_keys(plain)  # the growth this module bounds
assert per_second_keys(pruned) <= bound
for a, b in pairs():
    assert (a.num_requests, a.num_failures, a.total_rps) == (b.num_requests, b.num_failures, b.total_rps)
    assert a.to_dict() == b.to_dict(), a.name  # the UI's and reports' row, percentiles included

restored = spill.restore()  # what Locust's final JSON reads: every second of the run again
assert restored > 3000, restored
for a, b in pairs():
    assert dict(a.num_reqs_per_sec) == dict(b.num_reqs_per_sec), a.name
    assert dict(a.num_fail_per_sec) == dict(b.num_fail_per_sec), a.name
assert plain.serialize_stats() == pruned.serialize_stats()

# a stats reset (web UI) in between: nothing spilled before it comes back into the new counters
spill = PerSecondSpill()
clock[0] += 100
pruned.log_request("GET", "/x", 1, 1)
spill.prune(pruned)
pruned.reset_all()
assert spill.restore() == 0
assert per_second_keys(pruned) == 0
print("ok")
"""
)

WIRED = (
    CLOCK
    + """
from types import SimpleNamespace

import gevent
from locust import events
from locust.env import Environment

import reporting.memory as memory

memory.PRUNE_INTERVAL_S = 0.02  # real seconds; the requests below are an hour of simulated ones
env = Environment(events=events)
env.create_local_runner()
env.parsed_options = SimpleNamespace(json=False, json_file="/nonexistent/never-written", stats_history_enabled=False)
events.test_start.fire(environment=env)

for s in range(3600):
    clock[0] = T0 + s + 0.5
    env.stats.log_request("POST", "/payments", 10, 100)
    env.stats.log_request("GET", "/payments/{id}", 3, 100)
    if s % 5 == 0:
        env.stats.log_error("POST", "/payments", "boom")
    if s % 100 == 99:
        gevent.sleep(0.05)  # the pruning greenlet runs
        keys = len(env.stats.total.num_reqs_per_sec)
        assert keys <= memory.KEEP_S + 1, (s, keys)
        assert env.stats.total.current_rps == 2.0, env.stats.total.current_rps

assert env.stats.entries[("/payments", "POST")].response_times_cache is None
assert env.stats.total.use_response_times_cache and env.stats.total.response_times_cache
events.quitting.fire(environment=env, reverse=True)  # JSON output asked for: all seconds return
assert memory._pruner is None
assert len(env.stats.total.num_reqs_per_sec) == 3600
assert sum(env.stats.total.num_reqs_per_sec.values()) == 7200
assert sum(env.stats.entries[("/payments", "POST")].num_fail_per_sec.values()) == 720
print("ok")
"""
)


def _run(code: str) -> None:
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), (r.stdout[-2000:], r.stderr[-3000:])


def test_per_second_counters_stay_bounded_over_an_hour_and_figures_stay_the_same():
    _run(AN_HOUR)


def test_pruning_runs_from_test_start_and_the_json_gets_every_second_back():
    _run(WIRED)
