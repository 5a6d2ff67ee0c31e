"""Binding of the ``ecosystem`` dialect (``../shared/apis/ecosystem.md``): seed 000's FastAPI
PaymentService on PostgreSQL, with a BankingAPI answered by MockServer stubs.

What differs from the contract, and how this binding meets it:

- amounts are decimal strings in major units (``"19.99"``): sent with the currency's decimals,
  read back to minor units with ``Decimal``;
- a bank decline is a ``200`` payment with ``status: "failed"``, not an HTTP error; its id is
  in the answer, so the decline can be looked up later;
- validation is FastAPI's ``422 {"detail": [{"loc", "msg", "type"}]}``; business rules are
  ``400 {"error": "HTTP_400", "message"}``; an unknown refund target is a ``400``, not a ``404``;
- no idempotency keys, listings, reports or refunded total: unknown outcomes are resolved only
  by looking up ids the client received, and refunds are checked from what the client saw;
- the bank is canned stubs (the same ids and ``amount: 1000`` whatever was sent): only statuses
  and shapes are checked there, and nothing it says is money."""

from __future__ import annotations

from typing import Any

from apis.base import (
    Binding,
    Check,
    Client,
    Probe,
    auth_probes,
    body_rng,
    label,
    missing_fields,
    names_field,
    outcome_by_status,
    remember,
    unknown_id_probe,
)
from apis.records import (
    Answer,
    Capability,
    Held,
    KnownPayment,
    MoneyKind,
    MoneyOp,
    Outcome,
    ServerPayment,
    ServerState,
    amount_answer,
    major_text,
    to_minor,
)

PAY = "/api/v1/payments/process"
DECLINE_CARD = "4000000000000002"  # the bank stub's one declining card (generic_decline)
CARD_METHODS = {"visa": "credit_card", "mastercard": "credit_card", "amex": "credit_card"}
REFUND_STATES_MOVED = {"pending", "processing", "completed"}  # accepted: the money is on its way back
# What each bank stub answers in `status` (the page's table).
STUB_STATUS = {MoneyKind.AUTHORIZATION: "approved", MoneyKind.CAPTURE: "captured", MoneyKind.BANK_REFUND: "refunded"}
# The page's payment states, in neutral terms ("authorized" and "pending" are not final).
SERVER_STATES = {
    "captured": ServerState.SUCCEEDED,
    "failed": ServerState.DECLINED,
    "cancelled": ServerState.VOID,
    "expired": ServerState.VOID,
    "pending": ServerState.PENDING,
    "authorized": ServerState.PENDING,
}


def payment_body(c: Client, rng: Any, merchant: Any = None, customer: Any = None, card: Any = None) -> dict:
    """The dialect's payment request from the pool's draw (same customer, merchant, card, amount)."""
    p = c.pool.payment(rng, merchant=merchant, customer=customer, card=card)
    card = p["card"]
    return {
        "merchant_id": p["merchant_id"],
        "amount": major_text(p["amount"], p["currency"]),
        "currency": p["currency"],
        "payment_method": "debit_card" if rng.random() < 0.2 else "credit_card",
        "card_data": {
            "card_number": card["number"],
            "expiry_month": card["exp_month"],
            "expiry_year": card["exp_year"],
            "cvv": card["cvc"],
            "cardholder_name": card["holder_name"][:100] or "Card Holder",
        },
        "description": p["description"],
        "metadata": {"source": "payment-load-suite"},
    }


def minor_of(body: dict) -> int:
    return to_minor(body["amount"], body["currency"])


def read_payment(status: int, body: Any) -> Answer:
    """200 with ``captured``: approved; with ``failed``: the bank declined (its id kept); another
    state (``authorized``, ``pending``): not final, so unknown, resolvable by looking the id up."""
    outcome = outcome_by_status(status, declined=None)
    if outcome is not Outcome.SUCCEEDED:
        return Answer(outcome, error=_message(body))
    if not isinstance(body, dict) or not body.get("transaction_id"):
        return Answer(Outcome.UNKNOWN)
    pid, state, currency = body["transaction_id"], body.get("status"), body.get("currency")
    if state == "failed":
        return Answer(Outcome.DECLINED, pid)
    if state != "captured":
        return Answer(Outcome.UNKNOWN, pid)
    amount, unreadable = amount_answer(body.get("amount"), currency)
    return Answer(Outcome.SUCCEEDED, pid, amount, currency, unreadable_amount=unreadable)


