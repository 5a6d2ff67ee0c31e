"""PaymentService (sandbox, :8000): charges cards through the BankingAPI over HTTP
(authorize, then capture), refunds, status lookups, merchant listings and reports."""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Any, Literal

import aiohttp
import orjson
from fastapi import Body, FastAPI, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from sandbox.common import (
    Amount,
    ApiError,
    Card,
    Currency,
    IdemKey,
    Idempotency,
    JSONResponse,
    MerchantId,
    configured_token,
    error_responses,
    idempotent_response,
    iso,
    new_id,
    now,
    service_app,
)
from sandbox.faults import PaymentFaults
from sandbox.storage import PAYMENT_SCHEMA, Database

PaymentStatus = Literal["succeeded", "declined", "refunded", "partially_refunded"]


class Customer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: StrictStr = Field(min_length=1, max_length=64)
    email: StrictStr | None = Field(default=None, max_length=254)
    name: StrictStr | None = Field(default=None, max_length=200)


class PaymentRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    amount: StrictInt = Amount
    currency: Currency = Field(examples=["USD"])
    merchant_id: StrictStr = MerchantId
    description: StrictStr | None = Field(default=None, max_length=500)
    customer: Customer | None = None
    card: Card


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    amount: StrictInt | None = Field(default=None, ge=1, le=99_999_999, description="Omit for a full refund")
    reason: StrictStr | None = Field(default=None, max_length=200)


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    merchant_id: StrictStr = MerchantId
    from_: date | datetime = Field(alias="from", description="Start (date or datetime, inclusive)")
    to: date | datetime = Field(description="End (a date includes that whole day)")

    @model_validator(mode="after")
    def _range(self) -> ReportRequest:
        start, end = report_window(self.from_, self.to)
        if start > end:
            raise ValueError("'from' is after 'to'")
        if end - start > 366 * 86400 + 1:
            raise ValueError("range is over 366 days")
        return self


def _ts(value: date | datetime, end_of_day: bool) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    moment = datetime.combine(value, dtime.min, tzinfo=UTC)
    return (moment + timedelta(days=1)).timestamp() - 0.000001 if end_of_day else moment.timestamp()


def report_window(start: date | datetime, end: date | datetime) -> tuple[float, float]:
    return _ts(start, False), _ts(end, True)


class CardOut(BaseModel):
    brand: str
    last4: str


class RefundOut(BaseModel):
    id: str
    payment_id: str
    amount: int
    currency: str
    status: Literal["pending", "succeeded"]
    reason: str | None
    bank_refund_id: str | None
    created_at: str


class PaymentOut(BaseModel):
    id: str
    status: PaymentStatus
    amount: int
    currency: str
    merchant_id: str
    customer_id: str | None
    description: str | None
    card: CardOut
    decline_code: str | None
    refunded_amount: int
    refunds: list[RefundOut]
    authorization_id: str | None
    capture_id: str | None
    created_at: str


class TransactionsPage(BaseModel):
    data: list[PaymentOut]
    next_cursor: str | None
    has_more: bool


class CurrencyTotals(BaseModel):
    count: int
    gross: int
    refunded: int
    net: int


class ReportOut(CurrencyTotals):
    merchant_id: str
    from_: str = Field(alias="from")
    to: str
    declined_count: int
    by_currency: dict[str, CurrencyTotals]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, str]


class BankError(ApiError):
    """The bank failed us (502 bank_error / 504 bank_timeout): never stored against a key."""


