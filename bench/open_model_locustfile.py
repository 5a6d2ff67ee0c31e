"""The bench's payments-only user (bench/open_model.py): POST /payments with an approved card, the
request the k6 reference sends too. As a closed-model user it waits MIN/MAX_WAIT_TIME between
payments; as RATE_CLASS of the open model each arrival is one payment."""

from locust import FastHttpUser, constant, task

from users.base import PaymentSuiteUser


class PaymentOnlyUser(PaymentSuiteUser):
    weight = 1

    @task
    def pay(self) -> None:
        self.api.pay(self)


__all__ = ["BareGetUser", "PaymentOnlyUser"]


class BareGetUser(FastHttpUser):
    """GET /bare of the bench's nginx, nothing checked: the request alone, to tell the rate
    engine's own cost per arrival from the suite's cost per request (bench/open_model.py)."""

    weight = 1
    wait_time = constant(0)

    @task
    def bare(self) -> None:
        self.client.get("/bare", name="bare")
