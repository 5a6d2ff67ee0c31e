"""Issue 17: the run's page (<profile>-summary.html), the timeline it charts, the run history and
its page - unit tests of each piece, then two short smoke runs opened in headless Chromium."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.test_runner import run, target_env

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SHOTS = ROOT / "reports"  # as tests/test_web_ui.py; the docs' screenshots are of longer runs


# -- reading the charts back --------------------------------------------------------------------


class Charts(HTMLParser):
    """Every chart figure of a page: its attributes, and its series' (data-x, data-y) values."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key) and not a[key].startswith(("data:", "#")):
                self.external.append(a[key])
        if tag == "figure":
            self.figures.append({"attrs": a, "series": [], "limits": [], "steady": None, "svg": {}})
        elif tag == "svg" and "viewbox" in a and self.figures and not self.figures[-1]["svg"]:
            self.figures[-1]["svg"] = a  # the chart's own (the legend's swatches have none)
        elif tag == "path" and self.figures and self.figures[-1]["series"]:
            line = self.figures[-1]["series"][-1]  # a series' line comes first in its group
            line.setdefault("d", a["d"])
            line.setdefault("stroke-width", float(a.get("stroke-width", 0)))
        elif tag == "g" and "data-series" in a and self.figures:
            xs = [float(v) for v in a["data-x"].split(",") if v]
            ys = [float(v) for v in a["data-y"].split(",") if v]
            self.figures[-1]["series"].append({**a, "xs": xs, "ys": ys})
        elif tag == "line" and "data-limit" in a and self.figures:
            self.figures[-1]["limits"].append((a["data-metric"], float(a["data-limit"])))
        elif tag == "rect" and "data-from" in a and self.figures:
            self.figures[-1]["steady"] = (float(a["data-from"]), float(a["data-to"]))


def charts_of(html: str) -> Charts:
    parser = Charts()
    parser.feed(html)
    return parser


def series(chart: dict, kind: str, run_: str = "current") -> dict:
    return next(s for s in chart["series"] if s["data-series"] == kind and s["data-run"] == run_)


def latency_chart(charts: Charts, endpoint: str) -> dict:
    return next(f for f in charts.figures if f["attrs"].get("data-endpoint") == endpoint)


def last_value(values: list) -> float:
    return [v for v in values if v is not None][-1]


# -- a summary as a run writes it, without running one --------------------------------------------


