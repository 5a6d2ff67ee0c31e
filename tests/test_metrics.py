"""Live metrics (monitoring/, METRICS_SINK): real receivers on loopback.

DogStatsD: a UDP socket receives the datagrams of a short smoke run (and of a distributed one);
names, types, tags, and counts equal to Locust's totals. OpenTelemetry: an OTLP/HTTP receiver
decodes what a short run exports, and the SDK's in-memory reader checks the histogram's buckets.
The dashboard charts exactly the metrics the suite emits."""

from __future__ import annotations

import gzip
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from monitoring import METRICS, NOT_CHARTED, PREFIX
from tests.helpers import ROOT
from tests.test_runner import locust_totals, run, target_env

DASHBOARD = ROOT / "monitoring" / "datadog-dashboard.json"
# Ids of the contract, card numbers, the token: none may appear in a metric name or tag.
FORBIDDEN = re.compile(r"\b(?:pay|re|auth|cap|bre)_[A-Za-z0-9]|mer_race_|\b\d{12,19}\b|test_token|Bearer", re.I)


class UdpSink:
    """A DogStatsD 'agent': every datagram received on 127.0.0.1:<port>."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.datagrams: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.datagrams.append(self.sock.recv(65535).decode())
            except TimeoutError:
                continue

    def __enter__(self) -> UdpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def lines(self) -> list[str]:
        return [line for d in self.datagrams for line in d.split("\n") if line]


def parse(lines: list[str]):
    """(metrics: [(name, [values], type, {tag: value})], events: [(title, text, {tag: value})])"""
    metrics, events = [], []
    for line in lines:
        if line.startswith("_e{"):
            head, _, rest = line.partition(":")
            tlen, xlen = (int(n) for n in head[3:-1].split(","))
            title, text = rest[:tlen], rest[tlen + 1 : tlen + 1 + xlen]
            tags = dict(t.split(":", 1) for t in rest.split("|#", 1)[1].split(",")) if "|#" in rest else {}
            events.append((title, text, tags))
            continue
        fields = line.split("|")
        name, _, values = fields[0].partition(":")
        tags = {}
        for f in fields[2:]:
            if f.startswith("#"):
                tags = dict(t.split(":", 1) for t in f[1:].split(","))
        metrics.append((name, [float(v) for v in values.split(":")], fields[1], tags))
    return metrics, events


def total(metrics, name: str, **where: str) -> float:
    return sum(sum(v) for n, v, _t, tags in metrics if n == name and all(tags.get(k) == w for k, w in where.items()))


def dashboard_metrics() -> set[str]:
    text = DASHBOARD.read_text()
    return set(re.findall(rf"\b{re.escape(PREFIX)}\.[a-z_.]*[a-z_]", text))


def test_dashboard_charts_exactly_the_emitted_metrics():
    doc = json.loads(DASHBOARD.read_text())
    assert doc["title"] and doc["widgets"] and doc["layout_type"]
    charted = dashboard_metrics()
    assert charted <= set(METRICS), f"dashboard charts metrics the suite never sends: {charted - set(METRICS)}"
    missing = set(METRICS) - charted - NOT_CHARTED
    assert not missing, f"emitted but neither charted nor listed in NOT_CHARTED: {missing}"
    assert not (charted & NOT_CHARTED)


def test_none_sink_attaches_nothing():
    code = (
        "import sys, monitoring.hooks as h; from money.ledger import LEDGER; "
        "assert h.COLLECTOR is None and not LEDGER.listeners; "
        "assert 'datadog' not in sys.modules and 'opentelemetry.sdk' not in sys.modules; print('ok')"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "METRICS_SINK": "none"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_absent_agent_costs_little_and_never_raises():
    from config import Settings
    from monitoring.dogstatsd import DogStatsdBackend

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    backend = DogStatsdBackend(Settings(dd_agent_host="127.0.0.1", dd_dogstatsd_port=port))
    tags = backend.tags({"endpoint": "GET_/health", "method": "GET"})
    started = time.perf_counter()
    for i in range(20_000):
        backend.distribution(f"{PREFIX}.request.duration", 1.5, tags)
        backend.count(f"{PREFIX}.requests", 1, tags)
        if i % 2000 == 0:
            backend.flush()  # ECONNREFUSED from the previous packets: dropped, counted, not raised
    backend.close()
    assert time.perf_counter() - started < 5.0
    assert backend.stats()["packets_dropped"] > 0


def test_dogstatsd_smoke_run_sends_what_locust_counted(sandbox, tmp_path):
    with UdpSink() as agent:
        env = target_env(
            sandbox,
            tmp_path,
            RUN_TIME="6s",
            METRICS_SINK="dogstatsd",
            DD_AGENT_HOST="127.0.0.1",
            DD_DOGSTATSD_PORT=str(agent.port),
            DD_ENV="ci",
            DD_TAGS="team:payments",
        )
        r = run("smoke", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    reports = tmp_path / "reports"
    summary = json.loads((reports / "smoke-summary.json").read_text())
    requests_, failures = locust_totals(reports, "smoke")
    lines = agent.lines()
    metrics, events = parse(lines)

    # names: all from the catalogue, with their types; every family the run can produce is there
    types = {"distribution": "d", "count": "c", "gauge": "g"}
    seen = {n for n, *_ in metrics}
    assert seen <= set(METRICS), seen - set(METRICS)
    for name, _v, kind, _tags in metrics:
        assert kind == types[METRICS[name][0]], (name, kind)
    always = {"request.duration", "requests", "payments", "payments.volume", "authorizations", "captures"}
    always |= {"users", "rps", "generator.cpu_percent", "generator.memory_rss", "runs", "thresholds.breached"}
    always |= {"money.mismatches"}
    assert seen >= {f"{PREFIX}.{n}" for n in always}, {f"{PREFIX}.{n}" for n in always} - seen
    assert f"{PREFIX}.request.duration" in dashboard_metrics()

    # counts equal Locust's totals; one distribution value per request
    assert requests_ > 100
    assert total(metrics, f"{PREFIX}.requests") == requests_ == summary["totals"]["requests"]
    assert total(metrics, f"{PREFIX}.request.errors") == failures
    assert sum(len(v) for n, v, *_ in metrics if n == f"{PREFIX}.request.duration") == requests_
    by_endpoint = Counter()
    for n, v, _k, tags in metrics:
        if n == f"{PREFIX}.requests":
            by_endpoint[tags["endpoint"]] += sum(v)
    rows = json.loads((reports / "smoke.json").read_text())
    expected = Counter()
    for row in rows:
        expected[re.sub(r"[^\w\-:/.]", "_", row["name"])] += row["num_requests"]
    assert by_endpoint == expected

    # tags: grouped endpoint, method, status class, user class, profile, run id, dialect, env, DD_TAGS
    durations = [tags for n, _v, _k, tags in metrics if n == f"{PREFIX}.request.duration"]
    assert all(
        {"endpoint", "method", "status_class", "user_class", "profile", "run_id", "dialect"} <= set(t)
        for t in durations
    )
    assert {t["profile"] for t in durations} == {"smoke"} and {t["dialect"] for t in durations} == {"contract"}
    assert len({t["run_id"] for t in durations}) == 1
    assert {t["user_class"] for t in durations} == set(summary["users"]["classes"])
    assert {t["status_class"] for t in durations} >= {"2xx", "4xx"}
    assert all(t.get("env") == "ci" and t.get("team") == "payments" for t in durations)
    assert any(t["endpoint"] == "GET_/payments/_id_" for t in durations)

    # business metrics agree with the ledger
    ledger = summary["money"]["ledger"]["requests"]
    assert total(metrics, f"{PREFIX}.payments", outcome="approved") == ledger.get("payment:succeeded", 0) > 0
    assert total(metrics, f"{PREFIX}.payments", outcome="declined") == ledger.get("payment:declined", 0)
    declined = [t for n, _v, _k, t in metrics if n == f"{PREFIX}.payments" and t["outcome"] == "declined"]
    assert all(t["decline_code"] != "none" for t in declined)
    assert total(metrics, f"{PREFIX}.payments.volume") > 0
    assert total(metrics, f"{PREFIX}.captures") == sum(v for k, v in ledger.items() if k.startswith("capture:"))
    assert total(metrics, f"{PREFIX}.money.mismatches") == 0

    # gauges and the two events, the end one with the verdict
    assert total(metrics, f"{PREFIX}.users") > 0
    titles = [e[0] for e in events]
    assert titles[0] == "Load test started: smoke" and titles[-1] == "Load test smoke: PASS", titles
    assert "verdict: PASS" in events[-1][1]

    # nothing secret or identifying anywhere
    for line in lines:  # names, tags and event texts (a value may hold any digits)
        fields = line.split("|")
        checked = line if line.startswith("_e{") else fields[0].partition(":")[0] + "|" + "|".join(fields[1:])
        assert not FORBIDDEN.search(checked), line
    assert summary["metrics"]["sink"] == "dogstatsd"
    assert summary["metrics"]["processes"][0]["packets_dropped"] == 0


def test_dogstatsd_distributed_workers_tagged_and_nothing_counted_twice(sandbox, tmp_path):
    with UdpSink() as agent:
        env = target_env(
            sandbox,
            tmp_path,
            RUN_TIME="8s",
            USERS="6",
            SPAWN_RATE="6",
            WORKERS="2",
            METRICS_SINK="dogstatsd",
            DD_AGENT_HOST="127.0.0.1",
            DD_DOGSTATSD_PORT=str(agent.port),
        )
        r = run("distributed", env=env, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    reports = tmp_path / "reports"
    requests_, _failures = locust_totals(reports, "distributed")
    metrics, events = parse(agent.lines())
    per_worker = defaultdict(float)
    for n, v, _k, tags in metrics:
        if n == f"{PREFIX}.requests":
            assert tags["role"] == "worker", tags
            per_worker[tags["worker"]] += sum(v)
    # Each worker's own count is what it made. The master's totals can only be lower: under CPU
    # load the master may miss a worker's last stats report (seen on this 2-core VM); never higher.
    assert len(per_worker) == 2 and all(n > 0 for n in per_worker.values())
    assert requests_ <= sum(per_worker.values()) <= 1.3 * requests_
    assert {tags["role"] for n, _v, _k, tags in metrics if n in (f"{PREFIX}.users", f"{PREFIX}.rps")} == {"master"}
    assert {tags["run_id"] for *_x, tags in metrics} == {events[0][2]["run_id"]}  # one run id everywhere
    assert [e[2]["role"] for e in events] == ["master", "master"]


class OtlpReceiver:
    """An OTLP/HTTP collector: decodes every ExportMetricsServiceRequest posted to /v1/metrics."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        received = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                msg = ExportMetricsServiceRequest()
                msg.ParseFromString(body)
                received.append((self.path, msg))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def metrics(self):
        for _path, msg in self.requests:
            for rm in msg.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        yield rm.resource, m


