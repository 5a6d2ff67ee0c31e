"""End-of-run reconciliation: what the client saw (the ledger) against what the servers recorded,
checking only what the API's capabilities allow.

:func:`expected_state` reads the ledger once into what the servers should now have; each
``check_*`` function then judges one thing and says so in the counts (a :class:`Mismatch` fails
the verdict). Which checks run follows the binding (``apis/``): without lookups the client's own
view is checked (every approval has an id, no id twice, the echoed amount and currency equal
what was sent, refunds never beyond the capture); without idempotency keys nothing is replayed;
bank settlements are compared only against a stateful bank, exactly for merchants the run owns
and as a lower bound where other traffic may share them."""

from __future__ import annotations

import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from itertools import chain
from typing import Any

import gevent
import gevent.pool
import requests

from apis.base import Binding
from apis.records import Capability, MoneyKind, Outcome, ServerState
from data_generators import is_run_merchant

MAX_PAYMENTS_CHECKED = 20_000
MAX_IDS_TRACKED = 2_000_000  # "no id twice" keeps a hash per approval, up to this many
CONCURRENCY = 16
RETRIES = 3  # tries of a reconciliation read or replay whose answer is not final
UNBOUNDED = 10**12  # an uncertainty of unknown size (a full refund of a payment not kept)


class Mismatch(StrEnum):
    """The kinds of money mismatch: any of them fails the verdict as a money mismatch, exit 4 (each is a
    count in the summary)."""

    MISSING_ON_SERVER = "missing_on_server"
    DUPLICATE_ON_SERVER = "duplicate_on_server"
    AMOUNT_MISMATCH = "amount_mismatch"
    APPROVAL_WITHOUT_ID = "approval_without_id"
    DUPLICATE_ID = "duplicate_id"
    OVER_REFUNDED = "over_refunded"
    REFUND_MISMATCH = "refund_mismatch"
    DECLINED_MISMATCH = "declined_mismatch"
    BANK_SETTLEMENT_MISMATCH = "bank_settlement_mismatch"


MISMATCHES = tuple(str(m) for m in Mismatch)
# Counts that are not mismatches, in the order the summary lists them.
INFO_COUNTS = (
    "declined_matched",
    "bank_settlement_matched",
    "bank_settlement_not_checked",
    "unknown_resolved_by_replay",
    "unknown_resolved_by_lookup",
    "unknown_unresolved",
    "unknown_not_kept",
    "lookup_failed",
    "server_not_final",
    "not_checked_time_limit",
    "server_excess_ledger_incomplete",
)


# Outcomes nothing could judge: with any of them the section says "incomplete", not "reconciled".
UNJUDGED = (
    "unknown_unresolved",
    "unknown_not_kept",
    "lookup_failed",
    "server_not_final",
    "not_checked_time_limit",
    "server_excess_ledger_incomplete",
)


class Servers:
    """Plain HTTP to both services for the reconciliation's reads and replays."""

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

    def get_retried(self, url: str, **params) -> tuple[int, Any]:
        """A read: a passing 5xx or dropped connection is worth another try."""
        status, body = 0, None
        for attempt in range(RETRIES):
            status, body = self.get(url, **params)
            if status and status < 500:
                break
            gevent.sleep(0.05 * (attempt + 1))
        return status, body

    def post(self, url: str, body: dict, key: str | None) -> tuple[int, Any]:
        try:
            r = self.session.post(
                url, json=body, timeout=self.timeout, headers={"Idempotency-Key": key} if key else None
            )
            return r.status_code, r.json() if r.content else None
        except (requests.RequestException, ValueError):
            return 0, None


def utc_day(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts or time.time(), tz=UTC).date().isoformat()


def settles(binding: Binding) -> bool:
    return binding.has(Capability.BANK_SETTLEMENT, Capability.BANK_STATEFUL)


