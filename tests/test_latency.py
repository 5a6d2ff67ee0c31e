"""The one latency record (reporting/latency.py): its accuracy bound, its invariants, exact merging
across workers, its size bound, and Locust reading the same record with the same rule. Each check
(tests/latency_checks.py) runs in a subprocess of its own."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

CHECKS = [
    "check_locust_records_and_reads_with_the_suite_record()",
    *(f"check_a_bucket_is_never_below_its_value_and_at_most_0_2_percent_above({seed})" for seed in range(3)),
    *(f"check_percentiles_match_the_exact_ones_within_the_bound_and_keep_the_invariants({s})" for s in range(4)),
    "check_the_issue_case_1040_ms_reports_no_p50_under_the_fastest_request_and_no_p95_over_the_max()",
    "check_workers_records_merge_exactly_on_the_master()",
    "check_the_record_stays_bounded_whatever_the_request_count()",
    "check_locust_tables_read_the_same_figures()",
    "check_curve_is_monotone_and_ends_at_min_and_max()",
    "check_an_empty_record_has_no_figures()",
]


@pytest.mark.parametrize("check", CHECKS)
def test_latency_record(check):
    code = f"import tests.latency_checks as c; c.{check}; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]
