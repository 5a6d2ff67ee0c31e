"""The suite's one latency record: every percentile it prints, charts, gates on or stores.

Why this design. Locust keeps, per endpoint and for the total, a sparse histogram
(``StatsEntry.response_times``: {bucketed ms: requests}) that its workers already ship to the
master and the master merges by adding counts. Its flaw is the bucketing: about two significant
digits (1,041 ms is stored as 1,000), so a p50 could pass an SLO no request met. Locust made the
bucketer replaceable (``locust.stats.bucket_response_time``, Locust >= 2.43.4); we replace it with
DDSketch's logarithmic mapping (PyPI ``ddsketch``) at 0.1 % relative accuracy. Each bucket holds
the values in (gamma^(k-1), gamma^k] and is stored under its *upper* bound gamma^k, so:

- a reported percentile is never below the true one and at most 0.2 % above it (then clamped to
  the exact maximum): an SLO pass is never a false pass;
- Locust's console table, its HTML report, the steady window, the timeline buckets and the
  corrected latencies of the open model all hold the same record, and merging across workers stays
  exact (counts add up; the mapping is the same in every process);
- the bound on size is the mapping's: at most ~1,150 keys per decade of latency per endpoint.

DDSketch over HdrHistogram: the same guarantee (HdrHistogram at 3 significant digits is ~0.1 %),
but DDSketch's record is sparse and its relative error is the same in every decade, while an
HdrHistogram preallocates ~185 KB per histogram (1 us .. 1 h); with one per endpoint, per window
and per timeline bucket that is tens of MB before the first request.

Percentiles use the nearest-rank rule (the smallest recorded value with at least q of the
requests at or below it), the rule the raw request log is checked with, and Locust's own
percentile function is replaced by the same rule so its tables agree. The invariant
min <= p50 <= p95 <= p99 <= p99.9 <= max holds by construction (monotone in q, clamped).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import locust.stats
from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY = 0.001
MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
GAMMA = MAPPING.gamma
# The figures every table carries, and the points of the percentile chart (percent).
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))
CURVE_PERCENTS = (0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.99)
_MIN_MS = 1e-6  # 1 ns: anything at or below it (a zero) is its own bucket, 0.0

_key = MAPPING.key
_pow = MAPPING._pow_gamma  # gamma ** key (the mapping's offset is 0)


def bucket_index(ms: float) -> int:
    """The bucket of a response time (ms); 0 ms and below share the lowest index."""
    if ms <= _MIN_MS:
        return -(2**31) + 1
    return _key(ms)


def index_value(index: int) -> float:
    """The ms a bucket is stored under: its upper bound (0.0 for the zero bucket)."""
    if index <= -(2**31) + 1:
        return 0.0
    return _pow(index)


_UPPER: dict[int, float] = {}  # bucket index -> its upper bound: at most a few thousand indices ever


def bucket(ms: float) -> float:
    """Locust's bucketer, replaced: the upper bound of the response time's bucket (ms)."""
    if ms <= _MIN_MS:
        return 0.0
    k = _key(ms)
    upper = _UPPER.get(k)
    if upper is None:
        upper = _UPPER[k] = _pow(k)
    return upper


def _rank(count: int, q: float) -> int:
    # nearest rank; the small epsilon keeps 0.95 * 100 from becoming rank 96 through float error
    return min(count, max(1, math.ceil(q * count - 1e-9)))


def percentile(
    hist: Mapping[float, int] | Iterable[tuple[float, int]],
    q: float,
    low: float | None = None,
    high: float | None = None,
    count: int | None = None,
) -> float | None:
    """The ``q`` (0..1) percentile of a bucketed record {ms: requests}, clamped to [low, high]
    (the exact min and max where they are known). None when it holds no request."""
    items = sorted(hist.items() if isinstance(hist, Mapping) else hist)
    total = count if count is not None else sum(n for _, n in items)
    if total <= 0:
        return None
    wanted, seen, value = _rank(total, q), 0, items[-1][0] if items else None
    for ms, n in items:
        seen += n
        if seen >= wanted:
            value = ms
            break
    if value is None:
        return None
    if high is not None:
        value = min(value, high)
    if low is not None:
        value = max(value, low)
    return float(value)


def exact_percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank percentile of raw samples (ascending): the ground truth the record is
    checked against (request log, burst samples, calibration)."""
    if not sorted_values:
        return None
    return float(sorted_values[_rank(len(sorted_values), q) - 1])


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def entry_figures(entry: locust.stats.StatsEntry, suffix: str = "_ms") -> dict[str, float | None]:
    """min, p50, p95, p99, p99.9 and max of a Locust stats entry, each in ms (2 decimals)."""
    timed = entry.num_requests - entry.num_none_requests
    if timed <= 0 or not entry.response_times:
        return {f"{label}{suffix}": None for label in ("min", *(q for q, _ in QUANTILES), "max")}
    low, high = entry.min_response_time, entry.max_response_time
    out = {f"min{suffix}": _r(low)}
    for label, q in QUANTILES:
        out[f"{label}{suffix}"] = _r(percentile(entry.response_times, q, low, high, timed))
    out[f"max{suffix}"] = _r(high)
    return out


def curve(entry: locust.stats.StatsEntry) -> list[list[float]]:
    """[[percent, ms], ...] at :data:`CURVE_PERCENTS` and 100 (the max): the percentile chart."""
    timed = entry.num_requests - entry.num_none_requests
    if timed <= 0 or not entry.response_times:
        return []
    low, high = entry.min_response_time, entry.max_response_time
    items = sorted(entry.response_times.items())
    points = [[p, round(percentile(items, p / 100, low, high, timed) or 0.0, 3)] for p in CURVE_PERCENTS if p > 0]
    return [[0.0, round(low, 3)], *points, [100.0, round(high, 3)]]


_LAST_SORTED: list = [None, -1, []]  # the record last read, its count, its sorted items


def _locust_percentile(response_times: Mapping[float, int], num_requests: int, percent: float) -> float:
    """Locust's percentile function, replaced by the suite's rule (same record, same answer).

    Locust asks for several percentiles of one record in a row (its CSV history, every 2 s, for
    each endpoint): the last record's sorted items are kept while it is the same dict with the same
    count (counts only grow, so an unchanged count is an unchanged record). One slot: the cache
    never holds more than one record."""
    last = _LAST_SORTED
    if last[0] is not response_times or last[1] != num_requests:
        last[:] = [response_times, num_requests, sorted(response_times.items())]
    return percentile(last[2], percent, count=num_requests) or 0


def install() -> None:
    """Make Locust record with the suite's bucketer and read percentiles with its rule. Every
    process that records (local, worker) or merges (master) imports this through the locustfile."""
    locust.stats.bucket_response_time = bucket
    locust.stats.calculate_response_time_percentile = _locust_percentile


install()