def settlement_snapshot(
    servers: Servers, merchants: list[str], days: list[str], binding: Binding
) -> dict[str, tuple[int, int]]:
    """Captured/refunded per merchant (summed over ``days``), to compare deltas at the end."""
    out: dict[str, tuple[int, int]] = {}
    if not settles(binding):
        return out

    def one(m: str) -> None:
        captured = refunded = 0
        for day in days:
            figures = binding.settlement_figures(servers, day, m)
            if figures is None:
                return
            captured, refunded = captured + figures[0], refunded + figures[1]
        out[m] = (captured, refunded)

    gevent.pool.Pool(CONCURRENCY).map(one, merchants)
    return out


# --- unknown outcomes ---------------------------------------------------------------------------


def resolve_unknown(
    servers: Servers,
    unknown: list[dict],
    counts: Counter,
    binding: Binding,
    deadline: float | None = None,
) -> list[dict]:
    """Settle what each request of unknown outcome did. With idempotency keys: replay it with its
    key and body (the server answers with the stored result, or runs it once). Without: look up
    an id the client did receive; else it stays unresolved. Returns the records as resolved, in
    order. Replays run side by side; none starts after ``deadline`` (monotonic)."""
    replays = binding.has(Capability.IDEMPOTENCY)
    lookups = binding.has(Capability.LOOKUP)

    def one(rec: dict) -> dict:
        base = servers.bank_url if rec.get("service") == "bank" else servers.payment_url
        status, body = 0, None
        # The same key and body: safe to send again while the server's answer is not final (a 5xx,
        # or an "in flight" answer). No answer at all: the target is gone.
        for attempt in range(RETRIES if replays and rec.get("key") else 0):
            if deadline is not None and time.monotonic() > deadline:
                break
            status, body = servers.post(base + rec["path"], rec["request"], rec["key"])
            if not status or binding.replay_is_final(status, body):
                break
            gevent.sleep(0.1 * (attempt + 1))
        rec = {k: v for k, v in rec.items() if k not in ("request", "path", "service")}
        if status and binding.replay_is_final(status, body):
            counts["unknown_resolved_by_replay"] += 1
            answer = binding.read_replay(MoneyKind(rec["kind"]), status, body)
            rec["outcome"] = str(answer.outcome if answer.outcome is not Outcome.UNKNOWN else Outcome.SUCCEEDED)
            rec["id"] = answer.id or rec.get("id")
            if rec["outcome"] == Outcome.SUCCEEDED and rec.get("amount") is None and answer.amount is not None:
                rec["amount"] = answer.amount  # a full refund: the answer says how much
        elif lookups and rec.get("id") and rec["kind"] == MoneyKind.PAYMENT:
            status, payment = binding.server_payment(servers, rec["id"])
            if payment is not None and payment.state is not ServerState.PENDING:
                counts["unknown_resolved_by_lookup"] += 1
                rec["outcome"] = str(
                    {ServerState.SUCCEEDED: Outcome.SUCCEEDED, ServerState.DECLINED: Outcome.DECLINED}.get(
                        payment.state, Outcome.FAILED
                    )
                )
            elif status == 404:
                counts["unknown_resolved_by_lookup"] += 1
                rec["outcome"] = str(Outcome.FAILED)
            else:
                counts["unknown_unresolved"] += 1
        else:
            counts["unknown_unresolved"] += 1
        return rec

    return list(gevent.pool.Pool(CONCURRENCY).imap(one, unknown))


# --- what the servers should have ---------------------------------------------------------------


def _sampled(payment_id: str, rate: float) -> bool:
    """Hash-based, so a payment and its refunds are kept or skipped together."""
    return rate >= 1.0 or zlib.crc32(payment_id.encode()) / 2**32 < rate


@dataclass
class Expected:
    """What the ledger says the servers should now have."""

    succeeded: int = 0
    payments: dict[str, dict] = field(default_factory=dict)  # kept (sampled) payments by id
    declined: dict[str, dict] = field(default_factory=dict)
    keys: dict[str, set] = field(default_factory=lambda: defaultdict(set))  # race key -> ids given
    race_ids: dict[str, str | None] = field(default_factory=dict)  # race payment id -> its key
    race_merchants: set[str] = field(default_factory=set)
    # merchant -> [captured, refunded, uncertain] minor units, as the client saw them
    bank: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    no_id: int = 0  # approvals without an id
    unknown_not_kept: int = 0  # unknown outcomes the ledger could not keep for resolving (over its bound)
    repeated_ids: list[str] = field(default_factory=list)
    ids_untracked: int = 0
    echo_problems: list[str] = field(default_factory=list)
    sampled: bool = False


