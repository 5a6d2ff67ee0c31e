"""The suite against each dialect (apis/): the same user classes, a binding per API.

The fakes (tests/fakes/ecosystem_fake.py, tests/fakes/baseline_fake.py) were written from
../shared/apis/*.md alone, as faithfully (and as unkindly) as the pages read. Against each,
``smoke`` and ``failures`` pass with zero unexpected failures, ``race`` too where refunds exist,
and a planted money bug fails the verdict with the mismatch named in the money section."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

import apis
from apis.base import Binding
from apis.records import Capability, major_text, to_major, to_minor
from tests.fakes import BaselineFake, EcosystemFake, run_against
from tests.helpers import ROOT
from tests.test_runner import fresh, run, run_fresh

# --- amounts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,currency,minor",
    [
        ("19.99", "USD", 1999),
        (19.99, "USD", 1999),  # a JSON number: its shortest decimal text, not float arithmetic
        (0.1 + 0.2, "USD", None),  # 0.30000000000000004 is not a whole number of cents
        ("1999", "JPY", 1999),  # no minor unit
        (1999.0, "JPY", 1999),
        ("19.5", "JPY", None),
        ("1.005", "USD", None),
        (100000.01, "EUR", 10000001),
        ("abc", "USD", None),
        (True, "USD", None),
        (None, "USD", None),
    ],
)
def test_major_units_convert_to_minor_exactly(value, currency, minor):
    assert to_minor(value, currency) == minor


def test_minor_units_print_with_the_currency_decimals():
    assert major_text(1999, "USD") == "19.99" and major_text(5, "EUR") == "0.05"
    assert major_text(1999, "JPY") == "1999" and to_major(1999, "JPY") == Decimal(1999)
    assert all(to_minor(major_text(n, c), c) == n for n in (1, 99, 100, 123456789) for c in ("USD", "JPY", "INR"))


# --- bindings -------------------------------------------------------------------------------------

# What a binding must implement for each capability it declares (the users call these).
OPERATIONS = {
    Capability.PAYMENTS: ("pay", "payment_request", "read_payment"),
    Capability.LOOKUP: ("lookup", "server_payment"),
    Capability.REFUNDS: ("refund",),
    Capability.MERCHANT_LISTING: ("list_transactions", "merchant_payment_ids"),
    Capability.REPORT: ("report",),
    Capability.BANKING_API: ("bank_health",),
    Capability.BANK_AUTHORIZE: ("authorize",),
    Capability.BANK_CAPTURE: ("capture",),
    Capability.BANK_REFUND: ("bank_refund",),
    Capability.BANK_STATUS: ("bank_status",),
    Capability.BANK_SETTLEMENT: ("settlement",),
    Capability.BANK_BATCH: ("batch",),
}


@pytest.mark.parametrize("dialect", sorted(apis.BUILTIN))
def test_each_binding_implements_what_it_declares(dialect):
    binding = apis.load(dialect)
    assert binding.name == dialect and binding.has(Capability.PAYMENTS)
    for cap, methods in OPERATIONS.items():
        if binding.has(cap):
            for method in methods:
                assert getattr(type(binding), method) is not getattr(Binding, method), (dialect, cap, method)
    if binding.has(Capability.BANK_SETTLEMENT, Capability.BANK_STATEFUL):
        assert type(binding).settlement_figures is not Binding.settlement_figures
    assert binding.probes(), "every dialect defines failure probes"


def test_the_user_classes_are_the_same_for_every_dialect():
    """Switching dialect changes no user class: each class imports once and runs its tasks
    against whichever binding API_DIALECT loads (subprocess: Locust patches the interpreter)."""
    code = (
        "import json, apis, locustfile, race_scenarios\n"
        "from users.exercised import missing_for, runnable\n"
        "classes = [getattr(locustfile, n) for n in locustfile.__all__] + "
        "[race_scenarios.RefundRaceUser, race_scenarios.CaptureRaceUser, race_scenarios.IdempotencyStormUser]\n"
        "out = {}\n"
        "for d in sorted(apis.BUILTIN):\n"
        "    b = apis.load(d)\n"
        "    out[d] = {c.__name__: [runnable(c, b), missing_for(c, b)] for c in classes}\n"
        "print(json.dumps(out))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert all(ok and not missing for ok, missing in out["contract"].values())
    eco, base = out["ecosystem"], out["baseline"]
    assert eco["BankingAPIUser"][0] and eco["RefundRaceUser"][0] and not eco["CaptureRaceUser"][0]
    assert not eco["IdempotencyStormUser"][0]
    assert any("merchant_transactions" in m for m in eco["PaymentServiceUser"][1])
    assert not base["BankingAPIUser"][0] and not base["RefundRaceUser"][0]
    assert base["PaymentServiceUser"][0] and base["RealisticTrafficUser"][0] and base["FailureSimulationUser"][0]


def test_a_bad_dialect_is_one_line_naming_the_choices():
    r = run("smoke", env={"API_DIALECT": "graphql", "DRY_RUN": "1"}, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "API_DIALECT" in r.stderr and "contract, ecosystem, baseline" in r.stderr
    r = run("smoke", env={"API_DIALECT": "no_such.binding_module", "DRY_RUN": "1"}, timeout=60)
    assert r.returncode == 2 and "cannot import module 'no_such.binding_module'" in r.stderr


def test_a_teams_own_binding_is_one_module(sandbox, tmp_path):
    """tests/custom_binding.py, the README's example: the contract without reports and batches."""
    env = {
        "API_DIALECT": "tests.custom_binding",
        "PAYMENT_SERVICE_URL": sandbox.payment_url,
        "BANKING_API_URL": sandbox.bank_url,
        "REPORT_DIR": str(tmp_path / "reports"),
        "RECONCILE": "on",
        "RUN_TIME": "6s",
        "MIN_WAIT_TIME": "0",
        "MAX_WAIT_TIME": "50",
        "THINK_TIME_SCALE": "0.01",
    }
    r = run("smoke", env=env, timeout=180)
    summary = json.loads((tmp_path / "reports" / "smoke-summary.json").read_text())
    assert r.returncode == 0, (summary["reasons"], summary["errors"][:5])
    assert summary["api"]["dialect"] == "mycompany" and summary["money"]["status"] == "reconciled"
    assert any(m.startswith("BankingAPIUser.batch") for m in summary["api"]["not_exercised"])
    assert not any(e["name"].startswith("POST /v1/batches") for e in summary["endpoints"])


