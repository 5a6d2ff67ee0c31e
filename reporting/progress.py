"""The live progress line of a headless run, and Locust's request table once at the end.

Locust's own table every 2 s (513 lines for a 30-second smoke) is off by default: the runner
passes ``--only-summary`` unless ``LOCUST_TABLE=1``. Instead, one line shows how far the run is
and how it is going: elapsed/total (closed model and ``rate``) or payments sent/total (``burst``),
users or arrivals, requests/s, p95, failures and the money so far. On a terminal it is a ``rich``
progress bar redrawn every second (a bar wherever the end is known: ``RUN_TIME``, ``TOTAL``); on
anything else (CI, a pipe, a test) a plain line every :data:`PLAIN_INTERVAL_S` seconds.

The line is read from Locust's stats and the ledger's counters by a greenlet on a timer: nothing
runs per request. Workers show nothing (the master does); the web UI shows its own.

Locust prints its final table only without ``--json-file``, which the runner always passes: so the
table is printed here, once, when the run ends (before the verdict; on a master after it, once the
workers' last reports are in)."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

import gevent
from locust import events
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from reporting import latency

PLAIN_INTERVAL_S = 10.0  # a non-terminal gets a line this often
# The end table's rows on the terminal: the busiest names, the rest folded into one row (a smoke has
# ~32 names; the 40-line smoke cannot hold them all). LOCUST_TABLE=1 prints every row; the
# CSV, the JSON and the summary always have every name.
MAX_TABLE_ROWS = 20
TTY_INTERVAL_S = 1.0  # a terminal's bar is redrawn this often
# Locust's INFO lines the progress line replaces (users, run time, a shape's start and stop).
REPLACED = ("Ramping to ", "All users spawned", "Run time limit set to ", "Shape worker starting", "Shape test st")
# A burst's shape holds "1 users at 1.00 spawn rate" until the burst is done: nothing a person asked for.
BURST_NOISE = ("Shape test updating to ",)

log = logging.getLogger("suite.progress")


@dataclass
class Figures:
    """What one progress line shows. ``done``/``total`` drive the bar (seconds, or payments)."""

    done: float
    total: float | None
    position: str  # "0:12/0:30" or "412/1000 payments"
    load: str  # "5 users", "98.4 arrivals/s (target 100)", "100 in flight"
    rps: float
    p95_ms: float | None
    requests: int
    failures: int
    money: str  # "" where nothing is known yet
    open_model: str = ""  # rate: "dropped 0, late 3"


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def money_text(counts) -> str:
    """The ledger's counts so far ("payment:succeeded" -> n): paid, declined, unknown outcomes."""
    paid = counts.get("payment:succeeded", 0)
    declined = counts.get("payment:declined", 0) + counts.get("payment:rejected", 0)
    unknown = counts.get("payment:unknown", 0)
    if not (paid or declined or unknown):
        return ""
    return f"payments {paid} ok, {declined} declined, {unknown} unknown"


def kind_of(environment) -> str:
    names = {c.__name__ for c in environment.user_classes}
    if "BurstUser" in names:
        return "burst"
    if "RateUser" in names:
        return "rate"
    return "closed"


def read(environment, kind: str, started: float) -> Figures:
    """The figures now, from Locust's stats (the master's hold its workers'), the ledger and the
    open-model state."""
    from money.ledger import LEDGER

    runner = environment.runner
    total = runner.stats.total
    elapsed = time.monotonic() - started
    run_time = getattr(environment.parsed_options, "run_time", None)
    common = {
        "rps": total.current_rps,
        "p95_ms": latency.entry_figures(total)["p95_ms"],
        "requests": total.num_requests,
        "failures": total.num_failures,
        "money": money_text(LEDGER.counts),
    }
    if kind == "burst":
        from users.open_model import BURST

        sent, goal = BURST.claimed, BURST.total or None
        position = f"{sent}/{goal} payments" if goal else "starting"
        load = f"{BURST.concurrency} in flight" if BURST.concurrency else ""
        return Figures(sent, goal, position, load, **common)
    position = f"{clock(elapsed)}/{clock(run_time)}" if run_time else clock(elapsed)
    if kind == "rate":
        from config import get_settings
        from users.open_model import STATE

        counts = STATE.totals()
        target = get_settings().target_rps
        sent = counts.get("sent", 0)
        load = f"{sent / elapsed if elapsed > 0 else 0:.1f} arrivals/s (target {target:g})"
        dropped, late = int(counts.get("dropped", 0)), int(counts.get("late", 0))
        return Figures(elapsed, run_time, position, load, open_model=f"dropped {dropped}, late {late}", **common)
    return Figures(elapsed, run_time, position, f"{runner.user_count} users", **common)


