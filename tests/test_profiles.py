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

from tests.helpers import ROOT, free_port
from tests.test_runner import fresh, run, run_fresh, target_env

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


# --- every profile on a fresh machine -------------------------------------------------------------

# Each profile of the table, shortened (RUN_TIME, users, rates) but otherwise as the table has it,
# on a fresh machine: nothing answers at the default targets, so the runner starts the bundled
# sandbox for what the profile needs. The table holds load profiles only: the runner's commands
# (ui, master, worker, compare, history, docker, docker-<profile>, stop-docker: profiles.COMMANDS)
# are refused as names there, so every entry is run and none is skipped.
SHORT = {"RUN_TIME": "5s"}
FEW = {"USERS": "5", "SPAWN_RATE": "5"}
SHORTENED = {
    "smoke": {},
    "basic": FEW,
    "volume": {"USERS": "10", "SPAWN_RATE": "10"},
    "banking": FEW,
    "failures": FEW,
    "realistic": FEW,
    "stress": {"USERS": "6", "STRESS_START_USERS": "2", "STRESS_STEP_USERS": "2", "STRESS_STEP_SECONDS": "2"},
    "spike": {"SPIKE_BASE_USERS": "2", "SPIKE_PEAK_USERS": "4", "SPIKE_STAGE_SECONDS": "2"},
    "endurance": FEW,
    "distributed": {"USERS": "4", "SPAWN_RATE": "4", "WORKERS": "2"},
    "race": {},
    "rate": {"TARGET_RPS": "20"},
    "rate-distributed": {"TARGET_RPS": "20", "WORKERS": "2"},
    "burst": {"TOTAL": "100", "CONCURRENCY": "10"},
}
# Profiles whose default targets a 2-core machine cannot meet: (the words in the description and
# `list` that say so, the one reason allowed to fail the shortened run). At its defaults (1,000
# payments, 100 in flight) the burst also misses its latency limits on 2 cores (p95 443 ms); at 100
# payments, 10 in flight, only the rate is out of reach (215/s of 1,000/s).
BEYOND_TWO_CORES = {"burst": ("need more than 2 cores", "burst target breached: POST /payments min_rps")}


def test_every_profile_of_the_table_is_run_here():
    assert set(SHORTENED) == set(TABLE)


def test_a_profile_beyond_a_small_machine_says_so():
    listing = runner(["list"]).stdout.splitlines()
    for name, (words, _reason) in BEYOND_TWO_CORES.items():
        assert words in TABLE[name]["description"]
        assert any(line.startswith(name + " ") and words in line for line in listing), name


@pytest.mark.slow
@fresh
@pytest.mark.parametrize("profile", list(TABLE))
def test_every_profile_passes_on_a_fresh_machine(profile, tmp_path):
    r = run_fresh(profile, tmp_path=tmp_path, env={**SHORT, **SHORTENED[profile]}, timeout=240)
    assert "starting the bundled sandbox" in r.stderr, r.stderr[-2000:]
    summary_file = tmp_path / "reports" / f"{profile}-summary.json"
    assert summary_file.is_file(), r.stderr[-3000:]
    summary = json.loads(summary_file.read_text())
    if profile in BEYOND_TWO_CORES and r.returncode != 0:
        allowed = BEYOND_TWO_CORES[profile][1]
        assert summary["reasons"] and all(reason.startswith(allowed) for reason in summary["reasons"]), summary
    else:
        assert r.returncode == 0, (summary["reasons"], summary["errors"][:5], r.stderr[-2000:])
    assert summary["totals"]["requests"] > 0


# --- everything checked before anything starts ----------------------------------------------------

PREVIOUS = {
    "{p}-summary.json": '{"verdict": "pass", "previous": true}',
    "{p}_stats.csv": "Type,Name\nprevious,run\n",
    "{p}-ledger.jsonl": '{"previous": 1}\n',
    "{p}-report.html": "<html>previous</html>",
}


