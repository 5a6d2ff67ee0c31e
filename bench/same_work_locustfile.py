"""Plain Locust doing the suite's payment task by hand: the middle row of the efficiency bench.

What the suite's ``PaymentServiceUser.process_payment`` does with ``--tags payments`` and
``SIMULATE_FAILURES=false``, written the way a Locust user would write it: POST a payment (one in
ten to the ``/pay`` alias, as the contract binding's traffic mix does) with the same headers
(bearer token, Accept, JSON, a fresh Idempotency-Key) and the binding's checks (201; id, status,
amount, currency, card, refunded_amount present; status succeeded; amount, currency and last4
echoed; the full card number not in the answer). The bodies are the suite's own, drawn from its
data pool by bench/generator.py into the JSON file named by ``BENCH_BODIES``."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

from locust import FastHttpUser, constant, task

BODIES: list[dict] = json.loads(Path(os.environ["BENCH_BODIES"]).read_text(encoding="utf-8"))
ALIAS_EVERY = 10  # the binding sends ENTRY_ALIAS_SHARE = 10 % of the mix's payments to POST /pay
FIELDS = ("id", "status", "amount", "currency", "card", "refunded_amount")
_user_ids = itertools.count()


def problem(status: int, text: str, answer: dict | None, sent: dict) -> str | None:
    """The binding's verdict on a payment answer, as one fixed reason (None when it passes)."""
    if status != 201:
        return "expected 201"
    if not isinstance(answer, dict) or any(f not in answer for f in FIELDS):
        return "missing fields"
    number = sent["card"]["number"]
    if number in text:
        return "response contains the full card number"
    if answer["status"] != "succeeded":
        return "status is not succeeded"
    if answer["amount"] != sent["amount"] or answer["currency"] != sent["currency"]:
        return "amount/currency differ from the request"
    if not isinstance(answer["card"], dict) or answer["card"].get("last4") != number[-4:]:
        return "card.last4 does not match"
    return None


class SameWorkUser(FastHttpUser):
    wait_time = constant(0)
    default_headers = {
        "Authorization": os.environ.get("BENCH_AUTH", "Bearer test_token_123456789"),
        "Accept": "application/json",
    }

    def on_start(self) -> None:
        self.number = next(_user_ids)
        self.sent = 0

    @task
    def pay(self) -> None:
        self.sent += 1
        body = BODIES[(self.number * 7919 + self.sent) % len(BODIES)]
        path = "/pay" if self.sent % ALIAS_EVERY == 0 else "/payments"
        key = {"Idempotency-Key": f"plain-{self.number}-{self.sent}"}
        with self.client.post(path, json=body, headers=key, catch_response=True) as resp:
            try:
                answer = resp.json() if resp.status_code == 201 else None
            except ValueError:
                answer = None
            reason = problem(resp.status_code, resp.text or "", answer, body)
            if reason:
                resp.failure(reason)
