"""End-of-run reconciliation: what the client saw (the ledger) against what the servers recorded.

Categories: matched; missing on the server; extra/duplicate on the server; amount mismatch;
over-refunded; refund mismatch; declined mismatch; bank settlement mismatch; unknown outcomes
resolved by idempotent replay (and those left unresolved). Any mismatch fails the verdict."""

from __future__ import annotations

import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import gevent
import gevent.pool
import requests

MAX_PAYMENTS_CHECKED = 20_000
CONCURRENCY = 16
RETRIES = 3  # tries of a reconciliation read or replay whose answer is not final
# The kinds of money mismatch: any of them fails the verdict (and each is a count in the summary).
MISMATCHES = (
    "missing_on_server",
    "duplicate_on_server",
    "amount_mismatch",
    "over_refunded",
    "refund_mismatch",
    "declined_mismatch",
    "bank_settlement_mismatch",
)


class Servers:
    def __init__(self, payment_url: str, bank_url: str, auth_header: str, timeout: float = 5.0):
        self.payment_url, self.bank_url = payment_url.rstrip("/"), bank_url.rstrip("/")
        self.session = requests.Session()
        # One pooled connection per concurrent check: a smaller pool discards connections (and
        # urllib3 warns "Connection pool is full" for each).
        adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=CONCURRENCY)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Authorization": auth_header, "Accept": "application/json"})
        self.timeout = timeout

    def get(self, url: str, **params) -> tuple[int, Any]:
        try:
            r = self.session.get(url, params=params or None, timeout=self.timeout)
            return r.status_code, r.json() if r.content else None
        except (requests.RequestException, ValueError):
            return 0, None

    def post(self, url: str, body: dict, key: str | None) -> tuple[int, Any]:
        try:
            r = self.session.post(
                url, json=body, timeout=self.timeout, headers={"Idempotency-Key": key} if key else None
            )
            return r.status_code, r.json() if r.content else None
        except (requests.RequestException, ValueError):
            return 0, None

    def settlement(self, day: str, merchant_id: str) -> tuple[int, int] | None:
        for attempt in range(RETRIES):  # a read: a passing 5xx or dropped connection is worth another try
            status, body = self.get(self.bank_url + "/v1/settlements", date=day, merchant_id=merchant_id)
            if status and status < 500:
                break
            gevent.sleep(0.05 * (attempt + 1))
        if status != 200 or not isinstance(body, dict):
            return None
        return int(body.get("captured", 0)), int(body.get("refunded", 0))


def utc_day(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts or time.time(), tz=UTC).date().isoformat()


def settlement_snapshot(servers: Servers, merchants: list[str], days: list[str]) -> dict[str, tuple[int, int]]:
    """Captured/refunded per merchant (summed over ``days``), to compare deltas at the end."""
    out: dict[str, tuple[int, int]] = {}

    def one(m: str) -> None:
        captured = refunded = 0
        for day in days:
            figures = servers.settlement(day, m)
            if figures is None:
                return
            captured, refunded = captured + figures[0], refunded + figures[1]
        out[m] = (captured, refunded)

    gevent.pool.Pool(CONCURRENCY).map(one, merchants)
    return out


# 409s the contract names: definite refusals. Any other 409 on a replay is the first request still
# in flight (the contract leaves that code to the service), so not an answer yet.
FINAL_CONFLICTS = frozenset(
    (
        "idempotency_key_reused",
        "refund_exceeds_captured",
        "payment_not_refundable",
        "already_captured",
        "amount_exceeds_authorized",
    )
)


def _final(status: int, body: Any) -> bool:
    if not status or status >= 500:
        return False
    if status != 409:
        return True
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and error.get("code") in FINAL_CONFLICTS


def resolve_unknown(
    servers: Servers, unknown: list[dict], counts: Counter, deadline: float | None = None
) -> list[dict]:
    """Replay each request whose outcome was unknown, with its original key and body: the server
    answers with the stored result (or runs it once). Returns the records as resolved, in order.
    Replays run side by side; none starts after ``deadline`` (monotonic)."""

    def one(rec: dict) -> dict:
        base = servers.bank_url if rec["kind"] in ("authorization", "capture", "bank_refund") else servers.payment_url
        status, body = 0, None
        # The same key and body: safe to send again while the server's answer is not final (a 5xx,
        # or a 409 while the first request is in flight). No answer at all: the target is gone.
        for attempt in range(RETRIES if rec.get("key") else 0):
            if deadline is not None and time.monotonic() > deadline:
                break
            status, body = servers.post(base + rec["path"], rec["request"], rec["key"])
            if not status or _final(status, body):
                break
            gevent.sleep(0.1 * (attempt + 1))
        rec = {k: v for k, v in rec.items() if k != "request"}
        if _final(status, body):
            counts["unknown_resolved_by_replay"] += 1
            rec["outcome"] = "succeeded" if 200 <= status < 300 else "declined" if status == 402 else "failed"
            if isinstance(body, dict):
                rec["id"] = body.get("id") or (body.get("error") or {}).get("payment_id")
                if rec["outcome"] == "succeeded" and rec.get("amount") is None and isinstance(body.get("amount"), int):
                    rec["amount"] = body["amount"]  # a full refund: the answer says how much
        else:
            counts["unknown_unresolved"] += 1
        return rec

    return list(gevent.pool.Pool(CONCURRENCY).imap(one, unknown))