def _message(body: Any) -> str | None:
    return body.get("message") if isinstance(body, dict) and isinstance(body.get("message"), str) else None


def refund_reader(currency: str):
    def read(status: int, body: Any) -> Answer:
        outcome = outcome_by_status(status, declined=None)
        if outcome is not Outcome.SUCCEEDED:
            return Answer(outcome, error=_message(body))
        if not isinstance(body, dict) or not body.get("refund_id"):
            return Answer(Outcome.UNKNOWN)
        if body.get("status") not in REFUND_STATES_MOVED:
            return Answer(Outcome.FAILED, body["refund_id"])
        amount, unreadable = amount_answer(body.get("amount"), currency)
        return Answer(Outcome.SUCCEEDED, body["refund_id"], amount, currency, unreadable_amount=unreadable)

    return read


def read_stub(status: int, body: Any) -> Answer:
    """A bank stub's answer: its status only (canned ids and amounts say nothing of the request)."""
    return Answer(outcome_by_status(status))


def detail_names(field: str, error_type: str | None = None) -> Check:
    """A FastAPI 422: some ``detail`` item's ``loc`` names the field (or a path under it)."""

    def check(body: Any) -> str | None:
        details = body.get("detail") if isinstance(body, dict) else None
        if not isinstance(details, list):
            return "no detail list"
        if error_type is not None:
            return (
                None
                if any(isinstance(d, dict) and d.get("type") == error_type for d in details)
                else (f"no detail of type {error_type!r}")
            )
        locs = [d.get("loc") for d in details if isinstance(d, dict)]
        return None if names_field(locs, field) else f"details do not name {field!r}"

    return check