def fake_summary(p95_shift: float = 0.0, failed: bool = False) -> dict:
    t = [0.0, 3.0, 8.0, 13.0, 18.0]
    span = [3.0, 5.0, 5.0, 5.0, 2.0]
    p95 = [12.0, 14.0, 15.0 + p95_shift, 16.0 + p95_shift, 13.0 + p95_shift]
    endpoint = {
        "method": "POST",
        "requests": [30, 50, 52, 49, 20],
        "failures": [0, 0, 2, 0, 0],
        "p50": [5.0, 6.0, 6.0, 7.0, 6.0],
        "p95": p95,
        "p99": [v + 4 for v in p95],
    }
    health = {**endpoint, "method": "GET", "requests": [0, 5, 5, 5, 0], "p50": [None, 1.0, 1.0, 1.0, None]}
    row = {"name": "POST /payments", "method": "POST", "requests": 201, "failures": 2, "error_rate": 0.00995}
    row.update({"rps": 10.05, "avg_ms": 7.0, "p50_ms": 6.0, "p95_ms": 15.0 + p95_shift, "p99_ms": 19.0})
    row["max_ms"] = 40.0
    total = {**row, "name": "Aggregated"}
    thresholds = [
        {"scope": "global", "metric": "p95_ms", "limit": 500, "actual": 15.0, "pass": True, "text": "global p95"},
        {
            "scope": "POST /payments",
            "metric": "p95_ms",
            "limit": 20 if failed else 300,
            "actual": 15.0 + p95_shift,
            "pass": not failed,
            "text": "POST /payments p95 <= 20 ms",
        },
    ]
    return {
        "profile": "demo",
        "started_at": "2026-01-01T10:00:00Z",
        "ended_at": "2026-01-01T10:00:20Z",
        "duration_s": 20.0,
        "target": {"payment_service": "http://127.0.0.1:8000", "banking_api": "http://127.0.0.1:1080"},
        "users": {"peak": 5, "classes": ["PaymentServiceUser"]},
        "totals": total,
        "endpoints": [row],
        "steady_state": {"window_s": 17.0, "totals": total, "endpoints": [row]},
        "errors_by_category": {"5xx": 2},
        "errors": [{"name": "POST /payments", "error": "[5xx] 500", "category": "5xx", "occurrences": 2}],
        "thresholds": thresholds,
        "integrity": {"ok": True, "problems": []},
        "money": {"enabled": True, "ok": True, "counts": {"payments_in_ledger": 150}, "problems": []},
        "stress": {"breaking_point_users": 40, "at_s": 12.0},
        "reasons": ["threshold breached: POST /payments p95 <= 20 ms"] if failed else [],
        "verdict": "fail" if failed else "pass",
        "exit_code": 1 if failed else 0,
        "timeline": {
            "bucket_s": 5,
            "started_at": 1767261600.0,
            "duration_s": 20.0,
            "steady": {"from_s": 3.0, "to_s": 19.5},
            "money_endpoints": ["POST /payments"],
            "t": t,
            "span": span,
            "users": [5, 5, 5, 5, 5],
            "requests": [30, 55, 57, 54, 20],
            "rps": [10.0, 11.0, 11.4, 10.8, 10.0],
            "failures": {"5xx": [0, 0, 2, 0, 0]},
            "total": {"failures": [0, 0, 2, 0, 0], "p50": [5.0] * 5, "p95": p95, "p99": [v + 4 for v in p95]},
            "endpoints": {"POST /payments": endpoint, "GET /health": health},
        },
    }


def test_page_charts_carry_the_runs_own_figures():
    from reporting import html_report

    base, current = fake_summary(), fake_summary(p95_shift=9.0, failed=True)
    page = html_report.render(current, base, commit="a" * 40)
    charts = charts_of(page)
    assert charts.external == [], charts.external  # one self-contained file
    assert "<script" not in page and "http-equiv=Content-Security-Policy" in page
    chart = latency_chart(charts, "POST /payments")
    tl = current["timeline"]
    p95 = series(chart, "p95")
    assert p95["ys"] == tl["endpoints"]["POST /payments"]["p95"]  # every point, the last one included
    assert p95["xs"] == [round(t + s / 2, 2) for t, s in zip(tl["t"], tl["span"], strict=True)]
    assert series(chart, "p95", "baseline")["ys"] == base["timeline"]["endpoints"]["POST /payments"]["p95"]
    assert ("p95_ms", 20.0) in chart["limits"]  # the breached threshold's limit is drawn
    assert chart["steady"] == (3.0, 19.5)
    assert "POST /payments: response time p50 / p95 / p99 (threshold breached)" in page
    # GET /health is neither money-moving nor breached: charted only under "Other endpoints"
    assert page.index('data-endpoint="GET /health"') > page.index("Other endpoints")
    health = series(latency_chart(charts, "GET /health"), "p50")
    assert health["ys"] == [1.0, 1.0, 1.0] and len(health["xs"]) == 3  # empty buckets leave gaps
    errors = next(f for f in charts.figures if f["attrs"].get("data-kind") == "errors")
    # failures per second of each full bucket: the first (3 s of 5) and last (2 s) are partial
    assert series(errors, "5xx")["ys"] == [0, 0.4, 0] and series(errors, "5xx")["xs"] == [5.5, 10.5, 15.5]
    # the change against the baseline, with its direction and size
    assert "▲ +60 % (15 → 24)" in page and "FAIL" in page and "a" * 12 in page
    assert 'id="money"' in page and "payments in ledger" in page and "breaking_point_users" in page


