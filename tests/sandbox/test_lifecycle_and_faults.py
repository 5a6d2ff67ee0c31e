"""The sandbox as a process: start/stop, ports, tokens, persistence, fault injection."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time

import requests

from tests.helpers import AUTH, ROOT, Sandbox, free_port, payment_body


def test_sigterm_and_sigint_exit_cleanly(tmp_path):
    for sig in (signal.SIGTERM, signal.SIGINT):
        box = Sandbox(tmp_path / "d").start()
        assert box.stop(sig) == 0
        assert "stopped" in box.output()


def test_taken_port_is_one_clear_line_and_exit_1(sandbox, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--payment-port",
            str(sandbox.payment_port),
            "--bank-port",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(sandbox.payment_port) in lines[0] and "already in use" in lines[0]
    assert "Traceback" not in r.stderr


def test_token_written_with_bearer_prefix_is_accepted(tmp_path):
    box = Sandbox(tmp_path / "d", env={"AUTH_TOKEN": "Bearer s3cret-tok"}).start()
    try:
        ok = requests.post(
            box.payment_url + "/payments",
            json=payment_body(),
            timeout=10,
            headers={"Authorization": "Bearer s3cret-tok"},
        )
        assert ok.status_code == 201
        assert (
            requests.post(box.payment_url + "/payments", json=payment_body(), headers=AUTH, timeout=10).status_code
            == 401
        )
    finally:
        box.stop()


def test_data_survives_a_restart_and_reset_clears_it(tmp_path):
    box = Sandbox(tmp_path / "d").start()
    pid = requests.post(box.payment_url + "/payments", json=payment_body(amount=777), headers=AUTH, timeout=10).json()[
        "id"
    ]
    box.stop()
    box.start()
    r = requests.get(f"{box.payment_url}/payments/{pid}", headers=AUTH, timeout=10)
    assert r.status_code == 200 and r.json()["amount"] == 777
    box.stop()
    box.args = ["--reset"]
    box.start()
    assert requests.get(f"{box.payment_url}/payments/{pid}", headers=AUTH, timeout=10).status_code == 404
    box.stop()


def test_single_service_mode(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "bank", "--bank-port", str(port), "--data-dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert f"BankingAPI listening on http://127.0.0.1:{port}" in line
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).ok
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


def _timed_authorizations(box: Sandbox, n: int) -> tuple[list[float], list[int]]:
    body = {"amount": 100, "currency": "USD", "merchant_id": "mer_faults", "card": payment_body()["card"]}
    took, codes = [], []
    with requests.Session() as s:
        s.headers.update(AUTH)
        for _ in range(n):
            t0 = time.perf_counter()
            codes.append(s.post(box.bank_url + "/v1/authorizations", json=body, timeout=10).status_code)
            took.append((time.perf_counter() - t0) * 1000)
    return took, codes


def test_fault_injection_changes_latency_and_error_rate_at_runtime(fresh_sandbox):
    box = fresh_sandbox.start()
    base, _ = _timed_authorizations(box, 30)
    box.set_bank_faults(latency_ms=80, jitter_ms=20)
    slow, _ = _timed_authorizations(box, 30)
    added = statistics.median(slow) - statistics.median(base)
    # 80 ms (jitter 20) added at runtime: the median moves by about 80 ms. The bounds leave room for a
    # busy machine and still fail when the fault is ignored (0) or applied twice (160).
    assert 55 <= added <= 140, added
    box.set_bank_faults(error_rate=0.5)
    _, codes = _timed_authorizations(box, 200)
    share = codes.count(500) / len(codes)
    assert 0.35 <= share <= 0.65 and set(codes) == {201, 500}
    assert requests.put(box.bank_url + "/__sandbox/faults", json={"error_rate": 0.1}, timeout=5).status_code == 401
    bad = requests.put(box.bank_url + "/__sandbox/faults", json={"error_rate": 2}, headers=AUTH, timeout=5)
    assert bad.status_code == 422
    box.set_bank_faults()  # back to none
    _, codes = _timed_authorizations(box, 20)
    assert set(codes) == {201}


def test_bank_timeouts_and_errors_surface_as_504_and_502(tmp_path):
    box = Sandbox(tmp_path / "d", args=["--bank-timeout", "0.5"]).start()
    try:
        box.set_bank_faults(timeout_rate=1.0, hang_s=3)
        t0 = time.monotonic()
        r = requests.post(box.payment_url + "/payments", json=payment_body(), headers=AUTH, timeout=10)
        assert r.status_code == 504 and r.json()["error"]["code"] == "bank_timeout"
        assert time.monotonic() - t0 < 2.0
        box.set_bank_faults(malformed_rate=1.0)
        r = requests.post(box.payment_url + "/payments", json=payment_body(), headers=AUTH, timeout=10)
        assert r.status_code == 502 and r.json()["error"]["code"] == "bank_error"
        box.set_bank_faults(error_rate=1.0)
        r = requests.post(box.payment_url + "/payments", json=payment_body(), headers=AUTH, timeout=10)
        assert r.status_code == 502
    finally:
        box.stop()


def test_retry_after_bank_failure_with_same_key_charges_once(tmp_path):
    """A 5xx is not stored against the key, and the bank hop is keyed too: the retry completes once."""
    box = Sandbox(tmp_path / "d").start()
    try:
        body, key = payment_body(amount=1234, merchant="mer_retry"), {"Idempotency-Key": "retry-1", **AUTH}
        box.set_bank_faults(error_rate=1.0)
        assert requests.post(box.payment_url + "/payments", json=body, headers=key, timeout=10).status_code == 502
        box.set_bank_faults()
        ok = requests.post(box.payment_url + "/payments", json=body, headers=key, timeout=10)
        again = requests.post(box.payment_url + "/payments", json=body, headers=key, timeout=10)
        assert ok.status_code == again.status_code == 201 and ok.json()["id"] == again.json()["id"]
        day = time.strftime("%Y-%m-%d", time.gmtime())
        s = requests.get(
            box.bank_url + "/v1/settlements", params={"date": day, "merchant_id": "mer_retry"}, headers=AUTH, timeout=10
        ).json()
        assert s["captured"] == 1234 and s["count"] == 1
    finally:
        box.stop()


def test_bank_down_makes_payments_502_and_health_say_so(tmp_path):
    port = free_port()
    lone = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "payment",
            "--payment-port",
            str(port),
            "--bank-url",
            f"http://127.0.0.1:{free_port()}",
            "--data-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "listening" in lone.stdout.readline()
        h = requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        assert h["checks"] == {"database": "ok", "bank": "unreachable"}
        r = requests.post(f"http://127.0.0.1:{port}/payments", json=payment_body(), headers=AUTH, timeout=10)
        assert r.status_code == 502 and r.json()["error"]["code"] == "bank_error"
    finally:
        lone.terminate()
        assert lone.wait(timeout=15) == 0