class BankClient:
    """HTTP client to the BankingAPI: maps every way the bank can fail onto 502/504."""

    def __init__(self, base_url: str, timeout_s: float):
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.session: aiohttp.ClientSession | None = None
        self._health: tuple[float, str] = (0.0, "unknown")

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
            timeout=self.timeout,
            headers={"Authorization": f"Bearer {configured_token()}", "Content-Type": "application/json"},
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )

    async def close(self) -> None:
        if self.session:
            await self.session.close()

    async def post(self, path: str, payload: dict, idempotency_key: str) -> tuple[int, dict]:
        assert self.session is not None
        try:
            async with self.session.post(
                self.base_url + path,
                data=orjson.dumps(payload),
                headers={"Idempotency-Key": idempotency_key},
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError as exc:
            raise BankError(504, "bank_timeout", "The bank did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise BankError(502, "bank_error", f"Bank unreachable: {type(exc).__name__}") from exc
        try:
            body = orjson.loads(raw)
            if not isinstance(body, dict):
                raise ValueError
        except ValueError as exc:
            raise BankError(502, "bank_error", f"Bank sent an unreadable body (HTTP {status})") from exc
        if status >= 500:
            raise BankError(502, "bank_error", f"Bank failed with HTTP {status}")
        return status, body

    async def health(self) -> str:
        checked_at, value = self._health
        if time.monotonic() - checked_at < 1.0:
            return value
        try:
            assert self.session is not None
            async with self.session.get(self.base_url + "/health", timeout=aiohttp.ClientTimeout(total=0.5)) as r:
                value = "ok" if r.status == 200 else "unreachable"
        except (TimeoutError, aiohttp.ClientError):
            value = "unreachable"
        self._health = (time.monotonic(), value)
        return value


def _bank_key(base: str, step: str) -> str:
    return hashlib.sha256(f"{base}:{step}".encode()).hexdigest()[:40]


def _expect(status: int, body: dict, want: int, field: str) -> str:
    if status != want or not isinstance(body.get(field), str):
        raise BankError(502, "bank_error", f"Unexpected bank answer (HTTP {status})")
    return body[field]


PAYMENT_COLUMNS = (
    "id, status, amount, currency, merchant_id, customer_id, description, card_brand, card_last4,"
    " decline_code, refunded_amount, authorization_id, capture_id, created_at"
)
PAYMENT_COLUMN_NAMES = tuple(c.strip() for c in PAYMENT_COLUMNS.split(","))


class PaymentService:
    def __init__(self, db: Database, bank: BankClient, faults: PaymentFaults):
        self.db, self.bank, self.faults = db, bank, faults
        self.idem = Idempotency(db)

    # -- payments -------------------------------------------------------------------------

    async def charge(self, req: PaymentRequest, key: str | None) -> tuple[int, dict]:
        # With a client key, ids and bank keys derive from it, so a retry after a 502/504
        # replays at the bank instead of holding the card twice.
        base = hashlib.sha256(f"payment:{key}".encode()).hexdigest()[:24] if key else None
        payment_id = f"pay_{base}" if base else new_id("pay")
        card = req.card.public()
        auth_payload = {
            "amount": req.amount,
            "currency": req.currency,
            "merchant_id": req.merchant_id,
            "reference": payment_id,
            "card": req.card.model_dump(),
        }
        status, body = await self.bank.post("/v1/authorizations", auth_payload, _bank_key(payment_id, "auth"))
        if status == 402:
            decline_code = (body.get("error") or {}).get("decline_code") or "generic_decline"
            self._insert_payment(payment_id, req, card, "declined", decline_code, None, None)
            raise ApiError(
                402, "card_declined", "The card was declined", decline_code=decline_code, payment_id=payment_id
            )
        auth_id = _expect(status, body, 201, "id")
        status, body = await self.bank.post(
            f"/v1/authorizations/{auth_id}/capture", {"amount": req.amount}, _bank_key(payment_id, "capture")
        )
        capture_id = _expect(status, body, 201, "id")
        row = self._insert_payment(payment_id, req, card, "succeeded", None, auth_id, capture_id)
        # A fresh payment has no refunds: its body comes from what was just written, no re-read.
        return 201, (self._payment_body(row, []) if row else self.payment(payment_id))

    def _insert_payment(
        self,
        pid: str,
        req: PaymentRequest,
        card: dict,
        status: str,
        decline_code: str | None,
        auth_id: str | None,
        capture_id: str | None,
    ) -> tuple | None:
        """Records the payment; returns its row (PAYMENT_COLUMNS order) when this call created it,
        None when it already existed (a retry under the same key)."""
        cust = req.customer
        row = {
            "id": pid,
            "merchant_id": req.merchant_id,
            "customer_id": cust.id if cust else None,
            "customer_email": cust.email if cust else None,
            "customer_name": cust.name if cust else None,
            "amount": req.amount,
            "currency": req.currency,
            "status": status,
            "description": req.description,
            "card_brand": card["brand"],
            "card_last4": card["last4"],
            "decline_code": decline_code,
            "authorization_id": auth_id,
            "capture_id": capture_id,
            "created_at": now(),
        }
        with self.db.tx():
            # The merchant comes into being with its first recorded payment (one commit for both).
            self.db.exec(
                "INSERT OR IGNORE INTO merchants (id, created_at) VALUES (?, ?)", (req.merchant_id, row["created_at"])
            )
            cursor = self.db.exec(
                f"INSERT OR IGNORE INTO payments ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
        if cursor.rowcount != 1:
            return None
        row["refunded_amount"] = 0
        return tuple(row[column] for column in PAYMENT_COLUMN_NAMES)

    def payment(self, pid: str) -> dict:
        row = self.db.one(f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE id=?", (pid,))
        if row is None:
            raise ApiError(404, "not_found", f"No payment {pid}")
        return self._payment_body(row, self._refunds([pid]).get(pid, []))

    @staticmethod
    def _payment_body(row: tuple, refunds: list[dict]) -> dict:
        return {
            "id": row[0],
            "status": row[1],
            "amount": row[2],
            "currency": row[3],
            "merchant_id": row[4],
            "customer_id": row[5],
            "description": row[6],
            "card": {"brand": row[7], "last4": row[8]},
            "decline_code": row[9],
            "refunded_amount": row[10],
            "refunds": refunds,
            "authorization_id": row[11],
            "capture_id": row[12],
            "created_at": iso(row[13]),
        }

    def _refunds(self, pids: list[str]) -> dict[str, list[dict]]:
        if not pids:
            return {}
        marks = ",".join("?" * len(pids))
        out: dict[str, list[dict]] = {}
        for rid, pid, amount, currency, status, reason, bank_id, created in self.db.all(
            f"SELECT id, payment_id, amount, currency, status, reason, bank_refund_id, created_at FROM refunds"
            f" WHERE payment_id IN ({marks}) AND status != 'failed' ORDER BY created_at",
            tuple(pids),
        ):
            out.setdefault(pid, []).append(_refund_body(rid, pid, amount, currency, status, reason, bank_id, created))
        return out

    # -- refunds --------------------------------------------------------------------------

    async def refund(self, pid: str, req: RefundRequest, key: str | None) -> tuple[int, dict]:
        if self.faults.break_invariant == "refund_race":
            return await self._refund_racy(pid, req, key)
        refund_id, created = new_id("re"), now()
        with self.db.tx():  # reserve the amount before the bank call: racing refunds see it
            amount, currency, capture_id = self._refundable(pid, req)
            self.db.exec(
                "UPDATE payments SET pending_refund_amount = pending_refund_amount + ? WHERE id=?", (amount, pid)
            )
            self.db.exec(
                "INSERT INTO refunds (id, payment_id, amount, currency, status, reason, created_at)"
                " VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                (refund_id, pid, amount, currency, req.reason, created),
            )
        try:
            bank_id = await self._bank_refund(capture_id, amount, key or refund_id)
        except BaseException:
            with self.db.tx():
                self.db.exec(
                    "UPDATE payments SET pending_refund_amount = pending_refund_amount - ? WHERE id=?", (amount, pid)
                )
                self.db.exec("UPDATE refunds SET status='failed' WHERE id=?", (refund_id,))
            raise
        with self.db.tx():
            self.db.exec(
                "UPDATE payments SET pending_refund_amount = pending_refund_amount - ?,"
                " refunded_amount = refunded_amount + ?,"
                " status = CASE WHEN refunded_amount + ? >= amount THEN 'refunded' ELSE 'partially_refunded' END"
                " WHERE id=?",
                (amount, amount, amount, pid),
            )
            self.db.exec("UPDATE refunds SET status='succeeded', bank_refund_id=? WHERE id=?", (bank_id, refund_id))
        return 201, _refund_body(refund_id, pid, amount, currency, "succeeded", req.reason, bank_id, created)

    def _refundable(self, pid: str, req: RefundRequest) -> tuple[int, str, str]:
        row = self.db.one(
            "SELECT status, amount, refunded_amount, pending_refund_amount, currency, capture_id"
            " FROM payments WHERE id=?",
            (pid,),
        )
        if row is None:
            raise ApiError(404, "not_found", f"No payment {pid}")
        status, amount, refunded, pending, currency, capture_id = row
        if status == "declined" or capture_id is None:
            raise ApiError(409, "payment_not_refundable", "A declined payment cannot be refunded")
        left = amount - refunded - pending
        want = left if req.amount is None else req.amount
        if want <= 0 or want > left:
            raise ApiError(409, "refund_exceeds_captured", f"Refund of {want} exceeds the {left} left to refund")
        return want, currency, capture_id

    async def _bank_refund(self, capture_id: str, amount: int, key_base: str) -> str:
        status, body = await self.bank.post(
            "/v1/refunds",
            {"capture_id": capture_id, "amount": amount},
            _bank_key(key_base, f"refund:{capture_id}:{amount}"),
        )
        if status == 409:
            raise ApiError(409, "refund_exceeds_captured", "The bank refused: refund exceeds what is left")
        return _expect(status, body, 201, "id")

    async def _refund_racy(self, pid: str, req: RefundRequest, key: str | None) -> tuple[int, dict]:
        """Deliberately broken (test switch): read-modify-write across the bank call, no reservation."""
        amount, currency, capture_id = self._refundable(pid, req)
        seen_refunded = self.db.one("SELECT refunded_amount FROM payments WHERE id=?", (pid,))[0]
        refund_id, created = new_id("re"), now()
        bank_id = await self._bank_refund(capture_id, amount, key or refund_id)
        with self.db.tx():
            self.db.exec(
                "UPDATE payments SET refunded_amount=?, status=CASE WHEN ? >= amount THEN 'refunded'"
                " ELSE 'partially_refunded' END WHERE id=?",
                (seen_refunded + amount, seen_refunded + amount, pid),
            )
            self.db.exec(
                "INSERT INTO refunds (id, payment_id, amount, currency, status, reason, bank_refund_id,"
                " created_at) VALUES (?, ?, ?, ?, 'succeeded', ?, ?, ?)",
                (refund_id, pid, amount, currency, req.reason, bank_id, created),
            )
        return 201, _refund_body(refund_id, pid, amount, currency, "succeeded", req.reason, bank_id, created)

    # -- listings and reports -------------------------------------------------------------

    def merchant_transactions(self, merchant_id: str, limit: int, cursor: str | None, status: str | None) -> dict:
        if self.db.one("SELECT 1 FROM merchants WHERE id=?", (merchant_id,)) is None:
            raise ApiError(404, "not_found", f"No merchant {merchant_id}")
        before = decode_cursor(cursor) if cursor else None
        sql = f"SELECT seq, {PAYMENT_COLUMNS} FROM payments WHERE merchant_id=?"
        params: list[Any] = [merchant_id]
        if before is not None:
            sql += " AND seq < ?"
            params.append(before)
        if status:
            sql += " AND status = ?"
            params.append(status)
        rows = self.db.all(sql + " ORDER BY seq DESC LIMIT ?", (*params, limit + 1))
        page = rows[:limit]
        refunds = self._refunds([r[1] for r in page])
        data = [self._payment_body(r[1:], refunds.get(r[1], [])) for r in page]
        next_cursor = encode_cursor(page[-1][0]) if len(rows) > limit else None
        return {"data": data, "next_cursor": next_cursor, "has_more": next_cursor is not None}

    def report(self, req: ReportRequest) -> dict:
        if self.db.one("SELECT 1 FROM merchants WHERE id=?", (req.merchant_id,)) is None:
            raise ApiError(404, "not_found", f"No merchant {req.merchant_id}")
        start, end = report_window(req.from_, req.to)
        by_currency: dict[str, dict[str, int]] = {}
        declined = 0
        for currency, status, count, gross, refunded in self.db.all(
            "SELECT currency, status = 'declined', COUNT(*), SUM(amount), SUM(refunded_amount) FROM payments"
            " WHERE merchant_id=? AND created_at >= ? AND created_at <= ? GROUP BY currency, status = 'declined'",
            (req.merchant_id, start, end),
        ):
            if status:
                declined += count
                continue
            by_currency[currency] = {"count": count, "gross": gross, "refunded": refunded, "net": gross - refunded}
        totals = {k: sum(v[k] for v in by_currency.values()) for k in ("count", "gross", "refunded", "net")}
        return {
            "merchant_id": req.merchant_id,
            "from": iso(start),
            "to": iso(end),
            **totals,
            "declined_count": declined,
            "by_currency": by_currency,
        }


def _refund_body(
    rid: str, pid: str, amount: int, currency: str, status: str, reason: str | None, bank_id: str | None, created: float
) -> dict:
    return {
        "id": rid,
        "payment_id": pid,
        "amount": amount,
        "currency": currency,
        "status": status,
        "reason": reason,
        "bank_refund_id": bank_id,
        "created_at": iso(created),
    }


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text.startswith("s:") and text[2:].isdigit():
            return int(text[2:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ApiError(422, "validation_error", "cursor is not valid", [{"field": "cursor", "issue": "unknown cursor"}])


def create_app(data_dir: Path, bank_url: str, bank_timeout_s: float = 3.0) -> FastAPI:
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        db = Database(data_dir / "payment.db", PAYMENT_SCHEMA)
        bank = BankClient(bank_url, bank_timeout_s)
        await bank.start()
        state["svc"] = PaymentService(db, bank, PaymentFaults.from_env())
        yield
        await bank.close()
        db.close()

    app = service_app(
        "PaymentService (sandbox)",
        "Charges cards through the BankingAPI; refunds, lookups, merchant listings, reports.",
        lifespan,
    )

    async def idempotent(scope: str, key: str | None, payload: Any, work) -> Response:
        svc: PaymentService = state["svc"]
        if svc.faults.break_invariant == "idempotency_off":
            key = None
        return await idempotent_response(svc.idem, scope, key, payload, lambda: work(key))

    @app.get("/health", response_model=HealthOut)
    async def health() -> dict:
        svc: PaymentService = state["svc"]
        database = "ok" if svc.db.healthy() else "error"
        return {
            "status": "ok" if database == "ok" else "degraded",
            "checks": {"database": database, "bank": await svc.bank.health()},
        }

    PAY_ERRORS = error_responses(402, 409, 502, 504)

    async def create_payment(req: PaymentRequest, idempotency_key: IdemKey = None) -> Response:
        return await idempotent(
            "payment", idempotency_key, req.model_dump(mode="json"), lambda key: state["svc"].charge(req, key)
        )

    app.post("/payments", status_code=201, summary="Charge a card", response_model=PaymentOut, responses=PAY_ERRORS)(
        create_payment
    )
    app.post(
        "/pay",
        status_code=201,
        summary="Charge a card (alias of POST /payments)",
        response_model=PaymentOut,
        responses=PAY_ERRORS,
    )(create_payment)

    @app.get("/payments/{payment_id}", response_model=PaymentOut, responses=error_responses(404, body=False))
    async def get_payment(payment_id: str) -> JSONResponse:
        return JSONResponse(state["svc"].payment(payment_id))

    @app.post(
        "/payments/{payment_id}/refunds",
        status_code=201,
        response_model=RefundOut,
        responses=error_responses(404, 409, 502, 504),
    )
    async def create_refund(
        payment_id: str, req: Annotated[RefundRequest | None, Body()] = None, idempotency_key: IdemKey = None
    ) -> Response:
        req = req or RefundRequest()
        return await idempotent(
            f"refund:{payment_id}",
            idempotency_key,
            req.model_dump(mode="json"),
            lambda key: state["svc"].refund(payment_id, req, key),
        )

    @app.get(
        "/merchants/{merchant_id}/transactions",
        response_model=TransactionsPage,
        responses=error_responses(404, body=False),
    )
    async def merchant_transactions(
        merchant_id: str,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        status: Annotated[PaymentStatus | None, Query()] = None,
    ) -> JSONResponse:
        return JSONResponse(state["svc"].merchant_transactions(merchant_id, limit, cursor, status))

    @app.post("/internal/generate-report", response_model=ReportOut, responses=error_responses(404))
    async def generate_report(req: ReportRequest) -> JSONResponse:
        return JSONResponse(state["svc"].report(req))

    @app.get("/__sandbox/faults", response_model=PaymentFaults, responses=error_responses(body=False))
    async def get_faults() -> dict:
        return state["svc"].faults.model_dump()

    @app.put("/__sandbox/faults", response_model=PaymentFaults, responses=error_responses())
    async def put_faults(faults: PaymentFaults) -> dict:
        state["svc"].faults = faults
        return faults.model_dump()

    return app
