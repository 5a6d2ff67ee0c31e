"""The ecosystem fake (tests/fakes/ecosystem_fake.py) follows /work/shared/apis/ecosystem.md."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.fakes.ecosystem import EcosystemFake

TOKEN = "test_token_123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROCESS = "/api/v1/payments/process"


def body(amount="19.99", card_number="4242424242424242", merchant="mer_eco_test", **over) -> dict:
    b = {
        "merchant_id": merchant,
        "amount": amount,
        "currency": "USD",
        "payment_method": "credit_card",
        "card_data": {
            "card_number": card_number,
            "expiry_month": 12,
            "expiry_year": 2030,
            "cvv": "123",
            "cardholder_name": "Ada Lovelace",
        },
        "description": "test order",
        "metadata": {"k": "v"},
    }
    b.update(over)
    return b


@pytest.fixture(scope="module")
def fake():
    f = EcosystemFake().start()
    yield f
    assert f.stop() == 0


@pytest.fixture(scope="module")
def buggy():
    f = EcosystemFake(bug="refund_beyond_captured").start()
    yield f
    assert f.stop() == 0


@pytest.fixture(scope="module")
def s():
    with requests.Session() as session:
        session.headers.update(AUTH)
        yield session


def pay(fake, s, **kw) -> dict:
    r = s.post(fake.payment_url + PROCESS, json=body(**kw), timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def refund(fake, s, tid, **kw) -> requests.Response:
    return s.post(f"{fake.payment_url}/api/v1/payments/{tid}/refund", json=kw, timeout=5)


def detail(r: requests.Response) -> list[dict]:
    assert r.status_code == 422, r.text
    d = r.json()["detail"]
    assert all({"type", "loc", "msg"} <= e.keys() for e in d)
    return d


def test_health_and_root_need_no_auth(fake):
    h = requests.get(fake.payment_url + "/health", timeout=5).json()
    assert h["status"] == "healthy" and {"timestamp", "version"} <= h.keys()
    assert h["services"] == {"database": True, "banking_service": True, "event_service": True}
    assert requests.get(fake.payment_url + "/", timeout=5).status_code == 200
    b = requests.get(fake.bank_url + "/health", timeout=5).json()
    assert b["status"] == "healthy" and b["service"] == "banking-api-mock" and "timestamp" in b


def test_auth_messages(fake):
    url = fake.payment_url + PROCESS
    r = requests.post(url, json=body(), timeout=5)
    assert r.status_code == 401
    assert r.json()["error"] == "HTTP_401" and r.json()["message"] == "Not authenticated" and r.json()["timestamp"]
    r = requests.post(url, json=body(), headers={"Authorization": "Bearer nope"}, timeout=5)
    assert (r.status_code, r.json()["message"]) == (401, "Invalid authentication token")
    r = requests.get(fake.payment_url + "/api/v1/payments/txn_x", headers={"Authorization": f"Basic {TOKEN}"})
    assert (r.status_code, r.json()["message"]) == (401, "Not authenticated")


def test_captured_payment_with_string_amounts(fake, s):
    p = pay(fake, s, currency="usd", card_number="4242 4242-4242 4242")
    assert p["transaction_id"].startswith("txn_") and p["status"] == "captured"
    assert p["amount"] == "19.99" and p["currency"] == "USD" and p["card_last_four"] == "4242"
    assert (p["authorization_id"], p["capture_id"]) == ("auth_123456789", "cap_123456789")
    assert p["metadata"] == {"k": "v"} and {"created_at", "updated_at", "expires_at", "description"} <= p.keys()
    assert not any("refund" in k for k in p)
    got = s.get(f"{fake.payment_url}/api/v1/payments/{p['transaction_id']}", timeout=5)
    assert got.status_code == 200 and got.json() == p
    assert pay(fake, s, amount=20)["amount"] == "20.00"  # numbers accepted as pydantic's Decimal does


def test_idempotency_key_is_ignored(fake, s):
    h = {"Idempotency-Key": "same-key"}
    ids = {s.post(fake.payment_url + PROCESS, json=body(), headers=h, timeout=5).json()["transaction_id"] for _ in "ab"}
    assert len(ids) == 2


def test_bank_decline_is_a_200_failed_payment(fake, s):
    p = pay(fake, s, card_number="4000000000000002")
    assert p["status"] == "failed" and p["capture_id"] is None and p["amount"] == "19.99"


@pytest.mark.parametrize(
    "over, loc, type_",
    [
        ({"amount": "0"}, ["body", "amount"], "greater_than"),
        ({"amount": -5}, ["body", "amount"], "greater_than"),
        ({"amount": "1.999"}, ["body", "amount"], "decimal_max_places"),
        ({"payment_method": None}, ["body", "payment_method"], "missing"),
        ({"payment_method": "cash"}, ["body", "payment_method"], "enum"),
        ({"currency": "US"}, ["body", "currency"], "string_too_short"),
        ({"card_data": {**body()["card_data"], "expiry_year": 2051}}, ["body", "card_data", "expiry_year"], None),
        ({"card_data": {**body()["card_data"], "expiry_month": 13}}, ["body", "card_data", "expiry_month"], None),
        (
            {"card_data": {**body()["card_data"], "card_number": "4242 4242 4242"}},
            ["body", "card_data", "card_number"],
            None,
        ),
        ({"card_data": {**body()["card_data"], "cvv": "12345"}}, ["body", "card_data", "cvv"], None),
    ],
)
def test_422_detail_names_the_field(fake, s, over, loc, type_):
    b = body()
    b.update(over)
    if over.get("payment_method", "x") is None:
        del b["payment_method"]
    d = detail(s.post(fake.payment_url + PROCESS, json=b, timeout=5))
    assert [e["loc"] for e in d] == [loc]
    if type_:
        assert d[0]["type"] == type_


def test_malformed_json_is_422_json_invalid(fake, s):
    for headers in (AUTH, {}):  # FastAPI parses the body before the auth dependency runs
        r = requests.post(
            fake.payment_url + PROCESS, data=b'{"amount": ', headers={**headers, "Content-Type": "application/json"}
        )
        d = detail(r)
        assert d[0]["type"] == "json_invalid" and d[0]["loc"][0] == "body"


def test_short_merchant_id_is_400(fake, s):
    r = s.post(fake.payment_url + PROCESS, json=body(merchant="ab"), timeout=5)
    assert r.status_code == 400
    assert r.json()["error"] == "HTTP_400" and r.json()["message"] == "Invalid merchant ID" and r.json()["timestamp"]


def test_unknown_payment_is_404(fake, s):
    r = s.get(fake.payment_url + "/api/v1/payments/txn_missing", timeout=5)
    assert r.status_code == 404
    assert r.json()["error"] == "HTTP_404" and r.json()["message"] == "Payment txn_missing not found"


def test_full_refund_then_nothing_more(fake, s):
    p = pay(fake, s)
    r = refund(fake, s, p["transaction_id"], reason="customer asked")
    assert r.status_code == 200, r.text
    f = r.json()
    assert f["refund_id"].startswith("ref_") and f["status"] == "completed" and f["amount"] == "19.99"
    assert f["transaction_id"] == p["transaction_id"] and f["currency"] == "USD" and f["reason"] == "customer asked"
    assert f["external_refund_id"] == "ref_123456789" and f["processed_at"]
    r = refund(fake, s, p["transaction_id"], amount="0.01")
    assert (r.status_code, r.json()["message"]) == (400, "Refund amount cannot exceed original transaction amount")
    after = s.get(f"{fake.payment_url}/api/v1/payments/{p['transaction_id']}", timeout=5).json()
    assert after["status"] == "captured" and after["amount"] == "19.99"


def test_partial_refunds_are_cumulative(fake, s):
    tid = pay(fake, s)["transaction_id"]
    assert refund(fake, s, tid, amount="10.00").json()["amount"] == "10.00"
    assert refund(fake, s, tid, amount=9.99).status_code == 200
    r = refund(fake, s, tid, amount="0.01")
    assert (r.status_code, r.json()["message"]) == (400, "Refund amount cannot exceed original transaction amount")


def test_concurrent_refunds_cannot_overdraw(fake, s):
    tid = pay(fake, s, amount="10.00")["transaction_id"]
    with ThreadPoolExecutor(8) as ex:
        codes = list(ex.map(lambda _: refund(fake, s, tid, amount="3.00").status_code, range(8)))
    assert sorted(codes) == [200] * 3 + [400] * 5


def test_refund_rules(fake, s):
    failed = pay(fake, s, card_number="4000000000000002")["transaction_id"]
    r = refund(fake, s, failed)
    assert (r.status_code, r.json()["message"]) == (400, "Can only refund captured transactions")
    r = refund(fake, s, "txn_nope", amount="1.00")
    assert (r.status_code, r.json()["error"], r.json()["message"]) == (
        400,
        "HTTP_400",
        "Transaction txn_nope not found",
    )
    tid = pay(fake, s)["transaction_id"]
    assert [e["loc"] for e in detail(refund(fake, s, tid, reason="x" * 101))] == [["body", "reason"]]
    assert [e["loc"] for e in detail(refund(fake, s, tid, amount="0"))] == [["body", "amount"]]


def test_planted_bug_accepts_cumulative_over_refund(buggy, s):
    tid = pay(buggy, s)["transaction_id"]
    assert refund(buggy, s, tid, amount="15.00").status_code == 200
    assert refund(buggy, s, tid, amount="15.00").status_code == 200
    r = refund(buggy, s, tid, amount="20.00")  # a single refund is still checked against the original amount
    assert r.status_code == 400


def test_bank_stubs_are_canned(fake):
    b = fake.bank_url + "/api/v1"
    a = requests.post(b + "/authorize", json={"card_number": "4111111111111111", "amount": 5}, timeout=5)
    assert a.status_code == 200
    assert a.json()["authorization_id"] == "auth_123456789" and a.json()["status"] == "approved"
    assert a.json()["amount"] == 1000 and a.json()["currency"] == "USD"
    d = requests.post(b + "/authorize", json={"card_number": "4000000000000002"}, timeout=5)
    assert d.status_code == 402
    assert d.json()["error"] == "card_declined" and d.json()["decline_code"] == "generic_decline"
    c = requests.post(b + "/capture", json={"authorization_id": "x", "amount": 7}, timeout=5).json()
    assert (c["capture_id"], c["status"], c["amount"]) == ("cap_123456789", "captured", 1000)
    f = requests.post(b + "/refund", json={"capture_id": "x", "amount": 7}, timeout=5).json()
    assert (f["refund_id"], f["status"], f["amount"]) == ("ref_123456789", "refunded", 1000)
    t = requests.get(b + "/transactions/abc", timeout=5).json()
    assert (t["transaction_id"], t["status"], t["amount"]) == ("abc", "completed", 1000)
    st = requests.get(b + "/settlements", timeout=5).json()
    assert st == {"settlements": [], "total_count": 0, "page": 1, "per_page": 50}
    bt = requests.post(b + "/batch/authorize", json={"transactions": []}, timeout=5).json()
    assert (bt["batch_id"], bt["status"], bt["total_transactions"]) == ("batch_123456789", "processing", 1)
