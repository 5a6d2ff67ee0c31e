"""reporting/request_log.py and reporting/request_log_check.py: REQUEST_LOG writes one line per
request Locust counted, and ``python -m reporting.request_log <log> --summary <json>`` recomputes
every summary figure from it and agrees (or names each figure that does not).

Runs are short and aimed at a sandbox on loopback (the runner, or Locust, in a subprocess)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, Sandbox, free_port
from tests.test_open_model import run as run_clean
from tests.test_runner import locust_totals, target_env

# A busy shared machine may breach a latency threshold (1) or the generator's CPU limit (5): the
# log must match the summary all the same. Usage (2), unreachable (3) or money (4) would be a fault.
OUTCOMES = (0, 1, 5)
HEADER = "sent\tdue\tmethod\tendpoint\tstatus\tok\tservice_ms\tcorrected_ms\tworker"


def check(log: Path, summary: Path | None = None, *extra: str) -> subprocess.CompletedProcess:
    args = [str(log), *(["--summary", str(summary)] if summary else []), *extra]
    return subprocess.run(
        [sys.executable, "-m", "reporting.request_log", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def lines_of(path: Path) -> list[list[str]]:
    text = path.read_text()
    assert text.endswith("\n"), "the log ends with a whole line"
    rows = text.splitlines()
    assert rows[0] == HEADER
    return [row.split("\t") for row in rows[1:]]


def _env(sandbox, tmp_path: Path, **extra) -> dict:
    return target_env(sandbox, tmp_path, AUTH_TOKEN="test_token_123456789", **extra)


# --- real runs -----------------------------------------------------------------------------------


def test_a_local_run_logs_every_request_and_the_log_recomputes_the_summary(sandbox, tmp_path):
    log = tmp_path / "logs" / "requests.tsv"
    log.parent.mkdir()
    stale = Path(f"{log}.worker7")  # an earlier distributed run's file: not this run's
    stale.write_text(HEADER + "\n")
    started = time.time()
    r = run_clean("smoke", _env(sandbox, tmp_path, RUN_TIME="5s", REQUEST_LOG=str(log)), timeout=180)
    assert r.returncode in OUTCOMES, r.stderr[-3000:]
    reports = tmp_path / "reports"
    summary = json.loads((reports / "smoke-summary.json").read_text())
    rows = lines_of(log)
    # one line per request Locust counted: the summary's totals and Locust's own JSON
    assert len(rows) == summary["totals"]["requests"] == locust_totals(reports, "smoke")[0] > 100
    assert sum(row[5] == "0" for row in rows) == summary["totals"]["failures"]
    by_endpoint: dict[tuple[str, str], int] = {}
    for row in rows:
        by_endpoint[(row[3], row[2])] = by_endpoint.get((row[3], row[2]), 0) + 1
    assert by_endpoint == {(e["name"], e["method"]): e["requests"] for e in summary["endpoints"]}
    # closed model: no due time, no corrected latency; every line from this run, on this machine
    assert all(row[1] == "" and row[7] == "" and row[8] == "local" for row in rows)
    assert all(started - 1 < float(row[0]) < time.time() and float(row[6]) >= 0 for row in rows)
    assert {int(row[4]) for row in rows} >= {200, 201, 404}
    assert not stale.exists()
    out = check(log, reports / "smoke-summary.json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    assert "0 differ" in out.stdout and f"{len(rows)} requests from 1 worker(s)" in out.stdout

    # a percentile of the summary off by more than the record's bound is named, exit 1
    broken = json.loads(json.dumps(summary))
    row = next(e for e in broken["endpoints"] if e["name"] == "POST /payments")
    row["p99_ms"] = round(row["p99_ms"] * 1.01 + 0.05, 2)
    broken["totals"]["failures"] += 1
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    out = check(log, tmp_path / "broken.json")
    assert out.returncode == 1, out.stdout[-2000:]
    assert "DIFF POST 'POST /payments' p99_ms: summary" in out.stdout
    assert "DIFF total failures: summary" in out.stdout and "2 differ" in out.stdout


def test_a_rate_run_logs_the_open_models_own_corrected_latency(sandbox, tmp_path):
    log = tmp_path / "requests.tsv"
    r = run_clean("rate", _env(sandbox, tmp_path, TARGET_RPS="40", RUN_TIME="4s", REQUEST_LOG=str(log)), timeout=120)
    assert r.returncode in OUTCOMES, r.stderr[-3000:]
    summary_path = tmp_path / "reports" / "rate-summary.json"
    summary = json.loads(summary_path.read_text())
    rows = lines_of(log)
    assert len(rows) == summary["totals"]["requests"] == summary["open_model"]["requests_timed"] > 50
    for row in rows:
        sent, due, service, corrected = float(row[0]), float(row[1]), float(row[6]), float(row[7])
        assert due <= sent + 0.001 and corrected >= service, row  # due before sent; corrected counts from due
    out = check(log, summary_path)
    # the open model's corrected figures are compared too, and agree to the record's bound
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    assert "corrected" in out.stdout and "0 differ" in out.stdout


@pytest.mark.parametrize("bank_latency_ms", [0, 700], ids=["fast", "slow-target"])
def test_distributed_workers_files_add_up_to_the_masters_totals(sandbox, tmp_path, bank_latency_ms):
    """The runner's own master and worker commands (its dry run prints them), on a free port. With a
    slow target, payments are still in flight when the run time is up: the workers finish them
    within the stop timeout, and the master waits for their final reports (it used to give them
    0.5 s, and the totals lost them)."""
    if bank_latency_ms:
        box = Sandbox(tmp_path / "slow-data", env={"SANDBOX_BANK_LATENCY_MS": str(bank_latency_ms)}).start()
        try:
            _distributed_run(box, tmp_path)
        finally:
            box.stop()
    else:
        _distributed_run(sandbox, tmp_path)


def _distributed_run(sandbox, tmp_path: Path) -> None:
    log, reports, port = tmp_path / "requests.tsv", tmp_path / "reports", free_port()
    env = _env(sandbox, tmp_path, REQUEST_LOG=str(log), RUN_TIME="6s", USERS="6", SPAWN_RATE="6", WORKERS="2")
    plan = run_clean("distributed", {**env, "DRY_RUN": "1"}, timeout=60)
    assert plan.returncode == 0, plan.stderr
    master_line, workers_line = plan.stdout.strip().splitlines()[-2:]
    master_cmd = [*shlex.split(master_line), "--master-bind-port", str(port)]
    worker_cmd = [*shlex.split(workers_line.split(" x ", 1)[1]), "--master-port", str(port)]
    env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    reports.mkdir(exist_ok=True)
    workers = [
        subprocess.Popen(worker_cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:
        master = subprocess.run(master_cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    finally:
        for w in workers:
            w.terminate()
            w.wait(timeout=30)
    assert master.returncode in OUTCOMES, master.stderr[-9000:]
    summary = json.loads((reports / "distributed-summary.json").read_text())
    files = sorted(tmp_path.glob("requests.tsv.worker*"))
    assert [f.name for f in files] == ["requests.tsv.worker0", "requests.tsv.worker1"] and not log.exists()
    per_file = {}
    for f in files:
        rows = lines_of(f)
        (worker,) = {row[8] for row in rows}  # one worker per file, named by its client id
        per_file[worker] = len(rows)
    assert per_file == summary["workers"]["requests_by_worker"]
    assert sum(per_file.values()) == summary["totals"]["requests"] == locust_totals(reports, "distributed")[0]
    out = check(log, reports / "distributed-summary.json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    assert "from 2 worker(s)" in out.stdout


def test_an_interrupted_run_leaves_a_whole_log_that_matches_its_summary(sandbox, tmp_path):
    log = tmp_path / "requests.tsv"
    env = {**os.environ, **_env(sandbox, tmp_path, RUN_TIME="60s", REQUEST_LOG=str(log)), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "run_tests.sh"), "smoke"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not log.exists():
            time.sleep(0.2)  # the header is written at test_start; the lines stay in memory till the end
        time.sleep(4)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    summary_path = tmp_path / "reports" / "smoke-summary.json"
    assert summary_path.exists(), err[-3000:]
    rows = lines_of(log)
    assert len(rows) == json.loads(summary_path.read_text())["totals"]["requests"] > 0
    out = check(log, summary_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr


def test_without_request_log_no_listener_is_registered(tmp_path):
    code = (
        "import locustfile\nfrom locust import events\n"
        "mine = [h for h in events.request._handlers if 'request_log' in getattr(h, '__module__', '')]\n"
        "print(len(mine))\n"
    )
    env = {k: v for k, v in os.environ.items() if k.upper() != "REQUEST_LOG"}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "0", r.stderr[-2000:]
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "REQUEST_LOG": str(tmp_path / "x.tsv")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr[-2000:]  # note_due; the line at init


# --- the reader on known logs --------------------------------------------------------------------


def _line(sent: float, endpoint: str, ok: int, service: float | None, corrected: float | None = None) -> str:
    due = "" if corrected is None else f"{sent - 0.001:.6f}"
    method = endpoint.split(" ", 1)[0]
    return (
        f"{sent:.6f}\t{due}\t{method}\t{endpoint}\t{200 if ok else 500}\t{ok}\t"
        f"{'' if service is None else f'{service:.3f}'}\t{'' if corrected is None else f'{corrected:.3f}'}\tlocal\n"
    )


def _known_log(path: Path) -> None:
    """100 requests of POST /payments taking 1..100 ms (the 7th of each ten failed), and 10 of
    GET /x taking 5 ms, one of them untimed (Locust's None response time)."""
    body = [_line(1000.0 + i / 100, "POST /payments", int(i % 10 != 6), float(i + 1), float(i + 3)) for i in range(100)]
    body += [_line(1001.0 + i / 10, "GET /x", 1, None if i == 0 else 5.0) for i in range(10)]
    path.write_text(HEADER + "\n" + "".join(body))


def _known_summary() -> dict:
    pay = {"requests": 100, "failures": 10, "error_rate": 0.1, "avg_ms": 50.5}
    pay |= {"min_ms": 1.0, "p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0, "p999_ms": 100.0, "max_ms": 100.0}
    x = {"requests": 10, "failures": 0, "error_rate": 0.0, "avg_ms": 5.0}
    x |= {"min_ms": 5.0, "p50_ms": 5.0, "p95_ms": 5.0, "p99_ms": 5.0, "p999_ms": 5.0, "max_ms": 5.0}
    total = {"requests": 110, "failures": 10, "error_rate": round(10 / 110, 6), "avg_ms": round(5095 / 109, 2)}
    total |= {"min_ms": 1.0, "p50_ms": 46.0, "p95_ms": 95.0, "p99_ms": 99.0, "p999_ms": 100.0, "max_ms": 100.0}
    corrected = {"requests": 100, "min_ms": 3.0, "p50_ms": 52.0, "p95_ms": 97.0, "p99_ms": 101.0}
    corrected |= {"p999_ms": 102.0, "max_ms": 102.0}
    return {
        "duration_s": 10.0,
        "open_model": {
            "total": {"corrected": corrected},
            "endpoints": [{"name": "POST /payments", "method": "POST", "corrected": corrected}],
        },
        "totals": {**total, "rps": 11.0},
        "endpoints": [
            {"name": "POST /payments", "method": "POST", **pay, "rps": 10.0},
            {"name": "GET /x", "method": "GET", **x, "rps": 1.0},
        ],
    }


def test_known_log_gives_known_figures_and_agrees_with_a_known_summary(tmp_path):
    log = tmp_path / "known.tsv"
    _known_log(log)
    (tmp_path / "summary.json").write_text(json.dumps(_known_summary()))
    out = check(log, tmp_path / "summary.json")
    assert out.returncode == 0, out.stdout + out.stderr
    pay = next(line for line in out.stdout.splitlines() if line.startswith("POST /payments"))
    # the window: the first request sent (1000.000) to the last answer received (1001.9 + 5 ms)
    assert "window: first request sent to last answer received, 1.905 s" in out.stdout
    figures = ["100", "10", "10.00", "52.49", "service", "1.000", "50.000", "95.000", "99.000", "100.000", "100.000"]
    assert pay.split()[2:] == figures
    assert "0 differ" in out.stdout and "corrected" in out.stdout
    # a cut last line (a hard kill mid-write) is skipped and said
    with log.open("a") as fh:
        fh.write("1002.5\t\tGET\tGET /x\t200\t1\t5.0")
    out = check(log, tmp_path / "summary.json")
    assert out.returncode == 0 and "skipped: 1 last line(s) cut short" in out.stdout, out.stdout


@pytest.mark.parametrize(
    "change,needle",
    [
        (lambda s: s["endpoints"][0].update(p95_ms=95.3), "POST 'POST /payments' p95_ms: summary 95.3"),
        (lambda s: s["totals"].update(p50_ms=46.11), "total p50_ms: summary 46.11"),
        (lambda s: s["totals"].update(requests=111), "total requests: summary 111, log 110"),
        (lambda s: s["endpoints"][1].update(error_rate=0.1), "GET 'GET /x' error rate: summary 10.0000 %"),
        (lambda s: s["totals"].update(rps=11.5), "total rps: summary 11.5"),
        (lambda s: s["endpoints"].pop(), "GET 'GET /x': 10 requests in the log, not in the summary"),
        (
            lambda s: s["open_model"]["total"]["corrected"].update(p99_ms=101.5),
            "total p99_corrected_ms: summary 101.5, log 101.000",
        ),
    ],
)
def test_each_figure_that_differs_is_named_and_exits_1(tmp_path, change, needle):
    log = tmp_path / "known.tsv"
    _known_log(log)
    summary = _known_summary()
    change(summary)
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    out = check(log, tmp_path / "summary.json")
    assert out.returncode == 1 and f"DIFF {needle}" in out.stdout, out.stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        ([], "the following arguments are required: log"),
        (["{log}", "--bogus"], "unrecognized arguments: --bogus"),
        (["{tmp}/missing.tsv"], "no request log at"),
        (["{log}", "--summary", "{tmp}/missing.json"], "--summary"),
        (["{tmp}/notalog.tsv"], "not a request log"),
        (["{tmp}/malformed.tsv"], "malformed.tsv:3: not a request log line"),
    ],
)
def test_bad_arguments_or_logs_are_one_line_exit_2(tmp_path, args, needle):
    log = tmp_path / "known.tsv"
    _known_log(log)
    (tmp_path / "notalog.tsv").write_text("a,b,c\n1,2,3\n")
    (tmp_path / "malformed.tsv").write_text(HEADER + "\n" + _line(1.0, "GET /x", 1, 2.0) + "1.0\tGET\n")
    argv = [a.format(log=log, tmp=tmp_path) for a in args]
    r = subprocess.run(
        [sys.executable, "-m", "reporting.request_log", *argv], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, r.stderr
