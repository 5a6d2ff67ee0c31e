"""scripts/run_tests.sh end to end (bounded, loopback only): reports, verdicts, exit codes,
profile mapping, distributed runs, compose validation."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port

RUNNER = str(ROOT / "scripts" / "run_tests.sh")
REPORT_FILES = [
    "{p}-report.html",
    "{p}_stats.csv",
    "{p}_stats_history.csv",
    "{p}_failures.csv",
    "{p}_exceptions.csv",
    "{p}.json",
    "{p}-summary.json",
    "{p}-summary.md",
]


def run(profile: str, *args: str, env: dict | None = None, timeout: int = 180, cwd: Path = ROOT):
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [RUNNER, profile, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def can_isolate() -> bool:
    """Whether a run can have a network of its own (``unshare -n``: root or user namespaces)."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=30).returncode == 0


fresh = pytest.mark.skipif(not can_isolate(), reason="needs `unshare -n` (root or user namespaces) and `ip`")


def run_fresh(profile: str, *args: str, tmp_path: Path, env: dict | None = None, timeout: int = 180):
    """The runner as on a fresh machine: a network namespace of its own, so nothing answers at the
    default targets (:8000, :1080) and the runner starts the bundled sandbox itself, with its data
    in ``tmp_path/sandbox-data``; reports in ``tmp_path/reports``."""
    base = {k: v for k, v in os.environ.items() if k not in ("PAYMENT_SERVICE_URL", "BANKING_API_URL", "LOCUST_HOST")}
    full_env = {
        **base,
        "PYTHONUNBUFFERED": "1",
        "SANDBOX_DATA_DIR": str(tmp_path / "sandbox-data"),
        "REPORT_DIR": str(tmp_path / "reports"),
        **(env or {}),
    }
    cmd = ["unshare", "-n", "bash", "-c", 'ip link set lo up && exec "$@"', "fresh", RUNNER, profile, *args]
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


def target_env(sandbox, tmp_path: Path, **extra) -> dict:
    return {
        "PAYMENT_SERVICE_URL": sandbox.payment_url,
        "BANKING_API_URL": sandbox.bank_url,
        "REPORT_DIR": str(tmp_path / "reports"),
        "MIN_WAIT_TIME": "0",
        "MAX_WAIT_TIME": "50",
        "THINK_TIME_SCALE": "0.01",
        **extra,
    }


def locust_totals(report_dir: Path, profile: str) -> tuple[int, int]:
    rows = json.loads((report_dir / f"{profile}.json").read_text())
    return sum(r["num_requests"] for r in rows), sum(r["num_failures"] for r in rows)


def test_help_lists_every_profile():
    r = run("help")
    assert r.returncode == 0
    for name in (
        "smoke",
        "basic",
        "volume",
        "banking",
        "failures",
        "realistic",
        "stress",
        "spike",
        "endurance",
        "distributed",
        "docker",
        "docker-volume",
        "docker-banking",
        "docker-failures",
        "stop-docker",
        "compare",
    ):
        assert f"  {name}" in r.stdout, name


@pytest.mark.parametrize(
    "profile,env,needle",
    [
        ("bogus", {}, "unknown profile 'bogus'"),
        ("smoke", {"USERS": "many"}, "USERS='many'"),
        ("smoke", {"SPAWN_RATE": "0"}, "SPAWN_RATE='0'"),
        ("smoke", {"RUN_TIME": "soon"}, "RUN_TIME='soon'"),
        ("distributed", {"WORKERS": "0"}, "WORKERS='0'"),
        ("smoke", {"LOCUST_HOST": "localhost:8000"}, "LOCUST_HOST='localhost:8000'"),
    ],
)
def test_bad_profile_or_override_is_usage_exit_2(profile, env, needle):
    r = run(profile, env=env)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr


