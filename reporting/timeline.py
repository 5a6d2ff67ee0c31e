"""Per-endpoint response times over time: the summary's ``timeline`` section (the HTML charts).

Locust's stats hold percentiles for the whole run only (and "current" ones for the last few
seconds); the question "when during the run did POST /payments p99 get worse?" needs them per
time bucket. This section records, from Locust's ``request`` event:

- per endpoint per time bucket, a histogram of response times in the buckets of the suite's one
  latency record (``reporting.latency``: 0.1 % relative accuracy), kept as bucket indices so a
  closed bucket packs into an int array, and read with the same percentile rule as every table;
  an endpoint with fewer than :data:`MIN_PER_POINT` requests a bucket gets its percentiles over
  groups of consecutive buckets (``points_s`` says how wide), so each point means something;
- failures per bucket per endpoint by the suite's categories (``reporting.summary.categorize``);
- the users running (the most seen in the bucket, sampled every second).

Buckets are aligned to the wall clock (multiples of the bucket width since the epoch), so the
buckets of a distributed run's workers add up on the master by key.

Cost. Per request: one dict lookup (the endpoint's histogram in the current bucket), the rounding,
one dict increment; a failure adds a cached categorisation and two increments. Nothing is
allocated beyond the first hit of a key. A greenlet wakes once a second to sample the users and
open the next bucket. Nothing is recorded (the listener is not attached) unless the run writes a
summary (``--report-dir``).

Memory. At most :data:`MAX_BUCKETS` buckets: 5 s buckets for up to 30 minutes; past that, pairs
of buckets merge and the width doubles (10 s up to an hour, 20 s up to two, ...). A bucket holds
one histogram per endpoint (at most :data:`MAX_ENDPOINTS` names; more are counted together as
``(other endpoints)``), and the record's buckets keep a histogram to ~1,150 keys per decade of
response time (in practice a few hundred). So the bound is MAX_BUCKETS x endpoints x distinct rounded times,
whatever the request rate; a 30-minute run of the suite's ~30 endpoints measures a few MB.
"""

from __future__ import annotations

import math
import time
from array import array
from collections import defaultdict
from itertools import chain
from typing import Any

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

import apis
import options
from reporting import latency
from reporting.run import RUN
from reporting.sections import RunContext, Section, register
from reporting.summary import categorize

BUCKET_S = 5
MAX_BUCKETS = 384  # 32 minutes of 5 s buckets: a 30-minute run (and its ramp and stop) keeps 5 s
MAX_ENDPOINTS = 100
OTHER = "(other endpoints)"
WIDTH_OPTION = "suite_timeline_bucket_s"  # set on the master, reaches the workers with its options
NO_TIME = -(2**31)  # histogram key of a request reported without a response time (custom clients)
_CATEGORY_CACHE_MAX = 2000
MIN_PER_POINT = 20  # requests a percentile point should hold; sparser endpoints get wider points
TOTAL_KEY = "\x00total"  # the total's histograms among the endpoints' (no endpoint is named so)


def _items(counts):
    """(bucket index, requests) pairs of a histogram: an open bucket's dict or a closed one's array."""
    if isinstance(counts, array):
        return zip(counts[::2], counts[1::2], strict=True)
    return counts.items()


def _compact(counts) -> array:
    return array("i", chain.from_iterable(_items(counts)))


class _Bucket:
    """One time bucket. While requests land in it, its histograms are dicts; once the next bucket
    opens they are packed into arrays of (ms, count) pairs (4 bytes a number, about a fifth of a
    dict's memory)."""

    __slots__ = ("hist", "fails", "users", "closed")

    def __init__(self) -> None:
        self.hist: dict[str, Any] = {}  # endpoint -> {bucket index: requests} (array once closed)
        self.fails: dict[str, defaultdict[str, int]] = {}  # endpoint -> {category: failures}
        self.users = 0
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.hist = {name: _compact(h) for name, h in self.hist.items()}
            self.closed = True

    def reopen(self) -> None:
        if self.closed:
            self.hist = {name: defaultdict(int, _items(h)) for name, h in self.hist.items()}
            self.closed = False

    def absorb(self, hist: dict, fails: dict, users: int) -> None:
        for name, counts in hist.items():
            mine = self.hist.get(name)
            merged = defaultdict(int, _items(mine)) if self.closed and mine is not None else mine
            if merged is None:
                merged = defaultdict(int)
            for rt, n in _items(counts):
                merged[int(rt)] += n
            self.hist[name] = _compact(merged) if self.closed else merged
        for name, counts in fails.items():
            mine = self.fails.get(name)
            if mine is None:
                mine = self.fails[name] = defaultdict(int)
            for category, n in counts.items():
                mine[category] += n
        self.users = max(self.users, users or 0)

    def plain(self) -> dict[str, Any]:
        return {
            "hist": {name: dict(_items(h)) for name, h in self.hist.items()},
            "fails": {name: dict(f) for name, f in self.fails.items()},
            "users": self.users,
        }

    def requests(self) -> int:
        return sum(n for h in self.hist.values() for _, n in _items(h))


