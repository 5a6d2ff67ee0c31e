"""Two corrections to how Locust runs a test (imported by ``locustfile.py``).

- **The run-time limit counts from the start.** Locust arms its ``-t`` timer on gevent's cached
  clock, which stands still while the process blocks before the event loop first runs (imports,
  the data pool, init listeners). A run that sends nothing during start-up (any API but the bundled
  sandbox's, whose reconciliation snapshot makes requests) ended that many seconds early: 2.9 s of a
  5 s smoke on a loaded 2-core machine. The clock is refreshed at the end of ``init``.
- **An exception raised over and over is logged once.** Locust logs every occurrence with its
  traceback: a task that fails on every iteration (a class ``--tags`` stripped bare raised "No
  tasks defined" 364,938 times in 60 s) floods the output. The first occurrence of each (type,
  place) is logged; repeats are counted and reported once, with the count, when the run ends
  (Locust's exceptions table counts them too)."""

from __future__ import annotations

import logging
import traceback
from collections import Counter

import gevent
from locust import events

LOOP_LOGGERS = ("locust.user.task", "locust.user.users")  # where Locust logs a task's exception


class RepeatedExceptions(logging.Filter):
    """Lets the first record of each exception (type and the line that raised it) through and
    counts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()

    @staticmethod
    def key(record: logging.LogRecord) -> str | None:
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) != 2 or not isinstance(args[0], BaseException):
            return None
        exc = args[0]
        frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        return f"{type(exc).__name__} at {where}: {str(exc)[:160]}"

    def filter(self, record: logging.LogRecord) -> bool:
        key = self.key(record)
        if key is None:
            return True
        self.seen[key] += 1
        return self.seen[key] == 1

    def summary(self) -> list[str]:
        return [f"{key} (raised {n} times; logged once above)" for key, n in self.seen.items() if n > 1]


REPEATS = RepeatedExceptions()
for _name in LOOP_LOGGERS:
    logging.getLogger(_name).addFilter(REPEATS)


@events.init.add_listener
def _refresh_clock(**_kwargs) -> None:
    gevent.get_hub().loop.update_now()  # Locust arms the -t timer right after init


@events.quitting.add_listener
def _report_repeats(**_kwargs) -> None:
    for line in REPEATS.summary():
        logging.getLogger("suite").error("repeated exception: %s", line)
