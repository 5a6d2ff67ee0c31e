"""BankingAPI contract rows, over real HTTP."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers import AUTH, Sandbox, card


def auth_body(amount=5000, number="4242424242424242", merchant=None, cvc="123"):
    return {
        "amount": amount,
        "currency": "EUR",
        "card": card(number, cvc=cvc),
        "merchant_id": merchant or f"mer_{uuid.uuid4().hex[:10]}",
        "reference": "order-1",
    }


def authorize(http, sandbox, **kw):
    r = http.post(sandbox.bank_url + "/v1/authorizations", json=auth_body(**kw))
    assert r.status_code == 201, r.text
    return r.json()


def test_authorize_capture_refund_and_lookups(http, sandbox):
    auth = authorize(http, sandbox, amount=5000)
    assert auth["id"].startswith("auth_") and auth["status"] == "approved" and auth["expires_at"]
    cap = http.post(f"{sandbox.bank_url}/v1/authorizations/{auth['id']}/capture", json={"amount": 4000})
    assert cap.status_code == 201 and cap.json()["amount"] == 4000 and cap.json()["status"] == "captured"
    cap_id = cap.json()["id"]
    ref = http.post(sandbox.bank_url + "/v1/refunds", json={"capture_id": cap_id, "amount": 1500})
    assert ref.status_code == 201 and ref.json()["id"].startswith("bre_") and ref.json()["status"] == "refunded"
    over = http.post(sandbox.bank_url + "/v1/refunds", json={"capture_id": cap_id, "amount": 2501})
    assert over.status_code == 409 and over.json()["error"]["code"] == "refund_exceeds_captured"
    for txn_id, kind, status, amount in [
        (auth["id"], "authorization", "captured", 5000),
        (cap_id, "capture", "captured", 4000),
        (ref.json()["id"], "refund", "refunded", 1500),
    ]:
        t = http.get(f"{sandbox.bank_url}/v1/transactions/{txn_id}").json()
        assert (t["type"], t["status"], t["amount"], t["currency"]) == (kind, status, amount, "EUR")
    assert http.get(sandbox.bank_url + "/v1/transactions/auth_missing").status_code == 404
    assert http.get(sandbox.bank_url + "/v1/transactions/zzz").status_code == 404


def test_capture_errors(http, sandbox):
    auth = authorize(http, sandbox, amount=100)
    too_much = http.post(f"{sandbox.bank_url}/v1/authorizations/{auth['id']}/capture", json={"amount": 101})
    assert too_much.status_code == 409 and too_much.json()["error"]["code"] == "amount_exceeds_authorized"
    assert http.post(f"{sandbox.bank_url}/v1/authorizations/{auth['id']}/capture").status_code == 201
    again = http.post(f"{sandbox.bank_url}/v1/authorizations/{auth['id']}/capture", json={})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_captured"
    assert http.post(f"{sandbox.bank_url}/v1/authorizations/auth_nope/capture", json={}).status_code == 404
    assert http.post(sandbox.bank_url + "/v1/refunds", json={"capture_id": "cap_nope", "amount": 1}).status_code == 404


@pytest.mark.parametrize(
    "number,code",
    [
        ("4000000000000002", "generic_decline"),
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000069", "expired_card"),
        ("4000000000000127", "incorrect_cvc"),
    ],
)
def test_bank_declines(http, sandbox, number, code):
    r = http.post(sandbox.bank_url + "/v1/authorizations", json=auth_body(number=number))
    assert r.status_code == 402 and r.json()["error"]["decline_code"] == code


def test_bank_processing_error_card_is_500(http, sandbox):
    r = http.post(sandbox.bank_url + "/v1/authorizations", json=auth_body(number="4000000000000119"))
    assert r.status_code == 500 and r.json()["error"]["code"] == "processing_error"


def test_bank_validation_and_auth(http, sandbox):
    r = http.post(sandbox.bank_url + "/v1/authorizations", json={**auth_body(), "amount": -5})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "amount"
    assert requests.post(sandbox.bank_url + "/v1/authorizations", json=auth_body(), timeout=5).status_code == 401
    assert requests.get(sandbox.bank_url + "/health", timeout=5).json() == {"status": "ok"}


def test_twenty_concurrent_captures_exactly_one_wins(sandbox, http):
    auth = authorize(http, sandbox, amount=2500)

    def capture(_):
        return requests.post(
            f"{sandbox.bank_url}/v1/authorizations/{auth['id']}/capture",
            json={"amount": 2500},
            headers=AUTH,
            timeout=30,
        )

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(capture, range(20)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 1 and codes.count(409) == 19
    assert {r.json()["error"]["code"] for r in results if r.status_code == 409} == {"already_captured"}


def test_concurrent_bank_refunds_never_exceed_capture(sandbox, http):
    auth = authorize(http, sandbox, amount=1000)
    cap_id = http.post(f"{sandbox.bank_url}/v1/authorizations/{auth['id']}/capture", json={}).json()["id"]

    def refund(_):
        return requests.post(
            sandbox.bank_url + "/v1/refunds", json={"capture_id": cap_id, "amount": 70}, headers=AUTH, timeout=30
        )

    with ThreadPoolExecutor(30) as pool:
        codes = [r.status_code for r in pool.map(refund, range(30))]
    assert codes.count(201) == 14 and codes.count(409) == 16  # 14 x 70 = 980
    assert http.get(f"{sandbox.bank_url}/v1/transactions/{cap_id}").json()["refunded_amount"] == 980


def test_bank_idempotency(http, sandbox):
    body, key = auth_body(), {"Idempotency-Key": uuid.uuid4().hex}
    a = http.post(sandbox.bank_url + "/v1/authorizations", json=body, headers=key)
    b = http.post(sandbox.bank_url + "/v1/authorizations", json=body, headers=key)
    assert a.status_code == b.status_code == 201 and a.json()["id"] == b.json()["id"]
    c = http.post(sandbox.bank_url + "/v1/authorizations", json={**body, "amount": 1}, headers=key)
    assert c.status_code == 409 and c.json()["error"]["code"] == "idempotency_key_reused"


def test_settlement_report_for_a_day(http, sandbox):
    mid = f"mer_{uuid.uuid4().hex[:10]}"
    for amount in (1000, 2000):
        auth = authorize(http, sandbox, amount=amount, merchant=mid)
        cap = http.post(f"{sandbox.bank_url}/v1/authorizations/{auth['id']}/capture", json={}).json()
    http.post(sandbox.bank_url + "/v1/refunds", json={"capture_id": cap["id"], "amount": 500})
    day = time.strftime("%Y-%m-%d", time.gmtime())
    s = http.get(sandbox.bank_url + "/v1/settlements", params={"date": day, "merchant_id": mid}).json()
    assert (s["date"], s["merchant_id"], s["captured"], s["refunded"], s["net"], s["count"]) == (
        day,
        mid,
        3000,
        500,
        2500,
        3,
    )
    for bad in ("2026-13-01", "yesterday", "2026-1-1"):
        assert http.get(sandbox.bank_url + "/v1/settlements", params={"date": bad}).status_code == 422
    assert http.get(sandbox.bank_url + "/v1/settlements").status_code == 422


def test_batches_allow_partial_failure_and_bound_their_size(http, sandbox):
    auth = authorize(http, sandbox, amount=900)
    ops = [
        {"type": "authorize", **auth_body(amount=100)},
        {"type": "capture", "authorization_id": auth["id"], "amount": 900},
        {"type": "capture", "authorization_id": "auth_missing"},
        {"type": "authorize", **auth_body(number="4000000000000002")},
        {"type": "refund", "capture_id": "cap_missing", "amount": 5},
        {"type": "teleport"},
    ]
    r = http.post(sandbox.bank_url + "/v1/batches", json={"operations": ops})
    assert r.status_code == 200 and r.json()["id"].startswith("batch_")
    results = r.json()["results"]
    assert [x["index"] for x in results] == list(range(6))
    assert [x["status_code"] for x in results] == [201, 201, 404, 402, 404, 422]
    assert http.post(sandbox.bank_url + "/v1/batches", json={"operations": []}).status_code == 422
    too_many = [{"type": "capture", "authorization_id": "auth_x"}] * 101
    assert http.post(sandbox.bank_url + "/v1/batches", json={"operations": too_many}).status_code == 422


def test_expired_authorization_is_410(tmp_path):
    box = Sandbox(tmp_path / "d", env={"SANDBOX_AUTH_TTL_S": "0.5"}).start()
    try:
        with requests.Session() as http:
            http.headers.update(AUTH)
            auth = authorize(http, box)
            time.sleep(0.7)
            assert http.get(f"{box.bank_url}/v1/transactions/{auth['id']}").json()["status"] == "expired"
            r = http.post(f"{box.bank_url}/v1/authorizations/{auth['id']}/capture", json={})
            assert r.status_code == 410 and r.json()["error"]["code"] == "authorization_expired"
    finally:
        box.stop()
