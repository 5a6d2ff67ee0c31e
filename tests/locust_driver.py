"""Runs suite user classes in-process with Locust's Environment and LocalRunner, and prints
what happened as JSON. Tests call it in a subprocess: importing Locust gevent-patches the
interpreter, which must not happen inside the pytest process that also runs thread-based tests.

    python -m tests.locust_driver run --classes PaymentServiceUser --users 10 --seconds 8
    python -m tests.locust_driver weights
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import gevent
from locust.env import Environment
from locust.user.task import DefaultTaskSet, TaskSet

import locustfile

ID_PREFIXES = {"pay", "re", "auth", "cap", "bre", "batch", "mer"}
task_counts: Counter = Counter()
_orig_default, _orig_taskset = DefaultTaskSet.execute_task, TaskSet.execute_task


def _count(task, owner) -> None:
    user = owner.user if hasattr(owner, "user") else owner
    task_counts[f"{type(user).__name__}.{getattr(task, '__name__', str(task))}"] += 1


def _default(self, task):
    _count(task, self)
    return _orig_default(self, task)


def _taskset(self, task):
    _count(task, self)
    return _orig_taskset(self, task)


DefaultTaskSet.execute_task, TaskSet.execute_task = _default, _taskset


def weights() -> dict:
    out = {}
    for name in locustfile.__all__:
        cls = getattr(locustfile, name)
        counts = Counter(getattr(t, "__name__", str(t)) for t in cls.tasks)
        out[name] = {"class_weight": cls.weight, "tasks": dict(counts)}
    return out


def run(classes: list[str], users: int, seconds: float) -> dict:
    user_classes = [getattr(locustfile, c) for c in classes]
    env = Environment(user_classes=user_classes, events=locustfile.events)
    calls: Counter = Counter()
    failures: Counter = Counter()

    def on_request(request_type, name, response_length, exception, context, url=None, **_kw):
        path = urlsplit(url or "").path or name
        # ids become {id}, so the output names endpoints, not payments
        path = "/".join("{id}" if "_" in seg and seg.split("_")[0] in ID_PREFIXES else seg for seg in path.split("/"))
        calls[f"{request_type} {path}"] += 1
        if exception:
            failures[f"{name}: {str(exception)[:200]}"] += 1

    env.events.request.add_listener(on_request)
    runner = env.create_local_runner()
    env.events.test_start.fire(environment=env)
    runner.start(users, spawn_rate=users)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        gevent.sleep(0.2)
    runner.quit()
    stats = {
        name: {"requests": s.num_requests, "failures": s.num_failures}
        for (name, _method), s in env.stats.entries.items()
    }
    return {
        "stats": stats,
        "tasks": dict(task_counts),
        "calls": dict(calls),
        "failures": dict(failures),
        "errors": [str(e) for e in env.runner.exceptions.values()] if env.runner else [],
        "total": {"requests": env.stats.total.num_requests, "failures": env.stats.total.num_failures},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=("run", "weights"))
    p.add_argument("--classes", nargs="+", default=list(locustfile.__all__))
    p.add_argument("--users", type=int, default=10)
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    result = weights() if args.what == "weights" else run(args.classes, args.users, args.seconds)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
