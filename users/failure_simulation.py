"""FailureSimulationUser: bad input and error paths. Each request states the error it expects;
getting it is a success, anything else (a 500, a 2xx, another error) is a failure naming expected
vs got.

Which probes run, and what each expects, is the dialect's (``self.api.probes()``): only what that
API promises is checked (an error code only where its page names one, a validation detail
naming the field or a path under it, in whatever shape)."""

from __future__ import annotations

from locust import tag, task

from users.base import PaymentSuiteUser, settings

__all__ = ["FailureSimulationUser"]


class FailureSimulationUser(PaymentSuiteUser):
    weight = 1

    def on_start(self) -> None:
        self.probes = [p for p in self.api.probes() if self.api.has(*p.needs)]
        self.probe_weights = [p.weight for p in self.probes]

    @tag("failures")
    @task
    def probe(self) -> None:
        """One of the dialect's probes, by its weight."""
        if self.probes:
            self.rng.choices(self.probes, self.probe_weights)[0].run(self)


if not settings.simulate_failures:
    FailureSimulationUser.weight = 0
