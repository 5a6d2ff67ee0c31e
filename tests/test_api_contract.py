"""docs/api-contract.md is the contract the sandbox implements: its endpoint tables are checked
against the sandbox's own OpenAPI documents, its named error codes against the codes the sandbox
answers with, and its test cards against the sandbox's and the data generators' tables (one list
of decline cards, kept equal here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import data_generators
from sandbox import bank, common, payment
from tests.helpers import ROOT

PAGE = ROOT / "docs" / "api-contract.md"
ROW = re.compile(r"^\| `(GET|POST|PUT|DELETE) ([^`]+)` \|(.*)$")


def contract_rows(service: str) -> list[tuple[str, str, int, list[int], list[str]]]:
    """(method, path, success status, error statuses, error codes) of one service's table."""
    text = PAGE.read_text()
    start = text.index(f"## {service}")
    end = text.find("\n## ", start + 1)
    rows = []
    for line in text[start : end if end > 0 else None].splitlines():
        m = ROW.match(line)
        if not m:
            continue
        method, path, rest = m.groups()
        cells = [c.strip() for c in rest.split("|")]
        success, errors = int(cells[1]), cells[2]
        rows.append(
            (
                method,
                path,
                success,
                [int(s) for s in re.findall(r"\b[1-5]\d\d\b", errors)],
                re.findall(r"`(\w+)`", errors),
            )
        )
    return rows


def _openapi_paths(app) -> dict[tuple[str, str], set[int]]:
    doc = app.openapi()
    found = {}
    for path, ops in doc["paths"].items():
        shape = re.sub(r"\{[^}]+\}", "{}", path)
        for method, op in ops.items():
            found[(method.upper(), shape)] = {int(s) for s in op.get("responses", {}) if s.isdigit()}
    return found


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("contract")
    return {
        "PaymentService": payment.create_app(tmp / "payment", "http://127.0.0.1:9", 1.0),
        "BankingAPI": bank.create_app(tmp / "bank"),
    }


def _sandbox_source() -> str:
    return "\n".join(p.read_text() for p in (ROOT / "sandbox").glob("*.py"))


@pytest.mark.parametrize("service", ["PaymentService", "BankingAPI"])
def test_every_endpoint_and_status_on_the_page_is_in_the_sandbox(apps, service):
    rows = contract_rows(service)
    assert len(rows) >= 7, f"the {service} table was not found or lost rows"
    served = _openapi_paths(apps[service])
    source = _sandbox_source()
    for method, path, success, errors, codes in rows:
        key = (method, re.sub(r"\{[^}]+\}", "{}", path))
        assert key in served, f"{method} {path} is on the contract page but not in the sandbox"
        missing = {success, *errors} - served[key]
        assert not missing, f"{method} {path}: statuses {sorted(missing)} are on the page, not in the sandbox's OpenAPI"
        for code in codes:
            assert f'"{code}"' in source, f"{method} {path}: the sandbox never answers with code {code!r}"


def test_every_sandbox_endpoint_is_on_the_page(apps):
    listed = {(m, re.sub(r"\{[^}]+\}", "{}", p)) for service in apps for m, p, *_ in contract_rows(service)}
    for service, app in apps.items():
        for method, path in _openapi_paths(app):
            if path.startswith("/__sandbox"):  # the fault switches: described in prose and docs/sandbox.md
                continue
            assert (method, path) in listed, f"{service} serves {method} {path}, which the contract page omits"


def _cards() -> dict[str, str]:
    text = PAGE.read_text()
    table = text[text.index("## Test cards") :]
    return dict(re.findall(r"^\| (\d{12,19}) \| ([^|]+) \|", table, re.M))


def test_test_cards_on_the_page_are_the_sandboxes_and_the_generators():
    cards = _cards()
    approved = {n for n, outcome in cards.items() if outcome.startswith("approved")}
    declined = {n: re.search(r"`(\w+)`", o).group(1) for n, o in cards.items() if o.startswith("declined")}
    failing = {n for n, o in cards.items() if "502" in o}
    assert approved == set(data_generators.APPROVED_TEST_CARDS)
    assert declined == common.DECLINE_CARDS == data_generators.DECLINE_CARDS
    assert failing == {common.PROCESSING_ERROR_CARD} == {data_generators.PROCESSING_ERROR_CARD}


def test_the_readme_links_the_contract_in_the_repository():
    readme = (ROOT / "README.md").read_text()
    assert "docs/api-contract.md" in readme
    assert "beside this repository" not in readme
    assert Path(PAGE).is_file()
