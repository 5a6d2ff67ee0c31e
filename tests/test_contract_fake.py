"""Quick direct HTTP checks of the independent contract fake (tests/fakes/contract_fake.py) against the page."""

from __future__ import annotations

import threading
import uuid

import pytest
import requests

from tests.fakes import ContractFake
from tests.helpers import AUTH, payment_body


@pytest.fixture(scope="module")
def fake():
    box = ContractFake().start()
    yield box
    assert box.stop() == 0, box.output()
    assert box.output().count("listening") == 2


@pytest.fixture
def http():
    with requests.Session() as s:
        s.headers.update(AUTH)
        yield s


def merchant() -> str:
    return f"mer_{uuid.uuid4().hex[:12]}"


def test_health_needs_no_token_and_everything_else_does(fake):
    r = requests.get(fake.payment_url + "/health", timeout=5)
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "bank": "ok"}}
    assert requests.get(fake.bank_url + "/health", timeout=5).json() == {"status": "ok"}
    for url in (fake.payment_url + "/payments/pay_x", fake.bank_url + "/v1/transactions/auth_x"):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = requests.get(url, headers=headers, timeout=5)
            assert r.status_code == 401
            assert set(r.json()["error"]) >= {"code", "message", "details"}


def test_payment_succeeds_and_reads_back_without_card_secrets(fake, http):
    body = payment_body(merchant=merchant(), number="378282246310005", cvc="1234")
    r = http.post(fake.payment_url + "/pay", json=body, timeout=5)
    assert r.status_code == 201, r.text
    pay = r.json()
    assert pay["id"].startswith("pay_") and pay["status"] == "succeeded"
    assert pay["card"] == {"brand": "amex", "last4": "0005"}
    assert "378282246310005" not in r.text and "1234" not in r.text
    got = http.get(f"{fake.payment_url}/payments/{pay['id']}", timeout=5)
    assert got.status_code == 200 and got.json()["refunded_amount"] == 0 and got.json()["refunds"] == []
    assert http.get(fake.payment_url + "/payments/pay_missing", timeout=5).status_code == 404


def test_decline_is_402_with_decline_code_and_listed_as_declined(fake, http):
    mer = merchant()
    ok = http.post(fake.payment_url + "/payments", json=payment_body(merchant=mer), timeout=5)
    assert ok.status_code == 201
    r = http.post(fake.payment_url + "/payments", json=payment_body(merchant=mer, number="4000000000000002"), timeout=5)
    assert r.status_code == 402
    err = r.json()["error"]
    assert err["code"] == "card_declined" and err["decline_code"] == "generic_decline"
    listing = http.get(f"{fake.payment_url}/merchants/{mer}/transactions?status=declined", timeout=5)
    assert listing.status_code == 200
    data = listing.json()["data"]
    assert [p["status"] for p in data] == ["declined"] and data[0]["decline_code"] == "generic_decline"
    refund = http.post(f"{fake.payment_url}/payments/{data[0]['id']}/refunds", json={}, timeout=5)
    assert refund.status_code == 409 and refund.json()["error"]["code"] == "payment_not_refundable"
    bank = http.post(fake.payment_url + "/payments", json=payment_body(merchant=mer, number="4000000000000119"))
    assert bank.status_code == 502 and bank.json()["error"]["code"] == "bank_error"
    assert http.get(f"{fake.payment_url}/merchants/mer_nobody_here/transactions", timeout=5).status_code == 404


def test_validation_422_names_each_field_by_dotted_path(fake, http):
    mer = merchant()
    body = payment_body(merchant=mer, number="4242424242424241", cvc="12", exp_year=2001)
    body["amount"] = 0
    r = http.post(fake.payment_url + "/payments", json=body, timeout=5)
    assert r.status_code == 422
    paths = {d["path"] for d in r.json()["error"]["details"]}
    assert paths == {"amount", "card.number", "card.cvc", "card.exp_year"}
    assert http.post(fake.payment_url + "/payments", data=b"{nope", timeout=5).status_code == 400
    assert http.post(fake.payment_url + "/payments", data=b" " * (64 * 1024 + 1), timeout=5).status_code == 413
    # none of it was stored
    assert http.get(f"{fake.payment_url}/merchants/{mer}/transactions", timeout=5).status_code == 404


def test_idempotency_replays_and_rejects_a_different_body(fake, http):
    mer = merchant()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = http.post(fake.payment_url + "/payments", json=payment_body(merchant=mer), headers=key, timeout=5)
    again = http.post(fake.payment_url + "/payments", json=payment_body(merchant=mer), headers=key, timeout=5)
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    other = http.post(fake.payment_url + "/payments", json=payment_body(merchant=mer, amount=5), headers=key, timeout=5)
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    # concurrent same-key requests still make one payment
    key2 = {**AUTH, "Idempotency-Key": uuid.uuid4().hex}
    ids: list[str] = []

    def post() -> None:
        r = requests.post(fake.payment_url + "/payments", json=payment_body(merchant=mer), headers=key2, timeout=10)
        ids.append(r.json().get("id"))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=15)
    assert len(ids) == 8 and len(set(ids)) == 1
    listing = http.get(f"{fake.payment_url}/merchants/{mer}/transactions?limit=100", timeout=5).json()
    assert len(listing["data"]) == 2
    # a refund replays too (same refund id, money moved once)
    rkey = {"Idempotency-Key": uuid.uuid4().hex}
    url = f"{fake.payment_url}/payments/{ids[0]}/refunds"
    r1 = http.post(url, json={"amount": 500}, headers=rkey, timeout=5)
    r2 = http.post(url, json={"amount": 500}, headers=rkey, timeout=5)
    assert r1.status_code == r2.status_code == 201 and r1.json()["id"] == r2.json()["id"]
    pay = http.get(f"{fake.payment_url}/payments/{ids[0]}", timeout=5).json()
    assert pay["refunded_amount"] == 500 and pay["status"] == "partially_refunded"


