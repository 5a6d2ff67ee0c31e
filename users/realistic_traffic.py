"""RealisticTrafficUser: people, not a request mix. Each user is one persona for its life:

- casual: long think times, a simple payment now and then, sometimes checks it;
- power: frequent payments and status checks, refunds some (``REFUND_PROBABILITY``);
- business: a merchant's back office: transaction listings, reports, bank settlements.

Shares come from ``PERSONA_SHARES``; think times scale with ``THINK_TIME_SCALE``."""

from __future__ import annotations

from datetime import date

from locust import tag, task

from users import payment_api as api
from users.base import PaymentSuiteUser, RecentItems, settings

# persona -> think time range in seconds (before THINK_TIME_SCALE)
THINK_TIMES = {"casual": (8.0, 30.0), "power": (1.0, 4.0), "business": (3.0, 10.0)}


class RealisticTrafficUser(PaymentSuiteUser):
    weight = 2

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

    def _pay(self) -> api.KnownPayment | None:
        if settings.simulate_failures and self.rng.random() < settings.card_decline_rate:
            api.make_payment(self, customer=self.customer, decline=self.pool.decline_card(self.rng))
            return None
        payment = api.make_payment(self, customer=self.customer)
        if payment:
            self.payments.add(payment)
        return payment

    @tag("realistic")
    @task
    def act(self) -> None:
        getattr(self, f"_{self.persona}")()

    def _casual(self) -> None:
        payment = self._pay()
        if payment and self.rng.random() < 0.3:
            api.lookup(self, payment)

    def _power(self) -> None:
        roll = self.rng.random()
        if roll < 0.55 or not len(self.payments):
            payment = self._pay()
            if payment and self.rng.random() < settings.refund_probability:
                partial = payment.amount > 1 and self.rng.random() < 0.5
                api.refund(self, payment, self.rng.randint(1, payment.amount - 1) if partial else None)
        else:
            payment = self.payments.pick(self.rng)
            if payment:
                api.lookup(self, payment)

    def _business(self) -> None:
        if not len(self.payments):  # the shop needs at least one sale of its own to report on
            payment = api.make_payment(
                self, merchant=self.merchant, customer=self.customer, name="POST /payments (setup)"
            )
            if payment:
                self.payments.add(payment)
            return
        roll = self.rng.random()
        if roll < 0.5:
            api.list_merchant_transactions(self, self.merchant.id, max_pages=3)
        elif roll < 0.8:
            api.generate_report(self, self.merchant.id)
        else:
            self._settlement()

    def _settlement(self) -> None:
        url = (
            f"{settings.banking_api_url}/v1/settlements?date={date.today().isoformat()}&merchant_id={self.merchant.id}"
        )
        self.call(
            "GET",
            url,
            name="GET /v1/settlements (business)",
            expect={200: None},
            check=lambda b: None if isinstance(b, dict) and "net" in b else "missing net",
        )
