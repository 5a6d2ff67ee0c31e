"""Exit statuses that say what failed (reporting/verdict.py): each reason has a kind, the most
severe status wins (4 money, 5 integrity, 1 thresholds), and every place that shows the reasons
(JSON, the verdict line, "Why it failed", the page's banner) lists them most severe first; figures
in reasons carry their unit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from apis.contract import BINDING as CONTRACT
from money.reconcile import reconcile
from reporting.html_report import render
from reporting.thresholds import Threshold
from reporting.verdict import Kind, Reason, format_value, headline, settle
from tests.helpers import ROOT, Sandbox, free_port
from tests.test_html_report import fake_summary
from tests.test_money import _FakeServers, _records
from tests.test_runner import run, target_env

THRESHOLD = Reason(Kind.THRESHOLD, "threshold breached: global p50 <= 100 ms (actual 140 ms, steady window)")
FAILURES = Reason(Kind.FAILURES, "12 unexpected failure(s)")
INTEGRITY = Reason(Kind.INTEGRITY, "integrity: run ended after 8 s of the planned 60 s (interrupted or stopped early)")
MONEY = Reason(Kind.MONEY, "money: payment pay_1: refunds of 54600 were accepted on a capture of 5460")


def _settled(*reasons: Reason | str) -> dict:
    summary = fake_summary(failed=True)
    settle(summary, list(reasons))
    return summary


def test_each_kind_has_its_status_and_none_is_a_pass():
    assert _settled()["exit_code"] == 0 and _settled()["verdict"] == "pass"
    assert _settled(THRESHOLD)["exit_code"] == 1
    assert _settled(FAILURES)["exit_code"] == 1
    assert _settled(INTEGRITY)["exit_code"] == 5
    assert _settled(MONEY)["exit_code"] == 4


def test_the_most_severe_wins_and_comes_first_4_then_5_then_1():
    s = _settled(THRESHOLD, FAILURES, INTEGRITY, MONEY)
    assert s["exit_code"] == 4 and s["verdict"] == "fail"
    assert s["reasons"] == [MONEY.text, INTEGRITY.text, THRESHOLD.text, FAILURES.text]
    assert s["reason_kinds"] == ["money", "integrity", "threshold", "failures"]
    s = _settled(THRESHOLD, INTEGRITY)
    assert s["exit_code"] == 5 and s["reason_kinds"] == ["integrity", "threshold"]


def test_the_verdict_line_and_the_page_put_money_first():
    """(The Markdown's "Why it failed": check_markdown_lists_the_reasons_most_severe_first.)"""
    s = _settled(THRESHOLD, INTEGRITY, MONEY)
    line = headline(s)
    assert line.startswith("verdict: FAIL (exit 4: money mismatch) - money: payment pay_1"), line
    assert line.index("money:") < line.index("integrity:") < line.index("threshold breached")
    page = render(s)
    banner = page.split('id="verdict">')[1].split("</div>")[0]
    assert banner.startswith("FAIL (exit 4: money mismatch) — money: payment pay_1"), banner
    listed = page.split("<h3>Why it failed</h3>")[1].split("</ul>")[0]
    assert listed.index("money:") < listed.index("integrity:") < listed.index("threshold breached")
    assert json.loads(json.dumps(s))["reason_kinds"][0] == "money"


def test_limits_print_in_the_metric_unit():
    assert Threshold("global", "error_rate", 0.01).describe() == "global error_rate <= 1.00 %"
    assert Threshold("global", "min_rps", 50).describe() == "global min_rps >= 50 req/s"
    assert Threshold("POST /payments", "p99_corrected_ms", 400).describe() == "POST /payments p99_corrected <= 400 ms"
    assert format_value("max_error_rate", 0.0025) == "0.25 %" and format_value("max_ms", 1067.77) == "1067.77 ms"


def test_a_regression_added_after_the_build_is_settled_behind_money():
    """baseline.apply appends its reason without a kind and sets exit 1; settling again keeps 4."""
    s = _settled(MONEY)
    s["reasons"].append("2 regression(s) vs baseline")
    s["exit_code"] = 1
    settle(s)
    assert s["exit_code"] == 4 and s["reason_kinds"] == ["money", "regression"]


CHECKS = [
    "check_sections_reasons_carry_their_kind()",
    "check_race_violations_are_money_not_other_and_figures_carry_units()",
    "check_markdown_labels_each_window_and_prints_error_rates_in_percent()",
    "check_markdown_lists_the_reasons_most_severe_first()",
]


@pytest.mark.parametrize("check", CHECKS)
def test_verdict_with_locust(check):
    """The checks that import Locust (reporting.summary, the money section) run in a subprocess."""
    code = f"import tests.verdict_checks as c; c.{check}; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


def test_a_race_run_that_loses_money_and_breaches_a_threshold_exits_4_money_first(tmp_path):
    """The issue's seed-000 case, planted in the sandbox: refunds race past the capture, and a p50
    limit no run can meet. Money (exit 4) comes before the threshold everywhere."""
    box = Sandbox(tmp_path / "data", env={"SANDBOX_BREAK_INVARIANT": "refund_race"}).start()
    try:
        env = target_env(box, tmp_path, RUN_TIME="8s", SLO_P50_MS="0.001")
        r = run("race", env=env, timeout=240)
    finally:
        box.stop()
    reports = tmp_path / "reports"
    s = json.loads((reports / "race-summary.json").read_text())
    assert r.returncode == 4, (s["reasons"], r.stderr[-2000:])
    assert s["exit_code"] == 4 and s["reason_kinds"][0] == "money" and "threshold" in s["reason_kinds"]
    assert s["reason_kinds"] == sorted(s["reason_kinds"], key=["money", "integrity"].__contains__, reverse=True)
    assert s["reasons"][0].startswith("money:")
    line = next(x for x in r.stderr.splitlines() if x.startswith("verdict: "))
    assert line.startswith("verdict: FAIL (exit 4: money mismatch) - money:"), line
    page = (reports / "race-summary.html").read_text()
    assert page.split('id="verdict">')[1].startswith("FAIL (exit 4: money mismatch) — money:")
    assert s["errors_by_category"]["other"] == 0


def test_a_master_whose_workers_never_come_exits_5(sandbox, tmp_path):
    """Locust gives up waiting for the expected workers with sys.exit(1) and no summary: the suite
    makes it 5 (run integrity in doubt) and says why."""
    cmd = [sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "--master"]
    cmd += ["--master-bind-host", "127.0.0.1", "--master-bind-port", str(free_port()), "--expect-workers", "2"]
    cmd += ["--expect-workers-max-wait", "2", "-u", "2", "-r", "2", "-t", "10s", "--profile-name", "lonely"]
    cmd += ["--report-dir", str(tmp_path / "reports")]
    env = {**os.environ, **target_env(sandbox, tmp_path)}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 5, r.stderr[-2000:]
    assert "verdict: FAIL (exit 5: run integrity in doubt) - integrity: only 0 of 2 expected workers" in r.stderr


def test_with_a_worker_lost_the_servers_showing_more_is_not_judged_money():
    """A worker killed mid-run takes its unsent ledger records with it: the server then shows a
    refund the client never recorded. That is run integrity (5), not money (4); the server showing
    less than the client saw stays a money mismatch."""
    pay = {"kind": "payment", "outcome": "succeeded", "id": "pay_1", "amount": 1000, "currency": "USD"}
    server = _FakeServers({"pay_1": {"id": "pay_1", "amount": 1000, "currency": "USD", "refunded_amount": 400}})
    gap = "worker(s) ['w1'] were lost or silent at the end"
    whole = reconcile(_records(pay), [], server, None, [], CONTRACT)
    assert not whole["ok"] and whole["counts"]["refund_mismatch"] == 1
    lost = reconcile(_records(pay), [], server, None, [], CONTRACT, ledger_gap=gap)
    assert lost["ok"] and lost["status"] == "incomplete", lost
    assert lost["counts"]["server_excess_ledger_incomplete"] == 1 and lost["counts"]["refund_mismatch"] == 0
    assert lost["not_checked"]["servers showing more than the client recorded"] == gap
    refund = {"kind": "refund", "outcome": "succeeded", "parent": "pay_1", "amount": 600, "currency": "USD"}
    less = reconcile(_records(pay, refund), [], server, None, [], CONTRACT, ledger_gap=gap)
    assert not less["ok"] and less["counts"]["refund_mismatch"] == 1, less["counts"]
