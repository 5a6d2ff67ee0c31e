"""The calibration target's fast cases (issue 21): the suite's closed model against a target whose
latency distribution is known exactly (bench/calibration/). The whole bench, in four modes, is
``python -m bench.calibration``; here the two cases that run in seconds.

Tolerances. A reported figure can never be below the known answer (no request is answered before
its delay), so that side is checked exactly: a rounding record (Locust's own bucketer: 1,040 ms
stored as 1,000, 2,530 as 2,500) fails it. Above it, every figure also carries the time the
generator and the target waited for a CPU: on a 2-core machine shared with other work that was
7 ms at the median and 40 ms at the max (1,040 ms case, load average 10). So the upper side allows
NOISE_MS beyond the issue's max(1 %, 2 ms), except the 1,040 ms p50, which keeps the issue's bound;
the bench (python -m bench.calibration) records the strict comparison, misses included. What the
record adds is checked without timing noise twice: no payment is stored below its delay in Locust's
own record, and the summary agrees with the raw request log within the record's 0.2 % bound."""

from __future__ import annotations

import json
from pathlib import Path

from bench.calibration.distributions import parse
from bench.calibration.harness import LABELS, PAYMENT_NAMES, ROOT, Mode, Run, Target, run_suite, tolerance

NOISE_MS = 100.0  # the most CPU wait a busy shared machine adds to a figure (see the module docstring)
RECORD_BOUND = 0.002  # the latency record: a bucket's upper bound is at most 0.2 % above its values
TRIMODAL = "modes:23@0.9,417@0.085,2530@0.015"  # the trimodal case


def check_known_answer(run: Run, spec: str) -> dict[str, float]:
    """Every figure of the summary's totals within [truth, truth + max(1 %, 2 ms) + NOISE_MS], the
    payments counted equal to those the target answered, and the invariants."""
    served = run.served["answered"]
    assert served > 0 and run.payments() == served, (run.payments(), run.served, run.stderr_tail)
    assert run.summary["totals"]["failures"] == 0, run.stderr_tail
    known = parse(spec).first(served)
    got = run.figures("service")
    for label in LABELS:
        assert got[label] >= known[label], f"{label} {got[label]} ms below the known {known[label]} ms"
        assert got[label] <= known[label] + tolerance(known[label]) + NOISE_MS, (label, got[label], known[label])
    ordered = [run.summary["totals"]["min_ms"], *(got[label] for label in LABELS)]
    assert ordered == sorted(ordered), f"min <= p50 <= p95 <= p99 <= p99.9 <= max broken: {ordered}"
    return got


def check_record_never_faster(run: Run, spec: str, report_dir: Path) -> None:
    """No request stored below its delay, in Locust's own record (``<profile>.json``, what its
    tables and HTML report read): for every delay d the target served, at least as many payments
    are stored at d or above as it served at d or above. No timing noise can break this (a request
    is only ever slower than its delay); a rounding bucketer does (1,041 ms stored as 1,000)."""
    dist = parse(spec)
    served = sorted(dist.delay_ms(n) for n in range(run.served["answered"]))
    rows = json.loads((report_dir / "smoke.json").read_text())
    stored = sorted(
        (float(ms), count) for r in rows if r["name"] in PAYMENT_NAMES for ms, count in r["response_times"].items()
    )
    for delay in sorted(set(served)):
        need = sum(1 for d in served if d >= delay)
        have = sum(count for ms, count in stored if ms >= delay)
        assert have >= need, f"{need - have} payments stored below their {delay:g} ms delay"


def check_raw_log(run: Run) -> None:
    """The summary's figures against the exact percentiles of the raw request log."""
    if not (ROOT / "reporting" / "request_log.py").is_file():
        return  # the raw request log is not in this tree yet: the known answer alone is checked
    exact = run.log_figures("service_ms")
    assert exact is not None, f"REQUEST_LOG wrote no payment lines: {run.log_files}"
    assert len([r for r in run.log_rows if r["endpoint"] in ("POST /payments", "POST /pay")]) == run.payments()
    got = run.figures("service")
    for label in LABELS:
        assert exact[label] - 0.01 <= got[label] <= exact[label] * (1 + RECORD_BOUND) + 0.01, (label, got, exact)


def test_fixed_1040_ms_reports_at_least_1040_and_fails_a_1000_ms_p50_slo(tmp_path: Path):
    """The issue's case: every payment after exactly 1,040 ms. Locust's own record said p50 =
    1,000 ms (passing SLO_P50_MS=1000) and p95 = p99 = 1,100 ms, above the max."""
    spec = "fixed:1040"
    with Target(spec) as target:
        run = run_suite(target, Mode("closed", users=10, seconds=10), tmp_path, {"SLO_P50_MS": "1000"})
    check_record_never_faster(run, spec, tmp_path)
    check_raw_log(run)
    got = check_known_answer(run, spec)
    assert 1040 <= got["p50"] <= 1040 * 1.01, got
    assert got["p95"] <= got["max"] and got["p99"] <= got["max"], got
    assert run.exit_code not in (0, 2, 3), run.stderr_tail  # the run failed on its figures
    breached = [t for t in run.summary["thresholds"] if t["pass"] is False]
    assert ("global", "p50_ms") in [(t["scope"], t["metric"]) for t in breached], run.summary["thresholds"]
    assert "threshold breached: global p50 <= 1000 ms" in run.stderr_tail


def test_trimodal_closed_model_reports_the_known_percentiles(tmp_path: Path):
    """90 % at 23 ms, 8.5 % at 417 ms, 1.5 % at 2,530 ms: p50 23, p95 417, p99 and above 2,530."""
    with Target(TRIMODAL) as target:
        run = run_suite(target, Mode("closed", users=8, seconds=12), tmp_path)
    assert run.exit_code in (0, 1), run.stderr_tail
    check_record_never_faster(run, TRIMODAL, tmp_path)
    check_raw_log(run)
    check_known_answer(run, TRIMODAL)


def test_the_known_answer_is_exact_for_whole_blocks_and_spread_over_partial_ones():
    """The target's sequence: exact shares in every block of 1,000, and a partial block is spread
    over the whole distribution (not its lowest delays first)."""
    trimodal = parse(TRIMODAL)
    counts = {}
    for n in range(1000):
        counts[trimodal.delay_ms(n)] = counts.get(trimodal.delay_ms(n), 0) + 1
    assert counts == {23.0: 900, 417.0: 85, 2530.0: 15}
    assert trimodal.analytic() == {"p50": 23.0, "p95": 417.0, "p99": 2530.0, "p999": 2530.0, "max": 2530.0}
    assert trimodal.first(2000) == trimodal.analytic()
    assert sum(trimodal.delay_ms(n) == 2530.0 for n in range(200)) in (2, 3, 4)  # 1.5 % of 200 = 3
    heavy = parse("pareto:10/1.2/5000")
    assert abs(heavy.analytic()["p999"] - 10 * 1000 ** (1 / 1.2)) < 0.001
    assert heavy.analytic()["max"] == 5000
    stall = parse("stall:1/10:20")
    assert stall.analytic() == {"p50": 20.0, "p95": 520.0, "p99": 920.0, "p999": 1010.0, "max": 1020.0}
    assert stall.delay_ms(0, 100.25, 100.0) == 770.0 and stall.delay_ms(0, 101.5, 100.0) == 20.0
