"""The client-side ledger: every money-moving request the suite made, with its idempotency key
and the outcome the client saw.

Memory stays bounded: final records are appended to a JSON-lines file (``<profile>-ledger.jsonl``
in the report dir, never with card data) and only counters plus the few requests whose outcome is
unknown (kept, bounded, so they can be resolved by idempotent replay) stay in memory. In a
distributed run workers batch their records to the master over Locust custom messages."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apis.records import MoneyOp, Outcome

MAX_UNKNOWN_KEPT = 10_000
MESSAGE = "suite_ledger"


class Ledger:
    def __init__(self) -> None:
        self.path: Path | None = None
        self._file = None
        self._buffer: list[dict] = []  # records not yet written (or sent to the master)
        self.counts: Counter = Counter()
        self.unknown: list[dict] = []  # outcome unknown: kept with the request, for replay
        self.unknown_dropped = 0
        self.forward = None  # worker: callable(records) sending them to the master
        # Called with each record as it is made (business metrics, monitoring/); empty: no cost.
        # A record seen here may carry ``decline_code``; it never carries the card.
        self.listeners: list[Callable[[dict], None]] = []

    def open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("w", encoding="utf-8")

    @property
    def active(self) -> bool:
        return self._file is not None or self.forward is not None

    def record(
        self,
        op: MoneyOp,
        status: int,
        key: str | None,
        body: Any,
        request: dict | None = None,
        path: str | None = None,
    ) -> None:
        """One money-moving request: what was asked (``op``, minor units) and the answer as the
        dialect's binding reads it (``op.read``), in neutral terms."""
        if not self.active and not self.listeners:
            return
        answer = op.read(status, body)
        outcome = answer.outcome
        rec: dict[str, Any] = {
            "kind": str(op.kind),
            "outcome": str(outcome),
            "status": status,
            "key": key,
            "amount": op.amount,
            "currency": op.currency,
            "merchant_id": op.merchant_id,
            "parent": op.parent,
            "race": op.race,
        }
        if answer.id:
            rec["id"] = answer.id
        if answer.error:
            rec["error"] = answer.error
        if answer.decline_code:
            rec["decline_code"] = answer.decline_code
        if outcome is Outcome.SUCCEEDED:
            if op.amount is None:
                rec["amount"] = answer.amount  # a full refund: the answer says how much, if it does
            elif answer.amount is not None and answer.amount != op.amount:
                rec["echoed_amount"] = answer.amount  # the server confirmed another amount
            elif answer.unreadable_amount is not None:
                rec["echoed_amount"] = str(answer.unreadable_amount)[:40]  # not an amount of this currency
            if answer.currency and op.currency and str(answer.currency).upper() != str(op.currency).upper():
                rec["echoed_currency"] = answer.currency
        for listener in self.listeners:
            listener(rec)
        if not self.active:
            return
        self.counts[f"{rec['kind']}:{rec['outcome']}"] += 1
        if outcome is Outcome.UNKNOWN and request is not None and path is not None:
            if len(self.unknown) < MAX_UNKNOWN_KEPT:
                # in memory only (it holds the card): the replay needs the identical body
                self.unknown.append({**rec, "path": path, "request": request, "service": op.service})
                return
            self.unknown_dropped += 1
        self._buffer.append(rec)
        if len(self._buffer) >= 200:
            self.flush()

    def add_remote(self, records: list[dict], unknown: list[dict]) -> None:
        """Master: records a worker sent."""
        for rec in records:
            self.counts[f"{rec['kind']}:{rec['outcome']}"] += 1
        self._buffer.extend(records)
        for rec in unknown:
            self.counts[f"{rec['kind']}:unknown"] += 1
            if len(self.unknown) < MAX_UNKNOWN_KEPT:
                self.unknown.append(rec)
            else:
                self.unknown_dropped += 1
        self.flush()

    def flush(self) -> None:
        records, self._buffer = self._buffer, []
        if not records:
            return
        if self.forward is not None:
            self.forward(records, [])
        elif self._file is not None:
            self._file.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
            self._file.flush()

    def flush_unknown_to_master(self) -> None:
        if self.forward is not None and self.unknown:
            unknown, self.unknown = self.unknown, []
            self.forward([], unknown)

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    def records(self):
        """Every record written, then the unknown ones (as resolved by now)."""
        if self.path and self.path.is_file():
            with self.path.open(encoding="utf-8") as fh:
                for line in fh:
                    yield json.loads(line)
        yield from ({k: v for k, v in r.items() if k != "request"} for r in self.unknown)


LEDGER = Ledger()