def test_otel_smoke_run_exports_over_otlp(sandbox, tmp_path):
    with OtlpReceiver() as collector:
        env = target_env(
            sandbox,
            tmp_path,
            RUN_TIME="5s",
            METRICS_SINK="otel",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.port}",
            OTEL_METRIC_EXPORT_INTERVAL="2000",
            OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=ci",
        )
        r = run("smoke", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    requests_, _failures = locust_totals(tmp_path / "reports", "smoke")
    assert collector.requests and all(path == "/v1/metrics" for path, _ in collector.requests)
    counted, hist_count, buckets_used, names = 0, 0, set(), set()
    for resource, m in collector.metrics():
        names.add(m.name)
        attrs = {a.key: a.value.string_value for a in resource.attributes}
        assert attrs["service.name"] == "payment-load-suite" and attrs["deployment.environment.name"] == "ci"
        assert attrs["profile"] == "smoke" and attrs["dialect"] == "contract" and attrs["run_id"]
        if m.name == f"{PREFIX}.requests":
            assert m.sum.aggregation_temporality == 1  # delta: Datadog's preference
            counted += sum(p.as_int or int(p.as_double) for p in m.sum.data_points)
        if m.name == f"{PREFIX}.request.duration":
            assert m.WhichOneof("data") == "exponential_histogram"
            for p in m.exponential_histogram.data_points:
                hist_count += p.count
                for i, n in enumerate(p.positive.bucket_counts):
                    if n:
                        buckets_used.add((p.scale, p.positive.offset + i))
    assert names <= set(METRICS) and f"{PREFIX}.request.duration" in names
    assert counted == requests_ == hist_count > 100
    assert len(buckets_used) > 5, buckets_used  # real latencies spread over many buckets


def test_otel_latency_histogram_is_exponential_in_memory(monkeypatch):
    """The SDK's in-memory reader: real latencies (sandbox-like, 0.3 ms to 2 s) spread over
    buckets; Locust's own default (explicit bounds in seconds) would put all in one."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from config import Settings
    from monitoring.collector import Collector
    from monitoring.otel import OtelBackend

    reader = InMemoryMetricReader()
    collector = Collector(OtelBackend(Settings(dd_tags="team:payments"), readers=[reader]))
    collector.configure("local", {"profile": "unit", "run_id": "r1"})

    class Resp:
        status_code = 201

    latencies = [0.3, 0.8, 1.2, 2.5, 4.0, 7.5, 12.0, 30.0, 90.0, 250.0, 800.0, 2000.0]
    for ms in latencies:
        collector.on_request("POST", "POST /payments", ms, 100, response=Resp())
    data = reader.get_metrics_data()
    points = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == f"{PREFIX}.request.duration"
        for p in m.data.data_points
    ]
    assert len(points) == 1
    point = points[0]
    assert type(point).__name__ == "ExponentialHistogramDataPoint"
    assert point.count == len(latencies) and point.min == 0.3 and point.max == 2000.0
    assert sum(1 for n in point.positive.bucket_counts if n) >= 10
    assert point.attributes["endpoint"] == "POST_/payments" and "run_id" not in point.attributes
    resource = data.resource_metrics[0].resource.attributes
    assert resource["team"] == "payments" and resource["run_id"] == "r1" and resource["dialect"] == "contract"

    # Locust's --otel histogram gets an exponential aggregation through the exporter's preference
    # (where the variable is unset; a value set by the user stays)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import Histogram
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation

    from monitoring.otel import prepare_environment

    environ = {"OTEL_METRIC_EXPORT_INTERVAL": "5000"}
    prepare_environment(environ)
    assert environ["OTEL_METRIC_EXPORT_INTERVAL"] == "5000"
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    exporter = OTLPMetricExporter()
    assert isinstance(exporter._preferred_aggregation[Histogram], ExponentialBucketHistogramAggregation)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_catalogue_names_are_datadog_safe(name):
    assert re.fullmatch(r"[a-z][a-z0-9_.]{0,199}", name) and not FORBIDDEN.search(name)


def test_compose_profiles_for_metrics_are_valid():
    import shutil

    if not shutil.which("docker-compose"):
        pytest.skip("docker-compose (Debian package) not installed")
    for profile in ("datadog", "otel"):
        cmd = ["docker-compose", "-f", "docker-compose.locust.yml", "--profile", profile, "config", "-q"]
        r = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "DD_API_KEY": "x"}
        )
        assert r.returncode == 0, r.stderr
    assert (ROOT / "monitoring" / "otel-collector.yaml").is_file()


# --- a collector that misbehaves never holds the run up (issue 22, part 4) ---------------------

END_BUDGET_S = 2.0  # what the issue allows a sink to add to a run's end
# The end phase (run time reached -> process exit) of two runs differs by more than the sink on
# this shared 2-core VM: reconciliation and report writing vary by ~1 s between runs (seen: 0.4 to
# 1.3 s). The old behaviour added 25-40 s (refused) and 3 x 10 s (silent), so this still catches it.
NOISE_MARGIN_S = 3.0
SINK_LOG = re.compile(r"/(WARNING|ERROR|CRITICAL)/(suite\.metrics|opentelemetry|datadog)")


class SilentCollector:
    """Accepts TCP connections and never answers (the socket stays open until the test ends)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except (TimeoutError, OSError):
                continue

    def __enter__(self) -> SilentCollector:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join(5)
        for s in [*self.held, self.sock]:
            s.close()


class SlowCollector(OtlpReceiver):
    """An OTLP receiver that answers every export, but only after ``delay`` seconds."""

    def __init__(self, delay: float = 4.0) -> None:
        super().__init__()
        inner = self.server.RequestHandlerClass.do_POST

        def slow_post(handler) -> None:
            time.sleep(delay)
            inner(handler)

        self.server.RequestHandlerClass.do_POST = slow_post


def timed_run(env: dict) -> tuple[int, float, list[str], dict]:
    """Runs a 4-second smoke; returns (exit code, end phase in s, output lines, summary). The end
    phase runs from the moment Locust's "--run-time limit reached" line is read to the process's
    exit: everything the run's end costs, the metrics sink's flushes included."""
    full = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "run_tests.sh"), "smoke"],
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, limit_at = [], None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if limit_at is None and "--run-time limit reached" in line:
            limit_at = time.monotonic()
    rc = proc.wait(timeout=180)
    ended = time.monotonic()
    assert limit_at is not None, "\n".join(lines[-40:])
    summary = json.loads((Path(env["REPORT_DIR"]) / "smoke-summary.json").read_text())
    return rc, ended - limit_at, lines, summary


