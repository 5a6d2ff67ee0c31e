"""What the raw request log costs the generator: CPU per request of the suite's closed model
(PaymentServiceUser, no waits) with REQUEST_LOG off and on, the same short Locust load against the
nginx target of bench/common.py, runs interleaved (off-on, on-off, ...) so drift hits both alike;
and the listener alone, called in a loop in a fresh interpreter (the end-to-end figure includes
start-up and moves with whatever else the machine runs).

    python -m bench.request_log_cost [--seconds 15] [--users 20] [--repeat 3]

Each "on" run's log is checked: one line per request Locust counted (its JSON), every line whole.
Needs nginx-light + libnginx-mod-http-js (see bench/common.py). Writes
bench/results/request_log_cost.json."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.common import PY, ROOT, Nginx, locust_run, require_tools, save, table
from bench.generator import SUITE, cores_split

MODES = ("off", "on")
# The listener alone, in a fresh interpreter (Locust's imports patch the process with gevent):
# µs per call, writing included, for a closed-model request (no due time).
LISTENER = """
import sys, tempfile, time
from pathlib import Path
from reporting.request_log import RequestLog
class Answer:
    status_code = 201
n = int(sys.argv[1])
with tempfile.TemporaryDirectory() as folder:
    log = RequestLog(str(Path(folder) / "x.tsv"))
    log.open(Path(log.path), "local")
    answer, started = Answer(), time.time()
    t0 = time.process_time()
    for i in range(n):
        log.on_request("POST", "POST /payments", 12.3456 + i % 50, 321, None, answer, started)
    log.close()
    print((time.process_time() - t0) * 1e6 / n)
"""


def listener_us(calls: int = 200_000) -> float:
    env = {**os.environ, "REQUEST_LOG": ""}
    out = subprocess.run(
        [PY, "-c", LISTENER, str(calls)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return round(float(out.stdout.strip().splitlines()[-1]), 2)


def _log_lines(path: Path) -> tuple[int, int]:
    """(lines after the header, bytes) of a request log; a cut line would fail the bench."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), f"{path}: the last line is cut"
    return text.count("\n") - 1, len(text.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    require_tools()
    gen, tgt, workers = cores_split(1)
    nginx = Nginx(tgt, workers)
    logs = Path(tempfile.mkdtemp(prefix="bench-request-log-"))
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    try:
        for i in range(args.repeat):
            for mode in MODES if i % 2 == 0 else MODES[::-1]:  # off-on, on-off, ...: no side always goes first
                log = logs / f"run{i}.tsv"
                env = {"REQUEST_LOG": str(log) if mode == "on" else ""}
                locustfile, classes = SUITE
                run = locust_run(locustfile, classes, nginx.url, args.users, args.seconds, gen, env=env)
                if mode == "on":
                    lines, size = _log_lines(log)
                    run["log_lines"], run["log_bytes_per_request"] = lines, round(size / max(1, lines), 1)
                    run["log_lines_equal_requests"] = lines == run["requests"]
                    log.unlink()
                runs[mode].append(run)
    finally:
        nginx.stop()
        shutil.rmtree(logs, ignore_errors=True)
    listener = [listener_us() for _ in range(args.repeat)]
    listener_median = round(statistics.median(listener), 2)
    cpu = {m: statistics.median(r["cpu_us_per_request"] for r in v) for m, v in runs.items()}
    rps = {m: statistics.median(r["rps"] for r in v) for m, v in runs.items()}
    cpu = {m: round(v, 1) for m, v in cpu.items()}
    rps = {m: round(v, 1) for m, v in rps.items()}
    # each round's on minus off: the two ran back to back, so this is less exposed to drift
    paired = [round(b["cpu_us_per_request"] - a["cpu_us_per_request"], 1) for a, b in zip(*runs.values(), strict=True)]
    paired_median = round(statistics.median(paired), 1)
    added = round(cpu["on"] - cpu["off"], 1)
    overhead = round(cpu["on"] / cpu["off"] - 1, 3) if cpu["off"] else None
    rows = [[m, *[r["cpu_us_per_request"] for r in v], cpu[m], rps[m]] for m, v in runs.items()]
    heads = ["REQUEST_LOG", *[f"run {i + 1} us/req" for i in range(args.repeat)], "median us/req", "req/s"]
    print(table(heads, rows))
    print(f"\nadded: {added:+} us per request ({overhead:+.1%}); every log had one line per request: ", end="")
    print(all(r["log_lines_equal_requests"] for r in runs["on"]))
    print(f"paired (on - off, each round): {paired} us, median {paired_median:+} us")
    print(f"the listener alone: {listener_median} us per call (runs {listener})")
    path = save(
        "request_log_cost",
        {
            "what": "generator CPU per request (user+sys of the Locust process, start-up included), REQUEST_LOG off/on",
            "machine_label": "dev VM, 2 cores, shared with other sessions",
            "target": "nginx (bench/common.py), PaymentServiceUser, no waits",
            "users": args.users,
            "seconds": args.seconds,
            "generator_cores": gen,
            "nginx_cores": tgt,
            "runs": runs,
            "median_cpu_us_per_request": cpu,
            "median_rps": rps,
            "added_cpu_us_per_request": added,
            "paired_added_us_per_request": paired,
            "paired_added_median_us": paired_median,
            "overhead_vs_off": overhead,
            "listener_us_per_call": listener,
            "listener_median_us_per_call": listener_median,
            "log_lines_equal_requests": all(r["log_lines_equal_requests"] for r in runs["on"]),
        },
    )
    print(f"written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
