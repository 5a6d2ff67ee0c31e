"""FailureSimulationUser: bad input and error paths. Each request states the error it expects;
getting it is a success, anything else (a 500, a 2xx, another error) is a failure naming expected
vs got.

Only what the contract promises is checked: the status always, ``error.code`` only where the
contract names the code (``card_declined``, ``refund_exceeds_captured``, ...; for 400/401/404/413/422
the code is the service's own choice), and a 422's ``details`` naming the bad field or a path under
it, in whatever shape the details take."""

from __future__ import annotations

from typing import Any

from locust import tag, task

from users import payment_api as api
from users.base import PaymentSuiteUser, RecentItems, settings

OVERSIZE_BYTES = 70 * 1024  # the contract's limit is 64 KiB


def _paths(detail: Any) -> list[str]:
    """The field paths a validation detail may name: its strings, and lists of path parts
    joined with dots (``["body", "card", "number"]`` -> ``body.card.number``)."""
    if isinstance(detail, str):
        return [detail]
    if isinstance(detail, list):
        parts = [str(p) for p in detail if isinstance(p, str | int)]
        return [".".join(parts)] if parts else []
    if isinstance(detail, dict):
        return [p for value in detail.values() for p in _paths(value)]
    return []


def names_field(details: Any, field: str) -> bool:
    """True when some detail names ``field`` or a path under it (``card`` for ``card.exp_year``)."""
    for detail in details if isinstance(details, list) else [details]:
        for path in _paths(detail):
            for candidate in (path, path.removeprefix("body.")):
                if candidate == field or candidate.startswith((field + ".", field + "[")):
                    return True
    return False


