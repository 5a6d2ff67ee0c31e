"""Reading the raw request log back (``reporting/request_log.py`` writes it): every summary
figure recomputed from the raw lines, and compared with the summary.

    python -m reporting.request_log <file> [--summary <profile>-summary.json]

reads ``<file>`` and every ``<file>.worker<N>``, and recomputes per endpoint and for the total:
requests, failures, error rate (percent), req/s over the log's window (first request sent to the
last answer received), average, min/p50/p95/p99/p99.9/max of the service time (exact nearest-rank
percentiles, ``reporting.latency.exact_percentile``) and of the corrected latency where the log
has it. With ``--summary`` each figure is compared with the summary JSON's (``totals``,
``endpoints``, and ``open_model``'s corrected figures): counts exactly, latencies within the
record's bound (0.2 % + 0.01 ms, the summary rounds to 0.01 ms), the summary's RPS as requests over
its own ``duration_s``. Exit status: 0 every figure agrees, 1 a difference (each listed), 2 bad
arguments or a log that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reporting.latency import QUANTILES, exact_percentile
from reporting.request_log import COLUMNS, HEADER, WORKER_SUFFIX, log_files

REL_TOLERANCE, ABS_TOLERANCE_MS = 0.002, 0.01  # the latency record's bound, plus the summary's rounding
LATENCY_KEYS = ("min", *(label for label, _ in QUANTILES), "max")


class LogError(Exception):
    """The log cannot be read (missing, not a request log, a malformed line)."""


@dataclass
class Group:
    """The requests of one endpoint (or all of them)."""

    requests: int = 0
    failures: int = 0
    service: list[float] = field(default_factory=list)
    corrected: list[float] = field(default_factory=list)

    def add(self, ok: bool, service: float | None, corrected: float | None) -> None:
        self.requests += 1
        self.failures += not ok
        if service is not None:
            self.service.append(service)
        if corrected is not None:
            self.corrected.append(corrected)


@dataclass
class Recomputed:
    total: Group = field(default_factory=Group)
    endpoints: dict[tuple[str, str], Group] = field(default_factory=dict)  # (endpoint, method)
    workers: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    first_sent: float | None = None
    last_end: float | None = None
    cut_lines: int = 0  # a last line a hard kill cut short: skipped

    @property
    def window_s(self) -> float:
        """The log's window: from the first request sent to the last answer received."""
        if self.first_sent is None or self.last_end is None:
            return 0.0
        return max(self.last_end - self.first_sent, 0.0)


def read(path: str | Path) -> Recomputed:
    """Every line of ``<path>`` and of each ``<path>.worker<N>``."""
    files = log_files(path)
    if not files:
        raise LogError(f"no request log at {path} (nor {path}{WORKER_SUFFIX}<N>)")
    out = Recomputed(files=files)
    first, last = float("inf"), float("-inf")
    for file in files:
        with file.open(encoding="utf-8", newline="") as fh:
            header = fh.readline()
            if header != HEADER:
                raise LogError(f"{file}: not a request log (its first line is not the header {HEADER.strip()!r})")
            for number, line in enumerate(fh, start=2):
                if not line.endswith("\n"):  # only the last line can lack its end: a write cut short
                    out.cut_lines += 1
                    break
                cells = line[:-1].split("\t")
                try:  # a malformed line is named with its place; the check is in the parsing itself
                    sent_text, _due, method, endpoint, _status, ok, service_text, corrected_text, worker = cells
                    sent = float(sent_text)
                    service = float(service_text) if service_text else None
                    corrected = float(corrected_text) if corrected_text else None
                    if ok not in ("0", "1"):
                        raise ValueError(f"ok is {ok!r}, not 1 or 0")
                except ValueError as exc:
                    raise LogError(
                        f"{file}:{number}: not a request log line of {len(COLUMNS)} fields ({exc})"
                    ) from None
                group = out.endpoints.get((endpoint, method))
                if group is None:
                    group = out.endpoints[(endpoint, method)] = Group()
                group.add(ok == "1", service, corrected)
                out.total.add(ok == "1", service, corrected)
                out.workers[worker] = out.workers.get(worker, 0) + 1
                first = min(first, sent)
                last = max(last, sent + (service or 0.0) / 1000.0)
    if out.total.requests:
        out.first_sent, out.last_end = first, last
    return out


