"""The abstract user every suite class derives from: auth header, per-write Idempotency-Key,
timeouts, the PaymentService and BankingAPI sessions, and one way of judging a response
(expected status and error code, optional body check) so every failure carries a short,
categorised reason.

The HTTP of each operation (paths, bodies, statuses, parsing) belongs to the dialect binding
``self.api`` (``apis/``, chosen by ``API_DIALECT``); a task decorated with :func:`needs` runs only
when the binding has the capabilities it names."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from typing import Any

import orjson
from locust import FastHttpUser
from locust.contrib.fasthttp import FAILURE_EXCEPTIONS, FastHttpSession
from locust.exception import CatchResponseError

import apis
from apis.base import Binding, Check
from apis.records import Capability, MoneyOp
from config import auth_header, get_settings
from data_generators import RUN_ID, data_pool, mix64
from money.ledger import LEDGER
from users import exercised  # noqa: F401 - the summary's api section; drops classes the API cannot run
from users.retries import KeepAliveRetrySession  # also registers the connection_retries section

settings = get_settings()
_user_numbers = itertools.count()
__all__ = ["RUN_ID", "PaymentSuiteUser", "RecentItems", "needs"]

# Failure reasons start with one of these tags; reporting groups failures by them. Reasons never
# embed amounts or ids: Locust keeps one error row per distinct message. An unexpected status is
# tagged "[Nxx unexpected]" by its class (unexpected_status_tag).
TIMEOUT, CONNECTION, SERVER_5XX, BAD_BODY, WRONG_ERROR = (
    "[timeout]",
    "[connection]",
    "[5xx]",
    "[bad body]",
    "[wrong error]",
)


def needs(*caps: Capability):
    """Mark a task as needing these capabilities of the API: without them it does not run (and
    the summary lists it as not exercised)."""

    def mark(fn):
        fn.needs = frozenset(caps)
        return fn

    return mark


def runnable_tasks(tasks: list, binding: Binding) -> list:
    """The tasks whose capabilities the binding has (Locust's weighted list, filtered)."""
    return [t for t in tasks if exercised.task_runs(t, binding)]


class RecentItems:
    """Fixed-capacity ring of recent items with O(1) add and random pick: what a user keeps to
    refund, capture or look up later, without its memory growing over a long run."""

    __slots__ = ("items", "capacity", "_next")

    def __init__(self, capacity: int):
        self.items: list = []
        self.capacity = capacity
        self._next = 0

    def add(self, item) -> None:
        if len(self.items) < self.capacity:
            self.items.append(item)
        else:
            self.items[self._next] = item
            self._next = (self._next + 1) % self.capacity

    def pick(self, rng: random.Random, accept: Callable[[Any], bool] | None = None, tries: int = 8):
        for _ in range(tries if self.items else 0):
            item = self.items[rng.randrange(len(self.items))]
            if accept is None or accept(item):
                return item
        return None

    def __len__(self) -> int:
        return len(self.items)


def unexpected_status_tag(status: int, error_expected: bool) -> str:
    """The failure category of an answer whose status was not one the request expected, by the
    status's class: a 5xx is the server's fault whatever was expected; a 4xx where another error
    was expected is the wrong error; anything else is an unexpected 1xx/2xx/3xx/4xx."""
    if status >= 500:
        return SERVER_5XX
    if status >= 400 and error_expected:
        return WRONG_ERROR
    return f"[{status // 100}xx unexpected]"


def classify_transport_error(error: BaseException | None) -> str:
    text = f"{type(error).__name__}: {error}" if error else "no response"
    lowered = text.lower()
    if "timeout" in lowered or "timed out" in lowered:
        return f"{TIMEOUT} {text[:120]}"
    return f"{CONNECTION} {text[:120]}"


class PaymentSuiteUser(FastHttpUser):
    """Shared client behaviour of the suite's users. Subclasses call the binding (``self.api``),
    which calls :meth:`call`."""

    abstract = True
    # Steps inside tasks that need a capability, skipped where the API lacks it (the summary
    # lists them with the tasks not exercised): {Capability: "what is skipped"}.
    steps: dict[Capability, str] = {}
    host = settings.payment_service_url
    network_timeout = settings.request_timeout
    connection_timeout = min(settings.request_timeout, 5.0)

    def __init__(self, environment):
        self.api: Binding = apis.current()
        # Per instance, before the client is built from it; the token never goes in a class attribute
        # that the web UI or a report could print.
        typed = getattr(environment.parsed_options, "auth_token", "") if environment.parsed_options else ""
        self.default_headers = {"Accept": "application/json"}
        if self.api.auth:
            self.default_headers["Authorization"] = auth_header(typed) if typed else settings.auth_header()
        super().__init__(environment)
        # A request whose pooled connection the server closed unanswered is resent once, counted.
        self.client = KeepAliveRetrySession.adopt(self.client)
        self.client.client.cookiejar = None  # payment APIs authenticate by header: no cookie work per request
        self._bank: FastHttpSession | None = None
        self._probe_memory: dict[str, list] = {}
        # Tasks whose operation this API lacks do not run (and do not fail).
        self.tasks = runnable_tasks(type(self).tasks, self.api)
        self._fire = environment.events.request.fire
        self._context = self.context()
        self.user_number = next(_user_numbers)
        self.rng = random.Random(mix64(settings.data_seed, 0xA5, self.user_number))
        self._writes = 0
        self.pool = data_pool(run_scoped=self.api.has(Capability.MERCHANTS_ON_FIRST_USE))

    def wait_time(self) -> float:
        return self.rng.uniform(settings.min_wait_time, settings.max_wait_time) / 1000.0

    @property
    def bank(self) -> FastHttpSession:
        """The BankingAPI session: a second host on the same user, reporting through the same
        request event (Locust's way of one user talking to several hosts)."""
        if self._bank is None:
            session = FastHttpSession(
                base_url=settings.banking_api_url,
                request_event=self.environment.events.request,
                user=self,
                network_timeout=self.network_timeout,
                connection_timeout=self.connection_timeout,
                concurrency=self.concurrency,
                headers=self.default_headers,
                max_retries=self.max_retries,
                max_redirects=self.max_redirects,
            )
            self._bank = KeepAliveRetrySession.adopt(session)
            self._bank.client.cookiejar = None
        return self._bank

    def probe_memory(self) -> dict[str, list]:
        return self._probe_memory

    def record_money(self, op: MoneyOp, status: int, body: Any) -> None:
        LEDGER.record(op, status, None, body)

    def idempotency_key(self) -> str:
        # Unique per run, not drawn from the seeded rng: a second run with the same seed against the
        # same service must not replay (or collide with) the first run's keys.
        self._writes += 1
        return f"lt-{RUN_ID}-{self.user_number}-{self._writes}"

    def call(
        self,
        method: str,
        path: str,
        *,
        name: str,
        expect: dict[int, str | None],
        json: Any = None,
        data: bytes | None = None,
        headers: dict | None = None,
        check: Check | None = None,
        write: bool | None = None,
        money: MoneyOp | None = None,
        bank: bool = False,
    ) -> tuple[int, Any]:
        """One request judged against ``expect`` ({status: expected error code or None}).

        Returns (status, parsed body or None). Writes get a fresh Idempotency-Key unless the
        caller passes one (and only where the API has idempotency keys). ``money`` records a
        money-moving request in the ledger; ``bank`` sends it on the BankingAPI session."""
        hdrs = dict(headers) if headers else {}
        if (
            (write if write is not None else method != "GET")
            and "Idempotency-Key" not in hdrs
            and Capability.IDEMPOTENCY in self.api.capabilities
        ):
            hdrs["Idempotency-Key"] = self.idempotency_key()
        if json is not None:
            data = orjson.dumps(json)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        # The request is sent and reported here rather than through FastHttpSession.request's
        # catch_response context: no per-request context merge, header copy or context manager,
        # the same request event (one per request, with our verdict as its exception).
        client = self.bank if bank else self.client
        url = client.base_url + path if path[:1] == "/" else client._build_url(path)
        started = time.time()
        t0 = time.perf_counter()
        resp = client._send_request_safe_mode(method, url, retry_name=name, payload=data, headers=hdrs)
        status = resp.status_code or 0
        try:
            content = resp.content
        except FAILURE_EXCEPTIONS as exc:  # the answer broke off mid-body: nothing was received whole
            content, status, resp.error = b"", 0, exc
        response_time = (time.perf_counter() - t0) * 1000
        body = None
        if content:
            try:
                body = orjson.loads(content)
            except orjson.JSONDecodeError:
                body = None
        reason = self._verdict(status, resp, body, expect, check, bool(content), self.api.status_tags)
        self._fire(
            request_type=method,
            name=name,
            response_time=response_time,
            response_length=len(content) if content else 0,
            response=resp,
            context=self._context,
            exception=CatchResponseError(reason) if reason else None,
            start_time=started,
            url=url,
        )
        if money is not None:
            # The binding reads the answer (a 2xx it cannot read leaves the outcome unknown); a body
            # that failed a check is still what the server said, so the ledger judges it too.
            LEDGER.record(money, status, hdrs.get("Idempotency-Key"), body, json, path)
        # Callers act on the body only when it passed: a wrong one never reaches their code.
        return status, (None if reason else body)

    @staticmethod
    def _verdict(
        status: int,
        resp,
        body: Any,
        expect: dict[int, str | None],
        check: Check | None,
        has_content: bool = True,
        status_tags: dict[int, str] | None = None,
    ) -> str | None:
        if status == 0:
            return classify_transport_error(getattr(resp, "error", None))
        if status not in expect:
            code = _error_code(body)
            wanted = " or ".join(f"{s}{' ' + c if c else ''}" for s, c in expect.items())
            got = f"{status}{' ' + code if code else ''}"
            tag = (status_tags or {}).get(status) or unexpected_status_tag(status, any(s >= 400 for s in expect))
            return f"{tag} expected {wanted}, got {got}"
        if has_content and body is None and resp.content:
            return f"{BAD_BODY} HTTP {status} body is not JSON"
        want_code = expect[status]
        if want_code is not None:
            got_code = _error_code(body)
            if got_code != want_code:
                return f"{WRONG_ERROR} expected {status} {want_code}, got {status} {got_code}"
        if check is not None and settings.validate_responses:
            try:
                problem = check(body)
            except (KeyError, TypeError, AttributeError, IndexError) as exc:  # a body of the wrong shape
                problem = f"unexpected shape ({type(exc).__name__}: {str(exc)[:60]})"
            if problem:
                return f"{BAD_BODY} {problem}"
        return None


def _error_code(body: Any) -> str | None:
    """The error code of an error body: ``error.code`` (api-contract.md), or a string ``error``
    (``{"error": "validation_error", ...}``) where a dialect puts it there."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        return error.get("code")
    return error if isinstance(error, str) else None