def test_page_without_a_timeline_or_baseline_still_renders():
    from reporting import html_report

    summary = fake_summary()
    del summary["timeline"]
    page = html_report.render(summary)
    assert "No timeline in this summary" in page and 'id="baseline"' not in page


# -- latency by percentile (issue 21, part 7) ------------------------------------------------------

PERCENTS = [0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.99, 100.0]


def curve(scale: float, tail: float = 1.0) -> list[list[float]]:
    """[[percent, ms], ...] as reporting.latency.curve writes it: 0 (the min) .. 100 (the max)."""
    body = [2.1, 4.0, 5.2, 7.9, 12.0, 15.5, 19.0, 26.0, 31.0, 40.0, 52.0, 60.0, 61.0, 61.0]
    return [[p, round(ms * scale * (tail if p >= 99 else 1.0), 3)] for p, ms in zip(PERCENTS, body, strict=True)]


def with_curves(summary: dict, scale: float = 1.0, corrected: bool = False) -> dict:
    summary["percentile_curves"] = {
        "service": {"total": curve(scale), "POST /payments": curve(scale * 1.5), "GET /health": curve(scale * 0.2)}
    }
    if corrected:
        summary["open_model"] = {"corrected_curves": {"total": curve(scale, 3.0), "POST /payments": curve(scale, 4.0)}}
    return summary


def percentile_charts(page: str) -> dict[str, dict]:
    return {f["attrs"]["data-percentiles"]: f for f in charts_of(page).figures if "data-percentiles" in f["attrs"]}


def path_points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML]([-\d.]+) ([-\d.]+)", d)]


