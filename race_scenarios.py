"""Race scenarios (the `race` profile): concurrent refunds, concurrent captures, idempotency
storms. Run them next to the main locustfile, naming the classes:

    locust -f locustfile.py,race_scenarios.py RefundRaceUser CaptureRaceUser IdempotencyStormUser
"""

from users.races import CaptureRaceUser, IdempotencyStormUser, RefundRaceUser

__all__ = ["CaptureRaceUser", "IdempotencyStormUser", "RefundRaceUser"]
