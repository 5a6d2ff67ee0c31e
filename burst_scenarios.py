"""Burst scenario (the `burst` profile, seed 004's ``--total 1000 --concurrent 100``): exactly
TOTAL payments with CONCURRENCY in flight, then the run ends; seed 004's report in the summary.

    locust -f locustfile.py,burst_scenarios.py --headless -u 1 -t 5m BurstUser
"""

from locust import LoadTestShape

from users.open_model import BURST, BurstUser


class BurstShape(LoadTestShape):
    """One BurstUser until the burst is done; then the run ends (RUN_TIME is a cap)."""

    def tick(self):
        return None if BURST.done else (1, 1)


__all__ = ["BurstShape", "BurstUser"]
