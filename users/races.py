"""Race scenarios: many concurrent requests at one payment, one authorization or one
Idempotency-Key, and a check that at most one (or as many as the money allows) win.

Each user fans a round of ``RACE_WIDTH`` requests out over parallel greenlets and connections,
then reports the round's invariant as a request of type ``RACE`` (a failure when broken). The
money itself is then reconciled against the server at the end of the run."""

from __future__ import annotations

import time

import gevent
import orjson
from geventhttpclient import HTTPClient
from geventhttpclient.url import URL
from locust import task

from apis.records import Capability
from users.base import RUN_ID, PaymentSuiteUser, needs, settings

RACE_WIDTH = settings.race_width


# The failure tag reporting/summary.py files under "money_race": a broken race or idempotency
# invariant moved money wrongly, so it fails the run as a money mismatch (exit 4), not as "other".
TAG = "[money race]"


class RaceViolation(Exception):
    pass


class RaceUser(PaymentSuiteUser):
    abstract = True
    concurrency = RACE_WIDTH  # connections in this user's pool: the round really runs in parallel

    def wait_time(self) -> float:
        return self.rng.uniform(0.05, 0.2)

    def fan_out(self, fn, width: int = RACE_WIDTH) -> list:
        jobs = [gevent.spawn(fn, i) for i in range(width)]
        try:
            gevent.joinall(jobs, timeout=settings.request_timeout * 2)
        finally:
            # Killed mid-round (the run stopping): the requests are already on the wire and may
            # move money, so let them land in the ledger before the reconciliation reads it.
            gevent.joinall(jobs, timeout=settings.request_timeout)
        return [j.value for j in jobs]

    def report(self, name: str, started: float, problem: str | None) -> None:
        self.environment.events.request.fire(
            request_type="RACE",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=RaceViolation(f"{TAG} {problem}") if problem else None,
            context={},
        )

    def race_merchant(self):
        """A merchant of this run alone, so reconciliation can see every payment made to it."""
        base = self.pool.random_merchant(self.rng)
        return type(base)(
            f"mer_race_{RUN_ID}_{self.user_number}", base.name, base.category, base.country, base.currency
        )


class RefundRaceUser(RaceUser):
    """Concurrent full refunds (exactly one may win) and partial refunds (never beyond the capture)."""

    steps = {Capability.PARTIAL_REFUNDS: "partial refund races"}

    @task
    @needs(Capability.PAYMENTS, Capability.REFUNDS)
    def refund_race(self) -> None:
        payment = self.api.pay(self, merchant=self.race_merchant(), setup=True, race="refund")
        if payment is None:
            return
        full = not self.api.has(Capability.PARTIAL_REFUNDS) or self.rng.random() < 0.5
        share = None if full else max(1, payment.amount // 3)
        started = time.perf_counter()
        amount = payment.amount

        def one(_i: int) -> bool:
            return self.api.refund(self, payment, share, race="refund", contended=True)

        wins = self.fan_out(one).count(True)
        refunded = amount if full and wins else wins * (share or 0)
        if full and wins != 1:
            problem = f"{wins} full refunds of one payment succeeded"
        elif refunded > amount:
            problem = f"{wins} partial refunds moved more than was captured"  # no amounts: one error row
        else:
            problem = None
        self.report("race: " + ("full" if full else "partial") + " refunds of one payment", started, problem)


class CaptureRaceUser(RaceUser):
    """Concurrent captures of one authorization: exactly one wins, the rest are refused."""

    @task
    @needs(Capability.BANK_AUTHORIZE, Capability.BANK_CAPTURE, Capability.BANK_STATEFUL)
    def capture_race(self) -> None:
        auth = self.api.authorize(self, merchant=self.race_merchant(), setup=True, race="capture")
        if auth is None:
            return
        started = time.perf_counter()

        def one(_i: int) -> bool:
            return self.api.capture(self, auth, auth.amount, race="capture", contended=True) is not None

        wins = self.fan_out(one).count(True)
        self.report(
            "race: captures of one authorization",
            started,
            None if wins == 1 else f"{wins} captures of one authorization succeeded",
        )


class IdempotencyStormUser(RaceUser):
    """Many concurrent requests with one Idempotency-Key and body, then a retry after a client
    timeout: one payment, one id, whatever the interleaving."""

    @task
    @needs(Capability.PAYMENTS, Capability.IDEMPOTENCY)
    def storm(self) -> None:
        merchant = self.race_merchant()
        key = self.idempotency_key()
        started = time.perf_counter()
        # Every request of the storm sends the very same body: the rng that builds it is re-seeded.
        seed = self.rng.getrandbits(64)

        def one(_i: int) -> str | None:
            payment = self.api.pay(self, merchant=merchant, race="storm", key=key, contended=True, rng_seed=seed)
            return payment.id if payment else None

        ids = {pid for pid in self.fan_out(one) if pid}
        # Whoever lost the race retries, as a client would, until the key's result is final.
        for _ in range(20):
            if ids:
                break
            gevent.sleep(0.05)
            pid = one(0)
            if pid:
                ids.add(pid)
        problem = None if len(ids) == 1 else f"one Idempotency-Key gave {len(ids)} payments"
        self.report("race: idempotency storm", started, problem)
        self.retry_after_timeout()

    def retry_after_timeout(self) -> None:
        """The client gives up before the answer (timeout), then retries with the same key."""
        merchant = self.race_merchant()
        key = self.idempotency_key()
        seed = self.rng.getrandbits(64)
        path, body = self.api.payment_request(self, merchant=merchant, rng_seed=seed)
        started = time.perf_counter()
        url = URL(self.host.rstrip("/") + path)
        hasty = HTTPClient.from_url(url, network_timeout=0.001, connection_timeout=1.0)
        headers = {**self.default_headers, "Content-Type": "application/json", "Idempotency-Key": key}
        try:
            hasty.post(url.request_uri, body=orjson.dumps(body), headers=headers)
            first = "answered"
        except Exception:  # noqa: BLE001 - a client-side timeout is the point
            first = "timed out"
        finally:
            hasty.close()
        ids = set()
        for _ in range(40):
            payment = self.api.pay(self, merchant=merchant, race="retry", key=key, contended=True, rng_seed=seed)
            if payment is not None:
                ids.add(payment.id)
                if len(ids) > 1 or self.rng.random() < 0.5:
                    break
                continue  # one more replay must return the same id
            gevent.sleep(0.05)
        self.report(
            f"race: retry after client timeout ({first})",
            started,
            None if len(ids) == 1 else f"retries with one key gave {len(ids)} payments",
        )
