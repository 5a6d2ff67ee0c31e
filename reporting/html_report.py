"""The run's page: ``<profile>-summary.html``, one self-contained file (no network, no script,
no external CSS or fonts) built from the summary JSON at the end of the run.

Verdict and why, thresholds, charts (p50/p95/p99 over time of the money-moving endpoints and of
any endpoint that breached a threshold, throughput, errors by category, users; the steady-state
window shaded, threshold limits drawn, the baseline run dashed), the change against the baseline,
endpoints, errors, money, run integrity and every other report section.

Charts are SVG written here: no dependency, nothing to load, and each plotted line carries its
values (``data-x``/``data-y``) so a test can check them against the JSON. Standard library only,
and imported only when the run ends: a run's start-up pays nothing for it.

    python -m reporting.html_report reports/smoke-summary.json [--baseline reports/baselines/smoke.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from reporting.verdict import MEANING, format_value, labelled

log = logging.getLogger("suite")

# The summary's own keys; any other key is a report section (reporting.sections).
CORE_KEYS = {
    "profile",
    "started_at",
    "ended_at",
    "duration_s",
    "target",
    "users",
    "workers",
    "totals",
    "endpoints",
    "steady_state",
    "errors_by_category",
    "errors",
    "thresholds",
    "integrity",
    "reasons",
    "verdict",
    "exit_code",
    "comparison",
    "commit",
}
PCT_COLORS = {"p50": "#4c78a8", "p95": "#f58518", "p99": "#d62728"}
# Wider lines are drawn first: where p95 equals p99 (few requests), each still shows around the next.
PCT_WIDTHS = {"p50": 1.4, "p95": 2.8, "p99": 4.4}
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#eeca3b", "#9d755d", "#bab0ac")
CATEGORY_COLORS = {
    "timeout": "#b279a2",
    "connection": "#9d755d",
    "2xx_unexpected": "#72b7b2",
    "3xx_unexpected": "#54a24b",
    "4xx_unexpected": "#f58518",
    "5xx": "#d62728",
    "bad_body": "#eeca3b",
    "wrong_error": "#4c78a8",
    "fraud_rejected": "#b279a2",
    "other": "#7f7f7f",
}
ROW_KEYS = ("requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms", "max_ms")
LIMIT_METRICS = {"p50_ms": "p50", "p95_ms": "p95", "p99_ms": "p99", "max_ms": "max"}
TOTAL = "All requests"
# The money-moving endpoints: charted always (with any endpoint that breached a threshold).
MONEY_ENDPOINTS = (
    "POST /payments",
    "POST /pay",
    "POST /payments/[id]/refunds",
    "POST /v1/authorizations",
    "POST /v1/authorizations/[id]/capture",
    "POST /v1/refunds",
)
DASH = ' stroke-dasharray="5 3"'


def bank_text(target: dict) -> str:
    """``bank <url>``, or what the API has instead (stdlib only: the summary's own words)."""
    dialect = f"API_DIALECT={target['dialect']}, " if target.get("dialect", "contract") != "contract" else ""
    return dialect + (f"bank {target['banking_api']}" if target.get("banking_api", "?") else "no BankingAPI")


# -- SVG charts ---------------------------------------------------------------------------------

W, H = 720, 230
ML, MR, MT, MB = 56, 16, 24, 30


@dataclass
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    color: str
    kind: str = ""  # data-series: p50, p95, rps, users, a category, an endpoint ...
    run: str = "current"  # or "baseline"
    dashed: bool = False
    markers: Sequence[bool] | None = None  # points drawn as a red ring (history: failed runs)
    width: float = 1.8  # stroke width (px)


@dataclass
class Limit:
    value: float
    label: str
    color: str
    metric: str


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * exp:
            return m * exp
    return 10 * exp


def _num(v: float) -> str:
    """Compact number for attributes and labels (no float noise)."""
    if v is None:
        return ""
    r = round(float(v), 3)
    return str(int(r)) if r == int(r) else f"{r:g}"


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}h{(s % 3600) // 60:02d}"


def _x_ticks(x_max: float) -> list[tuple[float, str]]:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400):
        if x_max / step <= 8:
            break
    return [(i * step, fmt_seconds(i * step)) for i in range(int(x_max // step) + 1)]


def chart(
    title: str,
    series: list[Series],
    *,
    x_max: float,
    unit: str,
    chart_id: str,
    x_min: float = 0.0,
    shade: tuple[float, float] | None = None,
    shade_label: str = "steady state",
    limits: Iterable[Limit] = (),
    x_ticks: list[tuple[float, str]] | None = None,
    bands: Iterable[tuple[float, float]] = (),
    note: str = "",
    attrs: dict[str, str] | None = None,
) -> str:
    """One line chart as an HTML figure with an inline SVG; y from 0, x from 0 to ``x_max``."""
    x_max = max(float(x_max), x_min + 1e-9)
    values = [y for s in series for y in s.ys if y is not None]
    data_max = max(values, default=0.0)
    drawn, off_scale = [], []
    for lim in limits:
        (drawn if data_max == 0 or lim.value <= data_max * 3 else off_scale).append(lim)
    top = max([data_max, *(lim.value for lim in drawn)]) or 1.0
    step = _nice_step(top * 1.08 / 4)
    y_max = step * math.ceil(top * 1.08 / step)
    pw, ph = W - ML - MR, H - MT - MB

    def px(x: float) -> float:
        return round(ML + (min(max(x, x_min), x_max) - x_min) / (x_max - x_min) * pw, 1)

    def py(y: float) -> float:
        return round(MT + ph - min(y, y_max) / y_max * ph, 1)

    out = [
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}" '
        f'data-x-max="{_num(x_max)}" data-y-max="{_num(y_max)}" data-unit="{escape(unit)}">'
    ]
    for x0, x1 in bands:
        out.append(
            f'<rect class="band" x="{px(x0)}" y="{MT}" width="{max(px(x1) - px(x0), 2)}" height="{ph}" fill="#d62728" '
            'fill-opacity="0.10"/>'
        )
    if shade and shade[1] > shade[0]:
        x0, x1 = px(shade[0]), px(shade[1])
        out.append(
            f'<rect class="steady" data-from="{_num(shade[0])}" data-to="{_num(shade[1])}" x="{x0}" y="{MT}" '
            f'width="{round(x1 - x0, 1)}" height="{ph}" fill="#54a24b" fill-opacity="0.09"/>'
            f'<text x="{x0 + 4}" y="{MT + 11}" class="shade-label">{escape(shade_label)}</text>'
        )
    i = 0
    while i * step <= y_max + 1e-9:  # grid and y labels
        y = py(i * step)
        out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y}" y2="{y}" class="grid"/>')
        out.append(f'<text x="{ML - 6}" y="{y + 4}" class="ylab">{_num(i * step)}</text>')
        i += 1
    for x, label in x_ticks if x_ticks is not None else _x_ticks(x_max):
        out.append(f'<line x1="{px(x)}" x2="{px(x)}" y1="{MT + ph}" y2="{MT + ph + 4}" class="axis"/>')
        out.append(f'<text x="{px(x)}" y="{H - MB + 17}" class="xlab">{escape(label)}</text>')
    out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{MT + ph}" y2="{MT + ph}" class="axis"/>')
    out.append(f'<text x="{ML - 6}" y="{MT - 10}" class="ylab unit">{escape(unit)}</text>')
    for lim in drawn:
        y = py(lim.value)
        out.append(
            f'<line class="limit" data-metric="{escape(lim.metric)}" data-limit="{_num(lim.value)}" x1="{ML}" '
            f'x2="{W - MR}" y1="{y}" y2="{y}" stroke="{lim.color}" stroke-width="1.5" stroke-dasharray="1.5 2.5"/>'
            f'<text x="{W - MR - 4}" y="{y - 4}" class="limit-label" fill="{lim.color}">{escape(lim.label)}</text>'
        )
    for s in sorted(series, key=lambda s: (s.run != "baseline", -s.width)):  # baselines, then wider lines, underneath
        out.append(_path(s, px, py, len(s.xs) <= 60))
    if off_scale:
        text = "; ".join(f"{lim.label} (above the chart)" for lim in off_scale)
        out.append(f'<text x="{W - MR - 4}" y="{MT + 11}" class="limit-label off">{escape(text)}</text>')
    out.append("</svg>")
    legend = "".join(
        f'<span class="key"><svg width="22" height="8"><line x1="0" x2="22" y1="4" y2="4" stroke="{s.color}" '
        f'stroke-width="{_num(s.width)}"{DASH if s.dashed else ""}/></svg>{escape(s.label)}</span>'
        for s in series
    )
    if shade and shade[1] > shade[0]:
        legend += f'<span class="key"><span class="swatch steady-swatch"></span>{escape(shade_label)}</span>'
    extra = "".join(f' {k}="{escape(v)}"' for k, v in (attrs or {}).items())
    return (
        f'<figure class="chart" id="{escape(chart_id)}"{extra}><figcaption>{escape(title)}</figcaption>'
        + "".join(out)
        + f'<div class="legend">{legend}</div>'
        + (f'<p class="note">{escape(note)}</p>' if note else "")
        + "</figure>"
    )


def _path(s: Series, px, py, dots: bool) -> str:
    points = [(x, y, i) for i, (x, y) in enumerate(zip(s.xs, s.ys, strict=False)) if y is not None]
    d, prev = [], None
    for x, y, i in points:
        d.append(f"{'L' if prev is not None and prev == i - 1 else 'M'}{px(x)} {py(y)}")
        prev = i
    dash = ' stroke-dasharray="6 4"' if s.dashed else ""
    opacity = ' stroke-opacity="0.6"' if s.run == "baseline" else ""
    parts = [
        f'<g class="series" data-series="{escape(s.kind or s.label)}" data-run="{s.run}" '
        f'data-label="{escape(s.label)}" data-x="{",".join(_num(x) for x, _, _ in points)}" '
        f'data-y="{",".join(_num(y) for _, y, _ in points)}">'
    ]
    if d:
        parts.append(
            f'<path d="{" ".join(d)}" fill="none" stroke="{s.color}" stroke-width="{_num(s.width)}"{dash}{opacity}/>'
        )
    present = {i for _, _, i in points}
    for x, y, i in points:
        marked = s.markers is not None and i < len(s.markers) and s.markers[i]
        isolated = i - 1 not in present and i + 1 not in present  # a lone point draws no line
        if marked:
            parts.append(
                f'<circle cx="{px(x)}" cy="{py(y)}" r="4.5" fill="none" stroke="#d62728" stroke-width="2">'
                f"<title>{escape(s.label)}: {_num(y)} (failed run)</title></circle>"
            )
        elif (dots and s.run == "current") or isolated:
            where = _num(x) if s.markers is not None else fmt_seconds(x)
            parts.append(
                f'<circle cx="{px(x)}" cy="{py(y)}" r="2" fill="{s.color}">'
                f"<title>{escape(s.label)} at {where}: {_num(y)}</title></circle>"
            )
    parts.append("</g>")
    return "".join(parts)


# -- page pieces --------------------------------------------------------------------------------


def _fmt(value: Any, metric: str = "") -> str:
    if value is None:
        return "–"
    if metric == "error_rate":
        return f"{value:.2%}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    """Rows are already-escaped HTML cells; a header starting with '>' is right-aligned."""
    head = "".join(f"<th{' class=num' if h.startswith('>') else ''}>{escape(h.lstrip('>'))}</th>" for h in headers)
    aligns = [h.startswith(">") for h in headers]
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if a else ''}>{c}</td>" for a, c in zip(aligns, r, strict=False)) + "</tr>"
        for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_MD_INLINE = [
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
]


def _md_inline(text: str) -> str:
    text = escape(text)
    for pattern, repl in _MD_INLINE:
        text = pattern.sub(repl, text)
    return text


def markdown_to_html(lines: list[str]) -> str:
    """The Markdown the sections write (### headings, bullets, tables, **bold**, `code`)."""
    out: list[str] = []
    table: list[list[str]] = []
    bullets: list[str] = []

    def flush() -> None:
        if bullets:
            out.append("<ul>" + "".join(f"<li>{b}</li>" for b in bullets) + "</ul>")
            bullets.clear()
        if table:
            rows = [r for r in table if not all(re.fullmatch(r":?-+:?", c.strip()) for c in r)]
            head, *body = rows or [[]]
            out.append(
                "<table><thead><tr>"
                + "".join(f"<th>{_md_inline(c.strip())}</th>" for c in head)
                + "</tr></thead><tbody>"
                + "".join("<tr>" + "".join(f"<td>{_md_inline(c.strip())}</td>" for c in r) + "</tr>" for r in body)
                + "</tbody></table>"
            )
            table.clear()

    for line in lines:
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|"):
            if bullets:
                flush()
            table.append(stripped[1:-1].split("|"))
            continue
        if stripped.startswith(("- ", "* ")):
            if table:
                flush()
            bullets.append(_md_inline(stripped[2:]))
            continue
        flush()
        if stripped.startswith("#"):
            level = min(len(stripped) - len(stripped.lstrip("#")) + 0, 4)
            out.append(f"<h{max(level, 3)}>{_md_inline(stripped.lstrip('#').strip())}</h{max(level, 3)}>")
        elif stripped:
            out.append(f"<p>{_md_inline(stripped)}</p>")
    flush()
    return "\n".join(out)


def _change(base: float | None, cur: float | None, metric: str, tolerance: float) -> tuple[str, str]:
    """(HTML cell, css class) for one figure against the baseline, e.g. '+42 % (12.0 → 17.0)'."""
    if base is None or cur is None:
        return "–", ""
    worse_if_up = metric != "rps"
    if metric == "error_rate":
        diff = (cur - base) * 100
        text = f"{diff:+.2f} pt ({base:.2%} → {cur:.2%})"
        worse, better = diff > 1.0, diff < -1.0
        size = diff / 100
    else:
        rel = (cur - base) / base if base else (0.0 if cur == base else math.inf)
        pct = "new" if math.isinf(rel) else f"{rel * 100:+.0f} %"
        text = f"{pct} ({_num(base)} → {_num(cur)})"
        up = cur > base
        beyond = abs(rel) > tolerance and (metric == "rps" or abs(cur - base) > 5)
        worse = beyond and (up == worse_if_up)
        better = beyond and (up != worse_if_up)
        size = rel
    cls = "worse" if worse else ("better" if better else ("up" if size > 0 else "down" if size < 0 else ""))
    arrow = "▲" if size > 0 else ("▼" if size < 0 else "=")
    return f"{arrow} {escape(text)}", cls


def regression_table(summary: dict, baseline: dict, tolerance: float) -> str:
    base_rows = {r["name"]: r for r in baseline.get("steady_state", {}).get("endpoints", [])}
    rows = []
    base_total = baseline.get("steady_state", {}).get("totals") or {}
    cur_total = summary.get("steady_state", {}).get("totals") or {}
    pairs = [(TOTAL, cur_total, base_total)] + [
        (r["name"], r, base_rows[r["name"]])
        for r in summary.get("steady_state", {}).get("endpoints", [])
        if r["name"] in base_rows and r.get("requests") and base_rows[r["name"]].get("requests")
    ]
    for name, cur, base in pairs:
        cells = [escape(name)]
        for metric in ("p50_ms", "p95_ms", "p99_ms", "rps", "error_rate"):
            text, cls = _change(base.get(metric), cur.get(metric), metric, tolerance)
            cells.append(f'<span class="{cls}">{text}</span>')
        rows.append(cells)
    return _table(["endpoint", ">p50 ms", ">p95 ms", ">p99 ms", ">RPS", ">error rate"], rows, "changes")


# -- the timeline as chart series ----------------------------------------------------------------


def _mid(tl: dict) -> list[float]:
    return [round(t + s / 2, 2) for t, s in zip(tl.get("t", []), tl.get("span", []), strict=False)]


def _clip(xs: list[float], ys: list, x_max: float) -> tuple[list[float], list]:
    keep = [i for i, x in enumerate(xs) if x <= x_max + 1e-9]
    return [xs[i] for i in keep], [ys[i] for i in keep]


def _per_second(counts: list[int], spans: list[float]) -> list[float]:
    return [round(c / max(s, 1.0), 3) for c, s in zip(counts, spans, strict=False)]


def _complete(tl: dict, ys: list) -> tuple[list[float], list]:
    """A rate over the buckets of full width only: the run starts and stops inside its first and
    last buckets, whose rates would dip for no reason of the target's (short runs keep them all)."""
    xs, spans, width = _mid(tl), tl.get("span", []), float(tl.get("bucket_s") or 0)
    ends = (0, len(spans) - 1)
    keep = [i for i, s in enumerate(spans) if i not in ends or s >= width - 1e-6] or list(range(len(xs)))
    return [xs[i] for i in keep], [ys[i] for i in keep]


def _latency_series(tl: dict, base_tl: dict | None, name: str, x_max: float) -> list[Series]:
    cur = tl["total"] if name == TOTAL else tl["endpoints"].get(name) or {}
    series = []
    xs = _mid(tl)
    for label in ("p50", "p95", "p99"):
        series.append(Series(label, xs, cur.get(label, []), PCT_COLORS[label], kind=label, width=PCT_WIDTHS[label]))
    if base_tl:
        base = base_tl.get("total") if name == TOTAL else (base_tl.get("endpoints") or {}).get(name)
        if base:
            for label in ("p50", "p95", "p99"):
                bx, by = _clip(_mid(base_tl), base.get(label, []), x_max)
                width = round(PCT_WIDTHS[label] * 0.6, 1)
                series.append(
                    Series(f"{label} baseline", bx, by, PCT_COLORS[label], label, "baseline", True, width=width)
                )
    return series


def _limits(summary: dict, scope: str) -> list[Limit]:
    out = []
    for th in summary.get("thresholds", []):
        if th.get("scope") != scope or th.get("metric") not in LIMIT_METRICS:
            continue
        label = LIMIT_METRICS[th["metric"]]
        out.append(
            Limit(
                float(th["limit"]),
                f"{label} ≤ {_num(th['limit'])} ms",
                PCT_COLORS.get(label, "#555"),
                th["metric"],
            )
        )
    return out


def charted_endpoints(summary: dict, tl: dict) -> tuple[list[str], list[str]]:
    """(charted up front: money-moving endpoints then those that breached a threshold, the rest)."""
    names = [n for n in tl.get("endpoints", {}) if sum(tl["endpoints"][n].get("requests", [])) > 0]
    breached = [
        th["scope"]
        for th in summary.get("thresholds", [])
        if th.get("pass") is False and th.get("scope") not in ("global", None)
    ]
    first = [n for n in tl.get("money_endpoints", []) if n in names]
    first += [n for n in dict.fromkeys(breached) if n in names and n not in first]
    return first, [n for n in sorted(names) if n not in first]


def charts_html(summary: dict, baseline: dict | None) -> str:
    tl = summary.get("timeline")
    if not tl or not tl.get("t"):
        return (
            '<p class="note">No timeline in this summary (recorded only by runs with <code>--report-dir</code> '
            "whose locustfile imports <code>reporting.timeline</code>).</p>"
        )
    base_tl = (baseline or {}).get("timeline") if baseline else None
    x_max = max(float(tl.get("duration_s") or 0), max(_mid(tl), default=0), 1.0)
    steady = tl.get("steady") or {}
    shade = (steady["from_s"], steady["to_s"]) if steady else None
    spans = tl["span"]
    xs = _mid(tl)
    base_note = ""
    if base_tl:
        base_note = f"Dashed: the baseline run of {baseline.get('ended_at', '?')}, aligned by seconds since start."
        if float(base_tl.get("duration_s") or 0) > x_max + 1:
            base_note += f" It ran {fmt_seconds(base_tl['duration_s'])}; shown up to this run's length."

    def latency(name: str, idx: int) -> str:
        scope = "global" if name == TOTAL else name
        failed = any(th.get("scope") == scope and th.get("pass") is False for th in summary.get("thresholds", []))
        title = f"{name}: response time p50 / p95 / p99" + (" (threshold breached)" if failed else "")
        row = tl["total"] if name == TOTAL else tl["endpoints"].get(name) or {}
        if (row.get("points_s") or 0) > tl.get("bucket_s", 0):  # a sparse endpoint: wider points
            title += f" (each point over {fmt_seconds(row['points_s'])})"
        return chart(
            title,
            _latency_series(tl, base_tl, name, x_max),
            x_max=x_max,
            unit="ms",
            chart_id=f"latency-{idx}",
            shade=shade,
            limits=_limits(summary, scope),
            attrs={"data-endpoint": name, "data-kind": "latency"},
        )

    first, rest = charted_endpoints(summary, tl)
    parts = [latency(name, i) for i, name in enumerate(first)]
    parts.append(latency(TOTAL, len(first)))
    # throughput
    series = [
        Series("requests/s", *_complete(tl, tl["rps"]), "#4c78a8", kind="rps"),
        Series("failures/s", *_complete(tl, _per_second(tl["total"]["failures"], spans)), "#d62728", kind="failures"),
    ]
    if base_tl and base_tl.get("rps"):
        bx, by = _clip(*_complete(base_tl, base_tl["rps"]), x_max)
        series.append(Series("requests/s baseline", bx, by, "#4c78a8", kind="rps", run="baseline", dashed=True))
    min_rps = [
        Limit(float(th["limit"]), f"RPS ≥ {_num(th['limit'])}", "#4c78a8", "min_rps")
        for th in summary.get("thresholds", [])
        if th.get("scope") == "global" and th.get("metric") == "min_rps"
    ]
    parts.append(
        chart(
            "Throughput",
            series,
            x_max=x_max,
            unit="req/s",
            chart_id="throughput",
            shade=shade,
            limits=min_rps,
            attrs={"data-kind": "throughput"},
        )
    )
    # errors by category
    cats = tl.get("failures") or {}
    series = [
        Series(cat, *_complete(tl, _per_second(counts, spans)), CATEGORY_COLORS.get(cat, "#7f7f7f"), kind=cat)
        for cat, counts in sorted(cats.items())
    ]
    if base_tl and base_tl.get("total"):
        base_fails = _per_second(base_tl["total"].get("failures", []), base_tl["span"])
        bx, by = _clip(*_complete(base_tl, base_fails), x_max)
        series.append(Series("all failures baseline", bx, by, "#7f7f7f", kind="failures", run="baseline", dashed=True))
    parts.append(
        chart(
            "Errors by category",
            series,
            x_max=x_max,
            unit="failures/s",
            chart_id="errors",
            shade=shade,
            note="" if cats else "No failures during the run.",
            attrs={"data-kind": "errors"},
        )
    )
    # users
    series = [Series("users", xs, tl["users"], "#54a24b", kind="users")]
    if base_tl and base_tl.get("users"):
        bx, by = _clip(_mid(base_tl), base_tl["users"], x_max)
        series.append(Series("users baseline", bx, by, "#54a24b", kind="users", run="baseline", dashed=True))
    parts.append(
        chart("Users", series, x_max=x_max, unit="users", chart_id="users", shade=shade, attrs={"data-kind": "users"})
    )
    html = f'<p class="note">{escape(base_note)}</p>' if base_note else ""
    html += f'<div class="charts">{"".join(parts)}</div>'
    html += (
        f'<p class="note">Buckets of {tl["bucket_s"]} s; each point is one bucket (at its middle), its '
        "percentiles from the run's latency record (0.1 % relative accuracy, nearest rank). Rates leave out the "
        "run's first and last buckets when they are partial (the run starts and stops inside them).</p>"
    )
    if rest:
        more = [latency(name, len(first) + 1 + i) for i, name in enumerate(rest)]
        html += (
            f"<details><summary>Other endpoints ({len(rest)})</summary>"
            f'<div class="charts">{"".join(more)}</div></details>'
        )
    return html


# -- the page -----------------------------------------------------------------------------------

CSS = """
:root{--ok:#1a7f37;--bad:#cf222e;--mut:#57606a;--line:#d0d7de}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
main{max-width:1500px;margin:0 auto;padding:16px 24px 40px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line);
padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
.verdict{padding:12px 16px;border-radius:6px;color:#fff;font-weight:600;font-size:18px}
.verdict.pass{background:var(--ok)}.verdict.fail{background:var(--bad)}
.meta{color:var(--mut);margin:6px 0 12px}
table{border-collapse:collapse;background:#fff;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eaeef2}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.fail-cell{color:var(--bad);font-weight:600}.pass-cell{color:var(--ok)}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:14px}
figure.chart{margin:0;background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px 10px}
figcaption{font-weight:600;margin-bottom:4px}
figure.chart>svg{width:100%;height:auto;display:block}
svg text{font:11px system-ui,sans-serif;fill:#57606a}
.ylab{text-anchor:end}.xlab{text-anchor:middle}.limit-label{text-anchor:end;font-weight:600}
.shade-label{fill:#2f7d32}.grid{stroke:#eaeef2}.axis{stroke:#8c959f}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:#57606a}
.key{display:inline-flex;align-items:center;gap:5px}
.swatch{display:inline-block;width:14px;height:10px}.steady-swatch{background:#54a24b;opacity:.25}
.note{color:var(--mut);font-size:12px;margin:4px 0}
.worse{color:var(--bad);font-weight:600}.better{color:var(--ok);font-weight:600}
pre{background:#fff;border:1px solid var(--line);padding:8px;overflow:auto;font-size:12px;max-height:420px}
details{margin:8px 0}summary{cursor:pointer;color:#0969da}
ul{margin:4px 0 10px}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        # Nothing may load from anywhere: the page is one file.
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">'
        '<link rel=icon href="data:,">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>{body}</main></body></html>\n"
    )


def _sections_html(summary: dict) -> str:
    try:
        from reporting import sections as registry  # stdlib only; empty when rebuilt offline
    except ImportError:  # pragma: no cover
        registry = None
    out = []
    for key, data in summary.items():
        if key in CORE_KEYS or key in ("timeline", "money") or data is None:
            continue
        section = registry.get(key) if registry else None
        lines = []
        if section is not None:
            try:
                lines = section.markdown(data)
            except Exception:  # a section's renderer must not cost the page
                log.exception("section %s: markdown failed", key)
        body = markdown_to_html(lines) if lines else f"<h3>{escape(key)}</h3>"
        out.append(body + _json_details(data))
    return "".join(out)


def _json_details(data: Any) -> str:
    text = json.dumps(data, indent=2, default=str)
    return f"<details><summary>JSON</summary><pre>{escape(text[:200_000])}</pre></details>"


def money_html(money: dict) -> str:
    ok = money.get("ok", True)
    head = "reconciled" if ok and money.get("enabled", True) else ("MISMATCH" if not ok else "not reconciled")
    out = [f'<h2 id="money">Money: <span class="{"pass-cell" if ok else "fail-cell"}">{escape(head)}</span></h2>']
    counts = money.get("counts") or (money.get("ledger") or {}).get("requests") or {}
    if counts:
        out.append(
            _table(
                ["what", ">count"],
                [[escape(k.replace("_", " ")), escape(_fmt(v))] for k, v in counts.items()],
            )
        )
    problems = money.get("problems") or []
    if problems:
        out.append("<ul>" + "".join(f'<li class="fail-cell">{escape(str(p))}</li>' for p in problems[:50]) + "</ul>")
    if money.get("note"):
        out.append(f'<p class="note">{escape(money["note"])}</p>')
    out.append(_json_details(money))
    return "".join(out)


def _exit_text(code: Any) -> str:
    """`` (exit 4: money mismatch)`` for a failing run's banner; empty for a pass."""
    return f" (exit {code}: {MEANING.get(code, 'unknown')})" if code else ""


TOTAL_COLUMNS = ("requests", "failures", "error_rate", "rps", "p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms")


def render(summary: dict, baseline: dict | None = None, commit: str | None = None) -> str:
    s = summary
    profile = s.get("profile", "?")
    verdict = s.get("verdict", "?")
    t = s.get("totals", {})
    target = s.get("target", {})
    commit = commit or s.get("commit")
    body = [
        f"<h1>Load test <code>{escape(profile)}</code></h1>",
        # the reasons come most severe first (reporting/verdict.py): the banner names the worst one
        f'<div class="verdict {escape(verdict)}" id="verdict">{"PASS" if verdict == "pass" else "FAIL"}'
        f"{_exit_text(s.get('exit_code'))}{' — ' + escape(s['reasons'][0]) if s.get('reasons') else ''}</div>",
        f'<p class="meta">{escape(str(s.get("started_at", "")))} → {escape(str(s.get("ended_at", "")))}, '
        f"{fmt_seconds(s.get('duration_s', 0))} against {escape(str(target.get('payment_service', '?')))} "
        f"({escape(bank_text(target))}), peak {escape(str(s.get('users', {}).get('peak', '?')))}"
        f" users{', commit ' + escape(commit[:12]) if commit else ''}.</p>",
    ]
    if s.get("reasons"):
        items = [(f"<b>{escape(kind)}</b>: " if kind else "") + escape(text) for kind, text in labelled(s)]
        body.append("<h3>Why it failed</h3><ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>")
    body.append(f'<h2 id="totals">Totals (whole run, {fmt_seconds(s.get("duration_s", 0))})</h2>')
    body.append(
        _table(
            [">requests", ">failures", ">error rate", ">RPS", ">p50 ms", ">p95 ms", ">p99 ms", ">p99.9 ms", ">max ms"],
            [[escape(_fmt(t.get(k), k)) for k in TOTAL_COLUMNS]],
            "totals",
        )
    )
    window = s.get("steady_state", {})
    body.append(f'<h2 id="thresholds">Thresholds (steady state, {window.get("window_s", 0):.0f} s window)</h2>')
    th_rows = []
    for th in s.get("thresholds", []):
        result = {True: '<span class="pass-cell">pass</span>', False: '<span class="fail-cell">FAIL</span>'}.get(
            th.get("pass"), "n/a"
        )
        th_rows.append(
            [escape(th.get("text", "")), escape(format_value(th.get("metric", ""), th.get("actual"))), result]
        )
    body.append(_table(["threshold", ">actual", "result"], th_rows, "thresholds") if th_rows else "<p>none</p>")
    body.append('<h2 id="charts">Charts</h2>')
    body.append(charts_html(s, baseline))
    from reporting.percentile_chart import section_html  # its own module; it imports this one

    body.append(section_html(s, baseline))
    comp = s.get("comparison")
    if baseline or comp:
        tolerance = (comp or {}).get("tolerance", 0.25)
        body.append(
            f'<h2 id="baseline">Against the last passing run ({escape(str((comp or {}).get("baseline_run") or "?"))})'
            "</h2>"
        )
        regs = (comp or {}).get("regressions") or []
        if regs:
            items = [
                f'<li class="worse">{escape(r["name"])} {escape(r["metric"])}: {escape(_fmt(r["baseline"]))} → '
                f"{escape(_fmt(r['current']))}</li>"
                for r in regs
            ]
            body.append(f"<p>{len(regs)} regression(s) flagged:</p><ul>{''.join(items[:8])}</ul>")
            if len(items) > 8:
                body.append(f"<details><summary>{len(items) - 8} more</summary><ul>{''.join(items[8:])}</ul></details>")
        elif comp:
            body.append(
                f"<p>No regression beyond {tolerance:.0%} on {comp.get('endpoints_compared', 0)} endpoints.</p>"
            )
        if baseline:
            body.append(regression_table(s, baseline, tolerance))
            body.append(
                f'<p class="note">Steady-state figures; red: worse by more than {tolerance:.0%} (and 5 ms), '
                "or error rate up by more than a point; green: better by as much.</p>"
            )
    body.append('<h2 id="endpoints">Endpoints (whole run)</h2>')
    body.append(
        _table(
            ["endpoint", ">requests", ">failures", ">RPS", ">p50", ">p95", ">p99", ">max"],
            [[escape(r["name"])] + [escape(_fmt(r.get(k))) for k in ROW_KEYS] for r in s.get("endpoints", [])],
            "endpoints",
        )
    )
    if window.get("endpoints"):
        body.append(
            f"<details><summary>Steady-state window ({window.get('window_s', 0):.0f} s)</summary>"
            + _table(
                ["endpoint", ">requests", ">failures", ">RPS", ">p50", ">p95", ">p99", ">max"],
                [[escape(r["name"])] + [escape(_fmt(r.get(k))) for k in ROW_KEYS] for r in window["endpoints"]],
            )
            + "</details>"
        )
    body.append('<h2 id="errors">Errors by category</h2>')
    cats = {k: v for k, v in (s.get("errors_by_category") or {}).items() if v}
    body.append(
        _table(["category", ">count"], [[escape(k), escape(str(v))] for k, v in cats.items()])
        if cats
        else "<p>none</p>"
    )
    if s.get("errors"):
        body.append(
            _table(
                ["endpoint", "category", "error", ">count"],
                [
                    [escape(e["name"]), escape(e.get("category", "")), escape(e["error"][:200]), str(e["occurrences"])]
                    for e in s["errors"][:30]
                ],
                "errors",
            )
        )
    if s.get("money"):
        body.append(money_html(s["money"]))
    integ = s.get("integrity", {})
    body.append('<h2 id="integrity">Run integrity</h2>')
    body.append(
        "<ul>"
        + (
            "".join(f'<li class="fail-cell">{escape(p)}</li>' for p in integ.get("problems", []))
            or "<li>ok: generator not saturated, all workers present</li>"
        )
        + "</ul>"
    )
    others = _sections_html(s)
    if others:
        body.append('<h2 id="sections">Other sections</h2>' + others)
    body.append(
        f'<p class="note">Written by the payment suite from {escape(profile)}-summary.json '
        "(rebuild: <code>python -m reporting.html_report</code>).</p>"
    )
    return _page(f"{profile}: {verdict.upper()} — load test summary", "\n".join(body))


def html_path(report_dir: Path, profile: str) -> Path:
    return Path(report_dir) / f"{profile}-summary.html"


def write(summary: dict, report_dir: Path, profile: str, baseline: dict | None = None, commit: str | None = None):
    path = html_path(report_dir, profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(summary, baseline, commit), encoding="utf-8")
    return path


def after_run(summary: dict, report_dir: Path, profile: str, baseline: dict | None) -> None:
    """At the end of a run (reporting.hooks): the page, then the history line. Neither may cost
    the run its verdict: a failure here is logged, never raised."""
    from reporting import history

    commit = history.git_commit()
    try:
        path = write(summary, report_dir, profile, baseline, commit)
        print(f"charts: {path}", file=sys.stderr, flush=True)
    except Exception:
        log.exception("the summary page was not written")
    try:
        history.append(summary, Path(report_dir), commit)
    except Exception:
        log.exception("the run was not added to the history")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reporting.html_report", description="Rebuild a run's summary page")
    p.add_argument("summary", help="<profile>-summary.json")
    p.add_argument("--baseline", default="", help="a baseline summary JSON to overlay (dashed)")
    p.add_argument("--out", default="", help="default: next to the summary")
    args = p.parse_args(argv)
    summary = json.loads(Path(args.summary).read_text())
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    out = Path(args.out) if args.out else Path(args.summary).with_suffix(".html")
    out.write_text(render(summary, baseline), encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
