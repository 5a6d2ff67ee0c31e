"""Run history: every run that writes a summary appends one line to ``REPORT_DIR/history.jsonl``;
``./scripts/run_tests.sh history [profile]`` prints the trend and writes ``REPORT_DIR/history.html``.

A line: profile, start/end time, the git commit (when run from a git checkout), verdict, duration,
peak users, the run's total requests and failures, and - over the run's steady-state window, the
figures the thresholds and the baseline comparison use - RPS, error rate, p50/p95/p99 in total and
per endpoint. Standard library only.

Exit status of ``main``: 0 written, 2 no runs (of that profile) yet or a usage error.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from html import escape
from pathlib import Path
from typing import Any

from reporting.html_report import MONEY_ENDPOINTS, PALETTE, TOTAL, Series, _page, _table, chart

ROOT = Path(__file__).resolve().parents[1]
FILE = "history.jsonl"
PAGE = "history.html"
SHOWN = 30  # runs in the printed table
CHARTED = 200  # runs per profile on the page
MAX_ENDPOINT_LINES = 8
_SHA = re.compile(r"[0-9a-f]{40}")


def git_commit(cwd: Path = ROOT) -> str | None:
    """HEAD of the suite's checkout, or None outside a git checkout (or without git)."""
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = r.stdout.strip()
    return sha if r.returncode == 0 and _SHA.fullmatch(sha) else None


def _figures(row: dict) -> dict[str, Any]:
    return {k: row.get(k) for k in ("requests", "rps", "p50_ms", "p95_ms", "p99_ms", "error_rate")}


def entry(summary: dict, commit: str | None) -> dict[str, Any]:
    steady = summary.get("steady_state") or {}
    total = steady.get("totals") or {}
    line: dict[str, Any] = {
        "profile": summary.get("profile"),
        "started_at": summary.get("started_at"),
        "ended_at": summary.get("ended_at"),
    }
    if commit:
        line["commit"] = commit
    line.update(
        {
            "verdict": summary.get("verdict"),
            "reasons": len(summary.get("reasons") or []),
            "duration_s": summary.get("duration_s"),
            "users_peak": (summary.get("users") or {}).get("peak"),
            "requests": (summary.get("totals") or {}).get("requests"),
            "failures": (summary.get("totals") or {}).get("failures"),
            "window_s": steady.get("window_s"),
            "rps": total.get("rps"),
            "error_rate": total.get("error_rate"),
            "p50_ms": total.get("p50_ms"),
            "p95_ms": total.get("p95_ms"),
            "p99_ms": total.get("p99_ms"),
            "endpoints": {r["name"]: _figures(r) for r in steady.get("endpoints", []) if r.get("requests")},
        }
    )
    return line


