"""reporting/: the steady-state window survives the worker -> master report cycle.

Runs in a subprocess: Locust must monkey-patch before anything imports ssl, and the test
session has already imported it."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

ROUND_TRIP = """
from locust.stats import RequestStats  # noqa: F401  (patches first)
from reporting.steady import SteadyStats

def log(steady, n, name="POST /payments", failed=0):
    for i in range(n):
        steady.on_request("POST", name, 10.0 + i % 7, 100, RuntimeError("boom") if i < failed else None)

worker, master = SteadyStats(), SteadyStats()
worker.begin()
for batch in (120, 80, 45):  # three report intervals, each with new requests
    log(worker, batch, failed=5)
    log(worker, 10, name="GET /health")
    report = {}
    worker.to_report(report)
    master.merge_report(report)
entry = master.stats.entries[("POST /payments", "POST")]
assert (entry.num_requests, entry.num_failures) == (245, 15), (entry.num_requests, entry.num_failures)
assert master.stats.entries[("GET /health", "POST")].num_requests == 30
assert master.stats.total.num_requests == 275, master.stats.total.num_requests
report = {}
worker.to_report(report)  # each report carries only what happened since the last one
assert report["suite_steady_stats"]["entries"] == [], report
assert report["suite_steady_stats"]["total"]["num_requests"] == 0

late = SteadyStats(warmup_s=3600)
late.begin()
log(late, 10)
assert late.stats.total.num_requests == 0  # still in warm-up: outside the window
print("ok")
"""


def test_worker_reports_add_up_on_the_master():
    r = subprocess.run([sys.executable, "-c", ROUND_TRIP], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]
