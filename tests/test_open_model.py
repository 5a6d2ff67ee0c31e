"""Open model (issue 14): the `rate` profiles hold an arrival rate and count what could not be sent,
time each request from when it was due; the `burst` profile sends exactly TOTAL payments.

Every load here is short and aimed at a sandbox on loopback (the runner in a subprocess: Locust
must not gevent-patch the pytest process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.helpers import AUTH, ROOT, Sandbox
from tests.test_runner import RUNNER, locust_totals, target_env

# Variables of the open model a developer's shell or .env might set: the tests choose their own.
OPEN_MODEL_VARS = ("TARGET_RPS", "RATE_STAGES", "RAMP", "ARRIVALS", "MAX_IN_FLIGHT", "RATE_CLASS", "TOTAL")
OPEN_MODEL_VARS += ("CONCURRENCY", "USERS", "RUN_TIME", "SPAWN_RATE", "WORKERS", "DRY_RUN", "SLO_FILE")


def _env(sandbox, tmp_path: Path, **extra) -> dict:
    return target_env(sandbox, tmp_path, AUTH_TOKEN="test_token_123456789", **extra)


def run(profile: str, env: dict, timeout: int) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k.upper() not in OPEN_MODEL_VARS}
    full = {**clean, "PYTHONUNBUFFERED": "1", **env}
    return subprocess.run([str(RUNNER), profile], cwd=ROOT, env=full, capture_output=True, text=True, timeout=timeout)


def _summary(tmp_path: Path, profile: str) -> dict:
    return json.loads((tmp_path / "reports" / f"{profile}-summary.json").read_text())


def test_schedule_counts_and_arrival_times_agree():
    """Stages ramp linearly and the last rate holds; time_of inverts count (in a subprocess:
    importing the module imports Locust)."""
    code = """
from users.open_model import Schedule
s = Schedule([(100, 10), (1000, 20), (0, 10)])
assert abs(s.count(10) - 500) < 1e-6 and abs(s.count(30) - (500 + 550 * 20)) < 1e-6
assert abs(s.count(40) - s.count(30) - 5000) < 1e-6 and s.time_of(s.count(40) + 1) is None
for n in (0, 1, 250, 500, 777, 5000, 11000, 16400):
    t = s.time_of(n)
    assert abs(s.count(t) - n) < 1e-6, (n, t, s.count(t))
flat = Schedule([], hold=200)
assert abs(flat.time_of(400) - 2.0) < 1e-9 and abs(flat.count(1.5) - 300) < 1e-9
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_thresholds_may_name_corrected_metrics_and_burst_operations(tmp_path):
    from reporting import thresholds as th

    slo = tmp_path / "slo.toml"
    slo.write_text(
        '[endpoints."POST /payments"]\np99_corrected_ms = 400\np95_ms = 200\n'
        '[operations."POST /payments"]\np95_ms = 120\nmin_rps = 500\n'
    )
    loaded = {(t.scope, t.metric): t.limit for t in th.load_thresholds(slo)}
    assert loaded[("POST /payments", "p99_corrected_ms")] == 400 and loaded[("POST /payments", "p95_ms")] == 200
    text = th.Threshold("POST /payments", "p99_corrected_ms", 400).describe()
    assert text == "POST /payments p99_corrected <= 400 ms"
    assert th.load_operations(slo) == {"POST /payments": {"p95_ms": 120.0, "min_rps": 500.0}}
    assert th.load_operations(None) == {"POST /payments": {"p95_ms": 150, "min_rps": 1000, "max_error_rate": 0.001}}
    slo.write_text('[operations."POST /payments"]\np95 = 1\n')
    try:
        th.load_thresholds(slo)
    except th.ThresholdError as exc:
        assert "unknown metric 'p95'" in str(exc)
    else:
        raise AssertionError("a bad [operations] metric must be refused")


def test_a_threshold_on_a_corrected_latency_gates_the_rate_run(sandbox, tmp_path):
    slo = tmp_path / "slo.toml"
    slo.write_text('[endpoints."POST /payments"]\np99_corrected_ms = 0.001\n')
    r = run("rate", env=_env(sandbox, tmp_path, TARGET_RPS="30", RUN_TIME="4s", SLO_FILE=str(slo)), timeout=90)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "threshold breached: POST /payments p99_corrected <= 0.001 ms" in r.stderr
    breached = [t for t in _summary(tmp_path, "rate")["thresholds"] if t["pass"] is False]
    assert ("POST /payments", "p99_corrected_ms") in [(t["scope"], t["metric"]) for t in breached]


def test_a_rate_class_that_cannot_run_stops_before_any_load(sandbox, tmp_path):
    r = run("rate", env=_env(sandbox, tmp_path, RATE_CLASS="NoSuchUser", RUN_TIME="5s"), timeout=60)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "config error: RATE_CLASS='NoSuchUser': no such (non-abstract) user class" in r.stderr
    assert not (tmp_path / "reports" / "rate-summary.json").exists()


