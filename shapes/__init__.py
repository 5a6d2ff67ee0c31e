"""LoadTestShape modules. A profile adds one with ``-f locustfile.py,shapes/<name>.py``; a plain
``locust -f locustfile.py`` run never picks one up.

Every shape here honours ``--run-time`` (``RUN_TIME``) as a cap: Locust ignores it for shapes
unless the shape reads it, so :class:`CappedShape` does."""

from __future__ import annotations

from locust import LoadTestShape


class CappedShape(LoadTestShape):
    abstract = True
    use_common_options = True  # the shape reads --run-time itself (and Locust does not warn)

    def tick(self):
        cap = getattr(self.runner.environment.parsed_options, "run_time", None) if self.runner else None
        if cap and self.get_run_time() >= cap:
            return None
        return self.shaped_tick()

    def shaped_tick(self):  # pragma: no cover - every shape overrides it
        raise NotImplementedError
