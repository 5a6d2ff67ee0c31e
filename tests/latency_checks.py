"""Checks of the one latency record (reporting/latency.py), run by tests/test_latency.py in a
subprocess each: Locust must monkey-patch before anything imports ssl, and the test session has
already imported it."""

from __future__ import annotations

import math
import random

import locust.stats  # noqa: I001 - first: Locust patches the standard library on import
from locust.stats import RequestStats, StatsEntry

from reporting import latency

QS = [q for _, q in latency.QUANTILES]


def _stats(values: list[float], name: str = "POST /payments") -> RequestStats:
    stats = RequestStats(use_response_times_cache=False)
    for v in values:
        stats.log_request("POST", name, v, 0)
    return stats


def check_locust_records_and_reads_with_the_suite_record():
    assert locust.stats.bucket_response_time is latency.bucket
    assert locust.stats.calculate_response_time_percentile is latency._locust_percentile


def check_a_bucket_is_never_below_its_value_and_at_most_0_2_percent_above(seed):
    rng = random.Random(seed)
    for _ in range(20_000):
        v = math.exp(rng.uniform(math.log(0.01), math.log(600_000)))  # 10 us .. 10 min
        b = latency.bucket(v)
        assert v <= b * (1 + 1e-12), (v, b)
        assert b <= v * latency.GAMMA * (1 + 1e-12), (v, b)
        assert latency.index_value(latency.bucket_index(v)) == b


def check_percentiles_match_the_exact_ones_within_the_bound_and_keep_the_invariants(seed):
    rng = random.Random(seed)
    shape = [
        lambda: rng.lognormvariate(3, 1.2),
        lambda: rng.choice([23.0] * 90 + [417.0] * 8 + [2530.0] * 2) + rng.random(),
        lambda: 10 * rng.paretovariate(1.5),
        lambda: 1040 + 27 * rng.random(),
    ][seed]
    values = [shape() for _ in range(rng.randint(50, 5000))]
    stats = _stats(values)
    figures = latency.entry_figures(stats.total)
    ordered = sorted(values)
    for label, q in latency.QUANTILES:
        exact = latency.exact_percentile(ordered, q)
        got = figures[f"{label}_ms"]
        # never below the truth (beyond the 2-decimal rounding), at most 0.2 % above it
        assert exact - 0.005 <= got <= exact * latency.GAMMA + 0.005, (label, got, exact)
    chain = [figures[k] for k in ("min_ms", "p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms")]
    assert chain == sorted(chain), chain
    assert figures["max_ms"] == round(max(values), 2) and figures["min_ms"] == round(min(values), 2)


def check_the_issue_case_1040_ms_reports_no_p50_under_the_fastest_request_and_no_p95_over_the_max():
    rng = random.Random(1040)
    values = [1041 + 26.77 * rng.random() for _ in range(103)]
    figures = latency.entry_figures(_stats(values).total)
    assert figures["p50_ms"] >= 1040 and figures["p50_ms"] >= min(values) - 0.005
    assert abs(figures["p50_ms"] - latency.exact_percentile(sorted(values), 0.5)) <= 0.01 * 1040
    assert figures["p95_ms"] <= figures["max_ms"] and figures["p99_ms"] <= figures["max_ms"]


def check_workers_records_merge_exactly_on_the_master():
    rng = random.Random(3)
    parts = [[rng.lognormvariate(2.5, 1.0) for _ in range(3000)] for _ in range(3)]
    master = RequestStats(use_response_times_cache=False)
    for values in parts:
        worker = _stats(values)
        # Locust's own transport: serialised entries, rebuilt and extended on the master
        for raw in worker.serialize_stats():
            entry = StatsEntry.unserialize(raw, master)
            key = (entry.name, entry.method)
            master.entries.setdefault(key, StatsEntry(master, entry.name, entry.method)).extend(entry)
    one = _stats([v for values in parts for v in values])
    merged, whole = master.entries[("POST /payments", "POST")], one.entries[("POST /payments", "POST")]
    assert dict(merged.response_times) == dict(whole.response_times)
    assert latency.entry_figures(merged) == latency.entry_figures(whole)


def check_the_record_stays_bounded_whatever_the_request_count():
    rng = random.Random(5)
    stats = _stats([math.exp(rng.uniform(0, math.log(10_000))) for _ in range(200_000)])  # 1 ms .. 10 s
    keys = len(stats.total.response_times)
    per_decade = math.log(10) / math.log(latency.GAMMA)
    assert keys <= 4 * per_decade + 4, keys  # four decades: the mapping's bound, not the request count
    assert per_decade < 1200


def check_locust_tables_read_the_same_figures():
    rng = random.Random(11)
    values = [rng.lognormvariate(4, 0.8) for _ in range(2000)]
    entry = _stats(values).total
    figures = latency.entry_figures(entry)
    for label, q in latency.QUANTILES:
        # Locust's own percentile (console table, CSV, HTML report) is the record's, before clamping
        assert round(min(entry.get_response_time_percentile(q), entry.max_response_time), 2) == figures[f"{label}_ms"]


def check_curve_is_monotone_and_ends_at_min_and_max():
    rng = random.Random(2)
    values = [rng.expovariate(1 / 30) for _ in range(10_000)]
    points = latency.curve(_stats(values).total)
    assert points[0] == [0.0, round(min(values), 3)] and points[-1] == [100.0, round(max(values), 3)]
    assert [p for p, _ in points] == sorted(p for p, _ in points)
    assert [ms for _, ms in points] == sorted(ms for _, ms in points)


def check_an_empty_record_has_no_figures():
    entry = RequestStats(use_response_times_cache=False).total
    assert set(latency.entry_figures(entry).values()) == {None}
    assert latency.curve(entry) == [] and latency.percentile({}, 0.5) is None
