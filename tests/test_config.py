"""config.py: every bad value is one clear line naming the variable, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from config import Settings, parse_persona_shares
from tests.helpers import ROOT

BAD = [
    ("CARD_DECLINE_RATE", "1.5", "less than or equal to 1"),
    ("CARD_DECLINE_RATE", "-0.1", "greater than or equal to 0"),
    ("REFUND_PROBABILITY", "lots", "valid number"),
    ("MIN_WAIT_TIME", "-5", "greater than or equal to 0"),
    ("MAX_WAIT_TIME", "soon", "valid integer"),
    ("PAYMENT_SERVICE_URL", "localhost:8000", "http:// or https://"),
    ("BANKING_API_URL", "ftp://bank", "http:// or https://"),
    ("CUSTOMER_COUNT", "0", "greater than or equal to 1"),
    ("MERCHANT_COUNT", "ten", "valid integer"),
    ("SIMULATE_FAILURES", "maybe", "valid boolean"),
    ("REQUEST_TIMEOUT", "0", "greater than 0"),
    ("PERSONA_SHARES", "casual:1,ghost:2", "casual, power, business"),
    ("DATA_SEED", "-1", "greater than or equal to 0"),
]


def run_locustfile_import(env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in __import__("os").environ.items() if k.upper() not in {e[0] for e in BAD}}
    return subprocess.run(
        [sys.executable, "-c", "import locustfile"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("var,value,allowed", BAD)
def test_bad_setting_is_one_line_naming_variable_value_and_rule(var, value, allowed):
    r = run_locustfile_import({var: value})
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"config error: {var}={value!r}") and allowed in lines[0]
    assert "Traceback" not in r.stderr


def test_min_wait_above_max_names_both():
    r = run_locustfile_import({"MIN_WAIT_TIME": "6000", "MAX_WAIT_TIME": "5000"})
    assert r.returncode == 2 and "MIN_WAIT_TIME (6000) must be <= MAX_WAIT_TIME (5000)" in r.stderr


def test_empty_token_is_refused_without_echoing_it():
    r = run_locustfile_import({"AUTH_TOKEN": "Bearer   "})
    assert r.returncode == 2 and "AUTH_TOKEN" in r.stderr


def test_several_bad_values_are_all_reported():
    r = run_locustfile_import({"CARD_DECLINE_RATE": "2", "CUSTOMER_COUNT": "0"})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 2


def test_dotenv_file_is_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("CUSTOMER_COUNT=1234\nAUTH_TOKEN=abc\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUSTOMER_COUNT", raising=False)
    monkeypatch.delenv("AUTH_TOKEN", raising=False)
    s = Settings()
    assert s.customer_count == 1234 and s.auth_header() == "Bearer abc"


def test_token_is_secret_and_prefix_optional(monkeypatch):
    monkeypatch.setenv("AUTH_TOKEN", "Bearer sekr3t")
    s = Settings()
    assert "sekr3t" not in repr(s) and "sekr3t" not in str(s.model_dump())
    assert s.auth_header() == "Bearer sekr3t"
    monkeypatch.setenv("AUTH_TOKEN", "sekr3t")
    assert Settings().auth_header() == "Bearer sekr3t"


def test_defaults_match_the_seed(monkeypatch):
    for var, *_ in BAD:
        monkeypatch.delenv(var, raising=False)
    s = Settings(_env_file=None)
    assert (s.payment_service_url, s.banking_api_url) == ("http://localhost:8000", "http://localhost:1080")
    assert (s.min_wait_time, s.max_wait_time, s.card_decline_rate, s.refund_probability) == (1000, 5000, 0.05, 0.1)
    assert (s.merchant_count, s.customer_count, s.simulate_failures) == (10, 1000, True)


def test_persona_shares_normalise():
    assert parse_persona_shares("casual:2,power:1,business:1") == {"casual": 0.5, "power": 0.25, "business": 0.25}
    with pytest.raises(ValueError):
        parse_persona_shares("casual:0")


def test_env_example_documents_every_setting():
    documented = {
        line.split("=", 1)[0].strip()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert {name.upper() for name in Settings.model_fields} <= documented
