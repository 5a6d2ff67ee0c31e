"""Checks of the verdict that import Locust (reporting.summary, the money section), run by
tests/test_verdict.py in a subprocess each: Locust must monkey-patch before anything imports ssl,
and the test session has already imported it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import locust.stats  # noqa: F401, I001 - first: Locust patches the standard library on import
from locust.stats import StatsError

from money.hooks import MoneySection
from reporting import sections
from reporting import summary as sm
from reporting.thresholds import Threshold
from reporting.verdict import Kind, Reason, as_reason, format_value, settle
from tests.test_html_report import fake_summary
from users.races import TAG, RaceViolation


class _Plain(sections.Section):
    def __init__(self, name: str, reasons: list, kind: Kind = Kind.THRESHOLD) -> None:
        self.name, self.given, self.reason_kind = name, reasons, kind

    def build(self, run):
        return {}

    def verdict(self, data):
        return self.given


def check_sections_reasons_carry_their_kind() -> None:
    sections._SECTIONS.clear()  # this process's registry: only the sections below (importing money.hooks added one)
    sections.register(_Plain("open_model", ["integrity (open model): 40 of 400 arrivals dropped (10.0%, over 1 %)"]))
    sections.register(_Plain("burst", ["burst incomplete: 120 of 200 payments sent", "burst target breached: x"]))
    sections.register(_Plain("ledgerish", ["money: 1 approval(s) came without a payment id"], Kind.MONEY))
    context = sections.RunContext(None, "p", Path(tempfile.gettempdir()), 0.0, 1.0, None, {})
    _built, reasons = sections.build_all(context)
    kinds = {r.text.split(":")[0]: r.kind for r in reasons}
    assert kinds == {
        "integrity (open model)": Kind.INTEGRITY,
        "burst incomplete": Kind.INTEGRITY,
        "burst target breached": Kind.THRESHOLD,
        "money": Kind.MONEY,
    }
    money = MoneySection().verdict(
        {"ok": False, "problems": ["payment p: refunds of 9 were accepted on a capture of 3"]}
    )
    assert [r.kind for r in money] == [Kind.MONEY]
    assert as_reason("anything else", Kind.THRESHOLD).kind is Kind.THRESHOLD


def _error(name: str, text: str, category: str, n: int) -> dict:
    return {"name": name, "method": "RACE", "error": text, "category": category, "occurrences": n}


def check_race_violations_are_money_not_other_and_figures_carry_units() -> None:
    stored = StatsError.parse_error(RaceViolation(f"{TAG} 2 full refunds of one payment succeeded"))
    assert sm.categorize(stored) == "money_race"
    assert sm.categorize("RaceViolation('something else')") == "other"
    errors = [
        _error("race: full refunds of one payment", stored, "money_race", 3),
        _error("POST /payments", "[5xx] got 500", "5xx", 4),
    ]
    rate = Threshold("global", "error_rate", 0.01)
    p50 = Threshold("global", "p50_ms", 100)
    rps = Threshold("global", "min_rps", 50)
    steady = {"requests": 1000, "error_rate": 0.232759, "p50_ms": 140.5, "rps": 42.25}
    results = sm.evaluate([rate, p50, rps], [], steady)
    reasons = sm.core_reasons(results, 7, {"money_race": 3, "5xx": 4}, errors, [])
    texts = [r.text for r in reasons]
    assert texts[:3] == [
        "threshold breached: global error_rate <= 1.00 % (actual 23.28 %, steady window)",
        "threshold breached: global p50 <= 100 ms (actual 140.5 ms, steady window)",
        "threshold breached: global min_rps >= 50 req/s (actual 42.25 req/s, steady window)",
    ]
    assert reasons[3] == Reason(
        Kind.MONEY,
        "money: 3 race or idempotency check(s) broke their invariant "
        "(race: full refunds of one payment: 2 full refunds of one payment succeeded)",
    )
    assert reasons[4] == Reason(Kind.FAILURES, "4 unexpected failure(s) besides the race checks")
    whole = sm.evaluate([rate], [], steady, sm.WHOLE_RUN)
    assert sm.breached_text(whole[0]).endswith("(actual 23.28 %, whole run)")
    assert format_value("max_error_rate", 0.0025) == "0.25 %" and format_value("max_ms", 1067.77) == "1067.77 ms"


def _settled(*reasons: Reason) -> dict:
    summary = fake_summary(failed=True)
    settle(summary, list(reasons))
    return summary


THRESHOLD = Reason(Kind.THRESHOLD, "threshold breached: global p50 <= 100 ms (actual 140 ms, steady window)")
INTEGRITY = Reason(Kind.INTEGRITY, "integrity: run ended after 8 s of the planned 60 s (interrupted or stopped early)")
MONEY = Reason(Kind.MONEY, "money: payment pay_1: refunds of 54600 were accepted on a capture of 5460")


def check_markdown_lists_the_reasons_most_severe_first() -> None:
    s = _settled(THRESHOLD, INTEGRITY, MONEY)
    md = sm.markdown(s)
    why = md.split("**Why it failed**")[1].split("###")[0]
    assert why.index("- money:") < why.index("- integrity:") < why.index("- threshold breached"), why
    s = _settled(Reason(Kind.FAILURES, "3 unexpected failure(s)"), Reason(Kind.INTEGRITY, "burst incomplete: 1 of 2"))
    why = sm.markdown(s).split("**Why it failed**")[1].split("###")[0]
    assert why.index("- **integrity**: burst incomplete") < why.index("- **failures**: 3 unexpected"), why
    assert "❌ FAIL (exit 4: money mismatch)" in md


def check_markdown_labels_each_window_and_prints_error_rates_in_percent() -> None:
    s = _settled(THRESHOLD)
    # 800 requests in the 17 s steady window, 2 of them failed
    s["steady_state"]["totals"] = {**s["totals"], "requests": 800, "rps": 47.059, "error_rate": 0.0025}
    s["burst"] = {"requests": 200, "failed": 0, "error_rate": 0.0, "rps": 298.47, "duration_s": 0.67}
    s["burst"].update({"p50_ms": 40.0, "p95_ms": 60.0, "p99_ms": 70.0, "max_ms": 80.0})
    md = sm.markdown(s)
    assert "| whole run | 20.0 | 201 | 2 | 1.00 % | 10.05 |" in md, md
    assert "| steady window | 17.0 | 800 | 2 | 0.25 % | 47.059 |" in md, md
    assert "| burst send window | 0.7 | 200 | 0 | 0.00 % | 298.47 |" in md, md
