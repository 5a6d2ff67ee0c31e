"""The calibration target: a PaymentService whose latency distribution is known exactly.

    python -m bench.calibration.target --dist fixed:1040 [--port 0] [--max-seconds 3600]

It speaks just enough of the contract (shared/api-contract.md, as apis/contract.py checks it) for
the suite's payment task to pass: ``GET /health``; ``POST /payments`` and ``POST /pay`` answer 201
with the amount and currency echoed, an id, ``status: succeeded``, the card's last four digits and
``refunded_amount: 0``. Stateless: nothing is stored, any bearer token is accepted (no answer the
suite checks depends on it). Each payment is held by the server for the delay its distribution
assigns (bench/calibration/distributions.py), counted from when the request arrived.
``GET /__calibration`` tells what was served: the spec, the period origin (epoch s), how many
payments were received and answered, and how late the target's own wake-ups were (mean, max ms).

Binds 127.0.0.1 only; prints ``listening on http://127.0.0.1:<port>`` once ready; stops on SIGTERM
or SIGINT, and by itself after --max-seconds (an orphaned target does not live on).
Exit status: 0 stopped, 2 bad arguments (one line naming the flag and the allowed values)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from typing import Any

from aiohttp import web

from bench.calibration.distributions import SPEC_HELP, Distribution, SpecError, parse

JSON_ERROR = {"error": {"code": "validation_error", "message": "body must be a JSON object with amount and currency"}}


class Served:
    """What the target has served: its clock origin and its payment counters."""

    def __init__(self, dist: Distribution):
        self.dist = dist
        self.origin = time.time()
        self.received = 0
        self.answered = 0
        # how late the target's own wake-ups were (its event loop on a busy machine): the part of
        # a miss that is the target's, not the generator's
        self.late_ms_total = 0.0
        self.late_ms_max = 0.0


def _card_last4(body: dict) -> str:
    card = body.get("card")
    number = str(card.get("number", "")) if isinstance(card, dict) else ""
    return number[-4:]


def payment_answer(body: dict, number: int, now: float) -> dict[str, Any]:
    """The contract's payment object for a request body (never the full card number)."""
    return {
        "id": f"pay_cal{number:010d}",
        "object": "payment",
        "status": "succeeded",
        "amount": body.get("amount"),
        "currency": body.get("currency"),
        "merchant_id": body.get("merchant_id"),
        "card": {"last4": _card_last4(body)},
        "refunded_amount": 0,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    }


def make_app(served: Served) -> web.Application:
    loop_time = asyncio.get_running_loop().time

    async def payment(request: web.Request) -> web.Response:
        arrived, now = loop_time(), time.time()
        number = served.received
        served.received += 1
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.json_response(JSON_ERROR, status=422)
        delay_s = served.dist.delay_ms(number, now, served.origin) / 1000.0
        await asyncio.sleep(max(0.0, arrived + delay_s - loop_time()))
        late_ms = (loop_time() - arrived - delay_s) * 1000.0
        served.late_ms_total += late_ms
        served.late_ms_max = max(served.late_ms_max, late_ms)
        served.answered += 1
        return web.json_response(payment_answer(body, number, now), status=201)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "checks": {"database": "ok", "bank": "ok"}})

    async def state(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                "spec": served.dist.spec,
                "origin_epoch": served.origin,
                "received": served.received,
                "answered": served.answered,
                "late_ms_mean": round(served.late_ms_total / served.answered, 3) if served.answered else None,
                "late_ms_max": round(served.late_ms_max, 3),
            }
        )

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/payments", payment)
    app.router.add_post("/pay", payment)
    app.router.add_get("/__calibration", state)
    return app


async def serve(dist: Distribution, port: int, max_seconds: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    served = Served(dist)
    runner = web.AppRunner(make_app(served), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    served.origin = time.time()  # periods (stall) count from when the target is ready
    print(f"calibration target: {dist.spec}, listening on http://127.0.0.1:{bound}", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    except TimeoutError:
        print(f"calibration target: stopping after --max-seconds {max_seconds:g}", flush=True)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Calibration target: a payment service with a known latency distribution")
    p.add_argument("--dist", required=True, help=SPEC_HELP)
    p.add_argument("--port", type=int, default=0, help="loopback port (0: any free one, printed)")
    p.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself after this long")
    args = p.parse_args(argv)
    try:
        dist = parse(args.dist)
    except SpecError as exc:
        print(f"calibration target: --dist={args.dist!r}: {exc} (allowed: {SPEC_HELP})", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535 or args.max_seconds <= 0:
        print("calibration target: --port must be 0..65535 and --max-seconds above 0", file=sys.stderr)
        return 2
    asyncio.run(serve(dist, args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
