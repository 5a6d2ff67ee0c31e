"""PaymentServiceUser: the seed's PaymentService mix (payments 70 %, refunds 10 %, status 15 %,
merchant listings 3 %, health 2 %)."""

from __future__ import annotations

from locust import tag, task

from apis.records import Capability, KnownPayment
from users.base import PaymentSuiteUser, RecentItems, needs, settings


class PaymentServiceUser(PaymentSuiteUser):
    weight = 5
    steps = {
        Capability.DECLINE_CARDS: "payments with decline test cards",
        Capability.PARTIAL_REFUNDS: "partial refunds",
    }

    def on_start(self) -> None:
        self.payments = RecentItems(settings.id_store_size)
        self.merchants: list[str] = []

    def _remember(self, payment: KnownPayment | None) -> KnownPayment | None:
        if payment is not None:
            self.payments.add(payment)
            if payment.merchant_id not in self.merchants:
                self.merchants.append(payment.merchant_id)
        return payment

    def _known_payment(self, refundable: bool = False) -> KnownPayment | None:
        """A payment of this run to follow up on; made first (as a setup request) if none is kept."""
        accept = (lambda p: p.refundable > 0) if refundable else None
        found = self.payments.pick(self.rng, accept)
        return found or self._remember(self.api.pay(self, setup=True))

    @tag("payments")
    @task(70)
    @needs(Capability.PAYMENTS)
    def process_payment(self) -> None:
        decline = (
            settings.simulate_failures
            and self.api.has(Capability.DECLINE_CARDS)
            and self.rng.random() < settings.card_decline_rate
        )
        self._remember(self.api.pay(self, decline=decline, mix=True))

    @tag("refunds")
    @task(10)
    @needs(Capability.REFUNDS)
    def process_refund(self) -> None:
        payment = self._known_payment(refundable=True)
        if payment is None:
            return
        partial = payment.refundable > 1 and self.rng.random() < 0.5 and self.api.has(Capability.PARTIAL_REFUNDS)
        self.api.refund(self, payment, self.rng.randint(1, payment.refundable - 1) if partial else None)

    @tag("reads")
    @task(15)
    @needs(Capability.LOOKUP)
    def transaction_status(self) -> None:
        payment = self._known_payment()
        if payment is not None:
            self.api.lookup(self, payment)

    @tag("reads")
    @task(3)
    @needs(Capability.MERCHANT_LISTING)
    def merchant_transactions(self) -> None:
        if not self.merchants and self._known_payment() is None:
            return
        self.api.list_transactions(self, self.rng.choice(self.merchants))

    @tag("health")
    @task(2)
    def health_check(self) -> None:
        self.api.health(self)
