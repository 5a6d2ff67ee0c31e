"""Latency by percentile, HdrHistogram style: one chart per money-moving endpoint and one for all
requests, on the run's page (``<profile>-summary.html``).

x is the percentile on a 1/(1-p) scale: the distance from 0 % to 90 % equals the distance from 90 %
to 99 %, from 99 % to 99.9 % and from 99.9 % to 99.99 %, so the tail gets as much room as the body
(x position = log10(1 / (1 - p)); 0 at 0 %, 4 at 99.99 %). The max (the curve's 100 % point) has no
place on that axis: it is drawn in a column of its own, labelled "max", and named in the legend.

y is ms: on a log scale when the chart's figures span more than a factor of ten (a trimodal
service's 23 ms body and 2.5 s tail both readable), else linear from 0. The axis says which.

Curves come from the summary: ``percentile_curves["service"]`` (whole run, service latency) and,
in open-model runs, ``open_model["corrected_curves"]`` (coordinated-omission corrected) drawn
beside it; the baseline run's curves of the same kinds are overlaid dashed. Every plotted line
carries its values (``data-x`` in percent, ``data-y`` in ms), as the other charts do. Standard
library only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from reporting.html_report import DASH, _nice_step, _num

W, H = 720, 250
ML, MR, MT, MB = 56, 16, 24, 44
PW, PH = W - ML - MR, H - MT - MB
TICKS = (0.0, 50.0, 90.0, 99.0, 99.9, 99.99)  # percent
LAST = 99.99  # the last percentile on the 1/(1-p) axis; 100 % is the max, drawn apart
MAX_POS = 4.45  # the max column, right of 99.99 % (position 4)
X_END = 4.7
LOG_SPAN = 10.0  # the figures span more than this factor: log y
KINDS = {  # curve kind: (label, colour)
    "service": ("service", "#4c78a8"),
    "corrected": ("corrected (open model)", "#d62728"),
}


def position(percent: float) -> float:
    """Where a percentile sits on the 1/(1-p) axis: log10(1 / (1 - p)), 0 at 0 %, 4 at 99.99 %."""
    return math.log10(100.0 / (100.0 - min(percent, LAST)))


@dataclass
class Curve:
    kind: str  # service, corrected
    run: str  # current, baseline
    points: list[tuple[float, float]]  # (percent, ms), below 100 %
    max_ms: float | None

    @property
    def label(self) -> str:
        text = KINDS[self.kind][0] + (", baseline" if self.run == "baseline" else "")
        return text + (f" (max {_num(self.max_ms)} ms)" if self.max_ms is not None else "")


def _curve(kind: str, run: str, raw: Sequence[Sequence[float]] | None) -> Curve | None:
    if not raw:
        return None
    points = [(float(p), float(ms)) for p, ms in raw if float(p) < 100.0]
    top = [float(ms) for p, ms in raw if float(p) >= 100.0]
    if not points:
        return None
    return Curve(kind, run, points, top[-1] if top else None)


def curves_of(summary: dict | None) -> dict[str, dict]:
    """{kind: {endpoint or "total": [[percent, ms], ...]}} of a summary (empty kinds left out)."""
    if not summary:
        return {}
    out = {"service": (summary.get("percentile_curves") or {}).get("service") or {}}
    out["corrected"] = (summary.get("open_model") or {}).get("corrected_curves") or {}
    return {kind: curves for kind, curves in out.items() if curves}


def charted_names(summary: dict) -> list[str]:
    """The money-moving endpoints the timeline names (else the POST endpoints) that have a curve."""
    service = (summary.get("percentile_curves") or {}).get("service") or {}
    tl = summary.get("timeline") or {}
    if "money_endpoints" in tl:
        names = list(tl["money_endpoints"])
    else:
        names = [r["name"] for r in summary.get("endpoints", []) if r.get("method") == "POST"]
    return [n for n in dict.fromkeys(names) if service.get(n)]


def _y_scale(values: list[float]) -> tuple[bool, float, float, list[float]]:
    """(log?, y_low, y_high, ticks) for the chart's figures (ms)."""
    positive = [v for v in values if v > 0]
    hi = max(values, default=1.0) or 1.0
    lo = min(positive, default=hi)
    if hi / lo <= LOG_SPAN:
        step = _nice_step(hi * 1.08 / 4)
        top = step * math.ceil(hi * 1.08 / step)
        return False, 0.0, top, [i * step for i in range(int(round(top / step)) + 1)]
    decade = math.floor(math.log10(lo))
    low = max(m * 10.0**decade for m in (1, 2, 5) if m * 10.0**decade <= lo)
    decade_hi = math.floor(math.log10(hi))
    high = min(m * 10.0**d for d in (decade_hi, decade_hi + 1) for m in (1, 2, 5) if m * 10.0**d >= hi)
    marks = (1, 2, 5) if math.log10(high / low) <= 3 else (1,)
    ticks = [m * 10.0**d for d in range(decade, decade_hi + 2) for m in marks]
    ticks = [t for t in ticks if low * 0.999 <= t <= high * 1.001]
    return True, low, high, sorted({low, *ticks, high})


