"""A run's Locust command, checked before anything starts (``python -m profiles plan`` calls
:func:`check` on the exact command it built): nothing is started and no report file is touched
when a check fails, and each problem is one line (``PlanError``; the runner exits 2).

- Locust's own parser reads the command, with the options the locustfiles add (``options.py``),
  Locust's config files and its ``LOCUST_*`` variables, as ``locust`` itself will;
- the user classes it names exist, and one at least has an operation in the API (``API_DIALECT``);
- ``--tags`` / ``--exclude-tags`` leave every class that runs a task of its own (Locust would
  otherwise raise "No tasks defined" on every iteration of a class they strip bare);
- ``RATE_CLASS`` can run, where the open model's ``RateUser`` is among the classes;
- the SLO file (``--slo-file`` or ``SLO_FILE``) and the ``SLO_*`` limits read."""

from __future__ import annotations

import types
from typing import Any


class PlanError(ValueError):
    """A command that cannot run; the message is the one line to print."""


def _parse(argv: list[str]) -> tuple[Any, dict[str, type]]:
    """(Locust's options, the available user classes), as ``locust.main`` gets them."""
    from locust.argument_parser import get_parser, parse_locustfile_option
    from locust.main import get_locustfiles_locally, merge_locustfiles_content

    def refuse(message: str) -> None:
        raise PlanError(f"locust arguments: {message.splitlines()[0]}")

    try:
        locustfiles = get_locustfiles_locally(parse_locustfile_option(argv))
        available = merge_locustfiles_content(locustfiles)[0]
    except SystemExit as exc:  # Locust reports a missing locustfile itself, then exits
        raise PlanError(f"locust arguments: cannot load the locustfiles of {argv!r} (exit {exc.code})") from None
    parser = get_parser()
    parser.error = refuse  # one line instead of the usage text and exit 2
    try:
        options = parser.parse_args(args=argv)
    except SystemExit:  # --help / --version print and exit: nothing to run
        raise PlanError("locust arguments: --help/--version print and exit; run .venv/bin/locust --help") from None
    if options.stats_history_enabled and options.csv_prefix is None:
        refuse("'--csv-full-history' requires '--csv'")
    return options, available


def _tags_of(cls: type) -> str:
    return ", ".join(sorted({t for task in cls.tasks for t in getattr(task, "locust_tag_set", ())})) or "none"


def _tasks_left(cls: type, tags: set[str] | None, exclude: set[str] | None) -> list:
    """The class's plain tasks that Locust's tag filter keeps (``filter_tasks_by_tags``)."""
    kept = []
    for task in getattr(cls, "tasks", []):
        own = getattr(task, "locust_tag_set", set())
        if (tags is None or own & tags) and not (exclude and own & exclude):
            kept.append(task)
    return kept


def _check_classes(options: Any, available: dict[str, type]) -> list[type]:
    """The classes that will run (after the API's own removal of classes it cannot serve)."""
    import apis
    from users.exercised import runnable, task_runs

    wanted = list(options.user_classes or [])
    missing = [name for name in wanted if name not in available]
    if missing:
        raise PlanError(f"unknown user class(es) {', '.join(missing)}; available: {', '.join(available)}")
    classes = [available[name] for name in wanted] if wanted else list(available.values())
    binding = apis.current()
    running = [cls for cls in classes if runnable(cls, binding)]
    if not running:
        names = ", ".join(cls.__name__ for cls in classes)
        raise PlanError(f"nothing to run: API_DIALECT={binding.name} has none of the operations of {names}")
    tags = set(options.tags) if options.tags else None
    exclude = set(options.exclude_tags) if options.exclude_tags else None
    if tags is None and exclude is None:
        return running
    given = " ".join(
        [*(["--tags", *sorted(tags)] if tags else []), *(["--exclude-tags", *sorted(exclude)] if exclude else [])]
    )
    bare = [cls for cls in running if not [t for t in _tasks_left(cls, tags, exclude) if task_runs(t, binding)]]
    if bare:
        what = "; ".join(f"{cls.__name__} (its tags: {_tags_of(cls)})" for cls in bare)
        if any(cls.__name__ in ("RateUser", "BurstUser") for cls in bare):
            hint = "; the open model's tasks come from RATE_CLASS, which tags do not filter: pick the class instead"
        else:
            hint = "; name classes whose tasks carry them before the tags (basic PaymentServiceUser --tags payments)"
        raise PlanError(f"{given} leaves no task to run in {what}{hint}")
    return running


def _check_rate_class(classes: list[type], available: dict[str, type]) -> None:
    if not any(cls.__name__ == "RateUser" for cls in classes):
        return
    from config import get_settings
    from users.open_model import resolve_class

    try:
        resolve_class(types.SimpleNamespace(available_user_classes=available), get_settings().rate_class)
    except ValueError as exc:
        raise PlanError(f"config error: {exc}") from None


def _check_slo(options: Any) -> None:
    from config import get_settings
    from reporting.thresholds import ThresholdError, load_thresholds

    settings = get_settings()
    try:
        load_thresholds(getattr(options, "slo_file", "") or settings.slo_file, settings.slo_overrides())
    except ThresholdError as exc:
        raise PlanError(f"config error: {exc}") from None


def check(argv: list[str]) -> None:
    """Raise PlanError naming the first problem of the Locust arguments ``argv`` (after
    ``python -m locust``); return when the run can start."""
    options, available = _parse(argv)
    classes = _check_classes(options, available)
    _check_rate_class(classes, available)
    _check_slo(options)
