"""profiles.toml is the one place a profile lives: the runner, its help and `list`, the pre-flight,
the compose services and the CI workflow's choices all follow it; a new profile is one entry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT
from tests.test_runner import run, target_env

TABLE = tomllib.loads((ROOT / "profiles.toml").read_text())


def runner(args: list[str], env: dict | None = None, cwd: Path = ROOT, timeout: int = 120):
    full = {k: v for k, v in os.environ.items() if k not in ("USERS", "RUN_TIME", "SPAWN_RATE", "DRY_RUN")}
    full.update({"VENV_DIR": str(ROOT / ".venv"), **(env or {})})
    return subprocess.run(
        [str(cwd / "scripts" / "run_tests.sh"), *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_list_shows_every_profile_and_json_is_the_table():
    r = runner(["list"])
    assert r.returncode == 0, r.stderr
    for name in TABLE:
        assert any(line.startswith(name + " ") for line in r.stdout.splitlines()), name
    rows = json.loads(runner(["list", "--json"]).stdout)
    assert [row["name"] for row in rows] == list(TABLE)
    for row in rows:
        entry = TABLE[row["name"]]
        assert (row["users"], row["spawn_rate"], row["run_time"]) == (
            entry["users"],
            float(entry["spawn_rate"]),
            entry["run_time"],
        )
        assert row["heavy"] == entry.get("heavy", False)


def _copy_of_the_suite(tmp_path: Path) -> Path:
    copy = tmp_path / "suite"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(".venv", ".git", "reports", ".sandbox-data", "__pycache__", ".*_cache"),
    )
    return copy


def test_a_new_profile_is_one_entry(tmp_path):
    copy = _copy_of_the_suite(tmp_path)
    with (copy / "profiles.toml").open("a") as fh:
        fh.write(
            '\n[checkout-peak]\ndescription = "Checkout peak: payments only, short waits"\nusers = 42\n'
            'spawn_rate = 7\nrun_time = "4m"\nclasses = ["PaymentServiceUser"]\nheavy = true\n'
            "waits = { min_ms = 50, max_ms = 150 }\n"
        )
    r = runner(["checkout-peak"], env={"DRY_RUN": "1", "REPORT_DIR": str(tmp_path / "out")}, cwd=copy)
    assert r.returncode == 0, r.stderr
    cmd = r.stdout
    for part in ("-u 42 ", "-r 7 ", "-t 4m ", "--profile-name checkout-peak ", " PaymentServiceUser"):
        assert part in cmd, (part, cmd)
    assert "checkout-peak" in runner(["help"], cwd=copy).stdout
    assert "checkout-peak" in runner(["list"], cwd=copy).stdout
    # heavy: the same pre-flight rail as the built-in heavy profiles
    r = runner(["checkout-peak"], env={"PAYMENT_SERVICE_URL": "https://pay.example.com"}, cwd=copy)
    assert r.returncode == 2 and "ALLOW_REMOTE_TARGET=yes" in r.stderr


def test_a_broken_table_is_one_line_and_exit_2(tmp_path):
    copy = _copy_of_the_suite(tmp_path)
    with (copy / "profiles.toml").open("a") as fh:
        fh.write('\n[typo]\ndescription = "x"\nusers = 1\nspawn_rate = 1\nrun_time = "1m"\nuser_classes = []\n')
    r = runner(["smoke"], env={"DRY_RUN": "1"}, cwd=copy)
    assert r.returncode == 2 and "[typo]: unknown field(s) ['user_classes']" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_workflow_offers_exactly_the_profiles():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "load-test.yml").read_text())
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as True
    choices = on["workflow_dispatch"]["inputs"]["profile"]["options"]
    assert choices == list(TABLE)


def test_compose_test_sets_run_what_their_profiles_say():
    compose = yaml.safe_load((ROOT / "docker-compose.locust.yml").read_text())
    services = compose["services"]
    mapped = {name: entry for name, entry in TABLE.items() if entry.get("compose")}
    assert {e["compose"] for e in mapped.values()} == {"volume-test", "banking-test", "failure-test"}
    for name, entry in mapped.items():
        prefix = entry["compose"].removesuffix("-test")
        master, worker = services[f"{prefix}-master"], services[f"{prefix}-worker"]
        assert entry["compose"] in master["profiles"] and entry["compose"] in worker["profiles"]
        args = " ".join(master["command"])
        for flag, value in (("users", entry["users"]), ("spawn-rate", entry["spawn_rate"]), ("run-time", None)):
            expected = entry["run_time"] if flag == "run-time" else f"{value:g}" if isinstance(value, float) else value
            assert f"--{flag}=" in args and f":-{expected}}}" in args, (name, flag, args)
        assert f"--profile-name={name}" in args
        for cls in entry.get("classes", []):
            assert cls in master["command"] and cls in worker["command"]
        waits = entry.get("waits", {})
        env = {**compose["x-suite"]["environment"], **master.get("environment", {})}
        if "min_ms" in waits:
            assert env["MIN_WAIT_TIME"].endswith(f":-{waits['min_ms']}}}"), (name, env["MIN_WAIT_TIME"])
            assert env["MAX_WAIT_TIME"].endswith(f":-{waits['max_ms']}}}"), (name, env["MAX_WAIT_TIME"])


# The six commands: each answers before any load, in one line, exit 2 (the spike one runs,
# capped by RUN_TIME).
@pytest.mark.parametrize(
    "profile,env,needle",
    [
        ("stress", {"STRESS_STEP_USERS": "abc"}, "STRESS_STEP_USERS='abc'"),
        ("race", {"RACE_WIDTH": "abc"}, "RACE_WIDTH='abc'"),
        ("failures", {"SIMULATE_FAILURES": "false"}, "needs SIMULATE_FAILURES=true"),
        ("smoke", {"RECONCILE": "maybe"}, "RECONCILE='maybe'"),
        ("smoke", {"REPORT_DIR": "/proc/nope"}, "REPORT_DIR='/proc/nope'"),
    ],
)
def test_bad_runs_answer_in_one_line_before_any_load(profile, env, needle):
    started = time.monotonic()
    r = runner([profile], env=env)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert time.monotonic() - started < 15


def test_shaped_profile_honours_run_time_as_a_cap(sandbox, tmp_path):
    env = target_env(sandbox, tmp_path, RUN_TIME="6s", SPIKE_BASE_USERS="2", SPIKE_PEAK_USERS="4")
    started = time.monotonic()
    r = run("spike", env=env, timeout=120)
    took = time.monotonic() - started
    assert r.returncode == 0, r.stderr[-2000:]
    assert took < 40, took  # the spike's own stages last 3 minutes
    summary = json.loads((tmp_path / "reports" / "spike-summary.json").read_text())
    assert 4 <= summary["duration_s"] < 15, summary["duration_s"]
    assert "have no impact on LoadShapes" not in r.stderr