def _latencies(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    out = {"min_ms": ordered[0] if ordered else None}
    for label, q in QUANTILES:
        out[f"{label}_ms"] = exact_percentile(ordered, q)
    out["max_ms"] = ordered[-1] if ordered else None
    return out


def figures(group: Group, window_s: float) -> dict[str, Any]:
    """The summary's figures of one endpoint (or the total), exact, from the raw lines."""
    n = group.requests
    return {
        "requests": n,
        "failures": group.failures,
        "error_rate_pct": 100.0 * group.failures / n if n else 0.0,
        "rps": n / window_s if window_s > 0 else 0.0,
        "avg_ms": sum(group.service) / len(group.service) if group.service else None,
        **_latencies(group.service),
        "corrected": ({"requests": len(group.corrected), **_latencies(group.corrected)} if group.corrected else None),
    }


def _latency_ok(theirs: float, mine: float) -> bool:
    return abs(theirs - mine) <= REL_TOLERANCE * abs(mine) + ABS_TOLERANCE_MS


def _summary_error_rate_pct(row: dict[str, Any]) -> float | None:
    """The summary's error rate in percent (its ``error_rate`` is a fraction; a percent key wins)."""
    for key in ("error_rate_pct", "error_rate_percent"):
        if row.get(key) is not None:
            return float(row[key])
    return None if row.get("error_rate") is None else 100.0 * float(row["error_rate"])


def _compare_latencies(label: str, theirs: dict[str, Any], mine: dict[str, Any], suffix: str = "") -> list[str]:
    diffs = []
    for key in LATENCY_KEYS:
        a, b = theirs.get(f"{key}_ms"), mine.get(f"{key}_ms")
        if a is None and b is None:
            continue
        if a is None or b is None or not _latency_ok(float(a), float(b)):
            shown = "–" if b is None else f"{b:.3f}"
            diffs.append(f"{label} {key}{suffix}_ms: summary {a}, log {shown} (tolerance 0.2 % + 0.01 ms)")
    return diffs


def _compare_row(label: str, theirs: dict[str, Any], mine: dict[str, Any], duration_s: float | None) -> list[str]:
    diffs = [
        f"{label} {key}: summary {theirs.get(key)}, log {mine[key]}"
        for key in ("requests", "failures")
        if theirs.get(key) != mine[key]
    ]
    rate = _summary_error_rate_pct(theirs)
    if rate is not None and abs(rate - mine["error_rate_pct"]) > 1e-4 + 1e-9:
        diffs.append(f"{label} error rate: summary {rate:.4f} %, log {mine['error_rate_pct']:.4f} %")
    if duration_s and theirs.get("rps") is not None:
        # the summary's RPS is over its run window (duration_s, rounded to 0.01 s; RPS to 0.001)
        n = mine["requests"]
        low, high = n / (duration_s + 0.005) - 0.0005, n / max(duration_s - 0.005, 1e-9) + 0.0005
        if not low <= float(theirs["rps"]) <= high:
            diffs.append(
                f"{label} rps: summary {theirs['rps']}, log {n} requests / {duration_s} s = {n / duration_s:.3f}"
            )
    avg = theirs.get("avg_ms")
    if (avg is None) != (mine["avg_ms"] is None) or (avg is not None and not _latency_ok(avg, mine["avg_ms"])):
        diffs.append(f"{label} avg_ms: summary {avg}, log {mine['avg_ms']}")
    return diffs + _compare_latencies(label, theirs, mine)


def compare(summary: dict[str, Any], recomputed: Recomputed) -> tuple[int, list[str]]:
    """(figures compared, one line per difference) between a summary JSON and the log."""
    duration = summary.get("duration_s")
    window = recomputed.window_s
    pairs: list[tuple[str, dict, dict]] = [("total", summary.get("totals") or {}, figures(recomputed.total, window))]
    mine = {key: figures(group, window) for key, group in recomputed.endpoints.items()}
    seen = set()
    diffs: list[str] = []
    for row in summary.get("endpoints") or []:
        key = (row.get("name"), row.get("method"))
        seen.add(key)
        if key in mine:
            pairs.append((f"{key[1]} {key[0]!r}", row, mine[key]))
        else:
            diffs.append(f"{key[1]} {key[0]!r}: {row.get('requests')} requests in the summary, none in the log")
    diffs += [
        f"{m} {name!r}: {mine[(name, m)]['requests']} requests in the log, not in the summary"
        for name, m in sorted(set(mine) - seen)
    ]
    count = 0
    for label, theirs, ours in pairs:
        diffs += _compare_row(label, theirs, ours, duration)
        count += 3 + (theirs.get("rps") is not None) + 1 + len(LATENCY_KEYS)
    open_model = summary.get("open_model") or {}
    corrected_rows = [("total", (open_model.get("total") or {}).get("corrected"), pairs[0][2])]
    corrected_rows += [
        (f"{r.get('method')} {r.get('name')!r}", r.get("corrected"), mine.get((r.get("name"), r.get("method"))))
        for r in open_model.get("endpoints") or []
    ]
    for label, theirs, ours in corrected_rows if open_model else []:
        fixed = (ours or {}).get("corrected") or {"requests": 0}
        if not theirs:
            if fixed["requests"]:
                diffs.append(f"{label} corrected: {fixed['requests']} in the log, none in the summary")
            continue
        count += 1 + len(LATENCY_KEYS)
        if theirs.get("requests") != fixed["requests"]:
            diffs.append(f"{label} corrected requests: summary {theirs.get('requests')}, log {fixed['requests']}")
        diffs += _compare_latencies(label, theirs, fixed, "_corrected")
    return count, diffs


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def table(recomputed: Recomputed) -> str:
    window = recomputed.window_s
    heads = ["endpoint", "requests", "failures", "err %", "req/s", "ms", "min", "p50", "p95", "p99", "p99.9", "max"]
    rows = []
    for label, group in [
        *((n if n.startswith(f"{m} ") else f"{m} {n}", g) for (n, m), g in sorted(recomputed.endpoints.items())),
        ("total", recomputed.total),
    ]:
        fig = figures(group, window)
        base = [label, str(fig["requests"]), str(fig["failures"]), f"{fig['error_rate_pct']:.2f}", f"{fig['rps']:.2f}"]
        rows.append([*base, "service", *(_fmt(fig[f"{k}_ms"]) for k in LATENCY_KEYS)])
        if fig["corrected"]:
            rows.append(["", "", "", "", "", "corrected", *(_fmt(fig["corrected"][f"{k}_ms"]) for k in LATENCY_KEYS)])
    widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(len(heads))]
    lines = [
        "  ".join(c.ljust(w) if i in (0, 5) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in [heads, *rows]
    ]
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage and two lines)
        print(
            f"request_log: {message} (usage: python -m reporting.request_log <log> [--summary <json>])", file=sys.stderr
        )
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m reporting.request_log", description="Recompute the summary from a request log")
    parser.add_argument("log", help="the REQUEST_LOG file (its <log>.worker<N> files are read too)")
    parser.add_argument("--summary", help="a <profile>-summary.json to compare with")
    args = parser.parse_args(argv)
    summary = None
    if args.summary:
        try:
            summary = json.loads(Path(args.summary).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"request_log: --summary {args.summary}: cannot read it as JSON ({exc})", file=sys.stderr)
            return 2
    if summary is not None and not isinstance(summary, dict):
        print(f"request_log: --summary {args.summary}: not a summary (a JSON object)", file=sys.stderr)
        return 2
    try:
        recomputed = read(args.log)
    except (LogError, OSError, UnicodeDecodeError) as exc:
        print(f"request_log: {exc}", file=sys.stderr)
        return 2
    names = ", ".join(str(p) for p in recomputed.files)
    print(f"request log: {names}; {recomputed.total.requests} requests from {len(recomputed.workers)} worker(s)")
    if recomputed.cut_lines:
        print(f"skipped: {recomputed.cut_lines} last line(s) cut short (a process killed mid-write)")
    print(f"window: first request sent to last answer received, {recomputed.window_s:.3f} s (req/s over it)")
    print("latencies in ms, exact nearest-rank percentiles of the raw lines\n")
    print(table(recomputed))
    if summary is None:
        return 0
    count, diffs = compare(summary, recomputed)
    print(f"\nsummary {args.summary}: {count} figures compared, {len(diffs)} differ")
    for line in diffs:
        print(f"  DIFF {line}")
    return 1 if diffs else 0
