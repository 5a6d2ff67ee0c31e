"""Pieces both sandbox services share: the error shape, auth and body-size guards,
JSON responses, test-card rules and idempotency bookkeeping."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from datetime import date
from typing import Annotated, Any, Literal

import orjson
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox import DEFAULT_TOKEN

MAX_BODY_BYTES = 64 * 1024
SUPPORTED_CURRENCIES = frozenset(
    {"USD", "EUR", "GBP", "JPY", "INR", "CAD", "AUD", "CHF", "SEK", "NOK", "DKK", "NZD", "SGD", "HKD", "MXN", "BRL"}
)
# Paths any caller may reach without a token.
PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})

# Card-network style test numbers: the outcome is fixed by the number (see the contract).
DECLINE_CARDS = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
}
PROCESSING_ERROR_CARD = "4000000000000119"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def now() -> float:
    return time.time()


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def configured_token() -> str:
    raw = os.environ.get("AUTH_TOKEN", DEFAULT_TOKEN).strip()
    return raw[7:].strip() if raw.lower().startswith("bearer ") else raw


class ApiError(Exception):
    """An error answered with the contract's shape ``{"error": {...}}``."""

    def __init__(self, status: int, code: str, message: str, details: list | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.extra = extra

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details, **self.extra}}


def dump_json(content: Any) -> bytes:
    """orjson, falling back to the stdlib for what orjson refuses (lone surrogates echoed back
    from fuzzed input): an error body must always be sendable."""
    try:
        return orjson.dumps(content)
    except TypeError:
        return json.dumps(content, ensure_ascii=True, default=str).encode()


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dump_json(content)


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


