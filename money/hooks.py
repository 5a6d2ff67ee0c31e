"""Locust wiring for the ledger and the reconciliation (imported by the locustfiles).

Reconciliation runs at the end of every run that writes a summary: on by default when the
target is the bundled sandbox, opt-in elsewhere (``RECONCILE=on``); ``RECONCILE=off`` disables it.
Its result is the summary's ``money`` section (registered with ``reporting.sections``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gevent
import requests
from locust import events
from locust.runners import MasterRunner, WorkerRunner

import apis
import options
from apis.records import Capability
from config import get_settings
from data_generators import data_pool
from money.ledger import LEDGER, MESSAGE
from money.reconcile import Servers, reconcile, settlement_snapshot, settles, utc_day
from reporting.sections import RunContext, Section, register
from reporting.verdict import Kind, Reason

log = logging.getLogger("suite.money")


def _servers(environment) -> Servers:
    settings = get_settings()
    return Servers(environment.host or settings.target_url, settings.banking_api_url, settings.auth_header())


def _is_sandbox(payment_url: str, tries: int = 2, timeout: float = 3.0) -> bool:
    """Whether the target is the bundled sandbox (its OpenAPI title says so). Asked at the start
    and again at the end of a web-UI run, when the target may be busy: a slow answer is retried."""
    if not apis.current().bundled_sandbox:
        return False  # the binding's API is not the one the sandbox speaks
    for _ in range(tries):
        try:
            doc = requests.get(payment_url.rstrip("/") + "/openapi.json", timeout=timeout).json()
            return "(sandbox)" in doc.get("info", {}).get("title", "")
        except requests.Timeout:
            continue
        except (requests.RequestException, ValueError, AttributeError):
            return False
    return False


class MoneySection(Section):
    """The ledger's counts and, when reconciliation is on, what the servers say about them."""

    name = "money"
    order = 20
    reason_kind = Kind.MONEY  # a mismatch: the target lost or created money (exit 4)

    def __init__(self) -> None:
        self.enabled = False
        self.read_servers = False  # RECONCILE=on, or auto against the sandbox; else the client's view only
        self.days: list[str] = []
        self.start: dict[str, tuple[int, int]] | None = None

    def begin(self, environment) -> None:
        """At test start: decide whether to reconcile, and snapshot the bank's settlements."""
        servers = _servers(environment)
        mode = get_settings().reconcile
        # auto: read the sandbox back; any other target only on request. The client's own view
        # (ids, echoed amounts, refunds within the capture) needs no request and is always checked.
        self.enabled = mode != "off"
        self.read_servers = mode == "on" or (mode == "auto" and _is_sandbox(servers.payment_url))
        if not self.read_servers:
            return
        self.days = [utc_day()]
        binding = apis.current()
        if not settles(binding) or binding.has(Capability.MERCHANTS_ON_FIRST_USE):
            self.start = {}  # nothing to compare, or the run's merchants are its own (they start at 0)
            return
        # Shared merchants: read where they stand now, so the end can compare what this run added.
        pool = data_pool()
        merchants = [pool.merchant(j).id for j in range(pool.merchant_count)]
        self.start = settlement_snapshot(servers, merchants, self.days, binding)

    def build(self, run: RunContext) -> dict[str, Any] | None:
        if not LEDGER.active:
            return None
        LEDGER.flush()
        if not self.enabled:
            result: dict[str, Any] = {
                "enabled": False,
                "ok": True,
                "counts": dict(LEDGER.counts),
                "problems": [],
                "note": "reconciliation off (RECONCILE=off)",
            }
            LEDGER.close()
            return result
        servers = _servers(run.environment) if self.read_servers else None
        days = sorted({*self.days, utc_day()})
        unknown, LEDGER.unknown = LEDGER.unknown, []
        result = reconcile(
            LEDGER.records, unknown, servers, self.start or {}, days, apis.current(), ledger_gap=_ledger_gap(run)
        )
        result["ledger"] = {
            "file": str(LEDGER.path),
            "requests": dict(LEDGER.counts),
            "unknown_dropped": LEDGER.unknown_dropped,
        }
        LEDGER.close()
        log.info("money: %s", "reconciled" if result["ok"] else "MISMATCH " + "; ".join(result["problems"][:3]))
        return result

    def verdict(self, data: dict[str, Any]) -> list[Reason | str]:
        if data.get("ok", True):
            return []
        return [Reason(Kind.MONEY, "money: " + "; ".join(data.get("problems", ["reconciliation mismatch"])[:3]))]

    def markdown(self, data: dict[str, Any]) -> list[str]:
        status = data.get("status") or ("reconciled" if data.get("ok") else "mismatch")
        if not data.get("enabled", True):
            status = "not reconciled"
        heading = {"mismatch": "**MISMATCH**", "incomplete": "incomplete (some outcomes could not be judged)"}
        client_only = data.get("scope") == "client view"
        scope = " (the client's view only; RECONCILE=on reads the targets back)" if client_only else ""
        lines = [f"### Money: {heading.get(status, status)}{scope}", ""]
        lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in data.get("counts", {}).items()]
        lines += [f"- {p}" for p in data.get("problems", [])[:20]]
        lines += [f"- checked ({name}): {how}" for name, how in data.get("checks", {}).items()]
        lines += [f"- not checked ({name}): {why}" for name, why in data.get("not_checked", {}).items()]
        if data.get("note"):
            lines.append(f"- {data['note']}")
        return lines


def _ledger_gap(run: RunContext) -> str:
    """Why the ledger misses records, or "": a worker lost, or silent after the stop, takes the
    records it had not yet sent (every 2 s) with it."""
    workers = run.summary.get("workers") or {}
    gone = sorted({*workers.get("lost", []), *workers.get("unreported", [])})
    if not gone:
        return ""
    return f"worker(s) {gone} were lost or silent at the end, and the ledger records they had not sent with them"


SECTION = register(MoneySection())


@events.init.add_listener
def on_init(environment, **_kwargs) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        gevent.spawn(_flush_periodically)
        return  # forwarding is decided at test_start, once the master's options have arrived
    report_dir = options.report_dir(environment)
    if not report_dir:
        return  # a plain Locust run: no ledger, no reconciliation
    LEDGER.open(Path(report_dir) / f"{environment.parsed_options.profile_name}-ledger.jsonl")
    if isinstance(runner, MasterRunner):
        runner.register_message(MESSAGE, lambda msg, **_kw: LEDGER.add_remote(msg.data["records"], msg.data["unknown"]))
    if getattr(environment.parsed_options, "headless", False):
        # Before the run starts: the settlement snapshot reads every merchant of the pool, which
        # would otherwise eat into the run time (Locust's clock starts with the test).
        SECTION.begin(environment)


def _flush_periodically() -> None:
    while True:
        gevent.sleep(2.0)
        LEDGER.flush()


@events.test_start.add_listener
def on_test_start(environment, **_kwargs) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        # The master keeps a ledger only with --report-dir, which reaches workers with the spawn message.
        if options.report_dir(environment):
            LEDGER.forward = lambda records, unknown: runner.send_message(
                MESSAGE, {"records": records, "unknown": unknown}
            )
        else:
            LEDGER.forward = None
        return
    if LEDGER.active and not getattr(environment.parsed_options, "headless", False):
        SECTION.begin(environment)  # a web-UI run: the target may have changed since start-up


@events.test_stop.add_listener
def on_test_stop(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        LEDGER.flush()
        LEDGER.flush_unknown_to_master()
