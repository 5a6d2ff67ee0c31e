"""Binding of ``api-contract.md``, the suite's default dialect (the bundled sandbox speaks it).

Amounts are integer minor units; errors are ``{"error": {"code", "message", ...}}``; writes
take an ``Idempotency-Key``; payments, refunds, authorizations and captures answer ``201``; a
card decline is ``402 card_declined`` with a ``decline_code``. Only what the page promises is
checked: error codes only where it names them (``card_declined``, ``refund_exceeds_captured``,
...), a 422's details naming the bad field or a path under it in any shape."""

from __future__ import annotations

from datetime import date, timedelta
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
)

OVERSIZE_BYTES = 70 * 1024  # the contract's limit is 64 KiB
ENTRY_ALIAS_SHARE = 0.1  # share of the traffic mix's payments sent to the seed-001 alias POST /pay
# 409s the contract names: definite refusals. Any other 409 on a replay is the first request
# still in flight (the contract leaves that code to the service), so not an answer yet.
FINAL_CONFLICTS = frozenset(
    (
        "idempotency_key_reused",
        "refund_exceeds_captured",
        "payment_not_refundable",
        "already_captured",
        "amount_exceeds_authorized",
    )
)


def error_of(body: Any) -> dict:
    return body["error"] if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}


def decline_of(body: Any) -> str | None:
    """A 402's decline_code: in ``error`` (where the contract's error shape puts it) or beside it."""
    if not isinstance(body, dict):
        return None
    return error_of(body).get("decline_code") or body.get("decline_code")


def decline_check(decline_code: str) -> Check:
    def check(body: Any) -> str | None:
        got = decline_of(body)
        return None if got == decline_code else f"decline_code {got!r}, expected {decline_code!r}"

    return check


def read_answer(status: int, body: Any) -> Answer:
    """Any money request of the contract: 2xx with an id moved money, 402 a decline (its id, if
    the service gives one, under ``error.payment_id``), 0/5xx unknown, other statuses refusals."""
    outcome = outcome_by_status(status)
    if outcome is Outcome.SUCCEEDED:
        if not isinstance(body, dict) or not body.get("id"):
            return Answer(Outcome.UNKNOWN)  # a 2xx the client cannot read: it does not know what happened
        amount = body.get("amount")
        whole = isinstance(amount, int) and not isinstance(amount, bool)
        return Answer(
            outcome,
            body["id"],
            amount if whole else None,
            body.get("currency"),
            unreadable_amount=None if whole or amount is None else amount,
        )
    error = error_of(body)
    if outcome is Outcome.DECLINED:
        return Answer(outcome, error.get("payment_id"), decline_code=decline_of(body), error=error.get("code"))
    return Answer(outcome, error=error.get("code"))


def payment_check(sent: dict, status: str | None = "succeeded") -> Check:
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


def has(field: str, value: Any) -> Check:
    def check(body: Any) -> str | None:
        problem = missing_fields(body, "id", field)
        if problem:
            return problem
        return None if body[field] == value else f"{field} differs from the request"

    return check


def payment_op(body: dict, race: str | None = None) -> MoneyOp:
    return MoneyOp(
        MoneyKind.PAYMENT, body.get("amount"), body.get("currency"), body.get("merchant_id"), read_answer, race=race
    )


def refund_op(payment: KnownPayment, amount: int | None, race: str | None = None) -> MoneyOp:
    return MoneyOp(
        MoneyKind.REFUND, amount, payment.currency, payment.merchant_id, read_answer, parent=payment.id, race=race
    )


def bank_op(kind: MoneyKind, amount: int, currency: str | None, merchant: str | None, **kw) -> MoneyOp:
    return MoneyOp(kind, amount, currency, merchant, read_answer, service="bank", **kw)


