"""The sandbox's SANDBOX_* variables: a bad value is one line naming the variable and exit 2,
never a traceback (sandbox/settings.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port

BAD = [
    ("SANDBOX_BANK_ERROR_RATE", "1.5", "less than or equal to 1"),
    ("SANDBOX_BANK_ERROR_RATE", "lots", "valid number"),
    ("SANDBOX_BANK_LATENCY_MS", "slow", "valid number"),
    ("SANDBOX_PAYMENT_PORT", "abc", "valid integer"),
    ("SANDBOX_BANK_PORT", "70000", "less than or equal to 65535"),
    ("SANDBOX_BREAK_INVARIANT", "everything", "'refund_race'"),
    ("SANDBOX_KEEP_ALIVE_S", "-1", "greater than or equal to 0"),
    ("SANDBOX_BANK_TIMEOUT_S", "0", "greater than 0"),
    ("SANDBOX_AUTH_TTL_S", "a week", "valid number"),
]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _run_sandbox(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "sandbox", "--payment-port", str(free_port()), "--bank-port", str(free_port())]
    command += ["--data-dir", str(tmp_path / "data")]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("variable", "value", "allowed"), BAD, ids=[f"{v}={x}" for v, x, _ in BAD])
def test_bad_variable_is_one_line_and_exit_2(tmp_path: Path, variable: str, value: str, allowed: str) -> None:
    # The port flags are given: a bad variable is still an error even when its flag would win.
    proc = _run_sandbox(tmp_path, _clean_env(**{variable: value}))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"sandbox config error: {variable}={value!r}: "), proc.stderr
    assert allowed in lines[0]
    assert not (tmp_path / "data").exists()  # stopped before it started


def test_every_bad_variable_is_reported(tmp_path: Path) -> None:
    proc = _run_sandbox(tmp_path, _clean_env(SANDBOX_BANK_ERROR_RATE="2", SANDBOX_BANK_HANG_S="-3"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "SANDBOX_BANK_ERROR_RATE='2'" in proc.stderr
    assert "SANDBOX_BANK_HANG_S='-3'" in proc.stderr


def test_stall_longer_than_its_period_is_a_config_error(tmp_path: Path) -> None:
    proc = _run_sandbox(tmp_path, _clean_env(SANDBOX_BANK_STALL_EVERY_S="3", SANDBOX_BANK_STALL_S="5"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "SANDBOX_BANK_STALL_S" in proc.stderr and "SANDBOX_BANK_STALL_EVERY_S" in proc.stderr


def test_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.upper().startswith("SANDBOX_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SANDBOX_BANK_ERROR_RATE=0.5\n")  # the settings never read a .env
    from sandbox.settings import KEEP_ALIVE_S, SandboxSettings

    s = SandboxSettings()
    assert (s.host, s.payment_port, s.bank_port, s.data_dir) == ("127.0.0.1", 8000, 1080, Path(".sandbox-data"))
    assert (s.bank_timeout_s, s.keep_alive_s, s.auth_ttl_s) == (3.0, KEEP_ALIVE_S, 7 * 24 * 3600)
    assert (s.bank_latency_ms, s.bank_jitter_ms, s.bank_hang_s) == (0, 0, 30)
    assert s.bank_stall_every_s == s.bank_stall_s == 0
    assert s.bank_error_rate == s.bank_timeout_rate == s.bank_malformed_rate == s.bank_schema_error_rate == 0
    assert s.break_invariant == "none"


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_BANK_ERROR_RATE", "0.25")
    monkeypatch.setenv("SANDBOX_PAYMENT_PORT", "9001")
    monkeypatch.setenv("SANDBOX_BREAK_INVARIANT", "refund_race")
    from sandbox.settings import SandboxSettings

    s = SandboxSettings()
    assert (s.bank_error_rate, s.payment_port, s.break_invariant) == (0.25, 9001, "refund_race")
