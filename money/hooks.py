"""Locust wiring for the ledger and the reconciliation (imported by the locustfiles).

Reconciliation runs at the end of every run that writes a summary: on by default when the
target is the bundled sandbox, opt-in elsewhere (``RECONCILE=on``); ``RECONCILE=off`` disables it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import gevent
import requests
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from money.ledger import LEDGER, MESSAGE
from money.reconcile import Servers, reconcile, settlement_snapshot, utc_day
from reporting.hooks import STATE

log = logging.getLogger("suite.money")
_run: dict = {"enabled": False, "start": None, "days": []}


def _targets(environment) -> tuple[str, str, str]:
    from config import get_settings

    settings = get_settings()
    return (environment.host or settings.payment_service_url, settings.banking_api_url, settings.auth_header())


def _is_sandbox(payment_url: str) -> bool:
    try:
        doc = requests.get(payment_url.rstrip("/") + "/openapi.json", timeout=2).json()
        return "(sandbox)" in doc.get("info", {}).get("title", "")
    except (requests.RequestException, ValueError, AttributeError):
        return False


@events.init.add_listener
def on_init(environment, **_kwargs) -> None:
    opts = environment.parsed_options
    report_dir = getattr(opts, "report_dir", "") if opts else ""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        gevent.spawn(_flush_periodically)
        return  # forwarding is decided at test_start, once the master's options have arrived
    if not report_dir:
        return  # a plain Locust run: no ledger, no reconciliation
    LEDGER.open(Path(report_dir) / f"{opts.profile_name}-ledger.jsonl")
    if isinstance(runner, MasterRunner):
        runner.register_message(MESSAGE, lambda msg, **_kw: LEDGER.add_remote(msg.data["records"], msg.data["unknown"]))
    STATE.before_summary.append(_reconcile)


def _flush_periodically() -> None:
    while True:
        gevent.sleep(2.0)
        LEDGER.flush()


@events.test_start.add_listener
def on_test_start(environment, **_kwargs) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        # The master keeps a ledger only with --report-dir, which reaches workers with the spawn message.
        if getattr(environment.parsed_options, "report_dir", ""):
            LEDGER.forward = lambda records, unknown: runner.send_message(
                MESSAGE, {"records": records, "unknown": unknown}
            )
        else:
            LEDGER.forward = None
        return
    if not LEDGER.active:
        return
    payment_url, bank_url, auth = _targets(environment)
    mode = os.environ.get("RECONCILE", "auto").lower()
    _run["enabled"] = mode in ("on", "true", "yes", "1") or (mode == "auto" and _is_sandbox(payment_url))
    if not _run["enabled"]:
        return
    _run["days"] = [utc_day()]
    from users.base import data_pool

    pool = data_pool()
    merchants = [pool.merchant(j).id for j in range(min(pool.merchant_count, 500))]
    _run["start"] = settlement_snapshot(Servers(payment_url, bank_url, auth), merchants, _run["days"])


@events.test_stop.add_listener
def on_test_stop(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        LEDGER.flush()
        LEDGER.flush_unknown_to_master()


def _reconcile(environment) -> None:
    LEDGER.flush()
    if not _run["enabled"]:
        STATE.extra_sections["money"] = {
            "enabled": False,
            "ok": True,
            "counts": dict(LEDGER.counts),
            "problems": [],
            "note": "reconciliation off (RECONCILE=on to enable)",
        }
        LEDGER.close()
        return
    payment_url, bank_url, auth = _targets(environment)
    days = sorted({*_run["days"], utc_day()})
    unknown, LEDGER.unknown = LEDGER.unknown, []
    result = reconcile(LEDGER.records, unknown, Servers(payment_url, bank_url, auth), _run["start"] or {}, days)
    result["ledger"] = {
        "file": str(LEDGER.path),
        "requests": dict(LEDGER.counts),
        "unknown_dropped": LEDGER.unknown_dropped,
    }
    LEDGER.close()
    STATE.extra_sections["money"] = result
    log.info("money: %s", "reconciled" if result["ok"] else "MISMATCH " + "; ".join(result["problems"][:3]))
