"""Passes over a fiber (FuseMax's notion) and the on-chip footprint they imply.

A *fiber* is the set of elements along one rank (the keys m of attention), or along the
ranks it is split into (m = m1*M0 + m0: traversed tile by tile, m1 outermost). A *pass* is one
traversal of the fiber by Einsums that iterate all of its ranks. A dependency that forces
every element of the fiber to be read before any is re-read -- a value reduced over the
outer fiber rank (GM = max_m QK) feeding an Einsum that traverses the fiber again (SN) --
starts a new pass. A pure copy (BK, a tiled view of K) is a view, not a traversal: it belongs
to no pass, so K can be streamed again in a later pass. Einsums that iterate only the outer
rank (per-tile values: the running max RM, or 2-pass's PRM = exp(LM - GM)) run alongside a
pass, or between passes when they need a finished reduction, without adding one. Reads of a
running tensor's previous value inside its loop are loop-carried and force nothing. So
3-pass attention has 3, TileFlow's 2-pass has 2, and FlashAttention-2/FuseMax's 1-pass has 1.

Stage numbers: Einsum traversals run in pass k = 1, 2, ...; a value is *during* pass k (k)
when it is indexed by the outer fiber rank and produced tile by tile in pass k, *after* pass
k (k + 0.5) when it needs the whole of pass k (a reduction over the outer rank, or a later
read of a single position), and 0 when it does not depend on the fiber at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from workloads.cascade import Cascade
from workloads.ir import Access, Einsum, WorkloadError


@dataclass(frozen=True)
class PassAnalysis:
    """The fiber's ranks (outer first), each Einsum's stage and each tensor's availability."""

    fiber: tuple[str, ...]
    stage: dict  # Einsum name -> stage (int pass for full traversals, else k or k + 0.5)
    avail: dict  # tensor name -> stage at which its values are available (0: fiber-free)
    traversals: frozenset  # names of the Einsums iterating every fiber rank

    @property
    def passes(self) -> int:
        """Number of passes: the largest pass of a full traversal (0 if none)."""
        return max((int(self.stage[e]) for e in self.traversals), default=0)


def fiber_ranks(cascade: Cascade, rank: str | Iterable[str]) -> tuple[str, ...]:
    """The ranks the fiber of ``rank`` is traversed by, outermost first.

    A tuple is taken as given. A rank some Einsum iterates is its own fiber. A rank no Einsum
    iterates is one that was split: a tensor dimension declared with it is read through an
    expression such as ``m1*M0+m0``, whose ranks (largest coefficient first) are the fiber.
    """
    if not isinstance(rank, str):
        fiber = tuple(rank)
        for r in fiber:
            if r not in cascade.ranks:
                raise WorkloadError(f"{cascade.name}: no rank {r!r}")
        if not fiber:
            raise WorkloadError(f"{cascade.name}: empty fiber")
        return fiber
    if rank not in cascade.ranks:
        raise WorkloadError(f"{cascade.name}: no rank {rank!r}")
    if any(rank in e.ranks for e in cascade.einsums):
        return (rank,)
    splits = set()
    for e in cascade.einsums:
        for a in e.inputs:
            declared = cascade.tensor(a.tensor).ranks
            for dim, expr in zip(declared, a.index):
                if dim == rank and len(expr.terms) > 1:
                    terms = sorted(expr.terms, key=lambda t: -abs(t[1]))
                    splits.add(tuple(r for r, _ in terms))
    if len(splits) != 1:
        why = "no Einsum iterates it or reads it split" if not splits else f"it is split several ways {sorted(splits)}"
        raise WorkloadError(f"{cascade.name}: cannot tell the fiber of rank {rank!r}: {why}")
    return splits.pop()


def _after(a: float) -> float:
    """The stage of a value once the pass it is produced in has finished."""
    return a if a == 0 or a % 1 else a + 0.5


def _loop_carried(cascade: Cascade, e: Einsum, a: Access) -> bool:
    """A read, inside its loop, of a running tensor's previous-iteration value."""
    rank = cascade.running_tensors.get(a.tensor)
    if rank is None or cascade.loop_rank(e) != rank:
        return False
    dim = cascade.tensor(a.tensor).ranks.index(rank)
    return a.index[dim].as_rank() == rank


def _is_copy(e: Einsum) -> bool:
    """A pure copy (a re-layout such as BK = K split into tiles): a view, not a traversal."""
    return e.map_op is None and e.reduce_op is None and not e.unary


def analyse(cascade: Cascade, rank: str | Iterable[str]) -> PassAnalysis:
    """Stage every Einsum and tensor with respect to the fiber of ``rank`` (see the module doc)."""
    fiber = fiber_ranks(cascade, rank)
    outer = fiber[0]
    avail = {name: 0.0 for name in cascade.inputs}
    stage: dict[str, float] = {}
    traversals = set()
    for e in cascade.einsums:
        ranks = set(e.ranks)
        iterates_outer = outer in ranks
        a_in = 0.0
        for a in e.inputs:
            if _loop_carried(cascade, e, a):
                continue
            value = avail.get(a.tensor, 0.0)
            a_in = max(a_in, value if iterates_outer else _after(value))
        keeps_outer = outer in e.output_ranks
        if all(r in ranks for r in fiber) and not _is_copy(e):
            traversals.add(e.name)
            k = max(1, math.ceil(a_in))
            stage[e.name] = k
            out = k if keeps_outer else k + 0.5
        else:
            out = a_in if keeps_outer or not iterates_outer else _after(a_in)
            stage[e.name] = out
        avail[e.output.tensor] = max(avail.get(e.output.tensor, 0.0), out)
    return PassAnalysis(fiber, stage, avail, frozenset(traversals))


