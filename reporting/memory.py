"""Keep the load generator's memory flat on long runs.

Locust 2.x keeps, for every stats entry and the total, a ``{second: count}`` dict of requests and
one of failures (``StatsEntry.num_reqs_per_sec`` / ``num_fail_per_sec``). On a local runner or a
master nothing ever prunes them (workers reset theirs with each report), so a run grows by one key
per second per entry hit in that second: ~0.6 KB a second (~0.36 MB per 10 minutes) in the
endurance profile, with the suite's 38 entries.

While a run is live, Locust reads them only for "current" figures: ``current_rps`` and
``current_fail_per_sec`` look at the seconds from ``last_request_timestamp - 12`` to ``- 3``; the
console, the web UI, the stats-history CSV and the HTML charts read those properties. The one
whole-run reader is the final ``--json``/``--json-file`` output (``serialize_stats``), which
``bench/common.py`` uses for its req/s figures.

So a greenlet (local runner or master, from the first ``test_start``) moves every second older
than ``KEEP_S`` before the newest request out of those dicts into an anonymous temporary file, and
at ``quitting`` (which Locust fires before it writes the JSON) puts them back when JSON output was
asked for. Every figure any report shows stays the same; only what lives in memory during the run
is bounded. If the file cannot be written, pruning stops (the old behaviour) with one warning.

The same greenlet turns off Locust's response-times cache on every per-endpoint entry (the total
keeps it). That cache holds a copy of the entry's ``response_times`` dict for each of the last 20
seconds, so it grows 21-fold with every new distinct (rounded) response time an endpoint sees. It
serves only "current" percentiles, which Locust reads for the total alone (UI, HTML charts, stats
history CSV); per-endpoint ones only with ``--csv-full-history``, where it is left on.
"""

from __future__ import annotations

import logging
import tempfile
from typing import IO

import gevent
from locust import events
from locust.runners import WorkerRunner
from locust.stats import RequestStats, StatsEntry

log = logging.getLogger("suite")

KEEP_S = 30  # current_rps reads the last 12 s; a master's workers report every 3 s
PRUNE_INTERVAL_S = 10.0
PER_SECOND_ATTRS = ("num_reqs_per_sec", "num_fail_per_sec")


class PerSecondSpill:
    """Moves old per-second counters of a ``RequestStats`` to a file and can put them back.

    Each dict is remembered by identity, so counters are put back only into the very dict they
    came from: a stats reset (web UI) replaces the dicts, and what was spilled before it is dropped.
    """

    def __init__(self, keep_s: int = KEEP_S):
        self.keep_s = keep_s
        self.enabled = True
        self._file: IO[str] | None = None
        self._slots: list[tuple[StatsEntry, str, dict]] = []
        self._slot_of: dict[int, int] = {}  # id(per-second dict) -> index in _slots
        self.spilled_keys = 0

    def prune(self, stats: RequestStats) -> int:
        """Spill the seconds older than ``keep_s`` before the newest request; returns how many."""
        newest = stats.total.last_request_timestamp
        if not self.enabled or newest is None:
            return 0
        horizon = int(newest) - self.keep_s
        moved = 0
        lines: list[str] = []
        taken: list[tuple[dict, list[int]]] = []
        for entry in [*stats.entries.values(), stats.total]:
            for attr in PER_SECOND_ATTRS:
                per_second = getattr(entry, attr)
                old = [t for t in per_second if t < horizon]
                if not old:
                    continue
                slot = self._slot(entry, attr, per_second)
                lines.append(f"{slot} " + ",".join(f"{t}:{per_second[t]}" for t in old) + "\n")
                taken.append((per_second, old))
                moved += len(old)
        if not lines:
            return 0
        try:
            if self._file is None:  # open for the whole run; restore() or close() closes it
                self._file = tempfile.TemporaryFile("w+", encoding="ascii", prefix="locust-per-s-")  # noqa: SIM115
            self._file.writelines(lines)
        except OSError as exc:
            self.enabled = False
            log.warning("per-second counters stay in memory (cannot spill them: %s)", exc)
            return 0
        for per_second, old in taken:
            for t in old:
                del per_second[t]
        self.spilled_keys += moved
        return moved

    def restore(self) -> int:
        """Add every spilled counter back to the dict it came from; returns how many keys."""
        if self._file is None:
            return 0
        restored = 0
        try:
            self._file.flush()
            self._file.seek(0)
            for line in self._file:
                slot, _, pairs = line.rstrip("\n").partition(" ")
                entry, attr, per_second = self._slots[int(slot)]
                if getattr(entry, attr) is not per_second:
                    continue  # the stats were reset since: these counters belong to no live entry
                for pair in pairs.split(","):
                    t, _, n = pair.partition(":")
                    per_second[int(t)] = per_second.get(int(t), 0) + int(n)
                    restored += 1
        except OSError as exc:
            log.warning("could not restore the spilled per-second counters: %s", exc)
        self.close()
        return restored

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._slots.clear()
        self._slot_of.clear()

    def _slot(self, entry: StatsEntry, attr: str, per_second: dict) -> int:
        slot = self._slot_of.get(id(per_second))
        if slot is None or self._slots[slot][2] is not per_second:
            slot = len(self._slots)
            self._slots.append((entry, attr, per_second))
            self._slot_of[id(per_second)] = slot
        return slot


def drop_entry_response_time_caches(stats: RequestStats) -> int:
    """Turn off the per-second response-times cache of every entry but the total; returns how many."""
    dropped = 0
    for entry in stats.entries.values():
        if entry.use_response_times_cache or entry.response_times_cache is not None:
            entry.use_response_times_cache = False
            entry.response_times_cache = None
            dropped += 1
    return dropped


SPILL = PerSecondSpill()
_pruner: gevent.Greenlet | None = None


def _prune_forever(environment) -> None:
    full_history = bool(getattr(environment.parsed_options, "stats_history_enabled", False))
    while True:
        gevent.sleep(PRUNE_INTERVAL_S)
        try:
            if not full_history:
                drop_entry_response_time_caches(environment.stats)
            SPILL.prune(environment.stats)
        except Exception:  # a bookkeeping bug must never stop the load test
            log.exception("bounding the stats' memory failed; it stays as Locust keeps it")
            return


@events.test_start.add_listener
def _start_pruning(environment, **_kwargs) -> None:
    global _pruner
    if isinstance(environment.runner, WorkerRunner) or (_pruner is not None and not _pruner.dead):
        return
    _pruner = gevent.spawn(_prune_forever, environment)


@events.quitting.add_listener
def _stop_pruning(environment, **_kwargs) -> None:
    global _pruner
    if _pruner is not None:
        _pruner.kill(block=True)
        _pruner = None
    opts = environment.parsed_options
    if opts is None or getattr(opts, "json", False) or getattr(opts, "json_file", None):
        SPILL.restore()  # Locust writes the JSON, with every second of the run, after quitting
    else:
        SPILL.close()
