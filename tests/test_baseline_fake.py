"""Quick direct HTTP checks of the baseline fake (tests/fakes/baseline_fake.py) against its page,
/work/shared/apis/baseline.md."""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import datetime

import pytest
import requests

from tests.fakes.baseline import BaselineFake

REQUIRED = {
    "amount": "Amount",
    "currency": "Currency",
    "card_number": "CardNumber",
    "card_holder": "CardHolder",
    "expiry_date": "ExpiryDate",
    "cvv": "CVV",
    "merchant_id": "MerchantID",
}
PAY_KEYS = {"transaction_id", "status", "amount", "currency", "merchant_id", "message", "fraud_score", "processed_at"}
REPORT_KEYS = {
    "report_id",
    "status",
    "report_type",
    "start_date",
    "end_date",
    "generated_at",
    "download_url",
    "record_count",
    "total_amount",
}

# Every test takes its cards' last four from one shuffled pool, so the shared fraud window never sees a reuse.
_LAST_FOURS = iter(random.sample(range(10_000), 10_000))


def new_card() -> str:
    return f"400000000000{next(_LAST_FOURS):04d}"


def pay_body(amount=19.99, card: str | None = None, **extra) -> dict:
    return {
        "amount": amount,
        "currency": "USD",
        "card_number": card or new_card(),
        "card_holder": "Ada Lovelace",
        "expiry_date": "12/30",
        "cvv": "123",
        "merchant_id": f"mer_{uuid.uuid4().hex[:10]}",
        **extra,
    }


def report_body(**extra) -> dict:
    return {"report_type": "daily_summary", "start_date": "2026-01-01", "end_date": "2026-01-31", **extra}


@pytest.fixture(scope="module")
def fake():
    box = BaselineFake().start()
    yield box
    assert box.stop() == 0, box.output()
    assert box.output().count("listening") == 1


@pytest.fixture(scope="module")
def http():
    with requests.Session() as s:
        yield s


def test_health_and_single_port(fake, http):
    assert fake.bank_url == fake.payment_url
    r = http.get(fake.payment_url + "/health", timeout=5)
    assert r.status_code == 200
    assert r.json() == {"status": "healthy", "service": "payment-service", "fraud_db": "healthy"}


def test_unknown_paths_and_methods_are_gin_404s(fake, http):
    for method, path in (("GET", "/payments/x"), ("GET", "/pay"), ("POST", "/health"), ("POST", "/refund")):
        r = http.request(method, fake.payment_url + path, timeout=5)
        assert (r.status_code, r.text) == (404, "404 page not found"), (method, path)


def test_approval_echoes_what_was_sent_with_a_generated_uuid(fake, http):
    body = pay_body(amount=19.99)
    r = http.post(fake.payment_url + "/pay", json=body, timeout=5)
    assert r.status_code == 200, r.text
    got = r.json()
    assert set(got) == PAY_KEYS
    assert got["status"] == "approved"
    assert got["amount"] == 19.99 and isinstance(got["amount"], float)
    assert (got["currency"], got["merchant_id"]) == ("USD", body["merchant_id"])
    assert uuid.UUID(got["transaction_id"]).version == 4
    assert got["fraud_score"] == 0
    datetime.fromisoformat(got["processed_at"])
    assert r.elapsed.total_seconds() >= 0.01
    # integral amounts stay JSON numbers in major units
    assert http.post(fake.payment_url + "/pay", json=pay_body(amount=20), timeout=5).json()["amount"] == 20


def test_approval_keeps_the_sent_transaction_id(fake, http):
    tx = f"tx_{uuid.uuid4().hex}"
    r = http.post(fake.payment_url + "/pay", json=pay_body(transaction_id=tx, customer_id="c1"), timeout=5)
    assert r.status_code == 200, r.text
    assert r.json()["transaction_id"] == tx


@pytest.mark.parametrize("field", REQUIRED)
def test_each_required_field_missing_is_a_validation_error(fake, http, field):
    body = pay_body()
    del body[field]
    r = http.post(fake.payment_url + "/pay", json=body, timeout=5)
    assert r.status_code == 400
    got = r.json()
    assert got["error"] == "validation_error"
    go = REQUIRED[field]
    assert (
        got["message"] == f"Key: 'PaymentRequest.{go}' Error:Field validation for '{go}' failed on the 'required' tag"
    )


