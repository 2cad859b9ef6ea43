"""The mapspace the exact mappers optimise over: tile chains and loop orders.

Per rank, level j (1 ≤ j < L) holds a tile t_j that divides t_{j-1} (t_0 = the extent). Every
non-innermost level has a loop order: a permutation of the ranks whose trip there is > 1,
followed by the others in view order (so no mapping is counted twice). Valid = fits every
memory (check_capacity, double buffering included).

``padded=True`` (two memory levels only) adds imperfect tiles: besides the divisors, every
ceil(extent / T), the smallest tile that walks the rank in T trips, the last one partial. For an
awkward extent such as 197 (prime) that is the difference between tiles {1, 197} and 28 sizes.

``bypass=True`` (three or more levels) lets every middle level skip any subset of the operands
(LevelMapping.bypass): a skipped operand takes no room there and crosses straight between the
levels around it. Each tiling then comes in up to 8 variants per middle level.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations, product
from math import prod
from typing import Iterator

from arch.schema import ROLES
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


def tile_candidates(extent: int, padded: bool = False) -> list[int]:
    """Tile sizes a rank may take, ascending: its divisors, or with ``padded`` ceil(extent / T)
    for every trip count T (a superset: T = extent / d gives the divisor d). Of the tiles that give
    T trips only the smallest is a candidate, so a tile sized to the array but larger than needed
    (70 = 64 + 6 rather than 35 + 35 on a 32-wide array) is outside the space."""
    if not padded:
        return divisors(extent)
    return sorted({-(-extent // t) for t in range(1, extent + 1)})


def check_padded(arch, padded: bool, who: str) -> None:
    """Padded tiles are defined for two memory levels (a partial tile inside a partial tile is not modelled)."""
    if padded and len(arch.memories) != 2:
        raise MappingError(f"{who}: padded tiles need two memory levels; '{arch.name}' has {len(arch.memories)}")


def rank_chains(extent: int, depth: int, padded: bool = False) -> list[tuple[int, ...]]:
    """Every chain t_1 ≥ … ≥ t_{depth-1} where each t_j divides the previous (t_0 = extent);
    with ``padded`` (depth 2) every tile of tile_candidates."""
    if padded:
        return [(t,) for t in tile_candidates(extent, True)] if depth == 2 else []
    chains: list[tuple[int, ...]] = [()]
    for _ in range(depth - 1):
        chains = [c + (d,) for c in chains for d in divisors(c[-1] if c else extent)]
    return chains


BYPASS_SETS: tuple[tuple[str, ...], ...] = tuple(
    tuple(r for i, r in enumerate(ROLES) if mask >> i & 1) for mask in range(1 << len(ROLES)))
"""Every subset of the roles, in ROLES order: what one middle level may bypass."""


def bypass_options(arch, bypass: bool) -> list[tuple[tuple[str, ...], ...]]:
    """Per level 1 … L-1, the bypass sets it may take: every subset at a middle level when
    ``bypass``, else none bypassed (the innermost level never bypasses)."""
    depth = len(arch.memories)
    return [BYPASS_SETS if bypass and j < depth - 1 else ((),) for j in range(1, depth)]


def fits(view: MatmulView, memory, tile: dict[str, int], bypass: tuple[str, ...] = ()) -> bool:
    """Whether ``tile`` (less the bypassed roles) fits ``memory`` (the rule of check_capacity)."""
    try:
        check_capacity(view, memory, tile, "", bypass)
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
                  unit_name: str | None = None, bypass: list[tuple[str, ...]] | None = None) -> Mapping:
    """A Mapping from per-level tiles (level 1 … L-1), orders (level 0 … L-2) and bypass sets
    (level 1 … L-1; default none)."""
    unit = arch.unit(unit_name)
    mems = arch.memories
    all_tiles = [dict(view.sizes)] + [dict(t) for t in tiles]
    skips = [()] + list(bypass or [()] * len(tiles))
    levels = tuple(LevelMapping(m.name, all_tiles[j], tuple(orders[j]) if j < len(mems) - 1 else (), tuple(skips[j]))
                   for j, m in enumerate(mems))
    return Mapping(view.einsum, unit.name, unit.dataflow, levels)


def valid_tilings(view: MatmulView, arch, padded: bool = False,
                  bypass: bool = False) -> list[tuple[list[dict[str, int]], tuple[tuple[str, ...], ...]]]:
    """Every (tile chain, bypass sets), both for levels 1 … L-1, that fits every on-chip memory."""
    check_padded(arch, padded, "mapspace")
    depth = len(arch.memories)
    ranks = view.ranks
    per_rank = [rank_chains(view.sizes[r], depth, padded) for r in ranks]
    options = bypass_options(arch, bypass)
    memo: dict = {}

    def ok(j: int, tile: dict[str, int], skip: tuple[str, ...]) -> bool:
        key = (j, tuple(tile.values()), skip)
        if key not in memo:
            memo[key] = fits(view, arch.memories[j], tile, skip)
        return memo[key]

    out = []
    for combo in product(*per_rank):
        tiles = [{r: c[j] for r, c in zip(ranks, combo)} for j in range(depth - 1)]
        fitting = []  # per level, the bypass sets with which its tile fits; stop at a level where none does
        for j, (tile, opts) in enumerate(zip(tiles, options), start=1):
            fitting.append([s for s in opts if ok(j, tile, s)])
            if not fitting[-1]:
                break
        else:
            out += [(tiles, skips) for skips in product(*fitting)]
    return out


def _trips(view: MatmulView, outer: dict[str, int], inner: dict[str, int]) -> dict[str, int]:
    return {r: -(-outer[r] // inner[r]) for r in view.ranks}


def enumerate_mappings(view: MatmulView, arch, unit_name: str | None = None, padded: bool = False,
                       bypass: bool = False) -> Iterator[Mapping]:
    """Every valid mapping of the space, in a deterministic order."""
    for tiles, skips in valid_tilings(view, arch, padded, bypass):
        chain = [dict(view.sizes)] + tiles
        choices = [level_orders(view, _trips(view, chain[j], chain[j + 1])) for j in range(len(tiles))]
        for orders in product(*choices):
            yield build_mapping(view, arch, tiles, list(orders), unit_name, list(skips))


def space_size(view: MatmulView, arch, padded: bool = False, bypass: bool = False) -> int:
    """How many valid mappings the space holds (without building them)."""
    total = 0
    for tiles, _ in valid_tilings(view, arch, padded, bypass):
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
