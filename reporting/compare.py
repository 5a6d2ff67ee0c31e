"""``python -m reporting.compare <profile>``: the last run of a profile against its last passing
run (p95/p99/RPS/error rate per endpoint). Exit 1 when something regressed beyond the tolerance."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reporting.baseline import compare


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="run_tests.sh compare")
    p.add_argument("profile")
    p.add_argument("--report-dir", default="reports")
    p.add_argument("--tolerance", type=float, default=0.25)
    args = p.parse_args(argv)
    report_dir = Path(args.report_dir)
    current_path = report_dir / f"{args.profile}-summary.json"
    if not current_path.is_file():
        print(
            f"compare: no run of '{args.profile}' in {report_dir}/ yet; run ./scripts/run_tests.sh {args.profile}",
            file=sys.stderr,
        )
        return 2
    current = json.loads(current_path.read_text())
    base_dir = report_dir / "baselines"
    candidates = [base_dir / f"{args.profile}.previous.json", base_dir / f"{args.profile}.json"]
    baseline = None
    for path in candidates:
        if path.is_file():
            data = json.loads(path.read_text())
            if data.get("ended_at") != current.get("ended_at"):  # never compare a run with itself
                baseline = data
                break
    if baseline is None:
        print(f"compare: no earlier passing run of '{args.profile}', so nothing to compare", file=sys.stderr)
        return 0  # nothing to compare is not a usage error
    result = compare(current, baseline, args.tolerance)
    print(
        f"{args.profile}: run of {current.get('ended_at')} vs passing run of {baseline.get('ended_at')} "
        f"({result['endpoints_compared']} endpoints, tolerance {args.tolerance:.0%})"
    )
    for r in result["regressions"]:
        print(f"  REGRESSION {r['name']} {r['metric']}: {r['baseline']} -> {r['current']}")
    if not result["regressions"]:
        print("  no regression")
    return 1 if result["regressions"] else 0


if __name__ == "__main__":
    sys.exit(main())