def _sampled(payment_id: str, rate: float) -> bool:
    """Hash-based, so a payment and its refunds are kept or skipped together."""
    return rate >= 1.0 or zlib.crc32(payment_id.encode()) / 2**32 < rate


def reconcile(
    records: Callable[[], Iterable[dict]],
    unknown: list[dict],
    servers: Servers,
    start_settlements: dict[str, tuple[int, int]],
    days: list[str],
    deadline_s: float = 90.0,
) -> dict[str, Any]:
    """``records`` is called twice: the ledger is streamed (count, then check), never held whole,
    and at most MAX_PAYMENTS_CHECKED payments (an even hash sample) are kept for lookups."""
    started = time.monotonic()
    counts: Counter = Counter()
    problems: list[str] = []
    resolved = resolve_unknown(servers, unknown, counts, started + deadline_s / 2)
    succeeded = sum(1 for r in chain(records(), resolved) if r["kind"] == "payment" and r["outcome"] == "succeeded")
    rate = min(1.0, MAX_PAYMENTS_CHECKED / max(succeeded, 1))

    payments: dict[str, dict] = {}
    declined: dict[str, dict] = {}
    keys: dict[str, set] = defaultdict(set)  # race payments: idempotency key -> ids the client was given
    race_ids: set[str] = set()
    race_merchants: set[str] = set()
    expected_bank: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # captured, refunded, uncertain
    for rec in chain(records(), resolved):
        kind, outcome, merchant = rec["kind"], rec["outcome"], rec.get("merchant_id")
        amount = rec.get("amount") or 0
        if rec.get("race") and merchant:
            race_merchants.add(merchant)
        if kind == "payment":
            if outcome == "succeeded" and rec.get("id"):
                if rec.get("race"):
                    if rec.get("key"):
                        keys[rec["key"]].add(rec["id"])
                    if rec["id"] in race_ids:  # an idempotent replay of one the ledger already has
                        continue
                    race_ids.add(rec["id"])
                if merchant:
                    expected_bank[merchant][0] += amount
                if _sampled(rec["id"], rate):
                    payments[rec["id"]] = {"amount": amount, "currency": rec["currency"], "refunded": 0, "uncertain": 0}
            elif outcome == "unknown" and merchant:
                expected_bank[merchant][2] += amount
            elif outcome == "declined" and rec.get("id") and _sampled(rec["id"], rate):
                declined[rec["id"]] = rec
        elif kind == "refund":
            payment = payments.get(rec.get("parent"))
            if outcome == "succeeded":
                if rec.get("amount") is None:  # a full refund whose answer did not say how much
                    if payment is None:  # sampled out: its size is unknown, so the bank's figure is too
                        if merchant:
                            expected_bank[merchant][2] += 10**12
                        continue
                    amount = max(0, payment["amount"] - payment["refunded"])
                if merchant:
                    expected_bank[merchant][1] += amount
                if payment is not None:
                    payment["refunded"] += amount
            elif outcome == "unknown":
                # a full refund of unknown size: the payment's amount if we kept it, else anything
                size = amount or (payment["amount"] if payment else 10**12)
                if merchant:
                    expected_bank[merchant][2] += size
                if payment is not None:
                    payment["uncertain"] += size
        elif kind in ("capture", "bank_refund") and merchant:
            column = 0 if kind == "capture" else 1
            if outcome == "succeeded":
                expected_bank[merchant][column] += amount
            elif outcome == "unknown":
                expected_bank[merchant][2] += amount

    # One idempotency key, one payment.
    for key, ids in keys.items():
        if len(ids) > 1:
            counts["duplicate_on_server"] += len(ids) - 1
            problems.append(f"idempotency key {key} produced {len(ids)} different payments: {sorted(ids)[:3]}")

    # Every payment the client saw succeed (or the sample of them), as the server has it now.
    # Each answer is judged as it arrives and dropped: memory stays at the pool's width.
    sampled = rate < 1.0

    # Refunds the client saw accepted on one payment never add up to more than it captured: a
    # broken invariant the client can see by itself (the server's figures are checked below).
    for pid, mine in payments.items():
        if mine["refunded"] > mine["amount"]:
            counts["over_refunded"] += 1
            problems.append(
                f"payment {pid}: refunds of {mine['refunded']} were accepted on a capture of {mine['amount']}"
            )
            mine["judged"] = True

    def check_payment(pid: str) -> None:
        if time.monotonic() - started > deadline_s:
            counts["not_checked_time_limit"] += 1
            return
        mine = payments[pid]
        if mine.get("judged"):
            return
        status, body = servers.get(f"{servers.payment_url}/payments/{pid}")
        if status == 404:
            counts["missing_on_server"] += 1
            problems.append(f"payment {pid} succeeded for the client but the server has no record of it")
        elif status != 200 or not isinstance(body, dict):
            counts["lookup_failed"] += 1
        elif body.get("amount") != mine["amount"] or body.get("currency") != mine["currency"]:
            counts["amount_mismatch"] += 1
            problems.append(
                f"payment {pid}: client {mine['amount']} {mine['currency']}, server "
                f"{body.get('amount')} {body.get('currency')}"
            )
        elif (refunded := body.get("refunded_amount", 0)) > body.get("amount", 0):
            counts["over_refunded"] += 1
            problems.append(f"payment {pid}: refunded {refunded} of {body.get('amount')}")
        elif not mine["refunded"] <= refunded <= mine["refunded"] + mine["uncertain"]:
            counts["refund_mismatch"] += 1
            problems.append(f"payment {pid}: client saw {mine['refunded']} refunded, server says {refunded}")
        else:
            counts["matched"] += 1

    def check_declined(pid: str) -> None:
        if time.monotonic() - started > deadline_s:
            return
        status, body = servers.get(f"{servers.payment_url}/payments/{pid}")
        if status == 200 and isinstance(body, dict) and body.get("status") != "declined":
            counts["declined_mismatch"] += 1
            problems.append(f"payment {pid} was declined for the client but is {body.get('status')!r} on the server")
        elif status == 200:
            counts["declined_matched"] += 1

    pool = gevent.pool.Pool(CONCURRENCY)
    pool.map(check_payment, list(payments))
    pool.map(check_declined, list(declined))

    # Race merchants belong to this run alone: the server must list no payment the client did not get.
    for merchant in sorted(race_merchants):
        listed, cursor = [], None
        for _ in range(100):
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            status, page = servers.get(f"{servers.payment_url}/merchants/{merchant}/transactions", **params)
            if status != 200 or not isinstance(page, dict):
                break
            listed += [p["id"] for p in page.get("data", []) if p.get("status") != "declined"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        extra = [pid for pid in listed if pid not in race_ids and pid not in payments]
        if extra:
            counts["duplicate_on_server"] += len(extra)
            problems.append(
                f"merchant {merchant}: {len(extra)} payment(s) on the server the client never got: {extra[:3]}"
            )

    # The bank: settlement deltas per merchant against captures and refunds the client saw.
    # A merchant of the pool without a reading at the start cannot be compared: counting from zero
    # would blame this run for everything earlier runs settled. Race merchants are this run's own.
    if start_settlements is not None:
        end = settlement_snapshot(servers, list(expected_bank), days)
        for merchant, (captured, refunded, uncertain) in expected_bank.items():
            before = start_settlements.get(merchant, (0, 0) if merchant in race_merchants else None)
            if merchant not in end or before is None:
                counts["bank_settlement_not_checked"] += 1
                continue
            d_cap, d_ref = end[merchant][0] - before[0], end[merchant][1] - before[1]
            if abs(d_cap - captured) > uncertain or abs(d_ref - refunded) > uncertain:
                counts["bank_settlement_mismatch"] += 1
                problems.append(
                    f"bank settlement {merchant}: captured {d_cap} (client {captured}), refunded "
                    f"{d_ref} (client {refunded})"
                )
            else:
                counts["bank_settlement_matched"] += 1

    bad = MISMATCHES
    ok = not any(counts[k] for k in bad)
    # Nothing wrong found, but not everything could be judged: say so instead of "reconciled".
    unjudged = counts["unknown_unresolved"] + counts["lookup_failed"] + counts["not_checked_time_limit"]
    return {
        "enabled": True,
        "ok": ok,
        "status": "mismatch"
        if not ok
        else "incomplete"
        if unjudged
        else "reconciled"
        if counts["matched"] + counts["bank_settlement_matched"] + counts["declined_matched"]
        else "nothing to check",
        "payments_in_ledger": succeeded,
        "payments_checked": len(payments),
        "sampled": sampled,
        "counts": {
            k: counts[k]
            for k in (
                "matched",
                *bad,
                "declined_matched",
                "bank_settlement_matched",
                "bank_settlement_not_checked",
                "unknown_resolved_by_replay",
                "unknown_unresolved",
                "lookup_failed",
                "not_checked_time_limit",
            )
        },
        "problems": problems[:50],
        "took_s": round(time.monotonic() - started, 2),
    }
