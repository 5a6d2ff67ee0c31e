"""An independent, in-memory fake of the ``baseline`` dialect (/work/shared/apis/baseline.md).

``payment-service-baseline`` is a Go (gin) service with two business endpoints and no auth: ``POST /pay`` and
``POST /internal/generate-report``, plus ``GET /health``. This fake was written from that page alone and is as
strict as the page: required fields, amount > 0, the per-last-four fraud velocity check in a one-hour window,
402 fraud rejections, simulated processing time. It has no lookups, refunds, listings or idempotency.

    python -m tests.fakes.baseline_fake --port 8080 [--chaos-rate 0.0] [--bug echo_other_amount]

Prints one ``listening ...`` line when ready; exits 0 on SIGTERM/SIGINT.

``--chaos-rate R``: that share of ``/pay`` and ``/internal/generate-report`` requests answers
``500 {"error": "internal_error", "message": ...}`` before anything else happens (not counted by the fraud check).

``--bug echo_other_amount`` plants one money bug: every 7th approval echoes ``amount + 0.01`` instead of the
amount sent (status 200, ``"status": "approved"``), which a load test comparing echoed to sent amounts must catch.

Choices where the page is silent (what a Go/gin service plausibly does):

* Routing is gin's defaults: an unknown path *or a known path with another method* (including HEAD) answers
  ``404`` ``text/plain`` ``404 page not found``; a known path with a trailing slash redirects (301 for GET,
  307 otherwise) to the path without it. ``/health`` is never subject to chaos.
* The body is bound like ``c.ShouldBindJSON`` into Go structs (``PaymentRequest``, ``ReportRequest`` in package
  ``main``); Content-Type is ignored. Field names match case-insensitively (encoding/json), unknown fields are
  ignored, ``null`` leaves a field at its zero value, and data after the first JSON value is ignored
  (json.Decoder reads one value). Decode errors are a 400 validation_error whose message is Go's text, e.g.
  ``EOF`` (empty body), ``unexpected EOF``, ``invalid character 'x' looking for beginning of value``,
  ``json: cannot unmarshal string into Go struct field PaymentRequest.amount of type float64``,
  ``json: cannot unmarshal array into Go value of type main.PaymentRequest``. NaN/Infinity are rejected.
* Validation is go-playground/validator behind gin: all string fields but transaction_id, customer_id and
  description are ``binding:"required"`` (the empty string fails), amount is ``binding:"required,gt=0"``
  (0 fails on ``required``, a negative amount on ``gt``). Every failing field is listed, one per line, as
  ``Key: 'PaymentRequest.Amount' Error:Field validation for 'Amount' failed on the 'gt' tag``.
  Nothing else is validated: no Luhn check, no currency list, no expiry parsing, no date parsing in reports.
* The amount is a float64: it is echoed as the parsed number (an integral value as ``20``, not ``20.0``).
* Fraud check, for every payment that passes validation (approved or not): the payment is recorded under the
  last four characters of card_number, then ``n`` = payments with those last four in the past 3600 s
  (the current one included). ``fraud_score = 0.05 * max(0, n - 10) + (0.5 if amount > 10000 else 0)``
  (two decimals). ``n > 20`` -> 402 ``Transaction declined: velocity limit exceeded: more than 20 payments
  with card ending NNNN in the last hour``; else ``fraud_score > 0.8`` -> 402 ``Transaction declined:
  fraud score S exceeds threshold 0.80``. Rejections count towards the window, so a card stays declined.
  The 402 body is the payment object (same keys as a 200) with ``"status": "rejected"``.
* Both approvals and fraud rejections take the 10-50 ms of processing; 400s and chaos 500s answer at once.
* transaction_id is the one sent (any non-empty string) or a new UUID v4; processed_at / generated_at are
  RFC 3339 UTC with fractional seconds (Go's time.Time JSON form); message on approval is
  ``Payment processed successfully``.
* Reports: report_id is a UUID v4, download_url ``/reports/<report_id>.<format>`` (format default ``pdf``,
  any string accepted), record_count and total_amount are random; merchant_id and format are not echoed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import signal
import sys
import time
import uuid
from collections import deque
from datetime import UTC, datetime

from aiohttp import web

FRAUD_WINDOW_S = 3600.0
VELOCITY_SCORE_AFTER = 10  # above this many payments per last four, the score rises
VELOCITY_LIMIT = 20  # above this many payments per last four, the payment is declined
LARGE_AMOUNT = 10_000
SCORE_THRESHOLD_H = 80  # hundredths: rejected above 0.80
BUG_EVERY = 7
MAX_BODY = 8 * 1024 * 1024

# (json name, Go field name, Go type, validator tags in order)
PAYMENT_FIELDS = (
    ("transaction_id", "TransactionID", "string", ()),
    ("amount", "Amount", "float64", ("required", "gt")),
    ("currency", "Currency", "string", ("required",)),
    ("card_number", "CardNumber", "string", ("required",)),
    ("card_holder", "CardHolder", "string", ("required",)),
    ("expiry_date", "ExpiryDate", "string", ("required",)),
    ("cvv", "CVV", "string", ("required",)),
    ("merchant_id", "MerchantID", "string", ("required",)),
    ("customer_id", "CustomerID", "string", ()),
    ("description", "Description", "string", ()),
)
REPORT_FIELDS = (
    ("report_type", "ReportType", "string", ("required",)),
    ("start_date", "StartDate", "string", ("required",)),
    ("end_date", "EndDate", "string", ("required",)),
    ("merchant_id", "MerchantID", "string", ()),
    ("format", "Format", "string", ()),
)


class BindError(Exception):
    """A gin binding error: its text is the 400's message."""


