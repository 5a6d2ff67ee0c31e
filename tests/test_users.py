"""The four user classes run in-process (Locust Environment + LocalRunner, in a subprocess)
against the sandbox: no unexpected failure, the seed's task mix, every contract endpoint."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import requests

from tests.helpers import ROOT

CLASSES = ["PaymentServiceUser", "BankingAPIUser", "FailureSimulationUser", "RealisticTrafficUser"]
SEED_MIX = {
    "PaymentServiceUser": {
        "process_payment": 70,
        "process_refund": 10,
        "transaction_status": 15,
        "merchant_transactions": 3,
        "health_check": 2,
    },
    "BankingAPIUser": {
        "authorize": 40,
        "capture": 25,
        "refund": 15,
        "transaction_status": 10,
        "settlement_report": 5,
        "health_check": 3,
        "batch": 2,
    },
}
CONTRACT = {  # (method, path template, service)
    ("GET", "/health", "payment"),
    ("POST", "/payments", "payment"),
    ("POST", "/pay", "payment"),
    ("GET", "/payments/{payment_id}", "payment"),
    ("POST", "/payments/{payment_id}/refunds", "payment"),
    ("GET", "/merchants/{merchant_id}/transactions", "payment"),
    ("POST", "/internal/generate-report", "payment"),
    ("GET", "/health", "bank"),
    ("POST", "/v1/authorizations", "bank"),
    ("POST", "/v1/authorizations/{auth_id}/capture", "bank"),
    ("POST", "/v1/refunds", "bank"),
    ("GET", "/v1/transactions/{txn_id}", "bank"),
    ("GET", "/v1/settlements", "bank"),
    ("POST", "/v1/batches", "bank"),
}


def drive(sandbox, *args: str, timeout: int = 120) -> dict:
    env = {
        **os.environ,
        "PAYMENT_SERVICE_URL": sandbox.payment_url,
        "BANKING_API_URL": sandbox.bank_url,
        "MIN_WAIT_TIME": "0",
        "MAX_WAIT_TIME": "0",
        "THINK_TIME_SCALE": "0.0005",
    }
    r = subprocess.run(
        [sys.executable, "-m", "tests.locust_driver", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def runs(sandbox) -> dict:
    return {cls: drive(sandbox, "run", "--classes", cls, "--users", "8", "--seconds", "7") for cls in CLASSES}


def test_task_weights_equal_the_seed_percentages(sandbox):
    declared = drive(sandbox, "weights")
    for cls, mix in SEED_MIX.items():
        assert declared[cls]["tasks"] == mix
        assert sum(mix.values()) == 100


@pytest.mark.parametrize("cls", CLASSES)
def test_each_class_runs_without_unexpected_failures(runs, cls):
    result = runs[cls]
    assert result["total"]["requests"] > 200, result["total"]
    assert result["total"]["failures"] == 0, result["failures"]
    assert result["errors"] == []


@pytest.mark.parametrize("cls", sorted(SEED_MIX))
def test_observed_task_mix_is_within_3_points_of_the_seed(runs, cls):
    counts = {k.split(".", 1)[1]: v for k, v in runs[cls]["tasks"].items() if k.startswith(cls + ".")}
    total = sum(counts.values())
    assert total >= 2000, total
    for task, pct in SEED_MIX[cls].items():
        observed = 100 * counts.get(task, 0) / total
        assert abs(observed - pct) <= 3, (task, observed, pct)


def _templates(url: str) -> list[tuple[str, re.Pattern]]:
    doc = requests.get(url + "/openapi.json", timeout=10).json()
    return [
        (m.upper(), re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", p) + "$"))
        for p, ops in doc["paths"].items()
        for m in ops
    ]


def test_every_call_exists_in_the_openapi_and_every_contract_row_is_exercised(runs, sandbox):
    known = _templates(sandbox.payment_url) + _templates(sandbox.bank_url)
    used = {call for r in runs.values() for call in r["calls"]}
    unknown = [c for c in used if not any(m == c.split()[0] and rx.match(c.split()[1]) for m, rx in known)]
    assert not unknown, unknown
    for method, template, _service in CONTRACT:
        rx = re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$")
        assert any(c.split()[0] == method and rx.match(c.split()[1]) for c in used), (method, template)
