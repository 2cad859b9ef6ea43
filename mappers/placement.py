"""Memory-tier placement: which tier holds each tensor group, by capacity and bandwidth (CP-SAT).

Items are groups of identical tensors (a layer's weights, the KV cache, 150 experts) with the
bytes each copy occupies and the bytes each copy streams per step. The solver puts ``count``
copies of every item into tiers so that capacities hold and the slowest tier's streaming time
per step is least; among equally fast placements it prefers the faster tiers. Tiers are given
fastest first and form a chain: bytes streamed from a slower tier pass through every faster one
on their way in (DDR -> HBM -> on chip), so a tier's time is the bytes streamed from it *and
from every slower tier* over its bandwidth; the tiers stream concurrently. ``brute_place`` is
the exhaustive oracle the tests hold it to. Bytes are per socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product


class PlacementError(ValueError):
    """A placement that cannot exist; ``str()`` is one line naming the shortfall."""


@dataclass(frozen=True)
class Item:
    """``count`` identical tensors of ``nbytes`` each, each streaming ``reads`` bytes per step."""

    name: str
    nbytes: float
    count: int = 1
    reads: float = 0.0
    pinned: str | None = None  # a tier it must live in


@dataclass(frozen=True)
class Placement:
    """How many copies of each item each tier holds, and the step time that implies."""

    counts: dict[tuple[str, str], int]
    tier_seconds: dict[str, float]
    free_bytes: dict[str, float]
    status: str = "OPTIMAL"
    notes: dict = field(default_factory=dict)

    @property
    def step_seconds(self) -> float:
        """The slowest tier's streaming time per step."""
        return max(self.tier_seconds.values(), default=0.0)

    @property
    def binding_tier(self) -> str | None:
        """The tier whose bandwidth bounds the step, if any streams at all."""
        busy = {t: s for t, s in self.tier_seconds.items() if s > 0}
        return max(busy, key=busy.get) if busy else None

    def tiers_of(self, item: str) -> dict[str, int]:
        return {t: n for (i, t), n in self.counts.items() if i == item and n}


def _tier_table(tiers) -> list[tuple[str, float, float | None]]:
    """(name, capacity bytes, bytes/s or None when unknown/unbounded) per tier."""
    return [(t.name, float(t.capacity), None if t.bandwidth is None else t.bandwidth.bytes_per_cycle(1.0)) for t in tiers]


def _check_fits(items: list[Item], table, where: str) -> None:
    need = sum(i.nbytes * i.count for i in items)
    have = sum(cap for _, cap, _ in table)
    if need > have:
        parts = " + ".join(f"{n} {_size(c)}" for n, c, _ in table)
        raise PlacementError(f"placement on {where}: {_size(need)} per socket "
                             f"({', '.join(f'{i.name} {_size(i.nbytes * i.count)}' for i in items)}) do not fit its tiers "
                             f"({parts} = {_size(have)}); short by {_size(need - have)}")
    for tier in {i.pinned for i in items if i.pinned}:
        cap = next((c for n, c, _ in table if n == tier), None)
        if cap is None:
            raise PlacementError(f"placement on {where}: an item is pinned to tier '{tier}', which is not among "
                                 f"{', '.join(n for n, _, _ in table)}")
        pinned = sum(i.nbytes * i.count for i in items if i.pinned == tier)
        if pinned > cap:
            raise PlacementError(f"placement on {where}: {_size(pinned)} pinned to {tier} exceed its {_size(cap)}; "
                                 f"short by {_size(pinned - cap)}")


def _size(b: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= scale:
            return f"{b / scale:.2f} {unit}"
    return f"{b:.0f} B"


def _result(items: list[Item], table, counts: dict, status: str) -> Placement:
    secs, free = {}, {}
    for j, (name, cap, bw) in enumerate(table):
        used = sum(i.nbytes * counts[i.name, name] for i in items)
        reads = sum(i.reads * counts[i.name, slower] for i in items for slower, _, _ in table[j:])
        secs[name] = 0.0 if bw is None else reads / bw
        free[name] = cap - used
    return Placement(dict(counts), secs, free, status)


def place(items: list[Item], tiers, where: str = "the system", time_limit_s: float = 10.0) -> Placement:
    """The optimal placement of ``items`` in ``tiers`` (fastest first) by CP-SAT."""
    from ortools.sat.python import cp_model

    table = _tier_table(tiers)
    _check_fits(items, table, where)
    m = cp_model.CpModel()
    y = {}
    for it in items:
        for name, _, _ in table:
            hi = it.count if it.pinned in (None, name) else 0
            y[it.name, name] = m.NewIntVar(0, hi, f"y[{it.name},{name}]")
        m.Add(sum(y[it.name, name] for name, _, _ in table) == it.count)
    horizon = 0
    for name, cap, bw in table:
        m.Add(sum(y[it.name, name] * int(it.nbytes) for it in items) <= int(cap))
        if bw is not None:
            horizon += sum(_ns(it.reads, bw) * it.count for it in items)
    t = m.NewIntVar(0, max(horizon * len(table), 0), "step_ns")
    for j, (name, _, bw) in enumerate(table):
        if bw is not None:  # this tier streams what it holds and what every slower tier holds
            m.Add(t >= sum(y[it.name, slower] * _ns(it.reads, bw) for it in items for slower, _, _ in table[j:]))
    slow = sum(y[it.name, name] * k for it in items for k, (name, _, _) in enumerate(table))
    weight = 1 + sum(it.count for it in items) * len(table)
    m.Minimize(t * weight + slow)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = 2
    solver.parameters.random_seed = 0
    status = solver.Solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise PlacementError(f"placement on {where}: no placement found ({solver.StatusName(status)})")
    counts = {k: solver.Value(v) for k, v in y.items()}
    return _result(items, table, counts, solver.StatusName(status))


def _ns(nbytes: float, bw: float) -> int:
    """Streaming time in integer nanoseconds (rounded up), CP-SAT's unit."""
    return -int(-nbytes * 1e9 // bw)


def brute_place(items: list[Item], tiers, where: str = "the system") -> Placement:
    """The same optimum by enumerating every placement (small problems: tests)."""
    table = _tier_table(tiers)
    _check_fits(items, table, where)
    names = [n for n, _, _ in table]
    best, best_key = None, None
    per_item = []
    for it in items:
        allowed = [n for n in names if it.pinned in (None, n)]
        splits = [c for c in product(range(it.count + 1), repeat=len(allowed)) if sum(c) == it.count]
        per_item.append([{(it.name, n): c for n, c in zip(allowed, split)} for split in splits])
    for choice in product(*per_item):
        counts = {(it.name, n): 0 for it in items for n in names}
        for part in choice:
            counts.update(part)
        if any(sum(it.nbytes * counts[it.name, n] for it in items) > cap for n, cap, _ in table):
            continue
        step = max((sum(_ns(it.reads, bw) * counts[it.name, slower] for it in items for slower in names[j:])
                    for j, (n, _, bw) in enumerate(table) if bw is not None), default=0)
        slow = sum(counts[it.name, n] * k for it in items for k, n in enumerate(names))
        key = (step, slow)
        if best_key is None or key < best_key:
            best, best_key = counts, key
    if best is None:
        raise PlacementError(f"placement on {where}: no placement fits")
    return _result(items, table, best, "OPTIMAL")