# --- against the fakes ----------------------------------------------------------------------------


def _run(fake, tmp_path, profile: str, dialect: str, seconds: str = "8s", **extra):
    return run_against(fake, tmp_path, profile, dialect, seconds, **extra)


@pytest.fixture(scope="module")
def ecosystem():
    box = EcosystemFake().start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def baseline():
    box = BaselineFake().start()
    yield box
    box.stop()


def _clean(r, summary, dialect: str, money: tuple[str, ...] = ("reconciled",)) -> None:
    assert r.returncode == 0, (summary["reasons"], summary["errors"][:5], r.stderr[-1500:])
    assert summary["totals"]["failures"] == 0 and summary["totals"]["requests"] > 100
    assert summary["api"]["dialect"] == dialect
    assert summary["money"]["enabled"] and summary["money"]["status"] in money, summary["money"]


@pytest.mark.parametrize("profile", ["smoke", "failures", "race"])
def test_ecosystem_profiles_pass_with_zero_unexpected_failures(ecosystem, tmp_path, profile):
    r, summary = _run(ecosystem, tmp_path, profile, "ecosystem")
    _clean(r, summary, "ecosystem")
    money = summary["money"]
    assert money["counts"]["matched"] > 0 and "idempotency" in money["not_checked"]
    if profile == "smoke":
        assert any("merchant_transactions" in m for m in summary["api"]["not_exercised"])
        md = (tmp_path / "reports" / "smoke-summary.md").read_text()
        assert "### API: ecosystem" in md and "not exercised (not in this API)" in md


@pytest.mark.parametrize("profile", ["failures", "race"])
def test_ecosystem_refunds_beyond_the_capture_fail_the_verdict(tmp_path, profile):
    box = EcosystemFake(bug="refund_beyond_captured").start()
    try:
        r, summary = _run(box, tmp_path, profile, "ecosystem")
    finally:
        box.stop()
    assert r.returncode == 4  # money mismatch
    money = summary["money"]
    assert money["status"] == "mismatch" and money["counts"]["over_refunded"] > 0, money["counts"]
    assert any(reason.startswith("money:") and "refund" in reason for reason in summary["reasons"])
    assert "**MISMATCH**" in (tmp_path / "reports" / f"{profile}-summary.md").read_text()