def expected_state(records: Callable[[], Iterable[dict]], resolved: list[dict]) -> Expected:
    """``records`` is called twice: the ledger is streamed (count, then build), never held whole,
    and at most MAX_PAYMENTS_CHECKED payments (an even hash sample) are kept for lookups."""
    state = Expected()
    for rec in records():  # the ledger file: unknowns there were not kept for resolving
        if rec["kind"] == MoneyKind.PAYMENT and rec["outcome"] == Outcome.SUCCEEDED:
            state.succeeded += 1
        elif rec["outcome"] == Outcome.UNKNOWN:
            state.unknown_not_kept += 1
    state.succeeded += sum(1 for r in resolved if r["kind"] == MoneyKind.PAYMENT and r["outcome"] == Outcome.SUCCEEDED)
    rate = min(1.0, MAX_PAYMENTS_CHECKED / max(state.succeeded, 1))
    state.sampled = rate < 1.0
    seen_ids: set[int] = set()
    for rec in chain(records(), resolved):
        kind, outcome, merchant = rec["kind"], rec["outcome"], rec.get("merchant_id")
        amount = rec.get("amount") or 0
        if rec.get("race") and merchant:
            state.race_merchants.add(merchant)
        if outcome == Outcome.SUCCEEDED and ("echoed_amount" in rec or "echoed_currency" in rec):
            sent = f"{rec.get('amount')} {rec.get('currency')}"
            echoed = f"{rec.get('echoed_amount', rec.get('amount'))} {rec.get('echoed_currency', rec.get('currency'))}"
            what = f"{kind} {rec.get('id') or '(no id)'}"
            state.echo_problems.append(f"{what}: sent {sent}, the answer confirmed {echoed}")
        if kind == MoneyKind.PAYMENT:
            _expect_payment(state, rec, outcome, merchant, amount, rate, seen_ids)
        elif kind == MoneyKind.REFUND:
            _expect_refund(state, rec, outcome, merchant, amount)
        elif kind in (MoneyKind.CAPTURE, MoneyKind.BANK_REFUND) and merchant:
            column = 0 if kind == MoneyKind.CAPTURE else 1
            if outcome == Outcome.SUCCEEDED:
                state.bank[merchant][column] += amount
            elif outcome == Outcome.UNKNOWN:
                state.bank[merchant][2] += amount
    return state


def _expect_payment(
    state: Expected, rec: dict, outcome: str, merchant: str | None, amount: int, rate: float, seen_ids: set[int]
) -> None:
    pid = rec.get("id")
    if outcome == Outcome.SUCCEEDED:
        if not pid:
            state.no_id += 1
            return
        if rec.get("race"):
            if rec.get("key"):
                state.keys[rec["key"]].add(pid)
            if pid in state.race_ids:
                if rec.get("key") and state.race_ids[pid] == rec["key"]:
                    return  # an idempotent replay of one the ledger already has
                state.repeated_ids.append(pid)  # the same id for requests with different keys (or none)
                return
            state.race_ids[pid] = rec.get("key")
        elif len(seen_ids) < MAX_IDS_TRACKED:
            h = hash(pid)
            if h in seen_ids:
                state.repeated_ids.append(pid)
            seen_ids.add(h)
        else:
            state.ids_untracked += 1
        if merchant:
            state.bank[merchant][0] += amount
        if _sampled(pid, rate):
            state.payments[pid] = {"amount": amount, "currency": rec["currency"], "refunded": 0, "uncertain": 0}
    elif outcome == Outcome.UNKNOWN and merchant:
        state.bank[merchant][2] += amount
    elif outcome == Outcome.DECLINED and pid and _sampled(pid, rate):
        state.declined[pid] = rec


