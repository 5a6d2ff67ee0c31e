"""Locust event wiring for the suite's verdict (imported by ``locustfile.py``).

With ``--report-dir`` (the runner always passes it) the run ends by writing
``<profile>-summary.json``/``.md`` and setting the exit code (``reporting.verdict``): 0 pass,
1 thresholds breached or unexpected failures, 4 money mismatch, 5 run integrity in doubt; the most
severe wins (4, 5, 1). Without it a run stays plain Locust."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import gevent
from locust import events
from locust.rpc import Message
from locust.runners import STATE_INIT, LocalRunner, MasterRunner, WorkerRunner

import options
from config import get_settings
from reporting import baseline, sections
from reporting import summary as sm
from reporting.run import RUN
from reporting.thresholds import ThresholdError, load_thresholds
from reporting.verdict import INTEGRITY, MEANING, USAGE, headline, settle

log = logging.getLogger("suite")
WORKER_REPORT_INTERVAL_S = 3.0  # locust.runners.WORKER_REPORT_INTERVAL
WANTS_STEADY = "suite_wants_steady"  # option the master sets for its workers


@events.init.add_listener
def on_init(environment, **_kwargs) -> None:
    opts = environment.parsed_options
    settings = get_settings()
    try:
        RUN.thresholds = load_thresholds(getattr(opts, "slo_file", "") or settings.slo_file, settings.slo_overrides())
    except ThresholdError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(USAGE) from None
    RUN.steady.warmup_s = getattr(opts, "steady_warmup", 0.0) or 0.0
    runner = environment.runner
    # The steady-state window feeds the summary and the UI's SLO tab; a plain headless run has
    # neither, and then pays nothing per request.
    wanted = bool(options.report_dir(environment)) or environment.web_ui is not None
    if isinstance(runner, MasterRunner):
        # Locust hands the master's custom options to its workers with each spawn message (before
        # their test_start), so this tells the workers whether to record.
        if opts is not None:
            setattr(opts, WANTS_STEADY, wanted)
        environment.events.worker_report.add_listener(_merge_worker_report)
        gevent.spawn(_watch_workers, runner)
        if options.report_dir(environment):
            _fail_integrity_when_workers_never_come(runner, getattr(opts, "expect_workers", 1) or 1)
    elif isinstance(runner, WorkerRunner):
        environment.events.report_to_master.add_listener(_report_to_master)
    elif wanted:
        environment.events.request.add_listener(_record_steady)
        RUN.recording_steady = True


def _record_steady(request_type, name, response_time, response_length, exception=None, **_kw) -> None:
    RUN.steady.on_request(request_type, name, response_time, response_length, exception)


def _report_to_master(client_id: str, data: dict) -> None:
    RUN.steady.to_report(data)
    sections.collect_worker_reports(data)


def _merge_worker_report(client_id: str, data: dict) -> None:
    RUN.add_worker_requests(client_id, data)
    RUN.steady.merge_report(data)
    sections.merge_worker_reports(client_id, data)


def _fail_integrity_when_workers_never_come(runner: MasterRunner, expected: int) -> None:
    """A headless master that gives up waiting for its workers (--expect-workers-max-wait) calls
    ``runner.quit()`` then ``sys.exit(1)``, before any load and without the quitting event, so no
    summary is written. Exit 5 instead (run integrity in doubt), saying why; a quit after the
    summary (the normal end, or Ctrl-C while waiting) is left as it is."""
    quit_runner = runner.quit

    def quit_or_fail() -> None:
        missing = runner.state == STATE_INIT and len(runner.clients.ready) < expected
        quit_runner()
        if missing and not RUN.summary_written:
            print(
                f"verdict: FAIL (exit {INTEGRITY}: {MEANING[INTEGRITY]}) - integrity: only "
                f"{len(runner.clients.ready)} of {expected} expected workers connected; no load was sent",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(INTEGRITY)

    runner.quit = quit_or_fail


def _watch_workers(runner: MasterRunner) -> None:
    while True:
        gevent.sleep(1.0)
        RUN.note_workers(runner)


@events.spawning_complete.add_listener
def on_spawning_complete(user_count: int, **_kwargs) -> None:
    RUN.steady.begin()
    RUN.peak_users = max(RUN.peak_users, user_count)


@events.test_start.add_listener
def on_test_start(environment, **_kwargs) -> None:
    RUN.started_at = time.time()
    if isinstance(environment.runner, WorkerRunner):
        # A master that predates the flag (or an unknown one) gets the window recorded.
        wanted = getattr(environment.parsed_options, WANTS_STEADY, True)
        if wanted and not RUN.recording_steady:
            environment.events.request.add_listener(_record_steady)
        elif not wanted and RUN.recording_steady:
            environment.events.request.remove_listener(_record_steady)
        RUN.recording_steady = wanted


@events.test_stopping.add_listener
def on_test_stopping(environment, **_kwargs) -> None:
    # Before the users stop: a run that ends while still ramping up never completes spawning.
    if environment.runner is not None:
        RUN.peak_users = max(RUN.peak_users, environment.runner.user_count)
    if isinstance(environment.runner, MasterRunner):
        RUN.stopping_at = time.monotonic()


@events.test_stop.add_listener
def on_test_stop(environment, **_kwargs) -> None:
    RUN.steady.end()
    runner = environment.runner
    if runner is not None:
        RUN.peak_users = max(RUN.peak_users, runner.user_count)
    if isinstance(runner, MasterRunner) and runner.user_count > 0:
        _quit_workers_and_wait(runner)


def _quit_workers_and_wait(runner: MasterRunner) -> None:
    """A headless master ends the run by telling its workers to quit without stopping them first,
    and gives their final stats reports 0.5 s (``MasterRunner.quit``); a worker whose users are
    still in flight (a slow target, the open model's arrivals) finishes them within --stop-timeout
    and reports after the master stopped listening, so those requests were lost from the totals.
    Here (test_stop fires inside ``quit`` before its own quit messages, with the workers' users still
    counted) the workers are told to quit now and their final reports awaited, bounded by the stop
    timeout; the UI's stop path has already waited for them (no users left) and skips this."""
    since = time.monotonic()
    RUN.stopping_at = RUN.stopping_at if RUN.stopping_at is not None else since
    for client in list(runner.clients.all):
        runner.server.send_to_client(Message("quit", None, client.id))
    bound = float(runner.environment.stop_timeout or 0) + 2 * WORKER_REPORT_INTERVAL_S
    silent = RUN.await_final_reports(since, timeout=bound)
    if silent:
        log.warning("no final stats report from worker(s) %s within %.0f s of the stop", silent, bound)


@events.quitting.add_listener
def on_quitting(environment, **_kwargs) -> None:
    report_dir = options.report_dir(environment)
    if isinstance(environment.runner, WorkerRunner) or not report_dir or RUN.summary_written:
        return
    _settle(environment)
    opts = environment.parsed_options
    profile, folder = opts.profile_name, Path(report_dir)
    summary = sm.build(environment, RUN, get_settings(), profile, folder)
    prior = baseline.load(folder, profile)  # read before apply() may replace it: the page overlays it
    baseline.apply(summary, folder, profile, opts.regression_tolerance, opts.fail_on_regression)
    settle(summary)  # a regression it added is of kind "regression" (exit 1), after money and integrity
    json_path, md_path = sm.write(summary, folder, profile)
    from reporting import html_report  # only now: the page and the history cost a run's start nothing

    html_report.after_run(summary, folder, profile, prior)
    sm.write_locust_html(environment)
    RUN.summary_written = True
    environment.process_exit_code = summary["exit_code"]
    print(f"{headline(summary)}\nsummary: {md_path} and {json_path}", file=sys.stderr, flush=True)


def _settle(environment) -> None:
    """Stop the users (and, on a master, wait for the workers' last stats report) so nothing is
    counted after the summary is taken: its totals then equal Locust's final JSON."""
    runner = environment.runner
    if runner is None:
        return
    if isinstance(runner, MasterRunner):
        RUN.note_workers(runner)
        runner.stop()  # no-op when the run time already stopped it
        # Each worker's first report with no user left holds its last requests; a busy one is late.
        since = RUN.stopping_at if RUN.stopping_at is not None else time.monotonic()
        silent = RUN.workers_unreported = RUN.await_final_reports(since, timeout=WORKER_REPORT_INTERVAL_S * 4)
        if silent:
            log.warning("no final stats report from worker(s) %s: their last requests are not counted", silent)
    elif isinstance(runner, LocalRunner):
        runner.stop()
    RUN.steady.end()
