"""The raw request log: one tab-separated line per request, the ground truth the summary's figures
are checked against (``REQUEST_LOG=<file>``; empty: off, and then nothing is registered at all).

    sent  due  method  endpoint  status  ok  service_ms  corrected_ms  worker

``sent`` is Locust's ``start_time`` (epoch s); ``due`` (epoch s) and ``corrected_ms`` come from the
open model (``users/open_model.py``: when the request was due, and now - due), empty in the closed
model. A local run writes ``<file>``; each worker of a distributed run writes
``<file>.worker<index>`` and the master writes nothing.

Cost: one formatted line appended to a list per request; the list is written in one call every
:data:`FLUSH_LINES` requests and at test_stop / quitting / exit, so the log is always whole lines
(a line cut by a hard kill is the last one, and the reader skips it).

The corrected latency is the open model's own figure, to the bit: a listener registered before
the open model's notes the due time it is about to read, and the line is written by a listener
registered after it, when it has moved the due time on to the "now" it counted to (Locust calls
listeners in registration order; see :func:`_install`).

    python -m reporting.request_log <file> [--summary <profile>-summary.json]

recomputes every summary figure from the log and compares them (``reporting/request_log_check.py``).
"""

from __future__ import annotations

import atexit
import logging
import sys
import time
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("suite.request_log")

HEADER = "sent\tdue\tmethod\tendpoint\tstatus\tok\tservice_ms\tcorrected_ms\tworker\n"
COLUMNS = HEADER.rstrip("\n").split("\t")
FLUSH_LINES = 8192  # 0.5-0.7 MB of lines (60-85 bytes each): one write per that many requests
NAMES_CACHED = 10_000  # endpoint names kept cleaned (the suite names its requests; a bound all the same)
WORKER_SUFFIX = ".worker"
_perf = time.perf_counter
# The due time of the request being reported, per greenlet (each has its own context).
_DUE: ContextVar[float | None] = ContextVar("request_log_due", default=None)


def worker_path(path: str | Path, index: int) -> Path:
    return Path(f"{path}{WORKER_SUFFIX}{index}")


def log_files(path: str | Path) -> list[Path]:
    """``<path>`` (local run) and every ``<path>.worker<N>`` (distributed), those that exist."""
    base = Path(path)
    prefix = base.name + WORKER_SUFFIX
    try:
        names = [p.name for p in base.parent.iterdir()] if base.parent.is_dir() else []
    except OSError:
        names = []
    indexes = sorted(int(n[len(prefix) :]) for n in names if n.startswith(prefix) and n[len(prefix) :].isdigit())
    return [p for p in [base, *(worker_path(base, i) for i in indexes)] if p.is_file()]