def describe(f: Figures) -> str:
    """Everything after the position: one definition for the bar and the plain line."""
    parts = [f.load] if f.load else []
    parts.append(f"{f.rps:.1f} req/s")
    parts.append(f"p95 {f.p95_ms:.1f} ms" if f.p95_ms is not None else "p95 -")
    share = f" ({100 * f.failures / f.requests:.1f} %)" if f.requests else ""
    parts.append(f"{f.failures} failures{share}")
    if f.open_model:
        parts.append(f.open_model)
    if f.money:
        parts.append(f.money)
    return " | ".join(parts)


def plain_line(f: Figures) -> str:
    percent = f" ({100 * min(1.0, f.done / f.total):.0f} %)" if f.total else ""
    return f"progress {f.position}{percent} | {describe(f)}"


class Plain:
    """A line every ``interval`` seconds, on stderr with the log."""

    interval = PLAIN_INTERVAL_S

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.last: float | None = None

    def start(self) -> None:
        self.last = time.monotonic()

    def show(self, f: Figures) -> None:
        now = time.monotonic()
        if self.last is not None and now - self.last < self.interval - 0.05:
            return
        self.last = now
        print(plain_line(f), file=self.stream, flush=True)

    def stop(self, f: Figures | None) -> None:
        pass  # the final table follows: no last line


class Bar:
    """rich's progress bar, redrawn in place; log lines are printed above it (the log handlers
    that wrote to the terminal write through rich's console while the bar is up)."""

    interval = TTY_INTERVAL_S

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn
        from rich.table import Column

        self.console = Console(file=sys.stderr, soft_wrap=True)  # log lines keep their own length
        self.progress = Progress(
            TextColumn("{task.fields[position]}", markup=False, table_column=Column(no_wrap=True, min_width=9)),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[figures]}", markup=False, table_column=Column(no_wrap=True, overflow="ellipsis")),
            console=self.console,
            auto_refresh=False,  # redrawn by this module's greenlet, not a thread of rich's
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self.task = None
        self._handlers: list[tuple[logging.StreamHandler, object]] = []

    def start(self) -> None:
        original = sys.stderr
        self.progress.start()
        for handler in _stream_handlers():
            if handler.stream in (original, sys.__stderr__):
                self._handlers.append((handler, handler.setStream(sys.stderr)))  # rich's proxy now
        self.task = self.progress.add_task("run", total=None, position="starting", figures="")

    def show(self, f: Figures) -> None:
        self.progress.update(self.task, completed=f.done, total=f.total, position=f.position, figures=describe(f))
        self.progress.refresh()

    def stop(self, f: Figures | None) -> None:
        if f is not None:
            self.show(f)
        self.progress.stop()
        for handler, stream in self._handlers:
            handler.setStream(stream)
        self._handlers.clear()


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in ("locust", "locust.stats_logger"))]
    return [h for lg in loggers for h in lg.handlers if type(h) is logging.StreamHandler]


