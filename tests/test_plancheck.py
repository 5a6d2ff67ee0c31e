"""plancheck.py: the plan's Locust command as Locust will read it, before anything starts. Through
``python -m profiles plan`` (a subprocess: loading the locustfiles patches the interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT


def plan(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("USERS", "RUN_TIME", "SPAWN_RATE", "RATE_CLASS")}
    return subprocess.run(
        [sys.executable, "-m", "profiles", "plan", *args],
        cwd=ROOT,
        env={**full, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args,env",
    [
        (["smoke"], {}),
        (["smoke", "--tags", "payments", "banking", "failures", "realistic"], {}),  # every class keeps a task
        (["basic", "PaymentServiceUser", "--tags", "payments"], {}),  # the class named, then its tag
        (["volume", "--exclude-tags", "health"], {}),
        (["rate"], {"RATE_CLASS": "BankingAPIUser"}),
        (["burst", "--slo-file", "thresholds.example.toml"], {}),
        (["distributed", "--stop-timeout", "5"], {}),
    ],
)
def test_a_runnable_command_passes(args, env):
    r = plan(*args, env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "PLAN_CMD=(" in r.stdout


@pytest.mark.parametrize(
    "args,env,needle",
    [
        (["burst", "--tags", "payments"], {}, "no task to run in BurstUser"),
        (["rate"], {"RATE_CLASS": "BankingAPIUser", "API_DIALECT": "baseline"}, "none of its tasks exists"),
        (["smoke", "-u", "many"], {}, "locust arguments: argument -u/--users"),
        (["smoke", "--no-such-flag"], {}, "unrecognized arguments: --no-such-flag"),
        (["banking"], {"API_DIALECT": "baseline"}, "nothing to run: API_DIALECT=baseline"),
        (["failures", "--exclude-tags", "failures"], {}, "no task to run in FailureSimulationUser"),
    ],
)
def test_a_command_that_cannot_run_is_one_line(args, env, needle):
    r = plan(*args, env=env)
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
