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

MAX_UNKNOWN_KEPT = 10_000
MESSAGE = "suite_ledger"


def outcome_of(status: int) -> str:
    if 200 <= status < 300:
        return "succeeded"
    if status == 402:
        return "declined"
    if status == 0 or status >= 500:
        return "unknown"  # the request may or may not have moved money
    return "failed"  # a definite refusal: nothing moved


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
        kind: str,
        status: int,
        key: str | None,
        op: dict[str, Any],
        body: Any,
        request: dict | None = None,
        path: str | None = None,
    ) -> None:
        """One money-moving request. ``op``: amount, currency, merchant_id, parent (payment,
        authorization or capture the operation acts on), race (scenario tag)."""
        if not self.active and not self.listeners:
            return
        outcome = outcome_of(status)
        rec = {"kind": kind, "outcome": outcome, "status": status, "key": key, **op}
        if isinstance(body, dict):
            if outcome == "succeeded":
                rec["id"] = body.get("id")
                if rec.get("amount") is None:
                    rec["amount"] = body.get("amount")
            elif isinstance(body.get("error"), dict):
                rec["error"] = body["error"].get("code")
                rec["id"] = body["error"].get("payment_id")
                if outcome == "declined" and body["error"].get("decline_code"):
                    rec["decline_code"] = body["error"]["decline_code"]
        for listener in self.listeners:
            listener(rec)
        if not self.active:
            return
        self.counts[f"{kind}:{outcome}"] += 1
        if outcome == "unknown" and request is not None and path is not None:
            if len(self.unknown) < MAX_UNKNOWN_KEPT:
                # in memory only (it holds the card): the replay needs the identical body
                self.unknown.append({**rec, "path": path, "request": request})
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