def race_refunds(fake: ContractFake, n: int = 20, amount: int = 1000) -> tuple[dict, list[int], int]:
    with requests.Session() as s:
        s.headers.update(AUTH)
        pay = s.post(fake.payment_url + "/payments", json=payment_body(merchant=merchant(), amount=amount)).json()
    barrier = threading.Barrier(n, timeout=10)
    codes: list[int] = []
    moved: list[int] = []

    def refund(i: int) -> None:
        body = {"amount": 300} if i % 2 else {}
        barrier.wait()
        r = requests.post(f"{fake.payment_url}/payments/{pay['id']}/refunds", json=body, headers=AUTH, timeout=10)
        codes.append(r.status_code)
        if r.status_code == 201:
            moved.append(r.json()["amount"])

    threads = [threading.Thread(target=refund, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    final = requests.get(f"{fake.payment_url}/payments/{pay['id']}", headers=AUTH, timeout=5).json()
    return final, codes, sum(moved)


def test_racing_refunds_never_exceed_captured(fake):
    final, codes, moved = race_refunds(fake)
    assert len(codes) == 20 and set(codes) <= {201, 409}
    assert moved <= 1000 and final["refunded_amount"] == moved
    assert sum(r["amount"] for r in final["refunds"]) == moved


def test_planted_refund_overdraw_bug_is_visible():
    with ContractFake(bug="refund_overdraw") as buggy:
        final, codes, moved = race_refunds(buggy)
    assert moved > 1000 and final["refunded_amount"] > final["amount"]


def test_bank_authorize_capture_refund_and_transactions(fake, http):
    mer = merchant()
    auth_body = {
        "amount": 5000,
        "currency": "JPY",
        "merchant_id": mer,
        "reference": "order-1",
        "card": {"number": "5555555555554444", "exp_month": 1, "exp_year": 2031, "cvc": "999"},
    }
    a = http.post(fake.bank_url + "/v1/authorizations", json=auth_body, timeout=5)
    assert a.status_code == 201 and a.json()["status"] == "approved" and a.json()["expires_at"]
    auth_id = a.json()["id"]
    over = http.post(f"{fake.bank_url}/v1/authorizations/{auth_id}/capture", json={"amount": 5001}, timeout=5)
    assert over.status_code == 409 and over.json()["error"]["code"] == "amount_exceeds_authorized"
    cap = http.post(f"{fake.bank_url}/v1/authorizations/{auth_id}/capture", json={"amount": 4000}, timeout=5)
    assert cap.status_code == 201 and cap.json()["status"] == "captured" and cap.json()["authorization_id"] == auth_id
    twice = http.post(f"{fake.bank_url}/v1/authorizations/{auth_id}/capture", json={}, timeout=5)
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_captured"
    cap_id = cap.json()["id"]
    ref = http.post(fake.bank_url + "/v1/refunds", json={"capture_id": cap_id, "amount": 1500}, timeout=5)
    assert ref.status_code == 201 and ref.json()["id"].startswith("bre_") and ref.json()["status"] == "refunded"
    too_much = http.post(fake.bank_url + "/v1/refunds", json={"capture_id": cap_id, "amount": 2501}, timeout=5)
    assert too_much.status_code == 409 and too_much.json()["error"]["code"] == "refund_exceeds_captured"
    for tid in (auth_id, cap_id, ref.json()["id"]):
        t = http.get(f"{fake.bank_url}/v1/transactions/{tid}", timeout=5)
        assert t.status_code == 200 and set(t.json()) >= {"id", "type", "status", "amount", "currency", "created_at"}
    day = cap.json()["created_at"][:10]
    s = http.get(f"{fake.bank_url}/v1/settlements", params={"date": day, "merchant_id": mer}, timeout=5).json()
    assert (s["captured"], s["refunded"], s["net"]) == (4000, 1500, 2500)
    assert http.get(f"{fake.bank_url}/v1/settlements?date=23-11-2026", timeout=5).status_code == 422
    batch = http.post(
        fake.bank_url + "/v1/batches",
        json={"operations": [{"type": "authorize", **auth_body}, {"type": "refund", "capture_id": "cap_nope"}]},
        timeout=5,
    )
    assert batch.status_code == 200 and [x["status_code"] for x in batch.json()["results"]] == [201, 404]
    assert http.post(fake.bank_url + "/v1/batches", json={"operations": []}, timeout=5).status_code == 422
