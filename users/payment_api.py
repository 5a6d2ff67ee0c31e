"""PaymentService calls with their body checks, shared by the user classes that drive it.

Every function takes the calling user (a :class:`PaymentSuiteUser`) and records what the run
created in small slotted objects, so later refunds and lookups can be checked against it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from data_generators import Card, Customer, Merchant
from users.base import PaymentSuiteUser, missing_fields

PAYMENT_STATUSES = {"succeeded", "declined", "refunded", "partially_refunded"}


class KnownPayment:
    __slots__ = ("id", "amount", "currency", "merchant_id", "refunded", "last4")

    def __init__(self, id: str, amount: int, currency: str, merchant_id: str, last4: str):
        self.id, self.amount, self.currency, self.merchant_id, self.last4 = id, amount, currency, merchant_id, last4
        self.refunded = 0

    @property
    def refundable(self) -> int:
        return self.amount - self.refunded


def payment_check(sent: dict, status: str | None = "succeeded"):
    number = sent["card"]["number"]

    def check(body: Any) -> str | None:
        problem = missing_fields(body, "id", "status", "amount", "currency", "card", "refunded_amount")
        if problem:
            return problem
        if number in str(body):
            return "response contains the full card number"
        if status and body["status"] != status:
            return f"status {body['status']!r}, expected {status!r}"
        if body["amount"] != sent["amount"] or body["currency"] != sent["currency"]:
            return "amount/currency differ from the request"
        if not isinstance(body["card"], dict) or body["card"].get("last4") != number[-4:]:
            return "card.last4 does not match"
        return None

    return check


def decline_of(body: Any) -> str | None:
    """A 402's decline_code: in ``error`` (where the contract's error shape puts it) or beside it."""
    if not isinstance(body, dict):
        return None
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    return error.get("decline_code") or body.get("decline_code")


def decline_check(decline_code: str):
    def check(body: Any) -> str | None:
        got = decline_of(body)
        return None if got == decline_code else f"decline_code {got!r}, expected {decline_code!r}"

    return check


def payment_op(body: dict, race: str | None = None) -> tuple[str, dict]:
    return "payment", {
        "amount": body.get("amount"),
        "currency": body.get("currency"),
        "merchant_id": body.get("merchant_id"),
        "race": race,
    }


def refund_op(payment: KnownPayment, amount: int | None, race: str | None = None) -> tuple[str, dict]:
    return "refund", {
        "amount": amount,
        "currency": payment.currency,
        "merchant_id": payment.merchant_id,
        "parent": payment.id,
        "race": race,
    }


def make_payment(
    user: PaymentSuiteUser,
    *,
    path: str = "/payments",
    name: str | None = None,
    merchant: Merchant | None = None,
    customer: Customer | None = None,
    decline: tuple[Card, str] | None = None,
) -> KnownPayment | None:
    """Charge a card; with ``decline`` a decline test card, where a 402 with its code is success."""
    body = user.pool.payment(user.rng, merchant=merchant, customer=customer, card=decline[0] if decline else None)
    if decline:
        user.call(
            "POST",
            path,
            name=name or f"POST {path} (declined)",
            json=body,
            expect={402: "card_declined"},
            check=decline_check(decline[1]),
            money=payment_op(body),
        )
        return None
    status, resp = user.call(
        "POST",
        path,
        name=name or f"POST {path}",
        json=body,
        expect={201: None},
        check=payment_check(body),
        money=payment_op(body),
    )
    if status != 201 or not isinstance(resp, dict) or "id" not in resp:
        return None
    return KnownPayment(resp["id"], body["amount"], body["currency"], body["merchant_id"], body["card"]["number"][-4:])


def refund(user: PaymentSuiteUser, payment: KnownPayment, amount: int | None) -> bool:
    """Full (amount None) or partial refund of a payment this run made."""
    expected = payment.refundable if amount is None else amount

    def check(body: Any) -> str | None:
        # The contract says "201 refund" and names no refund fields beyond its id prefix.
        problem = missing_fields(body, "id")
        if problem:
            return problem
        if "amount" in body and body["amount"] != expected:
            return "refunded amount differs from the amount asked"
        return None

    status, _ = user.call(
        "POST",
        f"/payments/{payment.id}/refunds",
        name="POST /payments/[id]/refunds",
        json={} if amount is None else {"amount": amount},
        expect={201: None},
        check=check,
        money=refund_op(payment, amount),
    )
    if status == 201:
        payment.refunded += expected
        return True
    return False


def lookup(user: PaymentSuiteUser, payment: KnownPayment) -> None:
    want_status = (
        "succeeded"
        if payment.refunded == 0
        else "refunded"
        if payment.refunded >= payment.amount
        else "partially_refunded"
    )

    def check(body: Any) -> str | None:
        problem = missing_fields(body, "id", "status", "amount", "refunded_amount")
        if problem:
            return problem
        if body["id"] != payment.id or body["amount"] != payment.amount:
            return "id/amount differ from the payment made"
        if body["refunded_amount"] != payment.refunded:
            return "refunded_amount differs from what this user refunded"
        if body["status"] != want_status:
            return f"status {body['status']!r}, expected {want_status!r}"
        return None

    user.call("GET", f"/payments/{payment.id}", name="GET /payments/[id]", expect={200: None}, check=check)


def list_merchant_transactions(user: PaymentSuiteUser, merchant_id: str, max_pages: int = 2) -> None:
    """Newest first, cursor-paginated; follows ``next_cursor`` up to ``max_pages``."""
    cursor, seen_last = None, None
    for page in range(max_pages):
        params = f"?limit=20&cursor={cursor}" if cursor else "?limit=20"

        def check(body: Any, _last=seen_last) -> str | None:
            problem = missing_fields(body, "data", "next_cursor")
            if problem or not isinstance(body["data"], list):
                return problem or "data is not a list"
            stamps = [p.get("created_at", "") for p in body["data"]]
            if any(p.get("merchant_id") != merchant_id for p in body["data"]):
                return "a payment of another merchant is listed"
            if stamps != sorted(stamps, reverse=True) or (_last and stamps and stamps[0] > _last):
                return "not newest first"
            return None

        name = "GET /merchants/[id]/transactions" + (" (next page)" if page else "")
        status, body = user.call(
            "GET", f"/merchants/{merchant_id}/transactions{params}", name=name, expect={200: None}, check=check
        )
        if status != 200 or not isinstance(body, dict) or not body.get("next_cursor"):
            return
        cursor = body["next_cursor"]
        seen_last = body["data"][-1].get("created_at") if body.get("data") else None


def generate_report(user: PaymentSuiteUser, merchant_id: str) -> None:
    today = date.today()
    body = {"merchant_id": merchant_id, "from": (today - timedelta(days=30)).isoformat(), "to": today.isoformat()}

    def check(resp: Any) -> str | None:
        problem = missing_fields(resp, "count", "gross", "refunded", "net", "by_currency")
        if problem:
            return problem
        if resp["net"] != resp["gross"] - resp["refunded"]:
            return "net != gross - refunded"
        return None

    user.call(
        "POST",
        "/internal/generate-report",
        name="POST /internal/generate-report",
        json=body,
        expect={200: None},
        check=check,
        write=False,
    )


def health(user: PaymentSuiteUser) -> None:
    def check(body: Any) -> str | None:
        if not isinstance(body, dict) or body.get("status") != "ok":
            return "status is not ok"
        return None

    user.call("GET", "/health", name="GET /health", expect={200: None}, check=check)