class _Num(float):
    """A JSON number that remembers its literal (for Go's overflow message)."""

    text: str

    def __new__(cls, text: str):
        self = super().__new__(cls, text)
        self.text = text
        return self


def _bad_constant(name: str):
    raise BindError(f"invalid character '{name.lstrip('-')[0]}' looking for beginning of value")


_DECODER = json.JSONDecoder(parse_float=_Num, parse_int=_Num, parse_constant=_bad_constant)
_WS = " \t\n\r"


def _go_char(c: str) -> str:
    if c == "'":
        return "'\\''"
    if c.isprintable():
        return f"'{c}'"
    return "'" + json.dumps(c)[1:-1] + "'"


def _go_syntax_error(e: json.JSONDecodeError) -> str:
    doc, pos = e.doc, e.pos
    if pos >= len(doc) or e.msg.startswith("Unterminated string"):
        return "unexpected EOF"
    c = _go_char(doc[pos])
    if e.msg.startswith("Expecting value"):
        return f"invalid character {c} looking for beginning of value"
    if e.msg.startswith("Expecting property name"):
        return f"invalid character {c} looking for beginning of object key string"
    if e.msg.startswith("Expecting ':'"):
        return f"invalid character {c} after object key"
    if e.msg.startswith("Expecting ','"):
        return f"invalid character {c} after object key:value pair"
    if e.msg.startswith("Invalid control character"):
        return f"invalid character {c} in string literal"
    if e.msg.startswith("Invalid \\escape"):
        return f"invalid character {_go_char(doc[pos + 1 : pos + 2] or ' ')} in string escape code"
    return e.msg


def _json_kind(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def bind_json(raw: bytes, struct: str, fields: tuple) -> dict:
    """``c.ShouldBindJSON(&req)``: decode like encoding/json, then validate like go-playground/validator."""
    text = raw.decode("utf-8", errors="replace")
    start = len(text) - len(text.lstrip(_WS))
    if start >= len(text):
        raise BindError("EOF")
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as e:
        raise BindError(_go_syntax_error(e)) from None
    by_name = {f[0]: f for f in fields}
    out: dict = {f[0]: (0.0 if f[2] == "float64" else "") for f in fields}
    first_error: str | None = None
    if value is None:
        pass  # null into a struct is a no-op
    elif not isinstance(value, dict):
        raise BindError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type main.{struct}")
    else:
        for key, v in value.items():
            f = by_name.get(key) or by_name.get(key.lower())
            if f is None or v is None:
                continue
            name, _go, typ, _tags = f
            into = f"into Go struct field {struct}.{name} of type {typ}"
            err = None
            if typ == "float64":
                if not isinstance(v, float):
                    err = f"json: cannot unmarshal {_json_kind(v)} {into}"
                elif math.isinf(v):
                    err = f"json: cannot unmarshal number {v.text} {into}"
                else:
                    out[name] = float(v)
            elif isinstance(v, str):
                out[name] = v
            else:
                err = f"json: cannot unmarshal {_json_kind(v)} {into}"
            if err and first_error is None:
                first_error = err
    if first_error:
        raise BindError(first_error)
    problems = []
    for name, go, typ, tags in fields:
        v = out[name]
        for tag in tags:
            failed = (v == 0 or v == "") if tag == "required" else (typ == "float64" and not v > 0)
            if failed:
                problems.append(f"Key: '{struct}.{go}' Error:Field validation for '{go}' failed on the '{tag}' tag")
                break
    if problems:
        raise BindError("\n".join(problems))
    return out


def go_number(x: float):
    """float64 as Go's encoding/json writes it (integral values without '.0')."""
    return int(x) if x.is_integer() and abs(x) < 1e21 else x


def go_now() -> str:
    s = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return s + "Z"


def jresp(status: int, body: dict) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        content_type="application/json",
        charset="utf-8",
    )


def validation_error(msg: str) -> web.Response:
    return jresp(400, {"error": "validation_error", "message": msg})