def bucket_width(run_time: float | None) -> int:
    """Seconds per bucket: finer for short runs (a 30 s smoke gets 30 points), 5 s from 5 minutes
    (or when the run has no time limit); :meth:`TimelineSection._widen` takes over past MAX_BUCKETS."""
    if isinstance(run_time, int | float) and run_time > 0:
        return 1 if run_time <= 120 else 2 if run_time <= 300 else BUCKET_S
    return BUCKET_S


PERCENTILES = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))


def percentiles(hist) -> dict[str, float | None]:
    """p50/p95/p99 (ms) of a histogram of bucket indices, by the record's rule
    (``reporting.latency.percentile``); untimed requests left out."""
    timed = [(latency.index_value(i), n) for i, n in _items(hist) if i != NO_TIME and n]
    return {label: latency.percentile(timed, pct) for pct, label in PERCENTILES}


def group_size(counts: list[int], least: int = MIN_PER_POINT) -> int:
    """Buckets per percentile point: 1 where the endpoint has ``least`` requests a bucket on
    average, else enough consecutive buckets (a power of two) that a point holds about that many;
    a sparse endpoint's p99 of three requests is noise, not a figure."""
    active = [c for c in counts if c]
    if not active:
        return 1
    k = 1
    while k < len(counts) and sum(active) / len(active) * k < least:
        k *= 2
    return k


def _percentile_points(hists: list, row: dict[str, Any], width: int) -> int:
    """Fill ``row``'s p50/p95/p99 lists (one value per bucket): each group of ``group_size``
    buckets gets the percentiles of its merged histogram, repeated over its buckets. Returns the
    seconds each point covers."""
    counts = [sum(n for i, n in _items(h) if i != NO_TIME) for h in hists]
    k = group_size(counts)
    for label in ("p50", "p95", "p99"):
        row[label] = []
    for start in range(0, len(hists), k):
        group = hists[start : start + k]
        if len(group) == 1:
            values = percentiles(group[0])
        else:
            merged: defaultdict[int, int] = defaultdict(int)
            for h in group:
                for i, n in _items(h):
                    merged[i] += n
            values = percentiles(merged)
        for label, value in values.items():
            row[label].extend([value] * len(group))
    return k * width


