"""Connection retries: a request that went out on a pooled keep-alive connection which the server
closed before sending a byte of an answer is sent again, once, on a new connection, when that is
safe (a GET, HEAD or OPTIONS, or a write that carries an ``Idempotency-Key``). Every such resend is
counted per endpoint and reported in the run summary's ``connection_retries`` section; a resend
that fails again, or a request that may not be resent, stays a failure.

Why a resend is needed at all: a server closes a connection that has been idle for its keep-alive
timeout; if the client sends its next request on that connection at that moment, the close and the
request cross and the request is dropped unanswered (the sandbox closed after uvicorn's default 5 s,
which users thinking 1-5 s between tasks hit twice in a 28,000-request endurance run).
geventhttpclient checks a pooled connection before using it, so one closed *before* the request left
is replaced silently and correctly; only the race is left. Its ``HTTPClient.request`` then resends on
its own, uncounted, up to pool size + 1 times, but (since 2.6) only idempotent methods, so a
``POST /payments`` reached the user as ``HTTPConnectionClosed: connection closed.``. That loop is
switched off for the suite's clients: the resend happens here, once, counted.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import gevent.queue
from geventhttpclient.client import HTTPClient, HTTPClientPool
from geventhttpclient.response import HTTPConnectionClosed
from geventhttpclient.url import URL
from locust import events
from locust.contrib.fasthttp import FAILURE_EXCEPTIONS, ErrorResponse, FastHttpSession

from reporting.sections import RunContext, Section, register

log = logging.getLogger("suite.retries")

SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))


class ConnectionRetriesSection(Section):
    """Requests resent after their pooled connection was closed unanswered, by request name."""

    name = "connection_retries"
    order = 60

    def __init__(self) -> None:
        self.by_endpoint: dict[str, int] = {}
        self.total = 0
        self._logged: set[str] = set()

    def add(self, endpoint: str, count: int = 1) -> None:
        self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + count
        self.total += count

    def reset(self) -> None:
        self.by_endpoint = {}
        self.total = 0

    def build(self, run: RunContext | None) -> dict[str, Any]:
        return {"total": self.total, "by_endpoint": dict(sorted(self.by_endpoint.items()))}

    def verdict(self, data: dict[str, Any]) -> list[str]:
        return []  # a resend that was answered is not a failure; one that was not is one already

    def markdown(self, data: dict[str, Any]) -> list[str]:
        lines = ["### Connection retries", ""]
        by_endpoint = data.get("by_endpoint") or {}
        if not data.get("total"):
            return [*lines, "- none"]
        lines.append(
            f"- {data['total']} request(s) resent once on a new connection: the server closed the"
            " pooled keep-alive connection they were sent on before answering"
        )
        lines += [f"- {name}: {n}" for name, n in sorted(by_endpoint.items(), key=lambda kv: (-kv[1], kv[0]))]
        return lines

    def worker_report(self) -> dict[str, Any] | None:
        if not self.total:
            return None
        data = self.build(None)
        self.reset()
        return data

    def merge_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        for endpoint, count in (data.get("by_endpoint") or {}).items():
            self.add(endpoint, int(count))

    def note(self, endpoint: str, method: str, url: str) -> None:
        """Count one resend (and say so in the log, once per endpoint)."""
        self.add(endpoint)
        if endpoint not in self._logged:
            self._logged.add(endpoint)
            log.info(
                "%s %s: the server closed the pooled connection before answering; sent again on a new"
                " connection (counted in the summary's connection retries)",
                method,
                urlsplit(url).path,
            )


SECTION = register(ConnectionRetriesSection())


@events.test_start.add_listener
def _reset_counts(**_kwargs) -> None:
    SECTION.reset()


def may_resend(method: str, headers: dict | None) -> bool:
    """Safe to send twice: a safe method, or a write the server deduplicates by its key."""
    if method.upper() in SAFE_METHODS:
        return True
    return bool(headers) and any(k.lower() == "idempotency-key" and v for k, v in headers.items())


class _ClientPool(HTTPClientPool):
    """geventhttpclient's per-host client factory, whose clients count the connections they open
    and never resend on their own (see the module docstring)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.connections_opened = 0

    def get_client(self, url: str | URL) -> HTTPClient:
        # the parent's lookup, as cheap; only a new client is set up differently
        if not isinstance(url, URL):
            url = URL(url)
        client_key = url.host, url.port
        try:
            return self.clients[client_key]
        except KeyError:
            client = HTTPClient.from_url(url, **self.client_args)
            pool = client._connection_pool
            # HTTPClient.request resends on a closed connection while attempts_left (pool.size + 1)
            # lasts; -1 makes that 0. The pool's capacity was fixed when it was built.
            pool.size = -1
            create = pool._create_socket

            def create_counted():
                sock = create()
                self.connections_opened += 1
                return sock

            pool._create_socket = create_counted
            self.clients[client_key] = client
            return client

    def drop_idle(self, url: str) -> None:
        """Close the idle pooled connections to ``url``'s host: they have been idle at least as long
        as the one the server just closed, and the resend must go out on a new connection."""
        parsed = URL(url)
        client = self.clients.get((parsed.host, parsed.port))
        queue = getattr(getattr(client, "_connection_pool", None), "_socket_queue", None)
        while queue is not None and not queue.empty():
            try:
                queue.get(block=False).close()
            except gevent.queue.Empty:
                break
            except OSError:
                pass


class KeepAliveRetrySession(FastHttpSession):
    """FastHttpSession that resends, once and on a new connection, a request whose reused pooled
    connection was closed before any byte of an answer arrived, when :func:`may_resend` allows it.
    The success path costs what FastHttpSession's does, plus reading one counter."""

    _clients: _ClientPool

    @classmethod
    def adopt(cls, session: FastHttpSession) -> KeepAliveRetrySession:
        """Turn the session FastHttpUser built (with every setting it was given) into this class."""
        session.__class__ = cls
        agent = session.client
        agent.clientpool = session._clients = _ClientPool(**agent.clientpool.client_args)
        return session  # type: ignore[return-value]

    def _send_request_safe_mode(self, method: str, url: str, retry_name: str | None = None, **kwargs):
        opened = self._clients.connections_opened
        try:
            return self.client.urlopen(url, method=method, **kwargs)
        except HTTPConnectionClosed as e:  # closed before a byte of the answer
            # A connection opened meanwhile may have been this request's: then it was not a reused
            # one (in a fan-out it may be another greenlet's; not resending is the safe side).
            if opened != self._clients.connections_opened or not may_resend(method, kwargs.get("headers")):
                return self._error_response(e, method, url, kwargs)
        except FAILURE_EXCEPTIONS as e:
            return self._error_response(e, method, url, kwargs)
        SECTION.note(retry_name or f"{method} {urlsplit(url).path}", method, url)
        self._clients.drop_idle(url)
        return super()._send_request_safe_mode(method, url, **kwargs)  # fails as usual if it fails

    def _error_response(self, e: BaseException, method: str, url: str, kwargs: dict):
        """What FastHttpSession._send_request_safe_mode returns for a failed request."""
        if hasattr(e, "response"):
            resp = e.response
            resp.error = e
            return resp
        req = self.client._make_request(
            url,
            method=method,
            headers=kwargs.get("headers"),
            payload=kwargs.get("payload"),
            params=kwargs.get("params"),
        )
        return ErrorResponse(req, e)
