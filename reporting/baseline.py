"""Baselines: a passing run of a profile becomes ``baselines/<profile>.json``; the next run is
compared with it per endpoint (p95/p99 up, RPS down, error rate up)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Fewer requests than this in either run and an endpoint's percentiles and rate are noise (a
# short run's handful of health checks): it is not compared, and the summary counts it.
MIN_REQUESTS = 30


def compare(current: dict, baseline: dict, tolerance: float) -> dict[str, Any]:
    """Per endpoint p95/p99/RPS/error rate against the last passing run of the profile."""
    base_rows = {r["name"]: r for r in baseline.get("steady_state", {}).get("endpoints", [])}
    regressions, checked, too_few = [], 0, 0
    for row in current.get("steady_state", {}).get("endpoints", []):
        base = base_rows.get(row["name"])
        if not base or not row["requests"] or not base["requests"]:
            continue
        if min(row["requests"], base["requests"]) < MIN_REQUESTS:
            too_few += 1
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
        "endpoints_too_few_requests": too_few,
        "regressions": regressions,
    }


def baseline_path(report_dir: Path, profile: str) -> Path:
    return report_dir / "baselines" / f"{profile}.json"


def load(report_dir: Path, profile: str) -> dict | None:
    path = baseline_path(report_dir, profile)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def apply(summary: dict, report_dir: Path, profile: str, tolerance: float, fail_on_regression: bool) -> None:
    """Compare with the last passing run of this profile; a passing run becomes the new baseline."""
    baseline = load(report_dir, profile)
    if baseline:
        summary["comparison"] = compare(summary, baseline, tolerance)
        if summary["comparison"]["regressions"] and fail_on_regression:
            summary["reasons"].append(f"{len(summary['comparison']['regressions'])} regression(s) vs baseline")
            summary["verdict"], summary["exit_code"] = "fail", 1
    if summary["verdict"] == "pass":
        path = baseline_path(report_dir, profile)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file():  # kept for `run_tests.sh compare`, which compares with the run before
            path.replace(path.with_suffix(".previous.json"))
        path.write_text(json.dumps(summary, indent=2, default=str))