class TimelineSection(Section):
    name = "timeline"
    order = 90

    def __init__(self) -> None:
        self.recording = False
        self.listening = False  # on_request is attached to the request event
        self.environment = None
        self._ticker: gevent.Greenlet | None = None
        self.reset()

    def reset(self, width: int = BUCKET_S) -> None:
        self.width = width
        self.buckets: dict[int, _Bucket] = {}  # wall-clock start (a multiple of width) -> bucket
        self.methods: dict[str, str] = {}  # endpoint -> request method (first seen)
        self._categories: dict[str, str] = {}
        self._open(time.time())

    # -- recording (hot path) --------------------------------------------------------------

    def on_request(  # Locust's request event; its arguments named, so no dict is built for them
        self,
        request_type,
        name,
        response_time,
        response_length=0,
        exception=None,
        context=None,
        response=None,
        start_time=None,
        url=None,
        **_kw,
    ) -> None:
        hist = self.hist.get(name)
        if hist is None:
            hist, name = self._first_hit(request_type, name)
        try:
            hist[self._round(response_time)] += 1
        except TypeError:  # no response time
            hist[NO_TIME] += 1
        if exception is not None:
            self._failure(name, exception)

    def _first_hit(self, request_type: str, name: str) -> tuple[defaultdict, str]:
        if name not in self.methods:
            if len(self.methods) >= MAX_ENDPOINTS:
                name = OTHER
            self.methods.setdefault(name, request_type)
        hist = self.hist.get(name)
        if hist is None:
            hist = self.hist[name] = defaultdict(int)
        return hist, name

    def _failure(self, name: str, exception) -> None:
        if name not in self.methods:
            name = OTHER
        text = str(exception)
        category = self._categories.get(text)
        if category is None:
            if len(self._categories) >= _CATEGORY_CACHE_MAX:
                self._categories.clear()
            category = self._categories[text] = categorize(text)
        fails = self.current.fails.get(name)
        if fails is None:
            fails = self.current.fails[name] = defaultdict(int)
        fails[category] += 1

    # -- buckets -----------------------------------------------------------------------------

    def _key(self, when: float) -> int:
        return int(when // self.width) * self.width

    def _open(self, now: float) -> None:
        """Make the bucket holding ``now`` the current one (creating it; widening when full)."""
        key = self._key(now)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket()
        previous = getattr(self, "current", None)
        if previous is not None and previous is not bucket:
            previous.close()
        bucket.reopen()
        self.current_key, self.current = key, bucket
        self.hist = bucket.hist
        if len(self.buckets) > MAX_BUCKETS:
            self._widen(self.width * 2)

    def _widen(self, width: int) -> None:
        """Merge buckets into ``width``-second ones (a multiple of the current width)."""
        merged: dict[int, _Bucket] = {}
        for key in sorted(self.buckets):
            bucket, new_key = self.buckets[key], int(key // width) * width
            if new_key in merged:
                merged[new_key].absorb(bucket.hist, bucket.fails, bucket.users)
            else:
                merged[new_key] = bucket
        self.width, self.buckets = width, merged
        self.current_key = self._key(self.current_key)
        self.current = merged[self.current_key]
        self.current.reopen()
        self.hist = self.current.hist
        if len(self.buckets) > MAX_BUCKETS:
            self._widen(width * 2)

    def _tick(self) -> None:
        while self.recording:
            now = time.time()
            if self._key(now) != self.current_key:
                self._open(now)
            runner = self.environment.runner if self.environment is not None else None
            if runner is not None and not isinstance(runner, WorkerRunner):
                self.current.users = max(self.current.users, runner.user_count)
            gevent.sleep(min(1.0, self.current_key + self.width - now + 0.001))

    def start(self, environment) -> None:
        if self.recording:
            return
        opts = environment.parsed_options
        # A worker gets the master's width with the spawn message (its own run_time is not set).
        width = getattr(opts, WIDTH_OPTION, None) or bucket_width(getattr(opts, "run_time", None))
        self.reset(int(width))
        self.environment = environment
        self._round = latency.bucket_index
        self.recording = True
        if not self.listening and not isinstance(environment.runner, MasterRunner):
            environment.events.request.add_listener(self.on_request)
            self.listening = True
        self._ticker = gevent.spawn(self._tick)

    def stop(self) -> None:
        self.recording = False
        if self._ticker is not None:
            self._ticker.kill(block=False)
            self._ticker = None

    # -- distributed runs ---------------------------------------------------------------------

    def worker_report(self) -> dict[str, Any] | None:
        if not self.recording and not any(b.hist or b.fails for b in self.buckets.values()):
            return None
        shipped = {key: b.plain() for key, b in self.buckets.items() if b.hist or b.fails}
        methods = dict(self.methods)
        self.buckets = {}
        self._open(time.time() if self.recording else self.current_key)
        if not shipped:
            return None
        return {"width": self.width, "methods": methods, "buckets": shipped}

    def merge_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        width = int(data.get("width") or BUCKET_S)
        if self.width % width:  # a worker with other buckets (it should not be): widen to fit both
            self._widen(math.lcm(self.width, width))
        for name, method in (data.get("methods") or {}).items():
            if name not in self.methods and len(self.methods) < MAX_ENDPOINTS:
                self.methods[name] = method
        for key, part in (data.get("buckets") or {}).items():
            new_key = int(int(key) // self.width) * self.width
            bucket = self.buckets.get(new_key)
            if bucket is None:
                bucket = self.buckets[new_key] = _Bucket()
                if bucket is not self.current:
                    bucket.close()  # kept packed, as the buckets the master closed itself
            for n, h in (part.get("hist") or {}).items():
                bucket.absorb({self._known(n): h}, {}, 0)
            for n, f in (part.get("fails") or {}).items():
                bucket.absorb({}, {self._known(n): f}, 0)
        if len(self.buckets) > MAX_BUCKETS:
            self._widen(self.width * 2)

    def _known(self, name: str) -> str:
        """The name a worker's endpoint is kept under on the master (the cap applies there too)."""
        if name in self.methods:
            return name
        self.methods.setdefault(OTHER, "")
        return OTHER

    # -- the section ----------------------------------------------------------------------------

    def prepare(self, run: RunContext) -> None:
        self.stop()

    def build(self, run: RunContext) -> dict[str, Any] | None:
        if self.environment is None:
            return None  # not recorded: no summary was wanted when the run started
        return self.figures(run.started_at, run.ended_at)

    def figures(self, started_at: float, ended_at: float) -> dict[str, Any]:
        """The timeline as the summary carries it: one value per bucket in each list."""
        w = self.width
        keys = [k for k in sorted(self.buckets) if k + w > started_at and k < ended_at or self._has_data(k)]
        t, span, users, requests, rps = [], [], [], [], []
        total = {"failures": [], "p50": [], "p95": [], "p99": []}
        per_category: dict[str, list[int]] = {}
        names = sorted(self.methods)
        hists: dict[str, list] = {n: [] for n in [*names, TOTAL_KEY]}  # per bucket, for the percentiles
        endpoints = {
            n: {"method": self.methods[n], "requests": [], "failures": [], "p50": [], "p95": [], "p99": []}
            for n in names
        }
        for i, key in enumerate(keys):
            b = self.buckets[key]
            lo, hi = max(key, started_at), min(key + w, ended_at)
            t.append(round(lo - started_at, 2))
            span.append(round(max(hi - lo, 0.0), 2))
            users.append(b.users)
            merged: defaultdict[int, int] = defaultdict(int)
            for n in names:
                h = b.hist.get(n) or {}
                count = 0
                for rt, c in _items(h):
                    merged[rt] += c
                    count += c
                row = endpoints[n]
                row["requests"].append(count)
                row["failures"].append(sum((b.fails.get(n) or {}).values()))
                hists[n].append(h)
            hists[TOTAL_KEY].append(merged)
            n_req = sum(merged.values())
            requests.append(n_req)
            rps.append(round(n_req / max(span[-1], 1.0), 3))
            for fails in b.fails.values():
                for category, c in fails.items():
                    per_category.setdefault(category, [0] * len(keys))[i] += c
            total["failures"].append(sum(sum(f.values()) for f in b.fails.values()))
        for n, row in [*endpoints.items(), (TOTAL_KEY, total)]:
            row["points_s"] = _percentile_points(hists[n], row, w)
        from reporting.html_report import MONEY_ENDPOINTS  # charted always; stdlib, imported only at the end

        steady = RUN.steady
        window = None
        if steady.started_at is not None:
            lo = max(steady.started_at, started_at) - started_at
            hi = min(steady.stopped_at or ended_at, ended_at) - started_at
            if hi > lo:
                window = {"from_s": round(lo, 2), "to_s": round(hi, 2)}
        return {
            "bucket_s": w,
            "started_at": round(started_at, 3),
            "duration_s": round(ended_at - started_at, 2),
            "steady": window,
            # the contract's money endpoints, and the payment requests of the run's dialect
            "money_endpoints": [
                n for n in dict.fromkeys((*apis.current().payment_names, *MONEY_ENDPOINTS)) if n in endpoints
            ],
            "t": t,
            "span": span,
            "users": users,
            "requests": requests,
            "rps": rps,
            "failures": per_category,
            "total": total,
            "endpoints": endpoints,
        }

    def _has_data(self, key: int) -> bool:
        return self.buckets[key].requests() > 0


TIMELINE = register(TimelineSection())


@events.init.add_listener
def on_init(environment, **_kwargs) -> None:
    opts = environment.parsed_options
    if isinstance(environment.runner, MasterRunner) and opts is not None:
        setattr(opts, WIDTH_OPTION, bucket_width(getattr(opts, "run_time", None)))


@events.test_start.add_listener
def on_test_start(environment, **_kwargs) -> None:
    # A worker learns the master's --report-dir with the spawn message (before test_start).
    if options.report_dir(environment):
        TIMELINE.start(environment)


@events.test_stop.add_listener
def on_test_stop(environment, **_kwargs) -> None:
    # The users have stopped: no more buckets (a worker still ships what it holds when it quits;
    # the next test_start, in the web UI, starts a new timeline).
    TIMELINE.stop()
