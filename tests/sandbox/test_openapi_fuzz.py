"""Schemathesis fuzz of both services' OpenAPI documents: no 5xx, every answer documented and
matching its schema. Bounded: a few hundred generated cases per service.

Driven through schemathesis' Python API plus Hypothesis, because its pytest plugin does not
work with pytest 9 (it reads ``Function._nodeid``)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import AUTH

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 40


def _with_valid_card(body) -> None:
    """Random digits are almost never Luhn-valid with a future expiry, so without this the fuzz
    would stop at validation and never reach the bank hop; the other fields stay fuzzed."""
    items = body.get("operations", []) if isinstance(body, dict) else []
    for target in [body, *items]:
        if isinstance(target, dict) and isinstance(target.get("card"), dict):
            target["card"].update(number="4242424242424242", exp_month=12, exp_year=2031, cvc="123")


def fuzz(openapi_url: str) -> tuple[int, list[str]]:
    schema = schemathesis.openapi.from_url(openapi_url)
    calls, failures = 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.startswith("/__sandbox"):  # fault switches would change every other case
            continue

        @given(case=operation.as_strategy(), valid_card=st.booleans())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case, valid_card):
            nonlocal calls
            calls += 1
            if valid_card:
                _with_valid_card(case.body)
            case.call_and_validate(headers=AUTH, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collect all operations' failures, not just the first
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:600]}")
    return calls, failures


@pytest.mark.faults
@pytest.mark.parametrize("service", ["payment", "bank"])
def test_openapi_fuzz_finds_no_5xx_and_no_schema_violation(sandbox, service):
    base = sandbox.payment_url if service == "payment" else sandbox.bank_url
    calls, failures = fuzz(base + "/openapi.json")
    assert calls >= 150, calls
    assert not failures, "\n".join(failures)
