"""PaymentServiceUser: the seed's PaymentService mix (payments 70 %, refunds 10 %, status 15 %,
merchant listings 3 %, health 2 %)."""

from __future__ import annotations

from locust import tag, task

from users import payment_api as api
from users.base import PaymentSuiteUser, RecentItems, settings

ALIAS_SHARE = 0.1  # share of payments sent to the seed-001 alias POST /pay


class PaymentServiceUser(PaymentSuiteUser):
    weight = 5

    def on_start(self) -> None:
        self.payments = RecentItems(settings.id_store_size)
        self.merchants: list[str] = []

    def _remember(self, payment: api.KnownPayment | None) -> api.KnownPayment | None:
        if payment is not None:
            self.payments.add(payment)
            if payment.merchant_id not in self.merchants:
                self.merchants.append(payment.merchant_id)
        return payment

    def _known_payment(self, refundable: bool = False) -> api.KnownPayment | None:
        """A payment of this run to follow up on; made first (as a setup request) if none is kept."""
        accept = (lambda p: p.refundable > 0) if refundable else None
        found = self.payments.pick(self.rng, accept)
        return found or self._remember(api.make_payment(self, name="POST /payments (setup)"))

    @tag("payments")
    @task(70)
    def process_payment(self) -> None:
        path = "/pay" if self.rng.random() < ALIAS_SHARE else "/payments"
        if settings.simulate_failures and self.rng.random() < settings.card_decline_rate:
            api.make_payment(self, path=path, decline=self.pool.decline_card(self.rng))
        else:
            self._remember(api.make_payment(self, path=path))

    @tag("refunds")
    @task(10)
    def process_refund(self) -> None:
        payment = self._known_payment(refundable=True)
        if payment is None:
            return
        partial = payment.refundable > 1 and self.rng.random() < 0.5
        api.refund(self, payment, self.rng.randint(1, payment.refundable - 1) if partial else None)

    @tag("reads")
    @task(15)
    def transaction_status(self) -> None:
        payment = self._known_payment()
        if payment is not None:
            api.lookup(self, payment)

    @tag("reads")
    @task(3)
    def merchant_transactions(self) -> None:
        if not self.merchants and self._known_payment() is None:
            return
        api.list_merchant_transactions(self, self.rng.choice(self.merchants))

    @tag("health")
    @task(2)
    def health_check(self) -> None:
        api.health(self)