EXPECTED_MAPPING = {
    "smoke": ["-u 5 ", "-r 5 ", "-t 30s "],
    "basic": ["-u 20 ", "-r 2 ", "-t 60s "],
    "volume": ["-u 200 ", "-r 20 ", "-t 5m ", " PaymentServiceUser"],
    "banking": ["-u 50 ", "-t 3m ", " BankingAPIUser"],
    "failures": ["-u 20 ", "-t 2m ", " FailureSimulationUser"],
    "realistic": ["-u 100 ", "-t 10m ", " RealisticTrafficUser"],
    "stress": ["-f locustfile.py,shapes/stress.py ", "-t 20m "],
    "spike": ["-f locustfile.py,shapes/spike.py ", "-t 3m "],
    "endurance": ["-u 50 ", "-t 30m "],
    "distributed": ["--master ", "--expect-workers 2 ", "--master-bind-host 127.0.0.1", "x "],
    "race": ["-f locustfile.py,race_scenarios.py ", " RefundRaceUser CaptureRaceUser IdempotencyStormUser"],
}


@pytest.mark.parametrize("profile", sorted(EXPECTED_MAPPING))
def test_every_profile_maps_to_its_locust_command(profile):
    r = run(profile, env={"DRY_RUN": "1"})
    assert r.returncode == 0, r.stderr
    cmd = r.stdout.replace("\n", " ") + " "
    for part in EXPECTED_MAPPING[profile]:
        assert part in cmd, (part, cmd)
    for report in (
        "--html reports/{p}-report.html",
        "--csv reports/{p} ",
        "--json-file reports/{p} ",
        "--report-dir reports",
        "--profile-name {p}",
    ):
        assert report.format(p=profile) in cmd
    if "shapes/" not in cmd:
        assert "LoadTestShape" not in cmd


def test_overrides_reach_the_command():
    r = run(
        "basic",
        "PaymentServiceUser",
        "--tags",
        "payments",
        env={"DRY_RUN": "1", "USERS": "7", "SPAWN_RATE": "3.5", "RUN_TIME": "1h30m", "REPORT_DIR": "out"},
    )
    assert "-u 7 -r 3.5 -t 1h30m" in r.stdout and "--html out/basic-report.html" in r.stdout, r.stderr
    assert r.stdout.rstrip().endswith("PaymentServiceUser --tags payments")


def test_unreachable_remote_target_exits_3_fast(tmp_path):
    start = time.monotonic()
    port = free_port()  # nothing listens there
    r = run(
        "smoke",
        env={
            "PAYMENT_SERVICE_URL": f"http://127.0.0.1:{port}",
            "BANKING_API_URL": f"http://127.0.0.1:{free_port()}",
            "REPORT_DIR": str(tmp_path),
        },
    )
    took = time.monotonic() - start
    assert r.returncode == 3, r.stderr
    assert f"http://127.0.0.1:{port}" in r.stderr and "connection refused" in r.stderr
    assert took < 5, took


def test_heavy_profile_against_remote_host_needs_opt_in(tmp_path):
    r = run("volume", env={"PAYMENT_SERVICE_URL": "http://payments.example.com", "REPORT_DIR": str(tmp_path)})
    assert r.returncode == 2 and "ALLOW_REMOTE_TARGET=yes" in r.stderr


def test_smoke_writes_every_report_and_totals_match_locust(sandbox, tmp_path):
    r = run("smoke", env=target_env(sandbox, tmp_path, RUN_TIME="8s"))
    assert r.returncode == 0, r.stderr[-3000:]
    reports = tmp_path / "reports"
    for name in REPORT_FILES:
        assert (reports / name.format(p="smoke")).is_file(), name
    summary = json.loads((reports / "smoke-summary.json").read_text())
    assert summary["verdict"] == "pass" and summary["exit_code"] == 0
    requests_, failures = locust_totals(reports, "smoke")
    assert (summary["totals"]["requests"], summary["totals"]["failures"]) == (requests_, failures)
    assert requests_ > 100
    assert {t["metric"] for t in summary["thresholds"]} >= {"p50_ms", "p95_ms", "error_rate"}
    assert "## Load test `smoke`" in (reports / "smoke-summary.md").read_text()
    # every endpoint's RPS is over the run's window, so they add up to the total's
    endpoint_rps = sum(e["rps"] for e in summary["endpoints"])
    assert abs(endpoint_rps - summary["totals"]["rps"]) <= 0.01 * summary["totals"]["rps"], endpoint_rps
    assert all(e["rps"] < summary["totals"]["rps"] + 0.01 for e in summary["endpoints"])
    # the reconciliation's HTTP pool fits its concurrency: no "pool is full" warning per request
    assert "Connection pool is full" not in r.stderr


