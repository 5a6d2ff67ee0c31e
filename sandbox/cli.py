"""Command line of the sandbox (``python -m sandbox``).

Each service runs in its own process (one core each); the parent supervises them, forwards
SIGINT/SIGTERM and exits cleanly. A taken port is one clear line and exit status 1; a bad SANDBOX_*
variable one line per variable and exit status 2 (sandbox/settings.py)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import multiprocessing as mp
import os
import signal
import socket
import sys
from pathlib import Path

from sandbox.settings import KEEP_ALIVE_S, get_sandbox_settings  # KEEP_ALIVE_S: why 75 s, see there


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags; each one's default is its SANDBOX_* variable (a bad one exits 2, sandbox/settings.py)."""
    env = get_sandbox_settings()
    p = argparse.ArgumentParser(prog="python -m sandbox", description="Run the sandbox PaymentService and BankingAPI.")
    p.add_argument("service", nargs="?", choices=("both", "payment", "bank"), default="both")
    p.add_argument("--host", default=env.host)
    p.add_argument("--payment-port", type=int, default=env.payment_port)
    p.add_argument("--bank-port", type=int, default=env.bank_port)
    p.add_argument("--bank-url", default=None, help="BankingAPI the PaymentService calls (default: the local one)")
    p.add_argument(
        "--bank-timeout",
        type=float,
        default=env.bank_timeout_s,
        help="PaymentService -> bank timeout in seconds (default 3)",
    )
    p.add_argument(
        "--keep-alive",
        type=float,
        default=env.keep_alive_s,
        help=f"seconds an idle client connection is kept open (default {KEEP_ALIVE_S:g})",
    )
    p.add_argument("--data-dir", type=Path, default=env.data_dir)
    p.add_argument("--reset", action="store_true", help="delete stored data before starting")
    return p.parse_args(argv)


def port_free(host: str, port: int) -> str | None:
    """None if we can bind, else a reason."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
    return None


def serve(service: str, args: argparse.Namespace) -> None:
    """Child process body: one uvicorn server for one service."""
    import uvicorn

    port = args.payment_port if service == "payment" else args.bank_port
    name = "PaymentService" if service == "payment" else "BankingAPI"
    url = f"http://{args.host}:{port}"

    def ready() -> None:  # called once the socket is bound
        # Everything built at start-up (FastAPI, pydantic, uvicorn) is long-lived: moved out of the
        # collector's reach, a full collection no longer walks it in the middle of requests.
        gc.collect()
        gc.freeze()
        print(f"sandbox: {name} listening on {url} (data: {args.data_dir})", flush=True)

    if service == "payment":
        from sandbox.payment import create_app

        bank_url = args.bank_url or f"http://{args.host}:{args.bank_port}"
        app = create_app(args.data_dir, bank_url, args.bank_timeout)
    else:
        from sandbox.bank import create_app

        app = create_app(args.data_dir)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,  # loopback, no proxy in front: one middleware less per request
        timeout_graceful_shutdown=5,
        timeout_keep_alive=args.keep_alive,
    )
    _quiet_server(config, ready).run()


def _quiet_server(config, ready):
    """A uvicorn.Server that says it listens only once bound, and exits 0 on SIGINT/SIGTERM
    (uvicorn re-raises the signal after a graceful stop, which reads as a crash to a supervisor)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:
                ready()

        @contextlib.contextmanager
        def capture_signals(self):
            def handle(*_):
                self.should_exit = True

            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, handle)
            yield

    return Server(config)


def main(argv: list[str] | None = None) -> int:
    from dotenv import load_dotenv

    load_dotenv()  # the same .env as the suite, so AUTH_TOKEN agrees (never overrides the environment)
    args = parse_args(argv)
    services = ["bank", "payment"] if args.service == "both" else [args.service]
    for service in services:
        port = args.payment_port if service == "payment" else args.bank_port
        reason = port_free(args.host, port)
        if reason:
            flag = "--payment-port" if service == "payment" else "--bank-port"
            print(
                f"sandbox: cannot listen on {args.host}:{port} ({reason}); stop what uses it or pass {flag}",
                file=sys.stderr,
            )
            return 1
    if args.reset:
        from sandbox.storage import reset

        reset(args.data_dir)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if len(services) == 1:
        serve(services[0], args)
        print("sandbox: stopped", flush=True)
        return 0

    ctx = mp.get_context("spawn")
    children = [ctx.Process(target=serve, args=(s, args), name=f"sandbox-{s}") for s in services]
    stopping = False

    def stop(signum: int, _frame) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.is_alive() and child.pid:
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for child in children:
        child.start()
    # Wait until any child ends; if it was not asked to, stop the other and report it.
    from multiprocessing.connection import wait

    wait([c.sentinel for c in children])
    asked_to_stop = stopping
    failed = [c for c in children if c.exitcode not in (0, None)]
    stop(signal.SIGTERM, None)
    for child in children:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    if failed and not asked_to_stop:
        print(f"sandbox: {failed[0].name} exited with status {failed[0].exitcode}", file=sys.stderr)
        return 1
    print("sandbox: stopped", flush=True)
    return 0
