"""The default mapper: a small, deterministic search good enough for ``einsim run``.

It tiles at the outermost boundary only (inner on-chip levels hold the same tile). The search
works on rank groups (batch, M, N, K; see mappers.view) rather than single ranks, so an
attention GEMM with six ranks costs about as much as a plain GEMM:

- within a group the innermost rank is tiled first (whole extent, powers of two, multiples of
  the array dimension it is laid on, near-even splits), and an outer rank only once the inner
  ones are whole; batch groups are either one element or whole;
- every combination that fits is scored with each group in turn as the innermost loop; every
  order of the groups is then tried on the best few and on the largest tiles (most reuse);
- the lowest analytical latency wins, then energy, then the larger tile.

The CP-SAT mapper replaces it where optimality matters.
"""

from __future__ import annotations

from itertools import permutations, product
from math import ceil

from mappers.cost import evaluate
from mappers.errors import MappingError
from mappers.mapping import SPATIAL, LevelMapping, Mapping, check_capacity, footprint_bytes
from mappers.space import no_fit_error
from mappers.view import MatmulView

GROUPS = ("batch", "m", "n", "k")
_MAX_TILES = 400  # tiles scored in stage 1, largest first (800 found no better mapping on the bench set)
_REFINE = 8  # tiles whose every loop order is tried, from each of the two rankings


def _sizes(extent: int, step: int, perfect: bool) -> list[int]:
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
        sizes = {s for s in sizes if extent % s == 0}
    return sorted(sizes)


def _group_tiles(ranks: tuple[str, ...], sizes: dict[str, int], step: int, perfect: bool, batch: bool) -> list[dict[str, int]]:
    """Candidate tiles of one rank group: inner ranks fill before outer ones are split."""
    if not ranks:
        return [{}]
    if batch:
        return [dict.fromkeys(ranks, 1), {r: sizes[r] for r in ranks}]
    out = []
    for i in range(len(ranks) - 1, -1, -1):  # rank i partial, inner ranks whole, outer ranks 1
        inner_step = step if i == len(ranks) - 1 else 1
        for s in _sizes(sizes[ranks[i]], inner_step, perfect):
            if s == sizes[ranks[i]] and i > 0:
                continue  # the same as rank i-1 at 1 with everything inside whole
            tile = {r: 1 for r in ranks[:i]}
            tile[ranks[i]] = s
            tile.update({r: sizes[r] for r in ranks[i + 1:]})
            out.append(tile)
    return out


def default_mapping(view: MatmulView, arch, unit_name: str | None = None) -> Mapping:
    """A good mapping of ``view`` on ``arch`` (latency first, then energy)."""
    unit = arch.unit(unit_name)
    rows, cols = SPATIAL[unit.dataflow]
    step = {g: 1 for g in GROUPS}
    step[rows], step[cols] = unit.rows, unit.cols
    perfect = len(arch.memories) > 2
    per_group = [_group_tiles(view.groups[g], view.sizes, step[g], perfect, g == "batch") for g in GROUPS]
    on_chip = arch.memories[1:]

    def fits(tile: dict[str, int]) -> bool:
        try:
            for mem in on_chip:
                check_capacity(view, mem, tile, "")
        except MappingError:
            return False
        return True

    fitting = [t for t in ({k: v for part in combo for k, v in part.items()} for combo in product(*per_group)) if fits(t)]
    if not fitting:
        raise no_fit_error(view, arch)

    def footprint(tile: dict[str, int]) -> float:
        return sum(footprint_bytes(view, tile).values())

    largest = sorted(fitting, key=lambda t: (-footprint(t), tuple(t[r] for r in view.ranks)))
    fitting = largest[:_MAX_TILES]

    def mapping_for(tile: dict[str, int], group_order: tuple[str, ...]) -> Mapping:
        order = tuple(r for g in group_order for r in view.groups[g] if tile[r] < view.sizes[r])
        order += tuple(r for r in view.ranks if r not in order)
        levels = [LevelMapping(arch.memories[0].name, dict(view.sizes), order)]
        levels += [LevelMapping(m.name, dict(tile), tuple(view.ranks)) for m in on_chip[:-1]]
        levels.append(LevelMapping(on_chip[-1].name, dict(tile), ()))
        return Mapping(view.einsum, unit.name, unit.dataflow, tuple(levels))

    memo: dict = {}

    def score(mapping: Mapping, tile: dict[str, int]) -> tuple:
        cost = evaluate(view, mapping, arch, memo)  # ties go to bigger tiles, then to the order's text
        return cost.latency_cycles, cost.energy_pj, tuple(-tile[r] for r in view.ranks), mapping.levels[0].order

    present = tuple(g for g in GROUPS if view.groups[g])
    innermost_choices = [tuple(x for x in present if x != g) + (g,) for g in present if g != "batch"] or [present]
    ranked = sorted(fitting, key=lambda t: min(score(mapping_for(t, o), t) for o in innermost_choices))
    finalists = {tuple(t[r] for r in view.ranks): t for t in ranked[:_REFINE] + largest[:_REFINE]}
    best = None
    for tile in finalists.values():
        for group_order in permutations(g for g in GROUPS if view.groups[g]):
            m = mapping_for(tile, group_order)
            key = score(m, tile)
            if best is None or key < best[0]:
                best = (key, m)
    return best[1]
