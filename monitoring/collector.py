"""What the suite measures, independent of where it goes: the per-request hot path, the money
listener, the periodic gauges and the start/end of a run. A backend (DogStatsD or OpenTelemetry)
only turns calls into its own wire format.

The hot path does a dict look-up per request: every distinct (endpoint, method, status class,
user class) gets its tags built once, in the backend's own form, and reused."""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol

import gevent

import apis
from money.reconcile import MISMATCHES
from monitoring import PREFIX
from reporting.verdict import headline

log = logging.getLogger("suite.metrics")

DURATION = f"{PREFIX}.request.duration"
REQUESTS = f"{PREFIX}.requests"
ERRORS = f"{PREFIX}.request.errors"
MAX_CONTEXTS = 2000  # distinct tag sets kept; beyond it endpoints are folded into "[other]"
GAUGE_INTERVAL_S = 5.0

# Ids of the built-in dialects (contract, ecosystem's txn_/ref_/batch_, run merchants) and
# card-number-like digit runs: never in a tag value, whatever a name holds.
_IDS = re.compile(
    r"\b(?:pay|re|auth|cap|bre|mer_race|mer_run[0-9a-f]*|cus|lt|txn|ref|batch)_[A-Za-z0-9_-]+|\b\d{6,}\b|[0-9a-f]{16,}",
    re.I,
)
# What Datadog keeps in a tag (the datadog client's own rule): both sinks send the same values.
_TAG_UNSAFE = re.compile(r"[^\w\-:/.]")
_CODE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_OUTCOME = {
    "succeeded": "approved",
    "declined": "declined",
    "rejected": "rejected",  # a fraud rejection (baseline dialect)
    "failed": "failed",
    "unknown": "unknown",
}


class Backend(Protocol):
    """A metrics destination. ``tags`` is whatever :meth:`tags` returned for a dict of tags."""

    name: str

    def tags(self, values: dict[str, str]) -> Any: ...
    def set_constant_tags(self, values: dict[str, str]) -> None: ...
    def distribution(self, metric: str, value: float, tags: Any) -> None: ...
    def count(self, metric: str, value: float, tags: Any) -> None: ...
    def gauge(self, metric: str, value: float, tags: Any) -> None: ...
    def event(self, title: str, text: str, alert_type: str, tags: Any) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def endpoint_tag(name: str) -> str:
    """A Locust request name as a tag value: ids scrubbed (names are grouped already; this is
    the belt to those braces), characters a Datadog tag cannot hold replaced by ``_``
    ("GET /payments/[id]" -> "GET_/payments/_id_")."""
    return _TAG_UNSAFE.sub("_", _IDS.sub("[id]", name))[:100]


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "none"


def _user_class() -> str:
    """The class of the user whose greenlet is making the request (Locust spawns each user as
    ``group.spawn(run_user, user)``): no per-request context dict needed."""
    args = getattr(gevent.getcurrent(), "args", None)
    return type(args[0]).__name__ if args else "none"


def _code(value: Any) -> str:
    return value if isinstance(value, str) and _CODE.fullmatch(value) else "other"


def _currency(value: Any) -> str:
    return value.upper() if isinstance(value, str) and _CURRENCY.fullmatch(value) else "none"


