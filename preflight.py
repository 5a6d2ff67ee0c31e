"""Pre-flight for ``scripts/run_tests.sh``: settings valid, targets answering, safety rails.

Exit status: 0 targets up; 10 the sandbox should be started (prints which: both/payment/bank; only for a
binding that declares ``bundled_sandbox``, and for every service down at its default address);
2 bad setting or a heavy profile against a remote host without opt-in; 3 a target is unreachable."""

from __future__ import annotations

import argparse
import socket
import sys
import time
from urllib.parse import urlsplit

import requests

import apis
from config import get_settings, is_loopback_host

SANDBOX_PORTS = {"payment": 8000, "bank": 1080}
START_SANDBOX = 10


def is_loopback(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname)


def is_sandbox_default(url: str, service: str) -> bool:
    parts = urlsplit(url)
    return is_loopback(url) and parts.scheme == "http" and parts.port == SANDBOX_PORTS[service]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def probe(url: str, timeout: float, path: str = "/health", healthy=None) -> str | None:
    """None when GET <path> answers 200 (and ``healthy(body)`` agrees), else the reason."""
    try:
        r = requests.get(url.rstrip("/") + path, timeout=timeout)
    except requests.ConnectionError as exc:
        reason = exc.args[0] if exc.args else exc
        text = str(getattr(reason, "reason", reason))
        return "connection refused" if "refused" in text.lower() else f"cannot connect ({text[:120]})"
    except requests.Timeout:
        return f"no answer within {timeout:g} s"
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    if r.status_code != 200:
        return f"GET {path} answered HTTP {r.status_code}"
    try:
        body = r.json()
    except ValueError:
        body = None
    return None if healthy is None or healthy(body) else f"GET {path} answered 200 but does not say it is healthy"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--profile", required=True)
    p.add_argument("--needs", default="payment,bank")
    p.add_argument("--heavy", action="store_true", help="the profile is a heavy load (profiles.toml)")
    p.add_argument("--timeout", type=float, default=2.0)
    args = p.parse_args(argv)
    settings = get_settings()  # exits 2 with a clear line on a bad setting
    binding = apis.current()
    urls = {"payment": settings.target_url, "bank": settings.banking_api_url}
    paths = {"payment": binding.health_paths.get("payments"), "bank": binding.health_paths.get("bank")}
    # A service the API does not have (baseline: no BankingAPI) is not waited for.
    needed = [s for s in ("payment", "bank") if s in args.needs.split(",") and paths[s]]

    remote = [f"{s} {urls[s]}" for s in needed if not is_loopback(urls[s])]
    if args.heavy and remote and not settings.allow_remote_target:
        print(
            f"refusing: profile '{args.profile}' is a heavy load and its target is not this machine "
            f"({', '.join(remote)}). Load a shared or production system only on purpose: set "
            "ALLOW_REMOTE_TARGET=yes to confirm.",
            file=sys.stderr,
        )
        return 2

    started = time.monotonic()
    service_of = {"payment": "payments", "bank": "bank"}

    def reason_down(service: str) -> str | None:
        healthy = service_of[service]
        return probe(urls[service], args.timeout, paths[service], lambda body: binding.healthy(healthy, body))

    down = {s: reason for s in needed if (reason := reason_down(s))}
    if not down:
        return 0

    def startable(service: str) -> bool:
        return is_sandbox_default(urls[service], service) and not port_in_use(SANDBOX_PORTS[service])

    # The sandbox's PaymentService calls its BankingAPI: starting it for a profile whose users call
    # only the PaymentService (failures) needs a bank that answers, or the sandbox's own.
    sandbox_needs_bank = binding.bundled_sandbox and "payment" in down and "bank" not in needed and paths["bank"]
    if sandbox_needs_bank and (bank_down := reason_down("bank")):
        down["bank"] = bank_down
    if binding.bundled_sandbox and all(startable(s) for s in down):
        # "both", "bank", or "payment <bank url it should call>"
        print("both" if len(down) == 2 else "bank" if "bank" in down else f"payment {urls['bank']}")
        return START_SANDBOX
    names = {"payment": "PaymentService", "bank": "BankingAPI"}
    took = time.monotonic() - started
    # What cannot be started comes first: it is what the user has to fix.
    for service in sorted(down, key=lambda s: binding.bundled_sandbox and startable(s)):
        print(
            f"target unreachable: {names[service]} at {urls[service]}: {down[service]} (checked in {took:.1f} s, "
            f"API_DIALECT={binding.name})",
            file=sys.stderr,
        )
    return 3


if __name__ == "__main__":
    sys.exit(main())
