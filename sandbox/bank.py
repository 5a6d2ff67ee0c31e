"""BankingAPI emulator (the MockServer role on :1080): authorizations, captures, refunds,
transaction lookups, settlements and batches, with injectable faults."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter, ValidationError

from sandbox.common import (
    DECLINE_CARDS,
    PROCESSING_ERROR_CARD,
    Amount,
    ApiError,
    Card,
    Currency,
    IdemKey,
    Idempotency,
    JSONResponse,
    MerchantId,
    error_responses,
    idempotent_local_response,
    iso,
    new_id,
    now,
    service_app,
)
from sandbox.faults import BankFaults, MalformedFault, SchemaFault, apply_bank_faults
from sandbox.settings import get_sandbox_settings
from sandbox.storage import BANK_SCHEMA, Database

AUTH_TTL_S = get_sandbox_settings().auth_ttl_s  # SANDBOX_AUTH_TTL_S, read once at import (sandbox/settings.py)


class AuthorizationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    amount: StrictInt = Amount
    currency: Currency
    card: Card
    merchant_id: StrictStr = MerchantId
    reference: StrictStr | None = Field(default=None, max_length=255)


class CaptureRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    amount: StrictInt | None = Field(default=None, ge=1, le=99_999_999, description="Defaults to the full amount")


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    capture_id: StrictStr = Field(min_length=1, max_length=64)
    amount: StrictInt | None = Field(default=None, ge=1, le=99_999_999, description="Defaults to what is left")


class AuthorizeOp(AuthorizationRequest):
    type: Literal["authorize"]


class CaptureOp(CaptureRequest):
    type: Literal["capture"]
    authorization_id: StrictStr = Field(min_length=1, max_length=64)


class RefundOp(RefundRequest):
    type: Literal["refund"]


BatchOp = Annotated[AuthorizeOp | CaptureOp | RefundOp, Field(discriminator="type")]
_batch_op = TypeAdapter(BatchOp)


class BatchOperation(BaseModel):
    """One batch item; validated per item, so one bad item fails alone (status 422 in its result)."""

    model_config = ConfigDict(extra="allow")
    type: StrictStr = Field(description="authorize | capture | refund; other fields as in the single endpoint")


class BatchRequest(BaseModel):
    operations: list[BatchOperation] = Field(min_length=1, max_length=100)


class CardOut(BaseModel):
    brand: str
    last4: str


class AuthorizationOut(BaseModel):
    id: str
    status: Literal["approved"]
    amount: int
    currency: str
    merchant_id: str
    reference: str | None
    card: CardOut
    created_at: str
    expires_at: str


class CaptureOut(BaseModel):
    id: str
    authorization_id: str
    amount: int
    currency: str
    status: Literal["captured"]
    created_at: str


class BankRefundOut(BaseModel):
    id: str
    capture_id: str
    amount: int
    currency: str
    status: Literal["refunded"]
    created_at: str


class TransactionOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    type: Literal["authorization", "capture", "refund"]
    status: str
    amount: int
    currency: str
    created_at: str


class SettlementTotals(BaseModel):
    captured: int
    refunded: int
    net: int
    count: int


class SettlementOut(SettlementTotals):
    date: str
    merchant_id: str | None
    by_currency: dict[str, SettlementTotals]


class BatchResult(BaseModel):
    index: int
    status_code: int
    body: dict


class BatchOut(BaseModel):
    id: str
    results: list[BatchResult]
    created_at: str


class Bank:
    """The bank's operations over its database; shared by the single endpoints and batches."""

    def __init__(self, db: Database):
        self.db = db

    def authorize(self, req: AuthorizationRequest) -> tuple[int, dict]:
        number = req.card.number
        if number == PROCESSING_ERROR_CARD:
            raise ApiError(500, "processing_error", "The card network could not process this card")
        if number in DECLINE_CARDS:
            raise ApiError(402, "card_declined", "The card was declined", decline_code=DECLINE_CARDS[number])
        created = now()
        row = {
            "id": new_id("auth"),
            "status": "approved",
            "amount": req.amount,
            "currency": req.currency,
            "merchant_id": req.merchant_id,
            "reference": req.reference,
            "card": req.card.public(),
            "created_at": iso(created),
            "expires_at": iso(created + AUTH_TTL_S),
        }
        with self.db.tx():
            self.db.exec(
                "INSERT INTO authorizations (id, merchant_id, amount, currency, card_brand, card_last4, reference,"
                " status, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'approved', ?, ?)",
                (
                    row["id"],
                    req.merchant_id,
                    req.amount,
                    req.currency,
                    row["card"]["brand"],
                    row["card"]["last4"],
                    req.reference,
                    created,
                    created + AUTH_TTL_S,
                ),
            )
        return 201, row

    def capture(self, auth_id: str, req: CaptureRequest) -> tuple[int, dict]:
        with self.db.tx():
            auth = self.db.one(
                "SELECT amount, currency, merchant_id, status, expires_at FROM authorizations WHERE id=?", (auth_id,)
            )
            if auth is None:
                raise ApiError(404, "not_found", f"No authorization {auth_id}")
            amount, currency, merchant_id, status, expires_at = auth
            if status == "captured":
                raise ApiError(409, "already_captured", "This authorization was already captured")
            if now() > expires_at:
                raise ApiError(410, "authorization_expired", "This authorization has expired")
            capture_amount = amount if req.amount is None else req.amount
            if capture_amount > amount:
                raise ApiError(
                    409, "amount_exceeds_authorized", f"Capture of {capture_amount} exceeds the authorized {amount}"
                )
            cap_id, created = new_id("cap"), now()
            self.db.exec(
                "UPDATE authorizations SET status='captured', captured_amount=? WHERE id=?", (capture_amount, auth_id)
            )
            self.db.exec(
                "INSERT INTO captures (id, authorization_id, merchant_id, amount, currency, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (cap_id, auth_id, merchant_id, capture_amount, currency, created),
            )
        return 201, {
            "id": cap_id,
            "authorization_id": auth_id,
            "amount": capture_amount,
            "currency": currency,
            "status": "captured",
            "created_at": iso(created),
        }

    def refund(self, req: RefundRequest) -> tuple[int, dict]:
        with self.db.tx():
            cap = self.db.one(
                "SELECT amount, refunded_amount, currency, merchant_id FROM captures WHERE id=?", (req.capture_id,)
            )
            if cap is None:
                raise ApiError(404, "not_found", f"No capture {req.capture_id}")
            captured, refunded, currency, merchant_id = cap
            left = captured - refunded
            amount = left if req.amount is None else req.amount
            if amount <= 0 or amount > left:
                raise ApiError(
                    409, "refund_exceeds_captured", f"Refund of {amount} exceeds the {left} left on the capture"
                )
            ref_id, created = new_id("bre"), now()
            self.db.exec(
                "UPDATE captures SET refunded_amount = refunded_amount + ? WHERE id=?", (amount, req.capture_id)
            )
            self.db.exec(
                "INSERT INTO refunds (id, capture_id, merchant_id, amount, currency, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (ref_id, req.capture_id, merchant_id, amount, currency, created),
            )
        return 201, {
            "id": ref_id,
            "capture_id": req.capture_id,
            "amount": amount,
            "currency": currency,
            "status": "refunded",
            "created_at": iso(created),
        }

    def transaction(self, txn_id: str) -> dict:
        prefix = txn_id.split("_", 1)[0]
        if prefix == "auth":
            row = self.db.one(
                "SELECT status, amount, currency, created_at, merchant_id FROM authorizations WHERE id=?", (txn_id,)
            )
            kind = "authorization"
            if row and row[0] == "approved" and now() > self._expiry(txn_id):
                row = ("expired", *row[1:])
        elif prefix == "cap":
            row = self.db.one(
                "SELECT 'captured', amount, currency, created_at, merchant_id, refunded_amount"
                " FROM captures WHERE id=?",
                (txn_id,),
            )
            kind = "capture"
        elif prefix == "bre":
            row = self.db.one(
                "SELECT 'refunded', amount, currency, created_at, merchant_id FROM refunds WHERE id=?", (txn_id,)
            )
            kind = "refund"
        else:
            row = None
        if row is None:
            raise ApiError(404, "not_found", f"No transaction {txn_id}")
        body = {
            "id": txn_id,
            "type": kind,
            "status": row[0],
            "amount": row[1],
            "currency": row[2],
            "created_at": iso(row[3]),
            "merchant_id": row[4],
        }
        if kind == "capture":
            body["refunded_amount"] = row[5]
        return body

    def _expiry(self, auth_id: str) -> float:
        return self.db.one("SELECT expires_at FROM authorizations WHERE id=?", (auth_id,))[0]

    def settlement(self, day: date, merchant_id: str | None) -> dict:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        end = start + 86400
        where, params = "created_at >= ? AND created_at < ?", [start, end]
        if merchant_id:
            where += " AND merchant_id = ?"
            params.append(merchant_id)
        by_currency: dict[str, dict[str, int]] = {}
        for table, field in (("captures", "captured"), ("refunds", "refunded")):
            for currency, total, count in self.db.all(
                f"SELECT currency, SUM(amount), COUNT(*) FROM {table} WHERE {where} GROUP BY currency", tuple(params)
            ):
                entry = by_currency.setdefault(currency, {"captured": 0, "refunded": 0, "net": 0, "count": 0})
                entry[field] += total
                entry["count"] += count
        for entry in by_currency.values():
            entry["net"] = entry["captured"] - entry["refunded"]
        totals = {k: sum(e[k] for e in by_currency.values()) for k in ("captured", "refunded", "net", "count")}
        return {"date": day.isoformat(), "merchant_id": merchant_id, **totals, "by_currency": by_currency}

    def run_operation(self, raw: dict) -> tuple[int, dict]:
        try:
            op = _batch_op.validate_python(raw)
        except ValidationError as exc:
            details = [
                {"field": ".".join(str(p) for p in e["loc"]) or "operation", "issue": e["msg"]} for e in exc.errors()
            ]
            return 422, ApiError(422, "validation_error", "Invalid batch operation", details).body()
        try:
            if isinstance(op, AuthorizeOp):
                return self.authorize(op)
            if isinstance(op, CaptureOp):
                return self.capture(op.authorization_id, op)
            return self.refund(op)
        except ApiError as err:
            return err.status, err.body()


