"""Lower a mapping to a tile program: the compute tiles in loop order, each with the transfers
it needs before it runs and the write-backs that follow it.

Transfers are decided the way a buffer decides them, by walking the loop nest: an operand
tile is fetched into level b from the previous level a that keeps it (a = b - 1 unless the
levels between bypass it; see Mapping.kept) when its index at b differs from the previous
step's; an output tile is written back when the next step works on another one, and read back
(a partial sum) when a step returns to one that was written back before. This is deliberately
not the reuse formula of mappers.cost, so the two can check each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from math import prod
from typing import Iterator

from mappers.cost import tile_duration
from mappers.mapping import Mapping
from mappers.systolic import array_accesses
from mappers.view import MatmulView


@dataclass(frozen=True)
class Transfer:
    """One tile crossing between memory ``src`` (outer; b - 1 when None) and memory ``b``:
    ``read`` moves it inward, ``write`` outward.

    ``tag`` names an output write-back (boundary, tile, visit); a partial-sum read waits for
    the write-back named by ``after``.
    """

    b: int
    tensor: str
    role: str  # which port serves it: "input" | "weight" | "output"
    direction: str
    nbytes: float
    tag: tuple | None = None
    after: tuple | None = None
    src: int | None = None

    @property
    def outer(self) -> int:
        """Index of the outer memory of the transfer (its port serves it)."""
        return self.b - 1 if self.src is None else self.src


@dataclass(frozen=True)
class Step:
    """One compute tile: how long the unit is busy, what it does, what it reads from and
    writes to the memory feeding it, and the transfers before (``loads``) and after
    (``stores``) it."""

    cycles: int
    stall_free: int
    ops: dict[str, int]  # unit op -> count
    macs: int
    inner: tuple[tuple[str, str, float], ...]  # (tensor, "read" | "write", bytes) at the innermost memory
    loads: tuple[Transfer, ...]
    stores: tuple[Transfer, ...]


def tile_program(view: MatmulView, mapping: Mapping, arch) -> Iterator[Step]:
    """Yield every compute tile of ``mapping`` in execution order."""
    unit = arch.unit(mapping.unit)
    clock = arch.clock_hz(unit)
    innermost = arch.memories[-1]
    names = view.tensors
    depth = len(mapping.levels)
    ranks = view.ranks
    tiles = [lv.tile for lv in mapping.levels]
    loops = [(j, r, mapping.trips(j)[r]) for j in range(depth - 1) for r in mapping.levels[j].order]
    role_ranks = {role: view.ranks_of(role) for role in ("input", "weight", "output")}
    src = mapping.sources()  # role -> {kept level b: the level a it fetches from}
    prev_keys: dict[tuple[int, str], tuple] = {}
    visits: dict[tuple[int, tuple], int] = {}  # (boundary, output tile) -> write-backs so far
    seen_compute: set[tuple] = set()
    pending: tuple | None = None  # (dims, continues, loads, output keys, output bytes)

    def flush(next_keys: dict[int, tuple] | None) -> Step:
        dims, continues, loads, keys, out_bytes = pending
        stores = []
        for b in range(depth - 1, 0, -1):
            if b not in src["output"]:
                continue
            a = src["output"][b]
            if next_keys is None or next_keys[b] != keys[b]:
                v = visits.get((b, keys[b]), 0) + 1
                visits[(b, keys[b])] = v
                stores.append(Transfer(b, names["output"], "output", "write", out_bytes[b], tag=(b, keys[b], v), src=a))
        cycles, base = tile_duration(view, unit, innermost, dims, continues, clock)
        acc = array_accesses(unit.dataflow, unit.rows, unit.cols, *dims[1:], continues)
        eb = view.elem_bytes
        inner = ((names["input"], "read", dims[0] * acc.input_reads * eb["input"]),
                 (names["weight"], "read", dims[0] * acc.weight_reads * eb["weight"]),
                 (names["output"], "read", dims[0] * acc.output_reads * eb["output"]),
                 (names["output"], "write", dims[0] * acc.output_writes * eb["output"]))
        macs = prod(dims)
        return Step(cycles, base, {"mac": macs}, macs, inner, tuple(loads), tuple(stores))

    for idx in product(*(range(t) for _, _, t in loops)):
        # start and size of every rank's tile at every level
        start = [{r: 0 for r in ranks}]
        size = [dict(view.sizes)]
        at = dict(zip(((j, r) for j, r, _ in loops), idx))
        for j in range(1, depth):
            s = {r: start[j - 1][r] + at.get((j - 1, r), 0) * tiles[j][r] for r in ranks}
            start.append(s)
            size.append({r: min(tiles[j][r], start[j - 1][r] + size[j - 1][r] - s[r]) for r in ranks})
        loads: list[Transfer] = []
        out_keys, out_bytes = {}, {}
        for b in range(1, depth):
            for role in ("input", "weight", "output"):
                if b not in src[role]:
                    continue
                a = src[role][b]
                key = tuple(start[b][r] for r in role_ranks[role])
                nbytes = prod(size[b][r] for r in role_ranks[role]) * view.elem_bytes[role]
                changed = prev_keys.get((b, role)) != key
                prev_keys[(b, role)] = key
                if role == "output":
                    out_keys[b], out_bytes[b] = key, nbytes
                    done = visits.get((b, key), 0)
                    if changed and done:
                        loads.append(Transfer(b, names["output"], "output", "read", nbytes, after=(b, key, done), src=a))
                elif changed:
                    loads.append(Transfer(b, names[role], role, "read", nbytes, src=a))
        if pending is not None:
            yield flush(out_keys)
        compute_key = tuple(start[depth - 1][r] for r in role_ranks["output"])
        continues = compute_key in seen_compute
        seen_compute.add(compute_key)
        pending = (view.dims(size[depth - 1]), continues, loads, out_keys, out_bytes)
    yield flush(None)


def vector_program(view, mapping: Mapping, arch) -> Iterator[Step]:
    """Yield every tile of a vector mapping: operand slices fetched when their tile changes,
    the output slice written back after each tile (outputs are never revisited)."""
    from mappers.vector import vector_tile_duration

    unit = arch.unit(mapping.unit)
    clock = arch.clock_hz(unit)
    mems = arch.memories
    tile = mapping.levels[-1].tile
    order = mapping.levels[0].order
    trips = [-(-view.sizes[r] // tile[r]) for r in order]
    prev: dict[int, tuple] = {}
    for idx in product(*(range(t) for t in trips)):
        start = {r: i * tile[r] for r, i in zip(order, idx)}
        size = {r: min(tile[r], view.sizes[r] - start.get(r, 0)) if r in start else view.sizes[r] for r in view.ranks}
        loads, stores, inner = [], [], []
        for i, o in enumerate(view.operands):
            nbytes = o.elements(size) * o.elem_bytes
            if o.role == "output":
                stores += [Transfer(b, o.tensor, "output", "write", nbytes) for b in range(len(mems) - 1, 0, -1)]
                inner.append((o.tensor, "write", nbytes))
                continue
            key = tuple(start.get(r, 0) for r in sorted(o.ranks))
            if prev.get(i) != key:
                loads += [Transfer(b, o.tensor, "input", "read", nbytes) for b in range(1, len(mems))]
            prev[i] = key
            inner.append((o.tensor, "read", nbytes))
        cycles, base, ops = vector_tile_duration(view, unit, mems[-1], size, clock)
        yield Step(cycles, base, dict(ops), 0, tuple(inner), tuple(loads), tuple(stores))