class FailureSimulationUser(PaymentSuiteUser):
    weight = 1

    def on_start(self) -> None:
        self.payments = RecentItems(50)
        self.declined_ids = RecentItems(50)
        self.declined_merchants = RecentItems(20)

    def _bad_payment(self, scenario: str, body: dict, field: str | None = None) -> None:
        def check(resp) -> str | None:
            details = (resp.get("error") or {}).get("details") if isinstance(resp, dict) else None
            return None if field is None or names_field(details, field) else f"details do not name {field!r}"

        self.call("POST", "/payments", name=f"expect 422: {scenario}", json=body, expect={422: None}, check=check)

    @tag("failures", "validation")
    @task(3)
    def malformed_json(self) -> None:
        self.call(
            "POST",
            "/payments",
            name="expect 400: malformed JSON",
            data=b'{"amount": 1999, "currency": ',
            expect={400: None},
        )

    @tag("failures", "validation")
    @task(2)
    def missing_fields(self) -> None:
        body = self.pool.payment(self.rng)
        field = self.rng.choice(["amount", "currency", "card", "merchant_id"])
        del body[field]
        self._bad_payment("missing field", body, field)

    @tag("failures", "validation")
    @task(2)
    def invalid_amount(self) -> None:
        body = self.pool.payment(self.rng)
        body["amount"] = self.rng.choice([0, -100, 100_000_000, "12.50", 19.99])
        self._bad_payment("invalid amount", body, "amount")

    @tag("failures", "validation")
    @task(1)
    def unsupported_currency(self) -> None:
        self._bad_payment("unsupported currency", {**self.pool.payment(self.rng), "currency": "XXX"}, "currency")

    @tag("failures", "cards")
    @task(3)
    def luhn_invalid_card(self) -> None:
        body = self.pool.payment(self.rng, card=self.pool.luhn_invalid_card(self.rng))
        self._bad_payment("Luhn-invalid card", body, "card")

    @tag("failures", "cards")
    @task(2)
    def expired_card(self) -> None:
        self._bad_payment("expired card", self.pool.payment(self.rng, card=self.pool.expired_card(self.rng)), "card")

    @tag("failures", "cards")
    @task(1)
    def wrong_cvc_length(self) -> None:
        body = self.pool.payment(self.rng, card=self.pool.wrong_cvc_length_card(self.rng))
        self._bad_payment("wrong CVC length", body, "card")

    @tag("failures", "cards")
    @task(3)
    def declined_card(self) -> None:
        card, code = self.pool.decline_card(self.rng)
        body = self.pool.payment(self.rng, card=card)
        _, resp = self.call(
            "POST",
            "/payments",
            name="expect 402: declined card",
            json=body,
            expect={402: "card_declined"},
            check=api.decline_check(code),
            money=api.payment_op(body),
        )
        # The contract promises no payment id in a decline's body; the payment is findable in its
        # merchant's listing (status=declined). A service that does give the id saves the lookup.
        given = resp.get("error", {}).get("payment_id") if isinstance(resp, dict) else None
        if given:
            self.declined_ids.add(given)
        elif resp is not None:
            self.declined_merchants.add(body["merchant_id"])

    @tag("failures", "auth")
    @task(2)
    def missing_token(self) -> None:
        self.call(
            "POST",
            "/payments",
            name="expect 401: no token",
            json=self.pool.payment(self.rng),
            headers={"Authorization": ""},
            expect={401: None},
        )

    @tag("failures", "auth")
    @task(2)
    def wrong_token(self) -> None:
        self.call(
            "GET",
            "/payments/pay_x",
            name="expect 401: wrong token",
            headers={"Authorization": "Bearer not-the-token"},
            expect={401: None},
        )

    @tag("failures", "not_found")
    @task(2)
    def unknown_payment(self) -> None:
        self.call(
            "GET",
            f"/payments/pay_missing{self.rng.getrandbits(32):08x}",
            name="expect 404: unknown payment",
            expect={404: None},
        )

    @tag("failures", "not_found")
    @task(1)
    def unknown_merchant(self) -> None:
        self.call(
            "GET",
            f"/merchants/mer_unknown_{self.rng.getrandbits(32):08x}/transactions",
            name="expect 404: unknown merchant",
            expect={404: None},
        )

    @tag("failures", "refunds")
    @task(2)
    def over_refund(self) -> None:
        payment = self.payments.pick(self.rng) or api.make_payment(self, name="POST /payments (setup)")
        if payment is None:
            return
        self.payments.add(payment)
        self.call(
            "POST",
            f"/payments/{payment.id}/refunds",
            name="expect 409: over-refund",
            json={"amount": payment.amount + 1},
            expect={409: "refund_exceeds_captured"},
            money=api.refund_op(payment, payment.amount + 1),
        )

    @tag("failures", "refunds")
    @task(1)
    def refund_declined_payment(self) -> None:
        pid = self.declined_ids.pick(self.rng) or self._declined_from_listing()
        if pid is None:
            return self.declined_card()
        self.call(
            "POST",
            f"/payments/{pid}/refunds",
            name="expect 409: refund of a declined payment",
            json={},
            expect={409: "payment_not_refundable"},
        )

    def _declined_from_listing(self) -> str | None:
        merchant = self.declined_merchants.pick(self.rng)
        if merchant is None:
            return None
        status, page = self.call(
            "GET",
            f"/merchants/{merchant}/transactions?status=declined&limit=5",
            name="GET /merchants/[id]/transactions (declined)",
            expect={200: None},
            check=lambda b: None if isinstance(b.get("data"), list) else "data is not a list",
        )
        rows = page.get("data") if status == 200 and isinstance(page, dict) else None
        ids = [p["id"] for p in rows or [] if isinstance(p, dict) and p.get("status") == "declined" and p.get("id")]
        for pid in ids:
            self.declined_ids.add(pid)
        return ids[0] if ids else None

    @tag("failures", "idempotency")
    @task(1)
    def idempotency_key_reuse(self) -> None:
        key = self.idempotency_key()
        body = self.pool.payment(self.rng)
        status, _ = self.call(
            "POST",
            "/payments",
            name="POST /payments (setup)",
            json=body,
            headers={"Idempotency-Key": key},
            expect={201: None},
            money=api.payment_op(body),
        )
        if status == 201:
            changed = {**body, "amount": body["amount"] + 1}
            self.call(
                "POST",
                "/payments",
                name="expect 409: Idempotency-Key reused",
                json=changed,
                headers={"Idempotency-Key": key},
                expect={409: "idempotency_key_reused"},
                money=api.payment_op(changed),
            )

    @tag("failures", "validation")
    @task(1)
    def oversize_body(self) -> None:
        body = {**self.pool.payment(self.rng), "description": "x" * OVERSIZE_BYTES}
        self.call("POST", "/payments", name="expect 413: oversize body", json=body, expect={413: None})


if not settings.simulate_failures:
    FailureSimulationUser.weight = 0
