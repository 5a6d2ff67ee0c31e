"""What live metrics cost the generator: CPU per request with each METRICS_SINK (none, dogstatsd,
otel), the same short Locust load (PaymentServiceUser, no waits) against the nginx target of
bench/common.py, runs interleaved so drift hits every sink alike. Target: <= +10 % over none.

    python -m bench.metrics_cost [--seconds 15] [--users 20] [--repeat 3]

Receivers are real and local: a UDP socket for DogStatsD, an OTLP/HTTP endpoint (answers 200,
counts requests) for OpenTelemetry, both on 127.0.0.1 in this process (their CPU is not the
generator's and is not counted). Needs nginx-light + libnginx-mod-http-js (see bench/common.py).
Writes bench/results/metrics_cost.json."""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.common import ROOT, Nginx, locust_run, require_tools, save, table
from bench.generator import SUITE, cores_split

SINKS = ("none", "dogstatsd", "otel")
TARGET = 0.10


class Receivers:
    def __init__(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.5)
        self.datagrams = 0
        self.otlp_posts = 0
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receivers.otlp_posts += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._stop = threading.Event()
        threading.Thread(target=self._udp_loop, daemon=True).start()
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def _udp_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.udp.recv(65535)
                self.datagrams += 1
            except TimeoutError:
                continue

    def env(self, sink: str) -> dict:
        return {
            "METRICS_SINK": sink,
            "DD_AGENT_HOST": "127.0.0.1",
            "DD_DOGSTATSD_PORT": str(self.udp.getsockname()[1]),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.http.server_address[1]}",
        }

    def close(self) -> None:
        self._stop.set()
        self.http.shutdown()
        self.http.server_close()
        self.udp.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    require_tools()
    gen, tgt, workers = cores_split(1)
    nginx = Nginx(tgt, workers)
    receivers = Receivers()
    runs: dict[str, list[dict]] = {s: [] for s in SINKS}
    try:
        for _ in range(args.repeat):
            for sink in SINKS:
                locustfile, classes = SUITE
                runs[sink].append(
                    locust_run(locustfile, classes, nginx.url, args.users, args.seconds, gen, env=receivers.env(sink))
                )
    finally:
        nginx.stop()
        receivers.close()
    cpu = {s: statistics.median(r["cpu_us_per_request"] for r in v) for s, v in runs.items()}
    overhead = {s: round(cpu[s] / cpu["none"] - 1, 3) if cpu["none"] else None for s in SINKS}
    rps = {s: statistics.median(r["rps"] for r in v) for s, v in runs.items()}
    rows = [[s, *[r["cpu_us_per_request"] for r in v], cpu[s], f"{overhead[s]:+.1%}", rps[s]] for s, v in runs.items()]
    heads = ["sink", *[f"run {i + 1} us/req" for i in range(args.repeat)], "median us/req", "vs none", "req/s"]
    print(table(heads, rows))
    print(f"\nreceived: {receivers.datagrams} DogStatsD datagrams, {receivers.otlp_posts} OTLP posts")
    path = save(
        "metrics_cost",
        {
            "what": "generator CPU per request (user+sys of the Locust process, start-up included) per METRICS_SINK",
            "machine_label": "dev VM, 2 cores",
            "target": "nginx (bench/common.py), PaymentServiceUser, no waits",
            "users": args.users,
            "seconds": args.seconds,
            "generator_cores": gen,
            "nginx_cores": tgt,
            "runs": runs,
            "median_cpu_us_per_request": cpu,
            "overhead_vs_none": overhead,
            "target_overhead": TARGET,
            "met": all(v is not None and v <= TARGET for v in overhead.values()),
            "received": {"dogstatsd_datagrams": receivers.datagrams, "otlp_posts": receivers.otlp_posts},
        },
    )
    print(f"written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
