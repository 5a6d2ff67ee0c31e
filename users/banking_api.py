"""BankingAPIUser: the seed's BankingAPI mix (authorize 40, capture 25, refund 15, status 10,
settlements 5, health 3, batches 2), on the user's BankingAPI session (``BANKING_API_URL``)."""

from __future__ import annotations

from collections import deque

from locust import tag, task

from apis.records import Capability, Held
from users.base import PaymentSuiteUser, RecentItems, needs, settings


class BankingAPIUser(PaymentSuiteUser):
    weight = 2

    def on_start(self) -> None:
        self.pending: deque[Held] = deque(maxlen=settings.id_store_size)  # authorizations not captured yet
        self.captures = RecentItems(settings.id_store_size)
        self.txn_ids = RecentItems(settings.id_store_size)  # (held, kind) for status lookups
        self.merchants: list[str] = []

    def _authorize(self, setup: bool = False) -> Held | None:
        held = self.api.authorize(self, setup=setup)
        if held is not None:
            self.txn_ids.add((held, "authorization"))
            if held.merchant_id not in self.merchants:
                self.merchants.append(held.merchant_id)
        return held

    def _capture(self, auth: Held, setup: bool = False) -> Held | None:
        amount = auth.amount if self.rng.random() < 0.8 else self.rng.randint(1, auth.amount)
        cap = self.api.capture(self, auth, amount, setup=setup)
        if cap is not None:
            self.captures.add(cap)
            self.txn_ids.add((cap, "capture"))
        return cap

    @tag("banking", "authorize")
    @task(40)
    @needs(Capability.BANK_AUTHORIZE)
    def authorize(self) -> None:
        if settings.simulate_failures and self.rng.random() < settings.card_decline_rate:
            self.api.authorize(self, decline=True)
            return
        held = self._authorize()
        if held:
            self.pending.append(held)

    @tag("banking", "capture")
    @task(25)
    @needs(Capability.BANK_AUTHORIZE, Capability.BANK_CAPTURE)
    def capture(self) -> None:
        auth = self.pending.popleft() if self.pending else self._authorize(setup=True)
        if auth:
            self._capture(auth)

    @tag("banking", "refunds")
    @task(15)
    @needs(Capability.BANK_AUTHORIZE, Capability.BANK_CAPTURE, Capability.BANK_REFUND)
    def refund(self) -> None:
        cap = self.captures.pick(self.rng, lambda c: c.amount > c.refunded)
        if cap is None:
            auth = self._authorize(setup=True)
            cap = auth and self._capture(auth, setup=True)
            if cap is None:
                return
        left = cap.amount - cap.refunded
        amount = left if left == 1 or self.rng.random() < 0.5 else self.rng.randint(1, left - 1)
        refund = self.api.bank_refund(self, cap, amount)
        if refund is not None:
            self.txn_ids.add((refund, "refund"))

    @tag("banking", "reads")
    @task(10)
    @needs(Capability.BANK_AUTHORIZE, Capability.BANK_STATUS)
    def transaction_status(self) -> None:
        known = self.txn_ids.pick(self.rng)
        if known is None:
            held = self._authorize(setup=True)
            if held is None:
                return
            known = (held, "authorization")
        self.api.bank_status(self, *known)

    @tag("banking", "reports")
    @task(5)
    @needs(Capability.BANK_SETTLEMENT)
    def settlement_report(self) -> None:
        merchant = self.rng.choice(self.merchants) if self.merchants and self.rng.random() < 0.7 else None
        self.api.settlement(self, merchant)

    @tag("banking", "health")
    @task(3)
    @needs(Capability.BANKING_API)
    def health_check(self) -> None:
        self.api.bank_health(self)

    @tag("banking", "batch")
    @task(2)
    @needs(Capability.BANK_BATCH)
    def batch(self) -> None:
        """A batch of new authorizations plus captures of pending ones."""
        pending = []
        while self.pending and len(pending) < 10:
            pending.append(self.pending.popleft())
        self.pending.extendleft(reversed(self.api.batch(self, pending)))
