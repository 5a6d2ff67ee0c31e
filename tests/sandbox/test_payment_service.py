"""PaymentService contract rows, over real HTTP against ``python -m sandbox``."""

from __future__ import annotations

import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers import AUTH, card, payment_body


def merchant() -> str:
    return f"mer_{uuid.uuid4().hex[:12]}"


def pay(http, sandbox, body=None, key=None, path="/payments"):
    headers = {"Idempotency-Key": key} if key else {}
    return http.post(sandbox.payment_url + path, json=body or payment_body(merchant=merchant()), headers=headers)


def test_health_reports_database_and_bank(sandbox):
    r = requests.get(sandbox.payment_url + "/health", timeout=5)
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "bank": "ok"}}


@pytest.mark.parametrize(
    "number,cvc,brand",
    [
        ("4242424242424242", "123", "visa"),
        ("5555555555554444", "123", "mastercard"),
        ("378282246310005", "1234", "amex"),
        ("6011111111111117", "123", "discover"),
        ("4111111111111111", "123", "visa"),
    ],
)
def test_approved_cards_charge_and_hide_the_number(http, sandbox, number, cvc, brand):
    r = pay(http, sandbox, payment_body(merchant=merchant(), number=number, cvc=cvc))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"].startswith("pay_") and body["status"] == "succeeded"
    assert body["card"] == {"brand": brand, "last4": number[-4:]}
    assert body["refunded_amount"] == 0 and body["refunds"] == []
    assert number not in r.text and "cvc" not in r.text


@pytest.mark.parametrize(
    "number,code",
    [
        ("4000000000000002", "generic_decline"),
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000069", "expired_card"),
        ("4000000000000127", "incorrect_cvc"),
    ],
)
def test_decline_cards_are_402_with_decline_code_and_recorded(http, sandbox, number, code):
    r = pay(http, sandbox, payment_body(merchant=merchant(), number=number))
    assert r.status_code == 402
    err = r.json()["error"]
    assert err["code"] == "card_declined" and err["decline_code"] == code
    stored = http.get(f"{sandbox.payment_url}/payments/{err['payment_id']}").json()
    assert stored["status"] == "declined" and stored["decline_code"] == code
    refund = http.post(f"{sandbox.payment_url}/payments/{err['payment_id']}/refunds", json={})
    assert refund.status_code == 409 and refund.json()["error"]["code"] == "payment_not_refundable"


def test_processing_error_card_is_502_bank_error(http, sandbox):
    r = pay(http, sandbox, payment_body(merchant=merchant(), number="4000000000000119"))
    assert r.status_code == 502 and r.json()["error"]["code"] == "bank_error"


def test_pay_alias_charges_like_payments(http, sandbox):
    r = pay(http, sandbox, path="/pay")
    assert r.status_code == 201 and r.json()["status"] == "succeeded"


@pytest.mark.parametrize(
    "mutate,field",
    [
        (lambda b: b.update(amount=0), "amount"),
        (lambda b: b.update(amount=100_000_000), "amount"),
        (lambda b: b.update(amount="19.99"), "amount"),
        (lambda b: b.update(amount=19.99), "amount"),
        (lambda b: b.update(currency="XYZ"), "currency"),
        (lambda b: b.pop("currency"), "currency"),
        (lambda b: b.update(merchant_id="not a merchant"), "merchant_id"),
        (lambda b: b["card"].update(number="4242424242424241"), "card.number"),
        (lambda b: b["card"].update(number="4242-4242-4242-4242"), "card.number"),
        (lambda b: b["card"].update(number="42424242424"), "card.number"),
        (lambda b: b["card"].update(exp_year=2020), "card"),
        (lambda b: b["card"].update(exp_month=13), "card.exp_month"),
        (lambda b: b["card"].update(cvc="12"), "card"),
        (lambda b: b.update(card=card("378282246310005", cvc="123")), "card"),
        (lambda b: b.pop("card"), "card"),
    ],
)
def test_bad_payment_input_is_422_naming_the_field_and_stores_nothing(http, sandbox, mutate, field):
    mid = merchant()
    body = payment_body(merchant=mid)
    mutate(body)
    r = pay(http, sandbox, body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    assert field in [d["field"] for d in err["details"]]
    if body.get("merchant_id") == mid:  # nothing stored: the merchant was never even created
        assert http.get(f"{sandbox.payment_url}/merchants/{mid}/transactions").status_code == 404


def test_malformed_json_is_400_and_oversize_is_413(http, sandbox):
    r = http.post(
        sandbox.payment_url + "/payments", data=b'{"amount": 12,', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    big = b'{"description": "' + b"x" * (70 * 1024) + b'"}'
    r = http.post(sandbox.payment_url + "/payments", data=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "test_token_123456789"}])