def _field_name(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    """Every error, FastAPI's own included, leaves in the contract's shape; 400 for bad JSON."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(ApiError(400, "invalid_json", "Request body is not valid JSON"))
        details = [
            {"field": _field_name(tuple(e.get("loc", ()))), "issue": str(e.get("msg", "invalid"))} for e in errors
        ]
        fields = ", ".join(sorted({d["field"] for d in details}))
        return error_response(ApiError(422, "validation_error", f"Invalid request: {fields}", details))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(ApiError(exc.status_code, code, str(exc.detail)))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - last resort
        return error_response(ApiError(500, "internal_error", f"Unexpected {type(exc).__name__}"))


class GuardMiddleware:
    """Pure-ASGI guard run before routing: bearer token (401) and 64 KiB body limit (413).

    It runs ahead of FastAPI's body parsing, so an unauthenticated caller never gets its
    body parsed and an oversize body is refused without being buffered."""

    def __init__(self, app: Any, token_getter=configured_token):
        self.app = app
        self.token = token_getter().encode()  # read once: the environment does not change under a server

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if scope["path"] not in PUBLIC_PATHS:
            auth = headers.get(b"authorization", b"").decode("latin-1")
            supplied = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            if not supplied or not hmac.compare_digest(supplied.encode(), self.token):
                return await self._reject(send, ApiError(401, "unauthorized", "Missing or invalid bearer token"))
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return await self._reject(send, _too_large())

        if scope["method"] in ("POST", "PUT", "PATCH") and b"json" not in headers.get(b"content-type", b""):
            # JSON in, whatever the client labelled it: a mislabelled body is parsed, and
            # malformed JSON then gets the contract's 400 rather than an opaque 422.
            scope = dict(scope)
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope["headers"].append((b"content-type", b"application/json"))
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY_BYTES:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._reject(send, _too_large())

    @staticmethod
    async def _reject(send: Any, err: ApiError) -> None:
        body = dump_json(err.body())
        await send(
            {
                "type": "http.response.start",
                "status": err.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


def _too_large() -> ApiError:
    return ApiError(413, "payload_too_large", f"Request body exceeds {MAX_BODY_BYTES} bytes")


# --- cards -------------------------------------------------------------------------------


def luhn_valid(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_brand(number: str) -> str:
    if number[:2] in ("34", "37"):
        return "amex"
    if number[0] == "4":
        return "visa"
    if "51" <= number[:2] <= "55" or "2221" <= number[:4] <= "2720":
        return "mastercard"
    if number.startswith("6011") or number.startswith("65") or "644" <= number[:3] <= "649":
        return "discover"
    return "unknown"


class Card(BaseModel):
    model_config = ConfigDict(extra="ignore")

    number: StrictStr = Field(description="Digits only, 12-19 long, Luhn-valid", examples=["4242424242424242"])
    exp_month: StrictInt = Field(ge=1, le=12)
    exp_year: StrictInt = Field(ge=2000, le=2100)
    cvc: StrictStr = Field(description="3 digits, 4 for Amex", examples=["123"])
    holder_name: StrictStr | None = Field(default=None, max_length=200)

    @field_validator("number")
    @classmethod
    def _number(cls, v: str) -> str:
        if not v.isascii() or not v.isdigit() or not 12 <= len(v) <= 19:
            raise ValueError("must be 12-19 digits")
        if not luhn_valid(v):
            raise ValueError("fails the Luhn check")
        return v

    @model_validator(mode="after")
    def _expiry_and_cvc(self) -> Card:
        today = date.today()
        if (self.exp_year, self.exp_month) < (today.year, today.month):
            raise ValueError("card is expired (exp_month/exp_year in the past)")
        want = 4 if card_brand(self.number) == "amex" else 3
        if not (self.cvc.isascii() and self.cvc.isdigit() and len(self.cvc) == want):
            raise ValueError(f"cvc must be {want} digits for this card brand")
        return self

    def public(self) -> dict:
        return {"brand": card_brand(self.number), "last4": self.number[-4:]}


Amount = Field(ge=1, le=99_999_999, description="Integer in minor units")
MerchantId = Field(pattern=r"^mer_[A-Za-z0-9_]{1,64}$", examples=["mer_acme"])


# An enum in the OpenAPI document, so clients (and fuzzers) see the supported set.
Currency = Literal[tuple(sorted(SUPPORTED_CURRENCIES))]


# Module level: FastAPI resolves (postponed) annotations against module globals.
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]

# --- idempotency ---------------------------------------------------------------------------


def request_fingerprint(payload: Any) -> str:
    try:
        raw = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        raw = json.dumps(payload, sort_keys=True, ensure_ascii=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()


IDEMPOTENCY_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
    state TEXT NOT NULL, status_code INTEGER, body BLOB, created_at REAL NOT NULL,
    PRIMARY KEY (scope, key))
"""
# An in-progress record older than this belongs to a request that died; a retry may take it over.
STALE_IN_PROGRESS_S = 60.0


class Idempotency:
    """Claim/finish protocol on an ``idempotency`` table of a sqlite connection.

    ``claim`` returns a stored (status, body) to replay, or None when the caller owns the key
    and must call ``finish`` (result kept) or ``release`` (a retry may run the work again)."""

    def __init__(self, db):
        self.db = db

    def claim(self, scope: str, key: str | None, fingerprint: str) -> tuple[int, bytes] | None:
        if key is None:
            return None
        if not 1 <= len(key) <= 255:
            raise ApiError(
                422,
                "validation_error",
                "Idempotency-Key must be 1-255 characters",
                [{"field": "Idempotency-Key", "issue": "length 1-255"}],
            )
        with self.db.tx():
            row = self.db.one(
                "SELECT fingerprint, state, status_code, body, created_at FROM idempotency WHERE scope=? AND key=?",
                (scope, key),
            )
            if row is None or (row[1] == "in_progress" and now() - row[4] > STALE_IN_PROGRESS_S):
                self.db.exec(
                    "INSERT OR REPLACE INTO idempotency (scope, key, fingerprint, state, created_at) "
                    "VALUES (?, ?, ?, 'in_progress', ?)",
                    (scope, key, fingerprint, now()),
                )
                return None
        if row[0] != fingerprint:
            raise ApiError(
                409, "idempotency_key_reused", "This Idempotency-Key was already used with a different request body"
            )
        if row[1] == "in_progress":
            raise ApiError(
                409,
                "idempotency_key_in_use",
                "A request with this Idempotency-Key is still being processed; retry later",
            )
        return row[2], row[3]

    def finish(self, scope: str, key: str | None, status: int, body: bytes) -> None:
        if key is not None:
            with self.db.tx():
                self.db.exec(
                    "UPDATE idempotency SET state='done', status_code=?, body=? WHERE scope=? AND key=?",
                    (status, body, scope, key),
                )

    def release(self, scope: str, key: str | None) -> None:
        if key is not None:
            with self.db.tx():
                self.db.exec("DELETE FROM idempotency WHERE scope=? AND key=? AND state='in_progress'", (scope, key))


async def idempotent_response(idem: Idempotency, scope: str, key: str | None, payload: Any, work) -> Response:
    """Run ``work`` (async, returns (status, body)) at most once per (scope, key).

    Answers under 500 are stored and replayed; a 5xx or a crash releases the key, so a retry
    may run the work again (the services key their own downstream calls to stay safe)."""
    stored = idem.claim(scope, key, request_fingerprint(payload))
    if stored is not None:
        return replay_response(stored)
    try:
        status, body = await work()
    except ApiError as err:
        if err.status >= 500:
            idem.release(scope, key)
            raise
        status, body = err.status, err.body()
    except BaseException:
        idem.release(scope, key)
        raise
    return _stored_answer(idem, scope, key, status, body)


def idempotent_local_response(idem: Idempotency, scope: str, key: str | None, payload: Any, work) -> Response:
    """:func:`idempotent_response` for work that makes no outside call (``work()`` returns
    (status, body) synchronously): claim, work and stored result commit as one transaction,
    one commit per request instead of three."""
    with idem.db.tx():
        stored = idem.claim(scope, key, request_fingerprint(payload))
        if stored is not None:
            return replay_response(stored)
        try:
            status, body = work()
        except ApiError as err:
            if err.status >= 500:
                raise  # the transaction rolls back, the claim with it: a retry runs again
            status, body = err.status, err.body()
        return _stored_answer(idem, scope, key, status, body)


def _stored_answer(idem: Idempotency, scope: str, key: str | None, status: int, body: Any) -> Response:
    """The answer kept against the key (replayed byte for byte later), and sent now."""
    raw = dump_json(body)
    idem.finish(scope, key, status, raw)
    return Response(raw, status_code=status, media_type="application/json")


def service_app(title: str, description: str, lifespan) -> FastAPI:
    """A sandbox service: contract error shapes, auth and size guard, bearer auth documented."""
    app = FastAPI(title=title, version="1.0.0", description=description, lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(GuardMiddleware)
    document_bearer_auth(app)
    return app


def replay_response(stored: tuple[int, bytes]) -> Response:
    return Response(
        stored[1], status_code=stored[0], media_type="application/json", headers={"Idempotent-Replayed": "true"}
    )


# --- OpenAPI documentation -------------------------------------------------------------------


class ErrorInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str
    details: list[dict]


class ErrorBody(BaseModel):
    error: ErrorInfo


_REASONS = {
    400: "Malformed JSON",
    401: "Missing or invalid bearer token",
    402: "Card declined",
    404: "Unknown id",
    409: "Conflict (idempotency, concurrency or money rule)",
    410: "Gone",
    413: "Body over 64 KiB",
    422: "Validation error naming each bad field",
    500: "Bank processing error",
    502: "Bank error",
    504: "Bank timeout",
}


def error_responses(*codes: int, body: bool = True) -> dict:
    base = (400, 401, 413, 422) if body else (401, 422)
    return {c: {"model": ErrorBody, "description": _REASONS[c]} for c in sorted({*base, *codes})}


def document_bearer_auth(app: FastAPI) -> None:
    """Declare the bearer token in the OpenAPI document (the guard middleware enforces it)."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
        for path, ops in schema.get("paths", {}).items():
            for op in ops.values():
                if path not in PUBLIC_PATHS:
                    op["security"] = [{"bearerAuth": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
