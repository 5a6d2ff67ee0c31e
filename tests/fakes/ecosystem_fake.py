"""An independent, in-memory fake of the ``ecosystem`` dialect (/work/shared/apis/ecosystem.md).

One process serves BOTH services of the seed-000 ecosystem, each on its own loopback port: the PaymentService
(FastAPI-shaped answers, in-memory store instead of PostgreSQL) and the BankingAPI (MockServer-style stateless
canned stubs). The PaymentService really calls the fake bank over HTTP: authorize, then capture on approval;
refunds call the bank's ``/api/v1/refund`` stub. It was written from the page alone, as strict and as odd as the
page is (a bank decline is a ``200`` payment with ``status: "failed"``; an unknown refund target is a ``400``;
``Idempotency-Key`` is ignored; there are no listings; amounts are decimal strings in major units).

    python -m tests.fakes.ecosystem_fake --payment-port 8000 --bank-port 1080 [--bug refund_beyond_captured]

Prints one ``listening ...`` line per service when ready; exits 0 on SIGTERM/SIGINT.

``--bug refund_beyond_captured`` plants one money bug: each refund is compared with the original amount only,
not with what was already refunded, so refunds are accepted cumulatively beyond the captured amount.

Body validation uses pydantic v2 models (a runtime dependency of the suite) and FastAPI's own encoder, so the
``422`` bodies have FastAPI's exact shape: ``{"detail": [{"type", "loc": ["body", ...], "msg", "input", "ctx"?}]}``.

Choices made where the page is silent (what a FastAPI + PostgreSQL service plausibly does):

- Request handling follows FastAPI's order: routing (unknown path -> ``404``, wrong method -> ``405``), then the
  body is read and parsed (malformed JSON -> ``422 json_invalid`` with ``loc: ["body", <char offset>]`` and
  ``ctx.error`` from Python's json module, *before* authentication; undecodable bytes -> ``400 "There was an
  error parsing the body"``), then the bearer dependency (``401``), then body validation (``422``), then the
  handler. Strict content type (current FastAPI default): a body without ``Content-Type: application/json`` (or
  ``+json``) is not parsed and fails validation as ``model_attributes_type``; an empty body is ``missing`` at
  ``loc: ["body"]``. The refund body is required too (``{}`` is fine, no body is a ``422``).
- Auth: accepted tokens are ``test_token_123456789`` and ``test_token_987654321``; a missing header, a non-Bearer
  scheme or an empty credential -> ``"Not authenticated"`` (FastAPI's HTTPBearer), a wrong token ->
  ``"Invalid authentication token"``. No ``WWW-Authenticate`` header (the service's own handler shapes errors).
- Every HTTP error the service raises (401, 400, 404, 405, 500) uses ``{"error": "HTTP_<code>", "message",
  "timestamp"}``; unknown routes give ``{"error": "HTTP_404", "message": "Not Found", ...}``. ``500`` uses
  ``"Internal server error"``. A 422 whose ``input`` holds NaN/Infinity (Python's json accepts those literals)
  cannot be serialised by Starlette (``allow_nan=False``) and becomes that 500.
- Error ``timestamp`` is naive UTC ``isoformat()``; object timestamps are UTC serialised pydantic-style with ``Z``.
- Payment model: ``merchant_id``, ``amount``, ``currency``, ``payment_method`` required; ``card_data``,
  ``description`` (no length limit), ``metadata`` (object, default ``{}``; ``null`` is a 422) optional; extra
  fields ignored. All five ``card_data`` fields required; ``card_number`` has spaces/dashes stripped *before* the
  13-19 length check (pydantic ``string_too_short``/``string_too_long``), digits are not checked, nor is an
  expiry in the past. ``currency`` must be exactly 3 ASCII letters (length -> ``string_too_*``, non-letters ->
  ``value_error``) and is upper-cased. Amount accepts strings and numbers as pydantic's Decimal does (floats via
  their repr, booleans refused); trailing zeros beyond 2 places are refused (``decimal_max_places``).
- A card method (``credit_card``/``debit_card``) without ``card_data`` -> ``400 "Card data required for card
  payments"``; ``bank_transfer``/``digital_wallet`` go to the bank with null card fields (the stub approves).
- The amount column is assumed ``NUMERIC(10,2)``: an amount of 100,000,000 or more overflows the insert -> ``500``
  (nothing stored, no bank call). Amounts are returned quantized to 2 places (``"20"`` -> ``"20.00"``).
- The authorize call sends ``amount`` as a float in major units; capture sends ``{"authorization_id",
  "amount"}``; refund sends ``{"capture_id", "amount"}``. Bank timeout 10 s. A bank error other than 402 (5xx,
  unreachable, bad JSON) -> ``500``; the stored transaction is then ``failed`` (after authorize) or stays
  ``authorized`` (after capture), and a refund is stored ``failed`` and not counted.
- Payment ids ``txn_<24 hex>``, refund ids ``ref_<24 hex>``; ``expires_at`` = creation + 7 days;
  ``merchant_id`` is not on the payment object (the page's field list omits it). Any accepted token may read any
  payment. Refunds leave the transaction ``captured`` and its ``updated_at`` unchanged. A refund without
  ``amount`` asks for the whole original amount (so it is refused after any partial refund). Refund ``amount``
  has the same Decimal constraints as the payment amount; ``reason`` is at most 100 characters.
- ``GET /health`` probes the bank's ``/health`` (2 s timeout) each time; if the bank does not answer 200,
  ``services.banking_service`` is false and ``status`` is ``"degraded"`` (still HTTP 200). ``GET /`` answers
  ``{"message": "Payment Service API", "version": "1.0.0"}``.
- Nothing is ever evicted from the in-memory store (a database keeps everything).
- Bank stubs: fixed timestamps (``2024-01-01T00:00:00Z``, canned), no auth, any body accepted; only a JSON body
  whose ``card_number`` is the string ``"4000000000000002"`` is declined. Anything unmatched (path or method) is
  MockServer's empty ``404``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import signal
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator

TOKENS = frozenset({"test_token_123456789", "test_token_987654321"})
VERSION = "1.0.0"
CENTS = Decimal("0.01")
NUMERIC_LIMIT = Decimal("100000000")  # NUMERIC(10,2)
BANK_TIMEOUT = aiohttp.ClientTimeout(total=10)
HEALTH_TIMEOUT = aiohttp.ClientTimeout(total=2)
DECLINED_CARD = "4000000000000002"
CANNED_TS = "2024-01-01T00:00:00Z"
CURRENCY_RE = re.compile(r"[A-Za-z]{3}")


# ---------------------------------------------------------------- request models (pydantic, as FastAPI would)


class PaymentMethod(StrEnum):
    credit_card = "credit_card"
    debit_card = "debit_card"
    bank_transfer = "bank_transfer"
    digital_wallet = "digital_wallet"


class CardData(BaseModel):
    card_number: str = Field(..., min_length=13, max_length=19)
    expiry_month: int = Field(..., ge=1, le=12)
    expiry_year: int = Field(..., ge=2024, le=2050)
    cvv: str = Field(..., min_length=3, max_length=4)
    cardholder_name: str = Field(..., min_length=1, max_length=100)

    @field_validator("card_number", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return v.replace(" ", "").replace("-", "") if isinstance(v, str) else v


class PaymentRequest(BaseModel):
    merchant_id: str
    amount: Decimal = Field(..., gt=0, decimal_places=2)
    currency: str = Field(..., min_length=3, max_length=3)
    payment_method: PaymentMethod
    card_data: CardData | None = None
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if not CURRENCY_RE.fullmatch(v):
            raise ValueError("Currency must be a 3-letter code")
        return v.upper()


class RefundRequest(BaseModel):
    amount: Decimal | None = Field(None, gt=0, decimal_places=2)
    reason: str | None = Field(None, max_length=100)
    metadata: dict[str, Any] = Field(default_factory=dict)


PAYMENT_ADAPTER = TypeAdapter(PaymentRequest)
REFUND_ADAPTER = TypeAdapter(RefundRequest)


# ---------------------------------------------------------------- helpers


def now() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat().replace("+00:00", "Z")


def money(d: Decimal) -> str:
    return str(d.quantize(CENTS))


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def http_error(status: int, message: str) -> web.Response:
    body = {
        "error": f"HTTP_{status}",
        "message": message,
        "timestamp": datetime.now(UTC).replace(tzinfo=None).isoformat(),
    }
    return json_response(body, status)


def server_error() -> web.Response:
    return http_error(500, "Internal server error")


def validation_error(errors: list[dict]) -> web.Response:
    try:  # Starlette's JSONResponse refuses NaN/Infinity
        body = json.dumps(
            {"detail": jsonable_encoder(errors)}, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
    except ValueError:
        return server_error()
    return web.Response(body=body.encode(), status=422, content_type="application/json")


class _NoBody:
    pass


NO_BODY = _NoBody()


async def read_body(request: web.Request) -> Any:
    """FastAPI's body reading: returns the parsed body (NO_BODY when empty, bytes when not JSON-typed), or raises
    a ready web.Response (the json_invalid 422 or the 400 parse error)."""
    raw = await request.read()
    if not raw:
        return NO_BODY
    ctype = request.headers.get("Content-Type")
    if not ctype:
        return raw  # strict content type
    main, _, rest = ctype.partition("/")
    subtype = rest.split(";", 1)[0].strip().lower()
    if main.strip().lower() != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        err = {"type": "json_invalid", "loc": ["body", e.pos], "msg": "JSON decode error", "input": {}}
        err["ctx"] = {"error": e.msg}
        raise _Reply(validation_error([err])) from e
    except Exception as e:
        raise _Reply(http_error(400, "There was an error parsing the body")) from e


class _Reply(Exception):  # noqa: N818 (a control-flow carrier, not an error)
    def __init__(self, response: web.Response):
        self.response = response


def check_auth(request: web.Request) -> None:
    header = request.headers.get("Authorization")
    scheme, _, cred = (header or "").partition(" ")
    cred = cred.strip()
    if not (header and scheme and cred) or scheme.lower() != "bearer":
        raise _Reply(http_error(401, "Not authenticated"))
    if cred not in TOKENS:
        raise _Reply(http_error(401, "Invalid authentication token"))


def validate(adapter: TypeAdapter, body: Any) -> Any:
    if body is NO_BODY:
        raise _Reply(validation_error([{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]))
    try:
        return adapter.validate_python(body, from_attributes=True)
    except ValidationError as e:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in e.errors(include_url=False)]
        raise _Reply(validation_error(errors)) from e


# ---------------------------------------------------------------- PaymentService


class Transaction:
    __slots__ = (
        "transaction_id",
        "merchant_id",
        "status",
        "amount",
        "currency",
        "payment_method",
        "card_last_four",
        "authorization_id",
        "capture_id",
        "description",
        "metadata",
        "created_at",
        "updated_at",
        "expires_at",
        "refunded",
        "lock",
    )

    def as_json(self) -> dict:
        return {
            "transaction_id": self.transaction_id,
            "status": self.status,
            "amount": money(self.amount),
            "currency": self.currency,
            "payment_method": self.payment_method,
            "card_last_four": self.card_last_four,
            "authorization_id": self.authorization_id,
            "capture_id": self.capture_id,
            "description": self.description,
            "metadata": self.metadata,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "expires_at": iso(self.expires_at),
        }


class PaymentService:
    def __init__(self, bank_url: str, bug: str | None = None):
        self.bank_url = bank_url.rstrip("/")
        self.bug = bug
        self.store: dict[str, Transaction] = {}
        self.refunds: dict[str, dict] = {}
        self.session: aiohttp.ClientSession | None = None

    async def start(self, app: web.Application) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100), timeout=BANK_TIMEOUT)

    async def close(self, app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware], client_max_size=16 * 1024 * 1024)
        app.router.add_get("/health", self.health)
        app.router.add_get("/", self.root)
        app.router.add_post("/api/v1/payments/process", self.process)
        app.router.add_get("/api/v1/payments/{transaction_id}", self.get_payment)
        app.router.add_post("/api/v1/payments/{transaction_id}/refund", self.refund)
        app.on_startup.append(self.start)
        app.on_cleanup.append(self.close)
        return app

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Reply as r:
            return r.response
        except web.HTTPException as e:  # router 404/405
            return http_error(e.status, e.reason)
        except Exception:
            return server_error()

    async def bank_post(self, path: str, body: dict) -> tuple[int, dict | None]:
        """(status, JSON body or None); raises on transport errors."""
        assert self.session is not None
        async with self.session.post(self.bank_url + path, json=body) as resp:
            raw = await resp.read()
            try:
                data = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                data = None
            return resp.status, data if isinstance(data, dict) else None

    async def health(self, request: web.Request) -> web.Response:
        assert self.session is not None
        try:
            async with self.session.get(self.bank_url + "/health", timeout=HEALTH_TIMEOUT) as resp:
                await resp.read()
                bank_ok = resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            bank_ok = False
        services = {"database": True, "banking_service": bank_ok, "event_service": True}
        return json_response(
            {
                "status": "healthy" if all(services.values()) else "degraded",
                "timestamp": iso(now()),
                "version": VERSION,
                "services": services,
            }
        )

    async def root(self, request: web.Request) -> web.Response:
        return json_response({"message": "Payment Service API", "version": VERSION})

    async def process(self, request: web.Request) -> web.Response:
        body = await read_body(request)
        check_auth(request)
        req: PaymentRequest = validate(PAYMENT_ADAPTER, body)
        if len(req.merchant_id) < 3:
            return http_error(400, "Invalid merchant ID")
        card = req.card_data
        if card is None and req.payment_method in (PaymentMethod.credit_card, PaymentMethod.debit_card):
            return http_error(400, "Card data required for card payments")
        amount = req.amount.quantize(CENTS)
        if amount >= NUMERIC_LIMIT:
            return server_error()  # numeric field overflow on INSERT

        t = Transaction()
        t.transaction_id = "txn_" + secrets.token_hex(12)
        t.merchant_id = req.merchant_id
        t.status = "pending"
        t.amount = amount
        t.currency = req.currency
        t.payment_method = req.payment_method.value
        t.card_last_four = card.card_number[-4:] if card else None
        t.authorization_id = None
        t.capture_id = None
        t.description = req.description
        t.metadata = req.metadata
        t.created_at = t.updated_at = now()
        t.expires_at = t.created_at + timedelta(days=7)
        t.refunded = Decimal(0)
        t.lock = asyncio.Lock()
        self.store[t.transaction_id] = t

        auth_body = {
            "card_number": card.card_number if card else None,
            "expiry_month": card.expiry_month if card else None,
            "expiry_year": card.expiry_year if card else None,
            "cvv": card.cvv if card else None,
            "amount": float(amount),
            "currency": t.currency,
            "merchant_id": t.merchant_id,
        }
        try:
            status, data = await self.bank_post("/api/v1/authorize", auth_body)
        except (aiohttp.ClientError, TimeoutError):
            status, data = 0, None
        if status == 402 or (status == 200 and data is not None and data.get("status") != "approved"):
            t.status, t.updated_at = "failed", now()
            return json_response(t.as_json())
        if status != 200 or data is None:
            t.status, t.updated_at = "failed", now()
            return server_error()
        t.status, t.authorization_id, t.updated_at = "authorized", data.get("authorization_id"), now()

        try:
            status, data = await self.bank_post(
                "/api/v1/capture", {"authorization_id": t.authorization_id, "amount": float(amount)}
            )
        except (aiohttp.ClientError, TimeoutError):
            status, data = 0, None
        if status != 200 or data is None:
            return server_error()
        t.status, t.capture_id, t.updated_at = "captured", data.get("capture_id"), now()
        return json_response(t.as_json())

    async def get_payment(self, request: web.Request) -> web.Response:
        check_auth(request)
        tid = request.match_info["transaction_id"]
        t = self.store.get(tid)
        if t is None:
            return http_error(404, f"Payment {tid} not found")
        return json_response(t.as_json())

    async def refund(self, request: web.Request) -> web.Response:
        body = await read_body(request)
        check_auth(request)
        req: RefundRequest = validate(REFUND_ADAPTER, body)
        tid = request.match_info["transaction_id"]
        t = self.store.get(tid)
        if t is None:
            return http_error(400, f"Transaction {tid} not found")
        async with t.lock:
            if t.status != "captured":
                return http_error(400, "Can only refund captured transactions")
            amount = t.amount if req.amount is None else req.amount.quantize(CENTS)
            already = Decimal(0) if self.bug == "refund_beyond_captured" else t.refunded
            if already + amount > t.amount:
                return http_error(400, "Refund amount cannot exceed original transaction amount")
            created = now()
            refund = {
                "refund_id": "ref_" + secrets.token_hex(12),
                "transaction_id": tid,
                "amount": money(amount),
                "currency": t.currency,
                "status": "processing",
                "reason": req.reason,
                "external_refund_id": None,
                "metadata": req.metadata,
                "created_at": iso(created),
                "updated_at": iso(created),
                "processed_at": None,
            }
            self.refunds[refund["refund_id"]] = refund
            try:
                status, data = await self.bank_post(
                    "/api/v1/refund", {"capture_id": t.capture_id, "amount": float(amount)}
                )
            except (aiohttp.ClientError, TimeoutError):
                status, data = 0, None
            if status != 200 or data is None:
                refund["status"], refund["updated_at"] = "failed", iso(now())
                return server_error()
            done = iso(now())
            refund.update(status="completed", external_refund_id=data.get("refund_id"), updated_at=done)
            refund["processed_at"] = done
            t.refunded += amount
            return json_response(refund)


# ---------------------------------------------------------------- BankingAPI (MockServer stubs)


def bank_app() -> web.Application:
    @web.middleware
    async def unmatched(request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            return web.Response(status=404)  # MockServer: no expectation matched

    async def health(request: web.Request) -> web.Response:
        return json_response({"status": "healthy", "service": "banking-api-mock", "timestamp": CANNED_TS})

    async def authorize(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict) and body.get("card_number") == DECLINED_CARD:
            return json_response(
                {
                    "error": "card_declined",
                    "message": "Your card was declined.",
                    "decline_code": "generic_decline",
                    "timestamp": CANNED_TS,
                },
                402,
            )
        return json_response(
            {
                "authorization_id": "auth_123456789",
                "status": "approved",
                "amount": 1000,
                "currency": "USD",
                "message": "Transaction approved",
                "timestamp": CANNED_TS,
            }
        )

    async def capture(request: web.Request) -> web.Response:
        await request.read()
        return json_response(
            {
                "capture_id": "cap_123456789",
                "status": "captured",
                "amount": 1000,
                "currency": "USD",
                "message": "Transaction captured successfully",
                "timestamp": CANNED_TS,
            }
        )

    async def refund(request: web.Request) -> web.Response:
        await request.read()
        return json_response(
            {
                "refund_id": "ref_123456789",
                "status": "refunded",
                "amount": 1000,
                "currency": "USD",
                "message": "Refund processed successfully",
                "timestamp": CANNED_TS,
            }
        )

    async def transaction(request: web.Request) -> web.Response:
        return json_response(
            {
                "transaction_id": request.match_info["tid"],
                "status": "completed",
                "amount": 1000,
                "currency": "USD",
                "timestamp": CANNED_TS,
            }
        )

    async def settlements(request: web.Request) -> web.Response:
        return json_response({"settlements": [], "total_count": 0, "page": 1, "per_page": 50})

    async def batch(request: web.Request) -> web.Response:
        await request.read()
        return json_response(
            {"batch_id": "batch_123456789", "status": "processing", "total_transactions": 1, "timestamp": CANNED_TS}
        )

    app = web.Application(middlewares=[unmatched], client_max_size=16 * 1024 * 1024)
    app.router.add_get("/health", health)
    app.router.add_post("/api/v1/authorize", authorize)
    app.router.add_post("/api/v1/capture", capture)
    app.router.add_post("/api/v1/refund", refund)
    app.router.add_get("/api/v1/transactions/{tid}", transaction)
    app.router.add_get("/api/v1/settlements", settlements)
    app.router.add_post("/api/v1/batch/authorize", batch)
    return app


# ---------------------------------------------------------------- process


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    bank_runner = web.AppRunner(bank_app(), access_log=None)
    await bank_runner.setup()
    await web.TCPSite(bank_runner, args.host, args.bank_port, backlog=1024).start()
    print(f"BankingAPI (ecosystem fake) listening on http://{args.host}:{args.bank_port}", flush=True)

    bank_url = args.bank_url or f"http://127.0.0.1:{args.bank_port}"
    service = PaymentService(bank_url, bug=args.bug)
    pay_runner = web.AppRunner(service.app(), access_log=None)
    await pay_runner.setup()
    await web.TCPSite(pay_runner, args.host, args.payment_port, backlog=1024).start()
    bug = f" [bug: {args.bug}]" if args.bug else ""
    print(f"PaymentService (ecosystem fake) listening on http://{args.host}:{args.payment_port}{bug}", flush=True)

    await stop.wait()
    await pay_runner.cleanup()
    await bank_runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--payment-port", type=int, default=8000)
    p.add_argument("--bank-port", type=int, default=1080)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--bank-url", default=None, help="bank the PaymentService calls (default: this process's stubs)")
    p.add_argument("--bug", choices=["refund_beyond_captured"], default=None)
    args = p.parse_args(argv)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