def test_missing_or_wrong_token_is_401_on_every_protected_endpoint(sandbox, headers):
    for method, path in [
        ("post", "/payments"),
        ("get", "/payments/pay_x"),
        ("post", "/payments/pay_x/refunds"),
        ("get", "/merchants/mer_x/transactions"),
        ("post", "/internal/generate-report"),
        ("post", "/pay"),
    ]:
        r = requests.request(method, sandbox.payment_url + path, json=payment_body(), headers=headers, timeout=5)
        assert r.status_code == 401, (method, path)
        assert r.json()["error"]["code"] == "unauthorized"


def test_unknown_ids_are_404(http, sandbox):
    assert http.get(sandbox.payment_url + "/payments/pay_nope").status_code == 404
    assert http.post(sandbox.payment_url + "/payments/pay_nope/refunds", json={}).status_code == 404
    assert http.get(sandbox.payment_url + "/merchants/mer_never_seen/transactions").status_code == 404


def test_full_and_partial_refunds_update_the_payment(http, sandbox):
    pid = pay(http, sandbox, payment_body(amount=1000, merchant=merchant())).json()["id"]
    r = http.post(f"{sandbox.payment_url}/payments/{pid}/refunds", json={"amount": 300, "reason": "damaged"})
    assert r.status_code == 201 and r.json()["amount"] == 300 and r.json()["id"].startswith("re_")
    p = http.get(f"{sandbox.payment_url}/payments/{pid}").json()
    assert p["status"] == "partially_refunded" and p["refunded_amount"] == 300 and len(p["refunds"]) == 1
    over = http.post(f"{sandbox.payment_url}/payments/{pid}/refunds", json={"amount": 701})
    assert over.status_code == 409 and over.json()["error"]["code"] == "refund_exceeds_captured"
    rest = http.post(f"{sandbox.payment_url}/payments/{pid}/refunds")  # no body: full refund of what is left
    assert rest.status_code == 201 and rest.json()["amount"] == 700
    p = http.get(f"{sandbox.payment_url}/payments/{pid}").json()
    assert p["status"] == "refunded" and p["refunded_amount"] == 1000
    assert http.post(f"{sandbox.payment_url}/payments/{pid}/refunds", json={}).status_code == 409
    assert http.post(f"{sandbox.payment_url}/payments/{pid}/refunds", json={"amount": 0}).status_code == 422
    # the bank agrees
    bank_cap = http.get(f"{sandbox.bank_url}/v1/transactions/{p['capture_id']}").json()
    assert bank_cap["refunded_amount"] == 1000


def test_idempotent_replay_returns_first_response_and_charges_once(http, sandbox):
    mid = merchant()
    body = payment_body(amount=4321, merchant=mid)
    first = pay(http, sandbox, body, key="order-" + mid)
    again = pay(http, sandbox, body, key="order-" + mid)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    listing = http.get(f"{sandbox.payment_url}/merchants/{mid}/transactions").json()["data"]
    assert len(listing) == 1
    day = first.json()["created_at"][:10]
    settled = http.get(f"{sandbox.bank_url}/v1/settlements", params={"date": day, "merchant_id": mid}).json()
    assert settled["captured"] == 4321 and settled["count"] == 1
    changed = pay(http, sandbox, {**body, "amount": 4322}, key="order-" + mid)
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "idempotency_key_reused"


def test_idempotent_replay_of_a_decline_keeps_status_code(http, sandbox):
    body = payment_body(merchant=merchant(), number="4000000000000002")
    a, b = (
        pay(http, sandbox, body, key="decl-" + body["merchant_id"]),
        pay(http, sandbox, body, key="decl-" + body["merchant_id"]),
    )
    assert a.status_code == b.status_code == 402
    assert a.json()["error"]["payment_id"] == b.json()["error"]["payment_id"]


