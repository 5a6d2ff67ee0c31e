"""The run summary: totals (equal to Locust's final numbers), per-endpoint percentiles, errors
by category, thresholds with limit/actual/pass, integrity, baseline comparison and the verdict;
written as ``<profile>-summary.json`` and ``<profile>-summary.md``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from locust.stats import RequestStats, StatsEntry

from reporting.thresholds import Threshold

CATEGORIES = ("timeout", "connection", "4xx_unexpected", "5xx", "bad_body", "wrong_error", "other")
_TAGS = {
    "[timeout]": "timeout",
    "[connection]": "connection",
    "[4xx unexpected]": "4xx_unexpected",
    "[5xx]": "5xx",
    "[bad body]": "bad_body",
    "[wrong error]": "wrong_error",
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


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


def entry_figures(entry: StatsEntry, window_s: float | None = None) -> dict[str, Any]:
    n = entry.num_requests
    duration = window_s if window_s else max(entry.last_request_timestamp - entry.start_time, 1e-9) if n else 0
    return {
        "requests": n,
        "failures": entry.num_failures,
        "error_rate": round(entry.num_failures / n, 6) if n else 0.0,
        "rps": round(n / duration, 3) if n and duration else 0.0,
        "avg_ms": _ms(entry.avg_response_time) if n else None,
        "p50_ms": _ms(entry.get_response_time_percentile(0.5)) if n else None,
        "p95_ms": _ms(entry.get_response_time_percentile(0.95)) if n else None,
        "p99_ms": _ms(entry.get_response_time_percentile(0.99)) if n else None,
        "max_ms": _ms(entry.max_response_time) if n else None,
    }


def endpoint_table(stats: RequestStats, window_s: float | None = None) -> list[dict[str, Any]]:
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


def evaluate(thresholds: list[Threshold], steady_rows: list[dict], steady_total: dict) -> list[dict[str, Any]]:
    by_name = {row["name"]: row for row in steady_rows}
    results = []
    for t in thresholds:
        figures = steady_total if t.scope == "global" else by_name.get(t.scope)
        if figures is None or not figures.get("requests"):
            results.append(
                {
                    "scope": t.scope,
                    "metric": t.metric,
                    "limit": t.limit,
                    "actual": None,
                    "pass": None,
                    "note": "no requests in the steady-state window",
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
                "text": t.describe(),
            }
        )
    return results


def compare(current: dict, baseline: dict, tolerance: float) -> dict[str, Any]:
    """Per endpoint p95/p99/RPS/error rate against the last passing run of the profile."""
    base_rows = {r["name"]: r for r in baseline.get("steady_state", {}).get("endpoints", [])}
    regressions, checked = [], 0
    for row in current.get("steady_state", {}).get("endpoints", []):
        base = base_rows.get(row["name"])
        if not base or not row["requests"] or not base["requests"]:
            continue
        checked += 1
        for metric in ("p95_ms", "p99_ms"):
            if (
                base[metric]
                and row[metric]
                and row[metric] > base[metric] * (1 + tolerance)
                and row[metric] - base[metric] > 5
            ):  # ignore sub-5 ms noise
                regressions.append(
                    {"name": row["name"], "metric": metric, "baseline": base[metric], "current": row[metric]}
                )
        if base["rps"] and row["rps"] < base["rps"] * (1 - tolerance):
            regressions.append({"name": row["name"], "metric": "rps", "baseline": base["rps"], "current": row["rps"]})
        if row["error_rate"] > base["error_rate"] + 0.01:
            regressions.append(
                {
                    "name": row["name"],
                    "metric": "error_rate",
                    "baseline": base["error_rate"],
                    "current": row["error_rate"],
                }
            )
    return {
        "baseline_run": baseline.get("ended_at"),
        "tolerance": tolerance,
        "endpoints_compared": checked,
        "regressions": regressions,
    }


def write(summary: dict, report_dir: Path, profile: str) -> tuple[Path, Path]:
    report_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = report_dir / f"{profile}-summary.json", report_dir / f"{profile}-summary.md"
    json_path.write_text(json.dumps(summary, indent=2, default=str))
    md_path.write_text(markdown(summary))
    return json_path, md_path


def _fmt(value: Any, metric: str = "") -> str:
    if value is None:
        return "–"
    if metric == "error_rate":
        return f"{value:.2%}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def markdown(s: dict) -> str:
    verdict = "✅ PASS" if s["verdict"] == "pass" else "❌ FAIL"
    t = s["totals"]
    lines = [
        f"## Load test `{s['profile']}`: {verdict}",
        "",
        f"{s['duration_s']:.0f} s against {s['target']['payment_service']} "
        f"(bank {s['target']['banking_api']}), peak {s['users']['peak']} users.",
        "",
        "| requests | failures | error rate | RPS | p50 ms | p95 ms | p99 ms | max ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {t['requests']} | {t['failures']} | {_fmt(t['error_rate'], 'error_rate')} | {_fmt(t['rps'])} | "
        f"{_fmt(t['p50_ms'])} | {_fmt(t['p95_ms'])} | {_fmt(t['p99_ms'])} | {_fmt(t['max_ms'])} |",
        "",
    ]
    if s["reasons"]:
        lines += ["**Why it failed**", ""] + [f"- {r}" for r in s["reasons"]] + [""]
    lines += [
        f"### Thresholds (steady state, {s['steady_state']['window_s']:.0f} s window)",
        "",
        "| threshold | actual | result |",
        "|---|---:|---|",
    ]
    for th in s["thresholds"]:
        result = "pass" if th["pass"] else ("n/a" if th["pass"] is None else "**FAIL**")
        lines.append(f"| {th['text']} | {_fmt(th['actual'], th['metric'])} | {result} |")
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
    money = s.get("money")
    if money:
        lines += ["", f"### Money: {'reconciled' if money.get('ok') else '**MISMATCH**'}", ""]
        lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in money.get("counts", {}).items()]
        lines += [f"- {p}" for p in money.get("problems", [])[:20]]
    comp = s.get("comparison")
    if comp:
        lines += ["", f"### Against the last passing `{s['profile']}` run ({comp['baseline_run']})", ""]
        lines += [f"- {r['name']} {r['metric']}: {r['baseline']} → {r['current']}" for r in comp["regressions"]] or [
            f"- no regression beyond {comp['tolerance']:.0%} on {comp['endpoints_compared']} endpoints"
        ]
    return "\n".join(lines) + "\n"