def chart_svg(title: str, curves: list[Curve], chart_id: str, name: str) -> str:
    """One percentile chart as an HTML figure with an inline SVG."""
    values = [ms for c in curves for _, ms in c.points] + [c.max_ms for c in curves if c.max_ms is not None]
    log_y, y_lo, y_hi, y_ticks = _y_scale(values)

    def px(percent: float) -> float:
        return round(ML + position(percent) / X_END * PW, 1)

    def py(ms: float) -> float:
        if log_y:
            frac = (math.log10(max(ms, y_lo)) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo))
        else:
            frac = min(ms, y_hi) / y_hi
        return round(MT + PH - frac * PH, 1)

    x_max = round(ML + MAX_POS / X_END * PW, 1)
    unit = "ms (log scale)" if log_y else "ms"
    out = [
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}" '
        f'data-y-scale="{"log" if log_y else "linear"}" '
        f'data-y-min="{_num(y_lo)}" data-y-max="{_num(y_hi)}" data-unit="ms">'
    ]
    for t in y_ticks:
        y = py(t)
        out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y}" y2="{y}" class="grid"/>')
        out.append(f'<text x="{ML - 6}" y="{y + 4}" class="ylab">{_num(t)}</text>')
    for p in TICKS:
        x = px(p)
        out.append(f'<line x1="{x}" x2="{x}" y1="{MT}" y2="{MT + PH + 4}" class="grid"/>')
        out.append(f'<text x="{x}" y="{MT + PH + 16}" class="xlab">{_num(p)} %</text>')
    out.append(f'<line x1="{x_max}" x2="{x_max}" y1="{MT}" y2="{MT + PH + 4}" class="axis" stroke-dasharray="2 2"/>')
    out.append(f'<text x="{x_max}" y="{MT + PH + 16}" class="xlab">max</text>')
    out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{MT + PH}" y2="{MT + PH}" class="axis"/>')
    out.append(f'<text x="{ML - 40}" y="{MT - 10}" text-anchor="start" class="unit">{escape(unit)}</text>')
    out.append(
        f'<text x="{ML + PW / 2}" y="{H - 6}" class="xlab unit">percentile (1/(1−p) scale: each step is ten times '
        "rarer)</text>"
    )
    for c in sorted(curves, key=lambda c: c.run != "baseline"):  # baselines underneath
        color = KINDS[c.kind][1]
        dashed = c.run == "baseline"
        d = " ".join(f"{'M' if i == 0 else 'L'}{px(p)} {py(ms)}" for i, (p, ms) in enumerate(c.points))
        style = ' stroke-dasharray="6 4" stroke-opacity="0.6"' if dashed else ""
        top = f' data-max="{_num(c.max_ms)}"' if c.max_ms is not None else ""
        out.append(
            f'<g class="series" data-series="{c.kind}" data-run="{c.run}" data-label="{escape(c.label)}" '
            f'data-x="{",".join(_num(p) for p, _ in c.points)}" data-y="{",".join(_num(ms) for _, ms in c.points)}"'
            f"{top}>"
            f'<path d="{d}" fill="none" stroke="{color}" stroke-width="{1.5 if dashed else 2}"{style}/>'
        )
        if not dashed:
            for p, ms in c.points:
                out.append(
                    f'<circle cx="{px(p)}" cy="{py(ms)}" r="2" fill="{color}"><title>{escape(KINDS[c.kind][0])} '
                    f"p{_num(p)}: {_num(ms)} ms</title></circle>"
                )
        if c.max_ms is not None:
            y = py(c.max_ms)
            out.append(
                f'<line class="max" x1="{x_max - 7}" x2="{x_max + 7}" y1="{y}" y2="{y}" stroke="{color}" '
                f'stroke-width="2.5"{style}><title>{escape(c.label)}</title></line>'
            )
        out.append("</g>")
    out.append("</svg>")
    legend = "".join(
        f'<span class="key"><svg width="22" height="8"><line x1="0" x2="22" y1="4" y2="4" stroke="{KINDS[c.kind][1]}" '
        f'stroke-width="2"{DASH if c.run == "baseline" else ""}/></svg>{escape(c.label)}</span>'
        for c in curves
    )
    return (
        f'<figure class="chart" id="{escape(chart_id)}" data-kind="percentiles" data-percentiles="{escape(name)}">'
        f'<figcaption>{escape(title)}</figcaption>{"".join(out)}<div class="legend">{legend}</div></figure>'
    )


def chart_curves(name: str, current: dict[str, dict], base: dict[str, dict]) -> list[Curve]:
    """The curves of one chart: each kind of the current run, then the baseline's of the same kind
    (the overlay, written once for every kind)."""
    out = []
    for kind in KINDS:
        for run, curves in (("current", current), ("baseline", base)):
            c = _curve(kind, run, (curves.get(kind) or {}).get(name)) if kind in current else None
            if c is not None:
                out.append(c)
    return out


def section_html(summary: dict, baseline: dict | None = None) -> str:
    """The page's "Latency by percentile" part: a chart per money-moving endpoint and the total."""
    current, base = curves_of(summary), curves_of(baseline)
    head = '<h3 id="percentiles">Latency by percentile (whole run)</h3>'
    if "service" not in current:
        return head + '<p class="note">No percentile curves in this summary (written by runs since issue 21).</p>'
    names = charted_names(summary)
    parts = [
        chart_svg(f"{n}: latency by percentile", chart_curves(n, current, base), f"percentiles-{i}", n)
        for i, n in enumerate(names)
    ]
    parts.append(
        chart_svg(
            "All requests: latency by percentile", chart_curves("total", current, base), "percentiles-total", "total"
        )
    )
    notes = [
        "Each curve is the run's latency record (0.1 % relative accuracy, nearest rank): at x, the response "
        "time that x % of requests did not exceed. A run of fewer than 10,000 requests reaches its max "
        "before 99.99 %."
    ]
    if "corrected" in current:
        notes.append("Corrected: from when each request was due (coordinated omission corrected), beside service.")
    if baseline is not None:
        when = escape(str(baseline.get("ended_at", "?")))
        notes.append(
            f"Dashed: the baseline run of {when}."
            if base.get("service")
            else f"The baseline run of {when} has no percentile curves to overlay."
        )
    return head + f'<div class="charts">{"".join(parts)}</div>' + f'<p class="note">{" ".join(notes)}</p>'
