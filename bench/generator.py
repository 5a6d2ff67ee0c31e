"""Generator benchmarks: how much of a core the suite costs compared with a bare FastHttpUser.

    python bench/generator.py efficiency [--seconds 20] [--repeat 3]
    python bench/generator.py memory [--users 1000] [--seconds 40]
    python bench/generator.py scaling --processes 1 2 4 8 11 [--seconds 20]
    python bench/generator.py soak [--users 200] [--minutes 10]

The generator is pinned to its own cores, nginx (njs answering contract-shaped JSON that
passes the suite's checks) to the others; see README "Performance"."""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import psutil

from bench.common import ROOT, Nginx, k6_run, locust_run, require_tools, save, table

SUITE = ("locustfile.py", ["PaymentServiceUser"])
BARE = ("bench/bare_locustfile.py", ["BareUser"])
BARE_POST = ("bench/bare_locustfile.py", ["BarePostUser"])


def cores_split(processes: int) -> tuple[str, str, int]:
    """Generator cores, nginx cores, nginx workers for this machine."""
    n = os.cpu_count() or 2
    if n <= 2:
        return "0", "1", 1
    gen = min(processes, n - 4) if n > 8 else max(1, n // 2)
    return f"0-{gen - 1}", f"{gen}-{n - 1}", min(4, n - gen)


def efficiency(args) -> None:
    gen, tgt, workers = cores_split(1)
    nginx = Nginx(tgt, workers)
    try:
        runs = {"bare": [], "bare_post": [], "suite": [], "k6": []}
        for _ in range(args.repeat):  # interleaved, so drift hits all alike
            for name, (locustfile, classes) in (("bare", BARE), ("bare_post", BARE_POST), ("suite", SUITE)):
                runs[name].append(locust_run(locustfile, classes, nginx.url, args.users, args.seconds, gen))
            # the peer: k6 posting the same payment with the same headers and checks, 50 VUs
            runs["k6"].append(k6_run(nginx.url, 50, args.seconds, gen))
    finally:
        nginx.stop()
    med = {k: statistics.median(r["rps"] for r in v) for k, v in runs.items()}
    ratio = med["suite"] / med["bare"] if med["bare"] else 0.0
    cpu = {k: statistics.median(r["cpu_us_per_request"] for r in v) for k, v in runs.items()}
    rows = [[k, *[r["rps"] for r in v], med[k], cpu[k], sum(r["failures"] for r in v)] for k, v in runs.items()]
    heads = ["user", *[f"run {i + 1} req/s" for i in range(args.repeat)], "median", "CPU us/req", "failures"]
    print(table(heads, rows))
    post_ratio = med["suite"] / med["bare_post"] if med["bare_post"] else 0.0
    k6_ratio = med["suite"] / med["k6"] if med["k6"] else 0.0
    print(
        f"\nsuite / bare = {ratio:.3f}; suite / bare POST = {post_ratio:.3f} (target >= 0.80); "
        f"suite / k6 = {k6_ratio:.3f}"
    )
    path = save(
        "generator_efficiency",
        {
            "users": args.users,
            "seconds": args.seconds,
            "generator_cores": gen,
            "nginx_cores": tgt,
            "runs": runs,
            "median_rps": med,
            "median_cpu_us_per_request": cpu,
            "ratio": round(ratio, 3),
            "ratio_to_bare_post": round(post_ratio, 3),
            "ratio_to_k6": round(k6_ratio, 3),
            "target": "suite >= 0.80 x bare pooled POST (issue 14); was >= 0.90 x bare GET (issue 5)",
            "met": post_ratio >= 0.80,
        },
    )
    print(f"written {path.relative_to(ROOT)}")


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
    e.add_argument("--seconds", type=int, default=20)
    e.add_argument("--repeat", type=int, default=3)
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
