"""RealisticTrafficUser: people, not a request mix. Each user is one persona for its life:

- casual: long think times, a simple payment now and then, sometimes checks it;
- power: frequent payments and status checks, refunds some (``REFUND_PROBABILITY``);
- business: a merchant's back office: transaction listings, reports, bank settlements.

Shares come from ``PERSONA_SHARES``; think times scale with ``THINK_TIME_SCALE``. A step whose
operation the API lacks is skipped (a business user of an API without listings still reports)."""

from __future__ import annotations

from locust import tag, task

from apis.records import Capability, KnownPayment
from users.base import PaymentSuiteUser, RecentItems, needs, settings

# persona -> think time range in seconds (before THINK_TIME_SCALE)
THINK_TIMES = {"casual": (8.0, 30.0), "power": (1.0, 4.0), "business": (3.0, 10.0)}


class RealisticTrafficUser(PaymentSuiteUser):
    weight = 2
    steps = {
        Capability.DECLINE_CARDS: "payments with decline test cards",
        Capability.LOOKUP: "status checks (casual, power)",
        Capability.REFUNDS: "refunds (power)",
        Capability.PARTIAL_REFUNDS: "partial refunds (power)",
        Capability.MERCHANT_LISTING: "transaction listings (business)",
        Capability.REPORT: "reports (business)",
        Capability.BANK_SETTLEMENT: "bank settlements (business)",
    }

    def on_start(self) -> None:
        shares = settings.personas()
        roll, acc = self.rng.random(), 0.0
        self.persona = "casual"
        for name, share in shares.items():
            acc += share
            if roll < acc and share > 0:
                self.persona = name
                break
        self.customer = self.pool.random_customer(self.rng)
        self.merchant = self.pool.random_merchant(self.rng)  # a business user's own shop
        self.payments = RecentItems(min(settings.id_store_size, 100))

    def wait_time(self) -> float:
        low, high = THINK_TIMES[self.persona]
        return self.rng.uniform(low, high) * settings.think_time_scale

    def _pay(self) -> KnownPayment | None:
        if (
            settings.simulate_failures
            and self.api.has(Capability.DECLINE_CARDS)
            and self.rng.random() < settings.card_decline_rate
        ):
            self.api.pay(self, customer=self.customer, decline=True)
            return None
        payment = self.api.pay(self, customer=self.customer)
        if payment:
            self.payments.add(payment)
        return payment

    @tag("realistic")
    @task
    @needs(Capability.PAYMENTS)
    def act(self) -> None:
        getattr(self, f"_{self.persona}")()

    def _casual(self) -> None:
        payment = self._pay()
        if payment and self.api.has(Capability.LOOKUP) and self.rng.random() < 0.3:
            self.api.lookup(self, payment)

    def _power(self) -> None:
        roll = self.rng.random()
        if roll < 0.55 or not len(self.payments) or not self.api.has(Capability.LOOKUP):
            payment = self._pay()
            if payment and self.api.has(Capability.REFUNDS) and self.rng.random() < settings.refund_probability:
                partial = payment.amount > 1 and self.rng.random() < 0.5 and self.api.has(Capability.PARTIAL_REFUNDS)
                self.api.refund(self, payment, self.rng.randint(1, payment.amount - 1) if partial else None)
        else:
            payment = self.payments.pick(self.rng)
            if payment:
                self.api.lookup(self, payment)

    def _business(self) -> None:
        if not len(self.payments):  # the shop needs at least one sale of its own to report on
            payment = self.api.pay(self, merchant=self.merchant, customer=self.customer, setup=True)
            if payment:
                self.payments.add(payment)
            return
        steps = [
            (0.5, Capability.MERCHANT_LISTING, lambda: self.api.list_transactions(self, self.merchant.id, max_pages=3)),
            (0.3, Capability.REPORT, lambda: self.api.report(self, self.merchant.id)),
            (0.2, Capability.BANK_SETTLEMENT, self._settlement),
        ]
        offered = [(share, step) for share, cap, step in steps if self.api.has(cap)]
        if not offered:
            self._pay()  # an API with none of the back-office operations: the shop keeps selling
            return
        self.rng.choices([s for _, s in offered], [w for w, _ in offered])[0]()

    def _settlement(self) -> None:
        self.api.settlement(self, self.merchant.id, by="business")