def _expect_refund(state: Expected, rec: dict, outcome: str, merchant: str | None, amount: int) -> None:
    payment = state.payments.get(rec.get("parent"))
    if outcome == Outcome.SUCCEEDED:
        if rec.get("amount") is None:  # a full refund whose answer did not say how much
            if payment is None:  # sampled out: its size is unknown, so the bank's figure is too
                if merchant:
                    state.bank[merchant][2] += UNBOUNDED
                return
            amount = max(0, payment["amount"] - payment["refunded"])
        if merchant:
            state.bank[merchant][1] += amount
        if payment is not None:
            payment["refunded"] += amount
    elif outcome == Outcome.UNKNOWN:
        # a full refund of unknown size: the payment's amount if we kept it, else anything
        size = amount or (payment["amount"] if payment else UNBOUNDED)
        if merchant:
            state.bank[merchant][2] += size
        if payment is not None:
            payment["uncertain"] += size


# --- the checks ---------------------------------------------------------------------------------


@dataclass
class Findings:
    counts: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)  # check -> how it ran (or why not)
    ledger_incomplete: bool = False  # a worker was lost (or silent at the end) with its last records

    def mismatch(self, kind: Mismatch, problem: str, n: int = 1) -> None:
        self.counts[str(kind)] += n
        self.problems.append(problem)

    def server_excess(self, kind: Mismatch, problem: str, n: int = 1) -> None:
        """The servers show more than the client recorded: a mismatch, unless the ledger is known to
        miss records (then it is no evidence against the target: counted as not judged)."""
        if self.ledger_incomplete:
            self.counts["server_excess_ledger_incomplete"] += n
        else:
            self.mismatch(kind, problem, n)


def check_client_view(state: Expected, found: Findings) -> None:
    """What the client can judge alone, in every dialect: approvals carry an id, no id is given
    twice, answers confirm the amount and currency sent, and the refunds a client saw accepted
    on one payment never add up to more than it captured."""
    found.checks["client view"] = "every approval has an id, no id twice, echoed amounts, refunds within capture"
    if state.no_id:
        found.mismatch(
            Mismatch.APPROVAL_WITHOUT_ID, f"{state.no_id} approval(s) came without a payment id", state.no_id
        )
    if state.repeated_ids:
        found.mismatch(
            Mismatch.DUPLICATE_ID,
            f"{len(state.repeated_ids)} approval(s) reused an id another approval had: {state.repeated_ids[:3]}",
            len(state.repeated_ids),
        )
    if state.ids_untracked:
        found.checks["client view"] += f" (ids of the last {state.ids_untracked} approvals not tracked)"
    for problem in state.echo_problems:
        found.mismatch(Mismatch.AMOUNT_MISMATCH, problem)
    for pid, mine in state.payments.items():
        if mine["refunded"] > mine["amount"]:
            found.mismatch(
                Mismatch.OVER_REFUNDED,
                f"payment {pid}: refunds of {mine['refunded']} were accepted on a capture of {mine['amount']}",
            )
            mine["judged"] = True


def check_idempotency(state: Expected, found: Findings) -> None:
    """One idempotency key, one payment."""
    found.checks["idempotency"] = "one key, one payment"
    for key, ids in state.keys.items():
        if len(ids) > 1:
            found.mismatch(
                Mismatch.DUPLICATE_ON_SERVER,
                f"idempotency key {key} produced {len(ids)} different payments: {sorted(ids)[:3]}",
                len(ids) - 1,
            )