class EcosystemBinding(Binding):
    name = "ecosystem"
    capabilities = frozenset(
        {
            Capability.PAYMENTS,
            Capability.DECLINE_CARDS,
            Capability.LOOKUP,
            Capability.REFUNDS,
            Capability.PARTIAL_REFUNDS,
            Capability.BANKING_API,
            Capability.BANK_AUTHORIZE,
            Capability.BANK_CAPTURE,
            Capability.BANK_REFUND,
            Capability.BANK_STATUS,
            Capability.BANK_SETTLEMENT,
            Capability.BANK_BATCH,
        }
    )
    payment_names = (f"POST {PAY}",)

    def healthy(self, service: str, body: Any) -> bool:
        return isinstance(body, dict) and body.get("status") == "healthy"

    # --- PaymentService -----------------------------------------------------------------------

    def payment_request(self, c: Client, merchant: Any = None, rng_seed: int | None = None) -> tuple[str, dict]:
        return PAY, payment_body(c, body_rng(c, rng_seed), merchant)

    def _payment_op(self, body: dict, race: str | None) -> MoneyOp:
        return MoneyOp(
            MoneyKind.PAYMENT, minor_of(body), body["currency"], body["merchant_id"], read_payment, race=race
        )

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
        rng = body_rng(c, rng_seed)
        body = payment_body(c, rng, merchant, customer)
        if decline:
            body["card_data"]["card_number"] = DECLINE_CARD
        number = body["card_data"]["card_number"]
        want = "failed" if decline else "captured"

        def check(resp: Any) -> str | None:
            problem = missing_fields(resp, "transaction_id", "status", "amount", "currency", "card_last_four")
            if problem:
                return problem
            if number in str(resp):
                return "response contains the full card number"
            if resp["status"] != want:
                return f"status {resp['status']!r}, expected {want!r}"
            if to_minor(resp["amount"], resp["currency"]) != minor_of(body) or resp["currency"] != body["currency"]:
                return "amount/currency differ from the request"
            return None if resp.get("card_last_four") == number[-4:] else "card_last_four does not match"

        status, resp = c.call(
            "POST",
            PAY,
            name=label(f"POST {PAY}", setup=setup, race=race, declined=decline),
            json=body,
            expect={200: None},
            check=check,
            money=self._payment_op(body, race),
        )
        if decline or status != 200 or not isinstance(resp, dict):
            return None
        return KnownPayment(resp["transaction_id"], minor_of(body), body["currency"], body["merchant_id"], number[-4:])

    def refund(
        self, c: Client, payment: KnownPayment, amount: int | None, *, race: str | None = None, contended: bool = False
    ) -> bool:
        # "The whole amount if absent" means the original amount: the rest after a partial
        # refund has to be named.
        if amount is None and payment.refunded:
            amount = payment.refundable
        expected = payment.amount if amount is None else amount
        body: dict = {"reason": "load test refund"}
        if amount is not None:
            body["amount"] = major_text(amount, payment.currency)

        def check(resp: Any) -> str | None:
            problem = missing_fields(resp, "refund_id", "amount", "status")
            if problem:
                return problem
            if resp["status"] not in REFUND_STATES_MOVED:
                return f"refund status {resp['status']!r}"
            return None if to_minor(resp["amount"], payment.currency) == expected else "refund amount differs"

        status, resp = c.call(
            "POST",
            f"/api/v1/payments/{payment.id}/refund",
            name=label("POST /api/v1/payments/[id]/refund", race=race),
            json=body,
            # racing refunds: the loser is told "cannot exceed", a 400 (the page's business-rule shape)
            expect={200: None, 400: None} if contended else {200: None},
            check=None if contended else check,
            money=MoneyOp(
                MoneyKind.REFUND,
                expected,
                payment.currency,
                payment.merchant_id,
                refund_reader(payment.currency),
                parent=payment.id,
                race=race,
            ),
        )
        # Under contention the body is not checked: a 200 whose refund did not go through is no win.
        if status == 200 and isinstance(resp, dict) and resp.get("status") in REFUND_STATES_MOVED:
            payment.refunded += expected
            return True
        return False

    def lookup(self, c: Client, payment: KnownPayment) -> None:
        def check(body: Any) -> str | None:
            problem = missing_fields(body, "transaction_id", "status", "amount", "currency")
            if problem:
                return problem
            if body["transaction_id"] != payment.id or to_minor(body["amount"], body["currency"]) != payment.amount:
                return "id/amount differ from the payment made"
            # The page names no refunded state: a refunded payment may stay "captured" or move to
            # "cancelled"; one never refunded is "captured".
            allowed = ("captured", "cancelled") if payment.refunded else ("captured",)
            return None if body["status"] in allowed else f"status {body['status']!r}, expected {' or '.join(allowed)}"

        c.call(
            "GET", f"/api/v1/payments/{payment.id}", name="GET /api/v1/payments/[id]", expect={200: None}, check=check
        )

    def health(self, c: Client) -> None:
        c.call(
            "GET",
            "/health",
            name="GET /health",
            expect={200: None},
            check=lambda b: None if self.healthy("payments", b) else "status is not healthy",
        )

    # --- BankingAPI (canned stubs) ------------------------------------------------------------

    def _authorize_body(self, c: Client, merchant: Any = None, card_number: str | None = None) -> dict:
        p = c.pool.payment(c.rng, merchant=merchant)
        card = p["card"]
        return {
            "card_number": card_number or card["number"],
            "expiry_month": card["exp_month"],
            "expiry_year": card["exp_year"],
            "cvv": card["cvc"],
            "amount": float(major_text(p["amount"], p["currency"])),  # a JSON number on the wire only
            "currency": p["currency"],
            "merchant_id": p["merchant_id"],
        }

    def _stub_call(
        self, c: Client, path: str, name: str, body: dict, kind: MoneyKind, id_field: str, merchant: str | None, **kw
    ) -> Any:
        want = STUB_STATUS[kind]

        def check(b: Any) -> str | None:
            problem = missing_fields(b, id_field, "status")
            return problem or (None if b["status"] == want else f"status {b['status']!r}, expected {want!r}")

        status, resp = c.call(
            "POST",
            path,
            name=name,
            json=body,
            expect={200: None},
            check=check,
            money=MoneyOp(kind, None, None, merchant, read_stub, service="bank", **kw),
            bank=True,
        )
        return resp if status == 200 and isinstance(resp, dict) else None

    def authorize(
        self, c: Client, *, setup: bool = False, decline: bool = False, merchant: Any = None, race: str | None = None
    ) -> Held | None:
        body = self._authorize_body(c, merchant, DECLINE_CARD if decline else None)
        if decline:
            c.call(
                "POST",
                "/api/v1/authorize",
                name=label("POST /api/v1/authorize", setup=setup, declined=True),
                json=body,
                expect={402: "card_declined"},
                check=lambda b: None if b.get("decline_code") == "generic_decline" else "decline_code differs",
                money=MoneyOp(MoneyKind.AUTHORIZATION, None, None, body["merchant_id"], read_stub, service="bank"),
                bank=True,
            )
            return None
        resp = self._stub_call(
            c,
            "/api/v1/authorize",
            label("POST /api/v1/authorize", setup=setup),
            body,
            MoneyKind.AUTHORIZATION,
            "authorization_id",
            body["merchant_id"],
        )
        minor = to_minor(body["amount"], body["currency"])
        return Held(resp["authorization_id"], minor, body["merchant_id"], body["currency"]) if resp else None

    def capture(
        self,
        c: Client,
        auth: Held,
        amount: int,
        *,
        setup: bool = False,
        race: str | None = None,
        contended: bool = False,
    ) -> Held | None:
        body = {"authorization_id": auth.id, "amount": float(major_text(amount, auth.currency))}
        resp = self._stub_call(
            c,
            "/api/v1/capture",
            label("POST /api/v1/capture", setup=setup),
            body,
            MoneyKind.CAPTURE,
            "capture_id",
            auth.merchant_id,
            parent=auth.id,
        )
        return Held(resp["capture_id"], amount, auth.merchant_id, auth.currency) if resp else None

    def bank_refund(self, c: Client, capture: Held, amount: int) -> Held | None:
        body = {"capture_id": capture.id, "amount": float(major_text(amount, capture.currency))}
        resp = self._stub_call(
            c,
            "/api/v1/refund",
            "POST /api/v1/refund",
            body,
            MoneyKind.BANK_REFUND,
            "refund_id",
            capture.merchant_id,
            parent=capture.id,
        )
        if resp is None:
            return None
        capture.refunded += amount
        return Held(resp["refund_id"], amount, capture.merchant_id, capture.currency)

    def bank_status(self, c: Client, held: Held, kind: str) -> None:
        c.call(
            "GET",
            f"/api/v1/transactions/{held.id}",
            name="GET /api/v1/transactions/[id]",
            expect={200: None},
            check=lambda b: missing_fields(b, "transaction_id", "status", "amount", "currency"),
            bank=True,
        )

    def settlement(self, c: Client, merchant_id: str | None, *, by: str | None = None) -> None:
        def check(body: Any) -> str | None:
            problem = missing_fields(body, "settlements", "total_count")
            return problem or (None if isinstance(body["settlements"], list) else "settlements is not a list")

        name = "GET /api/v1/settlements" + (f" ({by})" if by else "")
        c.call("GET", "/api/v1/settlements", name=name, expect={200: None}, check=check, bank=True)

    def bank_health(self, c: Client) -> None:
        c.call(
            "GET",
            "/health",
            name="GET /health (bank)",
            expect={200: None},
            check=lambda b: None if self.healthy("bank", b) else "status is not healthy",
            bank=True,
        )

    def batch(self, c: Client, pending: list[Held]) -> list[Held]:
        """The stub's batch takes authorizations only: the pending ones go back to the user."""
        body = {"transactions": [self._authorize_body(c) for _ in range(c.rng.randint(3, 10))]}
        c.call(
            "POST",
            "/api/v1/batch/authorize",
            name="POST /api/v1/batch/authorize",
            json=body,
            expect={200: None},
            check=lambda b: missing_fields(b, "batch_id", "status"),
            bank=True,
        )
        return pending

    # --- reading back -------------------------------------------------------------------------

    def read_payment(self, status: int, body: Any) -> Answer:
        return read_payment(status, body)

    def server_payment(self, http: Any, payment_id: str) -> tuple[int, ServerPayment | None]:
        status, body = http.get_retried(f"{http.payment_url}/api/v1/payments/{payment_id}")
        if status != 200 or not isinstance(body, dict):
            return status, None
        currency = body.get("currency") or "USD"
        state = SERVER_STATES.get(body.get("status"), ServerState.PENDING)
        return status, ServerPayment(to_minor(body.get("amount"), currency), currency, state, None)

    # --- FailureSimulationUser ----------------------------------------------------------------

    def probes(self) -> list[Probe]:
        return [
            Probe("malformed JSON", 3, self._malformed_json),
            Probe("missing payment_method", 2, self._missing_method),
            Probe("invalid amount", 2, self._invalid_amount),
            Probe("currency not 3 letters", 1, self._bad_currency),
            Probe("card field out of range", 3, self._bad_card),
            Probe("bank decline", 3, self._declined),
            Probe("short merchant id", 1, self._short_merchant),
            *auth_probes(PAY, lambda c: payment_body(c, c.rng), "/api/v1/payments/txn_x"),
            unknown_id_probe("unknown payment", 2, "GET", "/api/v1/payments/txn_{id}", 404),
            Probe("over-refund", 2, self._over_refund),
            Probe("refund beyond what is left", 2, self._refund_beyond_rest),
            Probe("refund of a failed payment", 1, self._refund_failed),
            # an unknown refund target is a 400 here, not a 404
            unknown_id_probe("refund of an unknown payment", 1, "POST", "/api/v1/payments/txn_{id}/refund", 400),
        ]

    def _invalid(self, c: Client, scenario: str, body: Any, check: Check, data: bytes | None = None) -> None:
        c.call(
            "POST",
            PAY,
            name=f"expect 422: {scenario}",
            json=None if data else body,
            data=data,
            expect={422: None},
            check=check,
        )

    def _malformed_json(self, c: Client) -> None:
        self._invalid(c, "malformed JSON", None, detail_names("", "json_invalid"), data=b'{"amount": "19.99", "cur')

    def _missing_method(self, c: Client) -> None:
        body = payment_body(c, c.rng)
        del body["payment_method"]
        self._invalid(c, "missing payment_method", body, detail_names("payment_method"))

    def _invalid_amount(self, c: Client) -> None:
        body = {**payment_body(c, c.rng), "amount": c.rng.choice(["0", "-5.00", "0.00"])}
        self._invalid(c, "amount not above 0", body, detail_names("amount"))

    def _bad_currency(self, c: Client) -> None:
        body = {**payment_body(c, c.rng), "currency": c.rng.choice(["US", "DOLLAR"])}
        self._invalid(c, "currency not 3 letters", body, detail_names("currency"))

    def _bad_card(self, c: Client) -> None:
        body = payment_body(c, c.rng)
        field, value = c.rng.choice(
            [("card_number", "4242"), ("expiry_month", 13), ("expiry_year", 2020), ("cvv", "12")]
        )
        body["card_data"][field] = value
        self._invalid(c, "card field out of range", body, detail_names("card_data"))

    def _declined(self, c: Client) -> None:
        body = payment_body(c, c.rng)
        body["card_data"]["card_number"] = DECLINE_CARD
        status, resp = c.call(
            "POST",
            PAY,
            name="expect 200 failed: bank decline",
            json=body,
            expect={200: None},
            check=lambda b: None if b.get("status") == "failed" else f"status {b.get('status')!r}, expected 'failed'",
            money=self._payment_op(body, None),
        )
        if status == 200 and isinstance(resp, dict) and resp.get("transaction_id"):
            remember(c, "failed_ids", resp["transaction_id"])

    def _short_merchant(self, c: Client) -> None:
        body = {**payment_body(c, c.rng), "merchant_id": "m1"}
        c.call("POST", PAY, name="expect 400: short merchant id", json=body, expect={400: None})

    def _refund_probe(self, c: Client, name: str, payment: KnownPayment, amount: int | None) -> int:
        body = {} if amount is None else {"amount": major_text(amount, payment.currency)}
        status, _ = c.call(
            "POST",
            f"/api/v1/payments/{payment.id}/refund",
            name=name,
            json=body,
            expect={400: None},
            money=MoneyOp(
                MoneyKind.REFUND,
                payment.amount if amount is None else amount,
                payment.currency,
                payment.merchant_id,
                refund_reader(payment.currency),
                parent=payment.id,
            ),
        )
        return status

    def _over_refund(self, c: Client) -> None:
        payment = self.pay(c, setup=True)
        if payment is not None:
            self._refund_probe(c, "expect 400: over-refund", payment, payment.amount + 1)

    def _refund_beyond_rest(self, c: Client) -> None:
        """Refunds add up: after a full refund, one more minor unit is refused."""
        payment = self.pay(c, setup=True)
        if payment is None or not self.refund(c, payment, None):
            return
        self._refund_probe(c, "expect 400: refund beyond what is left", payment, 1)

    def _refund_failed(self, c: Client) -> None:
        ids = c.probe_memory().get("failed_ids")
        if not ids:
            return self._declined(c)
        c.call(
            "POST",
            f"/api/v1/payments/{c.rng.choice(ids)}/refund",
            name="expect 400: refund of a failed payment",
            json={},
            expect={400: None},
        )


BINDING = EcosystemBinding()
