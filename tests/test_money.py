"""Money correctness: the ledger, reconciliation, and the race profile catching real bugs."""

from __future__ import annotations

import json
import re

import pytest

from money.ledger import Ledger, outcome_of
from money.reconcile import Servers, resolve_unknown
from tests.helpers import TOKEN, Sandbox, payment_body
from tests.test_runner import run, target_env


def test_outcomes():
    assert [outcome_of(s) for s in (201, 200, 402, 409, 422, 0, 502, 504)] == [
        "succeeded",
        "succeeded",
        "declined",
        "failed",
        "failed",
        "unknown",
        "unknown",
        "unknown",
    ]


def test_ledger_spills_to_file_keeps_no_card_data_and_bounds_unknowns(tmp_path, monkeypatch):
    monkeypatch.setattr("money.ledger.MAX_UNKNOWN_KEPT", 3)
    ledger = Ledger()
    ledger.open(tmp_path / "l.jsonl")
    body = payment_body()
    for i in range(500):
        ledger.record(
            "payment",
            201,
            f"k{i}",
            {"amount": 10, "currency": "USD", "merchant_id": "mer_a"},
            {"id": f"pay_{i}"},
            body,
            "/payments",
        )
    for i in range(5):
        ledger.record(
            "payment", 0, f"u{i}", {"amount": 10, "currency": "USD", "merchant_id": "mer_a"}, None, body, "/payments"
        )
    ledger.close()
    text = (tmp_path / "l.jsonl").read_text()
    assert text.count("\n") == 502  # 500 final + 2 unknown beyond the in-memory bound
    assert len(ledger.unknown) == 3 and ledger.unknown_dropped == 2
    assert body["card"]["number"] not in text and "cvc" not in text
    assert ledger.counts["payment:succeeded"] == 500 and ledger.counts["payment:unknown"] == 5


def test_unknown_outcome_is_resolved_by_idempotent_replay(sandbox):
    body = payment_body(merchant="mer_replay")
    unknown = [
        {
            "kind": "payment",
            "outcome": "unknown",
            "status": 0,
            "key": "replay-1",
            "amount": body["amount"],
            "currency": "USD",
            "merchant_id": "mer_replay",
            "path": "/payments",
            "request": body,
        }
    ]
    from collections import Counter

    counts = Counter()
    servers = Servers(sandbox.payment_url, sandbox.bank_url, f"Bearer {TOKEN}")
    first = resolve_unknown(servers, [dict(unknown[0])], counts)
    again = resolve_unknown(servers, [dict(unknown[0])], counts)
    assert counts["unknown_resolved_by_replay"] == 2
    assert first[0]["outcome"] == again[0]["outcome"] == "succeeded" and first[0]["id"] == again[0]["id"]
    assert "request" not in first[0]


def race(box: Sandbox, tmp_path, seconds: str = "8s"):
    r = run("race", env=target_env(box, tmp_path, RUN_TIME=seconds), timeout=240)
    summary = json.loads((tmp_path / "reports" / "race-summary.json").read_text())
    return r, summary


def test_race_profile_passes_and_reconciles_against_the_correct_sandbox(sandbox, tmp_path):
    r, summary = race(sandbox, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    money = summary["money"]
    assert money["enabled"] and money["ok"] and money["counts"]["matched"] > 50
    assert money["counts"]["bank_settlement_matched"] > 0
    races = {e["name"]: e for e in summary["endpoints"] if e["method"] == "RACE"}
    assert {"race: captures of one authorization", "race: idempotency storm"} <= set(races)
    assert any(n.startswith("race: full refunds") or n.startswith("race: partial refunds") for n in races)
    assert all(e["failures"] == 0 for e in races.values())
    md = (tmp_path / "reports" / "race-summary.md").read_text()
    assert "### Money: reconciled" in md
    ledger = (tmp_path / "reports" / "race-ledger.jsonl").read_text()
    assert not re.search(r"\b\d{13,19}\b", ledger)  # ids and amounts only, never a card number


@pytest.mark.parametrize(
    "bug,category", [("refund_race", "refund_mismatch"), ("idempotency_off", "duplicate_on_server")]
)
def test_reconciliation_catches_a_broken_invariant(tmp_path, bug, category):
    box = Sandbox(tmp_path / "data", env={"SANDBOX_BREAK_INVARIANT": bug}).start()
    try:
        r, summary = race(box, tmp_path)
    finally:
        box.stop()
    assert r.returncode == 1, r.stderr[-2000:]
    money = summary["money"]
    assert not money["ok"] and money["counts"][category] > 0, money["counts"]
    assert any(reason.startswith("money:") for reason in summary["reasons"])
    assert "**MISMATCH**" in (tmp_path / "reports" / "race-summary.md").read_text()
