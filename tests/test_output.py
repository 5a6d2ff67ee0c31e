"""What a person reads while a run goes and when it ends (reporting/progress.py, the runner's run
line): a progress line instead of Locust's table every 2 s, the table once at the end, LOCUST_TABLE=1
for Locust's periodic table, a run line in the profile's terms, no warnings about options the runner
passed itself."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT
from tests.test_runner import run

TABLE_HEADER = re.compile(r"^Type\s+Name\s+# reqs")
PLAIN_PROGRESS = re.compile(
    r"^progress \d+:\d\d/0:30 \(\d+ %\) \| 5 users \| [\d.]+ req/s \| p95 [\d.]+ ms \| \d+ failures \([\d.]+ %\)"
    r" \| payments \d+ ok, \d+ declined, \d+ unknown$"
)
LOCUST_SELF_WARNINGS = ("will be ignored", "have no impact on LoadShapes", "Run time limit set")


def sandbox_env(sandbox, tmp_path, **extra) -> dict:
    """Only the targets and the report folder: the profile's own defaults otherwise."""
    env = {"PAYMENT_SERVICE_URL": sandbox.payment_url, "BANKING_API_URL": sandbox.bank_url}
    return {**env, "REPORT_DIR": str(tmp_path / "reports"), **extra}


def output_lines(r: subprocess.CompletedProcess) -> list[str]:
    return (r.stdout + r.stderr).splitlines()


def test_default_smoke_prints_at_most_40_lines_with_a_progress_line(sandbox, tmp_path):
    r = run("smoke", env=sandbox_env(sandbox, tmp_path), timeout=240)
    lines = output_lines(r)
    assert r.returncode == 0, "\n".join(lines[-40:])
    assert len(lines) <= 40, f"{len(lines)} lines:\n" + "\n".join(lines)
    progress = [line for line in lines if line.startswith("progress ")]
    assert progress and all(PLAIN_PROGRESS.match(line) for line in progress), progress
    assert len(progress) <= 3  # a plain line every 10 s of a 30 s run, not a redrawn bar
    assert sum(1 for line in lines if TABLE_HEADER.match(line)) == 1  # the table once, at the end
    assert "run: profile smoke, 5 users at 5/s for 30s" in r.stderr
    assert not any("Ramping to" in line or "All users spawned" in line for line in lines)
    table_end = max(i for i, line in enumerate(lines) if line.lstrip().startswith("Aggregated"))
    assert any(line.startswith("verdict: PASS") for line in lines[table_end:])  # the verdict after it


def test_locust_table_brings_the_periodic_table_back(sandbox, tmp_path):
    r = run("smoke", env=sandbox_env(sandbox, tmp_path, RUN_TIME="7s", LOCUST_TABLE="1"), timeout=180)
    lines = output_lines(r)
    assert r.returncode == 0, "\n".join(lines[-40:])
    assert sum(1 for line in lines if TABLE_HEADER.match(line)) >= 3  # every 2 s, and once at the end
    assert not [line for line in lines if line.startswith("progress ")]


@pytest.mark.parametrize(
    "profile,env,line",
    [
        ("smoke", {}, "5 users at 5/s for 30s"),
        ("basic", {"USERS": "7", "SPAWN_RATE": "3.5"}, "7 users at 3.5/s for 60s"),
        ("stress", {"RUN_TIME": "2m"}, "shape shapes/stress.py, up to 500 users, at most 2m"),
        ("rate", {"TARGET_RPS": "250"}, "250 arrivals/s of PaymentServiceUser for 1m"),
        ("rate", {"TARGET_RPS": "50", "RAMP": "10"}, "50 arrivals/s after a 10 s ramp of PaymentServiceUser for 1m"),
        ("rate", {"RATE_STAGES": "10:5s,40:10s"}, "arrivals/s by stages 10:5s,40:10s of PaymentServiceUser for 1m"),
        ("rate-distributed", {}, "100 arrivals/s of PaymentServiceUser over 2 schedulers for 1m"),
        ("burst", {"TOTAL": "400", "CONCURRENCY": "20"}, "400 payments, 20 in flight, until all are answered"),
    ],
)
def test_the_run_line_fits_the_profile(profile, env, line):
    r = subprocess.run(
        [sys.executable, "-m", "profiles", "plan", profile],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert f"PLAN_SUMMARY='{line}'" in r.stdout, r.stdout


def test_the_table_is_off_unless_asked_and_burst_gets_no_options_it_ignores():
    default = run("smoke", env={"DRY_RUN": "1"}).stdout
    asked = run("smoke", env={"DRY_RUN": "1", "LOCUST_TABLE": "1"}).stdout
    assert " --only-summary " in default and "--only-summary" not in asked
    burst = run("burst", env={"DRY_RUN": "1"}).stdout.split()
    assert not {"-u", "-r", "-t"} & set(burst), burst


def test_burst_rate_and_shapes_say_nothing_about_options_the_runner_passed(sandbox, tmp_path):
    burst = run("burst", env=sandbox_env(sandbox, tmp_path, TOTAL="40", CONCURRENCY="4"), timeout=180)
    rate = run("rate", env=sandbox_env(sandbox, tmp_path, TARGET_RPS="10", RUN_TIME="4s"), timeout=180)
    # a shape's run ends before Locust would print "Run time limit set to ..." (after the end)
    shaped = run("stress", env=sandbox_env(sandbox, tmp_path, USERS="4", SPAWN_RATE="4", RUN_TIME="4s"), timeout=180)
    for r, run_line in (
        (burst, "40 payments, 4 in flight"),
        (rate, "10 arrivals/s of PaymentServiceUser for 4s"),
        (shaped, "shape shapes/stress.py, up to 4 users, at most 4s"),
    ):
        text = r.stdout + r.stderr
        assert run_line in text, text[-3000:]
        assert not [w for w in LOCUST_SELF_WARNINGS if w in text], text[-3000:]
        assert "1 users at 1" not in text and "Shape test updating to 1 users" not in text


@pytest.mark.skipif(not shutil.which("script"), reason="util-linux `script` (a pseudo-terminal) not installed")
def test_a_terminal_gets_a_redrawn_bar_not_plain_lines(sandbox, tmp_path):
    """Under a pseudo-terminal: rich's bar (redrawn in place with carriage returns), the figures
    beside it, no plain progress lines, and the log lines still printed."""
    typescript = tmp_path / "typescript"
    env = {**os.environ, **sandbox_env(sandbox, tmp_path, RUN_TIME="5s"), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    cmd = ["script", "-qfec", f"{ROOT / 'scripts' / 'run_tests.sh'} smoke", str(typescript)]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    text = typescript.read_bytes().decode(errors="replace")  # bytes: keep the carriage returns
    assert r.returncode == 0, text[-3000:]
    assert "━" in text and "\r" in text  # a drawn bar, redrawn in place
    assert re.search(r"0:0\d/0:05.*5 users \| [\d.]+ req/s \| p95 [\d.]+ ms", text), text[-3000:]
    assert not re.search(r"^progress ", text, re.M)
    assert "verdict: PASS" in text and "--run-time limit reached" in text


@pytest.mark.parametrize("check", ["table_folds_the_quietest_names", "plain_line_and_money_figures"])
def test_progress_formatting(check):
    """tests/output_checks.py in a subprocess: Locust must monkey-patch before anything imports ssl,
    and the test session has already imported it."""
    code = f"import tests.output_checks as c; c.check_{check}()"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