@pytest.fixture(scope="module")
def healthy_end(sandbox, tmp_path_factory):
    """The end phase of the same run with a collector that answers at once: the baseline."""
    tmp = tmp_path_factory.mktemp("healthy")
    with OtlpReceiver() as collector:
        env = target_env(sandbox, tmp, RUN_TIME="4s", METRICS_SINK="otel", OTEL_METRIC_EXPORT_INTERVAL="1000")
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{collector.port}"
        rc, end_s, lines, summary = timed_run(env)
    assert rc == 0, "\n".join(lines[-40:])
    assert not [line for line in lines if SINK_LOG.search(line)]
    assert summary["metrics"]["processes"][0]["points_dropped"] == 0
    return end_s


@pytest.mark.parametrize("behaviour", ["refused", "silent", "slow", "dogstatsd-refused"])
def test_a_misbehaving_collector_adds_at_most_2s_and_one_warning(behaviour, sandbox, tmp_path, healthy_end):
    from contextlib import nullcontext

    from tests.helpers import free_port

    port = free_port()  # refused: nobody listens there
    server = {"silent": SilentCollector, "slow": SlowCollector}.get(behaviour)
    with server() if server else nullcontext() as collector:
        if collector is not None:
            port = collector.port
        # exports every second: some fail (or hang) during the run too, and one may be in flight
        # (holding the exporter's lock) when the run ends
        env = target_env(sandbox, tmp_path, RUN_TIME="4s", METRICS_SINK="otel", OTEL_METRIC_EXPORT_INTERVAL="1000")
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
        if behaviour == "dogstatsd-refused":
            env.update(METRICS_SINK="dogstatsd", DD_AGENT_HOST="127.0.0.1", DD_DOGSTATSD_PORT=str(port))
        rc, end_s, lines, summary = timed_run(env)
    assert rc == 0, "\n".join(lines[-40:])
    added = end_s - healthy_end
    print(f"{behaviour}: end phase {end_s:.2f} s, healthy {healthy_end:.2f} s, added {added:.2f} s")
    assert added < END_BUDGET_S + NOISE_MARGIN_S, (behaviour, round(end_s, 2), round(healthy_end, 2))
    warnings = [line for line in lines if SINK_LOG.search(line)]
    assert len(warnings) <= 1, warnings  # a run under a minute: one warning at most
    process = summary["metrics"]["processes"][0]
    if behaviour == "dogstatsd-refused":
        assert process["packets_dropped"] > 0, process
    else:
        assert warnings and "failed" in warnings[0], lines[-40:]
        assert process["exports_failed"] + process["exports_skipped"] > 0 and process["points_dropped"] > 0, process
