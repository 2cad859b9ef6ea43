"""The default mapper: a small, deterministic search good enough for ``einsim run``.

It tiles at the outermost boundary only (inner on-chip levels hold the same tile), trying for
each rank the whole extent, powers of two, multiples of the array dimension it is laid on and
near-even splits; it scores every tile that fits with one loop order, tries every order on
the best few and on the largest tiles, and picks the lowest analytical latency, then energy. The CP-SAT mapper replaces it where optimality matters.
"""

from __future__ import annotations

from itertools import permutations, product
from math import ceil, prod

from mappers.cost import evaluate
from mappers.errors import MappingError
from mappers.mapping import SPATIAL, LevelMapping, Mapping, check_capacity, footprint_bytes
from mappers.view import MatmulView


def _candidates(extent: int, step: int, perfect: bool) -> list[int]:
    """Tile sizes worth trying for one rank."""
    sizes = {extent}
    for base in {1, step}:
        t = base
        while t < extent:
            sizes.add(t)
            t *= 2
    for parts in range(2, 9):
        t = ceil(extent / parts)
        sizes.add(ceil(t / step) * step if step > 1 else t)
    sizes = {min(s, extent) for s in sizes if s >= 1}
    if perfect:
        sizes = {s for s in sizes if extent % s == 0} | {d for d in range(1, min(extent, 4096) + 1) if extent % d == 0 and d & (d - 1) == 0}
    return sorted(sizes)


def _frontier(tiles: list[dict[str, int]], ranks: tuple[str, ...]) -> list[dict[str, int]]:
    """For each choice of all ranks but the last, only the largest fitting last-rank size."""
    best: dict[tuple, dict[str, int]] = {}
    for t in tiles:
        head = tuple(t[r] for r in ranks[:-1])
        if head not in best or t[ranks[-1]] > best[head][ranks[-1]]:
            best[head] = t
    return list(best.values())


def default_mapping(view: MatmulView, arch, unit_name: str | None = None) -> Mapping:
    """A good mapping of ``view`` on ``arch`` (latency first, then energy)."""
    unit = arch.unit(unit_name)
    rows, cols = SPATIAL[unit.dataflow]
    step = {r: 1 for r in view.ranks}
    if len(view.groups[rows]) == 1:
        step[view.groups[rows][0]] = unit.rows
    if len(view.groups[cols]) == 1:
        step[view.groups[cols][0]] = unit.cols
    perfect = len(arch.memories) > 2
    cands = {r: _candidates(view.sizes[r], step[r], perfect) for r in view.ranks}
    on_chip = arch.memories[1:]

    def fits(tile: dict[str, int]) -> bool:
        try:
            for mem in on_chip:
                check_capacity(view, mem, tile, "")
        except MappingError:
            return False
        return True

    fitting = [t for t in (dict(zip(view.ranks, c)) for c in product(*(cands[r] for r in view.ranks))) if fits(t)]
    if not fitting:
        raise _no_fit(view, arch)
    largest = _frontier(fitting, view.ranks)
    if len(fitting) > _MAX_TILES:  # keep the search bounded
        fitting = largest

    def mapping_for(tile: dict[str, int], order: tuple[str, ...]) -> Mapping:
        fixed = tuple(r for r in view.ranks if r not in order)
        levels = [LevelMapping(arch.memories[0].name, dict(view.sizes), tuple(order) + fixed)]
        levels += [LevelMapping(m.name, dict(tile), tuple(view.ranks)) for m in on_chip[:-1]]
        levels.append(LevelMapping(on_chip[-1].name, dict(tile), ()))
        return Mapping(view.einsum, unit.name, unit.dataflow, tuple(levels))

    def score(mapping: Mapping, tile: dict[str, int]) -> tuple:
        cost = evaluate(view, mapping, arch)  # ties go to bigger tiles, then to the order's text
        return cost.latency_cycles, cost.energy_pj, tuple(-tile[r] for r in view.ranks), mapping.levels[0].order

    # Stage 1 scores every fitting tile with one loop order; stage 2 tries every order on the
    # best few and on the largest tiles (most reuse), whose best order stage 1 may have missed.
    ranked = sorted(fitting, key=lambda t: score(mapping_for(t, _moving(view, t)), t))
    finalists = {tuple(t[r] for r in view.ranks): t for t in ranked[:_REFINE] + largest}
    best = None
    for tile in finalists.values():
        for order in permutations(_moving(view, tile)):
            m = mapping_for(tile, order)
            key = score(m, tile)
            if best is None or key < best[0]:
                best = (key, m)
    return best[1]


_MAX_TILES = 3000
_REFINE = 8


def _moving(view: MatmulView, tile: dict[str, int]) -> tuple[str, ...]:
    """Ranks the outer level actually loops over (tile smaller than the extent)."""
    return tuple(r for r in view.ranks if tile[r] < view.sizes[r])


def _no_fit(view: MatmulView, arch) -> MappingError:
    """The error for a buffer too small for even the smallest tile, naming level and bytes."""
    smallest = {r: 1 for r in view.ranks}
    for mem in arch.memories[1:]:
        try:
            check_capacity(view, mem, smallest, f"einsum '{view.einsum}'")
        except MappingError as err:
            return MappingError(f"no mapping fits: {err}")
    need = sum(footprint_bytes(view, smallest).values())
    return MappingError(f"no mapping fits einsum '{view.einsum}' (smallest tile needs {need:.0f} B)")