class RequestLog:
    """This process's log: the lines of the requests not yet written, and the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: list[str] = []
        self.file: IO[str] | None = None
        self.worker = "local"
        self.offset = time.time() - _perf()  # perf_counter() -> epoch, one offset for the run
        self.op_var: Any = None  # the open model's context variable, when it is loaded
        self.names: dict[str, str] = {}

    def _clean(self, text: str) -> str:
        # an endpoint name with a tab or a newline would break the line: replaced once, then cached
        clean = self.names.get(text)
        if clean is None:
            clean = str(text).replace("\t", " ").replace("\n", " ").replace("\r", " ")
            if len(self.names) < NAMES_CACHED:
                self.names[text] = clean
        return clean

    def note_due(self, **_kw: Any) -> None:
        """Before the open model's listener: the due time it is about to read (and move on)."""
        op = self.op_var.get() if self.op_var is not None else None
        _DUE.set(op[0] if op is not None else None)

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float | None,
        response_length: int,
        exception: BaseException | None = None,
        response: Any = None,
        start_time: float | None = None,
        **_kw: Any,
    ) -> None:
        """After the open model's listener: one line."""
        lines = self.lines
        if len(lines) >= FLUSH_LINES:
            self.flush()
        due_perf = _DUE.get() if self.op_var is not None else None
        if due_perf is not None:
            # the open model has set op[0] to the "now" its corrected latency was counted to, so
            # this is its figure, to the bit
            ended = self.op_var.get()[0]
            due = f"{due_perf + self.offset:.6f}"
            corrected = f"{(ended - due_perf) * 1000.0:.3f}"
        else:
            due = corrected = ""
        if response_time is None:
            service = ""
            sent = start_time if start_time is not None else time.time()
        else:
            service = f"{response_time:.3f}"
            sent = start_time if start_time is not None else time.time() - response_time / 1000.0
        status = getattr(response, "status_code", 0) or 0
        names = self.names
        method = names.get(request_type) or self._clean(request_type)
        endpoint = names.get(name) or self._clean(name)
        ok = "0" if exception is not None else "1"
        lines.append(
            f"{sent:.6f}\t{due}\t{method}\t{endpoint}\t{status}\t{ok}\t{service}\t{corrected}\t{self.worker}\n"
        )

    def open(self, path: Path, worker: str) -> None:
        """A new run: the file starts over (header only), lines from before the run are dropped,
        as Locust clears its stats at test_start."""
        self.close()
        self.lines.clear()
        self.worker = worker
        self.offset = time.time() - _perf()
        module = sys.modules.get("users.open_model")
        self.op_var = getattr(module, "_OP", None)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("w", encoding="utf-8")
        self.file.write(HEADER)
        self.file.flush()

    def flush(self) -> None:
        if self.file is None or self.file.closed:
            self.lines.clear()  # no run (yet), or the file failed: Locust does not count these either
            return
        try:
            if self.lines:
                self.file.write("".join(self.lines))
            self.file.flush()
        except OSError as exc:  # a full disk: said once, and the log stops (the reader then disagrees)
            log.error("request log %s: cannot write (%s); the log is incomplete from here", self.file.name, exc)
            self.file = None
        self.lines.clear()

    def close(self) -> None:
        if self.file is not None and not self.file.closed:
            self.flush()
            if self.file is not None:
                self.file.close()
        self.file = None


# --- wiring: only when REQUEST_LOG is set; otherwise not a single listener --------------------


def _install() -> None:
    from locust import events
    from locust.runners import MasterRunner, WorkerRunner

    from config import get_settings

    path = get_settings().request_log
    if not path:
        return
    request_log = RequestLog(path)
    # Listener order (Locust calls them in registration order): note_due now, before the open
    # model's listener (imported with the user classes, after this module); the line at init,
    # after it. Imported before us, the open model's listener is moved after note_due.
    open_model_first = "users.open_model" in sys.modules
    events.request.add_listener(request_log.note_due)

    @events.init.add_listener
    def _on_init(environment, **_kw: Any) -> None:
        request = environment.events.request
        module = sys.modules.get("users.open_model")
        if isinstance(environment.runner, MasterRunner) or module is None:
            request.remove_listener(request_log.note_due)  # no open model (or the master): no due times
        elif open_model_first and hasattr(module, "_on_request"):
            request.remove_listener(module._on_request)
            request.add_listener(module._on_request)
        if not isinstance(environment.runner, MasterRunner):  # the workers write; the master nothing
            request.add_listener(request_log.on_request)

    @events.test_start.add_listener
    def _on_test_start(environment, **_kw: Any) -> None:
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            request_log.open(worker_path(path, runner.worker_index), runner.client_id)
            return
        # local run or master: an earlier run's files (more workers, the other mode) go, so the
        # reader sees this run only
        for stale in log_files(path):
            stale.unlink(missing_ok=True)
        if not isinstance(runner, MasterRunner):
            request_log.open(Path(path), "local")

    # Written out at test_stop and quitting, closed only at exit: Locust fires quitting in reverse
    # order, so this runs before the summary's listener stops the users, whose last requests count.
    events.test_stop.add_listener(lambda **_kw: request_log.flush())
    events.quitting.add_listener(lambda **_kw: request_log.flush())
    atexit.register(request_log.close)
    global LOG
    LOG = request_log


LOG: RequestLog | None = None  # this process's log, when REQUEST_LOG is set

if __name__ == "__main__":
    sys.modules.setdefault("reporting.request_log", sys.modules[__name__])  # the reader's import: this, not a rerun
    from reporting.request_log_check import main

    sys.exit(main())
else:
    _install()
