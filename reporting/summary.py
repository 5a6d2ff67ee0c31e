"""The run summary: totals (equal to Locust's final numbers), per-endpoint percentiles, errors
by category, thresholds with limit/actual/pass, integrity, baseline comparison and the verdict;
written as ``<profile>-summary.json`` and ``<profile>-summary.md``."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from locust.html import get_html_report
from locust.runners import MasterRunner
from locust.stats import RequestStats, StatsEntry

import apis
from reporting import integrity, latency, sections
from reporting.html_report import bank_text
from reporting.thresholds import CORRECTED_METRICS, Threshold, extra_figures
from reporting.verdict import MEANING, Kind, Reason, format_value, labelled, settle

CATEGORIES = (
    "timeout",
    "connection",
    "2xx_unexpected",
    "3xx_unexpected",
    "4xx_unexpected",
    "5xx",
    "bad_body",
    "wrong_error",
    "fraud_rejected",
    "money_race",  # a race or idempotency check broke its invariant (users/races.py): money moved wrongly
    "other",
)
# The tags failure reasons start with (users/base.py writes them): one per category.
_TAGS = {
    "[timeout]": "timeout",
    "[connection]": "connection",
    "[1xx unexpected]": "other",
    "[2xx unexpected]": "2xx_unexpected",
    "[3xx unexpected]": "3xx_unexpected",
    "[4xx unexpected]": "4xx_unexpected",
    "[5xx]": "5xx",
    "[bad body]": "bad_body",
    "[wrong error]": "wrong_error",
    "[fraud rejected]": "fraud_rejected",
    "[money race]": "money_race",
}
# Card-number-like digit runs never leave the process in a report (PAN 12-19 digits).
_PAN = re.compile(r"\b\d{12,19}\b")


def mask_pans(text: str) -> str:
    return _PAN.sub(lambda m: "*" * (len(m.group()) - 4) + m.group()[-4:], text)


def categorize(error: str) -> str:
    for tag, category in _TAGS.items():
        if error.startswith(tag) or tag in error[:40]:
            return category
    lowered = error.lower()
    if "timeout" in lowered or "timed out" in lowered:
        return "timeout"
    if any(w in lowered for w in ("connection", "refused", "reset by peer", "unreachable", "broken pipe")):
        return "connection"
    if re.search(r"\b5\d\d\b", error):
        return "5xx"
    return "other"


def entry_figures(entry: StatsEntry, window_s: float) -> dict[str, Any]:
    """Figures of one endpoint (or the total). RPS is over ``window_s``, the same window for every
    endpoint and the total, so the endpoints' RPS add up to the total's. Latencies come from the
    one latency record (``reporting.latency``): min <= p50 <= p95 <= p99 <= p99.9 <= max."""
    n = entry.num_requests
    duration = max(window_s, 1e-9)
    timing = latency.entry_figures(entry)
    return {
        "requests": n,
        "failures": entry.num_failures,
        "error_rate": round(entry.num_failures / n, 6) if n else 0.0,
        "rps": round(n / duration, 3) if n and duration else 0.0,
        "avg_ms": round(float(entry.avg_response_time), 2) if timing["max_ms"] is not None else None,
        **timing,
    }


def percentile_curves(stats: RequestStats) -> dict[str, list[list[float]]]:
    """The percentile chart's points ([[percent, ms], ...]) of the total and each endpoint."""
    curves = {"total": latency.curve(stats.total)}
    for (name, _method), entry in sorted(stats.entries.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        points = latency.curve(entry)
        if points:
            curves.setdefault(name, points)
    return curves


def endpoint_table(stats: RequestStats, window_s: float) -> list[dict[str, Any]]:
    rows = []
    for (name, method), entry in sorted(stats.entries.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        rows.append({"name": name, "method": method, **entry_figures(entry, window_s)})
    return rows


def errors_by_category(stats: RequestStats) -> tuple[dict[str, int], list[dict[str, Any]]]:
    counts = dict.fromkeys(CATEGORIES, 0)
    listed = []
    for err in sorted(stats.errors.values(), key=lambda e: -e.occurrences):
        text = mask_pans(str(err.error))
        category = categorize(text)
        counts[category] += err.occurrences
        if len(listed) < 50:
            listed.append(
                {
                    "name": err.name,
                    "method": err.method,
                    "error": text[:300],
                    "category": category,
                    "occurrences": err.occurrences,
                }
            )
    return counts, listed


def expected_outcomes(stats: RequestStats) -> dict[str, int]:
    """Requests whose expected answer is an error (declines, FailureSimulationUser): successes."""
    declines = sum(e.num_requests - e.num_failures for (name, _), e in stats.entries.items() if "(declined)" in name)
    expected = sum(
        e.num_requests - e.num_failures for (name, _), e in stats.entries.items() if name.startswith("expect ")
    )
    return {"declines_expected": declines, "expected_errors": expected}


STEADY = "steady window"
WHOLE_RUN = "whole run"


def evaluate(
    thresholds: list[Threshold], steady_rows: list[dict], steady_total: dict, window: str = STEADY
) -> list[dict[str, Any]]:
    """Each threshold against the figures of ``window`` (the steady window, or the whole run when
    it has no requests); corrected latencies are always whole-run figures (their own source).
    ``limit`` and ``actual`` are in the metric's JSON unit: ms, req/s, error rate a fraction."""
    by_name = {row["name"]: row for row in steady_rows}
    # Corrected latencies (open-model runs) come from their own source, by scope.
    corrected = extra_figures() if any(t.metric in CORRECTED_METRICS for t in thresholds) else {}
    results = []
    for t in thresholds:
        figures = steady_total if t.scope == "global" else by_name.get(t.scope)
        where = window
        if t.metric in CORRECTED_METRICS:
            figures, where = corrected.get(t.scope), WHOLE_RUN
        if figures is None or not figures.get("requests"):
            results.append(
                {
                    "scope": t.scope,
                    "metric": t.metric,
                    "limit": t.limit,
                    "actual": None,
                    "pass": None,
                    "window": where,
                    "note": f"no requests in the {where}",
                    "text": t.describe(),
                }
            )
            continue
        actual = figures["rps"] if t.metric == "min_rps" else figures[t.metric]
        passed = actual >= t.limit if t.metric == "min_rps" else actual <= t.limit
        results.append(
            {
                "scope": t.scope,
                "metric": t.metric,
                "limit": t.limit,
                "actual": actual,
                "pass": passed,
                "window": where,
                "text": t.describe(),
            }
        )
    return results


def breached_text(result: dict[str, Any]) -> str:
    """``threshold breached: global error_rate <= 1.00 % (actual 23.28 %, steady window)``: limit
    and actual in the metric's unit, and the window the actual is from."""
    actual = format_value(result["metric"], result["actual"])
    return f"threshold breached: {result['text']} (actual {actual}, {result.get('window', STEADY)})"


def core_reasons(
    thresholds: list[dict[str, Any]],
    failures: int,
    categories: dict[str, int],
    errors: list[dict[str, Any]],
    problems: list[str],
) -> list[Reason]:
    """The core summary's reasons to fail, each with its kind: breached thresholds, race and
    idempotency violations (money), other unexpected failures, integrity problems."""
    reasons = [Reason(Kind.THRESHOLD, breached_text(t)) for t in thresholds if t["pass"] is False]
    races = categories.get("money_race", 0)
    if races:
        first = next((e for e in errors if e["category"] == "money_race"), None)
        example = ""
        if first is not None:  # the message without the exception's repr around it
            message = first["error"].split("[money race]", 1)[-1].strip(" '\")")
            example = f" ({first['name']}: {message})"
        reasons.append(
            Reason(Kind.MONEY, f"money: {races} race or idempotency check(s) broke their invariant{example}")
        )
    if failures > races:
        others = " besides the race checks" if races else ""
        reasons.append(Reason(Kind.FAILURES, f"{failures - races} unexpected failure(s){others}"))
    reasons += [Reason(Kind.INTEGRITY, f"integrity: {p}") for p in problems]
    return reasons


def write(summary: dict, report_dir: Path, profile: str) -> tuple[Path, Path]:
    report_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = report_dir / f"{profile}-summary.json", report_dir / f"{profile}-summary.md"
    json_path.write_text(json.dumps(summary, indent=2, default=str))
    md_path.write_text(markdown(summary))
    return json_path, md_path


def _fmt(value: Any, metric: str = "") -> str:
    if value is None:
        return "–"
    if metric.endswith("error_rate"):
        return format_value(metric, value)  # a fraction in the JSON, a percent wherever printed
    return f"{value:g}" if isinstance(value, float) else str(value)


def window_rows(s: dict) -> list[tuple[str, float, dict]]:
    """The run's figures by window, each labelled: the whole run; the steady window the thresholds
    are judged on; a burst's own send window (its first payment sent to its last answered). Each
    RPS is requests over its own window, so they differ when the windows do."""
    rows = [("whole run", s["duration_s"], s["totals"])]
    steady = s.get("steady_state") or {}
    if steady.get("totals") and not steady.get("whole_run_fallback"):
        rows.append(("steady window", steady["window_s"], steady["totals"]))
    burst = s.get("burst")
    if burst and burst.get("requests"):
        figures = {**burst, "failures": burst.get("failed")}
        rows.append(("burst send window", burst["duration_s"], figures))
    return rows


def markdown(s: dict) -> str:
    verdict = "✅ PASS" if s["verdict"] == "pass" else "❌ FAIL"
    code = s.get("exit_code", 0)
    if code:
        verdict += f" (exit {code}: {MEANING.get(code, 'unknown')})"
    lines = [
        f"## Load test `{s['profile']}`: {verdict}",
        "",
        f"{s['duration_s']:.0f} s against {s['target']['payment_service']} "
        f"({bank_text(s['target'])}), peak {s['users']['peak']} users.",
        f"Charts: {s['profile']}-summary.html",
        "",
        "| window | s | requests | failures | error rate | RPS | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, seconds, t in window_rows(s):
        lines.append(
            f"| {label} | {seconds:.1f} | {t['requests']} | {t['failures']} | {_fmt(t['error_rate'], 'error_rate')} "
            f"| {_fmt(t['rps'])} | {_fmt(t['p50_ms'])} | {_fmt(t['p95_ms'])} | {_fmt(t['p99_ms'])} "
            f"| {_fmt(t['max_ms'])} |"
        )
    lines.append("")
    if s["reasons"]:
        # most severe first: money (exit 4), run integrity (5), thresholds and failures (1)
        items = [f"- **{kind}**: {text}" if kind else f"- {text}" for kind, text in labelled(s)]
        lines += ["**Why it failed**", "", *items, ""]
    lines += [
        f"### Thresholds (steady state, {s['steady_state']['window_s']:.0f} s window)",
        "",
        "| threshold | actual | result |",
        "|---|---:|---|",
    ]
    for th in s["thresholds"]:
        result = "pass" if th["pass"] else ("n/a" if th["pass"] is None else "**FAIL**")
        actual = "–" if th["actual"] is None else format_value(th["metric"], th["actual"])
        if th.get("window", STEADY) != STEADY:
            actual += f" ({th['window']})"
        lines.append(f"| {th['text']} | {actual} | {result} |")
    lines += [
        "",
        "### Endpoints (whole run)",
        "",
        "| endpoint | requests | failures | RPS | p50 | p95 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in s["endpoints"]:
        lines.append(
            f"| {row['name']} | {row['requests']} | {row['failures']} | {_fmt(row['rps'])} | "
            f"{_fmt(row['p50_ms'])} | {_fmt(row['p95_ms'])} | {_fmt(row['p99_ms'])} | {_fmt(row['max_ms'])} |"
        )
    cats = {k: v for k, v in s["errors_by_category"].items() if v}
    lines += ["", "### Errors by category", ""]
    lines += [f"- {k}: {v}" for k, v in cats.items()] or ["- none"]
    if s.get("errors"):
        lines += ["", "| endpoint | error | count |", "|---|---|---:|"]
        lines += [
            f"| {e['name']} | {e['error'][:120].replace('|', '/')} | {e['occurrences']} |" for e in s["errors"][:15]
        ]
    integ = s["integrity"]
    lines += ["", "### Run integrity", ""]
    lines += [f"- {p}" for p in integ["problems"]] or ["- ok: generator not saturated, all workers present"]
    lines += sections.render_markdown(s)
    comp = s.get("comparison")
    if comp:
        lines += ["", f"### Against the last passing `{s['profile']}` run ({comp['baseline_run']})", ""]
        lines += [f"- {r['name']} {r['metric']}: {r['baseline']} → {r['current']}" for r in comp["regressions"]] or [
            f"- no regression beyond {comp['tolerance']:.0%} on {comp['endpoints_compared']} endpoints"
        ]
        if comp.get("endpoints_too_few_requests"):
            lines.append(
                f"- {comp['endpoints_too_few_requests']} endpoint(s) not compared: fewer than 30 requests in a run"
            )
    return "\n".join(lines) + "\n"


def build(environment, run, settings, profile: str, report_dir: Path) -> dict[str, Any]:
    """The whole summary: core figures, every registered section, reasons and verdict."""
    stats, opts = environment.stats, environment.parsed_options
    ended = time.time()
    run_s = max(ended - run.started_at, 1e-9)
    steady = run.steady
    use_steady = steady.stats.total.num_requests > 0
    window_stats = steady.stats if use_steady else stats
    window_s = steady.window_s if use_steady else run_s
    steady_rows = endpoint_table(window_stats, window_s)
    steady_total = entry_figures(window_stats.total, window_s)
    categories, errors = errors_by_category(stats)
    categories.update(expected_outcomes(stats))
    thresholds = evaluate(run.thresholds, steady_rows, steady_total, STEADY if use_steady else WHOLE_RUN)
    problems = integrity.problems(environment, run)
    reasons = core_reasons(thresholds, stats.total.num_failures, categories, errors, problems)
    is_master = isinstance(environment.runner, MasterRunner)
    summary: dict[str, Any] = {
        "profile": profile,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.started_at)),
        "ended_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ended)),
        "duration_s": round(run_s, 2),
        "target": {
            "payment_service": environment.host or settings.target_url,
            # None: the API has no BankingAPI (its dialect's binding says so)
            "banking_api": settings.banking_api_url if apis.current().health_paths.get("bank") else None,
            "dialect": apis.current().name,
        },
        "users": {"peak": run.peak_users, "classes": [c.__name__ for c in environment.user_classes]},
        "workers": {
            "expected": getattr(opts, "expect_workers", None) if is_master else None,
            "max_connected": run.max_workers,
            "lost": sorted(run.workers_lost),
            "unreported": sorted(run.workers_unreported),  # no final stats report after the stop
            "requests_by_worker": dict(run.worker_requests),
        },
        "totals": entry_figures(stats.total, run_s),
        "endpoints": endpoint_table(stats, run_s),
        # whole run, service latency; an open-model section adds its corrected curves
        "percentile_curves": {"service": percentile_curves(stats)},
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
    }
    context = sections.RunContext(environment, profile, report_dir, run.started_at, ended, settings, summary)
    built, section_reasons = sections.build_all(context)
    summary.update(built)
    settle(summary, reasons + section_reasons)  # reasons, reason_kinds, verdict, exit_code: most severe first
    return summary


def write_locust_html(environment) -> None:
    """Locust writes its HTML report only when the run ends normally or by Ctrl-C; after a
    SIGTERM it does not, so write it here (Locust overwrites it with the same report otherwise)."""
    html_file = getattr(environment.parsed_options, "html_file", None)
    if not html_file:
        return
    Path(html_file).parent.mkdir(parents=True, exist_ok=True)
    Path(html_file).write_text(get_html_report(environment, show_download_link=False), encoding="utf-8")