def append(summary: dict, report_dir: Path, commit: str | None = None) -> Path:
    path = Path(report_dir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:  # one write of one line: runs never interleave
        f.write(json.dumps(entry(summary, commit), separators=(",", ":"), default=str) + "\n")
    return path


def load(report_dir: Path, profile: str | None = None) -> list[dict]:
    path = Path(report_dir) / FILE
    if not path.is_file():
        return []
    runs = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                run = json.loads(line)
            except ValueError:
                continue  # a torn or hand-edited line does not hide the others
            if isinstance(run, dict) and (profile is None or run.get("profile") == profile):
                runs.append(run)
    return runs


# -- the printed trend --------------------------------------------------------------------------


def _cell(v: Any, kind: str = "") -> str:
    if v is None:
        return "-"
    if kind == "rate":
        return f"{v:.2%}"
    if isinstance(v, float):
        return f"{v:.1f}" if kind == "rps" else f"{v:g}"
    return str(v)


def key_endpoints(runs: list[dict], limit: int = 3) -> list[str]:
    """The endpoints worth a column: the money-moving ones the runs have, then the busiest."""
    seen: dict[str, int] = {}
    for run in runs:
        for name, fig in (run.get("endpoints") or {}).items():
            seen[name] = seen.get(name, 0) + int(fig.get("requests") or 0)
    money = [n for n in MONEY_ENDPOINTS if n in seen]
    busiest = sorted((n for n in seen if n not in money), key=lambda n: -seen[n])
    return (money + busiest)[:limit]


def trend_table(runs: list[dict], show_profile: bool) -> list[str]:
    shown = runs[-SHOWN:]
    endpoints = key_endpoints(shown)
    header = ["started (UTC)", *(["profile"] if show_profile else []), "commit", "verdict", "dur s", "requests"]
    header += ["RPS", "err %", "p95 ms", *(f"p95 {n}" for n in endpoints)]
    rows = []
    for run in shown:
        row = [str(run.get("started_at", "?")).replace("T", " ").rstrip("Z")]
        row += [str(run.get("profile"))] if show_profile else []
        row += [(run.get("commit") or "-")[:8], "PASS" if run.get("verdict") == "pass" else "FAIL"]
        row += [_cell(round(run.get("duration_s") or 0)), _cell(run.get("requests"))]
        row += [_cell(run.get("rps"), "rps"), _cell(run.get("error_rate"), "rate"), _cell(run.get("p95_ms"))]
        row += [_cell((run.get("endpoints") or {}).get(n, {}).get("p95_ms")) for n in endpoints]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    left = 3 + (1 if show_profile else 0)  # text columns; the figures align right

    def fmt(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i <= left else c.rjust(w) for i, (c, w) in pairs)

    return [fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]


# -- the page -----------------------------------------------------------------------------------


def _profile_html(profile: str, runs: list[dict], idx: int) -> str:
    runs = runs[-CHARTED:]
    n = len(runs)
    xs = list(range(1, n + 1))
    failed = [r.get("verdict") != "pass" for r in runs]
    bands = [(x - 0.5, x + 0.5) for x, bad in zip(xs, failed, strict=False) if bad]
    step = max(1, -(-n // 10))
    ticks = [(x, str(x)) for x in xs if (x - 1) % step == 0]
    common = {"x_min": 0.5, "x_max": n + 0.5, "x_ticks": ticks, "bands": bands}
    names = key_endpoints(runs, MAX_ENDPOINT_LINES - 1)
    p95 = [Series(TOTAL, xs, [r.get("p95_ms") for r in runs], "#1f2328", kind="total", markers=failed)]
    for i, name in enumerate(names):
        ys = [((r.get("endpoints") or {}).get(name) or {}).get("p95_ms") for r in runs]
        p95.append(Series(name, xs, ys, PALETTE[i % len(PALETTE)], kind=name, markers=failed))
    note = "x: run number (oldest first); failed runs shaded red and ringed."
    parts = [
        chart("p95 per endpoint (steady state)", p95, unit="ms", chart_id=f"p95-{idx}", note=note, **common),
        chart(
            "Requests per second (steady state)",
            [Series("RPS", xs, [r.get("rps") for r in runs], "#4c78a8", kind="rps", markers=failed)],
            unit="req/s",
            chart_id=f"rps-{idx}",
            **common,
        ),
        chart(
            "Error rate (steady state)",
            [
                Series(
                    "error rate",
                    xs,
                    [None if r.get("error_rate") is None else round(r["error_rate"] * 100, 4) for r in runs],
                    "#d62728",
                    kind="error_rate",
                    markers=failed,
                )
            ],
            unit="%",
            chart_id=f"errors-{idx}",
            **common,
        ),
    ]
    columns = key_endpoints(runs)  # the printed trend's columns: the same figures in both
    rows = []
    for x, run in zip(xs, runs, strict=False):
        ok = run.get("verdict") == "pass"
        rows.append(
            [
                str(x),
                escape(str(run.get("started_at", ""))),
                f"<code>{escape((run.get('commit') or '-')[:10])}</code>",
                f'<span class="{"pass-cell" if ok else "fail-cell"}">{"PASS" if ok else "FAIL"}</span>',
                escape(_cell(round(run.get("duration_s") or 0))),
                escape(_cell(run.get("requests"))),
                escape(_cell(run.get("rps"), "rps")),
                escape(_cell(run.get("error_rate"), "rate")),
                escape(_cell(run.get("p95_ms"))),
                *(escape(_cell((run.get("endpoints") or {}).get(c, {}).get("p95_ms"))) for c in columns),
            ]
        )
    table = _table(
        ["#", "started (UTC)", "commit", "verdict", ">dur s", ">requests", ">RPS", ">error rate", ">p95 ms"]
        + [f">p95 {c} ms" for c in columns],
        rows[::-1],
        "runs",
    )
    failures = sum(failed)
    # One run draws no trend, only a dot per chart: its figures are the table's row, said so.
    charts = (
        f'<div class="charts">{"".join(parts)}</div>'
        if n > 1
        else f'<p class="note" id="one-run-{idx}">One run of {escape(profile)} so far: its figures are in the row '
        "below (steady-state window); the trend charts start with the second run.</p>"
    )
    return (
        f'<h2 id="profile-{idx}">Profile <code>{escape(profile)}</code>: {n} run{"s" * (n != 1)}'
        f"{f', {failures} failed' if failures else ''}</h2>"
        f"{charts}<details open><summary>Runs (newest first)</summary>{table}</details>"
    )


def render(runs: list[dict], profile: str | None) -> str:
    by_profile: dict[str, list[dict]] = {}
    for run in runs:
        by_profile.setdefault(str(run.get("profile")), []).append(run)
    body = [
        f"<h1>Run history{f' of <code>{escape(profile)}</code>' if profile else ''}</h1>",
        f'<p class="meta">{len(runs)} run(s) from history.jsonl, written {time.strftime("%Y-%m-%d %H:%M:%S")}. '
        "RPS, error rate and percentiles are over each run's steady-state window.</p>",
    ]
    body += [_profile_html(p, r, i) for i, (p, r) in enumerate(sorted(by_profile.items()))]
    return _page(f"Load test history{f': {profile}' if profile else ''}", "\n".join(body))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="run_tests.sh history", description="The trend of past runs")
    p.add_argument("profile", nargs="?", default=None, help="only this profile (default: all)")
    p.add_argument("--report-dir", default="reports")
    args = p.parse_args(argv)
    report_dir = Path(args.report_dir)
    runs = load(report_dir, args.profile)
    if not runs:
        which = f"of '{args.profile}' " if args.profile else ""
        print(
            f"history: no runs {which}in {report_dir / FILE} yet; run ./scripts/run_tests.sh {args.profile or 'smoke'}",
            file=sys.stderr,
        )
        return 2
    by_profile = sorted({str(r.get("profile")) for r in runs})
    print(
        f"{len(runs)} run(s){f' of {args.profile}' if args.profile else ''} "
        f"(newest last; RPS, error rate and p95 over each run's steady-state window)"
    )
    for line in trend_table(runs, show_profile=len(by_profile) > 1):
        print(line)
    page = report_dir / PAGE
    page.write_text(render(runs, args.profile), encoding="utf-8")
    print(f"history page: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