class _Replaced(logging.Filter):
    """Drops Locust's log lines that start with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self.prefixes))


class Live:
    """The progress line of one run: started with the test, stopped when it stops."""

    def __init__(self, environment, renderer) -> None:
        self.environment = environment
        self.renderer = renderer
        self.kind = kind_of(environment)
        self.started = time.monotonic()
        self.greenlet: gevent.Greenlet | None = None

    def figures(self) -> Figures | None:
        try:
            return read(self.environment, self.kind, self.started)
        except Exception as exc:  # the progress line never breaks a run
            log.debug("progress: %s", exc)
            return None

    def _loop(self) -> None:
        while True:
            gevent.sleep(self.renderer.interval)
            f = self.figures()
            if f is not None:
                self.renderer.show(f)

    def start(self) -> None:
        self.started = time.monotonic()
        self.renderer.start()
        self.greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self.greenlet is None:
            return
        self.greenlet.kill(block=False)
        self.greenlet = None
        self.renderer.stop(self.figures())


LIVE: Live | None = None
_ENVIRONMENT = None  # the run's, for the quit event (which does not carry it)
_TABLE_PRINTED = False


def wanted(environment) -> bool:
    """A headless master or local run whose Locust table is off (``--only-summary``)."""
    opts = environment.parsed_options
    if opts is None or not getattr(opts, "headless", False) or isinstance(environment.runner, WorkerRunner):
        return False
    return bool(getattr(opts, "only_summary", False))


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    global LIVE, _ENVIRONMENT
    _ENVIRONMENT = environment
    opts = environment.parsed_options
    if opts is None or isinstance(environment.runner, WorkerRunner):
        return
    if wanted(environment):
        replaced = _Replaced(REPLACED + (BURST_NOISE if kind_of(environment) == "burst" else ()))
        for name in ("locust.main", "locust.runners"):
            logging.getLogger(name).addFilter(replaced)
        LIVE = Live(environment, Bar() if sys.stderr.isatty() else Plain())


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    if LIVE is not None and LIVE.greenlet is None:
        LIVE.start()


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    if LIVE is not None:
        LIVE.stop()


def print_final_table(environment) -> None:
    """Locust's request table (and its error report, if any), once: Locust skips it when it writes
    ``--json-file``, as the runner's runs do."""
    global _TABLE_PRINTED
    opts = environment.parsed_options
    if _TABLE_PRINTED or opts is None or not getattr(opts, "headless", False) or not getattr(opts, "json_file", None):
        return
    _TABLE_PRINTED = True
    from locust import stats

    max_rows = MAX_TABLE_ROWS if getattr(opts, "only_summary", False) else None  # LOCUST_TABLE=1: every row
    for line in table_lines(environment.runner.stats, max_rows, getattr(opts, "csv_prefix", None)):
        stats.console_logger.info(line)
    stats.print_error_report(environment.runner.stats)


def table_lines(request_stats, max_rows: int | None, csv_prefix: str | None = None) -> list[str]:
    """Locust's table (whole run). Past ``max_rows`` names, the busiest ``max_rows - 1`` keep their
    rows and the others are summed into one (Locust's own aggregation, as its total row)."""
    from locust.stats import StatsEntry, get_stats_summary

    lines = get_stats_summary(request_stats, current=False)
    entries = request_stats.entries
    if max_rows is None or len(entries) <= max_rows:
        return lines
    busiest = sorted(entries, key=lambda key: (-entries[key].num_requests, key))[: max_rows - 1]
    folded_keys = [key for key in entries if key not in set(busiest)]
    where = f"{csv_prefix}_stats.csv" if csv_prefix else "the summary"
    folded = StatsEntry(request_stats, f"{len(folded_keys)} more names, fewest requests (every row: {where})", "")
    for key in folded_keys:
        folded.extend(entries[key])
    rows = [entries[key].to_string(current=False) for key in sorted(busiest)]
    return [*lines[:2], *rows, folded.to_string(current=False), *lines[-2:]]


# Locust fires ``quitting`` in reverse order of registration: imported after reporting.hooks, this
# runs before its verdict line. A local run's users are stopped first (as reporting.hooks does: a
# no-op when the run time stopped them), so the table holds what the summary holds.
@events.quitting.add_listener
def _on_quitting(environment, **_kwargs) -> None:
    if LIVE is not None:
        LIVE.stop()
    runner = environment.runner
    if isinstance(runner, LocalRunner):
        runner.stop()
        print_final_table(environment)


@events.quit.add_listener
def _on_quit(**_kwargs) -> None:
    # A master's table waits until reporting.hooks has taken the workers' last reports.
    if _ENVIRONMENT is not None and isinstance(_ENVIRONMENT.runner, MasterRunner):
        print_final_table(_ENVIRONMENT)