class ContractBinding(Binding):
    name = "contract"
    capabilities = frozenset(Capability)  # the contract has every operation the suite knows
    bundled_sandbox = True  # the sandbox implements the contract
    payment_names = ("POST /payments", "POST /pay")

    def healthy(self, service: str, body: Any) -> bool:
        return isinstance(body, dict) and body.get("status") == "ok"

    # --- PaymentService -----------------------------------------------------------------------

    def payment_request(self, c: Client, merchant: Any = None, rng_seed: int | None = None) -> tuple[str, dict]:
        return "/payments", c.pool.payment(body_rng(c, rng_seed), merchant=merchant)

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
        path = "/pay" if mix and c.rng.random() < ENTRY_ALIAS_SHARE else "/payments"
        card, code = c.pool.decline_card(c.rng) if decline else (None, None)
        body = c.pool.payment(body_rng(c, rng_seed), merchant=merchant, customer=customer, card=card)
        headers = {"Idempotency-Key": key} if key else None
        if decline:
            c.call(
                "POST",
                path,
                name=label(f"POST {path}", setup=setup, race=race, declined=True),
                json=body,
                expect={402: "card_declined"},
                check=decline_check(code),
                money=payment_op(body, race),
            )
            return None
        status, resp = c.call(
            "POST",
            path,
            name=label(f"POST {path}", setup=setup, race=race),
            json=body,
            headers=headers,
            expect={201: None, 409: None} if contended else {201: None},  # in flight: the contract names no code
            check=None if contended else payment_check(body),
            money=payment_op(body, race),
        )
        if status != 201 or not isinstance(resp, dict) or "id" not in resp:
            return None
        return KnownPayment(
            resp["id"], body["amount"], body["currency"], body["merchant_id"], body["card"]["number"][-4:]
        )

    def refund(
        self, c: Client, payment: KnownPayment, amount: int | None, *, race: str | None = None, contended: bool = False
    ) -> bool:
        expected = payment.refundable if amount is None else amount

        def check(body: Any) -> str | None:
            # The contract says "201 refund" and names no refund fields beyond its id prefix.
            problem = missing_fields(body, "id")
            if problem:
                return problem
            if not contended and "amount" in body and body["amount"] != expected:
                return "refunded amount differs from the amount asked"
            return None

        status, _ = c.call(
            "POST",
            f"/payments/{payment.id}/refunds",
            name=label("POST /payments/[id]/refunds", race=race),
            json={} if amount is None else {"amount": amount},
            expect={201: None, 409: None} if contended else {201: None},  # the loser's code is not named
            check=None if contended else check,
            money=refund_op(payment, amount, race),
        )
        if status == 201:
            payment.refunded += expected
            return True
        return False

    def lookup(self, c: Client, payment: KnownPayment) -> None:
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

        c.call("GET", f"/payments/{payment.id}", name="GET /payments/[id]", expect={200: None}, check=check)

    def list_transactions(self, c: Client, merchant_id: str, max_pages: int = 2) -> None:
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
            status, body = c.call(
                "GET", f"/merchants/{merchant_id}/transactions{params}", name=name, expect={200: None}, check=check
            )
            if status != 200 or not isinstance(body, dict) or not body.get("next_cursor"):
                return
            cursor = body["next_cursor"]
            seen_last = body["data"][-1].get("created_at") if body.get("data") else None

    def report(self, c: Client, merchant_id: str) -> None:
        today = date.today()
        body = {"merchant_id": merchant_id, "from": (today - timedelta(days=30)).isoformat(), "to": today.isoformat()}

        def check(resp: Any) -> str | None:
            problem = missing_fields(resp, "count", "gross", "refunded", "net", "by_currency")
            if problem:
                return problem
            return "net != gross - refunded" if resp["net"] != resp["gross"] - resp["refunded"] else None

        c.call(
            "POST",
            "/internal/generate-report",
            name="POST /internal/generate-report",
            json=body,
            expect={200: None},
            check=check,
            write=False,
        )

    def health(self, c: Client) -> None:
        c.call(
            "GET",
            "/health",
            name="GET /health",
            expect={200: None},
            check=lambda b: None if self.healthy("payments", b) else "status is not ok",
        )

    # --- BankingAPI ---------------------------------------------------------------------------

    def _auth_body(self, c: Client, merchant: Any = None, card: Any = None) -> dict:
        p = c.pool.payment(c.rng, merchant=merchant, card=card)
        return {
            "amount": p["amount"],
            "currency": p["currency"],
            "card": p["card"],
            "merchant_id": p["merchant_id"],
            "reference": f"lt-{c.rng.getrandbits(48):012x}",
        }

    def authorize(
        self, c: Client, *, setup: bool = False, decline: bool = False, merchant: Any = None, race: str | None = None
    ) -> Held | None:
        card, code = c.pool.decline_card(c.rng) if decline else (None, None)
        body = self._auth_body(c, merchant, card)
        op = bank_op(MoneyKind.AUTHORIZATION, body["amount"], body["currency"], body["merchant_id"], race=race)
        if decline:
            c.call(
                "POST",
                "/v1/authorizations",
                name=label("POST /v1/authorizations", setup=setup, race=race, declined=True),
                json=body,
                expect={402: "card_declined"},
                check=decline_check(code),
                money=op,
                bank=True,
            )
            return None
        status, resp = c.call(
            "POST",
            "/v1/authorizations",
            name=label("POST /v1/authorizations", setup=setup, race=race),
            json=body,
            expect={201: None},
            check=has("status", "approved"),
            money=op,
            bank=True,
        )
        if status != 201 or not isinstance(resp, dict):
            return None
        return Held(resp["id"], body["amount"], body["merchant_id"], body["currency"])

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
        status, resp = c.call(
            "POST",
            f"/v1/authorizations/{auth.id}/capture",
            name=label("POST /v1/authorizations/[id]/capture", setup=setup, race=race),
            json={"amount": amount},
            expect={201: None, 409: None} if contended else {201: None},  # the loser's code is not named
            check=None if contended else has("amount", amount),
            money=bank_op(MoneyKind.CAPTURE, amount, auth.currency, auth.merchant_id, parent=auth.id, race=race),
            bank=True,
        )
        if status != 201 or not isinstance(resp, dict):
            return None
        return Held(resp["id"], amount, auth.merchant_id, auth.currency)

    def bank_refund(self, c: Client, capture: Held, amount: int) -> Held | None:
        status, resp = c.call(
            "POST",
            "/v1/refunds",
            name="POST /v1/refunds",
            json={"capture_id": capture.id, "amount": amount},
            expect={201: None},
            check=has("amount", amount),
            money=bank_op(MoneyKind.BANK_REFUND, amount, capture.currency, capture.merchant_id, parent=capture.id),
            bank=True,
        )
        if status != 201 or not isinstance(resp, dict):
            return None
        capture.refunded += amount
        return Held(resp["id"], amount, capture.merchant_id, capture.currency)

    def bank_status(self, c: Client, held: Held, kind: str) -> None:
        def check(body: Any) -> str | None:
            # The contract names the fields, not the words of `type`: the amount is what must agree.
            problem = missing_fields(body, "id", "type", "status", "amount")
            if problem:
                return problem
            return None if body["amount"] == held.amount else "amount differs"

        c.call(
            "GET",
            f"/v1/transactions/{held.id}",
            name="GET /v1/transactions/[id]",
            expect={200: None},
            check=check,
            bank=True,
        )

    def settlement(self, c: Client, merchant_id: str | None, *, by: str | None = None) -> None:
        name = "GET /v1/settlements" + (f" ({by})" if by else "")
        query = f"?date={date.today().isoformat()}" + (f"&merchant_id={merchant_id}" if merchant_id else "")

        def check(body: Any) -> str | None:
            problem = missing_fields(body, "captured", "refunded", "net", "count")
            if problem:
                return problem
            return None if body["net"] == body["captured"] - body["refunded"] else "net != captured - refunded"

        c.call("GET", f"/v1/settlements{query}", name=name, expect={200: None}, check=check, bank=True)

    def bank_health(self, c: Client) -> None:
        c.call(
            "GET",
            "/health",
            name="GET /health (bank)",
            expect={200: None},
            check=lambda b: None if self.healthy("bank", b) else "status not ok",
            bank=True,
        )

    def batch(self, c: Client, pending: list[Held]) -> list[Held]:
        """Authorizations plus captures of pending ones; every item must succeed, and each item
        moves money on its own (recorded with its own status)."""
        ops: list[dict] = [{"type": "authorize", **self._auth_body(c)} for _ in range(c.rng.randint(3, 10))]
        held = {auth.id: auth for auth in pending}
        ops += [{"type": "capture", "authorization_id": a.id, "amount": a.amount} for a in pending]

        def check(body: Any) -> str | None:
            problem = missing_fields(body, "id", "results")
            if problem:
                return problem
            if len(body["results"]) != len(ops):
                return "result count differs from the operations sent"
            failed = [r["index"] for r in body["results"] if r.get("status_code") != 201]
            return "some items did not succeed" if failed else None

        status, body = c.call(
            "POST",
            "/v1/batches",
            name="POST /v1/batches",
            json={"operations": ops},
            expect={200: None},
            check=check,
            bank=True,
        )
        results = body.get("results") if status == 200 and isinstance(body, dict) else None
        for i, op in enumerate(ops):
            # no readable result for the item: unknown, unless the whole batch was refused (4xx)
            item = results[i] if results and i < len(results) else {"status_code": status if 400 <= status < 500 else 0}
            if op["type"] == "authorize":
                money = bank_op(MoneyKind.AUTHORIZATION, op["amount"], op["currency"], op["merchant_id"])
            else:
                auth = held[op["authorization_id"]]
                money = bank_op(MoneyKind.CAPTURE, op["amount"], auth.currency, auth.merchant_id, parent=auth.id)
            c.record_money(money, item.get("status_code", 0), item.get("body"))
        return []  # every pending authorization was captured in the batch

    # --- reading back -------------------------------------------------------------------------

    def read_payment(self, status: int, body: Any) -> Answer:
        return read_answer(status, body)

    def server_payment(self, http: Any, payment_id: str) -> tuple[int, ServerPayment | None]:
        status, body = http.get(f"{http.payment_url}/payments/{payment_id}")
        if status != 200 or not isinstance(body, dict):
            return status, None
        state = ServerState.DECLINED if body.get("status") == "declined" else ServerState.SUCCEEDED
        return status, ServerPayment(body.get("amount"), body.get("currency"), state, body.get("refunded_amount", 0))

    def merchant_payment_ids(self, http: Any, merchant_id: str) -> list[str] | None:
        listed, cursor = [], None
        for _ in range(100):
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            status, page = http.get(f"{http.payment_url}/merchants/{merchant_id}/transactions", **params)
            if status != 200 or not isinstance(page, dict):
                return listed or None
            listed += [p["id"] for p in page.get("data", []) if p.get("status") != "declined"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return listed

    def settlement_figures(self, http: Any, day: str, merchant_id: str) -> tuple[int, int] | None:
        status, body = http.get_retried(http.bank_url + "/v1/settlements", date=day, merchant_id=merchant_id)
        if status != 200 or not isinstance(body, dict):
            return None
        return int(body.get("captured", 0)), int(body.get("refunded", 0))

    def replay_is_final(self, status: int, body: Any) -> bool:
        if not status or status >= 500:
            return False
        return status != 409 or error_of(body).get("code") in FINAL_CONFLICTS

    # --- FailureSimulationUser ----------------------------------------------------------------

    def probes(self) -> list[Probe]:
        return [
            Probe("malformed JSON", 3, self._malformed_json),
            Probe("missing field", 2, self._missing_field),
            Probe("invalid amount", 2, self._invalid_amount),
            Probe("unsupported currency", 1, self._unsupported_currency),
            Probe("Luhn-invalid card", 3, self._luhn_invalid),
            Probe("expired card", 2, self._expired_card),
            Probe("wrong CVC length", 1, self._wrong_cvc),
            Probe("declined card", 3, self._declined_card),
            *auth_probes("/payments", lambda c: c.pool.payment(c.rng), "/payments/pay_x"),
            unknown_id_probe("unknown payment", 2, "GET", "/payments/pay_{id}", 404),
            unknown_id_probe("unknown merchant", 1, "GET", "/merchants/mer_{id}/transactions", 404),
            Probe("over-refund", 2, self._over_refund),
            Probe("refund of a declined payment", 1, self._refund_declined),
            Probe("Idempotency-Key reused", 1, self._key_reuse),
            Probe("oversize body", 1, self._oversize_body),
        ]

    def _bad_payment(self, c: Client, scenario: str, body: dict, field: str | None = None) -> None:
        def check(resp: Any) -> str | None:
            details = error_of(resp).get("details")
            return None if field is None or names_field(details, field) else f"details do not name {field!r}"

        c.call("POST", "/payments", name=f"expect 422: {scenario}", json=body, expect={422: None}, check=check)

    def _malformed_json(self, c: Client) -> None:
        c.call(
            "POST",
            "/payments",
            name="expect 400: malformed JSON",
            data=b'{"amount": 1999, "currency": ',
            expect={400: None},
        )

    def _missing_field(self, c: Client) -> None:
        body = c.pool.payment(c.rng)
        field = c.rng.choice(["amount", "currency", "card", "merchant_id"])
        del body[field]
        self._bad_payment(c, "missing field", body, field)

    def _invalid_amount(self, c: Client) -> None:
        body = c.pool.payment(c.rng)
        body["amount"] = c.rng.choice([0, -100, 100_000_000, "12.50", 19.99])
        self._bad_payment(c, "invalid amount", body, "amount")

    def _unsupported_currency(self, c: Client) -> None:
        self._bad_payment(c, "unsupported currency", {**c.pool.payment(c.rng), "currency": "XXX"}, "currency")

    def _luhn_invalid(self, c: Client) -> None:
        self._bad_payment(c, "Luhn-invalid card", c.pool.payment(c.rng, card=c.pool.luhn_invalid_card(c.rng)), "card")

    def _expired_card(self, c: Client) -> None:
        self._bad_payment(c, "expired card", c.pool.payment(c.rng, card=c.pool.expired_card(c.rng)), "card")

    def _wrong_cvc(self, c: Client) -> None:
        self._bad_payment(
            c, "wrong CVC length", c.pool.payment(c.rng, card=c.pool.wrong_cvc_length_card(c.rng)), "card"
        )

    def _declined_card(self, c: Client) -> None:
        card, code = c.pool.decline_card(c.rng)
        body = c.pool.payment(c.rng, card=card)
        _, resp = c.call(
            "POST",
            "/payments",
            name="expect 402: declined card",
            json=body,
            expect={402: "card_declined"},
            check=decline_check(code),
            money=payment_op(body),
        )
        # The contract promises no payment id in a decline's body; the payment is findable in its
        # merchant's listing (status=declined). A service that does give the id saves the lookup.
        given = error_of(resp).get("payment_id")
        if given:
            remember(c, "declined_ids", given)
        elif resp is not None:
            remember(c, "declined_merchants", body["merchant_id"])

    def _probe_payment(self, c: Client) -> KnownPayment | None:
        kept = c.probe_memory().get("payments")
        if kept:
            return c.rng.choice(kept)
        payment = self.pay(c, setup=True)
        if payment is not None:
            remember(c, "payments", payment)
        return payment

    def _over_refund(self, c: Client) -> None:
        payment = self._probe_payment(c)
        if payment is None:
            return
        c.call(
            "POST",
            f"/payments/{payment.id}/refunds",
            name="expect 409: over-refund",
            json={"amount": payment.amount + 1},
            expect={409: "refund_exceeds_captured"},
            money=refund_op(payment, payment.amount + 1),
        )

    def _refund_declined(self, c: Client) -> None:
        memory = c.probe_memory()
        ids = memory.get("declined_ids") or []
        pid = c.rng.choice(ids) if ids else self._declined_from_listing(c)
        if pid is None:
            return self._declined_card(c)
        c.call(
            "POST",
            f"/payments/{pid}/refunds",
            name="expect 409: refund of a declined payment",
            json={},
            expect={409: "payment_not_refundable"},
        )

    def _declined_from_listing(self, c: Client) -> str | None:
        merchants = c.probe_memory().get("declined_merchants") or []
        if not merchants:
            return None
        status, page = c.call(
            "GET",
            f"/merchants/{c.rng.choice(merchants)}/transactions?status=declined&limit=5",
            name="GET /merchants/[id]/transactions (declined)",
            expect={200: None},
            check=lambda b: None if isinstance(b.get("data"), list) else "data is not a list",
        )
        rows = page.get("data") if status == 200 and isinstance(page, dict) else None
        ids = [p["id"] for p in rows or [] if isinstance(p, dict) and p.get("status") == "declined" and p.get("id")]
        for pid in ids:
            remember(c, "declined_ids", pid)
        return ids[0] if ids else None

    def _key_reuse(self, c: Client) -> None:
        key = c.idempotency_key()
        body = c.pool.payment(c.rng)
        status, _ = c.call(
            "POST",
            "/payments",
            name="POST /payments (setup)",
            json=body,
            headers={"Idempotency-Key": key},
            expect={201: None},
            money=payment_op(body),
        )
        if status == 201:
            changed = {**body, "amount": body["amount"] + 1}
            c.call(
                "POST",
                "/payments",
                name="expect 409: Idempotency-Key reused",
                json=changed,
                headers={"Idempotency-Key": key},
                expect={409: "idempotency_key_reused"},
                money=payment_op(changed),
            )

    def _oversize_body(self, c: Client) -> None:
        body = {**c.pool.payment(c.rng), "description": "x" * OVERSIZE_BYTES}
        c.call("POST", "/payments", name="expect 413: oversize body", json=body, expect={413: None})


BINDING = ContractBinding()
