"""A live "SLO" tab in the web UI: every threshold with its current value and pass/fail,
refreshed with the statistics (Locust's extended-tab hook on ``/stats/requests``)."""

from __future__ import annotations

import json

from flask import request
from locust import events

from reporting import summary as sm
from reporting.run import live_window, thresholds
from reporting.verdict import format_value

COLUMNS = [
    {"key": "threshold", "title": "Threshold"},
    {"key": "current", "title": "Current"},
    {"key": "result", "title": "Result"},
    {"key": "window", "title": "Window"},
]


def live_rows(environment) -> list[dict]:
    stats, window, label = live_window(environment)
    rows = sm.endpoint_table(stats, window)
    total = sm.entry_figures(stats.total, window)
    results = sm.evaluate(thresholds(), rows, total)
    out = []
    for r in results:
        current = "–" if r["actual"] is None else format_value(r["metric"], r["actual"])
        result = "no data" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL")
        out.append({"threshold": r["text"], "current": current, "result": result, "window": label})
    failing = sum(1 for r in results if r["pass"] is False)
    verdict = "no data yet" if all(r["pass"] is None for r in results) else ("FAIL" if failing else "PASS")
    out.insert(
        0,
        {
            "threshold": "overall verdict",
            "current": f"{failing} failing" if failing else "all met",
            "result": verdict,
            "window": label,
        },
    )
    return out


@events.init.add_listener
def add_slo_tab(environment, **_kwargs) -> None:
    web_ui = environment.web_ui
    if web_ui is None:
        return
    web_ui.template_args["extended_tabs"] = [{"title": "SLO", "key": "slo"}]
    web_ui.template_args["extended_tables"] = [{"key": "slo", "structure": COLUMNS}]

    @web_ui.app.after_request
    def attach_slo(response):
        if not request.path.endswith("/stats/requests") or response.status_code != 200:
            return response
        data = response.get_json(silent=True)
        if isinstance(data, dict):
            data["extended_stats"] = [{"key": "slo", "data": live_rows(environment)}]
            response.set_data(json.dumps(data))
        return response
