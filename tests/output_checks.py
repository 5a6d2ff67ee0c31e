"""Checks of the progress line's formatting and the end table (reporting/progress.py), run by
tests/test_output.py in a subprocess each: Locust must monkey-patch before anything imports ssl,
and the test session has already imported it."""

from __future__ import annotations

import re

from locust.stats import RequestStats  # noqa: I001 - first: Locust patches the standard library on import

from reporting.progress import Figures, clock, money_text, plain_line, table_lines


def check_table_folds_the_quietest_names():

    stats = RequestStats()
    for i in range(30):  # 30 names; name i gets i + 1 requests of (i + 1) ms, one failure each from the 10th
        for _ in range(i + 1):
            stats.log_request("GET", f"/n{i:02d}", i + 1, 10)
        if i >= 9:
            stats.log_error("GET", f"/n{i:02d}", "boom")
    full = table_lines(stats, None)
    assert len(full) == 2 + 30 + 2  # Locust's own table: header, rows, separator, total
    folded = table_lines(stats, 20, "reports/smoke")
    assert len(folded) == 2 + 20 + 2
    assert folded[:2] == full[:2] and folded[-2:] == full[-2:]  # same header, same total row
    row = next(line for line in folded if "more names" in line)
    assert "11 more names" in row and "reports/smoke_stats.csv" in row
    # the 11 quietest names (/n00../n10: 1..11 requests, one failure on /n09 and /n10) in one row
    reqs, fails = (int(x) for x in re.search(r"\s(\d+)\s+(\d+)\(", row).groups())
    assert (reqs, fails) == (sum(range(1, 12)), 2)
    kept = [line for line in folded[2:-2] if "/n" in line]
    assert len(kept) == 19 and all(f"/n{i:02d}" in "".join(kept) for i in range(11, 30))
    assert table_lines(stats, 40) == full  # under the cap: Locust's table as it is


def check_plain_line_and_money_figures():
    f = Figures(12.4, 30.0, f"{clock(12.4)}/{clock(30)}", "5 users", 14.25, 52.3, 200, 3, "payments 9 ok")
    assert plain_line(f) == (
        "progress 0:12/0:30 (41 %) | 5 users | 14.2 req/s | p95 52.3 ms | 3 failures (1.5 %) | payments 9 ok"
    )
    burst = Figures(412, 1000, "412/1000 payments", "100 in flight", 90.0, None, 0, 0, "")
    assert plain_line(burst) == "progress 412/1000 payments (41 %) | 100 in flight | 90.0 req/s | p95 - | 0 failures"
    assert clock(3725) == "1:02:05"
    assert money_text({"payment:succeeded": 4, "payment:declined": 1, "payment:unknown": 2}) == (
        "payments 4 ok, 1 declined, 2 unknown"
    )
    assert money_text({"authorization:succeeded": 3}) == ""  # no payment yet: nothing to say
