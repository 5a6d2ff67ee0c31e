"""The registry of run-end report sections.

A section is one part of the run's summary that some package owns: the money reconciliation,
the stress test's breaking point, connection retries, ... Each section says how it is built at
the end of a run, what it adds to the verdict, and how it renders in JSON and Markdown. Packages
register a section here and never write into reporting's (or each other's) state; reporting
builds the summary by asking every registered section.

Each reason a section gives to fail the run has a kind (``reporting.verdict``), which sets the
exit status: a section returns :class:`~reporting.verdict.Reason` objects, or plain strings that
take the section's ``reason_kind`` (a string opening with "integrity" is an integrity reason).

A section that gathers data on the workers of a distributed run returns it from
:meth:`Section.worker_report` (sent with each of the worker's stats reports) and folds what the
master receives in :meth:`Section.merge_worker_report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reporting.verdict import Kind, Reason, as_reason

REPORT_KEY = "suite_sections"


@dataclass
class RunContext:
    """What a section may read when the run ends (users stopped, workers' last report in)."""

    environment: Any  # locust.env.Environment
    profile: str
    report_dir: Path
    started_at: float
    ended_at: float
    settings: Any  # config.Settings
    summary: dict = field(default_factory=dict)  # the core summary built so far (totals, endpoints, ...)


class Section:
    """Base class: override what the section needs. ``name`` is its key in the summary JSON."""

    name: str = ""
    order: int = 50  # position in the Markdown summary (lower first)
    reason_kind: Kind = Kind.THRESHOLD  # the kind of the plain-string reasons its verdict gives

    def prepare(self, run: RunContext) -> None:  # noqa: B027 - optional hook
        """Work that must happen after the users stop and before any section is built."""

    def build(self, run: RunContext) -> dict[str, Any] | None:
        """The section's JSON content, or None to leave it out of this run's summary."""
        return None

    def verdict(self, data: dict[str, Any]) -> list[Reason | str]:
        """Reasons this section fails the run (empty: it does not)."""
        return []

    def markdown(self, data: dict[str, Any]) -> list[str]:
        """Markdown lines (a ``###`` heading first); empty renders nothing."""
        return []

    # distributed runs

    def worker_report(self) -> dict[str, Any] | None:
        """On a worker: data to send to the master with the next stats report (then reset)."""
        return None

    def merge_worker_report(self, client_id: str, data: dict[str, Any]) -> None:  # noqa: B027
        """On the master: fold in what one worker sent."""


_SECTIONS: dict[str, Section] = {}


def register(section: Section) -> Section:
    """Add (or replace, by name) a section. Returns it, so a module can keep a handle."""
    if not section.name:
        raise ValueError("a report section needs a name")
    _SECTIONS[section.name] = section
    return section


def registered() -> list[Section]:
    return sorted(_SECTIONS.values(), key=lambda s: (s.order, s.name))


def get(name: str) -> Section | None:
    return _SECTIONS.get(name)


def collect_worker_reports(data: dict) -> None:
    """Worker side of Locust's ``report_to_master`` event."""
    payload = {}
    for section in registered():
        part = section.worker_report()
        if part:
            payload[section.name] = part
    if payload:
        data[REPORT_KEY] = payload


def merge_worker_reports(client_id: str, data: dict) -> None:
    """Master side of Locust's ``worker_report`` event."""
    for name, part in (data.get(REPORT_KEY) or {}).items():
        section = _SECTIONS.get(name)
        if section is not None:
            section.merge_worker_report(client_id, part)


def build_all(run: RunContext) -> tuple[dict[str, dict], list[Reason]]:
    """Every section's JSON (by name) and the reasons they give to fail the run, each with its kind."""
    for section in registered():
        section.prepare(run)
    built: dict[str, dict] = {}
    reasons: list[Reason] = []
    for section in registered():
        data = section.build(run)
        if data is None:
            continue
        built[section.name] = data
        reasons += [as_reason(r, section.reason_kind) for r in section.verdict(data)]
    return built, reasons


def render_markdown(summary: dict) -> list[str]:
    lines: list[str] = []
    for section in registered():
        data = summary.get(section.name)
        if data is not None:
            part = section.markdown(data)
            if part:
                lines += ["", *part]
    return lines
