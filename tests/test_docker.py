"""docker-compose.locust.yml run for real: the image built, the compose services started, a master
and two worker containers against the sandbox container, every test set, reports on the host.

Marker ``docker`` (all but the static checks). Needs Docker (the test starts ``dockerd`` itself
when it is installed, none is running and it runs as root) and docker-compose; skips, saying why,
otherwise. Where the official Locust image cannot be pulled it builds a local base
(deploy/docker/local-base.sh, cached in SUITE_CACHE_DIR). Every run is short (a few users for a few
seconds) and its only target is the sandbox container; the compose project has a name of its own
and is taken down at the end."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, free_port

RUNNER = str(ROOT / "scripts" / "run_tests.sh")
COMPOSE_FILE = "docker-compose.locust.yml"
OFFICIAL_BASE = "locustio/locust:2.47.0"
CACHE = Path(os.environ.get("SUITE_CACHE_DIR", "/var/cache/payment-load-suite"))
PROJECT = f"suitetest{os.getpid()}"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Variables of the host that would change what the compose file runs; each test sets its own.
STEERING = {
    "USERS",
    "SPAWN_RATE",
    "RUN_TIME",
    "WORKERS",
    "REPORT_DIR",
    "WEB_PORT",
    "PAYMENT_SERVICE_URL",
    "BANKING_API_URL",
    "AUTH_TOKEN",
    "MIN_WAIT_TIME",
    "MAX_WAIT_TIME",
    "DRY_RUN",
}
# The commands docs/distributed.md shows, run here as written (the environment set around them).
DOC_DEFAULT = "docker-compose -f docker-compose.locust.yml up --exit-code-from master"
DOC_FAILURE_SET = (
    "docker-compose -f docker-compose.locust.yml --profile failure-test up --exit-code-from failure-master"
)
DOC_BUILD = "deploy/docker/build.sh"


def _docker_ok() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _compose_cmd() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    r = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20)
    return ["docker", "compose"] if r.returncode == 0 else None


@pytest.fixture(scope="module")
def engine():
    """A Docker engine: the running one, or dockerd started here (and stopped at the end)."""
    if not shutil.which("docker"):
        pytest.skip("docker CLI not installed (apt-get install docker.io)")
    proc = None
    if not _docker_ok():
        dockerd = shutil.which("dockerd")
        if not dockerd:
            pytest.skip("no Docker engine answers and dockerd is not installed (apt-get install docker.io)")
        if os.geteuid() != 0:
            pytest.skip("no Docker engine answers and starting dockerd needs root")
        CACHE.mkdir(parents=True, exist_ok=True)
        log = (CACHE / "dockerd.log").open("ab")
        proc = subprocess.Popen(
            [dockerd, "--data-root", str(CACHE / "docker")], stdout=log, stderr=log, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while not _docker_ok():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                tail = (CACHE / "dockerd.log").read_text(errors="replace")[-1500:]
                pytest.skip(f"dockerd could not be started here: {tail}")
            time.sleep(0.5)
    compose = _compose_cmd()
    if compose is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    yield compose
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def image(engine):
    """The suite's image, built as the docs say (deploy/docker/build.sh: the official base where it
    can be pulled, else the local one, made once and cached)."""
    started = time.monotonic()
    r = subprocess.run(
        [str(ROOT / "deploy" / "docker" / "build.sh")], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    if r.returncode == 3 and "local-base" in r.stderr:
        pytest.skip(f"{OFFICIAL_BASE} cannot be pulled and no local base could be made: {r.stderr[-800:]}")
    assert r.returncode == 0, r.stderr[-3000:]
    print(f"\nimage: {r.stderr.strip().splitlines()[-1]}; {time.monotonic() - started:.1f} s in all")
    yield {}
    r = subprocess.run([RUNNER, "stop-docker"], cwd=ROOT, env=_env({}, {}), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    left = _project_containers()
    assert not left, f"stop-docker left {left}"


def _env(extra: dict, image_env: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in STEERING and not k.startswith("LOCUST_")}
    env.update({"COMPOSE_PROJECT_NAME": PROJECT, "VENV_DIR": str(ROOT / ".venv"), "WEB_PORT": str(free_port())})
    env.update(image_env)
    env.update(extra)
    return env


def _project_containers() -> list[dict]:
    r = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}", "--format", "{{json .}}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def _exit_codes() -> dict[str, int]:
    codes = {}
    for c in _project_containers():
        state = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", c["ID"]],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split()
        codes[c["Names"]] = -1 if state[0] == "true" else int(state[1])
    return codes


def _summary(reports: Path, profile: str) -> dict:
    path = reports / f"{profile}-summary.json"
    assert path.is_file(), sorted(p.name for p in reports.iterdir()) if reports.is_dir() else "no report dir"
    return json.loads(path.read_text())


def _check_pass(reports: Path, profile: str, users: int) -> dict:
    s = _summary(reports, profile)
    assert s["verdict"] == "pass" and s["exit_code"] == 0, (s["reasons"], s["integrity"])
    assert s["workers"]["expected"] == 2 and s["workers"]["max_connected"] == 2 and not s["workers"]["lost"]
    assert len(s["workers"]["requests_by_worker"]) == 2
    assert sum(s["workers"]["requests_by_worker"].values()) == s["totals"]["requests"] > 0
    assert s["users"]["peak"] == users
    assert s["target"] == {
        "payment_service": "http://sandbox:8000",
        "banking_api": "http://sandbox:1080",
        "dialect": "contract",
    }
    if profile != "failures":  # FailureSimulationUser moves no money
        assert s["money"]["enabled"] and s["money"]["ok"], s["money"]["problems"]
        counts = s["money"]["counts"]
        assert counts["matched"] + counts["bank_settlement_matched"] > 0, counts
    for name in (f"{profile}-report.html", f"{profile}.json", f"{profile}_stats.csv", f"{profile}-summary.md"):
        path = reports / name
        assert path.is_file(), name
        assert path.stat().st_uid == reports.stat().st_uid, f"{name} is not owned by the report folder's owner"
    return s


def _no_kill(codes: dict[str, int], allowed: set[int]) -> None:
    """Every container of the run stopped on its own or on SIGTERM: no 137 (killed)."""
    bad = {name: code for name, code in codes.items() if code not in allowed}
    assert not bad, bad


def test_compose_file_runs_one_master_per_set_and_passes_locust_variables():
    """Static checks of the design the runs below exercise."""
    compose = yaml.safe_load((ROOT / COMPOSE_FILE).read_text())
    services, suite = compose["services"], compose["x-suite"]
    test_masters = {name for name, svc in services.items() if name.endswith("-master") and svc.get("profiles")}
    assert test_masters == {"volume-master", "banking-master", "failure-master"}
    for name in ("sandbox", "master", "worker"):  # the default `up`
        assert "profiles" not in services[name], name
    for name in ("master", "worker"):  # they stand by while a test set's master runs
        assert set(services[name]["environment"]["SUITE_STANDBY_IF"].split()) == test_masters, name
    for name, svc in services.items():
        if svc.get("image") != suite["image"] or name == "sandbox":
            continue
        env = svc.get("environment", suite["environment"])
        for var in ("LOCUST_USERS", "LOCUST_SPAWN_RATE", "LOCUST_RUN_TIME", "LOCUST_HEADLESS"):
            assert var in env, (name, var)
        assert svc["init"] is True and svc["volumes"] == ["${REPORT_DIR:-./reports}:/home/locust/suite/reports"]
        assert svc["depends_on"]["sandbox"] == {"condition": "service_healthy"}, name
    assert "healthcheck" in services["sandbox"] and not services["sandbox"].get("ports")
    assert services["master"]["ports"] == ["127.0.0.1:${WEB_PORT:-8089}:8089"]


def test_docs_show_the_commands_these_tests_run():
    text = (ROOT / "docs" / "distributed.md").read_text()
    for command in (DOC_DEFAULT, DOC_FAILURE_SET, DOC_BUILD, "deploy/docker/local-base.sh"):
        assert command in text, command
    for command in ("docker", "docker-volume", "docker-banking", "docker-failures", "stop-docker"):
        assert f"./scripts/run_tests.sh {command}" in text, command


@pytest.mark.docker
@pytest.mark.timeout(900)  # the first one builds the local base and the image (about 2 minutes)
def test_default_compose_runs_master_and_two_workers_against_the_sandbox(image, engine, tmp_path):
    """The seed's `up` (the UI master), headless through Locust's own LOCUST_* variables."""
    reports = tmp_path / "reports"
    reports.mkdir()
    env = _env(
        {
            "REPORT_DIR": str(reports),
            "LOCUST_HEADLESS": "true",
            "LOCUST_USERS": "4",
            "LOCUST_SPAWN_RATE": "4",
            "LOCUST_RUN_TIME": "6s",
        },
        image,
    )
    started = time.monotonic()
    cmd = [*engine, *DOC_DEFAULT.split()[1:]]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    took = time.monotonic() - started
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    _check_pass(reports, "docker", users=4)
    assert "verdict: PASS" in r.stdout
    print(f"\ndefault compose run: {took:.1f} s")
    _no_kill(_exit_codes(), {0})


@pytest.mark.docker
@pytest.mark.timeout(900)  # the first one builds the local base and the image (about 2 minutes)
@pytest.mark.parametrize(
    "command,profile,extra,users",
    [
        ("docker", "docker", {"LOCUST_HEADLESS": "true", "LOCUST_USERS": "4", "LOCUST_RUN_TIME": "6s"}, 4),
        ("docker-volume", "volume", {"USERS": "6", "SPAWN_RATE": "6", "RUN_TIME": "6s"}, 6),
        # LOCUST_USERS beats the profile default and USERS (seed 001's variables).
        (
            "docker-banking",
            "banking",
            {"USERS": "50", "LOCUST_USERS": "4", "LOCUST_SPAWN_RATE": "4", "RUN_TIME": "6s"},
            4,
        ),
        ("docker-failures", "failures", {"USERS": "4", "SPAWN_RATE": "4", "LOCUST_RUN_TIME": "6s"}, 4),
    ],
)
def test_runner_docker_commands_pass_and_write_reports(image, command, profile, extra, users, tmp_path):
    reports = tmp_path / "reports"
    env = _env({"REPORT_DIR": str(reports), **extra}, image)
    started = time.monotonic()
    r = subprocess.run([RUNNER, command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    took = time.monotonic() - started
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    s = _check_pass(reports, profile, users)
    assert f"exited with status {s['exit_code']}" in r.stderr
    print(f"\n{command}: {took:.1f} s, {s['totals']['requests']} requests")
    _no_kill(_exit_codes(), {0})


@pytest.mark.docker
@pytest.mark.timeout(900)  # the first one builds the local base and the image (about 2 minutes)
def test_a_test_set_runs_one_master_the_ui_services_stand_by(image, engine, tmp_path):
    """The seed's `--profile failure-test up`: one headless master and its workers; the UI master
    and workers (services without a profile) start no Locust."""
    reports = tmp_path / "reports"
    reports.mkdir()
    env = _env({"REPORT_DIR": str(reports), "USERS": "4", "SPAWN_RATE": "4", "RUN_TIME": "6s"}, image)
    r = subprocess.run(
        [*engine, *DOC_FAILURE_SET.split()[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    _check_pass(reports, "failures", users=4)
    # Log lines are "<service>_<n> | ..." (v1) or "<project>-<service>-<n> | ..." (v2), in colour.
    ui_name = re.compile(rf"(?:{PROJECT}-)?(?:master|worker)[-_]\d+")
    lines = [ANSI.sub("", line).partition("|") for line in r.stdout.splitlines()]
    ui_lines = [text.strip() for name, bar, text in lines if bar and ui_name.fullmatch(name.strip())]
    assert ui_lines and all("stands by" in line for line in ui_lines), ui_lines[:10]
    assert not (reports / "docker-summary.json").exists()
    _no_kill(_exit_codes(), {0})


@pytest.mark.docker
@pytest.mark.timeout(900)  # the first one builds the local base and the image (about 2 minutes)
def test_killed_worker_container_is_named_in_the_verdict(image, tmp_path):
    """A worker container killed mid-run: the run goes on, the verdict names the lost worker, and
    the runner ends with the master's status (5: run integrity in doubt)."""
    reports = tmp_path / "reports"
    env = _env({"REPORT_DIR": str(reports), "USERS": "6", "SPAWN_RATE": "6", "RUN_TIME": "20s"}, image)
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen([RUNNER, "docker-volume"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        running = [c for c in _project_containers() if "volume-worker" in c["Names"] and c["State"] == "running"]
        if len(running) == 2 and (reports / "volume_stats_history.csv").is_file():
            victim = running[0]
        time.sleep(0.5)
    assert victim is not None, (tmp_path / "run.log").read_text()[-3000:]
    time.sleep(4)  # users spawned on both workers
    subprocess.run(["docker", "kill", victim["ID"]], check=True, capture_output=True, timeout=30)
    proc.wait(timeout=240)
    out = (tmp_path / "run.log").read_text()
    assert proc.returncode == 5, out[-3000:]
    s = _summary(reports, "volume")
    assert s["verdict"] == "fail" and s["exit_code"] == 5
    assert len(s["workers"]["lost"]) == 1 and s["workers"]["lost"][0].startswith(victim["ID"][:12]), s["workers"]
    assert any("worker(s) lost" in p for p in s["integrity"]["problems"]), s["integrity"]
    assert "exited with status 5" in out
