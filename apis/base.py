"""What a dialect binding is: the operations the user classes call, the capabilities that say
which of them exist, and the reading of answers into neutral records (``apis.records``).

A binding owns the HTTP of one API: paths, ``name=`` grouping, bodies built from the data pool's
customers, merchants and cards, the statuses that mean success, decline or a given error, and
the parsing of answers. The user classes own the behaviour (what a customer, a bank client or a
failure probe does, weights, think times, ids kept) and call a binding through ``self.api``.

To speak your own API, subclass :class:`Binding` in one module, set ``BINDING = YourBinding()``
and run with ``API_DIALECT=your.module`` (README, "Your own API")."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from apis.records import Answer, Capability, Held, KnownPayment, MoneyKind, Outcome, ServerPayment

Check = Callable[[Any], str | None]  # returns a reason when the body is wrong


class Client(Protocol):
    """What a binding needs of the calling user (``users.base.PaymentSuiteUser`` is one)."""

    pool: Any  # data_generators.DataPool
    rng: Any  # random.Random
    user_number: int

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
        money: Any = None,
        bank: bool = False,
    ) -> tuple[int, Any]: ...

    def idempotency_key(self) -> str: ...

    def record_money(self, op: Any, status: int, body: Any) -> None:
        """Record a money movement the client learnt of without its own request (a batch item)."""

    def probe_memory(self) -> dict[str, list]:
        """Small per-user lists the failure probes keep between requests (ids to refund, ...)."""


@dataclass(frozen=True)
class Probe:
    """One bad-input or error-path request of a dialect, run by FailureSimulationUser."""

    name: str
    weight: int
    run: Callable[[Client], None]
    needs: frozenset[Capability] = frozenset()


class Binding:
    """Base of every dialect. Operations a dialect lacks are left unimplemented: the capability
    set says so, and the users never call them."""

    name = "?"
    capabilities: frozenset[Capability] = frozenset()
    # The bundled sandbox (``python -m sandbox``) speaks this API, so the runner may start it when
    # nothing answers at the default targets, and RECONCILE=auto reads it back. Declared, not
    # guessed from the name: a subclass of a sandbox-speaking binding inherits it.
    bundled_sandbox = False
    # GET <path> answers 200 when each service is up; None: the API has no such service.
    health_paths: dict[str, str | None] = {"payments": "/health", "bank": "/health"}
    auth = True  # the PaymentService wants the Authorization header
    # How many payments one card (by last four digits) may make per hour before the service
    # refuses it as fraud; None: no such limit. The users then spread payments over many cards.
    card_velocity_limit: int | None = None
    # Failure tags of statuses with a meaning of their own when they were not expected
    # (reporting/summary.py has a category for each tag): {402: "[fraud rejected]"}.
    status_tags: dict[int, str] = {}
    # The request names (``name=``) of plain payments: what the burst counts and SLOs single out.
    payment_names: tuple[str, ...] = ()

    def has(self, *caps: Capability) -> bool:
        return all(c in self.capabilities for c in caps)

    def healthy(self, service: str, body: Any) -> bool:
        """Whether a 200 from the health path says the service is up."""
        return True

    # --- PaymentService -----------------------------------------------------------------------

    def pay(
        self,
        c: Client,
        *,
        setup: bool = False,
        merchant: Any = None,
        customer: Any = None,
        decline: bool = False,
        race: str | None = None,
        key: str | None = None,
        contended: bool = False,
        mix: bool = False,
        rng_seed: int | None = None,
    ) -> KnownPayment | None:
        """Charge a card from the pool. ``decline``: a card this API's bank declines (success is
        the dialect's decline answer). ``key``: an explicit idempotency key; ``contended``: the
        request races others with the same key, so the dialect's "in flight" answer is fine too.
        ``mix``: any of the API's payment entry points, in its traffic mix. ``rng_seed``: build
        the body from this seed (the same seed, the very same body: replays and storms)."""
        raise NotImplementedError

    def refund(
        self, c: Client, payment: KnownPayment, amount: int | None, *, race: str | None = None, contended: bool = False
    ) -> bool:
        """Full (None) or partial refund; True when accepted. ``contended``: racing refunds of
        one payment, where the dialect's refusal for "nothing left to refund" is fine too."""
        raise NotImplementedError

    def lookup(self, c: Client, payment: KnownPayment) -> None:
        raise NotImplementedError

    def list_transactions(self, c: Client, merchant_id: str, max_pages: int = 2) -> None:
        raise NotImplementedError

    def report(self, c: Client, merchant_id: str) -> None:
        raise NotImplementedError

    def health(self, c: Client) -> None:
        raise NotImplementedError

    def payment_request(self, c: Client, merchant: Any = None, rng_seed: int | None = None) -> tuple[str, dict]:
        """(path, body) of a plain payment, for a client that sends it by other means."""
        raise NotImplementedError

    # --- BankingAPI ---------------------------------------------------------------------------

    def authorize(
        self, c: Client, *, setup: bool = False, decline: bool = False, merchant: Any = None, race: str | None = None
    ) -> Held | None:
        raise NotImplementedError

    def capture(
        self,
        c: Client,
        auth: Held,
        amount: int,
        *,
        setup: bool = False,
        race: str | None = None,
        contended: bool = False,
    ) -> Held | None:
        raise NotImplementedError

    def bank_refund(self, c: Client, capture: Held, amount: int) -> Held | None:
        raise NotImplementedError

    def bank_status(self, c: Client, held: Held, kind: str) -> None:
        raise NotImplementedError

    def settlement(self, c: Client, merchant_id: str | None, *, by: str | None = None) -> None:
        """A settlement report, for a merchant or all; ``by``: who asks (a persona), for the name."""
        raise NotImplementedError

    def bank_health(self, c: Client) -> None:
        raise NotImplementedError

    def batch(self, c: Client, pending: list[Held]) -> list[Held]:
        """A batch of new authorizations plus captures of ``pending`` ones; returns the pending
        authorizations it did not take (the user keeps them for its capture task)."""
        raise NotImplementedError

    # --- FailureSimulationUser ----------------------------------------------------------------

    def probes(self) -> list[Probe]:
        """The bad-input and error-path requests this dialect defines, with what it answers."""
        return []

    # --- reading back (end-of-run reconciliation) ---------------------------------------------

    def read_payment(self, status: int, body: Any) -> Answer:
        """A payment request's answer (also used for idempotent replays)."""
        raise NotImplementedError

    def server_payment(self, http: Any, payment_id: str) -> tuple[int, ServerPayment | None]:
        """The payment as the server has it now: (HTTP status, record or None). Needs LOOKUP."""
        raise NotImplementedError

    def merchant_payment_ids(self, http: Any, merchant_id: str) -> list[str] | None:
        """Ids of the merchant's non-declined payments on the server. Needs MERCHANT_LISTING."""
        raise NotImplementedError

    def settlement_figures(self, http: Any, day: str, merchant_id: str) -> tuple[int, int] | None:
        """(captured, refunded) minor units at the bank for a day. Needs BANK_SETTLEMENT + BANK_STATEFUL."""
        raise NotImplementedError

    def read_replay(self, kind: MoneyKind, status: int, body: Any) -> Answer:
        """A replayed request's answer (the same reading its first answer had). Override when
        refunds or bank operations answer in another shape than payments."""
        return self.read_payment(status, body)

    def replay_is_final(self, status: int, body: Any) -> bool:
        """Whether a replayed request's answer is its final result (not "still in flight")."""
        return bool(status) and status < 500