def create_app(data_dir: Path, faults: BankFaults | None = None) -> FastAPI:
    state: dict[str, Any] = {"faults": faults or BankFaults.from_env(), "rng": random.Random()}

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        db = Database(data_dir / "bank.db", BANK_SCHEMA)
        state["bank"], state["idem"] = Bank(db), Idempotency(db)
        yield
        db.close()

    app = service_app(
        "BankingAPI (sandbox)",
        "Emulated acquiring bank: authorizations, captures, refunds, settlements, batches.",
        lifespan,
    )

    @app.exception_handler(SchemaFault)
    async def _schema(_: Request, __: SchemaFault) -> Response:
        return Response(b'{"result": "ok", "data": [1, 2, 3]}', status_code=201, media_type="application/json")

    @app.exception_handler(MalformedFault)
    async def _malformed(_: Request, __: MalformedFault) -> Response:
        return Response(b'{"id": "auth_trunc', status_code=201, media_type="application/json")

    async def faults() -> None:
        # Called first by every /v1 handler (a FastAPI dependency costs more per request).
        await apply_bank_faults(state["faults"], state["rng"])

    async def idempotent(scope: str, key: str | None, payload: Any, work: Callable[[], tuple[int, dict]]) -> Response:
        await faults()
        return idempotent_local_response(state["idem"], scope, key, payload, work)

    @app.get("/health", response_model=dict[str, str])
    async def health() -> dict:
        return {"status": "ok" if state["bank"].db.healthy() else "degraded"}

    @app.post(
        "/v1/authorizations",
        status_code=201,
        response_model=AuthorizationOut,
        responses=error_responses(402, 409, 500),
    )
    async def authorize(req: AuthorizationRequest, idempotency_key: IdemKey = None) -> Response:
        return await idempotent(
            "authorize", idempotency_key, req.model_dump(mode="json"), lambda: state["bank"].authorize(req)
        )

    @app.post(
        "/v1/authorizations/{auth_id}/capture",
        status_code=201,
        response_model=CaptureOut,
        responses=error_responses(404, 409, 410, 500),
    )
    async def capture(
        auth_id: str, req: Annotated[CaptureRequest | None, Body()] = None, idempotency_key: IdemKey = None
    ) -> Response:
        req = req or CaptureRequest()
        return await idempotent(
            f"capture:{auth_id}",
            idempotency_key,
            req.model_dump(mode="json"),
            lambda: state["bank"].capture(auth_id, req),
        )

    @app.post(
        "/v1/refunds",
        status_code=201,
        response_model=BankRefundOut,
        responses=error_responses(404, 409, 500),
    )
    async def refund(req: RefundRequest, idempotency_key: IdemKey = None) -> Response:
        return await idempotent(
            "refund", idempotency_key, req.model_dump(mode="json"), lambda: state["bank"].refund(req)
        )

    @app.get(
        "/v1/transactions/{txn_id}",
        response_model=TransactionOut,
        responses=error_responses(404, 500, body=False),
    )
    async def transaction(txn_id: str) -> JSONResponse:
        await faults()
        return JSONResponse(state["bank"].transaction(txn_id))

    @app.get("/v1/settlements", response_model=SettlementOut, responses=error_responses(500, body=False))
    async def settlements(
        date_: Annotated[str, Query(alias="date", description="YYYY-MM-DD")],
        merchant_id: Annotated[str | None, Query(max_length=80)] = None,
    ) -> JSONResponse:
        await faults()
        try:
            day = date.fromisoformat(date_) if len(date_) == 10 else None
        except ValueError:
            day = None
        if day is None:
            raise ApiError(
                422, "validation_error", "date must be YYYY-MM-DD", [{"field": "date", "issue": "expected YYYY-MM-DD"}]
            )
        return JSONResponse(state["bank"].settlement(day, merchant_id or None))

    @app.post("/v1/batches", status_code=200, response_model=BatchOut, responses=error_responses(409, 500))
    async def batches(req: BatchRequest, idempotency_key: IdemKey = None) -> Response:
        ops = [op.model_dump(mode="json") for op in req.operations]

        def work() -> tuple[int, dict]:
            results = []
            for i, raw in enumerate(ops):
                status, body = state["bank"].run_operation(raw)
                results.append({"index": i, "status_code": status, "body": body})
            return 200, {"id": new_id("batch"), "results": results, "created_at": iso(time.time())}

        return await idempotent("batch", idempotency_key, ops, work)

    @app.get("/__sandbox/faults", response_model=BankFaults, responses=error_responses(body=False))
    async def get_faults() -> dict:
        return state["faults"].model_dump()

    @app.put("/__sandbox/faults", response_model=BankFaults, responses=error_responses())
    async def put_faults(faults: BankFaults) -> dict:
        state["faults"] = faults
        return faults.model_dump()

    return app
