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

from users import payment_api as api
from users.base import RUN_ID, PaymentSuiteUser, settings

RACE_WIDTH = settings.race_width


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
            exception=RaceViolation(problem) if problem else None,
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

    @task
    def refund_race(self) -> None:
        payment = api.make_payment(self, merchant=self.race_merchant(), name="race: POST /payments (setup)")
        if payment is None:
            return
        full = self.rng.random() < 0.5
        share = None if full else max(1, payment.amount // 3)
        started = time.perf_counter()

        def one(_i: int) -> int:
            status, _ = self.call(
                "POST",
                f"/payments/{payment.id}/refunds",
                name="race: POST /payments/[id]/refunds",
                json={} if full else {"amount": share},
                expect={201: None, 409: None},  # the loser gets 409 (the contract names no code for it)
                money=api.refund_op(payment, share, race="refund"),
            )
            return status

        codes = self.fan_out(one)
        wins = codes.count(201)
        refunded = payment.amount if full and wins else wins * (share or 0)
        if full and wins != 1:
            problem = f"{wins} full refunds of one payment succeeded"
        elif refunded > payment.amount:
            problem = f"{wins} partial refunds moved more than was captured"  # no amounts: one error row
        else:
            problem = None
        self.report("race: " + ("full" if full else "partial") + " refunds of one payment", started, problem)


class CaptureRaceUser(RaceUser):
    """Concurrent captures of one authorization: exactly one 201, the rest 409 already_captured."""

    host = settings.banking_api_url

    def __init__(self, environment):
        self.host = settings.banking_api_url
        super().__init__(environment)

    @task
    def capture_race(self) -> None:
        merchant = self.race_merchant()
        body = self.pool.payment(self.rng, merchant=merchant)
        auth_body = {k: body[k] for k in ("amount", "currency", "card", "merchant_id")}
        status, auth = self.call(
            "POST",
            "/v1/authorizations",
            name="race: POST /v1/authorizations (setup)",
            json=auth_body,
            expect={201: None},
            money=(
                "authorization",
                {"amount": body["amount"], "currency": body["currency"], "merchant_id": merchant.id, "race": "capture"},
            ),
        )
        if status != 201 or not isinstance(auth, dict):
            return
        started = time.perf_counter()

        def one(_i: int) -> int:
            code, _ = self.call(
                "POST",
                f"/v1/authorizations/{auth['id']}/capture",
                name="race: POST /v1/authorizations/[id]/capture",
                json={"amount": body["amount"]},
                expect={201: None, 409: None},  # the loser gets 409 (the contract names no code for it)
                money=(
                    "capture",
                    {"amount": body["amount"], "merchant_id": merchant.id, "parent": auth["id"], "race": "capture"},
                ),
            )
            return code

        wins = self.fan_out(one).count(201)
        self.report(
            "race: captures of one authorization",
            started,
            None if wins == 1 else f"{wins} captures of one authorization succeeded",
        )


class IdempotencyStormUser(RaceUser):
    """Many concurrent requests with one Idempotency-Key and body, then a retry after a client
    timeout: one payment, one id, whatever the interleaving."""

    @task
    def storm(self) -> None:
        body = self.pool.payment(self.rng, merchant=self.race_merchant())
        key = self.idempotency_key()
        started = time.perf_counter()

        def one(_i: int) -> tuple[int, str | None]:
            status, resp = self.call(
                "POST",
                "/payments",
                name="race: POST /payments (same Idempotency-Key)",
                json=body,
                headers={"Idempotency-Key": key},
                expect={201: None, 409: None},  # in flight: the contract names no code
                money=api.payment_op(body, race="storm"),
            )
            return status, resp.get("id") if status == 201 and isinstance(resp, dict) else None

        results = [r for r in self.fan_out(one) if r]
        ids = {pid for _, pid in results if pid}
        # Whoever lost the race retries, as a client would, until the key's result is final.
        for _ in range(20):
            if ids:
                break
            gevent.sleep(0.05)
            status, pid = one(0)
            if pid:
                ids.add(pid)
        problem = None if len(ids) == 1 else f"one Idempotency-Key gave {len(ids)} payments"
        self.report("race: idempotency storm", started, problem)
        self.retry_after_timeout()

    def retry_after_timeout(self) -> None:
        """The client gives up before the answer (timeout), then retries with the same key."""
        body = self.pool.payment(self.rng, merchant=self.race_merchant())
        key = self.idempotency_key()
        started = time.perf_counter()
        url = URL(self.host.rstrip("/") + "/payments")
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
            status, resp = self.call(
                "POST",
                "/payments",
                name="race: POST /payments (retry after timeout)",
                json=body,
                headers={"Idempotency-Key": key},
                expect={201: None, 409: None},  # in flight: the contract names no code
                money=api.payment_op(body, race="retry"),
            )
            if status == 201 and isinstance(resp, dict):
                ids.add(resp["id"])
                if len(ids) > 1 or self.rng.random() < 0.5:
                    break
                continue  # one more replay must return the same id
            gevent.sleep(0.05)
        self.report(
            f"race: retry after client timeout ({first})",
            started,
            None if len(ids) == 1 else f"retries with one key gave {len(ids)} payments",
        )
