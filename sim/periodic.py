"""Steady-state detection and exact extrapolation of loops of identical iterations.

A run of ``n`` identical iterations is periodic once its fill is over: every count it
produces (cycles, busy cycles, bytes, actions) grows by the same integers per iteration. We
simulate n0, n0+1 and n0+2 iterations; when the two differences agree exactly the loop is in
its periodic state and the count at n is f(n0) + (n - n0) * delta. When they do not agree we
move n0 on, and give up (SimulationError) rather than guess. Integer counts must agree
exactly; float counts (energy sums) to REL_TOL.
"""

from __future__ import annotations

from collections.abc import Callable

from sim.errors import SimulationError

Counts = dict[str, float]

REL_TOL = 1e-9
"""Float counts (energies) agree when their differences match to this relative tolerance;
integer counts (cycles, bytes, actions) must match exactly."""


def _same(a: float, b: float) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return abs(a - b) <= REL_TOL * max(1.0, abs(a), abs(b))


def extrapolate(run: Callable[[int], Counts], n: int, start: int = 2, limit: int = 12,
                periods: tuple[int, ...] = (1, 2, 3, 4)) -> tuple[Counts, bool]:
    """Counts of ``run(n)``: simulated outright when n is small, else extrapolated exactly.

    A loop may repeat every d iterations rather than every one (two buffers alternating), so
    for each candidate period d we look for a base b >= start with n - b a multiple of d and
    f(b + d) - f(b) == f(b + 2d) - f(b + d). Returns (counts, extrapolated)."""
    if n <= start + 2:
        return run(n), False
    seen: dict[int, Counts] = {}

    def at(k: int) -> Counts:
        if k not in seen:
            seen[k] = run(k)
        return seen[k]

    for d in periods:
        for n0 in range(start, limit):
            b = n0 + (n - n0) % d
            if b + 2 * d >= n:
                break
            a, m, c = at(b), at(b + d), at(b + 2 * d)
            keys = a.keys() | m.keys() | c.keys()
            d1 = {k: m.get(k, 0) - a.get(k, 0) for k in keys}
            d2 = {k: c.get(k, 0) - m.get(k, 0) for k in keys}
            if all(_same(d1[k], d2[k]) for k in keys):
                return {k: a.get(k, 0) + (n - b) // d * d1[k] for k in keys}, True
    if n <= limit + 2 * max(periods):
        return run(n), False
    raise SimulationError(f"no periodic state within {limit} iterations; cannot extrapolate to {n}")