def body_rng(c: Client, seed: int | None) -> Any:
    """The rng a request body is drawn with: the user's, or a fresh one from ``seed``."""
    return c.rng if seed is None else random.Random(seed)


def label(request: str, *, setup: bool = False, race: str | None = None, declined: bool = False) -> str:
    """A request's ``name=`` in the suite's grouping: ``race: POST /payments (setup)``."""
    return ("race: " if race else "") + request + (" (setup)" if setup else "") + (" (declined)" if declined else "")


def auth_probes(write_path: str, body: Callable[[Client], dict], read_path: str) -> list[Probe]:
    """The two 401 probes every authenticated API has: a write without a token, a read with a
    wrong one (only the status is checked: pages word their 401 bodies differently)."""

    def no_token(c: Client) -> None:
        c.call(
            "POST",
            write_path,
            name="expect 401: no token",
            json=body(c),
            headers={"Authorization": ""},
            expect={401: None},
        )

    def wrong_token(c: Client) -> None:
        headers = {"Authorization": "Bearer not-the-token"}
        c.call("GET", read_path, name="expect 401: wrong token", headers=headers, expect={401: None})

    return [Probe("no token", 2, no_token), Probe("wrong token", 2, wrong_token)]


def unknown_id_probe(scenario: str, weight: int, method: str, path: str, status: int) -> Probe:
    """A request about an id that does not exist (``{id}`` in ``path``), expecting ``status``."""

    def run(c: Client) -> None:
        body = {} if method == "POST" else None
        target = path.format(id=f"missing{c.rng.getrandbits(32):08x}")
        c.call(method, target, name=f"expect {status}: {scenario}", json=body, expect={status: None})

    return Probe(scenario, weight, run)


def remember(c: Client, key: str, item: Any, cap: int = 50) -> None:
    """Keep ``item`` in the user's probe memory under ``key``, the newest ``cap`` only."""
    kept = c.probe_memory().setdefault(key, [])
    kept.append(item)
    del kept[:-cap]


# --- checks shared by bindings ------------------------------------------------------------------


def missing_fields(body: Any, *fields: str) -> str | None:
    if not isinstance(body, dict):
        return "body is not an object"
    absent = [f for f in fields if f not in body]
    return f"missing {', '.join(absent)}" if absent else None


def _paths(detail: Any) -> list[str]:
    """The field paths a validation detail may name: its strings, and lists of path parts
    joined with dots (``["body", "card", "number"]`` -> ``body.card.number``)."""
    if isinstance(detail, str):
        return [detail]
    if isinstance(detail, list):
        parts = [str(p) for p in detail if isinstance(p, str | int)]
        return [".".join(parts)] if parts else []
    if isinstance(detail, dict):
        return [p for value in detail.values() for p in _paths(value)]
    return []


def names_field(details: Any, field: str) -> bool:
    """True when some detail names ``field`` or a path under it (``card`` for ``card.exp_year``)."""
    for detail in details if isinstance(details, list) else [details]:
        for path in _paths(detail):
            for candidate in (path, path.removeprefix("body.")):
                if candidate == field or candidate.startswith((field + ".", field + "[")):
                    return True
    return False


def outcome_by_status(status: int, declined: int | None = 402) -> Outcome:
    """The usual reading when the status alone decides: 2xx moved money, ``declined`` is a card
    decline, no answer or a 5xx is unknown, any other status a definite refusal."""
    if 200 <= status < 300:
        return Outcome.SUCCEEDED
    if declined is not None and status == declined:
        return Outcome.DECLINED
    if status == 0 or status >= 500:
        return Outcome.UNKNOWN
    return Outcome.FAILED
