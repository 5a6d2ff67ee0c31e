"""The verdict: why a run failed, of which kind, and the exit status that says so.

Every reason to fail a run has a kind, and each kind an exit status, so a pipeline can tell a slow
release from one that loses money:

====  ===========================================================================================
 0    pass
 1    a threshold breached, unexpected failures, a regression (with ``--fail-on-regression``)
 2    usage or configuration error (before any load: ``config error: ...``)
 3    target unreachable (pre-flight, before any load)
 4    money mismatch: the target lost or created money (reconciliation, race and idempotency checks)
 5    run integrity in doubt: the figures cannot be trusted (generator saturated, workers lost,
      arrivals dropped, the run interrupted, ...)
====  ===========================================================================================

When several hold, the most severe wins, in the order 4, 5, 1; the reasons are listed in that order
too (the page's banner, the verdict line on stderr, "Why it failed", the JSON's ``reasons``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

PASS = 0
THRESHOLD = 1
USAGE = 2
UNREACHABLE = 3
MONEY = 4
INTEGRITY = 5

# What each status means, for the verdict line and the docs.
MEANING = {
    PASS: "pass",
    THRESHOLD: "threshold breached",
    USAGE: "usage or configuration error",
    UNREACHABLE: "target unreachable",
    MONEY: "money mismatch",
    INTEGRITY: "run integrity in doubt",
}
# The most severe first: a run that lost money says so before anything else.
SEVERITY = (MONEY, INTEGRITY, THRESHOLD)


class Kind(StrEnum):
    """The kind of a reason (the JSON's ``reason_kinds``)."""

    MONEY = "money"  # the money section's mismatches, race and idempotency violations
    INTEGRITY = "integrity"  # the measurement itself is in doubt
    THRESHOLD = "threshold"  # an SLO or a burst target breached
    FAILURES = "failures"  # unexpected request failures
    REGRESSION = "regression"  # worse than the baseline, with --fail-on-regression


EXIT_STATUS = {
    Kind.MONEY: MONEY,
    Kind.INTEGRITY: INTEGRITY,
    Kind.THRESHOLD: THRESHOLD,
    Kind.FAILURES: THRESHOLD,
    Kind.REGRESSION: THRESHOLD,
}

# Sections that return plain strings: a reason that opens with one of these is about the
# measurement, whatever the section's own kind ("integrity (open model): ... arrivals dropped", a
# burst cut short before all its payments were sent).
_INTEGRITY_OPENINGS = ("integrity", "burst incomplete")


@dataclass(frozen=True)
class Reason:
    """One reason to fail the run."""

    kind: Kind
    text: str

    def __str__(self) -> str:
        return self.text

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.kind]


def as_reason(item: Reason | str, default: Kind) -> Reason:
    """A section's reason as a :class:`Reason`: a plain string gets ``default`` unless its text
    says it is about the run's integrity."""
    if isinstance(item, Reason):
        return item
    text = str(item)
    return Reason(Kind.INTEGRITY if text.startswith(_INTEGRITY_OPENINGS) else default, text)


def ordered(reasons: Iterable[Reason]) -> list[Reason]:
    """Most severe first (4, 5, 1); the order within one status is kept."""
    return sorted(reasons, key=lambda r: SEVERITY.index(r.exit_status))


def exit_status(reasons: Iterable[Reason]) -> int:
    """The most severe status among ``reasons``; 0 when there are none."""
    statuses = {r.exit_status for r in reasons}
    return next((s for s in SEVERITY if s in statuses), PASS)


def settle(summary: dict[str, Any], reasons: Iterable[Reason | str] | None = None) -> None:
    """Write ``reasons`` (texts, most severe first), ``reason_kinds`` (the kind of each, same
    order), ``verdict`` and ``exit_code`` into the summary. Without ``reasons`` it re-reads the
    summary's own: a reason appended later without a kind (``baseline.apply``'s regressions) is a
    regression."""
    if reasons is None:
        kinds = summary.get("reason_kinds") or []
        texts = summary.get("reasons") or []
        reasons = [Reason(Kind(kinds[i]) if i < len(kinds) else Kind.REGRESSION, t) for i, t in enumerate(texts)]
    found = ordered(as_reason(r, Kind.THRESHOLD) for r in reasons)
    summary["reasons"] = [r.text for r in found]
    summary["reason_kinds"] = [str(r.kind) for r in found]
    summary["verdict"] = "fail" if found else "pass"
    summary["exit_code"] = exit_status(found)


def headline(summary: dict[str, Any], count: int = 3) -> str:
    """The verdict line printed at the end of a run: status, its meaning, the first reasons."""
    code = summary.get("exit_code", PASS)
    line = f"verdict: {str(summary.get('verdict', '?')).upper()}"
    if code:
        line += f" (exit {code}: {MEANING.get(code, 'unknown')})"
    if summary.get("reasons"):
        line += " - " + "; ".join(summary["reasons"][:count])
    return line


def labelled(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary's reasons as (kind label, text), in order; the label is empty where the text
    already opens with its kind ("money: ...", "integrity: ...", "threshold breached: ...")."""
    kinds = summary.get("reason_kinds") or []
    out = []
    for i, text in enumerate(summary.get("reasons") or []):
        kind = kinds[i] if i < len(kinds) else ""
        out.append(("" if text.startswith(kind) else kind, text))
    return out


# --- figures in reasons: the metric's own unit ---------------------------------------------------


def unit_of(metric: str) -> str:
    """The unit a metric prints in: ms, req/s or % (error rates are fractions in the JSON)."""
    if metric.endswith("_ms"):
        return "ms"
    if metric.endswith("rps"):
        return "req/s"
    if metric.endswith("error_rate"):
        return "%"
    return ""


def format_value(metric: str, value: float | None) -> str:
    """A limit or actual as printed: ``412.5 ms``, ``98.2 req/s``, ``0.25 %`` (a fraction x 100)."""
    if value is None:
        return "n/a"
    unit = unit_of(metric)
    if unit == "%":
        return f"{value * 100:.2f} %"
    return f"{value:g} {unit}".rstrip()