def pass_count(cascade: Cascade, rank: str | Iterable[str]) -> int:
    """Passes over the fiber of ``rank`` (a rank, a split rank such as m, or the tuple (m1, m0)).

    3 for 3-pass attention over the keys, 2 for 2-pass, 1 for 1-pass; see the module doc.
    """
    return analyse(cascade, rank).passes


def _rows(cascade: Cascade, fiber: tuple[str, ...]) -> tuple[str, ...]:
    """Default row ranks: the output ranks (less the fiber) of the first Einsum reducing a fiber rank."""
    for e in cascade.einsums:
        if any(r in fiber for r in e.reduced_ranks):
            return tuple(r for r in e.output_ranks if r not in fiber)
    return ()


def min_footprint(cascade: Cascade, rank: str | Iterable[str], rows: Iterable[str] | None = None) -> int:
    """Bytes that must stay on chip to process one row (e.g. one query of one head) without
    sending any fiber-sized intermediate to DRAM, as the pass structure dictates.

    Rows: the ranks held at one value -- by default the non-fiber output ranks of the first
    Einsum that reduces over the fiber (batch, heads and query for attention's max).

    held: an intermediate indexed by a fiber rank and read in a later stage than it is
    produced in (QK between 3-pass's passes 1 and 2; SLN, LM, SLD between 2-pass's passes)
    must be kept whole for the row: all its elements but the row ranks (a running tensor
    only its current value). ``held`` is the largest sum over the boundaries between passes
    (0 with one pass).

    tile: every other tensor an Einsum iterating a fiber rank reads or writes, one tile each
    for the row -- 1 along the outer fiber rank, the full extent of inner fiber ranks (M0)
    and of other non-row ranks (head dims). A pure copy (a re-layout such as BK) shares its
    source's buffer, so the source is not counted again. With one pass this is all: a K and a
    V tile, Q, the tile's scores, and the running values RM, RD, RNV.

    Returns held + tile, in bytes of each tensor's dtype, rounded up.
    """
    pa = analyse(cascade, rank)
    fiber, outer = pa.fiber, pa.fiber[0]
    row = set(_rows(cascade, fiber) if rows is None else rows)
    extent = cascade.rank_extent
    running = cascade.running_tensors

    def bpe(t: str) -> float:
        return cascade.tensor(t).bytes_per_element

    # held: fiber-indexed intermediates read in a later stage than they are produced in.
    last_use: dict[str, float] = {}
    for e in cascade.einsums:
        for a in e.inputs:
            if a.tensor != e.output.tensor:
                last_use[a.tensor] = max(last_use.get(a.tensor, 0.0), pa.stage[e.name])
    held_size: dict[str, float] = {}
    span: dict[str, tuple[float, float]] = {}
    for t in cascade.tensors:
        produced = pa.avail.get(t.name, 0.0)
        if produced == 0 or t.name not in last_use or last_use[t.name] <= produced:
            continue
        if not any(r in fiber for r in t.ranks):
            continue
        shape = cascade.tensor_shape(t.name)
        n = 1
        for r, size in zip(t.ranks, shape):
            if r not in row and running.get(t.name) != r:
                n *= size
        held_size[t.name] = n * bpe(t.name)
        span[t.name] = (produced, last_use[t.name])
    boundaries = [k + 0.5 for k in range(1, pa.passes)]
    held = max((sum(held_size[t] for t, (lo, hi) in span.items() if lo <= b <= hi) for b in boundaries),
               default=0.0)
    held_names = {t for t, (lo, hi) in span.items() if any(lo <= b <= hi for b in boundaries)}

    # tile: one tile of every other tensor an Einsum iterating a fiber rank touches.
    tiles: dict[str, float] = {}
    copy_sources: set[str] = set()
    other_reads: set[str] = set()
    for e in cascade.einsums:
        if not any(r in fiber for r in e.ranks):
            continue
        pure_copy = _is_copy(e)
        for a in e.inputs:
            (copy_sources if pure_copy else other_reads).add(a.tensor)
        for a in (e.output, *e.inputs):
            n = 1
            for expr in a.index:
                used = expr.ranks
                if len(used) == 1 and used[0] in row:
                    continue
                n *= math.prod(extent(r) for r in used if r != outer)
            tiles[a.tensor] = max(tiles.get(a.tensor, 0), n)
    skip = held_names | (copy_sources - other_reads)
    tile = sum(n * bpe(t) for t, n in tiles.items() if t not in skip)
    return math.ceil(held + tile)