def check_server_payments(
    state: Expected, found: Findings, binding: Binding, servers: Servers, expired: Callable[[], bool]
) -> None:
    """Every payment the client saw succeed (or the sample), as the server has it now; and the
    declined ones the client got an id for. Each answer is judged as it arrives and dropped."""
    refunded_known = binding.has(Capability.REFUNDED_TOTAL)
    found.checks["server lookups"] = (
        "amount, currency"
        + (", refunded total" if refunded_known else "")
        + (f" of a sample of {len(state.payments)}" if state.sampled else "")
    )
    counts = found.counts

    def check_payment(pid: str) -> None:
        if expired():
            counts["not_checked_time_limit"] += 1
            return
        mine = state.payments[pid]
        if mine.get("judged"):
            return
        status, server = binding.server_payment(servers, pid)
        if status == 404:
            found.mismatch(
                Mismatch.MISSING_ON_SERVER, f"payment {pid} succeeded for the client but the server has no record of it"
            )
        elif server is None:
            counts["lookup_failed"] += 1
        elif server.state is ServerState.PENDING:
            counts["server_not_final"] += 1
        elif server.state is ServerState.DECLINED or (server.state is ServerState.VOID and not mine["refunded"]):
            # void with no refund the client saw: a refund record the ledger may have lost
            report = found.mismatch if server.state is ServerState.DECLINED else found.server_excess
            report(
                Mismatch.DECLINED_MISMATCH,
                f"payment {pid} succeeded for the client but is {server.state} on the server",
            )
        elif server.amount != mine["amount"] or str(server.currency).upper() != str(mine["currency"]).upper():
            found.mismatch(
                Mismatch.AMOUNT_MISMATCH,
                f"payment {pid}: client {mine['amount']} {mine['currency']}, server {server.amount} {server.currency}",
            )
        elif refunded_known and server.refunded is not None and server.refunded > (server.amount or 0):
            found.mismatch(Mismatch.OVER_REFUNDED, f"payment {pid}: refunded {server.refunded} of {server.amount}")
        elif (
            refunded_known
            and server.refunded is not None
            and not mine["refunded"] <= server.refunded <= mine["refunded"] + mine["uncertain"]
        ):
            report = found.mismatch if server.refunded < mine["refunded"] else found.server_excess
            report(
                Mismatch.REFUND_MISMATCH,
                f"payment {pid}: client saw {mine['refunded']} refunded, server says {server.refunded}",
            )
        else:
            counts["matched"] += 1

    def check_declined(pid: str) -> None:
        if expired():
            return
        status, server = binding.server_payment(servers, pid)
        if server is not None and not server.declined:
            found.mismatch(
                Mismatch.DECLINED_MISMATCH,
                f"payment {pid} was declined for the client but is not declined on the server",
            )
        elif server is not None:
            counts["declined_matched"] += 1

    pool = gevent.pool.Pool(CONCURRENCY)
    pool.map(check_payment, list(state.payments))
    pool.map(check_declined, list(state.declined))


def check_race_merchants(state: Expected, found: Findings, binding: Binding, servers: Servers) -> None:
    """Race merchants belong to this run alone: the server must list no payment the client did not get."""
    if state.race_merchants:
        found.checks["race merchants"] = f"{len(state.race_merchants)} merchant(s) of this run alone (exclusive)"
    for merchant in sorted(state.race_merchants):
        listed = binding.merchant_payment_ids(servers, merchant) or []
        extra = [pid for pid in listed if pid not in state.race_ids and pid not in state.payments]
        if extra:
            found.server_excess(
                Mismatch.DUPLICATE_ON_SERVER,
                f"merchant {merchant}: {len(extra)} payment(s) on the server the client never got: {extra[:3]}",
                len(extra),
            )


def check_settlements(
    state: Expected,
    found: Findings,
    binding: Binding,
    servers: Servers,
    start: dict[str, tuple[int, int]] | None,
    days: list[str],
) -> None:
    """Bank settlement deltas per merchant against the captures and refunds the client saw.

    Merchants of this run alone (``is_run_merchant``) start from zero and must match exactly.
    A shared merchant (other runs or real traffic may move money on it) is checked as a lower
    bound: the bank must show at least what this run moved; more is someone else's. A shared
    merchant without a reading at the start cannot be compared at all."""
    end = settlement_snapshot(servers, list(state.bank), days, binding)
    exclusive = shared = 0
    for merchant, (captured, refunded, uncertain) in state.bank.items():
        own = is_run_merchant(merchant)
        before = (0, 0) if own else (start or {}).get(merchant)
        if merchant not in end or before is None:
            found.counts["bank_settlement_not_checked"] += 1
            continue
        d_cap, d_ref = end[merchant][0] - before[0], end[merchant][1] - before[1]
        if own:
            exclusive += 1
        else:
            shared += 1
        short = d_cap < captured - uncertain or d_ref < refunded - uncertain
        excess = own and (d_cap > captured + uncertain or d_ref > refunded + uncertain)
        if short or excess:
            (found.mismatch if short else found.server_excess)(
                Mismatch.BANK_SETTLEMENT_MISMATCH,
                f"bank settlement {merchant}: captured {d_cap} (client {captured}), "
                f"refunded {d_ref} (client {refunded})"
                + ("" if own else " [shared merchant: the bank shows less than this run moved]"),
            )
        else:
            found.counts["bank_settlement_matched"] += 1
    parts = []
    if exclusive:
        parts.append(f"{exclusive} merchant(s) of this run alone: exact")
    if shared:
        parts.append(f"{shared} shared merchant(s): at least what this run moved (other traffic may add)")
    found.checks["bank settlements"] = "; ".join(parts) or "no merchant could be compared"