@pytest.mark.parametrize("amount", [0, -1, -0.01])
def test_amount_not_positive_is_a_validation_error(fake, http, amount):
    r = http.post(fake.payment_url + "/pay", json=pay_body(amount=amount), timeout=5)
    assert r.status_code == 400
    assert r.json()["error"] == "validation_error"
    assert "'Amount'" in r.json()["message"]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "EOF"),
        (b"{not json", "invalid character 'n' looking for beginning of object key string"),
        (b'{"amount": ', "unexpected EOF"),
        (b"[]", "json: cannot unmarshal array into Go value of type main.PaymentRequest"),
        (
            b'{"amount": "19.99"}',
            "json: cannot unmarshal string into Go struct field PaymentRequest.amount of type float64",
        ),
    ],
)
def test_undecodable_bodies_are_validation_errors(fake, http, data, message):
    r = http.post(fake.payment_url + "/pay", data=data, headers={"Content-Type": "application/json"}, timeout=5)
    assert r.status_code == 400
    assert r.json() == {"error": "validation_error", "message": message}


def test_fraud_velocity_rejects_the_21st_payment_with_the_same_last_four(fake, http):
    card = new_card()
    scores = []
    for i in range(20):
        # other card numbers with the same last four count too
        number = card if i % 2 else "5555" + card[4:]
        r = http.post(fake.payment_url + "/pay", json=pay_body(card=number), timeout=5)
        assert r.status_code == 200, (i, r.text)
        scores.append(r.json()["fraud_score"])
    assert scores[:10] == [0] * 10
    assert scores[10] > 0 and scores[19] > scores[10]
    body = pay_body(card=card, transaction_id="tx_21st")
    r = http.post(fake.payment_url + "/pay", json=body, timeout=5)
    assert r.status_code == 402, r.text
    got = r.json()
    assert set(got) == PAY_KEYS
    assert got["status"] == "rejected"
    assert got["message"].startswith("Transaction declined: ")
    assert (got["transaction_id"], got["amount"], got["merchant_id"]) == ("tx_21st", 19.99, body["merchant_id"])
    # still declined within the window
    assert http.post(fake.payment_url + "/pay", json=pay_body(card=card), timeout=5).status_code == 402


def test_twenty_distinct_last_fours_are_fine(fake, http):
    for _ in range(20):
        r = http.post(fake.payment_url + "/pay", json=pay_body(), timeout=5)
        assert r.status_code == 200, r.text
        assert r.json()["fraud_score"] == 0


def test_large_amounts_add_to_the_score_and_tip_it_over(fake, http):
    r = http.post(fake.payment_url + "/pay", json=pay_body(amount=10_000.01), timeout=5)
    assert r.status_code == 200, r.text
    assert 0 < r.json()["fraud_score"] <= 0.8
    assert http.post(fake.payment_url + "/pay", json=pay_body(amount=10_000), timeout=5).json()["fraud_score"] == 0
    card = new_card()
    statuses = [
        http.post(fake.payment_url + "/pay", json=pay_body(amount=50, card=card), timeout=5).status_code
        for _ in range(16)
    ]
    assert statuses == [200] * 16
    r = http.post(fake.payment_url + "/pay", json=pay_body(amount=20_000, card=card), timeout=5)
    assert r.status_code == 402 and r.json()["fraud_score"] > 0.8, r.text


def test_generate_report(fake, http):
    r = http.post(fake.payment_url + "/internal/generate-report", json=report_body(format="csv"), timeout=5)
    assert r.status_code == 200, r.text
    got = r.json()
    assert set(got) == REPORT_KEYS
    assert got["status"] == "completed"
    assert (got["report_type"], got["start_date"], got["end_date"]) == ("daily_summary", "2026-01-01", "2026-01-31")
    assert r.elapsed.total_seconds() >= 0.1
    for field in ("report_type", "start_date", "end_date"):
        body = report_body()
        del body[field]
        r = http.post(fake.payment_url + "/internal/generate-report", json=body, timeout=5)
        assert r.status_code == 400
        assert r.json()["error"] == "validation_error" and "ReportRequest." in r.json()["message"]


def test_chaos_rate_one_answers_internal_errors():
    with BaselineFake(chaos_rate=1.0) as box, requests.Session() as http:
        assert http.get(box.payment_url + "/health", timeout=5).status_code == 200
        for path, body in (("/pay", pay_body()), ("/internal/generate-report", report_body())):
            r = http.post(box.payment_url + path, json=body, timeout=5)
            assert r.status_code == 500
            got = r.json()
            assert got["error"] == "internal_error" and isinstance(got["message"], str)


def test_planted_bug_echoes_another_amount():
    with BaselineFake(bug="echo_other_amount") as box, requests.Session() as http:
        echoed = []
        for i in itertools.count():
            body = pay_body(amount=12.34)
            r = http.post(box.payment_url + "/pay", json=body, timeout=5)
            assert r.status_code == 200 and r.json()["status"] == "approved", r.text
            echoed.append(r.json()["amount"])
            if i >= 13:
                break
        wrong = [a for a in echoed if a != 12.34]
        assert len(wrong) == 2 and all(a > 12.34 for a in wrong)