class Collector:
    """Feeds one backend. ``role`` is local, master or worker: a master has no users of its own,
    so it sends only its gauges and the run's events; workers send their requests and money."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.role = "local"
        self.constant: dict[str, str] = {}
        self._request_tags: dict[tuple, Any] = {}
        self._error_tags: dict[tuple, Any] = {}
        self._categories: dict[str, str] = {}
        self._plain: dict[tuple, Any] = {}
        self._gauges: gevent.Greenlet | None = None
        self._process = None
        self.requests = 0  # seen here (a worker's own), for the report section
        self.ended = False

    # --- configuration

    def configure(self, role: str, constant: dict[str, str]) -> None:
        """Set the common tags (profile, run id, worker, ...) and forget every cached tag set."""
        self.role = role
        self.constant = {"dialect": apis.current().name, "role": role, **constant}  # API_DIALECT's binding
        self.backend.set_constant_tags(self.constant)
        self._request_tags.clear()
        self._error_tags.clear()
        self._plain.clear()

    def _tags(self, **values: str) -> Any:
        key = tuple(sorted(values.items()))
        tags = self._plain.get(key)
        if tags is None:
            tags = self._plain[key] = self.backend.tags(values)
        return tags

    # --- per request (Locust's request event)

    def on_request(
        self, request_type, name, response_time, response_length=0, response=None, exception=None, **_kw
    ) -> None:
        self.requests += 1
        status = getattr(response, "status_code", 0) or 0
        user_class = _user_class()
        key = (name, request_type, status // 100, user_class)
        tags = self._request_tags.get(key)
        if tags is None:
            tags = self._new_request_tags(key, status)
        backend = self.backend
        if response_time is not None:
            backend.distribution(DURATION, round(response_time, 3), tags)  # µs: shorter packets
        backend.count(REQUESTS, 1, tags)
        if exception is not None:
            self._on_failure(name, request_type, user_class, exception)

    def _new_request_tags(self, key: tuple, status: int) -> Any:
        name, method, _cls, user_class = key
        endpoint = endpoint_tag(name) if len(self._request_tags) < MAX_CONTEXTS else "[other]"
        values = {"endpoint": endpoint, "method": str(method), "status_class": status_class(status)}
        values["user_class"] = user_class
        tags = self.backend.tags(values)
        if len(self._request_tags) < MAX_CONTEXTS:
            self._request_tags[key] = tags
        return tags

    def _on_failure(self, name: str, method: str, user_class: str, exception: BaseException) -> None:
        message = str(exception)
        category = self._categories.get(message)
        if category is None:
            from reporting.summary import categorize  # imports Locust: not at module import

            category = categorize(message)
            if len(self._categories) < MAX_CONTEXTS:
                self._categories[message] = category
        key = (name, method, category, user_class)
        tags = self._error_tags.get(key)
        if tags is None:
            values = {"endpoint": endpoint_tag(name), "method": str(method), "category": category}
            values["user_class"] = user_class
            tags = self.backend.tags(values)
            if len(self._error_tags) < MAX_CONTEXTS:
                self._error_tags[key] = tags
        self.backend.count(ERRORS, 1, tags)

    # --- money (the ledger's listener)

    def on_money(self, rec: dict) -> None:
        kind, outcome = rec.get("kind"), rec.get("outcome")
        amount = rec.get("amount")
        ok = outcome == "succeeded" and isinstance(amount, int) and not isinstance(amount, bool)
        count = self.backend.count
        if kind in ("payment", "authorization"):
            mapped = _OUTCOME.get(outcome, "unknown")
            currency = _currency(rec.get("currency"))
            decline = _code(rec.get("decline_code")) if mapped == "declined" else "none"
            metric = f"{PREFIX}.payments" if kind == "payment" else f"{PREFIX}.authorizations"
            count(metric, 1, self._tags(outcome=mapped, currency=currency, decline_code=decline))
            if ok and kind == "payment":
                count(f"{PREFIX}.payments.volume", amount, self._tags(currency=currency))
        elif kind == "capture":
            count(f"{PREFIX}.captures", 1, self._tags(outcome=str(outcome)))
        elif kind in ("refund", "bank_refund"):
            currency = _currency(rec.get("currency"))
            count(f"{PREFIX}.refunds", 1, self._tags(kind=kind, outcome=str(outcome), currency=currency))
            if ok:
                count(f"{PREFIX}.refunds.volume", amount, self._tags(kind=kind, currency=currency))

    # --- gauges

    def start_gauges(self, runner) -> None:
        if self._gauges is None:
            self._gauges = gevent.spawn(self._gauge_loop, runner)

    def _gauge_loop(self, runner) -> None:
        while not self.ended:
            self.send_gauges(runner)
            gevent.sleep(GAUGE_INTERVAL_S)

    def send_gauges(self, runner) -> None:
        try:
            if self._process is None:
                import psutil

                self._process = psutil.Process()
                self._process.cpu_percent(None)  # the first reading is always 0: prime it
            backend = self.backend
            backend.gauge(f"{PREFIX}.generator.cpu_percent", self._process.cpu_percent(None), self._tags())
            backend.gauge(f"{PREFIX}.generator.memory_rss", self._process.memory_info().rss, self._tags())
            if self.role == "worker" or runner is None:
                return  # users and RPS are the master's (or the local runner's): never summed twice
            by_class = getattr(runner, "reported_user_classes_count", None) if self.role == "master" else None
            if by_class is None:
                by_class = getattr(runner, "user_classes_count", {}) or {}
            for user_class, n in by_class.items():
                backend.gauge(f"{PREFIX}.users", n, self._tags(user_class=str(user_class)))
            backend.gauge(f"{PREFIX}.rps", round(runner.stats.total.current_rps, 2), self._tags())
        except Exception as exc:  # a gauge never breaks a run
            log.debug("metrics: gauges failed: %s", exc)

    # --- run start and end (master or local only)

    def run_started(self, profile: str, users: Any) -> None:
        self.backend.count(f"{PREFIX}.runs", 1, self._tags(phase="start", verdict="none"))
        text = f"profile {profile}, users {users}, run id {self.constant.get('run_id', '')}"
        self.backend.event(f"Load test started: {profile}", text, "info", self._tags())

    def run_ended(self, profile: str, summary: dict | None) -> None:
        backend = self.backend
        if summary is None:
            verdict, reasons, breached = "none", [], []
        else:
            verdict = str(summary.get("verdict", "none"))
            reasons = [str(r) for r in summary.get("reasons", [])]
            breached = [t for t in summary.get("thresholds", []) if t.get("pass") is False]
            money = summary.get("money") or {}
            counts = money.get("counts") or {}
            for check in MISMATCHES:
                if check in counts:
                    backend.count(f"{PREFIX}.money.mismatches", int(counts[check] or 0), self._tags(check=check))
            backend.count(f"{PREFIX}.thresholds.breached", len(breached), self._tags())
        backend.count(f"{PREFIX}.runs", 1, self._tags(phase="end", verdict=verdict))
        # the verdict line and its reasons as the run printed them: most severe first, in units
        lines = [
            headline(summary, count=0).rstrip(" -") if summary else "verdict: NONE",
            f"run id {self.constant.get('run_id', '')}",
        ]
        if summary is not None:
            totals = summary.get("totals") or {}
            lines.append(f"requests {totals.get('requests')}, failures {totals.get('failures')}")
        lines += reasons[:15]
        alert = "success" if verdict == "pass" else ("error" if verdict == "fail" else "info")
        backend.event(f"Load test {profile}: {verdict.upper()}", "\n".join(lines)[:3000], alert, self._tags())

    def close(self, runner=None) -> None:
        if self.ended:
            return
        self.ended = True
        self.send_gauges(runner)
        try:
            self.backend.close()
        except Exception as exc:
            log.warning("metrics: closing the %s sink failed: %s", self.backend.name, exc)
