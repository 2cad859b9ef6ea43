"""The mapspace the exact mappers optimise over: perfect (divisor) tile chains and loop orders.

Per rank, level j (1 ≤ j < L) holds a tile t_j that divides t_{j-1} (t_0 = the extent). Every
non-innermost level has a loop order: a permutation of the ranks whose trip there is > 1,
followed by the others in view order (so no mapping is counted twice). Valid = fits every
memory (check_capacity, double buffering included).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations, product
from math import prod
from typing import Iterator

from mappers.cost import Cost
from mappers.errors import MappingError
from mappers.mapping import LevelMapping, Mapping, check_capacity, footprint_bytes
from mappers.view import MatmulView

OBJECTIVES = ("latency", "energy", "edp", "lex")


@dataclass(frozen=True)
class MapResult:
    """A mapper's answer: the mapping, its cost by evaluate, the objective and a proven bound."""

    mapping: Mapping
    cost: Cost
    objective_value: float | tuple
    status: str = "OPTIMAL"
    bound: float | tuple = 0.0
    evaluated: int = 0
    seconds: float = 0.0


def divisors(n: int) -> list[int]:
    """The divisors of ``n``, ascending."""
    return [d for d in range(1, n + 1) if n % d == 0]


def rank_chains(extent: int, depth: int) -> list[tuple[int, ...]]:
    """Every chain t_1 ≥ … ≥ t_{depth-1} where each t_j divides the previous (t_0 = extent)."""
    chains: list[tuple[int, ...]] = [()]
    for _ in range(depth - 1):
        chains = [c + (d,) for c in chains for d in divisors(c[-1] if c else extent)]
    return chains


def fits(view: MatmulView, memory, tile: dict[str, int]) -> bool:
    """Whether ``tile`` fits ``memory`` (the rule of check_capacity)."""
    try:
        check_capacity(view, memory, tile, "")
    except MappingError:
        return False
    return True


def no_fit_error(view: MatmulView, arch) -> MappingError:
    """The error for a problem whose smallest tile fits nowhere, naming the level and bytes."""
    smallest = dict.fromkeys(view.ranks, 1)
    for mem in arch.memories[1:]:
        try:
            check_capacity(view, mem, smallest, f"einsum '{view.einsum}'")
        except MappingError as err:
            return MappingError(f"no mapping fits: {err}")
    need = sum(footprint_bytes(view, smallest).values())
    return MappingError(f"no mapping fits einsum '{view.einsum}' (smallest tile needs {need:.0f} B)")


def level_orders(view: MatmulView, trips: dict[str, int]) -> list[tuple[str, ...]]:
    """Distinct loop orders of one level: permutations of its ranks with trip > 1, rest after."""
    active = [r for r in view.ranks if trips[r] > 1]
    rest = tuple(r for r in view.ranks if trips[r] == 1)
    return [p + rest for p in permutations(active)]


def canonical_order(view: MatmulView, trips: dict[str, int], rank_key) -> tuple[str, ...]:
    """The space's representative order: ranks with trip > 1 sorted by ``rank_key``, rest in view order."""
    active = sorted((r for r in view.ranks if trips[r] > 1), key=rank_key)
    return tuple(active) + tuple(r for r in view.ranks if trips[r] == 1)


def build_mapping(view: MatmulView, arch, tiles: list[dict[str, int]], orders: list[tuple[str, ...]],
                  unit_name: str | None = None) -> Mapping:
    """A Mapping from per-level tiles (level 1 … L-1) and orders (level 0 … L-2)."""
    unit = arch.unit(unit_name)
    mems = arch.memories
    all_tiles = [dict(view.sizes)] + [dict(t) for t in tiles]
    levels = tuple(LevelMapping(m.name, all_tiles[j], tuple(orders[j]) if j < len(mems) - 1 else ())
                   for j, m in enumerate(mems))
    return Mapping(view.einsum, unit.name, unit.dataflow, levels)


def valid_tilings(view: MatmulView, arch) -> list[list[dict[str, int]]]:
    """Every perfect tile chain (levels 1 … L-1) that fits every on-chip memory."""
    depth = len(arch.memories)
    ranks = view.ranks
    # Per level, which tiles fit, so chains are pruned level by level.
    per_rank = [rank_chains(view.sizes[r], depth) for r in ranks]
    memo: dict = {}
    out = []
    for combo in product(*per_rank):
        tiles = [{r: c[j] for r, c in zip(ranks, combo)} for j in range(depth - 1)]
        ok = True
        for j, tile in enumerate(tiles, start=1):
            key = (j, tuple(tile.values()))
            if key not in memo:
                memo[key] = fits(view, arch.memories[j], tile)
            if not memo[key]:
                ok = False
                break
        if ok:
            out.append(tiles)
    return out


def _trips(view: MatmulView, outer: dict[str, int], inner: dict[str, int]) -> dict[str, int]:
    return {r: outer[r] // inner[r] for r in view.ranks}


def enumerate_mappings(view: MatmulView, arch, unit_name: str | None = None) -> Iterator[Mapping]:
    """Every valid mapping of the space, in a deterministic order."""
    for tiles in valid_tilings(view, arch):
        chain = [dict(view.sizes)] + tiles
        choices = [level_orders(view, _trips(view, chain[j], chain[j + 1])) for j in range(len(tiles))]
        for orders in product(*choices):
            yield build_mapping(view, arch, tiles, list(orders), unit_name)


def space_size(view: MatmulView, arch) -> int:
    """How many valid mappings the space holds (without building them)."""
    total = 0
    for tiles in valid_tilings(view, arch):
        chain = [dict(view.sizes)] + tiles
        total += prod(len(level_orders(view, _trips(view, chain[j], chain[j + 1]))) for j in range(len(tiles)))
    return total


def objective_of(cost: Cost, objective: str):
    """The value a mapping scores under ``objective`` (lower is better)."""
    if objective == "latency":
        return cost.latency_cycles
    if objective == "energy":
        return cost.energy_pj
    if objective == "edp":
        return cost.energy_pj * cost.latency_cycles
    if objective == "lex":
        return (cost.latency_cycles, cost.energy_pj)
    raise ValueError(f"unknown objective '{objective}' (expected one of {', '.join(OBJECTIVES)})")
