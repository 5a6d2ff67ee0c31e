"""Money correctness: the ledger, reconciliation, and the race profile catching real bugs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from apis.contract import BINDING as CONTRACT
from apis.contract import payment_op, read_answer
from apis.records import Outcome
from money.ledger import Ledger
from money.reconcile import Servers, resolve_unknown
from tests.helpers import TOKEN, Sandbox, payment_body
from tests.test_runner import RUNNER, run, target_env


def test_contract_outcomes_by_status():
    body = {"id": "pay_1"}
    assert [read_answer(s, body).outcome for s in (201, 200, 402, 409, 422, 0, 502, 504)] == [
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
    op = payment_op({"amount": 10, "currency": "USD", "merchant_id": "mer_a"})
    for i in range(500):
        ledger.record(op, 201, f"k{i}", {"id": f"pay_{i}", "amount": 10}, body, "/payments")
    for i in range(5):
        ledger.record(op, 0, f"u{i}", None, body, "/payments")
    ledger.close()
    text = (tmp_path / "l.jsonl").read_text()
    assert text.count("\n") == 502  # 500 final + 2 unknown beyond the in-memory bound
    assert len(ledger.unknown) == 3 and ledger.unknown_dropped == 2
    assert body["card"]["number"] not in text and "cvc" not in text
    assert ledger.counts["payment:succeeded"] == 500 and ledger.counts["payment:unknown"] == 5


def test_a_2xx_the_client_cannot_read_is_unknown_and_an_echo_of_another_amount_is_kept(tmp_path):
    ledger = Ledger()
    ledger.open(tmp_path / "l.jsonl")
    op = payment_op({"amount": 1999, "currency": "USD", "merchant_id": "mer_a"})
    ledger.record(op, 201, "k1", {"status": "succeeded"}, None, None)  # no id: the client cannot tell
    ledger.record(op, 201, "k2", {"id": "pay_2", "amount": 2000, "currency": "USD"}, None, None)
    ledger.close()
    recs = list(ledger.records())
    assert recs[0]["outcome"] == Outcome.UNKNOWN
    assert recs[1]["outcome"] == "succeeded" and recs[1]["echoed_amount"] == 2000 and recs[1]["amount"] == 1999


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
    first = resolve_unknown(servers, [dict(unknown[0])], counts, CONTRACT)
    again = resolve_unknown(servers, [dict(unknown[0])], counts, CONTRACT)
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
    assert r.returncode == 4, r.stderr[-2000:]  # money mismatch
    money = summary["money"]
    assert not money["ok"] and money["counts"][category] > 0, money["counts"]
    assert any(reason.startswith("money:") for reason in summary["reasons"])
    assert "**MISMATCH**" in (tmp_path / "reports" / "race-summary.md").read_text()


class _FakeServers:
    """Answers lookups from a dict; no settlements (as a service without them)."""

    payment_url, bank_url = "http://payments.test", "http://bank.test"

    def __init__(self, payments: dict):
        self.payments = payments

    def get(self, url: str, **_params):
        pid = url.rsplit("/", 1)[-1]
        return (200, self.payments[pid]) if pid in self.payments else (404, None)

    get_retried = get

    def post(self, url, body, key):
        return 0, None  # the service cannot be reached: replay leaves the outcome unknown

    def settlement(self, day, merchant_id):
        return None


def _records(*recs):
    return lambda: iter(recs)


def test_refunds_the_client_saw_accepted_beyond_the_capture_are_over_refunded():
    from money.reconcile import reconcile

    pay = {"kind": "payment", "outcome": "succeeded", "id": "pay_1", "amount": 1000, "currency": "USD"}
    refund = {"kind": "refund", "outcome": "succeeded", "parent": "pay_1", "amount": 600, "currency": "USD"}
    server = {"pay_1": {"id": "pay_1", "amount": 1000, "currency": "USD", "refunded_amount": 1000}}
    result = reconcile(_records(pay, refund, dict(refund)), [], _FakeServers(server), None, [], CONTRACT)
    assert not result["ok"] and result["status"] == "mismatch"
    assert result["counts"]["over_refunded"] == 1 and result["counts"]["refund_mismatch"] == 0
    assert "refunds of 1200 were accepted on a capture of 1000" in result["problems"][0]


def test_unresolved_unknown_outcomes_make_the_money_section_incomplete():
    from money.reconcile import reconcile

    pay = {"kind": "payment", "outcome": "succeeded", "id": "pay_2", "amount": 500, "currency": "EUR"}
    unknown = {"kind": "payment", "outcome": "unknown", "key": "k1", "amount": 700, "currency": "EUR"}
    server = {"pay_2": {"id": "pay_2", "amount": 500, "currency": "EUR", "refunded_amount": 0}}
    result = reconcile(
        _records(pay), [{**unknown, "path": "/payments", "request": {}}], _FakeServers(server), None, [], CONTRACT
    )
    assert result["ok"] and result["status"] == "incomplete"
    assert result["counts"]["unknown_unresolved"] == 1 and result["counts"]["matched"] == 1


class _ReplayingServers(_FakeServers):
    """A service whose replay of a stored request answers 201 with the refund (amount optional)."""

    def __init__(self, payments: dict, refund_body: dict):
        super().__init__(payments)
        self.refund_body = refund_body

    def post(self, url, body, key):
        return 201, self.refund_body


@pytest.mark.parametrize("answer", [{"id": "re_9", "amount": 400}, {"id": "re_9"}], ids=["amount", "no amount"])
def test_a_full_refund_resolved_by_replay_counts_what_it_refunded(answer):
    """A full refund (no amount asked) whose first answer was a 502: once the replay says it
    succeeded, it refunded what was left of the payment, not 0."""
    from money.reconcile import reconcile

    pay = {"kind": "payment", "outcome": "succeeded", "id": "pay_3", "amount": 1000, "currency": "USD"}
    partial = {"kind": "refund", "outcome": "succeeded", "parent": "pay_3", "amount": 600, "currency": "USD"}
    full = {"kind": "refund", "outcome": "unknown", "parent": "pay_3", "amount": None, "key": "k9", "path": "/x"}
    server = {"pay_3": {"id": "pay_3", "amount": 1000, "currency": "USD", "refunded_amount": 1000}}
    result = reconcile(
        _records(pay, partial), [{**full, "request": {}}], _ReplayingServers(server, answer), None, [], CONTRACT
    )
    assert result["status"] == "reconciled", result
    assert result["counts"]["matched"] == 1 and result["counts"]["unknown_resolved_by_replay"] == 1


class _SettlingBinding:
    """A stateful bank whose settlement figures come from a dict (merchant -> (captured, refunded))."""

    from apis.records import Capability as _C

    capabilities = frozenset({_C.BANK_SETTLEMENT, _C.BANK_STATEFUL})

    def __init__(self, figures: dict):
        self.figures = figures

    def has(self, *caps):
        return all(c in self.capabilities for c in caps)

    def settlement_figures(self, http, day, merchant_id):
        return self.figures.get(merchant_id)


def _settle(merchant: str, bank_now: tuple[int, int], start: dict):
    from money.reconcile import Expected, Findings, check_settlements

    state = Expected()
    state.bank[merchant] = [1000, 200, 0]  # this run captured 1000 and refunded 200
    found = Findings()
    check_settlements(state, found, _SettlingBinding({merchant: bank_now}), None, start, ["2026-11-23"])
    return found


def test_settlements_of_the_runs_own_merchants_are_exact():
    mine = "mer_runabc123_00001"
    assert _settle(mine, (1000, 200), {}).counts["bank_settlement_matched"] == 1
    found = _settle(mine, (1500, 200), {})  # someone else's money on a merchant only this run uses
    assert found.counts["bank_settlement_mismatch"] == 1 and "exact" in found.checks["bank settlements"]


def test_shared_merchants_are_checked_as_a_lower_bound():
    """Other traffic may add to a shared merchant; the bank showing less than this run moved is a bug."""
    shared = "mer_2a_00001"
    start = {shared: (5000, 0)}
    found = _settle(shared, (5000 + 1000 + 777, 200 + 50), start)
    assert found.counts["bank_settlement_matched"] == 1 and "at least" in found.checks["bank settlements"]
    found = _settle(shared, (5000 + 900, 200), start)
    assert found.counts["bank_settlement_mismatch"] == 1 and "shared merchant" in found.problems[0]


def test_two_runs_at_once_on_one_sandbox_do_not_fail_each_other(sandbox, tmp_path):
    """Each run's merchants are its own: a run and a second one started during it both reconcile."""
    env = target_env(sandbox, tmp_path / "a", RUN_TIME="14s", MIN_WAIT_TIME="0", MAX_WAIT_TIME="20")
    first = subprocess.Popen(
        [RUNNER, "smoke"], env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(4)
        r2 = run("smoke", env=target_env(sandbox, tmp_path / "b", RUN_TIME="6s", MIN_WAIT_TIME="0", MAX_WAIT_TIME="20"))
        _, err1 = first.communicate(timeout=180)
    finally:
        first.kill()
    for folder, code, err in (("a", first.returncode, err1), ("b", r2.returncode, r2.stderr)):
        money = json.loads((tmp_path / folder / "reports" / "smoke-summary.json").read_text())["money"]
        assert code == 0 and money["status"] == "reconciled", (folder, money, err[-1500:])
        assert money["counts"]["bank_settlement_matched"] > 0 and "exact" in money["checks"]["bank settlements"]


def _client_view(*recs, unknown=()):
    from money.reconcile import reconcile

    return reconcile(_records(*recs), list(unknown), None, None, [], CONTRACT)


def test_an_approval_confirming_an_amount_that_is_not_one_is_an_amount_mismatch(tmp_path):
    ledger = Ledger()
    ledger.open(tmp_path / "l.jsonl")
    op = payment_op({"amount": 1999, "currency": "USD", "merchant_id": "mer_a"})
    ledger.record(op, 201, "k1", {"id": "pay_1", "amount": "19.99", "currency": "USD"}, None, None)
    ledger.close()
    result = _client_view(*ledger.records())
    assert result["status"] == "mismatch" and result["counts"]["amount_mismatch"] == 1
    assert "confirmed 19.99 USD" in result["problems"][0]


def test_client_view_only_still_catches_over_refunds_and_says_what_it_did_not_read():
    pay = {"kind": "payment", "outcome": "succeeded", "id": "pay_1", "amount": 1000, "currency": "USD"}
    refund = {"kind": "refund", "outcome": "succeeded", "parent": "pay_1", "amount": 600, "currency": "USD"}
    result = _client_view(pay, refund, dict(refund))
    assert result["scope"] == "client view" and result["counts"]["over_refunded"] == 1
    assert "servers" in result["not_checked"]


def test_one_id_for_race_payments_with_different_keys_is_a_duplicate_id():
    a = {"kind": "payment", "outcome": "succeeded", "id": "pay_7", "amount": 5, "currency": "USD", "race": "refund"}
    replay = {**a, "key": "k1"}
    assert _client_view({**a, "key": "k1"}, replay)["counts"]["duplicate_id"] == 0  # an idempotent replay
    assert _client_view({**a, "key": "k1"}, {**a, "key": "k2"})["counts"]["duplicate_id"] == 1
    assert _client_view(a, dict(a))["counts"]["duplicate_id"] == 1  # no keys at all


def test_unknown_outcomes_the_ledger_could_not_keep_make_it_incomplete():
    pay = {"kind": "payment", "outcome": "succeeded", "id": "pay_1", "amount": 10, "currency": "USD"}
    lost = {"kind": "payment", "outcome": "unknown", "amount": 10, "currency": "USD"}
    result = _client_view(pay, lost)
    assert result["status"] == "incomplete" and result["counts"]["unknown_not_kept"] == 1


def test_a_payment_the_server_has_as_declined_is_a_declined_mismatch():
    from money.reconcile import reconcile

    pay = {"kind": "payment", "outcome": "succeeded", "id": "pay_4", "amount": 100, "currency": "USD"}
    server = {"pay_4": {"id": "pay_4", "amount": 100, "currency": "USD", "status": "declined", "refunded_amount": 0}}
    result = reconcile(_records(pay), [], _FakeServers(server), None, [], CONTRACT)
    assert result["status"] == "mismatch" and result["counts"]["declined_mismatch"] == 1