def test_percentile_charts_follow_the_summarys_curves_on_a_1_over_1_minus_p_axis():
    from reporting import html_report
    from reporting.percentile_chart import MT, PH  # the plot area's top and height (px)

    summary = with_curves(fake_summary())
    charts = percentile_charts(html_report.render(summary))
    assert set(charts) == {"POST /payments", "total"}  # the money endpoints and the total; GET /health is not
    for name, chart in charts.items():
        (only,) = chart["series"]  # no baseline, closed model: the service curve alone
        assert (only["data-series"], only["data-run"]) == ("service", "current")
        raw = summary["percentile_curves"]["service"][name]
        assert only["xs"] == [p for p, _ in raw[:-1]] and only["ys"] == [ms for _, ms in raw[:-1]]
        assert float(only["data-max"]) == raw[-1][1] and f"max {raw[-1][1]:g} ms" in only["data-label"]
        assert all(b > a for a, b in zip(only["xs"], only["xs"][1:], strict=False))  # percent rises
        assert all(b >= a for a, b in zip(only["ys"], only["ys"][1:], strict=False))  # ms never falls
        # where the line is drawn: x follows log10(1 / (1 - p)), 99.99 % four steps of ten from 0 %
        points = path_points(only["d"])
        assert len(points) == len(only["xs"])
        x0, x_end = points[0][0], points[-1][0]
        for (x, _), p in zip(points, only["xs"], strict=True):
            expected = math.log10(1 / (1 - p / 100)) / 4
            assert (x - x0) / (x_end - x0) == pytest.approx(expected, abs=0.002), p
        # and y follows the scale the chart says it uses (higher ms: higher up)
        svg = chart["svg"]
        lo, hi = float(svg["data-y-min"]), float(svg["data-y-max"])
        for (_, y), ms in zip(points, only["ys"], strict=True):
            frac = (
                (math.log10(ms) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
                if svg["data-y-scale"] == "log"
                else ms / hi
            )
            assert (MT + PH - y) / PH == pytest.approx(frac, abs=0.003), ms
    assert charts["total"]["svg"]["data-y-scale"] == "log"  # 2.1 .. 61 ms: a factor of 29


def test_percentile_charts_overlay_the_baseline_and_the_corrected_curve_only_when_present():
    from reporting import html_report

    base, current = with_curves(fake_summary()), with_curves(fake_summary(), scale=1.3, corrected=True)
    charts = percentile_charts(html_report.render(current, base))
    for name in ("POST /payments", "total"):
        drawn = {(s["data-series"], s["data-run"]): s for s in charts[name]["series"]}
        assert set(drawn) == {("service", "current"), ("service", "baseline"), ("corrected", "current")}
        assert drawn["service", "baseline"]["ys"] == [ms for _, ms in base["percentile_curves"]["service"][name][:-1]]
        assert drawn["corrected", "current"]["ys"] == [
            ms for _, ms in current["open_model"]["corrected_curves"][name][:-1]
        ]
        assert 'stroke-dasharray="6 4"' not in drawn["service", "current"]["d"]
    # a closed-model run with a baseline: no corrected curve; an open-model baseline's corrected curve overlaid
    charts = percentile_charts(html_report.render(with_curves(fake_summary()), current))
    kinds = {(s["data-series"], s["data-run"]) for s in charts["total"]["series"]}
    assert kinds == {("service", "current"), ("service", "baseline")}
    charts = percentile_charts(html_report.render(current, current))
    kinds = {(s["data-series"], s["data-run"]) for s in charts["total"]["series"]}
    assert ("corrected", "baseline") in kinds
    # a baseline from before the curves: no overlay, and the page says so
    old = fake_summary()
    page = html_report.render(current, old)
    assert all(s["data-run"] == "current" for c in percentile_charts(page).values() for s in c["series"])
    assert "has no percentile curves to overlay" in page
    # no curves at all: a note, no chart; no timeline: the POST endpoints are charted
    page = html_report.render(fake_summary())
    assert percentile_charts(page) == {} and "No percentile curves in this summary" in page
    summary = with_curves(fake_summary())
    del summary["timeline"]
    assert set(percentile_charts(html_report.render(summary))) == {"POST /payments", "total"}


def test_history_prints_the_trend_and_writes_its_page(tmp_path, capsys):
    from reporting import history

    assert history.main(["--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("history: no runs in") and "\n" not in err
    for i in range(3):
        history.append(fake_summary(p95_shift=3.0 * i, failed=i == 1), tmp_path, commit=f"{i}" * 40)
    (tmp_path / "history.jsonl").open("a").write("not json\n")  # a torn line is skipped
    history.append({**fake_summary(), "profile": "other"}, tmp_path)
    assert history.main(["--report-dir", str(tmp_path), "demo"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("3 run(s) of demo")
    rows = out[3:6]
    assert [r.split()[2][:8] for r in rows] == ["00000000", "11111111", "22222222"]  # newest last
    assert [r.split()[3] for r in rows] == ["PASS", "FAIL", "PASS"]
    assert "p95 POST /payments" in out[1]
    page = (tmp_path / "history.html").read_text()
    charts = charts_of(page)
    p95 = next(s for s in charts.figures[0]["series"] if s["data-series"] == "POST /payments")
    assert p95["ys"] == [15.0, 18.0, 21.0]
    assert page.count('class="band"') == 3  # the failed run marked on each chart
    assert "<code>other</code>" not in page  # only the profile asked for
    assert "One run of" not in page and "p95 POST /payments ms" in page
    assert history.main(["--report-dir", str(tmp_path), "nosuch"]) == 2


def test_history_of_one_run_is_a_labelled_row_not_a_dot(tmp_path):
    from reporting import history

    history.append(fake_summary(p95_shift=2.0), tmp_path, commit="9" * 40)
    assert history.main(["--report-dir", str(tmp_path), "demo"]) == 0
    page = (tmp_path / "history.html").read_text()
    assert charts_of(page).figures == []  # no chart of a single dot
    assert "One run of demo so far" in page
    table = page[page.index('<table class="runs">') :]
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", table[: table.index("</thead>")])
    (row,) = re.findall(r"<tr>(.*?)</tr>", table[table.index("<tbody>") :])
    cells = dict(zip(headers, re.findall(r"<td[^>]*>(.*?)</td>", row), strict=True))
    assert cells["p95 ms"] == "17" and cells["p95 POST /payments ms"] == "17" and cells["RPS"] == "10.1"
    assert "PASS" in cells["verdict"] and "9999999999" in cells["commit"]


def test_rates_leave_out_partial_end_buckets_and_percentile_lines_stay_visible():
    from reporting import html_report

    page = html_report.render(fake_summary())
    charts = charts_of(page)
    throughput = next(f for f in charts.figures if f["attrs"].get("data-kind") == "throughput")
    rps = series(throughput, "rps")
    assert rps["xs"] == [5.5, 10.5, 15.5] and rps["ys"] == [11.0, 11.4, 10.8]  # spans 3, 5, 5, 5, 2 of 5 s
    assert series(throughput, "failures")["ys"] == [0, 0.4, 0]
    # a run shorter than a bucket keeps what it has
    short = fake_summary()
    short["timeline"].update(t=[0.0, 0.6], span=[0.6, 0.3], bucket_s=1, rps=[3.0, 1.0], users=[1, 1])
    short["timeline"]["total"]["failures"] = [0, 0]
    short["timeline"]["failures"] = {}
    throughput = next(
        f for f in charts_of(html_report.render(short)).figures if f["attrs"].get("data-kind") == "throughput"
    )
    assert series(throughput, "rps")["ys"] == [3.0, 1.0]
    # p50 / p95 / p99: three widths, the widest drawn first, so lines that coincide all show
    chart = latency_chart(charts, "POST /payments")
    drawn = [s for s in chart["series"] if s["data-run"] == "current"]
    assert [s["data-series"] for s in drawn] == ["p99", "p95", "p50"]
    widths = [s["stroke-width"] for s in drawn]
    assert widths == sorted(widths, reverse=True) and len(set(widths)) == 3 and widths[-1] >= 1.2


TIMELINE_CHECKS = r"""
import random, time
from locust.stats import RequestStats  # noqa: F401  (Locust patches first)
import locust.stats
from locust.stats import StatsEntry, RequestStats
from reporting import latency
from reporting import timeline as tl
from reporting.sections import RunContext

class Env:
    runner = None
    events = None

section = tl.TimelineSection()
section._round = latency.bucket_index
rng = random.Random(7)
stats = RequestStats()
start = time.time()
# one bucket: the timeline's percentiles equal Locust's for the same requests (the same record)
assert locust.stats.bucket_response_time is latency.bucket
for i in range(5000):
    rt = rng.lognormvariate(3, 1.2)
    name = "POST /payments" if i % 3 else "GET /health"
    exc = RuntimeError("[5xx] 503 from POST /payments") if i % 50 == 0 else None
    section.on_request("POST" if i % 3 else "GET", name, rt, 10, exc)
    stats.log_request("POST" if i % 3 else "GET", name, rt, 10)
section.environment = Env()
fig = section.figures(start - 0.5, time.time() + 0.5)
entry = stats.entries[("POST /payments", "POST")]
got = fig["endpoints"]["POST /payments"]
i = [n for n in got["requests"]].index(entry.num_requests)
for pct, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
    assert got[label][i] == entry.get_response_time_percentile(pct), (label, got[label][i])
    assert fig["total"][label][i] == stats.total.get_response_time_percentile(pct)
assert sum(fig["requests"]) == 5000 and fig["failures"]["5xx"][i] == 100, fig["failures"]

# a worker's buckets add up on the master, then the worker starts again from nothing
master = tl.TimelineSection()
report = section.worker_report()
master.merge_worker_report("w1", report)
assert section.worker_report() is None
fig2 = master.figures(start - 0.5, time.time() + 0.5)
assert sum(fig2["requests"]) == 5000 and fig2["endpoints"]["POST /payments"]["p95"] == got["p95"]
assert all(b.closed for b in master.buckets.values() if b is not master.current)
# a second worker, in a bucket of its own a minute earlier, with endpoints past the master's cap
other = tl.TimelineSection()
other._round = latency.bucket_index
other._open(start - 60)
for k in range(tl.MAX_ENDPOINTS + 5):
    other.on_request("GET", f"GET /w2/{k}", 3, 0, RuntimeError("[timeout] read timed out") if k < 2 else None)
master.merge_worker_report("w2", other.worker_report())
fig3 = master.figures(start - 61, time.time() + 0.5)
assert sum(fig3["requests"]) == 5000 + tl.MAX_ENDPOINTS + 5, sum(fig3["requests"])
assert sum(fig3["endpoints"][tl.OTHER]["requests"]) == 7 and fig3["failures"]["timeout"][0] == 2

# a long run: never more than MAX_BUCKETS buckets, the width doubles, nothing is lost
long = tl.TimelineSection()
long._round = latency.bucket_index
t0 = 1_700_000_000
for b in range(3 * tl.MAX_BUCKETS):  # 90 minutes of 5 s buckets
    long._open(t0 + b * tl.BUCKET_S)
    long.on_request("POST", "POST /payments", 10 + b % 7, 0)
assert len(long.buckets) <= tl.MAX_BUCKETS and long.width == 20, (len(long.buckets), long.width)
assert sum(bk.requests() for bk in long.buckets.values()) == 3 * tl.MAX_BUCKETS
assert all(bk.closed for bk in long.buckets.values() if bk is not long.current)  # packed into arrays

# a sparse endpoint: its percentile points cover groups of buckets holding ~20 requests each
sparse = tl.TimelineSection()
sparse.reset(1)  # 1 s buckets, as a short run has
sparse._round = latency.bucket_index
t1 = 1_700_000_000
for b in range(16):
    sparse._open(t1 + b)
    sparse.on_request("GET", "GET /dense", 5 + b, 0)
    for _ in range(40):
        sparse.on_request("GET", "GET /dense", 5 + b, 0)
    for _ in range(3):
        sparse.on_request("GET", "GET /rare", 100 + 10 * b, 0)
sparse.environment = Env()
figs = sparse.figures(t1, t1 + 16)
rare, dense = figs["endpoints"]["GET /rare"], figs["endpoints"]["GET /dense"]
assert dense["points_s"] == 1 and rare["points_s"] == 8, (dense["points_s"], rare["points_s"])
assert len(rare["p95"]) == len(figs["t"]) == 16 and len(set(rare["p95"])) == 2, rare["p95"]
assert rare["p95"][0] == latency.bucket(170.0), rare["p95"]  # 24 requests of 100..170 ms: p95 is 170
assert len(set(dense["p50"])) == 16

# the endpoint cap: names beyond it are counted together
capped = tl.TimelineSection()
capped._round = latency.bucket_index
for k in range(tl.MAX_ENDPOINTS + 50):
    capped.on_request("GET", f"GET /item/{k}", 5, 0, RuntimeError("boom"))
assert len(capped.methods) == tl.MAX_ENDPOINTS + 1 and sum(capped.hist[tl.OTHER].values()) == 50
print("ok")
"""


def test_timeline_matches_locust_percentiles_merges_and_stays_bounded():
    r = subprocess.run([sys.executable, "-c", TIMELINE_CHECKS], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


# -- two smoke runs, then the pages in a real browser ----------------------------------------------


@pytest.fixture(scope="module")
def two_smoke_runs(sandbox, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("charts")
    env = target_env(sandbox, tmp, RUN_TIME="7s")
    results = [run("smoke", env=env, timeout=120) for _ in range(2)]
    return tmp / "reports", results


def test_smoke_runs_write_the_page_history_and_overlay_the_baseline(two_smoke_runs):
    reports, results = two_smoke_runs
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
        assert "charts: " in r.stderr and "Traceback" not in r.stderr
    summary = json.loads((reports / "smoke-summary.json").read_text())
    tl = summary["timeline"]
    # the timeline counts every request Locust counted, endpoint by endpoint
    assert sum(tl["requests"]) == summary["totals"]["requests"]
    for row in summary["endpoints"]:
        assert sum(tl["endpoints"][row["name"]]["requests"]) == row["requests"], row["name"]
        assert sum(tl["endpoints"][row["name"]]["failures"]) == row["failures"], row["name"]
    assert max(tl["users"]) == summary["users"]["peak"]
    assert (reports / "baselines" / "smoke.json").is_file()
    assert "Charts: smoke-summary.html" in (reports / "smoke-summary.md").read_text().splitlines()[:5]
    page = (reports / "smoke-summary.html").read_text()
    assert 'data-run="baseline"' in page and 'id="baseline"' in page  # the second run overlays the first
    lines = (reports / "history.jsonl").read_text().splitlines()
    assert len(lines) == 2
    entry = json.loads(lines[-1])
    assert entry["profile"] == "smoke" and entry["verdict"] == "pass"
    assert entry["requests"] == summary["totals"]["requests"]
    assert entry["endpoints"]["POST /payments"]["p95_ms"] == next(
        r["p95_ms"] for r in summary["steady_state"]["endpoints"] if r["name"] == "POST /payments"
    )
    if (ROOT / ".git").exists() and shutil.which("git"):
        assert re.fullmatch(r"[0-9a-f]{40}", entry["commit"])
    r = run("history", "smoke", env={"REPORT_DIR": str(reports)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("2 run(s) of smoke") and (reports / "history.html").is_file()
    r = run("history", "volume", env={"REPORT_DIR": str(reports)})
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no runs of 'volume'" in r.stderr


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def screenshot(driver, path: Path) -> None:
    """The whole page (the window grown to its height, capped)."""
    driver.set_window_size(1400, 1000)  # a page no taller than the window reports the window's height
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(height + 40, 6000))
    driver.save_screenshot(str(path))


def rendered_x_follows_1_over_1_minus_p(figure, raw: list[list[float]]) -> bool:
    """The service curve's points as Chromium lays them out: their horizontal distances from the
    0 % point follow log10(1 / (1 - p)) (99.99 % four steps of ten away)."""
    from selenium.webdriver.common.by import By

    dots = figure.find_elements(By.CSS_SELECTOR, 'g[data-series="service"][data-run="current"] circle')
    assert len(dots) == len(raw) - 1  # every percentile below 100 % (the max is drawn apart)
    xs = [d.location["x"] + d.size["width"] / 2 for d in dots]
    span = xs[-1] - xs[0]
    assert span > 300, span
    for x, (p, _) in zip(xs, raw, strict=False):
        assert (x - xs[0]) / span == pytest.approx(math.log10(1 / (1 - p / 100)) / 4, abs=0.01), p
    return True


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")
def test_pages_open_in_chromium_without_errors_and_plot_the_json(two_smoke_runs, browser):
    from selenium.webdriver.common.by import By

    reports, results = two_smoke_runs
    assert all(r.returncode == 0 for r in results)
    if not (reports / "history.html").is_file():
        assert run("history", "smoke", env={"REPORT_DIR": str(reports)}).returncode == 0
    SHOTS.mkdir(exist_ok=True)
    summary = json.loads((reports / "smoke-summary.json").read_text())

    browser.get((reports / "smoke-summary.html").as_uri())
    assert browser.find_element(By.ID, "verdict").text.startswith("PASS")
    figures = browser.find_elements(By.CSS_SELECTOR, "figure.chart")
    assert len(figures) >= 5 and all(f.size["height"] > 150 for f in figures if f.is_displayed())
    # the last point of the POST /payments p95 line is the last bucket's p95 in the JSON
    g = browser.find_element(
        By.CSS_SELECTOR, 'figure[data-endpoint="POST /payments"] g[data-series="p95"][data-run="current"]'
    )
    plotted = [float(v) for v in g.get_attribute("data-y").split(",")]
    # (to the chart's 3 decimals)
    assert plotted[-1] == pytest.approx(last_value(summary["timeline"]["endpoints"]["POST /payments"]["p95"]), abs=5e-4)
    assert g.find_element(By.TAG_NAME, "path").size["width"] > 100  # drawn across the chart
    screenshot(browser, SHOTS / "summary-charts.png")
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []
    # latency by percentile: the total and each money endpoint, the first run overlaid, as laid out on screen
    curves = summary["percentile_curves"]["service"]
    names = [n for n in summary["timeline"]["money_endpoints"] if curves.get(n)] + ["total"]
    assert len(names) >= 3, names
    for name in names:
        figure = browser.find_element(By.CSS_SELECTOR, f'figure[data-percentiles="{name}"]')
        assert figure.size["width"] > 500 and figure.size["height"] > 200
        assert rendered_x_follows_1_over_1_minus_p(figure, curves[name])
        baseline_line = figure.find_element(By.CSS_SELECTOR, 'g[data-series="service"][data-run="baseline"] path')
        assert baseline_line.size["width"] > 300  # the first run's curve drawn across too
        assert figure.find_elements(By.CSS_SELECTOR, 'g[data-series="corrected"]') == []  # closed model
    section = browser.find_element(By.CSS_SELECTOR, "#percentiles + .charts")
    browser.execute_script("arguments[0].scrollIntoView()", section)
    section.screenshot(str(SHOTS / "percentile-charts.png"))

    browser.get((reports / "history.html").as_uri())
    assert "Run history of smoke" in browser.find_element(By.TAG_NAME, "h1").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure.chart")) == 3
    screenshot(browser, SHOTS / "history.png")
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")
def test_open_model_percentile_chart_draws_service_corrected_and_baseline_in_chromium(tmp_path, browser):
    from selenium.webdriver.common.by import By

    from reporting import html_report

    current = with_curves(fake_summary(), scale=1.3, corrected=True)
    page = tmp_path / "rate-summary.html"
    page.write_text(html_report.render(current, with_curves(fake_summary())), encoding="utf-8")
    browser.get(page.as_uri())
    for name in ("POST /payments", "total"):
        figure = browser.find_element(By.CSS_SELECTOR, f'figure[data-percentiles="{name}"]')
        assert rendered_x_follows_1_over_1_minus_p(figure, current["percentile_curves"]["service"][name])
        for kind, run_ in (("service", "current"), ("service", "baseline"), ("corrected", "current")):
            line = figure.find_element(By.CSS_SELECTOR, f'g[data-series="{kind}"][data-run="{run_}"] path')
            assert line.size["width"] > 300 and line.is_displayed(), (name, kind, run_)
        legend = figure.find_element(By.CSS_SELECTOR, ".legend").text
        assert "corrected (open model)" in legend and "service, baseline" in legend and "max " in legend
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []


PROBE = """
const [fig, kind] = arguments;
const dots = fig.querySelectorAll(`g[data-series="${kind}"][data-run="current"] circle`);
const a = dots[1].getBoundingClientRect(), b = dots[2].getBoundingClientRect();
const x = (a.x + a.width / 2 + b.x + b.width / 2) / 2, y = (a.y + a.height / 2 + b.y + b.height / 2) / 2;
const seen = new Set();
for (let dy = -4; dy <= 4; dy += 0.25) {
  const g = document.elementFromPoint(x, y + dy)?.closest("g[data-series]");
  if (g) seen.add(g.dataset.series);
}
return [...seen].sort();
"""


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")
def test_coinciding_p95_and_p99_lines_both_show_in_chromium(tmp_path, browser):
    from selenium.webdriver.common.by import By

    from reporting import html_report

    summary = fake_summary()
    endpoint = summary["timeline"]["endpoints"]["POST /payments"]
    endpoint["p95"] = endpoint["p99"] = [30.0] * 5  # a few requests: p95 is p99
    page = tmp_path / "demo-summary.html"
    page.write_text(html_report.render(summary), encoding="utf-8")
    browser.get(page.as_uri())
    figure = browser.find_element(By.CSS_SELECTOR, 'figure[data-endpoint="POST /payments"]')
    # across the p95/p99 line, half-way between two points, the topmost painted line is each in turn
    assert browser.execute_script(PROBE, figure, "p95") == ["p95", "p99"]
