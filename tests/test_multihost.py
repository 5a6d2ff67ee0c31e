"""Workers on other machines: `run_tests.sh master <profile>` and `run_tests.sh worker`, each in a
network namespace of its own (its own interfaces, loopback and ports, as separate hosts would have).

    master namespace  10.213.1.1 --veth-- 10.213.1.2  worker 1 namespace
                      10.213.2.1 --veth-- 10.213.2.2  worker 2 namespace

The sandbox runs in the master's namespace on all of its interfaces: the master reaches it on its
loopback, each worker on the master namespace's address. The 10.213.0.0/16 addresses exist only
inside these namespaces, and nothing else is a target. Needs root and `ip netns`; skips (saying why)
otherwise. The namespaces are deleted whatever happens."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, TOKEN

RUNNER = str(ROOT / "scripts" / "run_tests.sh")
TAG = f"{os.getpid() % 100000}"
MASTER_NS = f"plt-m-{TAG}"
WORKERS = {f"plt-w1-{TAG}": ("10.213.1.1", "10.213.1.2"), f"plt-w2-{TAG}": ("10.213.2.1", "10.213.2.2")}
# Settings of the host that would change the run; each process gets its own.
STEERING = ("USERS", "SPAWN_RATE", "RUN_TIME", "WORKERS", "REPORT_DIR", "DRY_RUN", "LOCUST_HOST", "AUTH_TOKEN")


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def _must(*args: str) -> None:
    r = _ip(*args)
    assert r.returncode == 0, f"ip {' '.join(args)}: {r.stderr}"


@pytest.fixture
def hosts():
    """Three namespaces wired master <-> each worker; yields the worker namespaces' master address."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if not shutil.which("ip"):
        pytest.skip("the ip command (iproute2) is not installed")
    probe = _ip("netns", "add", MASTER_NS)
    if probe.returncode != 0:
        pytest.skip(f"ip netns is unavailable here: {probe.stderr.strip()}")
    made = [MASTER_NS]
    try:
        _must("-n", MASTER_NS, "link", "set", "lo", "up")
        for i, (ns, (master_addr, worker_addr)) in enumerate(WORKERS.items(), start=1):
            _must("netns", "add", ns)
            made.append(ns)
            m_if, w_if = f"pltm{i}-{TAG}", f"pltw{i}-{TAG}"
            _must("link", "add", m_if, "netns", MASTER_NS, "type", "veth", "peer", "name", w_if, "netns", ns)
            _must("-n", MASTER_NS, "addr", "add", f"{master_addr}/24", "dev", m_if)
            _must("-n", MASTER_NS, "link", "set", m_if, "up")
            _must("-n", ns, "addr", "add", f"{worker_addr}/24", "dev", w_if)
            _must("-n", ns, "link", "set", w_if, "up")
            _must("-n", ns, "link", "set", "lo", "up")
        yield {ns: addrs[0] for ns, addrs in WORKERS.items()}
    finally:
        for ns in made:
            _ip("netns", "del", ns)


def _env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in STEERING and not k.startswith("LOCUST_")}
    env.update({"VENV_DIR": str(ROOT / ".venv"), "AUTH_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1", **extra})
    return env


def _start(ns: str, cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, *cmd],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_master_and_workers_on_separate_hosts(hosts, tmp_path):
    procs: list[subprocess.Popen] = []
    logs = {name: tmp_path / f"{name}.log" for name in ("sandbox", "master", "worker1", "worker2")}
    try:
        sandbox = _start(
            MASTER_NS,
            [str(ROOT / ".venv" / "bin" / "python"), "-m", "sandbox", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
            _env({}),
            logs["sandbox"],
        )
        procs.append(sandbox)
        deadline = time.monotonic() + 30
        while logs["sandbox"].read_text().count("listening") < 2:
            assert sandbox.poll() is None and time.monotonic() < deadline, logs["sandbox"].read_text()
            time.sleep(0.2)

        reports = tmp_path / "reports"
        started = time.monotonic()
        master = _start(
            MASTER_NS,
            [RUNNER, "master", "smoke"],
            _env(
                {
                    "REPORT_DIR": str(reports),
                    "USERS": "6",
                    "SPAWN_RATE": "6",
                    "RUN_TIME": "8s",
                    "EXPECT_WORKERS": "2",
                    "PAYMENT_SERVICE_URL": "http://127.0.0.1:8000",
                    "BANKING_API_URL": "http://127.0.0.1:1080",
                }
            ),
            logs["master"],
        )
        procs.append(master)
        for i, (ns, master_addr) in enumerate(hosts.items(), start=1):
            env = _env(
                {
                    "MASTER_HOST": master_addr,
                    "MASTER_PORT": "5557",
                    "PAYMENT_SERVICE_URL": f"http://{master_addr}:8000",
                    "BANKING_API_URL": f"http://{master_addr}:1080",
                }
            )
            procs.append(_start(ns, [RUNNER, "worker", "smoke"], env, logs[f"worker{i}"]))
        try:
            master.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("master did not finish: " + logs["master"].read_text()[-3000:])
        took = time.monotonic() - started
        out = logs["master"].read_text()
        assert master.returncode == 0, out[-3000:] + logs["worker1"].read_text()[-1500:]
        for i in (1, 2):
            worker_log = logs[f"worker{i}"].read_text()
            assert "Traceback" not in worker_log, worker_log[-2000:]

        s = json.loads((reports / "smoke-summary.json").read_text())
        assert s["verdict"] == "pass", s["reasons"]
        workers = s["workers"]
        assert workers["expected"] == 2 and workers["max_connected"] == 2 and not workers["lost"], workers
        per_worker = workers["requests_by_worker"]
        assert len(per_worker) == 2 and all(n > 0 for n in per_worker.values()), per_worker
        assert sum(per_worker.values()) == s["totals"]["requests"], (per_worker, s["totals"])
        assert s["money"]["enabled"] and s["money"]["ok"], s["money"]["problems"]
        assert "waiting for 2 workers on *:5557" in out
        print(f"\nmulti-host run (master + 2 workers in namespaces): {took:.1f} s, {s['totals']['requests']} requests")
    finally:
        for proc in reversed(procs):
            _stop(proc)


def test_worker_and_master_settings_are_validated():
    """The same validation as every run: a bad value is one line and exit 2, before anything starts."""
    for command, var, value in (
        (["worker"], "MASTER_HOST", "master node!"),
        (["worker", "smoke"], "MASTER_PORT", "70000"),
        (["master", "smoke"], "MASTER_BIND_HOST", "every interface"),
        (["master", "smoke"], "EXPECT_WORKERS", "0"),
    ):
        r = subprocess.run(
            [RUNNER, *command], cwd=ROOT, env=_env({var: value}), capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 2, (command, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and f"{var}=" in r.stderr, r.stderr
    r = subprocess.run([RUNNER, "master"], cwd=ROOT, env=_env({}), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "needs a profile name" in r.stderr
