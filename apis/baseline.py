"""Binding of the ``baseline`` dialect (``../shared/apis/baseline.md``): seed 001's Go
``payment-service-baseline``, ``POST /pay`` and ``POST /internal/generate-report``, no auth.

What differs, and how this binding meets it:

- amounts are JSON numbers in major units (``19.99``): sent as the currency's decimal text,
  read back to minor units with ``Decimal`` (never float arithmetic);
- there are no lookups, refunds, listings, idempotency keys or bank: money is checked from what
  the client saw (every approval has an id, no id twice, the echoed amount and currency equal
  what was sent);
- the fraud check refuses a card's 21st payment within an hour (counted by its last four
  digits) with ``402 "status": "rejected"``: payments draw from many cards
  (``DataPool.spread_card``), and a fraud rejection is its own category, not a card decline;
- validation errors are ``400 {"error": "validation_error"}``."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from apis.base import Binding, Client, Probe, body_rng, label, missing_fields, outcome_by_status
from apis.records import (
    Answer,
    Capability,
    KnownPayment,
    MoneyKind,
    MoneyOp,
    Outcome,
    amount_answer,
    exponent,
    to_major,
    to_minor,
)
from data_generators import RESERVED_LAST4

FRAUD = "[fraud rejected]"  # failure tag of a 402 rejection where an approval was wanted
VELOCITY_LIMIT = 20  # payments per card (last four digits) per hour before a 402
LARGE_AMOUNT = 10_000  # major units: above it the fraud score rises
FRAUD_PROBE_CARD = "4111111111110000"  # ends in RESERVED_LAST4: no payment of the run uses these digits
assert FRAUD_PROBE_CARD.endswith(RESERVED_LAST4)


def pay_body(c: Client, rng: Any, merchant: Any = None, customer: Any = None, card_number: str | None = None) -> dict:
    p = c.pool.payment(rng, merchant=merchant, customer=customer, card=c.pool.spread_card(rng))
    card = p["card"]
    # Amounts over 10,000 (major units) raise the fraud score: the run's payments stay at or under it.
    p["amount"] = min(p["amount"], LARGE_AMOUNT * 10 ** exponent(p["currency"]))
    return {
        # The JSON number with the currency's decimals: float() only for the encoder, the digits
        # are Decimal's (19.99 stays 19.99 on the wire).
        "amount": float(to_major(p["amount"], p["currency"])),
        "currency": p["currency"],
        "card_number": card_number or card["number"],
        "card_holder": card["holder_name"],
        "expiry_date": f"{card['exp_month']:02d}/{card['exp_year'] % 100:02d}",
        "cvv": card["cvc"],
        "merchant_id": p["merchant_id"],
        "customer_id": p["customer"]["id"],
        "description": p["description"],
    }


def read_pay(status: int, body: Any) -> Answer:
    """200 approved (its transaction id, the amount it confirms); 402 a fraud rejection; 400 a
    refusal; no answer or 500 unknown."""
    outcome = outcome_by_status(status, declined=None)
    if status == 402:
        return Answer(Outcome.REJECTED, body.get("transaction_id") if isinstance(body, dict) else None, error="fraud")
    if outcome is not Outcome.SUCCEEDED:
        error = body.get("error") if isinstance(body, dict) else None
        return Answer(outcome, error=error if isinstance(error, str) else None)
    if not isinstance(body, dict) or body.get("status") != "approved":
        return Answer(Outcome.UNKNOWN)
    currency = body.get("currency")
    amount, unreadable = amount_answer(body.get("amount"), currency)
    return Answer(
        Outcome.SUCCEEDED,
        body.get("transaction_id") or None,  # an approval without an id is a money finding
        amount,
        currency,
        unreadable_amount=unreadable,
    )


class BaselineBinding(Binding):
    name = "baseline"
    capabilities = frozenset({Capability.PAYMENTS, Capability.REPORT})
    health_paths = {"payments": "/health", "bank": None}
    auth = False
    card_velocity_limit = VELOCITY_LIMIT
    payment_names = ("POST /pay",)
    status_tags = {402: FRAUD}

    def healthy(self, service: str, body: Any) -> bool:
        return isinstance(body, dict) and body.get("status") in ("healthy", "degraded")

    def payment_request(self, c: Client, merchant: Any = None, rng_seed: int | None = None) -> tuple[str, dict]:
        return "/pay", pay_body(c, body_rng(c, rng_seed), merchant)

    def pay(
        self,
        c: Client,
        *,
        setup: bool = False,
        merchant: Any = None,
        customer: Any = None,
        decline: bool = False,
        race: str | None = None,
        key: str | None = None,
        contended: bool = False,
        mix: bool = False,
        rng_seed: int | None = None,
    ) -> KnownPayment | None:
        body = pay_body(c, body_rng(c, rng_seed), merchant, customer)
        minor = to_minor(body["amount"], body["currency"])

        def check(resp: Any) -> str | None:
            problem = missing_fields(resp, "transaction_id", "status", "amount", "currency")
            if problem:
                return problem
            if resp["status"] != "approved":
                return f"status {resp['status']!r}, expected 'approved'"
            if to_minor(resp["amount"], resp["currency"]) != minor or resp["currency"] != body["currency"]:
                return "amount/currency differ from the request"
            return None

        status, resp = c.call(
            "POST",
            "/pay",
            name=label("POST /pay", setup=setup, race=race),
            json=body,
            expect={200: None},
            check=check,
            money=MoneyOp(MoneyKind.PAYMENT, minor, body["currency"], body["merchant_id"], read_pay, race=race),
        )
        if status != 200 or not isinstance(resp, dict) or not resp.get("transaction_id"):
            return None
        return KnownPayment(
            resp["transaction_id"], minor, body["currency"], body["merchant_id"], body["card_number"][-4:]
        )

    def report(self, c: Client, merchant_id: str) -> None:
        today = date.today()
        body = {
            "report_type": "transactions",
            "start_date": (today - timedelta(days=30)).isoformat(),
            "end_date": today.isoformat(),
            "merchant_id": merchant_id,
        }
        c.call(
            "POST",
            "/internal/generate-report",
            name="POST /internal/generate-report",
            json=body,
            expect={200: None},
            check=lambda b: missing_fields(b, "report_id", "status"),
        )

    def health(self, c: Client) -> None:
        c.call(
            "GET",
            "/health",
            name="GET /health",
            expect={200: None},
            check=lambda b: None if self.healthy("payments", b) else "status is not healthy or degraded",
        )

    def read_payment(self, status: int, body: Any) -> Answer:
        return read_pay(status, body)

    # --- FailureSimulationUser ----------------------------------------------------------------

    def probes(self) -> list[Probe]:
        return [
            Probe("missing field", 3, self._missing_field),
            Probe("amount not above 0", 2, self._invalid_amount),
            Probe("malformed JSON", 2, self._malformed_json),
            Probe("report without dates", 1, self._bad_report),
            Probe("card over the fraud velocity limit", 1, self._fraud),
        ]

    def _validation(self, c: Client, scenario: str, path: str, body: Any = None, data: bytes | None = None) -> None:
        c.call(
            "POST",
            path,
            name=f"expect 400: {scenario}",
            json=body,
            data=data,
            expect={400: "validation_error"},
        )

    def _missing_field(self, c: Client) -> None:
        body = pay_body(c, c.rng)
        del body[
            c.rng.choice(["amount", "currency", "card_number", "card_holder", "expiry_date", "cvv", "merchant_id"])
        ]
        self._validation(c, "missing field", "/pay", body)

    def _invalid_amount(self, c: Client) -> None:
        self._validation(c, "amount not above 0", "/pay", {**pay_body(c, c.rng), "amount": c.rng.choice([0, -10.5])})

    def _malformed_json(self, c: Client) -> None:
        # The page names validation_error for missing fields and amounts; for a body that is not
        # JSON it names no code: the status is what is checked.
        c.call("POST", "/pay", name="expect 400: malformed JSON", data=b'{"amount": 19.99, "curr', expect={400: None})

    def _bad_report(self, c: Client) -> None:
        self._validation(c, "report without dates", "/internal/generate-report", {"report_type": "transactions"})

    def _fraud(self, c: Client) -> None:
        """One card (last four digits no other payment of the run uses) past the hourly limit:
        approved up to the limit (counted by the service across all clients), then refused with
        402 "rejected". Bounded: at most limit + 2 requests."""
        for _ in range(VELOCITY_LIMIT + 1):
            status = self._fraud_card_payment(c, "POST /pay (setup: fraud probe card)", {200: None, 402: None})
            if status != 200:
                break
        self._fraud_card_payment(c, "expect 402: card over the fraud velocity limit", {402: None})

    def _fraud_card_payment(self, c: Client, name: str, expect: dict[int, str | None]) -> int:
        body = pay_body(c, c.rng, card_number=FRAUD_PROBE_CARD)
        minor = to_minor(body["amount"], body["currency"])
        status, _ = c.call(
            "POST",
            "/pay",
            name=name,
            json=body,
            expect=expect,
            check=lambda b: None if b.get("status") in ("approved", "rejected") else "status not approved/rejected",
            money=MoneyOp(MoneyKind.PAYMENT, minor, body["currency"], body["merchant_id"], read_pay),
        )
        return status


BINDING = BaselineBinding()
