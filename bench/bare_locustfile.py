"""The baseline the suite is measured against: the cheapest possible FastHttpUser."""

from locust import FastHttpUser, constant, task


class BareUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self) -> None:
        self.client.get("/bare")
