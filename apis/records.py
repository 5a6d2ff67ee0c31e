"""The neutral records every dialect's answers are read into, and the names the suite shares
about money: what kinds of operation move it, what outcome a request had, what an API can do.

Nothing here knows a path or a field name of any API; bindings (``apis/<dialect>.py``) map
their dialect onto these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from data_generators import CURRENCIES


class Capability(StrEnum):
    """What an API offers. A task or money check needing one the binding lacks does not run."""

    PAYMENTS = "payments"
    DECLINE_CARDS = "decline test cards"
    LOOKUP = "payment lookup"
    REFUNDS = "refunds"
    PARTIAL_REFUNDS = "partial refunds"
    REFUNDED_TOTAL = "refunded total on the payment"
    MERCHANT_LISTING = "merchant transaction listing"
    REPORT = "merchant report"
    IDEMPOTENCY = "idempotency keys"
    MERCHANTS_ON_FIRST_USE = "merchants created on first use"
    BANKING_API = "a BankingAPI"
    BANK_AUTHORIZE = "bank authorize"
    BANK_CAPTURE = "bank capture"
    BANK_REFUND = "bank refund"
    BANK_STATUS = "bank transaction status"
    BANK_SETTLEMENT = "bank settlement report"
    BANK_BATCH = "bank batch"
    BANK_STATEFUL = "stateful bank (not canned stubs)"


class MoneyKind(StrEnum):
    """The money-moving operations the ledger records (one name shared by users, ledger and checks)."""

    PAYMENT = "payment"
    REFUND = "refund"
    AUTHORIZATION = "authorization"
    CAPTURE = "capture"
    BANK_REFUND = "bank_refund"


BANK_KINDS = frozenset({MoneyKind.AUTHORIZATION, MoneyKind.CAPTURE, MoneyKind.BANK_REFUND})


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"  # money moved (approved, captured, refunded)
    DECLINED = "declined"  # the bank declined the card: nothing moved
    REJECTED = "rejected"  # the service refused it as fraud: nothing moved
    FAILED = "failed"  # a definite refusal (validation, business rule): nothing moved
    UNKNOWN = "unknown"  # no final answer: it may or may not have moved money


@dataclass(slots=True)
class Answer:
    """One money request's answer as the client understood it, in neutral terms."""

    outcome: Outcome
    id: str | None = None
    amount: int | None = None  # minor units, as the answer states it
    currency: str | None = None
    decline_code: str | None = None
    error: str | None = None  # the dialect's error code or message, when it has one
    # An amount the answer states but that is not a whole number of minor units (``"19.995"``),
    # or not a number at all: kept as given, and a money mismatch when it confirmed a payment.
    unreadable_amount: Any = None


class ServerState(StrEnum):
    """Where a payment stands on the server, in neutral terms."""

    SUCCEEDED = "succeeded"  # money taken (captured, settled, refunded since or not)
    DECLINED = "declined"  # refused by the bank
    PENDING = "pending"  # not final yet (authorized, processing)
    VOID = "void"  # ended without money taken (cancelled, expired)


@dataclass(slots=True)
class ServerPayment:
    """A payment as the server has it when read back (reconciliation)."""

    amount: int | None
    currency: str | None
    state: ServerState
    refunded: int | None  # None: this API does not state a refunded total

    @property
    def declined(self) -> bool:
        return self.state is ServerState.DECLINED


Reader = Callable[[int, Any], Answer]  # (HTTP status, parsed body) -> Answer


@dataclass(slots=True)
class MoneyOp:
    """A money-moving request about to be sent: what the client asked for (minor units), and
    the binding's reader that turns its answer into an :class:`Answer`."""

    kind: MoneyKind
    amount: int | None  # None: "the whole remaining amount" (a full refund)
    currency: str | None
    merchant_id: str | None
    read: Reader
    parent: str | None = None  # the payment, authorization or capture acted on
    race: str | None = None  # race scenario tag
    service: str = "payments"  # "payments" or "bank": where a replay goes


class KnownPayment:
    """A payment this run made and may follow up on."""

    __slots__ = ("id", "amount", "currency", "merchant_id", "refunded", "last4")

    def __init__(self, id: str, amount: int, currency: str, merchant_id: str, last4: str):
        self.id, self.amount, self.currency, self.merchant_id, self.last4 = id, amount, currency, merchant_id, last4
        self.refunded = 0

    @property
    def refundable(self) -> int:
        return self.amount - self.refunded


class Held:
    """An authorization or capture at the bank: id, amount, and what was refunded of it."""

    __slots__ = ("id", "amount", "refunded", "merchant_id", "currency")

    def __init__(self, id: str, amount: int, merchant_id: str, currency: str = "USD"):
        self.id, self.amount, self.merchant_id, self.currency, self.refunded = id, amount, merchant_id, currency, 0


# --- amounts ------------------------------------------------------------------------------------


def exponent(currency: str) -> int:
    """ISO 4217 minor-unit exponent (JPY 0); 2 for a currency the data pool does not know."""
    info = CURRENCIES.get(str(currency).upper())
    return info.minor_units if info else 2


def to_major(minor: int, currency: str) -> Decimal:
    """1999 USD -> Decimal('19.99'); 1999 JPY -> Decimal('1999')."""
    return Decimal(minor).scaleb(-exponent(currency))


def major_text(minor: int, currency: str) -> str:
    """A decimal string in major units with exactly the currency's decimals: '19.99', '1999'."""
    return f"{to_major(minor, currency):.{exponent(currency)}f}"


def amount_answer(value: Any, currency: str | None) -> tuple[int | None, Any]:
    """(minor units, None) for a readable amount; (None, the raw value) for a stated amount that
    is not one; (None, None) when no amount was stated."""
    if value is None:
        return None, None
    minor = to_minor(value, currency or "USD")
    return (minor, None) if minor is not None else (None, value)


def to_minor(value: Any, currency: str) -> int | None:
    """An amount in major units (decimal string or JSON number) -> int minor units, exactly.

    JSON numbers arrive as floats: their shortest decimal text (``repr``) is the number the
    service wrote, so it goes through ``Decimal(str(x))``, never float arithmetic. None when the
    value is not an amount or has more decimals than the currency has (not a whole minor unit)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        major = Decimal(value) if isinstance(value, str | int) else Decimal(str(value))
        minor = major.scaleb(exponent(currency))
        if not minor.is_finite() or minor != minor.to_integral_value():
            return None
    except (InvalidOperation, ValueError, TypeError):
        return None
    return int(minor)