def test_fifty_concurrent_partial_refunds_never_exceed_the_capture(http, sandbox):
    pid = pay(http, sandbox, payment_body(amount=1000, merchant=merchant())).json()["id"]

    def refund(_):
        return requests.post(
            f"{sandbox.payment_url}/payments/{pid}/refunds", json={"amount": 30}, headers=AUTH, timeout=30
        )

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(refund, range(50)))
    codes = [r.status_code for r in results]
    assert set(codes) <= {201, 409}
    assert codes.count(201) == 33  # 33 x 30 = 990 <= 1000 < 34 x 30
    assert all(r.json()["error"]["code"] == "refund_exceeds_captured" for r in results if r.status_code == 409)
    db = sqlite3.connect(sandbox.data_dir / "payment.db")
    refunded_sum = db.execute(
        "SELECT SUM(amount) FROM refunds WHERE payment_id=? AND status='succeeded'", (pid,)
    ).fetchone()[0]
    stored = db.execute("SELECT refunded_amount, pending_refund_amount FROM payments WHERE id=?", (pid,)).fetchone()
    assert refunded_sum == stored[0] == 990 and stored[1] == 0
    bank = sqlite3.connect(sandbox.data_dir / "bank.db")
    assert (
        bank.execute(
            "SELECT SUM(amount) FROM refunds WHERE capture_id=(SELECT c.id FROM captures c"
            " JOIN authorizations a ON a.id=c.authorization_id WHERE a.reference=?)",
            (pid,),
        ).fetchone()[0]
        == 990
    )


def test_merchant_transactions_paginate_newest_first_without_gaps(http, sandbox):
    mid = merchant()
    ids = [pay(http, sandbox, payment_body(amount=100 + i, merchant=mid)).json()["id"] for i in range(5)]
    pay(http, sandbox, payment_body(merchant=mid, number="4000000000000002"))
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, "status": "succeeded", **({"cursor": cursor} if cursor else {})}
        page = http.get(f"{sandbox.payment_url}/merchants/{mid}/transactions", params=params).json()
        seen += [p["id"] for p in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids[::-1] and pages == 3
    everything = http.get(f"{sandbox.payment_url}/merchants/{mid}/transactions").json()["data"]
    assert len(everything) == 6
    for params in ({"limit": 0}, {"limit": 101}, {"cursor": "garbage!"}, {"status": "lost"}):
        r = http.get(f"{sandbox.payment_url}/merchants/{mid}/transactions", params=params)
        assert r.status_code == 422, params


def test_report_totals_match_what_happened(http, sandbox):
    mid = merchant()
    a = pay(http, sandbox, payment_body(amount=1000, merchant=mid)).json()
    pay(http, sandbox, payment_body(amount=500, currency="EUR", merchant=mid))
    pay(http, sandbox, payment_body(amount=700, merchant=mid, number="4000000000000002"))
    http.post(f"{sandbox.payment_url}/payments/{a['id']}/refunds", json={"amount": 250})
    day = a["created_at"][:10]
    r = http.post(sandbox.payment_url + "/internal/generate-report", json={"merchant_id": mid, "from": day, "to": day})
    assert r.status_code == 200, r.text
    rep = r.json()
    assert (rep["count"], rep["gross"], rep["refunded"], rep["net"]) == (2, 1500, 250, 1250)
    assert rep["by_currency"]["USD"] == {"count": 1, "gross": 1000, "refunded": 250, "net": 750}
    assert rep["declined_count"] == 1
    bad = [
        {"merchant_id": mid, "from": "2026-02-01", "to": "2026-01-01"},
        {"merchant_id": mid, "from": "2024-01-01", "to": "2026-01-01"},
        {"merchant_id": mid, "from": "yesterday", "to": day},
    ]
    for body in bad:
        assert http.post(sandbox.payment_url + "/internal/generate-report", json=body).status_code == 422, body
    unknown = {"merchant_id": "mer_unknown_x", "from": day, "to": day}
    assert http.post(sandbox.payment_url + "/internal/generate-report", json=unknown).status_code == 404


def test_currencies_of_the_contract_are_accepted(http, sandbox):
    for cur in ("USD", "EUR", "GBP", "JPY", "INR", "CAD", "AUD"):
        r = pay(http, sandbox, payment_body(amount=1500, currency=cur, merchant=merchant()))
        assert r.status_code == 201 and r.json()["currency"] == cur
