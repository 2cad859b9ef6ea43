"""Element-wise and reduction Einsums (norms, softmax, activations, residuals) on a vector unit.

Such an Einsum streams through the innermost memory tile by tile: only output ranks that every
access indexes plainly are split (so reductions stay whole inside a tile and no partial
results spill), as little as the buffer requires, outermost first. A tile's cycles are its op
cycles spread over the unit's lanes: ⌈(points·map + (points − outputs)·reduce + outputs·Σunary)
/ lanes⌉, each op costing what the unit's op table says (with ``lower_to`` expansions).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import product
from math import prod

from mappers.cost import (Cost, boundary_loops, busiest_port, energy_breakdown, pipeline_latency, port_rate,
                          tile_size_counts, transfer_cycles)
from mappers.errors import MappingError
from mappers.mapping import LevelMapping, Mapping

OP_NAMES: dict[str, tuple[str, ...]] = {
    # IR op -> unit ops that implement it, in order of preference
    "mul": ("mul", "mac"), "add": ("add",), "sub": ("sub", "add"), "max": ("max",), "min": ("min", "max"),
    "div": ("div",), "exp": ("exp",), "neg": ("neg", "add"), "recip": ("recip", "div"), "sqrt": ("sqrt",),
    "rsqrt": ("rsqrt", "sqrt"), "square": ("mul", "mac"), "relu": ("relu", "max"), "gelu": ("gelu",),
    "silu": ("silu",), "sigmoid": ("sigmoid",), "tanh": ("tanh",), "scale": ("mul", "mac"), "add_const": ("add",),
}
REDUCE_TO_OP = {"sum": "add", "max": "max", "min": "min"}


@dataclass(frozen=True)
class Operand:
    """One access of the Einsum: which tensor, through which index, in which role."""

    tensor: str
    index: tuple  # Affine per tensor dimension
    extents: tuple[int, ...]  # the tensor's shape
    role: str  # "input" | "output"
    elem_bytes: float

    @property
    def ranks(self) -> frozenset[str]:
        return frozenset(r for a in self.index for r, _ in a.terms)

    def elements(self, tile: dict[str, int]) -> int:
        """Elements of the slice a tile touches: per dimension, the span of its index."""
        return prod(min(ext, 1 + sum(abs(c) * (tile[r] - 1) for r, c in a.terms)) for a, ext in zip(self.index, self.extents))


@dataclass(frozen=True)
class VectorView:
    """An Einsum as a stream of element-wise work: ranks, extents, operands, ops per point."""

    einsum: str
    ranks: tuple[str, ...]
    sizes: dict[str, int]
    operands: tuple[Operand, ...]  # inputs, then the output
    splittable: tuple[str, ...]
    out_ranks: frozenset[str]
    point_ops: tuple[str, ...]  # IR ops per iteration point (the map op)
    reduce_ops: tuple[str, ...]  # IR ops per reduced point
    output_ops: tuple[str, ...]  # IR ops per output point (unary ops)

    @property
    def tensors(self) -> dict[str, str]:
        return {f"{o.role}{i}": o.tensor for i, o in enumerate(self.operands)}


def vector_view(cascade, einsum) -> VectorView:
    """Describe ``einsum`` of ``cascade`` for streaming on a vector unit."""
    accesses = (*einsum.inputs, einsum.output)
    operands = tuple(
        Operand(a.tensor, tuple(a.index), cascade.tensor_shape(a.tensor), "output" if i == len(accesses) - 1 else "input",
                cascade.tensor(a.tensor).bytes_per_element)
        for i, a in enumerate(accesses))
    bare = {r for a in accesses for ix in a.index if len(ix.terms) == 1 and ix.terms[0][1] == 1 and ix.const == 0
            for r in [ix.terms[0][0]]}
    complex_use = {r for a in accesses for ix in a.index if not (len(ix.terms) == 1 and ix.terms[0][1] == 1 and ix.const == 0)
                   for r, _ in ix.terms}
    out_ranks = frozenset(r for ix in einsum.output.index for r, _ in ix.terms)
    splittable = tuple(r for r in einsum.ranks if r in out_ranks and r in bare and r not in complex_use)
    point = () if einsum.map_op is None else (("sub", "exp") if einsum.map_op == "exp_sub" else (einsum.map_op,))
    return VectorView(
        einsum=einsum.name, ranks=tuple(einsum.ranks),
        sizes={r: cascade.rank_extent(r) for r in einsum.ranks}, operands=operands, splittable=splittable,
        out_ranks=out_ranks, point_ops=point,
        reduce_ops=(einsum.reduce_op,) if einsum.reduce_op else (),
        output_ops=tuple(u.op for u in einsum.unary))


def gather_view(view: VectorView, selectors: frozenset[str]) -> VectorView:
    """A lookup (``out = max_v(select + table)`` with a 0/-inf ``select``) as the data movement a
    real kernel does: read the selected rows of the table (as many elements as the output) and
    write them; no arithmetic. The selection tensor stands in for indices and is not read."""
    out = view.operands[-1]
    data = [o for o in view.operands[:-1] if o.tensor not in selectors]
    if len(data) != 1:
        raise MappingError(f"einsum '{view.einsum}' is marked a gather but has {len(data)} data inputs besides its selectors")
    rows = Operand(data[0].tensor, out.index, out.extents, "input", data[0].elem_bytes)
    return VectorView(view.einsum, view.ranks, view.sizes, (rows, out), view.splittable, view.out_ranks, (), (), ())


def resolve_op(unit, op: str, einsum: str) -> str:
    """The unit op that implements IR op ``op`` (see OP_NAMES), or a one-line MappingError."""
    for name in OP_NAMES.get(op, (op,)):
        if name in unit.ops:
            return name
    raise MappingError(f"einsum '{einsum}' needs op '{op}' but compute unit '{unit.name}' has only {', '.join(sorted(unit.ops))}")


def vector_unit(view: VectorView, arch):
    """The unit that runs ``view``: the first one-row (vector) unit with every op, else any unit with them."""
    needed = [*view.point_ops, *(REDUCE_TO_OP[r] for r in view.reduce_ops), *view.output_ops]
    ranked = sorted(arch.compute, key=lambda u: u.rows != 1)
    if not needed:  # pure data movement (copies, gathers): the first vector unit moves it
        return ranked[0]
    for unit in ranked:
        try:
            for op in needed:
                resolve_op(unit, op, view.einsum)
        except MappingError:
            continue
        return unit
    resolve_op(ranked[0], next(op for op in needed if all(_missing(u, op) for u in ranked)), view.einsum)
    raise AssertionError("unreachable")


def _missing(unit, op: str) -> bool:
    return not any(name in unit.ops for name in OP_NAMES.get(op, (op,)))


def tile_ops(view: VectorView, unit, tile: dict[str, int]) -> Counter:
    """Unit ops one tile executes."""
    points = prod(tile[r] for r in view.ranks)
    outputs = prod(tile[r] for r in view.ranks if r in view.out_ranks)
    ops: Counter = Counter()
    for op in view.point_ops:
        ops[resolve_op(unit, op, view.einsum)] += points
    for op in view.reduce_ops:
        ops[resolve_op(unit, REDUCE_TO_OP[op], view.einsum)] += points - outputs
    for op in view.output_ops:
        ops[resolve_op(unit, op, view.einsum)] += outputs
    return +ops  # drop zero counts (a reduction over one element does no work)


def vector_tile_duration(view: VectorView, unit, memory, tile: dict[str, int], clock_hz: float) -> tuple[int, int, Counter]:
    """(cycles, stall-free cycles, ops) of one tile: op cycles over the lanes, or longer if the
    feeding memory's ports cannot stream the tile's operands."""
    ops = tile_ops(view, unit, tile)
    base = math.ceil(sum(n * unit.op_cost(op)[0] for op, n in ops.items()) / (unit.rows * unit.cols))
    lanes: Counter = Counter()
    for o in view.operands:
        lanes[port_rate(None, memory, o.role, "write" if o.role == "output" else "read", clock_hz)] += \
            o.elements(tile) * o.elem_bytes
    stall = busiest_port(lanes)
    return max(base, stall), base, ops


def vector_mapping(view: VectorView, arch, unit) -> Mapping:
    """Split splittable ranks, outermost first, only as far as every on-chip level needs."""
    tile = dict(view.sizes)

    def need(t: dict[str, int], mem) -> float:
        return (2 if mem.double_buffered else 1) * sum(o.elements(t) * o.elem_bytes for o in view.operands)

    def fits(t: dict[str, int]) -> bool:
        return all(m.capacity is None or need(t, m) <= m.capacity for m in arch.memories[1:])

    for r in view.splittable:
        if fits(tile):
            break
        lo, hi = 1, tile[r]
        while lo < hi:  # largest size of r that fits
            mid = (lo + hi + 1) // 2
            if fits({**tile, r: mid}):
                lo = mid
            else:
                hi = mid - 1
        tile[r] = lo
    if not fits(tile):
        mem = next(m for m in arch.memories[1:] if m.capacity is not None and need(tile, m) > m.capacity)
        raise MappingError(f"no mapping fits einsum '{view.einsum}': its smallest tile needs {need(tile, mem):.0f} B "
                           f"in '{mem.name}' but it holds {mem.capacity} B")
    order = tuple(r for r in view.splittable if tile[r] < view.sizes[r])
    levels = [LevelMapping(arch.memories[0].name, dict(view.sizes), order)]
    levels += [LevelMapping(m.name, dict(tile), ()) for m in arch.memories[1:]]
    return Mapping(view.einsum, unit.name, "vector", tuple(levels))


def vector_cost(view: VectorView, mapping: Mapping, arch) -> Cost:
    """The analytical model of a vector mapping: reuse-rule traffic, per-tile closed-form cycles."""
    unit = arch.unit(mapping.unit)
    clock = arch.clock_hz(unit)
    mems = arch.memories
    tile = mapping.levels[-1].tile
    loops = boundary_loops(mapping, 1)
    traffic = {m.name: {o.tensor: {"read": 0.0, "write": 0.0} for o in view.operands} for m in mems}
    port_bytes: Counter = Counter()  # bytes per lane: (outer memory's port, rate)
    crossing: Counter = Counter()
    for b in range(1, len(mems)):
        outer, inner = mems[b - 1], mems[b]
        for o in view.operands:
            inner_loop = max((i for i, (r, t) in enumerate(loops) if r in o.ranks and t > 1), default=-1)
            rep = prod(t for r, t in loops[: inner_loop + 1] if r not in o.ranks)
            nbytes = rep * o.elements(view.sizes) * o.elem_bytes
            direction = "write" if o.role == "output" else "read"
            traffic[outer.name][o.tensor][direction] += nbytes
            traffic[inner.name][o.tensor]["read" if direction == "write" else "write"] += nbytes
            port_bytes[port_rate(arch, outer, o.role, direction, clock, inner.name)] += nbytes
            crossing[(outer.name, inner.name)] += nbytes
    totals = Counter(port_bytes)
    counts = {r: tile_size_counts(view.sizes[r], [tile[r]]) for r in view.ranks}
    compute = stall_free = 0
    ops: Counter = Counter()
    for combo in product(*(sorted(counts[r].items()) for r in view.ranks)):
        t = {r: s for r, (s, _) in zip(view.ranks, combo)}
        n = prod(c for _, c in combo)
        cycles, base, tops = vector_tile_duration(view, unit, mems[-1], t, clock)
        compute, stall_free = compute + n * cycles, stall_free + n * base
        for op, c in tops.items():
            ops[op] += n * c
        for o in view.operands:
            direction = "write" if o.role == "output" else "read"
            traffic[mems[-1].name][o.tensor][direction] += n * o.elements(t) * o.elem_bytes
    first = {o: o.elements(tile) * o.elem_bytes for o in view.operands}
    last_tile = {r: view.sizes[r] - (math.ceil(view.sizes[r] / tile[r]) - 1) * tile[r] for r in view.ranks}
    first_load = last_store = 0
    for b in range(1, len(mems)):
        per_port: Counter = Counter()
        for o in view.operands:
            if o.role == "input":
                key, rate = lane = port_rate(arch, mems[b - 1], "input", "read", clock, mems[b].name)
                per_port[key] += transfer_cycles(first[o], rate)
                port_bytes[lane] -= first[o]
        first_load += max(per_port.values(), default=0)
        out = view.operands[-1]
        lane = port_rate(arch, mems[b - 1], "output", "write", clock, mems[b].name)
        last_store += transfer_cycles(out.elements(last_tile) * out.elem_bytes, lane[1])
        port_bytes[lane] -= out.elements(last_tile) * out.elem_bytes
    latency = pipeline_latency(first_load, compute, port_bytes, last_store, mems[-1].double_buffered)
    peak = math.ceil(sum(n * unit.op_cost(op)[0] for op, n in ops.items()) / (unit.rows * unit.cols))
    bound = max(peak, busiest_port(totals))
    energy = energy_breakdown(arch, unit, traffic, crossing, dict(ops))
    return Cost(latency, compute, stall_free, 0, traffic, energy, bound)
