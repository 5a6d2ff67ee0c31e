"""A tiny fake of the payments-only API of docs/your-own-api.md's from-scratch example:
``POST /v2/charges`` (amount in major units as ``total``, answered ``201`` with ``charge_id``,
``total`` and ``currency``) and ``GET /healthz``; nothing else (``/health`` is a 404).

    python -m tests.fakes.charges_fake --port 8090

Prints one ``listening ...`` line when ready; exits 0 on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.helpers import ServedPair

_ids = itertools.count(1)
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the suite's clients expect

    def log_message(self, *_args) -> None:  # quiet: one line per request would flood the log
        pass

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        if self.path == "/healthz":
            self._answer(200, {"ok": True})
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v2/charges":
            self._answer(404, {"error": "not found"})
            return
        try:
            charge = json.loads(body)
            total, currency = str(charge["total"]), str(charge["currency"])
            charge["shop"], charge["pan"]  # noqa: B018 - required fields
        except (ValueError, KeyError, TypeError):
            self._answer(400, {"error": "bad request"})
            return
        with _lock:
            charge_id = f"ch_{next(_ids):08d}"
        self._answer(201, {"charge_id": charge_id, "total": total, "currency": currency})


class ChargesFake(ServedPair):
    """The fake on a free loopback port; it has no BankingAPI (``bank_url`` is the same server)."""

    name = "charges fake"

    def __init__(self) -> None:
        super().__init__()
        self.bank_port = self.payment_port

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tests.fakes.charges_fake", "--port", str(self.payment_port)]

    def health_urls(self) -> list[str]:
        return [self.payment_url + "/healthz"]  # its health path is /healthz, not ServedPair's /health


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"listening on http://127.0.0.1:{args.port}", flush=True)
    signal.signal(signal.SIGINT, signal.getsignal(signal.SIGTERM))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
