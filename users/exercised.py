"""What the run's API lets the users do: the summary's ``api`` section (which dialect ran, what it
could not exercise) and the removal, at start-up, of user classes with nothing to run against it
(a run whose classes all need operations the API lacks stops with one line, exit 2)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from locust import events

import apis
from apis.base import Binding
from reporting.sections import RunContext, Section, register

log = logging.getLogger("suite.api")
NOTHING_TO_RUN_EXIT = 2


def task_runs(task, binding: Binding) -> bool:
    """Whether the API has every capability the task is marked as needing (``@needs``)."""
    return binding.has(*getattr(task, "needs", ()))


def missing_for(cls: type, binding: Binding) -> list[str]:
    """``Class.task (capability, ...)`` for each of the class's tasks the API cannot run, and
    ``Class: step (capability)`` for each step inside a task it skips (the class's ``steps``)."""
    out = []
    for task in dict.fromkeys(getattr(cls, "tasks", [])):
        lacking = [str(c) for c in sorted(getattr(task, "needs", ())) if c not in binding.capabilities]
        if lacking:
            out.append(f"{cls.__name__}.{getattr(task, '__name__', task)} ({', '.join(lacking)})")
    if runnable(cls, binding):
        for cap, step in getattr(cls, "steps", {}).items():
            if cap not in binding.capabilities:
                out.append(f"{cls.__name__}: {step} ({cap})")
    return out


def runnable(cls: type, binding: Binding) -> bool:
    return any(task_runs(t, binding) for t in getattr(cls, "tasks", []))


class ApiSection(Section):
    name = "api"
    order = 5

    def build(self, run: RunContext) -> dict[str, Any] | None:
        binding = apis.current()
        classes = list(run.environment.user_classes) + list(_REMOVED)
        not_exercised = [m for cls in classes for m in missing_for(cls, binding)]
        return {
            "dialect": binding.name,
            "capabilities": sorted(str(c) for c in binding.capabilities),
            "not_exercised": not_exercised,
            "classes_not_run": [cls.__name__ for cls in _REMOVED],
        }

    def markdown(self, data: dict[str, Any]) -> list[str]:
        lines = [f"### API: {data['dialect']}", ""]
        if data["not_exercised"]:
            lines.append("- not exercised (not in this API): " + "; ".join(data["not_exercised"]))
        else:
            lines.append("- every task of the run's user classes ran against this API")
        return lines


register(ApiSection())
_REMOVED: list[type] = []


@events.init.add_listener
def _drop_classes_with_nothing_to_run(environment, **_kwargs) -> None:
    binding = apis.current()
    keep = [cls for cls in environment.user_classes if runnable(cls, binding)]
    dropped = [cls for cls in environment.user_classes if cls not in keep]
    if not dropped:
        return
    if not keep:
        names = ", ".join(cls.__name__ for cls in dropped)
        reasons = "; ".join(m for cls in dropped for m in missing_for(cls, binding))
        print(
            f"nothing to run: API_DIALECT={binding.name} has none of the operations of {names} ({reasons})",
            file=sys.stderr,
        )
        sys.exit(NOTHING_TO_RUN_EXIT)
    _REMOVED.extend(dropped)
    environment.user_classes[:] = keep
    if environment.available_user_classes:
        for cls in dropped:
            environment.available_user_classes.pop(cls.__name__, None)
    log.info("not run against %s (no operation of theirs exists): %s", binding.name, [c.__name__ for c in dropped])