@pytest.mark.parametrize("profile", ["smoke", "failures"])
def test_baseline_profiles_pass_with_zero_unexpected_failures(baseline, tmp_path, profile):
    r, summary = _run(baseline, tmp_path, profile, "baseline")
    # failures: its only approvals are the fraud probe card's, past the limit after the first round
    _clean(r, summary, "baseline", ("reconciled", "nothing to check") if profile == "failures" else ("reconciled",))
    assert "server lookups" in summary["money"]["not_checked"]
    if profile == "smoke":
        assert "BankingAPIUser" in summary["api"]["classes_not_run"]
        assert any(m.startswith("RealisticTrafficUser: refunds") for m in summary["api"]["not_exercised"])
        md = (tmp_path / "reports" / "smoke-summary.md").read_text()
        assert "(API_DIALECT=baseline, no BankingAPI), peak 5 users" in md


def test_baseline_spreads_payments_over_cards_below_the_fraud_limit(baseline, tmp_path):
    """Far more payments than 20 per card would allow if a handful of cards were reused."""
    r, summary = _run(
        baseline, tmp_path, "volume", "baseline", seconds="10s", USERS="20", SPAWN_RATE="20", CUSTOMER_COUNT="5"
    )
    _clean(r, summary, "baseline")
    pays = next(e for e in summary["endpoints"] if e["name"] == "POST /pay")
    assert pays["requests"] > 20 * 5
    assert summary["errors_by_category"].get("fraud_rejected", 0) == 0


def test_baseline_approval_echoing_another_amount_fails_the_verdict(tmp_path):
    box = BaselineFake(bug="echo_other_amount").start()
    try:
        r, summary = _run(box, tmp_path, "smoke", "baseline")
    finally:
        box.stop()
    assert r.returncode == 4  # money mismatch
    money = summary["money"]
    assert money["status"] == "mismatch" and money["counts"]["amount_mismatch"] > 0, money["counts"]
    assert any(reason.startswith("money:") and "confirmed" in reason for reason in summary["reasons"])
    assert "**MISMATCH**" in (tmp_path / "reports" / "smoke-summary.md").read_text()


# --- pre-flight per dialect -----------------------------------------------------------------------


def _preflight(env: dict) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "preflight.py", "--profile", "smoke"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_preflight_checks_the_dialects_own_health_and_services(baseline):
    # baseline has no BankingAPI: an unreachable bank URL does not matter
    r = _preflight(
        {
            "API_DIALECT": "baseline",
            "PAYMENT_SERVICE_URL": baseline.payment_url,
            "BANKING_API_URL": "http://127.0.0.1:9",
        }
    )
    assert r.returncode == 0, r.stderr
    # the contract reads the baseline's health answer as not healthy ("status" is not "ok")
    r = _preflight({"PAYMENT_SERVICE_URL": baseline.payment_url, "BANKING_API_URL": baseline.bank_url})
    assert r.returncode == 3 and "does not say it is healthy" in r.stderr


def test_the_sandbox_is_started_for_the_contract_only():
    """The runner starts the sandbox when pre-flight exits 10: only where the targets are the
    sandbox's default ports and the dialect is the contract (the sandbox speaks nothing else)."""
    from preflight import SANDBOX_PORTS, port_in_use

    if any(port_in_use(p) for p in SANDBOX_PORTS.values()):
        pytest.skip("something listens on the sandbox's default ports")
    env = {"PAYMENT_SERVICE_URL": "http://127.0.0.1:8000", "BANKING_API_URL": "http://127.0.0.1:1080"}
    assert _preflight(env).returncode == 10
    r = _preflight({**env, "API_DIALECT": "ecosystem"})
    assert (
        r.returncode == 3 and "target unreachable: PaymentService" in r.stderr and "API_DIALECT=ecosystem" in r.stderr
    )


def test_a_fraud_rejection_is_its_own_failure_category():
    code = "from reporting.summary import categorize; print(categorize('[fraud rejected] expected 200, got 402'))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "fraud_rejected", r.stderr[-500:]


