"""The default mapper: a small, deterministic search good enough for ``einsim run``.

It tiles at the outermost boundary only (inner on-chip levels hold the same tile), trying for
each rank the whole extent, powers of two, multiples of the array dimension it is laid on and
near-even splits; it keeps the largest tiles that fit, tries every loop order, and picks the
lowest analytical latency, then energy. The CP-SAT mapper replaces it where optimality matters.
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


def _maximal(tiles: list[dict[str, int]], ranks: tuple[str, ...]) -> list[dict[str, int]]:
    """Drop tiles that another fitting tile covers in every rank (they only lose reuse)."""
    keep = []
    for t in tiles:
        if not any(o is not t and all(o[r] >= t[r] for r in ranks) and o != t for o in tiles):
            keep.append(t)
    return keep


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
    *outer_ranks, last = view.ranks

    def fits(tile: dict[str, int]) -> bool:
        try:
            for mem in on_chip:
                check_capacity(view, mem, tile, "")
        except MappingError:
            return False
        return True

    fitting = []  # for each choice of the other ranks, the largest fitting size of the last
    for combo in product(*(cands[r] for r in outer_ranks)):
        for size in reversed(cands[last]):
            tile = {**dict(zip(outer_ranks, combo)), last: size}
            if fits(tile):
                fitting.append(tile)
                break
    if not fitting:
        raise _no_fit(view, arch)
    best = None
    for tile in _maximal(fitting, view.ranks):
        moving = [r for r in view.ranks if tile[r] < view.sizes[r]]
        fixed = [r for r in view.ranks if tile[r] == view.sizes[r]]
        for order in permutations(moving):
            levels = [LevelMapping(arch.memories[0].name, dict(view.sizes), tuple(order) + tuple(fixed))]
            levels += [LevelMapping(m.name, dict(tile), tuple(view.ranks)) for m in on_chip]
            levels[-1] = LevelMapping(on_chip[-1].name, dict(tile), ())
            mapping = Mapping(view.einsum, unit.name, unit.dataflow, tuple(levels))
            cost = evaluate(view, mapping, arch)
            key = (cost.latency_cycles, cost.energy_pj, tuple(-tile[r] for r in view.ranks), order)
            if best is None or key < best[0]:
                best = (key, mapping)
    return best[1]


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
