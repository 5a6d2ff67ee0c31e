"""Locust event wiring for the suite's verdict. Imported by ``locustfile.py``.

With ``--report-dir`` (the runner always passes it) the run ends by writing
``<profile>-summary.json``/``.md`` and setting the exit code: 0 pass, 1 thresholds breached,
unexpected failures or a run whose integrity is in doubt. Without it a run stays plain Locust."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import gevent
from locust import events
from locust import log as locust_log
from locust.runners import STATE_MISSING, LocalRunner, MasterRunner, WorkerRunner

from reporting import summary as sm
from reporting.steady import SteadyStats
from reporting.thresholds import ThresholdError, load_thresholds

log = logging.getLogger("suite")
WORKER_REPORT_INTERVAL_S = 3.0  # locust.runners.WORKER_REPORT_INTERVAL
WANTS_STEADY = "suite_wants_steady"  # option the master sets for its workers


class RunState:
    def __init__(self) -> None:
        self.steady = SteadyStats()
        self.thresholds: list = []
        self.started_at = time.time()
        self.peak_users = 0
        self.workers_lost: set[str] = set()
        self.max_workers = 0
        self.worker_requests: dict[str, int] = {}
        self.summary_written = False
        self.recording_steady = False  # the request listener feeding the steady window is attached
        self.extra_sections: dict = {}  # other modules (money) add theirs here
        self.before_summary: list = []  # callables(environment) run after the users stop


STATE = RunState()


@events.init_command_line_parser.add_listener
def add_arguments(parser) -> None:
    # Group arguments are plain argparse ones: Locust leaves them out of the web UI's form.
    group = parser.add_argument_group("payment suite")
    group.add_argument("--profile-name", default="adhoc", help="Names the summary files (default adhoc)")
    group.add_argument("--report-dir", default="", help="Write <profile>-summary.json/.md here and gate on SLOs")
    group.add_argument("--slo-file", default=os.environ.get("SLO_FILE", ""), help="Thresholds TOML file")
    group.add_argument(
        "--steady-warmup",
        type=float,
        default=0.0,
        help="Seconds after spawning completes before the steady-state window starts",
    )
    group.add_argument(
        "--regression-tolerance",
        type=float,
        default=0.25,
        help="Relative change that counts as a regression against the baseline (default 0.25)",
    )
    group.add_argument(
        "--fail-on-regression",
        action="store_true",
        default=False,
        help="A regression against the baseline fails the verdict",
    )
    # In the UI's form as a masked field; empty means AUTH_TOKEN from the environment / .env, and
    # the default is empty on purpose: a default would be embedded in the page.
    parser.add_argument(
        "--auth-token",
        default="",
        is_secret=True,
        help="Bearer token for both services (empty: AUTH_TOKEN from the environment)",
    )


@events.init.add_listener
def on_init(environment, **_kwargs) -> None:
    opts = environment.parsed_options
    try:
        STATE.thresholds = load_thresholds(getattr(opts, "slo_file", "") or None)
    except ThresholdError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    STATE.steady.warmup_s = getattr(opts, "steady_warmup", 0.0) or 0.0
    runner = environment.runner
    # The steady-state window feeds the summary and the UI's SLO tab; a plain headless run has
    # neither, and then pays nothing per request.
    wanted = bool(getattr(opts, "report_dir", "")) or environment.web_ui is not None
    if isinstance(runner, MasterRunner):
        # Locust hands the master's custom options to its workers with each spawn message (before
        # their test_start), so this tells the workers whether to record.
        if opts is not None:
            setattr(opts, WANTS_STEADY, wanted)
        environment.events.worker_report.add_listener(_merge_worker_report)
        gevent.spawn(_watch_workers, runner)
    elif isinstance(runner, WorkerRunner):
        environment.events.report_to_master.add_listener(lambda client_id, data: STATE.steady.to_report(data))
    elif wanted:
        environment.events.request.add_listener(_record_steady)
        STATE.recording_steady = True


def _record_steady(request_type, name, response_time, response_length, exception=None, **_kw) -> None:
    STATE.steady.on_request(request_type, name, response_time, response_length, exception)


def _merge_worker_report(client_id: str, data: dict) -> None:
    total = data.get("stats_total") or {}
    STATE.worker_requests[client_id] = STATE.worker_requests.get(client_id, 0) + int(total.get("num_requests", 0))
    STATE.steady.merge_report(data)


def _watch_workers(runner: MasterRunner) -> None:
    while True:
        gevent.sleep(1.0)
        present = [c for c in runner.clients.all if c.state != STATE_MISSING]
        STATE.max_workers = max(STATE.max_workers, len(present))
        _record_lost_workers(runner)


@events.spawning_complete.add_listener
def on_spawning_complete(user_count: int, **_kwargs) -> None:
    STATE.steady.begin()
    STATE.peak_users = max(STATE.peak_users, user_count)


@events.test_start.add_listener
def on_test_start(environment, **_kwargs) -> None:
    STATE.started_at = time.time()
    if isinstance(environment.runner, WorkerRunner):
        # A master that predates the flag (or an unknown one) gets the window recorded.
        wanted = getattr(environment.parsed_options, WANTS_STEADY, True)
        if wanted and not STATE.recording_steady:
            environment.events.request.add_listener(_record_steady)
        elif not wanted and STATE.recording_steady:
            environment.events.request.remove_listener(_record_steady)
        STATE.recording_steady = wanted


@events.test_stop.add_listener
def on_test_stop(environment, **_kwargs) -> None:
    STATE.steady.end()
    runner = environment.runner
    if runner is not None:
        STATE.peak_users = max(STATE.peak_users, runner.user_count)


@events.quitting.add_listener
def on_quitting(environment, **_kwargs) -> None:
    runner = environment.runner
    report_dir = getattr(environment.parsed_options, "report_dir", "") if environment.parsed_options else ""
    if isinstance(runner, WorkerRunner) or not report_dir or STATE.summary_written:
        return
    _settle(environment)
    for prepare in STATE.before_summary:
        prepare(environment)
    summary = build_summary(environment)
    profile = environment.parsed_options.profile_name
    path = Path(report_dir)
    _baseline(summary, path, profile, environment.parsed_options)
    json_path, md_path = sm.write(summary, path, profile)
    _write_html_if_missing(environment)
    STATE.summary_written = True
    environment.process_exit_code = summary["exit_code"]
    line = f"verdict: {summary['verdict'].upper()}"
    if summary["reasons"]:
        line += " - " + "; ".join(summary["reasons"][:3])
    print(f"{line}\nsummary: {md_path} and {json_path}", file=sys.stderr, flush=True)


def _settle(environment) -> None:
    """Stop the users (and, on a master, wait for the workers' last stats report) so nothing is
    counted after the summary is taken: its totals then equal Locust's final JSON."""
    runner = environment.runner
    if runner is None:
        return
    if isinstance(runner, MasterRunner):
        _record_lost_workers(runner)
        runner.stop()
        gevent.sleep(WORKER_REPORT_INTERVAL_S + 0.5)
    elif isinstance(runner, LocalRunner):
        runner.stop()
    STATE.steady.end()


def _record_lost_workers(runner: MasterRunner) -> None:
    for client in runner.clients.all:
        if client.state == STATE_MISSING:
            STATE.workers_lost.add(client.id)


def _integrity(environment) -> list[str]:
    runner, opts = environment.runner, environment.parsed_options
    problems = []
    if runner is not None and (runner.cpu_warning_emitted or getattr(runner, "worker_cpu_warning_emitted", False)):
        problems.append("load generator CPU saturated (>90 %): latencies include the generator's own queueing")
    if isinstance(runner, MasterRunner):
        expected = getattr(opts, "expect_workers", 1) or 1
        if STATE.max_workers < expected:
            problems.append(f"only {STATE.max_workers} of {expected} expected workers were connected")
        if STATE.workers_lost:
            problems.append(f"{len(STATE.workers_lost)} worker(s) lost during the run: {sorted(STATE.workers_lost)}")
    planned = getattr(opts, "run_time", None)
    elapsed = time.time() - STATE.started_at
    # A LoadTestShape decides its own end (stress stops at the breaking point), so only plain runs count.
    if (
        getattr(opts, "headless", False)
        and planned
        and environment.shape_class is None
        and elapsed < planned * 0.95 - 1
    ):
        problems.append(f"run ended after {elapsed:.0f} s of the planned {planned} s (interrupted or stopped early)")
    if locust_log.unhandled_greenlet_exception:
        problems.append("an event handler or greenlet raised an exception (see the log)")
    if runner is not None and runner.exceptions:
        problems.append(f"{len(runner.exceptions)} distinct Python exception(s) in user code (see _exceptions.csv)")
    return problems


def build_summary(environment) -> dict:
    stats, opts = environment.stats, environment.parsed_options
    from config import get_settings  # late: the suite's settings are loaded by the locustfile

    settings = get_settings()
    ended = time.time()
    steady = STATE.steady
    use_steady = steady.stats.total.num_requests > 0
    window_stats = steady.stats if use_steady else stats
    window_s = steady.window_s if use_steady else max(ended - STATE.started_at, 1e-9)
    steady_rows = sm.endpoint_table(window_stats, window_s)
    steady_total = sm.entry_figures(window_stats.total, window_s)
    categories, errors = sm.errors_by_category(stats)
    categories.update(sm.expected_outcomes(stats))
    thresholds = sm.evaluate(STATE.thresholds, steady_rows, steady_total)
    problems = _integrity(environment)
    reasons = [f"threshold breached: {t['text']} (actual {t['actual']})" for t in thresholds if t["pass"] is False]
    if stats.total.num_failures:
        reasons.append(f"{stats.total.num_failures} unexpected failure(s)")
    reasons += [f"integrity: {p}" for p in problems]
    summary = {
        "profile": opts.profile_name,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(STATE.started_at)),
        "ended_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ended)),
        "duration_s": round(ended - STATE.started_at, 2),
        "target": {
            "payment_service": environment.host or settings.payment_service_url,
            "banking_api": settings.banking_api_url,
        },
        "users": {"peak": STATE.peak_users, "classes": [c.__name__ for c in environment.user_classes]},
        "workers": {
            "expected": getattr(opts, "expect_workers", None) if isinstance(environment.runner, MasterRunner) else None,
            "max_connected": STATE.max_workers,
            "lost": sorted(STATE.workers_lost),
            "requests_by_worker": dict(STATE.worker_requests),
        },
        "totals": sm.entry_figures(stats.total, max(ended - STATE.started_at, 1e-9)),
        "endpoints": sm.endpoint_table(stats),
        "steady_state": {
            "window_s": round(window_s, 2),
            "whole_run_fallback": not use_steady,
            "warmup_s": steady.warmup_s,
            "totals": steady_total,
            "endpoints": steady_rows,
        },
        "errors_by_category": categories,
        "errors": errors,
        "thresholds": thresholds,
        "integrity": {"ok": not problems, "problems": problems},
        **STATE.extra_sections,
    }
    money = summary.get("money")
    if money and not money.get("ok", True):
        reasons.append("money: " + "; ".join(money.get("problems", ["reconciliation mismatch"])[:3]))
    summary["reasons"] = reasons
    summary["verdict"] = "fail" if reasons else "pass"
    summary["exit_code"] = 1 if reasons else 0
    return summary


