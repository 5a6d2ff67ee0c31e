"""The calibration target's latency distributions: what it answers after, and the figures a
measurement of it must report, known before any request is sent.

Slot distributions (``fixed``, ``modes``, ``pareto``) are a block of :data:`BLOCK` delays, the
quantile function at (j + 1) / BLOCK for j = 0 .. BLOCK - 1. Payment number n (0, 1, ... in the
order the target receives them) gets slot ``(n mod BLOCK) * STRIDE mod BLOCK``: every whole block
holds each delay once, so the shares are exact (900 of 1,000 at 23 ms is exactly 90 %), and the
nearest-rank q-percentile of whole blocks is the quantile function at q itself. STRIDE / BLOCK is
close to the golden ratio's fraction (a Kronecker sequence), so a partial block is spread over the
whole distribution too, not its lowest delays first. Nothing is random: the known answer for the
first M payments is computed from the same sequence (:meth:`SlotDistribution.first`).

The ``stall`` distribution depends on when a request arrives, not its number: a request arriving
in the first S seconds of each T-second period (periods counted from the target's start) is held
until that stall ends, then ``base`` ms more; every other request waits ``base`` ms."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

BLOCK = 1000
STRIDE = 617  # coprime to BLOCK (each slot once per block); 0.617 ~ the golden ratio's fraction
# The figures the suite reports (reporting.latency.QUANTILES, and the max).
FIGURES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999), ("max", 1.0))
SPEC_HELP = "fixed:<ms> | modes:<ms>@<share>,... | pareto:<min ms>/<alpha>/<cap ms> | stall:<S s>/<T s>:<base ms>"


class SpecError(ValueError):
    """A distribution spec the target cannot serve (the message names the allowed forms)."""


def slot_of(n: int) -> int:
    """The slot of payment number ``n`` (0-based, in the order the target received them)."""
    return (n % BLOCK) * STRIDE % BLOCK


def nearest_rank(sorted_ms: Sequence[float], q: float) -> float | None:
    """The suite's percentile rule (reporting.latency.exact_percentile), restated here: importing
    that module loads Locust, whose gevent patching would break the target's asyncio loop."""
    if not sorted_ms:
        return None
    return float(sorted_ms[min(len(sorted_ms), max(1, math.ceil(q * len(sorted_ms) - 1e-9))) - 1])


def figures_of(sorted_ms: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/p999/max (ms) of ascending samples."""
    return {label: nearest_rank(sorted_ms, q) for label, q in FIGURES}


@dataclass(frozen=True)
class SlotDistribution:
    """A distribution served slot by slot (see the module docstring)."""

    spec: str
    values: tuple[float, ...]  # ms, slot j = the quantile function at (j + 1) / BLOCK

    def delay_ms(self, n: int, now: float = 0.0, origin: float = 0.0) -> float:
        return self.values[slot_of(n)]

    def analytic(self) -> dict[str, float | None]:
        """The distribution's own figures: the quantile function at q (whole blocks of payments)."""
        return figures_of(sorted(self.values))

    def first(self, count: int) -> dict[str, float | None]:
        """The known answer for the first ``count`` payments (a partial block included)."""
        return figures_of(sorted(self.values[slot_of(n)] for n in range(count)))


@dataclass(frozen=True)
class StallDistribution:
    """Held until the stall ends: S seconds of every T, then ``base_ms``."""

    spec: str
    stall_s: float
    period_s: float
    base_ms: float

    def delay_ms(self, n: int, now: float, origin: float) -> float:
        return self.held_ms(now, origin) + self.base_ms

    def held_ms(self, t: float, origin: float) -> float:
        phase = (t - origin) % self.period_s
        return (self.stall_s - phase) * 1000.0 if phase < self.stall_s else 0.0

    def analytic(self) -> dict[str, float]:
        """Open model, arrivals evenly spread over whole periods: a share S/T of them is held
        S - u (u uniform in [0, S)), so the q-quantile above 1 - S/T is base + S - T (1 - q)."""
        share = self.stall_s / self.period_s
        out = {}
        for label, q in FIGURES:
            held = 0.0 if q <= 1 - share else self.stall_s - self.period_s * (1 - q)
            out[label] = round(self.base_ms + held * 1000.0, 3)
        return out

    def schedule(self, arrivals: Iterable[float], origin: float) -> dict[str, float | None]:
        """The known answer for arrivals due at these epoch times (corrected latency: from when
        each was due, so a late scheduler does not change it)."""
        return figures_of(sorted(round(self.delay_ms(0, t, origin), 3) for t in arrivals))


Distribution = SlotDistribution | StallDistribution


def _number(text: str, what: str, low: float = 0.0) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value) or value < low:
        raise SpecError(f"{what} {text!r} must be a number >= {low:g}")
    return value


def _modes(body: str, spec: str) -> SlotDistribution:
    modes: list[tuple[float, int]] = []
    for part in body.split(","):
        ms, sep, share = part.partition("@")
        if not sep:
            raise SpecError(f"mode {part!r} is not <ms>@<share>")
        slots = _number(share, "share", 0.0) * BLOCK
        if abs(slots - round(slots)) > 1e-6 or round(slots) <= 0:
            raise SpecError(f"share {share!r} must be a positive multiple of 1/{BLOCK}")
        modes.append((_number(ms, "delay"), round(slots)))
    if sum(n for _, n in modes) != BLOCK:
        raise SpecError(f"shares add up to {sum(n for _, n in modes) / BLOCK:g}, not 1")
    values = [ms for ms, n in sorted(modes) for _ in range(n)]
    return SlotDistribution(spec, tuple(values))


def _pareto(body: str, spec: str) -> SlotDistribution:
    parts = body.split("/")
    if len(parts) != 3:
        raise SpecError("pareto needs <min ms>/<alpha>/<cap ms>")
    low, alpha, cap = _number(parts[0], "min", 0.001), _number(parts[1], "alpha", 0.01), _number(parts[2], "cap")
    if cap < low:
        raise SpecError(f"cap {cap:g} ms is below the minimum {low:g} ms")
    values = [min(cap, low * (1 - (j + 1) / BLOCK) ** (-1 / alpha)) if j + 1 < BLOCK else cap for j in range(BLOCK)]
    return SlotDistribution(spec, tuple(round(v, 3) for v in values))


def _stall(body: str, spec: str) -> StallDistribution:
    window, sep, base = body.partition(":")
    stall, sep2, period = window.partition("/")
    if not sep or not sep2:
        raise SpecError("stall needs <S s>/<T s>:<base ms>")
    s, t = _number(stall, "stall", 0.001), _number(period, "period", 0.001)
    if s >= t:
        raise SpecError(f"the stall ({s:g} s) must be shorter than its period ({t:g} s)")
    return StallDistribution(spec, s, t, _number(base, "base"))


def parse(spec: str) -> Distribution:
    """A distribution from its spec (see :data:`SPEC_HELP`); SpecError names what is wrong."""
    kind, sep, body = spec.strip().partition(":")
    if kind == "fixed" and sep:
        return SlotDistribution(spec, (_number(body, "delay"),) * BLOCK)
    if kind == "modes" and sep:
        return _modes(body, spec)
    if kind == "pareto" and sep:
        return _pareto(body, spec)
    if kind == "stall" and sep:
        return _stall(body, spec)
    raise SpecError(f"unknown distribution {spec!r}")
