"""BankingAPIUser: the seed's BankingAPI mix (authorize 40, capture 25, refund 15, status 10,
settlements 5, health 3, batches 2) against ``BANKING_API_URL``."""

from __future__ import annotations

from collections import deque
from datetime import date
from typing import Any

from locust import tag, task

from money.ledger import LEDGER
from users import payment_api as api
from users.base import PaymentSuiteUser, RecentItems, missing_fields, settings


class Held:
    """An authorization or capture this user made: id, amount, and what was refunded of it."""

    __slots__ = ("id", "amount", "refunded", "merchant_id")

    def __init__(self, id: str, amount: int, merchant_id: str):
        self.id, self.amount, self.merchant_id, self.refunded = id, amount, merchant_id, 0


def has(field: str, value: Any):
    def check(body: Any) -> str | None:
        problem = missing_fields(body, "id", field)
        if problem:
            return problem
        return None if body[field] == value else f"{field} differs from the request"

    return check


def auth_op(body: dict) -> tuple[str, dict]:
    return "authorization", {"amount": body["amount"], "currency": body["currency"], "merchant_id": body["merchant_id"]}


class BankingAPIUser(PaymentSuiteUser):
    weight = 2
    host = settings.banking_api_url  # shown in the UI's class picker

    def __init__(self, environment):
        # --host names the PaymentService; the bank always has its own URL.
        self.host = settings.banking_api_url
        super().__init__(environment)

    def on_start(self) -> None:
        self.pending = deque(maxlen=settings.id_store_size)  # authorizations not captured yet
        self.captures = RecentItems(settings.id_store_size)
        self.txn_ids = RecentItems(settings.id_store_size)  # (id, type, amount) for status lookups
        self.merchants: list[str] = []
        self._auth_merchants: dict[str, str] = {}  # batch captures in flight: authorization -> merchant

    def _auth_body(self) -> dict:
        p = self.pool.payment(self.rng)
        return {
            "amount": p["amount"],
            "currency": p["currency"],
            "card": p["card"],
            "merchant_id": p["merchant_id"],
            "reference": f"lt-{self.rng.getrandbits(48):012x}",
        }

    def _authorize(self, name: str = "POST /v1/authorizations") -> Held | None:
        body = self._auth_body()
        status, resp = self.call(
            "POST",
            "/v1/authorizations",
            name=name,
            json=body,
            expect={201: None},
            check=has("status", "approved"),
            money=auth_op(body),
        )
        if status != 201 or not isinstance(resp, dict):
            return None
        held = Held(resp["id"], body["amount"], body["merchant_id"])
        self.txn_ids.add((held.id, "authorization", held.amount))
        if held.merchant_id not in self.merchants:
            self.merchants.append(held.merchant_id)
        return held

    def _capture(self, auth: Held, name: str = "POST /v1/authorizations/[id]/capture") -> Held | None:
        amount = auth.amount if self.rng.random() < 0.8 else self.rng.randint(1, auth.amount)
        status, resp = self.call(
            "POST",
            f"/v1/authorizations/{auth.id}/capture",
            name=name,
            json={"amount": amount},
            expect={201: None},
            check=has("amount", amount),
            money=("capture", {"amount": amount, "merchant_id": auth.merchant_id, "parent": auth.id}),
        )
        if status != 201 or not isinstance(resp, dict):
            return None
        cap = Held(resp["id"], amount, auth.merchant_id)
        self.captures.add(cap)
        self.txn_ids.add((cap.id, "capture", amount))
        return cap

    @tag("banking", "authorize")
    @task(40)
    def authorize(self) -> None:
        if settings.simulate_failures and self.rng.random() < settings.card_decline_rate:
            card, code = self.pool.decline_card(self.rng)
            body = {**self._auth_body(), "card": card.as_json()}
            self.call(
                "POST",
                "/v1/authorizations",
                name="POST /v1/authorizations (declined)",
                json=body,
                expect={402: "card_declined"},
                check=api.decline_check(code),
                money=auth_op(body),
            )
            return
        held = self._authorize()
        if held:
            self.pending.append(held)

    @tag("banking", "capture")
    @task(25)
    def capture(self) -> None:
        auth = self.pending.popleft() if self.pending else self._authorize("POST /v1/authorizations (setup)")
        if auth:
            self._capture(auth)

    @tag("banking", "refunds")
    @task(15)
    def refund(self) -> None:
        cap = self.captures.pick(self.rng, lambda c: c.amount > c.refunded)
        if cap is None:
            auth = self._authorize("POST /v1/authorizations (setup)")
            cap = auth and self._capture(auth, "POST /v1/authorizations/[id]/capture (setup)")
            if cap is None:
                return
        left = cap.amount - cap.refunded
        amount = left if left == 1 or self.rng.random() < 0.5 else self.rng.randint(1, left - 1)
        status, resp = self.call(
            "POST",
            "/v1/refunds",
            name="POST /v1/refunds",
            json={"capture_id": cap.id, "amount": amount},
            expect={201: None},
            check=has("amount", amount),
            money=("bank_refund", {"amount": amount, "merchant_id": cap.merchant_id, "parent": cap.id}),
        )
        if status == 201 and isinstance(resp, dict):
            cap.refunded += amount
            self.txn_ids.add((resp["id"], "refund", amount))

    @tag("banking", "reads")
    @task(10)
    def transaction_status(self) -> None:
        known = self.txn_ids.pick(self.rng)
        if known is None:
            held = self._authorize("POST /v1/authorizations (setup)")
            if held is None:
                return
            known = (held.id, "authorization", held.amount)
        txn_id, kind, amount = known

        def check(body: Any) -> str | None:
            # The contract names the fields, not the words of `type`: the amount is what must agree.
            problem = missing_fields(body, "id", "type", "status", "amount")
            if problem:
                return problem
            return None if body["amount"] == amount else "amount differs"

        self.call(
            "GET", f"/v1/transactions/{txn_id}", name="GET /v1/transactions/[id]", expect={200: None}, check=check
        )

    @tag("banking", "reports")
    @task(5)
    def settlement_report(self) -> None:
        query = f"?date={date.today().isoformat()}"
        if self.merchants and self.rng.random() < 0.7:
            query += f"&merchant_id={self.rng.choice(self.merchants)}"

        def check(body: Any) -> str | None:
            problem = missing_fields(body, "captured", "refunded", "net", "count")
            if problem:
                return problem
            return None if body["net"] == body["captured"] - body["refunded"] else "net != captured - refunded"

        self.call("GET", f"/v1/settlements{query}", name="GET /v1/settlements", expect={200: None}, check=check)

    @tag("banking", "health")
    @task(3)
    def health_check(self) -> None:
        self.call(
            "GET",
            "/health",
            name="GET /health (bank)",
            expect={200: None},
            check=lambda b: None if isinstance(b, dict) and b.get("status") == "ok" else "status not ok",
        )

    @tag("banking", "batch")
    @task(2)
    def batch(self) -> None:
        """A batch of authorizations plus captures of pending ones; every item must succeed."""
        ops: list[dict] = [{"type": "authorize", **self._auth_body()} for _ in range(self.rng.randint(3, 10))]
        while self.pending and len(ops) < 20:
            auth = self.pending.popleft()
            ops.append({"type": "capture", "authorization_id": auth.id, "amount": auth.amount})
            self._auth_merchants[auth.id] = auth.merchant_id
            self._auth_merchants[auth.id] = auth.merchant_id

        def check(body: Any) -> str | None:
            problem = missing_fields(body, "id", "results")
            if problem:
                return problem
            if len(body["results"]) != len(ops):
                return "result count differs from the operations sent"
            failed = [r["index"] for r in body["results"] if r.get("status_code") != 201]
            return "some items did not succeed" if failed else None

        status, body = self.call(
            "POST", "/v1/batches", name="POST /v1/batches", json={"operations": ops}, expect={200: None}, check=check
        )
        self._ledger_batch(ops, status, body)

    def _ledger_batch(self, ops: list[dict], status: int, body: Any) -> None:
        """Each batch item moves money on its own: record it with the item's own status."""
        results = body.get("results") if status == 200 and isinstance(body, dict) else None
        for i, op in enumerate(ops):
            # no readable result for the item: unknown, unless the whole batch was refused (4xx)
            item = results[i] if results and i < len(results) else {"status_code": status if 400 <= status < 500 else 0}
            if op["type"] == "authorize":
                kind, info = auth_op(op)
            else:
                merchant = self._auth_merchants.pop(op["authorization_id"], None)
                kind, info = (
                    "capture",
                    {"amount": op["amount"], "merchant_id": merchant, "parent": op["authorization_id"]},
                )
            LEDGER.record(kind, item.get("status_code", 0), None, info, item.get("body"))
