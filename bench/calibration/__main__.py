"""Calibration bench (issue 21, part 3): the suite measured against a target whose answer is known.

    .venv/bin/python -m bench.calibration [--cases fixed,trimodal,heavy,stall] [--modes closed,rate,...]

For each case the target (bench/calibration/target.py) serves a known distribution; the bench
runs the suite's runner against it in four modes (closed model, ``rate``, the rate profile on a
master and 2 workers, ``burst``), reads p50/p95/p99/p99.9/max from the run's summary JSON and checks
each within max(1 %, 2 ms) of the known answer AND of the raw request log (REQUEST_LOG). The known
answer is computed from the distribution, not measured: for the slot distributions, the exact
figures of the first M delays of the target's sequence (M = payments it answered; the suite must
have counted the same M), with the distribution's own quantiles beside them; for the periodic
stall under the open model, the corrected latency of each arrival, S - u + base when it was due u
seconds into a stall, over the run's schedule (its p99 must be within 5 %), with the closed
model's p99 beside it to show what coordinated omission hides.

Results: bench/results/calibration.json (machine, date, commands, every figure, pass/miss). Load:
loopback only, ~50 payments/s, each run bounded by RUN_TIME or TOTAL; about 8 minutes in all."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.calibration.distributions import StallDistribution, parse
from bench.calibration.harness import LABELS, ROOT, Mode, Run, Target, run_suite, tolerance

RESULTS = ROOT / "bench" / "results" / "calibration.json"
MODES = ("closed", "rate", "distributed", "burst")
STALL_TOLERANCE = 0.05  # the bound on the stall case's corrected p99

CASES: dict[str, dict[str, Any]] = {
    "fixed": {
        "spec": "fixed:1040",
        "modes": [
            Mode("closed", users=50, seconds=20),
            Mode("rate", rate=50, seconds=20),
            Mode("distributed", rate=50, seconds=20),
            Mode("burst", total=300, concurrency=15),
        ],
    },
    "trimodal": {
        "spec": "modes:23@0.9,417@0.085,2530@0.015",
        "modes": [
            Mode("closed", users=10, seconds=20),
            Mode("rate", rate=50, seconds=20),
            Mode("distributed", rate=50, seconds=20),
            Mode("burst", total=1000, concurrency=20),
        ],
    },
    "heavy": {
        "spec": "pareto:10/1.2/5000",
        "modes": [
            Mode("closed", users=5, seconds=20),
            Mode("rate", rate=50, seconds=20),
            Mode("distributed", rate=50, seconds=20),
            Mode("burst", total=1000, concurrency=20),
        ],
    },
    "stall": {
        "spec": "stall:1/10:20",
        "modes": [Mode("rate", rate=50, seconds=40), Mode("closed", users=10, seconds=40)],
    },
}


def compare(measured: dict[str, float | None], truth: dict[str, float | None] | None) -> dict[str, Any]:
    """Each figure against ``truth`` within max(1 %, 2 ms); ``ok`` only when every figure is."""
    if truth is None:
        return {"ok": None, "figures": {}, "note": "no reference (raw log missing)"}
    rows = {}
    for label in LABELS:
        got, want = measured.get(label), truth.get(label)
        if got is None or want is None:
            rows[label] = {"measured": got, "truth": want, "ok": False}
            continue
        tol = tolerance(want)
        rows[label] = {"measured": got, "truth": round(want, 3), "diff_ms": round(got - want, 3)}
        rows[label].update(tolerance_ms=round(tol, 3), ok=abs(got - want) <= tol)
    return {"ok": all(r["ok"] for r in rows.values()), "figures": rows}


def slot_result(run: Run, dist: Any) -> dict[str, Any]:
    served = run.served["answered"]
    known = dist.first(served)
    sets = {"service": ("service", "service_ms")}
    if run.mode in ("rate", "distributed"):
        sets["corrected"] = ("corrected", "corrected_ms")
    if run.mode == "burst":
        sets["burst section"] = ("burst", "service_ms")
    checks = {}
    for name, (which, column) in sets.items():
        figures = run.figures(which)
        checks[name] = {
            "figures": figures,
            "vs_known": compare(figures, known),
            "vs_raw_log": compare(figures, run.log_figures(column)),
        }
    counted = run.payments()
    logged = sum(1 for r in run.log_rows if r["endpoint"] in ("POST /payments", "POST /pay")) if run.log_rows else None
    failures = (run.summary.get("totals") or {}).get("failures")
    ok = (
        counted == served
        and failures == 0
        and all(c["vs_known"]["ok"] for c in checks.values())
        and all(c["vs_raw_log"]["ok"] is not False for c in checks.values())
    )
    return {
        "payments_answered_by_target": served,
        "payments_counted_by_suite": counted,
        "payments_in_raw_log": logged,
        "failures": failures,
        "known_answer": known,
        "checks": checks,
        "pass": ok,
    }


def stall_arrivals(run: Run) -> tuple[list[float], str]:
    """When each arrival was due (epoch s): the raw log's ``due`` column, else the per-second
    schedule of the summary (each second's arrivals evenly spread, as a constant rate sends them)."""
    dues = sorted(float(r["due"]) for r in run.log_rows if r.get("due"))
    if dues:
        return dues, "raw log due times"
    times = []
    for row in (run.summary.get("open_model") or {}).get("per_second") or []:
        n = row["target"]
        times += [row["epoch"] + (k + 0.5) / n for k in range(n)]
    return times, "summary per-second schedule"


def stall_result(run: Run, dist: StallDistribution, closed: Run | None) -> dict[str, Any]:
    arrivals, source = stall_arrivals(run)
    known = dist.schedule(arrivals, run.served["origin_epoch"])
    corrected = run.figures("corrected")
    p99, want = corrected["p99"], known["p99"]
    ok = p99 is not None and want is not None and abs(p99 - want) <= STALL_TOLERANCE * want
    return {
        "known_answer": known,
        "known_answer_from": source,
        "analytic_whole_periods": dist.analytic(),
        "corrected": corrected,
        "service": run.figures("service"),
        "corrected_vs_known": compare(corrected, known),
        "corrected_vs_raw_log": compare(corrected, run.log_figures("corrected_ms")),
        "corrected_p99_within_5_percent": ok,
        "closed_model_service": closed.figures("service") if closed else None,
        "pass": ok,
    }


def machine() -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit.stdout.strip(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def run_case(name: str, case: dict[str, Any], modes: list[str], out: Path) -> dict[str, Any]:
    dist = parse(case["spec"])
    runs: dict[str, Run] = {}
    for mode in case["modes"]:
        if mode.name not in modes:
            continue
        with Target(case["spec"]) as target:  # a fresh target: its sequence starts at payment 0
            started = time.monotonic()
            runs[mode.name] = run_suite(target, mode, out / f"{name}-{mode.name}")
            print(f"  {name} / {mode.name}: exit {runs[mode.name].exit_code}, {time.monotonic() - started:.0f} s")
    results: dict[str, Any] = {"spec": case["spec"], "analytic": dist.analytic(), "modes": {}}
    results["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    for mode_name, run in runs.items():
        common = {"command": run.command, "exit_code": run.exit_code, "raw_log_files": len(run.log_files)}
        common["suite_integrity_problems"] = (run.summary.get("integrity") or {}).get("problems")
        common["target_wakeup_late_ms"] = {"mean": run.served.get("late_ms_mean"), "max": run.served.get("late_ms_max")}
        if isinstance(dist, StallDistribution):
            if mode_name == "rate":
                results["modes"][mode_name] = {**common, **stall_result(run, dist, runs.get("closed"))}
            else:
                results["modes"][mode_name] = {**common, "service": run.figures("service"), "pass": None}
        else:
            results["modes"][mode_name] = {**common, **slot_result(run, dist)}
    return results


def table(results: dict[str, Any]) -> list[str]:
    """Markdown rows: case, mode, figure set, then measured / known for each figure, and the verdict."""
    lines = ["| case | mode | figures | " + " | ".join(LABELS) + " | result |", "|---" * (len(LABELS) + 4) + "|"]
    for case, res in results["cases"].items():
        for mode, r in res["modes"].items():
            if "checks" in r:
                for name, c in r["checks"].items():
                    cells = [
                        f"{f['measured']} / {f['truth']}{'' if f['ok'] else ' **miss**'}"
                        for f in c["vs_known"]["figures"].values()
                    ]
                    log_ok = c["vs_raw_log"]["ok"]
                    verdict = ("pass" if c["vs_known"]["ok"] else "MISS") + (
                        "" if log_ok is None else ", log " + ("agrees" if log_ok else "DIFFERS")
                    )
                    lines.append(f"| {case} | {mode} | {name} | " + " | ".join(cells) + f" | {verdict} |")
            elif "corrected_vs_known" in r:
                cells = [f"{f['measured']} / {f['truth']}" for f in r["corrected_vs_known"]["figures"].values()]
                verdict = "p99 within 5 %" if r["pass"] else "p99 MISS (> 5 %)"
                lines.append(f"| {case} | {mode} | corrected | " + " | ".join(cells) + f" | {verdict} |")
                closed = r.get("closed_model_service") or {}
                if closed:
                    cells = [str(closed.get(label)) for label in LABELS]
                    lines.append(f"| {case} | closed | service | " + " | ".join(cells) + " | what omission hides |")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(CASES), help=f"any of {','.join(CASES)}")
    p.add_argument("--modes", default=",".join(MODES), help=f"any of {','.join(MODES)}")
    p.add_argument("--note", default="", help="e.g. what else shared the machine")
    p.add_argument("--no-save", action="store_true", help=f"print only, do not write {RESULTS.name}")
    p.add_argument("--keep", default="", help="keep each run's reports and raw logs in this folder")
    args = p.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    modes = [m for m in args.modes.split(",") if m]
    bad = [c for c in cases if c not in CASES] + [m for m in modes if m not in MODES]
    if bad:
        print(
            f"calibration: unknown case or mode {bad}: cases {', '.join(CASES)}; modes {', '.join(MODES)}",
            file=sys.stderr,
        )
        return 2
    started = time.time()
    payload: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join([".venv/bin/python -m bench.calibration", *sys.argv[1:]]),
        "machine": machine(),
        "note": args.note or None,
        "tolerance": "max(1 %, 2 ms) of the known answer and of the raw request log; stall: corrected p99 within 5 %",
        "cases": {},
    }
    with tempfile.TemporaryDirectory(prefix="calibration-") as tmp:
        for case in cases:
            print(f"case {case}: {CASES[case]['spec']}")
            payload["cases"][case] = run_case(case, CASES[case], modes, Path(args.keep or tmp))
    payload["wall_s"] = round(time.time() - started, 1)
    if RESULTS.is_file() and not args.no_save:  # cases not run this time keep their last results
        previous = json.loads(RESULTS.read_text()).get("cases", {})
        payload["cases"] = {**{k: v for k, v in previous.items() if k in CASES}, **payload["cases"]}
    verdicts = [m["pass"] for c in payload["cases"].values() for m in c["modes"].values() if m["pass"] is not None]
    payload["all_pass"] = bool(verdicts) and all(verdicts)
    payload["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print("\n".join(table(payload)))
    if not args.no_save:
        RESULTS.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0 if payload["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