def reconcile(
    records: Callable[[], Iterable[dict]],
    unknown: list[dict],
    servers: Servers | None,
    start_settlements: dict[str, tuple[int, int]] | None,
    days: list[str],
    binding: Binding,
    deadline_s: float = 90.0,
    ledger_gap: str = "",
) -> dict[str, Any]:
    """Resolve unknown outcomes, build the expected state, and run the checks the API allows.
    ``servers`` None: the client's view only (nothing is read from or replayed to the targets).
    ``ledger_gap``: why the ledger misses records (workers lost); then the servers showing more
    than the client recorded is not judged a mismatch (the servers showing less still is)."""
    started = time.monotonic()
    found = Findings(ledger_incomplete=bool(ledger_gap))
    if servers is None:
        found.counts["unknown_unresolved"] += len(unknown)
        resolved = [{k: v for k, v in r.items() if k not in ("request", "path", "service")} for r in unknown]
    else:
        resolved = resolve_unknown(servers, unknown, found.counts, binding, started + deadline_s / 2)
    state = expected_state(records, resolved)
    found.counts["unknown_not_kept"] = state.unknown_not_kept

    def expired() -> bool:
        return time.monotonic() - started > deadline_s

    not_run: dict[str, str] = {}
    if ledger_gap:
        not_run["servers showing more than the client recorded"] = ledger_gap
    check_client_view(state, found)
    if binding.has(Capability.IDEMPOTENCY):
        check_idempotency(state, found)
    else:
        not_run["idempotency"] = "no idempotency keys: unknown outcomes are not replayed"
    if servers is None:
        not_run["servers"] = "the client's view only: RECONCILE=on reads the targets back (lookups, settlements)"
    elif binding.has(Capability.LOOKUP):
        check_server_payments(state, found, binding, servers, expired)
    else:
        not_run["server lookups"] = "payments cannot be read back"
    if servers is not None and binding.has(Capability.MERCHANT_LISTING):
        check_race_merchants(state, found, binding, servers)
    if servers is not None and settles(binding) and state.bank:
        check_settlements(state, found, binding, servers, start_settlements, days)
    elif not settles(binding):
        not_run["bank settlements"] = "no settlement report from a stateful bank"

    counts = found.counts
    ok = not any(counts[k] for k in MISMATCHES)
    # Nothing wrong found, but not everything could be judged: say so instead of "reconciled".
    unjudged = sum(counts[k] for k in UNJUDGED)
    judged = counts["matched"] + counts["bank_settlement_matched"] + counts["declined_matched"]
    if servers is None or not binding.has(Capability.LOOKUP):
        counts["matched"] += state.succeeded - state.no_id  # judged from the client's view alone
        judged += counts["matched"]
    return {
        "enabled": True,
        "scope": "client view" if servers is None else "servers",
        "ok": ok,
        "status": "mismatch"
        if not ok
        else "incomplete"
        if unjudged
        else "reconciled"
        if judged
        else "nothing to check",
        "payments_in_ledger": state.succeeded,
        "payments_checked": len(state.payments),
        "sampled": state.sampled,
        "counts": {k: counts[k] for k in ("matched", *MISMATCHES, *INFO_COUNTS)},
        "checks": found.checks,
        "not_checked": not_run,
        "problems": found.problems[:50],
        "took_s": round(time.monotonic() - started, 2),
    }
