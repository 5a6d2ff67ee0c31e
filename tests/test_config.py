"""config.py: every bad value is one clear line naming the variable, exit 2, no traceback."""

from __future__ import annotations

import os
import re
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
        line.lstrip("# ").split("=", 1)[0].strip()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if re.match(r"^#? ?[A-Z][A-Z0-9_]*=", line)
    }
    assert {name.upper() for name in Settings.model_fields} <= documented


# Every variable the suite reads, with a value it must refuse and a word of what the refusal says.
# Free text (any value is fine) is listed apart, with the reason; the two lists together must
# cover the settings model exactly, so a new setting cannot skip this test.
BAD_VALUES = {
    "payment_service_url": ("localhost:8000", "http:// or https://"),
    "banking_api_url": ("ftp://bank", "http:// or https://"),
    "locust_host": ("payments", "http:// or https://"),
    "auth_token": ("Bearer ", "empty"),
    "request_timeout": ("0", "greater than 0"),
    "api_dialect": ("graphql", "contract, ecosystem, baseline"),
    "min_wait_time": ("-5", "greater than or equal to 0"),
    "max_wait_time": ("soon", "valid integer"),
    "simulate_failures": ("maybe", "valid boolean"),
    "card_decline_rate": ("1.5", "less than or equal to 1"),
    "refund_probability": ("lots", "valid number"),
    "persona_shares": ("casual:1,ghost:2", "casual, power, business"),
    "think_time_scale": ("-1", "greater than or equal to 0"),
    "validate_responses": ("perhaps", "valid boolean"),
    "merchant_count": ("ten", "valid integer"),
    "customer_count": ("0", "greater than or equal to 1"),
    "data_seed": ("-1", "greater than or equal to 0"),
    "id_store_size": ("5", "greater than or equal to 10"),
    "users": ("many", "valid integer"),
    "spawn_rate": ("0", "greater than 0"),
    "run_time": ("soon", "duration like 90s"),
    "workers": ("0", "greater than or equal to 1"),
    "report_dir": ("", "at least 1 character"),
    "dry_run": ("sometimes", "valid boolean"),
    "locust_table": ("often", "valid boolean"),
    "allow_remote_target": ("please", "valid boolean"),
    "master_host": ("master node!", "host name or an IP address"),
    "master_port": ("70000", "less than or equal to 65535"),
    "master_bind_host": ("every interface", "host name or an IP address"),
    "expect_workers": ("0", "greater than or equal to 1"),
    "reconcile": ("maybe", "'auto', 'on' or 'off'"),
    "race_width": ("abc", "valid integer"),
    "stress_start_users": ("0", "greater than or equal to 1"),
    "stress_step_users": ("abc", "valid integer"),
    "stress_step_seconds": ("0", "greater than 0"),
    "stress_max_users": ("lots", "valid integer"),
    "stress_spawn_rate": ("-1", "greater than 0"),
    "stress_max_error_rate": ("2", "less than or equal to 1"),
    "stress_max_p95_ms": ("fast", "valid number"),
    "spike_base_users": ("0", "greater than or equal to 1"),
    "spike_peak_users": ("x", "valid integer"),
    "spike_stage_seconds": ("-3", "greater than 0"),
    "target_rps": ("0", "greater than 0"),
    "rate_stages": ("100:30s,fast:1m", "rate:duration pairs"),
    "ramp": ("-1", "greater than or equal to 0"),
    "arrivals": ("bursty", "'constant' or 'poisson'"),
    "max_in_flight": ("-1", "greater than or equal to 0"),
    "rate_class": ("Payment User", "should match pattern"),
    "total": ("0", "greater than or equal to 1"),
    "concurrency": ("many", "valid integer"),
    "slo_file": ("/no/such/slo.toml", "no such file"),
    "slo_p50_ms": ("fast", "valid number"),
    "slo_p95_ms": ("-1", "greater than or equal to 0"),
    "slo_p99_ms": ("x", "valid number"),
    "slo_max_ms": ("x", "valid number"),
    "slo_error_rate": ("5", "less than or equal to 1"),
    "slo_min_rps": ("-2", "greater than or equal to 0"),
    "request_log": ("/proc/nope/requests.tsv", "cannot create or write"),
    "web_host": ("", "at least 1 character"),
    "web_port": ("0", "greater than or equal to 1"),
    "web_ui_allow_unauthenticated": ("yesplease", "valid boolean"),
    "metrics_sink": ("statsd", "'none', 'dogstatsd' or 'otel'"),
    "dd_agent_host": ("", "at least 1 character"),
    "dd_dogstatsd_port": ("99999", "less than or equal to 65535"),
    "dd_service": ("", "at least 1 character"),
    "dd_tags": ("team", "key:value"),
}
FREE_TEXT = {
    "web_username": "any login name",
    "web_password": "any password (secret)",
    "flask_secret_key": "any key (secret)",
    "dd_env": "any Datadog env tag",
}


def test_every_setting_has_a_bad_value_test():
    assert set(BAD_VALUES) | set(FREE_TEXT) == set(Settings.model_fields)


@pytest.mark.parametrize("field", sorted(BAD_VALUES))
def test_bad_value_of_every_setting_is_one_line_exit_2(field, tmp_path):
    """Through the runner, as a user meets it: one line naming the variable, exit 2, no traceback."""
    var, (value, allowed) = field.upper(), BAD_VALUES[field]
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update({"DRY_RUN": "1", "REPORT_DIR": str(tmp_path / "reports"), var: value})
    r = subprocess.run(
        [str(ROOT / "scripts" / "run_tests.sh"), "smoke"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert var in lines[0] and allowed in lines[0], lines[0]
    if field in ("auth_token", "web_password", "flask_secret_key"):
        assert value.strip() == "" or value not in lines[0]


def test_no_module_reads_the_environment_behind_the_settings_model():
    """Every variable goes through config.py: no os.environ / getenv elsewhere in the suite (the
    sandbox is a separate program with its own settings; benchmarks and tests are not the suite)."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in (".venv", "tests", "bench", "sandbox") or rel.name == "config.py":
            continue
        if str(rel) == "monitoring/otel.py":  # writes defaults of OpenTelemetry's own OTEL_* for its SDK
            continue
        text = path.read_text()
        if re.search(r"os\.environ|os\.getenv|getenv\(", text):
            offenders.append(str(rel))
    assert not offenders, offenders