def test_settlements_are_checked_for_every_merchant(sandbox, tmp_path):
    """More merchants than the old 500-merchant snapshot: a second run on the same day must not
    blame itself for the first run's settlements (MERCHANT_COUNT=600, merchants of index > 500 used;
    each run's merchants are its own, ``mer_run<run id>_00501``)."""
    env = target_env(sandbox, tmp_path, RUN_TIME="6s", MERCHANT_COUNT="600", DATA_SEED="6006", USERS="8")
    for _ in range(2):
        r = run("smoke", env=env, timeout=180)
        assert r.returncode == 0, r.stderr[-3000:]
    money = json.loads((tmp_path / "reports" / "smoke-summary.json").read_text())["money"]
    counts = money["counts"]
    assert money["ok"] and counts["bank_settlement_mismatch"] == 0, money["problems"]
    assert counts["bank_settlement_matched"] > 20 and counts["bank_settlement_not_checked"] == 0, counts
    ledger = (tmp_path / "reports" / "smoke-ledger.jsonl").read_text()
    assert any(int(m[-5:]) > 500 for m in re.findall(r'"merchant_id":"(mer_run[0-9a-f]+_\d{5})"', ledger))


def test_impossible_threshold_exits_1_naming_it(sandbox, tmp_path):
    slo = tmp_path / "slo.toml"
    slo.write_text('[global]\nerror_rate = 0.5\n[endpoints."POST /payments"]\np95_ms = 0.001\n')
    r = run("smoke", env=target_env(sandbox, tmp_path, RUN_TIME="5s", SLO_FILE=str(slo)))
    assert r.returncode == 1, r.stderr[-2000:]
    assert "threshold breached: POST /payments p95 <= 0.001 ms" in r.stderr
    summary = json.loads((tmp_path / "reports" / "smoke-summary.json").read_text())
    breached = [t for t in summary["thresholds"] if t["pass"] is False]
    assert [(t["scope"], t["metric"]) for t in breached] == [("POST /payments", "p95_ms")]


def test_bad_thresholds_file_is_config_error(sandbox, tmp_path):
    slo = tmp_path / "slo.toml"
    slo.write_text("[global]\np95 = 3\n")
    r = run("smoke", env=target_env(sandbox, tmp_path, RUN_TIME="3s", SLO_FILE=str(slo)))
    assert r.returncode == 2 and "unknown metric 'p95'" in r.stderr and "Traceback" not in r.stderr