def _baseline(summary: dict, report_dir: Path, profile: str, opts) -> None:
    """Compare with the last passing run of this profile; a passing run becomes the new baseline."""
    base_path = report_dir / "baselines" / f"{profile}.json"
    if base_path.is_file():
        try:
            baseline = json.loads(base_path.read_text())
        except ValueError:
            baseline = None
        if baseline:
            summary["comparison"] = sm.compare(summary, baseline, opts.regression_tolerance)
            if summary["comparison"]["regressions"] and opts.fail_on_regression:
                summary["reasons"].append(f"{len(summary['comparison']['regressions'])} regression(s) vs baseline")
                summary["verdict"], summary["exit_code"] = "fail", 1
    if summary["verdict"] == "pass":
        base_path.parent.mkdir(parents=True, exist_ok=True)
        if base_path.is_file():  # kept for `run_tests.sh compare`, which compares with the run before
            base_path.replace(base_path.with_suffix(".previous.json"))
        base_path.write_text(json.dumps(summary, indent=2, default=str))


def _write_html_if_missing(environment) -> None:
    """Locust writes its HTML report only when the run ends normally or by Ctrl-C; after a
    SIGTERM it does not, so write it here (Locust overwrites it with the same report otherwise)."""
    html_file = getattr(environment.parsed_options, "html_file", None)
    if not html_file:
        return
    from locust.html import get_html_report

    Path(html_file).parent.mkdir(parents=True, exist_ok=True)
    Path(html_file).write_text(get_html_report(environment, show_download_link=False), encoding="utf-8")
