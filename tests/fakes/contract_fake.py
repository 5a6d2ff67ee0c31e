"""An independent, in-memory implementation of docs' API contract (/work/shared/api-contract.md).

It serves BOTH services of the contract from one process: the PaymentService and the BankingAPI, each on its
own loopback port. The PaymentService really calls the BankingAPI over HTTP (authorize, then capture; refunds
go to the bank's ``/v1/refunds``). It was written from the contract page alone, as a second team would read it,
so that the load suite can be checked for assumptions the page does not make.

    python -m tests.fakes.contract_fake --payment-port 8000 --bank-port 1080 [--token T] [--bug refund_overdraw]

Prints one ``listening ...`` line per service when ready; exits 0 on SIGTERM/SIGINT.

``--bug refund_overdraw`` plants one money bug (for testing the suite's detectors): refunds of one payment are
checked against the refunded total *before* the (slow) bank call and the total is only written after it, with
no reservation, and the bank's own refund check has the same check-then-write gap. Racing refunds then move
more money than was captured.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import os
import random
import re
import secrets
import signal
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import orjson
from aiohttp import web

MAX_BODY = 64 * 1024
MAX_AMOUNT = 99_999_999
DEFAULT_TOKEN = "test_token_123456789"
# ISO 4217 codes this fake settles; the page asks for at least the first seven.
CURRENCIES = frozenset(
    [
        "USD",
        "EUR",
        "GBP",
        "JPY",
        "INR",
        "CAD",
        "AUD",
        "CHF",
        "SEK",
        "NOK",
        "DKK",
        "NZD",
        "SGD",
        "HKD",
        "MXN",
        "PLN",
        "CZK",
        "BRL",
        "ZAR",
        "KRW",
    ]
)
PAYMENT_STATUSES = ("succeeded", "declined", "refunded", "partially_refunded")
MERCHANT_RE = re.compile(r"mer_\w{1,96}", re.ASCII)
DIGITS_RE = re.compile(r"[0-9]+")
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
IDEM_KEY_MAX = 255
IDEM_CAP = 300_000  # replayable responses kept per service (oldest evicted first)

# Deterministic test cards (the page's table). Anything else that is Luhn-valid is approved.
DECLINES = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
}
BANK_FAILURE_CARD = "4000000000000119"


# --------------------------------------------------------------------------------------------- helpers


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand(number: str) -> str:
    if number.startswith(("34", "37")):
        return "amex"
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or (len(number) >= 4 and 2221 <= int(number[:4]) <= 2720):
        return "mastercard"
    if number.startswith(("6011", "65")) or (len(number) >= 3 and 644 <= int(number[:3]) <= 649):
        return "discover"
    if len(number) >= 4 and 3528 <= int(number[:4]) <= 3589:
        return "jcb"
    if number.startswith(("36", "38", "300", "301", "302", "303", "304", "305")):
        return "diners"
    if number.startswith("62"):
        return "unionpay"
    return "unknown"


class ApiError(Exception):
    """Any non-2xx answer; ``extra`` keys go inside ``error`` next to code/message/details."""

    def __init__(self, status: int, code: str, message: str, details: list | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.extra = extra

    def body(self) -> dict:
        err = {"code": self.code, "message": self.message, "details": self.details}
        err.update(self.extra)
        return {"error": err}


def jresp(status: int, obj: Any = None, *, raw: bytes | None = None, headers: dict | None = None) -> web.Response:
    return web.Response(
        body=raw if raw is not None else orjson.dumps(obj),
        status=status,
        content_type="application/json",
        headers=headers,
    )


class Problems:
    """Collects 422 details: one ``{"path", "problem", "hint"}`` per bad field (dotted path, most specific)."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, path: str, problem: str, hint: str) -> None:
        self.items.append({"path": path, "problem": problem, "hint": hint})

    def raise_if_any(self, message: str = "The request has invalid fields.") -> None:
        if self.items:
            raise ApiError(422, "invalid_request", message, self.items)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """None for an empty body; 400 ``bad_json`` for anything that is not one JSON document."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiError(400, "bad_json", f"The body is not valid JSON: {str(exc)[:200]}") from None


async def read_json(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "body_too_big", f"The body is larger than {MAX_BODY} bytes.")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "body_too_big", f"The body is larger than {MAX_BODY} bytes.") from None
    return parse_json(raw)


def as_object(body: Any) -> dict:
    if body is None:
        return {}
    if not isinstance(body, dict):
        p = Problems()
        p.add("body", "not_an_object", "The body must be a JSON object.")
        p.raise_if_any()
    return body


def check_amount(p: Problems, v: Any, path: str, *, required: bool) -> None:
    if v is None:
        if required:
            p.add(path, "required", "An integer amount in minor units is required.")
    elif not is_int(v):
        p.add(path, "not_an_integer", "Amounts are integers in minor units.")
    elif not 1 <= v <= MAX_AMOUNT:
        p.add(path, "out_of_range", f"Must be between 1 and {MAX_AMOUNT}.")


def check_currency(p: Problems, v: Any, path: str) -> str | None:
    if v is None:
        p.add(path, "required", "An ISO 4217 currency code is required.")
    elif not isinstance(v, str):
        p.add(path, "not_a_string", "Currency is a 3-letter ISO 4217 code.")
    elif v.upper() not in CURRENCIES:
        p.add(path, "unsupported", f"Supported currencies: {', '.join(sorted(CURRENCIES))}.")
    else:
        return v.upper()
    return None


def check_optional_str(p: Problems, obj: dict, key: str, path: str, max_len: int) -> None:
    v = obj.get(key)
    if v is None:
        return
    if not isinstance(v, str):
        p.add(path, "not_a_string", "Must be a string.")
    elif len(v) > max_len:
        p.add(path, "too_long", f"At most {max_len} characters.")


def check_card(p: Problems, card: Any, prefix: str, *, for_bank: bool) -> dict | None:
    """Returns the normalised card (number, exp_month, exp_year, cvc, holder_name) or None when invalid."""
    if card is None:
        p.add(prefix, "required", "Card details are required.")
        return None
    if not isinstance(card, dict):
        p.add(prefix, "not_an_object", "The card must be an object.")
        return None
    before = len(p.items)
    number = card.get("number")
    digits = isinstance(number, str) and DIGITS_RE.fullmatch(number) is not None
    if number is None:
        p.add(f"{prefix}.number", "required", "The card number is required.")
    elif not isinstance(number, str):
        p.add(f"{prefix}.number", "not_a_string", "The card number is a string of digits.")
    elif not digits:
        p.add(f"{prefix}.number", "digits_only", "The card number must contain digits only.")
    elif not 12 <= len(number) <= 19:
        p.add(f"{prefix}.number", "bad_length", "The card number has 12 to 19 digits.")
    elif not for_bank and not luhn_ok(number):
        p.add(f"{prefix}.number", "luhn_check_failed", "The card number fails the Luhn check.")

    month, year = card.get("exp_month"), card.get("exp_year")
    month_ok = year_ok = False
    if month is None:
        p.add(f"{prefix}.exp_month", "required", "The expiry month is required.")
    elif not is_int(month):
        p.add(f"{prefix}.exp_month", "not_an_integer", "The expiry month is an integer 1..12.")
    elif not 1 <= month <= 12:
        p.add(f"{prefix}.exp_month", "out_of_range", "The expiry month is 1..12.")
    else:
        month_ok = True
    if year is None:
        p.add(f"{prefix}.exp_year", "required", "The expiry year is required.")
    elif not is_int(year):
        p.add(f"{prefix}.exp_year", "not_an_integer", "The expiry year is an integer.")
    else:
        if 0 <= year < 100:  # two-digit years, as card terminals send them
            year += 2000
        if not 2000 <= year <= datetime.now(UTC).year + 50:
            p.add(f"{prefix}.exp_year", "out_of_range", "The expiry year is not plausible.")
        else:
            year_ok = True
    expired = False
    if month_ok and year_ok:
        now = datetime.now(UTC)
        if year < now.year:
            expired = True
            if not for_bank:
                p.add(f"{prefix}.exp_year", "expired", "The card has expired.")
        elif year == now.year and month < now.month:
            expired = True
            if not for_bank:
                p.add(f"{prefix}.exp_month", "expired", "The card has expired.")

    cvc = card.get("cvc")
    amex = digits and number.startswith(("34", "37"))
    want = 4 if amex else 3
    if cvc is None:
        p.add(f"{prefix}.cvc", "required", "The card security code is required.")
    elif not isinstance(cvc, str) or DIGITS_RE.fullmatch(cvc) is None:
        p.add(f"{prefix}.cvc", "digits_only", "The security code is a string of digits.")
    elif len(cvc) != want:
        p.add(f"{prefix}.cvc", "bad_length", f"The security code has {want} digits for this card.")
    check_optional_str(p, card, "holder_name", f"{prefix}.holder_name", 200)
    if len(p.items) != before:
        return None
    return {
        "number": number,
        "exp_month": month,
        "exp_year": year,
        "cvc": cvc,
        "holder_name": card.get("holder_name"),
        "_expired": expired,
    }


def fingerprint(route: str, body: Any) -> bytes:
    return route.encode() + b"\x00" + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


# ------------------------------------------------------------------------------------------ idempotency


class IdempotencyStore:
    """Same key + same request → the first response; same key + another request → 409.

    Concurrent requests with one key: the later ones wait for the first and replay its answer. Requests that
    never started executing (400/401/413/422) are not remembered, like Stripe.
    """

    NOT_STORED = frozenset({400, 401, 413, 422})

    def __init__(self) -> None:
        self.done: OrderedDict[str, tuple[bytes, int, bytes]] = OrderedDict()
        self.inflight: dict[str, tuple[bytes, asyncio.Future]] = {}

    async def run(self, key: str, fp: bytes, work) -> web.Response:
        for _ in range(4):
            hit = self.done.get(key)
            if hit is not None:
                if hit[0] != fp:
                    raise reused(key)
                return jresp(hit[1], raw=hit[2], headers={"Idempotent-Replayed": "true"})
            running = self.inflight.get(key)
            if running is not None:
                if running[0] != fp:
                    raise reused(key)
                try:
                    await asyncio.wait_for(asyncio.shield(running[1]), 60)
                except (TimeoutError, asyncio.CancelledError):
                    break
                continue
            fut = asyncio.get_running_loop().create_future()
            self.inflight[key] = (fp, fut)
            try:
                try:
                    status, obj = await work()
                except ApiError as e:
                    status, obj = e.status, e.body()
                raw = orjson.dumps(obj)
                if status not in self.NOT_STORED:
                    self.done[key] = (fp, status, raw)
                    while len(self.done) > IDEM_CAP:
                        self.done.popitem(last=False)
                return jresp(status, raw=raw)
            finally:
                del self.inflight[key]
                if not fut.done():
                    fut.set_result(None)
        raise ApiError(409, "idempotent_request_in_flight", "A request with this Idempotency-Key is still running.")


def reused(key: str) -> ApiError:
    return ApiError(
        409,
        "idempotency_key_reused",
        "This Idempotency-Key was already used with a different request.",
        [{"path": "Idempotency-Key", "problem": "reused", "hint": key[:80]}],
    )


def idem_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > IDEM_KEY_MAX:
        p = Problems()
        p.add("Idempotency-Key", "bad_length", f"1 to {IDEM_KEY_MAX} characters.")
        p.raise_if_any("The Idempotency-Key header is invalid.")
    return key


async def with_idempotency(request: web.Request, store: IdempotencyStore, route: str, body: Any, work):
    key = idem_key(request)
    if key is None:
        try:
            status, obj = await work()
        except ApiError as e:
            status, obj = e.status, e.body()
        return jresp(status, obj)
    return await store.run(key, fingerprint(route, body), work)


# ---------------------------------------------------------------------------------- middleware and apps


def make_middleware(token: str):
    expected = token.encode()

    @web.middleware
    async def middleware(request: web.Request, handler):
        try:
            if not (request.path == "/health" and request.method in ("GET", "HEAD")):
                header = request.headers.get("Authorization", "")
                scheme, _, given = header.partition(" ")
                if not header:
                    raise ApiError(401, "auth_required", "Send Authorization: Bearer <token>.")
                if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), expected):
                    raise ApiError(401, "auth_required", "The bearer token is not valid.")
            return await handler(request)
        except ApiError as e:
            headers = {"WWW-Authenticate": 'Bearer realm="api"'} if e.status == 401 else None
            return jresp(e.status, e.body(), headers=headers)
        except web.HTTPException as e:
            if e.status == 404:
                err = ApiError(404, "resource_missing", f"No route {request.method} {request.path}.")
            elif e.status == 405:
                err = ApiError(405, "method_not_allowed", f"{request.method} is not allowed on {request.path}.")
            elif e.status == 413:
                err = ApiError(413, "body_too_big", f"The body is larger than {MAX_BODY} bytes.")
            else:
                err = ApiError(e.status, "http_error", e.reason or "HTTP error")
            headers = {k: v for k, v in e.headers.items() if k.lower() == "allow"}
            return jresp(err.status, err.body(), headers=headers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the fake: keep the shape, never a bare traceback
            print(f"internal error on {request.method} {request.path}: {exc!r}", file=sys.stderr, flush=True)
            return jresp(500, ApiError(500, "internal_failure", "Unexpected failure.").body())

    return middleware


# ================================================================================================ bank


@dataclass
class Faults:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Bank:
    def __init__(self, token: str, bug: str | None, auth_ttl_s: float):
        self.bug = bug
        self.auth_ttl_s = auth_ttl_s
        self.auths: dict[str, dict] = {}
        self.captures: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        # (utc day, merchant or "*") -> {"captured", "refunded", "count", "by_currency"}
        self.settle: dict[tuple[str, str], dict] = {}
        self.idem = IdempotencyStore()
        self.faults = Faults()
        self.app = web.Application(
            middlewares=[make_middleware(token), self.fault_middleware], client_max_size=MAX_BODY
        )
        r = self.app.router
        r.add_get("/health", self.health)
        r.add_post("/v1/authorizations", self.h_authorize)
        r.add_post("/v1/authorizations/{id}/capture", self.h_capture)
        r.add_post("/v1/refunds", self.h_refund)
        r.add_get("/v1/transactions/{id}", self.h_transaction)
        r.add_get("/v1/settlements", self.h_settlements)
        r.add_post("/v1/batches", self.h_batch)
        r.add_route("*", "/__sandbox/faults", self.h_faults)

    # -- fault injection (the MockServer role), only on /v1/*
    @web.middleware
    async def fault_middleware(self, request: web.Request, handler):
        f = self.faults
        if request.path.startswith("/v1/") and (f.latency_ms or f.jitter_ms or f.error_rate or f.timeout_rate):
            delay = max(0.0, f.latency_ms + random.uniform(-f.jitter_ms, f.jitter_ms)) / 1000
            if delay:
                await asyncio.sleep(min(delay, 30.0))
            roll = random.random()
            if roll < f.timeout_rate:
                await asyncio.sleep(30.0)
                raise ApiError(504, "upstream_silent", "Injected timeout.")
            if roll < f.timeout_rate + f.error_rate:
                raise ApiError(500, "processing_error", "Injected bank failure.")
        return await handler(request)

    async def h_faults(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            return jresp(200, self.faults.as_dict())
        if request.method not in ("PUT", "POST", "PATCH"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "PUT"])
        body = as_object(await read_json(request))
        p = Problems()
        new = {}
        for k, v in body.items():
            if k not in self.faults.__dict__:
                p.add(k, "unknown_field", f"Known: {', '.join(self.faults.__dict__)}.")
            elif not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                p.add(k, "out_of_range", "A non-negative number.")
            elif k.endswith("_rate") and v > 1:
                p.add(k, "out_of_range", "A rate is between 0 and 1.")
            else:
                new[k] = float(v)
        p.raise_if_any()
        for k, v in new.items():
            setattr(self.faults, k, v)
        return jresp(200, self.faults.as_dict())

    async def health(self, request: web.Request) -> web.Response:
        return jresp(200, {"status": "ok"})

    # -- settlement bookkeeping
    def _book(self, ts: float, merchant: str, currency: str, captured: int = 0, refunded: int = 0) -> None:
        day = utc_day(ts)
        for m in (merchant, "*"):
            row = self.settle.setdefault((day, m), {"captured": 0, "refunded": 0, "count": 0, "by_currency": {}})
            row["captured"] += captured
            row["refunded"] += refunded
            row["count"] += 1
            cur = row["by_currency"].setdefault(currency, {"captured": 0, "refunded": 0, "net": 0})
            cur["captured"] += captured
            cur["refunded"] += refunded
            cur["net"] = cur["captured"] - cur["refunded"]

    # -- operations (shared by the single endpoints and the batch endpoint); they raise ApiError
    def auth_view(self, a: dict) -> dict:
        out = {k: v for k, v in a.items() if not k.startswith("_")}
        if out["status"] == "approved" and time.time() >= a["_expires_ts"]:
            out["status"] = "expired"
        return out

    async def op_authorize(self, body: Any) -> tuple[int, dict]:
        body = as_object(body)
        p = Problems()
        check_amount(p, body.get("amount"), "amount", required=True)
        currency = check_currency(p, body.get("currency"), "currency")
        card = check_card(p, body.get("card"), "card", for_bank=True)
        merchant = body.get("merchant_id")
        if merchant is None:
            p.add("merchant_id", "required", "The merchant id is required.")
        elif not isinstance(merchant, str) or not merchant or len(merchant) > 100:
            p.add("merchant_id", "not_a_string", "A non-empty string of at most 100 characters.")
        check_optional_str(p, body, "reference", "reference", 200)
        p.raise_if_any()
        number = card["number"]
        if number == BANK_FAILURE_CARD:
            raise ApiError(500, "processing_error", "The issuer could not process the authorization.")
        decline = DECLINES.get(number)
        if decline is None and not luhn_ok(number):
            decline = "incorrect_number"  # an issuer declines a mistyped number rather than rejecting the request
        if decline is None and card["_expired"]:
            decline = "expired_card"
        if decline is not None:
            raise ApiError(402, "card_declined", "The card was declined.", decline_code=decline)
        now = time.time()
        a = {
            "id": new_id("auth"),
            "object": "authorization",
            "status": "approved",
            "amount": body["amount"],
            "currency": currency,
            "merchant_id": merchant,
            "reference": body.get("reference"),
            "card": {"brand": card_brand(number), "last4": number[-4:]},
            "captured_amount": 0,
            "capture_id": None,
            "created_at": iso(now),
            "expires_at": iso(now + self.auth_ttl_s),
            "_expires_ts": now + self.auth_ttl_s,
            "_ts": now,
        }
        self.auths[a["id"]] = a
        return 201, self.auth_view(a)

    async def op_capture(self, auth_id: Any, body: Any) -> tuple[int, dict]:
        a = self.auths.get(auth_id) if isinstance(auth_id, str) else None
        if a is None:
            raise ApiError(404, "resource_missing", f"No authorization {str(auth_id)[:80]}.")
        body = as_object(body)
        p = Problems()
        check_amount(p, body.get("amount"), "amount", required=False)
        p.raise_if_any()
        if a["capture_id"] is not None:
            raise ApiError(409, "already_captured", "This authorization was already captured.")
        now = time.time()
        if now >= a["_expires_ts"]:
            raise ApiError(410, "authorization_expired", "The authorization has expired.")
        amount = body.get("amount")
        amount = a["amount"] if amount is None else amount
        if amount > a["amount"]:
            raise ApiError(
                409, "amount_exceeds_authorized", f"Capture of {amount} is more than the {a['amount']} authorized."
            )
        c = {
            "id": new_id("cap"),
            "object": "capture",
            "authorization_id": a["id"],
            "amount": amount,
            "currency": a["currency"],
            "merchant_id": a["merchant_id"],
            "status": "captured",
            "refunded_amount": 0,
            "created_at": iso(now),
            "_ts": now,
        }
        a["capture_id"] = c["id"]
        a["captured_amount"] = amount
        a["status"] = "captured"
        self.captures[c["id"]] = c
        self._book(now, c["merchant_id"], c["currency"], captured=amount)
        return 201, self.capture_view(c)

    def capture_view(self, c: dict) -> dict:
        return {k: v for k, v in c.items() if not k.startswith("_")}

    async def op_refund(self, body: Any) -> tuple[int, dict]:
        body = as_object(body)
        p = Problems()
        cap_id = body.get("capture_id")
        if cap_id is None:
            p.add("capture_id", "required", "The capture id is required.")
        elif not isinstance(cap_id, str):
            p.add("capture_id", "not_a_string", "The capture id is a string.")
        check_amount(p, body.get("amount"), "amount", required=False)
        check_optional_str(p, body, "reference", "reference", 200)
        p.raise_if_any()
        c = self.captures.get(cap_id)
        if c is None:
            raise ApiError(404, "resource_missing", f"No capture {cap_id[:80]}.")
        left = c["amount"] - c["refunded_amount"]
        amount = body.get("amount")
        amount = left if amount is None else amount
        if amount < 1 or amount > left:
            raise ApiError(
                409, "refund_exceeds_captured", f"Refund of {amount} is more than the {left} still refundable."
            )
        if self.bug == "refund_overdraw":
            await asyncio.sleep(0.02)  # planted: the check above is stale by the time we write below
        now = time.time()
        c["refunded_amount"] += amount
        c["status"] = "refunded" if c["refunded_amount"] >= c["amount"] else "partially_refunded"
        r = {
            "id": new_id("bre"),
            "object": "refund",
            "capture_id": c["id"],
            "amount": amount,
            "currency": c["currency"],
            "merchant_id": c["merchant_id"],
            "reference": body.get("reference"),
            "status": "refunded",
            "created_at": iso(now),
            "_ts": now,
        }
        self.refunds[r["id"]] = r
        self._book(now, c["merchant_id"], c["currency"], refunded=amount)
        return 201, {k: v for k, v in r.items() if not k.startswith("_")}

    # -- handlers
    async def h_authorize(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        return await with_idempotency(request, self.idem, "authorize", body, lambda: self.op_authorize(body))

    async def h_capture(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        auth_id = request.match_info["id"]
        return await with_idempotency(
            request, self.idem, f"capture:{auth_id}", body, lambda: self.op_capture(auth_id, body)
        )

    async def h_refund(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        return await with_idempotency(request, self.idem, "refund", body, lambda: self.op_refund(body))

    async def h_transaction(self, request: web.Request) -> web.Response:
        tid = request.match_info["id"]
        if tid in self.auths:
            a = self.auth_view(self.auths[tid])
            kind = "authorize"
        elif tid in self.captures:
            a = self.capture_view(self.captures[tid])
            kind = "capture"
        elif tid in self.refunds:
            a = {k: v for k, v in self.refunds[tid].items() if not k.startswith("_")}
            kind = "refund"
        else:
            raise ApiError(404, "resource_missing", f"No transaction {tid[:80]}.")
        out = {
            "id": a["id"],
            "type": kind,
            "status": a["status"],
            "amount": a["amount"],
            "currency": a["currency"],
            "created_at": a["created_at"],
            "merchant_id": a.get("merchant_id"),
        }
        for k in ("authorization_id", "capture_id", "expires_at", "captured_amount", "refunded_amount"):
            if k in a:
                out[k] = a[k]
        return jresp(200, out)

    async def h_settlements(self, request: web.Request) -> web.Response:
        q = request.query
        p = Problems()
        day = q.get("date")
        if day is None:
            p.add("date", "required", "date=YYYY-MM-DD is required.")
        elif not DATE_RE.fullmatch(day):
            p.add("date", "bad_format", "Use YYYY-MM-DD.")
        else:
            try:
                date.fromisoformat(day)
            except ValueError:
                p.add("date", "not_a_date", "Not a calendar date.")
        merchant = q.get("merchant_id") or None
        if merchant is not None and len(merchant) > 100:
            p.add("merchant_id", "too_long", "At most 100 characters.")
        p.raise_if_any()
        row = self.settle.get((day, merchant or "*"), {"captured": 0, "refunded": 0, "count": 0, "by_currency": {}})
        return jresp(
            200,
            {
                "date": day,
                "merchant_id": merchant,
                "captured": row["captured"],
                "refunded": row["refunded"],
                "net": row["captured"] - row["refunded"],
                "count": row["count"],
                "by_currency": row["by_currency"],
            },
        )

    async def h_batch(self, request: web.Request) -> web.Response:
        body = as_object(await read_json(request))
        ops = body.get("operations")
        p = Problems()
        if ops is None:
            p.add("operations", "required", "A list of 1 to 100 operations is required.")
        elif not isinstance(ops, list):
            p.add("operations", "not_a_list", "A list of 1 to 100 operations.")
        elif not 1 <= len(ops) <= 100:
            p.add("operations", "bad_length", f"1 to 100 operations, got {len(ops)}.")
        p.raise_if_any()

        async def work() -> tuple[int, dict]:
            results = []
            for i, op in enumerate(ops):
                try:
                    status, out = await self._batch_op(op)
                except ApiError as e:
                    status, out = e.status, e.body()
                results.append({"index": i, "status_code": status, "body": out})
            ok = sum(1 for r in results if r["status_code"] < 300)
            return 200, {
                "id": new_id("batch"),
                "object": "batch",
                "succeeded": ok,
                "failed": len(results) - ok,
                "results": results,
            }

        return await with_idempotency(request, self.idem, "batch", body, work)

    async def _batch_op(self, op: Any) -> tuple[int, dict]:
        if not isinstance(op, dict):
            p = Problems()
            p.add("operation", "not_an_object", "Each operation is an object.")
            p.raise_if_any()
        kind = op.get("type")
        params = {k: v for k, v in op.items() if k != "type"}
        if kind == "authorize":
            return await self.op_authorize(params)
        if kind == "capture":
            auth_id = params.pop("authorization_id", None)
            if auth_id is None:
                p = Problems()
                p.add("authorization_id", "required", "The authorization to capture.")
                p.raise_if_any()
            return await self.op_capture(auth_id, params)
        if kind == "refund":
            return await self.op_refund(params)
        p = Problems()
        p.add("type", "unsupported", "One of authorize, capture, refund.")
        p.raise_if_any()
        raise AssertionError("unreachable")


# ====================================================================================== payment service


@dataclass
class Payment:
    id: str
    seq: int
    status: str
    amount: int
    currency: str
    merchant_id: str
    customer_id: str | None
    description: str | None
    brand: str
    last4: str
    decline_code: str | None
    ts: float
    capture_id: str | None = None
    refunded_amount: int = 0
    reserved: int = 0  # refunds in flight at the bank
    refunds: list = field(default_factory=list)

    def view(self) -> dict:
        return {
            "id": self.id,
            "object": "payment",
            "status": self.status,
            "amount": self.amount,
            "currency": self.currency,
            "merchant_id": self.merchant_id,
            "customer_id": self.customer_id,
            "description": self.description,
            "card": {"brand": self.brand, "last4": self.last4},
            "decline_code": self.decline_code,
            "refunded_amount": self.refunded_amount,
            "refunds": list(self.refunds),
            "created_at": iso(self.ts),
        }


class BankDown(Exception):
    pass


class BankSlow(Exception):
    pass


class PaymentService:
    def __init__(self, token: str, bank_url: str, bug: str | None, bank_timeout_s: float):
        self.token = token
        self.bank_url = bank_url.rstrip("/")
        self.bug = bug
        self.bank_timeout_s = bank_timeout_s
        self.payments: dict[str, Payment] = {}
        self.by_merchant: dict[str, list[Payment]] = {}  # in creation order (seq ascending)
        self.refund_log: dict[str, list[tuple[float, str, int]]] = {}  # merchant -> (ts, currency, amount)
        self.seq = 0
        self.idem = IdempotencyStore()
        self.session: aiohttp.ClientSession | None = None
        self.app = web.Application(middlewares=[make_middleware(token)], client_max_size=MAX_BODY)
        r = self.app.router
        r.add_get("/health", self.health)
        r.add_post("/payments", self.h_create)
        r.add_post("/pay", self.h_create)
        r.add_get("/payments/{id}", self.h_get)
        r.add_post("/payments/{id}/refunds", self.h_refund)
        r.add_get("/merchants/{merchant_id}/transactions", self.h_list)
        r.add_post("/internal/generate-report", self.h_report)

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
            headers={"Authorization": f"Bearer {self.token}"},
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def bank(self, path: str, body: dict | None = None, key: str | None = None, timeout: float | None = None):
        headers = {"Idempotency-Key": key} if key else None
        t = aiohttp.ClientTimeout(total=timeout or self.bank_timeout_s)
        try:
            if body is None:
                async with self.session.get(self.bank_url + path, timeout=t) as resp:
                    return resp.status, await resp.read()
            async with self.session.post(self.bank_url + path, json=body, headers=headers, timeout=t) as resp:
                return resp.status, orjson.loads(await resp.read() or b"{}")
        except TimeoutError:
            raise BankSlow() from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise BankDown(str(exc)) from None

    @staticmethod
    def bank_failed(stage: str, status: int | None, body: Any = None) -> ApiError:
        code = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code")
        return ApiError(
            502,
            "bank_error",
            f"The bank failed during {stage}.",
            [{"stage": stage, "bank_status": status, "bank_code": code}],
        )

    async def health(self, request: web.Request) -> web.Response:
        try:
            status, _ = await self.bank("/health", timeout=1.0)
            bank = "ok" if status == 200 else "unreachable"
        except (BankDown, BankSlow):
            bank = "unreachable"
        return jresp(200, {"status": "ok", "checks": {"database": "ok", "bank": bank}})

    # -- payments
    def validate_payment(self, body: Any) -> tuple[dict, dict]:
        body = as_object(body)
        p = Problems()
        check_amount(p, body.get("amount"), "amount", required=True)
        currency = check_currency(p, body.get("currency"), "currency")
        merchant = body.get("merchant_id")
        if merchant is None:
            p.add("merchant_id", "required", "The merchant id is required.")
        elif not isinstance(merchant, str) or not MERCHANT_RE.fullmatch(merchant):
            p.add("merchant_id", "unknown_merchant", "Merchant ids look like mer_<letters, digits, _>.")
        check_optional_str(p, body, "description", "description", 1000)
        customer = body.get("customer")
        if customer is not None:
            if not isinstance(customer, dict):
                p.add("customer", "not_an_object", "The customer is an object.")
            else:
                check_optional_str(p, customer, "id", "customer.id", 100)
                check_optional_str(p, customer, "name", "customer.name", 200)
                check_optional_str(p, customer, "email", "customer.email", 254)
                email = customer.get("email")
                if isinstance(email, str) and email and "@" not in email:
                    p.add("customer.email", "bad_format", "Not an email address.")
        card = check_card(p, body.get("card"), "card", for_bank=False)
        p.raise_if_any()
        body = dict(body)
        body["currency"] = currency
        return body, card

    def record(self, pay: Payment) -> None:
        self.payments[pay.id] = pay
        self.by_merchant.setdefault(pay.merchant_id, []).append(pay)

    async def create_payment(self, body: dict, card: dict) -> tuple[int, dict]:
        pid = new_id("pay")
        customer = body.get("customer") or {}
        auth_req = {
            "amount": body["amount"],
            "currency": body["currency"],
            "merchant_id": body["merchant_id"],
            "reference": pid,
            "card": {k: card[k] for k in ("number", "exp_month", "exp_year", "cvc")},
        }
        try:
            status, auth = await self.bank("/v1/authorizations", auth_req, key=f"{pid}:authorize")
        except BankSlow:
            raise ApiError(504, "bank_timeout", "The bank did not answer the authorization in time.") from None
        except BankDown:
            raise self.bank_failed("authorization", None) from None

        def make(status_word: str, decline: str | None) -> Payment:
            self.seq += 1
            return Payment(
                id=pid,
                seq=self.seq,
                status=status_word,
                amount=body["amount"],
                currency=body["currency"],
                merchant_id=body["merchant_id"],
                customer_id=customer.get("id"),
                description=body.get("description"),
                brand=card_brand(card["number"]),
                last4=card["number"][-4:],
                decline_code=decline,
                ts=time.time(),
            )

        if status == 402:
            err = auth.get("error", {}) if isinstance(auth, dict) else {}
            decline = err.get("decline_code") or "generic_decline"
            self.record(make("declined", decline))
            raise ApiError(402, "card_declined", "The card was declined.", decline_code=decline)
        if status != 201 or not isinstance(auth, dict) or "id" not in auth:
            raise self.bank_failed("authorization", status, auth)
        try:
            status, cap = await self.bank(
                f"/v1/authorizations/{auth['id']}/capture", {"amount": body["amount"]}, key=f"{pid}:capture"
            )
        except BankSlow:
            raise ApiError(504, "bank_timeout", "The bank did not answer the capture in time.") from None
        except BankDown:
            raise self.bank_failed("capture", None) from None
        if status != 201 or not isinstance(cap, dict) or "id" not in cap:
            raise self.bank_failed("capture", status, cap)
        pay = make("succeeded", None)
        pay.capture_id = cap["id"]
        self.record(pay)
        return 201, pay.view()

    async def h_create(self, request: web.Request) -> web.Response:
        raw_body = await read_json(request)
        body, card = self.validate_payment(raw_body)
        return await with_idempotency(
            request, self.idem, "create_payment", raw_body, lambda: self.create_payment(body, card)
        )

    async def h_get(self, request: web.Request) -> web.Response:
        pay = self.payments.get(request.match_info["id"])
        if pay is None:
            raise ApiError(404, "resource_missing", "No such payment.")
        return jresp(200, pay.view())

    # -- refunds
    async def refund(self, pay: Payment, amount: int | None, reason: str | None) -> tuple[int, dict]:
        if pay.status == "declined":
            raise ApiError(409, "payment_not_refundable", "A declined payment has nothing to refund.")
        if pay.status == "refunded" and self.bug != "refund_overdraw":
            raise ApiError(409, "payment_not_refundable", "The payment is already fully refunded.")
        if self.bug == "refund_overdraw":
            # PLANTED BUG: check against the refunded total only, no reservation, then a slow await.
            left = pay.amount - pay.refunded_amount
        else:
            left = pay.amount - pay.refunded_amount - pay.reserved
        want = left if amount is None else amount
        if want < 1 or want > left:
            raise ApiError(
                409,
                "refund_exceeds_captured",
                f"Refund of {want} is more than the {max(left, 0)} still refundable.",
                [{"path": "amount", "problem": "exceeds_refundable", "hint": f"refundable: {max(left, 0)}"}],
            )
        rid = new_id("re")
        if self.bug == "refund_overdraw":
            await asyncio.sleep(0.02)
        else:
            pay.reserved += want
        try:
            status, out = await self.bank(
                "/v1/refunds", {"capture_id": pay.capture_id, "amount": want, "reference": rid}, key=f"{rid}:refund"
            )
        except BankSlow:
            raise ApiError(504, "bank_timeout", "The bank did not answer the refund in time.") from None
        except BankDown:
            raise self.bank_failed("refund", None) from None
        finally:
            if self.bug != "refund_overdraw":
                pay.reserved -= want
        if status == 409:
            raise ApiError(409, "refund_exceeds_captured", "The bank refused: more than was captured.")
        if status != 201 or not isinstance(out, dict):
            raise self.bank_failed("refund", status, out)
        now = time.time()
        pay.refunded_amount += want
        pay.status = "refunded" if pay.refunded_amount >= pay.amount else "partially_refunded"
        refund = {
            "id": rid,
            "object": "refund",
            "payment_id": pay.id,
            "amount": want,
            "currency": pay.currency,
            "reason": reason,
            "status": "succeeded",
            "created_at": iso(now),
        }
        pay.refunds.append(refund)
        self.refund_log.setdefault(pay.merchant_id, []).append((now, pay.currency, want))
        return 201, refund

    async def h_refund(self, request: web.Request) -> web.Response:
        raw_body = await read_json(request)
        pid = request.match_info["id"]
        pay = self.payments.get(pid)
        if pay is None:
            raise ApiError(404, "resource_missing", "No such payment.")
        body = as_object(raw_body)
        p = Problems()
        check_amount(p, body.get("amount"), "amount", required=False)
        check_optional_str(p, body, "reason", "reason", 500)
        p.raise_if_any()
        return await with_idempotency(
            request,
            self.idem,
            f"refund:{pid}",
            raw_body,
            lambda: self.refund(pay, body.get("amount"), body.get("reason")),
        )

    # -- listing
    @staticmethod
    def encode_cursor(merchant: str, seq: int) -> str:
        raw = orjson.dumps({"m": merchant, "before": seq})
        return "cur1_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode_cursor(merchant: str, cursor: str) -> int | None:
        if not cursor.startswith("cur1_") or len(cursor) > 400:
            return None
        data = cursor[5:]
        try:
            obj = orjson.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
        except (binascii.Error, ValueError):
            return None
        if not isinstance(obj, dict) or obj.get("m") != merchant or not is_int(obj.get("before")):
            return None
        return obj["before"]

    async def h_list(self, request: web.Request) -> web.Response:
        merchant = request.match_info["merchant_id"]
        q = request.query
        p = Problems()
        limit = 20
        if "limit" in q:
            raw = q["limit"]
            if not DIGITS_RE.fullmatch(raw) or len(raw) > 3 or not 1 <= int(raw) <= 100:
                p.add("limit", "out_of_range", "limit is an integer 1..100.")
            else:
                limit = int(raw)
        before = None
        if q.get("cursor"):
            before = self.decode_cursor(merchant, q["cursor"])
            if before is None:
                p.add("cursor", "bad_cursor", "Use next_cursor from a previous page of this merchant.")
        status = q.get("status") or None
        if status is not None and status not in PAYMENT_STATUSES:
            p.add("status", "unsupported", f"One of {', '.join(PAYMENT_STATUSES)}.")
        pays = self.by_merchant.get(merchant)
        if pays is None:
            raise ApiError(404, "resource_missing", f"No merchant {merchant[:80]}.")
        p.raise_if_any()
        # newest first: walk the creation-ordered list backwards from the cursor (bisect on seq)
        lo, hi = 0, len(pays)
        if before is not None:
            while lo < hi:
                mid = (lo + hi) // 2
                if pays[mid].seq < before:
                    lo = mid + 1
                else:
                    hi = mid
            start = lo - 1
        else:
            start = len(pays) - 1
        page: list[Payment] = []
        more = False
        for i in range(start, -1, -1):
            pay = pays[i]
            if status is not None and pay.status != status:
                continue
            if len(page) == limit:
                more = True
                break
            page.append(pay)
        return jresp(
            200,
            {
                "object": "list",
                "data": [x.view() for x in page],
                "has_more": more,
                "next_cursor": self.encode_cursor(merchant, page[-1].seq) if more else None,
            },
        )

    # -- report
    @staticmethod
    def parse_instant(p: Problems, v: Any, path: str, end: bool) -> datetime | None:
        """YYYY-MM-DD (a whole UTC day) or an ISO 8601 instant; returns a half-open bound."""
        if v is None:
            p.add(path, "required", "A date (YYYY-MM-DD) is required.")
            return None
        if not isinstance(v, str) or len(v) > 40:
            p.add(path, "bad_format", "A date YYYY-MM-DD or an ISO 8601 timestamp.")
            return None
        try:
            if DATE_RE.fullmatch(v):
                d = datetime.combine(date.fromisoformat(v), datetime.min.time(), UTC)
                return d + timedelta(days=1) if end else d
            d = datetime.fromisoformat(v)
            d = d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
            return d + timedelta(microseconds=1) if end else d
        except ValueError:
            p.add(path, "bad_format", "A date YYYY-MM-DD or an ISO 8601 timestamp.")
            return None

    async def h_report(self, request: web.Request) -> web.Response:
        raw_body = await read_json(request)
        body = as_object(raw_body)
        p = Problems()
        merchant = body.get("merchant_id")
        if merchant is None:
            p.add("merchant_id", "required", "The merchant id is required.")
        elif not isinstance(merchant, str):
            p.add("merchant_id", "not_a_string", "The merchant id is a string.")
        start = self.parse_instant(p, body.get("from"), "from", end=False)
        stop = self.parse_instant(p, body.get("to"), "to", end=True)
        if start is not None and stop is not None:
            if stop <= start:
                p.add("to", "before_from", "to must not be before from.")
            elif stop - start > timedelta(days=366):
                p.add("to", "range_too_long", "The period covers more than 366 days.")
        p.raise_if_any()
        pays = self.by_merchant.get(merchant)
        if pays is None:
            raise ApiError(404, "resource_missing", f"No merchant {merchant[:80]}.")

        t0, t1 = start.timestamp(), stop.timestamp()

        async def work() -> tuple[int, dict]:
            by_cur: dict[str, dict] = {}
            count = gross = refunded = declined = 0
            for pay in pays:
                if not t0 <= pay.ts < t1:
                    continue
                if pay.status == "declined":
                    declined += 1
                    continue
                count += 1
                gross += pay.amount
                row = by_cur.setdefault(pay.currency, {"count": 0, "gross": 0, "refunded": 0, "net": 0})
                row["count"] += 1
                row["gross"] += pay.amount
            for ts, currency, amount in self.refund_log.get(merchant, ()):
                if t0 <= ts < t1:
                    refunded += amount
                    row = by_cur.setdefault(currency, {"count": 0, "gross": 0, "refunded": 0, "net": 0})
                    row["refunded"] += amount
            for row in by_cur.values():
                row["net"] = row["gross"] - row["refunded"]
            return 200, {
                "merchant_id": merchant,
                "from": body["from"],
                "to": body["to"],
                "count": count,
                "declined_count": declined,
                "gross": gross,
                "refunded": refunded,
                "net": gross - refunded,
                "by_currency": by_cur,
            }

        return await with_idempotency(request, self.idem, "report", raw_body, work)


# ================================================================================================ main


async def serve(args: argparse.Namespace) -> int:
    bug = args.bug if args.bug != "none" else None
    bank = Bank(args.token, bug, args.auth_ttl_s)
    bank_url = args.bank_url or f"http://127.0.0.1:{args.bank_port}"
    pay = PaymentService(args.token, bank_url, bug, args.bank_timeout_s)
    await pay.open()
    runners = []
    for name, app, port in (("banking_api", bank.app, args.bank_port), ("payment_service", pay.app, args.payment_port)):
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, args.host, port, shutdown_timeout=2.0, backlog=1024)
        await site.start()
        runners.append(runner)
        print(f"listening {name} http://{args.host}:{port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for runner in reversed(runners):
        await runner.cleanup()
    await pay.close()
    print("stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--payment-port", type=int, default=8000)
    ap.add_argument("--bank-port", type=int, default=1080)
    ap.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1"])
    ap.add_argument("--bank-url", default=None, help="where the PaymentService finds the bank (default: --bank-port)")
    ap.add_argument("--token", default=os.environ.get("AUTH_TOKEN") or DEFAULT_TOKEN)
    ap.add_argument("--bug", default="none", choices=["none", "refund_overdraw"])
    ap.add_argument("--auth-ttl-s", type=float, default=7 * 24 * 3600, help="authorization lifetime (expires_at)")
    ap.add_argument("--bank-timeout-s", type=float, default=5.0, help="PaymentService -> bank timeout (504 after)")
    args = ap.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(args))
    return uvloop.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