def test_distributed_two_workers_sum_to_the_total(sandbox, tmp_path):
    r = run(
        "distributed",
        env=target_env(sandbox, tmp_path, RUN_TIME="10s", USERS="10", SPAWN_RATE="10", WORKERS="2"),
        timeout=240,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    reports = tmp_path / "reports"
    summary = json.loads((reports / "distributed-summary.json").read_text())
    per_worker = summary["workers"]["requests_by_worker"]
    assert len(per_worker) == 2 and all(n > 0 for n in per_worker.values())
    assert sum(per_worker.values()) == summary["totals"]["requests"] == locust_totals(reports, "distributed")[0]
    assert summary["workers"]["max_connected"] == 2 and summary["workers"]["lost"] == []
    # the steady-state window holds every worker report, not only the first one
    steady = summary["steady_state"]["totals"]["requests"]
    assert not summary["steady_state"]["whole_run_fallback"]
    assert steady >= 0.6 * summary["totals"]["requests"], (steady, summary["totals"]["requests"])
    for i in (1, 2):
        assert "Traceback" not in (reports / f"distributed-worker-{i}.log").read_text()
    # the workers' ledgers reached the master over custom messages, and the money reconciles
    assert summary["money"]["ok"] and summary["money"]["payments_in_ledger"] > 10


def test_compare_flags_a_regression(tmp_path):
    reports = tmp_path / "reports"
    (reports / "baselines").mkdir(parents=True)
    row = {"name": "POST /payments", "requests": 100, "p95_ms": 20.0, "p99_ms": 30.0, "rps": 50.0, "error_rate": 0.0}
    # a handful of health checks is noise, not a regression, however their figures move
    few = {**row, "name": "GET /health", "requests": 4, "rps": 0.4}
    base = {"ended_at": "t1", "steady_state": {"endpoints": [row, few]}}
    current = {"ended_at": "t2", "steady_state": {"endpoints": [{**row, "p95_ms": 80.0}, {**few, "rps": 0.1}]}}
    (reports / "baselines" / "smoke.json").write_text(json.dumps(base))
    (reports / "smoke-summary.json").write_text(json.dumps(current))
    r = run("compare", "smoke", env={"REPORT_DIR": str(reports)})
    assert r.returncode == 1 and "REGRESSION POST /payments p95_ms: 20.0 -> 80.0" in r.stdout
    assert "GET /health" not in r.stdout


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose (Debian package) not installed")
@pytest.mark.parametrize("profile", [None, "volume-test", "banking-test", "failure-test", "sandbox"])
def test_compose_file_is_valid_for_every_profile(profile):
    cmd = ["docker-compose", "-f", "docker-compose.locust.yml"] + (["--profile", profile] if profile else [])
    r = subprocess.run([*cmd, "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck not installed")
def test_scripts_are_shellcheck_clean():
    scripts = [str(p) for p in (ROOT / "scripts").glob("*.sh")] + [str(ROOT / ".ci" / "run")]
    r = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout


def test_help_columns_align_for_every_name():
    """The long names (rate-distributed, docker-failures) do not push their line's text out of line."""
    lines = run("help").stdout.splitlines()
    profiles_at, commands_at = lines.index("Load profiles:"), lines.index("Other commands:")
    profile_lines = [line for line in lines[profiles_at + 1 : commands_at] if line.strip()]
    command_lines = [line for line in lines[commands_at + 1 :] if line.startswith("  ")]
    assert any(line.split()[0] == "rate-distributed" for line in profile_lines)

    def text_column(line: str) -> int:  # where the text after the name starts
        name = line.split()[0]
        return len(line) - len(line[line.index(name) + len(name) :].lstrip())

    columns = {text_column(line) for line in profile_lines + command_lines}
    assert len(columns) == 1, columns
    assert len({line.rindex("(") for line in profile_lines}) == 1  # the sizes column


def test_compare_with_no_earlier_run_says_so_and_exits_0(tmp_path):
    r = run("compare", "smoke", env={"REPORT_DIR": str(tmp_path / "reports")})
    assert r.returncode == 0 and "no run of 'smoke'" in r.stderr and "nothing to compare" in r.stderr
    # one run, no earlier passing one: nothing to compare either
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "smoke-summary.json").write_text(json.dumps({"ended_at": "t1", "steady_state": {"endpoints": []}}))
    r = run("compare", "smoke", env={"REPORT_DIR": str(reports)})
    assert r.returncode == 0 and "no earlier passing run of 'smoke', so nothing to compare" in r.stderr
    assert run("compare", env={"REPORT_DIR": str(reports)}).returncode == 2  # no profile: a usage error


@fresh
def test_an_unreachable_bank_alone_is_named_first(tmp_path):
    """BANKING_API_URL set to a dead port, the PaymentService left at its default (nothing there
    either on a fresh machine): the first line names the BankingAPI, what the user has to fix."""
    r = run_fresh("smoke", tmp_path=tmp_path, env={"BANKING_API_URL": "http://127.0.0.1:9"}, timeout=60)
    assert r.returncode == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("target unreachable: BankingAPI at http://127.0.0.1:9: connection refused"), lines
    assert "sandbox" not in r.stderr


def test_a_worker_takes_the_extra_locustfile_its_rate_class_lives_in():
    """``worker <profile> -f ...``: the extra arguments are checked with the profile (a RATE_CLASS
    from an extra locustfile is known), and reach the worker's command."""
    files = "locustfile.py,rate_scenarios.py,bench/open_model_locustfile.py"
    r = run("worker", "rate", "-f", files, env={"DRY_RUN": "1", "RATE_CLASS": "PaymentOnlyUser"})
    assert r.returncode == 0, r.stderr
    assert "--worker" in r.stdout and files in r.stdout
    r = run("worker", "rate", env={"DRY_RUN": "1", "RATE_CLASS": "PaymentOnlyUser"})
    assert r.returncode == 2 and "RATE_CLASS='PaymentOnlyUser'" in r.stderr, r.stderr
