"""The baselines the suite is measured against: the cheapest possible FastHttpUser (a bodiless
GET), and the cheapest POST of a payment (pre-built body, no checks), which shows how much of
the gap is the suite's own logic and how much is simply sending and reading payment bodies."""

from locust import FastHttpUser, constant, task

PAYMENT = (
    b'{"amount":1999,"currency":"USD","merchant_id":"mer_bench","customer":{"id":"cus_bench"},'
    b'"card":{"number":"4242424242424242","exp_month":12,"exp_year":2031,"cvc":"123"}}'
)


class BareUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self) -> None:
        self.client.get("/bare")


class BarePostUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def post(self) -> None:
        self.client.post("/payments", data=PAYMENT, headers={"Content-Type": "application/json"})