class FraudChecker:
    """Payments per last four in a sliding one-hour window. Only the last few timestamps per key are kept:
    counts above the limit all mean the same thing."""

    def __init__(self, window_s: float = FRAUD_WINDOW_S):
        self.window_s = window_s
        self.seen: dict[str, deque] = {}

    def check(self, card_number: str, amount: float) -> tuple[float, str | None]:
        key = card_number[-4:]
        now = time.monotonic()
        dq = self.seen.get(key)
        if dq is None:
            dq = self.seen[key] = deque(maxlen=VELOCITY_LIMIT + 8)
        cutoff = now - self.window_s
        while dq and dq[0] <= cutoff:
            dq.popleft()
        dq.append(now)
        n = len(dq)
        score_h = 5 * max(0, n - VELOCITY_SCORE_AFTER) + (50 if amount > LARGE_AMOUNT else 0)
        score = score_h / 100
        if n > VELOCITY_LIMIT:
            return (
                score,
                f"velocity limit exceeded: more than {VELOCITY_LIMIT} payments with card ending {key} in the last hour",
            )
        if score_h > SCORE_THRESHOLD_H:
            return score, f"fraud score {score:.2f} exceeds threshold {SCORE_THRESHOLD_H / 100:.2f}"
        return score, None


class BaselineService:
    def __init__(self, chaos_rate: float = 0.0, bug: str | None = None):
        self.chaos_rate = chaos_rate
        self.bug = bug
        self.fraud = FraudChecker()
        self.approvals = 0
        self.routes = {
            ("GET", "/health"): self.health,
            ("POST", "/pay"): self.pay,
            ("POST", "/internal/generate-report"): self.report,
        }
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path, method = request.path, request.method
        handler = self.routes.get((method, path))
        if handler is not None:
            return await handler(request)
        if len(path) > 1 and path.endswith("/") and (method, path.rstrip("/")) in self.routes:
            code = 301 if method == "GET" else 307
            return web.Response(status=code, headers={"Location": path.rstrip("/")})
        return web.Response(status=404, text="404 page not found", content_type="text/plain")

    def chaos(self) -> web.Response | None:
        if self.chaos_rate > 0 and random.random() < self.chaos_rate:
            return jresp(500, {"error": "internal_error", "message": "Internal server error (injected chaos)"})
        return None

    async def health(self, request: web.Request) -> web.Response:
        return jresp(200, {"status": "healthy", "service": "payment-service", "fraud_db": "healthy"})

    async def pay(self, request: web.Request) -> web.Response:
        if (r := self.chaos()) is not None:
            return r
        try:
            req = bind_json(await request.read(), "PaymentRequest", PAYMENT_FIELDS)
        except BindError as e:
            return validation_error(str(e))
        amount = req["amount"]
        score, reason = self.fraud.check(req["card_number"], amount)
        await asyncio.sleep(random.uniform(0.010, 0.050))
        body = {
            "transaction_id": req["transaction_id"] or str(uuid.uuid4()),
            "status": "approved",
            "amount": go_number(amount),
            "currency": req["currency"],
            "merchant_id": req["merchant_id"],
            "message": "Payment processed successfully",
            "fraud_score": go_number(score),
            "processed_at": go_now(),
        }
        if reason is not None:
            body["status"] = "rejected"
            body["message"] = f"Transaction declined: {reason}"
            return jresp(402, body)
        self.approvals += 1
        if self.bug == "echo_other_amount" and self.approvals % BUG_EVERY == 0:
            body["amount"] = go_number(amount + 0.01)
        return jresp(200, body)

    async def report(self, request: web.Request) -> web.Response:
        if (r := self.chaos()) is not None:
            return r
        try:
            req = bind_json(await request.read(), "ReportRequest", REPORT_FIELDS)
        except BindError as e:
            return validation_error(str(e))
        await asyncio.sleep(random.uniform(0.100, 0.500))
        report_id = str(uuid.uuid4())
        fmt = req["format"] or "pdf"
        return jresp(
            200,
            {
                "report_id": report_id,
                "status": "completed",
                "report_type": req["report_type"],
                "start_date": req["start_date"],
                "end_date": req["end_date"],
                "generated_at": go_now(),
                "download_url": f"/reports/{report_id}.{fmt}",
                "record_count": random.randint(0, 50_000),
                "total_amount": round(random.uniform(0, 5_000_000), 2),
            },
        )


async def serve(args: argparse.Namespace) -> int:
    svc = BaselineService(args.chaos_rate, args.bug if args.bug != "none" else None)
    runner = web.AppRunner(svc.app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, shutdown_timeout=2.0, backlog=1024)
    await site.start()
    print(f"listening payment-service-baseline http://{args.host}:{args.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    print("stopped", flush=True)
    return 0


def _rate(s: str) -> float:
    x = float(s)
    if not 0.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return x


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1"])
    ap.add_argument("--chaos-rate", type=_rate, default=0.0, help="share of business requests answering 500")
    ap.add_argument("--bug", default="none", choices=["none", "echo_other_amount"])
    args = ap.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(args))
    return uvloop.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
