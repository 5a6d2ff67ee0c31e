"""Keep-alive races: a pooled connection the server closes just as a request goes out on it.

A small HTTP/1.1 server of the test's own (127.0.0.1, one thread per connection) drops requests
that arrive on a *reused* connection without answering, which is what a server's idle timer does
when it fires as the client's next request arrives. The suite's own user class
(``PaymentSuiteUser.call``) sends scripted requests to it from a subprocess (Locust gevent-patches
the interpreter). Then: the bundled sandbox keeps idle connections open longer than think times."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.helpers import ROOT

IDLE_S = 10.0  # the test server's normal idle timeout: longer than any pause in the script
HANG_S = 2.5  # how long /hang holds a request unanswered (the client gives up after 1 s)
CLOSED = "[connection] HTTPConnectionClosed: connection closed."


class KeepAliveServer:
    """HTTP/1.1 with keep-alive. What happens to a request depends on its path:

    - ``/race...``: answered on a new connection, dropped unanswered on a reused one (FIN);
      ``/race-rst...`` the same with a reset (RST) instead of a FIN
    - ``/drop...``: always dropped unanswered
    - ``/status/503``: 503; ``/partial``: part of a status line, then closed; ``/hang``: no answer
    - ``/idle-close``: answered, then the connection is closed after 0.2 s idle
    - anything else: 200 ``{"ok": true}``

    ``seen`` lists every request that arrived: connection number, its position on that connection
    (1 = first request of a new connection), method, path and Idempotency-Key."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen: list[dict] = []
        self.lock = threading.Lock()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arrivals(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.seen if r["path"] == path]

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        buf, nth, idle = b"", 0, IDLE_S
        with conn:
            while True:
                conn.settimeout(idle)
                try:
                    while b"\r\n\r\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    lines = head.decode("latin-1").split("\r\n")
                    method, path, _version = lines[0].split(" ", 2)
                    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
                    length = int(headers.get("content-length") or 0)
                    while len(buf) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                except OSError:  # idle timeout, or the client went away
                    return
                buf = buf[length:]
                nth += 1
                with self.lock:
                    self.seen.append(
                        {
                            "connection": number,
                            "nth": nth,
                            "method": method,
                            "path": path,
                            "key": headers.get("idempotency-key"),
                        }
                    )
                if path.startswith("/drop") or (path.startswith("/race") and nth > 1):
                    if path.startswith("/race-rst"):
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return  # closed without a byte of an answer
                if path == "/partial":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-")
                    return
                if path == "/hang":
                    time.sleep(HANG_S)
                    return
                status = b"503 Service Unavailable" if path == "/status/503" else b"200 OK"
                body = b'{"ok": true}'
                conn.sendall(
                    b"HTTP/1.1 "
                    + status
                    + b"\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                idle = 0.2 if path == "/idle-close" else IDLE_S


# The client side, run in a subprocess: the suite's PaymentSuiteUser sends each step through
# call() and reports what it saw. ``retries`` is the change of the connection-retry total.
CLIENT = r"""
import json, sys, time

from locust.env import Environment

from users.base import PaymentSuiteUser
try:
    from users import retries
except ImportError:  # before the fix
    retries = None


class Probe(PaymentSuiteUser):
    pass


env = Environment(user_classes=[Probe])
events = []
env.events.request.add_listener(
    lambda request_type, name, exception, **_kw: events.append((name, str(exception) if exception else None))
)
user = Probe(env)


def total():
    return retries.SECTION.build(None)["total"] if retries else 0


out = {"steps": []}
for step in json.loads(sys.argv[1]):
    time.sleep(step.get("pause", 0))
    before, started = total(), time.perf_counter()
    status, _body = user.call(
        step["method"],
        step["path"],
        name=step["name"],
        expect={200: None},
        json=None if step["method"] == "GET" else {"step": step["name"]},
        write=step.get("write"),
    )
    name, failure = events[-1]
    out["steps"].append(
        {
            "name": name,
            "status": status,
            "failure": failure,
            "retries": total() - before,
            "seconds": time.perf_counter() - started,
        }
    )
if retries:
    section = retries.SECTION
    out["build"] = section.build(None)
    out["verdict"] = section.verdict(out["build"])
    out["markdown"] = section.markdown(out["build"])
    out["worker_report"] = section.worker_report()
    out["after_report"] = section.build(None)
    out["second_report"] = section.worker_report()
    section.merge_worker_report("w1", {"total": 2, "by_endpoint": {"a": 2}})
    section.merge_worker_report("w2", {"total": 3, "by_endpoint": {"a": 1, "b": 2}})
    out["merged"] = section.build(None)
    out["merged_markdown"] = section.markdown(out["merged"])
    out["empty_markdown"] = section.markdown({"total": 0, "by_endpoint": {}})
print(json.dumps(out))
"""

STEPS = [
    {"method": "GET", "path": "/warm", "name": "warm"},  # a new connection, kept alive
    {"method": "GET", "path": "/race/get", "name": "race get"},
    {"method": "GET", "path": "/warm", "name": "warm"},
    {"method": "POST", "path": "/race-rst/pay", "name": "race post"},  # gets an Idempotency-Key
    {"method": "GET", "path": "/warm", "name": "warm"},
    {"method": "POST", "path": "/race/nokey", "name": "race nokey", "write": False},  # none
    {"method": "GET", "path": "/drop/fresh", "name": "drop fresh"},  # the pool is empty: a new one
    {"method": "GET", "path": "/warm", "name": "warm"},
    {"method": "GET", "path": "/drop/twice", "name": "drop twice"},
    {"method": "GET", "path": "/warm", "name": "warm"},
    {"method": "GET", "path": "/status/503", "name": "503"},
    {"method": "GET", "path": "/partial", "name": "partial"},
    {"method": "GET", "path": "/warm", "name": "warm"},
    {"method": "GET", "path": "/hang", "name": "hang"},
    {"method": "GET", "path": "/idle-close", "name": "idle close"},
    {"method": "GET", "path": "/warm", "name": "after idle close", "pause": 0.6},
]


@pytest.fixture(scope="module")
def scripted():
    server = KeepAliveServer()
    env = {**os.environ, "PAYMENT_SERVICE_URL": server.url, "REQUEST_TIMEOUT": "1"}
    try:
        r = subprocess.run(
            [sys.executable, "-c", CLIENT, json.dumps(STEPS)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout)
        steps = {}
        for spec, got in zip(STEPS, out["steps"], strict=True):
            steps.setdefault(spec["name"], got)  # the first of each name
        yield out, steps, server
    finally:
        server.close()


def test_get_and_keyed_write_are_resent_once_on_a_new_connection(scripted):
    _out, steps, server = scripted
    assert steps["warm"] == {**steps["warm"], "status": 200, "failure": None, "retries": 0}
    for name, path in (("race post", "/race-rst/pay"), ("race get", "/race/get")):
        assert steps[name]["status"] == 200, steps[name]
        assert steps[name]["failure"] is None
        assert steps[name]["retries"] == 1
        first, again = server.arrivals(path)  # sent exactly twice
        assert first["nth"] > 1  # on a reused connection, dropped unanswered
        assert again["nth"] == 1 and again["connection"] != first["connection"]  # on a new one
        assert again["key"] == first["key"]  # the same request, Idempotency-Key included
    assert server.arrivals("/race-rst/pay")[0]["key"]


def test_write_without_idempotency_key_is_not_resent(scripted):
    _out, steps, server = scripted
    step = steps["race nokey"]
    assert (step["status"], step["failure"], step["retries"]) == (0, CLOSED, 0)
    [only] = server.arrivals("/race/nokey")
    assert only["key"] is None and only["nth"] > 1


def test_closed_new_connection_and_second_close_stay_failures(scripted):
    _out, steps, server = scripted
    # a connection the server closes before answering its first request: not a keep-alive race
    fresh = steps["drop fresh"]
    assert (fresh["status"], fresh["failure"], fresh["retries"]) == (0, CLOSED, 0)
    assert [a["nth"] for a in server.arrivals("/drop/fresh")] == [1]
    # resent once (counted), closed again: a failure
    twice = steps["drop twice"]
    assert (twice["status"], twice["failure"], twice["retries"]) == (0, CLOSED, 1)
    assert [a["nth"] for a in server.arrivals("/drop/twice")][1:] == [1]
    assert len(server.arrivals("/drop/twice")) == 2


def test_5xx_partial_answer_and_timeout_are_not_resent(scripted):
    _out, steps, server = scripted
    assert steps["503"]["failure"].startswith("[5xx]") and steps["503"]["retries"] == 0
    assert steps["partial"]["status"] == 0 and steps["partial"]["retries"] == 0
    assert steps["partial"]["failure"].startswith("[connection]")
    assert "HTTPConnectionClosed" not in steps["partial"]["failure"]
    assert steps["hang"]["status"] == 0 and steps["hang"]["retries"] == 0
    assert steps["hang"]["seconds"] < HANG_S
    for path in ("/status/503", "/partial", "/hang"):
        assert len(server.arrivals(path)) == 1, path


def test_connection_closed_while_idle_is_replaced_without_a_resend(scripted):
    # The server closed it 0.2 s into a 0.6 s pause: the pool sees that before sending.
    _out, steps, server = scripted
    step = steps["after idle close"]
    assert (step["status"], step["failure"], step["retries"]) == (200, None, 0)
    assert server.arrivals("/idle-close")[0]["connection"] != server.seen[-1]["connection"]


def test_retries_reach_the_report_section(scripted):
    out, _steps, _server = scripted
    assert "build" in out, "users.retries is missing"
    want = {"race get": 1, "race post": 1, "drop twice": 1}
    assert out["build"] == {"total": 3, "by_endpoint": want}
    assert out["verdict"] == []
    assert out["markdown"][0] == "### Connection retries"
    assert any("race post" in line and "1" in line for line in out["markdown"])
    # a worker sends what it counted since its last report, then starts again from zero
    assert out["worker_report"] == {"total": 3, "by_endpoint": want}
    assert out["after_report"] == {"total": 0, "by_endpoint": {}}
    assert not out["second_report"]
    # the master adds up its workers' reports
    assert out["merged"] == {"total": 5, "by_endpoint": {"a": 3, "b": 2}}
    assert out["empty_markdown"][0] == "### Connection retries"
    assert any("none" in line for line in out["empty_markdown"])


def _exchange(sock: socket.socket) -> bytes:
    """One GET /health on ``sock``: the answer's head, or b"" if the connection was closed."""
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    except OSError:
        return b""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(x.split(b":", 1)[1]) for x in head.split(b"\r\n") if x.lower().startswith(b"content-length:")), 0
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


def test_sandbox_keeps_idle_connections_open_past_think_times(sandbox):
    """uvicorn's default closes a connection after 5 s idle: shorter than the suite's think times."""
    ports = (sandbox.payment_port, sandbox.bank_port)
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for port in ports]
    try:
        for s in socks:
            assert _exchange(s).startswith(b"HTTP/1.1 200")
        time.sleep(6.5)
        for port, s in zip(ports, socks, strict=True):  # the same connection, still open
            assert _exchange(s).startswith(b"HTTP/1.1 200"), f"port {port} closed the idle connection"
    finally:
        for s in socks:
            s.close()