# --- what a binding declares ----------------------------------------------------------------------


def _preflight_fresh(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """preflight.py on a network of its own (nothing answers at the default targets)."""
    import os

    base = {k: v for k, v in os.environ.items() if k not in ("PAYMENT_SERVICE_URL", "BANKING_API_URL", "LOCUST_HOST")}
    cmd = ["unshare", "-n", "bash", "-c", 'ip link set lo up && exec "$@"', "fresh", sys.executable, "preflight.py"]
    return subprocess.run(
        [*cmd, "--profile", "smoke", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bindings_declare_whether_the_sandbox_speaks_them():
    import tests.custom_binding

    assert apis.load("contract").bundled_sandbox and tests.custom_binding.BINDING.bundled_sandbox  # inherited
    assert not apis.load("ecosystem").bundled_sandbox and not apis.load("baseline").bundled_sandbox
    assert not Binding.bundled_sandbox


@fresh
@pytest.mark.parametrize(
    "dialect,needs,expected",
    [
        ("contract", "payment,bank", (10, "both")),
        ("tests.custom_binding", "payment,bank", (10, "both")),  # a subclass of the contract: the sandbox too
        ("contract", "payment", (10, "both")),  # the sandbox's PaymentService calls its bank (failures)
        ("contract", "bank", (10, "bank")),
        ("ecosystem", "payment,bank", (3, "")),  # the sandbox does not speak it: never started
    ],
)
def test_the_sandbox_is_started_for_what_the_run_needs(dialect, needs, expected):
    r = _preflight_fresh("--needs", needs, env={"API_DIALECT": dialect})
    assert (r.returncode, r.stdout.strip()) == expected, r.stderr
    if r.returncode == 3:
        assert r.stderr.startswith("target unreachable: PaymentService at http://localhost:8000")


@fresh
def test_the_readmes_binding_runs_against_the_sandbox_it_starts(tmp_path):
    """tests/custom_binding.py on a fresh machine, nothing set but API_DIALECT: the runner starts the
    sandbox for it and RECONCILE=auto reads the sandbox back (the binding inherits bundled_sandbox)."""
    env = {"API_DIALECT": "tests.custom_binding", "RUN_TIME": "5s"}
    r = run_fresh("smoke", tmp_path=tmp_path, env=env)
    assert "starting the bundled sandbox" in r.stderr, r.stderr[-2000:]
    summary = json.loads((tmp_path / "reports" / "smoke-summary.json").read_text())
    assert r.returncode == 0, (summary["reasons"], summary["errors"][:5])
    assert summary["api"]["dialect"] == "mycompany"
    assert summary["money"]["status"] == "reconciled" and summary["money"].get("scope") != "client view"


def _doc_binding(folder: Path) -> str:
    """docs/your-own-api.md's from-scratch binding, written from the page itself as a package in
    ``folder`` (the module path it documents: mycompany/payments_binding.py)."""
    page = (ROOT / "docs" / "your-own-api.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "BINDING = " in b]
    assert len(blocks) == 1, "the page has one from-scratch binding"
    assert blocks[0].startswith('"""mycompany/payments_binding.py')
    package = folder / "mycompany"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "payments_binding.py").write_text(blocks[0])
    return "mycompany.payments_binding"


def test_the_documented_from_scratch_binding_runs_against_its_api(tmp_path):
    from tests.fakes.charges_fake import ChargesFake

    module = _doc_binding(tmp_path / "code")
    with ChargesFake() as fake:
        env = {
            "API_DIALECT": module,
            "PYTHONPATH": str(tmp_path / "code"),
            "PAYMENT_SERVICE_URL": fake.payment_url,
            "BANKING_API_URL": fake.bank_url,
            "REPORT_DIR": str(tmp_path / "reports"),
            "RUN_TIME": "5s",
        }
        r = run("smoke", env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "reports" / "smoke-summary.json").read_text())
    assert summary["api"]["dialect"] == "mycompany" and "BankingAPIUser" in summary["api"]["classes_not_run"]
    charges = next(e for e in summary["endpoints"] if e["name"] == "POST /v2/charges")
    assert charges["requests"] > 5 and summary["totals"]["failures"] == 0
    assert summary["money"]["status"] == "reconciled", summary["money"]