def test_rate_is_held_and_corrected_latency_is_never_below_service(sandbox, tmp_path):
    started = time.monotonic()
    r = run("rate", env=_env(sandbox, tmp_path, TARGET_RPS="50", RUN_TIME="15s"), timeout=120)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    s = _summary(tmp_path, "rate")
    om = s["open_model"]
    # the rate is held within +-5 % (sent over the window against the schedule)
    assert 0.95 <= om["achieved_ratio"] <= 1.05, om
    assert 47.5 <= om["achieved_rps"] <= 52.5, om
    assert om["dropped"] == 0 and om["schedulers"] == 1
    # every request was timed twice, and no corrected latency is below its service time
    total, _failures = locust_totals(tmp_path / "reports", "rate")
    assert om["requests_timed"] == total > 600
    assert om["corrected_below_service"] == 0
    for row in om["endpoints"]:
        for key in ("p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms"):
            assert row["corrected"][key] >= row["service"][key], row
    # the per-second history, in the summary and in its CSV
    assert om["per_second_sent"]["min"] >= 45, om["per_second"]
    lines = Path(om["history_csv"]).read_text().splitlines()
    assert lines[0].startswith("Timestamp,Second,Target arrivals,Sent,Dropped,Late") and len(lines) >= 15
    # both latencies and the counts, in the Markdown summary and on stderr at the end
    md = (tmp_path / "reports" / "rate-summary.md").read_text()
    assert "### Open model: arrivals at a rate" in md and "dropped" in md and "late" in md
    assert "p99.9" in md and "corrected" in md
    assert "### Open model" in r.stderr.split("Shutting down")[-1]
    # the profile's default thresholds are on the corrected latencies
    assert any(t["metric"] == "p95_corrected_ms" and t["actual"] is not None for t in s["thresholds"])
    assert time.monotonic() - started < 60


def test_stalled_target_drops_arrivals_and_fails_integrity(tmp_path):
    box = Sandbox(
        tmp_path / "data",
        env={"SANDBOX_BANK_STALL_EVERY_S": "3", "SANDBOX_BANK_STALL_S": "2"},
    ).start()
    try:
        env = _env(box, tmp_path, TARGET_RPS="40", RUN_TIME="8s", MAX_IN_FLIGHT="5")
        r = run("rate", env=env, timeout=120)
    finally:
        box.stop()
    assert r.returncode == 1, r.stderr[-3000:]
    s = _summary(tmp_path, "rate")
    om = s["open_model"]
    assert om["dropped"] > 0.01 * om["due"] and om["in_flight_peak"] == 5, om
    assert om["sent"] + om["dropped"] == om["due"]
    assert "the target" in om["limit"]
    assert any("integrity (open model)" in reason and "dropped" in reason for reason in s["reasons"]), s["reasons"]
    assert s["verdict"] == "fail"


def test_sandbox_stall_fault_is_settable_and_checked(fresh_sandbox):
    box = fresh_sandbox.start()
    faults = box.set_bank_faults(stall_every_s=1.5, stall_s=0.6)
    assert faults["stall_every_s"] == 1.5 and faults["stall_s"] == 0.6
    bad = requests.put(box.bank_url + "/__sandbox/faults", json={"stall_every_s": 1, "stall_s": 1}, headers=AUTH)
    assert bad.status_code == 422
    body = {"amount": 100, "currency": "USD", "merchant_id": "mer_stall", "card": {"number": "4242424242424242"}}
    body["card"].update({"exp_month": 12, "exp_year": 2031, "cvc": "123"})
    slowest = 0.0
    deadline = time.monotonic() + 3.2
    while time.monotonic() < deadline:  # ~2 periods: some requests meet a stall
        t0 = time.monotonic()
        requests.post(box.bank_url + "/v1/authorizations", json=body, headers=AUTH, timeout=5)
        slowest = max(slowest, time.monotonic() - t0)
        time.sleep(0.05)
    assert 0.2 < slowest < 1.0, slowest


def test_burst_sends_exactly_total_payments(sandbox, tmp_path):
    r = run("burst", env=_env(sandbox, tmp_path, TOTAL="200", CONCURRENCY="20"), timeout=120)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    rows = json.loads((tmp_path / "reports" / "burst.json").read_text())
    assert {row["name"]: row["num_requests"] for row in rows} == {"POST /payments": 200}
    b = _summary(tmp_path, "burst")["burst"]
    assert b["payments_sent"] == b["requests"] == 200 and b["complete"] and b["concurrency"] == 20
    assert {t["metric"] for t in b["targets"]} == {"p95_ms", "min_rps", "max_error_rate"}
    for key in ("success_rate", "duration_s", "rps", "min_ms", "avg_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms"):
        assert b[key] is not None, key
    tail = r.stderr.split("Shutting down")[-1]
    assert "### Burst: 200 payments, 20 concurrent" in tail and "| POST /payments | p95_ms <= 150 |" in tail


def test_distributed_rate_splits_across_two_workers_and_holds_the_total(sandbox, tmp_path):
    env = _env(sandbox, tmp_path, TARGET_RPS="60", RUN_TIME="12s", WORKERS="2")
    r = run("rate-distributed", env=env, timeout=150)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    s = _summary(tmp_path, "rate-distributed")
    om = s["open_model"]
    assert om["schedulers"] == 2 and len(om["max_in_flight"]) == 2, om
    assert 0.95 <= om["achieved_ratio"] <= 1.05 and 57 <= om["scheduled_rps"] <= 63, om
    assert om["dropped"] == 0 and om["requests_timed"] > 0
    by_worker = s["workers"]["requests_by_worker"]
    assert len(by_worker) == 2 and all(n > 100 for n in by_worker.values()), by_worker
    # each worker took half: neither sent more than 60 % of the requests
    assert max(by_worker.values()) < 0.6 * sum(by_worker.values())


if __name__ == "__main__":  # pragma: no cover - a developer's shortcut
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", __file__, *sys.argv[1:]], env=os.environ))