def _previous_run(folder: Path, profile: str) -> dict[Path, tuple[bytes, int]]:
    """A previous run's files in ``folder``; returns each file's bytes and mtime."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, text in PREVIOUS.items():
        path = folder / name.format(p=profile)
        path.write_text(text)
        out[path] = (path.read_bytes(), path.stat().st_mtime_ns)
    return out


def _untouched(files: dict[Path, tuple[bytes, int]], folder: Path, profile: str) -> None:
    for path, (data, mtime) in files.items():
        assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime, path
    prefixed = {f for f in folder.iterdir() if f.name.startswith(profile)}
    assert prefixed == set(files), sorted(f.name for f in prefixed - set(files))
    assert not (folder / "sandbox.log").exists() and not (folder / f".previous-{profile}").exists()


def _bad_slo(tmp_path: Path) -> str:
    path = tmp_path / "slo.toml"
    path.write_text("[global]\np95 = 3\n")
    return str(path)


# (profile, extra args, environment, what the one line says); BAD_SLO stands for an SLO file with a typo
LATE_BEFORE = [
    ("rate", ["--tags", "payments"], {}, "--tags payments leaves no task to run in RateUser"),
    ("rate", [], {"RATE_CLASS": "NoSuchUser"}, "config error: RATE_CLASS='NoSuchUser': no such"),
    ("smoke", [], {"SLO_FILE": "BAD_SLO"}, "unknown metric 'p95'"),
    ("smoke", ["--slo-file", "BAD_SLO"], {}, "unknown metric 'p95'"),
    ("smoke", ["--no-such-flag"], {}, "locust arguments: unrecognized arguments: --no-such-flag"),
    ("smoke", ["--tags", "payments"], {}, "leaves no task to run in BankingAPIUser"),
    (
        "volume",
        ["--exclude-tags", "payments", "refunds", "reads", "health"],
        {},
        "no task to run in PaymentServiceUser",
    ),
    ("volume", ["NoSuchUser"], {}, "unknown user class(es) NoSuchUser"),
]


@pytest.mark.parametrize("profile,args,env,needle", LATE_BEFORE)
def test_bad_input_is_refused_before_anything_starts(tmp_path, profile, args, env, needle):
    """One line, exit 2, before the sandbox starts and before any report file is touched: a dead
    target URL shows it (the pre-flight would exit 3), and so does the previous run's files."""
    slo = _bad_slo(tmp_path)
    args = [slo if a == "BAD_SLO" else a for a in args]
    env = {k: slo if v == "BAD_SLO" else v for k, v in env.items()}
    reports = tmp_path / "reports"
    files = _previous_run(reports, profile)
    dead = f"http://127.0.0.1:{free_port()}"
    full = {**env, "REPORT_DIR": str(reports), "PAYMENT_SERVICE_URL": dead, "BANKING_API_URL": dead}
    r = runner([profile, *args], env=full)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    _untouched(files, reports, profile)


# --- a report folder never mixes two runs ---------------------------------------------------------

LATE_FAILURE = """

@events.init.add_listener
def _planted_late_failure(environment, **_kwargs):  # a failure after Locust started (the ledger is open)
    raise SystemExit(2)
"""


def test_a_late_failure_leaves_the_previous_run_byte_identical(sandbox, tmp_path):
    copy = _copy_of_the_suite(tmp_path)
    with (copy / "locustfile.py").open("a") as fh:
        fh.write(LATE_FAILURE)
    reports = tmp_path / "reports"
    files = _previous_run(reports, "smoke")
    r = runner(["smoke"], env=target_env(sandbox, tmp_path, RUN_TIME="5s"), cwd=copy)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "the previous run's smoke files are back" in r.stderr
    _untouched(files, reports, "smoke")
    assert (reports / ".failed-smoke" / "smoke-ledger.jsonl").is_file()  # the failed run's files, for its logs


def test_a_complete_run_replaces_the_whole_previous_set(sandbox, tmp_path):
    reports = tmp_path / "reports"
    _previous_run(reports, "smoke")
    stale = reports / "smoke-worker-1.log"  # a file of the previous run the new one does not write
    stale.write_text("previous")
    r = run("smoke", env=target_env(sandbox, tmp_path, RUN_TIME="4s"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert not stale.exists()
    assert "previous" not in (reports / "smoke-summary.json").read_text()
    assert (reports / "smoke-ledger.jsonl").read_text() != PREVIOUS["{p}-ledger.jsonl"]
    assert not (reports / ".previous-smoke").exists()
